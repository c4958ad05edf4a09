import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Container } from '../../container.js';
import { NOTIFICATION_EVENT_TYPES } from '../../modules/notifications/notifier.js';
import { CHANNEL_KINDS } from '../../modules/notifications/channels.js';
import { REPORT_NAMES } from '../../modules/notifications/notifications.service.js';
import { actorOf } from '../plugins/auth.js';
import { Id, Limit, Ok, errors } from '../schemas.js';

const EventType = z.enum(NOTIFICATION_EVENT_TYPES);
const Digest = z.enum(['none', 'hourly', 'daily']);
const Email = z.string().min(3).max(254);

const ChannelSchema = z.object({
  id: z.string(),
  clientId: z.string().nullable(),
  name: z.string(),
  kind: z.enum(CHANNEL_KINDS),
  enabled: z.boolean(),
  settings: z.record(z.string(), z.unknown()),
  masked: z.record(z.string(), z.string()),
  createdAt: z.string(),
  updatedAt: z.string(),
});
/** Every setting of every kind; which ones apply (and are required) depends on `kind`. */
const ChannelSettings = {
  host: z.string().min(1).max(255).optional(),
  port: z.number().int().min(1).max(65535).optional(),
  secure: z.boolean().optional(),
  starttls: z.enum(['required', 'opportunistic', 'ignore']).optional(),
  allowSelfSigned: z.boolean().optional(),
  caCert: z.string().max(20_000).nullable().optional(),
  username: z.string().max(255).nullable().optional(),
  password: z.string().max(500).nullable().optional(),
  from: z.string().min(3).max(320).optional(),
  to: z.array(Email).min(1).max(50).optional(),
  url: z.string().min(8).max(2000).optional(),
  signingSecret: z.string().min(16).max(200).optional(),
};
const RuleSchema = z.object({
  id: z.string(),
  clientId: z.string().nullable(),
  name: z.string(),
  eventTypes: z.array(z.string()),
  channelIds: z.array(z.string()),
  digest: Digest,
  enabled: z.boolean(),
  createdAt: z.string(),
  updatedAt: z.string(),
});
const DeliverySchema = z.object({
  id: z.string(),
  channel: z.object({ id: z.string(), name: z.string(), kind: z.string() }),
  clientId: z.string().nullable(),
  ruleId: z.string().nullable(),
  kind: z.string(),
  subject: z.string(),
  eventCount: z.number(),
  status: z.string(),
  attempts: z.number(),
  maxAttempts: z.number(),
  nextAttemptAt: z.string().nullable(),
  lastError: z.string().nullable(),
  createdAt: z.string(),
  sentAt: z.string().nullable(),
});
const AttemptSchema = z.object({
  attempt: z.number(),
  at: z.string(),
  outcome: z.string(),
  responseCode: z.string().nullable(),
  summary: z.string().nullable(),
  error: z.string().nullable(),
  durationMs: z.number(),
});
const ReportItem = z.strictObject({ report: z.enum(REPORT_NAMES), format: z.enum(['csv', 'pdf']) });
const ScheduleSchema = z.object({
  id: z.string(),
  clientId: z.string(),
  name: z.string(),
  channelId: z.string(),
  recipients: z.array(z.string()),
  reports: z.array(z.object({ report: z.enum(REPORT_NAMES), format: z.enum(['csv', 'pdf']) })),
  frequency: z.enum(['monthly', 'weekly', 'daily']),
  day: z.number().nullable(),
  hour: z.number(),
  minute: z.number(),
  enabled: z.boolean(),
  nextRunAt: z.string(),
  lastRunAt: z.string().nullable(),
  lastDeliveryId: z.string().nullable(),
  createdAt: z.string(),
  updatedAt: z.string(),
});
const ScheduleFields = {
  name: z.string().min(1).max(200),
  channelId: Id,
  recipients: z.array(Email).min(1).max(50),
  reports: z.array(ReportItem).min(1).max(10).optional(),
  frequency: z.enum(['monthly', 'weekly', 'daily']).optional(),
  day: z.number().int().min(0).max(28).nullable().optional(),
  hour: z.number().int().min(0).max(23).optional(),
  minute: z.number().int().min(0).max(59).optional(),
  enabled: z.boolean().optional(),
};
const ClientFilter = z.strictObject({ clientId: Id.optional() });

