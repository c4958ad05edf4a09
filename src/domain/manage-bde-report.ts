/**
 * The agent's manage-bde fallback (docs/agent-protocol.md, "manage-bde fallback"): when the
 * BitLocker PowerShell module is missing, a check-in carries
 * `manageBde: { status, protectors }`, the text of `manage-bde -status` and of
 * `manage-bde -protectors -get X:` for each volume, concatenated. Before sending, the agent
 * replaced every 48-digit recovery password in the protectors text by `fp:<64 hex>` (its HMAC
 * fingerprint of the password).
 *
 * manage-bde is localized (labels, values, even the quoting of the drive letter), so this parser
 * works by structure first and reads words only where it has to:
 * - a volume starts at a line like `Volume C: [Windows]` (German: `Volume "C:" []`): a word, the
 *   drive letter (optionally quoted) and a `[`. Volumes without a letter are printed with their
 *   volume GUID path, which becomes the mount point;
 * - in the status text, `[OS Volume]` on the next line gives the volume type and `Label:  value`
 *   lines give the status. Labels and values are looked up in English and German tables;
 * - in the protectors text, every `ID: {GUID}` line is one protector (the label "ID" is not
 *   translated). Its type comes from the header line just above it (`TPM:`,
 *   `Numerical Password:`, `Numerisches Kennwort:` …). A protector whose block holds an
 *   `fp:<hex>` line is a recovery password whatever the header says, because only recovery
 *   passwords are fingerprinted.
 *
 * Words are compared by a key made of the lower-case ASCII letters and digits only. Umlauts are
 * dropped, not folded, so the same key comes out of correct text and of the usual mojibake
 * (OEM code page 850 read as Windows-1252, UTF-8 read as 850, U+FFFD): `Verschlüsselt`,
 * `Verschl?sselt` and `VerschlÃ¼sselt` all become `verschlsselt`.
 *
 * Sources for the strings (the project's bitlocker-domain.md §4.1–4.3 and captures of real output
 * in public repositories): every English string in the tables was seen in real output except where
 * marked. German strings marked "verified" were seen in a real capture (Windows 10 22H2 /
 * Windows 11 23H2); the others are my best guess at Microsoft's translation and simply will not
 * match if wrong, which gives null plus a problem, never a wrong value.
 *
 * SECURITY: the protectors text should hold no recovery password, but an agent bug could leave
 * one in. A password-shaped run (40+ digits, see recovery-password.ts) is never copied into the
 * result; it is reported as a problem without any of its digits. Problems are fixed product
 * wording: they contain no text from the input except a drive letter.
 *
 * Pure: no I/O. Never throws, whatever the input.
 */
import type { EncryptionMethod, KeyProtectorType, LockStatus, ProtectionStatus, VolumeStatus } from './bitlocker.js';
import { parseEncryptionMethod, parseKeyProtectorType, parseLockStatus, parseProtectionStatus, parseVolumeStatus } from './bitlocker.js';
import { parseKeyId } from './key-id.js';
import { findRecoveryPasswordCandidates } from './recovery-password.js';
import { normalizeMountPoint } from './volume.js';

export type ReportedProtector = { id: string; type: KeyProtectorType | null; fingerprint: string | null };

export type ReportedVolume = {
  mountPoint: string;
  volumeType: 'os' | 'fixed' | 'unknown';
  volumeStatus: VolumeStatus | null;
  protectionStatus: ProtectionStatus | null;
  lockStatus: LockStatus | null;
  encryptionMethod: EncryptionMethod | null;
  encryptionPercentage: number | null;
  protectors: ReportedProtector[];
};

/** Problem wording (tests match on it). */
const CLEAR_TEXT_PASSWORD_PROBLEM = 'a recovery password was sent in clear text and ignored';

// ---------------------------------------------------------------------------------------------
// Word tables
// ---------------------------------------------------------------------------------------------

/** Comparison key: lower-case ASCII letters and digits only (see the module comment). */
const key = (s: string): string => s.toLowerCase().replace(/[^a-z0-9]/g, '');

function table<T>(entries: readonly (readonly [string, T])[]): ReadonlyMap<string, T> {
  return new Map(entries.map(([words, value]) => [key(words), value] as const));
}

/** Values meaning "manage-bde could not tell" (a locked volume): null, and not a problem. */
const UNKNOWN_WORDS: ReadonlySet<string> = new Set(['Unknown', 'Unbekannt'].map(key));

