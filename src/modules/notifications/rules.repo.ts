import type { Executor } from '../../db/database.js';
import type { NotificationRulesTable } from '../../db/schema.js';
import { inClientScope, isId, type ClientScope } from '../../db/scope.js';

/** notification_rules and their channel links (notification_rule_channels). */
export function createRulesRepo() {
  const links = {
    async insert(exec: Executor, ruleId: string, channelIds: string[]): Promise<void> {
      await exec
        .insertInto('notification_rule_channels')
        .values(channelIds.map((channel_id) => ({ rule_id: ruleId, channel_id })))
        .execute();
    },
  };
  return {
    async insert(exec: Executor, row: NotificationRulesTable, channelIds: string[]): Promise<void> {
      await exec.insertInto('notification_rules').values(row).execute();
      await links.insert(exec, row.id, channelIds);
    },
    async update(exec: Executor, row: NotificationRulesTable): Promise<void> {
      await exec.updateTable('notification_rules').set(row).where('id', '=', row.id).execute();
    },
    async replaceChannels(exec: Executor, ruleId: string, channelIds: string[]): Promise<void> {
      await exec.deleteFrom('notification_rule_channels').where('rule_id', '=', ruleId).execute();
      await links.insert(exec, ruleId, channelIds);
    },
    async delete(exec: Executor, id: string): Promise<void> {
      await exec.deleteFrom('notification_rules').where('id', '=', id).execute();
    },
    findInScope(exec: Executor, id: string, scope: ClientScope): Promise<NotificationRulesTable | undefined> {
      if (!isId(id)) return Promise.resolve(undefined);
      return inClientScope(exec.selectFrom('notification_rules').selectAll().where('id', '=', id), 'client_id', scope).executeTakeFirst();
    },
    list(exec: Executor, scope: ClientScope, clientId?: string): Promise<NotificationRulesTable[]> {
      let q = inClientScope(exec.selectFrom('notification_rules').selectAll(), 'client_id', scope).orderBy('created_at');
      if (clientId) q = q.where('client_id', '=', clientId);
      return q.execute();
    },
    async linksOf(exec: Executor, ruleIds: string[]) {
      if (!ruleIds.length) return [];
      return exec.selectFrom('notification_rule_channels').selectAll().where('rule_id', 'in', ruleIds).execute();
    },
    async channelIdsOf(exec: Executor, ruleId: string): Promise<string[]> {
      return (await exec.selectFrom('notification_rule_channels').select('channel_id').where('rule_id', '=', ruleId).execute()).map((l) => l.channel_id);
    },
    enabled(exec: Executor): Promise<NotificationRulesTable[]> {
      return exec.selectFrom('notification_rules').selectAll().where('enabled', '=', 1).execute();
    },
    /** Every rule's enabled channels (id and client), for routing. */
    enabledChannelLinks(exec: Executor) {
      return exec
        .selectFrom('notification_rule_channels as rc')
        .innerJoin('notification_channels as c', 'c.id', 'rc.channel_id')
        .select(['rc.rule_id', 'c.id', 'c.client_id'])
        .where('c.enabled', '=', 1)
        .execute();
    },
    digestOf(exec: Executor, id: string) {
      return exec.selectFrom('notification_rules').select(['digest', 'client_id']).where('id', '=', id).executeTakeFirst();
    },
  };
}
export type RulesRepo = ReturnType<typeof createRulesRepo>;
