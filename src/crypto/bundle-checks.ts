import { createHash } from 'node:crypto';
import { badRequest } from '../lib/errors.js';

/**
 * The parts of crypto/bundle.ts that need no age code: recipient and passphrase checks and the
 * recipient's fingerprint. The export service (built with the container for every command) uses
 * them; age-encryption itself loads only when a bundle is sealed or opened.
 */

const RECIPIENT = /^age1[02-9ac-hj-np-z]{58}$/;

/** A short public name for a recipient, recorded in the audit log and printed by keygen. */
export function recipientFingerprint(recipient: string): string {
  return 'age:' + createHash('sha256').update(recipient.trim()).digest('hex').slice(0, 16);
}

export function checkRecipient(recipient: string): string {
  const r = recipient.trim();
  if (!RECIPIENT.test(r)) {
    throw badRequest(
      'The recipient must be an age X25519 public key: "age1" followed by 58 characters (make one with "keywarden export keygen" or "age-keygen").',
      {
        field: 'recipient',
      },
    );
  }
  return r;
}

/**
 * Weak passphrases are refused: the bundle sits in a safe or a backup for years, where anyone
 * who copies it can guess offline. The estimate is deliberately simple (length, variety, the
 * obvious words); four or five random words pass easily.
 */
export function passphraseProblem(passphrase: string): string | null {
  if (passphrase.length === 0) return 'The passphrase is empty.';
  if (passphrase !== passphrase.trim()) return 'The passphrase starts or ends with spaces, which are easy to lose when it is typed in again; remove them.';
  if ([...passphrase].length < 12)
    return `The passphrase is too short (${[...passphrase].length} characters): use at least 12, best four or more random words.`;
  if (new Set(passphrase.toLowerCase()).size < 6) return 'The passphrase repeats too few different characters; use four or more random words.';
  const lower = passphrase.toLowerCase().replace(/[^a-z0-9]/g, '');
  const obvious = ['password', 'passwort', 'keywarden', 'bitlocker', 'qwerty', 'azerty', '123456', 'letmein', 'recovery', 'welcome', 'admin'];
  const rest = obvious.reduce((s, w) => s.split(w).join(''), lower);
  if (rest.length < 8) return 'The passphrase is mostly a common word or sequence; use four or more random words.';
  let pool = 0;
  if (/[a-z]/.test(passphrase)) pool += 26;
  if (/[A-Z]/.test(passphrase)) pool += 26;
  if (/[0-9]/.test(passphrase)) pool += 10;
  if (/[^a-zA-Z0-9]/.test(passphrase)) pool += 33;
  if ([...passphrase].length * Math.log2(Math.max(pool, 2)) < 60) return 'The passphrase is too weak: make it longer (four or more random words).';
  return null;
}