type Field = 'conversion' | 'percentage' | 'method' | 'protection' | 'lock' | 'protectors';

const FIELD_LABELS = table<Field>([
  ['Conversion Status', 'conversion'],
  ['Percentage Encrypted', 'percentage'],
  ['Encryption Method', 'method'],
  ['Protection Status', 'protection'],
  ['Lock Status', 'lock'],
  ['Key Protectors', 'protectors'],
  // German, all verified
  ['Konvertierungsstatus', 'conversion'],
  ['Verschlüsselt (Prozent)', 'percentage'],
  ['Verschlüsselungsmethode', 'method'],
  ['Schutzstatus', 'protection'],
  ['Sperrungsstatus', 'lock'],
  ['Schlüsselschutzvorrichtungen', 'protectors'],
]);

const VOLUME_TYPE_WORDS = table<'os' | 'fixed'>([
  ['OS Volume', 'os'],
  ['Data Volume', 'fixed'],
  ['Betriebssystemvolume', 'os'], // verified
  ['Datenvolume', 'fixed'], // unverified
  ['Betriebssystemvolumen', 'os'], // unverified spelling variant
  ['Datenvolumen', 'fixed'], // unverified spelling variant
]);

const VOLUME_STATUS_WORDS = table<VolumeStatus>([
  ['Fully Decrypted', 'FullyDecrypted'],
  ['Fully Encrypted', 'FullyEncrypted'],
  // Device encryption / "encrypt used space only": the whole volume counts as encrypted.
  ['Used Space Only Encrypted', 'FullyEncrypted'],
  ['Encryption in Progress', 'EncryptionInProgress'],
  ['Decryption in Progress', 'DecryptionInProgress'],
  ['Encryption Paused', 'EncryptionSuspended'],
  ['Decryption Paused', 'DecryptionSuspended'],
  ['Vollständig entschlüsselt', 'FullyDecrypted'], // verified
  ['Verschlüsselung wird durchgeführt', 'EncryptionInProgress'], // verified
  ['Vollständig verschlüsselt', 'FullyEncrypted'], // unverified
  ['Nur verwendeter Speicherplatz verschlüsselt', 'FullyEncrypted'], // unverified
  ['Nur verwendeter Speicherplatz ist verschlüsselt', 'FullyEncrypted'], // unverified (seen in notes)
  ['Entschlüsselung wird durchgeführt', 'DecryptionInProgress'], // guess, by analogy
  ['Verschlüsselung angehalten', 'EncryptionSuspended'], // guess
  ['Entschlüsselung angehalten', 'DecryptionSuspended'], // guess
]);

const ENCRYPTION_METHOD_WORDS = table<EncryptionMethod>([
  ['None', 'None'],
  ['XTS-AES 128', 'XtsAes128'],
  ['XTS-AES 256', 'XtsAes256'],
  ['AES 128', 'Aes128'],
  ['AES 256', 'Aes256'],
  ['AES 128 with Diffuser', 'Aes128Diffuser'], // unverified wording (Vista/7-era volumes)
  ['AES 256 with Diffuser', 'Aes256Diffuser'], // unverified wording
  ['AES-CBC 128', 'Aes128'], // unverified: only seen in third-party parser tests
  ['AES-CBC 256', 'Aes256'], // unverified: only seen in third-party parser tests
  ['Hardware Encryption', 'Hardware'], // unverified wording
  ['Kein', 'None'], // verified
  ['Keine', 'None'], // guess
  ['AES 128 mit Diffuser', 'Aes128Diffuser'], // guess
  ['AES 256 mit Diffuser', 'Aes256Diffuser'], // guess
  ['AES 128 mit Diffusor', 'Aes128Diffuser'], // guess (the German WMI docs say "Diffusor")
  ['AES 256 mit Diffusor', 'Aes256Diffuser'], // guess
  ['Hardwareverschlüsselung', 'Hardware'], // guess
]);
/** Hardware encryption may be followed by the drive's algorithm OID (unverified), so match the start. */
const ENCRYPTION_METHOD_PREFIXES = table<EncryptionMethod>([
  ['Hardware Encryption', 'Hardware'],
  ['Hardwareverschlüsselung', 'Hardware'],
]);

