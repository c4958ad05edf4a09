/**
 * The benchmark suite. Every benchmark measures its own baseline in the same run and
 * reports the ratio, because absolute figures on a shared 2-core machine drift from minute to minute.
 *
 *   npm run bench                          # full sizes, SQLite and PostgreSQL
 *   npm run bench -- --quick               # smaller sizes, under 3 minutes on 2 cores
 *   npm run bench -- --engine sqlite       # one engine
 *   npm run bench -- --only checkins,search
 *   npm run bench -- --only search --search-keys 1000000 --engine sqlite
 *
 * Benchmarks: checkins, checkins3 (three `keywarden serve` processes on one PostgreSQL database against
 * one), search (search + reveal, memory and start-up with N keys), import, graph, compliance (when
 * bench/compliance-report.ts exists), cli (start-up of --help and lookup, bench/cli-start.ts).
 * Results: a table on stdout, then a "Targets" block (each target, engine, figure, met / MISSED), and
 * bench/results/<timestamp>.json (plus bench/results/latest.json) with the rows and the same `targets`.
 * PostgreSQL: KEYWARDEN_BENCH_PG_URL (default postgres://postgres@127.0.0.1:5432/postgres); throwaway
 * databases are created and dropped.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { sql } from 'kysely';
import { loadConfig } from '../src/config.js';
import { openDatabase } from '../src/db/database.js';
import { buildContainer } from '../src/container.js';
import { systemActor, type Actor } from '../src/modules/authz/authz.js';
import { keyIdPrefixBounds } from '../src/domain/key-id.js';
import { GraphSimulator } from '../test/graph-sim/simulator.js';
import { SimMachine, TestAgent, injectTransport } from '../test/agent/test-agent.js';
import { buildApp } from '../src/app.js';
import { IMPORT_TABLES, createBenchVault, csvOf, keyIdOf, pct, reinsertImported, seedKeys, type BenchVault, type Engine } from './gen.js';

// ------------------------------------------------------------------------------ options
const args = process.argv.slice(2);
const flag = (n: string) => args.includes(`--${n}`);
const opt = (n: string, d: string) => (args.includes(`--${n}`) ? args[args.indexOf(`--${n}`) + 1]! : d);
const QUICK = flag('quick');
const ENGINES: Engine[] = opt('engine', 'both') === 'both' ? ['sqlite', 'postgres'] : [opt('engine', 'sqlite') as Engine];
const ONLY = opt('only', 'checkins,checkins3,search,import,graph,compliance,cli').split(',');
const SEED = opt('seed', 'keywarden-bench-1');
const SIZES = {
  checkinConcurrency: [50, 500],
  checkinSeconds: QUICK ? 2 : 10,
  checkinWarmup: QUICK ? 0.5 : 2,
  searchKeys: args.includes('--search-keys') ? opt('search-keys', '').split(',').map(Number) : QUICK ? [100_000] : [100_000, 1_000_000],
  reveals: QUICK ? 100 : 1000,
  importRows: QUICK ? 10_000 : 100_000,
  graphKeys: QUICK ? 500 : 10_000,
  graphLatencyMs: 20,
  complianceDevices: QUICK ? 20_000 : 100_000,
  cliRuns: QUICK ? 10 : 30,
};

const REPO = path.resolve(import.meta.dirname, '..');
const BIN = path.join(REPO, 'bin', 'keywarden.js');
const RESULTS = path.join(REPO, 'bench', 'results');

type Row = {
  bench: string;
  engine: Engine | '-';
  case: string;
  value: number | null;
  unit: string;
  p50?: number;
  p99?: number;
  baseline?: number | null;
  baselineLabel?: string;
  ratio?: number | null;
  target?: string;
  /** true / false against the target; null when this run cannot tell (then `verdict` says why). */
  met?: boolean | null;
  verdict?: string;
  note?: string;
};
const rows: Row[] = [];
const record = (r: Row) => {
  rows.push(r);
  console.log(
    `  ${r.engine} ${r.bench} ${r.case}: ${fmt(r.value)} ${r.unit}${r.p99 !== undefined ? ` (p50 ${r.p50} ms, p99 ${r.p99} ms)` : ''}${r.baseline != null ? ` vs ${r.baselineLabel} ${fmt(r.baseline)} = ${r.ratio}` : ''}${r.note ? ` — ${r.note}` : ''}`,
  );
};
const fmt = (v: number | null | undefined) => (v == null ? 'n/a' : v >= 100 ? Math.round(v).toLocaleString('en-US') : String(Number(v.toFixed(2))));
const ratio = (a: number, b: number) => (b ? Number((a / b).toFixed(3)) : null);
const verdictOf = (r: Row) => (r.met === true ? 'met' : r.met === false ? 'MISSED' : (r.verdict ?? 'not measured'));
const CPUS = os.cpus().length;

