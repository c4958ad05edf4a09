/**
 * Several `keywarden serve` processes on one database.
 *
 * On every engine: `--role worker` serves only health checks and /metrics and runs the background
 * tasks; `--role api` serves the API and runs none; /metrics needs its own bearer token.
 *
 * On PostgreSQL (the supported multi-process setup; SQLite is one server process by design): three
 * processes share one database; agents check in and technicians reveal keys through all of them,
 * as behind a load balancer; Entra syncs are scheduled; one process is SIGKILLed while it holds a
 * sync's lease mid-run. Every sync then ran to completion exactly once, every request got an answer
 * (those sent to the dead process were retried against another, as a load balancer does), and the
 * killed process's sync was completed by another process once its lease had run out.
 */
import path from 'node:path';
import fs from 'node:fs';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type Session, type TestApp } from './helpers/app.js';
import { ENGINE } from './helpers/engine.js';
import { csvOf, randomKeyId, randomRecoveryPassword } from './helpers/keys.js';
import { GraphSimulator } from './graph-sim/simulator.js';
import { SimMachine, TestAgent, type Transport } from './agent/test-agent.js';
import { systemActor } from '../src/modules/authz/authz.js';

const REPO = path.resolve(import.meta.dirname, '..');
const METRICS_TOKEN = randomBytes(24).toString('hex');
const admin = systemActor('test');

type Server = { proc: ChildProcess; url: string; pid: number; log: () => string; exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }> };

/** `keywarden serve` as a real process (via tsx, so it runs the current source) on a free port. */
function startServer(env: NodeJS.ProcessEnv, role: 'all' | 'api' | 'worker'): Promise<Server> {
  const proc = spawn(process.execPath, ['--import', 'tsx', path.join(REPO, 'src', 'main.ts'), 'serve', '--port', '0', '--role', role], {
    cwd: REPO,
    env: { ...process.env, ...env, KEYWARDEN_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  proc.stdout!.on('data', (d) => (err += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => proc.on('exit', (code, signal) => r({ code, signal })));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${err}`)), 60_000);
    proc.stderr!.on('data', (d) => {
      err += d;
      const m = /listening on (http:\/\/[^\s]+?) \(/.exec(err);
      if (m) {
        clearTimeout(timer);
        resolve({ proc, url: m[1]!, pid: proc.pid!, log: () => err, exited });
      }
    });
    proc.on('exit', (code) => reject(new Error(`server exited with ${code}:\n${err}`)));
  });
}

async function stopAll(servers: Server[]) {
  await Promise.all(
    servers.map(async (s) => {
      if (s.proc.exitCode === null && s.proc.signalCode === null) s.proc.kill('SIGTERM');
      await s.exited;
    }),
  );
}

const metricsOf = async (s: Server) => (await fetch(`${s.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } })).text();
/** The value of one sample, e.g. sample(text, 'keywarden_tasks_total', { kind: 'graph-sync', outcome: 'succeeded' }). */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name + '{') && !line.startsWith(name + ' ')) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) return Number(line.split(' ').pop());
  }
  return undefined;
}

