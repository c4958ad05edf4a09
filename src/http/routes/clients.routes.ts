import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Container } from '../../container.js';
import { actorOf } from '../plugins/auth.js';
import { Id, Ok, errors } from '../schemas.js';

const ClientSchema = z.object({ id: z.string(), name: z.string(), createdAt: z.string(), viewerCanReveal: z.boolean() });
const ClientSummarySchema = ClientSchema.extend({ devices: z.number(), keys: z.number() });

export const clientRoutes =
  (c: Container): FastifyPluginAsyncZod =>
  async (app) => {
    app.get(
      '/clients',
      { schema: { tags: ['clients'], summary: 'Clients you can see, with device and key counts', response: { 200: z.array(ClientSummarySchema), ...errors(401, 403) } } },
      async (request) => c.clients.list(actorOf(request)),
    );
    app.post(
      '/clients',
      {
        schema: {
          tags: ['clients'],
          summary: 'Add a client (it gets its own data key)',
          body: z.strictObject({ name: z.string().min(1).max(200) }),
          response: { 201: ClientSchema, ...errors(400, 401, 403, 409) },
        },
      },
      async (request, reply) => reply.status(201).send(await c.clients.create(actorOf(request), request.body)),
    );
    app.get(
      '/clients/:clientId',
      { schema: { tags: ['clients'], summary: 'One client', params: z.strictObject({ clientId: Id }), response: { 200: ClientSchema, ...errors(400, 401, 403, 404) } } },
      async (request) => c.clients.get(actorOf(request), request.params.clientId),
    );
    app.patch(
      '/clients/:clientId',
      {
        schema: {
          tags: ['clients'],
          summary: "Rename a client, or (owner) let the client's own IT staff reveal its keys",
          params: z.strictObject({ clientId: Id }),
          body: z.strictObject({ name: z.string().min(1).max(200).optional(), viewerCanReveal: z.boolean().optional() }),
          response: { 200: ClientSchema, ...errors(400, 401, 403, 404, 409) },
        },
      },
      async (request) => c.clients.update(actorOf(request), request.params.clientId, request.body),
    );
    app.delete(
      '/clients/:clientId',
      {
        schema: {
          tags: ['clients'],
          summary: 'Archive a client: hidden from lists; its keys and audit trail are kept',
          params: z.strictObject({ clientId: Id }),
          response: { 200: Ok, ...errors(400, 401, 403, 404) },
        },
      },
      async (request) => {
        await c.clients.archive(actorOf(request), request.params.clientId);
        return { ok: true as const };
      },
    );
  };
