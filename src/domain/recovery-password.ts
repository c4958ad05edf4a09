/**
 * BitLocker recovery passwords (the 48-digit "recovery key" users type at the
 * pre-boot screen).
 *
 * Format (bitlocker-domain.md §1.1): 8 groups of 6 decimal
 * digits. Each group is a 16-bit value multiplied by 11 and zero-padded, so a
 * group is valid when it is divisible by 11 and at most 65535 × 11 = 720885.
 * The 16-byte key is the eight `group / 11` values as little-endian uint16 in
 * group order (libbde and dislocker agree on this).
 *
 * Note: Microsoft's WMI documentation gives a "check digit" formula with the
 * wrong sign. The correct check digit is exactly equivalent to
 * "divisible by 11", so that is the only checksum implemented here.
 *
 * SECURITY: a recovery password unlocks a disk. Even an invalid input may be
 * one typo away from a real password, so no `reason` produced here ever
 * contains digits taken from the input: only fixed wording, group positions
 * and digit counts.
 */
import { fail, ok, type Result } from './result.js';

const GROUP_COUNT = 8;
const GROUP_DIGITS = 6;
const TOTAL_DIGITS = GROUP_COUNT * GROUP_DIGITS;

/** Largest valid group value: 65535 × 11. */
export const MAX_GROUP_VALUE = 0xffff * 11; // 720885

/**
 * A line with at least this many digits (and nothing but digits, spaces and
 * dashes) is treated as "someone meant to write a recovery password here".
 * 40 leaves room for a few dropped digits while staying far above anything
 * else found in key files (dates, PCR lists, sizes).
 */
export const SHAPED_MIN_DIGITS = 40;

/**
 * Dashes that arrive when a password is copied from Word, Outlook or a web
 * page: Unicode hyphens, dashes, the minus sign and full-width hyphen. They are
 * treated exactly like ASCII `-` so a pasted password is not rejected for an
 * invisible typographic difference.
 */
const UNICODE_DASHES = /[\u2010-\u2015\u2212\uFE58\uFE63\uFF0D]/g;

/** The canonical form: 8 groups of 6 digits joined by ASCII dashes. */
const CANONICAL = /^[0-9]{6}(?:-[0-9]{6}){7}$/;

function normalizeDashes(s: string): string {
  return s.replace(UNICODE_DASHES, '-');
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/**
 * Parse what a user or a file gave us as a recovery password.
 *
 * Accepted: 8 groups of 6 digits, separated by `-`, by any whitespace (tabs,
 * several spaces), by whitespace around a single dash, or by nothing; the
 * choice may differ between separator positions. Surrounding whitespace is
 * ignored. Output is always the canonical `dddddd-dddddd-…` form (8 groups).
 */
export function parseRecoveryPassword(input: string): Result<string> {
  // Defensive: JavaScript callers (and JSON imports) may hand us anything.
  if (typeof input !== 'string') return fail('a recovery password must be text');

  // Fast path for input that is already canonical (the common case in bulk
  // imports): skip the tokenizing below.
  if (CANONICAL.test(input)) return checkGroups(input.replace(/-/g, ''));

  const s = normalizeDashes(input).trim();
  if (s === '') return fail('the recovery password is empty');

  // Only ASCII digits, whitespace and dashes. Letters (e.g. O for 0) and
  // other digits (full-width, Arabic-Indic) are rejected rather than guessed.
  if (!/^[0-9\s-]*$/.test(s)) {
    return fail('contains characters other than digits, spaces and dashes');
  }

  const digits = s.replace(/[^0-9]/g, '');
  if (digits.length !== TOTAL_DIGITS) {
    return fail(`a recovery password has 48 digits in 8 groups of 6; got ${plural(digits.length, 'digit')}`);
  }

  // Structure: digit runs separated by "whitespace, optionally with one dash".
  // Every run must be a whole number of 6-digit groups, so separators can only
  // fall on group boundaries (a missing separator just joins two groups).
  const tokens = s.match(/[0-9]+|[^0-9]+/g) ?? [];
  const first = tokens[0] ?? '';
  const last = tokens[tokens.length - 1] ?? '';
  if (!/^[0-9]/.test(first) || !/^[0-9]/.test(last)) {
    return fail('a recovery password cannot start or end with a dash');
  }
  for (const token of tokens) {
    if (/^[0-9]/.test(token)) {
      if (token.length % GROUP_DIGITS !== 0) {
        return fail('the digits must be in 8 groups of 6; a dash or space splits a group');
      }
    } else if (!/^\s*-?\s*$/.test(token)) {
      return fail('groups must be separated by one dash or by spaces, not several dashes');
    }
  }

  return checkGroups(digits);
}

/** Checksum and range of each group of 48 digits; returns the canonical form. */
function checkGroups(digits: string): Result<string> {
  const groups: string[] = [];
  for (let i = 0; i < GROUP_COUNT; i++) {
    const group = digits.slice(i * GROUP_DIGITS, (i + 1) * GROUP_DIGITS);
    const value = Number(group);
    // Range first: a group above 720885 can never be valid, whatever its
    // remainder, and "out of range" is the more useful hint for it.
    if (value > MAX_GROUP_VALUE) {
      return fail(`group ${i + 1} of 8 is out of range (above ${MAX_GROUP_VALUE})`);
    }
    if (value % 11 !== 0) {
      return fail(`group ${i + 1} of 8 fails the BitLocker checksum (not divisible by 11)`);
    }
    groups.push(group);
  }
  return ok(groups.join('-'));
}

/**
 * The 16-byte binary key behind a recovery password: each `group / 11` as a
 * little-endian uint16, in group order.
 *
 * Throws a TypeError when the input is not a valid password: callers are
 * expected to pass the output of `parseRecoveryPassword`, so an invalid value
 * here is a programming error. The error message never contains the digits.
 */
export function recoveryPasswordToKey(normalized: string): Uint8Array {
  const parsed = parseRecoveryPassword(normalized);
  if (!parsed.ok) {
    throw new TypeError(`recoveryPasswordToKey needs a valid recovery password: ${parsed.reason}`);
  }
  const key = new Uint8Array(16);
  const groups = parsed.value.split('-');
  for (let i = 0; i < GROUP_COUNT; i++) {
    const v = Number(groups[i]) / 11;
    key[2 * i] = v & 0xff;
    key[2 * i + 1] = v >>> 8;
  }
  return key;
}

function countDigits(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 48 && c <= 57) n++;
  }
  return n;
}

