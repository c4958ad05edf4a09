import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes, createCipheriv, createDecipheriv } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { sealText } from './aead.js';
import { createLocalKekProvider, VERIFIER_PLAINTEXT, verifierAad, type KekProvider, type RegisteredKek } from './kek-provider.js';
import { masterKeyRowFor, openKeyring, rewrapAllDataKeys, type DataKeyRow, type KeyStore, type MasterKeyRow } from './keyring.js';
import { loadMasterKeys, masterKeyId, writeKeyRingFile } from './master-key.js';

const reg = (version: number, key: Buffer): RegisteredKek => ({
  version,
  key_id: masterKeyId(key),
  verifier: sealText(key, VERIFIER_PLAINTEXT, verifierAad(version)),
});

/** The keyring's storage in memory, to run it without a database. */
function memoryStore(): KeyStore<null> & { masters: (MasterKeyRow & { retired: boolean })[]; dataKeys: DataKeyRow[] } {
  const masters: (MasterKeyRow & { retired: boolean })[] = [];
  const dataKeys: DataKeyRow[] = [];
  return {
    masters,
    dataKeys,
    listMasterKeys: async () => masters.filter((m) => !m.retired).sort((a, b) => b.version - a.version),
    lockMasterKeys: async () => masters.filter((m) => !m.retired).sort((a, b) => b.version - a.version),
    insertMasterKey: async (_e, r) => void masters.push({ version: r.version, key_id: r.key_id, verifier: r.verifier, retired: false }),
    listDataKeys: async (_e, purpose, scope) => dataKeys.filter((d) => d.purpose === purpose && d.scope === scope),
    insertDataKey: async (_e, r) =>
      void dataKeys.push({ id: r.id, purpose: r.purpose, scope: r.scope, version: r.version, kek_version: r.kek_version, wrapped_key: r.wrapped_key }),
    listAllDataKeys: async () => [...dataKeys],
    listAllMasterKeys: async () => [...masters],
    maxMasterKeyVersion: async () => Math.max(0, ...masters.map((m) => m.version)),
    rewrapDataKey: async (_e, id, kekVersion, wrappedKey) =>
      void Object.assign(
        dataKeys.find((d) => d.id === id)!,
        { kek_version: kekVersion, wrapped_key: wrappedKey },
      ),
    retireMasterKeys: async (_e, versions) => void masters.filter((m) => versions.includes(m.version)).forEach((m) => (m.retired = true)),
    deleteDataKeys: async (_e, purpose, scope) => {
      const before = dataKeys.length;
      for (let i = dataKeys.length - 1; i >= 0; i--) if (dataKeys[i]!.purpose === purpose && dataKeys[i]!.scope === scope) dataKeys.splice(i, 1);
      return before - dataKeys.length;
    },
  };
}
let ids = 0;
const newId = () => `id-${++ids}`;

