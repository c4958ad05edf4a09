import type { Executor } from '../../db/database.js';

/** The queue depths /metrics reports, read at scrape time (one small query each; nothing written). */
export function createMetricsRepo() {
  const count = (r: { n: unknown } | undefined) => Number(r?.n ?? 0);
  return {
    /** Tasks due and not leased by any process. */
    async tasksDue(exec: Executor, now: string): Promise<number> {
      return count(
        await exec
          .selectFrom('scheduled_tasks')
          .select((eb) => eb.fn.countAll().as('n'))
          .where('next_run_at', '<=', now)
          .where((eb) => eb.or([eb('locked_until', 'is', null), eb('locked_until', '<', now)]))
          .executeTakeFirst(),
      );
    },
    async tasksRunning(exec: Executor, now: string): Promise<number> {
      return count(
        await exec
          .selectFrom('scheduled_tasks')
          .select((eb) => eb.fn.countAll().as('n'))
          .where('locked_until', '>=', now)
          .executeTakeFirst(),
      );
    },
    /** When the oldest due, unleased task fell due (null: none). */
    async oldestDueAt(exec: Executor, now: string): Promise<string | null> {
      const r = await exec
        .selectFrom('scheduled_tasks')
        .select((eb) => eb.fn.min('next_run_at').as('t'))
        .where('next_run_at', '<=', now)
        .where((eb) => eb.or([eb('locked_until', 'is', null), eb('locked_until', '<', now)]))
        .executeTakeFirst();
      return r?.t ? String(r.t) : null;
    },
    async agentJobsPending(exec: Executor): Promise<number> {
      return count(
        await exec
          .selectFrom('jobs')
          .select((eb) => eb.fn.countAll().as('n'))
          .where('state', 'in', ['pending', 'sent', 'awaiting_removal'])
          .executeTakeFirst(),
      );
    },
    async outboxUnrouted(exec: Executor): Promise<number> {
      return count(
        await exec
          .selectFrom('notification_outbox')
          .select((eb) => eb.fn.countAll().as('n'))
          .where('state', '=', 'new')
          .executeTakeFirst(),
      );
    },
    async deliveriesPending(exec: Executor): Promise<number> {
      return count(
        await exec
          .selectFrom('notification_deliveries')
          .select((eb) => eb.fn.countAll().as('n'))
          .where('status', '=', 'pending')
          .executeTakeFirst(),
      );
    },
  };
}
export type MetricsRepo = ReturnType<typeof createMetricsRepo>;
