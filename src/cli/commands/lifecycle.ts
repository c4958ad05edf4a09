import type { Command } from 'commander';
import { formatKeyIdForDisplay } from '../../domain/key-id.js';
import { notFound, badRequest } from '../../lib/errors.js';
import type { ApprovalView, DestroyOutcome } from '../../modules/lifecycle/lifecycle.service.js';
import type { Container } from '../../container.js';
import { table } from '../io.js';
import type { CliContext } from '../program.js';

/**
 * Lifecycle commands: device retire / reinstate / hold / destroy-keys, client retention /
 * hold / offboard, keys history, keys rotate-master, lifecycle approvals. Destructive commands take
 * the client's name typed again (--confirm), like the console's confirmation box.
 */

/** Finds (or creates) a top-level command, so this file adds to `keys` and `client` without owning them. */
function group(program: Command, name: string, description: string): Command {
  return program.commands.find((c) => c.name() === name) ?? program.command(name).description(description);
}

async function findDevice(c: Container, ctx: CliContext, device: string, client?: string) {
  const clientId = client ? (await c.clients.getByName(ctx.actor, client)).id : undefined;
  const want = device.trim().toLowerCase();
  const matches = (await c.devices.list(ctx.actor, { clientId, q: device.trim(), limit: 1000 })).filter((d) => d.name.toLowerCase() === want);
  if (matches.length === 0) throw notFound(`No device named "${device.trim()}"${client ? ` in client "${client.trim()}"` : ''}.`);
  if (matches.length > 1)
    throw badRequest(`${matches.length} devices are named "${device.trim()}" (clients: ${matches.map((m) => m.client.name).join(', ')}); add --client NAME.`);
  return matches[0]!;
}

function pendingText(a: ApprovalView): string {
  return (
    `Two-owner approval is on: request ${a.id} is waiting for a second owner (until ${a.expiresAt}).\n` +
    `Another owner approves it with: npx keywarden lifecycle approve ${a.id}${a.client ? ` --confirm "${a.client.name}"` : ''}`
  );
}

function printOutcome(ctx: CliContext, r: DestroyOutcome, json?: boolean) {
  if (json) return ctx.json(r);
  if (r.status === 'pending') {
    ctx.out(pendingText(r.approval));
    return;
  }
  ctx.out(
    `Done (${r.action}): ${Object.entries(r.result)
      .map(([k, v]) => `${k} ${String(v)}`)
      .join(', ')}.`,
  );
}

