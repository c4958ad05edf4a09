/**
 * Where a routine agent check-in spends its time: runs N sequential check-ins of one simulated
 * device through app.inject and prints every SQL statement's count and total time.
 *   npx tsx bench/prof-checkin.ts [postgres-url]
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import SQLite from 'better-sqlite3';
import { Kysely, PostgresDialect, SqliteDialect } from 'kysely';
import { loadConfig } from '../src/config.js';
import { buildContainer } from '../src/container.js';
import { buildApp } from '../src/app.js';
import { initVault } from '../src/modules/vault/vault.service.js';
import { openDatabase } from '../src/db/database.js';
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
const db = url
  ? new Kysely<any>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: url, max: 10 }) }), log })
  : new Kysely<any>({ dialect: new SqliteDialect({ database: new SQLite(config.database.engine === 'sqlite' ? config.database.file : '') }), log });
const c = await buildContainer(config, { database: { db, engine: url ? 'postgres' : 'sqlite', close: () => db.destroy() } });
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
const N = 200;
const t0 = performance.now();
for (let i = 0; i < N; i++) await agent.run();
const ms = performance.now() - t0;
console.log(`${N} check-ins: ${(ms / N).toFixed(2)} ms each`);
for (const [k, s] of [...stats].sort((a, b) => b[1].ms - a[1].ms)) console.log(`${(s.n / N).toFixed(1)}x ${(s.ms / N).toFixed(2)}ms  ${k}`);
await app.close();
await c.close();
fs.rmSync(dir, { recursive: true, force: true });
