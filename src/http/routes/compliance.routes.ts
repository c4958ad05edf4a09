import { PassThrough } from 'node:stream';
import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Container } from '../../container.js';
import { COMPLIANCE_STATUSES } from '../../domain/compliance/evaluate.js';
import { FINDING_CODES } from '../../domain/compliance/findings.js';
import { POSTURE_NOTE_CODES } from '../../domain/compliance/tenant-posture.js';
import { POLICY_FIELDS, policyOverridesSchema, policySchema } from '../../domain/compliance/policy.js';
import { parsePeriod } from '../../modules/reports/period.js';
import { REPORT_KINDS } from '../../modules/reports/reports.service.js';
import { actorOf } from '../plugins/auth.js';
import { Id, IsoTime, Limit, Ok, errors } from '../schemas.js';

const Status = z.enum(COMPLIANCE_STATUSES as [string, ...string[]]);
const PolicyViewSchema = z.object({
  scope: z.enum(['default', 'client']),
  clientId: z.string().nullable(),
  overrides: policyOverridesSchema.describe('the fields set at this level; the rest is inherited'),
  effective: policySchema,
  sources: z.record(policySchema.keyof(), z.enum(['builtin', 'default', 'client'])).describe('where each field of the policy in force comes from'),
  updatedAt: z.string().nullable(),
  updatedBy: z.string().nullable(),
});
const PolicyPatch = z.strictObject({
  set: policyOverridesSchema.optional().describe('fields to set at this level'),
  inherit: z
    .array(z.enum(POLICY_FIELDS as [string, ...string[]]))
    .max(POLICY_FIELDS.length)
    .optional()
    .describe('fields to stop overriding (inherit them again)'),
});
const FindingSchema = z.object({
  code: z.enum(FINDING_CODES),
  volumeId: z.string().nullable(),
  mountPoint: z.string().nullable(),
  protectorId: z.string().nullable(),
  detail: z.string(),
  title: z.string(),
  explanation: z.string(),
  fix: z.string(),
});
const ExemptionSchema = z.object({
  id: z.string(),
  clientId: z.string(),
  device: z.object({ id: z.string(), name: z.string() }),
  reason: z.string(),
  expiresAt: z.string().nullable(),
  createdBy: z.string(),
  createdAt: z.string(),
  revokedAt: z.string().nullable(),
  active: z.boolean(),
});
const Ref = z.object({ id: z.string(), name: z.string() });
const Answer = z.enum(['yes', 'no', 'unknown']);
const TenantPostureSchema = z.object({
  client: Ref,
  tenantId: z.string(),
  usersCanReadOwnKeys: Answer.describe('Entra authorization policy: allowedToReadBitlockerKeysForOwnedDevice (unknown: Policy.Read.All not granted)'),
  usersCanReadOwnKeysReason: z.string().nullable().describe('why the answer is unknown, and what to grant'),
  intuneRequiresEscrow: Answer.describe(
    'every assigned Intune policy that turns BitLocker on requires the recovery information stored first (unknown: DeviceManagementConfiguration.Read.All not granted)',
  ),
  intuneReason: z
    .string()
    .nullable()
    .describe('why the answer is unknown, and what to grant; or why it is no although a policy requires escrow (the policy is not assigned)'),
  intunePolicies: z.array(
    z.object({
      name: z.string(),
      kind: z.enum(['endpoint protection profile', 'settings catalog']),
      requiresEscrow: z.boolean(),
      assigned: z
        .boolean()
        .nullable()
        .describe('assigned to at least one group, all devices or all users (only such a policy counts); null: assignments not read'),
      assignedTo: z
        .string()
        .describe('the assignments in words: "all devices", "2 groups (1 group excluded)", "no group", "only excluded groups (1)", "not read"'),
    }),
  ),
  checkedAt: z.string().describe('the sync that read it'),
  changedAt: z.string().describe('when an answer last changed'),
  lines: z.array(z.object({ question: z.string(), answer: Answer, text: z.string() })).describe('the two answers in product words'),
  notes: z.array(z.object({ code: z.enum(POSTURE_NOTE_CODES), title: z.string(), explanation: z.string(), fix: z.string() })).describe('client-level findings'),
});

