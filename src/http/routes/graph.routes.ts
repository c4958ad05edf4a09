import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Container } from '../../container.js';
import { actorOf } from '../plugins/auth.js';
import { Id, Ok, errors } from '../schemas.js';

const ConnectionSchema = z.object({
  id: z.string(),
  clientId: z.string(),
  tenantId: z.string(),
  appClientId: z.string(),
  loginUrl: z.string(),
  graphUrl: z.string(),
  syncIntervalMinutes: z.number(),
  enabled: z.boolean(),
  lastSyncAt: z.string().nullable(),
  lastStatus: z.string().nullable(),
  lastError: z.string().nullable(),
});
const RunSchema = z.object({
  id: z.string(),
  clientId: z.string(),
  status: z.string(),
  startedAt: z.string(),
  finishedAt: z.string().nullable(),
  keysListed: z.number(),
  newKeys: z.number(),
  newDevices: z.number(),
  unchanged: z.number(),
  removed: z.number(),
  keyReads: z.number(),
  errors: z.number(),
  errorText: z.string().nullable(),
  /** A succeeded sync whose optional step (portal key reads) failed: which one. */
  warnings: z.string().nullable(),
  durationMs: z.number().nullable(),
});

/** Microsoft Entra ID connections (one per client) and their syncs. The app secret is never returned. */
export const graphRoutes =
  (c: Container): FastifyPluginAsyncZod =>
  async (app) => {
    app.get(
      '/graph/connections',
      { schema: { tags: ['graph'], summary: 'Entra ID connections you can see', response: { 200: z.array(ConnectionSchema), ...errors(401, 403) } } },
      async (request) => c.graph.listConnections(actorOf(request)),
    );
    app.post(
      '/graph/connections',
      {
        schema: {
          tags: ['graph'],
          summary:
            'Link a client to its Entra tenant (app registration with BitlockerKey.Read.All and Device.Read.All application permissions); the secret is stored encrypted',
          body: z.strictObject({
            clientId: Id,
            tenantId: z.string().min(32).max(40),
            appClientId: z.string().min(32).max(40),
            clientSecret: z.string().min(1).max(500),
            loginUrl: z.string().max(200).optional(),
            graphUrl: z.string().max(200).optional(),
            syncIntervalMinutes: z.number().int().min(5).max(10080).optional(),
          }),
          response: { 201: ConnectionSchema, ...errors(400, 401, 403, 404, 409) },
        },
      },
      async (request, reply) => reply.status(201).send(await c.graph.createConnection(actorOf(request), request.body)),
    );
    app.delete(
      '/graph/connections/:connectionId',
      {
        schema: {
          tags: ['graph'],
          summary: 'Remove a connection (synced keys stay in the vault)',
          params: z.strictObject({ connectionId: Id }),
          response: { 200: Ok, ...errors(400, 401, 403, 404) },
        },
      },
      async (request) => {
        await c.graph.deleteConnection(actorOf(request), request.params.connectionId);
        return { ok: true as const };
      },
    );
    app.post(
      '/graph/connections/:connectionId/test',
      {
        schema: {
          tags: ['graph'],
          summary: 'Test the connection: sign-in and each permission, with the HTTP status and error code of any failure',
          params: z.strictObject({ connectionId: Id }),
          response: {
            200: z.object({ ok: z.boolean(), checks: z.array(z.object({ check: z.string(), ok: z.boolean(), detail: z.string() })) }),
            ...errors(400, 401, 403, 404),
          },
        },
      },
      async (request) => c.graph.testConnection(actorOf(request), request.params.connectionId),
    );
    app.post(
      '/graph/connections/:connectionId/sync',
      {
        schema: {
          tags: ['graph'],
          summary: 'Sync now (409 while a sync of this tenant runs in any Keywarden process)',
          params: z.strictObject({ connectionId: Id }),
          response: { 200: RunSchema, ...errors(400, 401, 403, 404, 409) },
        },
      },
      async (request) => c.graph.syncNow(actorOf(request), request.params.connectionId),
    );
    app.get(
      '/graph/connections/:connectionId/runs',
      {
        schema: {
          tags: ['graph'],
          summary: 'Recent sync runs with their counts',
          params: z.strictObject({ connectionId: Id }),
          response: { 200: z.array(RunSchema), ...errors(400, 401, 403, 404) },
        },
      },
      async (request) => c.graph.runs(actorOf(request), request.params.connectionId),
    );
  };
