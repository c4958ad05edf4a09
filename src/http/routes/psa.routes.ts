import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Container } from '../../container.js';
import { actorOf } from '../plugins/auth.js';
import { Id, errors } from '../schemas.js';

/**
 * The PSA connection (HaloPSA, ConnectWise PSA, Autotask; one per vault), each client's PSA company
 * and ticket policy for reveals, and each person's PSA member. Secrets are write-only: answers say
 * which are set, never what they are.
 */

const StatusIds = z.array(z.number().int().min(0)).min(1).max(20);
const Secret = z.string().min(1).max(4000);
const ConnectionInput = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('halopsa'),
    url: z.string().max(500).describe('The HaloPSA address, e.g. https://yourmsp.halopsa.com'),
    authUrl: z.string().max(500).optional().describe('Authorisation server (default: url + /auth)'),
    apiUrl: z.string().max(500).optional().describe('Resource server (default: url + /api)'),
    clientId: z.string().max(200).describe("The API application's client ID (Client ID and Secret (Services))"),
    clientSecret: Secret.optional().describe('Write-only; required the first time'),
    tenant: z.string().max(100).nullable().optional().describe('Hosted HaloPSA: the tenant name'),
    closedStatusIds: StatusIds.optional().describe('Statuses that count as closed (default 9 Closed, 10 Resolved)'),
    closeStatusId: z.number().int().min(0).optional().describe('Status set when Keywarden closes a ticket (default 9)'),
  }),
  z.strictObject({
    kind: z.literal('connectwise'),
    apiUrl: z.string().max(500).describe('Site and codebase, e.g. https://api-na.myconnectwise.net/v4_6_release/apis/3.0'),
    companyId: z.string().max(100).describe('The company ID you sign in with'),
    publicKey: z.string().max(200).describe("The API member's public key"),
    privateKey: Secret.optional().describe("The API member's private key; write-only, required the first time"),
    clientId: z.string().max(100).describe("The integration's clientId from the ConnectWise developer portal"),
    closeStatusName: z.string().max(100).nullable().optional().describe("Status set when Keywarden closes a ticket (default: the board's closed status)"),
  }),
  z.strictObject({
    kind: z.literal('autotask'),
    zoneLookupUrl: z.string().max(500).nullable().optional().describe('Default https://webservices.autotask.net/atservicesrest'),
    userName: z.string().max(200).describe("The API user's user name"),
    secret: Secret.optional().describe("The API user's secret; write-only, required the first time"),
    integrationCode: Secret.optional().describe('The API tracking identifier; write-only, required the first time'),
    closedStatusIds: StatusIds.optional().describe('Statuses that count as closed (default 5 Complete)'),
    closeStatusId: z.number().int().min(0).optional(),
    newStatusId: z.number().int().min(0).optional(),
    defaultPriority: z.number().int().min(0).optional(),
    noteType: z.number().int().min(0).optional(),
    notePublish: z.number().int().min(0).optional(),
  }),
]);
const ConnectionSchema = z.object({
  kind: z.enum(['halopsa', 'connectwise', 'autotask']),
  name: z.string(),
  settings: z.record(z.string(), z.union([z.string(), z.number(), z.array(z.number()), z.null()])).describe('Everything but the secrets'),
  secretsSet: z.array(z.string()).describe('The secrets stored (write-only: never answered)'),
  status: z.enum(['untested', 'ok', 'failing']),
  lastCheckedAt: z.string().nullable(),
  lastError: z.string().nullable(),
  updatedAt: z.string(),
  updatedBy: z.string(),
});
const TicketPolicy = z.enum(['off', 'validate', 'required']);
const ClientPsaSchema = z.object({
  clientId: z.string(),
  clientName: z.string(),
  companyId: z.string().nullable(),
  companyName: z.string().nullable(),
  ticketPolicy: TicketPolicy.describe('off: the ticket is free text; validate: a ticket given is checked; required: no valid ticket, no reveal'),
  requireAssignee: z.boolean().describe("the ticket must be assigned to the revealing person's PSA member"),
  updatedAt: z.string().nullable(),
  updatedBy: z.string().nullable(),
});
const Company = z.object({ id: z.string(), name: z.string(), identifier: z.string().optional() });
const CompaniesSchema = z.object({
  psa: z.string(),
  companies: z.array(Company),
  clients: z.array(
    z.object({
      clientId: z.string(),
      clientName: z.string(),
      companyId: z.string().nullable(),
      companyName: z.string().nullable(),
      suggestion: z.object({ id: z.string(), name: z.string(), score: z.number() }).nullable().describe('the company whose name matches, when not linked'),
    }),
  ),
});
const MemberSchema = z.object({
  userId: z.string(),
  email: z.string(),
  name: z.string(),
  role: z.string(),
  active: z.boolean(),
  member: z.string().nullable(),
  updatedAt: z.string().nullable(),
  updatedBy: z.string().nullable(),
});

