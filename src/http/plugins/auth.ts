import type { FastifyInstance, FastifyRequest } from 'fastify';
import { AppError, forbidden, unauthenticated } from '../../lib/errors.js';
import type { Actor } from '../../modules/authz/authz.js';
import type { IdentityService } from '../../modules/identity/identity.service.js';
import type { AgentService } from '../../modules/agent/agent.service.js';
import type { SelfServicePrincipal, SelfServiceService } from '../../modules/self-service/self-service.service.js';

export const SESSION_COOKIE = 'kw_session';
/**
 * Over https the session cookie carries the `__Host-` prefix: a browser then keeps it only when it
 * is Secure, set by this very host and for path /, so a neighbouring subdomain can neither plant
 * nor override it. Plain http (a lab, a test) keeps the plain name, which a browser would refuse
 * to store with the prefix.
 */
export const SECURE_SESSION_COOKIE = '__Host-kw_session';
export function sessionCookieName(secure: boolean): string {
  return secure ? SECURE_SESSION_COOKIE : SESSION_COOKIE;
}
export const CSRF_HEADER = 'x-csrf-token';
/**
 * The end user's self-service session (issue 20): its own cookie, sent by the browser only to the
 * self-service routes (path-scoped), read only by them; console routes never look at it and the
 * self-service routes never look at a console session.
 */
export const SELF_SERVICE_COOKIE = 'kw_recover';
export const SECURE_SELF_SERVICE_COOKIE = '__Secure-kw_recover';
export const SELF_SERVICE_PATH = '/api/v1/recover';
export function selfServiceCookieName(secure: boolean): string {
  return secure ? SECURE_SELF_SERVICE_COOKIE : SELF_SERVICE_COOKIE;
}

/**
 * How a route is reached:
 * - public: no principal needed (login, health, OpenAPI)
 * - authenticated (default): a session cookie or an API token
 * - enrolment: reachable while the owner's "second factor required" rule still waits for this user
 * - agent: only with a device credential (kwd_…), which works nowhere else
 * - self-service: only with an end user's self-service session cookie (never a console session or token)
 */
export type RouteAuth = 'public' | 'authenticated' | 'enrolment' | 'agent' | 'self-service';

declare module 'fastify' {
  interface FastifyContextConfig {
    auth?: RouteAuth;
  }
  interface FastifyRequest {
    actor?: Actor;
    /** The raw session cookie, when the actor came from one (logout and CSRF use it). */
    sessionToken?: string;
    /** An end user signed in for self-service recovery (self-service routes only). */
    selfService?: SelfServicePrincipal;
  }
}

const UNSAFE = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

export function registerAuth(
  app: FastifyInstance,
  identity: Pick<IdentityService, 'authenticateSession' | 'authenticateToken' | 'checkCsrf'>,
  agents: Pick<AgentService, 'authenticateDevice'>,
  opts: { secure?: boolean; selfService?: Pick<SelfServiceService, 'authenticate' | 'checkCsrf'> } = {},
): void {
  const cookieName = sessionCookieName(opts.secure ?? false);
  const endUserCookie = selfServiceCookieName(opts.secure ?? false);
  app.decorateRequest('actor', undefined);
  app.decorateRequest('sessionToken', undefined);
  app.decorateRequest('selfService', undefined);

  app.addHook('onRequest', async (request: FastifyRequest) => {
    const mode: RouteAuth = request.routeOptions.config?.auth ?? 'authenticated';
    if (mode === 'public' || request.is404) return;
    const ctx = { ip: request.ip ?? null, userAgent: (request.headers['user-agent'] ?? '').slice(0, 500) || null };

    const authorization = request.headers.authorization;
    if (mode === 'self-service') {
      // Only the end user's own cookie: no API token, no console session.
      const cookie = request.cookies?.[endUserCookie];
      const p = cookie && opts.selfService && authorization === undefined ? await opts.selfService.authenticate(cookie, ctx) : null;
      if (!p) throw unauthenticated('Sign in with your work account first (self-service recovery), or sign in again: the session lasts 15 minutes.');
      if (UNSAFE.has(request.method)) {
        const header = request.headers[CSRF_HEADER];
        const token = Array.isArray(header) ? header[0] : header;
        if (!token || !opts.selfService!.checkCsrf(p, token))
          throw new AppError('forbidden', `This request needs the ${CSRF_HEADER} header from sign-in (cross-site request protection).`, { csrf: true });
      }
      request.selfService = p;
      request.actor = p.actor;
      return;
    }
    if (mode === 'agent') {
      const m = /^Bearer\s+(\S+)$/i.exec(authorization ?? '');
      const actor = m ? await agents.authenticateDevice(m[1]!, ctx) : null;
      if (!actor)
        throw unauthenticated('The device credential is not valid (revoked, or the device was removed). Enroll the agent again with a new enrollment token.');
      request.actor = actor;
      return;
    }
    if (authorization !== undefined) {
      const m = /^Bearer\s+(\S+)$/i.exec(authorization);
      const actor = m ? await identity.authenticateToken(m[1]!, ctx) : null;
      if (!actor) throw unauthenticated('The API token is not valid: it may be mistyped, expired or revoked.');
      request.actor = actor;
      return; // Tokens are not sent by browsers on their own: no CSRF check.
    }

    const cookie = request.cookies?.[cookieName];
    if (!cookie) throw unauthenticated('Sign in first (POST /api/v1/auth/login), or send an API token as "Authorization: Bearer …".');
    const actor = await identity.authenticateSession(cookie, ctx);
    if (!actor) throw unauthenticated('Your session has ended (signed out, idle too long, or revoked). Sign in again.');
    request.actor = actor;
    request.sessionToken = cookie;

    if (UNSAFE.has(request.method)) {
      const header = request.headers[CSRF_HEADER];
      const token = Array.isArray(header) ? header[0] : header;
      if (!token || !(await identity.checkCsrf(cookie, token))) {
        throw new AppError('forbidden', `This request needs the ${CSRF_HEADER} header from sign-in (cross-site request protection).`, { csrf: true });
      }
    }
    if (actor.session?.mfaEnrolmentRequired && mode !== 'enrolment') {
      throw forbidden(
        'Set up an authenticator app or a passkey first: a second factor is required for everyone (POST /api/v1/me/mfa or /api/v1/me/passkeys/options).',
      );
    }
  });
}

/** The actor of an authenticated route (the hook guarantees it). */
export function actorOf(request: FastifyRequest): Actor {
  if (!request.actor) throw unauthenticated('Sign in first.');
  return request.actor;
}
