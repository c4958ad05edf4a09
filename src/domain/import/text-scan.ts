/**
 * Structural helpers for the text formats (TXT key files, manage-bde output).
 *
 * Both formats are localized by Windows, so we never match on English labels
 * when a structural signal exists: a full GUID is a key ID, a run of ~48
 * digits is a password, `X: [` is a volume header.
 */
import { parseKeyId } from '../key-id.js';

/**
 * A full hyphenated GUID not embedded in a longer hex/hyphen run. Braces
 * around it are allowed (they are not part of the match). The Windows 7 short
 * form `ABC7C7A1-9BEE-4F` is deliberately NOT matched.
 */
const FULL_GUID = /(?<![0-9A-Fa-f-])([0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})(?![0-9A-Fa-f-])/;

/** The first full GUID in `s`, canonicalized, or null. */
export function firstGuid(s: string): string | null {
  const m = FULL_GUID.exec(s);
  if (m?.[1] === undefined) return null;
  const parsed = parseKeyId(m[1]);
  return parsed.ok ? parsed.value : null;
}

/** A GUID in a file name like `BitLocker Recovery Key 4290B6C0-….TXT` (directories ignored). */
export function guidFromFileName(fileName: string | undefined): string | null {
  if (fileName === undefined) return null;
  const base = fileName.split(/[\\/]/).pop() ?? '';
  return firstGuid(base);
}

/** manage-bde protector ID line: `ID: {GUID}` (the label is `ID` in every language). */
const ID_LINE = /^\s*ID\s*:\s*\{?([0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})\}?\s*$/i;

export function idLineKeyId(line: string): string | null {
  const m = ID_LINE.exec(line);
  if (m?.[1] === undefined) return null;
  const parsed = parseKeyId(m[1]);
  return parsed.ok ? parsed.value : null;
}

/** Strict form used for format detection: braces required, as manage-bde prints them. */
export const MANAGE_BDE_ID_LINE = /^[ \t]*ID[ \t]*:[ \t]*\{[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}\}[ \t]*$/im;

/** A drive letter after the start or a space/quote, then `:`, an optional quote and `[`. */
const VOLUME_LETTER = /(?:^|[\s"'])([A-Za-z]):["']?\s*\[/;
const VOLUME_GUID_PATH = /(\\\\\?\\Volume\{[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}\}\\?)\s*\[/;

/**
 * manage-bde volume header: a drive letter `X:` followed by a bracketed label,
 * e.g. `Volume C: [OS]`, `Volume C: [Windows]`, `Volume C: []`, German
 * `Volume C: [Betriebssystem]`. Volumes without a letter are printed with
 * their volume GUID path. Returns the mount point or null.
 */
export function volumeHeaderMount(line: string): string | null {
  // The line must end with `]`: checked once here, so the patterns below only look for the
  // opening `X: [` and never rescan the rest of the line from every candidate position.
  const trimmed = line.trimEnd();
  if (!trimmed.endsWith(']')) return null;
  const closing = trimmed.length - 1;
  const letter = VOLUME_LETTER.exec(trimmed);
  if (letter?.[1] !== undefined && letter.index + letter[0].length - 1 < closing) return `${letter[1].toUpperCase()}:`;
  const guidPath = VOLUME_GUID_PATH.exec(trimmed);
  if (guidPath?.[1] !== undefined && guidPath.index + guidPath[0].length - 1 < closing) return guidPath[1];
  return null;
}
