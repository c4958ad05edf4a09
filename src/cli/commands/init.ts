import type { Command } from 'commander';
import { systemClock } from '../../lib/clock.js';
import { badRequest } from '../../lib/errors.js';
import type { CliContext } from '../program.js';
import { readNewPassword } from '../prompt.js';

/** An e-mail address as one shell word in a hint (quoted when it holds anything unusual). */
const shellWord = (s: string) => (/^[\w.@+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

export function registerInit(program: Command, ctx: CliContext): void {
  program
    .command('init')
    .description('create the data folder, master key, database and vault keys (safe to run again)')
    .option('--admin-email <email>', 'also create the first owner with this e-mail')
    .option('--admin-password-file <file>', "the first owner's password, from a file (otherwise asked for, masked)")
    .option('--json', 'machine-readable output')
    .action(async (opts: { json?: boolean; adminEmail?: string; adminPasswordFile?: string }) => {
      const config = ctx.config();
      // The database drivers and vault code load when the command runs, not for --help.
      const [{ openDatabase }, { initVault }] = await Promise.all([import('../../db/database.js'), import('../../modules/vault/vault.service.js')]);
      const database = openDatabase(config.database);
      try {
        const r = await initVault(config, database, ctx.actor, systemClock);
        if (opts.adminEmail) {
          const c = await ctx.container();
          // --admin-email makes the FIRST owner. Once anyone can sign in, a re-run of the README's
          // first command must not quietly add another owner: adding people is `user add`'s job.
          if (await c.identity.hasUsers()) {
            const existing = await c.identity.getUserByEmail(ctx.actor, opts.adminEmail).catch(() => null);
            throw badRequest(
              `This vault in ${config.dataDir} already has users${existing ? `, ${existing.email} among them` : ''}, so init adds no owner. ` +
                `To add someone, run:  npx keywarden user add ${shellWord(opts.adminEmail)} --role owner   (or --role admin, technician, helpdesk, auditor, client-viewer)`,
            );
          }
          const password = await readNewPassword(ctx.io, opts.adminPasswordFile, `Password for ${opts.adminEmail}`);
          const u = await c.identity.createUser(ctx.actor, { email: opts.adminEmail, password, role: 'owner', clients: 'all' });
          r.changes.push(`created the owner ${u.email}`);
        }
        // No owner yet: a one-time token for first-run setup in the browser (printed here, never logged).
        const setupToken = await (await ctx.container()).setup.issueToken();
        if (opts.json)
          return ctx.json({
            created: r.created,
            dataDir: config.dataDir,
            database: r.database,
            masterKeyId: r.masterKeyId,
            changes: r.changes,
            ...(setupToken ? { setupToken } : {}),
          });
        const printSetupToken = () => {
          if (!setupToken) return;
          ctx.out(
            `\nFirst-run setup token (one-time; "npx keywarden serve" prints a new one that replaces it):\n    ${setupToken}\n` +
              'Enter it on the console\'s setup page to create the first owner, or use "npx keywarden user add you@example.com" instead.',
          );
        };
        if (!r.created && r.changes.length === 0) {
          ctx.out(`Keywarden is already initialized in ${config.dataDir}; nothing changed.`);
          ctx.out(`  Database:   ${r.database}\n  Master key: ${r.masterKey} (${r.masterKeyId})`);
          printSetupToken();
          return;
        }
        ctx.out(r.created ? 'Keywarden vault initialized.' : 'Keywarden vault updated.');
        for (const c of r.changes) ctx.out(`  - ${c}`);
        ctx.out(`  Data folder: ${config.dataDir}\n  Database:    ${r.database}\n  Master key:  ${r.masterKey} (${r.masterKeyId})`);
        if (r.created) {
          ctx.out(
            '\nThe master key is the only way to read the stored recovery passwords: copy it somewhere safe, apart from the database backups.' +
              '\nNext steps:\n  npx keywarden user add you@example.com   (the first user is an owner; or create it in the browser)\n  npx keywarden serve                      (web console and API on http://127.0.0.1:8080, docs at /api/docs)\n  npx keywarden client add "Contoso"\n  npx keywarden import "BitLocker Recovery Key *.TXT" --client "Contoso" --device LAPTOP-01\n  npx keywarden lookup 4290B6C0 --reason bios-changed --ticket T-1234',
          );
        }
        printSetupToken();
      } finally {
        await database.close();
      }
    });
}
