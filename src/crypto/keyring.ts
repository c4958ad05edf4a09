import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { open, OpenError, seal, openText, sealText } from './aead.js';
import { masterKeyId } from './master-key.js';
import { vaultError } from '../lib/errors.js';

/**
 * Key hierarchy:
 *   master key (KEK, outside the database)
 *     └─ data keys (random 256-bit, wrapped by the KEK, stored in data_keys with the KEK version)
 *          ├─ one per client: seals that client's recovery passwords
 *          ├─ 'fingerprint': HMAC key for duplicate detection without decrypting
 *          ├─ 'audit': HMAC key for the audit hash chain
 *          └─ 'secrets': seals other secrets the vault keeps (TOTP seeds), bound to their owner
 * Every wrap and seal binds its context in the AAD, so a wrapped key or ciphertext moved to
 * another client, row or purpose does not open. Unwrapped keys stay inside this module: the
 * rest of the code gets closures (seal/open/fingerprint/mac).
 */

export type DataKeyPurpose = 'client' | 'fingerprint' | 'audit' | 'secrets';
export const GLOBAL_SCOPE = 'global';

export type MasterKeyRow = { version: number; key_id: string; verifier: string };
export type DataKeyRow = {
  id: string;
  purpose: string;
  scope: string;
  version: number;
  kek_version: number;
  wrapped_key: string;
};

/** Storage the keyring needs; implemented by modules/vault/vault.repo.ts. `E` is a DB executor. */
export interface KeyStore<E> {
  listMasterKeys(exec: E): Promise<MasterKeyRow[]>;
  insertMasterKey(exec: E, row: MasterKeyRow & { created_at: string }): Promise<void>;
  listDataKeys(exec: E, purpose: DataKeyPurpose, scope: string): Promise<DataKeyRow[]>;
  insertDataKey(exec: E, row: DataKeyRow & { created_at: string }): Promise<void>;
}

const VERIFIER_PLAINTEXT = 'keywarden master key check';
const verifierAad = (version: number) => `keywarden/master-key-check/v1|version=${version}`;
const wrapAad = (purpose: string, scope: string, version: number, kekVersion: number) =>
  `keywarden/data-key/v1|purpose=${purpose}|scope=${scope}|version=${version}|kek=${kekVersion}`;
const recoveryPasswordAad = (clientId: string, keyRowId: string, dataKeyVersion: number) =>
  `keywarden/recovery-password/v1|client=${clientId}|key=${keyRowId}|dk=${dataKeyVersion}`;

export type SealedPassword = { ciphertext: string; dataKeyVersion: number };

export type ClientCipher = {
  /** Other secrets that belong to a client (e.g. its Graph app secret), bound to their context. */
  sealSecret(context: string, plaintext: string): SealedPassword;
  openSecret(context: string, sealed: SealedPassword): string;
  sealRecoveryPassword(keyRowId: string, normalizedPassword: string): SealedPassword;
  /** Throws a vault error (never the plaintext or key) when the ciphertext does not open here. */
  openRecoveryPassword(keyRowId: string, sealed: SealedPassword): string;
};

export type Fingerprinter = (clientId: string, normalizedPassword: string) => string;

export type AuditMac = {
  mac(prevHash: string, payload: string): string;
  verify(prevHash: string, payload: string, hash: string): boolean;
};

export type SecretCipher = {
  seal(context: string, plaintext: string): string;
  open(context: string, sealed: string): string;
};

export type Keyring<E> = {
  readonly kekVersion: number;
  readonly masterKeyId: string;
  /** Creates a global data key (e.g. 'secrets' for vaults made before it existed) if missing. */
  ensureGlobalKey(exec: E, purpose: 'secrets', now: string): Promise<void>;
  secretCipher(exec: E): Promise<SecretCipher>;
  createClientKey(exec: E, clientId: string, now: string): Promise<void>;
  clientCipher(exec: E, clientId: string): Promise<ClientCipher>;
  fingerprinter(exec: E): Promise<Fingerprinter>;
  auditMac(exec: E): Promise<AuditMac>;
};

