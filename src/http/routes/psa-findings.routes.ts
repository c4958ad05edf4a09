import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Container } from '../../container.js';
import { TICKET_CODES } from '../../domain/compliance/finding-tickets.js';
import { actorOf } from '../plugins/auth.js';
import { Id, errors } from '../schemas.js';

/**
 * Findings → PSA tickets (issue 21): a client's ticket rules, the tickets Keywarden opened for its
 * findings, and "run now". Tickets carry device names and findings only, never a key.
 */

const Code = z.enum(TICKET_CODES);
const RulesSchema = z.object({
  clientId: z.string(),
  enabled: z.boolean(),
  codes: z
    .array(Code)
    .describe(
      "finding codes that open a ticket; rotation_failed: a failed key rotation; entra_consent_lost, entra_users_read_own_keys, intune_escrow_not_required: client-level findings about the client's Microsoft 365 tenant (one ticket each, no device, never in a digest)",
    ),
  priority: z.string().nullable().describe("the PSA's priority id for new tickets (null: the PSA's default)"),
  queue: z.string().nullable().describe('HaloPSA team, ConnectWise board (id or name) or Autotask queue id (null: the default)'),
  digest: z.boolean().describe('one ticket per run listing every new finding instead of one per device and finding'),
  digestThreshold: z.number().describe('a run that would open more tickets than this opens one digest ticket instead'),
  updatedAt: z.string().nullable(),
  updatedBy: z.string().nullable(),
  lastRunAt: z.string().nullable(),
  failingSince: z.string().nullable().describe('since when runs fail (PSA unreachable, credentials revoked); null when the last run worked'),
  lastError: z.string().nullable(),
});
const TicketSchema = z.object({
  id: z.string(),
  ticketId: z.string(),
  ticketNumber: z.string().describe('the number a technician sees in the PSA'),
  digest: z.boolean(),
  device: z
    .object({ id: z.string(), name: z.string() })
    .nullable()
    .describe(
      "null for a client-level finding (about the client's Microsoft 365 tenant: entra_consent_lost, entra_users_read_own_keys, intune_escrow_not_required)",
    ),
  code: Code,
  finding: z.string(),
  state: z.enum(['open', 'closed', 'closed_in_psa']).describe('closed_in_psa: someone closed the ticket in the PSA while the finding persisted'),
  openedAt: z.string(),
  updatedAt: z.string(),
  closedAt: z.string().nullable(),
  closedReason: z.string().nullable(),
});
const RunSchema = z.object({
  clientId: z.string(),
  status: z.enum(['done', 'skipped', 'busy', 'failed']),
  message: z.string(),
  opened: z.number(),
  updated: z.number(),
  closed: z.number(),
  digest: z.boolean(),
});
const Params = z.strictObject({ clientId: Id });
const Short = z.string().max(64);

export const psaFindingsRoutes =
  (c: Container): FastifyPluginAsyncZod =>
  async (app) => {
    app.get(
      '/clients/:clientId/psa/ticket-rules',
      {
        schema: {
          tags: ['psa'],
          summary: "The client's rules for turning findings into PSA tickets (integration:manage; off when never set)",
          params: Params,
          response: { 200: RulesSchema, ...errors(400, 401, 403, 404) },
        },
      },
      async (request) => c.psaFindings.getRules(actorOf(request), request.params.clientId),
    );
    app.put(
      '/clients/:clientId/psa/ticket-rules',
      {
        schema: {
          tags: ['psa'],
          summary: 'Sets which findings open PSA tickets for the client, with priority, queue and digest mode (integration:manage). Audited.',
          params: Params,
          body: z.strictObject({
            enabled: z.boolean(),
            codes: z.array(Code).max(TICKET_CODES.length),
            priority: Short.nullable().optional(),
            queue: Short.nullable().optional(),
            digest: z.boolean().optional(),
            digestThreshold: z.number().int().min(1).max(500).optional(),
          }),
          response: { 200: RulesSchema, ...errors(400, 401, 403, 404) },
        },
      },
      async (request) => c.psaFindings.setRules(actorOf(request), request.params.clientId, request.body),
    );
    app.get(
      '/clients/:clientId/psa/finding-tickets',
      {
        schema: {
          tags: ['psa'],
          summary: 'The PSA tickets Keywarden opened for the client’s findings, open ones first (one row per device and finding, or per client-level finding)',
          params: Params,
          response: { 200: z.array(TicketSchema), ...errors(400, 401, 403, 404) },
        },
      },
      async (request) => c.psaFindings.listTickets(actorOf(request), request.params.clientId),
    );
    app.post(
      '/clients/:clientId/psa/finding-tickets/run',
      {
        schema: {
          tags: ['psa'],
          summary: 'Turns the client’s findings into PSA tickets now (integration:manage): answers how many were opened, updated and closed',
          params: Params,
          response: { 200: RunSchema, ...errors(400, 401, 403, 404, 409) },
        },
      },
      async (request) => c.psaFindings.runNow(actorOf(request), request.params.clientId),
    );
  };
