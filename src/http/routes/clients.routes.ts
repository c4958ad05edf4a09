import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Container } from '../../container.js';
import { actorOf } from '../plugins/auth.js';
import { Id, Ok, errors } from '../schemas.js';

const ClientSchema = z.object({ id: z.string(), name: z.string(), createdAt: z.string(), viewerCanReveal: z.boolean() });
const ClientSummarySchema = ClientSchema.extend({ devices: z.number(), keys: z.number() });
const EncryptionCountsSchema = z.object({ encrypted: z.number(), 'not-encrypted': z.number(), unknown: z.number() });
const EscrowCountsSchema = z.object({ escrowed: z.number(), notEscrowed: z.number() });
const ComplianceCountsSchema = z
  .object({
    compliant: z.number(),
    'non-compliant': z.number(),
    exempt: z.number(),
    unknown: z.number().describe('no agent reported the drives, or not evaluated yet'),
    devices: z.number(),
    judged: z.number().describe('compliant + non-compliant: exempt and unknown devices are not judged'),
    percentCompliant: z.number().nullable().describe('compliant ÷ judged in whole per cent; null (unknown) when nothing is judged'),
    level: z.enum(['all', 'most', 'some', 'few', 'unknown']).describe('all: none non-compliant; most: ≥ 80 %; some: ≥ 50 %; few: below'),
  })
  .describe('devices by compliance status (the policy evaluation, docs/compliance.md "Numbers"), the same as the client page and the compliance report');

export const clientRoutes =
  (c: Container): FastifyPluginAsyncZod =>
  async (app) => {
    app.get(
      '/clients',
      {
        schema: {
          tags: ['clients'],
          summary: 'Clients you can see, with device and key counts',
          response: { 200: z.array(ClientSummarySchema), ...errors(401, 403) },
        },
      },
      async (request) => c.clients.list(actorOf(request)),
    );
    app.post(
      '/clients',
      {
        schema: {
          tags: ['clients'],
          summary: 'Add a client (it gets its own data key)',
          body: z.strictObject({ name: z.string().min(1).max(200) }),
          response: { 201: ClientSchema, ...errors(400, 401, 403, 409) },
        },
      },
      async (request, reply) => reply.status(201).send(await c.clients.create(actorOf(request), request.body)),
    );
    app.get(
      '/clients/:clientId',
      {
        schema: {
          tags: ['clients'],
          summary: 'One client',
          params: z.strictObject({ clientId: Id }),
          response: { 200: ClientSchema, ...errors(400, 401, 403, 404) },
        },
      },
      async (request) => c.clients.get(actorOf(request), request.params.clientId),
    );
    app.patch(
      '/clients/:clientId',
      {
        schema: {
          tags: ['clients'],
          summary: "Rename a client, or (owner) let the client's own IT staff reveal its keys",
          params: z.strictObject({ clientId: Id }),
          body: z.strictObject({ name: z.string().min(1).max(200).optional(), viewerCanReveal: z.boolean().optional() }),
          response: { 200: ClientSchema, ...errors(400, 401, 403, 404, 409) },
        },
      },
      async (request) => c.clients.update(actorOf(request), request.params.clientId, request.body),
    );
    app.delete(
      '/clients/:clientId',
      {
        schema: {
          tags: ['clients'],
          summary: 'Archive a client: hidden from lists; its keys and audit trail are kept',
          params: z.strictObject({ clientId: Id }),
          response: { 200: Ok, ...errors(400, 401, 403, 404) },
        },
      },
      async (request) => {
        await c.clients.archive(actorOf(request), request.params.clientId);
        return { ok: true as const };
      },
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
                encryption: EncryptionCountsSchema,
                escrow: EscrowCountsSchema,
                openFindings: z.number(),
                compliance: ComplianceCountsSchema.nullable(),
              }),
            ),
            ...errors(401, 403),
          },
        },
      },
      async (request) => c.clientOverview.clientsOverview(actorOf(request)),
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
              encryption: EncryptionCountsSchema,
              escrow: EscrowCountsSchema,
              lastSeen: z.object({ day: z.number(), week: z.number(), month: z.number(), older: z.number() }),
              openFindings: z.number(),
              sources: z.record(z.string(), z.number()),
              compliance: ComplianceCountsSchema,
            }),
            ...errors(400, 401, 403, 404),
          },
        },
      },
      async (request) => c.clientOverview.clientOverview(actorOf(request), request.params.clientId),
    );
  };
