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
import type { ImportRecord, ImportRejection, ParsedRows } from './types.js';

const DEVICE_LINE = /^\s*(?:device|computer|pc|machine|host)\s*(?:name)?\s*[:=]\s*(\S.*?)\s*$/i;

function deviceNameOf(line: string): string | null {
  const m = DEVICE_LINE.exec(line);
  const name = m?.[1]?.replace(/\p{Cc}/gu, ' ').trim();
  return name === undefined || name === '' ? null : name;
}

export function parseTxt(text: string, fileName?: string): ParsedRows {
  const lines = text.split('\n');
  const passwordLines: { idx: number; parsed: Result<string> }[] = [];
  for (let i = 0; i < lines.length; i++) {
    const parsed = extractRecoveryPassword(lines[i] ?? '');
    if (parsed !== null) passwordLines.push({ idx: i, parsed });
  }

  const records: ImportRecord[] = [];
  const rejected: ImportRejection[] = [];
  if (passwordLines.length === 0) {
    rejected.push({ line: 1, reason: 'no recovery password found in this file' });
    return { records, rejected };
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
    if (keyId === null && (single || records.length + rejected.length === 0)) keyId = fileGuid;
    blockStart = idx + 1;

    const lineNo = idx + 1;
    if (!parsed.ok) {
      rejected.push({ line: lineNo, reason: parsed.reason });
      continue;
    }
    const record: ImportRecord = { line: lineNo, keyId, recoveryPassword: parsed.value };
    if (deviceName !== null) record.deviceName = deviceName;
    records.push(record);
  }
  return { records, rejected };
}