export function registerLifecycle(program: Command, ctx: CliContext): void {
  // ------------------------------------------------------------ devices
  const device = group(program, 'device', 'device lifecycle: retire, reinstate, legal hold, destroy keys');
  device
    .command('retire')
    .description("retire a device: its keys are kept for the client's retention period, then destroyed")
    .requiredOption('--device <name>', 'device name')
    .option('--client <name>', 'client (needed when two clients have a device of that name)')
    .option('--reason <text>', 'why (goes into the audit log)')
    .option('--json', 'machine-readable output')
    .action(async (o: { device: string; client?: string; reason?: string; json?: boolean }) => {
      const c = await ctx.container();
      const d = await findDevice(c, ctx, o.device, o.client);
      const r = await c.lifecycle.retireDevice(ctx.actor, d.id, { reason: o.reason });
      if (o.json) return ctx.json(r);
      ctx.out(`Device "${r.name}" (${d.client.name}): ${r.status}.`);
    });
  device
    .command('reinstate')
    .description('put a retired device back in service (possible until its keys are destroyed)')
    .requiredOption('--device <name>', 'device name')
    .option('--client <name>', 'client')
    .option('--json', 'machine-readable output')
    .action(async (o: { device: string; client?: string; json?: boolean }) => {
      const c = await ctx.container();
      const d = await findDevice(c, ctx, o.device, o.client);
      const r = await c.lifecycle.reinstateDevice(ctx.actor, d.id);
      if (o.json) return ctx.json(r);
      ctx.out(`Device "${r.name}" (${d.client.name}): ${r.status}.`);
    });
  device
    .command('hold')
    .description('set (or with --clear lift) a legal hold on a device: while held, none of its keys is destroyed')
    .requiredOption('--device <name>', 'device name')
    .option('--client <name>', 'client')
    .requiredOption('--reason <text>', 'why (goes into the audit log)')
    .option('--clear', 'lift the hold')
    .option('--json', 'machine-readable output')
    .action(async (o: { device: string; client?: string; reason: string; clear?: boolean; json?: boolean }) => {
      const c = await ctx.container();
      const d = await findDevice(c, ctx, o.device, o.client);
      const r = await c.lifecycle.setDeviceHold(ctx.actor, d.id, { hold: !o.clear, reason: o.reason });
      if (o.json) return ctx.json(r);
      ctx.out(`Device "${r.name}": ${o.clear ? 'legal hold lifted' : 'under legal hold'}; ${r.status}.`);
    });
  device
    .command('destroy-keys')
    .description("owner: destroy a retired device's keys now, before its retention ends")
    .requiredOption('--device <name>', 'device name')
    .option('--client <name>', 'client')
    .requiredOption('--confirm <client name>', "the client's name, typed exactly, to confirm")
    .option('--reason <text>', 'why (goes into the audit log)')
    .option('--json', 'machine-readable output')
    .action(async (o: { device: string; client?: string; confirm: string; reason?: string; json?: boolean }) => {
      const c = await ctx.container();
      const d = await findDevice(c, ctx, o.device, o.client);
      printOutcome(ctx, await c.lifecycle.destroyDeviceKeys(ctx.actor, d.id, { confirm: o.confirm, reason: o.reason }), o.json);
    });

  // ------------------------------------------------------------ clients
  const client = group(program, 'client', 'manage clients');
  client
    .command('lifecycle')
    .argument('<name>', 'client name')
    .description('retention period, legal hold, offboarding and retired devices of a client')
    .option('--json', 'machine-readable output')
    .action(async (name: string, o: { json?: boolean }) => {
      const c = await ctx.container();
      const r = await c.lifecycle.clientStatus(ctx.actor, (await c.clients.getByName(ctx.actor, name)).id);
      if (o.json) return ctx.json(r);
      ctx.out(`Client "${r.client.name}": keys of retired devices kept ${r.retentionDays ? `${r.retentionDays} days` : 'forever'}.`);
      if (r.legalHold) ctx.out(`Legal hold since ${r.legalHold.at.slice(0, 10)} (${r.legalHold.by}): ${r.legalHold.reason}`);
      if (r.offboardedAt) ctx.out(`Offboarded on ${r.offboardedAt.slice(0, 10)} by ${r.offboardedBy}: its data key was destroyed.`);
      if (r.retiredDevices.length)
        ctx.out(
          table(
            r.retiredDevices.map((d) => [d.name, d.status]),
            ['DEVICE', 'STATUS'],
          ),
        );
    });
  client
    .command('retention')
    .argument('<name>', 'client name')
    .requiredOption('--days <n>', "days to keep a retired device's keys (0 = forever)")
    .description("owner: set how long a retired device's keys are kept")
    .action(async (name: string, o: { days: string }) => {
      const c = await ctx.container();
      const days = Number(o.days);
      const r = await c.lifecycle.setRetention(ctx.actor, (await c.clients.getByName(ctx.actor, name)).id, days);
      ctx.out(`Client "${r.client.name}": keys of retired devices are kept ${r.retentionDays ? `${r.retentionDays} days` : 'forever'}.`);
    });
  client
    .command('hold')
    .argument('<name>', 'client name')
    .requiredOption('--reason <text>', 'why (goes into the audit log)')
    .option('--clear', 'lift the hold')
    .description('set (or with --clear lift) a legal hold on a client: while held, nothing of it is destroyed')
    .action(async (name: string, o: { reason: string; clear?: boolean }) => {
      const c = await ctx.container();
      const r = await c.lifecycle.setClientHold(ctx.actor, (await c.clients.getByName(ctx.actor, name)).id, { hold: !o.clear, reason: o.reason });
      ctx.out(`Client "${r.client.name}": ${r.legalHold ? 'under legal hold' : 'no legal hold'}.`);
    });
  client
    .command('offboard')
    .argument('<name>', 'client name')
    .requiredOption('--confirm <client name>', "the client's name, typed exactly, to confirm")
    .option('--reason <text>', 'why (goes into the audit log)')
    .option('--json', 'machine-readable output')
    .description('owner: crypto-shred a client by destroying its data key (make the break-glass export first: keywarden export)')
    .action(async (name: string, o: { confirm: string; reason?: string; json?: boolean }) => {
      const c = await ctx.container();
      printOutcome(
        ctx,
        await c.lifecycle.offboardClient(ctx.actor, (await c.clients.getByName(ctx.actor, name)).id, { confirm: o.confirm, reason: o.reason }),
        o.json,
      );
    });

  // ------------------------------------------------------------ keys
  const keys = group(program, 'keys', 'recovery-key metadata (never the passwords)');
  keys
    .command('history')
    .description('every key each volume of a device has had, as a timeline (no passwords)')
    .requiredOption('--device <name>', 'device name')
    .option('--client <name>', 'client')
    .option('--json', 'machine-readable output')
    .action(async (o: { device: string; client?: string; json?: boolean }) => {
      const c = await ctx.container();
      const d = await findDevice(c, ctx, o.device, o.client);
      const h = await c.keyHistory(ctx.actor, d.id);
      if (o.json) return ctx.json(h);
      ctx.out(`Key history of ${h.device.name} (${h.device.client.name})${h.device.retiredAt ? `, retired ${h.device.retiredAt.slice(0, 10)}` : ''}`);
      for (const v of h.volumes) {
        ctx.out(`\n${v.volume ? `${v.volume.mountPoint ?? '(no drive letter)'} ${v.volume.type}` : 'Volume not known'}`);
        if (v.keys.length === 0) ctx.out('  (no keys)');
        for (const k of v.keys) {
          ctx.out(`  Key ${k.keyId ? formatKeyIdForDisplay(k.keyId) : '(no key ID)'}: ${k.state}`);
          for (const e of k.events) {
            const extra = [
              e.source ? `${e.source.type} ${e.source.ref}` : '',
              e.by ? `by ${e.by}` : '',
              e.reason ? `reason ${e.reason}` : '',
              e.ticket ? `ticket ${e.ticket}` : '',
              e.detail ?? '',
            ]
              .filter(Boolean)
              .join(', ');
            ctx.out(`    ${e.at.replace('T', ' ').slice(0, 19)}  ${e.type.replace(/_/g, ' ')}${extra ? `  (${extra})` : ''}`);
          }
        }
      }
    });
  keys
    .command('rotate-master')
    .description('new master-key version: every data key is rewrapped under it in one transaction; the old version is retired')
    .option('--keep-old', 'keep the retired key in the key ring file (default: removed from it)')
    .option('--json', 'machine-readable output')
    .action(async (o: { keepOld?: boolean; json?: boolean }) => {
      const c = await ctx.container();
      const [{ transactions }, { rotateMasterKey }] = await Promise.all([import('../../db/transactions.js'), import('../../modules/vault/rotate-master.js')]);
      const r = await rotateMasterKey({ config: c.config, tx: transactions(c.database.db), audit: c.audit, clock: c.clock }, ctx.actor, { keepOld: o.keepOld });
      const warning =
        'IMPORTANT: back up the new master key now, separately from the database. Database backups made before this rotation ' +
        `open only with the retired key (${r.fromKeyIds.join(', ')}): keep its backup copy as long as you keep those backups, or destroy every copy to make them unreadable.`;
      if (o.json) {
        ctx.json(r);
        return ctx.err(warning);
      }
      ctx.out(
        `Master key rotated: version ${r.fromVersions.join(', ')} (${r.fromKeyIds.join(', ')}) -> version ${r.toVersion} (${r.toKeyId}); ${r.rewrapped} data keys rewrapped, no recovery password re-encrypted.`,
      );
      if (r.file) ctx.out(`The key ring ${r.file} now holds ${r.removedOldFromFile ? 'only the new key' : 'the new key and the retired ones'}.`);
      else ctx.out('Now set KEYWARDEN_MASTER_KEY to the new key alone for every Keywarden process (see docs/lifecycle.md).');
      ctx.err(warning);
    });

  // ------------------------------------------------------------ approvals and settings
  const lc = group(program, 'lifecycle', 'retention runs, two-owner approvals and their settings');
  lc.command('settings')
    .description('show, or change with --two-owner on|off, whether destructive actions need a second owner')
    .option('--two-owner <on|off>', 'require a second owner to approve destroying key material')
    .option('--json', 'machine-readable output')
    .action(async (o: { twoOwner?: string; json?: boolean }) => {
      const c = await ctx.container();
      if (o.twoOwner !== undefined && !['on', 'off'].includes(o.twoOwner)) throw badRequest('--two-owner takes "on" or "off".');
      const r =
        o.twoOwner === undefined
          ? await c.lifecycle.getSettings(ctx.actor)
          : await c.lifecycle.updateSettings(ctx.actor, { twoOwnerApproval: o.twoOwner === 'on' });
      if (o.json) return ctx.json(r);
      if (r.pendingApproval) return ctx.out(pendingText(r.pendingApproval));
      ctx.out(
        `Two-owner approval: ${r.twoOwnerApproval ? 'on' : 'off'} (requests expire after ${r.approvalHours} hours). Default retention: ${r.defaultRetentionDays} days.`,
      );
    });
  lc.command('approvals')
    .description('requests waiting for (or given) a second owner')
    .option('--status <status>', 'pending | executed | cancelled | expired')
    .option('--json', 'machine-readable output')
    .action(async (o: { status?: string; json?: boolean }) => {
      const c = await ctx.container();
      const list = await c.lifecycle.listApprovals(ctx.actor, { status: o.status });
      if (o.json) return ctx.json(list);
      if (list.length === 0) return ctx.out('No requests.');
      ctx.out(
        table(
          list.map((a) => [a.id, a.action, a.client?.name ?? '(all clients)', a.device?.name ?? '', a.status, a.requestedBy, a.expiresAt.slice(0, 16)]),
          ['ID', 'ACTION', 'CLIENT', 'DEVICE', 'STATUS', 'REQUESTED BY', 'EXPIRES'],
        ),
      );
    });
  lc.command('approve')
    .argument('<id>', 'request id')
    .option('--confirm <client name>', "the client's name, typed exactly, to confirm (requests about a client)")
    .option('--json', 'machine-readable output')
    .description('approve (as a second, different owner) and run a pending request')
    .action(async (id: string, o: { confirm?: string; json?: boolean }) => {
      const c = await ctx.container();
      printOutcome(ctx, await c.lifecycle.approve(ctx.actor, id, { confirm: o.confirm }), o.json);
    });
  lc.command('cancel')
    .argument('<id>', 'request id')
    .description('cancel a pending request')
    .action(async (id: string) => {
      const c = await ctx.container();
      const a = await c.lifecycle.cancel(ctx.actor, id);
      ctx.out(`Request ${a.id} cancelled.`);
    });
  lc.command('run-retention')
    .description("owner: destroy now the keys of one client's retired devices whose retention has passed")
    .requiredOption('--client <name>', 'client name')
    .requiredOption('--confirm <client name>', "the client's name, typed exactly, to confirm")
    .option('--json', 'machine-readable output')
    .action(async (o: { client: string; confirm: string; json?: boolean }) => {
      const c = await ctx.container();
      printOutcome(ctx, await c.lifecycle.runRetentionNow(ctx.actor, (await c.clients.getByName(ctx.actor, o.client)).id, { confirm: o.confirm }), o.json);
    });
}
