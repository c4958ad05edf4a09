import type { Executor } from '../../db/database.js';
import type { NotificationOutboxTable } from '../../db/schema.js';
import { chunks } from './notification-types.js';
import { rowLocks } from './locking.js';

export type OutboxState = 'new' | 'routed' | 'duplicate' | 'unmatched';

/** notification_outbox: events the producers wrote, waiting to be routed to rules. */
export function createOutboxRepo() {
  return {
    async insert(exec: Executor, row: NotificationOutboxTable): Promise<void> {
      await exec.insertInto('notification_outbox').values(row).execute();
    },
    /** The oldest unrouted events, locked for this transaction on PostgreSQL. */
    claimNew(exec: Executor, limit: number): Promise<NotificationOutboxTable[]> {
      const q = exec.selectFrom('notification_outbox').selectAll().where('state', '=', 'new').orderBy('created_at').limit(limit);
      return (rowLocks(exec) ? q.forUpdate().skipLocked() : q).execute();
    },
    /** `${client_id}|${dedup_key}` of the routed events with these keys written since `since`. */
    async routedKeysSince(exec: Executor, keys: string[], since: string): Promise<string[]> {
      const out: string[] = [];
      for (const part of chunks(keys, 500)) {
        const rows = await exec
          .selectFrom('notification_outbox')
          .select(['client_id', 'dedup_key'])
          .where('dedup_key', 'in', part)
          .where('state', '=', 'routed')
          .where('created_at', '>=', since)
          .execute();
        for (const r of rows) out.push(`${r.client_id}|${r.dedup_key}`);
      }
      return out;
    },
    async setState(exec: Executor, ids: string[], state: OutboxState, now: string): Promise<void> {
      for (const part of chunks(ids, 500)) await exec.updateTable('notification_outbox').set({ state, routed_at: now }).where('id', 'in', part).execute();
    },
    /** The events with these ids, in the order of `ids`. */
    async byIds(exec: Executor, ids: string[]): Promise<NotificationOutboxTable[]> {
      const out: NotificationOutboxTable[] = [];
      for (const part of chunks(ids, 500)) out.push(...(await exec.selectFrom('notification_outbox').selectAll().where('id', 'in', part).execute()));
      const order = new Map(ids.map((id, i) => [id, i]));
      return out.sort((a, b) => order.get(a.id)! - order.get(b.id)!);
    },
    async pruneHandled(exec: Executor, before: string): Promise<void> {
      await exec.deleteFrom('notification_outbox').where('state', '!=', 'new').where('created_at', '<', before).execute();
    },
  };
}
export type OutboxRepo = ReturnType<typeof createOutboxRepo>;
