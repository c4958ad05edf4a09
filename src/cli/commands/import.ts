import fs from 'node:fs';
import path from 'node:path';
import { Option, type Command } from 'commander';
import { badRequest } from '../../lib/errors.js';
// The constants only (types.ts): the parsers load with the container when an import runs.
import { IMPORT_FORMATS, MAX_REPORTED_REJECTIONS, type ImportFormat } from '../../domain/import/types.js';
import type { ImportFileResult, ImportRejected } from '../../modules/imports/imports.service.js';
import { CliExit, EXIT } from '../io.js';
import type { CliContext } from '../program.js';

type Opts = { client: string; device?: string; format: ImportFormat | 'auto'; dryRun?: boolean; json?: boolean };

const plural = (n: number, one: string, many = one + 's') => `${n.toLocaleString('en-US')} ${n === 1 ? one : many}`;

export function registerImport(program: Command, ctx: CliContext): void {
  program
    .command('import')
    .description('import recovery keys from BitLocker .TXT files, manage-bde output, CSV or JSON')
    .argument('<files...>', 'files to import')
    .requiredOption('--client <name>', 'the client these keys belong to')
    .option('--device <name>', 'device name for keys whose file does not name one (TXT, manage-bde)')
    .addOption(new Option('--format <format>', 'file format').choices(['auto', ...IMPORT_FORMATS]).default('auto'))
    .option('--dry-run', 'parse and count everything, change nothing')
    .option('--json', 'machine-readable output')
    .action(async (files: string[], opts: Opts) => {
      const inputs = files.map((f) => {
        const full = path.resolve(ctx.io.cwd, f);
        let st: fs.Stats;
        try {
          st = fs.statSync(full);
        } catch {
          throw badRequest(`Cannot read ${f}: no such file.`);
        }
        if (!st.isFile()) throw badRequest(`${f} is not a file.`);
        return { name: f, full };
      });
      const c = await ctx.container();
      const results: ImportFileResult[] = [];
      for (const input of inputs) {
        const bytes = fs.readFileSync(input.full);
        const started = Date.now();
        let lastDraw = 0;
        let lastDecile = 0;
        const progress = (done: number, total: number) => {
          const now = Date.now();
          const secs = Math.max((now - started) / 1000, 0.001);
          const line = `${input.name}: ${done.toLocaleString('en-US')} / ${total.toLocaleString('en-US')} keys (${Math.round(done / secs).toLocaleString('en-US')} keys/s)`;
          if (ctx.io.isTTY) {
            if (now - lastDraw > 100 || done === total) ctx.io.stderr(`\r${line}`);
          } else if (total >= 5000) {
            // Not a terminal (CI, a log file): one line per 10 %, not a redraw per chunk.
            const decile = Math.floor((done * 10) / total);
            if (decile > lastDecile) {
              ctx.io.stderr(line + '\n');
              lastDecile = decile;
            }
          }
          lastDraw = now;
        };
        const r = await c.imports.importFile(
          ctx.actor,
          opts.client,
          { fileName: input.name, bytes, format: opts.format, defaultDevice: opts.device },
          { dryRun: opts.dryRun, onProgress: progress },
        );
        const secs = (Date.now() - started) / 1000;
        if (ctx.io.isTTY && r.imported + r.duplicates + r.conflicts > 0) ctx.io.stderr('\n');
        const rows = r.imported + r.duplicates + r.conflicts + r.rejectedCount;
        if (rows >= 1000)
          ctx.err(
            `${input.name}: ${rows.toLocaleString('en-US')} rows in ${secs.toFixed(1)} s (${Math.round(rows / Math.max(secs, 0.001)).toLocaleString('en-US')} rows/s)`,
          );
        results.push(r);
      }
      const total = {
        imported: results.reduce((s, r) => s + r.imported, 0),
        duplicates: results.reduce((s, r) => s + r.duplicates, 0),
        conflicts: results.reduce((s, r) => s + r.conflicts, 0),
        rejected: results.flatMap((r) => r.rejected).slice(0, MAX_REPORTED_REJECTIONS) as ImportRejected[],
        rejectedCount: results.reduce((s, r) => s + r.rejectedCount, 0),
      };
      if (opts.json) {
        ctx.json(total);
      } else {
        for (const r of results) {
          ctx.out(
            `${r.file}${r.format ? ` (${r.format})` : ''}: ${plural(r.imported, 'key')} imported, ${plural(r.duplicates, 'duplicate')}, ` +
              `${plural(r.conflicts, 'conflict')}, ${plural(r.rejectedCount, 'row')} rejected`,
          );
          for (const x of r.rejected.slice(0, 50)) ctx.out(`  ${x.file}${x.line ? ` line ${x.line}` : ''}: ${x.reason}`);
          const unlisted = r.rejectedCount - Math.min(r.rejected.length, 50);
          if (unlisted > 0)
            ctx.out(`  … and ${unlisted.toLocaleString('en-US')} more${r.rejected.length > 50 ? ` (--json lists the first ${MAX_REPORTED_REJECTIONS})` : ''}`);
        }
        if (total.conflicts)
          ctx.out('Conflicts: a key ID arrived with a different password. Both are kept and flagged "conflict"; see "npx keywarden keys list".');
        if (opts.dryRun) ctx.out('Dry run: nothing was saved.');
      }
      if (total.rejectedCount) throw new CliExit(EXIT.partial);
    });
}
