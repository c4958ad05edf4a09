import type { Executor } from '../../db/database.js';
import type { ScheduledTasksTable } from '../../db/schema.js';
import type { Transactions } from '../../db/transactions.js';
import type { Clock } from '../../lib/clock.js';
import { conflict } from '../../lib/errors.js';
import { createSchedulerRepo, type SchedulerRepo } from './scheduler.repo.js';

/**
 * A small job runner kept in the database: recurring tasks (a Graph sync per connection) with a
 * lease, so that of several Keywarden processes sharing one PostgreSQL database exactly one runs a
 * task at a time (FOR UPDATE SKIP LOCKED). No Redis, no queue server.
 */
export type TaskHandler = (task: ScheduledTasksTable) => Promise<string>;

/**
 * A lease is short and renewed while the task runs (every third of its length), so a long Graph
 * sync keeps it, while a process that dies (SIGKILL, power loss) stops renewing and another process
 * takes the task over once the lease has run out. The owner is re-checked on every renewal and on
 * finish: a process that lost its lease (it was frozen longer than the lease) does not overwrite the
 * new holder's bookkeeping.
 */
export const DEFAULT_LEASE_SECONDS = 120;
const addMinutes = (iso: string, m: number) => new Date(Date.parse(iso) + m * 60_000).toISOString();
const addSeconds = (iso: string, s: number) => new Date(Date.parse(iso) + s * 1000).toISOString();

export type SchedulerEvents = {
  /** A task finished here (status text as stored), for metrics. */
  onRun?: (task: ScheduledTasksTable, status: string, ms: number) => void;
  /** A renewal found the lease taken by another process. */
  onLeaseLost?: (task: ScheduledTasksTable) => void;
};

export function createScheduler({
  tx,
  repo = createSchedulerRepo(),
  clock,
  owner,
  handlers,
  leaseSeconds = DEFAULT_LEASE_SECONDS,
  events = {},
}: {
  tx: Transactions;
  repo?: SchedulerRepo;
  clock: Clock;
  owner: string;
  handlers: Record<string, TaskHandler>;
  leaseSeconds?: number;
  events?: SchedulerEvents;
}) {
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let stopped = false;
  const runListeners = new Set<NonNullable<SchedulerEvents['onRun']>>();

  /** Takes the lease of one task if it is free; undefined when another process holds it. */
  async function lease(id: string, onlyIfDue: boolean): Promise<ScheduledTasksTable | undefined> {
    return tx.run(async (t) => {
      const now = clock.now();
      return repo.takeLease(t, id, { owner, now, until: addSeconds(now, leaseSeconds), onlyIfDue });
    });
  }

  /** Extends the lease while the handler runs; false when another process has it now. */
  async function renew(task: ScheduledTasksTable): Promise<boolean> {
    return tx.run((t) => repo.renewLease(t, task.id, owner, addSeconds(clock.now(), leaseSeconds)));
  }

  async function finish(task: ScheduledTasksTable, status: string) {
    const now = clock.now();
    // Jitter spreads many tenants' hourly syncs over the hour instead of all at :00.
    const interval = task.interval_minutes;
    const jitter = interval ? Math.random() * Math.min(interval * 0.1, 10) : 0;
    await tx.run((t) =>
      repo.finish(t, task.id, owner, {
        last_run_at: now,
        last_status: status.slice(0, 500),
        next_run_at: interval ? addMinutes(now, interval + jitter) : addMinutes(now, 365 * 24 * 60),
      }),
    );
  }

  async function run(task: ScheduledTasksTable): Promise<string> {
    const handler = handlers[task.kind];
    const started = performance.now();
    const heartbeat = setInterval(
      () => {
        renew(task).then(
          (held) => {
            if (!held) events.onLeaseLost?.(task);
          },
          () => undefined, // a failed renewal is retried at the next beat; the lease still has time
        );
      },
      Math.max(1000, (leaseSeconds * 1000) / 3),
    );
    heartbeat.unref();
    let status: string;
    try {
      status = handler ? await handler(task) : `no handler for ${task.kind}`;
    } catch (e) {
      status = `failed: ${(e as Error).message}`;
    } finally {
      clearInterval(heartbeat);
    }
    await finish(task, status);
    const ms = performance.now() - started;
    events.onRun?.(task, status, ms);
    for (const listener of runListeners) listener(task, status, ms);
    return status;
  }

  return {
    /** Also tells `listener` about every task finished here (`keywarden serve` logs them). */
    onRun(listener: NonNullable<SchedulerEvents['onRun']>) {
      runListeners.add(listener);
    },
    /** Creates or updates a recurring task (idempotent). */
    async ensureTask(
      exec: Executor,
      t: { id: string; kind: string; clientId: string | null; targetId: string | null; intervalMinutes: number | null; firstRunAt?: string },
    ) {
      if (await repo.exists(exec, t.id)) {
        await repo.setInterval(exec, t.id, t.intervalMinutes);
        return;
      }
      await repo.insert(exec, {
        id: t.id,
        kind: t.kind,
        client_id: t.clientId,
        target_id: t.targetId,
        next_run_at: t.firstRunAt ?? clock.now(),
        interval_minutes: t.intervalMinutes,
        locked_by: null,
        locked_until: null,
        last_run_at: null,
        last_status: null,
      });
    },

    async removeTask(exec: Executor, id: string) {
      await repo.remove(exec, id);
    },

    /** Runs one task now (on demand), unless another process is running it. */
    async runNow(id: string): Promise<string> {
      const task = await lease(id, false);
      if (!task) throw conflict('That task is already running (here or in another Keywarden process); try again when it is done.');
      return run(task);
    },

    /** Runs every task that is due and free; returns how many ran here. */
    async runDue(limit = 20): Promise<number> {
      const due = await repo.due(tx.reader, clock.now(), limit);
      let ran = 0;
      for (const { id } of due) {
        if (stopped) break; // shutting down: leave the rest to another process
        const task = await lease(id, true);
        if (!task) continue;
        await run(task);
        ran++;
      }
      return ran;
    },

    /** Polls for due tasks in the background (keywarden serve). */
    /**
     * Polls every `everyMs`. The first poll waits `firstAfterMs` (default: right away): `serve` lets
     * the process become ready first, because a task due at start (an hourly compliance evaluation of
     * 500,000 devices) would otherwise compete with the first requests and /readyz.
     */
    start(everyMs = 30_000, firstAfterMs = 0) {
      stopped = false;
      const tick = () => {
        if (stopped) return;
        running ??= this.runDue()
          .catch(() => 0)
          .then(() => undefined)
          .finally(() => (running = undefined));
      };
      timer = setInterval(tick, everyMs);
      timer.unref();
      if (firstAfterMs <= 0) tick();
      else setTimeout(tick, firstAfterMs).unref();
    },

    async stop() {
      stopped = true;
      if (timer) clearInterval(timer);
      await running;
    },
  };
}
export type Scheduler = ReturnType<typeof createScheduler>;
