import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Container } from '../../container.js';
import { sessionCookieName } from '../plugins/auth.js';
import { UserSchema, errors } from '../schemas.js';

/**
 * First-run setup: the first owner, made from a browser while no user exists, by whoever holds the
 * one-time setup token printed on the server's terminal by `keywarden serve` or `keywarden init`.
 */
export const setupRoutes =
  (c: Container): FastifyPluginAsyncZod =>
  async (app) => {
    const cookieOptions = { path: '/', httpOnly: true, sameSite: 'strict' as const, secure: c.config.server.secure };

    app.get(
      '/setup',
      {
        config: { auth: 'public' },
        schema: {
          tags: ['setup'],
          summary: 'Whether the vault still needs its first owner (no user exists yet), and whether this browser is signed in',
          security: [],
          response: { 200: z.object({ needed: z.boolean(), signedIn: z.boolean() }) },
        },
      },
      async (request) => {
        // Lets the console choose between sign-in and its pages without a failing /me request.
        const cookie = request.cookies?.[sessionCookieName(c.config.server.secure)];
        const ctx = { ip: request.ip ?? null, userAgent: (request.headers['user-agent'] ?? '').slice(0, 500) || null };
        const signedIn = cookie ? (await c.identity.authenticateSession(cookie, ctx)) !== null : false;
        return { ...(await c.setup.status()), signedIn };
      },
    );
    app.post(
      '/setup',
      {
        config: { auth: 'public' },
        schema: {
          tags: ['setup'],
          summary:
            'Create the first owner while no user exists, with the one-time setup token that keywarden serve (or init) printed on the server, and sign them in',
          security: [],
          body: z.strictObject({
            email: z.string().min(3).max(254),
            password: z.string().min(1).max(256),
            /** Checked by the service, so a missing token is a refusal (403, audited) rather than a form error. */
            setupToken: z.string().max(200).optional(),
          }),
          response: { 200: z.object({ user: UserSchema, csrfToken: z.string(), mfaEnrolmentRequired: z.boolean() }), ...errors(400, 403, 409, 429) },
        },
      },
      async (request, reply) => {
        await c.setup.createOwner({ ...request.body, ip: request.ip ?? null, userAgent: (request.headers['user-agent'] ?? '').slice(0, 500) || null });
        const r = await c.identity.login({
          email: request.body.email,
          password: request.body.password,
          ip: request.ip ?? null,
          userAgent: request.headers['user-agent'] ?? null,
        });
        reply.setCookie(sessionCookieName(c.config.server.secure), r.sessionToken, { ...cookieOptions, maxAge: c.config.policy.sessionMaxHours * 3600 });
        return { user: r.user, csrfToken: r.csrfToken, mfaEnrolmentRequired: r.mfaEnrolmentRequired };
      },
    );
  };