export const psaRoutes =
  (c: Container): FastifyPluginAsyncZod =>
  async (app) => {
    app.get(
      '/settings/psa',
      {
        schema: {
          tags: ['psa'],
          summary: 'The PSA connection (null when none); secrets are never answered',
          response: { 200: z.object({ connection: ConnectionSchema.nullable() }), ...errors(401, 403) },
        },
      },
      async (request) => ({ connection: await c.psa.connection(actorOf(request)) }),
    );
    app.put(
      '/settings/psa',
      {
        schema: {
          tags: ['psa'],
          summary:
            'Sets the PSA connection and tests it (owners, fresh step-up); a new address needs the secrets again. Another PSA unlinks every client from its company. Audited.',
          body: ConnectionInput,
          response: { 200: ConnectionSchema, ...errors(400, 401, 403) },
        },
      },
      async (request) => c.psa.setConnection(actorOf(request), request.body),
    );
    app.post(
      '/settings/psa/test',
      {
        schema: {
          tags: ['psa'],
          summary: 'Tests the PSA connection again and records the answer',
          response: { 200: ConnectionSchema, ...errors(401, 403, 404) },
        },
      },
      async (request) => c.psa.test(actorOf(request)),
    );
    app.delete(
      '/settings/psa',
      {
        schema: {
          tags: ['psa'],
          summary: "Removes the PSA connection (owners, fresh step-up): clients' company links and ticket policies are turned off. Audited.",
          response: { 200: z.object({ removed: z.boolean(), policiesTurnedOff: z.number() }), ...errors(401, 403) },
        },
      },
      async (request) => c.psa.removeConnection(actorOf(request)),
    );
    app.get(
      '/psa/companies',
      {
        schema: {
          tags: ['psa'],
          summary: "The PSA's active companies, and per client its link or the company whose name matches (all clients only)",
          response: { 200: CompaniesSchema, ...errors(400, 401, 403, 503) },
        },
      },
      async (request) => c.psa.companies(actorOf(request)),
    );
    app.get(
      '/clients/:clientId/psa',
      {
        schema: {
          tags: ['psa'],
          summary: "The client's PSA company and ticket policy for reveals",
          params: z.strictObject({ clientId: Id }),
          response: { 200: ClientPsaSchema, ...errors(400, 401, 403, 404) },
        },
      },
      async (request) => c.psa.clientSettings(actorOf(request), request.params.clientId),
    );
    app.put(
      '/clients/:clientId/psa',
      {
        schema: {
          tags: ['psa'],
          summary: 'Links the client to a PSA company (all clients only) and sets its ticket policy (integration:manage, fresh step-up). Audited.',
          params: z.strictObject({ clientId: Id }),
          body: z.strictObject({
            companyId: z.string().max(100).nullable().optional().describe('null unlinks'),
            ticketPolicy: TicketPolicy.optional(),
            requireAssignee: z.boolean().optional(),
          }),
          response: { 200: ClientPsaSchema, ...errors(400, 401, 403, 404, 409, 503) },
        },
      },
      async (request) => c.psa.setClientSettings(actorOf(request), request.params.clientId, request.body),
    );
    app.get(
      '/psa/members',
      {
        schema: {
          tags: ['psa'],
          summary: 'Every person and the PSA member linked to them (owners)',
          response: { 200: z.object({ members: z.array(MemberSchema) }), ...errors(401, 403) },
        },
      },
      async (request) => ({ members: await c.psa.members(actorOf(request)) }),
    );
    app.put(
      '/psa/members/:userId',
      {
        schema: {
          tags: ['psa'],
          summary: 'Links a person to their PSA member (agent id, member identifier, resource id or name; owners, fresh step-up). Audited.',
          params: z.strictObject({ userId: Id }),
          body: z.strictObject({ member: z.string().max(200).nullable() }),
          response: { 200: MemberSchema, ...errors(400, 401, 403, 404) },
        },
      },
      async (request) => c.psa.setMember(actorOf(request), request.params.userId, request.body.member),
    );
  };
