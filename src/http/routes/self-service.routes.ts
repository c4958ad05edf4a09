import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Container } from '../../container.js';
import { SsoRefusal } from '../../modules/sso/sso.oidc.js';
import { SESSION_MINUTES } from '../../modules/self-service/self-service.service.js';
import { SELF_SERVICE_PATH, actorOf, selfServiceCookieName } from '../plugins/auth.js';
import { Id, Ok, errors } from '../schemas.js';
import { unauthenticated } from '../../lib/errors.js';

/**
 * Self-service recovery for end users (issue 20): an end user signs in with their organisation's
 * Entra ID account (the vault-wide multi-tenant app), sees the devices they own or use, and reveals
 * one key of theirs by the first 8 characters of its key ID. Its own session cookie
 * (`kw_recover`, httpOnly, SameSite=Strict, only sent to /api/v1/recover), its own CSRF token
 * (handed over once in `kw_recover_csrf`), 15 minutes. The owner's app settings and each client's
 * switch are ordinary console routes.
 */
export const SELF_SERVICE_STATE_COOKIE = 'kw_recover_state';
export const SELF_SERVICE_CSRF_COOKIE = 'kw_recover_csrf';

const AppSchema = z
  .object({
    issuer: z.string(),
    clientId: z.string(),
    hasSecret: z.boolean().describe('The client secret is write-only: only whether one is stored'),
    credential: z.enum(['secret', 'certificate']),
    enabled: z.boolean(),
    updatedAt: z.string(),
  })
  .nullable();
const AppInput = z.strictObject({
  issuer: z.string().min(1).max(500).describe('https://login.microsoftonline.com/organizations/v2.0 (a multi-tenant Entra ID app)').optional(),
  clientId: z.string().min(1).max(300).describe('The application (client) id').optional(),
  clientSecret: z.string().min(1).max(2000).nullable().describe('Write-only; never returned').optional(),
  enabled: z.boolean().optional(),
});
const Device = z.object({ id: z.string(), name: z.string(), why: z.enum(['owner', 'primary user']) });
const RevealAnswer = z.union([
  z.object({
    status: z.literal('revealed'),
    key: z.object({ keyId: z.string().nullable(), device: z.string().nullable(), recoveryPassword: z.string() }),
    rotation: z.enum(['agent', 'intune']).nullable().describe('the key will be changed after use: by the device, through Intune, or null'),
  }),
  z.object({ status: z.literal('not_found').describe('No key for that ID on your devices (the same answer for any other key)') }),
]);
const redirectSchema = { 302: z.null().describe('A redirect (to Microsoft, or back to the self-service page)') };

