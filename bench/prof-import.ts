/**
 * Where a CSV import's time goes: the same case as `npm run bench -- --only import` (the real CLI
 * against raw batched inserts of as many keys), with the CLI's own CPU time next to its wall time,
 * and with --prof a CPU profile of the CLI process summed by function and by file.
 *
 * With --queries the import runs in this process instead (the service call the CLI makes), and
 * every SQL statement's count and total time is printed. The ratio is the bench's (raw seconds /
 * CLI seconds), with the same ratio of CPU seconds beside it: steadier on a busy machine (SQLite
 * runs in the CLI process; PostgreSQL's own work is not in it).
 *
 *   npx tsx bench/prof-import.ts [--engine sqlite|postgres] [--rows 10000] [--turns 3] [--prof | --queries] [--bin PATH ...]
 */
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { buildContainer } from '../src/container.js';
import { openDatabase } from '../src/db/database.js';
import { cliActor, systemActor } from '../src/modules/authz/authz.js';
import { createBenchVault, csvOf, seedKeys, type Engine } from './gen.js';

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : fallback;
};
const engine = arg('engine', 'sqlite') as Engine;
const rows = Number(arg('rows', '10000'));
const turns = Number(arg('turns', '3'));
const prof = process.argv.includes('--prof');
const queries = process.argv.includes('--queries');
const REPO = path.resolve(import.meta.dirname, '..');
// --bin PATH (repeatable): compare CLIs, e.g. a build of main against this tree, in the same turns.
const bins = process.argv.flatMap((a, i) => (a === '--bin' ? [path.resolve(process.argv[i + 1]!)] : []));
if (bins.length === 0) bins.push(path.join(REPO, 'bin', 'keywarden.js'));

type Node = { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] };
type Profile = { nodes: Node[]; samples: number[]; timeDeltas: number[] };

/** Self time per function and per file of a .cpuprofile, largest first. */
function summarise(file: string) {
  const p = JSON.parse(fs.readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  p.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (p.timeDeltas[i] ?? 0)));
  const fn = new Map<string, number>();
  const byFile = new Map<string, number>();
  let total = 0;
  for (const [id, us] of self) {
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
    const short = url.replace(/^file:\/\//, '').replace(REPO + '/', '');
    const where = short.replace(/^node_modules\/([^/]+).*$/, '$1');
    fn.set(`${functionName || '(anonymous)'} ${short}:${lineNumber + 1}`, (fn.get(`${functionName || '(anonymous)'} ${short}:${lineNumber + 1}`) ?? 0) + us);
    byFile.set(where || functionName, (byFile.get(where || functionName) ?? 0) + us);
    total += us;
  }
  const top = (m: Map<string, number>, n: number) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([k, us]) => `  ${(us / 1000).toFixed(0).padStart(6)} ms ${((100 * us) / total).toFixed(1).padStart(5)} %  ${k}`)
      .join('\n');
  // Inclusive time of the product's own functions (itself and what it calls; async work after an
  // await is not included, so the phases are best read from their synchronous parts and self time).
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const ch of n.children ?? []) parent.set(ch, n.id);
  const incl = new Map<string, number>();
  for (const [id, us] of self) {
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const { functionName, url } = byId.get(at)!.callFrame;
      if (!url.includes('/dist/') && !url.includes('/src/')) continue;
      const k = `${functionName || '(anonymous)'} ${url.replace(/^.*\/(dist|src)\//, '')}`;
      if (seen.has(k)) continue;
      seen.add(k);
      incl.set(k, (incl.get(k) ?? 0) + us);
    }
  }
  console.log(`profile: ${(total / 1000).toFixed(0)} ms sampled\nby file:\n${top(byFile, 20)}\nby function:\n${top(fn, 30)}\ninclusive:\n${top(incl, 30)}`);
}

