import { open, OpenError, seal, openText } from './aead.js';
import { masterKeyId } from './master-key.js';
import { vaultError } from '../lib/errors.js';

/**
 * Where the master key (KEK) lives, behind one small interface. The keyring only ever asks a
 * provider to wrap or unwrap a data key under a numbered KEK version; it never sees the KEK.
 *
 * The local provider below keeps the KEK versions in memory, read from KEYWARDEN_MASTER_KEY or
 * the master-key ring file. A cloud KMS or HashiCorp Vault transit provider implements the same
 * methods (wrap = Encrypt / transit encrypt with the AAD as encryption context, unwrap = Decrypt,
 * versions = the KMS key versions registered in master_keys) and is passed to openKeyring()
 * instead: no caller changes.
 */
export interface KekProvider {
  /** 'local' for the built-in provider; shown in doctor / rotate output. */
  readonly kind: string;
  /** The version new data keys are wrapped with: the newest registered version this provider holds. */
  currentVersion(): number;
  /** True when this provider can unwrap data keys wrapped under `version`. */
  hasVersion(version: number): boolean;
  /** Versions this provider can use now, oldest first. */
  versions(): number[];
  /** Non-secret name of a version (mk-…), for messages. */
  keyId(version: number): string;
  wrap(version: number, plaintext: Buffer, aad: string): Promise<Buffer>;
  /** Throws a vault error (never key material) when the wrapped key does not open. */
  unwrap(version: number, wrapped: Buffer, aad: string): Promise<Buffer>;
  /**
   * Re-reads key material and binds it to the versions now registered in the database. Called when
   * another process rotated the master key, so a running server picks the new version up without a
   * restart.
   */
  refresh(registered: RegisteredKek[]): Promise<void>;
}

/** A row of master_keys as the provider needs it: the version and the constant sealed under it. */
export type RegisteredKek = { version: number; key_id: string; verifier: string };

export const VERIFIER_PLAINTEXT = 'keywarden master key check';
export const verifierAad = (version: number) => `keywarden/master-key-check/v1|version=${version}`;

/** Which registered version (if any) a raw key is: the one whose verifier it opens. */
export function versionOf(kek: Buffer, registered: readonly RegisteredKek[]): number | undefined {
  for (const m of registered) {
    try {
      if (openText(kek, m.verifier, verifierAad(m.version)) === VERIFIER_PLAINTEXT) return m.version;
    } catch (e) {
      if (!(e instanceof OpenError)) throw e;
    }
  }
  return undefined;
}

/**
 * The built-in provider: raw 256-bit keys from the environment or the key ring file. `load` is
 * called again on refresh(), so a key appended to the ring file by `keywarden keys rotate-master`
 * is found by a server that is already running.
 */
export function createLocalKekProvider(load: () => Buffer[], registered: readonly RegisteredKek[]): KekProvider & { unregistered(): Buffer[] } {
  let bound = new Map<number, Buffer>();
  let spare: Buffer[] = [];

  const bind = (keys: Buffer[], rows: readonly RegisteredKek[], keepLoaded: boolean) => {
    const next = new Map<number, Buffer>();
    const extra: Buffer[] = [];
    for (const k of keys) {
      const v = versionOf(k, rows);
      if (v === undefined) extra.push(k);
      else next.set(v, k);
    }
    // A refresh adds what is new and keeps what this process already holds: a request that read a
    // data key row just before a rotation committed can still unwrap it with the retired version.
    // Only a restart forgets a retired version (docs/lifecycle.md).
    if (keepLoaded) for (const [v, k] of bound) if (!next.has(v)) next.set(v, k);
    if (next.size === 0) {
      const expected = rows.map((m) => m.key_id).join(' or ') || '(none registered)';
      const supplied = keys.map(masterKeyId).join(', ') || '(none)';
      throw vaultError(
        `The master key does not unlock this vault: it expects master key ${expected}, but ${supplied} was supplied. ` +
          'Check KEYWARDEN_MASTER_KEY / KEYWARDEN_MASTER_KEY_FILE, or the master.key file in the data folder.',
      );
    }
    bound = next;
    spare = extra;
  };
  bind(load(), registered, false);

  const keyOf = (version: number): Buffer => {
    const k = bound.get(version);
    if (!k) throw vaultError(`Master key version ${version} is not loaded (have ${[...bound.keys()].join(', ')}).`);
    return k;
  };

  return {
    kind: 'local',
    currentVersion: () => Math.max(...bound.keys()),
    hasVersion: (v) => bound.has(v),
    versions: () => [...bound.keys()].sort((a, b) => a - b),
    keyId: (v) => masterKeyId(keyOf(v)),
    async wrap(version, plaintext, aad) {
      return seal(keyOf(version), plaintext, aad);
    },
    async unwrap(version, wrapped, aad) {
      try {
        return open(keyOf(version), wrapped, aad);
      } catch (e) {
        if (e instanceof OpenError) throw vaultError('A data key does not open under its master key version: it was altered or moved.');
        throw e;
      }
    },
    async refresh(rows) {
      bind(load(), rows, true);
    },
    /** Keys in the ring that no registered version matches yet: the candidate for the next rotation. */
    unregistered: () => [...spare],
  };
}
