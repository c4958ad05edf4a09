import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  MAX_GROUP_VALUE,
  extractRecoveryPassword,
  findRecoveryPasswordCandidates,
  isRecoveryPasswordShaped,
  parseRecoveryPassword,
  recoveryPasswordToKey,
} from './recovery-password.js';

/** Valid vectors from bitlocker-domain.md §1.2 (plus the §4.2 manage-bde example). */
const VALID = [
  '471207-278498-422125-177177-561902-537405-468006-693451',
  '496298-461032-321464-595518-463221-173943-033616-139579',
  '158422-038236-492536-574783-256300-205084-114356-069773',
  '461109-608201-413820-485342-181588-463056-430617-501391',
  '299981-297792-361471-261789-114642-633501-520685-433719',
  '336710-269280-572352-287584-017226-603999-086152-481932',
];

/** Published examples that FAIL the checksum (§1.2 "Invalid"). */
const INVALID_PUBLISHED = [
  '123456-231453-873456-213546-654678-765689-123456-324565', // Graph docs example
];

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** All 6-digit runs in s (used to check that reasons never echo input digits). */
function sixDigitRuns(s: string): string[] {
  const out: string[] = [];
  const digitsOnly = s.match(/[0-9]{6,}/g) ?? [];
  for (const run of digitsOnly) {
    for (let i = 0; i + 6 <= run.length; i++) out.push(run.slice(i, i + 6));
  }
  return out;
}

/** The only 6-digit number our reasons may contain: the public group maximum. */
function leaksDigits(reason: string, input: string): boolean {
  const cleaned = reason.replaceAll(String(MAX_GROUP_VALUE), '');
  return sixDigitRuns(input).some((run) => cleaned.includes(run));
}

describe('parseRecoveryPassword: valid vectors', () => {
  it.each(VALID)('accepts %s', (pw) => {
    expect(parseRecoveryPassword(pw)).toEqual({ ok: true, value: pw });
  });

  it('derives the libbde test key', () => {
    expect(hex(recoveryPasswordToKey(VALID[0] as string))).toBe('55a7e662e795eb3e8ac7d7be32a641f6');
  });

  it.each(INVALID_PUBLISHED)('rejects the published example %s (fails the checksum)', (pw) => {
    const r = parseRecoveryPassword(pw);
    expect(r).toEqual({
      ok: false,
      reason: 'group 1 of 8 fails the BitLocker checksum (not divisible by 11)',
    });
  });

  it('rejects the DSInternals and barcode README examples as incomplete/invalid', () => {
    // Only their first groups are published in the reference; 366561 and
    // 002130 are not multiples of 11.
    expect(366561 % 11).not.toBe(0);
    expect(2130 % 11).not.toBe(0);
    const r = parseRecoveryPassword(`366561-${VALID[0]?.slice(7)}`);
    expect(r.ok).toBe(false);
    const r2 = parseRecoveryPassword(`002130-${VALID[0]?.slice(7)}`);
    expect(r2).toEqual({
      ok: false,
      reason: 'group 1 of 8 fails the BitLocker checksum (not divisible by 11)',
    });
  });
});

describe('parseRecoveryPassword: separators and spacing', () => {
  const pw = '496298-461032-321464-595518-463221-173943-033616-139579';
  const groups = pw.split('-');
  it.each([
    ['dashes', pw],
    ['spaces', groups.join(' ')],
    ['no separator', groups.join('')],
    ['tabs and multiple spaces', groups.join(' \t  ')],
    ['surrounding whitespace', `  \t${pw}\n `],
    ['spaces around dashes', groups.join(' - ')],
    ['mixed', `${groups.slice(0, 3).join('-')} ${groups.slice(3, 5).join('')}\t${groups.slice(5).join('-')}`],
    ['unicode en dash (pasted from Word)', groups.join('\u2013')],
    ['non-breaking spaces', groups.join('\u00a0')],
  ])('accepts %s', (_name, input) => {
    expect(parseRecoveryPassword(input)).toEqual({ ok: true, value: pw });
  });

  it('keeps leading zeros', () => {
    const r = parseRecoveryPassword(VALID[2] as string);
    expect(r.ok && r.value.startsWith('158422-038236')).toBe(true);
  });
});

