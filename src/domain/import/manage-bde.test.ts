import { describe, expect, it } from 'vitest';
import { parseManageBde } from './manage-bde.js';

const PW = '336710-269280-572352-287584-017226-603999-086152-481932';
const PW2 = '461109-608201-413820-485342-181588-463056-430617-501391';

const EN = `BitLocker Drive Encryption: Configuration Tool version 10.0.22621
Copyright (C) 2013 Microsoft Corporation. All rights reserved.

Volume C: [OS]
All Key Protectors

    TPM:
      ID: {C32931A6-2CE5-43F4-89EC-3FCEA4FD3554}
      PCR Validation Profile:
        7, 11
        (Uses Secure Boot for integrity validation)

    Numerical Password:
      ID: {802C7373-D80B-4B64-911B-5976E4BE9544}
      Password:
        ${PW}

    Data Recovery Agent (Certificate Based):
      ID: {3F81C18D-A685-4782-8F55-99C6452980E7}
      Certificate Thumbprint:
        9de688607336294a52b445d30d1eb92f0bec1e78
`;

describe('parseManageBde', () => {
  it('English output: only the numerical password becomes a record', () => {
    expect(parseManageBde(EN)).toEqual({
      records: [
        {
          line: 16,
          keyId: '802c7373-d80b-4b64-911b-5976e4be9544',
          recoveryPassword: PW,
          mountPoint: 'C:',
        },
      ],
      rejected: [],
      rejectedCount: 0,
    });
  });

  it('German output (labels translated, "ID" is not)', () => {
    const de = `Volume C: [Betriebssystem]
Alle Schlüsselschutzvorrichtungen

    Numerisches Kennwort:
      ID: {802C7373-D80B-4B64-911B-5976E4BE9544}
      Kennwort:
        ${PW}
      Sicherungstyp: Microsoft-Kontosicherung
`;
    expect(parseManageBde(de).records).toEqual([{ line: 7, keyId: '802c7373-d80b-4b64-911b-5976e4be9544', recoveryPassword: PW, mountPoint: 'C:' }]);
  });

  it('several volumes, each password gets its own mount point', () => {
    const text = `${EN}\nVolume D: [FAKE-DATA]\n[Data Volume]\nAll Key Protectors\n\n    Numerical Password:\n      ID: {896E40E3-9C76-4A4F-B84E-458F540D09C6}\n      Password:\n        ${PW2}\n`;
    const r = parseManageBde(text);
    expect(r.rejected).toEqual([]);
    expect(r.records.map((x) => [x.mountPoint, x.keyId, x.volumeType])).toEqual([
      ['C:', '802c7373-d80b-4b64-911b-5976e4be9544', undefined],
      ['D:', '896e40e3-9c76-4a4f-b84e-458f540d09c6', 'fixed'],
    ]);
  });

  it('volume without a drive letter uses the volume GUID path', () => {
    const text = `Volume \\\\?\\Volume{cb96dd9a-4f54-11e0-8d6c-806e6f6e6963}\\ [Recovery]\n    Numerical Password:\n      ID: {896E40E3-9C76-4A4F-B84E-458F540D09C6}\n      Password:\n        ${PW2}\n`;
    expect(parseManageBde(text).records[0]?.mountPoint).toBe('\\\\?\\Volume{cb96dd9a-4f54-11e0-8d6c-806e6f6e6963}\\');
  });

  it('an invalid password is rejected at its line; the rest still imports', () => {
    const bad = PW.replace('269280', '269281');
    const text = EN.replace(PW, bad) + `\nVolume D: [X]\n  ID: {896E40E3-9C76-4A4F-B84E-458F540D09C6}\n  Password:\n    ${PW2}\n`;
    const r = parseManageBde(text);
    expect(r.rejected).toEqual([{ line: 16, reason: 'group 2 of 8 fails the BitLocker checksum (not divisible by 11)' }]);
    expect(r.records).toHaveLength(1);
    expect(r.records[0]?.mountPoint).toBe('D:');
  });

  it('a password with no ID line above it is rejected', () => {
    expect(parseManageBde(`Volume C: [OS]\n  Password:\n    ${PW}\n`).rejected).toEqual([
      { line: 3, reason: 'recovery password without an "ID: {…}" line above it' },
    ]);
  });

  it('a volume header resets the current ID', () => {
    const text = `Volume C: [OS]\n  ID: {802C7373-D80B-4B64-911B-5976E4BE9544}\nVolume D: [X]\n    ${PW}\n`;
    expect(parseManageBde(text).rejected).toHaveLength(1);
  });

  it('a second password under one ID is rejected', () => {
    const text = `  ID: {802C7373-D80B-4B64-911B-5976E4BE9544}\n    ${PW}\n    ${PW2}\n`;
    const r = parseManageBde(text);
    expect(r.records).toHaveLength(1);
    expect(r.rejected).toEqual([{ line: 3, reason: 'a second recovery password under the same ID' }]);
  });
});
