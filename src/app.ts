import Fastify, { type FastifyInstance } from 'fastify';
import cookie from '@fastify/cookie';
import helmet from 'helmet';
import multipart from '@fastify/multipart';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { jsonSchemaTransform, serializerCompiler, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import type { Container } from './container.js';
import { fastifyTrustProxy } from './config.js';
import { databaseReadiness } from './db/health.js';
import { badRequest } from './lib/errors.js';
import { registerAuth, sessionCookieName } from './http/plugins/auth.js';
import { registerErrorHandler } from './http/plugins/errors.js';
import { registerStrictJson } from './http/plugins/json-body.js';
import { authRoutes } from './http/routes/auth.routes.js';
import { clientRoutes } from './http/routes/clients.routes.js';
import { deviceRoutes } from './http/routes/devices.routes.js';
import { keyRoutes } from './http/routes/keys.routes.js';
import { importRoutes } from './http/routes/imports.routes.js';
import { auditRoutes } from './http/routes/audit.routes.js';
import { userRoutes } from './http/routes/users.routes.js';
import { tokenRoutes } from './http/routes/tokens.routes.js';
import { settingsRoutes } from './http/routes/settings.routes.js';
import { setupRoutes } from './http/routes/setup.routes.js';
import { agentRoutes } from './http/routes/agent.routes.js';
import { agentFileDownloadRoutes, agentFileRoutes } from './http/routes/agent-files.routes.js';
import { agentHealthRoutes } from './http/routes/agent-health.routes.js';
import { graphRoutes } from './http/routes/graph.routes.js';
import { notificationRoutes } from './http/routes/notifications.routes.js';
import { exportRoutes } from './http/routes/exports.routes.js';
import { lifecycleRoutes } from './http/routes/lifecycle.routes.js';
import { complianceRoutes } from './http/routes/compliance.routes.js';
import { directoryRoutes } from './http/routes/directory.routes.js';
import { invitationRoutes } from './http/routes/invitations.routes.js';
import { passkeyRoutes } from './http/routes/passkeys.routes.js';
import { ssoRoutes } from './http/routes/sso.routes.js';
import { revealApprovalRoutes } from './http/routes/reveal-approvals.routes.js';
import { psaFindingsRoutes } from './http/routes/psa-findings.routes.js';
import { selfServiceRoutes } from './http/routes/self-service.routes.js';
import { psaRoutes } from './http/routes/psa.routes.js';
import { createWebConsole } from './http/web.js';
import { registerMetrics } from './http/plugins/metrics.js';
import { RequestLogController, requestLogSerializers } from './http/request-log.js';

export type RouteInfo = { method: string; url: string; auth: string };

/** Log fields that can carry a secret; pino replaces them before anything is written. */
export const REDACT = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-csrf-token"]',
  'res.headers["set-cookie"]',
  '*.password',
  '*.currentPassword',
  '*.newPassword',
  '*.recoveryPassword',
  '*.token',
  '*.sessionToken',
  '*.setupToken',
  '*.csrfToken',
  '*.secret',
  '*.signingSecret',
  'busboyOptions.headers.cookie',
  'busboyOptions.headers.authorization',
  'busboyOptions.headers["x-csrf-token"]',
  '*.recoveryCodes',
  '*.key',
  '*.passphrase',
];

export type AppOptions = { logger?: boolean | object; /** The built web console (default dist/web). */ webDir?: string };

function hasNul(v: unknown, depth = 0): boolean {
  if (typeof v === 'string') return v.includes('\u0000');
  if (depth > 20 || v === null || typeof v !== 'object' || Buffer.isBuffer(v)) return false;
  if (Array.isArray(v)) return v.some((x) => hasNul(x, depth + 1));
  return Object.entries(v).some(([k, x]) => k.includes('\u0000') || hasNul(x, depth + 1));
}

