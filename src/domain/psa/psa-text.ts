/**
 * Text Keywarden writes into a PSA (notes, ticket titles and bodies) quotes names it does not control:
 * device names reported by agents or imports, client and person names. Some PSAs show these fields as
 * HTML (HaloPSA's notes and details are rich text), so a device named `<img src=x onerror=…>` must
 * not become markup in a technician's browser. Angle brackets become look-alike quotation marks and
 * control characters (but line breaks and tabs) are dropped: inert in plain text and in HTML alike.
 */
export function inertPsaText(text: string): string {
  return (
    text
      .replace(/</g, '‹')
      .replace(/>/g, '›')
      // eslint-disable-next-line no-control-regex
      .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f\u202a-\u202e\u2066-\u2069]/g, '')
  );
}
