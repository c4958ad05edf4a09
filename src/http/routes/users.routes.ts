import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Container } from '../../container.js';
import { actorOf } from '../plugins/auth.js';
import { ClientIds, Id, Ok, RoleName, UserSchema, errors } from '../schemas.js';

export const userRoutes =
  (c: Container): FastifyPluginAsyncZod =>
  async (app) => {
    app.get(
      '/users',
      { schema: { tags: ['users'], summary: 'All users (owner)', response: { 200: z.array(UserSchema), ...errors(401, 403) } } },
      async (request) => c.identity.listUsers(actorOf(request)),
    );
    app.post(
      '/users',
      {
        schema: {
          tags: ['users'],
          summary: 'Create a user with a role, global ("all") or limited to listed clients (owner)',
          body: z.strictObject({
            email: z.string().min(3).max(254),
            name: z.string().max(200).optional(),
            password: z.string().min(1).max(256),
            role: RoleName,
            clients: ClientIds,
          }),
          response: { 201: UserSchema, ...errors(400, 401, 403, 409) },
        },
      },
      async (request, reply) => reply.status(201).send(await c.identity.createUser(actorOf(request), request.body)),
    );
    app.get(
      '/users/:userId',
      {
        schema: {
          tags: ['users'],
          summary: 'One user (owner)',
          params: z.strictObject({ userId: Id }),
          response: { 200: UserSchema, ...errors(400, 401, 403, 404) },
        },
      },
      async (request) => c.identity.getUser(actorOf(request), request.params.userId),
    );
    app.patch(
      '/users/:userId',
      {
        schema: {
          tags: ['users'],
          summary: 'Rename, disable / enable (disabling ends their sessions), or change role and clients (owner)',
          params: z.strictObject({ userId: Id }),
          body: z.strictObject({
            name: z.string().max(200).optional(),
            status: z.enum(['active', 'disabled']).optional(),
            role: RoleName.optional(),
            clients: ClientIds.optional(),
          }),
          response: { 200: UserSchema, ...errors(400, 401, 403, 404) },
        },
      },
      async (request) => c.identity.updateUser(actorOf(request), request.params.userId, request.body),
    );
    app.post(
      '/users/:userId/password',
      {
        schema: {
          tags: ['users'],
          summary: "Set a user's password (owner); ends their sessions and lifts a lockout",
          params: z.strictObject({ userId: Id }),
          body: z.strictObject({ password: z.string().min(1).max(256) }),
          response: { 200: Ok, ...errors(400, 401, 403, 404) },
        },
      },
      async (request) => {
        await c.identity.resetPassword(actorOf(request), request.params.userId, request.body.password);
        return { ok: true as const };
      },
    );
  };
