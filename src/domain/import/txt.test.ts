import { describe, expect, it } from 'vitest';
import { parseTxt } from './txt.js';

const PW = '496298-461032-321464-595518-463221-173943-033616-139579';
const PW2 = '158422-038236-492536-574783-256300-205084-114356-069773';
const ID = '4290b6c0-b17a-497a-8552-272cc30e80d4';

const WIN8 = `BitLocker Drive Encryption recovery key

To verify that this is the correct recovery key, compare the start of the following identifier with the identifier value displayed on your PC.

Identifier:

\t4290B6C0-B17A-497A-8552-272CC30E80D4

If the above identifier matches the one displayed by your PC, then use the following key to unlock your drive.

Recovery Key:

\t${PW}

If the above identifier doesn't match the one displayed by your PC, then this isn't the right key to unlock your drive.
Try another recovery key, or refer to https://go.microsoft.com/fwlink/?LinkID=260589 for additional assistance.
`;

const WIN7 = `BitLocker Drive Encryption Recovery Key
The recovery key is used to recover the data on a BitLocker protected drive.

To verify that this is the correct recovery key compare the identification with what is presented on the recovery screen.

Recovery key identification: ABC7C7A1-9BEE-4F
Full recovery key identification: ABC7C7A1-9BEE-4F1C-90F7-5AB6D66CD465

BitLocker Recovery Key:
${PW2}
`;

describe('parseTxt', () => {
  it('Windows 8+ wording', () => {
    expect(parseTxt(WIN8)).toEqual({
      records: [{ line: 13, keyId: ID, recoveryPassword: PW }],
      rejected: [],
      rejectedCount: 0,
    });
  });

  it('Windows 7 wording: uses the full ID, not the short form', () => {
    expect(parseTxt(WIN7)).toEqual({
      records: [{ line: 10, keyId: 'abc7c7a1-9bee-4f1c-90f7-5ab6d66cd465', recoveryPassword: PW2 }],
      rejected: [],
      rejectedCount: 0,
    });
  });

  it('does not depend on English labels', () => {
    const french = WIN8.replace('Identifier:', 'Identificateur :').replace('Recovery Key:', 'Clé de récupération :');
    expect(parseTxt(french).records).toEqual([{ line: 13, keyId: ID, recoveryPassword: PW }]);
  });

  it('falls back to the GUID in the file name', () => {
    const text = `Recovery Key:\n\n\t${PW}\n`;
    expect(parseTxt(text, 'C:\\Users\\x\\BitLocker Recovery Key 4290B6C0-B17A-497A-8552-272CC30E80D4.TXT')).toEqual({
      records: [{ line: 3, keyId: ID, recoveryPassword: PW }],
      rejected: [],
      rejectedCount: 0,
    });
    // The text wins over the file name.
    expect(parseTxt(WIN7, 'BitLocker Recovery Key 4290B6C0-B17A-497A-8552-272CC30E80D4.TXT').records[0]?.keyId).toBe('abc7c7a1-9bee-4f1c-90f7-5ab6d66cd465');
  });

  it('keeps keyId null when there is no GUID anywhere', () => {
    expect(parseTxt(`Recovery Key: ${PW}`).records).toEqual([{ line: 1, keyId: null, recoveryPassword: PW }]);
  });

  it('picks up a device / computer name line', () => {
    expect(parseTxt(`Computer name: FAKE-LAPTOP-01\n${WIN8}`).records[0]?.deviceName).toBe('FAKE-LAPTOP-01');
    expect(parseTxt(`Device name:  FAKE-PC \n${WIN8}`).records[0]?.deviceName).toBe('FAKE-PC');
  });

  it('rejects an invalid password with its line and no digits', () => {
    const bad = WIN8.replace(PW, PW.replace('461032', '461033'));
    expect(parseTxt(bad)).toEqual({
      records: [],
      rejected: [{ line: 13, reason: 'group 2 of 8 fails the BitLocker checksum (not divisible by 11)' }],
      rejectedCount: 1,
    });
  });

  it('rejects a file without a password', () => {
    expect(parseTxt('Identifier:\n4290B6C0-B17A-497A-8552-272CC30E80D4\n')).toEqual({
      records: [],
      rejected: [{ line: 1, reason: 'no recovery password found in this file' }],
      rejectedCount: 1,
    });
  });

  it('handles several key files concatenated into one', () => {
    const text = `${WIN8}\ufeff${WIN7}`;
    const win8Lines = WIN8.split('\n').length - 1;
    expect(parseTxt(text).records).toEqual([
      { line: 13, keyId: ID, recoveryPassword: PW },
      { line: win8Lines + 10, keyId: 'abc7c7a1-9bee-4f1c-90f7-5ab6d66cd465', recoveryPassword: PW2 },
    ]);
  });
});
