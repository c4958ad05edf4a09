import type { Command } from 'commander';
import { openDatabase } from '../../db/database.js';
import { systemClock } from '../../lib/clock.js';
import { initVault } from '../../modules/vault/vault.service.js';
import type { CliContext } from '../program.js';

export function registerInit(program: Command, ctx: CliContext): void {
  program
    .command('init')
    .description('create the data folder, master key, database and vault keys (safe to run again)')
    .option('--json', 'machine-readable output')
    .action(async (opts: { json?: boolean }) => {
      const config = ctx.config();
      const database = openDatabase(config.database);
      try {
        const r = await initVault(config, database, ctx.actor, systemClock);
        if (opts.json) return ctx.json({ created: r.created, dataDir: config.dataDir, database: r.database, masterKeyId: r.masterKeyId, changes: r.changes });
        if (!r.created && r.changes.length === 0) {
          ctx.out(`Keywarden is already initialized in ${config.dataDir}; nothing changed.`);
          ctx.out(`  Database:   ${r.database}\n  Master key: ${r.masterKey} (${r.masterKeyId})`);
          return;
        }
        ctx.out(r.created ? 'Keywarden vault initialized.' : 'Keywarden vault updated.');
        for (const c of r.changes) ctx.out(`  - ${c}`);
        ctx.out(`  Data folder: ${config.dataDir}\n  Database:    ${r.database}\n  Master key:  ${r.masterKey} (${r.masterKeyId})`);
        if (r.created) {
          ctx.out(
            '\nThe master key is the only way to read the stored recovery passwords: copy it somewhere safe, apart from the database backups.' +
              '\nNext steps:\n  keywarden client add "Contoso"\n  keywarden import "BitLocker Recovery Key *.TXT" --client "Contoso" --device LAPTOP-01\n  keywarden lookup 4290B6C0 --reason bios-changed --ticket T-1234',
          );
        }
      } finally {
        await database.close();
      }
    });
}
