import type { Writable } from 'node:stream';
import type { NotificationDeliveriesTable, NotificationRulesTable, ReportSchedulesTable } from '../../db/schema.js';
import type { DigestMode, ReportFrequency } from '../../domain/notification-timing.js';
import { badRequest } from '../../lib/errors.js';
import type { Actor } from '../authz/authz.js';
import type { ChannelInput, ChannelKind } from './channels.js';
import type { NotificationEventType } from './notifier.js';

// ------------------------------------------------------------------------------------ options

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
  render(
    actor: Actor,
    req: { report: ReportName; clientId?: string; format: 'csv' | 'pdf'; period?: { from: string; to: string } | null },
    out: Writable,
  ): Promise<{ filename: string; contentType: string }>;
};

// ------------------------------------------------------------------------------------ views and inputs

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
export type AttemptView = {
  attempt: number;
  at: string;
  outcome: string;
  responseCode: string | null;
  summary: string | null;
  error: string | null;
  durationMs: number;
};
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

/** What a delivery row's payload holds: the outbox events it carries, a test request or a report to render. */
export type DeliveryPayload = {
  events?: string[];
  test?: { by: string };
  report?: {
    scheduleId: string;
    scheduleName: string;
    clientId: string;
    recipients: string[];
    reports: ScheduleView['reports'];
    period: { from: string; to: string };
  };
};

// ------------------------------------------------------------------------------------ helpers

export const parseJson = <T>(s: string | null, fallback: T): T => {
  if (!s) return fallback;
  try {
    return JSON.parse(s) as T;
  } catch {
    return fallback;
  }
};
export const addMs = (iso: string, ms: number) => new Date(Date.parse(iso) + ms).toISOString();
export const chunks = <T>(list: T[], n: number): T[][] => Array.from({ length: Math.ceil(list.length / n) }, (_, i) => list.slice(i * n, i * n + n));

/** Runs fn over items with at most n in flight. */
export async function pool<T>(items: T[], n: number, fn: (item: T) => Promise<void>) {
  let i = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      while (i < items.length) await fn(items[i++]!);
    }),
  );
}

/** The patch fields a caller set, for the audit record. */
export const changedFields = (patch: object) => Object.keys(patch).filter((k) => (patch as Record<string, unknown>)[k] !== undefined);

export function checkName(name: string | undefined, what: string): string {
  const n = (name ?? '').trim();
  if (!n || n.length > 200) throw badRequest(`${what} name must be 1 to 200 characters.`, { field: 'name' });
  return n;
}

export function ruleView(r: NotificationRulesTable, channelIds: string[]): RuleView {
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
export const deliveryView = (d: NotificationDeliveriesTable): DeliveryView => ({
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
export const scheduleView = (s: ReportSchedulesTable): ScheduleView => ({
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
