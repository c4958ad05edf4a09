import { Secret, TOTP } from 'otpauth';

/**
 * TOTP second factor (RFC 6238: SHA-1, 6 digits, 30 s), what every authenticator app speaks.
 * The secret is generated here and sealed by the keyring before it is stored.
 */
const make = (secretBase32: string, label = 'user') =>
  new TOTP({ issuer: 'Keywarden', label, algorithm: 'SHA1', digits: 6, period: 30, secret: Secret.fromBase32(secretBase32) });

export const newTotpSecret = (): string => new Secret({ size: 20 }).base32;

export const totpUri = (secretBase32: string, accountLabel: string): string => make(secretBase32, accountLabel).toString();

const PERIOD_MS = 30_000;

/**
 * Accepts the current code and one step either side (clock drift). Returns the time step the
 * code belongs to, so the caller can refuse a code it has already accepted (replay); null when
 * the code is wrong.
 */
export function checkTotp(secretBase32: string, code: string, at: number = Date.now()): number | null {
  const c = code.replace(/\s/g, '');
  if (!/^\d{6}$/.test(c)) return null;
  const delta = make(secretBase32).validate({ token: c, timestamp: at, window: 1 });
  return delta === null ? null : Math.floor(at / PERIOD_MS) + delta;
}

/** For tests and tools: the code an authenticator would show at a given time. */
export const totpCodeAt = (secretBase32: string, at: number = Date.now()): string => make(secretBase32).generate({ timestamp: at });
