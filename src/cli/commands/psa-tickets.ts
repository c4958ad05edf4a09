import type { Command } from 'commander';
import { badRequest } from '../../lib/errors.js';
import type { CliContext } from '../program.js';

type RulesOptions = { codes?: string; priority?: string; queue?: string; digest?: boolean; threshold?: string; off?: boolean };

/**
 * `keywarden psa rules CLIENT …` and `keywarden psa run-tickets [CLIENT]`: findings → PSA tickets.
 * Joins the `psa` command when another part of the CLI registered it already (the PSA connection).
 */
export function registerPsaTickets(program: Command, ctx: CliContext): void {
  const psa =
    program.commands.find((c) => c.name() === 'psa') ??
    program.command('psa').description('PSA (HaloPSA, ConnectWise PSA, Autotask): tickets for reveals and findings');
  psa
    .command('rules')
    .description('which findings open tickets in the PSA for a client (shows the rules without options)')
    .argument('<client>', 'the client')
    .option('--codes <list>', 'finding codes, comma-separated (e.g. os_volume_unprotected,recovery_key_not_escrowed,rotation_failed)')
    .option('--priority <id>', "the PSA's priority id for new tickets")
    .option('--queue <queue>', 'HaloPSA team, ConnectWise board, or Autotask queue id')
    .option('--digest', 'one ticket per run listing every new finding')
    .option('--threshold <n>', 'more new tickets than this in one run become one digest ticket (default 10)')
    .option('--off', 'switch the rules off (open tickets close at the next run)')
    .action(async (name: string, o: RulesOptions) => {
      const c = await ctx.container();
      const client = await c.clients.getByName(ctx.actor, name);
      const before = await c.psaFindings.getRules(ctx.actor, client.id);
      const changing = o.codes !== undefined || o.priority !== undefined || o.queue !== undefined || o.digest || o.threshold !== undefined || o.off;
      const rules = changing
        ? await c.psaFindings.setRules(ctx.actor, client.id, {
            enabled: !o.off,
            codes: (o.codes === undefined
              ? before.codes
              : o.codes
                  .split(',')
                  .map((s) => s.trim())
                  .filter(Boolean)) as typeof before.codes,
            priority: o.priority ?? before.priority,
            queue: o.queue ?? before.queue,
            digest: o.digest ?? before.digest,
            ...(o.threshold !== undefined ? { digestThreshold: thresholdOf(o.threshold) } : {}),
          })
        : before;
      ctx.out(`${client.name}: ${rules.enabled ? 'on' : 'off'}; findings: ${rules.codes.join(', ') || '(none)'}`);
      ctx.out(
        `priority ${rules.priority ?? '(PSA default)'}, queue ${rules.queue ?? '(PSA default)'}, ${rules.digest ? 'digest' : `one ticket per device and finding (digest above ${rules.digestThreshold})`}`,
      );
      if (rules.failingSince) ctx.out(`Runs fail since ${rules.failingSince}: ${rules.lastError ?? ''}`);
    });
  psa
    .command('run-tickets')
    .description('turn findings into PSA tickets now (one client, or every linked client with rules)')
    .argument('[client]', 'the client')
    .action(async (name: string | undefined) => {
      const c = await ctx.container();
      const results = name ? [await c.psaFindings.runNow(ctx.actor, (await c.clients.getByName(ctx.actor, name)).id)] : await c.psaFindings.runAll();
      if (results.length === 0) ctx.out('No linked client has ticket rules.');
      for (const r of results) ctx.out(`${r.clientId}: ${r.status}: ${r.message}`);
    });
}

function thresholdOf(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 500) throw badRequest(`--threshold must be a whole number from 1 to 500, not "${v.slice(0, 20)}".`);
  return n;
}
