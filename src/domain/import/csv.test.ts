import { describe, expect, it } from 'vitest';
import { detectDelimiter, parseCsv } from './csv.js';
import { ImportFormatError } from './types.js';

const PW = '496298-461032-321464-595518-463221-173943-033616-139579';
const PW2 = '158422-038236-492536-574783-256300-205084-114356-069773';

describe('detectDelimiter', () => {
  it.each([
    ['Device,KeyId,RecoveryPassword', ','],
    ['Device;KeyId;RecoveryPassword', ';'],
    ['Device\tKeyId\tRecoveryPassword', '\t'],
    ['"Name, full";Key', ';'],
    ['RecoveryPassword', ','],
  ])('%j → %j', (line, d) => {
    expect(detectDelimiter(line)).toBe(d);
  });
});

describe('parseCsv', () => {
  it('maps synonyms and reports real file lines', () => {
    const text = `Hostname,Recovery Key ID,BitLocker Recovery Key,Drive,Created\n\nFAKE-PC-1,{4290B6C0-B17A-497A-8552-272CC30E80D4},${PW},C:,2024-01-31T12:00:00Z\n"FAKE\nPC-2",,${PW2},d,\n`;
    expect(parseCsv(text)).toEqual({
      records: [
        {
          line: 3,
          keyId: '4290b6c0-b17a-497a-8552-272cc30e80d4',
          recoveryPassword: PW,
          deviceName: 'FAKE-PC-1',
          mountPoint: 'C:',
          createdAt: '2024-01-31T12:00:00.000Z',
        },
        { line: 4, keyId: null, recoveryPassword: PW2, deviceName: 'FAKE PC-2', mountPoint: 'D:' },
      ],
      rejected: [],
      rejectedCount: 0,
    });
  });

  it('semicolon RMM export without key IDs, password inside extra text', () => {
    const text = `Customer;Asset Name;BitLocker Key\nFake A;FAKE-1;C: ${PW}\nFake A;FAKE-2;"OS drive: ${PW2.replaceAll('-', ' ')}"\n`;
    const r = parseCsv(text);
    expect(r.rejected).toEqual([]);
    expect(r.records.map((x) => [x.line, x.deviceName, x.keyId, x.recoveryPassword])).toEqual([
      [2, 'FAKE-1', null, PW],
      [3, 'FAKE-2', null, PW2],
    ]);
  });

  it('tab-delimited with a leading blank line and columns in any order', () => {
    const text = `\n\nRecoveryPassword\tComputerName\n${PW}\tFAKE-T\n`;
    expect(parseCsv(text).records).toEqual([{ line: 4, keyId: null, recoveryPassword: PW, deviceName: 'FAKE-T' }]);
  });

  it("honours Excel's sep= line", () => {
    const text = `sep=;\nDevice;Recovery Password\nFAKE-1;${PW}\n`;
    expect(parseCsv(text).records).toEqual([{ line: 3, keyId: null, recoveryPassword: PW, deviceName: 'FAKE-1' }]);
  });

  it('bad rows become rejections with their lines; good rows still import', () => {
    const text = [
      'Device,KeyId,Password,Date',
      `FAKE-1,4290B6C0-B17A-497A-8552-272CC30E80D4,${PW},2024-01-01`,
      `FAKE-2,4290B6C0-B17A-497A-8552-272CC30E80D4,${PW.replace('595518', '595519')},2024-01-01`,
      `FAKE-3,BitLocker,${PW},2024-01-01`,
      `FAKE-4,,${PW},01/02/2024`,
      `FAKE-5,,,2024-01-01`,
      ',,,',
      `FAKE-6,,${PW2}`,
      `FAKE-7,"unterminated,${PW}`,
    ].join('\n');
    const r = parseCsv(text);
    expect(r.records.map((x) => x.line)).toEqual([2, 8]);
    expect(r.rejected).toEqual([
      { line: 3, reason: 'group 4 of 8 fails the BitLocker checksum (not divisible by 11)' },
      { line: 4, reason: 'key ID: a key ID contains only hex digits (0-9, A-F) and dashes' },
      { line: 5, reason: expect.stringMatching(/^date: /) },
      { line: 6, reason: 'no recovery password in this row' },
      { line: 9, reason: 'this line has an unbalanced quote and could not be read' },
    ]);
  });

  it('an unbalanced quote early on does not swallow the rest of the file', () => {
    const text = `Device,Password\n"FAKE-1,${PW}\nFAKE-2,${PW2}\n`;
    const r = parseCsv(text);
    expect(r.records.map((x) => [x.line, x.recoveryPassword])).toEqual([[3, PW2]]);
    expect(r.rejected).toEqual([{ line: 2, reason: 'this line has an unbalanced quote and could not be read' }]);
  });

  it('no password column → ImportFormatError listing accepted names', () => {
    expect(() => parseCsv('Device,KeyId\nFAKE,x\n')).toThrow(ImportFormatError);
    expect(() => parseCsv('Device,KeyId\nFAKE,x\n')).toThrow(/RecoveryPassword, RecoveryKey/);
  });

  it('a headerless file is explained without echoing the password', () => {
    try {
      parseCsv(`FAKE-1,${PW}\n`);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(ImportFormatError);
      expect((e as Error).message).toMatch(/header row/);
      expect((e as Error).message).not.toMatch(/[0-9]{6}/);
    }
  });

  it('empty file → ImportFormatError', () => {
    expect(() => parseCsv('\n \n')).toThrow(ImportFormatError);
  });
});