function newDataKeyRow(
  kek: Buffer,
  kekVersion: number,
  purpose: DataKeyPurpose,
  scope: string,
  version: number,
  id: string,
): DataKeyRow {
  const dek = randomBytes(32);
  const wrapped = seal(kek, dek, wrapAad(purpose, scope, version, kekVersion)).toString('base64');
  dek.fill(0);
  return { id, purpose, scope, version, kek_version: kekVersion, wrapped_key: wrapped };
}

/** First-time setup of an empty vault: register the master key and create the global data keys. */
export async function initKeyring<E>(
  store: KeyStore<E>,
  exec: E,
  kek: Buffer,
  now: string,
  newId: () => string,
): Promise<void> {
  const version = 1;
  await store.insertMasterKey(exec, {
    version,
    key_id: masterKeyId(kek),
    verifier: sealText(kek, VERIFIER_PLAINTEXT, verifierAad(version)),
    created_at: now,
  });
  for (const purpose of ['fingerprint', 'audit', 'secrets'] as const) {
    await store.insertDataKey(exec, { ...newDataKeyRow(kek, version, purpose, GLOBAL_SCOPE, 1, newId()), created_at: now });
  }
}

/**
 * Opens the keyring for an initialized vault: finds which registered master-key version the
 * supplied key is, or fails clearly when it is none of them.
 */
