/**
 * Notification costs: what emit() adds to a producer's transaction, how long one worker pass takes
 * to route a burst into a digest, and how fast single messages reach a local SMTP server.
 *   npx tsx bench/notifications.ts [postgres-admin-url]   (SQLite in a temp folder without it)
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { loadConfig } from '../src/config.js';
import { buildContainer } from '../src/container.js';
import { initVault } from '../src/modules/vault/vault.service.js';
import { openDatabase } from '../src/db/database.js';
import { cliActor } from '../src/modules/authz/authz.js';
import { systemClock } from '../src/lib/clock.js';
import { startSmtp, startReceiver, TestClock } from '../test/helpers/notify.js';

const admin = process.argv[2];
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kw-notify-bench-'));
let url: string | undefined;
let dbName = '';
if (admin) {
  dbName = `kw_notify_bench_${randomBytes(4).toString('hex')}`;
  const c = new pg.Client({ connectionString: admin });
  await c.connect();
  await c.query(`CREATE DATABASE ${dbName}`);
  await c.end();
  const u = new URL(admin);
  u.pathname = `/${dbName}`;
  url = u.toString();
}
const env = { KEYWARDEN_DATA_DIR: dir, KEYWARDEN_MASTER_KEY: randomBytes(32).toString('base64'), ...(url ? { KEYWARDEN_DATABASE_URL: url } : {}) };
const config = loadConfig(env);
const d0 = openDatabase(config.database);
await initVault(config, d0, cliActor('bench'), systemClock);
await d0.close();
const clock = new TestClock();
const c = await buildContainer(config, { clock, notifications: { gatherSeconds: 30, digestThreshold: 10 } });
const owner = cliActor('bench');
const smtp = await startSmtp({ user: 'u', pass: 'p' });
const rx = await startReceiver();
const client = await c.clients.create(owner, { name: 'Bench Co' });
const mail = await c.notifications.createChannel(owner, {
  clientId: client.id,
  name: 'mail',
  kind: 'email',
  host: '127.0.0.1',
  port: smtp.port,
  starttls: 'ignore',
  from: 'k@bench.example',
  to: ['it@bench.example'],
});
const hook = await c.notifications.createChannel(owner, {
  clientId: client.id,
  name: 'hook',
  kind: 'webhook',
  url: rx.url('/h'),
  signingSecret: 'bench-signing-secret-0123',
});
await c.notifications.createRule(owner, {
  clientId: client.id,
  name: 'all',
  eventTypes: ['device.noncompliant'],
  channelIds: [mail.channel.id, hook.channel.id],
});
const ev = (i: number) => ({
  type: 'device.noncompliant' as const,
  clientId: client.id,
  subject: `DEV-${i} (Bench Co) is not compliant`,
  details: { findingCodes: ['os_volume_unprotected'] },
  dedupKey: `nc:${i}:${Math.random()}`,
  occurredAt: clock.now(),
});
const ms = (t: bigint) => Number(process.hrtime.bigint() - t) / 1e6;

// 1. emit() inside a producer's transaction.
const N = 10_000;
let t = process.hrtime.bigint();
await c.database.db.transaction().execute(async (tx) => {
  for (let i = 0; i < N; i++) await c.notifier.emit(tx, ev(i));
});
const emitMs = ms(t);
// 2. One pass: route 10,000 events, gather one digest per channel, send both.
clock.advance(31_000);
t = process.hrtime.bigint();
const pass = await c.notifications.runOnce();
const passMs = ms(t);
// 3. 200 single messages (5 bursts of 10, below the digest threshold… sent one by one).
let singles = 0;
t = process.hrtime.bigint();
for (let b = 0; b < 20; b++) {
  await c.database.db.transaction().execute(async (tx) => {
    for (let i = 0; i < 10; i++) await c.notifier.emit(tx, ev(N + b * 10 + i));
  });
  clock.advance(31_000);
  singles += (await c.notifications.runOnce()).sent;
}
const singleMs = ms(t);
console.log(
  JSON.stringify({
    engine: c.database.engine,
    emit: { events: N, totalMs: Math.round(emitMs), perEventMs: +(emitMs / N).toFixed(3) },
    burstPass: {
      routed: pass.routed,
      deliveries: pass.deliveriesCreated,
      sent: pass.sent,
      ms: Math.round(passMs),
      mails: smtp.mails.length,
      webhookEventsInDigest: rx.hits[0]?.json?.events?.length,
    },
    singles: { sent: singles, ms: Math.round(singleMs), perMessageMs: +(singleMs / singles).toFixed(1) },
  }),
);
await c.close();
await smtp.close();
await rx.close();
fs.rmSync(dir, { recursive: true, force: true });
if (admin) {
  const a = new pg.Client({ connectionString: admin });
  await a.connect();
  await a.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
  await a.end();
}
