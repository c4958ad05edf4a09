/**
 * Output of `manage-bde -protectors -get C:` (bitlocker-domain.md §4.2),
 * possibly for several volumes concatenated.
 *
 * manage-bde is localized ("Numerical Password:" is "Numerisches Kennwort:"
 * in German), so this parser works by structure only:
 * - a volume header is a line with a drive letter `X:` followed by `[label]`
 *   (`Volume C: [OS]`); it sets the mount point for the protectors below it.
 *   A line that is only `[...]` right after it (`[OS Volume]`, printed by
 *   `-status`) gives the volume type when we recognize the words;
 * - `ID: {GUID}` starts a protector (the label "ID" is not translated);
 * - the first password-shaped line after an ID, before the next ID or volume
 *   header, is that protector's recovery password. TPM, certificate (40 hex
 *   digit thumbprint) and other protectors have none and are skipped.
 * An invalid password becomes a rejection at its line; a password-shaped
 * line with no ID above it is rejected too, because a key without its ID
 * cannot be matched to the recovery screen.
 */
import { extractRecoveryPassword } from '../recovery-password.js';
import { parseVolumeType, type VolumeType } from '../volume.js';
import { idLineKeyId, volumeHeaderMount } from './text-scan.js';
import { LONG_LINE_REASON, MAX_LINE_CHARS, Rejections, type ImportRecord, type ParsedRows } from './types.js';

export function parseManageBde(text: string): ParsedRows {
  const lines = text.split('\n');
  const records: ImportRecord[] = [];
  const rejected = new Rejections();

  let mountPoint: string | null = null;
  let volumeType: VolumeType | null = null;
  let headerLine = -1;
  /** Current protector: its key ID, and whether its password was seen. */
  let protector: { keyId: string; used: boolean } | null = null;

  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? '';
    const lineNo = i + 1;
    if (line.length > MAX_LINE_CHARS) {
      rejected.add(lineNo, LONG_LINE_REASON);
      continue;
    }

    const mount = volumeHeaderMount(line);
    if (mount !== null) {
      mountPoint = mount;
      volumeType = null;
      headerLine = i;
      protector = null;
      continue;
    }

    if (headerLine >= 0 && i === headerLine + 1) {
      const bracket = /^\s*\[(.+)\]\s*$/.exec(line);
      if (bracket?.[1] !== undefined) {
        const t = parseVolumeType(bracket[1]);
        if (t !== 'unknown') volumeType = t;
        continue;
      }
    }

    const keyId = idLineKeyId(line);
    if (keyId !== null) {
      protector = { keyId, used: false };
      continue;
    }

    const parsed = extractRecoveryPassword(line);
    if (parsed === null) continue;

    if (protector === null) {
      rejected.add(lineNo, 'recovery password without an "ID: {…}" line above it');
      continue;
    }
    if (protector.used) {
      rejected.add(lineNo, 'a second recovery password under the same ID');
      continue;
    }
    protector.used = true;
    if (!parsed.ok) {
      rejected.add(lineNo, parsed.reason);
      continue;
    }
    const record: ImportRecord = {
      line: lineNo,
      keyId: protector.keyId,
      recoveryPassword: parsed.value,
    };
    if (mountPoint !== null) record.mountPoint = mountPoint;
    if (volumeType !== null) record.volumeType = volumeType;
    records.push(record);
  }
  return rejected.rows(records);
}
