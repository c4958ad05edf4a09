/**
 * Agent load: N simulated devices (default 1,000) enroll, escrow their keys, then all check in
 * concurrently, back to back, for D seconds (default 60) against one `keywarden serve` process on a
 * real socket. Prints check-ins/s, p50/p99 latency and the error count.
 *
 *   npm run bench:agents                                  # SQLite and PostgreSQL, 1,000 devices, 60 s
 *   npm run bench:agents -- --engine sqlite --devices 200 --seconds 20
 *
 * PostgreSQL: KEYWARDEN_BENCH_PG_URL (default postgres://postgres@127.0.0.1:5432/postgres); a
 * throwaway database is created and dropped. Loopback only.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Agent, setGlobalDispatcher } from 'undici';
import { throwawayPostgres } from './lib.js';
import { SimMachine, TestAgent, type Transport } from '../test/agent/test-agent.js';

const args = process.argv.slice(2);
const arg = (name: string, dflt: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? args[i + 1]! : dflt;
};
const DEVICES = Number(arg('devices', '1000'));
const SECONDS = Number(arg('seconds', '60'));
const engines = arg('engine', 'both') === 'both' ? ['sqlite', 'postgres'] : [arg('engine', 'sqlite')];
const repo = path.resolve(import.meta.dirname, '..');
const bin = path.join(repo, 'bin', 'keywarden.js');
const pgAdmin = process.env.KEYWARDEN_BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

// Keep-alive connections, as many as there are devices.
setGlobalDispatcher(new Agent({ connections: DEVICES + 10, pipelining: 1, keepAliveTimeout: 60_000 }));

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;

async function bench(engine: string) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keywarden-agents-'));
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    KEYWARDEN_DATA_DIR: path.join(dir, 'data'),
    KEYWARDEN_MASTER_KEY: randomBytes(32).toString('base64'),
    KEYWARDEN_LOG_LEVEL: 'warn',
  };
  let dropPg: (() => Promise<void>) | undefined;
  if (engine === 'postgres') {
    const tmp = await throwawayPostgres(pgAdmin, `kw_agents_${process.pid}`);
    env.KEYWARDEN_DATABASE_URL = tmp.url;
    dropPg = tmp.drop;
  }
  const cli = (a: string[]) => spawnSync(process.execPath, [bin, ...a], { env, encoding: 'utf8' });
  cli(['init']);
  cli(['client', 'add', 'Bench']);
  const token = JSON.parse(cli(['agent', 'token', 'create', '--client', 'Bench', '--json']).stdout).token as string;

  const server = spawn(process.execPath, [bin, 'serve', '--port', '0'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  const base = await new Promise<string>((resolve, reject) => {
    let err = '';
    server.stderr!.on('data', (d) => {
      err += d;
      const m = /listening on (http:\/\/\S+?) \(/.exec(err);
      if (m) resolve(m[1]!);
    });
    server.on('exit', (c) => reject(new Error(`server exited ${c}: ${err}`)));
  });
  const transport: Transport = async ({ method, url, body, headers }) => {
    const r = await fetch(base + url, { method, headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
    return { status: r.status, json: await r.json() };
  };

  console.log(`\n== ${engine}: enrolling ${DEVICES} devices`);
  const agents: TestAgent[] = [];
  let t0 = Date.now();
  for (let i = 0; i < DEVICES; i += 50) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(50, DEVICES - i) }, async (_, j) => {
        const a = new TestAgent(transport, new SimMachine(`BENCH-PC-${String(i + j).padStart(5, '0')}`));
        const e = await a.enroll(token);
        if (e.status !== 200) throw new Error(`enroll failed: ${e.status} ${JSON.stringify(e.json)}`);
        const first = await a.run();
        if (first.exitCode !== 0) throw new Error(`first check-in failed: ${first.finalLine}`);
        return a;
      }),
    );
    agents.push(...batch);
  }
  console.log(`enrolled and escrowed ${agents.length} devices in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

  console.log(`== ${engine}: ${DEVICES} devices checking in concurrently for ${SECONDS} s`);
  const latencies: number[] = [];
  const errors: string[] = [];
  const stopAt = Date.now() + SECONDS * 1000;
  t0 = Date.now();
  await Promise.all(
    agents.map(async (a) => {
      while (Date.now() < stopAt) {
        const s = performance.now();
        try {
          const r = await a.post('/api/v1/agent/checkin', a.checkinBody());
          if (r.status !== 200 || r.json.requestPasswords.length) errors.push(`${r.status} ${JSON.stringify(r.json).slice(0, 120)}`);
        } catch (e) {
          errors.push(String(e));
        }
        latencies.push(performance.now() - s);
      }
    }),
  );
  const elapsed = (Date.now() - t0) / 1000;
  server.kill('SIGTERM');
  await new Promise((r) => server.on('exit', r));
  await dropPg?.();
  fs.rmSync(dir, { recursive: true, force: true });
  latencies.sort((x, y) => x - y);
  const result = {
    engine,
    devices: DEVICES,
    seconds: Number(elapsed.toFixed(1)),
    checkins: latencies.length,
    checkinsPerSecond: Math.round(latencies.length / elapsed),
    p50ms: Math.round(pct(latencies, 50)),
    p99ms: Math.round(pct(latencies, 99)),
    errors: errors.length,
  };
  console.log(JSON.stringify(result));
  if (errors.length) console.log('first errors:', errors.slice(0, 5));
  return result;
}

const results = [];
for (const e of engines) results.push(await bench(e));
console.log(
  '\n' +
    results
      .map(
        (r) =>
          `${r.engine}: ${r.devices} devices, ${r.checkins.toLocaleString('en-US')} check-ins in ${r.seconds} s = ${r.checkinsPerSecond} /s, p50 ${r.p50ms} ms, p99 ${r.p99ms} ms, ${r.errors} errors`,
      )
      .join('\n'),
);
process.exit(results.some((r) => r.errors > 0) ? 1 : 0);
