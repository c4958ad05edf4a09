/**
 * Deterministic randomness for demo data: the same seed gives the same clients, devices, key IDs
 * and recovery passwords, so screenshots and bug reports about the demo can be reproduced.
 * NOT for anything secret: this is a plain PRNG (mulberry32), never used outside demo data.
 */
export type Rng = {
  /** A float in [0, 1). */
  next(): number;
  int(min: number, maxInclusive: number): number;
  pick<T>(xs: readonly T[]): T;
  chance(p: number): boolean;
  hex(n: number): string;
  /** A GUID-shaped string (lower case, no braces), e.g. a BitLocker key ID. */
  guid(): string;
  /**
   * A checksum-valid recovery password: 8 groups, each a 16-bit value × 11, zero-padded to 6
   * digits (the BitLocker rule that src/domain/recovery-password.ts checks).
   */
  recoveryPassword(): string;
};

export function createRng(seed: number): Rng {
  let a = seed >>> 0;
  const next = () => {
    // mulberry32: small, fast, good enough for fake data.
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (min: number, max: number) => min + Math.floor(next() * (max - min + 1));
  const hex = (n: number) => {
    let s = '';
    while (s.length < n)
      s += Math.floor(next() * 0x10000)
        .toString(16)
        .padStart(4, '0');
    return s.slice(0, n);
  };
  return {
    next,
    int,
    pick: (xs) => xs[Math.floor(next() * xs.length)]!,
    chance: (p) => next() < p,
    hex,
    guid: () => {
      const h = hex(32);
      // Version 4 / variant bits, like the GUIDs Windows generates for protectors.
      const variant = ((parseInt(h[16]!, 16) & 0x3) | 0x8).toString(16);
      return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-${variant}${h.slice(17, 20)}-${h.slice(20, 32)}`;
    },
    recoveryPassword: () => Array.from({ length: 8 }, () => String(int(0, 0xffff) * 11).padStart(6, '0')).join('-'),
  };
}
