import fs from 'node:fs';
import path from 'node:path';
import { createHmac, randomBytes } from 'node:crypto';
import type { MasterKeySource } from '../config.js';
import { badRequest, vaultError } from '../lib/errors.js';

/**
 * The master key (KEK) wraps every data key. It comes from KEYWARDEN_MASTER_KEY (base64),
 * KEYWARDEN_MASTER_KEY_FILE, or the file `keywarden init` generates in the data folder.
 * It never leaves this folder: the rest of the code only sees a Keyring.
 */
export const MASTER_KEY_BYTES = 32;

function decode(base64: string, where: string): Buffer {
  const trimmed = base64.trim();
  const buf = Buffer.from(trimmed, 'base64');
  if (!/^[A-Za-z0-9+/=_-]+$/.test(trimmed) || buf.length !== MASTER_KEY_BYTES) {
    // Say what is wrong without echoing the value.
    throw badRequest(`${where} must be ${MASTER_KEY_BYTES} random bytes in base64 (44 characters); got ${buf.length} bytes`);
  }
  return buf;
}

export function masterKeyExists(source: MasterKeySource): boolean {
  return source.kind === 'env' || fs.existsSync(source.path);
}

/**
 * Every key the source holds, oldest first. The master key is a small key ring: a file (or
 * KEYWARDEN_MASTER_KEY) may hold several keys, one per line (comma or space separated in the
 * variable), so that during a rotation both the old and the new version are at hand. Which
 * vault version each key is follows from the verifiers in master_keys, not from its position.
 * Lines starting with # are comments. A file with one key (the format before rotation existed)
 * is a ring of one.
 */
export function loadMasterKeys(source: MasterKeySource): Buffer[] {
  if (source.kind === 'env') {
    const parts = source.base64.split(/[\s,]+/).filter(Boolean);
    if (parts.length === 0) throw badRequest('KEYWARDEN_MASTER_KEY is empty');
    return parts.map((p, i) => decode(p, parts.length > 1 ? `Key ${i + 1} of KEYWARDEN_MASTER_KEY` : 'KEYWARDEN_MASTER_KEY'));
  }
  const text = readKeyFile(source);
  const lines = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  if (lines.length === 0) throw badRequest(`The master key file ${source.path} holds no key`);
  return lines.map((l, i) =>
    decode(l, lines.length > 1 ? `Line ${i + 1} (not counting comments) of the master key file ${source.path}` : `The master key file ${source.path}`),
  );
}

/**
 * One key, for callers that predate key rings: the newest (last) key of the ring. Code that opens
 * the vault should pass loadMasterKeys() to openKeyring() instead, which finds the right version.
 */
export function loadMasterKey(source: MasterKeySource): Buffer {
  const keys = loadMasterKeys(source);
  return keys[keys.length - 1]!;
}

function readKeyFile(source: Extract<MasterKeySource, { kind: 'file' }>): string {
  let text: string;
  try {
    text = fs.readFileSync(source.path, 'utf8');
  } catch {
    throw vaultError(
      source.generatedByInit
        ? `No master key at ${source.path}. Run "npx keywarden init" first, or set KEYWARDEN_MASTER_KEY / KEYWARDEN_MASTER_KEY_FILE.`
        : `Cannot read the master key file ${source.path} (KEYWARDEN_MASTER_KEY_FILE).`,
    );
  }
  return text;
}

/**
 * Rewrites the key ring file with `keys` (oldest first), atomically: a temporary file with mode
 * 0600 is written, flushed and renamed over the old one, so a crash leaves the old or the new
 * ring, never half of one.
 */
export function writeKeyRingFile(file: string, keys: { key: Buffer; comment: string }[]): void {
  const body =
    '# Keywarden master key ring: one key per line, oldest first. Back this file up (separately from the database).\n' +
    keys.map((k) => `# ${k.comment.replace(/[\r\n]/g, ' ')}\n${k.key.toString('base64')}\n`).join('');
  const tmp = `${file}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  const fd = fs.openSync(tmp, 'wx', 0o600);
  try {
    fs.writeSync(fd, body);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.chmodSync(tmp, 0o600);
  fs.renameSync(tmp, file);
}

export const newMasterKey = (): Buffer => randomBytes(MASTER_KEY_BYTES);

/**
 * Creates a new master key file with mode 0600. Refuses to overwrite: losing the old key
 * would make every stored recovery password unreadable.
 */
export function generateMasterKeyFile(file: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const fd = fs.openSync(file, 'wx', 0o600);
  try {
    fs.writeSync(fd, randomBytes(MASTER_KEY_BYTES).toString('base64') + '\n');
  } finally {
    fs.closeSync(fd);
  }
  fs.chmodSync(file, 0o600);
}

/** A short public name for a master key, so "wrong key" errors can say which one is expected. */
export function masterKeyId(kek: Buffer): string {
  return 'mk-' + createHmac('sha256', kek).update('keywarden/master-key-id/v1').digest('hex').slice(0, 12);
}
