import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { csvText } from '../../lib/csv.js';
import type { Container } from '../../container.js';
import { actorOf } from '../plugins/auth.js';
import { LAST_SEEN_BANDS } from '../../domain/device-status.js';
import { AuditEventSchema, Id, KeySummarySchema, Limit, Offset, errors } from '../schemas.js';

const DeviceSummarySchema = z.object({
  id: z.string(),
  client: z.object({ id: z.string(), name: z.string() }),
  name: z.string(),
  domain: z.string().nullable(),
  serial: z.string().nullable(),
  entraDeviceId: z.string().nullable(),
  primaryUser: z.string().nullable(),
  firstSeenAt: z.string(),
  lastSeenAt: z.string(),
  retiredAt: z.string().nullable(),
  keys: z.number(),
});
const DeviceDetailSchema = DeviceSummarySchema.extend({
  facts: z
    .looseObject({
      manufacturer: z.string().nullable().optional(),
      model: z.string().nullable().optional(),
      os: z
        .object({ caption: z.string().nullable().optional(), version: z.string().nullable().optional(), build: z.string().nullable().optional() })
        .nullable()
        .optional(),
      entra: z.object({ joinType: z.string().nullable().optional() }).loose().nullable().optional(),
      tpm: z
        .object({ present: z.boolean().nullable().optional(), ready: z.boolean().nullable().optional(), specVersion: z.string().nullable().optional() })
        .loose()
        .nullable()
        .optional(),
      secureBoot: z.boolean().nullable().optional(),
      agentVersion: z.string().nullable().optional(),
    })
    .nullable()
    .describe("what the device's agent last reported about it (other sources may add fields)"),
  lastCheckinAt: z.string().nullable(),
  volumes: z.array(
    z.object({
      id: z.string(),
      mountPoint: z.string().nullable(),
      type: z.string(),
      volumeGuid: z.string().nullable(),
      encryptionState: z.string().nullable(),
      lastReportedAt: z.string().nullable(),
    }),
  ),
  recoveryKeys: z.array(KeySummarySchema),
});

const EncryptionEnum = z.enum(['encrypted', 'not-encrypted', 'unknown']);
const ComplianceEnum = z.enum(['compliant', 'non-compliant', 'exempt', 'unknown']);
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
  openFindings: z.number().describe("the agent's open key-escrow findings (unescrowed, mismatch, no recovery password, conflict)"),
  compliance: ComplianceEnum.describe('the latest policy evaluation; unknown when no agent reported the drives or not evaluated yet'),
});
const DeviceTableQuery = {
  q: z.string().max(100).optional(),
  encryption: EncryptionEnum.optional(),
  escrowed: z.enum(['true', 'false']).optional(),
  compliance: ComplianceEnum.optional(),
  seen: z.enum(LAST_SEEN_BANDS).optional().describe('last seen within 24 hours (day), 7 days (week), 30 days (month), or longer ago (older)'),
  sort: z.enum(['name', 'lastSeenAt', 'keys', 'encryption', 'escrowed', 'openFindings', 'compliance']).optional(),
  dir: z.enum(['asc', 'desc']).optional(),
};
const escrowedOf = (v?: 'true' | 'false') => (v === undefined ? undefined : v === 'true');

export const deviceRoutes =
  (c: Container): FastifyPluginAsyncZod =>
  async (app) => {
    app.get(
      '/devices',
      {
        schema: {
          tags: ['devices'],
          summary: 'Devices you can see; filter by client, search by name, serial or user',
          querystring: z.strictObject({ clientId: Id.optional(), q: z.string().max(100).optional(), limit: Limit, offset: Offset }),
          response: { 200: z.array(DeviceSummarySchema), ...errors(400, 401, 403) },
        },
      },
      async (request) => c.devices.list(actorOf(request), request.query),
    );
    app.get(
      '/devices/:deviceId',
      {
        schema: {
          tags: ['devices'],
          summary: 'One device with its volumes and key metadata (never a password)',
          params: z.strictObject({ deviceId: Id }),
          response: { 200: DeviceDetailSchema, ...errors(400, 401, 403, 404) },
        },
      },
      async (request) => c.devices.get(actorOf(request), request.params.deviceId),
    );

    // ---------------------------------------------------------------- a client's devices table
    app.get(
      '/clients/:clientId/devices',
      {
        schema: {
          tags: ['clients'],
          summary: "A client's devices table: search, filter by encryption, escrow or compliance status, sort and page on the server",
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
        return c.deviceTable.clientDevices(actorOf(request), request.params.clientId, { ...q, escrowed: escrowedOf(escrowed) });
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
        const r = await c.deviceTable.exportClientDevices(actorOf(request), request.params.clientId, { ...q, escrowed: escrowedOf(escrowed) });
        const slug =
          r.client
            .replace(/[^A-Za-z0-9]+/g, '-')
            .replace(/^-|-$/g, '')
            .slice(0, 60) || 'client';
        reply.header('content-disposition', `attachment; filename="keywarden-devices-${slug}-${new Date().toISOString().slice(0, 10)}.csv"`);
        reply.type('text/csv; charset=utf-8');
        return csvText(
          ['device', 'serial', 'primaryUser', 'encryption', 'keyEscrowed', 'compliance', 'keys', 'openFindings', 'lastSeenAt', 'lastCheckinAt', 'id'],
          r.rows.map((d) => [
            d.name,
            d.serial ?? '',
            d.primaryUser ?? '',
            d.encryption,
            d.escrowed ? 'yes' : 'no',
            d.compliance,
            d.keys,
            d.openFindings,
            d.lastSeenAt,
            d.lastCheckinAt ?? '',
            d.id,
          ]),
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
      async (request) => c.deviceTable.volumeHistory(actorOf(request), request.params.deviceId),
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
      async (request) => c.deviceTable.deviceAudit(actorOf(request), request.params.deviceId, request.query.limit),
    );
  };
