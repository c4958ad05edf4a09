/**
 * BitLocker recovery key IDs (the key protector GUID, `VolumeKeyProtectorID`).
 *
 * The same GUID shows up in several spellings (bitlocker-domain.md §1.4):
 * - manage-bde / PowerShell: upper-case with braces `{4290B6C0-…}`
 * - Microsoft Graph: lower-case without braces `4290b6c0-…`
 * - the saved TXT file name: upper-case without braces
 * Internally we store one canonical form: lower-case, hyphenated, no braces.
 *
 * RFC 4122 version/variant bits are deliberately NOT checked: BitLocker IDs
 * are arbitrary GUIDs and rejecting "non-RFC" ones would lose real keys.
 *
 * Technicians usually type only the beginning of the ID (Windows 7's recovery
 * console showed 8 characters; MBAM asks for "at least the first eight"), so
 * queries also accept a prefix of at least 8 hex digits.
 */
import { fail, ok, type Result } from './result.js';

/** Minimum number of hex digits a technician must type to search by prefix. */
export const KEY_ID_PREFIX_MIN = 8;

/** Positions (in hex digits) after which a GUID has a hyphen. */
const HYPHEN_AFTER = [8, 12, 16, 20] as const;

const UNICODE_DASHES = /[\u2010-\u2015\u2212\uFE58\uFE63\uFF0D]/g;

const HYPHENATED = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const COMPACT = /^[0-9a-f]{32}$/i;

const SHORT_REASON = `type at least the first ${KEY_ID_PREFIX_MIN} characters of the key ID`;
const HEX_ONLY_REASON = 'a key ID contains only hex digits (0-9, A-F) and dashes';
const HYPHEN_REASON = 'the dashes in a key ID go after hex digits 8, 12, 16 and 20 (like 4290B6C0-B17A-497A-8552-272CC30E80D4)';

/** Insert hyphens into up to 32 hex digits at the GUID positions. */
function hyphenate(hex: string): string {
  const parts = [hex.slice(0, 8), hex.slice(8, 12), hex.slice(12, 16), hex.slice(16, 20), hex.slice(20)];
  return parts.filter((p) => p !== '').join('-');
}

function hexDigitCount(s: string): number {
  return s.replace(/[^0-9a-f]/gi, '').length;
}

/**
 * Parse a full key ID: `{GUID}`, `GUID` or 32 hex digits, any case, with
 * surrounding whitespace. Returns the canonical lower-case hyphenated form.
 */
export function parseKeyId(input: string): Result<string> {
  if (typeof input !== 'string') return fail('a key ID must be text');
  let s = input.replace(UNICODE_DASHES, '-').trim();
  if (s === '') return fail('the key ID is empty');

  const open = s.startsWith('{');
  const close = s.endsWith('}');
  if (open !== close) return fail('the key ID has an unmatched brace');
  if (open) s = s.slice(1, -1).trim();

  if (HYPHENATED.test(s)) return ok(s.toLowerCase());
  if (COMPACT.test(s)) return ok(hyphenate(s.toLowerCase()));
  if (/[^0-9a-f-]/i.test(s)) return fail(HEX_ONLY_REASON);
  const n = hexDigitCount(s);
  if (n !== 32) return fail(`a key ID has 32 hex digits; got ${n}`);
  return fail(HYPHEN_REASON);
}

/** What a technician typed into a "find key" box. */
export type KeyIdQuery = { kind: 'full'; keyId: string } | { kind: 'prefix'; prefix: string };

/**
 * Parse a key ID search: a full ID (any form `parseKeyId` accepts) or the
 * first 8 to 31 hex digits, optionally with a leading `{` and hyphens where a
 * GUID has them, e.g. `4290B6C0`, `{4290b6c0-b17a`, or the Windows 7 short form
 * `ABC7C7A1-9BEE-4F`. The prefix is returned lower-case without hyphens.
 */
