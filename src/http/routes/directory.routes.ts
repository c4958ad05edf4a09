import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Container } from '../../container.js';
import { actorOf } from '../plugins/auth.js';
import { Id, Ok, errors } from '../schemas.js';

const DirectoryConnectionSchema = z.object({
  id: z.string(),
  clientId: z.string(),
  hosts: z.array(z.string()),
  port: z.number(),
  tlsMode: z.enum(['ldaps', 'starttls']),
  pinnedSha256: z.string().nullable(),
  allowUntrusted: z.boolean(),
  bindDn: z.string(),
  baseDns: z.array(z.string()),
  syncIntervalMinutes: z.number(),
  hasCaCert: z.boolean(),
  enabled: z.boolean(),
  lastSyncAt: z.string().nullable(),
  lastStatus: z.string().nullable(),
  lastError: z.string().nullable(),
});
const DirectoryRunSchema = z.object({
  id: z.string(),
  status: z.enum(['running', 'succeeded', 'failed']),
  startedAt: z.string(),
  finishedAt: z.string().nullable(),
  mode: z.enum(['full', 'incremental']),
  dc: z.string().nullable(),
  objectsRead: z.number(),
  newKeys: z.number(),
  newDevices: z.number(),
  unchanged: z.number(),
  removed: z.number(),
  invalid: z.number(),
  errorText: z.string().nullable(),
  durationMs: z.number().nullable(),
});

/** Connection settings; which certificate check applies: caCert, pinnedSha256, or allowUntrusted (audited). */
const ConnectionFields = {
  hosts: z.array(z.string().min(1).max(255)).min(1).max(10),
  port: z.number().int().min(1).max(65535).optional(),
  tlsMode: z.enum(['ldaps', 'starttls']).optional(),
  caCert: z.string().max(20_000).nullable().optional(),
  pinnedSha256: z.string().max(100).nullable().optional(),
  allowUntrusted: z.boolean().optional(),
  bindDn: z.string().min(1).max(500),
  baseDns: z.array(z.string().min(1).max(500)).min(1).max(20),
  syncIntervalMinutes: z.number().int().min(5).max(10080).optional(),
};

/** Active Directory connections (one per client) and their syncs. The bind password is never returned. */
export const directoryRoutes =
  (c: Container): FastifyPluginAsyncZod =>
  async (app) => {
    app.get(
      '/directory/connections',
      {
        schema: {
          tags: ['directory'],
          summary: 'Active Directory connections you can see (the bind password is never returned)',
          response: { 200: z.array(DirectoryConnectionSchema), ...errors(401, 403) },
        },
      },
      async (request) => c.directory.listConnections(actorOf(request)),
    );
    app.post(
      '/directory/connections',
      {
        schema: {
          tags: ['directory'],
          summary:
            "Connect a client's Active Directory (one per client): domain controllers, LDAPS or StartTLS, how the certificate is trusted, the bind account; the password is stored encrypted and never returned",
          body: z.strictObject({ clientId: Id, ...ConnectionFields, password: z.string().min(1).max(500) }),
          response: { 201: DirectoryConnectionSchema, ...errors(400, 401, 403, 404, 409) },
        },
      },
      async (request, reply) => reply.status(201).send(await c.directory.createConnection(actorOf(request), request.body)),
    );
    app.patch(
      '/directory/connections/:connectionId',
      {
        schema: {
          tags: ['directory'],
          summary: 'Change, enable or disable a connection; a password left out or empty keeps the stored one',
          params: z.strictObject({ connectionId: Id }),
          body: z.strictObject({
            ...ConnectionFields,
            hosts: ConnectionFields.hosts.optional(),
            bindDn: ConnectionFields.bindDn.optional(),
            baseDns: ConnectionFields.baseDns.optional(),
            password: z.string().max(500).nullable().optional(),
            enabled: z.boolean().optional(),
          }),
          response: { 200: DirectoryConnectionSchema, ...errors(400, 401, 403, 404) },
        },
      },
      async (request) => c.directory.updateConnection(actorOf(request), request.params.connectionId, request.body),
    );
    app.delete(
      '/directory/connections/:connectionId',
      {
        schema: {
          tags: ['directory'],
          summary: 'Remove a connection and its sync history (synced keys stay in the vault)',
          params: z.strictObject({ connectionId: Id }),
          response: { 200: Ok, ...errors(400, 401, 403, 404) },
        },
      },
      async (request) => {
        await c.directory.deleteConnection(actorOf(request), request.params.connectionId);
        return { ok: true as const };
      },
    );
    app.get(
      '/directory/connections/:connectionId/runs',
      {
        schema: {
          tags: ['directory'],
          summary: 'Recent sync runs, newest first, with their counts and errors',
          params: z.strictObject({ connectionId: Id }),
          response: { 200: z.array(DirectoryRunSchema), ...errors(400, 401, 403, 404) },
        },
      },
      async (request) => c.directory.runs(actorOf(request), request.params.connectionId),
    );
    app.post(
      '/directory/connections/:connectionId/test',
      {
        schema: {
          tags: ['directory'],
          summary: 'Test the connection: bind, then whether the account can read BitLocker recovery passwords',
          params: z.strictObject({ connectionId: Id }),
          response: {
            200: z.object({
              ok: z.boolean(),
              detail: z.string(),
              computers: z.number(),
              recoveryObjects: z.number(),
              readablePasswords: z.number(),
              checks: z.array(z.object({ check: z.string(), ok: z.boolean(), detail: z.string() })),
            }),
            ...errors(400, 401, 403, 404),
          },
        },
      },
      async (request) => c.directory.testConnection(actorOf(request), request.params.connectionId),
    );
    app.post(
      '/directory/connections/:connectionId/sync',
      {
        schema: {
          tags: ['directory'],
          summary: 'Sync now; answers the run',
          params: z.strictObject({ connectionId: Id }),
          response: { 200: DirectoryRunSchema, ...errors(400, 401, 403, 404, 409) },
        },
      },
      async (request) => c.directory.syncNow(actorOf(request), request.params.connectionId),
    );
  };