/**
 * Builds the HTTP application around a container without listening, so tests drive it with
 * inject() and `keywarden serve` adds the socket.
 */
export async function buildApp(container: Container, opts: AppOptions = {}): Promise<FastifyInstance & { routeTable: RouteInfo[] }> {
  const { config } = container;
  const app = Fastify({
    logger:
      opts.logger === false
        ? false
        : {
            level: config.server.logLevel,
            redact: { paths: REDACT, censor: '[redacted]' },
            // URLs never carry secrets by design (reveals are POST bodies), but people paste them into
            // search boxes and address bars: request lines carry the route and parameter names only.
            serializers: requestLogSerializers,
            ...(typeof opts.logger === 'object' ? opts.logger : {}),
          },
    trustProxy: fastifyTrustProxy(config.server.trustProxy),
    bodyLimit: 1024 * 1024,
    requestIdHeader: false,
    // One line per request instead of two (RequestLogController).
    logController: new RequestLogController(),
    genReqId: () => `req-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`,
    return503OnClosing: true,
  }).withTypeProvider<ZodTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);

  // A proxy in front while no proxy is trusted: every client looks like the proxy (one shared
  // login throttle, the proxy's address in the audit log). Said once, on the first such request.
  if (config.server.trustProxy === false) {
    let warned = false;
    app.addHook('onRequest', async (request) => {
      if (warned || request.headers['x-forwarded-for'] === undefined) return;
      warned = true;
      request.log.warn(
        "A request carries X-Forwarded-For, so a reverse proxy seems to be in front of Keywarden, but KEYWARDEN_TRUST_PROXY is not set: every client is seen with the proxy's address. Set KEYWARDEN_TRUST_PROXY to the number of proxies (e.g. 1) or their addresses (e.g. 127.0.0.1).",
      );
    });
  }

  // Every route, as registered: the authorization matrix test is generated from this table.
  const routeTable: RouteInfo[] = [];
  app.addHook('onRoute', (r) => {
    // The API explorer's pages and assets are public, like the OpenAPI document they render.
    if (r.url.startsWith('/api/docs')) r.config = { ...(r.config ?? {}), auth: 'public' };
    const methods = Array.isArray(r.method) ? r.method : [r.method];
    for (const m of methods) {
      if (m === 'HEAD' || r.url.startsWith('/api/docs')) continue;
      routeTable.push({ method: m, url: r.url, auth: (r.config as { auth?: string } | undefined)?.auth ?? 'authenticated' });
    }
  });

  // Security headers on every response. The middleware is built once: @fastify/helmet built it
  // again for every request (CSP directives parsed each time), a twentieth of an agent check-in.
  const securityHeaders = helmet({
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        'default-src': ["'self'"],
        'script-src': ["'self'"],
        'style-src': ["'self'"],
        'img-src': ["'self'", 'data:'],
        'font-src': ["'self'"],
        'connect-src': ["'self'"],
        'object-src': ["'none'"],
        'base-uri': ["'none'"],
        'form-action': ["'self'"],
        'frame-ancestors': ["'none'"],
      },
    },
    referrerPolicy: { policy: 'no-referrer' },
    hsts: config.server.secure ? { maxAge: 31536000, includeSubDomains: true } : false,
    crossOriginEmbedderPolicy: false,
  });
  app.addHook('onRequest', (request, reply, done) => securityHeaders(request.raw, reply.raw, (err?: unknown) => done(err as Error | undefined)));
  await app.register(cookie);
  await app.register(multipart, { limits: { fileSize: config.server.uploadLimitBytes, files: 20, fields: 20, fieldSize: 1024 } });
  registerStrictJson(app);

  // Nothing the API answers should sit in a cache: keys, audit rows, tokens.
  // While shutting down, answers to requests still in flight close their connection, so a
  // keep-alive client does not hold the process open after the last response.
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  app.addHook('onSend', async (request, reply) => {
    if (request.url.startsWith('/api/') && !request.url.startsWith('/api/docs')) reply.header('cache-control', 'no-store');
    if (closing) reply.header('connection', 'close');
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'Keywarden API',
        version: '1',
        description:
          'BitLocker recovery-key vault. Authenticate with a session cookie (POST /api/v1/auth/login; send the returned csrfToken as X-CSRF-Token on changes) or an API token (Authorization: Bearer kw_…).',
      },
      components: {
        securitySchemes: {
          session: { type: 'apiKey', in: 'cookie', name: sessionCookieName(config.server.secure) },
          bearer: { type: 'http', scheme: 'bearer' },
        },
      },
      security: [{ session: [] }, { bearer: [] }],
    },
    transform: jsonSchemaTransform,
  });
  await app.register(swaggerUi, { routePrefix: '/api/docs', uiConfig: { deepLinking: false }, staticCSP: false });

  const web = createWebConsole({ dir: opts.webDir });
  registerErrorHandler(app, container.audit, { notFound: web.notFound });
  // A NUL byte is never meaningful input and PostgreSQL refuses it in text: stop it at the door.
  app.addHook('preValidation', async (request) => {
    if (/%00/i.test(request.url) || request.url.includes('\u0000') || hasNul(request.body)) {
      throw badRequest('The request contains a NUL character, which no field accepts.');
    }
  });
  registerAuth(app, container.identity, container.agent, { secure: container.config.server.secure, selfService: container.selfService });
  // GET /metrics and the request counters; off until KEYWARDEN_METRICS_TOKEN is set.
  registerMetrics(app, container.metrics, container.config.scale.metricsToken);

  app.get('/healthz', { config: { auth: 'public' }, schema: { hide: true } }, async () => ({ status: 'ok' }));
  app.get('/readyz', { config: { auth: 'public' }, schema: { hide: true } }, async (_req, reply) => {
    const r = await databaseReadiness(container.database.db);
    if (r.status !== 'ready') return reply.status(503).send(r);
    return { status: 'ready' as const };
  });
  app.get('/api/openapi.json', { config: { auth: 'public' }, schema: { hide: true } }, async () => app.swagger());

  await app.register(
    async (api) => {
      for (const routes of [
        authRoutes,
        clientRoutes,
        deviceRoutes,
        keyRoutes,
        importRoutes,
        auditRoutes,
        userRoutes,
        tokenRoutes,
        settingsRoutes,
        setupRoutes,
        agentRoutes,
        agentFileRoutes,
        agentHealthRoutes,
        graphRoutes,
        directoryRoutes,
        complianceRoutes,
        notificationRoutes,
      ]) {
        await api.register(routes(container));
      }
      // Passkeys (WebAuthn): your passkeys, sign-in and step-up with one.
      await api.register(passkeyRoutes(container));
      // Offline break-glass bundle download.
      await api.register(exportRoutes(container));
      // Retire, legal hold, retention, crypto-shred with approvals, key history.
      await api.register(lifecycleRoutes(container));
      // Invitations by e-mail (issue 19).
      await api.register(invitationRoutes(container));
      // Single sign-on (OpenID Connect): sign-in buttons, start, callback, step-up, provider settings.
      await api.register(ssoRoutes(container));
      // Two-person reveal: policies, device tags, reveal requests.
      await api.register(revealApprovalRoutes(container));
      await api.register(psaFindingsRoutes(container));
      await api.register(selfServiceRoutes(container));
      // The PSA connection, clients' PSA companies and ticket policies, people's PSA members (issue 21).
      await api.register(psaRoutes(container));
    },
    { prefix: '/api/v1' },
  );
  // The rollout kit's downloads (/agent/<file>): registered, so the console's page never answers them.
  await app.register(agentFileDownloadRoutes(container));
  // The web console at /: public page and assets; it talks to /api/v1 like any client.
  await web.register(app);

  await app.ready();
  return Object.assign(app, { routeTable });
}
