import { z } from 'zod';
import type { FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Container } from '../../container.js';
import { CONSENT_CALLBACK_PATH } from '../../modules/graph/consent-path.js';
import { actorOf } from '../plugins/auth.js';
import { Id, Ok, errors } from '../schemas.js';

const CertificateSchema = z.object({
  thumbprint: z.string().describe('SHA-1 thumbprint (hex), as the Entra admin centre shows it'),
  subject: z.string(),
  notAfter: z.string(),
  daysLeft: z.number(),
  expiringSoon: z.boolean().describe('Within 30 days of its end (or past it): upload a new certificate'),
});
/** Exactly one: a client secret, an uploaded certificate with its private key (PEM), or generateCertificate. */
const credentialFields = {
  clientSecret: z.string().min(1).max(500).optional(),
  certificatePem: z.string().min(1).max(20_000).optional(),
  privateKeyPem: z.string().min(1).max(20_000).optional(),
  generateCertificate: z.boolean().optional(),
};
const PublicCertificate = z.object({ certificatePem: z.string(), thumbprint: z.string(), notAfter: z.string() });
const MspAppSchema = z.object({
  appClientId: z.string(),
  credentialKind: z.enum(['secret', 'certificate']),
  hasSecret: z.boolean(),
  hasCertificate: z.boolean(),
  certificate: CertificateSchema.nullable(),
  loginUrl: z.string(),
  graphUrl: z.string(),
  updatedAt: z.string(),
  updatedBy: z.string(),
});
const ConsentLinkSchema = z.object({
  id: z.string(),
  clientId: z.string(),
  expectedTenantId: z.string().nullable(),
  createdBy: z.string(),
  createdAt: z.string(),
  expiresAt: z.string(),
  usedAt: z.string().nullable(),
  usedTenantId: z.string().nullable(),
});

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
/** The small page the client's administrator sees after consenting (no script, no secret). */
const consentPage = (title: string, text: string) =>
  `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>${esc(title)}</title></head>` +
  `<body><h1>${esc(title)}</h1><p>${esc(text)}</p></body></html>`;

const ConnectionSchema = z.object({
  id: z.string(),
  clientId: z.string(),
  tenantId: z.string(),
  appClientId: z.string(),
  loginUrl: z.string(),
  graphUrl: z.string(),
  syncIntervalMinutes: z.number(),
  enabled: z.boolean(),
  lastSyncAt: z.string().nullable(),
  lastStatus: z.string().nullable().describe("'consent_revoked' when admin consent was withdrawn in the tenant"),
  lastError: z.string().nullable(),
  credentialKind: z.enum(['secret', 'certificate', 'msp_app']),
  certificate: CertificateSchema.nullable(),
  consentLostAt: z.string().nullable(),
});
const RunSchema = z.object({
  id: z.string(),
  clientId: z.string(),
  status: z.string(),
  startedAt: z.string(),
  finishedAt: z.string().nullable(),
  keysListed: z.number(),
  newKeys: z.number(),
  newDevices: z.number(),
  unchanged: z.number(),
  removed: z.number(),
  keyReads: z.number(),
  errors: z.number(),
  errorText: z.string().nullable(),
  /** A succeeded sync whose optional step (portal key reads) failed: which one. */
  warnings: z.string().nullable(),
  durationMs: z.number().nullable(),
});

