import { PassThrough, type Writable } from 'node:stream';
import { PostgresAdapter } from 'kysely';
import type { Db, Executor } from '../../db/database.js';
import type { NotificationChannelsTable, NotificationDeliveriesTable, NotificationOutboxTable, NotificationRulesTable, ReportSchedulesTable } from '../../db/schema.js';
import type { Keyring } from '../../crypto/keyring.js';
import { newWebhookSecret } from '../../crypto/webhook-signature.js';
import type { Clock } from '../../lib/clock.js';
import { newId } from '../../lib/ids.js';
import { badRequest, forbidden, notFound } from '../../lib/errors.js';
import { backoffMs, DIGEST_MODES, itemDueAt, nextReportRun, reportPeriod, reportTimingProblem, type DigestMode, type ReportFrequency } from '../../domain/notification-timing.js';
import { can, clientScope, requirePermission, type Actor } from '../authz/authz.js';
import type { AuditService } from '../audit/audit.service.js';
import { NOTIFICATION_EVENT_TYPES, type NotificationEventType, type Notifier } from './notifier.js';
import { createOutboxNotifier } from './outbox.js';
import { buildChannel, checkAddresses, maskSecrets, sendThrough, type ChannelConfig, type ChannelInput, type ChannelKind, type ChannelSecrets, type EmailConfig, type OutgoingMessage, type SendResult } from './channels.js';
import { EVENT_LABELS, digestSubject, renderMessage, type EventView, type MessageKind } from './messages.js';

// ------------------------------------------------------------------------------------ options and views

export type NotificationOptions = {
  /** Per HTTP request / SMTP connection step. */
  timeoutMs: number;
  maxAttempts: number;
  backoffBaseMs: number;
  backoffCapMs: number;
  /** Immediate rules wait this long, so a burst of events becomes one digest. */
  gatherSeconds: number;
  /** More events than this for one rule and channel at once: one digest message instead. */
  digestThreshold: number;
  /** Same dedupKey (same client) within this window: notified once. */
  dedupWindowMinutes: number;
  dailyDigestHourUtc: number;
  /** How long a claimed delivery stays reserved for the process sending it. */
  leaseMinutes: number;
  /** Channels sent to in parallel in one worker pass (each channel is sequential). */
  channelConcurrency: number;
  random: () => number;
};
export const DEFAULT_NOTIFICATION_OPTIONS: NotificationOptions = {
  timeoutMs: 10_000,
  maxAttempts: 6,
  backoffBaseMs: 60_000,
  backoffCapMs: 6 * 3600_000,
  gatherSeconds: 30,
  digestThreshold: 10,
  dedupWindowMinutes: 60,
  dailyDigestHourUtc: 7,
  leaseMinutes: 5,
  channelConcurrency: 4,
  random: Math.random,
};

export const REPORT_NAMES = ['compliance-summary', 'devices', 'escrow-coverage', 'recovery-audit', 'recovery-boots'] as const;
export type ReportName = (typeof REPORT_NAMES)[number];
/** PDF exists for the summary and the recovery audit (what a client is sent); CSV for every report. */
export const PDF_REPORTS: readonly ReportName[] = ['compliance-summary', 'recovery-audit'];

/** What the reports module provides (container.reports); plugged in once it exists. */
export type ReportRenderer = {
  render(actor: Actor, req: { report: ReportName; clientId?: string; format: 'csv' | 'pdf' }, out: Writable): Promise<{ filename: string; contentType: string }>;
};

export type ChannelView = {
  id: string;
  clientId: string | null;
  name: string;
  kind: ChannelKind;
  enabled: boolean;
  /** The settings that are not secret. */
  settings: Record<string, unknown>;
  /** The sealed settings, masked: that they are set, never what they are. */
  masked: Record<string, string>;
  createdAt: string;
  updatedAt: string;
};
export type RuleView = {
  id: string;
  clientId: string | null;
  name: string;
  eventTypes: NotificationEventType[];
  channelIds: string[];
  digest: DigestMode;
  enabled: boolean;
  createdAt: string;
  updatedAt: string;
};
export type DeliveryView = {
  id: string;
  channel: { id: string; name: string; kind: string };
  clientId: string | null;
  ruleId: string | null;
  kind: string;
  subject: string;
  eventCount: number;
  status: string;
  attempts: number;
  maxAttempts: number;
  nextAttemptAt: string | null;
  lastError: string | null;
  createdAt: string;
  sentAt: string | null;
};
export type AttemptView = { attempt: number; at: string; outcome: string; responseCode: string | null; summary: string | null; error: string | null; durationMs: number };
export type ScheduleView = {
  id: string;
  clientId: string;
  name: string;
  channelId: string;
  recipients: string[];
  reports: { report: ReportName; format: 'csv' | 'pdf' }[];
  frequency: ReportFrequency;
  day: number | null;
  hour: number;
  minute: number;
  enabled: boolean;
  nextRunAt: string;
  lastRunAt: string | null;
  lastDeliveryId: string | null;
  createdAt: string;
  updatedAt: string;
};

export type ChannelCreate = ChannelInput & { clientId: string | null; name: string; enabled?: boolean };
export type ChannelPatch = Partial<Omit<ChannelInput, 'kind'>> & { name?: string; enabled?: boolean };
export type RuleInput = { clientId: string | null; name: string; eventTypes: string[]; channelIds: string[]; digest?: DigestMode; enabled?: boolean };
export type RulePatch = Partial<Omit<RuleInput, 'clientId'>>;
export type ScheduleInput = {
  clientId: string;
  name: string;
  channelId: string;
  recipients: string[];
  reports?: { report: ReportName; format: 'csv' | 'pdf' }[];
  frequency?: ReportFrequency;
  day?: number | null;
  hour?: number;
  minute?: number;
  enabled?: boolean;
};
export type SchedulePatch = Partial<Omit<ScheduleInput, 'clientId'>>;

type Deps = {
  db: Db;
  keyring: Pick<Keyring<Executor>, 'clientCipher' | 'secretCipher'>;
  audit: Pick<AuditService, 'record' | 'recordNow'>;
  clock: Clock;
  /** Names this process in delivery leases (several Keywarden processes may share PostgreSQL). */
  owner: string;
  options?: Partial<NotificationOptions>;
};

const parseJson = <T>(s: string | null, fallback: T): T => {
  if (!s) return fallback;
  try {
    return JSON.parse(s) as T;
  } catch {
    return fallback;
  }
};
const addMs = (iso: string, ms: number) => new Date(Date.parse(iso) + ms).toISOString();
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const secretContext = (channelId: string) => `notification-channel=${channelId}`;

function channelSettings(kind: ChannelKind, config: ChannelConfig): Record<string, unknown> {
  if (kind !== 'email') return { ...config };
  const { caCert, ...rest } = config as EmailConfig;
  return { ...rest, caCert: caCert ? 'set' : null };
}

