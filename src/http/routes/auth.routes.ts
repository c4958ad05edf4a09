import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Container } from '../../container.js';
import { actorOf, sessionCookieName } from '../plugins/auth.js';
import { Ok, RoleName, UserSchema, errors } from '../schemas.js';
import { PERMISSIONS, type Permission } from '../../modules/authz/authz.js';

const MeSchema = z.object({
  actor: z.object({ type: z.string(), id: z.string(), name: z.string(), role: RoleName, clients: z.union([z.literal('all'), z.array(z.string())]) }),
  permissions: z
    .array(z.enum(PERMISSIONS as [Permission, ...Permission[]]))
    .describe("What this principal may do now (for a token: its grant intersected with its creator's current access)"),
  revealClients: z.union([z.literal('all'), z.array(z.string())]).describe('The clients whose keys this principal may reveal'),
  user: UserSchema.nullable(),
  mfaEnrolmentRequired: z.boolean(),
  stepUpValidUntil: z.string().nullable(),
  secondFactorMissing: z.boolean().describe('A person who manages users (an owner) has no second factor yet: the console reminds them'),
});

/** Sign-in, sign-out, step-up, and the signed-in person's own account (/me). */
export const authRoutes =
  (c: Container): FastifyPluginAsyncZod =>
  async (app) => {
    const cookieOptions = { path: '/', httpOnly: true, sameSite: 'strict' as const, secure: c.config.server.secure };
    const cookieName = sessionCookieName(c.config.server.secure);

    app.post(
      '/auth/login',
      {
        config: { auth: 'public' },
        schema: {
          tags: ['auth'],
          summary: 'Sign in with e-mail and password (and an authenticator or recovery code when set up)',
          security: [],
          body: z.strictObject({ email: z.string().min(1).max(254), password: z.string().min(1).max(256), code: z.string().min(1).max(20).optional() }),
          response: { 200: z.object({ user: UserSchema, csrfToken: z.string(), mfaEnrolmentRequired: z.boolean() }), ...errors(400, 401, 429) },
        },
      },
      async (request, reply) => {
        const r = await c.identity.login({ ...request.body, ip: request.ip ?? null, userAgent: request.headers['user-agent'] ?? null });
        reply.setCookie(cookieName, r.sessionToken, { ...cookieOptions, maxAge: c.config.policy.sessionMaxHours * 3600 });
        return { user: r.user, csrfToken: r.csrfToken, mfaEnrolmentRequired: r.mfaEnrolmentRequired };
      },
    );

    app.post(
      '/auth/logout',
      { config: { auth: 'enrolment' }, schema: { tags: ['auth'], summary: 'Sign out: revokes this session', response: { 200: Ok, ...errors(401, 403) } } },
      async (request, reply) => {
        await c.identity.logout(actorOf(request));
        reply.clearCookie(cookieName, cookieOptions);
        return { ok: true as const };
      },
    );

    app.post(
      '/auth/step-up',
      {
        schema: {
          tags: ['auth'],
          summary: 'Prove the second factor again (needed before revealing a key when the last proof is old)',
          body: z.strictObject({ code: z.string().min(1).max(20) }),
          response: { 200: z.object({ mfaAt: z.string() }), ...errors(400, 401, 403, 429) },
        },
      },
      async (request) => c.identity.stepUp(actorOf(request), request.body.code),
    );

    app.get(
      '/me',
      {
        config: { auth: 'enrolment' },
        schema: { tags: ['me'], summary: 'Who is signed in: role, effective permissions and clients', response: { 200: MeSchema, ...errors(401) } },
      },
      async (request) => c.identity.me(actorOf(request)),
    );

    app.post(
      '/me/password',
      {
        schema: {
          tags: ['me'],
          summary: 'Change your own password (ends every session, including this one)',
          body: z.strictObject({ currentPassword: z.string().min(1).max(256), newPassword: z.string().min(1).max(256) }),
          response: { 200: Ok, ...errors(400, 401, 403) },
        },
      },
      async (request) => {
        await c.identity.changeOwnPassword(actorOf(request), request.body.currentPassword, request.body.newPassword);
        return { ok: true as const };
      },
    );

    app.post(
      '/me/mfa',
      {
        config: { auth: 'enrolment' },
        schema: {
          tags: ['me'],
          summary: 'Start setting up an authenticator app: returns the secret and an otpauth:// URI for a QR code',
          response: { 200: z.object({ secret: z.string(), otpauthUri: z.string() }), ...errors(401, 403, 409) },
        },
      },
      async (request) => c.identity.beginMfa(actorOf(request)),
    );

    app.post(
      '/me/mfa/confirm',
      {
        config: { auth: 'enrolment' },
        schema: {
          tags: ['me'],
          summary: 'Confirm the authenticator app with a code; returns one-time recovery codes, shown only once',
          body: z.strictObject({ code: z.string().min(1).max(20) }),
          response: { 200: z.object({ recoveryCodes: z.array(z.string()) }), ...errors(400, 401, 403, 409) },
        },
      },
      async (request) => c.identity.confirmMfa(actorOf(request), request.body.code),
    );

    app.delete(
      '/me/mfa',
      {
        schema: {
          tags: ['me'],
          summary: 'Remove the authenticator app (needs a current code; refused while the owner requires one)',
          body: z.strictObject({ code: z.string().min(1).max(20) }),
          response: { 200: Ok, ...errors(400, 401, 403) },
        },
      },
      async (request) => {
        await c.identity.disableMfa(actorOf(request), request.body.code);
        return { ok: true as const };
      },
    );
  };