export function parseKeyIdQuery(input: string): Result<KeyIdQuery> {
  if (typeof input !== 'string') return fail('a key ID must be text');
  const full = parseKeyId(input);
  if (full.ok) return ok({ kind: 'full', keyId: full.value });

  let s = input.replace(UNICODE_DASHES, '-').trim();
  if (s.startsWith('{')) s = s.slice(1).trimStart();
  if (s.endsWith('}')) s = s.slice(0, -1).trimEnd();
  if (s === '') return fail(SHORT_REASON);
  if (/[^0-9a-f-]/i.test(s)) return fail(HEX_ONLY_REASON);

  const hex = s.replace(/-/g, '');
  if (hex.length > 32) return fail(`a key ID has 32 hex digits; got ${hex.length}`);

  // Hyphens are optional, but where present they must sit at a GUID position
  // (a trailing one, as in `4290B6C0-`, is fine).
  let seen = 0;
  let prevHyphen = false;
  for (const ch of s) {
    if (ch === '-') {
      if (prevHyphen || !(HYPHEN_AFTER as readonly number[]).includes(seen)) {
        return fail(HYPHEN_REASON);
      }
      prevHyphen = true;
    } else {
      seen++;
      prevHyphen = false;
    }
  }
  if (hex.length < KEY_ID_PREFIX_MIN) return fail(SHORT_REASON);
  if (hex.length === 32) {
    // All 32 digits typed, but with a lone brace or only some of the hyphens:
    // the intent is unambiguous, so treat it as the full ID.
    return ok({ kind: 'full', keyId: hyphenate(hex.toLowerCase()) });
  }
  return ok({ kind: 'prefix', prefix: hex.toLowerCase() });
}

/** Separators people type or read out between groups of a key ID (spaces, dots, slashes, dashes). */
const SPOKEN_SEPARATORS = /[\s._:/\\,;'"`\u2010-\u2015\u2212\uFE58\uFE63\uFF0D-]/g;

/**
 * A key-ID search as it arrives from a phone call: the user reads `35D132DC E86A`, the technician
 * types the letter O for zero or I / l for one. Key IDs hold only 0-9 and A-F, so O, I and l
 * cannot be meant as letters; separators anywhere are dropped. The strict form (`parseKeyIdQuery`)
 * wins when it parses; `forgiven` says the input needed this leniency (a device name such as
 * OFFICE01 can look like a key ID then, so a search that also matches names should try both).
 * Only for searches: imports and stored IDs stay strict.
 */
export function parseSpokenKeyIdQuery(input: string): Result<KeyIdQuery & { forgiven: boolean }> {
  if (typeof input !== 'string') return fail('a key ID must be text');
  const strict = parseKeyIdQuery(input);
  if (strict.ok) return ok({ ...strict.value, forgiven: false });
  let s = input.trim();
  if (s.startsWith('{')) s = s.slice(1);
  if (s.endsWith('}')) s = s.slice(0, -1);
  const hex = s.replace(SPOKEN_SEPARATORS, '').replace(/[oO]/g, '0').replace(/[Iil]/g, '1');
  if (hex === '' || /[^0-9a-f]/i.test(hex)) return strict;
  if (hex.length > 32) return fail(`a key ID has 32 hex digits; got ${hex.length}`);
  if (hex.length < KEY_ID_PREFIX_MIN) return fail(SHORT_REASON);
  if (hex.length === 32) return ok({ kind: 'full', keyId: hyphenate(hex.toLowerCase()), forgiven: true });
  return ok({ kind: 'prefix', prefix: hex.toLowerCase(), forgiven: true });
}

/**
 * Range bounds for a prefix search in storage: every canonical key ID that
 * starts with `prefix` sorts between `low` (prefix padded with 0) and `high`
 * (padded with f), because canonical IDs all have the same length and hyphen
 * positions. Use a binary / "C" collation for the comparison.
 *
 * `prefix` is lower- or upper-case hex without hyphens, 0..32 digits; anything
 * else is a programming error and throws.
 */
export function keyIdPrefixBounds(prefix: string): { low: string; high: string } {
  if (typeof prefix !== 'string' || !/^[0-9a-f]{0,32}$/i.test(prefix)) {
    throw new TypeError('keyIdPrefixBounds needs 0 to 32 hex digits without hyphens');
  }
  const p = prefix.toLowerCase();
  return {
    low: hyphenate(p.padEnd(32, '0')),
    high: hyphenate(p.padEnd(32, 'f')),
  };
}

/**
 * A key ID the way manage-bde and the pre-boot screen show it: upper-case in
 * braces, `{4290B6C0-B17A-497A-8552-272CC30E80D4}`. A value that is not a GUID
 * (some hardware-encrypted drives report the literal ID `BitLocker`) is
 * returned trimmed but otherwise unchanged.
 */
export function formatKeyIdForDisplay(keyId: string): string {
  const parsed = parseKeyId(keyId);
  if (!parsed.ok) return typeof keyId === 'string' ? keyId.trim() : '';
  return `{${parsed.value.toUpperCase()}}`;
}