export const selfServiceRoutes =
  (c: Container): FastifyPluginAsyncZod =>
  async (app) => {
    const secure = c.config.server.secure;
    const stateCookie = { path: SELF_SERVICE_PATH, httpOnly: true, sameSite: 'lax' as const, secure };
    const redirectUri = (request: FastifyRequest) =>
      `${(c.config.server.publicUrl ?? `${request.protocol}://${request.host}`).replace(/\/$/, '')}${SELF_SERVICE_PATH}/callback`;
    const back = (reply: FastifyReply, e: unknown) => {
      const reason = e instanceof SsoRefusal ? e.reason : 'provider unreachable';
      reply.clearCookie(SELF_SERVICE_STATE_COOKIE, stateCookie);
      return reply.redirect(`/recover?error=${encodeURIComponent(reason.replace(/\s+/g, '-'))}`, 302);
    };
    const ctxOf = (request: FastifyRequest) => ({ ip: request.ip ?? null, userAgent: (request.headers['user-agent'] ?? '').slice(0, 500) || null });
    const principal = (request: FastifyRequest) => {
      if (!request.selfService) throw unauthenticated('Sign in with your work account first.');
      return request.selfService;
    };

    // ------------------------------------------------------------ the end user's side
    app.get(
      '/recover/start',
      {
        config: { auth: 'public' },
        schema: {
          tags: ['self-service'],
          summary: 'End users: sign in with your work account (redirects to Microsoft)',
          security: [],
          response: redirectSchema,
        },
      },
      async (request, reply) => {
        try {
          const r = await c.selfService.start({ redirectUri: redirectUri(request), ip: request.ip ?? null });
          reply.setCookie(SELF_SERVICE_STATE_COOKIE, r.browserToken, { ...stateCookie, maxAge: 600 });
          return reply.redirect(r.url, 302);
        } catch (e) {
          request.log.warn({ problem: e instanceof SsoRefusal ? e.reason : (e as Error).message }, 'self-service sign-in could not start');
          return back(reply, e);
        }
      },
    );

    app.get(
      '/recover/callback',
      {
        config: { auth: 'public' },
        schema: {
          tags: ['self-service'],
          summary: "Microsoft's answer: checks it, opens the end user's short session and goes back to the self-service page",
          security: [],
          querystring: z.looseObject({
            state: z.string().max(500).optional(),
            code: z.string().max(4000).optional(),
            error: z.string().max(200).optional(),
          }),
          response: redirectSchema,
        },
      },
      async (request, reply) => {
        try {
          const query = Object.fromEntries(
            Object.entries(request.query as Record<string, unknown>).filter((e): e is [string, string] => typeof e[1] === 'string' && e[0].length <= 100),
          );
          const r = await c.selfService.callback(query, request.cookies?.[SELF_SERVICE_STATE_COOKIE], ctxOf(request));
          reply.clearCookie(SELF_SERVICE_STATE_COOKIE, stateCookie);
          reply.setCookie(selfServiceCookieName(secure), r.sessionToken, {
            path: SELF_SERVICE_PATH,
            httpOnly: true,
            sameSite: 'strict',
            secure,
            maxAge: SESSION_MINUTES * 60,
          });
          reply.setCookie(SELF_SERVICE_CSRF_COOKIE, r.csrfToken, { path: '/recover', httpOnly: false, sameSite: 'lax', secure, maxAge: 120 });
          return reply.redirect('/recover', 302);
        } catch (e) {
          return back(reply, e);
        }
      },
    );

    app.get(
      '/recover/me',
      {
        config: { auth: 'self-service' },
        schema: {
          tags: ['self-service'],
          summary: 'End users: who is signed in, and the devices they own or primarily use',
          response: {
            200: z.object({
              upn: z.string(),
              name: z.string().nullable(),
              expiresAt: z.string(),
              devices: z.array(Device),
              entraRead: z.boolean().describe('Whether Microsoft Entra could be read at sign-in; false: only devices whose primary user you are are listed'),
              limits: z.object({ attemptsPerHour: z.number(), revealsPerDay: z.number() }),
            }),
            ...errors(401),
          },
        },
      },
      async (request) => c.selfService.me(principal(request)),
    );

    app.post(
      '/recover/reveal',
      {
        config: { auth: 'self-service' },
        schema: {
          tags: ['self-service'],
          summary: 'End users: the recovery key of one of their devices, by the first 8 characters of its key ID and a reason',
          body: z.strictObject({
            keyId: z.string().min(1).max(60).describe('The first 8 characters of the key ID shown on the recovery screen'),
            reason: z.string().min(1).max(300),
          }),
          response: { 200: RevealAnswer, ...errors(400, 401, 403, 429) },
        },
      },
      async (request) => {
        const r = await c.selfService.reveal(principal(request), request.body);
        if (r.status === 'not_found') return r;
        return {
          status: r.status,
          rotation: r.rotation,
          key: { keyId: r.key.keyId, device: r.key.device?.name ?? null, recoveryPassword: r.key.recoveryPassword },
        };
      },
    );

    app.post(
      '/recover/sign-out',
      {
        config: { auth: 'self-service' },
        schema: { tags: ['self-service'], summary: 'End users: end the self-service session', response: { 200: Ok, ...errors(401, 403) } },
      },
      async (request, reply) => {
        await c.selfService.signOut(principal(request));
        reply.clearCookie(selfServiceCookieName(secure), { path: SELF_SERVICE_PATH, httpOnly: true, sameSite: 'strict', secure });
        return { ok: true as const };
      },
    );

    // ------------------------------------------------------------ the MSP's side (console)
    app.get(
      '/settings/self-service',
      {
        schema: {
          tags: ['settings'],
          summary: 'The self-service sign-in app (a multi-tenant Entra ID app), or null',
          response: { 200: AppSchema, ...errors(401, 403) },
        },
      },
      async (request) => c.selfService.getApp(actorOf(request)),
    );
    app.put(
      '/settings/self-service',
      {
        schema: {
          tags: ['settings'],
          summary: `Set up the self-service sign-in app (owner, step-up); its redirect URI is <public URL>${SELF_SERVICE_PATH}/callback`,
          body: AppInput,
          response: { 200: AppSchema, ...errors(400, 401, 403) },
        },
      },
      async (request) => c.selfService.saveApp(actorOf(request), request.body),
    );
    app.get(
      '/settings/self-service/clients',
      {
        schema: {
          tags: ['settings'],
          summary: 'The clients whose end users may recover their own keys (self-service on), by id',
          response: { 200: z.object({ clients: z.array(z.string()) }), ...errors(401, 403) },
        },
      },
      async (request) => c.selfService.enabledClients(actorOf(request)),
    );
    app.get(
      '/clients/:id/self-service',
      {
        schema: {
          tags: ['clients'],
          summary: "Whether the client's end users may recover their own keys (self-service)",
          params: z.object({ id: Id }),
          response: { 200: z.object({ enabled: z.boolean() }), ...errors(401, 403, 404) },
        },
      },
      async (request) => c.selfService.clientSetting(actorOf(request), request.params.id),
    );
    app.put(
      '/clients/:id/self-service',
      {
        schema: {
          tags: ['clients'],
          summary: "Switch self-service recovery on or off for the client's end users (off by default)",
          params: z.object({ id: Id }),
          body: z.strictObject({ enabled: z.boolean() }),
          response: { 200: z.object({ enabled: z.boolean() }), ...errors(400, 401, 403, 404) },
        },
      },
      async (request) => c.selfService.setClient(actorOf(request), request.params.id, request.body.enabled),
    );
  };
