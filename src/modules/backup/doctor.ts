import fs from 'node:fs';
import type { Config } from '../../config.js';
import { describeDatabase } from '../../config.js';
import { openDatabase, type Database } from '../../db/database.js';
import { migrationStatus } from '../../db/migrate.js';
import { transactions } from '../../db/transactions.js';
import { openKeyring, type Keyring } from '../../crypto/keyring.js';
import { loadMasterKeys } from '../../crypto/master-key.js';
import type { Executor } from '../../db/database.js';
import { isAppError } from '../../lib/errors.js';
import { formatKeyIdForDisplay } from '../../domain/key-id.js';
import type { Clock } from '../../lib/clock.js';
import { newId } from '../../lib/ids.js';
import { cliActor } from '../authz/authz.js';
import { createAuditRepo } from '../audit/audit.repo.js';
import { createAuditService } from '../audit/audit.service.js';
import { createVaultRepo } from '../vault/vault.repo.js';
import { createBackupRepo } from './backup.repo.js';

/**
 * `keywarden doctor`: checks a data folder (or database) without changing it — no migrations are
 * applied, no key is created, nothing is written:
 *   - the database is there and its schema is the one this Keywarden expects
 *   - the master key opens the vault and every data key (each client's and the global ones)
 *   - every stored recovery password decrypts (in memory; nothing is printed)
 *   - the audit hash chain is intact
 *   - counts of clients, devices, keys and audit events
 *   - no key ID has two active records and no device is stored twice in one client
 * Any problem is listed in words; the command exits non-zero when there is one.
 */
export type DoctorCheck = { name: string; ok: boolean; detail: string };
export type DoctorReport = {
  ok: boolean;
  database: string;
  checks: DoctorCheck[];
  counts: { clients: number; devices: number; recoveryKeys: number; auditEvents: number } | null;
  problems: string[];
};

const PAGE = 1000;
/** Duplicates named in a check's detail; the rest are counted. */
const NAMED = 20;

const listed = (items: string[], total: number) => items.slice(0, NAMED).join('; ') + (total > NAMED ? `; and ${total - NAMED} more` : '');

