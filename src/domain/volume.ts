/**
 * Volume facts that arrive from many sources with different spellings.
 *
 * - Microsoft Graph `bitlockerRecoveryKey.volumeType`: enum
 *   operatingSystemVolume(1), fixedDataVolume(2), removableDataVolume(3),
 *   unknownFutureValue(4); documented examples send the string "1", so both
 *   numbers, numeric strings and member names are accepted.
 * - PowerShell `Get-BitLockerVolume` `VolumeType`: `OperatingSystem` | `Data`
 *   (Data means "not the system drive"; we map it to fixed).
 * - People typing CSV files: "OS", "Operating System", "USB", ...
 *
 * Numbers follow Graph. (PowerShell 5.1 `ConvertTo-Json` writes its own enum
 * as 0/1, which does not match Graph; agents must send names.)
 */

export type VolumeType = 'os' | 'fixed' | 'removable' | 'unknown';

/** Keys are lower-case with everything but letters and digits removed. */
const VOLUME_TYPE_WORDS: Readonly<Record<string, VolumeType>> = {
  // Graph numbers and names
  '1': 'os',
  '2': 'fixed',
  '3': 'removable',
  '4': 'unknown',
  operatingsystemvolume: 'os',
  fixeddatavolume: 'fixed',
  removabledatavolume: 'removable',
  unknownfuturevalue: 'unknown',
  // PowerShell
  operatingsystem: 'os',
  data: 'fixed',
  // Words people and tools use (manage-bde -status prints "[OS Volume]" /
  // "[Data Volume]")
  os: 'os',
  osvolume: 'os',
  osdrive: 'os',
  system: 'os',
  systemdrive: 'os',
  boot: 'os',
  fixed: 'fixed',
  fixeddata: 'fixed',
  fixeddrive: 'fixed',
  datavolume: 'fixed',
  datadrive: 'fixed',
  removable: 'removable',
  removabledata: 'removable',
  removabledrive: 'removable',
  usb: 'removable',
  usbdrive: 'removable',
};

/** Map any spelling of a volume type to ours; anything unrecognized is 'unknown'. */
export function parseVolumeType(v: unknown): VolumeType {
  if (typeof v === 'number') {
    return Number.isInteger(v) ? (VOLUME_TYPE_WORDS[String(v)] ?? 'unknown') : 'unknown';
  }
  if (typeof v !== 'string') return 'unknown';
  const key = v.toLowerCase().replace(/[^a-z0-9]/g, '');
  return Object.hasOwn(VOLUME_TYPE_WORDS, key) ? (VOLUME_TYPE_WORDS[key] ?? 'unknown') : 'unknown';
}

/**
 * Normalize a mount point: any spelling of a drive letter (`c`, `C:`, `c:\`,
 * `C:/`) becomes `C:`. Other values (volume GUID paths like
 * `\\?\Volume{…}\`, mounted-folder paths) are kept as given, trimmed.
 * Empty input gives null.
 */
export function normalizeMountPoint(s: string): string | null {
  if (typeof s !== 'string') return null;
  const t = s.trim();
  if (t === '') return null;
  const m = /^([a-z]):?[\\/]?$/i.exec(t);
  if (m?.[1] !== undefined) return `${m[1].toUpperCase()}:`;
  return t;
}