/**
 * Notification channels, rules, the delivery log and scheduled report e-mails. Owners and admins
 * manage them (MSP-wide ones only with all clients); auditors read them and the delivery log.
 * Sealed settings (SMTP password, signing secret, Teams/Slack URLs) are never returned.
 */
export const notificationRoutes =
  (c: Container): FastifyPluginAsyncZod =>
  async (app) => {
    const n = c.notifications;
    const tags = ['notifications'];

    // ---------------------------------------------------------------- channels
    app.get(
      '/notifications/channels',
      {
        schema: {
          tags,
          summary: 'Notification channels you can see (secrets masked)',
          querystring: ClientFilter,
          response: { 200: z.array(ChannelSchema), ...errors(400, 401, 403) },
        },
      },
      async (request) => n.listChannels(actorOf(request), request.query),
    );
    app.post(
      '/notifications/channels',
      {
        schema: {
          tags,
          summary:
            'Add a channel: e-mail (SMTP), signed webhook, Microsoft Teams or Slack incoming webhook. clientId null = MSP-wide. A webhook without signingSecret gets one generated, returned here once.',
          body: z.strictObject({
            clientId: Id.nullable(),
            name: z.string().min(1).max(200),
            kind: z.enum(CHANNEL_KINDS),
            enabled: z.boolean().optional(),
            ...ChannelSettings,
          }),
          response: { 201: z.object({ channel: ChannelSchema, signingSecret: z.string().optional() }), ...errors(400, 401, 403, 404) },
        },
      },
      async (request, reply) => reply.status(201).send(await n.createChannel(actorOf(request), request.body)),
    );
    app.patch(
      '/notifications/channels/:channelId',
      {
        schema: {
          tags,
          summary: 'Change a channel; secrets left out stay as they are',
          params: z.strictObject({ channelId: Id }),
          body: z.strictObject({ name: z.string().min(1).max(200).optional(), enabled: z.boolean().optional(), ...ChannelSettings }),
          response: { 200: ChannelSchema, ...errors(400, 401, 403, 404) },
        },
      },
      async (request) => n.updateChannel(actorOf(request), request.params.channelId, request.body),
    );
    app.delete(
      '/notifications/channels/:channelId',
      {
        schema: {
          tags,
          summary: 'Remove a channel (its delivery log stays)',
          params: z.strictObject({ channelId: Id }),
          response: { 200: Ok, ...errors(400, 401, 403, 404) },
        },
      },
      async (request) => {
        await n.deleteChannel(actorOf(request), request.params.channelId);
        return { ok: true as const };
      },
    );
    app.post(
      '/notifications/channels/:channelId/test',
      {
        schema: {
          tags,
          summary: 'Send a test message through the channel now; answers what the server said',
          params: z.strictObject({ channelId: Id }),
          response: {
            200: z.object({ ok: z.boolean(), deliveryId: z.string(), responseCode: z.string().nullable(), summary: z.string(), error: z.string().nullable() }),
            ...errors(400, 401, 403, 404),
          },
        },
      },
      async (request) => n.testChannel(actorOf(request), request.params.channelId),
    );

    // ---------------------------------------------------------------- rules
    app.get(
      '/notifications/rules',
      {
        schema: {
          tags,
          summary: 'Notification rules you can see',
          querystring: ClientFilter,
          response: { 200: z.array(RuleSchema), ...errors(400, 401, 403) },
        },
      },
      async (request) => n.listRules(actorOf(request), request.query),
    );
    app.post(
      '/notifications/rules',
      {
        schema: {
          tags,
          summary: 'Add a rule: which events go to which channels, at once or as an hourly/daily digest. clientId null = MSP-wide (all clients).',
          body: z.strictObject({
            clientId: Id.nullable(),
            name: z.string().min(1).max(200),
            eventTypes: z.array(EventType).min(1).max(20),
            channelIds: z.array(Id).min(1).max(20),
            digest: Digest.optional(),
            enabled: z.boolean().optional(),
          }),
          response: { 201: RuleSchema, ...errors(400, 401, 403, 404) },
        },
      },
      async (request, reply) => reply.status(201).send(await n.createRule(actorOf(request), request.body)),
    );
    app.patch(
      '/notifications/rules/:ruleId',
      {
        schema: {
          tags,
          summary: 'Change a rule',
          params: z.strictObject({ ruleId: Id }),
          body: z.strictObject({
            name: z.string().min(1).max(200).optional(),
            eventTypes: z.array(EventType).min(1).max(20).optional(),
            channelIds: z.array(Id).min(1).max(20).optional(),
            digest: Digest.optional(),
            enabled: z.boolean().optional(),
          }),
          response: { 200: RuleSchema, ...errors(400, 401, 403, 404) },
        },
      },
      async (request) => n.updateRule(actorOf(request), request.params.ruleId, request.body),
    );
    app.delete(
      '/notifications/rules/:ruleId',
      { schema: { tags, summary: 'Remove a rule', params: z.strictObject({ ruleId: Id }), response: { 200: Ok, ...errors(400, 401, 403, 404) } } },
      async (request) => {
        await n.deleteRule(actorOf(request), request.params.ruleId);
        return { ok: true as const };
      },
    );

    // ---------------------------------------------------------------- delivery log
    app.get(
      '/notifications/deliveries',
      {
        schema: {
          tags,
          summary: 'The delivery log, newest first (status, attempts, last error; never a secret)',
          querystring: z.strictObject({
            clientId: Id.optional(),
            channelId: Id.optional(),
            status: z.enum(['pending', 'sent', 'failed']).optional(),
            limit: Limit,
          }),
          response: { 200: z.array(DeliverySchema), ...errors(400, 401, 403) },
        },
      },
      async (request) => n.listDeliveries(actorOf(request), request.query),
    );
    app.get(
      '/notifications/deliveries/:deliveryId',
      {
        schema: {
          tags,
          summary: 'One delivery with every attempt (HTTP status or SMTP reply, error in words)',
          params: z.strictObject({ deliveryId: Id }),
          response: { 200: DeliverySchema.extend({ attemptLog: z.array(AttemptSchema) }), ...errors(400, 401, 403, 404) },
        },
      },
      async (request) => n.getDelivery(actorOf(request), request.params.deliveryId),
    );

    // ---------------------------------------------------------------- scheduled reports
    app.get(
      '/notifications/report-schedules',
      {
        schema: {
          tags,
          summary: 'Scheduled report e-mails you can see',
          querystring: ClientFilter,
          response: { 200: z.array(ScheduleSchema), ...errors(400, 401, 403) },
        },
      },
      async (request) => n.listSchedules(actorOf(request), request.query),
    );
    app.post(
      '/notifications/report-schedules',
      {
        schema: {
          tags,
          summary: "E-mail a client's reports on a schedule (default: monthly on day 1 at 07:00 UTC, the compliance summary and the recovery audit as PDF)",
          body: z.strictObject({ clientId: Id, ...ScheduleFields }),
          response: { 201: ScheduleSchema, ...errors(400, 401, 403, 404) },
        },
      },
      async (request, reply) => reply.status(201).send(await n.createSchedule(actorOf(request), request.body)),
    );
    app.patch(
      '/notifications/report-schedules/:scheduleId',
      {
        schema: {
          tags,
          summary: 'Change a report schedule',
          params: z.strictObject({ scheduleId: Id }),
          body: z.strictObject({
            ...ScheduleFields,
            name: ScheduleFields.name.optional(),
            channelId: Id.optional(),
            recipients: ScheduleFields.recipients.optional(),
          }),
          response: { 200: ScheduleSchema, ...errors(400, 401, 403, 404) },
        },
      },
      async (request) => n.updateSchedule(actorOf(request), request.params.scheduleId, request.body),
    );
    app.delete(
      '/notifications/report-schedules/:scheduleId',
      {
        schema: { tags, summary: 'Remove a report schedule', params: z.strictObject({ scheduleId: Id }), response: { 200: Ok, ...errors(400, 401, 403, 404) } },
      },
      async (request) => {
        await n.deleteSchedule(actorOf(request), request.params.scheduleId);
        return { ok: true as const };
      },
    );
    app.post(
      '/notifications/report-schedules/:scheduleId/run',
      {
        schema: {
          tags,
          summary: 'Send the scheduled report now (queued; the delivery log shows when it went out)',
          params: z.strictObject({ scheduleId: Id }),
          response: { 200: DeliverySchema, ...errors(400, 401, 403, 404) },
        },
      },
      async (request) => n.runScheduleNow(actorOf(request), request.params.scheduleId),
    );
  };