// ------------------------------------------------------------------------------ processes

/** Rebuilds dist/ when a source file is newer, so the servers measured run the current code. */
function ensureBuilt() {
  const distMain = path.join(REPO, 'dist', 'main.js');
  const built = fs.existsSync(distMain) ? fs.statSync(distMain).mtimeMs : 0;
  const newest = (dir: string): number =>
    fs
      .readdirSync(dir, { withFileTypes: true })
      .reduce((m, e) => Math.max(m, e.isDirectory() ? newest(path.join(dir, e.name)) : fs.statSync(path.join(dir, e.name)).mtimeMs), 0);
  if (newest(path.join(REPO, 'src')) <= built) return;
  console.log('dist/ is older than src/: compiling the server (tsc -p tsconfig.build.json)');
  const r = spawnSync(process.execPath, [path.join(REPO, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'], {
    cwd: REPO,
    stdio: 'inherit',
  });
  if (r.status !== 0) console.log('warning: tsc reported errors (files emitted anyway); figures measure what was emitted');
}

type Proc = { proc: ChildProcess; url: string; startedMs: number; stop(): Promise<void> };

/** Starts a server-like process and resolves once it prints "listening on <url> (". */
function startProcess(cmd: string[], env: NodeJS.ProcessEnv): Promise<Proc> {
  const t0 = performance.now();
  const proc = spawn(process.execPath, cmd, { cwd: REPO, env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  return new Promise((resolve, reject) => {
    proc.stderr!.on('data', (d) => {
      err += d;
      const m = /listening on (http:\/\/\S+?) \(/.exec(err);
      if (m && !err.includes('\u0000resolved')) {
        err += '\u0000resolved';
        resolve({
          proc,
          url: m[1]!,
          startedMs: performance.now() - t0,
          stop: () =>
            new Promise<void>((r) => {
              if (proc.exitCode !== null) return r();
              proc.once('exit', () => r());
              proc.kill('SIGTERM');
            }),
        });
      }
    });
    proc.once('exit', (c) => reject(new Error(`${cmd.join(' ')} exited with ${c}: ${err.slice(0, 2000)}`)));
  });
}
// BENCH_SERVER_NODE_OPTIONS="--cpu-prof --cpu-prof-dir=/tmp/prof" profiles the measured servers.
const serverNodeArgs = (process.env.BENCH_SERVER_NODE_OPTIONS ?? '').split(' ').filter(Boolean);
const startServer = (env: NodeJS.ProcessEnv) => startProcess([...serverNodeArgs, BIN, 'serve', '--port', '0'], env);
const startBare = () => startProcess([path.join(REPO, 'bench', 'bare-server.mjs')], {});

/** Resident set size of a process in MB (Linux /proc): now (VmRSS) or its high-water mark (VmHWM). */
function rssMb(pid: number, field: 'VmRSS' | 'VmHWM' = 'VmRSS'): number {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** Spawn to first 200 from /readyz, polled every 10 ms. */
async function timeToReady(cmd: string[], env: NodeJS.ProcessEnv): Promise<{ ms: number; p: Proc }> {
  const t0 = performance.now();
  const p = await startProcess(cmd, env);
  for (;;) {
    try {
      if ((await fetch(`${p.url}/readyz`)).status === 200) return { ms: performance.now() - t0, p };
    } catch {
      /* not yet */
    }
    await new Promise((r) => setTimeout(r, 10));
  }
}

function runLoadgen(plan: object): Promise<{
  requests: number;
  perSecond: number;
  p50ms: number;
  p99ms: number;
  errors: number;
  firstErrors: string[];
  perBase: number[];
  seqs: number[];
}> {
  const file = path.join(RESULTS, `.plan-${process.pid}.json`);
  fs.writeFileSync(file, JSON.stringify(plan));
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, ['--import', 'tsx', path.join(REPO, 'bench', 'loadgen.ts'), file], {
      cwd: REPO,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    proc.stdout!.on('data', (d) => (out += d));
    proc.on('exit', (code) => {
      fs.rmSync(file, { force: true });
      if (code !== 0) return reject(new Error(`load generator exited with ${code}`));
      resolve(JSON.parse(out.trim().split('\n').pop()!));
    });
  });
}

// ------------------------------------------------------------------------------ benchmarks

/** A device as the load generator drives it: its credential, salt, last sequence number sent and check-in body. */
type LoadDevice = { credential: string; salt: string; seq: number; body: Record<string, unknown> };

/**
 * Enrolls n simulated devices and escrows their keys through the app in this process, before any
 * server starts: the same work as over a socket, without paying for sockets twice.
 */
async function enrollDevices(engine: Engine, v: BenchVault, n: number): Promise<LoadDevice[]> {
  const c = await buildContainer(v.config);
  const client = await c.clients.create(systemActor('bench'), { name: 'Bench' });
  const { token } = await c.agent.createEnrollmentToken(systemActor('bench'), { clientId: client.id, maxUses: null });
  const app = await buildApp(c, { logger: false });
  const transport = injectTransport(app);
  const agents: TestAgent[] = [];
  const t0 = performance.now();
  for (let i = 0; i < n; i += 50) {
    agents.push(
      ...(await Promise.all(
        Array.from({ length: Math.min(50, n - i) }, async (_, j) => {
          const a = new TestAgent(transport, new SimMachine(`BENCH-PC-${String(i + j).padStart(5, '0')}`));
          if ((await a.enroll(token)).status !== 200) throw new Error('enroll failed');
          if ((await a.run()).exitCode !== 0) throw new Error('first check-in failed');
          return a;
        }),
      )),
    );
  }
  await app.close();
  await c.close();
  console.log(`  ${engine}: ${n} devices enrolled and escrowed in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return agents.map((a) => {
    const body = a.checkinBody();
    a.seq--; // checkinBody() claimed a number; the load generator continues from the last one sent
    return { credential: a.credential!, salt: a.salt!, seq: a.seq, body };
  });
}

/** One load-generator run; the devices' sequence numbers carry on from where it stopped. */
async function checkinRun(devices: LoadDevice[], bases: string[], mode: 'unchanged' | 'changed' | 'bare' | 'settle', concurrency: number) {
  const r = await runLoadgen({ bases, devices, concurrency, seconds: SIZES.checkinSeconds, warmupSeconds: SIZES.checkinWarmup, mode });
  if (mode !== 'bare') r.seqs.forEach((s, i) => (devices[i]!.seq = s));
  if (r.errors) console.log(`  ${mode} c=${concurrency}: ${r.errors} errors, e.g. ${r.firstErrors.join(' | ')}`);
  return r;
}

/**
 * The unchanged-key target differs per engine (issue 18): SQLite >= 2,000/s and >= 40 % of bare
 * Fastify; PostgreSQL >= 1,000/s per process (its round trips to the database server make the
 * bare-Fastify ratio the wrong yardstick there).
 */
const unchangedTarget = (engine: Engine, perSecond: number, bare: number) =>
  engine === 'sqlite'
    ? { target: '>= 2,000/s and >= 40% of bare', met: perSecond >= 2000 && perSecond >= 0.4 * bare }
    : { target: '>= 1,000/s per process', met: perSecond >= 1000 };

/** Agent check-ins: unchanged and changed keys at two concurrencies, against bare Fastify. */
async function benchCheckins(engine: Engine) {
  const v = await createBenchVault(engine, 'checkins');
  const bare = await startBare();
  let server: Proc | undefined;
  try {
    const devices = await enrollDevices(engine, v, Math.max(...SIZES.checkinConcurrency));
    server = await startServer(v.env);
    // The ceiling first at each concurrency, then our server right after it, so both see the same machine.
    for (const conc of SIZES.checkinConcurrency) {
      const b = await checkinRun(devices, [bare.url], 'bare', conc);
      const u = await checkinRun(devices, [server.url], 'unchanged', conc);
      record({
        bench: 'checkins',
        engine,
        case: `unchanged keys, concurrency ${conc}`,
        value: u.perSecond,
        unit: 'check-ins/s',
        p50: u.p50ms,
        p99: u.p99ms,
        baseline: b.perSecond,
        baselineLabel: 'bare Fastify',
        ratio: ratio(u.perSecond, b.perSecond),
        ...unchangedTarget(engine, u.perSecond, b.perSecond),
        note: u.errors ? `${u.errors} errors` : undefined,
      });
      // Changed keys are held to the unchanged rate of the same run (>= 50 %); bare Fastify stays in the note.
      const ch = await checkinRun(devices, [server.url], 'changed', conc);
      const r = ratio(ch.perSecond, u.perSecond);
      record({
        bench: 'checkins',
        engine,
        case: `changed keys, concurrency ${conc}`,
        value: ch.perSecond,
        unit: 'check-ins/s',
        p50: ch.p50ms,
        p99: ch.p99ms,
        baseline: u.perSecond,
        baselineLabel: 'unchanged keys',
        ratio: r,
        target: '>= 50% of unchanged',
        met: r !== null && r >= 0.5,
        note: `${ratio(ch.perSecond, b.perSecond)} of bare Fastify ${fmt(b.perSecond)}/s${ch.errors ? `; ${ch.errors} errors` : ''}`,
      });
      // Back to the enrolled state before the next unchanged run measures routine check-ins.
      await checkinRun(devices, [server.url], 'settle', conc);
    }
  } finally {
    await server?.stop();
    await bare.stop();
    await v.drop();
  }
}

/** Whole-machine CPU time from /proc/stat, in clock ticks: busy (all but idle and iowait) and total. */
function machineTicks(): { busy: number; total: number } {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  return { busy: total - f[3]! - (f[4] ?? 0), total };
}

/** CPU time (user + system) of one process from /proc/<pid>/stat, in clock ticks. */
function processTicks(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]); // utime and stime (fields 14 and 15 of proc(5))
}
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/**
 * Scale-out: three `keywarden serve` processes on one PostgreSQL database against one process, in
 * the same run, with the same devices and concurrency (unchanged keys; the load generator deals
 * its concurrent slots out to the three URLs, each device always to the same process). Besides the
 * rates, each row notes how busy the whole machine was and the servers' CPU time per check-in, so
 * a shortfall can be told apart: cores exhausted (the load generator, PostgreSQL and the servers
 * share them) or time lost elsewhere.
 */
async function benchCheckinsThree(engine: Engine) {
  const what = '3 processes vs 1, unchanged keys';
  if (engine === 'sqlite') {
    record({
      bench: 'checkins3',
      engine,
      case: what,
      value: null,
      unit: '',
      target: '>= 2.5x one process',
      met: null,
      verdict: 'n/a on SQLite',
      note: 'not run: SQLite is one writer per file, so more processes on one vault add no write capacity; scale-out is a PostgreSQL target',
    });
    return;
  }
  const v = await createBenchVault(engine, 'checkins3');
  const servers: Proc[] = [];
  try {
    const devices = await enrollDevices(engine, v, Math.max(...SIZES.checkinConcurrency));
    for (let i = 0; i < 3; i++) servers.push(await startServer(v.env));
    const urls = servers.map((p) => p.url);
    // Warm all three up (JIT, pools, caches) before either measurement; figures discarded.
    await checkinRun(devices, urls, 'unchanged', Math.min(...SIZES.checkinConcurrency));
    const measure = async (bases: string[], conc: number) => {
      const m0 = machineTicks();
      const p0 = servers.map((p) => processTicks(p.proc.pid!));
      const r = await checkinRun(devices, bases, 'unchanged', conc);
      const m1 = machineTicks();
      const serverCpuMs = servers.reduce((a, p, i) => a + processTicks(p.proc.pid!) - p0[i]!, 0) * (1000 / CLK_TCK);
      return {
        r,
        coresBusy: ((m1.busy - m0.busy) / (m1.total - m0.total)) * CPUS,
        cpuMsPerCheckin: r.requests ? serverCpuMs / r.requests : NaN,
      };
    };
    for (const conc of SIZES.checkinConcurrency) {
      const one = await measure(urls.slice(0, 1), conc);
      const three = await measure(urls, conc);
      const x = ratio(three.r.perSecond, one.r.perSecond);
      record({
        bench: 'checkins3',
        engine,
        case: `${what}, concurrency ${conc}`,
        value: three.r.perSecond,
        unit: 'check-ins/s',
        p50: three.r.p50ms,
        p99: three.r.p99ms,
        baseline: one.r.perSecond,
        baselineLabel: 'one process',
        ratio: x,
        target: '>= 2.5x one process',
        met: x !== null && x >= 2.5,
        note:
          `${CPUS} CPUs; per process ${three.r.perBase.map((n) => fmt((three.r.perSecond * n) / Math.max(1, three.r.requests))).join(' / ')}/s; ` +
          `whole machine busy ${one.coresBusy.toFixed(2)} → ${three.coresBusy.toFixed(2)} of ${CPUS} cores; ` +
          `server CPU per check-in ${one.cpuMsPerCheckin.toFixed(2)} → ${three.cpuMsPerCheckin.toFixed(2)} ms` +
          (one.r.errors + three.r.errors ? `; ${one.r.errors + three.r.errors} errors` : ''),
      });
    }
  } finally {
    for (const p of servers) await p.stop();
    await v.drop();
  }
}

/** Key search by 8-digit prefix and reveal at N keys, against a raw indexed lookup; then RSS and start-up. */
async function benchSearch(engine: Engine, keys: number) {
  const v = await createBenchVault(engine, `search${keys}`, { KEYWARDEN_REVEAL_LIMIT_PER_HOUR: '10000' });
  try {
    const config = loadConfig(v.env);
    const c = await buildContainer(config);
    const client = await c.clients.create(systemActor('bench'), { name: 'Bench' });
    const db = openDatabase(config.database);
    const t0 = performance.now();
    await seedKeys(db, config, client.id, { seed: SEED, count: keys });
    console.log(`  ${engine}: seeded ${keys.toLocaleString('en-US')} keys in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    if (engine === 'postgres') await sql`analyze`.execute(db.db);
    const user = await c.identity.createUser(systemActor('bench'), {
      email: 'tech@bench.example',
      password: 'bench password long enough',
      role: 'technician',
      clients: [client.id],
    });
    const actor: Actor = { type: 'user', id: user.id, name: 'tech@bench.example', role: 'technician', clients: [client.id] };
    const R = SIZES.reveals;
    const picks = Array.from({ length: R }, (_, j) => Math.floor(((j + 0.5) * keys) / R));
    const time = async (f: (i: number) => Promise<unknown>) => {
      const l: number[] = [];
      for (const i of picks) {
        const s = performance.now();
        await f(i);
        l.push(performance.now() - s);
      }
      return l.sort((a, b) => a - b);
    };
    // Baseline: the same range lookup on the key_id index, same driver, no service around it.
    const raw = await time(async (i) => {
      const { low, high } = keyIdPrefixBounds(keyIdOf(SEED, i).slice(0, 8));
      return db.db
        .selectFrom('recovery_keys')
        .select(['id', 'ciphertext', 'data_key_version'])
        .where('key_id', '>=', low)
        .where('key_id', '<=', high)
        .limit(11)
        .execute();
    });
    const search = await time((i) => c.keys.search(actor, keyIdOf(SEED, i).slice(0, 8)));
    let revealed = 0;
    const reveal = await time(async (i) => {
      const r = await c.keys.revealByKeyId(actor, { query: keyIdOf(SEED, i).slice(0, 8), reason: 'lost-pin', ticket: 'BENCH-1' });
      if (r.status === 'revealed') revealed++;
    });
    const n = `${keys.toLocaleString('en-US')} keys`;
    const rawP99 = Number(pct(raw, 99).toFixed(2));
    record({
      bench: 'search',
      engine,
      case: `raw indexed lookup, ${n}`,
      value: Number(pct(raw, 50).toFixed(2)),
      unit: 'ms p50',
      p50: Number(pct(raw, 50).toFixed(2)),
      p99: rawP99,
    });
    record({
      bench: 'search',
      engine,
      case: `search by 8-digit prefix, ${n}`,
      value: Number(pct(search, 99).toFixed(2)),
      unit: 'ms p99',
      p50: Number(pct(search, 50).toFixed(2)),
      p99: Number(pct(search, 99).toFixed(2)),
      baseline: rawP99,
      baselineLabel: 'raw lookup p99',
      ratio: ratio(pct(search, 99), pct(raw, 99)),
    });
    record({
      bench: 'search',
      engine,
      case: `search + reveal (authz, decrypt, audit), ${n}`,
      value: Number(pct(reveal, 99).toFixed(2)),
      unit: 'ms p99',
      p50: Number(pct(reveal, 50).toFixed(2)),
      p99: Number(pct(reveal, 99).toFixed(2)),
      baseline: rawP99,
      baselineLabel: 'raw lookup p99',
      ratio: ratio(pct(reveal, 99), pct(raw, 99)),
      // The target is at 1,000,000 keys: a smaller vault (--quick) shows its figure but no verdict.
      target: '< 10 ms p99 at 1,000,000 keys',
      met: keys >= 1_000_000 ? pct(reveal, 99) < 10 : null,
      verdict: keys >= 1_000_000 ? undefined : 'not measured at 1M',
      note: `${revealed}/${R} revealed`,
    });
    await db.close();
    await c.close();

    // Memory and start-up of a server process on this vault, against an empty vault and bare Fastify.
    const empty = await createBenchVault(engine, `empty${keys}`);
    try {
      const bareStart = await timeToReady([path.join(REPO, 'bench', 'bare-server.mjs')], {});
      await bareStart.p.stop();
      const e = await timeToReady([BIN, 'serve', '--port', '0'], empty.env);
      const emptyRss = await rssAfterLoad(e.p);
      await e.p.stop();
      const s = await timeToReady([BIN, 'serve', '--port', '0'], v.env);
      const rss = await rssAfterLoad(s.p);
      await s.p.stop();
      record({
        bench: 'memory',
        engine,
        case: `server RSS after ready + 200 requests, ${n}`,
        value: Number(rss.now.toFixed(1)),
        unit: 'MB',
        baseline: Number(emptyRss.now.toFixed(1)),
        baselineLabel: 'empty vault',
        ratio: ratio(rss.now, emptyRss.now),
        target: keys >= 1_000_000 ? '< 300 MB' : undefined,
        met: keys >= 1_000_000 ? rss.now < 300 : undefined,
        note: `high-water mark ${rss.peak.toFixed(0)} MB (empty vault ${emptyRss.peak.toFixed(0)} MB)`,
      });
      record({
        bench: 'startup',
        engine,
        case: `spawn to /readyz 200, ${n}`,
        value: Math.round(s.ms),
        unit: 'ms',
        baseline: Math.round(bareStart.ms),
        baselineLabel: 'bare Fastify process',
        ratio: ratio(s.ms, bareStart.ms),
        target: '< 2,000 ms',
        met: s.ms < 2000,
      });
    } finally {
      await empty.drop();
    }
  } finally {
    await v.drop();
  }
}

/** 200 mixed requests (readyz, a refused API call, OpenAPI document), then RSS. */
async function rssAfterLoad(p: Proc): Promise<{ now: number; peak: number }> {
  for (let i = 0; i < 200; i++) {
    const url = i % 3 === 0 ? '/readyz' : i % 3 === 1 ? '/api/v1/keys?q=abcdef12' : '/api/openapi.json';
    await (await fetch(p.url + url)).arrayBuffer();
  }
  return { now: rssMb(p.proc.pid!), peak: rssMb(p.proc.pid!, 'VmHWM') };
}

/**
 * CSV import with the real CLI, against raw batched inserts of the same rows: the rows the import
 * wrote (devices, volumes, keys, key sources, compliance) are taken out and put back with the
 * fastest batched insert each engine has, timed. The older baseline (`seedKeys`: as many sealed,
 * fingerprinted keys and their devices, 2 tables) is shown in the note for comparison with earlier
 * runs.
 */
async function benchImport(engine: Engine) {
  const v = await createBenchVault(engine, 'import');
  try {
    const rowsN = SIZES.importRows;
    const csv = path.join(v.dir, 'keys.csv');
    fs.writeFileSync(csv, csvOf(SEED, rowsN));
    const c = await buildContainer(v.config);
    const benchClient = await c.clients.create(systemActor('bench'), { name: 'Bench' });
    const rawClient = await c.clients.create(systemActor('bench'), { name: 'Raw' });
    await c.close();
    const db = openDatabase(v.config.database);
    try {
      const t1 = performance.now();
      await seedKeys(db, v.config, rawClient.id, { seed: `${SEED}-raw`, count: rowsN });
      const keysOnlyS = (performance.now() - t1) / 1000;
      const t0 = performance.now();
      const r = spawnSync(process.execPath, [BIN, 'import', csv, '--client', 'Bench', '--json'], {
        cwd: REPO,
        env: { ...process.env, ...v.env },
        encoding: 'utf8',
      });
      const s = (performance.now() - t0) / 1000;
      const imported = r.status === 0 ? JSON.parse(r.stdout).imported : null;
      const same = r.status === 0 ? await reinsertImported(db, benchClient.id) : null;
      const rawRate = same ? rowsN / same.seconds : null;
      record({
        bench: 'import',
        engine,
        case: `${rowsN.toLocaleString('en-US')} CSV rows (CLI process)`,
        value: Math.round(rowsN / s),
        unit: 'rows/s',
        baseline: rawRate === null ? null : Math.round(rawRate),
        baselineLabel: 'raw batched inserts of the same rows',
        ratio: rawRate === null ? null : ratio(rowsN / s, rawRate),
        target: '>= 50% of raw batched inserts',
        met: rawRate !== null && rowsN / s >= 0.5 * rawRate,
        note:
          r.status === 0
            ? `${imported} imported in ${s.toFixed(2)} s (start-up included); the same ${same!.rows.toLocaleString('en-US')} rows in ${IMPORT_TABLES.length} tables re-inserted raw in ${same!.seconds.toFixed(2)} s; ` +
              `keys-only baseline (seedKeys, 2 tables) ${Math.round(rowsN / keysOnlyS).toLocaleString('en-US')} rows/s = ${ratio(rowsN / s, rowsN / keysOnlyS)}`
            : `import failed: ${r.stderr.slice(0, 200)}`,
      });
    } finally {
      await db.close();
    }
  } finally {
    await v.drop();
  }
}

/** Entra sync of N keys against the simulator with 20 ms latency, against the minimum its concurrency allows. */
async function benchGraph(engine: Engine) {
  // The simulator listens on loopback, which the egress policy refuses unless the operator allows it.
  const v = await createBenchVault(engine, 'graph', { KEYWARDEN_EGRESS_ALLOW: '127.0.0.1,::1,localhost' });
  const sim = new GraphSimulator({ latencyMs: SIZES.graphLatencyMs });
  const urls = await sim.start();
  try {
    const c = await buildContainer(v.config);
    const tenantId = '7d1a3e52-0b6f-4c1e-9a55-1f2e3d4c5b6a';
    const t = sim.seedTenant(tenantId, { keys: SIZES.graphKeys, devices: Math.ceil(SIZES.graphKeys / 2), pageSize: 200, seed: SEED });
    const client = await c.clients.create(systemActor('bench'), { name: 'Graph bench' });
    const conn = await c.graph.createConnection(systemActor('bench'), {
      clientId: client.id,
      tenantId,
      appClientId: t.clientId,
      clientSecret: t.clientSecret,
      ...urls,
    });
    const t0 = performance.now();
    const r = await c.graph.runSync(conn.id);
    const ms = performance.now() - t0;
    await c.close();
    // The requests the sync made: per-key and per-device reads go out 4 at a time (READ_CONCURRENCY
    // in graph.service.ts); the token, the listing pages and audit reads are sequential.
    const reqs = sim.requests(tenantId);
    const pooled = reqs.filter((q) => /\/recoveryKeys\/[^/]+$/.test(q.path) || (/\/devices$/.test(q.path) && /deviceId/.test(q.query))).length;
    const sequential = reqs.length - pooled + 1; // + the token request, served on the login host
    const minimum = SIZES.graphLatencyMs * (sequential + Math.ceil(pooled / 4));
    record({
      bench: 'graph',
      engine,
      case: `sync ${SIZES.graphKeys.toLocaleString('en-US')} keys, ${SIZES.graphLatencyMs} ms latency`,
      value: Math.round(ms),
      unit: 'ms',
      baseline: minimum,
      baselineLabel: 'minimum at concurrency 4',
      ratio: ratio(ms, minimum),
      note: `${r.status}, ${r.newKeys} new keys, ${reqs.length} requests (${pooled} pooled)`,
    });
  } finally {
    await sim.stop();
    await v.drop();
  }
}

/** Compliance evaluation and CSV report: written by the compliance work (bench/compliance-report.ts). */
async function benchCompliance(engine: Engine) {
  const file = path.join(REPO, 'bench', 'compliance-report.ts');
  if (!fs.existsSync(file)) {
    record({
      bench: 'compliance',
      engine,
      case: `evaluation + CSV report, ${SIZES.complianceDevices.toLocaleString('en-US')} devices`,
      value: null,
      unit: '',
      note: 'not available: bench/compliance-report.ts does not exist in this tree',
    });
    return;
  }
  // That script prints one line per phase: "  <phase>   <wall> s (CPU <cpu> s)   RSS before <a> MB, peak <b> MB".
  // It measures no baseline of its own, so these rows have none (said so in the note).
  const r = spawnSync(process.execPath, ['--import', 'tsx', file, '--engine', engine, '--devices', String(SIZES.complianceDevices)], {
    cwd: REPO,
    encoding: 'utf8',
    env: process.env,
  });
  const phases = [...r.stdout.matchAll(/^ {2}(\S.*?)\s{2,}([\d.]+) s \(CPU ([\d.]+) s\)\s+RSS before\s+(\d+) MB, peak\s+(\d+) MB/gm)];
  if (r.status !== 0 || phases.length === 0) {
    record({
      bench: 'compliance',
      engine,
      case: 'evaluation + reports',
      value: null,
      unit: '',
      note: `failed (exit ${r.status}): ${(r.stderr || r.stdout).slice(-300)}`,
    });
    return;
  }
  for (const m of phases) {
    const [, name, wall, cpu, before, peak] = m;
    if (/^seed/i.test(name!)) continue;
    record({
      bench: 'compliance',
      engine,
      case: `${name!.trim()}, ${SIZES.complianceDevices.toLocaleString('en-US')} devices`,
      value: Number(wall),
      unit: 's',
      note: `CPU ${cpu} s, RSS ${before} → peak ${peak} MB; no baseline in bench/compliance-report.ts`,
    });
  }
}

/** CLI start-up: bench/cli-start.ts times each case against node -e 0 in the same run and prints one JSON line. */
async function benchCli(engine: Engine) {
  const r = spawnSync(
    process.execPath,
    ['--import', 'tsx', path.join(REPO, 'bench', 'cli-start.ts'), '--engine', engine, '--runs', String(SIZES.cliRuns), '--json'],
    {
      cwd: REPO,
      encoding: 'utf8',
      env: process.env,
    },
  );
  const last = r.stdout.trim().split('\n').pop() ?? '';
  if (r.status !== 0 || !last.startsWith('{')) throw new Error(`bench/cli-start.ts failed (exit ${r.status}): ${(r.stderr || r.stdout).slice(-300)}`);
  const { rows: cli } = JSON.parse(last) as { rows: import('./cli-start.js').CliStartRow[] };
  for (const c of cli) {
    if (c.case === 'node -e 0') continue;
    record({
      bench: 'cli',
      engine,
      case: c.case,
      value: c.medianMs,
      unit: 'ms',
      baseline: c.baselineMs,
      baselineLabel: 'node -e 0',
      ratio: c.ratio,
      ...(c.targetMs ? { target: `< ${c.targetMs} ms`, met: c.medianMs < c.targetMs } : {}),
      note: `median of ${SIZES.cliRuns}, min ${c.minMs} ms, ${c.modules} modules loaded`,
    });
  }
}

// ------------------------------------------------------------------------------ main
fs.mkdirSync(RESULTS, { recursive: true });
ensureBuilt();
const started = Date.now();
const loadBefore = os.loadavg().map((l) => Number(l.toFixed(2)));
console.log(`Keywarden benchmarks${QUICK ? ' (--quick)' : ''}: ${ENGINES.join(', ')}; ${ONLY.join(', ')}; ${CPUS} CPUs, load average ${loadBefore.join(' ')}`);
const failures: string[] = [];
for (const engine of ENGINES) {
  const steps: [string, () => Promise<void>][] = [
    ['checkins', () => benchCheckins(engine)],
    ['checkins3', () => benchCheckinsThree(engine)],
    ...SIZES.searchKeys.map((k): [string, () => Promise<void>] => ['search', () => benchSearch(engine, k)]),
    ['import', () => benchImport(engine)],
    ['graph', () => benchGraph(engine)],
    ['compliance', () => benchCompliance(engine)],
    ['cli', () => benchCli(engine)],
  ];
  for (const [name, f] of steps) {
    if (!ONLY.includes(name)) continue;
    console.log(`\n== ${engine}: ${name}`);
    try {
      await f();
    } catch (e) {
      failures.push(`${engine} ${name}: ${(e as Error).stack ?? e}`);
      console.log(`  FAILED: ${(e as Error).message}`);
    }
  }
}
const seconds = Math.round((Date.now() - started) / 1000);

console.log(
  `\n${'bench'.padEnd(10)} ${'engine'.padEnd(8)} ${'case'.padEnd(52)} ${'value'.padStart(12)} ${'p50/p99 ms'.padStart(16)} ${'baseline'.padStart(22)} ${'ratio'.padStart(7)}  target`,
);
for (const r of rows) {
  console.log(
    `${r.bench.padEnd(10)} ${r.engine.padEnd(8)} ${r.case.slice(0, 52).padEnd(52)} ${`${fmt(r.value)} ${r.unit}`.padStart(12)} ${(r.p99 !== undefined ? `${r.p50}/${r.p99}` : '').padStart(16)} ${(r.baseline != null ? `${fmt(r.baseline)} ${r.baselineLabel}` : '').slice(0, 22).padStart(22)} ${(r.ratio != null ? String(r.ratio) : '').padStart(7)}  ${r.target ? `${r.target}: ${verdictOf(r)}` : (r.note ?? '')}`,
  );
}
console.log(`\n${rows.length} figures in ${seconds} s${failures.length ? `; ${failures.length} benchmark(s) failed` : ''}`);

// The verdict at a glance: every row that carries a target, with its figure and met / MISSED.
const loadAfter = os.loadavg().map((l) => Number(l.toFixed(2)));
const targets = rows
  .filter((r) => r.target)
  .map((r) => ({
    target: r.target!,
    engine: r.engine,
    bench: r.bench,
    case: r.case,
    figure: r.value,
    unit: r.unit,
    baseline: r.baseline ?? null,
    baselineLabel: r.baselineLabel ?? null,
    ratio: r.ratio ?? null,
    met: r.met ?? null,
    verdict: verdictOf(r),
  }));
console.log(`\nTargets (${CPUS} CPUs; load average ${loadBefore.join(' ')} before, ${loadAfter.join(' ')} after)`);
for (const t of targets) {
  const figure = t.figure == null ? 'n/a' : `${fmt(t.figure)} ${t.unit}`;
  const vs = t.baseline != null ? `${t.ratio} of ${t.baselineLabel} ${fmt(t.baseline)}` : '';
  console.log(
    `  ${t.verdict.padEnd(18)} ${t.engine.padEnd(8)} ${t.bench.padEnd(10)} ${t.target.padEnd(32)} ${figure.padStart(18)}  ${vs.padEnd(36)} ${t.case}`,
  );
}
const notRun = ['checkins', 'checkins3', 'search', 'import', 'cli'].filter((b) => !ONLY.includes(b));
if (notRun.length) console.log(`  not run here (--only): ${notRun.join(', ')}`);
const result = {
  date: new Date().toISOString(),
  quick: QUICK,
  engines: ENGINES,
  seconds,
  node: process.version,
  cpus: CPUS,
  loadAverage: { before: loadBefore, after: loadAfter },
  rows,
  targets,
  failures,
};
const stamp = result.date.replace(/[:.]/g, '-');
fs.writeFileSync(path.join(RESULTS, `${stamp}.json`), JSON.stringify(result, null, 2));
fs.writeFileSync(path.join(RESULTS, 'latest.json'), JSON.stringify(result, null, 2));
for (const f of failures) console.log(f);
process.exit(failures.length ? 1 : 0);
