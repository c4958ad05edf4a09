import type { Executor } from '../../db/database.js';
import type { NotificationChannelsTable } from '../../db/schema.js';
import type { Transactions } from '../../db/transactions.js';
import { newWebhookSecret } from '../../crypto/webhook-signature.js';
import type { Clock } from '../../lib/clock.js';
import { newId } from '../../lib/ids.js';
import { notFound } from '../../lib/errors.js';
import { clientScope, requirePermission, type Actor } from '../authz/authz.js';
import type { AuditService } from '../audit/audit.service.js';
import { type EgressPolicy, isEgressError } from '../../integrations/egress.js';
import {
  buildChannel,
  checkChannelTarget,
  maskSecrets,
  type ChannelConfig,
  type ChannelInput,
  type ChannelKind,
  type ChannelSecrets,
  type EmailConfig,
} from './channels.js';
import { createChannelSecrets, type ChannelKeyring } from './channel-secrets.js';
import type { ChannelsRepo } from './channels.repo.js';
import type { DeliveryRepo } from './delivery.repo.js';
import type { DeliveryService } from './delivery.service.js';
import { mayManage, mayRead } from './access.js';
import { changedFields, checkName, parseJson, type ChannelCreate, type ChannelPatch, type ChannelView } from './notification-types.js';

type Deps = {
  tx: Transactions;
  repo: ChannelsRepo;
  /** Waiting items of a deleted channel are dropped with it. */
  deliveries: Pick<DeliveryRepo, 'deleteWaitingItems'>;
  delivery: Pick<DeliveryService, 'queueTest' | 'attempt'>;
  keyring: ChannelKeyring;
  audit: Pick<AuditService, 'record' | 'recordNow'>;
  clock: Clock;
  /** Where a channel may point: checked when it is saved, again when something is sent. */
  egress: EgressPolicy;
};

function channelSettings(kind: ChannelKind, config: ChannelConfig): Record<string, unknown> {
  if (kind !== 'email') return { ...config };
  const { caCert, ...rest } = config as EmailConfig;
  return { ...rest, caCert: caCert ? 'set' : null };
}

