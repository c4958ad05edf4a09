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

/**
 * A name quoted inside one of Keywarden's sentences (a device reported by an agent, a token, a
 * client): every run of whitespace, line or paragraph separators becomes one space, so a name like
 * "LAPTOP-07\nrotation queued" cannot start a line of its own and pass for Keywarden's words.
 */
export function psaLine(text: string): string {
  return text.replace(/[\s\u0085]+/g, ' ').trim();
}
