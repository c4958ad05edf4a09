import { randomUUID } from 'node:crypto';

/** Row identifiers: random UUIDs, generated in the app so a ciphertext's AAD can name its row. */
export const newId = (): string => randomUUID();
