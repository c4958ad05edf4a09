import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Container } from '../../container.js';
import { actorOf } from '../plugins/auth.js';
import { Id, errors } from '../schemas.js';

const DirectoryConnectionSchema = z.object({
  id: z.string(),
  clientId: z.string(),
  hosts: z.array(z.string()),
  port: z.number(),
  tlsMode: z.string(),
  pinnedSha256: z.string().nullable(),
  allowUntrusted: z.boolean(),
  bindDn: z.string(),
  baseDns: z.array(z.string()),
  syncIntervalMinutes: z.number(),
  lastSyncAt: z.string().nullable(),
  lastStatus: z.string().nullable(),
  lastError: z.string().nullable(),
});
const DirectoryRunSchema = z.object({
  id: z.string(),
  status: z.string(),
  mode: z.string(),
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

/** Active Directory connections (one per client) and their syncs. The bind password is never returned. */
export const directoryRoutes =
  (c: Container): FastifyPluginAsyncZod =>
  async (app) => {
    app.get(
      '/directory/connections',
      {
        schema: {
          tags: ['directory'],
          summary: 'Active Directory connections you can see (the bind password is never returned); add them with "keywarden ad connect"',
          response: { 200: z.array(DirectoryConnectionSchema), ...errors(401, 403) },
        },
      },
      async (request) => c.directory.listConnections(actorOf(request)),
    );
    app.post(
      '/directory/connections/:connectionId/test',
      {
        schema: {
          tags: ['directory'],
          summary: 'Test the connection: bind, then whether the account can read BitLocker recovery passwords',
          params: z.strictObject({ connectionId: Id }),
          response: {
            200: z.object({ ok: z.boolean(), detail: z.string(), computers: z.number(), recoveryObjects: z.number(), readablePasswords: z.number() }),
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
