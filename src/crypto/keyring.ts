import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { seal, openText, sealText } from './aead.js';
import { masterKeyId } from './master-key.js';
import { createLocalKekProvider, VERIFIER_PLAINTEXT, verifierAad, type KekProvider } from './kek-provider.js';
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
  /** Registered master-key versions that are not retired, newest first. */
  listMasterKeys(exec: E): Promise<MasterKeyRow[]>;
  insertMasterKey(exec: E, row: MasterKeyRow & { created_at: string }): Promise<void>;
  listDataKeys(exec: E, purpose: DataKeyPurpose, scope: string): Promise<DataKeyRow[]>;
  insertDataKey(exec: E, row: DataKeyRow & { created_at: string }): Promise<void>;
  // Lifecycle: master-key rotation and client crypto-shred.
  /** Every data key of every purpose and scope (for a rewrap). Locks the rows on PostgreSQL. */
  listAllDataKeys(exec: E): Promise<DataKeyRow[]>;
  /** Every master-key version ever registered, retired ones included. */
  listAllMasterKeys(exec: E): Promise<MasterKeyRow[]>;
  /** The highest master-key version ever registered, retired ones included (0 when none). */
  maxMasterKeyVersion(exec: E): Promise<number>;
  rewrapDataKey(exec: E, id: string, kekVersion: number, wrappedKey: string): Promise<void>;
  retireMasterKeys(exec: E, versions: number[], now: string): Promise<void>;
  /**
   * The registered, non-retired versions, locked against a concurrent rotation (FOR SHARE on
   * PostgreSQL; SQLite write transactions are serialized anyway): a data key created while a
   * rotation runs is wrapped either before the rotation (and then rewrapped by it) or after.
   */
  lockMasterKeys(exec: E): Promise<MasterKeyRow[]>;
  /** Removes the wrapped data keys of one scope and purpose; returns how many rows went. */
  deleteDataKeys(exec: E, purpose: DataKeyPurpose, scope: string): Promise<number>;
}
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
  /** The master-key version new data keys are wrapped with (changes after a rotation). */
  readonly kekVersion: number;
  readonly masterKeyId: string;
  readonly provider: KekProvider;
  /** Creates a global data key (e.g. 'secrets' for vaults made before it existed) if missing. */
  ensureGlobalKey(exec: E, purpose: 'secrets', now: string): Promise<void>;
  secretCipher(exec: E): Promise<SecretCipher>;
  createClientKey(exec: E, clientId: string, now: string): Promise<void>;
  /**
   * Crypto-shred: removes every wrapped data key of one client from the store (and this process's
   * cache). Every ciphertext sealed with them becomes unreadable at once. Returns the rows removed.
   */
  destroyClientKeys(exec: E, clientId: string): Promise<number>;
  clientCipher(exec: E, clientId: string): Promise<ClientCipher>;
  fingerprinter(exec: E): Promise<Fingerprinter>;
  auditMac(exec: E): Promise<AuditMac>;
};

function newDataKeyRow(kek: Buffer, kekVersion: number, purpose: DataKeyPurpose, scope: string, version: number, id: string): DataKeyRow {
  const dek = randomBytes(32);
  const wrapped = seal(kek, dek, wrapAad(purpose, scope, version, kekVersion)).toString('base64');
  dek.fill(0);
  return { id, purpose, scope, version, kek_version: kekVersion, wrapped_key: wrapped };
}

async function newDataKeyRowWith(
  provider: KekProvider,
  kekVersion: number,
  purpose: DataKeyPurpose,
  scope: string,
  version: number,
  id: string,
): Promise<DataKeyRow> {
  const dek = randomBytes(32);
  const wrapped = (await provider.wrap(kekVersion, dek, wrapAad(purpose, scope, version, kekVersion))).toString('base64');
  dek.fill(0);
  return { id, purpose, scope, version, kek_version: kekVersion, wrapped_key: wrapped };
}

/**
 * Rewraps every data key under a new master-key version inside the caller's transaction: each
 * data key is unwrapped with the version it is wrapped under and wrapped again under `toVersion`.
 * The data keys themselves do not change, so no ciphertext is touched and every process that has
 * them unwrapped in memory keeps working. Returns how many data keys were rewrapped.
 */
