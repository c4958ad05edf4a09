import path from 'node:path';
import type { Command } from 'commander';
import type { Config } from '../../config.js';
import { badRequest } from '../../lib/errors.js';
import type { CliContext } from '../program.js';

const wholeNumber = (name: string, v: string | undefined, max: number): number | undefined => {
  if (v === undefined) return undefined;
  const n = Number(v.replace(/_/g, ''));
  if (!Number.isInteger(n) || n < 0 || n > max) throw badRequest(`${name} must be a whole number from 0 to ${max.toLocaleString('en')}; got "${v}".`);
  return n;
};

/**
 * How to serve the folder the demo just filled, spelled for it: after `--data-dir X`, a bare
 * `npm start` would serve ./keywarden-data instead (and the demo password would not work there).
 */
export function startCommands(cwd: string, config: Config): string[] {
  const url = `http://${config.server.host.includes(':') ? `[${config.server.host}]` : config.server.host}:${config.server.port}`;
  const defaultDir = path.resolve(cwd, 'keywarden-data');
  // A database elsewhere (--database-url, KEYWARDEN_DATABASE_URL) must be named again; its URL may hold a password, so not here.
  const databaseGiven = config.database.engine !== 'sqlite' || config.database.file !== path.join(config.dataDir, 'keywarden.db');
  if (config.dataDir === defaultDir && !databaseGiven) return [`Start the console:  npm start   (or: npx keywarden serve), then open ${url}`];
  const rel = path.relative(cwd, config.dataDir);
  const dir = rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? `./${rel}` : config.dataDir;
  const quoted = /^[\w./:@+-]+$/.test(dir) ? dir : `'${dir.replace(/'/g, `'\\''`)}'`;
  return [
    `Start the console on this data folder:  npx keywarden serve --data-dir ${quoted}${databaseGiven ? ' --database-url …  (the same database URL as here)' : ''}`,
    `  (or: KEYWARDEN_DATA_DIR=${quoted}${databaseGiven ? ' KEYWARDEN_DATABASE_URL=…' : ''} npm start), then open ${url}`,
  ];
}

export function registerDemo(program: Command, ctx: CliContext): void {
  program
    .command('demo')
    .description('fill a NEW, empty data folder with a demo MSP (fictional clients, devices, keys, findings, audit history) to try the console')
    .option('--seed <n>', 'seed for the generated data (same seed, same clients, devices and key IDs)', '7')
    .option('--keys <n>', 'also add this many generated keys (for load and search-speed tests), e.g. 100000')
    .option('--json', 'machine-readable output')
    .action(async (opts: { seed: string; keys?: string; json?: boolean }) => {
      const seed = wholeNumber('--seed', opts.seed, 2 ** 31)!;
      const bulk = wholeNumber('--keys', opts.keys, 2_000_000);
      const config = ctx.config();
      // The vault, its services and the seeder load when the command runs, not for --help.
      const [{ buildContainer }, { openDatabase }, { createDemoClock, seedBulkKeys, seedDemo }, { initVault }] = await Promise.all([
        import('../../container.js'),
        import('../../db/database.js'),
        import('../../modules/demo/demo.seed.js'),
        import('../../modules/vault/vault.service.js'),
      ]);
      // Same steps as `keywarden init` (data folder, master key, schema, vault keys); safe on an existing vault.
      const database = openDatabase(config.database);
      try {
        await initVault(config, database, ctx.actor, createDemoClock());
      } finally {
        await database.close();
      }
      // The demo clock lets the seeder write months of history (check-ins, syncs, reveals).
      const clock = createDemoClock();
      const c = await buildContainer(config, { clock });
      try {
        if (!opts.json) ctx.err(`Filling ${config.dataDir} with demo data (seed ${seed})…`);
        const summary = await seedDemo(c, { seed, onProgress: (s) => !opts.json && ctx.err(`  - ${s}`) });
        // A new vault requires a second factor of everyone; the demo's people are for trying the
        // console with one shared password, so this demo vault does not (audited, and said below).
        await c.settings.update(ctx.actor, { requireMfa: false });
        const extra = bulk
          ? await seedBulkKeys(c, bulk, {
              seed: seed + 1,
              onProgress: (done, total) =>
                !opts.json &&
                (done === total || done % 20_000 === 0) &&
                ctx.err(`  - bulk keys: ${done.toLocaleString('en')} of ${total.toLocaleString('en')}`),
            })
          : null;
        if (opts.json) return ctx.json({ dataDir: config.dataDir, ...summary, bulk: extra });
        ctx.out(
          [
            `Demo MSP "${summary.msp}" is ready in ${config.dataDir}:`,
            `  ${summary.clients.length} clients, ${summary.devices} devices, ${summary.keys.toLocaleString('en')} recovery keys, ${summary.findings} open findings, ${summary.reveals} reveals in the audit log.`,
            extra ? `  plus ${extra.keys.toLocaleString('en')} generated keys in ${extra.clients.length} "Bulk Client" clients.` : '',
            '',
            'DEMO ONLY: these users share one generated password. Do not use this data folder for real keys.',
            'A second factor is not required in this demo vault (a new real vault requires one of everyone).',
            `  Password: ${summary.password}`,
            ...summary.users.map((u) => `  ${u.email.padEnd(40)} ${u.role.padEnd(14)} ${u.note}`),
            '',
            `Try the helpdesk call: sign in as ${summary.helpdeskEmail}, type one of these key-ID prefixes in "Find a key":`,
            ...summary.samplePrefixes.map((s) => `  ${s.prefix}  (${s.client}, ${s.device})`),
            `  ${summary.ambiguousPrefix}  (two clients: "several keys match")`,
            '',
            ...startCommands(ctx.io.cwd, config),
          ]
            .filter((l, i, all) => l !== '' || all[i - 1] !== '')
            .join('\n'),
        );
      } finally {
        await c.close();
      }
    });
}