const PROTECTION_STATUS_WORDS = table<ProtectionStatus>([
  ['Protection On', 'On'],
  ['Protection Off', 'Off'],
  ['Protection Unknown', 'Unknown'],
  // A locked volume prints "Protection Status: Unknown" (verified); WMI reports 2 (Unknown) too.
  ['Unknown', 'Unknown'],
  ['Der Schutz ist aktiviert.', 'On'], // verified
  ['Der Schutz ist deaktiviert.', 'Off'], // verified
  ['Schutz aktiviert', 'On'], // guess (short form)
  ['Schutz deaktiviert', 'Off'], // guess (short form)
  ['Unbekannt', 'Unknown'], // guess
]);
/** "Protection Off (1 reboots left)" after Suspend-BitLocker -RebootCount: match the start. */
const PROTECTION_STATUS_PREFIXES = PROTECTION_STATUS_WORDS;

const LOCK_STATUS_WORDS = table<LockStatus>([
  ['Unlocked', 'Unlocked'],
  ['Locked', 'Locked'],
  ['Entsperrt', 'Unlocked'], // verified
  ['Gesperrt', 'Locked'], // guess
]);

/** Protector headers of `manage-bde -protectors -get`, without the trailing colon. */
const PROTECTOR_TYPE_WORDS = table<KeyProtectorType>([
  ['TPM', 'Tpm'],
  ['TPM And PIN', 'TpmPin'],
  ['TPM And Startup Key', 'TpmStartupKey'],
  ['TPM And PIN And Startup Key', 'TpmPinStartupKey'],
  ['TPM And Network Key', 'TpmNetworkKey'], // unverified wording
  ['Numerical Password', 'RecoveryPassword'],
  ['External Key', 'ExternalKey'],
  ['Password', 'Password'],
  ['Data Recovery Agent (Certificate Based)', 'PublicKey'],
  ['Smart Card (Certificate Based)', 'PublicKey'], // unverified wording
  ['Public Key', 'PublicKey'], // unverified wording
  ['Numerisches Kennwort', 'RecoveryPassword'], // verified
  ['Kennwort', 'Password'], // the word is verified; its use as a protector header is a guess
  ['TPM und PIN', 'TpmPin'], // guess
  ['TPM und Systemstartschlüssel', 'TpmStartupKey'], // guess
  ['TPM und PIN und Systemstartschlüssel', 'TpmPinStartupKey'], // guess
  ['Externer Schlüssel', 'ExternalKey'], // guess
  ['Datenwiederherstellungs-Agent (zertifikatbasiert)', 'PublicKey'], // guess
  ['Smartcard (zertifikatbasiert)', 'PublicKey'], // guess
]);
/**
 * The auto-unlock key of a data volume is listed as "External Key (Required for automatic
 * unlock)" (verified in -status output); match any header that starts like an external key.
 */
const PROTECTOR_TYPE_PREFIXES = table<KeyProtectorType>([
  ['External Key', 'ExternalKey'],
  ['Externer Schlüssel', 'ExternalKey'], // guess
]);

type Lookup<T> = { value: T | null; known: boolean };

function lookup<T>(raw: string, words: ReadonlyMap<string, T>, fallback: (v: unknown) => T | null, prefixes?: ReadonlyMap<string, T>): Lookup<T> {
  const k = key(raw);
  const exact = words.get(k);
  if (exact !== undefined) return { value: exact, known: true };
  if (prefixes !== undefined) {
    let best: { len: number; value: T } | null = null;
    for (const [p, value] of prefixes) {
      if (p !== '' && k.startsWith(p) && (best === null || p.length > best.len)) best = { len: p.length, value };
    }
    if (best !== null) return { value: best.value, known: true };
  }
  // The canonical enum names (`FullyEncrypted`, `XtsAes128`, `On`), should a tool print them.
  // Not bare numbers: the enum mappers accept the PowerShell integers, manage-bde prints none.
  const canonical = /^\s*\d+\s*$/.test(raw) ? null : fallback(raw);
  if (canonical !== null) return { value: canonical, known: true };
  if (UNKNOWN_WORDS.has(k)) return { value: null, known: true };
  return { value: null, known: false };
}

/** `100.0%`, `100,0 %`, `45.3%`, `100%`; `Unknown%` on a locked volume. */
function parsePercentage(raw: string): Lookup<number> {
  const m = /^(\d{1,3})(?:[.,](\d{1,6}))?\s*%?$/.exec(raw.trim());
  if (m?.[1] !== undefined) {
    const n = Number(`${m[1]}.${m[2] ?? '0'}`);
    return n >= 0 && n <= 100 ? { value: n, known: true } : { value: null, known: false };
  }
  if (UNKNOWN_WORDS.has(key(raw))) return { value: null, known: true };
  return { value: null, known: false };
}

