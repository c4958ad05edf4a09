import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Container } from '../../container.js';
import { actorOf, sessionCookieName } from '../plugins/auth.js';
import { ClientIds, Id, Ok, RoleName, errors } from '../schemas.js';
import { SsoRefusal } from '../../modules/sso/sso.oidc.js';
import { badRequest, forbidden } from '../../lib/errors.js';

/**
 * Single sign-on (OpenID Connect): the public sign-in buttons, the start and the callback (both
 * answer with a redirect), step-up at the provider, and the owner's provider settings.
 *
 * Cookies: `kw_sso_state` binds a started sign-in to this browser (httpOnly, SameSite=Lax so it
 * comes back with the provider's top-level redirect, only under /api/v1/auth/sso, ten minutes);
 * after a sign-in, `kw_sso_csrf` hands the new session's CSRF token to the console once (readable
 * by the console's own script, two minutes, removed by the console as soon as it is read).
 */
export const SSO_STATE_COOKIE = 'kw_sso_state';
export const SSO_CSRF_COOKIE = 'kw_sso_csrf';

const Kind = z.enum(['entra', 'google', 'okta', 'oidc']);
const Rule = z.strictObject({
  claim: z.string().min(1).max(100).describe('Claim of the ID token, e.g. groups, roles, hd, email'),
  value: z.string().min(1).max(500).describe('The value that must appear in the claim (a group id, a role name, a domain)'),
  role: RoleName,
  clients: ClientIds,
});
const ProviderSchema = z.object({
  id: z.string(),
  kind: Kind,
  name: z.string(),
  issuer: z.string(),
  allowedTenants: z.array(z.string()).nullable(),
  clientId: z.string(),
  hasClientSecret: z.boolean().describe('The client secret is write-only: only whether one is stored'),
  scopes: z.array(z.string()),
  enabled: z.boolean(),
  jit: z.boolean(),
  idpMfa: z.boolean(),
  mfaAcr: z.array(z.string()),
  mappingMode: z.enum(['first', 'most']),
  mappings: z.array(z.object({ claim: z.string(), value: z.string(), role: RoleName, clients: z.union([z.literal('all'), z.array(z.string())]) })),
  revalidateMinutes: z.number(),
  createdAt: z.string(),
  updatedAt: z.string(),
});
const fields = {
  name: z.string().min(1).max(100),
  issuer: z.string().min(1).max(500).describe('Issuer URL, e.g. https://login.microsoftonline.com/<tenant id>/v2.0'),
  allowedTenants: z.array(z.string().max(100)).max(500).nullable().describe('Multi-tenant Entra ID app: the tenant ids allowed to sign in'),
  clientId: z.string().min(1).max(300),
  clientSecret: z.string().min(1).max(2000).nullable().describe('Write-only; never returned'),
  scopes: z.array(z.string().max(100)).max(20),
  enabled: z.boolean(),
  jit: z.boolean().describe('Create a Keywarden user on first sign-in when a mapping rule grants access'),
  idpMfa: z.boolean().describe("The provider's multi-factor sign-in (amr/acr) satisfies Keywarden's step-up"),
  mfaAcr: z.array(z.string().min(1).max(200)).max(20).describe('acr values that count as multi-factor'),
  mappingMode: z.enum(['first', 'most']).describe('first: the first matching rule wins; most: the most privileged matching rule wins'),
  mappings: z.array(Rule).max(100),
  revalidateMinutes: z.number().int().min(5).max(1440).describe('How often an SSO session is confirmed again at the provider'),
};
const ProviderCreate = z.strictObject({ kind: Kind, ...fields, name: fields.name, issuer: fields.issuer, clientId: fields.clientId }).partial({
  allowedTenants: true,
  clientSecret: true,
  scopes: true,
  enabled: true,
  jit: true,
  idpMfa: true,
  mfaAcr: true,
  mappingMode: true,
  mappings: true,
  revalidateMinutes: true,
});
const ProviderPatch = z.strictObject(fields).partial();

const redirectSchema = { 302: z.null().describe('A redirect (to the sign-in provider, or back to the console)') };

