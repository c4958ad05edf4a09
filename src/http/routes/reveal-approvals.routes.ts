import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Container } from '../../container.js';
import { actorOf } from '../plugins/auth.js';
import { Id, errors } from '../schemas.js';

/**
 * Two-person reveal: per-client policy, device tags, and reveal requests (ask, approve, deny,
 * cancel). The reveal itself stays POST /keys/{id}/reveal, with `approvalRequestId` (or, for an
 * owner, `breakGlassReason`). Nothing here ever carries a recovery password.
 */

const Tag = z.string().min(1).max(32);
const PolicySchema = z.object({
  clientId: z.string(),
  mode: z.enum(['off', 'required', 'tagged']).describe('off: no approval; required: every reveal; tagged: reveals of keys of devices with one of `tags`'),
  tags: z.array(z.string()),
  approvalMinutes: z.number().describe('how long an approval may be used to reveal'),
  requestHours: z.number().describe('how long a request waits for a decision'),
  updatedAt: z.string().nullable(),
  updatedBy: z.string().nullable(),
});
const RequestSchema = z.object({
  id: z.string(),
  status: z.enum(['pending', 'approved', 'denied', 'cancelled', 'used', 'expired']),
  client: z.object({ id: z.string(), name: z.string() }),
  device: z.object({ id: z.string(), name: z.string() }).nullable(),
  keyRecordId: z.string(),
  keyId: z.string().nullable(),
  reason: z.string(),
  ticket: z.string().nullable(),
  note: z.string().nullable(),
  requestedBy: z.string(),
  requestedByToken: z.boolean(),
  requestedAt: z.string(),
  expiresAt: z.string(),
  decidedBy: z.string().nullable(),
  decidedAt: z.string().nullable(),
  decisionNote: z.string().nullable(),
  approvalExpiresAt: z.string().nullable().describe('approved: reveal before this time, once'),
  usedAt: z.string().nullable(),
  mine: z.boolean().describe('you asked for it (or an API token of yours did)'),
  mayDecide: z.boolean().describe('you may approve or deny it now'),
  path: z.string().describe("the console's page of this request"),
});
const TagsSchema = z.object({ deviceId: z.string(), tags: z.array(z.string()) });
const RequestParams = z.strictObject({ requestId: Id });
const Decision = z.strictObject({ note: z.string().max(1000).optional() });

