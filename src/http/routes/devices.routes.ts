import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Container } from '../../container.js';
import { actorOf } from '../plugins/auth.js';
import { Id, KeySummarySchema, Limit, Offset, errors } from '../schemas.js';

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
  facts: z.record(z.string(), z.unknown()).nullable(),
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
  };
