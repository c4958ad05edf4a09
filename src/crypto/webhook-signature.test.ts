import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { signWebhook, verifyWebhook } from './webhook-signature.js';

describe('webhook signatures', () => {
  const secret = 'test-signing-secret-0123456789';
  const body = '{"id":"d1","events":[]}';

  it('is v1= hex HMAC-SHA256 over "timestamp.body", exactly as documented', () => {
    const expected = createHmac('sha256', secret).update(`1700000000.${body}`).digest('hex');
    expect(signWebhook(secret, '1700000000', body)).toBe(`v1=${expected}`);
  });

  it('verifies a fresh signature and refuses a changed body, another secret or an old timestamp', () => {
    const sig = signWebhook(secret, '1700000000', body);
    expect(verifyWebhook(secret, '1700000000', body, sig, 1700000100)).toBe(true);
    expect(verifyWebhook(secret, '1700000000', body + ' ', sig, 1700000100)).toBe(false);
    expect(verifyWebhook('another-secret-0123456789', '1700000000', body, sig, 1700000100)).toBe(false);
    expect(verifyWebhook(secret, '1700000000', body, sig, 1700000000 + 301)).toBe(false);
    expect(verifyWebhook(secret, 'x', body, sig, 1700000000)).toBe(false);
  });
});
