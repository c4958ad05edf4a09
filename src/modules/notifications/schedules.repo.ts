import type { Executor } from '../../db/database.js';
import type { ReportSchedulesTable } from '../../db/schema.js';
import { inClientScope, isId, type ClientScope } from '../../db/scope.js';
import { rowLocks } from './locking.js';

/** report_schedules: the report e-mails sent to a client on a schedule. */
export function createSchedulesRepo() {
  return {
    async insert(exec: Executor, row: ReportSchedulesTable): Promise<void> {
      await exec.insertInto('report_schedules').values(row).execute();
    },
    async update(exec: Executor, id: string, patch: Partial<ReportSchedulesTable>): Promise<void> {
      await exec.updateTable('report_schedules').set(patch).where('id', '=', id).execute();
    },
    async delete(exec: Executor, id: string): Promise<void> {
      await exec.deleteFrom('report_schedules').where('id', '=', id).execute();
    },
    findInScope(exec: Executor, id: string, scope: ClientScope): Promise<ReportSchedulesTable | undefined> {
      if (!isId(id)) return Promise.resolve(undefined);
      return inClientScope(exec.selectFrom('report_schedules').selectAll().where('id', '=', id), 'client_id', scope).executeTakeFirst();
    },
    list(exec: Executor, scope: ClientScope, clientId?: string): Promise<ReportSchedulesTable[]> {
      let q = inClientScope(exec.selectFrom('report_schedules').selectAll(), 'client_id', scope).orderBy('created_at');
      if (clientId) q = q.where('client_id', '=', clientId);
      return q.execute();
    },
    /** Enabled schedules due by `now`, locked for this transaction on PostgreSQL. */
    claimDue(exec: Executor, now: string, limit: number): Promise<ReportSchedulesTable[]> {
      const q = exec.selectFrom('report_schedules').selectAll().where('enabled', '=', 1).where('next_run_at', '<=', now).orderBy('next_run_at').limit(limit);
      return (rowLocks(exec) ? q.forUpdate().skipLocked() : q).execute();
    },
  };
}
export type SchedulesRepo = ReturnType<typeof createSchedulesRepo>;
