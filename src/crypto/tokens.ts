import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Bearer secrets: session cookies, CSRF tokens, API tokens. 32 random bytes, base64url, with a
 * readable prefix for API tokens (kw_…) so secret scanners and people can recognise them. Only
 * their SHA-256 is stored: with 256 bits of entropy a fast hash is enough.
 */
export const newSecret = (prefix = ''): string => prefix + randomBytes(32).toString('base64url');

export const sha256Hex = (value: string): string => createHash('sha256').update(value, 'utf8').digest('hex');

export function sameHash(a: string, b: string): boolean {
  const x = Buffer.from(a, 'hex');
  const y = Buffer.from(b, 'hex');
  return x.length === y.length && x.length > 0 && timingSafeEqual(x, y);
}

/** One-time recovery codes: 10 characters from an alphabet without look-alikes, shown as xxxxx-xxxxx. */
export function newRecoveryCode(): string {
  const alphabet = 'abcdefghjkmnpqrstuvwxyz23456789';
  const bytes = randomBytes(10);
  let s = '';
  for (const b of bytes) s += alphabet[b % alphabet.length];
  return `${s.slice(0, 5)}-${s.slice(5)}`;
}

/**
 * The agent's fingerprint of a recovery password: HMAC-SHA256 keyed by the device's salt, over
 * the normalized password. The agent computes the same on the device, so a check-in proves "same
 * key" without sending it and the server compares without decrypting anything.
 */
export function agentFingerprint(saltBase64: string, normalizedPassword: string): string {
  return createHmac('sha256', Buffer.from(saltBase64, 'base64')).update(normalizedPassword, 'utf8').digest('hex');
}

export const newSalt = (): string => randomBytes(32).toString('base64');
