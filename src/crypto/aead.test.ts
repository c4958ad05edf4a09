import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { open, OpenError, seal, openText, sealText } from './aead.js';

describe('AES-256-GCM envelope', () => {
  const key = randomBytes(32);

  it('round-trips and uses a fresh IV each time', () => {
    const a = sealText(key, 'secret', 'ctx');
    const b = sealText(key, 'secret', 'ctx');
    expect(a).not.toEqual(b);
    expect(openText(key, a, 'ctx')).toBe('secret');
  });

  it('refuses a different AAD, key, or a flipped bit', () => {
    const sealed = seal(key, Buffer.from('secret'), 'client=a|key=1');
    expect(() => open(key, sealed, 'client=a|key=2')).toThrow(OpenError);
    expect(() => open(randomBytes(32), sealed, 'client=a|key=1')).toThrow(OpenError);
    for (const i of [0, 5, 20, sealed.length - 1]) {
      const bad = Buffer.from(sealed);
      bad[i]! ^= 1;
      expect(() => open(key, bad, 'client=a|key=1')).toThrow(OpenError);
    }
    expect(() => open(key, Buffer.alloc(3), 'x')).toThrow(OpenError);
  });
});
