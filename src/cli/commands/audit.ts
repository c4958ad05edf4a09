import type { Command } from 'commander';
import { CliExit, EXIT, table } from '../io.js';
import type { CliContext } from '../program.js';

export function registerAudit(program: Command, ctx: CliContext): void {
  const audit = program.command('audit').description('the tamper-evident audit log');
  audit
    .command('verify')
    .description('check the hash chain; exit 5 with the first broken event when anything was changed, removed or reordered')
    .option('--json', 'machine-readable output')
    .action(async (opts: { json?: boolean }) => {
      const r = await (await ctx.container()).audit.verify(ctx.actor);
      if (opts.json) ctx.json(r);
      else if (r.intact) ctx.out(`Audit log intact: ${r.events.toLocaleString('en-US')} events, chain verified.`);
      else ctx.err(`Audit log BROKEN at event ${r.firstBrokenSeq}: ${r.problem}. ${r.events} events before it verified.`);
      if (!r.intact) throw new CliExit(EXIT.auditBroken);
    });
  audit
    .command('list')
    .description('newest audit events first')
    .option('--limit <n>', 'how many', '50')
    .option('--action <action>', 'only this action, e.g. key.reveal')
    .option('--json', 'machine-readable output')
    .action(async (opts: { limit: string; action?: string; json?: boolean }) => {
      const limit = Number.parseInt(opts.limit, 10);
      const list = await (await ctx.container()).audit.list(ctx.actor, { limit: Number.isFinite(limit) ? limit : 50, action: opts.action });
      if (opts.json) return ctx.json(list);
      ctx.out(
        table(
          list.map((e) => [String(e.seq), e.occurredAt.replace('T', ' ').slice(0, 19), e.actorName, e.action, e.outcome, e.reasonCode ?? '', e.ticket ?? '']),
          ['SEQ', 'WHEN (UTC)', 'WHO', 'ACTION', 'OUTCOME', 'REASON', 'TICKET'],
        ),
      );
    });
}