export const ssoRoutes =
  (c: Container): FastifyPluginAsyncZod =>
  async (app) => {
    const secure = c.config.server.secure;
    const stateCookie = { path: '/api/v1/auth/sso', httpOnly: true, sameSite: 'lax' as const, secure };
    const redirectUri = (request: FastifyRequest) =>
      `${(c.config.server.publicUrl ?? `${request.protocol}://${request.host}`).replace(/\/$/, '')}/api/v1/auth/sso/callback`;
    /** Back to the console's sign-in page with a reason word (never a message from the provider). */
    const backToLogin = (reply: FastifyReply, e: unknown) => {
      const reason = e instanceof SsoRefusal ? e.reason : 'provider unreachable';
      reply.clearCookie(SSO_STATE_COOKIE, stateCookie);
      return reply.redirect(`/login?sso=${encodeURIComponent(reason.replace(/\s+/g, '-'))}`, 302);
    };
    const ctxOf = (request: FastifyRequest) => ({ ip: request.ip ?? null, userAgent: (request.headers['user-agent'] ?? '').slice(0, 500) || null });

    app.get(
      '/auth/sso/providers',
      {
        config: { auth: 'public' },
        schema: {
          tags: ['auth'],
          summary: 'The sign-in providers offered on the sign-in page (names and ids only)',
          security: [],
          response: { 200: z.object({ providers: z.array(z.object({ id: z.string(), name: z.string() })) }) },
        },
      },
      async () => ({ providers: await c.sso.signInOptions() }),
    );

    app.get(
      '/auth/sso/:id/start',
      {
        config: { auth: 'public' },
        schema: {
          tags: ['auth'],
          summary: 'Sign in with a provider: redirects to it (authorization code with PKCE, state and nonce)',
          security: [],
          params: z.object({ id: Id }),
          response: redirectSchema,
        },
      },
      async (request, reply) => {
        try {
          const r = await c.sso.start(request.params.id, { redirectUri: redirectUri(request), purpose: 'login', ip: request.ip ?? null });
          reply.setCookie(SSO_STATE_COOKIE, r.browserToken, { ...stateCookie, maxAge: 600 });
          return reply.redirect(r.url, 302);
        } catch (e) {
          request.log.warn(
            { provider: request.params.id, problem: e instanceof SsoRefusal ? e.reason : (e as Error).message },
            'single sign-on could not start',
          );
          return backToLogin(reply, e);
        }
      },
    );

    app.get(
      '/auth/sso/callback',
      {
        config: { auth: 'public' },
        schema: {
          tags: ['auth'],
          summary: "The provider's answer: checks it, opens the session and redirects to the console",
          security: [],
          // Providers add parameters of their own (session_state, hd, authuser…): they are passed on, bounded.
          querystring: z.looseObject({
            state: z.string().max(500).optional(),
            code: z.string().max(4000).optional(),
            iss: z.string().max(500).optional(),
            error: z.string().max(200).optional(),
            error_description: z.string().max(1000).optional(),
          }),
          response: redirectSchema,
        },
      },
      async (request, reply) => {
        try {
          const query = Object.fromEntries(
            Object.entries(request.query as Record<string, unknown>).filter((e): e is [string, string] => typeof e[1] === 'string' && e[0].length <= 100),
          );
          const r = await c.sso.callback(query, request.cookies?.[SSO_STATE_COOKIE], ctxOf(request));
          reply.clearCookie(SSO_STATE_COOKIE, stateCookie);
          if (r.kind === 'login') {
            reply.setCookie(sessionCookieName(secure), r.sessionToken, {
              path: '/',
              httpOnly: true,
              sameSite: 'strict',
              secure,
              maxAge: c.config.policy.sessionMaxHours * 3600,
            });
            reply.setCookie(SSO_CSRF_COOKIE, r.csrfToken, { path: '/', httpOnly: false, sameSite: 'lax', secure, maxAge: 120 });
          }
          return reply.redirect(r.returnTo, 302);
        } catch (e) {
          return backToLogin(reply, e);
        }
      },
    );

    app.get(
      '/auth/sso/step-up',
      {
        schema: {
          tags: ['auth'],
          summary: 'Step-up at the sign-in provider (sign in there again with multi-factor): redirects to it',
          querystring: z.strictObject({ returnTo: z.string().max(300).optional() }),
          response: { ...redirectSchema, ...errors(400, 401, 403) },
        },
      },
      async (request, reply) => {
        const actor = actorOf(request);
        if (!actor.session) throw forbidden('Step-up is for signed-in people; API tokens do not have a second factor.');
        const p = await c.sso.stepUpProvider(actor);
        if (!p || !actor.session) throw badRequest('This session was not opened through a sign-in provider whose multi-factor sign-in counts for step-up.');
        try {
          const r = await c.sso.start(p.id, {
            redirectUri: redirectUri(request),
            purpose: 'step-up',
            sessionId: actor.session.id,
            returnTo: request.query.returnTo,
          });
          reply.setCookie(SSO_STATE_COOKIE, r.browserToken, { ...stateCookie, maxAge: 600 });
          return reply.redirect(r.url, 302);
        } catch (e) {
          return backToLogin(reply, e);
        }
      },
    );

    app.get(
      '/me/sso',
      {
        schema: {
          tags: ['me'],
          summary: 'Whether this session can step up at its sign-in provider (and which)',
          response: { 200: z.object({ stepUpProvider: z.object({ id: z.string(), name: z.string() }).nullable() }), ...errors(401) },
        },
      },
      async (request) => ({ stepUpProvider: await c.sso.stepUpProvider(actorOf(request)) }),
    );

    // ---------------------------------------------------------------- provider settings (owner)
    app.get(
      '/settings/sso/providers',
      {
        schema: {
          tags: ['settings'],
          summary: 'Sign-in providers (owner); client secrets are never returned',
          response: { 200: z.array(ProviderSchema), ...errors(401, 403) },
        },
      },
      async (request) => c.sso.listProviders(actorOf(request)),
    );
    app.post(
      '/settings/sso/providers',
      {
        schema: {
          tags: ['settings'],
          summary: 'Add a sign-in provider (owner, fresh step-up)',
          body: ProviderCreate,
          response: { 200: ProviderSchema, ...errors(400, 401, 403) },
        },
      },
      async (request) => c.sso.createProvider(actorOf(request), request.body),
    );
    app.patch(
      '/settings/sso/providers/:id',
      {
        schema: {
          tags: ['settings'],
          summary: 'Change a sign-in provider (owner, fresh step-up); a client secret sent replaces the stored one',
          params: z.object({ id: Id }),
          body: ProviderPatch,
          response: { 200: ProviderSchema, ...errors(400, 401, 403, 404) },
        },
      },
      async (request) => c.sso.updateProvider(actorOf(request), request.params.id, request.body),
    );
    app.delete(
      '/settings/sso/providers/:id',
      {
        schema: {
          tags: ['settings'],
          summary: 'Remove a sign-in provider (owner, fresh step-up): its links go and its sessions end',
          params: z.object({ id: Id }),
          response: { 200: Ok, ...errors(401, 403, 404) },
        },
      },
      async (request) => {
        await c.sso.deleteProvider(actorOf(request), request.params.id);
        return { ok: true as const };
      },
    );
    app.post(
      '/settings/sso/providers/:id/test',
      {
        schema: {
          tags: ['settings'],
          summary: 'Test a sign-in provider: reads its discovery document through the egress policy',
          params: z.object({ id: Id }),
          response: { 200: z.object({ ok: z.boolean(), issuer: z.string().nullable(), message: z.string() }), ...errors(401, 403, 404) },
        },
      },
      async (request) => c.sso.testProvider(actorOf(request), request.params.id),
    );
    app.put(
      '/users/:userId/sso-only',
      {
        schema: {
          tags: ['users'],
          summary: 'Make a person sign in only through single sign-on (password sign-in refused), or lift it',
          params: z.object({ userId: Id }),
          body: z.strictObject({ ssoOnly: z.boolean() }),
          response: { 200: Ok, ...errors(400, 401, 403, 404) },
        },
      },
      async (request) => {
        await c.sso.setSsoOnly(actorOf(request), request.params.userId, request.body.ssoOnly);
        return { ok: true as const };
      },
    );
  };