// ---------------------------------------------------------------------------------------------
// Lines and volume sections
// ---------------------------------------------------------------------------------------------

/** `Volume C: [Windows]`, `Volume "C:" []`: a word, the drive letter (maybe quoted), `[`. */
const VOLUME_HEADER = /^\s*\S+\s+["']?([A-Za-z]):["']?\s*\[/;
/** `Volume \\?\Volume{GUID}\ [Recovery]`: a volume without a drive letter. */
const GUID_VOLUME_HEADER = /^\s*\S+\s+["']?(\\\\\?\\Volume\{[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}\}\\?)["']?\s*\[/;

function volumeHeader(line: string): string | null {
  const letter = VOLUME_HEADER.exec(line);
  if (letter?.[1] !== undefined) return normalizeMountPoint(`${letter[1]}:`);
  const path = GUID_VOLUME_HEADER.exec(line);
  if (path?.[1] !== undefined) return normalizeMountPoint(path[1]);
  return null;
}

type Section = { mount: string; lines: string[] };

function splitVolumes(text: string): { preamble: string[]; sections: Section[] } {
  const preamble: string[] = [];
  const sections: Section[] = [];
  let current: Section | null = null;
  for (const line of text.split(/\r\n|\r|\n/)) {
    const mount = volumeHeader(line);
    if (mount !== null) {
      current = { mount, lines: [] };
      sections.push(current);
    } else if (current !== null) {
      current.lines.push(line);
    } else {
      preamble.push(line);
    }
  }
  return { preamble, sections };
}

/** `[OS Volume]` as the first non-blank line of a section. */
function volumeTypeLine(section: Section): { found: boolean; type: 'os' | 'fixed' | 'unknown' } {
  const first = section.lines.find((l) => l.trim() !== '');
  const m = first === undefined ? null : /^\s*\[(.*)\]\s*$/.exec(first);
  if (m?.[1] === undefined) return { found: false, type: 'unknown' };
  return { found: true, type: VOLUME_TYPE_WORDS.get(key(m[1])) ?? 'unknown' };
}

/**
 * `fp:<hex>` tokens and clear-text passwords in one line. A token that is not 64 hex digits is
 * malformed; its content stays in the scanned rest, so a password glued to `fp:` is still caught.
 * So does a "fingerprint" holding a password-shaped run of 40+ digits (an HMAC does that about
 * once in ten million; dropping such a fingerprint only makes the server ask for the password).
 */
const FP_TOKEN = /(?<![0-9A-Za-z])fp:[ \t]*([0-9A-Za-z]*)/gi;
const FINGERPRINT = /^[0-9a-f]{64}$/i;

function scanLine(line: string): { fingerprints: string[]; malformed: boolean; clearText: boolean } {
  const fingerprints: string[] = [];
  let malformed = false;
  const rest = line.replace(FP_TOKEN, (_token, hex: string) => {
    if (FINGERPRINT.test(hex) && findRecoveryPasswordCandidates(hex).length === 0) {
      fingerprints.push(hex.toLowerCase());
      return ' ';
    }
    malformed = true;
    return ` ${hex} `;
  });
  return { fingerprints, malformed, clearText: findRecoveryPasswordCandidates(rest).length > 0 };
}

/** How a problem names a volume: `volume C` (so `volume C: …` reads naturally), never digits. */
const where = (mount: string): string => (/^[A-Z]:$/.test(mount) ? `volume ${mount.slice(0, 1)}` : 'a volume without a drive letter');

// ---------------------------------------------------------------------------------------------
// Status text
// ---------------------------------------------------------------------------------------------

type StatusFacts = Omit<ReportedVolume, 'mountPoint' | 'protectors'> & { listsProtectors: boolean };

function readStatus(section: Section, problem: (p: string) => void): StatusFacts {
  const at = where(section.mount);
  const typeLine = volumeTypeLine(section);
  if (typeLine.found && typeLine.type === 'unknown') problem(`${at}: the volume type was not recognised`);

  const facts: StatusFacts = {
    volumeType: typeLine.type,
    volumeStatus: null,
    protectionStatus: null,
    lockStatus: null,
    encryptionMethod: null,
    encryptionPercentage: null,
    listsProtectors: false,
  };
  const seen = new Set<Field>();
  let inProtectorList = false;

  for (const line of section.lines) {
    if (line.trim() === '') continue;
    const colon = line.indexOf(':');
    if (colon < 0) {
      // "Key Protectors:" is followed by one protector name per line.
      if (inProtectorList) facts.listsProtectors = true;
      continue;
    }
    inProtectorList = false;
    const field = FIELD_LABELS.get(key(line.slice(0, colon)));
    if (field === undefined || seen.has(field)) continue;
    seen.add(field);
    const raw = line.slice(colon + 1).trim();

    switch (field) {
      case 'conversion': {
        const r = lookup(raw, VOLUME_STATUS_WORDS, parseVolumeStatus);
        facts.volumeStatus = r.value;
        if (!r.known) problem(`${at}: the conversion status was not recognised`);
        break;
      }
      case 'percentage': {
        const r = parsePercentage(raw);
        facts.encryptionPercentage = r.value;
        if (!r.known) problem(`${at}: the encryption percentage was not recognised`);
        break;
      }
      case 'method': {
        const r = lookup(raw, ENCRYPTION_METHOD_WORDS, parseEncryptionMethod, ENCRYPTION_METHOD_PREFIXES);
        facts.encryptionMethod = r.value;
        if (!r.known) problem(`${at}: the encryption method was not recognised`);
        break;
      }
      case 'protection': {
        const r = lookup(raw, PROTECTION_STATUS_WORDS, parseProtectionStatus, PROTECTION_STATUS_PREFIXES);
        facts.protectionStatus = r.value;
        if (!r.known) problem(`${at}: the protection status was not recognised`);
        break;
      }
      case 'lock': {
        const r = lookup(raw, LOCK_STATUS_WORDS, parseLockStatus);
        facts.lockStatus = r.value;
        if (!r.known) problem(`${at}: the lock status was not recognised`);
        break;
      }
      case 'protectors':
        // "Key Protectors: None Found" / "Keine gefunden" has the value on the same line; a
        // list follows only when the value is empty.
        inProtectorList = raw === '';
        break;
    }
  }
  if (![...seen].some((f) => f !== 'protectors')) {
    problem(`${at}: no status line was recognised (language not supported?)`);
  }
  return facts;
}

// ---------------------------------------------------------------------------------------------
// Protectors text
// ---------------------------------------------------------------------------------------------

type Draft = { id: string; header: string | null; fingerprints: Set<string>; passwordMarker: boolean };

/** `ID: {GUID}`; the value is checked with parseKeyId. */
const ID_LINE = /^\s*ID\s*:(.*)$/i;

function readProtectors(section: Section, problem: (p: string) => void): ReportedProtector[] {
  const at = where(section.mount);
  const drafts: Draft[] = [];
  let current: Draft | null = null;
  let above: string | null = null;

  for (const line of section.lines) {
    if (line.trim() === '') continue;
    const idLine = ID_LINE.exec(line);
    if (idLine?.[1] !== undefined) {
      const parsed = parseKeyId(idLine[1].trim());
      if (parsed.ok) {
        current = { id: parsed.value, header: above, fingerprints: new Set(), passwordMarker: false };
        drafts.push(current);
      } else {
        problem(`${at}: a protector ID that is not a GUID was ignored`);
        current = null;
      }
      above = line;
      continue;
    }
    const scan = scanLine(line);
    if (scan.fingerprints.length > 0 || scan.malformed || scan.clearText) {
      if (current !== null) {
        current.passwordMarker = true;
        for (const fp of scan.fingerprints) current.fingerprints.add(fp);
      } else if (scan.fingerprints.length > 0 || scan.malformed) {
        problem(`${at}: a fingerprint without a protector ID above it was ignored`);
      }
      if (scan.malformed && !scan.clearText) problem(`${at}: a malformed fingerprint was ignored`);
    }
    above = line;
  }

  const out: ReportedProtector[] = [];
  for (const d of drafts) {
    let fingerprint: string | null = null;
    if (d.fingerprints.size === 1) fingerprint = [...d.fingerprints][0] ?? null;
    if (d.fingerprints.size > 1) problem(`${at}: a protector carried more than one fingerprint; none was kept`);
    const type = d.passwordMarker ? 'RecoveryPassword' : headerType(d.header);
    if (type === null) problem(`${at}: the type of a protector was not recognised`);
    out.push({ id: d.id, type, fingerprint });
  }
  return out;
}

/** The protector type named by the header line above an ID line (`Numerical Password:`). */
function headerType(header: string | null): KeyProtectorType | null {
  if (header === null) return null;
  const h = header.trim();
  if (!h.endsWith(':')) return null;
  const label = h.slice(0, -1);
  return lookup(label, PROTECTOR_TYPE_WORDS, parseKeyProtectorType, PROTECTOR_TYPE_PREFIXES).value;
}

/**
 * Add `p` to a volume's protectors, merging a protector listed twice (the same volume queried
 * twice). `index` maps the IDs already in `list` to their entries.
 */
function addProtector(list: ReportedProtector[], index: Map<string, ReportedProtector>, p: ReportedProtector, problem: (s: string) => void, at: string): void {
  const existing = index.get(p.id);
  if (existing === undefined) {
    list.push(p);
    index.set(p.id, p);
    return;
  }
  if (existing.type === null || (p.type === 'RecoveryPassword' && existing.type !== 'RecoveryPassword')) {
    existing.type = p.type;
  }
  if (existing.fingerprint === null) {
    existing.fingerprint = p.fingerprint;
  } else if (p.fingerprint !== null && p.fingerprint !== existing.fingerprint) {
    existing.fingerprint = null;
    problem(`${at}: a protector was listed twice with different fingerprints; none was kept`);
  }
}

// ---------------------------------------------------------------------------------------------
// The report
// ---------------------------------------------------------------------------------------------

export function parseManageBdeReport(statusText: string, protectorsText: string): { volumes: ReportedVolume[]; problems: string[] } {
  const problems = new Set<string>();
  const problem = (p: string): void => {
    problems.add(p);
  };
  const status = typeof statusText === 'string' ? statusText : '';
  const protectors = typeof protectorsText === 'string' ? protectorsText : '';

  // A password left in clear text anywhere (an agent bug) is reported once, without its digits.
  for (const text of [status, protectors]) {
    for (const line of text.split(/\r\n|\r|\n/)) {
      if (scanLine(line).clearText) {
        problem(CLEAR_TEXT_PASSWORD_PROBLEM);
        break;
      }
    }
  }

  const order: string[] = [];
  const byMount = new Map<string, ReportedVolume>();
  const volumeFor = (mount: string): ReportedVolume => {
    let v = byMount.get(mount);
    if (v === undefined) {
      v = {
        mountPoint: mount,
        volumeType: 'unknown',
        volumeStatus: null,
        protectionStatus: null,
        lockStatus: null,
        encryptionMethod: null,
        encryptionPercentage: null,
        protectors: [],
      };
      byMount.set(mount, v);
      order.push(mount);
    }
    return v;
  };

  const statusParts = splitVolumes(status);
  if (status.trim() === '') problem('the manage-bde status text is empty');
  else if (statusParts.sections.length === 0) problem('the manage-bde status text lists no volume');

  const listsProtectors = new Set<string>();
  for (const section of statusParts.sections) {
    if (byMount.has(section.mount)) {
      problem(`${where(section.mount)}: listed twice in the status text; the first was used`);
      continue;
    }
    const { listsProtectors: lists, ...facts } = readStatus(section, problem);
    Object.assign(volumeFor(section.mount), facts);
    if (lists) listsProtectors.add(section.mount);
  }

  const protectorParts = splitVolumes(protectors);
  if (protectors.trim() !== '' && protectorParts.sections.length === 0) {
    problem('the manage-bde protectors text lists no volume');
  }
  if (protectorParts.preamble.some((l) => ID_LINE.test(l))) problem('a protector outside any volume was ignored');
  const protectorIndex = new Map<string, Map<string, ReportedProtector>>();
  for (const section of protectorParts.sections) {
    const volume = volumeFor(section.mount);
    if (volume.volumeType === 'unknown') volume.volumeType = volumeTypeLine(section).type;
    let index = protectorIndex.get(section.mount);
    if (index === undefined) {
      index = new Map();
      protectorIndex.set(section.mount, index);
    }
    for (const p of readProtectors(section, problem)) addProtector(volume.protectors, index, p, problem, where(section.mount));
  }

  for (const mount of listsProtectors) {
    if (byMount.get(mount)?.protectors.length === 0) {
      problem(`${where(mount)}: the status lists key protectors but the protector text has none`);
    }
  }

  const volumes = order.map((m) => byMount.get(m)).filter((v): v is ReportedVolume => v !== undefined);
  return { volumes, problems: [...problems] };
}
