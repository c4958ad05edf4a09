import type { Command } from 'commander';
import { ROLES, type Role } from '../../modules/authz/authz.js';
import { badRequest } from '../../lib/errors.js';
import type { Container } from '../../container.js';
import { readNewPassword } from '../prompt.js';
import { table } from '../io.js';
import type { CliContext } from '../program.js';

/** --clients "all" or a comma-separated list of client names. */
async function clientIds(c: Container, ctx: CliContext, spec: string): Promise<'all' | string[]> {
  if (spec.trim().toLowerCase() === 'all') return 'all';
  const names = spec
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (!names.length) throw badRequest('--clients needs "all" or client names separated by commas.');
  return Promise.all(names.map(async (n) => (await c.clients.getByName(ctx.actor, n)).id));
}

export function registerUser(program: Command, ctx: CliContext): void {
  const user = program.command('user').description('people who sign in to the web console and API');
  user
    .command('add')
    .argument('<email>', 'their e-mail address (the sign-in name)')
    .description('add a user; the first user is an owner')
    .option('--name <name>', 'display name')
    .option('--role <role>', `one of ${ROLES.join(', ')}`)
    .option('--clients <list>', '"all" or client names separated by commas', 'all')
    .option('--password-file <file>', 'read the password from this file (otherwise asked for, masked)')
    .option('--json', 'machine-readable output')
    .action(async (email: string, opts: { name?: string; role?: string; clients: string; passwordFile?: string; json?: boolean }) => {
      const c = await ctx.container();
      const first = !(await c.identity.hasUsers());
      const role = (opts.role ?? (first ? 'owner' : undefined)) as Role | undefined;
      if (!role) throw badRequest(`Say which role with --role (${ROLES.join(', ')}).`);
      const clients = await clientIds(c, ctx, opts.clients);
      const password = await readNewPassword(ctx.io, opts.passwordFile, `Password for ${email}`);
      const u = await c.identity.createUser(ctx.actor, { email, name: opts.name, password, role, clients });
      if (opts.json) return ctx.json(u);
      ctx.out(`Added ${u.email} as ${u.role}${u.clients === 'all' ? ' (all clients)' : ` (${u.clients.length} client${u.clients.length === 1 ? '' : 's'})`}.`);
    });
  user
    .command('list')
    .description('list users')
    .option('--json', 'machine-readable output')
    .action(async (opts: { json?: boolean }) => {
      const c = await ctx.container();
      const users = await c.identity.listUsers(ctx.actor);
      if (opts.json) return ctx.json(users);
      if (!users.length) return ctx.out('No users yet. Add the first owner with: npx keywarden user add you@example.com');
      ctx.out(
        table(
          users.map((u) => [
            u.email,
            u.role,
            u.clients === 'all' ? 'all' : String(u.clients.length),
            u.status,
            u.mfaEnabled ? 'yes' : 'no',
            u.lastLoginAt?.slice(0, 16).replace('T', ' ') ?? 'never',
          ]),
          ['EMAIL', 'ROLE', 'CLIENTS', 'STATUS', '2FA', 'LAST SIGN-IN (UTC)'],
        ),
      );
    });
  for (const [name, status, words] of [
    ['disable', 'disabled', 'Disabled'],
    ['enable', 'active', 'Enabled'],
  ] as const) {
    user
      .command(name)
      .argument('<email>')
      .description(name === 'disable' ? 'stop a user from signing in (ends their sessions)' : 'let a disabled user sign in again')
      .action(async (email: string) => {
        const c = await ctx.container();
        const u = await c.identity.getUserByEmail(ctx.actor, email);
        await c.identity.updateUser(ctx.actor, u.id, { status });
        ctx.out(`${words} ${u.email}.`);
      });
  }
  user
    .command('passkeys')
    .argument('<email>')
    .description("list a user's passkeys (names and dates; no key material)")
    .option('--remove-all', 'remove every passkey of the user (a lost or stolen device) and end their sessions')
    .option('--json', 'machine-readable output')
    .action(async (email: string, opts: { removeAll?: boolean; json?: boolean }) => {
      const c = await ctx.container();
      const u = await c.identity.getUserByEmail(ctx.actor, email);
      if (opts.removeAll) {
        const r = await c.passkeys.removeAllFor(ctx.actor, u.id);
        if (opts.json) return ctx.json(r);
        return ctx.out(`Removed ${r.removed} passkey${r.removed === 1 ? '' : 's'} of ${u.email}; their sessions were ended.`);
      }
      const keys = await c.passkeys.listFor(ctx.actor, u.id);
      if (opts.json) return ctx.json(keys);
      if (!keys.length) return ctx.out(`${u.email} has no passkeys.`);
      ctx.out(
        table(
          keys.map((k) => [
            k.name,
            k.createdAt.slice(0, 16).replace('T', ' '),
            k.lastUsedAt?.slice(0, 16).replace('T', ' ') ?? 'never',
            k.backedUp ? 'yes' : 'no',
          ]),
          ['NAME', 'ADDED (UTC)', 'LAST USED (UTC)', 'SYNCED'],
        ),
      );
    });
  user
    .command('reset-password')
    .argument('<email>')
    .description('set a new password (ends their sessions and lifts a lockout)')
    .option('--password-file <file>', 'read the password from this file (otherwise asked for, masked)')
    .action(async (email: string, opts: { passwordFile?: string }) => {
      const c = await ctx.container();
      const u = await c.identity.getUserByEmail(ctx.actor, email);
      const password = await readNewPassword(ctx.io, opts.passwordFile, `New password for ${u.email}`);
      await c.identity.resetPassword(ctx.actor, u.id, password);
      ctx.out(`Password of ${u.email} changed; their sessions were ended.`);
    });
}
