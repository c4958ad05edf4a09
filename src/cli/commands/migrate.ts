import type { Command } from 'commander';
import { Argument } from 'commander';
import { openDatabase } from '../../db/database.js';
import { migrateDown, migrateToLatest, migrationStatus } from '../../db/migrate.js';
import type { CliContext } from '../program.js';

export function registerMigrate(program: Command, ctx: CliContext): void {
  program
    .command('migrate')
    .description('apply database migrations (other commands do this automatically), undo the last one, or show status')
    .addArgument(new Argument('[direction]', 'what to do').choices(['up', 'down', 'status']).default('up'))
    .option('--json', 'machine-readable output')
    .action(async (direction: 'up' | 'down' | 'status', opts: { json?: boolean }) => {
      const database = openDatabase(ctx.config().database);
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
