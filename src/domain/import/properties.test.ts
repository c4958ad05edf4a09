/**
 * Property tests for the importers: generated files with N random valid keys
 * come back as exactly those N records at the right lines; corrupted rows come
 * back as one rejection each at the right line; arbitrary input only ever
 * throws ImportFormatError; no reason ever echoes digits from the input.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAX_GROUP_VALUE } from '../recovery-password.js';
import { ImportFormatError, parseImport, type ImportFormat, type ImportRecord, type ParsedImport } from './index.js';

// ---------------------------------------------------------------------------
// Generators and helpers
// ---------------------------------------------------------------------------

const RUNS = { numRuns: 100 };

type Encoding = 'utf8' | 'utf8bom' | 'utf16le' | 'utf16be' | 'utf16le-nobom';

function encode(text: string, enc: Encoding): Uint8Array {
  const le = Buffer.from(text, 'utf16le');
  switch (enc) {
    case 'utf8':
      return new Uint8Array(Buffer.from(text, 'utf8'));
    case 'utf8bom':
      return new Uint8Array(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(text, 'utf8')]));
    case 'utf16le':
      return new Uint8Array(Buffer.concat([Buffer.from([0xff, 0xfe]), le]));
    case 'utf16le-nobom':
      return new Uint8Array(le);
    case 'utf16be': {
      const be = Buffer.from(le);
      be.swap16();
      return new Uint8Array(Buffer.concat([Buffer.from([0xfe, 0xff]), be]));
    }
  }
}

const encodingArb = fc.constantFrom<Encoding>('utf8', 'utf8bom', 'utf16le', 'utf16be', 'utf16le-nobom');
const eolArb = fc.constantFrom('\n', '\r\n');

/** A valid password: its canonical form and the 8 group strings. */
const passwordArb = fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 8, maxLength: 8 }).map((vals) => {
  const groups = vals.map((v) => String(v * 11).padStart(6, '0'));
  return { canonical: groups.join('-'), groups };
});

/** How a password is written: one separator per gap. */
const separatorsArb = (choices: string[]) => fc.array(fc.constantFrom(...choices), { minLength: 7, maxLength: 7 });

function renderPassword(groups: string[], seps: string[]): string {
  return groups.map((g, i) => (i === 0 ? g : `${seps[i - 1] ?? '-'}${g}`)).join('');
}

/** A corruption that must turn a valid password into a rejection. */
type Corruption =
  | { kind: 'digit'; group: number; pos: number; delta: number }
  | { kind: 'drop'; group: number; pos: number }
  | { kind: 'letter'; group: number; pos: number; letter: string };

const corruptionArb: fc.Arbitrary<Corruption> = fc.oneof(
  fc.record({
    kind: fc.constant('digit' as const),
    group: fc.integer({ min: 0, max: 7 }),
    pos: fc.integer({ min: 0, max: 5 }),
    delta: fc.integer({ min: 1, max: 9 }),
  }),
  fc.record({
    kind: fc.constant('drop' as const),
    group: fc.integer({ min: 0, max: 7 }),
    pos: fc.integer({ min: 0, max: 5 }),
  }),
  fc.record({
    kind: fc.constant('letter' as const),
    group: fc.integer({ min: 0, max: 7 }),
    // strictly inside a group, so the letter sits between two digits
    pos: fc.integer({ min: 1, max: 5 }),
    letter: fc.constantFrom('O', 'l', 'I', 'x', 'B'),
  }),
);

function corruptGroups(groups: string[], c: Corruption): string[] {
  const out = [...groups];
  const g = out[c.group] ?? '';
  if (c.kind === 'digit') {
    const d = (Number(g[c.pos]) + c.delta) % 10;
    out[c.group] = g.slice(0, c.pos) + String(d) + g.slice(c.pos + 1);
  } else if (c.kind === 'drop') {
    out[c.group] = g.slice(0, c.pos) + g.slice(c.pos + 1);
  } else {
    out[c.group] = g.slice(0, c.pos) + c.letter + g.slice(c.pos);
  }
  return out;
}

const hexChar = fc.constantFrom(...'0123456789abcdef'.split(''));
const guidArb = fc
  .array(hexChar, { minLength: 32, maxLength: 32 })
  .map((a) => a.join(''))
  .map((h) => `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`);

