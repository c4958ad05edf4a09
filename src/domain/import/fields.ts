/**
 * Field mapping shared by the CSV and JSON importers: which column / property
 * names mean what, and how one row of loosely-typed values becomes an
 * ImportRecord (or a rejection reason).
 *
 * Exports from RMM tools, Intune, spreadsheets and scripts all name their
 * columns differently ("Recovery Key", "BitLockerRecoveryPassword", "Key",
 * ...). Names are compared after lower-casing and removing everything but
 * letters and digits, then looked up in the synonym lists below. Within a
 * field the synonyms are in priority order, so a file with both
 * "RecoveryPassword" and "Password" columns uses "RecoveryPassword".
 */
import { parseKeyId } from '../key-id.js';
import { SHAPED_MIN_DIGITS, extractRecoveryPassword, parseRecoveryPassword } from '../recovery-password.js';
import { fail, ok, type Result } from '../result.js';
import { normalizeMountPoint, parseVolumeType } from '../volume.js';
import type { ImportRecord } from './types.js';

export type FieldName =
  'recoveryPassword' | 'keyId' | 'deviceName' | 'mountPoint' | 'volumeType' | 'createdAt' | 'serial' | 'domain' | 'user' | 'entraDeviceId';

export const FIELD_SYNONYMS: Readonly<Record<FieldName, readonly string[]>> = {
  recoveryPassword: [
    'recoverypassword',
    'recoverykey',
    'bitlockerkey',
    'bitlockerrecoverykey',
    'bitlockerrecoverypassword',
    'bitlockerpassword',
    'numericalpassword',
    'password',
    'key',
  ],
  keyId: ['keyid', 'recoverykeyid', 'passwordid', 'protectorid', 'keyprotectorid', 'bitlockerkeyid', 'recoverypasswordid', 'id'],
  deviceName: ['device', 'devicename', 'computer', 'computername', 'hostname', 'host', 'assetname', 'asset', 'machine', 'machinename', 'endpoint'],
  mountPoint: ['volume', 'drive', 'mountpoint', 'driveletter', 'volumeletter'],
  volumeType: ['volumetype', 'drivetype'],
  createdAt: ['date', 'created', 'createdat', 'createddate', 'createddatetime', 'backupdate', 'datecreated', 'timestamp'],
  serial: ['serial', 'serialnumber'],
  domain: ['domain'],
  user: ['user', 'username', 'upn', 'owner'],
  entraDeviceId: ['entradeviceid', 'azureaddeviceid', 'deviceid'],
};

/**
 * Weak device-name synonyms: used only when no column above matched, because
 * "name" alone could be anything (a user, a site, a label).
 */
const DEVICE_NAME_FALLBACK = ['name', 'displayname'];

const FIELD_ORDER = Object.keys(FIELD_SYNONYMS) as FieldName[];

/** Lower-case and strip everything but ASCII letters and digits ("Key ID" → "keyid"). */
export function normalizeFieldName(name: string): string {
  // Memoized: JSON imports ask for the same few property names once per
  // element, 100k times in a large file.
  const cached = nameCache.get(name);
  if (cached !== undefined) return cached;
  const normalized = name
    .normalize('NFKD')
    .toLowerCase()
    .replace(/[^a-z0-9]/g, '');
  if (nameCache.size < 1000) nameCache.set(name, normalized);
  return normalized;
}
const nameCache = new Map<string, string>();

/**
 * Decide which column (index into `names`) holds each field. Each column is
 * used for at most one field.
 */
export function mapFields(names: readonly string[]): Partial<Record<FieldName, number>> {
  const normalized = names.map(normalizeFieldName);
  const taken = new Set<number>();
  const out: Partial<Record<FieldName, number>> = {};
  const pick = (field: FieldName, synonyms: readonly string[]): void => {
    for (const syn of synonyms) {
      const idx = normalized.findIndex((n, i) => n === syn && !taken.has(i));
      if (idx !== -1) {
        out[field] = idx;
        taken.add(idx);
        return;
      }
    }
  };
  for (const field of FIELD_ORDER) pick(field, FIELD_SYNONYMS[field]);
  if (out.deviceName === undefined) pick('deviceName', DEVICE_NAME_FALLBACK);
  return out;
}

