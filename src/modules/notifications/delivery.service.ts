import { PassThrough } from 'node:stream';
import type { Executor } from '../../db/database.js';
import type {
  NotificationChannelsTable,
  NotificationDeliveriesTable,
  NotificationItemsTable,
  NotificationOutboxTable,
  ReportSchedulesTable,
} from '../../db/schema.js';
import type { Transactions } from '../../db/transactions.js';
import { clientScope, requirePermission, type Actor } from '../authz/authz.js';
import type { Clock } from '../../lib/clock.js';
import type { EgressPolicy } from '../../integrations/egress.js';
import { newId } from '../../lib/ids.js';
import { notFound } from '../../lib/errors.js';
import { backoffMs, itemDueAt, nextReportRun, reportPeriod, type DigestMode, type ReportFrequency } from '../../domain/notification-timing.js';
import type { NotificationEventType } from './notifier.js';
import { sendThrough, type ChannelConfig, type ChannelKind, type OutgoingMessage, type SendResult } from './channels.js';
import { EVENT_LABELS, digestSubject, renderMessage, type EventView, type MessageKind } from './messages.js';
import { createChannelSecrets, type ChannelKeyring } from './channel-secrets.js';
import type { ChannelsRepo } from './channels.repo.js';
import type { DeliveryRepo } from './delivery.repo.js';
import type { OutboxRepo, OutboxState } from './outbox.repo.js';
import type { RulesRepo } from './rules.repo.js';
import type { SchedulesRepo } from './schedules.repo.js';
import {
  addMs,
  DEFAULT_NOTIFICATION_OPTIONS,
  deliveryView,
  parseJson,
  pool,
  type AttemptView,
  type DeliveryPayload,
  type DeliveryView,
  type NotificationOptions,
  type ReportRenderer,
} from './notification-types.js';

type Deps = {
  tx: Transactions;
  repos: { deliveries: DeliveryRepo; outbox: OutboxRepo; rules: RulesRepo; channels: ChannelsRepo; schedules: SchedulesRepo };
  keyring: ChannelKeyring;
  clock: Clock;
  /** Names this process in delivery leases (several Keywarden processes may share PostgreSQL). */
  owner: string;
  options?: Partial<NotificationOptions>;
  /** Every webhook, Teams, Slack and SMTP connection goes to an address this policy checked. */
  egress: EgressPolicy;
};

class DeliveryProblem extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
  ) {
    super(message);
  }
}

/**
 * The delivery worker (route outbox events to rules, gather digests, send with retries and
 * backoff), scheduled reports becoming deliveries, and the delivery log.
 *
 * Worker safety with several processes on one PostgreSQL: every step claims its rows with
 * FOR UPDATE SKIP LOCKED (SQLite serialises writers with BEGIN IMMEDIATE), and a delivery being
 * sent carries a lease (locked_by / locked_until) that expires if its process dies mid-send.
 */