export const complianceRoutes =
  (c: Container): FastifyPluginAsyncZod =>
  async (app) => {
    // ------------------------------------------------------------------ policies
    app.get(
      '/compliance/policy',
      {
        schema: {
          tags: ['compliance'],
          summary: 'The MSP-wide default compliance policy (clients inherit it)',
          response: { 200: PolicyViewSchema, ...errors(401, 403) },
        },
      },
      async (request) => c.compliance.getPolicy(actorOf(request), null),
    );
    app.patch(
      '/compliance/policy',
      {
        schema: {
          tags: ['compliance'],
          summary: 'Change the MSP-wide default policy (owner, or an admin of every client); devices are re-evaluated',
          body: PolicyPatch,
          response: { 200: PolicyViewSchema, ...errors(400, 401, 403) },
        },
      },
      async (request) => c.compliance.updatePolicy(actorOf(request), null, request.body),
    );
    app.get(
      '/clients/:clientId/compliance/policy',
      {
        schema: {
          tags: ['compliance'],
          summary: "A client's policy: its own fields, the effective policy and where each field comes from",
          params: z.strictObject({ clientId: Id }),
          response: { 200: PolicyViewSchema, ...errors(400, 401, 403, 404) },
        },
      },
      async (request) => c.compliance.getPolicy(actorOf(request), request.params.clientId),
    );
    app.patch(
      '/clients/:clientId/compliance/policy',
      {
        schema: {
          tags: ['compliance'],
          summary: "Override fields of a client's policy, or let them inherit the default again (owner, admin)",
          params: z.strictObject({ clientId: Id }),
          body: PolicyPatch,
          response: { 200: PolicyViewSchema, ...errors(400, 401, 403, 404) },
        },
      },
      async (request) => c.compliance.updatePolicy(actorOf(request), request.params.clientId, request.body),
    );

    // ------------------------------------------------------------------ exemptions
    app.get(
      '/compliance/exemptions',
      {
        schema: {
          tags: ['compliance'],
          summary: 'Device exemptions (active and past)',
          querystring: z.strictObject({ clientId: Id.optional(), deviceId: Id.optional() }),
          response: { 200: z.array(ExemptionSchema), ...errors(400, 401, 403) },
        },
      },
      async (request) => c.compliance.listExemptions(actorOf(request), request.query),
    );
    app.post(
      '/compliance/exemptions',
      {
        schema: {
          tags: ['compliance'],
          summary: 'Exempt a device from the policy, with a reason and (preferably) an expiry (owner, admin)',
          body: z.strictObject({ deviceId: Id, reason: z.string().min(1).max(500), expiresAt: IsoTime.nullable().optional() }),
          response: { 201: ExemptionSchema, ...errors(400, 401, 403, 404) },
        },
      },
      async (request, reply) => reply.status(201).send(await c.compliance.createExemption(actorOf(request), request.body)),
    );
    app.delete(
      '/compliance/exemptions/:exemptionId',
      {
        schema: {
          tags: ['compliance'],
          summary: 'End an exemption now (owner, admin)',
          params: z.strictObject({ exemptionId: Id }),
          response: { 200: Ok, ...errors(400, 401, 403, 404) },
        },
      },
      async (request) => {
        await c.compliance.revokeExemption(actorOf(request), request.params.exemptionId);
        return { ok: true as const };
      },
    );

    // ------------------------------------------------------------------ status
    app.get(
      '/compliance/devices',
      {
        schema: {
          tags: ['compliance'],
          summary: 'Devices with their compliance status and findings; page with ?after=<last device id>',
          querystring: z.strictObject({ clientId: Id.optional(), status: Status.optional(), after: Id.optional(), limit: Limit }),
          response: {
            200: z.array(z.object({ device: Ref, client: Ref, status: Status, since: z.string(), lastSeenAt: z.string(), findings: z.array(FindingSchema) })),
            ...errors(400, 401, 403),
          },
        },
      },
      async (request) => c.compliance.listStatuses(actorOf(request), request.query as Parameters<Container['compliance']['listStatuses']>[1]),
    );
    app.get(
      '/devices/:deviceId/compliance',
      {
        schema: {
          tags: ['compliance'],
          summary: "A device's compliance: status, since when, findings with explanation and fix, history",
          params: z.strictObject({ deviceId: Id }),
          response: {
            200: z.object({
              device: Ref,
              client: Ref,
              status: Status,
              since: z.string(),
              changedAt: z.string(),
              findings: z.array(FindingSchema),
              history: z.array(z.object({ recordedAt: z.string(), status: z.string(), previousStatus: z.string().nullable(), codes: z.array(z.string()) })),
            }),
            ...errors(400, 401, 403, 404),
          },
        },
      },
      async (request) => c.compliance.deviceStatus(actorOf(request), request.params.deviceId),
    );
    app.get(
      '/compliance/tenant-posture',
      {
        schema: {
          tags: ['compliance'],
          summary:
            'Tenant posture per client, as the last Entra ID sync read it: may end users read their own BitLocker keys, does Intune require escrow before encrypting',
          querystring: z.strictObject({ clientId: Id.optional() }),
          response: { 200: z.array(TenantPostureSchema), ...errors(400, 401, 403, 404) },
        },
      },
      async (request) => c.compliance.tenantPosture(actorOf(request), request.query),
    );
    app.post(
      '/compliance/evaluate',
      {
        schema: {
          tags: ['compliance'],
          summary: 'Evaluate now: one client, or every client you manage (owner, admin); it also runs hourly',
          body: z.strictObject({ clientId: Id.optional() }),
          response: { 200: z.object({ clients: z.number(), evaluated: z.number(), changed: z.number(), events: z.number() }), ...errors(400, 401, 403, 404) },
        },
      },
      async (request) => c.compliance.evaluate(actorOf(request), request.body),
    );

    // ------------------------------------------------------------------ reports
    app.get(
      '/reports',
      {
        schema: {
          tags: ['reports'],
          summary: 'The reports you may read: title, what each holds, and its formats',
          response: {
            200: z.array(z.object({ report: z.enum(REPORT_KINDS), title: z.string(), description: z.string(), formats: z.array(z.enum(['csv', 'pdf'])) })),
            ...errors(401),
          },
        },
      },
      async (request) => c.reports.catalog(actorOf(request)),
    );
    app.get(
      '/reports/:report',
      {
        schema: {
          tags: ['reports'],
          summary:
            'A report as a file (CSV for every report; PDF for compliance-summary and recovery-audit), streamed; month or from/to limit the reveals and boots listed and the compliance trend',
          params: z.strictObject({ report: z.enum(REPORT_KINDS) }),
          querystring: z.strictObject({
            clientId: Id.optional(),
            format: z.enum(['csv', 'pdf']).default('csv'),
            month: z.string().max(40).optional().describe('a calendar month, YYYY-MM (e.g. 2026-11); not with from/to'),
            from: z.string().max(40).optional().describe('first day included, YYYY-MM-DD (UTC); without it, from the beginning'),
            to: z.string().max(40).optional().describe('last day included, YYYY-MM-DD (UTC); without it, up to now'),
          }),
          produces: ['text/csv', 'application/pdf'],
        },
      },
      async (request, reply) => {
        const { report } = request.params;
        const { clientId, format, month, from, to } = request.query;
        // Checks and the audit record happen before the first byte, so an error is still an HTTP error.
        const prepared = await c.reports.prepare(actorOf(request), { report, clientId, format, period: parsePeriod({ month, from, to }) });
        const body = new PassThrough();
        prepared.write(body).catch((e: Error) => body.destroy(e));
        reply.header('content-disposition', `attachment; filename="${prepared.filename}"`);
        reply.type(prepared.contentType);
        return reply.send(body);
      },
    );
  };