/** Notification channels: where messages go, their sealed secrets, and "send test". */
export function createChannelsService({ tx, repo, deliveries, delivery, keyring, audit, clock, egress }: Deps) {
  const secrets = createChannelSecrets(keyring);

  /**
   * A target the egress policy refuses is refused when the channel is saved (400), and the attempt
   * is in the audit trail. Checked outside the write transaction: name resolution can take seconds.
   */
  async function checkTarget(
    actor: Actor,
    kind: ChannelKind,
    built: { config: ChannelConfig; secrets: ChannelSecrets },
    audited: { action: 'notification.channel.create' | 'notification.channel.update'; clientId: string | null; targetId: string | null; name: string },
  ): Promise<void> {
    try {
      await checkChannelTarget(egress, kind, built);
    } catch (e) {
      if (isEgressError(e)) {
        await audit.recordNow(actor, {
          action: audited.action,
          outcome: 'failure',
          clientId: audited.clientId,
          targetType: 'notification_channel',
          targetId: audited.targetId,
          details: { name: audited.name, kind, reason: e.message },
        });
      }
      throw e;
    }
  }

  async function channelView(exec: Executor, c: NotificationChannelsTable, known?: ChannelSecrets): Promise<ChannelView> {
    const kind = c.kind as ChannelKind;
    const config = parseJson<ChannelConfig>(c.config, { urlHint: '' });
    // Only e-mail needs to know whether a password is set; nothing else opens the seal for a view.
    const s = known ?? (kind === 'email' && (config as EmailConfig).username ? await secrets.open(exec, c) : null);
    return {
      id: c.id,
      clientId: c.client_id,
      name: c.name,
      kind,
      enabled: !!c.enabled,
      settings: channelSettings(kind, config),
      masked: maskSecrets(kind, config, s),
      createdAt: c.created_at,
      updatedAt: c.updated_at,
    };
  }

  /** A channel inside the actor's scope, else "not found". */
  async function load(exec: Executor, actor: Actor, id: string): Promise<NotificationChannelsTable> {
    const c = await repo.findInScope(exec, id, clientScope(actor));
    if (!c) throw notFound(`No notification channel with id ${id.slice(0, 60)}.`);
    return c;
  }

  return {
    load,

    async listChannels(actor: Actor, filter: { clientId?: string } = {}): Promise<ChannelView[]> {
      mayRead(actor, filter.clientId);
      const rows = await repo.list(tx.reader, clientScope(actor), filter.clientId);
      return Promise.all(rows.map((c) => channelView(tx.reader, c)));
    },

    async createChannel(actor: Actor, input: ChannelCreate): Promise<{ channel: ChannelView; signingSecret?: string }> {
      const name = checkName(input.name, 'Channel');
      // Permission and visibility before anything is resolved on the actor's behalf.
      const visibleClientId = await mayManage(tx.reader, actor, input.clientId);
      // A webhook without a secret of the admin's choosing gets a generated one, shown once.
      const generated = input.kind === 'webhook' && !input.signingSecret ? newWebhookSecret() : undefined;
      const built = buildChannel({ ...input, ...(generated ? { signingSecret: generated } : {}) });
      await checkTarget(actor, input.kind, built, { action: 'notification.channel.create', clientId: visibleClientId, targetId: null, name });
      return tx.run(async (t) => {
        const clientId = await mayManage(t, actor, input.clientId);
        const id = newId();
        const now = clock.now();
        const row: NotificationChannelsTable = {
          id,
          client_id: clientId,
          name,
          kind: input.kind,
          config: JSON.stringify(built.config),
          ...(await secrets.seal(t, clientId, id, built.secrets)),
          enabled: input.enabled === false ? 0 : 1,
          created_by: actor.id,
          created_at: now,
          updated_at: now,
        };
        await repo.insert(t, row);
        await audit.record(t, actor, {
          action: 'notification.channel.create',
          outcome: 'success',
          clientId,
          targetType: 'notification_channel',
          targetId: id,
          details: { name, kind: input.kind },
        });
        return { channel: await channelView(t, row, built.secrets), ...(generated ? { signingSecret: generated } : {}) };
      });
    },

    async updateChannel(actor: Actor, id: string, patch: ChannelPatch): Promise<ChannelView> {
      if (patch.url !== undefined || patch.host !== undefined || patch.port !== undefined) {
        // A new target is checked before the write transaction (name resolution can take seconds).
        requirePermission(actor, 'client:manage');
        const c = await load(tx.reader, actor, id);
        await mayManage(tx.reader, actor, c.client_id);
        const kind = c.kind as ChannelKind;
        const previous = { config: parseJson<ChannelConfig>(c.config, { urlHint: '' }), secrets: await secrets.open(tx.reader, c) };
        const built = buildChannel({ ...patch, kind } as ChannelInput, previous);
        await checkTarget(actor, kind, built, { action: 'notification.channel.update', clientId: c.client_id, targetId: c.id, name: c.name });
      }
      return tx.run(async (t) => {
        requirePermission(actor, 'client:manage');
        const c = await load(t, actor, id);
        await mayManage(t, actor, c.client_id);
        const kind = c.kind as ChannelKind;
        const previous = { config: parseJson<ChannelConfig>(c.config, { urlHint: '' }), secrets: await secrets.open(t, c) };
        const built = buildChannel({ ...patch, kind } as ChannelInput, previous);
        const row: NotificationChannelsTable = {
          ...c,
          name: patch.name !== undefined ? checkName(patch.name, 'Channel') : c.name,
          enabled: patch.enabled === undefined ? c.enabled : patch.enabled ? 1 : 0,
          config: JSON.stringify(built.config),
          ...(await secrets.seal(t, c.client_id, c.id, built.secrets)),
          updated_at: clock.now(),
        };
        await repo.update(t, row);
        await audit.record(t, actor, {
          action: 'notification.channel.update',
          outcome: 'success',
          clientId: c.client_id,
          targetType: 'notification_channel',
          targetId: c.id,
          details: { name: row.name, changed: changedFields(patch) },
        });
        return channelView(t, row, built.secrets);
      });
    },

    async deleteChannel(actor: Actor, id: string): Promise<void> {
      await tx.run(async (t) => {
        requirePermission(actor, 'client:manage');
        const c = await load(t, actor, id);
        await mayManage(t, actor, c.client_id);
        await deliveries.deleteWaitingItems(t, { channelId: c.id });
        await repo.delete(t, c.id);
        await audit.record(t, actor, {
          action: 'notification.channel.delete',
          outcome: 'success',
          clientId: c.client_id,
          targetType: 'notification_channel',
          targetId: c.id,
          details: { name: c.name, kind: c.kind },
        });
      });
    },

    /** "Send test": one message now, outside the queue; the attempt is in the delivery log. */
    async testChannel(
      actor: Actor,
      id: string,
    ): Promise<{ ok: boolean; deliveryId: string; responseCode: string | null; summary: string; error: string | null }> {
      const { channel, queued } = await tx.run(async (t) => {
        requirePermission(actor, 'client:manage');
        const c = await load(t, actor, id);
        await mayManage(t, actor, c.client_id);
        const d = await delivery.queueTest(t, c, actor.name);
        await audit.record(t, actor, {
          action: 'notification.channel.test',
          outcome: 'success',
          clientId: c.client_id,
          targetType: 'notification_channel',
          targetId: c.id,
          details: { name: c.name, deliveryId: d.id },
        });
        return { channel: c, queued: d };
      });
      const { result } = await delivery.attempt(queued, channel);
      return { ok: result.ok, deliveryId: queued.id, responseCode: result.code, summary: result.summary, error: result.error };
    },
  };
}
export type ChannelsService = ReturnType<typeof createChannelsService>;
