import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Container } from '../../container.js';
import { actorOf } from '../plugins/auth.js';
import { Id, errors } from '../schemas.js';

/** Lifecycle: retire / reinstate, legal hold, retention, destructive actions with two-owner approvals, key history. */

const Reason = z.string().max(500);
const Hold = z.object({ at: z.string(), reason: z.string(), by: z.string() }).nullable();
const DeviceLifecycleSchema = z.object({
  id: z.string(),
  name: z.string(),
  retiredAt: z.string().nullable(),
  retiredBy: z.string().nullable(),
  keysKeptUntil: z.string().nullable(),
  keysDestroyedAt: z.string().nullable(),
  legalHold: Hold,
  status: z.string().describe('e.g. "retired, keys kept until 2027-11-26"'),
});
const ApprovalSchema = z.object({
  id: z.string(),
  action: z.string().describe("'destroy-device-keys', 'retention-run', 'offboard-client', 'disable-two-owner-approval', or an action another module guards"),
  client: z.object({ id: z.string(), name: z.string() }).nullable().describe('null for a vault-wide request'),
  device: z.object({ id: z.string(), name: z.string() }).nullable(),
  target: z.object({ type: z.string(), id: z.string().nullable() }).nullable(),
  params: z.record(z.string(), z.unknown()).describe('what the approved action runs with (never a secret)'),
  status: z.string(),
  reason: z.string().nullable(),
  requestedBy: z.string(),
  requestedAt: z.string(),
  expiresAt: z.string(),
  approvedBy: z.string().nullable(),
  approvedAt: z.string().nullable(),
  closedAt: z.string().nullable(),
  result: z.record(z.string(), z.unknown()).nullable(),
});
const ClientLifecycleSchema = z.object({
  client: z.object({ id: z.string(), name: z.string() }),
  retentionDays: z.number(),
  legalHold: Hold,
  offboardedAt: z.string().nullable(),
  offboardedBy: z.string().nullable(),
  retiredDevices: z.array(DeviceLifecycleSchema),
  pendingApprovals: z.array(ApprovalSchema),
});
const DestroyOutcomeSchema = z.union([
  z.object({ status: z.literal('executed'), action: z.string(), result: z.record(z.string(), z.unknown()) }),
  z.object({ status: z.literal('pending'), approval: ApprovalSchema }),
]);
const Confirm = z.strictObject({
  confirm: z.string().max(300).describe("the client's name, typed exactly as shown"),
  reason: Reason.optional(),
});
const SettingsSchema = z.object({
  twoOwnerApproval: z.boolean(),
  approvalHours: z.number(),
  defaultRetentionDays: z.number(),
  pendingApproval: ApprovalSchema.optional().describe('present when switching two-owner approval off now waits for a second owner'),
});
const Event = z.object({
  at: z.string(),
  type: z.string(),
  source: z.object({ type: z.string(), ref: z.string() }).optional(),
  by: z.string().optional(),
  reason: z.string().nullable().optional(),
  ticket: z.string().nullable().optional(),
  detail: z.string().nullable().optional(),
});
const KeyHistorySchema = z.object({
  device: z.object({ id: z.string(), name: z.string(), client: z.object({ id: z.string(), name: z.string() }), retiredAt: z.string().nullable() }),
  volumes: z.array(
    z.object({
      volume: z.object({ id: z.string(), mountPoint: z.string().nullable(), type: z.string() }).nullable(),
      keys: z.array(
        z.object({
          id: z.string(),
          keyId: z.string().nullable(),
          state: z.string(),
          createdAt: z.string().nullable(),
          firstSeenAt: z.string(),
          lastSeenAt: z.string(),
          destroyedAt: z.string().nullable(),
          sources: z.array(
            z.object({
              type: z.string(),
              ref: z.string(),
              createdAt: z.string().nullable(),
              firstSeenAt: z.string(),
              lastSeenAt: z.string(),
              removedAt: z.string().nullable(),
            }),
          ),
          events: z.array(Event),
        }),
      ),
    }),
  ),
});

