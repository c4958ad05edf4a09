import { hash, verify } from '@node-rs/argon2';

/**
 * Login passwords and one-time recovery codes: argon2id with OWASP's minimum profile
 * (19 MiB, 2 iterations, 1 lane), about 50 ms per hash on the reference machine.
 */
// algorithm 2 = Argon2id (a const enum in the typings, which isolated modules cannot import).
const OPTIONS = { algorithm: 2, memoryCost: 19456, timeCost: 2, parallelism: 1 } as const;

export const hashPassword = (password: string): Promise<string> => hash(password, OPTIONS);

export async function verifyPassword(stored: string, password: string): Promise<boolean> {
  try {
    return await verify(stored, password);
  } catch {
    return false;
  }
}

// Verifying against this when the account does not exist keeps "no such user" and "wrong
// password" equally slow, so response time does not reveal which e-mail addresses exist.
let dummy: Promise<string> | undefined;
export async function burnPasswordCheck(password: string): Promise<void> {
  dummy ??= hashPassword('keywarden-dummy-password');
  await verifyPassword(await dummy, password);
}
