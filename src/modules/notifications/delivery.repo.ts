import type { Executor } from '../../db/database.js';
import type { NotificationAttemptsTable, NotificationDeliveriesTable, NotificationItemsTable } from '../../db/schema.js';
import { inClientScope, isId, type ClientScope } from '../../db/scope.js';
import { chunks } from './notification-types.js';
import { rowLocks } from './locking.js';

/**
 * The delivery pipeline's rows: notification_items (an event due for one rule and channel),
 * notification_deliveries (one message to send) and notification_attempts (the delivery log);
 * plus the client and device names messages show.
 */
export function createDeliveryRepo() {
  return {
    // ---------------------------------------------------------------- items
    async insertItems(exec: Executor, items: NotificationItemsTable[]): Promise<void> {
      for (const part of chunks(items, 100)) await exec.insertInto('notification_items').values(part).execute();
    },
    /** (rule, channel) pairs with an item due by `now` and not yet in a delivery. */
    dueGroups(exec: Executor, now: string, limit: number) {
      return exec
        .selectFrom('notification_items')
        .select(['rule_id', 'channel_id'])
        .distinct()
        .where('delivery_id', 'is', null)
        .where('due_at', '<=', now)
        .limit(limit)
        .execute();
    },
    /** The group's waiting items due by `horizon`, locked for this transaction on PostgreSQL. */
    claimItems(exec: Executor, ruleId: string, channelId: string, horizon: string) {
      const q = exec
        .selectFrom('notification_items')
        .select(['id', 'outbox_id', 'client_id'])
        .where('rule_id', '=', ruleId)
        .where('channel_id', '=', channelId)
        .where('delivery_id', 'is', null)
        .where('due_at', '<=', horizon)
        .orderBy('created_at')
        .limit(20_000);
      return (rowLocks(exec) ? q.forUpdate().skipLocked() : q).execute();
    },
    async assignItems(exec: Executor, ids: string[], deliveryId: string): Promise<void> {
      for (const part of chunks(ids, 500)) await exec.updateTable('notification_items').set({ delivery_id: deliveryId }).where('id', 'in', part).execute();
    },
    async deleteItems(exec: Executor, ids: string[]): Promise<void> {
      for (const part of chunks(ids, 500)) await exec.deleteFrom('notification_items').where('id', 'in', part).execute();
    },
    /** Items of a channel or rule that no delivery carries yet (the channel or rule is going away). */
    async deleteWaitingItems(exec: Executor, of: { channelId: string } | { ruleId: string }): Promise<void> {
      const q = exec.deleteFrom('notification_items').where('delivery_id', 'is', null);
      await ('channelId' in of ? q.where('channel_id', '=', of.channelId) : q.where('rule_id', '=', of.ruleId)).execute();
    },

    // ---------------------------------------------------------------- deliveries
    async insert(exec: Executor, row: NotificationDeliveriesTable): Promise<void> {
      await exec.insertInto('notification_deliveries').values(row).execute();
    },
    findById(exec: Executor, id: string): Promise<NotificationDeliveriesTable | undefined> {
      return exec.selectFrom('notification_deliveries').selectAll().where('id', '=', id).executeTakeFirst();
    },
    findInScope(exec: Executor, id: string, scope: ClientScope): Promise<NotificationDeliveriesTable | undefined> {
      if (!isId(id)) return Promise.resolve(undefined);
      return inClientScope(exec.selectFrom('notification_deliveries').selectAll().where('id', '=', id), 'client_id', scope).executeTakeFirst();
    },
    list(
      exec: Executor,
      scope: ClientScope,
      filter: { clientId?: string; channelId?: string; status?: string; limit: number },
    ): Promise<NotificationDeliveriesTable[]> {
      let q = inClientScope(exec.selectFrom('notification_deliveries').selectAll(), 'client_id', scope)
        .orderBy('created_at', 'desc')
        .orderBy('id')
        .limit(filter.limit);
      if (filter.clientId) q = q.where('client_id', '=', filter.clientId);
      if (filter.channelId) q = q.where('channel_id', '=', filter.channelId);
      if (filter.status) q = q.where('status', '=', filter.status);
      return q.execute();
    },
    /** Pending deliveries due by `now` whose lease is free, leased to `owner` until `until`. */
    async claimDue(exec: Executor, now: string, limit: number, owner: string, until: string): Promise<NotificationDeliveriesTable[]> {
      const q = exec
        .selectFrom('notification_deliveries')
        .selectAll()
        .where('status', '=', 'pending')
        .where('next_attempt_at', '<=', now)
        .where((eb) => eb.or([eb('locked_until', 'is', null), eb('locked_until', '<', now)]))
        .orderBy('next_attempt_at')
        .limit(limit);
      const rows = await (rowLocks(exec) ? q.forUpdate().skipLocked() : q).execute();
      for (const part of chunks(
        rows.map((r) => r.id),
        500,
      )) {
        await exec.updateTable('notification_deliveries').set({ locked_by: owner, locked_until: until }).where('id', 'in', part).execute();
      }
      return rows;
    },
    /** Gives back the leases `owner` holds on these deliveries. */
    async release(exec: Executor, ids: string[], owner: string): Promise<void> {
      for (const part of chunks(ids, 500))
        await exec
          .updateTable('notification_deliveries')
          .set({ locked_by: null, locked_until: null })
          .where('id', 'in', part)
          .where('locked_by', '=', owner)
          .execute();
    },
    async recordAttempt(
      exec: Executor,
      attempt: NotificationAttemptsTable,
      outcome: Pick<NotificationDeliveriesTable, 'attempts' | 'status' | 'next_attempt_at' | 'last_error' | 'sent_at'>,
    ): Promise<void> {
      await exec.insertInto('notification_attempts').values(attempt).execute();
      await exec
        .updateTable('notification_deliveries')
        .set({ ...outcome, locked_by: null, locked_until: null })
        .where('id', '=', attempt.delivery_id)
        .execute();
    },
    attemptsOf(exec: Executor, deliveryId: string): Promise<NotificationAttemptsTable[]> {
      return exec.selectFrom('notification_attempts').selectAll().where('delivery_id', '=', deliveryId).orderBy('attempt').execute();
    },

    // ---------------------------------------------------------------- housekeeping
    async pruneDeliveredItems(exec: Executor, before: string): Promise<void> {
      await exec.deleteFrom('notification_items').where('delivery_id', 'is not', null).where('created_at', '<', before).execute();
    },
    async pruneFinishedDeliveries(exec: Executor, before: string): Promise<void> {
      await exec.deleteFrom('notification_deliveries').where('status', '!=', 'pending').where('created_at', '<', before).execute();
    },

    // ---------------------------------------------------------------- names shown in messages (read only)
    async clientNames(exec: Executor, ids: string[]): Promise<Map<string, string>> {
      const out = new Map<string, string>();
      for (const part of chunks(ids, 500))
        for (const c of await exec.selectFrom('clients').select(['id', 'name']).where('id', 'in', part).execute()) out.set(c.id, c.name);
      return out;
    },
    async deviceNames(exec: Executor, ids: string[]): Promise<Map<string, string>> {
      const out = new Map<string, string>();
      for (const part of chunks(ids, 500))
        for (const d of await exec.selectFrom('devices').select(['id', 'name']).where('id', 'in', part).execute()) out.set(d.id, d.name);
      return out;
    },
    async clientName(exec: Executor, id: string): Promise<string | null> {
      return (await exec.selectFrom('clients').select('name').where('id', '=', id).executeTakeFirst())?.name ?? null;
    },
  };
}
export type DeliveryRepo = ReturnType<typeof createDeliveryRepo>;
