import { randomBytes } from 'node:crypto';
import { loadConfig, type Config } from '../../src/config.js';
import { openDatabase } from '../../src/db/database.js';
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

/** A fresh, initialized vault on the engine under test, with a random master key in the env. */
export async function createTestVault(extraEnv: NodeJS.ProcessEnv = {}): Promise<TestVault> {
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
  } finally {
    await database.close();
  }
  const container = await buildContainer(config);
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
