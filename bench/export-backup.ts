/**
 * Break-glass export and backup timings with the real CLI (run from src with tsx) on a vault of
 * N keys (default 10,000) over N/2 devices, on SQLite and/or PostgreSQL:
 *   export to a recipient key, export open, the recovery sheet of one client's first D devices,
 *   backup, restore into an empty place, doctor.
 *
 *   npx tsx bench/export-backup.ts                         # both engines, 10,000 keys
 *   npx tsx bench/export-backup.ts --engine sqlite --keys 2000
 *
 * PostgreSQL: KEYWARDEN_BENCH_PG_URL (default postgres://postgres@127.0.0.1:5432/postgres);
 * throwaway databases are created and dropped.
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
const keys = Number(arg('keys', '10000'));
const engines = arg('engine', 'both') === 'both' ? ['sqlite', 'postgres'] : [arg('engine', 'sqlite')];
const repo = path.resolve(import.meta.dirname, '..');
const tsx = path.join(repo, 'node_modules', '.bin', 'tsx');
const main = path.join(repo, 'src', 'main.ts');
const pgAdmin = process.env.KEYWARDEN_BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

const password = () => {
  const b = randomBytes(16);
  return Array.from({ length: 8 }, (_, i) => String(b.readUInt16LE(i * 2) * 11).padStart(6, '0')).join('-');
};

for (const engine of engines) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keywarden-bench-export-'));
  const dbs: { url: string; drop(): Promise<void> }[] = [];
  try {
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      HOME: dir,
      KEYWARDEN_DATA_DIR: path.join(dir, 'data'),
      KEYWARDEN_MASTER_KEY: randomBytes(32).toString('base64'),
    };
    const target: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      HOME: dir,
      KEYWARDEN_DATA_DIR: path.join(dir, 'restored'),
      KEYWARDEN_MASTER_KEY: env.KEYWARDEN_MASTER_KEY,
    };
    if (engine === 'postgres') {
      const a = await throwawayPostgres(pgAdmin, 'kw_bench_export_src');
      const b = await throwawayPostgres(pgAdmin, 'kw_bench_export_dst');
      dbs.push(a, b);
      env.KEYWARDEN_DATABASE_URL = a.url;
      target.KEYWARDEN_DATABASE_URL = b.url;
    }
    const run = (what: string, argv: string[], e = env): number => {
      const t = process.hrtime.bigint();
      const r = spawnSync(tsx, [main, ...argv], { cwd: dir, env: e, encoding: 'utf8', maxBuffer: 512 * 1024 * 1024 });
      const s = Number(process.hrtime.bigint() - t) / 1e9;
      if (r.status !== 0) throw new Error(`${what} failed (${r.status}): ${r.stderr.slice(0, 500)}`);
      if (what) console.log(`${engine.padEnd(8)} ${what.padEnd(46)} ${s.toFixed(2).padStart(7)} s`);
      return s;
    };
    const lines = ['Computer Name,Recovery Key ID,Recovery Password,Drive Letter'];
    for (let i = 0; i < keys; i++)
      lines.push(`BENCH-PC-${String(i % Math.max(1, Math.floor(keys / 2))).padStart(6, '0')},{${randomUUID()}},${password()},${i % 2 ? 'D:' : 'C:'}`);
    fs.writeFileSync(path.join(dir, 'k.csv'), lines.join('\n') + '\n');
    run('startup baseline (keywarden --help)', ['--help']);
    run('', ['init']);
    run('', ['client', 'add', 'Bench']);
    run('', ['import', 'k.csv', '--client', 'Bench']);
    const g = JSON.parse(spawnSync(tsx, [main, 'export', 'keygen', '--out', 'id.txt', '--json'], { cwd: dir, env, encoding: 'utf8' }).stdout) as {
      recipient: string;
    };
    run(`export --recipient (${keys} keys)`, ['export', '--client', 'Bench', '--out', 'b.age', '--recipient', g.recipient]);
    run(`export open --identity (${keys} keys)`, ['export', 'open', 'b.age', '--identity', 'id.txt', '--json']);
    run(`export --sheet (${keys / 2} pages)`, ['export', '--client', 'Bench', '--sheet', 's.pdf']);
    run('backup', ['backup', '--out', 'vault.kwbackup']);
    run('restore', ['restore', 'vault.kwbackup'], target);
    run(`doctor (decrypts all ${keys} passwords)`, ['doctor'], target);
    console.log(
      `${engine.padEnd(8)} sizes: bundle ${(fs.statSync(path.join(dir, 'b.age')).size / 1e6).toFixed(1)} MB, sheet ${(fs.statSync(path.join(dir, 's.pdf')).size / 1e6).toFixed(1)} MB, backup ${(fs.statSync(path.join(dir, 'vault.kwbackup')).size / 1e6).toFixed(1)} MB`,
    );
  } finally {
    for (const d of dbs) await d.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