/**
 * True when the whole string looks like an attempt at a recovery password:
 * only digits, whitespace and dashes, with at least 40 digits.
 *
 * Importers use this to decide "this line was meant to be a password". Such a
 * line is then parsed and, if invalid, reported as a rejection instead of being
 * silently skipped, so a typo in an export never loses a key unnoticed.
 */
export function isRecoveryPasswordShaped(s: string): boolean {
  if (typeof s !== 'string') return false;
  const t = normalizeDashes(s).trim();
  if (t === '' || !/^[0-9\s-]+$/.test(t)) return false;
  return countDigits(t) >= SHAPED_MIN_DIGITS;
}

/**
 * Password-shaped runs inside a longer text, e.g. the password in a CSV cell
 * like `C: 496298-461032-…` or in a line `Recovery Key: 496298-…`.
 *
 * A run starts and ends with a digit and contains only digits, dashes and
 * non-newline whitespace; runs with fewer than 40 digits are ignored. The runs
 * are returned verbatim (not validated) so the caller can parse each one and
 * report a reason when it is invalid.
 */
export function findRecoveryPasswordCandidates(text: string): string[] {
  return candidateMatches(text).map((m) => m.text);
}

function candidateMatches(text: string): { text: string; index: number }[] {
  if (typeof text !== 'string') return [];
  const out: { text: string; index: number }[] = [];
  const re = /[0-9](?:[0-9\-\u2010-\u2015\u2212\uFE58\uFE63\uFF0D]|[^\S\r\n])*[0-9]/g;
  for (const m of text.matchAll(re)) {
    if (countDigits(m[0]) >= SHAPED_MIN_DIGITS) out.push({ text: m[0], index: m.index });
  }
  return out;
}

/**
 * The recovery password inside a line or cell that may carry other text
 * (`C: 496298-…`, `Recovery Key: 496298-…`).
 *
 * Returns null when the text has no password-shaped run; a failure when it
 * has more than one, or the single run is invalid (including digits with
 * letters typed between them); else the normalized password.
 *
 * When an invalid run is glued to letters (a letter O typed for a zero splits
 * the digits), the reason describes the whole word, so the user hears
 * "contains characters other than digits…" rather than a confusing digit
 * count. When a run swallowed a neighbouring number (`PC-01 496298-…`), the
 * one strict 8-group password inside it is used.
 */
