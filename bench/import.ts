/**
 * Import throughput: generates a CSV of N keys (default 100,000) spread over many devices and
 * imports it with the real CLI (node bin/keywarden.js, as a user runs it) into a fresh vault on
 * SQLite and/or PostgreSQL. Prints the CLI's own progress and a rows/s figure per engine.
 *
 *   npm run bench:import                      # both engines, 100,000 rows
 *   npm run bench:import -- --engine sqlite --rows 20000
 *
 * PostgreSQL: KEYWARDEN_BENCH_PG_URL (default postgres://postgres@127.0.0.1:5432/postgres); a
 * throwaway database is created and dropped.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { throwawayPostgres } from './lib.js';

const args = process.argv.slice(2);
const arg = (name: string, dflt: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? args[i + 1]! : dflt;
};
const rows = Number(arg('rows', '100000'));
const engines = arg('engine', 'both') === 'both' ? ['sqlite', 'postgres'] : [arg('engine', 'sqlite')];
const repo = path.resolve(import.meta.dirname, '..');
const bin = path.join(repo, 'bin', 'keywarden.js');
const pgAdmin = process.env.KEYWARDEN_BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

function password(): string {
  const b = randomBytes(16);
  return Array.from({ length: 8 }, (_, i) => String(b.readUInt16LE(i * 2) * 11).padStart(6, '0')).join('-');
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keywarden-bench-'));
const csv = path.join(dir, 'bench.csv');
const lines = ['Computer Name,Recovery Key ID,Recovery Password,Drive Letter,Created'];
for (let i = 0; i < rows; i++) {
  lines.push(
    `BENCH-PC-${String(i % Math.max(1, Math.floor(rows / 2))).padStart(6, '0')},{${randomUUID().toUpperCase()}},${password()},${i % 2 ? 'D:' : 'C:'},2025-0${1 + (i % 9)}-15T10:00:00Z`,
  );
}
fs.writeFileSync(csv, lines.join('\r\n') + '\r\n');
console.log(`generated ${rows.toLocaleString('en-US')} rows (${(fs.statSync(csv).size / 1e6).toFixed(1)} MB) in ${csv}`);

if (!fs.existsSync(path.join(repo, 'dist', 'main.js'))) spawnSync('npm', ['run', 'build'], { cwd: repo, stdio: 'inherit' });

const results: Record<string, unknown>[] = [];
for (const engine of engines) {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    KEYWARDEN_DATA_DIR: path.join(dir, `data-${engine}`),
    KEYWARDEN_MASTER_KEY: randomBytes(32).toString('base64'),
  };
  let dropPg: (() => Promise<void>) | undefined;
  if (engine === 'postgres') {
    const tmp = await throwawayPostgres(pgAdmin, `kw_bench_${process.pid}`);
    env.KEYWARDEN_DATABASE_URL = tmp.url;
    dropPg = tmp.drop;
  }
  const cli = (a: string[], stdio: 'inherit' | 'pipe' = 'pipe') =>
    spawnSync(process.execPath, [bin, ...a], { env, encoding: 'utf8', stdio: ['ignore', stdio === 'inherit' ? 'pipe' : 'pipe', stdio] });
  cli(['init']);
  cli(['client', 'add', 'Bench']);
  console.log(`\n== ${engine}: importing ${rows.toLocaleString('en-US')} rows`);
  const started = process.hrtime.bigint();
  const r = cli(['import', csv, '--client', 'Bench', '--json'], 'inherit');
  const secs = Number(process.hrtime.bigint() - started) / 1e9;
  const summary = JSON.parse(r.stdout || '{}');
  const again = process.hrtime.bigint();
  const r2 = cli(['import', csv, '--client', 'Bench', '--json'], 'pipe');
  const secs2 = Number(process.hrtime.bigint() - again) / 1e9;
  const summary2 = JSON.parse(r2.stdout || '{}');
  const result = {
    engine,
    rows,
    exit: r.status,
    imported: summary.imported,
    seconds: Number(secs.toFixed(2)),
    rowsPerSecond: Math.round(rows / secs),
    reimportDuplicates: summary2.duplicates,
    reimportSeconds: Number(secs2.toFixed(2)),
    reimportRowsPerSecond: Math.round(rows / secs2),
  };
  console.log(JSON.stringify(result));
  results.push(result);
  await dropPg?.();
}
fs.rmSync(dir, { recursive: true, force: true });
console.log(
  '\n' +
    results
      .map(
        (r) =>
          `${r.engine}: ${(r.rows as number).toLocaleString('en-US')} rows in ${r.seconds} s = ${(r.rowsPerSecond as number).toLocaleString('en-US')} rows/s (re-import of the same file: ${(r.reimportRowsPerSecond as number).toLocaleString('en-US')} rows/s)`,
      )
      .join('\n'),
);
