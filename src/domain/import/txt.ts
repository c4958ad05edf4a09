/**
 * The "BitLocker Recovery Key <ID>.TXT" file Windows saves (bitlocker-domain.md §4.5).
 *
 * Windows 8+ and Windows 7 word the file differently, and both are localized,
 * so we parse by structure, not labels:
 * - key ID: the first FULL GUID in the file (the Windows 7 short form
 *   `ABC7C7A1-9BEE-4F` is not a full GUID, the "Full recovery key
 *   identification" line that follows it is). If the text has none, the GUID
 *   in the file name is used;
 * - password: the first line containing a password-shaped run (48 digits,
 *   give or take typos); an invalid one is rejected with its line number;
 * - device name: an optional `Device name: X` / `Computer name: X` line
 *   (not written by Windows, but added by some backup scripts).
 *
 * Several key files concatenated into one (`copy *.TXT all.txt`) are handled
 * too: each password is paired with the last GUID seen since the previous
 * password.
 */
import { extractRecoveryPassword } from '../recovery-password.js';
import type { Result } from '../result.js';
import { firstGuid, guidFromFileName } from './text-scan.js';
import { LONG_LINE_REASON, MAX_LINE_CHARS, Rejections, type ImportRecord, type ParsedRows } from './types.js';

// Linear on any line: no two neighbouring `\s*` can trade a run of spaces, and the name ends at
// its last non-space character without a lazy `.*?` retried against `\s*$` at every position.
const DEVICE_LINE = /^\s*(?:device|computer|pc|machine|host)(?:\s*name)?\s*[:=]\s*(\S(?:.*\S)?)/i;

function deviceNameOf(line: string): string | null {
  const m = DEVICE_LINE.exec(line);
  const name = m?.[1]?.replace(/\p{Cc}/gu, ' ').trim();
  return name === undefined || name === '' ? null : name;
}

export function parseTxt(text: string, fileName?: string): ParsedRows {
  const lines = text.split('\n');
  const passwordLines: { idx: number; parsed: Result<string> }[] = [];
  const longLines: number[] = [];
  for (let i = 0; i < lines.length; i++) {
    if ((lines[i] ?? '').length > MAX_LINE_CHARS) {
      longLines.push(i);
      lines[i] = '';
      continue;
    }
    const parsed = extractRecoveryPassword(lines[i] ?? '');
    if (parsed !== null) passwordLines.push({ idx: i, parsed });
  }

  const records: ImportRecord[] = [];
  const rejected = new Rejections();
  let nextLong = 0;
  /** Long lines are reported in line order among the other rejections. */
  const longLinesBefore = (idx: number): void => {
    for (; nextLong < longLines.length && (longLines[nextLong] ?? 0) < idx; nextLong++) rejected.add((longLines[nextLong] ?? 0) + 1, LONG_LINE_REASON);
  };
  if (passwordLines.length === 0) {
    if (longLines.length === 0) rejected.add(1, 'no recovery password found in this file');
    longLinesBefore(lines.length);
    return rejected.rows(records);
  }

  const fileGuid = guidFromFileName(fileName);
  const single = passwordLines.length === 1;

  let blockStart = 0;
  for (const { idx, parsed } of passwordLines) {
    // Key ID and device name for this password: in a single-key file, the
    // first ones anywhere in the file; in a concatenated file, the last ones
    // between the previous password and this one.
    let keyId: string | null = null;
    let deviceName: string | null = null;
    const from = single ? 0 : blockStart;
    const to = single ? lines.length : idx;
    for (let i = from; i < to; i++) {
      const line = lines[i] ?? '';
      const g = firstGuid(line);
      if (g !== null && (single ? keyId === null : true)) keyId = g;
      const d = deviceNameOf(line);
      if (d !== null && (single ? deviceName === null : true)) deviceName = d;
    }
    if (keyId === null && (single || records.length + rejected.count - nextLong === 0)) keyId = fileGuid;
    blockStart = idx + 1;

    longLinesBefore(idx);
    const lineNo = idx + 1;
    if (!parsed.ok) {
      rejected.add(lineNo, parsed.reason);
      continue;
    }
    const record: ImportRecord = { line: lineNo, keyId, recoveryPassword: parsed.value };
    if (deviceName !== null) record.deviceName = deviceName;
    records.push(record);
  }
  longLinesBefore(lines.length);
  return rejected.rows(records);
}
