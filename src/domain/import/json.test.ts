import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseJson } from './json.js';
import { scanJson } from './json-scan.js';
import { ImportFormatError } from './types.js';

const PW = '496298-461032-321464-595518-463221-173943-033616-139579';
const PW2 = '158422-038236-492536-574783-256300-205084-114356-069773';

describe('scanJson', () => {
  it('records element start lines', () => {
    const r = scanJson('[\n  {"a": 1},\n\n  {\n "b": [1,\n2]}\n]');
    expect(r.ok).toBe(true);
    if (r.ok) {
      expect(r.root.line).toBe(1);
      expect(r.root.items?.map((p) => p.line)).toEqual([2, 4]);
      expect(r.root.items?.[1]?.props?.get('b')?.items?.map((p) => p.line)).toEqual([5, 6]);
    }
  });

  it.each([
    ['', 1, 1],
    ['[1,]', 1, 4],
    ['{"a" 1}', 1, 6],
    ['{\n  "a": 1,\n  "b": tru\n}', 3, 8],
    ['[\n"abc\n"]', 2, 5],
    ['[1] x', 1, 5],
    ['[01]', 1, 3],
    ['{"a":"\\x"}', 1, 7],
    ['[[[', 1, 4],
    ['{"a":1,}', 1, 8],
    ['[1 2]', 1, 4],
  ])('locates the error in %j at %i:%i', (text, line, column) => {
    const r = scanJson(text);
    expect(r.ok).toBe(false);
    if (!r.ok) expect([r.line, r.column]).toEqual([line, column]);
  });

  it('agrees with JSON.parse on validity', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.json(),
          fc.string({ maxLength: 30 }),
          fc.json().map((j) => j.slice(0, Math.max(0, j.length - 1))),
          fc.stringMatching(/^[[\]{}",:0-9a-z .eE+\\-]{0,30}$/),
        ),
        (text) => {
          let valid = true;
          try {
            JSON.parse(text);
          } catch {
            valid = false;
          }
          expect(scanJson(text).ok).toBe(valid);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('survives very deep nesting without recursion', () => {
    const deep = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;
    expect(scanJson(deep).ok).toBe(true);
  });
});

describe('parseJson', () => {
  it('array of objects with CSV-style field names in any case', () => {
    const text = `[\n  {"computerName": "FAKE-1", "RECOVERYKEYID": "{4290B6C0-B17A-497A-8552-272CC30E80D4}", "Recovery Password": "${PW}"},\n  {"Device": "FAKE-2", "key": "${PW2}", "drive_letter": "e", "driveType": "usb"}\n]`;
    expect(parseJson(text)).toEqual({
      records: [
        {
          line: 2,
          keyId: '4290b6c0-b17a-497a-8552-272cc30e80d4',
          recoveryPassword: PW,
          deviceName: 'FAKE-1',
        },
        {
          line: 3,
          keyId: null,
          recoveryPassword: PW2,
          deviceName: 'FAKE-2',
          mountPoint: 'E:',
          volumeType: 'removable',
        },
      ],
      rejected: [],
      rejectedCount: 0,
    });
  });

  it('single object', () => {
    expect(parseJson(`{"RecoveryPassword": "${PW}"}`).records).toEqual([{ line: 1, keyId: null, recoveryPassword: PW }]);
  });

  it('Graph bitlockerRecoveryKey list response', () => {
    const text = JSON.stringify(
      {
        '@odata.nextLink': 'https://graph.microsoft.com/v1.0/x?$skiptoken=FAKE',
        value: [
          {
            id: 'b465e4e8-e4e8-b465-e8e4-65b4e8e465b4',
            createdDateTime: '2020-06-15T13:45:30.0000000Z',
            volumeType: '1',
            deviceId: '1ab40ab2-32a8-4b00-b6b5-ba724e407de9',
            key: PW,
          },
          { id: 'b465e4e8-e4e8-b465-e8e4-65b4e8e465b5', volumeType: 3, deviceId: '1ab40ab2-32a8-4b00-b6b5-ba724e407de9', key: PW2 },
        ],
      },
      null,
      2,
    );
    expect(parseJson(text)).toEqual({
      records: [
        {
          line: 4,
          keyId: 'b465e4e8-e4e8-b465-e8e4-65b4e8e465b4',
          recoveryPassword: PW,
          entraDeviceId: '1ab40ab2-32a8-4b00-b6b5-ba724e407de9',
          volumeType: 'os',
          createdAt: '2020-06-15T13:45:30.000Z',
        },
        {
          line: 11,
          keyId: 'b465e4e8-e4e8-b465-e8e4-65b4e8e465b5',
          recoveryPassword: PW2,
          entraDeviceId: '1ab40ab2-32a8-4b00-b6b5-ba724e407de9',
          volumeType: 'removable',
        },
      ],
      rejected: [],
      rejectedCount: 0,
    });
  });

  it('Graph list without $select=key explains the missing key', () => {
    const text = '{"value":[{"id":"b465e4e8-e4e8-b465-e8e4-65b4e8e465b4","createdDateTime":"2020-06-15T13:45:30Z","volumeType":"1"}]}';
    expect(parseJson(text).rejected).toEqual([
      {
        line: 1,
        reason: 'no recovery password in this entry (Graph lists leave out the key; fetch each key with $select=key)',
      },
    ]);
  });

  it('PowerShell Get-BitLockerVolume objects: one record per recovery-password protector', () => {
    const text = `[{"ComputerName":"FAKE-PS","MountPoint":"C:","VolumeType":"OperatingSystem","KeyProtector":[
 {"KeyProtectorId":"{C32931A6-2CE5-43F4-89EC-3FCEA4FD3554}","KeyProtectorType":1,"RecoveryPassword":""},
 {"KeyProtectorId":"{802C7373-D80B-4B64-911B-5976E4BE9544}","KeyProtectorType":3,"RecoveryPassword":"${PW}"}]},
 {"ComputerName":"FAKE-PS","MountPoint":"D:","VolumeType":1,"KeyProtector":[{"KeyProtectorId":"{896E40E3-9C76-4A4F-B84E-458F540D09C6}","RecoveryPassword":"${PW2}"}]},
 {"ComputerName":"FAKE-PS","MountPoint":"E:","KeyProtector":[]}]`;
    expect(parseJson(text)).toEqual({
      records: [
        {
          line: 3,
          keyId: '802c7373-d80b-4b64-911b-5976e4be9544',
          recoveryPassword: PW,
          deviceName: 'FAKE-PS',
          mountPoint: 'C:',
          volumeType: 'os',
        },
        {
          line: 4,
          keyId: '896e40e3-9c76-4a4f-b84e-458f540d09c6',
          recoveryPassword: PW2,
          deviceName: 'FAKE-PS',
          mountPoint: 'D:',
          // PowerShell's numeric enum does not match Graph's: not guessed.
          volumeType: 'unknown',
        },
      ],
      rejected: [{ line: 5, reason: 'this volume has no recovery password protector' }],
      rejectedCount: 1,
    });
  });

  it('bad elements become rejections at their start line', () => {
    const text = `[\n  42,\n  {"RecoveryPassword": "${PW.replace('033616', '033617')}"},\n  {"RecoveryPassword": 4.96e47},\n  {"name": "x"},\n  {"RecoveryPassword": "${PW}", "created": "later"},\n  {"RecoveryPassword": "${PW}"}\n]`;
    const r = parseJson(text);
    expect(r.records.map((x) => x.line)).toEqual([7]);
    expect(r.rejected).toEqual([
      { line: 2, reason: 'this entry is not an object' },
      { line: 3, reason: 'group 7 of 8 fails the BitLocker checksum (not divisible by 11)' },
      { line: 4, reason: 'the recovery password must be text (in quotes), not a number or object' },
      { line: 5, reason: 'no recovery password in this entry' },
      { line: 6, reason: expect.stringMatching(/^date: /) },
    ]);
  });

  it('invalid JSON → ImportFormatError with line/column and no content', () => {
    const text = `[\n  {"RecoveryPassword": "${PW}",}\n]`;
    expect(() => parseJson(text)).toThrow(ImportFormatError);
    expect(() => parseJson(text)).toThrow('the file is not valid JSON: a property name in double quotes was expected at line 2, column 82');
  });

  it('a scalar root → ImportFormatError', () => {
    expect(() => parseJson('"just a string"')).toThrow(ImportFormatError);
    expect(() => parseJson('null')).toThrow(ImportFormatError);
  });
});
