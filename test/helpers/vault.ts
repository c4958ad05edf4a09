import { randomBytes } from 'node:crypto';
import { loadConfig, type Config } from '../../src/config.js';
import { openDatabase, type Database } from '../../src/db/database.js';
import { createSettingsRepo, REQUIRE_MFA_KEY } from '../../src/modules/settings/settings.repo.js';
import { buildContainer, type Container } from '../../src/container.js';
import { initVault } from '../../src/modules/vault/vault.service.js';
import { cliActor, type Actor } from '../../src/modules/authz/authz.js';
import { systemClock } from '../../src/lib/clock.js';
import { runCli } from '../../src/cli/program.js';
import { createTestDatabase, type TestDatabase } from './engine.js';

export const owner: Actor = cliActor('test-owner');

export type TestVault = {
  db: TestDatabase;
  config: Config;
  env: NodeJS.ProcessEnv;
  masterKey: string;
  container: Container;
  /** Runs the real CLI in-process against this vault. */
  cli(args: string[], opts?: { cwd?: string; env?: NodeJS.ProcessEnv }): Promise<{ code: number; stdout: string; stderr: string }>;
  close(): Promise<void>;
};

export const randomMasterKey = () => randomBytes(32).toString('base64');

export async function cliRun(args: string[], env: NodeJS.ProcessEnv, cwd = process.cwd()) {
  let stdout = '';
  let stderr = '';
  const code = await runCli(args, {
    stdout: (t) => void (stdout += t),
    stderr: (t) => void (stderr += t),
    env,
    cwd,
    isTTY: false,
  });
  return { code, stdout, stderr };
}

/**
 * A new vault requires a second factor of everyone (issue 19). Most tests exercise other features
 * with password-only people, so their helpers switch that off explicitly, as an owner may; the
 * default itself, the enrolment it forces and the nag are tested in test/invitations.test.ts and
 * test/browser/invitations.test.ts (with `keepRequiredMfa`). Security tests that need the policy
 * on turn it on themselves.
 */
export async function allowPasswordOnly(database: Database): Promise<void> {
  await createSettingsRepo().set(database.db, REQUIRE_MFA_KEY, 'false', new Date().toISOString());
}

/** A fresh, initialized vault on the engine under test, with a random master key in the env. */
export async function createTestVault(
  extraEnv: NodeJS.ProcessEnv = {},
  opts: { keepRequiredMfa?: boolean; container?: Parameters<typeof buildContainer>[1] } = {},
): Promise<TestVault> {
  const db = await createTestDatabase();
  const masterKey = randomMasterKey();
  const env = {
    KEYWARDEN_DATA_DIR: db.dir + '/data',
    KEYWARDEN_DATABASE_URL: db.url,
    KEYWARDEN_MASTER_KEY: masterKey,
    // The lab targets (Graph simulator, webhook and SMTP listeners) run on this machine; a test of
    // the egress policy's refusals sets KEYWARDEN_EGRESS_ALLOW itself (e.g. to '').
    KEYWARDEN_EGRESS_ALLOW: '127.0.0.1,::1,localhost',
    ...extraEnv,
  };
  const config = loadConfig(env);
  const database = openDatabase(config.database);
  try {
    await initVault(config, database, owner, systemClock);
    if (!opts.keepRequiredMfa) await allowPasswordOnly(database);
  } finally {
    await database.close();
  }
  const container = await buildContainer(config, opts.container);
  return {
    db,
    config,
    env,
    masterKey,
    container,
    cli: (args, opts = {}) => cliRun(args, { ...env, ...opts.env }, opts.cwd ?? db.dir),
    close: async () => {
      await container.close();
      await db.drop();
    },
  };
}
