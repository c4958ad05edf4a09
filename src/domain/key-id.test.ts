import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatKeyIdForDisplay, keyIdPrefixBounds, parseKeyId, parseKeyIdQuery } from './key-id.js';

const ID = '4290b6c0-b17a-497a-8552-272cc30e80d4';

describe('parseKeyId', () => {
  it.each([
    ['4290B6C0-B17A-497A-8552-272CC30E80D4'],
    ['{4290B6C0-B17A-497A-8552-272CC30E80D4}'],
    ['4290b6c0-b17a-497a-8552-272cc30e80d4'],
    ['  {4290b6c0-B17A-497a-8552-272CC30E80D4}\t'],
    ['4290B6C0B17A497A8552272CC30E80D4'],
    ['{4290b6c0b17a497a8552272cc30e80d4}'],
    ['{ 4290B6C0-B17A-497A-8552-272CC30E80D4 }'],
  ])('accepts %j', (input) => {
    expect(parseKeyId(input)).toEqual({ ok: true, value: ID });
  });

  it('does not enforce RFC 4122 version/variant bits', () => {
    // The Graph docs' example ID has version nibble "e" and variant "e8".
    expect(parseKeyId('b465e4e8-e4e8-b465-e8e4-65b4e8e465b4')).toEqual({
      ok: true,
      value: 'b465e4e8-e4e8-b465-e8e4-65b4e8e465b4',
    });
    expect(parseKeyId('00000000-0000-0000-0000-000000000000').ok).toBe(true);
  });

  it.each([
    ['', 'the key ID is empty'],
    ['BitLocker', 'a key ID contains only hex digits (0-9, A-F) and dashes'],
    ['{4290B6C0-B17A-497A-8552-272CC30E80D4', 'the key ID has an unmatched brace'],
    ['4290B6C0-B17A-497A-8552-272CC30E80D', 'a key ID has 32 hex digits; got 31'],
    ['4290B6C0', 'a key ID has 32 hex digits; got 8'],
    ['4290B6C0B17A-497A-8552-272CC30E80D4', expect.stringMatching(/^the dashes in a key ID go after/)],
    ['4290B6C0-B17A-497A-8552-272CC30E80D4-', expect.stringMatching(/^the dashes in a key ID go after/)],
    ['4290B6G0-B17A-497A-8552-272CC30E80D4', 'a key ID contains only hex digits (0-9, A-F) and dashes'],
  ])('rejects %j', (input, reason) => {
    expect(parseKeyId(input)).toEqual({ ok: false, reason });
  });
});

describe('parseKeyIdQuery', () => {
  it.each([
    ['4290B6C0', 'prefix', '4290b6c0'],
    ['{4290b6c0-b17a', 'prefix', '4290b6c0b17a'],
    ['4290B6C0-', 'prefix', '4290b6c0'],
    ['ABC7C7A1-9BEE-4F', 'prefix', 'abc7c7a19bee4f'], // Windows 7 short form
    ['  4290b6c0b17a497a8552272cc30e80d  ', 'prefix', '4290b6c0b17a497a8552272cc30e80d'],
  ])('%j is a prefix query', (input, kind, prefix) => {
    expect(parseKeyIdQuery(input)).toEqual({ ok: true, value: { kind, prefix } });
  });

  it.each([
    ['{4290B6C0-B17A-497A-8552-272CC30E80D4}'],
    ['4290b6c0b17a497a8552272cc30e80d4'],
    ['{4290B6C0-B17A-497A-8552-272CC30E80D4'], // closing brace forgotten
    ['4290B6C0B17A-497A-8552-272CC30E80D4'], // first hyphen forgotten
  ])('%j is a full query', (input) => {
    expect(parseKeyIdQuery(input)).toEqual({ ok: true, value: { kind: 'full', keyId: ID } });
  });

  it.each([
    ['', 'type at least the first 8 characters of the key ID'],
    ['4290B6C', 'type at least the first 8 characters of the key ID'],
    ['{4290-', expect.stringMatching(/^the dashes in a key ID go after/)],
    ['{', 'type at least the first 8 characters of the key ID'],
    ['4290B6C0-B17A-497A-8552-272CC30E80D4A', 'a key ID has 32 hex digits; got 33'],
    ['4290-B6C0', expect.stringMatching(/^the dashes in a key ID go after/)],
    ['4290B6C0--B17A', expect.stringMatching(/^the dashes in a key ID go after/)],
    ['DESKTOP-01', 'a key ID contains only hex digits (0-9, A-F) and dashes'],
  ])('rejects %j', (input, reason) => {
    expect(parseKeyIdQuery(input)).toEqual({ ok: false, reason });
  });
});

