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

export function loadMasterKey(source: MasterKeySource): Buffer {
  if (source.kind === 'env') return decode(source.base64, 'KEYWARDEN_MASTER_KEY');
  let text: string;
  try {
    text = fs.readFileSync(source.path, 'utf8');
  } catch {
    throw vaultError(
      source.generatedByInit
        ? `No master key at ${source.path}. Run "keywarden init" first, or set KEYWARDEN_MASTER_KEY / KEYWARDEN_MASTER_KEY_FILE.`
        : `Cannot read the master key file ${source.path} (KEYWARDEN_MASTER_KEY_FILE).`,
    );
  }
  return decode(text, `The master key file ${source.path}`);
}

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
