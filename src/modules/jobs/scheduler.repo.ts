import { PostgresAdapter, type ExpressionBuilder } from 'kysely';
import type { Executor } from '../../db/database.js';
import type { DB, ScheduledTasksTable } from '../../db/schema.js';

const isPg = (exec: Executor) => exec.getExecutor().adapter instanceof PostgresAdapter;
/** A task whose lease is free: never taken, or run out. */
const leaseFree = (now: string) => (eb: ExpressionBuilder<DB, 'scheduled_tasks'>) => eb.or([eb('locked_until', 'is', null), eb('locked_until', '<', now)]);

/** The scheduled_tasks table: recurring and one-off tasks with their lease. */
export function createSchedulerRepo() {
  return {
    /**
     * Takes the lease of one task if it is free, inside the caller's transaction; undefined when
     * another process holds it. PostgreSQL: the row is locked FOR UPDATE SKIP LOCKED, so a process
     * racing for the same task skips it instead of waiting.
     */
    async takeLease(
      exec: Executor,
      id: string,
      l: { owner: string; now: string; until: string; onlyIfDue: boolean },
    ): Promise<ScheduledTasksTable | undefined> {
      let q = exec.selectFrom('scheduled_tasks').selectAll().where('id', '=', id).where(leaseFree(l.now));
      if (l.onlyIfDue) q = q.where('next_run_at', '<=', l.now);
      const task = await (isPg(exec) ? q.forUpdate().skipLocked() : q).executeTakeFirst();
      if (!task) return undefined;
      // The same condition again in the UPDATE: on SQLite (several processes on one file, or a
      // reader that raced us) only the writer that still finds the lease free gets it.
      const r = await exec
        .updateTable('scheduled_tasks')
        .set({ locked_by: l.owner, locked_until: l.until })
        .where('id', '=', id)
        .where(leaseFree(l.now))
        .executeTakeFirst();
      if (Number(r.numUpdatedRows) !== 1) return undefined;
      return { ...task, locked_by: l.owner, locked_until: l.until };
    },

    /** Extends a lease this owner holds; false when another process has it now. */
    async renewLease(exec: Executor, id: string, owner: string, until: string): Promise<boolean> {
      const r = await exec.updateTable('scheduled_tasks').set({ locked_until: until }).where('id', '=', id).where('locked_by', '=', owner).executeTakeFirst();
      return Number(r.numUpdatedRows) === 1;
    },

    /** Releases the lease with the run's bookkeeping, only while this owner still holds it. */
    async finish(exec: Executor, id: string, owner: string, patch: Pick<ScheduledTasksTable, 'last_run_at' | 'last_status' | 'next_run_at'>): Promise<void> {
      await exec
        .updateTable('scheduled_tasks')
        .set({ locked_by: null, locked_until: null, ...patch })
        .where('id', '=', id)
        .where('locked_by', '=', owner)
        .execute();
    },

    /** Ids of tasks that are due and free, soonest first. */
    due: (exec: Executor, now: string, limit: number) =>
      exec.selectFrom('scheduled_tasks').select('id').where('next_run_at', '<=', now).where(leaseFree(now)).orderBy('next_run_at').limit(limit).execute(),

    exists: async (exec: Executor, id: string) => !!(await exec.selectFrom('scheduled_tasks').select('id').where('id', '=', id).executeTakeFirst()),

    async setInterval(exec: Executor, id: string, intervalMinutes: number | null): Promise<void> {
      await exec.updateTable('scheduled_tasks').set({ interval_minutes: intervalMinutes }).where('id', '=', id).execute();
    },

    async insert(exec: Executor, row: ScheduledTasksTable): Promise<void> {
      await exec.insertInto('scheduled_tasks').values(row).execute();
    },

    async remove(exec: Executor, id: string): Promise<void> {
      await exec.deleteFrom('scheduled_tasks').where('id', '=', id).execute();
    },

    /** Every task of one client (an offboarded client has nothing left to sync or export). */
    async removeClientTasks(exec: Executor, clientId: string): Promise<void> {
      await exec.deleteFrom('scheduled_tasks').where('client_id', '=', clientId).execute();
    },

    /** When each task of a kind runs next, by its target id. */
    nextRuns: (exec: Executor, kind: string) => exec.selectFrom('scheduled_tasks').select(['target_id', 'next_run_at']).where('kind', '=', kind).execute(),
  };
}
export type SchedulerRepo = ReturnType<typeof createSchedulerRepo>;