function ruleView(r: NotificationRulesTable, channelIds: string[]): RuleView {
  return {
    id: r.id,
    clientId: r.client_id,
    name: r.name,
    eventTypes: parseJson<NotificationEventType[]>(r.event_types, []),
    channelIds,
    digest: r.digest as DigestMode,
    enabled: !!r.enabled,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}
const deliveryView = (d: NotificationDeliveriesTable): DeliveryView => ({
  id: d.id,
  channel: { id: d.channel_id, name: d.channel_name, kind: d.channel_kind },
  clientId: d.client_id,
  ruleId: d.rule_id,
  kind: d.kind,
  subject: d.subject,
  eventCount: d.event_count,
  status: d.status,
  attempts: d.attempts,
  maxAttempts: d.max_attempts,
  nextAttemptAt: d.status === 'pending' ? d.next_attempt_at : null,
  lastError: d.last_error,
  createdAt: d.created_at,
  sentAt: d.sent_at,
});
const scheduleView = (s: ReportSchedulesTable): ScheduleView => ({
  id: s.id,
  clientId: s.client_id,
  name: s.name,
  channelId: s.channel_id,
  recipients: parseJson<string[]>(s.recipients, []),
  reports: parseJson<ScheduleView['reports']>(s.reports, []),
  frequency: s.frequency as ReportFrequency,
  day: s.day,
  hour: s.hour,
  minute: s.minute,
  enabled: !!s.enabled,
  nextRunAt: s.next_run_at,
  lastRunAt: s.last_run_at,
  lastDeliveryId: s.last_delivery_id,
  createdAt: s.created_at,
  updatedAt: s.updated_at,
});

/** Runs fn over items with at most n in flight. */
async function pool<T>(items: T[], n: number, fn: (item: T) => Promise<void>) {
  let i = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      while (i < items.length) await fn(items[i++]!);
    }),
  );
}
const chunks = <T>(list: T[], n: number): T[][] => Array.from({ length: Math.ceil(list.length / n) }, (_, i) => list.slice(i * n, i * n + n));

// ------------------------------------------------------------------------------------ the service

/**
 * Notification channels and rules, the outbox-backed notifier, the delivery worker (route events
 * to rules, gather digests, send with retries), the delivery log and scheduled report e-mails.
 *
 * Worker safety with several processes on one PostgreSQL: every step claims its rows with
 * FOR UPDATE SKIP LOCKED (SQLite serialises writers with BEGIN IMMEDIATE), and a delivery being
 * sent carries a lease (locked_by / locked_until) that expires if its process dies mid-send.
 */
