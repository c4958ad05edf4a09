/**
 * Entra sync under throttling: a simulated tenant answers every 5th Graph request with 429 and
 * Retry-After: 1. Reports the sync's wall time against the time the Retry-After waits alone impose
 * (number of 429s × 1 s), and checks that no request came early.
 *
 *   npx tsx bench/graph-throttle.ts [--keys 200] [--engine sqlite|postgres]
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../src/config.js';
import { openDatabase } from '../src/db/database.js';
import { initVault } from '../src/modules/vault/vault.service.js';
import { buildContainer } from '../src/container.js';
import { cliActor, systemActor } from '../src/modules/authz/authz.js';
import { systemClock } from '../src/lib/clock.js';
import { GraphSimulator } from '../test/graph-sim/simulator.js';
import { throwawayPostgres } from './lib.js';

const args = process.argv.slice(2);
const arg = (n: string, d: string) => (args.includes(`--${n}`) ? args[args.indexOf(`--${n}`) + 1]! : d);
const KEYS = Number(arg('keys', '200'));
const engine = arg('engine', 'sqlite');

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kw-throttle-'));
const pg =
  engine === 'postgres'
    ? await throwawayPostgres(process.env.KEYWARDEN_BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres', `kw_throttle_${process.pid}`)
    : null;
const config = loadConfig({
  KEYWARDEN_DATA_DIR: dir,
  KEYWARDEN_MASTER_KEY: randomBytes(32).toString('base64'),
  ...(pg ? { KEYWARDEN_DATABASE_URL: pg.url } : {}),
});
const d0 = openDatabase(config.database);
await initVault(config, d0, cliActor('bench'), systemClock);
await d0.close();
const c = await buildContainer(config);
const sim = new GraphSimulator();
const urls = await sim.start();

async function run(label: string, throttle: boolean) {
  const tenantId = randomUUIDish();
  const t = sim.seedTenant(tenantId, { keys: KEYS, devices: Math.ceil(KEYS / 2), pageSize: 50 });
  if (throttle) {
    t.throttleEvery = 5;
    t.retryAfter = { seconds: 1 };
  }
  const client = await c.clients.create(systemActor('bench'), { name: `${label} ${tenantId.slice(0, 8)}` });
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
  const throttles = sim.throttledAt(tenantId);
  const imposed = throttles.reduce((s, x) => s + x.retryAfterSeconds * 1000, 0);
  return {
    label,
    status: r.status,
    keys: r.newKeys,
    requests: sim.requests(tenantId).length,
    throttles: throttles.length,
    imposedMs: imposed,
    totalMs: Math.round(ms),
    ratio: imposed ? Number((ms / imposed).toFixed(3)) : null,
    violations: sim.violations(tenantId).length,
  };
}
function randomUUIDish() {
  const h = randomBytes(16).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

const base = await run('unthrottled', false);
const throttled = await run('throttled', true);
console.log(JSON.stringify(base));
console.log(JSON.stringify(throttled));
console.log(
  `\n${engine}, ${KEYS} keys: unthrottled ${base.totalMs} ms; throttled ${throttled.totalMs} ms with ${throttled.throttles} × 429 (Retry-After 1 s) = ${throttled.imposedMs} ms imposed → ${throttled.ratio}× the imposed time; ${throttled.violations} early requests`,
);
await sim.stop();
await c.close();
await pg?.drop();
fs.rmSync(dir, { recursive: true, force: true });