export async function openKeyring<E>(store: KeyStore<E>, exec: E, kek: Buffer, newId: () => string): Promise<Keyring<E>> {
  const masters = await store.listMasterKeys(exec);
  if (masters.length === 0) throw vaultError('This vault has no master key registered. Run "keywarden init".');
  const supplied = masterKeyId(kek);
  let kekVersion: number | undefined;
  for (const m of masters) {
    try {
      if (openText(kek, m.verifier, verifierAad(m.version)) === VERIFIER_PLAINTEXT) kekVersion = m.version;
    } catch (e) {
      if (!(e instanceof OpenError)) throw e;
    }
  }
  if (kekVersion === undefined) {
    const expected = masters.map((m) => m.key_id).join(' or ');
    throw vaultError(
      `The master key does not unlock this vault: it expects master key ${expected}, but ${supplied} was supplied. ` +
        'Check KEYWARDEN_MASTER_KEY / KEYWARDEN_MASTER_KEY_FILE, or the master.key file in the data folder.',
    );
  }
  const currentKek = kekVersion;

  // Unwrapped data keys, cached for the life of the process. Only keys read back from the store
  // are cached, so a key created in a transaction that later rolls back is never remembered.
  const cache = new Map<string, Buffer>();
  const unwrap = (row: DataKeyRow): Buffer => {
    const cacheKey = `${row.purpose}|${row.scope}|${row.version}`;
    const hit = cache.get(cacheKey);
    if (hit) return hit;
    if (row.kek_version !== currentKek) {
      throw vaultError(
        `Data key ${row.purpose}/${row.version} is wrapped by master key version ${row.kek_version}, but version ${currentKek} was supplied.`,
      );
    }
    let dek: Buffer;
    try {
      dek = open(kek, Buffer.from(row.wrapped_key, 'base64'), wrapAad(row.purpose, row.scope, row.version, row.kek_version));
    } catch {
      throw vaultError(`Data key ${row.purpose}/${row.version} for ${row.scope === GLOBAL_SCOPE ? 'the vault' : 'client ' + row.scope} does not open: it was altered or moved.`);
    }
    cache.set(cacheKey, dek);
    return dek;
  };

  const loadAll = async (exec: E, purpose: DataKeyPurpose, scope: string): Promise<Map<number, Buffer>> => {
    const rows = await store.listDataKeys(exec, purpose, scope);
    if (rows.length === 0) {
      throw vaultError(`No ${purpose} data key found for ${scope === GLOBAL_SCOPE ? 'the vault' : 'client ' + scope}.`);
    }
    return new Map(rows.map((r) => [r.version, unwrap(r)]));
  };
  const newest = (keys: Map<number, Buffer>): [number, Buffer] => {
    const v = Math.max(...keys.keys());
    return [v, keys.get(v)!];
  };

  return {
    kekVersion: currentKek,
    masterKeyId: supplied,

    async ensureGlobalKey(exec, purpose, now) {
      if ((await store.listDataKeys(exec, purpose, GLOBAL_SCOPE)).length) return;
      await store.insertDataKey(exec, { ...newDataKeyRow(kek, currentKek, purpose, GLOBAL_SCOPE, 1, newId()), created_at: now });
    },

    async secretCipher(exec) {
      const [version, key] = newest(await loadAll(exec, 'secrets', GLOBAL_SCOPE));
      const aad = (context: string) => `keywarden/secret/v1|${context}|dk=${version}`;
      return {
        seal: (context, plaintext) => sealText(key, plaintext, aad(context)),
        open: (context, sealed) => {
          try {
            return openText(key, sealed, aad(context));
          } catch {
            throw vaultError(`A stored secret (${context.split('=')[0]}) does not decrypt: it was altered or moved.`);
          }
        },
      };
    },

    async createClientKey(exec, clientId, now) {
      await store.insertDataKey(exec, { ...newDataKeyRow(kek, currentKek, 'client', clientId, 1, newId()), created_at: now });
    },

    async clientCipher(exec, clientId) {
      const keys = await loadAll(exec, 'client', clientId);
      const [version, current] = newest(keys);
      const secretAad = (context: string, v: number) => `keywarden/client-secret/v1|client=${clientId}|${context}|dk=${v}`;
      return {
        sealSecret(context, plaintext) {
          return { ciphertext: sealText(current, plaintext, secretAad(context, version)), dataKeyVersion: version };
        },
        openSecret(context, sealed) {
          const dek = keys.get(sealed.dataKeyVersion);
          try {
            if (!dek) throw new Error('no key');
            return openText(dek, sealed.ciphertext, secretAad(context, sealed.dataKeyVersion));
          } catch {
            throw vaultError(`A stored secret of client ${clientId} (${context.split('=')[0]}) does not decrypt: it was altered or moved.`);
          }
        },
        sealRecoveryPassword(keyRowId, normalizedPassword) {
          return {
            ciphertext: sealText(current, normalizedPassword, recoveryPasswordAad(clientId, keyRowId, version)),
            dataKeyVersion: version,
          };
        },
        openRecoveryPassword(keyRowId, sealed) {
          const dek = keys.get(sealed.dataKeyVersion);
          if (!dek) throw vaultError(`Recovery key ${keyRowId} is sealed with a data key version this client does not have.`);
          try {
            return openText(dek, sealed.ciphertext, recoveryPasswordAad(clientId, keyRowId, sealed.dataKeyVersion));
          } catch {
            throw vaultError(
              `The stored recovery password of key record ${keyRowId} does not decrypt: it was altered, or copied from another record or client.`,
            );
          }
        },
      };
    },

    async fingerprinter(exec) {
      const [, fk] = newest(await loadAll(exec, 'fingerprint', GLOBAL_SCOPE));
      return (clientId, normalizedPassword) =>
        createHmac('sha256', fk).update(`recovery-password/v1|${clientId}|${normalizedPassword}`).digest('hex');
    },

    async auditMac(exec) {
      const [, ak] = newest(await loadAll(exec, 'audit', GLOBAL_SCOPE));
      const mac = (prevHash: string, payload: string) =>
        createHmac('sha256', ak).update(prevHash).update('\n').update(payload).digest('hex');
      return {
        mac,
        verify(prevHash, payload, hash) {
          const expected = Buffer.from(mac(prevHash, payload), 'hex');
          const given = Buffer.from(hash, 'hex');
          return given.length === expected.length && timingSafeEqual(given, expected);
        },
      };
    },
  };
}