export function createNotificationsService({ db, keyring, audit, clock, owner, options }: Deps) {
  const opts: NotificationOptions = { ...DEFAULT_NOTIFICATION_OPTIONS, ...options };
  const notifier: Notifier = createOutboxNotifier({ clock });
  const isPg = (exec: Executor) => exec.getExecutor().adapter instanceof PostgresAdapter;
  let renderer: ReportRenderer | undefined;

  // ---------------------------------------------------------------- authorization
  const mayRead = (actor: Actor, clientId?: string | null) => {
    if (!can(actor, 'client:manage', clientId) && !can(actor, 'audit:read', clientId)) throw forbidden('You are not allowed to see notification settings.');
  };
  /** Permission first, then visibility: another client's id is "not found", like a missing one. */
  async function mayManage(exec: Executor, actor: Actor, clientId: string | null): Promise<string | null> {
    requirePermission(actor, 'client:manage');
    if (clientId === null) {
      if (actor.clients !== 'all') throw forbidden('Only an owner or admin over all clients can manage MSP-wide notifications.');
      return null;
    }
    const scope = clientScope(actor);
    const client = UUID.test(clientId) ? await exec.selectFrom('clients').select(['id', 'name']).where('id', '=', clientId).where('archived_at', 'is', null).executeTakeFirst() : undefined;
    if (!client || (scope && !scope.includes(client.id))) throw notFound(`No client with id ${clientId.slice(0, 60)}.`);
    return client.id;
  }
  /** Rows of the actor's clients; MSP-wide rows (client_id null) only for a global principal. */
  function scoped<Q extends { where: (...a: any[]) => Q }>(q: Q, actor: Actor, col: string): Q {
    const scope = clientScope(actor);
    if (!scope) return q;
    return scope.length ? q.where(col, 'in', scope as string[]) : q.where((eb: any) => eb.val(false));
  }
  async function loadChannel(exec: Executor, actor: Actor, id: string): Promise<NotificationChannelsTable> {
    const c = UUID.test(id) ? await scoped(exec.selectFrom('notification_channels').selectAll().where('id', '=', id), actor, 'client_id').executeTakeFirst() : undefined;
    if (!c) throw notFound(`No notification channel with id ${id.slice(0, 60)}.`);
    return c;
  }
  async function loadRule(exec: Executor, actor: Actor, id: string): Promise<NotificationRulesTable> {
    const r = UUID.test(id) ? await scoped(exec.selectFrom('notification_rules').selectAll().where('id', '=', id), actor, 'client_id').executeTakeFirst() : undefined;
    if (!r) throw notFound(`No notification rule with id ${id.slice(0, 60)}.`);
    return r;
  }
  async function loadSchedule(exec: Executor, actor: Actor, id: string): Promise<ReportSchedulesTable> {
    const s = UUID.test(id) ? await scoped(exec.selectFrom('report_schedules').selectAll().where('id', '=', id), actor, 'client_id').executeTakeFirst() : undefined;
    if (!s) throw notFound(`No report schedule with id ${id.slice(0, 60)}.`);
    return s;
  }

  // ---------------------------------------------------------------- secrets
  async function sealSecrets(exec: Executor, clientId: string | null, channelId: string, secrets: ChannelSecrets) {
    const json = JSON.stringify(secrets);
    if (clientId) {
      const sealed = (await keyring.clientCipher(exec, clientId)).sealSecret(secretContext(channelId), json);
      return { secret_ciphertext: sealed.ciphertext, secret_data_key_version: sealed.dataKeyVersion };
    }
    return { secret_ciphertext: (await keyring.secretCipher(exec)).seal(secretContext(channelId), json), secret_data_key_version: null };
  }
  async function openSecrets(exec: Executor, c: NotificationChannelsTable): Promise<ChannelSecrets> {
    if (!c.secret_ciphertext) return {};
    if (c.client_id) {
      const cipher = await keyring.clientCipher(exec, c.client_id);
      return parseJson(cipher.openSecret(secretContext(c.id), { ciphertext: c.secret_ciphertext, dataKeyVersion: c.secret_data_key_version ?? 1 }), {});
    }
    return parseJson((await keyring.secretCipher(exec)).open(secretContext(c.id), c.secret_ciphertext), {});
  }
  async function channelView(exec: Executor, c: NotificationChannelsTable, secrets?: ChannelSecrets): Promise<ChannelView> {
    const kind = c.kind as ChannelKind;
    const config = parseJson<ChannelConfig>(c.config, { urlHint: '' });
    // Only e-mail needs to know whether a password is set; nothing else opens the seal for a view.
    const s = secrets ?? (kind === 'email' && (config as EmailConfig).username ? await openSecrets(exec, c) : null);
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

  function checkName(name: string | undefined, what: string): string {
    const n = (name ?? '').trim();
    if (!n || n.length > 200) throw badRequest(`${what} name must be 1 to 200 characters.`, { field: 'name' });
    return n;
  }
  function checkEventTypes(list: string[]): NotificationEventType[] {
    const types = [...new Set(list)];
    if (!types.length) throw badRequest('eventTypes needs at least one event type.', { field: 'eventTypes' });
    const unknown = types.filter((t) => !(NOTIFICATION_EVENT_TYPES as readonly string[]).includes(t));
    if (unknown.length) throw badRequest(`Unknown event type ${unknown[0]!.slice(0, 60)}; known: ${NOTIFICATION_EVENT_TYPES.join(', ')}.`, { field: 'eventTypes' });
    return types as NotificationEventType[];
  }
  /** A client's rule may use that client's channels and MSP-wide ones; an MSP-wide rule only MSP-wide ones. */
  async function checkRuleChannels(exec: Executor, actor: Actor, clientId: string | null, ids: string[]): Promise<string[]> {
    const unique = [...new Set(ids)];
    if (!unique.length) throw badRequest('channelIds needs at least one channel.', { field: 'channelIds' });
    for (const id of unique) {
      const c = await loadChannel(exec, actor, id);
      if (c.client_id !== null && c.client_id !== clientId) {
        throw badRequest(
          clientId === null ? `Channel ${c.name} belongs to one client; an MSP-wide rule can only use MSP-wide channels (it would send other clients' events there).` : `Channel ${c.name} belongs to another client.`,
          { field: 'channelIds' },
        );
      }
    }
    return unique;
  }
  function checkReports(list: ScheduleInput['reports']): NonNullable<ScheduleInput['reports']> {
    const reports = list ?? [
      { report: 'compliance-summary', format: 'pdf' },
      { report: 'recovery-audit', format: 'pdf' },
    ];
    if (!reports.length || reports.length > 10) throw badRequest('reports needs 1 to 10 reports.', { field: 'reports' });
    for (const r of reports) {
      if (!(REPORT_NAMES as readonly string[]).includes(r.report)) throw badRequest(`Unknown report ${String(r.report).slice(0, 60)}.`, { field: 'reports' });
      if (r.format === 'pdf' && !PDF_REPORTS.includes(r.report)) throw badRequest(`${r.report} is available as CSV only.`, { field: 'reports' });
    }
    return reports;
  }

  // ---------------------------------------------------------------- building messages
  async function eventViews(exec: Executor, rows: NotificationOutboxTable[]): Promise<EventView[]> {
    const clientIds = [...new Set(rows.map((r) => r.client_id).filter((x): x is string => !!x))];
    const deviceIds = [...new Set(rows.map((r) => r.device_id).filter((x): x is string => !!x))];
    const clients = new Map<string, string>();
    const devices = new Map<string, string>();
    for (const part of chunks(clientIds, 500)) for (const c of await exec.selectFrom('clients').select(['id', 'name']).where('id', 'in', part).execute()) clients.set(c.id, c.name);
    for (const part of chunks(deviceIds, 500)) for (const d of await exec.selectFrom('devices').select(['id', 'name']).where('id', 'in', part).execute()) devices.set(d.id, d.name);
    return rows.map((r) => ({
      id: r.id,
      type: r.event_type,
      label: EVENT_LABELS[r.event_type as NotificationEventType] ?? r.event_type,
      clientId: r.client_id,
      clientName: r.client_id ? (clients.get(r.client_id) ?? null) : null,
      deviceId: r.device_id,
      deviceName: r.device_id ? (devices.get(r.device_id) ?? null) : null,
      subject: r.subject,
      details: parseJson<Record<string, unknown>>(r.details, {}),
      occurredAt: r.occurred_at,
    }));
  }
  async function outboxRows(exec: Executor, ids: string[]): Promise<NotificationOutboxTable[]> {
    const out: NotificationOutboxTable[] = [];
    for (const part of chunks(ids, 500)) out.push(...(await exec.selectFrom('notification_outbox').selectAll().where('id', 'in', part).execute()));
    const order = new Map(ids.map((id, i) => [id, i]));
    return out.sort((a, b) => order.get(a.id)! - order.get(b.id)!);
  }

  type DeliveryPayload = { events?: string[]; test?: { by: string }; report?: { scheduleId: string; scheduleName: string; clientId: string; recipients: string[]; reports: ScheduleView['reports']; period: { from: string; to: string } } };

  async function buildMessage(d: NotificationDeliveriesTable): Promise<OutgoingMessage> {
    const payload = parseJson<DeliveryPayload>(d.payload, {});
    const sentAt = clock.now();
    if (payload.test) {
      const event: EventView = {
        id: d.id,
        type: 'test',
        label: 'Test message',
        clientId: d.client_id,
        clientName: d.client_id ? ((await db.selectFrom('clients').select('name').where('id', '=', d.client_id).executeTakeFirst())?.name ?? null) : null,
        deviceId: null,
        deviceName: null,
        subject: d.subject,
        details: { requestedBy: payload.test.by, channel: d.channel_name },
        occurredAt: d.created_at,
      };
      return renderMessage({ id: d.id, kind: 'test', events: [event], sentAt, intro: 'This is a test of a Keywarden notification channel. If you can read it, the channel works.' });
    }
    if (payload.report) {
      const r = payload.report;
      if (!renderer) throw new DeliveryProblem('reports are not available in this Keywarden build (no report renderer)', false);
      const actor: Actor = { type: 'system', id: `system:report-schedule:${r.scheduleId}`, name: `Scheduled report (${r.scheduleName})`.slice(0, 200), role: 'owner', clients: [r.clientId] };
      const attachments: NonNullable<OutgoingMessage['attachments']> = [];
      for (const rep of r.reports) {
        const sink = new PassThrough();
        const parts: Buffer[] = [];
        sink.on('data', (b: Buffer) => parts.push(b));
        const done = new Promise<void>((resolve, reject) => {
          sink.on('end', resolve);
          sink.on('error', reject);
        });
        let meta: { filename: string; contentType: string };
        try {
          meta = await renderer.render(actor, { report: rep.report, clientId: r.clientId, format: rep.format }, sink);
          if (!sink.writableEnded) sink.end();
          await done;
        } catch (e) {
          throw new DeliveryProblem(`the ${rep.report} report could not be produced (${(e as Error).message.slice(0, 200)})`, true);
        }
        attachments.push({ filename: meta.filename, contentType: meta.contentType, content: Buffer.concat(parts) });
      }
      const client = (await db.selectFrom('clients').select('name').where('id', '=', r.clientId).executeTakeFirst())?.name ?? 'your organisation';
      const msg = renderMessage({
        id: d.id,
        kind: 'report',
        events: [],
        sentAt,
        subject: d.subject,
        intro: `Attached: ${r.reports.map((x) => `${x.report} (${x.format.toUpperCase()})`).join(', ')} for ${client}, period ${r.period.from.slice(0, 10)} to ${r.period.to.slice(0, 10)}.`,
      });
      return { ...msg, to: r.recipients, attachments };
    }
    const events = await eventViews(db, await outboxRows(db, payload.events ?? []));
    return renderMessage({ id: d.id, kind: d.kind as MessageKind, events, sentAt });
  }

  class DeliveryProblem extends Error {
    constructor(message: string, readonly retryable: boolean) {
      super(message);
    }
  }

  // ---------------------------------------------------------------- worker steps
  /** 1. Scheduled reports that are due become report deliveries. */
  async function queueDueReports(): Promise<number> {
    return db.transaction().execute(async (tx) => {
      const now = clock.now();
      const q = tx.selectFrom('report_schedules').selectAll().where('enabled', '=', 1).where('next_run_at', '<=', now).orderBy('next_run_at').limit(20);
      const due = await (isPg(tx) ? q.forUpdate().skipLocked() : q).execute();
      for (const s of due) {
        const deliveryId = await insertReportDelivery(tx, s, now);
        const timing = { frequency: s.frequency as ReportFrequency, day: s.day, hour: s.hour, minute: s.minute };
        await tx.updateTable('report_schedules').set({ next_run_at: nextReportRun(timing, now), last_run_at: now, last_delivery_id: deliveryId }).where('id', '=', s.id).execute();
      }
      return due.length;
    });
  }
  /** A new delivery, waiting for its first attempt (reports, single events and digests alike). */
  async function insertPendingDelivery(
    tx: Executor,
    d: { id: string; channel: { id: string; name: string; kind: string }; clientId: string | null; ruleId: string | null; kind: 'report' | 'event' | 'digest'; subject: string; payload: DeliveryPayload; eventCount: number; now: string },
  ): Promise<void> {
    await tx
      .insertInto('notification_deliveries')
      .values({
        id: d.id,
        channel_id: d.channel.id,
        channel_name: d.channel.name,
        channel_kind: d.channel.kind,
        client_id: d.clientId,
        rule_id: d.ruleId,
        kind: d.kind,
        subject: d.subject.slice(0, 500),
        payload: JSON.stringify(d.payload),
        event_count: d.eventCount,
        status: 'pending',
        attempts: 0,
        max_attempts: opts.maxAttempts,
        next_attempt_at: d.now,
        locked_by: null,
        locked_until: null,
        last_error: null,
        created_at: d.now,
        sent_at: null,
      })
      .execute();
  }
  async function insertReportDelivery(tx: Executor, s: ReportSchedulesTable, now: string): Promise<string> {
    const channel = await tx.selectFrom('notification_channels').select(['id', 'name', 'kind']).where('id', '=', s.channel_id).executeTakeFirst();
    const client = await tx.selectFrom('clients').select('name').where('id', '=', s.client_id).executeTakeFirst();
    const timing = { frequency: s.frequency as ReportFrequency, day: s.day, hour: s.hour, minute: s.minute };
    const period = reportPeriod(timing, now);
    const id = newId();
    const payload: DeliveryPayload = {
      report: { scheduleId: s.id, scheduleName: s.name, clientId: s.client_id, recipients: parseJson(s.recipients, []), reports: parseJson(s.reports, []), period },
    };
    await insertPendingDelivery(tx, {
      id,
      channel: { id: s.channel_id, name: channel?.name ?? '(removed channel)', kind: channel?.kind ?? 'email' },
      clientId: s.client_id,
      ruleId: null,
      kind: 'report',
      subject: `${s.name}: ${client?.name ?? 'client'} BitLocker report, ${period.from.slice(0, 10)} to ${period.to.slice(0, 10)}`,
      payload,
      eventCount: 0,
      now,
    });
    return id;
  }

  /** 2. New outbox events: deduplicated, matched to rules, one item per event and channel. */
  async function route(): Promise<number> {
    let total = 0;
    for (;;) {
      const n = await db.transaction().execute(async (tx) => {
        const now = clock.now();
        const q = tx.selectFrom('notification_outbox').selectAll().where('state', '=', 'new').orderBy('created_at').limit(500);
        const events = await (isPg(tx) ? q.forUpdate().skipLocked() : q).execute();
        if (!events.length) return 0;
        const rules = await tx.selectFrom('notification_rules').selectAll().where('enabled', '=', 1).execute();
        const links = rules.length
          ? await tx
              .selectFrom('notification_rule_channels as rc')
              .innerJoin('notification_channels as c', 'c.id', 'rc.channel_id')
              .select(['rc.rule_id', 'c.id', 'c.client_id'])
              .where('c.enabled', '=', 1)
              .execute()
          : [];
        const ruleTypes = new Map(rules.map((r) => [r.id, new Set(parseJson<string[]>(r.event_types, []))]));

        // Deduplication: a key seen (and routed) within the window, or earlier in this batch.
        const seen = new Set<string>();
        const keys = [...new Set(events.map((e) => e.dedup_key).filter((k): k is string => !!k))];
        const since = addMs(now, -opts.dedupWindowMinutes * 60_000);
        for (const part of chunks(keys, 500)) {
          const rows = await tx.selectFrom('notification_outbox').select(['client_id', 'dedup_key']).where('dedup_key', 'in', part).where('state', '=', 'routed').where('created_at', '>=', since).execute();
          for (const r of rows) seen.add(`${r.client_id}|${r.dedup_key}`);
        }
        const states: Record<'routed' | 'duplicate' | 'unmatched', string[]> = { routed: [], duplicate: [], unmatched: [] };
        const items: { id: string; outbox_id: string; rule_id: string; channel_id: string; client_id: string | null; due_at: string; delivery_id: null; created_at: string }[] = [];
        for (const e of events) {
          if (e.dedup_key) {
            const k = `${e.client_id}|${e.dedup_key}`;
            if (seen.has(k)) {
              states.duplicate.push(e.id);
              continue;
            }
            seen.add(k);
          }
          const channels = new Set<string>();
          for (const r of rules) {
            if (r.client_id !== null && r.client_id !== e.client_id) continue;
            if (!ruleTypes.get(r.id)!.has(e.event_type)) continue;
            for (const l of links) {
              if (l.rule_id !== r.id || channels.has(l.id)) continue;
              // A client's channel never receives another client's (or an MSP-wide) event.
              if (l.client_id !== null && l.client_id !== e.client_id) continue;
              channels.add(l.id);
              items.push({
                id: newId(),
                outbox_id: e.id,
                rule_id: r.id,
                channel_id: l.id,
                client_id: e.client_id,
                // The gathering window and digest hour count from when the event was written, not routed.
                due_at: itemDueAt(e.created_at, r.digest as DigestMode, { gatherSeconds: opts.gatherSeconds, dailyHourUtc: opts.dailyDigestHourUtc }),
                delivery_id: null,
                created_at: now,
              });
            }
          }
          // Only a routed event counts for deduplication: one nobody was told about does not hide the next.
          (channels.size ? states.routed : states.unmatched).push(e.id);
        }
        for (const part of chunks(items, 100)) await tx.insertInto('notification_items').values(part).execute();
        for (const [state, ids] of Object.entries(states)) {
          for (const part of chunks(ids, 500)) await tx.updateTable('notification_outbox').set({ state, routed_at: now }).where('id', 'in', part).execute();
        }
        return events.length;
      });
      total += n;
      if (n < 500) return total;
    }
  }

  /** 3. Due items become deliveries: one message per event, or one digest per rule and channel. */
  async function gather(): Promise<number> {
    return db.transaction().execute(async (tx) => {
      const now = clock.now();
      // Groups (rule, channel) with something due; for immediate rules everything pending so far
      // joins (a burst is not split by a worker pass that happens to run in its middle).
      const dueGroups = await tx.selectFrom('notification_items').select(['rule_id', 'channel_id']).distinct().where('delivery_id', 'is', null).where('due_at', '<=', now).limit(200).execute();
      let made = 0;
      for (const g of dueGroups) {
        const rule = await tx.selectFrom('notification_rules').select(['digest', 'client_id']).where('id', '=', g.rule_id).executeTakeFirst();
        const channel = await tx.selectFrom('notification_channels').select(['id', 'name', 'kind', 'enabled']).where('id', '=', g.channel_id).executeTakeFirst();
        const mode = (rule?.digest ?? 'none') as DigestMode;
        const horizon = mode === 'none' ? addMs(now, opts.gatherSeconds * 1000) : now;
        const q = tx.selectFrom('notification_items').select(['id', 'outbox_id', 'client_id']).where('rule_id', '=', g.rule_id).where('channel_id', '=', g.channel_id).where('delivery_id', 'is', null).where('due_at', '<=', horizon).orderBy('created_at').limit(20_000);
        const items = await (isPg(tx) ? q.forUpdate().skipLocked() : q).execute();
        if (!items.length) continue;
        if (!rule || !channel || !channel.enabled) {
          // The rule or channel was removed or switched off while the items waited: nothing to send.
          for (const part of chunks(items.map((i) => i.id), 500)) await tx.deleteFrom('notification_items').where('id', 'in', part).execute();
          continue;
        }
        const events = await eventViews(tx, await outboxRows(tx, items.map((i) => i.outbox_id)));
        const single = mode === 'none' && items.length <= opts.digestThreshold;
        const groups = single ? items.map((i, n) => ({ items: [i], events: [events[n]!] })) : [{ items, events }];
        for (const grp of groups) {
          const id = newId();
          const clients = [...new Set(grp.items.map((i) => i.client_id))];
          const subject = single ? grp.events[0]!.subject : digestSubject(grp.events);
          await insertPendingDelivery(tx, {
            id,
            channel,
            clientId: clients.length === 1 ? clients[0]! : null,
            ruleId: g.rule_id,
            kind: single ? 'event' : 'digest',
            subject,
            payload: { events: grp.items.map((i) => i.outbox_id) } satisfies DeliveryPayload,
            eventCount: grp.items.length,
            now,
          });
          for (const part of chunks(grp.items.map((i) => i.id), 500)) await tx.updateTable('notification_items').set({ delivery_id: id }).where('id', 'in', part).execute();
          made++;
        }
      }
      return made;
    });
  }

  /** Records one attempt and what follows from it (sent, retry later, or failed for good). */
  async function recordAttempt(d: NotificationDeliveriesTable, r: SendResult, durationMs: number) {
    const now = clock.now();
    const attempt = d.attempts + 1;
    const final = r.ok || !r.retryable || attempt >= d.max_attempts;
    const status = r.ok ? 'sent' : final ? 'failed' : 'pending';
    await db.transaction().execute(async (tx) => {
      await tx
        .insertInto('notification_attempts')
        .values({ id: newId(), delivery_id: d.id, attempt, at: now, outcome: r.ok ? 'sent' : 'failed', response_code: r.code, summary: r.summary.slice(0, 300), error: r.error?.slice(0, 500) ?? null, duration_ms: durationMs })
        .execute();
      await tx
        .updateTable('notification_deliveries')
        .set({
          attempts: attempt,
          status,
          next_attempt_at: final ? null : addMs(now, backoffMs(attempt, { baseMs: opts.backoffBaseMs, capMs: opts.backoffCapMs }, opts.random)),
          last_error: r.ok ? null : (r.error ?? 'not sent'),
          sent_at: r.ok ? now : null,
          locked_by: null,
          locked_until: null,
        })
        .where('id', '=', d.id)
        .execute();
    });
    return status;
  }

  async function attempt(d: NotificationDeliveriesTable, channel: NotificationChannelsTable | undefined): Promise<{ status: string; result: SendResult }> {
    const started = Date.now();
    let result: SendResult;
    if (!channel) result = { ok: false, code: null, summary: 'not sent', error: 'the channel was removed', retryable: false };
    else if (!channel.enabled && d.kind !== 'test') result = { ok: false, code: null, summary: 'not sent', error: 'the channel is switched off', retryable: false };
    else {
      try {
        const secrets = await openSecrets(db, channel);
        const msg = await buildMessage(d);
        result = await sendThrough(channel.kind as ChannelKind, parseJson<ChannelConfig>(channel.config, { urlHint: '' }), secrets, msg, { timeoutMs: opts.timeoutMs, now: () => new Date(clock.now()) });
      } catch (e) {
        result =
          e instanceof DeliveryProblem
            ? { ok: false, code: null, summary: 'not sent', error: e.message, retryable: e.retryable }
            : { ok: false, code: null, summary: 'not sent', error: 'the message could not be prepared (the channel settings or the vault key did not open)', retryable: false };
      }
    }
    return { status: await recordAttempt(d, result, Date.now() - started), result };
  }

  /** 4. Sends due deliveries: claimed with a lease, channels in parallel, each channel in order. */
  async function sendDue(limit = 100): Promise<{ sent: number; retrying: number; failed: number }> {
    const stats = { sent: 0, retrying: 0, failed: 0 };
    const claimed = await db.transaction().execute(async (tx) => {
      const now = clock.now();
      const q = tx
        .selectFrom('notification_deliveries')
        .selectAll()
        .where('status', '=', 'pending')
        .where('next_attempt_at', '<=', now)
        .where((eb) => eb.or([eb('locked_until', 'is', null), eb('locked_until', '<', now)]))
        .orderBy('next_attempt_at')
        .limit(limit);
      const rows = await (isPg(tx) ? q.forUpdate().skipLocked() : q).execute();
      for (const part of chunks(rows.map((r) => r.id), 500)) {
        await tx.updateTable('notification_deliveries').set({ locked_by: owner, locked_until: addMs(now, opts.leaseMinutes * 60_000) }).where('id', 'in', part).execute();
      }
      return rows;
    });
    const byChannel = new Map<string, NotificationDeliveriesTable[]>();
    for (const d of claimed) byChannel.set(d.channel_id, [...(byChannel.get(d.channel_id) ?? []), d]);
    await pool([...byChannel.entries()], opts.channelConcurrency, async ([channelId, list]) => {
      const channel = await db.selectFrom('notification_channels').selectAll().where('id', '=', channelId).executeTakeFirst();
      for (let i = 0; i < list.length; i++) {
        const { status, result } = await attempt(list[i]!, channel);
        if (status === 'sent') stats.sent++;
        else if (status === 'failed') stats.failed++;
        else stats.retrying++;
        if (!result.ok && result.retryable && i + 1 < list.length) {
          // The endpoint is down: the rest of this channel's messages wait for the next pass
          // instead of each waiting out a timeout now. Other channels are not held up.
          const rest = list.slice(i + 1).map((d) => d.id);
          await db.updateTable('notification_deliveries').set({ locked_by: null, locked_until: null }).where('id', 'in', rest).where('locked_by', '=', owner).execute();
          break;
        }
      }
    });
    return stats;
  }

  /**
   * 5. Housekeeping: outbox rows, items and the delivery log do not grow forever. Events are kept
   * 30 days (far beyond any retry or digest), the delivery log 90 days.
   */
  async function prune(): Promise<void> {
    const now = clock.now();
    const days = (d: number) => addMs(now, -d * 86_400_000);
    await db.deleteFrom('notification_items').where('delivery_id', 'is not', null).where('created_at', '<', days(30)).execute();
    await db.deleteFrom('notification_outbox').where('state', '!=', 'new').where('created_at', '<', days(30)).execute();
    await db.deleteFrom('notification_deliveries').where('status', '!=', 'pending').where('created_at', '<', days(90)).execute();
  }
  let lastPrune = 0;

  // ---------------------------------------------------------------- the service
  const service = {
    notifier,

    /** The reports module's renderer, plugged in by the container when it exists. */
    useReportRenderer(r: ReportRenderer | undefined) {
      renderer = r;
    },

    /** One pass of the delivery worker (the 'notifications' scheduler task; tests call it step by step). */
    async runOnce(): Promise<{ reports: number; routed: number; deliveriesCreated: number; sent: number; retrying: number; failed: number }> {
      const reports = await queueDueReports();
      const routed = await route();
      const deliveriesCreated = await gather();
      const s = await sendDue();
      // At most hourly (by the vault clock): the deletes scan by date.
      if (Date.parse(clock.now()) - lastPrune > 3600_000) {
        lastPrune = Date.parse(clock.now());
        await prune();
      }
      return { reports, routed, deliveriesCreated, ...s };
    },

    // ------------------------------------------------------------ channels
    async listChannels(actor: Actor, filter: { clientId?: string } = {}): Promise<ChannelView[]> {
      mayRead(actor, filter.clientId);
      let q = scoped(db.selectFrom('notification_channels').selectAll(), actor, 'client_id').orderBy('created_at');
      if (filter.clientId) q = q.where('client_id', '=', filter.clientId);
      const rows = await q.execute();
      return Promise.all(rows.map((c) => channelView(db, c)));
    },

    async createChannel(actor: Actor, input: ChannelCreate): Promise<{ channel: ChannelView; signingSecret?: string }> {
      const name = checkName(input.name, 'Channel');
      return db.transaction().execute(async (tx) => {
        const clientId = await mayManage(tx, actor, input.clientId);
        // A webhook without a secret of the admin's choosing gets a generated one, shown once.
        const generated = input.kind === 'webhook' && !input.signingSecret ? newWebhookSecret() : undefined;
        const built = buildChannel({ ...input, ...(generated ? { signingSecret: generated } : {}) });
        const id = newId();
        const now = clock.now();
        const row: NotificationChannelsTable = {
          id,
          client_id: clientId,
          name,
          kind: input.kind,
          config: JSON.stringify(built.config),
          ...(await sealSecrets(tx, clientId, id, built.secrets)),
          enabled: input.enabled === false ? 0 : 1,
          created_by: actor.id,
          created_at: now,
          updated_at: now,
        };
        await tx.insertInto('notification_channels').values(row).execute();
        await audit.record(tx, actor, { action: 'notification.channel.create', outcome: 'success', clientId, targetType: 'notification_channel', targetId: id, details: { name, kind: input.kind } });
        return { channel: await channelView(tx, row, built.secrets), ...(generated ? { signingSecret: generated } : {}) };
      });
    },

    async updateChannel(actor: Actor, id: string, patch: ChannelPatch): Promise<ChannelView> {
      return db.transaction().execute(async (tx) => {
        requirePermission(actor, 'client:manage');
        const c = await loadChannel(tx, actor, id);
        await mayManage(tx, actor, c.client_id);
        const kind = c.kind as ChannelKind;
        const previous = { config: parseJson<ChannelConfig>(c.config, { urlHint: '' }), secrets: await openSecrets(tx, c) };
        const built = buildChannel({ ...patch, kind } as ChannelInput, previous);
        const changed = Object.keys(patch).filter((k) => (patch as Record<string, unknown>)[k] !== undefined);
        const row: NotificationChannelsTable = {
          ...c,
          name: patch.name !== undefined ? checkName(patch.name, 'Channel') : c.name,
          enabled: patch.enabled === undefined ? c.enabled : patch.enabled ? 1 : 0,
          config: JSON.stringify(built.config),
          ...(await sealSecrets(tx, c.client_id, c.id, built.secrets)),
          updated_at: clock.now(),
        };
        await tx.updateTable('notification_channels').set(row).where('id', '=', c.id).execute();
        await audit.record(tx, actor, { action: 'notification.channel.update', outcome: 'success', clientId: c.client_id, targetType: 'notification_channel', targetId: c.id, details: { name: row.name, changed } });
        return channelView(tx, row, built.secrets);
      });
    },

    async deleteChannel(actor: Actor, id: string): Promise<void> {
      await db.transaction().execute(async (tx) => {
        requirePermission(actor, 'client:manage');
        const c = await loadChannel(tx, actor, id);
        await mayManage(tx, actor, c.client_id);
        await tx.deleteFrom('notification_items').where('channel_id', '=', c.id).where('delivery_id', 'is', null).execute();
        await tx.deleteFrom('notification_channels').where('id', '=', c.id).execute();
        await audit.record(tx, actor, { action: 'notification.channel.delete', outcome: 'success', clientId: c.client_id, targetType: 'notification_channel', targetId: c.id, details: { name: c.name, kind: c.kind } });
      });
    },

    /** "Send test": one message now, outside the queue; the attempt is in the delivery log. */
    async testChannel(actor: Actor, id: string): Promise<{ ok: boolean; deliveryId: string; responseCode: string | null; summary: string; error: string | null }> {
      const { channel, delivery } = await db.transaction().execute(async (tx) => {
        requirePermission(actor, 'client:manage');
        const c = await loadChannel(tx, actor, id);
        await mayManage(tx, actor, c.client_id);
        const now = clock.now();
        const d: NotificationDeliveriesTable = {
          id: newId(),
          channel_id: c.id,
          channel_name: c.name,
          channel_kind: c.kind,
          client_id: c.client_id,
          rule_id: null,
          kind: 'test',
          subject: `Test message for channel "${c.name}"`.slice(0, 500),
          payload: JSON.stringify({ test: { by: actor.name } } satisfies DeliveryPayload),
          event_count: 0,
          status: 'pending',
          attempts: 0,
          // A test is tried once, now: the person is waiting for the answer.
          max_attempts: 1,
          next_attempt_at: null,
          locked_by: owner,
          locked_until: addMs(now, opts.leaseMinutes * 60_000),
          last_error: null,
          created_at: now,
          sent_at: null,
        };
        await tx.insertInto('notification_deliveries').values(d).execute();
        await audit.record(tx, actor, { action: 'notification.channel.test', outcome: 'success', clientId: c.client_id, targetType: 'notification_channel', targetId: c.id, details: { name: c.name, deliveryId: d.id } });
        return { channel: c, delivery: d };
      });
      const { result } = await attempt(delivery, channel);
      return { ok: result.ok, deliveryId: delivery.id, responseCode: result.code, summary: result.summary, error: result.error };
    },

    // ------------------------------------------------------------ rules
    async listRules(actor: Actor, filter: { clientId?: string } = {}): Promise<RuleView[]> {
      mayRead(actor, filter.clientId);
      let q = scoped(db.selectFrom('notification_rules').selectAll(), actor, 'client_id').orderBy('created_at');
      if (filter.clientId) q = q.where('client_id', '=', filter.clientId);
      const rules = await q.execute();
      const links = rules.length ? await db.selectFrom('notification_rule_channels').selectAll().where('rule_id', 'in', rules.map((r) => r.id)).execute() : [];
      return rules.map((r) => ruleView(r, links.filter((l) => l.rule_id === r.id).map((l) => l.channel_id)));
    },

    async createRule(actor: Actor, input: RuleInput): Promise<RuleView> {
      const name = checkName(input.name, 'Rule');
      const eventTypes = checkEventTypes(input.eventTypes);
      const digest = input.digest ?? 'none';
      if (!DIGEST_MODES.includes(digest)) throw badRequest('digest must be none, hourly or daily.', { field: 'digest' });
      return db.transaction().execute(async (tx) => {
        const clientId = await mayManage(tx, actor, input.clientId);
        const channelIds = await checkRuleChannels(tx, actor, clientId, input.channelIds);
        const now = clock.now();
        const row: NotificationRulesTable = { id: newId(), client_id: clientId, name, event_types: JSON.stringify(eventTypes), digest, enabled: input.enabled === false ? 0 : 1, created_by: actor.id, created_at: now, updated_at: now };
        await tx.insertInto('notification_rules').values(row).execute();
        await tx.insertInto('notification_rule_channels').values(channelIds.map((channel_id) => ({ rule_id: row.id, channel_id }))).execute();
        await audit.record(tx, actor, { action: 'notification.rule.create', outcome: 'success', clientId, targetType: 'notification_rule', targetId: row.id, details: { name, eventTypes, channelIds, digest } });
        return ruleView(row, channelIds);
      });
    },

    async updateRule(actor: Actor, id: string, patch: RulePatch): Promise<RuleView> {
      return db.transaction().execute(async (tx) => {
        requirePermission(actor, 'client:manage');
        const r = await loadRule(tx, actor, id);
        await mayManage(tx, actor, r.client_id);
        const digest = patch.digest ?? (r.digest as DigestMode);
        if (!DIGEST_MODES.includes(digest)) throw badRequest('digest must be none, hourly or daily.', { field: 'digest' });
        const row: NotificationRulesTable = {
          ...r,
          name: patch.name !== undefined ? checkName(patch.name, 'Rule') : r.name,
          event_types: patch.eventTypes ? JSON.stringify(checkEventTypes(patch.eventTypes)) : r.event_types,
          digest,
          enabled: patch.enabled === undefined ? r.enabled : patch.enabled ? 1 : 0,
          updated_at: clock.now(),
        };
        await tx.updateTable('notification_rules').set(row).where('id', '=', r.id).execute();
        let channelIds = (await tx.selectFrom('notification_rule_channels').select('channel_id').where('rule_id', '=', r.id).execute()).map((l) => l.channel_id);
        if (patch.channelIds) {
          channelIds = await checkRuleChannels(tx, actor, r.client_id, patch.channelIds);
          await tx.deleteFrom('notification_rule_channels').where('rule_id', '=', r.id).execute();
          await tx.insertInto('notification_rule_channels').values(channelIds.map((channel_id) => ({ rule_id: r.id, channel_id }))).execute();
        }
        const changed = Object.keys(patch).filter((k) => (patch as Record<string, unknown>)[k] !== undefined);
        await audit.record(tx, actor, { action: 'notification.rule.update', outcome: 'success', clientId: r.client_id, targetType: 'notification_rule', targetId: r.id, details: { name: row.name, changed } });
        return ruleView(row, channelIds);
      });
    },

    async deleteRule(actor: Actor, id: string): Promise<void> {
      await db.transaction().execute(async (tx) => {
        requirePermission(actor, 'client:manage');
        const r = await loadRule(tx, actor, id);
        await mayManage(tx, actor, r.client_id);
        await tx.deleteFrom('notification_items').where('rule_id', '=', r.id).where('delivery_id', 'is', null).execute();
        await tx.deleteFrom('notification_rules').where('id', '=', r.id).execute();
        await audit.record(tx, actor, { action: 'notification.rule.delete', outcome: 'success', clientId: r.client_id, targetType: 'notification_rule', targetId: r.id, details: { name: r.name } });
      });
    },

    // ------------------------------------------------------------ delivery log
    async listDeliveries(actor: Actor, filter: { clientId?: string; channelId?: string; status?: string; limit?: number } = {}): Promise<DeliveryView[]> {
      requirePermission(actor, 'audit:read', filter.clientId);
      let q = scoped(db.selectFrom('notification_deliveries').selectAll(), actor, 'client_id').orderBy('created_at', 'desc').orderBy('id').limit(Math.min(Math.max(filter.limit ?? 100, 1), 1000));
      if (filter.clientId) q = q.where('client_id', '=', filter.clientId);
      if (filter.channelId) q = q.where('channel_id', '=', filter.channelId);
      if (filter.status) q = q.where('status', '=', filter.status);
      return (await q.execute()).map(deliveryView);
    },

    async getDelivery(actor: Actor, id: string): Promise<DeliveryView & { attemptLog: AttemptView[] }> {
      requirePermission(actor, 'audit:read');
      const d = UUID.test(id) ? await scoped(db.selectFrom('notification_deliveries').selectAll().where('id', '=', id), actor, 'client_id').executeTakeFirst() : undefined;
      if (!d) throw notFound(`No delivery with id ${id.slice(0, 60)}.`);
      const attempts = await db.selectFrom('notification_attempts').selectAll().where('delivery_id', '=', d.id).orderBy('attempt').execute();
      return {
        ...deliveryView(d),
        attemptLog: attempts.map((a) => ({ attempt: a.attempt, at: a.at, outcome: a.outcome, responseCode: a.response_code, summary: a.summary, error: a.error, durationMs: a.duration_ms })),
      };
    },

    // ------------------------------------------------------------ scheduled reports
    async listSchedules(actor: Actor, filter: { clientId?: string } = {}): Promise<ScheduleView[]> {
      mayRead(actor, filter.clientId);
      let q = scoped(db.selectFrom('report_schedules').selectAll(), actor, 'client_id').orderBy('created_at');
      if (filter.clientId) q = q.where('client_id', '=', filter.clientId);
      return (await q.execute()).map(scheduleView);
    },

    async createSchedule(actor: Actor, input: ScheduleInput): Promise<ScheduleView> {
      const name = checkName(input.name, 'Schedule');
      const recipients = checkAddresses(input.recipients, 'recipients');
      const reports = checkReports(input.reports);
      const timing = { frequency: input.frequency ?? 'monthly', day: input.day ?? (input.frequency === 'daily' ? null : 1), hour: input.hour ?? 7, minute: input.minute ?? 0 };
      if (timing.frequency === 'daily') timing.day = null;
      const problem = reportTimingProblem(timing);
      if (problem) throw badRequest(problem, { field: 'day' });
      return db.transaction().execute(async (tx) => {
        const clientId = (await mayManage(tx, actor, input.clientId))!;
        const channel = await loadChannel(tx, actor, input.channelId);
        if (channel.kind !== 'email') throw badRequest('A report schedule needs an e-mail channel (its SMTP settings send the report).', { field: 'channelId' });
        if (channel.client_id !== null && channel.client_id !== clientId) throw badRequest('That e-mail channel belongs to another client.', { field: 'channelId' });
        const now = clock.now();
        const row: ReportSchedulesTable = {
          id: newId(),
          client_id: clientId,
          name,
          channel_id: channel.id,
          recipients: JSON.stringify(recipients),
          reports: JSON.stringify(reports),
          frequency: timing.frequency,
          day: timing.day,
          hour: timing.hour,
          minute: timing.minute,
          enabled: input.enabled === false ? 0 : 1,
          next_run_at: nextReportRun(timing, now),
          last_run_at: null,
          last_delivery_id: null,
          created_by: actor.id,
          created_at: now,
          updated_at: now,
        };
        await tx.insertInto('report_schedules').values(row).execute();
        await audit.record(tx, actor, { action: 'report_schedule.create', outcome: 'success', clientId, targetType: 'report_schedule', targetId: row.id, details: { name, recipients, reports, ...timing } });
        return scheduleView(row);
      });
    },

    async updateSchedule(actor: Actor, id: string, patch: SchedulePatch): Promise<ScheduleView> {
      return db.transaction().execute(async (tx) => {
        requirePermission(actor, 'client:manage');
        const s = await loadSchedule(tx, actor, id);
        await mayManage(tx, actor, s.client_id);
        const frequency = patch.frequency ?? (s.frequency as ReportFrequency);
        const timing = {
          frequency,
          day: frequency === 'daily' ? null : patch.day !== undefined ? patch.day : frequency === s.frequency ? s.day : 1,
          hour: patch.hour ?? s.hour,
          minute: patch.minute ?? s.minute,
        };
        const problem = reportTimingProblem(timing);
        if (problem) throw badRequest(problem, { field: 'day' });
        let channelId = s.channel_id;
        if (patch.channelId) {
          const channel = await loadChannel(tx, actor, patch.channelId);
          if (channel.kind !== 'email') throw badRequest('A report schedule needs an e-mail channel.', { field: 'channelId' });
          if (channel.client_id !== null && channel.client_id !== s.client_id) throw badRequest('That e-mail channel belongs to another client.', { field: 'channelId' });
          channelId = channel.id;
        }
        const now = clock.now();
        const row: ReportSchedulesTable = {
          ...s,
          name: patch.name !== undefined ? checkName(patch.name, 'Schedule') : s.name,
          channel_id: channelId,
          recipients: patch.recipients ? JSON.stringify(checkAddresses(patch.recipients, 'recipients')) : s.recipients,
          reports: patch.reports ? JSON.stringify(checkReports(patch.reports)) : s.reports,
          ...timing,
          enabled: patch.enabled === undefined ? s.enabled : patch.enabled ? 1 : 0,
          next_run_at: nextReportRun(timing, now),
          updated_at: now,
        };
        await tx.updateTable('report_schedules').set(row).where('id', '=', s.id).execute();
        const changed = Object.keys(patch).filter((k) => (patch as Record<string, unknown>)[k] !== undefined);
        await audit.record(tx, actor, { action: 'report_schedule.update', outcome: 'success', clientId: s.client_id, targetType: 'report_schedule', targetId: s.id, details: { name: row.name, changed } });
        return scheduleView(row);
      });
    },

    async deleteSchedule(actor: Actor, id: string): Promise<void> {
      await db.transaction().execute(async (tx) => {
        requirePermission(actor, 'client:manage');
        const s = await loadSchedule(tx, actor, id);
        await mayManage(tx, actor, s.client_id);
        await tx.deleteFrom('report_schedules').where('id', '=', s.id).execute();
        await audit.record(tx, actor, { action: 'report_schedule.delete', outcome: 'success', clientId: s.client_id, targetType: 'report_schedule', targetId: s.id, details: { name: s.name } });
      });
    },

    /** "Send now": queues the schedule's report e-mail at once (the worker renders and sends it). */
    async runScheduleNow(actor: Actor, id: string): Promise<DeliveryView> {
      return db.transaction().execute(async (tx) => {
        requirePermission(actor, 'client:manage');
        const s = await loadSchedule(tx, actor, id);
        await mayManage(tx, actor, s.client_id);
        const now = clock.now();
        const deliveryId = await insertReportDelivery(tx, s, now);
        await tx.updateTable('report_schedules').set({ last_delivery_id: deliveryId }).where('id', '=', s.id).execute();
        await audit.record(tx, actor, { action: 'report_schedule.run', outcome: 'success', clientId: s.client_id, targetType: 'report_schedule', targetId: s.id, details: { name: s.name, deliveryId } });
        return deliveryView((await tx.selectFrom('notification_deliveries').selectAll().where('id', '=', deliveryId).executeTakeFirstOrThrow()));
      });
    },
  };
  return service;
}
export type NotificationsService = ReturnType<typeof createNotificationsService>;
