import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

/**
 * AES-256-GCM with a fresh 96-bit IV per message and caller-supplied AAD.
 * Sealed form: [format 0x01][iv 12][tag 16][ciphertext], base64 when stored as text.
 * The AAD is not stored: the opener must rebuild it from where the ciphertext sits (client,
 * row, purpose), which is what makes a ciphertext copied to another row fail to open.
 */
const FORMAT = 0x01;
const IV_LEN = 12;
const TAG_LEN = 16;

export class OpenError extends Error {
  constructor() {
    super('ciphertext did not authenticate');
    this.name = 'OpenError';
  }
}

export function seal(key: Buffer, plaintext: Buffer, aad: string): Buffer {
  const iv = randomBytes(IV_LEN);
  const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_LEN });
  cipher.setAAD(Buffer.from(aad, 'utf8'));
  const ct = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([Buffer.of(FORMAT), iv, cipher.getAuthTag(), ct]);
}

export function open(key: Buffer, sealed: Buffer, aad: string): Buffer {
  if (sealed.length < 1 + IV_LEN + TAG_LEN || sealed[0] !== FORMAT) throw new OpenError();
  const iv = sealed.subarray(1, 1 + IV_LEN);
  const tag = sealed.subarray(1 + IV_LEN, 1 + IV_LEN + TAG_LEN);
  const ct = sealed.subarray(1 + IV_LEN + TAG_LEN);
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_LEN });
    decipher.setAAD(Buffer.from(aad, 'utf8'));
    decipher.setAuthTag(tag);
    return Buffer.concat([decipher.update(ct), decipher.final()]);
  } catch {
    throw new OpenError();
  }
}

export const sealText = (key: Buffer, plaintext: string, aad: string): string => seal(key, Buffer.from(plaintext, 'utf8'), aad).toString('base64');

export const openText = (key: Buffer, sealed: string, aad: string): string => open(key, Buffer.from(sealed, 'base64'), aad).toString('utf8');