async function until<T>(what: string, f: () => Promise<T | undefined | false>, timeoutMs = 60_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe(`keywarden serve --role api|worker and /metrics on ${ENGINE}`, () => {
  let t: TestApp;
  let sim: GraphSimulator;
  const servers: Server[] = [];
  beforeAll(async () => {
    t = await createTestApp();
    sim = new GraphSimulator();
  });
  afterAll(async () => {
    await stopAll(servers);
    await sim.stop();
    await t.close();
  });

  it('a worker answers only health and metrics and runs the scheduled sync; an api process serves the API and runs no task', { timeout: 120_000 }, async () => {
    const env = { ...t.env, KEYWARDEN_METRICS_TOKEN: METRICS_TOKEN, KEYWARDEN_SCHEDULER_POLL_SECONDS: '0.3' };
    const [worker, api] = await Promise.all([startServer(env, 'worker'), startServer(env, 'api')]);
    servers.push(worker, api);

    expect(await (await fetch(`${worker.url}/healthz`)).json()).toEqual({ status: 'ok', role: 'worker' });
    expect((await fetch(`${worker.url}/readyz`)).status).toBe(200);
    expect((await fetch(`${worker.url}/api/v1/keys?q=abcdef12`)).status).toBe(404);
    expect((await fetch(`${worker.url}/api/v1/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).status).toBe(404);
    expect((await fetch(`${api.url}/api/v1/keys?q=abcdef12`)).status).toBe(401);

    // /metrics: only the metrics token opens it; not a user session, not a wrong token.
    const session = await t.signIn((await t.addUser('owner', 'all')).email);
    for (const s of [worker, api]) {
      const none = await fetch(`${s.url}/metrics`);
      expect(none.status).toBe(401);
      expect(none.headers.get('www-authenticate')).toMatch(/^Bearer/);
      expect((await fetch(`${s.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}x` } })).status).toBe(401);
      expect((await fetch(`${s.url}/metrics`, { headers: session.headers })).status).toBe(401);
      const ok = await fetch(`${s.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
      expect(ok.status).toBe(200);
      expect(ok.headers.get('content-type')).toMatch(/^text\/plain/);
    }

    // A due Entra sync: the worker runs it, the api process does not.
    sim.seedTenant('5c0ffee0-1111-4222-8333-444444444444', { keys: 20, devices: 10 });
    const urls = await sim.start();
    const client = await t.container.clients.create(admin, { name: 'Roles Tenant' });
    const tenant = sim.tenant('5c0ffee0-1111-4222-8333-444444444444');
    const conn = await t.container.graph.createConnection(admin, {
      clientId: client.id,
      tenantId: tenant.tenantId,
      appClientId: tenant.clientId,
      clientSecret: tenant.clientSecret,
      ...urls,
    });
    const db = t.container.database.db;
    await until(
      'the scheduled sync to finish',
      async () =>
        (await db.selectFrom('sync_runs').select('status').where('connection_id', '=', conn.id).where('status', '=', 'succeeded').executeTakeFirst()) ?? false,
    );
    const wm = await until('the worker to count the run', async () => {
      const m = await metricsOf(worker);
      return sample(m, 'keywarden_tasks_total', { kind: 'graph-sync', outcome: 'succeeded' }) === 1 && m;
    });
    expect(sample(wm, 'keywarden_sync_runs_total', { source: 'entra', outcome: 'succeeded' })).toBe(1);
    expect(wm).toContain('role="worker"');
    expect(sample(wm, 'keywarden_tasks_due')).toEqual(expect.any(Number));
    expect(sample(wm, 'keywarden_process_resident_memory_bytes')).toBeGreaterThan(0);
    // Queue depths come from the database (the same on every process); -1 would mean a missing table.
    expect(sample(wm, 'keywarden_notifications_outbox_depth', { stage: 'undelivered' })).toBeGreaterThanOrEqual(0);
    expect(sample(wm, 'keywarden_agent_jobs_pending')).toBeGreaterThanOrEqual(0);

    const am = await metricsOf(api);
    expect(sample(am, 'keywarden_tasks_total', { kind: 'graph-sync' })).toBeUndefined();
    expect(am).toContain('role="api"');
    // Requests are counted by route pattern and status, never by raw URL.
    expect(sample(am, 'keywarden_http_requests_total', { method: 'GET', route: '/api/v1/keys', status: '401' })).toBeGreaterThanOrEqual(1);
    expect(am).not.toContain('abcdef12');
    expect((await db.selectFrom('sync_runs').select('id').where('connection_id', '=', conn.id).execute()).length).toBe(1);
  });
});

describe.runIf(ENGINE === 'postgres')('three keywarden serve processes on one PostgreSQL database (PostgreSQL only: SQLite runs one server process)', () => {
  let t: TestApp;
  let sim: GraphSimulator;
  let urls: { loginUrl: string; graphUrl: string };
  let tech: Session;
  const servers: Server[] = [];
  const LEASE_SECONDS = 5;
  const keys = Array.from({ length: 12 }, (_, i) => ({ device: `FAKE-SCALE-${i}`, keyId: randomKeyId(), password: randomRecoveryPassword() }));

  beforeAll(async () => {
    t = await createTestApp();
    const contoso = await t.container.clients.create(admin, { name: 'Contoso' });
    fs.writeFileSync(path.join(t.db.dir, 'keys.csv'), csvOf(keys));
    expect((await t.cli(['import', 'keys.csv', '--client', 'Contoso'])).code).toBe(0);
    // A session made by one process works on every other: sessions live in the database.
    tech = await t.signIn((await t.addUser('technician', [contoso.id])).email);
    sim = new GraphSimulator({ latencyMs: 25 });
    urls = await sim.start();
    const env = {
      ...t.env,
      KEYWARDEN_METRICS_TOKEN: METRICS_TOKEN,
      KEYWARDEN_TASK_LEASE_SECONDS: String(LEASE_SECONDS),
      KEYWARDEN_SCHEDULER_POLL_SECONDS: '0.25',
      KEYWARDEN_REVEAL_LIMIT_PER_HOUR: '1000',
    };
    servers.push(...(await Promise.all([startServer(env, 'all'), startServer(env, 'all'), startServer(env, 'all')])));
  });
  afterAll(async () => {
    await stopAll(servers);
    await sim.stop();
    await t.close();
  });

  it('runs every sync exactly once, answers every request, and finishes a killed process’s sync elsewhere', { timeout: 240_000 }, async () => {
    const db = t.container.database.db;
    const alive = () => servers.filter((s) => s.proc.exitCode === null && s.proc.signalCode === null);
    let next = 0;
    /** A load balancer: round robin; a connection error sends the request to the next live process. */
    async function send(make: () => { path: string; init: RequestInit }): Promise<Response> {
      for (let attempt = 0; attempt < 6; attempt++) {
        const live = alive();
        const s = live[next++ % live.length]!;
        const { path: p, init } = make();
        try {
          return await fetch(s.url + p, init);
        } catch {
          // A killed process: try the next live one.
        }
      }
      throw new Error('no process answered');
    }

    // Six agents enroll and check in, spread over the three processes.
    const contoso = (await db.selectFrom('clients').select('id').where('name', '=', 'Contoso').executeTakeFirstOrThrow()).id;
    const { token } = await t.container.agent.createEnrollmentToken(admin, { clientId: contoso });
    const transport: Transport = async ({ method, url, body, headers }) => {
      const r = await send(() => ({ path: url, init: { method, headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) } }));
      return { status: r.status, json: await r.json() };
    };
    const agents = Array.from({ length: 6 }, (_, i) => new TestAgent(transport, new SimMachine(`FAKE-AGENT-${i}`)));
    for (const a of agents) {
      expect((await a.enroll(token)).status).toBe(200);
      expect((await a.run()).exitCode).toBe(0);
    }

    // Three tenants, each sync several seconds long at 25 ms per Graph request.
    const conns: string[] = [];
    for (let i = 0; i < 3; i++) {
      const tenantId = `5ca1e000-0000-4000-8000-00000000000${i}`;
      const tenant = sim.seedTenant(tenantId, { keys: 300, devices: 120, pageSize: 100 });
      const client = await t.container.clients.create(admin, { name: `Tenant ${i}` });
      conns.push(
        (
          await t.container.graph.createConnection(admin, {
            clientId: client.id,
            tenantId,
            appClientId: tenant.clientId,
            clientSecret: tenant.clientSecret,
            ...urls,
          })
        ).id,
      );
    }

    // Traffic on all three processes while the syncs run and one process dies.
    const answers: number[] = [];
    let stop = false;
    const traffic = (async () => {
      let k = 0;
      while (!stop) {
        const a = agents[k % agents.length]!;
        // A check-in that hit the dead process is sent again with a new sequence number (a real agent retries on its next run).
        const r = await send(() => ({
          path: '/api/v1/agent/checkin',
          init: {
            method: 'POST',
            headers: { 'content-type': 'application/json', authorization: `Bearer ${a.credential}` },
            body: JSON.stringify(a.checkinBody()),
          },
        }));
        answers.push(r.status);
        await r.arrayBuffer();
        const key = keys[k % keys.length]!;
        const rv = await send(() => ({
          path: `/api/v1/keys/${key.keyId.slice(0, 8)}/reveal`,
          init: {
            method: 'POST',
            headers: { 'content-type': 'application/json', ...tech.headers },
            body: JSON.stringify({ reason: 'lost-pin', ticket: `T-${k}` }),
          },
        }));
        answers.push(rv.status);
        const body = (await rv.json()) as { key?: { recoveryPassword?: string } };
        if (rv.status === 200) expect(body.key?.recoveryPassword).toBe(key.password);
        k++;
      }
    })();

    // Wait until a process holds a sync's lease with the run under way, then SIGKILL that process.
    const victim = await until('a process to hold a sync lease mid-run', async () => {
      const leased = await db
        .selectFrom('scheduled_tasks')
        .select(['id', 'target_id', 'locked_by'])
        .where('kind', '=', 'graph-sync')
        .where('locked_by', 'is not', null)
        .execute();
      for (const l of leased) {
        const pid = Number(l.locked_by!.split(':')[1]);
        const server = servers.find((s) => s.pid === pid);
        const running = await db
          .selectFrom('sync_runs')
          .select('id')
          .where('connection_id', '=', l.target_id!)
          .where('status', '=', 'running')
          .executeTakeFirst();
        if (server && running) return { server, connectionId: l.target_id!, taskId: l.id };
      }
      return undefined;
    });
    victim.server.proc.kill('SIGKILL');
    expect(await victim.server.exited).toEqual({ code: null, signal: 'SIGKILL' });

    // Every sync finishes; the killed one after its lease ran out, in another process.
    await until(
      'all three syncs to succeed',
      async () => {
        const done = await db.selectFrom('sync_runs').select('connection_id').where('connection_id', 'in', conns).where('status', '=', 'succeeded').execute();
        // …and their tasks released (the run is recorded just before the lease is given back).
        const held = await db.selectFrom('scheduled_tasks').select('id').where('target_id', 'in', conns).where('locked_by', 'is not', null).execute();
        return new Set(done.map((d) => d.connection_id)).size === 3 && held.length === 0;
      },
      180_000,
    );
    stop = true;
    await traffic;

    // Exactly once: one succeeded run per connection; the killed run is marked interrupted, not left running.
    const runs = await db.selectFrom('sync_runs').select(['connection_id', 'status', 'error_text']).where('connection_id', 'in', conns).execute();
    for (const c of conns) expect(runs.filter((r) => r.connection_id === c && r.status === 'succeeded')).toHaveLength(1);
    const interrupted = runs.filter((r) => r.status !== 'succeeded');
    expect(interrupted).toEqual([{ connection_id: victim.connectionId, status: 'failed', error_text: expect.stringMatching(/^interrupted/) }]);
    expect(runs.some((r) => r.status === 'running')).toBe(false);
    // Each tenant's keys are in the vault once.
    for (const c of conns) {
      const conn = await db.selectFrom('graph_connections').select('client_id').where('id', '=', c).executeTakeFirstOrThrow();
      expect(
        (
          await db
            .selectFrom('recovery_keys')
            .select((eb) => eb.fn.countAll().as('n'))
            .where('client_id', '=', conn.client_id)
            .executeTakeFirstOrThrow()
        ).n,
      ).toBe(300);
    }
    // The killed process's task: released by a survivor (the dead process cannot have finished it).
    const task = await db.selectFrom('scheduled_tasks').selectAll().where('id', '=', victim.taskId).executeTakeFirstOrThrow();
    expect(task.locked_by).toBeNull();
    expect(task.last_status).toMatch(/^ok/);
    const survivors = alive();
    expect(survivors).toHaveLength(2);
    let succeededHere = 0;
    for (const s of survivors) succeededHere += sample(await metricsOf(s), 'keywarden_tasks_total', { kind: 'graph-sync', outcome: 'succeeded' }) ?? 0;
    expect(succeededHere).toBeGreaterThanOrEqual(1);

    // No request lost: every one got a definite answer, and each answer was a success.
    expect(answers.length).toBeGreaterThan(0);
    expect(answers.filter((s) => s !== 200)).toEqual([]);
    // Every reveal is in the audit log, whichever process served it, in one unbroken chain.
    const reveals = await db
      .selectFrom('audit_events')
      .select((eb) => eb.fn.countAll().as('n'))
      .where('action', '=', 'key.reveal')
      .where('outcome', '=', 'success')
      .executeTakeFirstOrThrow();
    expect(Number(reveals.n)).toBeGreaterThanOrEqual(answers.length / 2);
    expect(await t.container.audit.verifyChain(admin)).toMatchObject({ intact: true });
  });
});
