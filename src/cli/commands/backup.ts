import path from 'node:path';
import type { Command } from 'commander';
import { systemClock } from '../../lib/clock.js';
import { isAppError } from '../../lib/errors.js';
import { CliExit, EXIT } from '../io.js';
import type { CliContext } from '../program.js';

// The backup code (database drivers, tar, pg_dump) loads when one of these commands runs, not for --help.
const backupModule = () => import('../../modules/backup/backup.js');

const MASTER_KEY_WARNING = (where: string, ids: string) =>
  [
    '',
    '!!! THE MASTER KEY IS NOT IN THIS BACKUP !!!',
    `The backup cannot be read without master key ${ids}, which is in ${where}.`,
    'Back it up separately (a password manager, a sealed envelope in the safe), never next to this file.',
  ].join('\n');

export function registerBackup(program: Command, ctx: CliContext): void {
  program
    .command('backup')
    .description('consistent snapshot of the vault while the server runs (SQLite online backup, or pg_dump), with a manifest; NOT the master key')
    .requiredOption('--out <file>', 'the backup file to write (a tar archive; never overwrites)')
    .option('--json', 'machine-readable output')
    .action(async (opts: { out: string; json?: boolean }) => {
      const c = await ctx.container();
      const out = path.resolve(ctx.io.cwd, opts.out);
      const { createBackup } = await backupModule();
      let result: Awaited<ReturnType<typeof createBackup>>;
      try {
        result = await createBackup(c.config, c.database, out, c.clock.now(), ctx.io.env);
      } catch (e) {
        await c.audit.recordNow(ctx.actor, {
          action: 'vault.backup',
          outcome: 'error',
          details: { file: path.basename(out), problem: isAppError(e) ? e.message.split('\n')[0] : 'unexpected' },
        });
        throw e;
      }
      const m = result.manifest;
      await c.audit.recordNow(ctx.actor, {
        action: 'vault.backup',
        outcome: 'success',
        details: { file: path.basename(out), engine: m.engine, schemaVersion: m.schemaVersion, counts: m.counts, sha256: m.files[0]?.sha256 ?? null },
      });
      const ids = m.masterKeys
        .filter((k) => !k.retired)
        .map((k) => k.keyId)
        .join(' / ');
      // Said every time, on stderr, also with --json (stdout stays machine-readable).
      ctx.err(MASTER_KEY_WARNING(result.masterKey, ids));
      if (opts.json) return ctx.json({ file: result.file, manifest: m, masterKey: { notIncluded: true, ids, where: result.masterKey } });
      ctx.out(
        `Backup written to ${result.file}\n  ${m.engine === 'sqlite' ? 'SQLite online backup' : 'pg_dump (custom format)'} of ${m.source}, schema ${m.schemaVersion}\n` +
          `  ${m.counts.clients} clients, ${m.counts.devices} devices, ${m.counts.recoveryKeys} recovery keys, ${m.counts.auditEvents} audit events`,
      );
    });

  program
    .command('restore')
    .description('restore a backup into an EMPTY data folder (SQLite) or an empty database (PostgreSQL); then put the master key in place and run doctor')
    .argument('<file>', 'a file made by "keywarden backup"')
    .option('--json', 'machine-readable output')
    .action(async (file: string, opts: { json?: boolean }) => {
      const config = ctx.config();
      const { restoreBackup, masterKeyWhere } = await backupModule();
      const r = await restoreBackup(config, path.resolve(ctx.io.cwd, file), ctx.io.env);
      const m = r.manifest;
      const ids = m.masterKeys
        .filter((k) => !k.retired)
        .map((k) => k.keyId)
        .join(' / ');
      if (opts.json) return ctx.json({ restoredTo: r.target, dataDir: r.dataDir, manifest: m, masterKey: { ids, where: masterKeyWhere(config) } });
      ctx.out(
        `Restored the backup of ${m.createdAt.replace('T', ' ').slice(0, 19)} UTC (Keywarden ${m.keywardenVersion}, schema ${m.schemaVersion}) into ${r.target}:\n` +
          `  ${m.counts.clients} clients, ${m.counts.devices} devices, ${m.counts.recoveryKeys} recovery keys, ${m.counts.auditEvents} audit events`,
      );
      ctx.err(
        `\nThe master key is not in the backup. Put master key ${ids} in ${masterKeyWhere(config)}` +
          `${config.masterKey.kind === 'file' ? ' (mode 0600)' : ''}, then run "npx keywarden doctor" before starting the server.`,
      );
    });

  program
    .command('doctor')
    .description('check a data folder: schema version, master key opens every data key, every password decrypts, audit chain, counts (changes nothing)')
    .option('--json', 'machine-readable output')
    .action(async (opts: { json?: boolean }) => {
      const { runDoctor } = await import('../../modules/backup/doctor.js');
      const r = await runDoctor(ctx.config(), systemClock);
      if (opts.json) ctx.json(r);
      else {
        ctx.out(`Keywarden doctor: ${r.database}`);
        for (const c of r.checks) ctx.out(`  ${c.ok ? 'ok  ' : 'FAIL'}  ${c.name}: ${c.detail}`);
        if (r.ok) ctx.out('Everything checked is intact.');
        else ctx.err(`\n${r.problems.length} problem(s):\n${r.problems.map((p) => `  - ${p}`).join('\n')}`);
      }
      if (!r.ok) throw new CliExit(EXIT.partial);
    });
}
