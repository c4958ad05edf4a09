import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeText } from './decode.js';

const utf16le = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'utf16le'));
const utf16be = (s: string): Uint8Array => {
  const le = utf16le(s);
  const be = new Uint8Array(le.length);
  for (let i = 0; i < le.length; i += 2) {
    be[i] = le[i + 1] ?? 0;
    be[i + 1] = le[i] ?? 0;
  }
  return be;
};
const cat = (...parts: Uint8Array[]): Uint8Array => new Uint8Array(Buffer.concat(parts));
const bytes = (...b: number[]): Uint8Array => new Uint8Array(b);

const SAMPLE = 'Recovery Key:\r\n\r\n\tSchlüssel – 496298\r\nend\rold-mac\n';
const EXPECTED = 'Recovery Key:\n\n\tSchlüssel – 496298\nend\nold-mac\n';

describe('decodeText', () => {
  it('UTF-16LE with BOM', () => {
    expect(decodeText(cat(bytes(0xff, 0xfe), utf16le(SAMPLE)))).toBe(EXPECTED);
  });
  it('UTF-16BE with BOM', () => {
    expect(decodeText(cat(bytes(0xfe, 0xff), utf16be(SAMPLE)))).toBe(EXPECTED);
  });
  it('UTF-8 with BOM', () => {
    expect(decodeText(cat(bytes(0xef, 0xbb, 0xbf), new TextEncoder().encode(SAMPLE)))).toBe(EXPECTED);
  });
  it('UTF-8 without BOM', () => {
    expect(decodeText(new TextEncoder().encode(SAMPLE))).toBe(EXPECTED);
  });
  it('BOM-less UTF-16LE (NULs at odd offsets)', () => {
    expect(decodeText(utf16le(SAMPLE))).toBe(EXPECTED);
  });
  it('BOM-less UTF-16BE (NULs at even offsets)', () => {
    expect(decodeText(utf16be(SAMPLE))).toBe(EXPECTED);
  });
  it('invalid UTF-8 bytes become U+FFFD instead of failing (cmd.exe OEM code page)', () => {
    // "Schlüssel" in CP850: ü = 0x81
    expect(decodeText(bytes(0x53, 0x63, 0x68, 0x6c, 0x81, 0x73))).toBe('Schl\ufffds');
  });
  it('empty and tiny inputs', () => {
    expect(decodeText(new Uint8Array())).toBe('');
    expect(decodeText(bytes(0xff, 0xfe))).toBe('');
    expect(decodeText(bytes(0x41))).toBe('A');
  });
  it('odd-length UTF-16 does not throw', () => {
    expect(decodeText(cat(bytes(0xff, 0xfe), utf16le('AB'), bytes(0x43)))).toMatch(/^AB/);
    expect(decodeText(cat(bytes(0xfe, 0xff), utf16be('AB'), bytes(0x43)))).toMatch(/^AB/);
  });
  it('round-trips arbitrary text through every encoding', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: 'binary', maxLength: 200 }).map((s) => s.replace(/^\ufeff/, '')),
        fc.constantFrom('utf8', 'utf8bom', 'utf16le', 'utf16be'),
        (s, enc) => {
          const b =
            enc === 'utf8'
              ? new TextEncoder().encode(s)
              : enc === 'utf8bom'
                ? cat(bytes(0xef, 0xbb, 0xbf), new TextEncoder().encode(s))
                : enc === 'utf16le'
                  ? cat(bytes(0xff, 0xfe), utf16le(s))
                  : cat(bytes(0xfe, 0xff), utf16be(s));
          const text = decodeText(b);
          expect(text).not.toMatch(/\r/);
          if (enc !== 'utf8') expect(text).toBe(s.replace(/\r\n?/g, '\n'));
        },
      ),
      { numRuns: 200 },
    );
  });
  it('never throws on arbitrary bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (b) => {
        expect(typeof decodeText(b)).toBe('string');
      }),
      { numRuns: 200 },
    );
  });
});
