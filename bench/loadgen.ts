/**
 * The load generator of the check-in benchmark, run as its own process so that it does not share
 * an event loop (or a core's time slices) with the server it measures. Reads a plan (JSON file:
 * base URLs, devices with their credential, salt, last sequence number and check-in body) and keeps
 * `concurrency` requests in flight for `seconds` over keep-alive connections (undici Pool with one
 * connection per concurrent request). Each device has at most one request in flight, so its
 * sequence numbers arrive in order. Prints one JSON line with the results.
 *
 * Several base URLs (several `keywarden serve` processes on one database): the concurrent slots are
 * dealt out to the URLs in turn, and a slot sends all its devices to its URL, so each device always
 * talks to the same process and each process gets an equal share of the slots.
 *
 *   mode unchanged: the body as enrolled (the common hourly check-in)
 *   mode changed:   every check-in reports a new recovery password protector the vault does not
 *                   have (a rotation on the device): findings, audit events, a request to upload
 *   mode bare:      same bodies against the bare Fastify route (no device state on the server)
 *   mode settle:    every device checks in once with its enrolled body, not timed: after a changed
 *                   run each device has a protector the next unchanged run no longer reports, so its
 *                   first check-in there would be a change (a finding resolved, a volume rewritten)
 */
import fs from 'node:fs';
import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import { Pool } from 'undici';

type Device = { credential: string; salt: string; seq: number; body: Record<string, any> };
type Plan = {
  bases: string[];
  devices: Device[];
  concurrency: number;
  seconds: number;
  warmupSeconds: number;
  mode: 'unchanged' | 'changed' | 'bare' | 'settle';
};

const plan = JSON.parse(fs.readFileSync(process.argv[2]!, 'utf8')) as Plan;
const baseOf = (slot: number) => slot % plan.bases.length;
const pools = plan.bases.map(
  (base, b) =>
    new Pool(base, {
      connections: Array.from({ length: plan.concurrency }, (_, s) => s).filter((s) => baseOf(s) === b).length,
      pipelining: 1,
      keepAliveTimeout: 60_000,
    }),
);
/** Measured check-ins answered by each base URL, to show how the load was spread. */
const perBase = plan.bases.map(() => 0);

function body(d: Device): string {
  const b = structuredClone(d.body);
  b.seq = ++d.seq;
  b.sentAt = new Date().toISOString();
  if (plan.mode === 'changed') {
    const pw = Array.from({ length: 8 }, () => String(randomBytes(2).readUInt16LE(0) * 11).padStart(6, '0')).join('-');
    const vol = b.volumes[0];
    vol.keyProtectors = [
      ...vol.keyProtectors.filter((p: any) => !p.benchExtra),
      {
        id: `{${randomUUID().toUpperCase()}}`,
        type: typeof vol.keyProtectors[0].type === 'number' ? 3 : 'RecoveryPassword',
        fingerprint: createHmac('sha256', Buffer.from(d.salt, 'base64')).update(pw, 'utf8').digest('hex'),
      },
    ];
  }
  return JSON.stringify(b);
}

const latencies: number[] = [];
const errors: string[] = [];
let warm = true;
const started = Date.now();
const warmUntil = started + plan.warmupSeconds * 1000;
// The window is `seconds` long, and is extended (up to 4 times) until every concurrent slot has
// finished at least one measured request: at concurrency 500 on a starved machine a 2-second
// window could otherwise close before the first answer arrives.
let stopAt = warmUntil + plan.seconds * 1000;
const hardStop = warmUntil + plan.seconds * 4000;
let measuredFrom = 0;

async function worker(slot: number) {
  const mine = plan.devices.filter((_, i) => i % plan.concurrency === slot);
  const b = baseOf(slot);
  const pool = pools[b]!;
  let k = 0;
  const settle = plan.mode === 'settle';
  while (settle ? k < mine.length : Date.now() < stopAt) {
    const d = mine[k++ % mine.length]!;
    const payload = body(d);
    const t0 = performance.now();
    try {
      const r = await pool.request({
        path: '/api/v1/agent/checkin',
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${d.credential}` },
        body: payload,
      });
      const text = await r.body.text();
      if (r.statusCode !== 200) errors.push(`${r.statusCode} ${text.slice(0, 160)}`);
      else if (plan.mode === 'unchanged' && JSON.parse(text).requestPasswords.length) errors.push('asked to upload on an unchanged check-in');
    } catch (e) {
      errors.push(String(e));
    }
    const now = Date.now();
    if (warm && now >= warmUntil) {
      warm = false;
      measuredFrom = now;
    }
    if (!warm && now <= stopAt) {
      latencies.push(performance.now() - t0);
      perBase[b]!++;
    }
    if (!warm && now >= stopAt && latencies.length < plan.concurrency && now < hardStop) stopAt = Math.min(hardStop, now + 250);
  }
}

await Promise.all(Array.from({ length: plan.concurrency }, (_, i) => worker(i)));
const elapsed = (Math.min(Date.now(), stopAt) - (measuredFrom || warmUntil)) / 1000;
await Promise.all(pools.map((p) => p.close()));
latencies.sort((a, b) => a - b);
const at = (p: number) => latencies[Math.min(latencies.length - 1, Math.max(0, Math.ceil((p / 100) * latencies.length) - 1))] ?? NaN;
process.stdout.write(
  JSON.stringify({
    requests: latencies.length,
    perSecond: Math.round(latencies.length / elapsed),
    p50ms: Number(at(50).toFixed(1)),
    p99ms: Number(at(99).toFixed(1)),
    errors: errors.length,
    firstErrors: errors.slice(0, 3),
    devices: plan.devices.length,
    perBase,
    seqs: plan.devices.map((d) => d.seq),
  }) + '\n',
);
