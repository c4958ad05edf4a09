import type { Command } from 'commander';
import { badRequest } from '../../lib/errors.js';
import { table } from '../io.js';
import type { CliContext } from '../program.js';

export function registerAgent(program: Command, ctx: CliContext): void {
  const agent = program.command('agent').description('the Windows agent: enrollment tokens and device credentials');
  const token = agent.command('token').description('enrollment tokens an agent uses on its first run');
  token
    .command('create')
    .description('create an enrollment token for one client (shown once)')
    .requiredOption('--client <name>', 'the client whose devices enroll with it')
    .option('--expires-days <n>', 'days until it expires (1-365)', '30')
    .option('--max-uses <n>', 'how many devices may enroll with it (default: no limit)')
    .option('--json', 'machine-readable output')
    .action(async (opts: { client: string; expiresDays: string; maxUses?: string; json?: boolean }) => {
      const c = await ctx.container();
      const client = await c.clients.getByName(ctx.actor, opts.client);
      const days = Number(opts.expiresDays);
      const maxUses = opts.maxUses === undefined ? null : Number(opts.maxUses);
      if (!Number.isInteger(days)) throw badRequest('--expires-days must be a whole number of days.');
      if (maxUses !== null && !Number.isInteger(maxUses)) throw badRequest('--max-uses must be a whole number.');
      const r = await c.agent.createEnrollmentToken(ctx.actor, { clientId: client.id, expiresInDays: days, maxUses });
      if (opts.json) return ctx.json({ token: r.token, ...r.view, client: client.name });
      ctx.out(
        `Enrollment token for ${client.name} (expires ${r.view.expiresAt.slice(0, 10)}${maxUses ? `, ${maxUses} uses` : ''}):\n\n  ${r.token}\n\n` +
          'It is shown only now. Give it to the agent as -EnrollmentToken or KEYWARDEN_ENROLLMENT_TOKEN (see agent/README.md).',
      );
    });
  token
    .command('list')
    .description('list enrollment tokens (never the tokens themselves)')
    .option('--client <name>', 'only this client')
    .option('--json', 'machine-readable output')
    .action(async (opts: { client?: string; json?: boolean }) => {
      const c = await ctx.container();
      const clientId = opts.client ? (await c.clients.getByName(ctx.actor, opts.client)).id : undefined;
      const list = await c.agent.listEnrollmentTokens(ctx.actor, clientId);
      if (opts.json) return ctx.json(list);
      const names = new Map((await c.clients.list(ctx.actor)).map((x) => [x.id, x.name]));
      ctx.out(
        table(
          list.map((t) => [
            t.id,
            `${t.prefix}…`,
            names.get(t.clientId) ?? t.clientId,
            t.expiresAt.slice(0, 10),
            t.maxUses === null ? `${t.uses}` : `${t.uses}/${t.maxUses}`,
            t.revokedAt ? 'revoked' : '',
          ]),
          ['ID', 'TOKEN', 'CLIENT', 'EXPIRES', 'USES', ''],
        ),
      );
    });
  token
    .command('revoke')
    .argument('<id>', 'the token id from "agent token list"')
    .description('revoke an enrollment token')
    .action(async (id: string) => {
      await (await ctx.container()).agent.revokeEnrollmentToken(ctx.actor, id);
      ctx.out('Revoked.');
    });
  agent
    .command('pending')
    .description('agents that enrolled as a device the vault already knows, without its credential, waiting for approval')
    .option('--client <name>', 'only this client')
    .option('--json', 'machine-readable output')
    .action(async (opts: { client?: string; json?: boolean }) => {
      const c = await ctx.container();
      const clientId = opts.client ? (await c.clients.getByName(ctx.actor, opts.client)).id : undefined;
      const list = await c.agent.listPendingLinks(ctx.actor, clientId);
      if (opts.json) return ctx.json(list);
      if (list.length === 0) return ctx.out('No agent is waiting for approval.');
      ctx.out(
        table(
          list.map((p) => [
            p.device.id,
            p.device.name,
            p.client.name,
            p.claims ? `${p.claims.name} (${p.claims.id})` : '(deleted)',
            p.matchedOn ?? '',
            p.enrolledAt.slice(0, 16),
          ]),
          ['WAITING DEVICE ID', 'NAME', 'CLIENT', 'ENROLLED AS', 'MATCHED ON', 'ENROLLED'],
        ),
      );
    });
  agent
    .command('approve')
    .argument('[device id]', 'the waiting device id from "agent pending"')
    .option('--all', 'every waiting agent (of --client, if given): e.g. after a rollout onto devices already synced from Entra ID')
    .option('--client <name>', 'with --all: only this client')
    .description('link a waiting agent to the existing device it enrolled as (its older agent credential stops)')
    .action(async (deviceId: string | undefined, opts: { all?: boolean; client?: string }) => {
      const c = await ctx.container();
      if (!deviceId && !opts.all) throw badRequest('Give the waiting device id from "npx keywarden agent pending", or --all.');
      let ids = deviceId ? [deviceId.trim()] : [];
      if (opts.all) {
        const clientId = opts.client ? (await c.clients.getByName(ctx.actor, opts.client)).id : undefined;
        ids = (await c.agent.listPendingLinks(ctx.actor, clientId)).filter((p) => p.claims).map((p) => p.device.id);
        if (ids.length === 0) return ctx.out('No agent is waiting for approval.');
      }
      for (const id of ids) {
        const r = await c.agent.approveLink(ctx.actor, id);
        ctx.out(`Linked: the agent now reports for ${r.device} (${r.deviceId}).`);
      }
    });
  agent
    .command('revoke')
    .argument('<device>', 'device name')
    .requiredOption('--client <name>', 'the client of the device')
    .description("revoke a device's agent credential (it has to enroll again)")
    .action(async (device: string, opts: { client: string }) => {
      const c = await ctx.container();
      const client = await c.clients.getByName(ctx.actor, opts.client);
      const found = (await c.devices.list(ctx.actor, { clientId: client.id, q: device, limit: 1000 })).filter(
        (d) => d.name.toLowerCase() === device.trim().toLowerCase(),
      );
      if (found.length !== 1)
        throw badRequest(found.length ? `Several devices of ${client.name} are named ${device}.` : `${client.name} has no device named ${device}.`);
      const r = await c.agent.revokeDevice(ctx.actor, found[0]!.id);
      ctx.out(r.revoked ? `Revoked the agent credential of ${found[0]!.name}.` : `${found[0]!.name} had no active agent credential.`);
    });
}