export function createDeliveryService({ tx, repos, keyring, clock, owner, options, egress }: Deps) {
  const opts: NotificationOptions = { ...DEFAULT_NOTIFICATION_OPTIONS, ...options };
  const { deliveries, outbox, rules, channels, schedules } = repos;
  const secrets = createChannelSecrets(keyring);
  let renderer: ReportRenderer | undefined;

  // ---------------------------------------------------------------- building messages
  async function eventViews(exec: Executor, rows: NotificationOutboxTable[]): Promise<EventView[]> {
    const clients = await deliveries.clientNames(exec, [...new Set(rows.map((r) => r.client_id).filter((x): x is string => !!x))]);
    const devices = await deliveries.deviceNames(exec, [...new Set(rows.map((r) => r.device_id).filter((x): x is string => !!x))]);
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

  async function buildMessage(d: NotificationDeliveriesTable): Promise<OutgoingMessage> {
    const payload = parseJson<DeliveryPayload>(d.payload, {});
    const sentAt = clock.now();
    if (payload.test) {
      const event: EventView = {
        id: d.id,
        type: 'test',
        label: 'Test message',
        clientId: d.client_id,
        clientName: d.client_id ? await deliveries.clientName(tx.reader, d.client_id) : null,
        deviceId: null,
        deviceName: null,
        subject: d.subject,
        details: { requestedBy: payload.test.by, channel: d.channel_name },
        occurredAt: d.created_at,
      };
      return renderMessage({
        id: d.id,
        kind: 'test',
        events: [event],
        sentAt,
        intro: 'This is a test of a Keywarden notification channel. If you can read it, the channel works.',
      });
    }
    if (payload.report) {
      const r = payload.report;
      if (!renderer) throw new DeliveryProblem('reports are not available in this Keywarden build (no report renderer)', false);
      const actor: Actor = {
        type: 'system',
        id: `system:report-schedule:${r.scheduleId}`,
        name: `Scheduled report (${r.scheduleName})`.slice(0, 200),
        role: 'owner',
        clients: [r.clientId],
      };
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
          meta = await renderer.render(actor, { report: rep.report, clientId: r.clientId, format: rep.format, period: r.period }, sink);
          if (!sink.writableEnded) sink.end();
          await done;
        } catch (e) {
          throw new DeliveryProblem(`the ${rep.report} report could not be produced (${(e as Error).message.slice(0, 200)})`, true);
        }
        attachments.push({ filename: meta.filename, contentType: meta.contentType, content: Buffer.concat(parts) });
      }
      const client = (await deliveries.clientName(tx.reader, r.clientId)) ?? 'your organisation';
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
    const events = await eventViews(tx.reader, await outbox.byIds(tx.reader, payload.events ?? []));
    return renderMessage({ id: d.id, kind: d.kind as MessageKind, events, sentAt });
  }

  // ---------------------------------------------------------------- queueing deliveries
  /** A new delivery, waiting for its first attempt (reports, single events and digests alike). */
  async function insertPendingDelivery(
    exec: Executor,
    d: {
      id: string;
      channel: { id: string; name: string; kind: string };
      clientId: string | null;
      ruleId: string | null;
      kind: 'report' | 'event' | 'digest';
      subject: string;
      payload: DeliveryPayload;
      eventCount: number;
      now: string;
    },
  ): Promise<void> {
    await deliveries.insert(exec, {
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
    });
  }

  /** A schedule's report e-mail, queued for the worker to render and send; returns the delivery id. */
  async function queueReport(exec: Executor, s: ReportSchedulesTable, now: string): Promise<string> {
    const channel = await channels.findById(exec, s.channel_id);
    const clientName = await deliveries.clientName(exec, s.client_id);
    const timing = { frequency: s.frequency as ReportFrequency, day: s.day, hour: s.hour, minute: s.minute };
    const period = reportPeriod(timing, now);
    const id = newId();
    const payload: DeliveryPayload = {
      report: {
        scheduleId: s.id,
        scheduleName: s.name,
        clientId: s.client_id,
        recipients: parseJson(s.recipients, []),
        reports: parseJson(s.reports, []),
        period,
      },
    };
    await insertPendingDelivery(exec, {
      id,
      channel: { id: s.channel_id, name: channel?.name ?? '(removed channel)', kind: channel?.kind ?? 'email' },
      clientId: s.client_id,
      ruleId: null,
      kind: 'report',
      subject: `${s.name}: ${clientName ?? 'client'} BitLocker report, ${period.from.slice(0, 10)} to ${period.to.slice(0, 10)}`,
      payload,
      eventCount: 0,
      now,
    });
    return id;
  }

  /** A "send test" delivery: tried once, now, by this process (it holds the lease). */
  async function queueTest(exec: Executor, c: NotificationChannelsTable, requestedBy: string): Promise<NotificationDeliveriesTable> {
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
      payload: JSON.stringify({ test: { by: requestedBy } } satisfies DeliveryPayload),
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
    await deliveries.insert(exec, d);
    return d;
  }

  // ---------------------------------------------------------------- worker steps
  /** 1. Scheduled reports that are due become report deliveries. */
  async function queueDueReports(): Promise<number> {
    return tx.run(async (t) => {
      const now = clock.now();
      const due = await schedules.claimDue(t, now, 20);
      for (const s of due) {
        const deliveryId = await queueReport(t, s, now);
        const timing = { frequency: s.frequency as ReportFrequency, day: s.day, hour: s.hour, minute: s.minute };
        await schedules.update(t, s.id, { next_run_at: nextReportRun(timing, now), last_run_at: now, last_delivery_id: deliveryId });
      }
      return due.length;
    });
  }

  /** 2. New outbox events: deduplicated, matched to rules, one item per event and channel. */
  async function route(): Promise<number> {
    let total = 0;
    for (;;) {
      const n = await tx.run(async (t) => {
        const now = clock.now();
        const events = await outbox.claimNew(t, 500);
        if (!events.length) return 0;
        const enabled = await rules.enabled(t);
        const links = enabled.length ? await rules.enabledChannelLinks(t) : [];
        const ruleTypes = new Map(enabled.map((r) => [r.id, new Set(parseJson<string[]>(r.event_types, []))]));

        // Deduplication: a key seen (and routed) within the window, or earlier in this batch.
        const keys = [...new Set(events.map((e) => e.dedup_key).filter((k): k is string => !!k))];
        const seen = new Set(await outbox.routedKeysSince(t, keys, addMs(now, -opts.dedupWindowMinutes * 60_000)));
        const states: Record<Exclude<OutboxState, 'new'>, string[]> = { routed: [], duplicate: [], unmatched: [] };
        const items: NotificationItemsTable[] = [];
        for (const e of events) {
          if (e.dedup_key) {
            const k = `${e.client_id}|${e.dedup_key}`;
            if (seen.has(k)) {
              states.duplicate.push(e.id);
              continue;
            }
            seen.add(k);
          }
          const matched = new Set<string>();
          for (const r of enabled) {
            if (r.client_id !== null && r.client_id !== e.client_id) continue;
            if (!ruleTypes.get(r.id)!.has(e.event_type)) continue;
            for (const l of links) {
              if (l.rule_id !== r.id || matched.has(l.id)) continue;
              // A client's channel never receives another client's (or an MSP-wide) event.
              if (l.client_id !== null && l.client_id !== e.client_id) continue;
              matched.add(l.id);
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
          (matched.size ? states.routed : states.unmatched).push(e.id);
        }
        await deliveries.insertItems(t, items);
        for (const [state, ids] of Object.entries(states)) await outbox.setState(t, ids, state as OutboxState, now);
        return events.length;
      });
      total += n;
      if (n < 500) return total;
    }
  }

  /** 3. Due items become deliveries: one message per event, or one digest per rule and channel. */
  async function gather(): Promise<number> {
    return tx.run(async (t) => {
      const now = clock.now();
      // Groups (rule, channel) with something due; for immediate rules everything pending so far
      // joins (a burst is not split by a worker pass that happens to run in its middle).
      const dueGroups = await deliveries.dueGroups(t, now, 200);
      let made = 0;
      for (const g of dueGroups) {
        const rule = await rules.digestOf(t, g.rule_id);
        const channel = await channels.findById(t, g.channel_id);
        const mode = (rule?.digest ?? 'none') as DigestMode;
        const horizon = mode === 'none' ? addMs(now, opts.gatherSeconds * 1000) : now;
        const items = await deliveries.claimItems(t, g.rule_id, g.channel_id, horizon);
        if (!items.length) continue;
        if (!rule || !channel || !channel.enabled) {
          // The rule or channel was removed or switched off while the items waited: nothing to send.
          await deliveries.deleteItems(
            t,
            items.map((i) => i.id),
          );
          continue;
        }
        const events = await eventViews(
          t,
          await outbox.byIds(
            t,
            items.map((i) => i.outbox_id),
          ),
        );
        const single = mode === 'none' && items.length <= opts.digestThreshold;
        const groups = single ? items.map((i, n) => ({ items: [i], events: [events[n]!] })) : [{ items, events }];
        for (const grp of groups) {
          const id = newId();
          const clients = [...new Set(grp.items.map((i) => i.client_id))];
          const subject = single ? grp.events[0]!.subject : digestSubject(grp.events);
          await insertPendingDelivery(t, {
            id,
            channel: { id: channel.id, name: channel.name, kind: channel.kind },
            clientId: clients.length === 1 ? clients[0]! : null,
            ruleId: g.rule_id,
            kind: single ? 'event' : 'digest',
            subject,
            payload: { events: grp.items.map((i) => i.outbox_id) } satisfies DeliveryPayload,
            eventCount: grp.items.length,
            now,
          });
          await deliveries.assignItems(
            t,
            grp.items.map((i) => i.id),
            id,
          );
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
    await tx.run((t) =>
      deliveries.recordAttempt(
        t,
        {
          id: newId(),
          delivery_id: d.id,
          attempt,
          at: now,
          outcome: r.ok ? 'sent' : 'failed',
          response_code: r.code,
          summary: r.summary.slice(0, 300),
          error: r.error?.slice(0, 500) ?? null,
          duration_ms: durationMs,
        },
        {
          attempts: attempt,
          status,
          next_attempt_at: final ? null : addMs(now, backoffMs(attempt, { baseMs: opts.backoffBaseMs, capMs: opts.backoffCapMs }, opts.random)),
          last_error: r.ok ? null : (r.error ?? 'not sent'),
          sent_at: r.ok ? now : null,
        },
      ),
    );
    return status;
  }

  /** Sends one delivery through its channel now and records the attempt. */
  async function attempt(d: NotificationDeliveriesTable, channel: NotificationChannelsTable | undefined): Promise<{ status: string; result: SendResult }> {
    const started = Date.now();
    let result: SendResult;
    if (!channel) result = { ok: false, code: null, summary: 'not sent', error: 'the channel was removed', retryable: false };
    else if (!channel.enabled && d.kind !== 'test')
      result = { ok: false, code: null, summary: 'not sent', error: 'the channel is switched off', retryable: false };
    else {
      try {
        const opened = await secrets.open(tx.reader, channel);
        const msg = await buildMessage(d);
        result = await sendThrough(channel.kind as ChannelKind, parseJson<ChannelConfig>(channel.config, { urlHint: '' }), opened, msg, {
          timeoutMs: opts.timeoutMs,
          now: () => new Date(clock.now()),
          egress,
        });
      } catch (e) {
        result =
          e instanceof DeliveryProblem
            ? { ok: false, code: null, summary: 'not sent', error: e.message, retryable: e.retryable }
            : {
                ok: false,
                code: null,
                summary: 'not sent',
                error: 'the message could not be prepared (the channel settings or the vault key did not open)',
                retryable: false,
              };
      }
    }
    return { status: await recordAttempt(d, result, Date.now() - started), result };
  }

  /** 4. Sends due deliveries: claimed with a lease, channels in parallel, each channel in order. */
  async function sendDue(limit = 100): Promise<{ sent: number; retrying: number; failed: number }> {
    const stats = { sent: 0, retrying: 0, failed: 0 };
    const claimed = await tx.run((t) => {
      const now = clock.now();
      return deliveries.claimDue(t, now, limit, owner, addMs(now, opts.leaseMinutes * 60_000));
    });
    const byChannel = new Map<string, NotificationDeliveriesTable[]>();
    for (const d of claimed) byChannel.set(d.channel_id, [...(byChannel.get(d.channel_id) ?? []), d]);
    await pool([...byChannel.entries()], opts.channelConcurrency, async ([channelId, list]) => {
      const channel = await channels.findById(tx.reader, channelId);
      for (let i = 0; i < list.length; i++) {
        const { status, result } = await attempt(list[i]!, channel);
        if (status === 'sent') stats.sent++;
        else if (status === 'failed') stats.failed++;
        else stats.retrying++;
        if (!result.ok && result.retryable && i + 1 < list.length) {
          // The endpoint is down: the rest of this channel's messages wait for the next pass
          // instead of each waiting out a timeout now. Other channels are not held up.
          const rest = list.slice(i + 1).map((d) => d.id);
          await tx.run((t) => deliveries.release(t, rest, owner));
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
    await tx.run(async (t) => {
      await deliveries.pruneDeliveredItems(t, days(30));
      await outbox.pruneHandled(t, days(30));
      await deliveries.pruneFinishedDeliveries(t, days(90));
    });
  }
  let lastPrune = 0;

  return {
    /** The reports module's renderer, plugged in by the container when it exists. */
    useReportRenderer(r: ReportRenderer | undefined) {
      renderer = r;
    },

    queueReport,
    queueTest,
    attempt,

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

    // ------------------------------------------------------------ delivery log
    /** A delivery this module just wrote, as the API shows it. */
    async view(exec: Executor, id: string): Promise<DeliveryView> {
      const d = await deliveries.findById(exec, id);
      if (!d) throw notFound(`No delivery with id ${id.slice(0, 60)}.`);
      return deliveryView(d);
    },

    async listDeliveries(actor: Actor, filter: { clientId?: string; channelId?: string; status?: string; limit?: number } = {}): Promise<DeliveryView[]> {
      requirePermission(actor, 'audit:read', filter.clientId);
      const rows = await deliveries.list(tx.reader, clientScope(actor), { ...filter, limit: Math.min(Math.max(filter.limit ?? 100, 1), 1000) });
      return rows.map(deliveryView);
    },

    async getDelivery(actor: Actor, id: string): Promise<DeliveryView & { attemptLog: AttemptView[] }> {
      requirePermission(actor, 'audit:read');
      const d = await deliveries.findInScope(tx.reader, id, clientScope(actor));
      if (!d) throw notFound(`No delivery with id ${id.slice(0, 60)}.`);
      const attempts = await deliveries.attemptsOf(tx.reader, d.id);
      return {
        ...deliveryView(d),
        attemptLog: attempts.map((a) => ({
          attempt: a.attempt,
          at: a.at,
          outcome: a.outcome,
          responseCode: a.response_code,
          summary: a.summary,
          error: a.error,
          durationMs: a.duration_ms,
        })),
      };
    },
  };
}
export type DeliveryService = ReturnType<typeof createDeliveryService>;
