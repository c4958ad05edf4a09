import os from 'node:os';
import { Command, CommanderError, Option } from 'commander';
import type { Config } from '../config.js';
import type { Container } from '../container.js';
import { isAppError } from '../lib/errors.js';
import { cliActor, type Actor } from '../modules/authz/authz.js';
import { CliExit, EXIT, type CliIo } from './io.js';
import { registerInit } from './commands/init.js';
import { registerClient } from './commands/client.js';
import { registerImport } from './commands/import.js';
import { registerLookup } from './commands/lookup.js';
import { registerKeys } from './commands/keys.js';
import { registerAudit } from './commands/audit.js';
import { registerMigrate } from './commands/migrate.js';
import { registerUser } from './commands/user.js';
import { registerServe } from './commands/serve.js';
import { registerAgent } from './commands/agent.js';
import { registerGraph } from './commands/graph.js';
import { registerAd } from './commands/ad.js';
import { registerExport } from './commands/export.js';
import { registerBackup } from './commands/backup.js';
import { registerLifecycle } from './commands/lifecycle.js';
import { registerDemo } from './commands/demo.js';
import { registerReport } from './commands/report.js';
import { registerSso } from './commands/sso.js';
import { registerPsaTickets } from './commands/psa-tickets.js';

/** What every command gets: the IO, config from env + global flags, and a container on demand. */
export type CliContext = {
  io: CliIo;
  actor: Actor;
  config(): Config;
  /** Opens the vault (runs pending migrations, checks the master key); closed after the command. */
  container(): Promise<Container>;
  json(value: unknown): void;
  out(text: string): void;
  err(text: string): void;
};

function osUser(): string {
  try {
    return os.userInfo().username;
  } catch {
    return 'unknown';
  }
}

export async function runCli(argv: string[], io: CliIo): Promise<number> {
  const program = new Command('keywarden');
  let opened: Container | undefined;
  // config.ts (zod, the egress policy) loads before a command's action runs (the preAction hook
  // below), not for --help, --version or a usage error.
  let configModule: typeof import('../config.js') | undefined;
  const ctx: CliContext = {
    io,
    actor: cliActor(osUser()),
    config: () => {
      const o = program.opts<{ dataDir?: string; databaseUrl?: string }>();
      if (!configModule) throw new Error('the configuration was read before the command ran');
      return configModule.loadConfig(io.env, { dataDir: o.dataDir, databaseUrl: o.databaseUrl }, io.cwd);
    },
    // The container (every service, the database driver) loads on first use: --help and commands
    // that never open the vault do not pay for it.
    container: async () => (opened ??= await (await import('../container.js')).buildContainer(ctx.config())),
    json: (v) => io.stdout(JSON.stringify(v, null, 2) + '\n'),
    out: (t) => io.stdout(t.endsWith('\n') ? t : t + '\n'),
    err: (t) => io.stderr(t.endsWith('\n') ? t : t + '\n'),
  };

  program
    .description('Keywarden: a self-hosted BitLocker recovery-key vault for MSPs and IT teams.')
    .version(process.env.npm_package_version ?? '0.1.0', '-V, --version')
    .addOption(new Option('--data-dir <dir>', 'where the vault lives (default ./keywarden-data)').env('KEYWARDEN_DATA_DIR'))
    .addOption(new Option('--database-url <url>', 'postgres://… or sqlite:FILE (default: SQLite in the data folder)'))
    .showHelpAfterError('(run "npx keywarden --help" for usage)')
    .exitOverride()
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr })
    .hook('preAction', async () => {
      configModule ??= await import('../config.js');
    });

  for (const register of [
    registerInit,
    registerClient,
    registerImport,
    registerLookup,
    registerKeys,
    registerAudit,
    registerMigrate,
    registerUser,
    registerServe,
    registerAgent,
    registerGraph,
    registerAd,
    registerDemo,
  ]) {
    register(program, ctx);
  }
  // Offline break-glass exports, backup / restore / doctor.
  registerExport(program, ctx);
  registerBackup(program, ctx);
  // Retire, legal hold, offboard, key history, master-key rotation (after keys and client, which it extends).
  registerLifecycle(program, ctx);
  // Compliance and recovery reports to a file.
  registerReport(program, ctx);
  registerSso(program, ctx);
  // Findings → PSA tickets (joins the `psa` command of the PSA connection when it is registered first).
  registerPsaTickets(program, ctx);
  // Subcommands inherit the overrides so usage errors anywhere exit 2 instead of killing the process.
  const harden = (cmd: Command) => {
    cmd.exitOverride().configureOutput({ writeOut: io.stdout, writeErr: io.stderr });
    cmd.commands.forEach(harden);
  };
  program.commands.forEach(harden);

  try {
    await program.parseAsync(argv, { from: 'user' });
    return EXIT.ok;
  } catch (e) {
    if (e instanceof CliExit) return e.code;
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return EXIT.ok;
      return EXIT.usage;
    }
    if (isAppError(e)) {
      ctx.err(`Error: ${e.message}`);
      return e.kind === 'bad_request' || e.kind === 'not_found' ? EXIT.usage : EXIT.partial;
    }
    // Unknown failures: no stack trace or driver text on the terminal by default (it can quote data).
    ctx.err(
      'Error: an unexpected problem stopped the command.' + (io.env.KEYWARDEN_DEBUG ? `\n${(e as Error)?.stack}` : ' Set KEYWARDEN_DEBUG=1 for details.'),
    );
    return EXIT.partial;
  } finally {
    await opened?.close();
  }
}
