import fs from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import type { Command } from 'commander';
import { CliExit, EXIT } from '../io.js';
import type { CliContext } from '../program.js';
import { parsePeriod, type ReportPeriod } from '../../modules/reports/period.js';
import { PDF_REPORTS, type ReportKind } from '../../modules/reports/report-kinds.js';

/** CLI names of the reports (short) and what they render. */
const KINDS: Record<string, { report: ReportKind; what: string }> = {
  compliance: { report: 'compliance-summary', what: 'compliance summary: counts, %, trend, findings, devices needing attention' },
  devices: { report: 'devices', what: 'every device with its status and findings' },
  escrow: { report: 'escrow-coverage', what: 'recovery key escrow coverage by source (agent, Entra ID, AD, import)' },
  'recovery-audit': { report: 'recovery-audit', what: 'who revealed which recovery password, when and why' },
  'recovery-boots': { report: 'recovery-boots', what: 'devices started with a recovery password (event 24652)' },
};

export function registerReport(program: Command, ctx: CliContext): void {
  const report = program.command('report').description('write a report to a file (CSV, or PDF for compliance and recovery-audit)');
  for (const [name, k] of Object.entries(KINDS)) {
    report
      .command(name)
      .description(k.what)
      .option('--client <name>', 'one client (default: all clients)')
      .option('--format <format>', PDF_REPORTS.includes(k.report) ? 'pdf or csv' : 'csv', 'csv')
      .option('--month <YYYY-MM>', 'one calendar month (UTC), e.g. 2026-11')
      .option('--from <YYYY-MM-DD>', 'first day included (UTC)')
      .option('--to <YYYY-MM-DD>', 'last day included (UTC)')
      .requiredOption('--out <file>', 'where to write it ("-" for standard output, CSV only)')
      .action(async (opts: { client?: string; format: string; out: string; month?: string; from?: string; to?: string }) => {
        if (opts.format !== 'csv' && opts.format !== 'pdf') {
          ctx.err('--format is csv or pdf.');
          throw new CliExit(EXIT.usage);
        }
        let period: ReportPeriod | null;
        try {
          // The same check as the API's, worded with the CLI's option names.
          period = parsePeriod({ month: opts.month, from: opts.from, to: opts.to }, { month: '--month', from: '--from', to: '--to' });
        } catch (e) {
          ctx.err((e as Error).message);
          throw new CliExit(EXIT.usage);
        }
        const c = await ctx.container();
        const clientId = opts.client ? (await c.clients.getByName(ctx.actor, opts.client)).id : null;
        const req = { report: k.report, clientId, format: opts.format as 'csv' | 'pdf', period };
        if (opts.out === '-') {
          if (req.format === 'pdf') {
            ctx.err('A PDF goes to a file: give --out FILE.');
            throw new CliExit(EXIT.usage);
          }
          const prepared = await c.reports.prepare(ctx.actor, req);
          await prepared.write(new Writable({ write: (chunk, _enc, cb) => (ctx.io.stdout(String(chunk)), cb()) }));
          return;
        }
        const file = path.resolve(ctx.io.cwd, opts.out);
        // Checked (and audited) before a file is created; written next to the target, then renamed.
        const prepared = await c.reports.prepare(ctx.actor, req);
        const tmp = `${file}.partial`;
        try {
          await prepared.write(fs.createWriteStream(tmp));
          fs.renameSync(tmp, file);
          ctx.out(
            `Wrote ${path.relative(ctx.io.cwd, file) || file} (${prepared.contentType.split(';')[0]}, ${fs.statSync(file).size.toLocaleString('en-US')} bytes).`,
          );
        } catch (e) {
          fs.rmSync(tmp, { force: true });
          throw e;
        }
      });
  }
}
