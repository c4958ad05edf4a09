/**
 * Where a routine agent check-in spends its time: runs N sequential check-ins of one simulated
 * device through app.inject and prints every SQL statement's count and total time.
 *   npx tsx bench/prof-checkin.ts [postgres-url]
 */
import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../src/config.js';
import { buildContainer } from '../src/container.js';
import { buildApp } from '../src/app.js';
import { initVault } from '../src/modules/vault/vault.service.js';
import { openDatabase, type Database } from '../src/db/database.js';
import type { DB } from '../src/db/schema.js';
import SQLite from 'better-sqlite3';
import { Kysely, SqliteDialect } from 'kysely';
import { cliActor, systemActor } from '../src/modules/authz/authz.js';
import { systemClock } from '../src/lib/clock.js';
import { SimMachine, TestAgent } from '../test/agent/test-agent.js';

const url = process.argv[2];
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kw-prof-'));
const env = { KEYWARDEN_DATA_DIR: dir, KEYWARDEN_MASTER_KEY: randomBytes(32).toString('base64'), ...(url ? { KEYWARDEN_DATABASE_URL: url } : {}) };
const config = loadConfig(env);
const d0 = openDatabase(config.database);
await initVault(config, d0, cliActor('prof'), systemClock);
await d0.close();
const stats = new Map<string, { n: number; ms: number }>();
const log = (e: { query: { sql: string }; queryDurationMillis: number }) => {
  const k = e.query.sql.slice(0, 70);
  const s = stats.get(k) ?? { n: 0, ms: 0 };
  s.n++;
  s.ms += e.queryDurationMillis;
  stats.set(k, s);
};
// The product's own database setup (statement cache, pragmas, pool), with a query log.
// PROF_NO_STMT_CACHE=1 (SQLite): plain Kysely over better-sqlite3, as before the statement cache, for an A/B.
const database: Database =
  process.env.PROF_NO_STMT_CACHE && !url
    ? (() => {
        const raw = new Kysely<DB>({
          dialect: new SqliteDialect({ database: new SQLite(config.database.engine === 'sqlite' ? config.database.file : '') }),
          log,
        });
        return { db: raw, engine: 'sqlite' as const, close: () => raw.destroy() };
      })()
    : openDatabase(config.database, { log });
const c = await buildContainer(config, { database });
const app = await buildApp(c, { logger: false });
const client = await c.clients.create(systemActor('prof'), { name: 'Prof' });
const { token } = await c.agent.createEnrollmentToken(systemActor('prof'), { clientId: client.id });
const agent = new TestAgent(async (r) => {
  const res = await app.inject({ method: r.method, url: r.url, payload: r.body as object, headers: r.headers });
  return { status: res.statusCode, json: res.json() };
}, new SimMachine('PROF-PC'));
await agent.enroll(token);
await agent.run();
stats.clear();
const N = Number(process.env.PROF_N ?? 200);
const t0 = performance.now();
const cpu0 = process.cpuUsage();
// PROF_MODE=changed: each check-in reports a new recovery password protector the vault does not
// have, as bench/loadgen.ts does (findings, audit events, a request to upload; no upload).
const changed = process.env.PROF_MODE === 'changed';
const changedBody = () => {
  const b = agent.checkinBody();
  const vol = b.volumes[0]!;
  const pw = Array.from({ length: 8 }, () => String(randomBytes(2).readUInt16LE(0) * 11).padStart(6, '0')).join('-');
  vol.keyProtectors = [
    ...vol.keyProtectors,
    {
      id: `{${randomUUID().toUpperCase()}}`,
      type: typeof vol.keyProtectors[0]!.type === 'number' ? 3 : 'RecoveryPassword',
      fingerprint: createHmac('sha256', Buffer.from(agent.salt!, 'base64')).update(pw, 'utf8').digest('hex'),
    },
  ];
  return b;
};
for (let i = 0; i < N; i++) {
  if (!changed) await agent.run();
  else if ((await agent.post('/api/v1/agent/checkin', changedBody())).status !== 200) throw new Error('check-in refused');
}
const ms = performance.now() - t0;
const cpu = process.cpuUsage(cpu0);
// CPU time is steadier than wall time on a shared machine: compare fixes by it.
console.log(
  `${N} check-ins: ${(ms / N).toFixed(2)} ms each (wall), ${((cpu.user + cpu.system) / 1000 / N).toFixed(3)} ms CPU each (client + server in one process)`,
);
for (const [k, s] of [...stats].sort((a, b) => b[1].ms - a[1].ms)) console.log(`${(s.n / N).toFixed(1)}x ${(s.ms / N).toFixed(2)}ms  ${k}`);
await app.close();
await c.close();
fs.rmSync(dir, { recursive: true, force: true });
