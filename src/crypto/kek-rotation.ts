import type { MasterKeySource } from '../config.js';
import { badRequest, vaultError } from '../lib/errors.js';
import { sealText } from './aead.js';
import { createLocalKekProvider, VERIFIER_PLAINTEXT, verifierAad, versionOf } from './kek-provider.js';
import { rewrapAllDataKeys, type KeyStore } from './keyring.js';
import { loadMasterKeys, masterKeyId, newMasterKey, writeKeyRingFile } from './master-key.js';

/**
 * `keywarden keys rotate-master` for the local provider.
 *
 * 1. The new key: a key already in the ring that no version matches (the operator added it to
 *    KEYWARDEN_MASTER_KEY, or an earlier rotation was interrupted), or, for a key ring file, a
 *    fresh random key appended to the file BEFORE the database changes — so a crash never leaves
 *    data keys wrapped by a key that exists nowhere.
 * 2. One transaction: register the new version, rewrap every data key (client and global) under
 *    it, retire the old versions, and let the caller audit. Until it commits, every process keeps
 *    using the old version; after it, a running server finds the new version in the ring file the
 *    first time it meets a data key wrapped by it (see openKeyring's refresh).
 * 3. With dropOld (the default) the retired keys are removed from the ring file. Database backups
 *    made before the rotation need them: that is said in the result, loudly.
 */
export type RotationResult = {
  fromVersions: number[];
  fromKeyIds: string[];
  toVersion: number;
  toKeyId: string;
  rewrapped: number;
  /** Where the new key came from. */
  newKeySource: 'generated' | 'ring';
  /** The ring file that now holds the new key (null for KEYWARDEN_MASTER_KEY). */
  file: string | null;
  removedOldFromFile: boolean;
};

export async function rotateLocalMasterKey<E>(opts: {
  store: KeyStore<E>;
  source: MasterKeySource;
  /** Runs `fn` in one database transaction. */
  transaction: <T>(fn: (tx: E) => Promise<T>) => Promise<T>;
  now: () => string;
  dropOld: boolean;
  /** Inside the rotation's transaction, after the rewrap (the audit event). */
  onRotated?: (tx: E, r: RotationResult) => Promise<void>;
}): Promise<RotationResult> {
  const { store, source } = opts;
  let keys = loadMasterKeys(source);
  const registered = await opts.transaction((tx) => store.listMasterKeys(tx));
  const provider = createLocalKekProvider(() => keys, registered);
  const oldVersions = provider.versions();
  const oldKeyIds = oldVersions.map((v) => provider.keyId(v));

  // A key kept in the ring after an earlier rotation (--keep-old) is a retired version, never a new one.
  const everRegistered = await opts.transaction((tx) => store.listAllMasterKeys(tx));
  let newKey = provider
    .unregistered()
    .filter((k) => versionOf(k, everRegistered) === undefined)
    .at(-1);
  let newKeySource: RotationResult['newKeySource'] = 'ring';
  if (!newKey) {
    if (source.kind === 'env') {
      throw badRequest(
        'KEYWARDEN_MASTER_KEY holds no new key. To rotate a master key kept in the environment: generate one ' +
          '(openssl rand -base64 32), set KEYWARDEN_MASTER_KEY to "OLD,NEW" for every Keywarden process, run ' +
          '"keywarden keys rotate-master", then set it to NEW alone. See docs/lifecycle.md.',
      );
    }
    newKey = newMasterKey();
    newKeySource = 'generated';
    writeKeyRingFile(source.path, [
      ...keys.map((k) => ({ key: k, comment: `${masterKeyId(k)}` })),
      { key: newKey, comment: `${masterKeyId(newKey)} added ${opts.now()} by keywarden keys rotate-master` },
    ]);
    keys = loadMasterKeys(source);
  }
  const fresh = newKey;

  const result = await opts.transaction(async (tx) => {
    // Version numbers are never reused, retired ones included.
    const toVersion = (await store.maxMasterKeyVersion(tx)) + 1;
    const row = { version: toVersion, key_id: masterKeyId(fresh), verifier: sealText(fresh, VERIFIER_PLAINTEXT, verifierAad(toVersion)) };
    await store.insertMasterKey(tx, { ...row, created_at: opts.now() });
    // Retire first, rewrap second: retiring takes the lock that a data key being created in
    // another transaction holds (see lockMasterKeys), so every data key committed before this
    // point is in the list below, and every later one is wrapped under the new version.
    const retire = (await store.listMasterKeys(tx)).map((m) => m.version).filter((v) => v !== toVersion);
    await store.retireMasterKeys(tx, retire, opts.now());
    await provider.refresh(await store.listMasterKeys(tx));
    if (provider.currentVersion() !== toVersion) throw vaultError('The new master key did not register; nothing was changed.');
    const rewrapped = await rewrapAllDataKeys(store, tx, provider, toVersion);
    const r: RotationResult = {
      fromVersions: retire,
      fromKeyIds: oldKeyIds,
      toVersion,
      toKeyId: row.key_id,
      rewrapped,
      newKeySource,
      file: source.kind === 'file' ? source.path : null,
      removedOldFromFile: false,
    };
    await opts.onRotated?.(tx, r);
    return r;
  });

  if (source.kind === 'file') {
    // dropOld: keep only the key the vault now uses. Otherwise the retired keys stay, marked.
    const retired = opts.dropOld
      ? []
      : keys.filter((k) => !k.equals(fresh)).map((k) => ({ key: k, comment: `${masterKeyId(k)} retired ${opts.now()} (kept with --keep-old)` }));
    writeKeyRingFile(source.path, [...retired, { key: fresh, comment: `${result.toKeyId} (version ${result.toVersion}) since ${opts.now()}` }]);
    result.removedOldFromFile = opts.dropOld;
  }
  return result;
}
