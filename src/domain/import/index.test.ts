import { describe, expect, it } from 'vitest';
import { ImportFormatError, detectFormat, parseImport } from './index.js';

const PW = '496298-461032-321464-595518-463221-173943-033616-139579';
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

describe('detectFormat', () => {
  it.each([
    ['[{"key": 1}]', undefined, 'json'],
    ['  \n{"value": []}', undefined, 'json'],
    [`Volume C: [OS]\n    Numerical Password:\n      ID: {802C7373-D80B-4B64-911B-5976E4BE9544}\n`, undefined, 'manage-bde'],
    [`Device,Key ID,Recovery Password\nFAKE,,${PW}\n`, undefined, 'csv'],
    [`Hostname;BitLocker Key\n`, undefined, 'csv'],
    [`sep=,\nHostname,BitLocker Key\n`, undefined, 'csv'],
    [`Identifier:\n\t4290B6C0-B17A-497A-8552-272CC30E80D4\nRecovery Key:\n\t${PW}\n`, undefined, 'txt'],
    [`Recovery Key:\n\n\t${PW}\n`, 'BitLocker Recovery Key 4290B6C0-B17A-497A-8552-272CC30E80D4.TXT', 'txt'],
    [`Recovery Key:\n\n\t${PW}\n`, 'keys.txt', 'txt'],
    ['RecoveryPassword\n', 'export.csv', 'csv'],
    ['Device,KeyId\n', 'export.csv', 'csv'],
    ['hello', 'data.json', 'json'],
    [`Recovery Key:\n\n\t${PW}\n`, undefined, null],
    ['Device,KeyId\nFAKE,1\n', undefined, null],
    ['just some text', 'notes.txt', null],
    ['', undefined, null],
  ])('%j (%s) → %s', (text, fileName, expected) => {
    expect(detectFormat(text, fileName)).toBe(expected);
  });
});

describe('parseImport', () => {
  it('detects and parses', () => {
    const r = parseImport({ bytes: enc(`Device,Recovery Password\nFAKE-1,${PW}\n`) });
    expect(r.format).toBe('csv');
    expect(r.records).toHaveLength(1);
  });

  it('honours an explicit format', () => {
    const r = parseImport({ bytes: enc(`FAKE-1 ${PW}\n`), format: 'txt' });
    expect(r).toEqual({
      format: 'txt',
      records: [{ line: 1, keyId: null, recoveryPassword: PW }],
      rejected: [],
      rejectedCount: 0,
    });
  });

  it('unknown format → ImportFormatError naming the file (base name only)', () => {
    expect(() => parseImport({ bytes: enc('hello world'), fileName: '/tmp/uploads/mystery.dat' })).toThrow(
      new ImportFormatError('could not tell the format of mystery.dat; pass --format txt|manage-bde|csv|json'),
    );
    expect(() => parseImport({ bytes: enc('hello world') })).toThrow(/of the file;/);
  });

  it('does not echo a file name that contains a recovery password', () => {
    expect(() => parseImport({ bytes: enc('hello'), fileName: `${PW}.dat` })).toThrow(
      'could not tell the format of the file; pass --format txt|manage-bde|csv|json',
    );
  });

  // Speed is measured in bench/import.ts, not asserted here; this checks a large file parses whole.
  it('parses a 100,000-row CSV completely, with the right line numbers', () => {
    const lines = ['Device,KeyId,RecoveryPassword,Created'];
    for (let i = 0; i < 100_000; i++) {
      const id = `4290B6C0-B17A-497A-8552-${String(i).padStart(12, '0')}`;
      lines.push(`FAKE-${i},{${id}},${PW},2024-01-01T00:00:00Z`);
    }
    const bytes = enc(`${lines.join('\r\n')}\r\n`);
    const r = parseImport({ bytes, fileName: 'big.csv' });
    expect(r.records).toHaveLength(100_000);
    expect(r.records[99_999]?.line).toBe(100_001);
    expect(r.rejected).toEqual([]);
  }, 60_000);

  it('empty file → ImportFormatError', () => {
    expect(() => parseImport({ bytes: new Uint8Array([0xff, 0xfe]), fileName: 'a.txt' })).toThrow('a.txt is empty');
  });

  it('invalid explicit format → ImportFormatError', () => {
    expect(() => parseImport({ bytes: enc('x'), format: 'xml' as unknown as 'csv' })).toThrow(ImportFormatError);
  });

  it('ImportFormatError is an Error with its own name', () => {
    const e = new ImportFormatError('x');
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe('ImportFormatError');
  });
});
