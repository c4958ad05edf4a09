import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { stringify } from 'csv-stringify/sync';
import type { Container } from '../../container.js';
import { createConsoleService } from '../../modules/console/console.service.js';
import { createKeysRepo } from '../../modules/keys/keys.repo.js';
import { actorOf, SESSION_COOKIE } from '../plugins/auth.js';
import { AuditEventSchema, Id, KeySummarySchema, UserSchema, errors } from '../schemas.js';

/**
 * Routes the web console needs (issue 7): first-run setup, the helpdesk key-ID lookup, a client's
 * overview and devices table (with CSV export), a device's history, security settings, and the
 * Active Directory connections. Public API like the rest: the console has no private endpoints.
 */

const EncryptionEnum = z.enum(['encrypted', 'not-encrypted', 'unknown']);
const DeviceRowSchema = z.object({
  id: z.string(),
  name: z.string(),
  serial: z.string().nullable(),
  primaryUser: z.string().nullable(),
  lastSeenAt: z.string(),
  lastCheckinAt: z.string().nullable(),
  keys: z.number(),
  encryption: EncryptionEnum,
  escrowed: z.boolean().describe('the vault holds a current recovery key and no finding is open'),
  openFindings: z.number(),
});
const DeviceTableQuery = {
  q: z.string().max(100).optional(),
  encryption: EncryptionEnum.optional(),
  escrowed: z.enum(['true', 'false']).optional(),
  sort: z.enum(['name', 'lastSeenAt', 'keys', 'encryption', 'escrowed', 'openFindings']).optional(),
  dir: z.enum(['asc', 'desc']).optional(),
};
const SecuritySchema = z.object({
  requireMfa: z.boolean(),
  revealHideSeconds: z.number(),
  stepUpMinutes: z.number(),
  revealLimitPerHour: z.number(),
  sessionIdleMinutes: z.number(),
  sessionMaxHours: z.number(),
  clients: z.array(z.object({ id: z.string(), name: z.string(), rotateAfterDisclosure: z.boolean(), viewerCanReveal: z.boolean() })),
});
const DirectoryConnectionSchema = z.object({
  id: z.string(),
  clientId: z.string(),
  hosts: z.array(z.string()),
  port: z.number(),
  tlsMode: z.string(),
  pinnedSha256: z.string().nullable(),
  allowUntrusted: z.boolean(),
  bindDn: z.string(),
  baseDns: z.array(z.string()),
  syncIntervalMinutes: z.number(),
  lastSyncAt: z.string().nullable(),
  lastStatus: z.string().nullable(),
  lastError: z.string().nullable(),
});
const DirectoryRunSchema = z.object({
  id: z.string(),
  status: z.string(),
  mode: z.string(),
  dc: z.string().nullable(),
  objectsRead: z.number(),
  newKeys: z.number(),
  newDevices: z.number(),
  unchanged: z.number(),
  removed: z.number(),
  invalid: z.number(),
  errorText: z.string().nullable(),
  durationMs: z.number().nullable(),
});

const ComplianceCountsSchema = z
  .object({ compliant: z.number(), 'non-compliant': z.number(), exempt: z.number(), unknown: z.number(), notEvaluated: z.number() })
  .describe('devices by compliance status (the policy evaluation); notEvaluated: not evaluated yet');

const escrowedOf = (v?: 'true' | 'false') => (v === undefined ? undefined : v === 'true');