export const revealApprovalRoutes =
  (c: Container): FastifyPluginAsyncZod =>
  async (app) => {
    app.get(
      '/clients/:clientId/reveal-policy',
      {
        schema: {
          tags: ['reveal approval'],
          summary: "The client's two-person reveal policy (off when never set)",
          params: z.strictObject({ clientId: Id }),
          response: { 200: PolicySchema, ...errors(400, 401, 403, 404) },
        },
      },
      async (request) => c.revealApprovals.policy(actorOf(request), request.params.clientId),
    );
    app.put(
      '/clients/:clientId/reveal-policy',
      {
        schema: {
          tags: ['reveal approval'],
          summary: 'Sets the two-person reveal policy of a client (client:manage, fresh step-up). Audited.',
          params: z.strictObject({ clientId: Id }),
          body: z.strictObject({
            mode: z.enum(['off', 'required', 'tagged']),
            tags: z.array(Tag).max(10).optional(),
            approvalMinutes: z.number().int().min(5).max(240).optional(),
            requestHours: z.number().int().min(1).max(72).optional(),
          }),
          response: { 200: PolicySchema, ...errors(400, 401, 403, 404) },
        },
      },
      async (request) => c.revealApprovals.setPolicy(actorOf(request), request.params.clientId, request.body),
    );
    app.get(
      '/clients/:clientId/device-tags',
      {
        schema: {
          tags: ['reveal approval'],
          summary: "The client's tagged devices with their tags",
          params: z.strictObject({ clientId: Id }),
          response: { 200: z.array(z.object({ deviceId: z.string(), deviceName: z.string(), tags: z.array(z.string()) })), ...errors(400, 401, 403, 404) },
        },
      },
      async (request) => c.deviceTags.ofClient(actorOf(request), request.params.clientId),
    );
    app.get(
      '/devices/:deviceId/tags',
      {
        schema: {
          tags: ['reveal approval'],
          summary: "A device's tags",
          params: z.strictObject({ deviceId: Id }),
          response: { 200: TagsSchema, ...errors(400, 401, 403, 404) },
        },
      },
      async (request) => c.deviceTags.get(actorOf(request), request.params.deviceId),
    );
    app.put(
      '/devices/:deviceId/tags',
      {
        schema: {
          tags: ['reveal approval'],
          summary: "Replaces a device's tags (client:manage or lifecycle:manage in its client). Audited.",
          params: z.strictObject({ deviceId: Id }),
          body: z.strictObject({ tags: z.array(Tag).max(10) }),
          response: { 200: TagsSchema, ...errors(400, 401, 403, 404) },
        },
      },
      async (request) => c.deviceTags.set(actorOf(request), request.params.deviceId, request.body),
    );
    app.get(
      '/keys/:keyRecordId/approval',
      {
        schema: {
          tags: ['reveal approval'],
          summary: "Whether revealing this key needs a second person's approval now, and your open requests for it",
          params: z.strictObject({ keyRecordId: Id }),
          response: {
            200: z.object({
              required: z.boolean(),
              why: z.string().nullable(),
              requests: z.array(RequestSchema),
              // Ticket-bound reveal: off (free text), validate (a ticket given is checked), required; the PSA's name.
              ticket: z.object({ policy: z.enum(['off', 'validate', 'required']), psa: z.string().nullable() }),
            }),
            ...errors(400, 401, 403, 404),
          },
        },
      },
      async (request) => c.revealApprovals.forKey(actorOf(request), request.params.keyRecordId),
    );
    app.get(
      '/reveal-requests',
      {
        schema: {
          tags: ['reveal approval'],
          summary: 'Reveal requests in the clients where you may reveal keys (yours among them)',
          querystring: z.strictObject({
            status: z.enum(['pending', 'approved', 'denied', 'cancelled', 'used', 'expired', 'open']).optional(),
            clientId: Id.optional(),
            mine: z.enum(['true', 'false']).optional(),
          }),
          response: { 200: z.array(RequestSchema), ...errors(400, 401, 403) },
        },
      },
      async (request) => {
        const { status, clientId, mine } = request.query;
        return c.revealApprovals.list(actorOf(request), { status, clientId, mine: mine === 'true' });
      },
    );
    app.post(
      '/reveal-requests',
      {
        schema: {
          tags: ['reveal approval'],
          summary:
            "Asks a second person to approve revealing one key record (reason and ticket as for a reveal). Audited; notified as key.reveal_requested with a link to the console's request page.",
          body: z.strictObject({
            keyRecordId: Id,
            reason: z.string().min(1).max(40),
            ticket: z.string().max(200).optional(),
            note: z.string().max(1000).optional(),
          }),
          response: { 201: RequestSchema, ...errors(400, 401, 403, 404, 409, 429) },
        },
      },
      async (request, reply) => reply.status(201).send(await c.revealApprovals.create(actorOf(request), request.body)),
    );
    app.get(
      '/reveal-requests/:requestId',
      {
        schema: {
          tags: ['reveal approval'],
          summary: 'One reveal request',
          params: RequestParams,
          response: { 200: RequestSchema, ...errors(400, 401, 403, 404) },
        },
      },
      async (request) => c.revealApprovals.get(actorOf(request), request.params.requestId),
    );
    app.post(
      '/reveal-requests/:requestId/approve',
      {
        schema: {
          tags: ['reveal approval'],
          summary: 'Approves a reveal request: a person who may reveal in its client, never the requester, with a fresh step-up. Never an API token.',
          params: RequestParams,
          body: Decision,
          response: { 200: RequestSchema, ...errors(400, 401, 403, 404, 409) },
        },
      },
      async (request) => c.revealApprovals.approve(actorOf(request), request.params.requestId, request.body),
    );
    app.post(
      '/reveal-requests/:requestId/deny',
      {
        schema: {
          tags: ['reveal approval'],
          summary: 'Denies a reveal request (same people as approve, fresh step-up)',
          params: RequestParams,
          body: Decision,
          response: { 200: RequestSchema, ...errors(400, 401, 403, 404, 409) },
        },
      },
      async (request) => c.revealApprovals.deny(actorOf(request), request.params.requestId, request.body),
    );
    app.post(
      '/reveal-requests/:requestId/cancel',
      {
        schema: {
          tags: ['reveal approval'],
          summary: 'The requester withdraws a waiting or approved request',
          params: RequestParams,
          response: { 200: RequestSchema, ...errors(400, 401, 403, 404, 409) },
        },
      },
      async (request) => c.revealApprovals.cancel(actorOf(request), request.params.requestId),
    );
  };