/** The accepted password column names, for error messages. */
export function passwordFieldNamesForMessage(): string {
  return 'RecoveryPassword, RecoveryKey, BitLockerKey, BitLockerRecoveryKey, BitLockerRecoveryPassword, BitLockerPassword, NumericalPassword, Password or Key';
}

// ---------------------------------------------------------------------------
// Timestamps
// ---------------------------------------------------------------------------

const DATE_REASON = 'date: not a date this importer understands; use ISO 8601 like 2024-01-31T12:00:00Z';

function daysInMonth(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}

/**
 * Parse a timestamp into ISO-8601 UTC.
 *
 * Accepted:
 * - ISO 8601 / RFC 3339 (`2020-06-15T13:45:30.0000000Z`, `2024-01-31 12:00`,
 *   `2011-01-05T17:30:35-08:00`, `2024-01-31`). A value WITHOUT a time zone is
 *   taken as UTC: we must not depend on the server's local time zone, and an
 *   import must give the same result wherever it runs.
 * - PowerShell 5.1 `ConvertTo-Json` dates: `/Date(1700000000000)/`.
 * - RFC 2822 / HTTP dates with an explicit zone (`Mon, 15 Jun 2020 13:45:30 GMT`).
 * Locale formats like `1/2/2024` are refused: day and month order is ambiguous.
 */
export function parseTimestamp(value: string): Result<string> {
  const t = value.trim();

  const ps = /^\/?Date\((-?\d{1,15})(?:[+-]\d{4})?\)\/?$/.exec(t);
  if (ps?.[1] !== undefined) {
    const ms = Number(ps[1]);
    const d = new Date(ms);
    return Number.isNaN(d.getTime()) ? fail(DATE_REASON) : ok(d.toISOString());
  }

  const iso = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?\s*(Z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)?$/i.exec(t);
  if (iso) {
    const [, ys, mos, ds, hs, mis, ss, frac, zone] = iso;
    const year = Number(ys);
    const month = Number(mos);
    const day = Number(ds);
    const hour = Number(hs ?? 0);
    const minute = Number(mis ?? 0);
    const second = Number(ss ?? 0);
    const millis = Number((frac ?? '').slice(0, 3).padEnd(3, '0'));
    if (year < 1000 || month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month) || hour > 23 || minute > 59 || second > 59) {
      return fail(DATE_REASON);
    }
    let offsetMinutes = 0;
    if (zone !== undefined && /^[+-]/.test(zone)) {
      const digits = zone.slice(1).replace(':', '');
      const oh = Number(digits.slice(0, 2));
      const om = Number(digits.slice(2) || '0');
      if (oh > 23 || om > 59) return fail(DATE_REASON);
      offsetMinutes = (zone.startsWith('-') ? -1 : 1) * (oh * 60 + om);
    }
    const ms = Date.UTC(year, month - 1, day, hour, minute, second, millis) - offsetMinutes * 60_000;
    const d = new Date(ms);
    return Number.isNaN(d.getTime()) ? fail(DATE_REASON) : ok(d.toISOString());
  }

  // RFC 2822 / HTTP-date: only with an explicit zone, so Date.parse never
  // falls back to local time.
  if (/^(?:[A-Za-z]{3},\s*)?\d{1,2}\s+[A-Za-z]{3}\s+\d{4}\s+\d{2}:\d{2}(?::\d{2})?\s+(?:GMT|UTC|Z|[+-]\d{4})$/.test(t)) {
    const ms = Date.parse(t);
    if (!Number.isNaN(ms)) return ok(new Date(ms).toISOString());
  }
  return fail(DATE_REASON);
}

// ---------------------------------------------------------------------------
// Row → record
// ---------------------------------------------------------------------------

/** Reads a field's raw value from a CSV row or JSON object. */
export type FieldGetter = (field: FieldName) => unknown;

