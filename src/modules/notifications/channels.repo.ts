import type { Executor } from '../../db/database.js';
import type { NotificationChannelsTable } from '../../db/schema.js';
import { inClientScope, isId, type ClientScope } from '../../db/scope.js';

/** notification_channels: where notifications go (settings in config, secrets sealed). */
export function createChannelsRepo() {
  return {
    async insert(exec: Executor, row: NotificationChannelsTable): Promise<void> {
      await exec.insertInto('notification_channels').values(row).execute();
    },
    async update(exec: Executor, row: NotificationChannelsTable): Promise<void> {
      await exec.updateTable('notification_channels').set(row).where('id', '=', row.id).execute();
    },
    async delete(exec: Executor, id: string): Promise<void> {
      await exec.deleteFrom('notification_channels').where('id', '=', id).execute();
    },
    findById(exec: Executor, id: string): Promise<NotificationChannelsTable | undefined> {
      return exec.selectFrom('notification_channels').selectAll().where('id', '=', id).executeTakeFirst();
    },
    /** The channel when it is inside the scope (MSP-wide channels only for a scope over all clients). */
    findInScope(exec: Executor, id: string, scope: ClientScope): Promise<NotificationChannelsTable | undefined> {
      if (!isId(id)) return Promise.resolve(undefined);
      return inClientScope(exec.selectFrom('notification_channels').selectAll().where('id', '=', id), 'client_id', scope).executeTakeFirst();
    },
    list(exec: Executor, scope: ClientScope, clientId?: string): Promise<NotificationChannelsTable[]> {
      let q = inClientScope(exec.selectFrom('notification_channels').selectAll(), 'client_id', scope).orderBy('created_at');
      if (clientId) q = q.where('client_id', '=', clientId);
      return q.execute();
    },
  };
}
export type ChannelsRepo = ReturnType<typeof createChannelsRepo>;
