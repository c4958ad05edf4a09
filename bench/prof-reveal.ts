/**
 * Where a search + reveal spends its time: N sequential `keys.revealByKeyId` calls by a technician
 * (8-digit prefix, as bench/run.ts's search benchmark does), printing every SQL statement's count
 * and time per reveal, the process CPU per reveal and p50/p99 wall time.
 *   npx tsx bench/prof-reveal.ts [--engine sqlite|postgres] [--keys 100000] [--n 500] [--vault DIR]
 * --vault keeps the seeded vault in DIR (and its PostgreSQL database) for the next run, so a
 * before/after comparison at 1,000,000 keys seeds once. Every run reveals keys no earlier run
 * revealed (the first reveal of a key changes its state) as a fresh technician (the hourly limit).
 */
import fs from 'node:fs';
import path from 'node:path';
import { sql } from 'kysely';
import { loadConfig } from '../src/config.js';
import { buildContainer } from '../src/container.js';
import { openDatabase } from '../src/db/database.js';
import { systemActor, type Actor } from '../src/modules/authz/authz.js';
import { createBenchVault, keyIdOf, pct, seedKeys, type Engine } from './gen.js';

const args = process.argv.slice(2);
const opt = (n: string, d: string) => (args.includes(`--${n}`) ? args[args.indexOf(`--${n}`) + 1]! : d);
const engine = opt('engine', 'sqlite') as Engine;
const keys = Number(opt('keys', '100000'));
const N = Number(opt('n', '500'));
const SEED = 'keywarden-bench-1';
const vaultDir = opt('vault', '');

type Kept = { env: NodeJS.ProcessEnv; clientId: string; runs: number };
const metaFile = vaultDir && path.join(vaultDir, 'prof-reveal.json');
let kept: Kept | undefined = metaFile && fs.existsSync(metaFile) ? (JSON.parse(fs.readFileSync(metaFile, 'utf8')) as Kept) : undefined;
let drop: (() => Promise<void>) | undefined;
if (!kept) {
  const v = await createBenchVault(engine, `profreveal${keys}`, { KEYWARDEN_REVEAL_LIMIT_PER_HOUR: '10000' });
  const c = await buildContainer(loadConfig(v.env));
  const client = await c.clients.create(systemActor('bench'), { name: 'Bench' });
  await c.close();
  const db = openDatabase(v.config.database);
  const t0 = performance.now();
  await seedKeys(db, v.config, client.id, { seed: SEED, count: keys });
  if (engine === 'postgres') await sql`analyze`.execute(db.db);
  await db.close();
  console.log(`seeded ${keys.toLocaleString('en-US')} keys in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  kept = { env: v.env, clientId: client.id, runs: 0 };
  if (metaFile) {
    fs.mkdirSync(vaultDir, { recursive: true });
    fs.writeFileSync(metaFile, JSON.stringify(kept));
  } else drop = v.drop;
}

const stats = new Map<string, { n: number; ms: number }>();
let counting = false;
const log = (e: { query: { sql: string }; queryDurationMillis: number }) => {
  if (!counting) return;
  const k = e.query.sql.replace(/\s+/g, ' ').slice(0, 90);
  const s = stats.get(k) ?? { n: 0, ms: 0 };
  s.n++;
  s.ms += e.queryDurationMillis;
  stats.set(k, s);
};
const config = loadConfig(kept.env);
const database = openDatabase(config.database, { log });
const c = await buildContainer(config, { database });
const run = kept.runs++;
if (metaFile) fs.writeFileSync(metaFile, JSON.stringify(kept));
const email = `tech${run}-${process.pid}@bench.example`;
const user = await c.identity.createUser(systemActor('bench'), { email, password: 'bench password long enough', role: 'technician', clients: [kept.clientId] });
const actor: Actor = { type: 'user', id: user.id, name: email, role: 'technician', clients: [kept.clientId] };

// Spread over the vault like bench/run.ts, shifted per run so each run reveals fresh keys.
const stride = Math.floor(keys / N);
const picks = Array.from({ length: N }, (_, j) => j * stride + ((run * 7919 + 13) % stride));
const reveal = (i: number) => c.keys.revealByKeyId(actor, { query: keyIdOf(SEED, i).slice(0, 8), reason: 'lost-pin', ticket: 'BENCH-1' });
for (let j = 0; j < 20; j++) await reveal(picks[N - 1]! - j - 1); // warm-up: caches, statements, connections
counting = true;
const times: number[] = [];
let revealed = 0;
const cpu0 = process.cpuUsage();
const t0 = performance.now();
for (const i of picks) {
  const s = performance.now();
  if ((await reveal(i)).status === 'revealed') revealed++;
  times.push(performance.now() - s);
}
const wall = performance.now() - t0;
const cpu = process.cpuUsage(cpu0);
times.sort((a, b) => a - b);
const statements = [...stats.values()].reduce((a, s) => a + s.n, 0);
console.log(
  `${engine}, ${keys.toLocaleString('en-US')} keys, ${N} reveals (${revealed} revealed), run ${run}: p50 ${pct(times, 50).toFixed(2)} ms, p99 ${pct(times, 99).toFixed(2)} ms, ` +
    `mean ${(wall / N).toFixed(2)} ms wall, ${((cpu.user + cpu.system) / 1000 / N).toFixed(3)} ms CPU per reveal, ${(statements / N).toFixed(1)} statements per reveal (with begin/commit)`,
);
for (const [k, s] of [...stats].sort((a, b) => b[1].ms - a[1].ms)) console.log(`${(s.n / N).toFixed(2)}x ${(s.ms / N).toFixed(3)}ms  ${k}`);
await c.close();
await drop?.();
