import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Container } from '../../container.js';
import { actorOf } from '../plugins/auth.js';
import { Id, errors } from '../schemas.js';

/**
 * Vault-wide settings, every route under /settings, and what every console needs to know. Changing
 * a setting needs a principal for all clients with a fresh second factor.
 */

const SettingsSchema = z.object({ requireMfa: z.boolean() });
const SecuritySchema = z.object({
  requireMfa: z.boolean(),
  revealHideSeconds: z.number(),
  stepUpMinutes: z.number(),
  revealLimitPerHour: z.number(),
  sessionIdleMinutes: z.number(),
  sessionMaxHours: z.number(),
  clients: z.array(z.object({ id: z.string(), name: z.string(), rotateAfterDisclosure: z.boolean(), viewerCanReveal: z.boolean() })),
});
const BrandingSchema = z.object({ mspName: z.string(), hasLogo: z.boolean(), logoBytes: z.number().nullable() });

export const settingsRoutes =
  (c: Container): FastifyPluginAsyncZod =>
  async (app) => {
    app.get(
      '/settings',
      { schema: { tags: ['settings'], summary: 'Vault settings (owner)', response: { 200: SettingsSchema, ...errors(401, 403) } } },
      async (request) => c.settings.get(actorOf(request)),
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
      async (request) => c.settings.update(actorOf(request), request.body),
    );

    // ---------------------------------------------------------------- security settings (owner)
    app.get(
      '/settings/security',
      {
        schema: {
          tags: ['settings'],
          summary:
            'Security settings (owner): MFA required, how long a revealed password stays on screen, step-up window, reveal limit, rotate after disclosure per client',
          response: { 200: SecuritySchema, ...errors(401, 403) },
        },
      },
      async (request) => c.settings.getSecurity(actorOf(request)),
    );
    app.patch(
      '/settings/security',
      {
        schema: {
          tags: ['settings'],
          summary: 'Change security settings (owner); the step-up window and reveal limit come from the server configuration',
          body: z.strictObject({
            requireMfa: z.boolean().optional(),
            revealHideSeconds: z.number().int().min(10).max(600).optional(),
            clients: z
              .array(z.strictObject({ id: Id, rotateAfterDisclosure: z.boolean() }))
              .max(1000)
              .optional(),
          }),
          response: { 200: SecuritySchema, ...errors(400, 401, 403) },
        },
      },
      async (request) => c.settings.updateSecurity(actorOf(request), request.body),
    );

    // ---------------------------------------------------------------- branding on reports (owner)
    app.get(
      '/settings/branding',
      { schema: { tags: ['settings'], summary: "The MSP's name and logo on reports (owner)", response: { 200: BrandingSchema, ...errors(401, 403) } } },
      async (request) => c.settings.getBranding(actorOf(request)),
    );
    app.patch(
      '/settings/branding',
      {
        schema: {
          tags: ['settings'],
          summary: "Set the MSP's name and logo (a PNG of at most 256 KB, base64; null removes it) for reports (owner)",
          body: z.strictObject({ mspName: z.string().min(1).max(100).optional(), logoPngBase64: z.string().max(360_000).nullable().optional() }),
          response: { 200: BrandingSchema, ...errors(400, 401, 403) },
        },
      },
      async (request) => c.settings.updateBranding(actorOf(request), request.body),
    );

    // ---------------------------------------------------------------- console settings (every signed-in person)
    app.get(
      '/console/settings',
      {
        schema: {
          tags: ['console'],
          summary: 'What the console needs to know: how long a revealed password stays on screen, the step-up window',
          response: { 200: z.object({ revealHideSeconds: z.number(), stepUpMinutes: z.number() }), ...errors(401, 403) },
        },
      },
      async (request) => c.settings.console(actorOf(request)),
    );
  };