function renderGuid(guid: string, upper: boolean, braces: boolean): string {
  const g = upper ? guid.toUpperCase() : guid;
  return braces ? `{${g}}` : g;
}

const deviceNameArb = fc.stringMatching(/^[A-Z][A-Z-]{0,8}[0-9]{0,3}$/).map((s) => `FAKE-${s}`);

/** All 6-digit runs in s. */
function sixDigitRuns(s: string): Set<string> {
  const out = new Set<string>();
  for (const run of s.match(/[0-9]{6,}/g) ?? []) {
    for (let i = 0; i + 6 <= run.length; i++) out.add(run.slice(i, i + 6));
  }
  return out;
}

/** Reasons and error messages must never contain digits taken from the input. */
function expectNoLeak(messages: string[], input: string): void {
  const runs = sixDigitRuns(input);
  for (const m of messages) {
    const cleaned = m.replaceAll(String(MAX_GROUP_VALUE), '');
    for (const run of runs) expect(cleaned).not.toContain(run);
  }
}

function reasons(r: ParsedImport): string[] {
  return r.rejected.map((x) => x.reason);
}

interface Expected {
  records: { line: number; keyId: string | null; recoveryPassword: string; extra?: Partial<ImportRecord> }[];
  rejectedLines: number[];
}

function check(result: ParsedImport, format: ImportFormat, expected: Expected, text: string): void {
  expect(result.format).toBe(format);
  expect(result.records.map((r) => [r.line, r.keyId, r.recoveryPassword])).toEqual(expected.records.map((r) => [r.line, r.keyId, r.recoveryPassword]));
  expected.records.forEach((r, i) => {
    if (r.extra !== undefined) expect(result.records[i]).toMatchObject(r.extra);
  });
  expect(result.rejected.map((r) => r.line)).toEqual(expected.rejectedLines);
  expectNoLeak(reasons(result), text);
}

// ---------------------------------------------------------------------------
// TXT
// ---------------------------------------------------------------------------

const txtBlockArb = fc.record({
  pw: passwordArb,
  seps: separatorsArb(['-', ' ', '', '  ', '\t', ' - ']),
  guid: guidArb,
  upper: fc.boolean(),
  braces: fc.boolean(),
  template: fc.constantFrom('win8', 'win7', 'localized'),
  corruption: fc.option(corruptionArb, { nil: null }),
});

type TxtBlock = typeof txtBlockArb extends fc.Arbitrary<infer T> ? T : never;

function txtBlockLines(b: TxtBlock): {
  lines: string[];
  pwIndex: number;
} {
  const groups = b.corruption === null ? b.pw.groups : corruptGroups(b.pw.groups, b.corruption);
  const pw = renderPassword(groups, b.seps);
  const id = renderGuid(b.guid, b.upper, b.braces);
  if (b.template === 'win7') {
    const short = b.guid.toUpperCase().slice(0, 16);
    const lines = [
      'BitLocker Drive Encryption Recovery Key',
      'The recovery key is used to recover the data on a BitLocker protected drive.',
      '',
      `Recovery key identification: ${short}`,
      `Full recovery key identification: ${id}`,
      '',
      'BitLocker Recovery Key:',
      pw,
      '',
    ];
    return { lines, pwIndex: 7 };
  }
  const [title, idLabel, keyLabel] =
    b.template === 'win8'
      ? ['BitLocker Drive Encryption recovery key', 'Identifier:', 'Recovery Key:']
      : ['Clé de récupération BitLocker', 'Identificateur :', 'Clé de récupération :'];
  const lines = [
    title,
    '',
    'To verify that this is the correct recovery key, compare the start of the following identifier.',
    '',
    idLabel,
    '',
    `\t${id}`,
    '',
    keyLabel,
    '',
    `\t${pw}`,
    '',
    'Try another recovery key, or refer to https://go.microsoft.com/fwlink/?LinkID=260589 for additional assistance.',
    '',
  ];
  return { lines, pwIndex: 10 };
}