const NO_PASSWORD_REASON = 'no recovery password in this row';
const NOT_A_PASSWORD = fail<string>('the recovery password field does not contain a 48-digit recovery password');

function digitCount(v: string): number {
  let n = 0;
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c >= 0x30 && c <= 0x39) n++;
  }
  return n;
}

/** Text value of a cell/property, or undefined when absent or empty. */
function text(v: unknown): string | undefined {
  if (typeof v === 'string') {
    // Control characters (NUL, ESC, ...) in names would corrupt terminal and
    // log output; they never belong in these fields.
    const t = (/\p{Cc}/u.test(v) ? v.replace(/\p{Cc}/gu, ' ') : v).trim();
    return t === '' ? undefined : t;
  }
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  if (typeof v === 'bigint') return String(v);
  return undefined;
}

function isEmpty(v: unknown): boolean {
  return v === undefined || v === null || (typeof v === 'string' && v.trim() === '');
}

/**
 * Extract and validate the recovery password from a cell that may contain
 * extra text around it (`C: 496298-…`, `Key: …`).
 */
export function passwordFromCell(v: unknown): Result<string> {
  if (isEmpty(v)) return fail(NO_PASSWORD_REASON);
  if (typeof v !== 'string') {
    // A 48-digit number has already lost digits to floating point.
    return fail('the recovery password must be text (in quotes), not a number or object');
  }
  // Too few digits to hold a password, whatever else the cell says: the common bad row, answered
  // without running the password patterns.
  const digits = digitCount(v);
  if (digits < SHAPED_MIN_DIGITS) return NOT_A_PASSWORD;
  const extracted = extractRecoveryPassword(v);
  if (extracted !== null) return extracted;
  // Many digits but broken up by other characters: let the parser explain.
  const parsed = parseRecoveryPassword(v);
  if (!parsed.ok) return parsed;
  return NOT_A_PASSWORD;
}

/**
 * Build a record from one row. Returns a rejection reason when the row cannot
 * be used: bad/missing password, a key ID or Entra device ID that is not a
 * GUID, or a date that cannot be read (a wrong date would mislead an audit,
 * so it is not silently dropped).
 */
export function buildRecord(line: number, get: FieldGetter): Result<ImportRecord> {
  const password = passwordFromCell(get('recoveryPassword'));
  if (!password.ok) return password;

  let keyId: string | null = null;
  const rawKeyId = get('keyId');
  if (!isEmpty(rawKeyId)) {
    if (typeof rawKeyId !== 'string') return fail('key ID: must be text');
    const parsed = parseKeyId(rawKeyId);
    if (!parsed.ok) return fail(`key ID: ${parsed.reason}`);
    keyId = parsed.value;
  }

  const record: ImportRecord = { line, keyId, recoveryPassword: password.value };

  const deviceName = text(get('deviceName'));
  if (deviceName !== undefined) record.deviceName = deviceName;
  const domain = text(get('domain'));
  if (domain !== undefined) record.domain = domain;
  const serial = text(get('serial'));
  if (serial !== undefined) record.serial = serial;
  const user = text(get('user'));
  if (user !== undefined) record.user = user;

  const rawEntra = get('entraDeviceId');
  if (!isEmpty(rawEntra)) {
    const parsed = typeof rawEntra === 'string' ? parseKeyId(rawEntra) : undefined;
    if (parsed === undefined || !parsed.ok) return fail('Entra device ID: not a GUID');
    record.entraDeviceId = parsed.value;
  }

  const mount = text(get('mountPoint'));
  if (mount !== undefined) {
    const mp = normalizeMountPoint(mount);
    if (mp !== null) record.mountPoint = mp;
  }

  const rawType = get('volumeType');
  if (!isEmpty(rawType)) record.volumeType = parseVolumeType(rawType);

  const rawDate = get('createdAt');
  if (!isEmpty(rawDate)) {
    if (typeof rawDate !== 'string') return fail(DATE_REASON);
    const parsed = parseTimestamp(rawDate);
    if (!parsed.ok) return parsed;
    record.createdAt = parsed.value;
  }

  return ok(record);
}