/** The import the CLI makes, in this process, with every statement timed. */
async function importWithQueryLog(v: Awaited<ReturnType<typeof createBenchVault>>, file: string, client: string) {
  const stats = new Map<string, { n: number; ms: number }>();
  const log = (e: { query: { sql: string }; queryDurationMillis: number }) => {
    const k = e.query.sql.replace(/\s+/g, ' ').slice(0, 90);
    const s = stats.get(k) ?? { n: 0, ms: 0 };
    s.n++;
    s.ms += e.queryDurationMillis;
    stats.set(k, s);
  };
  const c = await buildContainer(v.config, { database: openDatabase(v.config.database, { log }) });
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const r = await c.imports.importFile(cliActor('prof'), client, { fileName: file, bytes: fs.readFileSync(file) });
  const cpu = process.cpuUsage(cpu0);
  const s = (performance.now() - t0) / 1000;
  await c.close();
  const inDb = [...stats.values()].reduce((a, x) => a + x.ms, 0);
  const statements = [...stats.values()].reduce((a, x) => a + x.n, 0);
  console.log(
    `in-process import: ${r.imported} imported in ${s.toFixed(2)} s (cpu ${((cpu.user + cpu.system) / 1e6).toFixed(2)} s), ${(inDb / 1000).toFixed(2)} s in ${statements} statements`,
  );
  for (const [k, x] of [...stats].sort((a, b) => b[1].ms - a[1].ms).slice(0, 25))
    console.log(`${String(x.n).padStart(6)}x ${x.ms.toFixed(0).padStart(6)} ms  ${k}`);
}

if (process.argv.includes('--summary')) {
  summarise(arg('summary', ''));
  process.exit(0);
}

const v = await createBenchVault(engine, 'profimport');
try {
  const csv = path.join(v.dir, 'keys.csv');
  const lines = csvOf('keywarden-bench-1', rows * turns * bins.length).split('\r\n');
  const c = await buildContainer(v.config);
  const raws = [];
  for (let t = 0; t < turns; t++) {
    for (let b = 0; b < bins.length; b++) await c.clients.create(systemActor('bench'), { name: `Bench ${t}.${b}` });
    raws.push(await c.clients.create(systemActor('bench'), { name: `Raw ${t}` }));
  }
  await c.close();
  const ratios = bins.map(() => ({ wall: [] as number[], cpu: [] as number[] }));
  for (let t = 0; t < turns; t++) {
    const db = openDatabase(v.config.database);
    const cpu0 = process.cpuUsage();
    const t1 = performance.now();
    await seedKeys(db, v.config, raws[t]!.id, { seed: `raw-${t}`, count: rows });
    const rawS = (performance.now() - t1) / 1000;
    const rawCpu = process.cpuUsage(cpu0);
    const rawCpuS = (rawCpu.user + rawCpu.system) / 1e6;
    await db.close();
    console.log(`${engine} turn ${t}: raw ${rawS.toFixed(2)} s (cpu ${rawCpuS.toFixed(2)} s)`);

    // Every import takes its own slice of keys into its own client (a fresh client, like the bench);
    // with several --bin, their order alternates from turn to turn.
    const order = bins.map((_, b) => b);
    if (t % 2) order.reverse();
    for (const b of order) {
      const slice = (t * bins.length + b) * rows;
      fs.writeFileSync(csv, [lines[0], ...lines.slice(1 + slice, 1 + slice + rows)].join('\r\n') + '\r\n');
      const client = `Bench ${t}.${b}`;
      if (queries) {
        await importWithQueryLog(v, csv, client);
        continue;
      }
      const profDir = path.join(v.dir, `prof-${t}-${b}`);
      const nodeArgs = prof ? ['--cpu-prof', '--cpu-prof-dir', profDir] : [];
      const t0 = performance.now();
      const r = spawnSync('/usr/bin/time', ['-f', '%U %S', process.execPath, ...nodeArgs, bins[b]!, 'import', csv, '--client', client, '--json'], {
        cwd: REPO,
        env: { ...process.env, ...v.env },
        encoding: 'utf8',
      });
      const s = (performance.now() - t0) / 1000;
      if (r.status !== 0) throw new Error(r.stderr);
      const [u, sys] = r.stderr.trim().split('\n').pop()!.split(' ').map(Number);
      const cpuS = u! + sys!;
      ratios[b]!.wall.push(rawS / s);
      ratios[b]!.cpu.push(rawCpuS / cpuS);
      console.log(
        `  ${bins[b]}: ${s.toFixed(2)} s (cpu ${cpuS.toFixed(2)} s), ${JSON.parse(r.stdout).imported} imported; ` +
          `ratio ${(rawS / s).toFixed(3)} (cpu ${(rawCpuS / cpuS).toFixed(3)})`,
      );
      if (prof) for (const f of fs.readdirSync(profDir)) summarise(path.join(profDir, f));
    }
  }
  const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)] ?? NaN;
  if (!queries)
    for (const [b, bin] of bins.entries())
      console.log(`median over ${turns} turns, ${bin}: ratio ${median(ratios[b]!.wall).toFixed(3)} (cpu ${median(ratios[b]!.cpu).toFixed(3)})`);
} finally {
  await v.drop();
}