describe('keyIdPrefixBounds', () => {
  it('pads and hyphenates', () => {
    expect(keyIdPrefixBounds('4290b6c0')).toEqual({
      low: '4290b6c0-0000-0000-0000-000000000000',
      high: '4290b6c0-ffff-ffff-ffff-ffffffffffff',
    });
    expect(keyIdPrefixBounds('abc7c7a19bee4f')).toEqual({
      low: 'abc7c7a1-9bee-4f00-0000-000000000000',
      high: 'abc7c7a1-9bee-4fff-ffff-ffffffffffff',
    });
    expect(keyIdPrefixBounds('ABC7C7A1').low).toBe('abc7c7a1-0000-0000-0000-000000000000');
  });
  it('throws on programming errors', () => {
    expect(() => keyIdPrefixBounds('4290-b6c0')).toThrow(TypeError);
    expect(() => keyIdPrefixBounds('x')).toThrow(TypeError);
  });
});

describe('formatKeyIdForDisplay', () => {
  it('shows the manage-bde form', () => {
    expect(formatKeyIdForDisplay(ID)).toBe('{4290B6C0-B17A-497A-8552-272CC30E80D4}');
    expect(formatKeyIdForDisplay('{4290b6c0b17a497a8552272cc30e80d4}')).toBe('{4290B6C0-B17A-497A-8552-272CC30E80D4}');
  });
  it('leaves non-GUID IDs alone', () => {
    expect(formatKeyIdForDisplay(' BitLocker ')).toBe('BitLocker');
  });
});

// ---------------------------------------------------------------------------
// Property tests
// ---------------------------------------------------------------------------

const hexChars = fc.constantFrom(...'0123456789abcdef'.split(''));
const hex32 = fc.array(hexChars, { minLength: 32, maxLength: 32 }).map((a) => a.join(''));
const hyphenated = (h: string): string => `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
const randomCase = (s: string, flips: boolean[]): string =>
  s
    .split('')
    .map((c, i) => (flips[i % flips.length] ? c.toUpperCase() : c))
    .join('');

describe('key ID properties', () => {
  it('random GUIDs in random case / braces / hyphenation round-trip', () => {
    fc.assert(
      fc.property(
        hex32,
        fc.array(fc.boolean(), { minLength: 1, maxLength: 36 }),
        fc.boolean(),
        fc.boolean(),
        fc.constantFrom('', ' ', '\t', '  '),
        (h, flips, braces, hyphens, pad) => {
          const body = randomCase(hyphens ? hyphenated(h) : h, flips);
          const input = `${pad}${braces ? `{${body}}` : body}${pad}`;
          expect(parseKeyId(input)).toEqual({ ok: true, value: hyphenated(h) });
          expect(parseKeyIdQuery(input)).toEqual({
            ok: true,
            value: { kind: 'full', keyId: hyphenated(h) },
          });
          expect(formatKeyIdForDisplay(input)).toBe(`{${hyphenated(h).toUpperCase()}}`);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('prefixes of 8..31 hex digits (typed with or without hyphens/brace) parse as prefix and fall inside their bounds', () => {
    fc.assert(
      fc.property(
        hex32,
        fc.integer({ min: 8, max: 31 }),
        fc.boolean(),
        fc.boolean(),
        fc.array(fc.boolean(), { minLength: 1, maxLength: 31 }),
        (h, len, withHyphens, brace, flips) => {
          // Cut the hyphenated form after `len` hex digits (may end in a hyphen).
          let cut = '';
          let count = 0;
          for (const ch of withHyphens ? hyphenated(h) : h) {
            if (count === len && ch !== '-') break;
            cut += ch;
            if (ch !== '-') count++;
          }
          const input = `${brace ? '{' : ''}${randomCase(cut, flips)}`;
          const r = parseKeyIdQuery(input);
          expect(r).toEqual({ ok: true, value: { kind: 'prefix', prefix: h.slice(0, len) } });
          const { low, high } = keyIdPrefixBounds(h.slice(0, len));
          const full = hyphenated(h);
          expect(low <= full && full <= high).toBe(true);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('bounds exclude IDs with a different prefix', () => {
    fc.assert(
      fc.property(hex32, hex32, fc.integer({ min: 8, max: 31 }), (a, b, len) => {
        const { low, high } = keyIdPrefixBounds(a.slice(0, len));
        const inside = low <= hyphenated(b) && hyphenated(b) <= high;
        expect(inside).toBe(b.startsWith(a.slice(0, len)));
      }),
      { numRuns: 200 },
    );
  });

  it('fewer than 8 hex digits asks for more', () => {
    fc.assert(
      fc.property(fc.array(hexChars, { minLength: 0, maxLength: 7 }), (a) => {
        expect(parseKeyIdQuery(a.join(''))).toEqual({
          ok: false,
          reason: 'type at least the first 8 characters of the key ID',
        });
      }),
      { numRuns: 100 },
    );
  });

  it('random strings never throw', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 60 }), fc.stringMatching(/^[{}0-9a-fA-F -]{0,45}$/)), (s) => {
        const a = parseKeyId(s);
        const b = parseKeyIdQuery(s);
        formatKeyIdForDisplay(s);
        if (a.ok) expect(a.value).toMatch(/^[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}$/);
        if (b.ok && b.value.kind === 'prefix') {
          expect(b.value.prefix).toMatch(/^[0-9a-f]{8,31}$/);
          keyIdPrefixBounds(b.value.prefix);
        }
      }),
      { numRuns: 200 },
    );
  });
});
