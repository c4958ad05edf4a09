import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { badRequest } from '../../lib/errors.js';
import { readNewPassword } from '../prompt.js';
import { CliExit, EXIT, table } from '../io.js';
import type { CliContext } from '../program.js';

const collect = (v: string, prev: string[] = []) => [...prev, v];

export function registerAd(program: Command, ctx: CliContext): void {
  const ad = program.command('ad').description('on-premises Active Directory: sync BitLocker recovery objects over LDAPS or StartTLS');
  ad.command('connect')
    .description('link a client to its domain (the bind password is asked for, masked, or read from a file)')
    .requiredOption('--client <name>', 'the client')
    .requiredOption('--host <host>', 'domain controller (repeat for failover, in order)', collect)
    .requiredOption('--bind-dn <dn>', 'the sync account: DN or user@domain')
    .requiredOption('--base-dn <dn>', 'where to search, e.g. OU=Contoso,DC=corp,DC=example (repeatable)', collect)
    .option('--starttls', 'StartTLS on port 389 instead of LDAPS on 636')
    .option('--port <n>', 'port (default 636, or 389 with --starttls)')
    .option('--ca-file <pem>', "the domain CA's certificate (PEM)")
    .option('--pin <sha256>', "SHA-256 of the DC's certificate, instead of a CA")
    .option('--allow-untrusted', 'accept any certificate (recorded in the audit log; only for a lab)')
    .option('--password-file <file>', 'file holding the bind password')
    .option('--interval <minutes>', 'sync every N minutes', '60')
    .action(
      async (o: {
        client: string;
        host: string[];
        bindDn: string;
        baseDn: string[];
        starttls?: boolean;
        port?: string;
        caFile?: string;
        pin?: string;
        allowUntrusted?: boolean;
        passwordFile?: string;
        interval: string;
      }) => {
        const c = await ctx.container();
        const client = await c.clients.getByName(ctx.actor, o.client);
        let caCert: string | null = null;
        if (o.caFile) {
          try {
            caCert = fs.readFileSync(path.resolve(ctx.io.cwd, o.caFile), 'utf8');
          } catch {
            throw badRequest(`Cannot read the CA certificate file ${o.caFile}.`);
          }
        }
        const password = await readNewPassword(ctx.io, o.passwordFile, 'Bind password');
        const conn = await c.directory.createConnection(ctx.actor, {
          clientId: client.id,
          hosts: o.host,
          port: o.port ? Number(o.port) : undefined,
          tlsMode: o.starttls ? 'starttls' : 'ldaps',
          caCert,
          pinnedSha256: o.pin ?? null,
          allowUntrusted: !!o.allowUntrusted,
          bindDn: o.bindDn,
          password,
          baseDns: o.baseDn,
          syncIntervalMinutes: Number(o.interval),
        });
        ctx.out(`Connected ${client.name} to ${conn.hosts.join(', ')}. Check it with: npx keywarden ad test --client "${client.name}"`);
      },
    );
  const pick = async (clientName?: string) => {
    const c = await ctx.container();
    const list = await c.directory.listConnections(ctx.actor);
    if (!clientName) return { c, list };
    const client = await c.clients.getByName(ctx.actor, clientName);
    const one = list.filter((x) => x.clientId === client.id);
    if (!one.length) throw badRequest(`${client.name} has no directory connection. Add one with: npx keywarden ad connect --client "${client.name}" …`);
    return { c, list: one };
  };
  ad.command('list')
    .description('directory connections and their last sync')
    .option('--json', 'machine-readable output')
    .action(async (o: { json?: boolean }) => {
      const { c, list } = await pick();
      if (o.json) return ctx.json(list);
      const names = new Map((await c.clients.list(ctx.actor)).map((x) => [x.id, x.name]));
      ctx.out(
        table(
          list.map((x) => [
            names.get(x.clientId) ?? x.clientId,
            x.hosts.join(','),
            x.tlsMode,
            x.lastSyncAt?.slice(0, 16).replace('T', ' ') ?? 'never',
            x.lastStatus ?? '',
            x.lastError ?? '',
          ]),
          ['CLIENT', 'HOSTS', 'TLS', 'LAST SYNC (UTC)', 'STATUS', 'ERROR'],
        ),
      );
    });
  ad.command('test')
    .description('bind, and check that the account can read recovery passwords')
    .requiredOption('--client <name>', 'the client')
    .option('--json', 'machine-readable output')
    .action(async (o: { client: string; json?: boolean }) => {
      const { c, list } = await pick(o.client);
      const r = await c.directory.testConnection(ctx.actor, list[0]!.id);
      if (o.json) ctx.json(r);
      else ctx.out(`${r.ok ? 'ok' : 'PROBLEM'}: ${r.detail}`);
      // Scripts and monitoring read the exit code: a reported problem is exit 1.
      if (!r.ok) throw new CliExit(EXIT.partial);
    });
  ad.command('sync')
    .description('sync now (every connection, or one client)')
    .option('--client <name>', 'only this client')
    .option('--json', 'machine-readable output')
    .action(async (o: { client?: string; json?: boolean }) => {
      const { c, list } = await pick(o.client);
      const names = new Map((await c.clients.list(ctx.actor)).map((x) => [x.id, x.name]));
      const out = [];
      for (const conn of list) {
        if (!o.json) ctx.io.stderr(`${names.get(conn.clientId)}: syncing from ${conn.hosts[0]}…\n`);
        const r = await c.directory.syncNow(ctx.actor, conn.id);
        out.push({ client: names.get(conn.clientId), ...r });
        if (!o.json) {
          ctx.out(
            r.status === 'succeeded'
              ? `${names.get(conn.clientId)} (${r.mode} from ${r.dc}): ${r.objectsRead} objects read, ${r.newKeys} new keys, ${r.unchanged} unchanged, ${r.removed} removed at source, ${r.invalid} invalid passwords reported, ${r.newDevices} new devices`
              : `${names.get(conn.clientId)}: FAILED — ${r.errorText}`,
          );
        }
      }
      if (o.json) ctx.json(out);
    });
}