describe('parseRecoveryPassword: rejections', () => {
  const pw = '496298-461032-321464-595518-463221-173943-033616-139579';
  it.each([
    ['', 'the recovery password is empty'],
    ['   ', 'the recovery password is empty'],
    [pw.slice(0, -1), 'a recovery password has 48 digits in 8 groups of 6; got 47 digits'],
    [`${pw}0`, 'a recovery password has 48 digits in 8 groups of 6; got 49 digits'],
    ['1', 'a recovery password has 48 digits in 8 groups of 6; got 1 digit'],
    [pw.replace('4', 'A'), 'contains characters other than digits, spaces and dashes'],
    [pw.replace('-', '_'), 'contains characters other than digits, spaces and dashes'],
    [pw.replace('0', 'O'), 'contains characters other than digits, spaces and dashes'],
    [`-${pw}`, 'a recovery password cannot start or end with a dash'],
    [`${pw}-`, 'a recovery password cannot start or end with a dash'],
    [pw.replace('-', '--'), 'groups must be separated by one dash or by spaces, not several dashes'],
    ['4962-98461032-321464-595518-463221-173943-033616-139579', 'the digits must be in 8 groups of 6; a dash or space splits a group'],
    [pw.replace('461032', '461033'), 'group 2 of 8 fails the BitLocker checksum (not divisible by 11)'],
    [pw.replace('139579', '720896'), 'group 8 of 8 is out of range (above 720885)'],
    [pw.replace('463221', '999999'), 'group 5 of 8 is out of range (above 720885)'],
    [pw.replace('321464', '800000'), 'group 3 of 8 is out of range (above 720885)'],
  ])('rejects %j', (input, reason) => {
    expect(parseRecoveryPassword(input)).toEqual({ ok: false, reason });
  });

  it('accepts the maximum group value 720885 and group 000000', () => {
    const r = parseRecoveryPassword(pw.replace('139579', '720885').replace('033616', '000000'));
    expect(r.ok).toBe(true);
  });

  it('does not accept non-ASCII digits', () => {
    const fullWidth = pw.replace(/[0-9]/g, (d) => String.fromCharCode(0xff10 + Number(d)));
    expect(parseRecoveryPassword(fullWidth).ok).toBe(false);
  });

  it('handles non-string input from JavaScript callers', () => {
    expect(parseRecoveryPassword(42 as unknown as string).ok).toBe(false);
  });
});

describe('recoveryPasswordToKey', () => {
  it('accepts unnormalized input too', () => {
    expect(hex(recoveryPasswordToKey((VALID[0] as string).replaceAll('-', ' ')))).toBe('55a7e662e795eb3e8ac7d7be32a641f6');
  });
  it('throws on invalid input without echoing digits', () => {
    const bad = '123456-231453-873456-213546-654678-765689-123456-324565';
    expect(() => recoveryPasswordToKey(bad)).toThrow(TypeError);
    try {
      recoveryPasswordToKey(bad);
    } catch (e) {
      expect(leaksDigits((e as Error).message, bad)).toBe(false);
    }
  });
});

describe('isRecoveryPasswordShaped / findRecoveryPasswordCandidates', () => {
  it.each([
    [VALID[0], true],
    [`  ${VALID[0]}  `, true],
    ['496298-461032-321464-595518-463221-173943-033616', true], // 42 digits
    ['496298-461032-321464-595518-463221-173943', false], // 36 digits
    ['496298-461032-321464-595518-463221-173943-033616-13957X', false],
    ['7, 11', false],
    ['9de688607336294a52b445d30d1eb92f0bec1e78', false],
    ['', false],
  ])('%j → %s', (s, expected) => {
    expect(isRecoveryPasswordShaped(s as string)).toBe(expected);
  });

  it('finds the password inside surrounding text', () => {
    expect(findRecoveryPasswordCandidates(`C: ${VALID[1]}`)).toEqual([VALID[1]]);
    expect(findRecoveryPasswordCandidates(`Recovery Key:\t${VALID[1]} (OS)`)).toEqual([VALID[1]]);
    expect(findRecoveryPasswordCandidates(`C: ${VALID[1]}; D: ${VALID[2]}`)).toEqual([VALID[1], VALID[2]]);
    expect(findRecoveryPasswordCandidates('Size: 1000 GB, 2024-01-31')).toEqual([]);
  });

  it('does not join runs across lines', () => {
    const [a, b] = [VALID[0] as string, VALID[1] as string];
    expect(findRecoveryPasswordCandidates(`${a.slice(0, 27)}\n${b.slice(0, 27)}`)).toEqual([]);
  });
});

describe('extractRecoveryPassword', () => {
  const pw = VALID[1] as string;
  it.each([
    [pw, pw],
    [`C: ${pw}`, pw],
    [`PC-01 ${pw}`, pw],
    [`FAKE-PC 7 ${pw.replaceAll('-', ' ')}`, pw],
    [`${pw} 2024-01-31`, pw],
    [`Recovery Key:\t${pw.replaceAll('-', '')}`, pw],
  ])('finds the password in %j', (text, expected) => {
    expect(extractRecoveryPassword(text)).toEqual({ ok: true, value: expected });
  });

  it.each([
    ['no digits here', null],
    ['Size: 1000 GB', null],
    [`${pw}-123456`, { ok: false, reason: 'a recovery password has 48 digits in 8 groups of 6; got 54 digits' }],
    [`${pw} 123456`, { ok: false, reason: 'a recovery password has 48 digits in 8 groups of 6; got 54 digits' }],
    [`PC-01 ${pw.replace('461032', '461033')}`, { ok: false, reason: 'group 2 of 8 fails the BitLocker checksum (not divisible by 11)' }],
    [pw.replace('0', 'O'), { ok: false, reason: 'contains characters other than digits, spaces and dashes' }],
    [`${pw}, ${VALID[2]}`, { ok: false, reason: 'more than one recovery password in one line or field' }],
  ])('%j → %j', (text, expected) => {
    expect(extractRecoveryPassword(text)).toEqual(expected);
  });
});