export const lifecycleRoutes =
  (c: Container): FastifyPluginAsyncZod =>
  async (app) => {
    const device = z.strictObject({ deviceId: Id });
    const client = z.strictObject({ clientId: Id });
    const tags = ['lifecycle'];

    app.get(
      '/devices/:deviceId/lifecycle',
      {
        schema: {
          tags,
          summary: 'Whether a device is in service or retired, how long its keys are kept, and its legal hold',
          params: device,
          response: { 200: DeviceLifecycleSchema, ...errors(400, 401, 403, 404) },
        },
      },
      async (request) => c.lifecycle.deviceStatus(actorOf(request), request.params.deviceId),
    );
    app.post(
      '/devices/:deviceId/retire',
      {
        schema: {
          tags,
          summary: "Retire a device: its keys are kept for the client's retention period, then destroyed",
          params: device,
          body: z.strictObject({ reason: Reason.optional() }),
          response: { 200: DeviceLifecycleSchema, ...errors(400, 401, 403, 404, 409) },
        },
      },
      async (request) => c.lifecycle.retireDevice(actorOf(request), request.params.deviceId, request.body),
    );
    app.post(
      '/devices/:deviceId/reinstate',
      {
        schema: {
          tags,
          summary: 'Put a retired device back in service (possible until its keys are destroyed)',
          params: device,
          response: { 200: DeviceLifecycleSchema, ...errors(400, 401, 403, 404, 409) },
        },
      },
      async (request) => c.lifecycle.reinstateDevice(actorOf(request), request.params.deviceId),
    );
    app.put(
      '/devices/:deviceId/legal-hold',
      {
        schema: {
          tags,
          summary: 'Set (hold: true) or lift (hold: false, owner only) a legal hold on a device: while held, none of its keys is destroyed',
          params: device,
          body: z.strictObject({ hold: z.boolean(), reason: Reason }),
          response: { 200: DeviceLifecycleSchema, ...errors(400, 401, 403, 404, 409) },
        },
      },
      async (request) => c.lifecycle.setDeviceHold(actorOf(request), request.params.deviceId, request.body),
    );
    app.post(
      '/devices/:deviceId/destroy-keys',
      {
        schema: {
          tags,
          summary: "Owner: destroy a retired device's keys now (typed client name; a second owner's approval when that is on)",
          params: device,
          body: Confirm,
          response: { 200: DestroyOutcomeSchema, 202: DestroyOutcomeSchema, ...errors(400, 401, 403, 404, 409) },
        },
      },
      async (request, reply) => {
        const r = await c.lifecycle.destroyDeviceKeys(actorOf(request), request.params.deviceId, request.body);
        return reply.status(r.status === 'pending' ? 202 : 200).send(r);
      },
    );
    app.get(
      '/devices/:deviceId/key-history',
      {
        schema: {
          tags,
          summary: 'Every key each volume of this device has had, as a timeline (metadata only)',
          params: device,
          response: { 200: KeyHistorySchema, ...errors(400, 401, 403, 404) },
        },
      },
      async (request) => c.keyHistory(actorOf(request), request.params.deviceId),
    );

    app.get(
      '/clients/:clientId/lifecycle',
      {
        schema: {
          tags,
          summary: 'Retention period, legal hold, offboarding and retired devices of a client',
          params: client,
          response: { 200: ClientLifecycleSchema, ...errors(400, 401, 403, 404) },
        },
      },
      async (request) => c.lifecycle.clientStatus(actorOf(request), request.params.clientId),
    );
    app.patch(
      '/clients/:clientId/lifecycle',
      {
        schema: {
          tags,
          summary: "Owner: set how long a retired device's keys are kept (days; 0 keeps them forever)",
          params: client,
          body: z.strictObject({ retentionDays: z.number().int().min(0).max(36_500) }),
          response: { 200: ClientLifecycleSchema, ...errors(400, 401, 403, 404) },
        },
      },
      async (request) => c.lifecycle.setRetention(actorOf(request), request.params.clientId, request.body.retentionDays),
    );
    app.put(
      '/clients/:clientId/legal-hold',
      {
        schema: {
          tags,
          summary: 'Set (hold: true) or lift (hold: false, owner only) a legal hold on a client: while held, nothing of it is destroyed',
          params: client,
          body: z.strictObject({ hold: z.boolean(), reason: Reason }),
          response: { 200: ClientLifecycleSchema, ...errors(400, 401, 403, 404, 409) },
        },
      },
      async (request) => c.lifecycle.setClientHold(actorOf(request), request.params.clientId, request.body),
    );
    app.post(
      '/clients/:clientId/retention-run',
      {
        schema: {
          tags,
          summary: 'Owner: run the retention job for this client now (destroys only keys past retention; typed client name)',
          params: client,
          body: Confirm,
          response: { 200: DestroyOutcomeSchema, 202: DestroyOutcomeSchema, ...errors(400, 401, 403, 404, 409) },
        },
      },
      async (request, reply) => {
        const r = await c.lifecycle.runRetentionNow(actorOf(request), request.params.clientId, request.body);
        return reply.status(r.status === 'pending' ? 202 : 200).send(r);
      },
    );
    app.post(
      '/clients/:clientId/offboard',
      {
        schema: {
          tags,
          summary: 'Owner: offboard a client by destroying its data key (crypto-shred; typed client name; export first)',
          params: client,
          body: Confirm,
          response: { 200: DestroyOutcomeSchema, 202: DestroyOutcomeSchema, ...errors(400, 401, 403, 404, 409) },
        },
      },
      async (request, reply) => {
        const r = await c.lifecycle.offboardClient(actorOf(request), request.params.clientId, request.body);
        return reply.status(r.status === 'pending' ? 202 : 200).send(r);
      },
    );

    app.get(
      '/lifecycle/settings',
      { schema: { tags, summary: 'Owner: whether destructive actions need a second owner', response: { 200: SettingsSchema, ...errors(401, 403) } } },
      async (request) => c.lifecycle.getSettings(actorOf(request)),
    );
    app.patch(
      '/lifecycle/settings',
      {
        schema: {
          tags,
          summary: 'Owner (signed in, fresh step-up): switch two-owner approval on; switching it off while it is on waits for a second owner (202)',
          body: z.strictObject({ twoOwnerApproval: z.boolean().optional() }),
          response: { 200: SettingsSchema, 202: SettingsSchema, ...errors(400, 401, 403) },
        },
      },
      async (request, reply) => {
        const r = await c.lifecycle.updateSettings(actorOf(request), request.body);
        return reply.status(r.pendingApproval ? 202 : 200).send(r);
      },
    );
    app.get(
      '/lifecycle/approvals',
      {
        schema: {
          tags,
          summary: 'Owner: requests waiting for (or given) a second owner, pending and past, of the clients in reach',
          querystring: z.strictObject({ status: z.enum(['pending', 'executed', 'cancelled', 'expired']).optional() }),
          response: { 200: z.array(ApprovalSchema), ...errors(400, 401, 403) },
        },
      },
      async (request) => c.lifecycle.listApprovals(actorOf(request), request.query),
    );
    app.post(
      '/lifecycle/approvals/:approvalId/approve',
      {
        schema: {
          tags,
          summary:
            "A second owner (not the requester, with an account older than the request) approves, typing the client's name when there is one: the action runs at once",
          params: z.strictObject({ approvalId: Id }),
          body: z.strictObject({ confirm: z.string().max(300).optional() }),
          response: { 200: DestroyOutcomeSchema, ...errors(400, 401, 403, 404, 409) },
        },
      },
      async (request) => c.lifecycle.approve(actorOf(request), request.params.approvalId, request.body),
    );
    app.post(
      '/lifecycle/approvals/:approvalId/cancel',
      {
        schema: {
          tags,
          summary: 'Owner: cancel a pending request',
          params: z.strictObject({ approvalId: Id }),
          response: { 200: ApprovalSchema, ...errors(400, 401, 403, 404, 409) },
        },
      },
      async (request) => c.lifecycle.cancel(actorOf(request), request.params.approvalId),
    );
  };