export function extractRecoveryPassword(text: string): Result<string> | null {
  if (typeof text === 'string' && CANONICAL.test(text)) return parseRecoveryPassword(text);
  const matches = candidateMatches(text);
  const only = matches[0];
  if (only === undefined) return nearMiss(text);
  if (matches.length > 1) return fail('more than one recovery password in one line or field');
  const parsed = parseRecoveryPassword(only.text);
  if (parsed.ok) return parsed;

  // The run may have swallowed a neighbouring number separated by spaces
  // (`PC-01 496298-…`, `496298-… 2024-01-31`). If exactly one strict 8×6
  // group sequence sits inside it, bounded by whitespace and not next to
  // another 6-digit group (which would make it a 9-group typo), use that.
  const inner = strictGroupsIn(only.text);
  if (inner !== null) return parseRecoveryPassword(inner);

  let start = only.index;
  let end = only.index + only.text.length;
  const alnum = /[0-9A-Za-z]/;
  while (start > 0 && alnum.test(text[start - 1] ?? '')) start--;
  while (end < text.length && alnum.test(text[end] ?? '')) end++;
  if (start !== only.index || end !== only.index + only.text.length) {
    const wide = parseRecoveryPassword(text.slice(start, end));
    if (!wide.ok) return wide;
  }
  return parsed;
}

/**
 * A password with letters typed inside it (`461O32`: letter O for zero) is
 * split into runs too short to count as password-shaped and would be skipped
 * silently. Such a run (digits with single letters between digits) with at
 * least 40 digits is reported as a failure instead of being ignored.
 */
const NEAR_MISS = /[0-9](?:[0-9\-\u2010-\u2015\u2212\uFE58\uFE63\uFF0D]|[^\S\r\n]|(?<=[0-9])[A-Za-z](?=[0-9]))*[0-9]/g;

function nearMiss(text: string): Result<string> | null {
  if (typeof text !== 'string') return null;
  const runs = [...text.matchAll(NEAR_MISS)].filter((m) => countDigits(m[0]) >= SHAPED_MIN_DIGITS);
  const first = runs[0];
  if (first === undefined) return null;
  if (runs.length > 1) return fail('more than one recovery password in one line or field');
  return parseRecoveryPassword(first[0]);
}

const DASH_CLASS = '[-\\u2010-\\u2015\\u2212\\uFE58\\uFE63\\uFF0D]';
const LINE_WS = '[^\\S\\r\\n]';
/** Exactly 8 groups of 6 digits, each separator optional, not inside a longer digit run. */
const STRICT_GROUPS = new RegExp(`(?<![0-9])[0-9]{6}(?:(?:${LINE_WS}*${DASH_CLASS}${LINE_WS}*|${LINE_WS}+)?[0-9]{6}){7}(?![0-9])`, 'g');
const DASH_AT_END = new RegExp(`${DASH_CLASS}\\s*$`);
const DASH_AT_START = new RegExp(`^\\s*${DASH_CLASS}`);

/** See extractRecoveryPassword: a single strict password inside a longer run, or null. */
function strictGroupsIn(run: string): string | null {
  const matches = [...run.matchAll(STRICT_GROUPS)];
  const m = matches[0];
  if (matches.length !== 1 || m === undefined) return null;
  const before = run.slice(0, m.index);
  const after = run.slice(m.index + m[0].length);
  if (before !== '') {
    const lastToken = /([0-9]+)\s*$/.exec(before)?.[1];
    if (!/\s$/.test(before) || DASH_AT_END.test(before) || lastToken?.length === 6) return null;
  }
  if (after !== '') {
    const firstToken = /^\s*([0-9]+)/.exec(after)?.[1];
    if (!/^\s/.test(after) || DASH_AT_START.test(after) || firstToken?.length === 6) return null;
  }
  return m[0];
}

// ------------------------------------------------------------------ secret scan
//
// One detector for every place where a recovery password must never be kept: the ticket and
// note of a reveal (they go into the audit log) and request log lines. Someone who pastes or
// types a password uses whatever separator their source had (`.`, `/`, `_`, `+`, spaces, none),
// full-width or other script digits, or a URL encoding of any of these; all count.

/** Separator chunks longer than this end a run: words and long punctuation separate numbers. */
const SCAN_MAX_SEPARATOR = 3;
/** A run with letters typed between its digits (O for 0) still counts while it has at most this many. */
const SCAN_MAX_TYPO_LETTERS = 4;
const PERCENT_RUN = /(?:%[0-9A-Fa-f]{2})+/g;
const FORMAT_CHARS = /\p{Cf}/gu;
const NON_ASCII_DIGIT = /(?![0-9])\p{Nd}/gu;
const IS_DIGIT_RE = /^\p{Nd}$/u;

