import { Decrypter, Encrypter, armor, generateX25519Identity, identityToRecipient } from 'age-encryption';
import { badRequest } from '../lib/errors.js';
import { checkRecipient, passphraseProblem } from './bundle-checks.js';

/**
 * Offline break-glass bundles are age files (https://age-encryption.org/v1), written and read by
 * the age-encryption library: a specified format that the `age` and `rage` tools open too, so a
 * bundle stays readable when Keywarden itself is gone. Either to a passphrase (scrypt, work factor
 * 2^18, the age default) or to an X25519 recipient public key (`age1…`), which lets automation
 * write bundles without anyone knowing a secret. The file is ASCII-armored (PEM-like text), which
 * survives being pasted into a ticket or a password manager; binary age files are read as well.
 *
 * Nothing here stores or logs a passphrase or an identity; errors never quote one.
 */

// The checks that need no age code live in bundle-checks.ts (the export service uses them without
// loading age-encryption); re-exported so callers keep one import.
export { checkRecipient, passphraseProblem, recipientFingerprint } from './bundle-checks.js';

export type BundleProtection = { kind: 'passphrase'; passphrase: string } | { kind: 'recipient'; recipient: string };
export type BundleKey = { kind: 'passphrase'; passphrase: string } | { kind: 'identity'; identity: string };

/** The kind of failure when opening a bundle, so callers can word it and pick an exit code. */
export class BundleOpenError extends Error {
  constructor(
    readonly reason: 'wrong-key' | 'damaged' | 'not-a-bundle',
    message: string,
  ) {
    super(message);
    this.name = 'BundleOpenError';
  }
}

const IDENTITY = /^AGE-SECRET-KEY-1[02-9AC-HJ-NP-Z]{58}$/;
const ARMOR_BEGIN = '-----BEGIN AGE ENCRYPTED FILE-----';
const BINARY_MAGIC = 'age-encryption.org/v1\n';

/** Encrypts one bundle; returns the armored age file. */
export async function sealBundle(plaintext: string, to: BundleProtection): Promise<string> {
  const e = new Encrypter();
  if (to.kind === 'passphrase') {
    const problem = passphraseProblem(to.passphrase);
    if (problem) throw badRequest(problem, { field: 'passphrase' });
    e.setPassphrase(to.passphrase);
  } else {
    e.addRecipient(checkRecipient(to.recipient));
  }
  return armor.encode(await e.encrypt(plaintext));
}

/** Reads an identity file as age-keygen writes it: comment lines (#) and one AGE-SECRET-KEY-1… line. */
export function parseIdentityFile(text: string): string {
  const keys = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  const key = keys.find((l) => IDENTITY.test(l));
  if (!key) throw badRequest('The identity file holds no age X25519 identity (a line starting with AGE-SECRET-KEY-1).');
  return key;
}

/** A new X25519 identity and its public recipient, in the text form age-keygen writes. */
export async function generateIdentity(now: string): Promise<{ identity: string; recipient: string; fileText: string }> {
  const identity = await generateX25519Identity();
  const recipient = await identityToRecipient(identity);
  const fileText = `# created: ${now}\n# public key: ${recipient}\n# Keywarden export identity: keep this file secret and offline; it opens every bundle made for the key above.\n${identity}\n`;
  return { identity, recipient, fileText };
}

function unarmor(file: Uint8Array): Uint8Array {
  const head = Buffer.from(file.subarray(0, 64)).toString('latin1');
  if (head.trimStart().startsWith(ARMOR_BEGIN)) {
    try {
      return armor.decode(Buffer.from(file).toString('latin1'));
    } catch {
      throw new BundleOpenError('damaged', 'The bundle is damaged or was altered (its text armor does not decode).');
    }
  }
  if (head.startsWith(BINARY_MAGIC)) return file;
  throw new BundleOpenError('not-a-bundle', 'This file is not an encrypted Keywarden bundle (no age header).');
}

/** Whether a bundle was made for a passphrase or for a recipient (read from its public header). */
export function bundleProtection(file: Uint8Array): 'passphrase' | 'recipient' {
  const bytes = unarmor(file);
  const header = Buffer.from(bytes.subarray(0, Math.min(bytes.length, 4096))).toString('latin1');
  return /\n-> scrypt /.test(header) ? 'passphrase' : 'recipient';
}

/**
 * Decrypts a bundle. A wrong passphrase or identity and a damaged file are told apart as far as
 * the format allows: the header says whether anything matched; the payload is authenticated in
 * 64 KiB chunks with a final-chunk flag, so any flipped byte or cut-off end is caught.
 */
export async function openBundle(file: Uint8Array, key: BundleKey): Promise<string> {
  const bytes = unarmor(file);
  const d = new Decrypter();
  if (key.kind === 'passphrase') d.addPassphrase(key.passphrase);
  else d.addIdentity(key.identity);
  try {
    return await d.decrypt(bytes, 'text');
  } catch (e) {
    const msg = (e as Error)?.message ?? '';
    if (/no identity matched/.test(msg)) {
      const wanted = bundleProtection(bytes);
      if (key.kind === 'passphrase' && wanted === 'recipient') {
        throw new BundleOpenError('wrong-key', 'This bundle was made for a recipient key, not a passphrase: open it with --identity FILE.');
      }
      if (key.kind === 'identity' && wanted === 'passphrase') {
        throw new BundleOpenError(
          'wrong-key',
          'This bundle is protected by a passphrase, not a recipient key: open it with --passphrase-file FILE (or type the passphrase).',
        );
      }
      throw new BundleOpenError(
        'wrong-key',
        key.kind === 'passphrase'
          ? 'The passphrase does not open this bundle: wrong passphrase (or the header of the file was altered).'
          : 'The identity does not open this bundle: it was made for another recipient key.',
      );
    }
    if (/unrecognized identity|invalid identity/.test(msg)) throw badRequest('The identity is not a valid age X25519 identity.');
    throw new BundleOpenError('damaged', 'The bundle is damaged or was altered: it does not decrypt as written. Use another copy.');
  }
}
