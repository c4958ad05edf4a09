import type { Command } from 'commander';
import { badRequest } from '../../lib/errors.js';
import { readNewPassword } from '../prompt.js';
import { CliExit, EXIT, table } from '../io.js';
import type { CliContext } from '../program.js';

export function registerGraph(program: Command, ctx: CliContext): void {
  const graph = program.command('graph').description("Microsoft Entra ID (Graph): sync each client tenant's BitLocker keys");
  graph
    .command('connect')
    .description("link a client to its Entra tenant's app registration (secret asked for, masked, or from a file)")
    .requiredOption('--client <name>', 'the client')
    .requiredOption('--tenant <guid>', 'Directory (tenant) ID')
    .requiredOption('--app <guid>', 'Application (client) ID of the app registration')
    .option('--secret-file <file>', 'file holding the client secret value')
    .option('--login-url <url>', 'sign-in host (national clouds)', 'https://login.microsoftonline.com')
    .option('--graph-url <url>', 'Graph host (national clouds)', 'https://graph.microsoft.com')
    .option('--interval <minutes>', 'sync every N minutes', '60')
    .action(async (o: { client: string; tenant: string; app: string; secretFile?: string; loginUrl: string; graphUrl: string; interval: string }) => {
      const c = await ctx.container();
      const client = await c.clients.getByName(ctx.actor, o.client);
      const secret = o.secretFile
        ? await readNewPassword(ctx.io, o.secretFile, 'Client secret')
        : await readNewPassword(ctx.io, undefined, 'Client secret value');
      const conn = await c.graph.createConnection(ctx.actor, {
        clientId: client.id,
        tenantId: o.tenant,
        appClientId: o.app,
        clientSecret: secret,
        loginUrl: o.loginUrl,
        graphUrl: o.graphUrl,
        syncIntervalMinutes: Number(o.interval),
      });
      ctx.out(`Connected ${client.name} to tenant ${conn.tenantId}. Check it with: npx keywarden graph test --client "${client.name}"`);
    });
  graph
    .command('list')
    .description('connections and their last sync')
    .option('--json', 'machine-readable output')
    .action(async (o: { json?: boolean }) => {
      const c = await ctx.container();
      const list = await c.graph.listConnections(ctx.actor);
      if (o.json) return ctx.json(list);
      const names = new Map((await c.clients.list(ctx.actor)).map((x) => [x.id, x.name]));
      ctx.out(
        table(
          list.map((x) => [
            names.get(x.clientId) ?? x.clientId,
            x.tenantId,
            x.lastSyncAt?.slice(0, 16).replace('T', ' ') ?? 'never',
            x.lastStatus ?? '',
            x.lastError ?? '',
          ]),
          ['CLIENT', 'TENANT', 'LAST SYNC (UTC)', 'STATUS', 'ERROR'],
        ),
      );
    });
  const pick = async (clientName: string | undefined) => {
    const c = await ctx.container();
    const list = await c.graph.listConnections(ctx.actor);
    if (!clientName) return { c, list };
    const client = await c.clients.getByName(ctx.actor, clientName);
    const one = list.filter((x) => x.clientId === client.id);
    if (!one.length) throw badRequest(`${client.name} has no Graph connection. Add one with: npx keywarden graph connect --client "${client.name}" …`);
    return { c, list: one };
  };
  graph
    .command('test')
    .description('check sign-in and each permission')
    .requiredOption('--client <name>', 'the client')
    .option('--json', 'machine-readable output')
    .action(async (o: { client: string; json?: boolean }) => {
      const { c, list } = await pick(o.client);
      const r = await c.graph.testConnection(ctx.actor, list[0]!.id);
      if (o.json) {
        ctx.json(r);
        if (!r.ok) throw new CliExit(EXIT.partial);
        return;
      }
      for (const x of r.checks) ctx.out(`${x.ok ? 'ok  ' : 'FAIL'}  ${x.check}: ${x.detail}`);
      // Scripts and monitoring read the exit code: a failed check is a problem.
      if (!r.ok) throw new CliExit(EXIT.partial);
    });
  graph
    .command('sync')
    .description('sync now (every connection, or one client)')
    .option('--client <name>', 'only this client')
    .option('--json', 'machine-readable output')
    .action(async (o: { client?: string; json?: boolean }) => {
      const { c, list } = await pick(o.client);
      const names = new Map((await c.clients.list(ctx.actor)).map((x) => [x.id, x.name]));
      const results = [];
      for (const conn of list) {
        if (!o.json) ctx.io.stderr(`${names.get(conn.clientId)}: syncing…\n`);
        const r = await c.graph.syncNow(ctx.actor, conn.id);
        results.push({ client: names.get(conn.clientId), ...r });
        if (!o.json) {
          ctx.out(
            r.status === 'succeeded'
              ? `${names.get(conn.clientId)}: ${r.keysListed} keys in Entra, ${r.newKeys} new, ${r.unchanged} already held, ${r.removed} removed at source, ${r.newDevices} new devices, ${r.keyReads} key reads, ${(r.durationMs! / 1000).toFixed(1)} s`
              : `${names.get(conn.clientId)}: FAILED — ${r.errorText}`,
          );
          if (r.status === 'succeeded' && r.warnings) ctx.out(`${names.get(conn.clientId)}: succeeded with warnings — ${r.warnings}`);
        }
      }
      if (o.json) ctx.json(results);
    });
}
