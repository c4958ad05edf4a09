import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseImport } from './index.js';
import { MAX_LINE_CHARS, MAX_REPORTED_REJECTIONS, type ImportFormat } from './types.js';

/**
 * Every importer is linear in its input: adversarial files (long runs of spaces, many `X: [`,
 * deep nesting, a sea of quotes, hundreds of thousands of bad rows) are parsed at 100 KB and at
 * 1 MB, and the 1 MB file must take about ten times as long, not a hundred (a quadratic pattern
 * took minutes at 1 MB). The bounds are generous on purpose: the machine is shared. Times are the
 * process's CPU time, not the wall clock: on a 2-core machine running the browser and database
 * suites beside this one, waiting for a core can stretch the wall clock many times over, while the
 * CPU a parse takes stays what the algorithm makes it.
 */

const PW = '111111-111111-111111-111111-111111-111111-111111-111111';
const GUID = '4290B6C0-B17A-497A-8552-272CC30E80D4';
const KB = 1024;
const enc = new TextEncoder();

/** Repeats `unit` to at least `size` characters, between a prefix and a suffix. */
const fill = (prefix: string, unit: string, size: number, suffix = '') => prefix + unit.repeat(Math.ceil(size / Math.max(1, unit.length))) + suffix;

type Case = { name: string; format: ImportFormat; make: (size: number) => string };

const CASES: Case[] = [
  {
    name: 'txt: a device line with a run of spaces (the review file)',
    format: 'txt',
    make: (n) => fill('BitLocker\nDevice name: a', ' ', n, `b\nRecovery Key:\n${PW}\n`),
  },
  { name: 'txt: "Device" then spaces and no colon', format: 'txt', make: (n) => fill('Device', ' ', n, `x\n${PW}\n`) },
  { name: 'txt: many short device lines of spaces', format: 'txt', make: (n) => fill('', `Device${' '.repeat(2000)}name${' '.repeat(2000)}x\n`, n, `${PW}\n`) },
  { name: 'txt: digit runs that never make a password', format: 'txt', make: (n) => fill(`${GUID}\n`, `${'1 '.repeat(20000)}x\n`, n) },
  { name: 'txt: many passwords (concatenated key files)', format: 'txt', make: (n) => fill('', `Identifier: ${GUID}\nDevice name: PC\n${PW}\n`, n) },
  { name: 'manage-bde: many "X: [" on one line', format: 'manage-bde', make: (n) => fill(`ID: {${GUID}}\n`, 'X: [', n, '\n') },
  { name: 'manage-bde: many "X: [" lines under the limit', format: 'manage-bde', make: (n) => fill(`ID: {${GUID}}\n`, `${'X: ['.repeat(15000)}]  x\n`, n) },
  { name: 'manage-bde: volume GUID paths', format: 'manage-bde', make: (n) => fill('', `\\\\?\\Volume{${GUID}}\\ [`.repeat(1000) + '\n', n) },
  { name: 'csv: 100,000s of quotes', format: 'csv', make: (n) => fill('RecoveryPassword,Device\n', '"', n) },
  { name: 'csv: unbalanced quotes on every line', format: 'csv', make: (n) => fill('RecoveryPassword,Device\n', 'a"b,"\n', n) },
  { name: 'csv: bad rows', format: 'csv', make: (n) => fill('RecoveryPassword,Device\n', 'd,1\n', n) },
  { name: 'csv: escaped quotes in one quoted cell per line', format: 'csv', make: (n) => fill('RecoveryPassword,Device\n', `"${'""'.repeat(2000)}",x\n`, n) },
  { name: 'json: deep array nesting', format: 'json', make: (n) => '['.repeat(n / 2) + ']'.repeat(n / 2) },
  { name: 'json: deep object nesting', format: 'json', make: (n) => '{"a":'.repeat(n / 6) + '1' + '}'.repeat(n / 6) },
  { name: 'json: entries without a password', format: 'json', make: (n) => `[${fill('', '{"a":1},', n)}{"a":1}]` },
];

function timeParse(text: string, format: ImportFormat): { ms: number; rejectedCount: number; listed: number } {
  const bytes = enc.encode(text);
  const t = process.cpuUsage();
  let rejectedCount = 0;
  let listed = 0;
  try {
    const r = parseImport({ bytes, fileName: 'adversarial', format });
    rejectedCount = r.rejectedCount;
    listed = r.rejected.length;
  } catch {
    // A whole-file refusal is an answer too; only its time matters here.
  }
  const used = process.cpuUsage(t);
  return { ms: (used.user + used.system) / 1000, rejectedCount, listed };
}

describe('importers are linear in their input', () => {
  for (const c of CASES) {
    it(c.name, () => {
      timeParse(c.make(10 * KB), c.format); // warm-up
      const small = Math.min(...[0, 1, 2].map(() => timeParse(c.make(100 * KB), c.format).ms));
      const big = timeParse(c.make(1024 * KB), c.format);
      // Linear: ~10x; quadratic: ~100x (and minutes). 4 s covers a slow machine shared with other work.
      expect(big.ms).toBeLessThan(4000);
      expect(big.ms).toBeLessThan(30 * small + 100);
      expect(big.listed).toBeLessThanOrEqual(MAX_REPORTED_REJECTIONS);
    });
  }

  it('random mixes of the dangerous pieces parse 1 MB in well under the bound', () => {
    const piece = fc.constantFrom(
      ' ',
      '\t',
      'X: [',
      ']',
      '"',
      '""',
      ',',
      ';',
      '1',
      '111111-',
      'Device name:',
      'ID: {',
      `{${GUID}}`,
      '[',
      '{"a":',
      '\n',
      PW,
      'Ѕ',
      '\u202e',
    );
    fc.assert(
      fc.property(fc.array(piece, { minLength: 1, maxLength: 12 }), fc.constantFrom<ImportFormat>('txt', 'manage-bde', 'csv', 'json'), (pieces, format) => {
        const unit = pieces.join('');
        const text = format === 'csv' ? fill('RecoveryPassword,Device\n', unit, 1024 * KB) : fill('', unit, 1024 * KB);
        expect(timeParse(text, format).ms).toBeLessThan(4000);
      }),
      { numRuns: 12 },
    );
  });

  it('a line over 64 KB is one rejected row, the rest of the file is read', () => {
    const text = `Computer,RecoveryPassword\nPC-1,${PW}\n${'x'.repeat(MAX_LINE_CHARS + 1)}\n`;
    const r = parseImport({ bytes: enc.encode(text), format: 'csv' });
    expect(r.rejected).toContainEqual({ line: 3, reason: 'this line is longer than 64 KB and was not read' });
    expect(r.records.map((x) => x.line)).toContain(2);
  });

  it('250,000 bad rows: every one counted, the first 100 listed in line order', () => {
    const r = parseImport({ bytes: enc.encode('RecoveryPassword,Device\n' + 'd,1\n'.repeat(250_000)), format: 'csv' });
    expect(r.rejectedCount).toBe(250_000);
    expect(r.rejected).toHaveLength(MAX_REPORTED_REJECTIONS);
    expect(r.rejected.map((x) => x.line)).toEqual(Array.from({ length: 100 }, (_, i) => i + 2));
  });
});