export const consoleRoutes =
  (c: Container): FastifyPluginAsyncZod =>
  async (app) => {
    const svc = createConsoleService({
      db: c.database.db,
      clock: c.clock,
      policy: c.config.policy,
      identity: c.identity,
      keys: c.keys,
      keysRepo: createKeysRepo(),
      audit: c.audit,
    });
    const cookieOptions = { path: '/', httpOnly: true, sameSite: 'strict' as const, secure: c.config.server.secure };

    // ---------------------------------------------------------------- first-run setup
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
        const cookie = request.cookies?.[SESSION_COOKIE];
        const ctx = { ip: request.ip ?? null, userAgent: (request.headers['user-agent'] ?? '').slice(0, 500) || null };
        const signedIn = cookie ? (await c.identity.authenticateSession(cookie, ctx)) !== null : false;
        return { ...(await svc.setupStatus()), signedIn };
      },
    );
    app.post(
      '/setup',
      {
        config: { auth: 'public' },
        schema: {
          tags: ['setup'],
          summary: 'Create the first owner while no user exists (from the server itself only), and sign them in',
          security: [],
          body: z.strictObject({ email: z.string().min(3).max(254), password: z.string().min(1).max(256) }),
          response: { 200: z.object({ user: UserSchema, csrfToken: z.string(), mfaEnrolmentRequired: z.boolean() }), ...errors(400, 403, 409, 429) },
        },
      },
      async (request, reply) => {
        await svc.setupOwner({ ...request.body, ip: request.ip ?? null });
        const r = await c.identity.login({ email: request.body.email, password: request.body.password, ip: request.ip ?? null, userAgent: request.headers['user-agent'] ?? null });
        reply.setCookie(SESSION_COOKIE, r.sessionToken, { ...cookieOptions, maxAge: c.config.policy.sessionMaxHours * 3600 });
        return { user: r.user, csrfToken: r.csrfToken, mfaEnrolmentRequired: r.mfaEnrolmentRequired };
      },
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
      async (request) => svc.consoleSettings(actorOf(request)),
    );

    // ---------------------------------------------------------------- the helpdesk lookup
    app.get(
      '/keys/lookup',
      {
        schema: {
          tags: ['keys'],
          summary:
            'Find the key to reveal by its key ID or first 8+ characters (for roles that may reveal, including helpdesk). One match shows its metadata; several only how many (all of them for roles that may list keys). Never a password.',
          querystring: z.strictObject({ keyId: z.string().min(1).max(64) }),
          response: { 200: z.object({ matches: z.number(), keys: z.array(KeySummarySchema) }), ...errors(400, 401, 403) },
        },
      },
      async (request) => svc.lookup(actorOf(request), request.query.keyId),
    );

    // ---------------------------------------------------------------- clients at a glance
    app.get(
      '/console/clients',
      {
        schema: {
          tags: ['clients'],
          summary: 'Every client you can see at a glance: devices, keys, encryption and key-escrow counts, open findings',
          response: {
            200: z.array(
              z.object({
                id: z.string(),
                name: z.string(),
                devices: z.number(),
                keys: z.number(),
                encryption: z.object({ encrypted: z.number(), 'not-encrypted': z.number(), unknown: z.number() }),
                escrow: z.object({ escrowed: z.number(), notEscrowed: z.number() }),
                openFindings: z.number(),
                compliance: ComplianceCountsSchema.nullable(),
              }),
            ),
            ...errors(401, 403),
          },
        },
      },
      async (request) => svc.clientsOverview(actorOf(request)),
    );
    app.get(
      '/clients/:clientId/overview',
      {
        schema: {
          tags: ['clients'],
          summary: "A client's devices at a glance: encryption, key escrow, last seen, open findings, key sources",
          params: z.strictObject({ clientId: Id }),
          response: {
            200: z.object({
              client: z.object({ id: z.string(), name: z.string() }),
              devices: z.number(),
              keys: z.number(),
              encryption: z.object({ encrypted: z.number(), 'not-encrypted': z.number(), unknown: z.number() }),
              escrow: z.object({ escrowed: z.number(), notEscrowed: z.number() }),
              lastSeen: z.object({ day: z.number(), week: z.number(), month: z.number(), older: z.number() }),
              openFindings: z.number(),
              sources: z.record(z.string(), z.number()),
              compliance: ComplianceCountsSchema,
            }),
            ...errors(400, 401, 403, 404),
          },
        },
      },
      async (request) => svc.clientOverview(actorOf(request), request.params.clientId),
    );
    app.get(
      '/clients/:clientId/devices',
      {
        schema: {
          tags: ['clients'],
          summary: "A client's devices table: search, filter by encryption or escrow, sort and page on the server",
          params: z.strictObject({ clientId: Id }),
          querystring: z.strictObject({
            ...DeviceTableQuery,
            limit: z.coerce.number().int().min(1).max(500).optional(),
            offset: z.coerce.number().int().min(0).max(10_000_000).optional(),
          }),
          response: { 200: z.object({ total: z.number(), items: z.array(DeviceRowSchema) }), ...errors(400, 401, 403, 404) },
        },
      },
      async (request) => {
        const { escrowed, ...q } = request.query;
        return svc.clientDevices(actorOf(request), request.params.clientId, { ...q, escrowed: escrowedOf(escrowed) });
      },
    );
    app.get(
      '/clients/:clientId/devices/export',
      {
        schema: {
          tags: ['clients'],
          summary: "The client's devices table as CSV, with the same filters and order (never a key)",
          params: z.strictObject({ clientId: Id }),
          querystring: z.strictObject(DeviceTableQuery),
          produces: ['text/csv'],
        },
      },
      async (request, reply) => {
        const { escrowed, ...q } = request.query;
        const r = await svc.exportClientDevices(actorOf(request), request.params.clientId, { ...q, escrowed: escrowedOf(escrowed) });
        const slug = r.client.replace(/[^A-Za-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 60) || 'client';
        reply.header('content-disposition', `attachment; filename="keywarden-devices-${slug}-${new Date().toISOString().slice(0, 10)}.csv"`);
        reply.type('text/csv; charset=utf-8');
        // A leading = + - @ would make a spreadsheet run the cell as a formula: quote it out.
        const cell = (v: string | null) => (v && /^[=+\-@\t\r]/.test(v) ? `'${v}` : (v ?? ''));
        return stringify(
          r.rows.map((d) => [cell(d.name), cell(d.serial), cell(d.primaryUser), d.encryption, d.escrowed ? 'yes' : 'no', d.keys, d.openFindings, d.lastSeenAt, d.lastCheckinAt ?? '', d.id]),
          { header: true, columns: ['device', 'serial', 'primaryUser', 'encryption', 'keyEscrowed', 'keys', 'openFindings', 'lastSeenAt', 'lastCheckinAt', 'id'] },
        );
      },
    );

    // ---------------------------------------------------------------- a device's history
    app.get(
      '/devices/:deviceId/volume-history',
      {
        schema: {
          tags: ['devices'],
          summary: "The encryption states the device's agent reported for its volumes, newest first",
          params: z.strictObject({ deviceId: Id }),
          response: {
            200: z.array(
              z.object({
                id: z.string(),
                recordedAt: z.string(),
                mountPoint: z.string().nullable(),
                volumeStatus: z.string().nullable(),
                protectionStatus: z.string().nullable(),
                encryptionMethod: z.string().nullable(),
                encryptionPercentage: z.number().nullable(),
              }),
            ),
            ...errors(400, 401, 403, 404),
          },
        },
      },
      async (request) => svc.volumeHistory(actorOf(request), request.params.deviceId),
    );
    app.get(
      '/devices/:deviceId/audit',
      {
        schema: {
          tags: ['devices'],
          summary: "The device's audit trail: events about the device and its keys, newest first",
          params: z.strictObject({ deviceId: Id }),
          querystring: z.strictObject({ limit: z.coerce.number().int().min(1).max(500).optional() }),
          response: { 200: z.array(AuditEventSchema), ...errors(400, 401, 403, 404) },
        },
      },
      async (request) => svc.deviceAudit(actorOf(request), request.params.deviceId, request.query.limit),
    );

    // ---------------------------------------------------------------- security settings (owner)
    app.get(
      '/settings/security',
      {
        schema: {
          tags: ['settings'],
          summary: 'Security settings (owner): MFA required, how long a revealed password stays on screen, step-up window, reveal limit, rotate after disclosure per client',
          response: { 200: SecuritySchema, ...errors(401, 403) },
        },
      },
      async (request) => svc.getSecurity(actorOf(request)),
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
            clients: z.array(z.strictObject({ id: Id, rotateAfterDisclosure: z.boolean() })).max(1000).optional(),
          }),
          response: { 200: SecuritySchema, ...errors(400, 401, 403) },
        },
      },
      async (request) => svc.updateSecurity(actorOf(request), request.body),
    );

    // ---------------------------------------------------------------- Active Directory connections
    app.get(
      '/directory/connections',
      {
        schema: {
          tags: ['directory'],
          summary: 'Active Directory connections you can see (the bind password is never returned); add them with "keywarden ad connect"',
          response: { 200: z.array(DirectoryConnectionSchema), ...errors(401, 403) },
        },
      },
      async (request) => c.directory.listConnections(actorOf(request)),
    );
    app.post(
      '/directory/connections/:connectionId/test',
      {
        schema: {
          tags: ['directory'],
          summary: 'Test the connection: bind, then whether the account can read BitLocker recovery passwords',
          params: z.strictObject({ connectionId: Id }),
          response: {
            200: z.object({ ok: z.boolean(), detail: z.string(), computers: z.number(), recoveryObjects: z.number(), readablePasswords: z.number() }),
            ...errors(400, 401, 403, 404),
          },
        },
      },
      async (request) => c.directory.testConnection(actorOf(request), request.params.connectionId),
    );
    app.post(
      '/directory/connections/:connectionId/sync',
      {
        schema: {
          tags: ['directory'],
          summary: 'Sync now; answers the run',
          params: z.strictObject({ connectionId: Id }),
          response: { 200: DirectoryRunSchema, ...errors(400, 401, 403, 404, 409) },
        },
      },
      async (request) => c.directory.syncNow(actorOf(request), request.params.connectionId),
    );
  };