function percentDecodeOnce(s: string): string {
  return s.replace(PERCENT_RUN, (run) => {
    try {
      return decodeURIComponent(run);
    } catch {
      return Buffer.from(run.replace(/%/g, ''), 'hex').toString('latin1');
    }
  });
}

/** The value of a decimal digit of any script (Unicode lays each script's 0-9 out contiguously). */
function asciiDigit(ch: string): string {
  let cp = ch.codePointAt(0)!;
  let steps = 0;
  while (steps < 9 && IS_DIGIT_RE.test(String.fromCodePoint(cp - 1))) {
    cp--;
    steps++;
  }
  return String(steps % 10);
}

/**
 * The text as a person would read it: URL-decoded (also twice-encoded), NFKC (full-width
 * digits become 0-9), invisible format characters dropped, digits of any script as 0-9.
 * Used only to look for secrets; never stored.
 */
export function normalizeForSecretScan(text: string): string {
  if (typeof text !== 'string') return '';
  let s = text;
  for (let i = 0; i < 3 && s.includes('%'); i++) {
    const next = percentDecodeOnce(s);
    if (next === s) break;
    s = next;
  }
  return s.normalize('NFKC').replace(FORMAT_CHARS, '').replace(NON_ASCII_DIGIT, asciiDigit);
}

type Span = { start: number; end: number };

function isAsciiDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}
function isLetterOrNumber(ch: string): boolean {
  return /[\p{L}\p{N}]/u.test(ch);
}

/**
 * Spans of `s` (already normalized) that hold 40 or more digits in one run. A run is digits
 * joined by separator chunks of 1-3 characters that are neither letters nor digits; a single
 * ASCII letter between two digits (a typo such as O for 0) keeps the run going, but a run with
 * more than four such letters counts only through its letter-free parts (so a GUID next to a
 * password neither hides it nor is mistaken for one). Linear in the input.
 */
function passwordLikeSpans(s: string): Span[] {
  const out: Span[] = [];
  const n = s.length;
  let i = 0;
  while (i < n) {
    if (!isAsciiDigit(s.charCodeAt(i))) {
      i++;
      continue;
    }
    // One loose run from i; strict sub-runs split at letters.
    const start = i;
    let end = i;
    let digits = 0;
    let letters = 0;
    const strict: { start: number; end: number; digits: number }[] = [{ start: i, end: i, digits: 0 }];
    let j = i;
    while (j < n) {
      const c = s.charCodeAt(j);
      if (isAsciiDigit(c)) {
        digits++;
        const cur = strict[strict.length - 1]!;
        cur.digits++;
        cur.end = j + 1;
        end = j + 1;
        j++;
        continue;
      }
      const ch = s[j]!;
      const isAsciiLetter = (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
      if (isAsciiLetter && isAsciiDigit(s.charCodeAt(j + 1))) {
        letters++;
        strict.push({ start: j + 1, end: j + 1, digits: 0 });
        j++;
        continue;
      }
      if (isLetterOrNumber(ch)) break;
      // A separator chunk: it joins only when a digit follows within the limit.
      let k = j;
      while (k < n && k - j < SCAN_MAX_SEPARATOR && !isAsciiDigit(s.charCodeAt(k)) && !isLetterOrNumber(s[k]!)) k++;
      if (k < n && isAsciiDigit(s.charCodeAt(k)) && k > j) {
        j = k;
        continue;
      }
      break;
    }
    if (digits >= SHAPED_MIN_DIGITS && letters <= SCAN_MAX_TYPO_LETTERS) {
      out.push({ start, end });
    } else {
      for (const r of strict) if (r.digits >= SHAPED_MIN_DIGITS) out.push({ start: r.start, end: r.end });
    }
    i = Math.max(end, i + 1);
  }
  return out;
}

/**
 * True when the text holds something a person may have meant as a recovery password (40 or more
 * digits in one run, whatever the separators, digits or encoding). The ticket and note guards and
 * the request log use this one test.
 */
export function containsRecoveryPasswordLike(text: string): boolean {
  return passwordLikeSpans(normalizeForSecretScan(text)).length > 0;
}

/** The normalized text with every password-like run replaced by `mask`. */
export function redactRecoveryPasswordLike(text: string, mask = '[redacted-recovery-password]'): string {
  const s = normalizeForSecretScan(text);
  const spans = passwordLikeSpans(s);
  if (spans.length === 0) return s;
  let out = '';
  let at = 0;
  for (const sp of spans) {
    out += s.slice(at, sp.start) + mask;
    at = sp.end;
  }
  return out + s.slice(at);
}