/** Microsoft Entra ID connections (one per client) and their syncs. The app secret is never returned. */
export const graphRoutes =
  (c: Container): FastifyPluginAsyncZod =>
  async (app) => {
    app.get(
      '/graph/connections',
      { schema: { tags: ['graph'], summary: 'Entra ID connections you can see', response: { 200: z.array(ConnectionSchema), ...errors(401, 403) } } },
      async (request) => c.graph.listConnections(actorOf(request)),
    );
    app.post(
      '/graph/connections',
      {
        schema: {
          tags: ['graph'],
          summary:
            'Link a client to its Entra tenant (app registration with BitlockerKey.Read.All and Device.Read.All application permissions); the secret is stored encrypted',
          body: z.strictObject({
            clientId: Id,
            tenantId: z.string().min(32).max(40),
            appClientId: z.string().min(32).max(40),
            ...credentialFields,
            loginUrl: z.string().max(200).optional(),
            graphUrl: z.string().max(200).optional(),
            syncIntervalMinutes: z.number().int().min(5).max(10080).optional(),
          }),
          response: {
            201: ConnectionSchema.extend({
              certificatePem: z.string().nullable().describe('A generated certificate (public part) to upload to the app registration'),
            }),
            ...errors(400, 401, 403, 404, 409),
          },
        },
      },
      async (request, reply) => reply.status(201).send(await c.graph.createConnection(actorOf(request), request.body)),
    );
    app.delete(
      '/graph/connections/:connectionId',
      {
        schema: {
          tags: ['graph'],
          summary: 'Remove a connection (synced keys stay in the vault)',
          params: z.strictObject({ connectionId: Id }),
          response: { 200: Ok, ...errors(400, 401, 403, 404) },
        },
      },
      async (request) => {
        await c.graph.deleteConnection(actorOf(request), request.params.connectionId);
        return { ok: true as const };
      },
    );
    app.post(
      '/graph/connections/:connectionId/test',
      {
        schema: {
          tags: ['graph'],
          summary: 'Test the connection: sign-in and each permission, with the HTTP status and error code of any failure',
          params: z.strictObject({ connectionId: Id }),
          response: {
            200: z.object({ ok: z.boolean(), checks: z.array(z.object({ check: z.string(), ok: z.boolean(), detail: z.string() })) }),
            ...errors(400, 401, 403, 404),
          },
        },
      },
      async (request) => c.graph.testConnection(actorOf(request), request.params.connectionId),
    );
    app.post(
      '/graph/connections/:connectionId/sync',
      {
        schema: {
          tags: ['graph'],
          summary: 'Sync now (409 while a sync of this tenant runs in any Keywarden process)',
          params: z.strictObject({ connectionId: Id }),
          response: { 200: RunSchema, ...errors(400, 401, 403, 404, 409) },
        },
      },
      async (request) => c.graph.syncNow(actorOf(request), request.params.connectionId),
    );
    app.get(
      '/graph/connections/:connectionId/runs',
      {
        schema: {
          tags: ['graph'],
          summary: 'Recent sync runs with their counts',
          params: z.strictObject({ connectionId: Id }),
          response: { 200: z.array(RunSchema), ...errors(400, 401, 403, 404) },
        },
      },
      async (request) => c.graph.runs(actorOf(request), request.params.connectionId),
    );
    app.get(
      '/graph/connections/:connectionId/certificate',
      {
        schema: {
          tags: ['graph'],
          summary: "A per-client app's public certificate (PEM), to upload to its app registration; never the private key",
          params: z.strictObject({ connectionId: Id }),
          response: { 200: PublicCertificate, ...errors(400, 401, 403, 404) },
        },
      },
      async (request) => c.graph.connectionCertificate(actorOf(request), request.params.connectionId),
    );

    // ------------------------------------------------------------ the MSP's one multi-tenant app
    app.get(
      '/graph/msp-app',
      {
        schema: {
          tags: ['graph'],
          summary: "The MSP's multi-tenant Entra ID app (null when not configured); the credential is write-only",
          response: { 200: MspAppSchema.nullable(), ...errors(401, 403) },
        },
      },
      async (request) => c.mspApp.get(actorOf(request)),
    );
    app.put(
      '/graph/msp-app',
      {
        schema: {
          tags: ['graph'],
          summary:
            "Set the MSP's multi-tenant app: application ID, sign-in and Graph URLs, and (required the first time) one credential; owners, fresh second factor",
          body: z.strictObject({
            appClientId: z.string().min(32).max(40),
            loginUrl: z.string().max(200).optional(),
            graphUrl: z.string().max(200).optional(),
            ...credentialFields,
          }),
          response: {
            200: MspAppSchema.extend({
              certificatePem: z.string().nullable().describe('A generated certificate (public part) to upload to the app registration'),
            }),
            ...errors(400, 401, 403),
          },
        },
      },
      async (request) => c.mspApp.set(actorOf(request), request.body),
    );
    app.get(
      '/graph/msp-app/certificate',
      {
        schema: {
          tags: ['graph'],
          summary: "The MSP app's public certificate (PEM), to upload to the app registration; never the private key",
          response: { 200: PublicCertificate, ...errors(401, 403, 404) },
        },
      },
      async (request) => c.mspApp.certificate(actorOf(request)),
    );
    const callbackUrl = (request: FastifyRequest) =>
      `${(c.config.server.publicUrl ?? `${request.protocol}://${request.host}`).replace(/\/$/, '')}${CONSENT_CALLBACK_PATH}`;
    app.post(
      '/graph/consent-links',
      {
        schema: {
          tags: ['graph'],
          summary: "A one-time admin-consent link (7 days) for a client's administrator: consenting links their tenant to this client",
          body: z.strictObject({ clientId: Id, tenantId: z.string().min(32).max(40).optional() }),
          response: { 201: z.object({ url: z.string(), expiresAt: z.string(), link: ConsentLinkSchema }), ...errors(400, 401, 403, 404) },
        },
      },
      async (request, reply) => reply.status(201).send(await c.mspApp.createConsentLink(actorOf(request), request.body, callbackUrl(request))),
    );
    app.get(
      '/graph/consent-links',
      {
        schema: {
          tags: ['graph'],
          summary: "A client's recent consent links (never their state)",
          querystring: z.strictObject({ clientId: Id }),
          response: { 200: z.array(ConsentLinkSchema), ...errors(400, 401, 403, 404) },
        },
      },
      async (request) => c.mspApp.consentLinks(actorOf(request), request.query.clientId),
    );
    app.get(
      '/graph/consent/callback',
      {
        config: { auth: 'public' },
        schema: {
          tags: ['graph'],
          summary: "Microsoft's admin-consent redirect: checks the one-time state and links the consenting tenant to the client (a small HTML page)",
          security: [],
          // Entra adds parameters of its own (scope…): passed on, bounded.
          querystring: z.looseObject({
            state: z.string().max(500).optional(),
            tenant: z.string().max(100).optional(),
            admin_consent: z.string().max(20).optional(),
            error: z.string().max(200).optional(),
            error_description: z.string().max(2000).optional(),
          }),
          response: { 200: z.string().describe('text/html'), 400: z.string().describe('text/html') },
        },
      },
      async (request, reply) => {
        const q = request.query;
        const r = await c.mspApp.consentCallback(
          { state: q.state, tenant: q.tenant, admin_consent: q.admin_consent, error: q.error },
          { ip: request.ip ?? null, userAgent: (request.headers['user-agent'] ?? '').slice(0, 500) || null },
        );
        reply.type('text/html; charset=utf-8');
        return r.ok
          ? reply.status(200).send(consentPage('Consent recorded', `Consent recorded for ${r.clientName}; you can close this window.`))
          : reply.status(400).send(consentPage('Consent not recorded', r.message));
      },
    );
  };