describe('txt importer properties', () => {
  it('N key blocks (any encoding / EOL / spelling) → N records or rejections at the right lines', () => {
    fc.assert(
      fc.property(
        fc.array(txtBlockArb, { minLength: 1, maxLength: 4 }),
        encodingArb,
        eolArb,
        fc.constantFrom<'auto' | 'txt'>('auto', 'txt'),
        (blocks, enc, eol, format) => {
          const all: string[] = [];
          const expected: Expected = { records: [], rejectedLines: [] };
          for (const b of blocks) {
            const { lines, pwIndex } = txtBlockLines(b);
            const line = all.length + pwIndex + 1;
            if (b.corruption === null) {
              expected.records.push({ line, keyId: b.guid, recoveryPassword: b.pw.canonical });
            } else {
              expected.rejectedLines.push(line);
            }
            all.push(...lines);
          }
          const text = all.join(eol);
          const result = parseImport({ bytes: encode(text, enc), format });
          check(result, 'txt', expected, text);
        },
      ),
      RUNS,
    );
  });
});

// ---------------------------------------------------------------------------
// manage-bde
// ---------------------------------------------------------------------------

const protectorArb = fc.oneof(
  fc.record({ type: fc.constant('tpm' as const), id: guidArb }),
  fc.record({
    type: fc.constant('password' as const),
    id: guidArb,
    pw: passwordArb,
    seps: separatorsArb(['-']),
    corruption: fc.option(corruptionArb, { nil: null }),
    backupLine: fc.boolean(),
  }),
  fc.record({ type: fc.constant('external' as const), id: guidArb, file: guidArb }),
  fc.record({
    type: fc.constant('dra' as const),
    id: guidArb,
    // 40 hex digits with at least one letter, as real thumbprints have
    thumb: fc.array(hexChar, { minLength: 39, maxLength: 39 }).map((a) => `${a.join('')}f`),
  }),
);

const volumeArb = fc.record({
  letter: fc.constantFrom(...'CDEFGHXYZ'.split('')),
  label: fc.constantFrom('OS', 'Windows', 'Betriebssystem', 'FAKE-DATA', ''),
  protectors: fc.array(protectorArb, { minLength: 0, maxLength: 4 }),
  german: fc.boolean(),
  banner: fc.boolean(),
  indent: fc.constantFrom('', '  ', '    ', '\t'),
});

describe('manage-bde importer properties', () => {
  it('volumes with random protectors → one record per numerical password, rejections at the right lines', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(volumeArb, { minLength: 1, maxLength: 3, selector: (v) => v.letter }),
        fc.constantFrom<Encoding>('utf8', 'utf16le', 'utf8bom'),
        eolArb,
        (volumes, enc, eol) => {
          const lines: string[] = [];
          const expected: Expected = { records: [], rejectedLines: [] };
          for (const v of volumes) {
            const de = v.german;
            if (v.banner) {
              lines.push(
                de
                  ? 'BitLocker-Laufwerkverschlüsselung: Konfigurationstool, Version 10.0.19045'
                  : 'BitLocker Drive Encryption: Configuration Tool version 10.0.22621',
                'Copyright (C) 2013 Microsoft Corporation. All rights reserved.',
                '',
              );
            }
            lines.push(`Volume ${v.letter}: [${v.label}]`, de ? 'Alle Schlüsselschutzvorrichtungen' : 'All Key Protectors', '');
            const i1 = v.indent;
            const i2 = `${v.indent}  `;
            const i3 = `${v.indent}    `;
            for (const p of v.protectors) {
              if (p.type === 'tpm') {
                lines.push(`${i1}TPM:`, `${i2}ID: {${p.id.toUpperCase()}}`, `${i2}PCR Validation Profile:`, `${i3}7, 11`, '');
              } else if (p.type === 'external') {
                lines.push(
                  de ? `${i1}Externer Schlüssel:` : `${i1}External Key:`,
                  `${i2}ID: {${p.id.toUpperCase()}}`,
                  `${i2}External Key File Name:`,
                  `${i3}${p.file.toUpperCase()}.BEK`,
                  '',
                );
              } else if (p.type === 'dra') {
                lines.push(
                  `${i1}Data Recovery Agent (Certificate Based):`,
                  `${i2}ID: {${p.id.toUpperCase()}}`,
                  `${i2}Certificate Thumbprint:`,
                  `${i3}${p.thumb}`,
                  '',
                );
              } else {
                lines.push(
                  de ? `${i1}Numerisches Kennwort:` : `${i1}Numerical Password:`,
                  `${i2}ID: {${p.id.toUpperCase()}}`,
                  de ? `${i2}Kennwort:` : `${i2}Password:`,
                );
                const groups = p.corruption === null ? p.pw.groups : corruptGroups(p.pw.groups, p.corruption);
                lines.push(`${i3}${renderPassword(groups, p.seps)}`);
                const line = lines.length;
                if (p.corruption === null) {
                  expected.records.push({
                    line,
                    keyId: p.id,
                    recoveryPassword: p.pw.canonical,
                    extra: { mountPoint: `${v.letter}:` },
                  });
                } else {
                  expected.rejectedLines.push(line);
                }
                if (p.backupLine) {
                  lines.push(de ? `${i2}Sicherungstyp: Microsoft-Kontosicherung` : `${i2}Backup type: Microsoft account backup`);
                }
                lines.push('');
              }
            }
          }
          const text = lines.join(eol);
          const hasId = volumes.some((v) => v.protectors.length > 0);
          const result = parseImport({ bytes: encode(text, enc), format: hasId ? 'auto' : 'manage-bde' });
          check(result, 'manage-bde', expected, text);
        },
      ),
      RUNS,
    );
  });
});

