import type { Config } from './config.js';
import { describeDatabase } from './config.js';
import { openDatabase, type Database, type Executor } from './db/database.js';
import { migrateToLatest } from './db/migrate.js';
import { openKeyring, type Keyring } from './crypto/keyring.js';
import { loadMasterKey } from './crypto/master-key.js';
import { systemClock, type Clock } from './lib/clock.js';
import { newId } from './lib/ids.js';
import { vaultError } from './lib/errors.js';
import { createVaultRepo } from './modules/vault/vault.repo.js';
import { createAuditRepo } from './modules/audit/audit.repo.js';
import { createAuditService } from './modules/audit/audit.service.js';
import { createClientsRepo } from './modules/clients/clients.repo.js';
import { createClientsService } from './modules/clients/clients.service.js';
import { createDevicesRepo } from './modules/devices/devices.repo.js';
import { createKeysRepo } from './modules/keys/keys.repo.js';
import { createKeyIngest } from './modules/keys/keys.ingest.js';
import { createKeysService } from './modules/keys/keys.service.js';
import { createImportsService } from './modules/imports/imports.service.js';
import { createIdentityRepo } from './modules/identity/identity.repo.js';
import { createIdentityService } from './modules/identity/identity.service.js';
import { createDevicesService } from './modules/devices/devices.service.js';
import { createAgentRepo } from './modules/agent/agent.repo.js';
import { createAgentService } from './modules/agent/agent.service.js';
import { createGraphService } from './modules/graph/graph.service.js';
import { createDirectoryService } from './modules/directory/directory.service.js';
import { createScheduler, type Scheduler } from './modules/jobs/scheduler.js';
import { nullNotifier, type Notifier } from './modules/notifications/notifier.js';
import os from 'node:os';
import { randomBytes } from 'node:crypto';

/**
 * Composition root: config -> database -> keyring -> repos -> services, wired by hand.
 * Each service gets only the dependencies it names.
 */
export async function buildContainer(config: Config, opts: { clock?: Clock; database?: Database; graphSleep?: (ms: number) => Promise<void> } = {}) {
  const clock = opts.clock ?? systemClock;
  const database = opts.database ?? openDatabase(config.database);
  try {
    await migrateToLatest(database.db);
    const vaultRepo = createVaultRepo();
    if (!(await vaultRepo.isInitialized(database.db))) {
      throw vaultError(`No Keywarden vault in ${describeDatabase(config.database)}. Run "keywarden init" first.`);
    }
    const keyring: Keyring<Executor> = await openKeyring(vaultRepo, database.db, loadMasterKey(config.masterKey), newId);
    const db = database.db;
    // Vaults created before a global data key existed get it now, outside any request.
    await db.transaction().execute((tx) => keyring.ensureGlobalKey(tx, 'secrets', clock.now()));

    // Replaced by the notifications module's outbox-backed notifier (issue 8).
    const notifier: Notifier = nullNotifier;
    const audit = createAuditService({ db, repo: createAuditRepo(), keyring, clock });
    const clients = createClientsService({ db, repo: createClientsRepo(), keyring, audit, clock });
    const keysRepo = createKeysRepo();
    const ingest = createKeyIngest({ keys: keysRepo, devices: createDevicesRepo(), keyring, audit, clock });
    const identity = createIdentityService({ db, repo: createIdentityRepo(), keyring, audit, clock, policy: config.policy });
    const agent = createAgentService({ db, repo: createAgentRepo(), keys: keysRepo, ingest, audit, clock });
    // The scheduler and the Graph service need each other (tasks run syncs; connections create tasks).
    let scheduler: Scheduler | undefined;
    const graph = createGraphService({ db, keyring, ingest, keys: keysRepo, audit, clock, scheduler: () => scheduler!, graphOptions: { sleep: opts.graphSleep } });
    const directory = createDirectoryService({ db, keyring, ingest, keys: keysRepo, audit, clock, scheduler: () => scheduler! });
    scheduler = createScheduler({
      db,
      clock,
      owner: `${os.hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`,
      handlers: {
        'graph-sync': async (task) => {
          const r = await graph.runSync(task.target_id!);
          return r.status === 'succeeded' ? `ok: ${r.newKeys} new keys, ${r.unchanged} unchanged` : `failed: ${r.errorText}`;
        },
        'intune-rotate': (task) => graph.runIntuneRotation(task.target_id!),
        'ad-sync': async (task) => {
          const r = await directory.runSync(task.target_id!);
          return r.status === 'succeeded' ? `ok (${r.mode}): ${r.objectsRead} objects, ${r.newKeys} new keys` : `failed: ${r.errorText}`;
        },
      },
    });
    const keys = createKeysService({
      db,
      repo: keysRepo,
      keyring,
      audit,
      clock,
      guard: { stepUpMinutes: config.policy.stepUpMinutes, revealsLeft: (a) => identity.revealsLeft(a) },
      onDisclosed: async (tx, actor, key) => {
        await agent.onKeyDisclosed(tx, actor, key);
        await graph.onKeyDisclosed(tx, actor, key);
      },
    });
    const imports = createImportsService({ db, ingest, clients, audit });
    const devices = createDevicesService({ db, keys });

    return {
      config,
      database,
      keyring: { masterKeyId: keyring.masterKeyId, kekVersion: keyring.kekVersion },
      audit,
      clients,
      keys,
      imports,
      identity,
      devices,
      agent,
      graph,
      directory,
      notifier,
      scheduler: scheduler!,
      clock,
      close: async () => {
        await scheduler!.stop();
        await database.close();
      },
    };
  } catch (e) {
    if (!opts.database) await database.close();
    throw e;
  }
}
export type Container = Awaited<ReturnType<typeof buildContainer>>;
