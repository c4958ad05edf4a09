import fs from 'node:fs';
import type { Config } from '../../config.js';
import { describeDatabase } from '../../config.js';
import type { Database } from '../../db/database.js';
import { migrateToLatest } from '../../db/migrate.js';
import { transactions } from '../../db/transactions.js';
import { initKeyring, openKeyring, type Keyring } from '../../crypto/keyring.js';
import { generateMasterKeyFile, loadMasterKey, loadMasterKeys, masterKeyExists } from '../../crypto/master-key.js';
import type { Executor } from '../../db/database.js';
import { vaultError } from '../../lib/errors.js';
import type { Clock } from '../../lib/clock.js';
import { newId } from '../../lib/ids.js';
import type { Actor } from '../authz/authz.js';
import { createAuditRepo } from '../audit/audit.repo.js';
import { createAuditService } from '../audit/audit.service.js';
import { createSettingsRepo, REQUIRE_MFA_KEY } from '../settings/settings.repo.js';
import { createVaultRepo } from './vault.repo.js';

export type InitResult = {
  created: boolean;
  database: string;
  masterKey: string;
  masterKeyId: string;
  /** What this run did, one line each (empty when nothing changed). */
  changes: string[];
};

/**
 * `keywarden init`: data folder, master key, schema, vault keys. Safe to run again: it changes
 * nothing on an initialized vault and never replaces a master key, because a new key would make
 * every stored password unreadable.
 */
export async function initVault(config: Config, database: Database, actor: Actor, clock: Clock): Promise<InitResult> {
  const repo = createVaultRepo();
  const changes: string[] = [];
  // The data folder holds the generated master key: only its owner may enter it.
  fs.mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  fs.chmodSync(config.dataDir, 0o700);
  const applied = await migrateToLatest(database.db);
  if (applied.length) changes.push(`created the database schema (${applied.join(', ')})`);
  const initialized = await repo.isInitialized(database.db);
  const mk = config.masterKey;
  const masterKeyText = mk.kind === 'env' ? 'KEYWARDEN_MASTER_KEY' : mk.path;

  if (!masterKeyExists(mk)) {
    if (initialized) {
      throw vaultError(
        `This vault is already initialized, but its master key file ${mk.kind === 'file' ? mk.path : ''} is missing. ` +
          'Restore it from your backup (or set KEYWARDEN_MASTER_KEY); a new key could not read the stored passwords.',
      );
    }
    if (mk.kind === 'file' && !mk.generatedByInit) {
      throw vaultError(`KEYWARDEN_MASTER_KEY_FILE points to ${mk.path}, which does not exist.`);
    }
    generateMasterKeyFile(masterKeyText);
    changes.push(`generated a master key in ${masterKeyText} (mode 0600) — back it up somewhere safe`);
  }
  const kek = loadMasterKey(mk);

  let keyring: Keyring<Executor>;
  if (!initialized) {
    await database.db.transaction().execute(async (tx) => {
      await initKeyring(repo, tx, kek, clock.now(), newId);
      await createAuditRepo().initHead(tx);
      keyring = await openKeyring(repo, tx, kek, newId);
      const audit = createAuditService({ tx: transactions(database.db), repo: createAuditRepo(), keyring, clock });
      await audit.record(tx, actor, { action: 'vault.init', outcome: 'success', details: { masterKeyId: keyring.masterKeyId } });
      // A new vault requires a second factor of everyone until an owner turns it off (Settings →
      // Security, with a fresh second factor). Vaults that exist already keep their setting.
      await createSettingsRepo().set(tx, REQUIRE_MFA_KEY, 'true', clock.now());
    });
    changes.push('created the vault keys and the audit log');
  }
  // The whole ring: after a rotation the vault's version may be any key in it.
  keyring = await openKeyring(repo, database.db, loadMasterKeys(mk), newId);
  return {
    created: !initialized,
    database: describeDatabase(config.database),
    masterKey: masterKeyText,
    masterKeyId: keyring.masterKeyId,
    changes,
  };
}
