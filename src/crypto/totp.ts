import { Secret, TOTP } from 'otpauth';

/**
 * TOTP second factor (RFC 6238: SHA-1, 6 digits, 30 s), what every authenticator app speaks.
 * The secret is generated here and sealed by the keyring before it is stored.
 */
const make = (secretBase32: string, label = 'user') =>
  new TOTP({ issuer: 'Keywarden', label, algorithm: 'SHA1', digits: 6, period: 30, secret: Secret.fromBase32(secretBase32) });

export const newTotpSecret = (): string => new Secret({ size: 20 }).base32;

export const totpUri = (secretBase32: string, accountLabel: string): string => make(secretBase32, accountLabel).toString();

/** Accepts the current code and one step either side (clock drift). */
export function checkTotp(secretBase32: string, code: string, at: number = Date.now()): boolean {
  const c = code.replace(/\s/g, '');
  if (!/^\d{6}$/.test(c)) return false;
  return make(secretBase32).validate({ token: c, timestamp: at, window: 1 }) !== null;
}

/** For tests and tools: the code an authenticator would show at a given time. */
export const totpCodeAt = (secretBase32: string, at: number = Date.now()): string => make(secretBase32).generate({ timestamp: at });
