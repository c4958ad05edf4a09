import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Signed webhooks: `X-Keywarden-Signature: v1=<hex HMAC-SHA256(secret, timestamp + "." + body)>`
 * with `X-Keywarden-Timestamp` (Unix seconds). Binding the timestamp into the MAC lets a receiver
 * refuse old (replayed) requests; docs/notifications.md has the receiver's side.
 */
export const SIGNATURE_HEADER = 'X-Keywarden-Signature';
export const TIMESTAMP_HEADER = 'X-Keywarden-Timestamp';

export function signWebhook(secret: string, timestamp: string, body: string): string {
  return `v1=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

/** The receiver's check, as documented (used by tests and by anyone embedding Keywarden's verifier). */
export function verifyWebhook(secret: string, timestamp: string, body: string, header: string, nowSeconds: number, toleranceSeconds = 300): boolean {
  const ts = Number(timestamp);
  if (!Number.isInteger(ts) || Math.abs(nowSeconds - ts) > toleranceSeconds) return false;
  const expected = Buffer.from(signWebhook(secret, timestamp, body));
  const given = Buffer.from(header);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/** A new signing secret when the admin does not bring one: 32 random bytes, URL-safe. */
export const newWebhookSecret = (): string => `kwwh_${randomBytes(32).toString('base64url')}`;