describe('master key ring', () => {
  it('reads one key per line with comments, and names a bad line without echoing it', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kw-ring-'));
    const file = path.join(dir, 'master.key');
    const [a, b] = [randomBytes(32), randomBytes(32)];
    writeKeyRingFile(file, [
      { key: a, comment: 'first' },
      { key: b, comment: 'second' },
    ]);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    const keys = loadMasterKeys({ kind: 'file', path: file, generatedByInit: false });
    expect(keys.map((k) => k.toString('hex'))).toEqual([a.toString('hex'), b.toString('hex')]);
    fs.appendFileSync(file, 'not-a-key-SECRETISH\n');
    expect(() => loadMasterKeys({ kind: 'file', path: file, generatedByInit: false })).toThrow(/Line 3 .* must be 32 random bytes/);
    try {
      loadMasterKeys({ kind: 'file', path: file, generatedByInit: false });
    } catch (e) {
      expect((e as Error).message).not.toContain('SECRETISH');
    }
    expect(loadMasterKeys({ kind: 'env', base64: `${a.toString('base64')}, ${b.toString('base64')}` })).toHaveLength(2);
    fs.rmSync(dir, { recursive: true });
  });

  it('binds keys to versions by verifier, whatever their order; an unregistered key is the spare; a wrong ring fails clearly', async () => {
    const [k1, k2, spare] = [randomBytes(32), randomBytes(32), randomBytes(32)];
    const p = createLocalKekProvider(() => [spare, k2, k1], [reg(2, k2), reg(1, k1)]);
    expect(p.versions()).toEqual([1, 2]);
    expect(p.currentVersion()).toBe(2);
    expect(p.unregistered()).toEqual([spare]);
    const wrapped = await p.wrap(1, Buffer.from('dek'), 'aad');
    expect((await p.unwrap(1, wrapped, 'aad')).toString()).toBe('dek');
    await expect(p.unwrap(2, wrapped, 'aad')).rejects.toThrow(/does not open/);
    expect(() => createLocalKekProvider(() => [spare], [reg(1, k1)])).toThrow(/does not unlock this vault: it expects master key mk-/);
  });

  it('a refresh adds the new version and keeps what the process already holds', async () => {
    const [k1, k2] = [randomBytes(32), randomBytes(32)];
    let ring = [k1];
    const p = createLocalKekProvider(() => ring, [reg(1, k1)]);
    ring = [k2]; // another process rotated and removed the old key from the file
    await p.refresh([reg(2, k2)]);
    expect(p.versions()).toEqual([1, 2]);
    expect(p.currentVersion()).toBe(2);
  });
});

describe('keyring with a pluggable KEK provider', () => {
  /** A stand-in for a KMS: wraps with its own AES-GCM keys and its own format, which callers never see. */
  function fakeKms(): KekProvider {
    const keys = new Map<number, Buffer>([[1, randomBytes(32)]]);
    return {
      kind: 'fake-kms',
      currentVersion: () => Math.max(...keys.keys()),
      hasVersion: (v) => keys.has(v),
      versions: () => [...keys.keys()],
      keyId: (v) => `kms-key/v${v}`,
      async wrap(v, plaintext, aad) {
        const iv = randomBytes(12);
        const c = createCipheriv('aes-256-gcm', keys.get(v)!, iv);
        c.setAAD(Buffer.from(aad));
        const ct = Buffer.concat([c.update(plaintext), c.final()]);
        return Buffer.concat([iv, c.getAuthTag(), ct]);
      },
      async unwrap(v, w, aad) {
        const d = createDecipheriv('aes-256-gcm', keys.get(v)!, w.subarray(0, 12));
        d.setAAD(Buffer.from(aad));
        d.setAuthTag(w.subarray(12, 28));
        return Buffer.concat([d.update(w.subarray(28)), d.final()]);
      },
      async refresh() {},
    };
  }

  it('seals and opens through any provider; rewrap and crypto-shred work the same', async () => {
    const store = memoryStore();
    // The provider's version 1 is registered with a verifier made by its own wrap().
    const kms = fakeKms();
    await store.insertMasterKey(null, { ...(await masterKeyRowFor(kms, 1)), created_at: 'now' });
    const kr = await openKeyring(store, null, kms, newId);
    await kr.ensureGlobalKey(null, 'secrets', 'now');
    await kr.createClientKey(null, 'client-a', 'now');
    await kr.createClientKey(null, 'client-b', 'now');
    const a = await kr.clientCipher(null, 'client-a');
    const sealed = a.sealRecoveryPassword('row-1', '111111-222222-333333-444444-555555-666666-777777-888888');
    expect(a.openRecoveryPassword('row-1', sealed)).toMatch(/^111111/);
    expect(kr.masterKeyId).toBe('kms-key/v1');
    // Rewrap under the same provider version is a no-op; every row stays openable.
    expect(await rewrapAllDataKeys(store, null, kms, 1)).toBe(0);
    // Crypto-shred: the rows go, and the cached key is not served.
    expect(await kr.destroyClientKeys(null, 'client-a')).toBe(1);
    await expect(kr.clientCipher(null, 'client-a')).rejects.toThrow(/offboarded/);
    expect((await kr.clientCipher(null, 'client-b')).openSecret).toBeTypeOf('function');
  });
});
