import { randomBytes, randomUUID } from 'node:crypto';

/** A random but checksum-valid recovery password (8 random 16-bit values × 11). Clearly test data. */
export function randomRecoveryPassword(): string {
  const b = randomBytes(16);
  const groups: string[] = [];
  for (let i = 0; i < 8; i++) groups.push(String(b.readUInt16LE(i * 2) * 11).padStart(6, '0'));
  return groups.join('-');
}

export const randomKeyId = (): string => randomUUID();

export function csvOf(rows: { device: string; keyId?: string | null; password: string; drive?: string }[]): string {
  return ['Device,Key ID,Recovery Password,Drive', ...rows.map((r) => `${r.device},${r.keyId ?? ''},${r.password},${r.drive ?? 'C:'}`)].join('\n') + '\n';
}

export const bytes = (s: string) => new TextEncoder().encode(s);