export async function runDoctor(config: Config, clock: Clock): Promise<DoctorReport> {
  const checks: DoctorCheck[] = [];
  const report = (): DoctorReport => ({
    ok: checks.every((c) => c.ok),
    database: describeDatabase(config.database),
    checks,
    counts,
    problems: checks.filter((c) => !c.ok).map((c) => `${c.name}: ${c.detail}`),
  });
  let counts: DoctorReport['counts'] = null;
  const add = (name: string, ok: boolean, detail: string) => void checks.push({ name, ok, detail });

  if (config.database.engine === 'sqlite' && config.database.file !== ':memory:' && !fs.existsSync(config.database.file)) {
    add('database', false, `there is no database at ${config.database.file} (wrong --data-dir, or not restored yet)`);
    return report();
  }
  let database: Database;
  try {
    database = openDatabase(config.database);
  } catch {
    add('database', false, `cannot open ${describeDatabase(config.database)}`);
    return report();
  }
  const db = database.db;
  const repo = createBackupRepo();
  try {
    // Schema
    try {
      const status = await migrationStatus(db);
      const pending = status.filter((m) => !m.executedAt).map((m) => m.name);
      const applied = await repo.appliedMigrations(db);
      const known = new Set(status.map((m) => m.name));
      const unknown = applied.filter((n) => !known.has(n));
      if (applied.length === 0) add('schema', false, 'the database has no Keywarden schema (empty, or another database)');
      else if (unknown.length) add('schema', false, `the database is newer than this Keywarden (migrations ${unknown.join(', ')}); upgrade Keywarden`);
      else if (pending.length) add('schema', false, `${pending.length} migration(s) pending (${pending.join(', ')}); run "npx keywarden migrate"`);
      else add('schema', true, `current (${applied.at(-1)})`);
      if (applied.length === 0) return report();
    } catch {
      add('schema', false, 'the migration table cannot be read');
      return report();
    }

    // Counts
    try {
      counts = await repo.counts(db);
      add('counts', true, `${counts.clients} clients, ${counts.devices} devices, ${counts.recoveryKeys} recovery keys, ${counts.auditEvents} audit events`);
    } catch {
      add('counts', false, 'the tables cannot be counted (the schema is damaged)');
    }

    // Keys and devices stored twice: a reveal by key ID can only answer "ambiguous" for them.
    try {
      const keys = await repo.duplicateKeys(db);
      add(
        'duplicate keys',
        keys.length === 0,
        keys.length === 0
          ? 'every key ID has at most one active record per client'
          : `${keys.length} key ID(s) have more than one active record in the same client, so a reveal by key ID answers "ambiguous": ` +
              listed(
                keys.map((k) => `${k.client_name} key ${formatKeyIdForDisplay(k.key_id)} (${k.n} records)`),
                keys.length,
              ),
      );
      const devices = await repo.duplicateDevices(db);
      add(
        'duplicate devices',
        devices.length === 0,
        devices.length === 0
          ? 'no device is stored twice (same client and the same name and serial, Entra device ID or AD object GUID)'
          : `${devices.length} device(s) are stored more than once in the same client: ` +
              listed(
                devices.map((d) => `${d.client_name} ${d.name} (${d.n} records with the same ${d.identity})`),
                devices.length,
              ),
      );
    } catch {
      add('duplicates', false, 'keys and devices cannot be checked for duplicates (the schema is damaged)');
    }

    // Master key and data keys
    const vaultRepo = createVaultRepo();
    if (!(await vaultRepo.isInitialized(db))) {
      add('master key', false, 'the vault is not initialized (no master key registered)');
      return report();
    }
    let keyring: Keyring<Executor>;
    const mk = config.masterKey;
    if (mk.kind === 'file' && !fs.existsSync(mk.path)) {
      const expected = (await vaultRepo.listMasterKeys(db)).map((m) => m.key_id).join(' or ');
      add(
        'master key',
        false,
        `there is no master key at ${mk.path}: put this vault's master key (${expected}) there with mode 0600, or set KEYWARDEN_MASTER_KEY / KEYWARDEN_MASTER_KEY_FILE`,
      );
      return report();
    }
    try {
      keyring = await openKeyring(vaultRepo, db, () => loadMasterKeys(config.masterKey), newId);
      add('master key', true, `${keyring.masterKeyId} opens the vault (version ${keyring.kekVersion})`);
    } catch (e) {
      add('master key', false, isAppError(e) ? e.message : 'the master key cannot be loaded');
      return report();
    }
    const failures: string[] = [];
    for (const [what, open] of [
      ['fingerprint', () => keyring.fingerprinter(db)],
      ['audit', () => keyring.auditMac(db)],
      ['secrets', () => keyring.secretCipher(db)],
    ] as const) {
      try {
        await open();
      } catch (e) {
        failures.push(`${what}: ${isAppError(e) ? e.message : 'does not open'}`);
      }
    }
    const allClients = await repo.allClients(db);
    // Offboarded clients were crypto-shredded on purpose: no data key is expected to open.
    const clients = allClients.filter((c) => !c.offboarded_at);
    const shredded = allClients.length - clients.length;
    let clientKeysOk = 0;
    let passwords = 0;
    const badPasswords: string[] = [];
    for (const c of clients) {
      let cipher: Awaited<ReturnType<Keyring<Executor>['clientCipher']>>;
      try {
        cipher = await keyring.clientCipher(db, c.id);
        clientKeysOk++;
      } catch (e) {
        failures.push(`client ${c.name}: ${isAppError(e) ? e.message : 'its data key does not open'}`);
        continue;
      }
      // Every stored password, decrypted in memory only and dropped at once.
      for (let offset = 0; ; offset += PAGE) {
        const rows = await repo.sealedPasswords(db, c.id, offset, PAGE);
        for (const r of rows) {
          // Key material destroyed on purpose (retention) has no ciphertext left to check.
          if (!r.ciphertext) continue;
          try {
            cipher.openRecoveryPassword(r.id, { ciphertext: r.ciphertext, dataKeyVersion: r.data_key_version });
            passwords++;
          } catch {
            if (badPasswords.length < 20) badPasswords.push(`${c.name} key record ${r.id}`);
            else if (badPasswords.length === 20) badPasswords.push('…');
          }
        }
        if (rows.length < PAGE) break;
      }
    }
    add(
      'data keys',
      failures.length === 0,
      failures.length === 0
        ? `the master key opens the global data keys and the data key of all ${clientKeysOk} clients${shredded ? ` (${shredded} offboarded, crypto-shredded client(s) skipped)` : ''}`
        : failures.join('; '),
    );
    add(
      'recovery passwords',
      badPasswords.length === 0,
      badPasswords.length === 0 ? `all ${passwords} stored recovery passwords decrypt` : `these do not decrypt: ${badPasswords.join(', ')}`,
    );

    // Audit chain
    try {
      const audit = createAuditService({ tx: transactions(db), repo: createAuditRepo(), keyring, clock });
      const v = await audit.verify(cliActor('doctor'));
      add('audit chain', v.intact, v.intact ? `intact: ${v.events} events verified` : `BROKEN at event ${v.firstBrokenSeq}: ${v.problem}`);
    } catch (e) {
      add('audit chain', false, isAppError(e) ? e.message : 'cannot be verified');
    }
    return report();
  } finally {
    await database.close();
  }
}