// ---------------------------------------------------------------------------
// CSV
// ---------------------------------------------------------------------------

const csvRowArb = fc.record({
  pw: passwordArb,
  seps: separatorsArb(['-', ' ', '', ' - ']),
  prefix: fc.constantFrom('', 'C: ', 'OS drive: '),
  guid: fc.option(guidArb, { nil: null }),
  upper: fc.boolean(),
  braces: fc.boolean(),
  device: fc.option(deviceNameArb, { nil: null }),
  deviceExtra: fc.constantFrom('', ', Inc', '\nsecond line', ' "quoted"', '; x\ty'),
  quote: fc.array(fc.boolean(), { minLength: 3, maxLength: 3 }),
  blankLinesBefore: fc.integer({ min: 0, max: 2 }),
  corruption: fc.option(corruptionArb, { nil: null, freq: 4 }),
});

const headerNames = {
  password: ['RecoveryPassword', 'Recovery Password', 'recovery_key', 'BitLocker Recovery Key', 'BITLOCKERKEY', 'Numerical Password', 'Password', 'Key'],
  keyId: ['KeyId', 'Key ID', 'recovery key id', 'KeyProtectorId', 'PasswordID', 'BitLocker Key ID', 'ID'],
  device: ['Device', 'Device Name', 'ComputerName', 'hostname', 'Asset Name', 'Machine', 'Endpoint'],
};

