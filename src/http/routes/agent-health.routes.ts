import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Container } from '../../container.js';
import { HEALTH_MAX_LIMIT } from '../../modules/agent/agent-health.service.js';
import { actorOf } from '../plugins/auth.js';
import { Id, errors } from '../schemas.js';

const Ref = z.object({ id: z.string(), name: z.string() });
const HealthSchema = z.object({
  current: z.string().describe('the agent version this server serves'),
  versions: z.array(z.object({ version: z.string().nullable().describe('null: the agent did not report one'), devices: z.number() })),
  devices: z.array(
    z.object({
      id: z.string(),
      name: z.string(),
      client: Ref,
      agentVersion: z.string().nullable(),
      lastCheckinAt: z.string().nullable(),
      stale: z.boolean().describe("no check-in for longer than the client's policy allows (staleAfterDays)"),
      outdated: z.boolean().describe('older than the current agent, or its version is unknown'),
      failingJobs: z.number().describe('jobs that failed or expired in the last 7 days'),
    }),
  ),
  failingJobs: z.array(
    z.object({
      id: z.string(),
      kind: z.string(),
      state: z.enum(['failed', 'expired']),
      device: Ref,
      detail: z.string().nullable(),
      finishedAt: z.string(),
    }),
  ),
});

export const agentHealthRoutes =
  (c: Container): FastifyPluginAsyncZod =>
  async (app) => {
    app.get(
      '/agent/health',
      {
        schema: {
          tags: ['agent'],
          summary:
            'Agent health: devices with a live agent (version, last check-in, stale, outdated, failing jobs; problems first, at most `limit`), counts per version, and jobs failed in the last 7 days',
          querystring: z.strictObject({
            clientId: Id.optional(),
            limit: z.coerce.number().int().min(1).max(HEALTH_MAX_LIMIT).optional(),
          }),
          response: { 200: HealthSchema, ...errors(400, 401, 403, 404) },
        },
      },
      async (request) => c.agentHealth.health(actorOf(request), request.query),
    );
  };