export async function rewrapAllDataKeys<E>(store: KeyStore<E>, exec: E, provider: KekProvider, toVersion: number): Promise<number> {
  if (!provider.hasVersion(toVersion)) throw vaultError(`Master key version ${toVersion} is not loaded.`);
  let n = 0;
  for (const row of await store.listAllDataKeys(exec)) {
    if (row.kek_version === toVersion) continue;
    if (!provider.hasVersion(row.kek_version)) {
      throw vaultError(
        `Data key ${row.purpose}/${row.version} is wrapped by master key version ${row.kek_version}, which is not in the key ring: nothing was changed.`,
      );
    }
    let dek: Buffer;
    try {
      dek = await provider.unwrap(row.kek_version, Buffer.from(row.wrapped_key, 'base64'), wrapAad(row.purpose, row.scope, row.version, row.kek_version));
    } catch {
      throw vaultError(`Data key ${row.purpose}/${row.version} does not open: it was altered or moved. Nothing was changed.`);
    }
    const wrapped = (await provider.wrap(toVersion, dek, wrapAad(row.purpose, row.scope, row.version, toVersion))).toString('base64');
    dek.fill(0);
    await store.rewrapDataKey(exec, row.id, toVersion, wrapped);
    n++;
  }
  return n;
}

/** The verifier row for a new master-key version: proves later that a supplied key is that version. */
export async function masterKeyRowFor(provider: KekProvider, version: number): Promise<MasterKeyRow> {
  return {
    version,
    key_id: provider.keyId(version),
    verifier: (await provider.wrap(version, Buffer.from(VERIFIER_PLAINTEXT, 'utf8'), verifierAad(version))).toString('base64'),
  };
}

