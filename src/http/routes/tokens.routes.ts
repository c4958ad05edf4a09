import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Container } from '../../container.js';
import { actorOf } from '../plugins/auth.js';
import { ClientIds, Id, Ok, RoleName, TokenSchema, errors } from '../schemas.js';

export const tokenRoutes =
  (c: Container): FastifyPluginAsyncZod =>
  async (app) => {
    app.get(
      '/tokens',
      {
        schema: {
          tags: ['tokens'],
          summary: 'API tokens (owners see all, admins their own); never the token itself',
          response: { 200: z.array(TokenSchema), ...errors(401, 403) },
        },
      },
      async (request) => c.identity.listTokens(actorOf(request)),
    );
    app.post(
      '/tokens',
      {
        schema: {
          tags: ['tokens'],
          summary: 'Create an API token for an integration; the token is in this response only',
          body: z.strictObject({
            name: z.string().min(1).max(100),
            role: RoleName,
            clients: ClientIds,
            expiresInDays: z.number().int().min(1).max(3650).optional(),
          }),
          response: { 201: z.object({ token: z.string(), apiToken: TokenSchema }), ...errors(400, 401, 403) },
        },
      },
      async (request, reply) => {
        const r = await c.identity.createToken(actorOf(request), request.body);
        return reply.status(201).send({ token: r.token, apiToken: r.view });
      },
    );
    app.delete(
      '/tokens/:tokenId',
      {
        schema: {
          tags: ['tokens'],
          summary: 'Revoke an API token',
          params: z.strictObject({ tokenId: Id }),
          response: { 200: Ok, ...errors(400, 401, 403, 404) },
        },
      },
      async (request) => {
        await c.identity.revokeToken(actorOf(request), request.params.tokenId);
        return { ok: true as const };
      },
    );
  };
