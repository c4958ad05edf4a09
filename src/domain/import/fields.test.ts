import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { buildRecord, mapFields, normalizeFieldName, parseTimestamp, passwordFromCell } from './fields.js';

const PW = '496298-461032-321464-595518-463221-173943-033616-139579';

describe('normalizeFieldName / mapFields', () => {
  it('normalizes names', () => {
    expect(normalizeFieldName(' Recovery Password ')).toBe('recoverypassword');
    expect(normalizeFieldName('BitLocker_Recovery-Key')).toBe('bitlockerrecoverykey');
    expect(normalizeFieldName('Key ID')).toBe('keyid');
  });

  it('maps the Intune recovery-key view columns', () => {
    expect(mapFields(['BitLocker Key ID', 'Recovery Key', 'Drive Type'])).toEqual({
      keyId: 0,
      recoveryPassword: 1,
      volumeType: 2,
    });
  });

  it('prefers stronger synonyms', () => {
    expect(mapFields(['Password', 'RecoveryPassword']).recoveryPassword).toBe(1);
    expect(mapFields(['ID', 'Key ID']).keyId).toBe(1);
  });

  it('uses "name" for the device only when nothing better exists', () => {
    expect(mapFields(['Name', 'Key']).deviceName).toBe(0);
    expect(mapFields(['Name', 'Hostname', 'Key']).deviceName).toBe(1);
  });

  it('maps every documented synonym', () => {
    const m = mapFields([
      'Computer Name',
      'Recovery Key ID',
      'Numerical Password',
      'Drive Letter',
      'Volume Type',
      'Backup Date',
      'Serial Number',
      'Domain',
      'UPN',
      'Azure AD Device ID',
    ]);
    expect(m).toEqual({
      deviceName: 0,
      keyId: 1,
      recoveryPassword: 2,
      mountPoint: 3,
      volumeType: 4,
      createdAt: 5,
      serial: 6,
      domain: 7,
      user: 8,
      entraDeviceId: 9,
    });
  });
});

describe('parseTimestamp', () => {
  it.each([
    ['2020-06-15T13:45:30.0000000Z', '2020-06-15T13:45:30.000Z'],
    ['2022-07-08T09:10:11.1234567Z', '2022-07-08T09:10:11.123Z'],
    ['2024-01-31T12:00:00Z', '2024-01-31T12:00:00.000Z'],
    ['2024-01-31 12:00', '2024-01-31T12:00:00.000Z'],
    ['2024-01-31', '2024-01-31T00:00:00.000Z'],
    ['2011-01-05T17:30:35-08:00', '2011-01-06T01:30:35.000Z'],
    ['2024-03-03T08:00:00+0100', '2024-03-03T07:00:00.000Z'],
    ['2024-03-03T08:00:00+01', '2024-03-03T07:00:00.000Z'],
    ['2024-02-29T00:00:00z', '2024-02-29T00:00:00.000Z'],
    ['/Date(1700000000000)/', '2023-11-14T22:13:20.000Z'],
    ['\\/Date(1700000000000+0100)\\/'.replaceAll('\\', ''), '2023-11-14T22:13:20.000Z'],
    ['Mon, 15 Jun 2020 13:45:30 GMT', '2020-06-15T13:45:30.000Z'],
  ])('%j → %s', (input, expected) => {
    expect(parseTimestamp(input)).toEqual({ ok: true, value: expected });
  });

  it.each([
    '31/12/2024',
    '1/2/2024 10:00:00 AM',
    '2023-02-29',
    '2024-13-01',
    '2024-01-01T24:00:00Z',
    '2024-01-01T10:00:00+25:00',
    'yesterday',
    '',
    '0999-01-01',
    'Mon, 15 Jun 2020 13:45:30', // no zone: would depend on the server's time zone
  ])('rejects %j', (input) => {
    const r = parseTimestamp(input);
    expect(r.ok).toBe(false);
  });

  it('never throws and always returns toISOString form', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ maxLength: 40 }),
          fc.date({ noInvalidDate: true, min: new Date('1000-01-01'), max: new Date('9999-12-31') }).map((d) => d.toISOString()),
        ),
        (s) => {
          const r = parseTimestamp(s);
          if (r.ok) expect(new Date(r.value).toISOString()).toBe(r.value);
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('passwordFromCell', () => {
  it.each([
    [PW, PW],
    [`C: ${PW}`, PW],
    [`"${PW}"`, PW],
    [PW.replaceAll('-', ''), PW],
    [`Recovery key (C:): ${PW.replaceAll('-', ' ')} - rotated`, PW],
  ])('extracts from %j', (cell, expected) => {
    expect(passwordFromCell(cell)).toEqual({ ok: true, value: expected });
  });

  it.each([
    ['', 'no recovery password in this row'],
    [undefined, 'no recovery password in this row'],
    ['n/a', 'the recovery password field does not contain a 48-digit recovery password'],
    [`${PW} ${PW}`, 'a recovery password has 48 digits in 8 groups of 6; got 96 digits'],
    [`${PW}; ${PW}`, 'more than one recovery password in one line or field'],
    [4.96298e47, 'the recovery password must be text (in quotes), not a number or object'],
    [PW.replace('0', 'O'), 'contains characters other than digits, spaces and dashes'],
  ])('rejects %j', (cell, reason) => {
    expect(passwordFromCell(cell)).toEqual({ ok: false, reason });
  });
});

describe('buildRecord', () => {
  const row = (o: Record<string, unknown>) => (f: string) => o[f];
  it('builds a full record', () => {
    const r = buildRecord(
      7,
      row({
        recoveryPassword: PW,
        keyId: '{4290B6C0-B17A-497A-8552-272CC30E80D4}',
        deviceName: ' FAKE-PC\u0007 ',
        domain: 'corp.example',
        serial: 12345,
        user: 'u@example.invalid',
        entraDeviceId: '1AB40AB2-32A8-4B00-B6B5-BA724E407DE9',
        mountPoint: 'c:\\',
        volumeType: '1',
        createdAt: '2024-01-31T12:00:00Z',
      }),
    );
    expect(r).toEqual({
      ok: true,
      value: {
        line: 7,
        keyId: '4290b6c0-b17a-497a-8552-272cc30e80d4',
        recoveryPassword: PW,
        deviceName: 'FAKE-PC',
        domain: 'corp.example',
        serial: '12345',
        user: 'u@example.invalid',
        entraDeviceId: '1ab40ab2-32a8-4b00-b6b5-ba724e407de9',
        mountPoint: 'C:',
        volumeType: 'os',
        createdAt: '2024-01-31T12:00:00.000Z',
      },
    });
  });

  it('omits empty optional fields and keeps keyId null', () => {
    expect(buildRecord(1, row({ recoveryPassword: PW, keyId: ' ', deviceName: '' }))).toEqual({
      ok: true,
      value: { line: 1, keyId: null, recoveryPassword: PW },
    });
  });

  it.each([
    [{ keyId: 'BitLocker' }, /^key ID: /],
    [{ keyId: 42 }, /^key ID: /],
    [{ entraDeviceId: 'FAKE' }, /^Entra device ID: /],
    [{ createdAt: 'soon' }, /^date: /],
    [{ createdAt: 1700000000000 }, /^date: /],
  ])('rejects %j', (extra, reason) => {
    const r = buildRecord(1, row({ recoveryPassword: PW, ...extra }));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toMatch(reason);
  });
});
