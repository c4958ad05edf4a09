import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Database } from '../src/db/database.js';
import { migrateToLatest } from '../src/db/migrate.js';
import { transactions } from '../src/db/transactions.js';
import { createScheduler } from '../src/modules/jobs/scheduler.js';
import { systemClock } from '../src/lib/clock.js';
import { createTestDatabase, ENGINE, type TestDatabase } from './helpers/engine.js';

/**
 * Two Keywarden processes on one database (two separate connections/pools here) must never run
 * the same task at the same time: the lease decides.
 */
describe(`task leases on ${ENGINE}`, () => {
  let tdb: TestDatabase;
  let a: Database;
  let b: Database;
  beforeAll(async () => {
    tdb = await createTestDatabase();
    a = openDatabase(tdb.target);
    await migrateToLatest(a.db);
    // PostgreSQL: a second pool, as a second server process would have. SQLite: one process has one
    // connection (better-sqlite3 waits for a lock synchronously, so two connections in one process
    // would block each other's event loop); two schedulers share it, which still tests the leases.
    b = ENGINE === 'postgres' ? openDatabase(tdb.target) : a;
  });
  afterAll(async () => {
    await a.close();
    if (b !== a) await b.close();
    await tdb.drop();
  });

  it('tells every listener of each finished task, with its status (what `serve` logs)', async () => {
    const heard: string[] = [];
    const s = createScheduler({
      tx: transactions(a.db),
      clock: systemClock,
      owner: 'process-listen',
      handlers: { 'listen-ok': async () => 'ok: 2 new keys', 'listen-bad': async () => Promise.reject(new Error('no DC answered')) },
    });
    s.onRun((task, status, ms) => heard.push(`${task.kind} ${status} ${ms >= 0}`));
    await s.ensureTask(a.db, { id: 'listen-ok:1', kind: 'listen-ok', clientId: null, targetId: '1', intervalMinutes: 60 });
    await s.ensureTask(a.db, { id: 'listen-bad:1', kind: 'listen-bad', clientId: null, targetId: '1', intervalMinutes: 60 });
    await s.runNow('listen-ok:1');
    await s.runNow('listen-bad:1');
    expect(heard).toEqual(['listen-ok ok: 2 new keys true', 'listen-bad failed: no DC answered true']);
  });

  it('runs a due task in exactly one of two processes, and on-demand runs wait for the lease', async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    const ran: string[] = [];
    const handler = (who: string) => async () => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      ran.push(who);
      await new Promise((r) => setTimeout(r, 200));
      inFlight--;
      return 'ok';
    };
    const one = createScheduler({ tx: transactions(a.db), clock: systemClock, owner: 'process-1', handlers: { sync: handler('1') } });
    const two = createScheduler({ tx: transactions(b.db), clock: systemClock, owner: 'process-2', handlers: { sync: handler('2') } });
    for (let i = 0; i < 5; i++) await one.ensureTask(a.db, { id: `sync:${i}`, kind: 'sync', clientId: null, targetId: String(i), intervalMinutes: 60 });

    const [r1, r2] = await Promise.all([one.runDue(), two.runDue()]);
    expect(r1 + r2).toBe(5);
    expect(ran).toHaveLength(5);
    // Nothing is due any more: the next run is an interval away.
    expect(await one.runDue()).toBe(0);

    // On demand while the other process holds the lease: refused, not run twice.
    ran.length = 0;
    maxInFlight = 0;
    const results = await Promise.allSettled([one.runNow('sync:0'), two.runNow('sync:0')]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const refused = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    expect(refused.reason.message).toMatch(/already running/);
    expect(ran).toHaveLength(1);
    expect(maxInFlight).toBe(1);
    const task = await a.db.selectFrom('scheduled_tasks').selectAll().where('id', '=', 'sync:0').executeTakeFirstOrThrow();
    expect(task.locked_by).toBeNull();
    expect(task.last_status).toBe('ok');
  });

  it("keeps a running task's lease by renewing it, and hands a dead holder's task to another process once the lease ran out", { timeout: 30_000 }, async () => {
    // A clock the test moves: lease times are compared with it; the renewal timer itself is real (every lease/3 s).
    let now = Date.now(); // the first test's tasks are next due an hour from now: not in this test's way
    const clock = { now: () => new Date(now).toISOString() } as typeof systemClock;
    let release!: () => void;
    const started = new Promise<void>((r) => (release = r));
    let finishLong!: () => void;
    const ran: string[] = [];
    const one = createScheduler({
      tx: transactions(a.db),
      clock,
      owner: 'process-1',
      leaseSeconds: 3,
      handlers: {
        long: async () => {
          ran.push('1');
          release();
          await new Promise<void>((r) => (finishLong = r));
          return 'ok';
        },
      },
    });
    const two = createScheduler({ tx: transactions(b.db), clock, owner: 'process-2', leaseSeconds: 3, handlers: { long: async () => (ran.push('2'), 'ok') } });
    await one.ensureTask(a.db, { id: 'long:1', kind: 'long', clientId: null, targetId: '1', intervalMinutes: 60, firstRunAt: clock.now() });
    const first = one.runDue();
    await started;
    const leasedUntil = async () =>
      await a.db.selectFrom('scheduled_tasks').select(['locked_by', 'locked_until']).where('id', '=', 'long:1').executeTakeFirstOrThrow();
    const initial = (await leasedUntil()).locked_until!;
    // Two seconds pass on the task clock; the renewal (after ~1 s of real time) pushes the lease past them.
    now += 2_000;
    for (let i = 0; i < 300 && (await leasedUntil()).locked_until === initial; i++) await new Promise((r) => setTimeout(r, 20));
    expect((await leasedUntil()).locked_until! > initial).toBe(true);
    expect((await leasedUntil()).locked_by).toBe('process-1');
    now += 2_000; // past the first lease, within the renewed one: still not free
    expect(await two.runDue()).toBe(0);
    finishLong();
    expect(await first).toBe(1);
    expect(ran).toEqual(['1']);

    // A holder that died mid-run: its lease stays in the table until it runs out, then another process runs the task.
    await a.db
      .updateTable('scheduled_tasks')
      .set({ next_run_at: clock.now(), locked_by: 'dead-process', locked_until: new Date(now + 3_000).toISOString() })
      .where('id', '=', 'long:1')
      .execute();
    expect(await two.runDue()).toBe(0);
    now += 3_001;
    expect(await two.runDue()).toBe(1);
    expect(ran).toEqual(['1', '2']);
    const after = await a.db.selectFrom('scheduled_tasks').selectAll().where('id', '=', 'long:1').executeTakeFirstOrThrow();
    expect(after.locked_by).toBeNull();
    expect(after.last_status).toBe('ok');
    await one.stop();
    await two.stop();
  });
});
