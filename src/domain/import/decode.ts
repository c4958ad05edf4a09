/**
 * Bytes → text for uploaded key files.
 *
 * Windows saves "BitLocker Recovery Key <ID>.TXT" as UTF-16LE with a BOM,
 * PowerShell 5.1 `Out-File` / `>` also write UTF-16LE, while RMM exports and
 * anything from Linux are UTF-8 (sometimes with a BOM). We detect, in order:
 *   1. a BOM (UTF-16LE FF FE, UTF-16BE FE FF, UTF-8 EF BB BF);
 *   2. BOM-less UTF-16 (ASCII-heavy text in UTF-16 has a NUL in every other
 *      byte: odd offsets for LE, even offsets for BE);
 *   3. otherwise UTF-8 (invalid sequences become U+FFFD rather than failing,
 *      so one bad byte costs one row, not the file).
 * Line endings are normalized to LF so parsers and line numbers only deal
 * with `\n`.
 */

function decodeUtf16(bytes: Uint8Array, bigEndian: boolean): string {
  let le = bytes;
  if (bigEndian) {
    // Swap to little-endian ourselves: 'utf-16be' support in TextDecoder
    // depends on the ICU build, 'utf-16le' is always available.
    le = new Uint8Array(bytes.length);
    for (let i = 0; i + 1 < bytes.length; i += 2) {
      le[i] = bytes[i + 1] ?? 0;
      le[i + 1] = bytes[i] ?? 0;
    }
    if (bytes.length % 2 === 1) le[bytes.length - 1] = bytes[bytes.length - 1] ?? 0;
  }
  return new TextDecoder('utf-16le', { ignoreBOM: true }).decode(le);
}

/**
 * Guess BOM-less UTF-16 from NUL bytes. Looks at the first 4 KiB only: enough
 * for a confident answer, cheap for 100k-row files.
 */
function sniffUtf16(bytes: Uint8Array): 'le' | 'be' | null {
  const n = Math.min(bytes.length, 4096) & ~1;
  if (n < 4) return null;
  let evenNul = 0;
  let oddNul = 0;
  for (let i = 0; i < n; i += 2) {
    if (bytes[i] === 0) evenNul++;
    if (bytes[i + 1] === 0) oddNul++;
  }
  const pairs = n / 2;
  // Text in Latin script has a NUL high byte for nearly every character;
  // genuine UTF-8 text has no NULs at all.
  if (oddNul >= pairs * 0.4 && evenNul <= pairs * 0.1) return 'le';
  if (evenNul >= pairs * 0.4 && oddNul <= pairs * 0.1) return 'be';
  return null;
}

export function decodeText(bytes: Uint8Array): string {
  let text: string;
  if (bytes.length >= 2 && bytes[0] === 0xff && bytes[1] === 0xfe) {
    text = decodeUtf16(bytes.subarray(2), false);
  } else if (bytes.length >= 2 && bytes[0] === 0xfe && bytes[1] === 0xff) {
    text = decodeUtf16(bytes.subarray(2), true);
  } else if (bytes.length >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) {
    text = new TextDecoder('utf-8', { ignoreBOM: true }).decode(bytes.subarray(3));
  } else {
    const utf16 = sniffUtf16(bytes);
    text = utf16 === null ? new TextDecoder('utf-8', { ignoreBOM: true }).decode(bytes) : decodeUtf16(bytes, utf16 === 'be');
  }
  return text.replace(/\r\n?/g, '\n');
}