// ---------------------------------------------------------------------------
// Property tests
// ---------------------------------------------------------------------------

const uint16s = fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 8, maxLength: 8 });
const separator = fc.constantFrom('-', ' ', '', '\t', '  ', ' - ', '-\u00a0', '\u2013');

function render(values: number[], seps: string[]): string {
  const groups = values.map((v) => String(v * 11).padStart(6, '0'));
  return groups.map((g, i) => (i === 0 ? g : `${seps[i - 1] ?? '-'}${g}`)).join('');
}

describe('properties', () => {
  it('random valid passwords round-trip to the normalized form and key bytes', () => {
    fc.assert(
      fc.property(uint16s, fc.array(separator, { minLength: 7, maxLength: 7 }), fc.constantFrom('', ' ', '\t', '\n'), (values, seps, pad) => {
        const input = `${pad}${render(values, seps)}${pad}`;
        const expected = values.map((v) => String(v * 11).padStart(6, '0')).join('-');
        const r = parseRecoveryPassword(input);
        expect(r).toEqual({ ok: true, value: expected });
        const key = recoveryPasswordToKey(expected);
        const expectedKey = new Uint8Array(16);
        values.forEach((v, i) => {
          expectedKey[2 * i] = v & 0xff;
          expectedKey[2 * i + 1] = v >> 8;
        });
        expect(Array.from(key)).toEqual(Array.from(expectedKey));
      }),
      { numRuns: 200 },
    );
  });

  it('a digit changed so a group is no longer divisible by 11 names that group', () => {
    fc.assert(
      fc.property(uint16s, fc.integer({ min: 0, max: 7 }), fc.integer({ min: 0, max: 5 }), fc.integer({ min: 1, max: 9 }), (values, group, pos, delta) => {
        const groups = values.map((v) => String(v * 11).padStart(6, '0'));
        const g = groups[group] as string;
        const digit = (Number(g[pos]) + delta) % 10;
        const mutated = g.slice(0, pos) + String(digit) + g.slice(pos + 1);
        // Changing one digit by d changes the value by d·10^k with
        // 0 < |d| < 10, never a multiple of 11, so the group is invalid.
        groups[group] = mutated;
        const input = groups.join('-');
        const r = parseRecoveryPassword(input);
        expect(r.ok).toBe(false);
        if (!r.ok) {
          expect(r.reason).toMatch(new RegExp(`^group ${group + 1} of 8 `));
          expect(leaksDigits(r.reason, input)).toBe(false);
        }
      }),
      { numRuns: 200 },
    );
  });

  it('a dropped digit is reported as a digit count', () => {
    fc.assert(
      fc.property(uint16s, fc.integer({ min: 0, max: 47 }), (values, drop) => {
        const digits = values.map((v) => String(v * 11).padStart(6, '0')).join('');
        const input = digits.slice(0, drop) + digits.slice(drop + 1);
        const r = parseRecoveryPassword(input);
        expect(r).toEqual({
          ok: false,
          reason: 'a recovery password has 48 digits in 8 groups of 6; got 47 digits',
        });
      }),
      { numRuns: 200 },
    );
  });

  it('an inserted letter is rejected without echoing digits', () => {
    fc.assert(
      fc.property(uint16s, fc.integer({ min: 0, max: 55 }), fc.constantFrom(...'abcdefghijklmnopqrstuvwxyzOIl'.split('')), (values, at, letter) => {
        const pw = render(values, Array(7).fill('-') as string[]);
        const input = pw.slice(0, at) + letter + pw.slice(at);
        const r = parseRecoveryPassword(input);
        expect(r).toEqual({
          ok: false,
          reason: 'contains characters other than digits, spaces and dashes',
        });
      }),
      { numRuns: 200 },
    );
  });

  it('arbitrary strings never throw and never echo a 6-digit run of the input', () => {
    const digitHeavy = fc.stringMatching(/^[0-9 \-a-z]{0,70}$/);
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 80 }), digitHeavy, fc.string({ unit: 'binary', maxLength: 80 })), (s) => {
        const r = parseRecoveryPassword(s);
        if (!r.ok) expect(leaksDigits(r.reason, s)).toBe(false);
        expect(typeof isRecoveryPasswordShaped(s)).toBe('boolean');
        findRecoveryPasswordCandidates(s);
      }),
      { numRuns: 200 },
    );
  });
});
