import type { Executor } from '../../db/database.js';
import type { NotificationRulesTable } from '../../db/schema.js';
import type { Transactions } from '../../db/transactions.js';
import type { Clock } from '../../lib/clock.js';
import { newId } from '../../lib/ids.js';
import { badRequest, notFound } from '../../lib/errors.js';
import { DIGEST_MODES, type DigestMode } from '../../domain/notification-timing.js';
import { clientScope, requirePermission, type Actor } from '../authz/authz.js';
import type { AuditService } from '../audit/audit.service.js';
import { NOTIFICATION_EVENT_TYPES, type NotificationEventType } from './notifier.js';
import type { RulesRepo } from './rules.repo.js';
import type { DeliveryRepo } from './delivery.repo.js';
import type { ChannelsService } from './channels.service.js';
import { mayManage, mayRead } from './access.js';
import { changedFields, checkName, ruleView, type RuleInput, type RulePatch, type RuleView } from './notification-types.js';

type Deps = {
  tx: Transactions;
  repo: RulesRepo;
  /** Waiting items of a deleted rule are dropped with it. */
  deliveries: Pick<DeliveryRepo, 'deleteWaitingItems'>;
  channels: Pick<ChannelsService, 'load'>;
  audit: Pick<AuditService, 'record'>;
  clock: Clock;
};

function checkEventTypes(list: string[]): NotificationEventType[] {
  const types = [...new Set(list)];
  if (!types.length) throw badRequest('eventTypes needs at least one event type.', { field: 'eventTypes' });
  const unknown = types.filter((t) => !(NOTIFICATION_EVENT_TYPES as readonly string[]).includes(t));
  if (unknown.length)
    throw badRequest(`Unknown event type ${unknown[0]!.slice(0, 60)}; known: ${NOTIFICATION_EVENT_TYPES.join(', ')}.`, { field: 'eventTypes' });
  return types as NotificationEventType[];
}
function checkDigest(digest: DigestMode): DigestMode {
  if (!DIGEST_MODES.includes(digest)) throw badRequest('digest must be none, hourly or daily.', { field: 'digest' });
  return digest;
}

/** Notification rules: which events go to which channels, at once or as a digest. */
export function createRulesService({ tx, repo, deliveries, channels, audit, clock }: Deps) {
  async function load(exec: Executor, actor: Actor, id: string): Promise<NotificationRulesTable> {
    const r = await repo.findInScope(exec, id, clientScope(actor));
    if (!r) throw notFound(`No notification rule with id ${id.slice(0, 60)}.`);
    return r;
  }

  /** A client's rule may use that client's channels and MSP-wide ones; an MSP-wide rule only MSP-wide ones. */
  async function checkRuleChannels(exec: Executor, actor: Actor, clientId: string | null, ids: string[]): Promise<string[]> {
    const unique = [...new Set(ids)];
    if (!unique.length) throw badRequest('channelIds needs at least one channel.', { field: 'channelIds' });
    for (const id of unique) {
      const c = await channels.load(exec, actor, id);
      if (c.client_id !== null && c.client_id !== clientId) {
        throw badRequest(
          clientId === null
            ? `Channel ${c.name} belongs to one client; an MSP-wide rule can only use MSP-wide channels (it would send other clients' events there).`
            : `Channel ${c.name} belongs to another client.`,
          { field: 'channelIds' },
        );
      }
    }
    return unique;
  }

  return {
    async listRules(actor: Actor, filter: { clientId?: string } = {}): Promise<RuleView[]> {
      mayRead(actor, filter.clientId);
      const rules = await repo.list(tx.reader, clientScope(actor), filter.clientId);
      const links = await repo.linksOf(
        tx.reader,
        rules.map((r) => r.id),
      );
      return rules.map((r) =>
        ruleView(
          r,
          links.filter((l) => l.rule_id === r.id).map((l) => l.channel_id),
        ),
      );
    },

    async createRule(actor: Actor, input: RuleInput): Promise<RuleView> {
      const name = checkName(input.name, 'Rule');
      const eventTypes = checkEventTypes(input.eventTypes);
      const digest = checkDigest(input.digest ?? 'none');
      return tx.run(async (t) => {
        const clientId = await mayManage(t, actor, input.clientId);
        const channelIds = await checkRuleChannels(t, actor, clientId, input.channelIds);
        const now = clock.now();
        const row: NotificationRulesTable = {
          id: newId(),
          client_id: clientId,
          name,
          event_types: JSON.stringify(eventTypes),
          digest,
          enabled: input.enabled === false ? 0 : 1,
          created_by: actor.id,
          created_at: now,
          updated_at: now,
        };
        await repo.insert(t, row, channelIds);
        await audit.record(t, actor, {
          action: 'notification.rule.create',
          outcome: 'success',
          clientId,
          targetType: 'notification_rule',
          targetId: row.id,
          details: { name, eventTypes, channelIds, digest },
        });
        return ruleView(row, channelIds);
      });
    },

    async updateRule(actor: Actor, id: string, patch: RulePatch): Promise<RuleView> {
      return tx.run(async (t) => {
        requirePermission(actor, 'client:manage');
        const r = await load(t, actor, id);
        await mayManage(t, actor, r.client_id);
        const digest = checkDigest(patch.digest ?? (r.digest as DigestMode));
        const row: NotificationRulesTable = {
          ...r,
          name: patch.name !== undefined ? checkName(patch.name, 'Rule') : r.name,
          event_types: patch.eventTypes ? JSON.stringify(checkEventTypes(patch.eventTypes)) : r.event_types,
          digest,
          enabled: patch.enabled === undefined ? r.enabled : patch.enabled ? 1 : 0,
          updated_at: clock.now(),
        };
        await repo.update(t, row);
        let channelIds = await repo.channelIdsOf(t, r.id);
        if (patch.channelIds) {
          channelIds = await checkRuleChannels(t, actor, r.client_id, patch.channelIds);
          await repo.replaceChannels(t, r.id, channelIds);
        }
        await audit.record(t, actor, {
          action: 'notification.rule.update',
          outcome: 'success',
          clientId: r.client_id,
          targetType: 'notification_rule',
          targetId: r.id,
          details: { name: row.name, changed: changedFields(patch) },
        });
        return ruleView(row, channelIds);
      });
    },

    async deleteRule(actor: Actor, id: string): Promise<void> {
      await tx.run(async (t) => {
        requirePermission(actor, 'client:manage');
        const r = await load(t, actor, id);
        await mayManage(t, actor, r.client_id);
        await deliveries.deleteWaitingItems(t, { ruleId: r.id });
        await repo.delete(t, r.id);
        await audit.record(t, actor, {
          action: 'notification.rule.delete',
          outcome: 'success',
          clientId: r.client_id,
          targetType: 'notification_rule',
          targetId: r.id,
          details: { name: r.name },
        });
      });
    },
  };
}
export type RulesService = ReturnType<typeof createRulesService>;