function csvCell(value: string, quote: boolean, delimiter: string): string {
  // Quoting is forced when the value needs it, otherwise random.
  const needs = /["\n]/.test(value) || value.includes(delimiter);
  return quote || needs ? `"${value.replaceAll('"', '""')}"` : value;
}

describe('csv importer properties', () => {
  it('N random rows (delimiter, header names, column order, quoting, blank lines) → N records / rejections at the right lines', () => {
    fc.assert(
      fc.property(
        fc.array(csvRowArb, { minLength: 0, maxLength: 12 }),
        fc.constantFrom(',', ';', '\t'),
        fc.record({
          password: fc.constantFrom(...headerNames.password),
          keyId: fc.option(fc.constantFrom(...headerNames.keyId), { nil: null }),
          device: fc.option(fc.constantFrom(...headerNames.device), { nil: null }),
        }),
        fc.array(fc.nat(), { minLength: 3, maxLength: 3 }),
        fc.constantFrom<Encoding>('utf8', 'utf8bom', 'utf16le'),
        eolArb,
        (rows, delimiter, header, orderSeed, enc, eol) => {
          type Col = 'password' | 'keyId' | 'device';
          const cols: Col[] = ['password'];
          if (header.keyId !== null) cols.push('keyId');
          if (header.device !== null) cols.push('device');
          // Deterministic shuffle from the seeds.
          cols.sort((a, b) => ((orderSeed[cols.indexOf(a)] ?? 0) % 7) - ((orderSeed[cols.indexOf(b)] ?? 0) % 7));
          const names: Record<Col, string> = {
            password: header.password,
            keyId: header.keyId ?? '',
            device: header.device ?? '',
          };

          const out: string[] = [cols.map((c) => names[c]).join(delimiter)];
          let line = 2; // next physical line number
          const expected: Expected = { records: [], rejectedLines: [] };
          for (const row of rows) {
            for (let b = 0; b < row.blankLinesBefore; b++) {
              out.push('');
              line++;
            }
            const groups = row.corruption === null ? row.pw.groups : corruptGroups(row.pw.groups, row.corruption);
            const pwCell = `${row.prefix}${renderPassword(groups, row.seps)}`;
            const device = row.device === null ? '' : `${row.device}${row.deviceExtra}`;
            const values: Record<Col, string> = {
              password: pwCell,
              keyId: row.guid === null ? '' : renderGuid(row.guid, row.upper, row.braces),
              device,
            };
            const text = cols.map((c, i) => csvCell(values[c], row.quote[i] ?? false, delimiter)).join(delimiter);
            out.push(text);
            const startLine = line;
            line += 1 + (text.match(/\n/g)?.length ?? 0);

            if (row.corruption === null) {
              const extra: Partial<ImportRecord> = {};
              if (header.device !== null && row.device !== null) {
                extra.deviceName = device.replace(/[\n\t]/g, ' ').trim();
              }
              expected.records.push({
                line: startLine,
                keyId: header.keyId !== null ? row.guid : null,
                recoveryPassword: row.pw.canonical,
                extra,
              });
            } else {
              expected.rejectedLines.push(startLine);
            }
          }
          const text = `${out.join('\n')}\n`.replaceAll('\n', eol);
          const result = parseImport({ bytes: encode(text, enc), fileName: 'export.csv' });
          check(result, 'csv', expected, text);
        },
      ),
      RUNS,
    );
  });
});

// ---------------------------------------------------------------------------
// JSON
// ---------------------------------------------------------------------------

const jsonItemArb = fc.record({
  pw: passwordArb,
  seps: separatorsArb(['-', ' ', '']),
  guid: fc.option(guidArb, { nil: null }),
  upper: fc.boolean(),
  braces: fc.boolean(),
  device: fc.option(deviceNameArb, { nil: null }),
  names: fc.record({
    password: fc.constantFrom('RecoveryPassword', 'recoveryPassword', 'key', 'Recovery_Key', 'BitLockerRecoveryPassword'),
    keyId: fc.constantFrom('id', 'KeyId', 'keyProtectorId', 'recoveryKeyId'),
    device: fc.constantFrom('deviceName', 'ComputerName', 'hostname', 'name'),
  }),
  indent: fc.constantFrom(0, 2, 4),
  blankLinesBefore: fc.integer({ min: 0, max: 2 }),
  corruption: fc.option(corruptionArb, { nil: null, freq: 4 }),
});

describe('json importer properties', () => {
  it('N random objects (array, Graph list or single object) → N records / rejections at their start lines', () => {
    fc.assert(
      fc.property(
        fc.array(jsonItemArb, { minLength: 0, maxLength: 10 }),
        fc.constantFrom('array', 'graph', 'single'),
        fc.constantFrom<Encoding>('utf8', 'utf16le', 'utf8bom'),
        eolArb,
        (items, shapeIn, enc, eol) => {
          const shape = shapeIn === 'single' && items.length !== 1 ? 'array' : shapeIn;
          const lines: string[] =
            shape === 'graph'
              ? ['{', '  "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#fake",', '  "value": [']
              : shape === 'array'
                ? ['[']
                : [];
          const expected: Expected = { records: [], rejectedLines: [] };
          items.forEach((item, i) => {
            for (let b = 0; b < item.blankLinesBefore; b++) lines.push('');
            const groups = item.corruption === null ? item.pw.groups : corruptGroups(item.pw.groups, item.corruption);
            const obj: Record<string, unknown> = {};
            if (item.device !== null) obj[item.names.device] = item.device;
            if (item.guid !== null) obj[item.names.keyId] = renderGuid(item.guid, item.upper, item.braces);
            obj[item.names.password] = renderPassword(groups, item.seps);
            const objText = JSON.stringify(obj, null, item.indent);
            const startLine = lines.length + 1;
            const objLines = objText.split('\n');
            if (i < items.length - 1) objLines[objLines.length - 1] += ',';
            lines.push(...objLines);
            if (item.corruption === null) {
              expected.records.push({
                line: startLine,
                keyId: item.guid,
                recoveryPassword: item.pw.canonical,
                ...(item.device !== null ? { extra: { deviceName: item.device } } : {}),
              });
            } else {
              expected.rejectedLines.push(startLine);
            }
          });
          if (shape === 'graph') lines.push('  ],', '  "@odata.nextLink": "https://graph.microsoft.com/v1.0/x?$skiptoken=FAKE"', '}');
          if (shape === 'array') lines.push(']');
          const text = lines.join(eol);
          const result = parseImport({ bytes: encode(text, enc) });
          check(result, 'json', expected, text);
        },
      ),
      RUNS,
    );
  });
});

// ---------------------------------------------------------------------------
// Arbitrary input
// ---------------------------------------------------------------------------

const TOKENS = [
  'ID: {4290B6C0-B17A-497A-8552-272CC30E80D4}',
  '4290B6C0-B17A-497A-8552-272CC30E80D4',
  'Volume C: [OS]',
  '496298-461032-321464-595518-463221-173943-033616-139579',
  '123456-231453-873456-213546-654678-765689-123456-324565',
  '496298 461032 321464 595518 463221 173943 033616',
  '496298',
  '461O32',
  'RecoveryPassword',
  'KeyId',
  'Created',
  '2024-01-31',
  '"key":',
  '"value":',
  '"id":',
  '"',
  ',',
  ';',
  '\t',
  ' ',
  '-',
  ':',
  '[',
  ']',
  '{',
  '}',
  '\n',
  '\r\n',
  '\u0000',
  '\ufeff',
  'ü',
];
const soupArb = fc.array(fc.constantFrom(...TOKENS), { maxLength: 40 }).map((t) => t.join(''));

describe('arbitrary input', () => {
  it('never throws anything but ImportFormatError and never echoes input digits', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 400 }),
          soupArb.map((s) => new Uint8Array(Buffer.from(s, 'utf8'))),
          soupArb.map((s) => encode(s, 'utf16le')),
          fc.string({ unit: 'binary', maxLength: 200 }).map((s) => new Uint8Array(Buffer.from(s, 'utf8'))),
        ),
        fc.constantFrom<ImportFormat | 'auto'>('auto', 'txt', 'manage-bde', 'csv', 'json'),
        fc.option(fc.constantFrom('keys.csv', 'keys.json', 'BitLocker Recovery Key 4290B6C0-B17A-497A-8552-272CC30E80D4.TXT'), { nil: undefined }),
        (bytes, format, fileName) => {
          const text = Buffer.from(bytes).toString('utf8') + Buffer.from(bytes).toString('utf16le');
          try {
            const r = parseImport({ bytes, format, ...(fileName !== undefined ? { fileName } : {}) });
            for (const rec of r.records) {
              expect(rec.recoveryPassword).toMatch(/^[0-9]{6}(-[0-9]{6}){7}$/);
              expect(Number.isInteger(rec.line) && rec.line >= 1).toBe(true);
            }
            for (const rej of r.rejected) expect(Number.isInteger(rej.line) && rej.line >= 1).toBe(true);
            expectNoLeak(reasons(r), text);
          } catch (e) {
            expect(e).toBeInstanceOf(ImportFormatError);
            expectNoLeak([(e as Error).message], text);
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it('truncated or damaged JSON exports fail with ImportFormatError only', () => {
    fc.assert(
      fc.property(fc.array(jsonItemArb, { minLength: 1, maxLength: 4 }), fc.nat(), fc.constantFrom('cut', 'flip'), (items, at, how) => {
        const json = JSON.stringify(
          items.map((i) => ({ RecoveryPassword: renderPassword(i.pw.groups, i.seps), KeyId: i.guid })),
          null,
          2,
        );
        const pos = at % json.length;
        const damaged = how === 'cut' ? json.slice(0, pos) : `${json.slice(0, pos)}}${json.slice(pos + 1)}`;
        try {
          parseImport({ bytes: new TextEncoder().encode(damaged), format: 'json' });
        } catch (e) {
          expect(e).toBeInstanceOf(ImportFormatError);
          expect((e as Error).message).toMatch(/^(the file is not valid JSON|a JSON import must be|the file is empty)|is empty$/);
          expectNoLeak([(e as Error).message], damaged);
        }
      }),
      RUNS,
    );
  });
});