/** First-time setup of an empty vault: register the master key and create the global data keys. */
export async function initKeyring<E>(store: KeyStore<E>, exec: E, kek: Buffer, now: string, newId: () => string): Promise<void> {
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
export async function openKeyring<E>(
  store: KeyStore<E>,
  exec: E,
  kek: Buffer | Buffer[] | (() => Buffer[]) | KekProvider,
  newId: () => string,
): Promise<Keyring<E>> {
  const masters = await store.listMasterKeys(exec);
  if (masters.length === 0) throw vaultError('This vault has no master key registered. Run "keywarden init".');
  // A raw key, a ring of them, or a function that reads the ring (again on every refresh, so a
  // rotation by another process is picked up) is the built-in local provider; anything else plugs in here.
  let provider: KekProvider;
  if (Buffer.isBuffer(kek)) provider = createLocalKekProvider(() => [kek], masters);
  else if (Array.isArray(kek)) provider = createLocalKekProvider(() => kek, masters);
  else if (typeof kek === 'function') provider = createLocalKekProvider(kek, masters);
  else {
    provider = kek;
    await provider.refresh(masters);
  }

  /**
   * Another process may have rotated the master key since this one started: the version this
   * process wraps new data keys with must still be registered and not retired. If it is not, the
   * provider re-reads its keys (the ring file now holds the new version) and binds them again.
   */
  const ensureCurrent = async (exec: E): Promise<number> => {
    // Empty when a rotation retired the version this statement waited on: read again.
    let registered: MasterKeyRow[] = [];
    for (let i = 0; i < 3 && registered.length === 0; i++) registered = await store.lockMasterKeys(exec);
    if (registered.length === 0) throw vaultError('No current master key version is registered.');
    const newest = Math.max(...registered.map((m) => m.version));
    if (provider.currentVersion() !== newest) await provider.refresh(registered);
    if (!provider.hasVersion(newest)) {
      throw vaultError(
        `The master key was rotated to version ${newest}, which this process does not have. Add the new key to the key ring (KEYWARDEN_MASTER_KEY / KEYWARDEN_MASTER_KEY_FILE) and restart.`,
      );
    }
    return newest;
  };

  // Unwrapped data keys, cached for the life of the process. Only keys read back from the store
  // are cached, so a key created in a transaction that later rolls back is never remembered. The
  // cache is keyed by the data key, not by its wrapping: a master-key rotation rewraps the same
  // data key, so what is cached stays right. A destroyed data key (crypto-shred) has no row any
  // more, so loadAll() below fails before the cache is consulted, in this process and in others.
  const cache = new Map<string, Buffer>();
  const unwrap = async (exec: E, row: DataKeyRow): Promise<Buffer> => {
    const cacheKey = `${row.purpose}|${row.scope}|${row.version}`;
    const hit = cache.get(cacheKey);
    if (hit) return hit;
    if (!provider.hasVersion(row.kek_version)) {
      // Rewrapped by a rotation in another process: pick the new version up from the key ring.
      await provider.refresh(await store.listMasterKeys(exec));
      if (!provider.hasVersion(row.kek_version)) {
        throw vaultError(
          `Data key ${row.purpose}/${row.version} is wrapped by master key version ${row.kek_version}, which the supplied master key ring does not hold (it holds ${provider.versions().join(', ')}).`,
        );
      }
    }
    let dek: Buffer;
    try {
      dek = await provider.unwrap(row.kek_version, Buffer.from(row.wrapped_key, 'base64'), wrapAad(row.purpose, row.scope, row.version, row.kek_version));
    } catch {
      throw vaultError(
        `Data key ${row.purpose}/${row.version} for ${row.scope === GLOBAL_SCOPE ? 'the vault' : 'client ' + row.scope} does not open: it was altered or moved.`,
      );
    }
    cache.set(cacheKey, dek);
    return dek;
  };

  const loadAll = async (exec: E, purpose: DataKeyPurpose, scope: string): Promise<Map<number, Buffer>> => {
    const rows = await store.listDataKeys(exec, purpose, scope);
    if (rows.length === 0) {
      throw vaultError(
        scope === GLOBAL_SCOPE
          ? `No ${purpose} data key found for the vault.`
          : `No data key found for client ${scope}: if the client was offboarded, its data key was destroyed (crypto-shred) and its recovery passwords can no longer be decrypted.`,
      );
    }
    const out = new Map<number, Buffer>();
    for (const r of rows) out.set(r.version, await unwrap(exec, r));
    return out;
  };
  const newest = (keys: Map<number, Buffer>): [number, Buffer] => {
    const v = Math.max(...keys.keys());
    return [v, keys.get(v)!];
  };

  return {
    get kekVersion() {
      return provider.currentVersion();
    },
    get masterKeyId() {
      return provider.keyId(provider.currentVersion());
    },
    provider,

    async ensureGlobalKey(exec, purpose, now) {
      if ((await store.listDataKeys(exec, purpose, GLOBAL_SCOPE)).length) return;
      const v = await ensureCurrent(exec);
      await store.insertDataKey(exec, { ...(await newDataKeyRowWith(provider, v, purpose, GLOBAL_SCOPE, 1, newId())), created_at: now });
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
      // New data keys go under the newest registered master-key version, even in a server that
      // was started before a rotation.
      const v = await ensureCurrent(exec);
      await store.insertDataKey(exec, { ...(await newDataKeyRowWith(provider, v, 'client', clientId, 1, newId())), created_at: now });
    },

    async destroyClientKeys(exec, clientId) {
      const n = await store.deleteDataKeys(exec, 'client', clientId);
      // Forget this process's unwrapped copies too. (Not zero-filled: a cipher object handed out
      // before the shred may still hold the buffer, and sealing with a zeroed key would be worse.)
      for (const k of [...cache.keys()]) if (k.startsWith(`client|${clientId}|`)) cache.delete(k);
      return n;
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
      return (clientId, normalizedPassword) => createHmac('sha256', fk).update(`recovery-password/v1|${clientId}|${normalizedPassword}`).digest('hex');
    },

    async auditMac(exec) {
      const [, ak] = newest(await loadAll(exec, 'audit', GLOBAL_SCOPE));
      const mac = (prevHash: string, payload: string) => createHmac('sha256', ak).update(prevHash).update('\n').update(payload).digest('hex');
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
