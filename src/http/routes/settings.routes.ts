import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Container } from '../../container.js';
import { actorOf } from '../plugins/auth.js';
import { errors } from '../schemas.js';

const SettingsSchema = z.object({ requireMfa: z.boolean() });

export const settingsRoutes =
  (c: Container): FastifyPluginAsyncZod =>
  async (app) => {
    app.get('/settings', { schema: { tags: ['settings'], summary: 'Vault settings (owner)', response: { 200: SettingsSchema, ...errors(401, 403) } } }, async (request) =>
      c.identity.getSettings(actorOf(request)),
    );
    app.patch(
      '/settings',
      {
        schema: {
          tags: ['settings'],
          summary: 'Change vault settings (owner): requireMfa makes every user set up an authenticator app',
          body: z.strictObject({ requireMfa: z.boolean().optional() }),
          response: { 200: SettingsSchema, ...errors(400, 401, 403) },
        },
      },
      async (request) => c.identity.updateSettings(actorOf(request), request.body),
    );
  };
