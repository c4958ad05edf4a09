import type { Command } from 'commander';
import { Argument } from 'commander';
import type { CliContext } from '../program.js';

export function registerMigrate(program: Command, ctx: CliContext): void {
  program
    .command('migrate')
    .description('apply database migrations (other commands do this automatically), undo the last one, or show status')
    .addArgument(new Argument('[direction]', 'what to do').choices(['up', 'down', 'status']).default('up'))
    .option('--json', 'machine-readable output')
    .action(async (direction: 'up' | 'down' | 'status', opts: { json?: boolean }) => {
      const config = ctx.config();
      // The database drivers and migrations load when the command runs, not for --help.
      const [{ openDatabase }, { migrateDown, migrateToLatest, migrationStatus }] = await Promise.all([
        import('../../db/database.js'),
        import('../../db/migrate.js'),
      ]);
      const database = openDatabase(config.database);
      try {
        if (direction === 'status') {
          const s = await migrationStatus(database.db);
          if (opts.json) return ctx.json(s);
          for (const m of s) ctx.out(`${m.executedAt ? 'applied ' : 'pending '} ${m.name}`);
          return;
        }
        const names = direction === 'up' ? await migrateToLatest(database.db) : await migrateDown(database.db);
        if (opts.json) return ctx.json({ direction, migrations: names });
        ctx.out(names.length ? `${direction === 'up' ? 'Applied' : 'Rolled back'}: ${names.join(', ')}` : 'Nothing to do.');
      } finally {
        await database.close();
      }
    });
}
