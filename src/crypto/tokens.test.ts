import { describe, expect, it } from 'vitest';
import { agentFingerprint, newSecret, sameHash, sha256Hex } from './tokens.js';

describe('agent fingerprints', () => {
  it('match the test vector the agent README publishes (HMAC-SHA256, salt bytes 00..1f)', () => {
    const salt = Buffer.from(Array.from({ length: 32 }, (_, i) => i)).toString('base64');
    expect(agentFingerprint(salt, '471207-278498-422125-177177-561902-537405-468006-693451')).toBe(
      'd5e65052816722866d44956e958be6ebdf56a37df4815e16f9cb17b77a26ecff',
    );
  });
  it('differ per device salt', () => {
    const pw = '471207-278498-422125-177177-561902-537405-468006-693451';
    expect(agentFingerprint(Buffer.alloc(32, 1).toString('base64'), pw)).not.toBe(agentFingerprint(Buffer.alloc(32, 2).toString('base64'), pw));
  });
});

describe('bearer secrets', () => {
  it('are 256-bit, prefixed, and compared by hash', () => {
    const s = newSecret('kw_');
    expect(s).toMatch(/^kw_[A-Za-z0-9_-]{43}$/);
    expect(sameHash(sha256Hex(s), sha256Hex(s))).toBe(true);
    expect(sameHash(sha256Hex(s), sha256Hex(newSecret('kw_')))).toBe(false);
    expect(sameHash('', '')).toBe(false);
  });
});
