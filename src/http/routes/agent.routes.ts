import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Container } from '../../container.js';
import {
  AGENT_JOB_KINDS,
  CheckinRequest,
  CheckinResponse,
  EnrollRequest,
  EnrollResponse,
  JOB_ENCRYPTION_METHODS,
  UploadRequest,
  UploadResponse,
} from '../../modules/agent/agent.protocol.js';
import { FINDING_CODES } from '../../domain/compliance/findings.js';
import { ESCROW_FINDING_KINDS, FINDING_SEVERITIES } from '../../domain/escrow-findings.js';
import { actorOf } from '../plugins/auth.js';
import { Id, Ok, errors } from '../schemas.js';

const EnrollmentTokenSchema = z.object({
  id: z.string(),
  clientId: z.string(),
  prefix: z.string(),
  createdAt: z.string(),
  expiresAt: z.string(),
  maxUses: z.number().nullable(),
  uses: z.number(),
  revokedAt: z.string().nullable(),
});
const JobSchema = z.object({
  id: z.string(),
  kind: z.string(),
  state: z.string().describe('pending | sent | awaiting_removal | succeeded | failed | expired | cancelled'),
  mountPoint: z.string().nullable(),
  protectorId: z.string().nullable(),
  encryptionMethod: z.string().nullable().describe("enable-encryption: the method asked for; null: Windows' default"),
  usedSpaceOnly: z.boolean().nullable().describe('enable-encryption: encrypt used space only'),
  newProtectorId: z.string().nullable().describe('the recovery password the job escrowed (rotate: the new one)'),
  origin: z.string().nullable().describe('manual | bulk | policy | disclosure | rotation'),
  attempts: z.number(),
  maxAttempts: z.number(),
  detail: z.string().nullable().describe("the agent's last result, or why the server did not accept it"),
  createdAt: z.string(),
  expiresAt: z.string(),
  sentAt: z.string().nullable(),
  finishedAt: z.string().nullable(),
});
const ClientJobSchema = JobSchema.extend({ device: z.object({ id: z.string(), name: z.string() }) });
const JOB_STATE_FILTERS = ['active', 'pending', 'sent', 'awaiting_removal', 'succeeded', 'failed', 'expired', 'cancelled'] as const;
const JobKind = z.enum(AGENT_JOB_KINDS);
const MountPoint = z.string().min(1).max(260);
const FindingSchema = z.object({
  id: z.string(),
  kind: z.enum(ESCROW_FINDING_KINDS),
  title: z.string().describe('the kind in product words'),
  severity: z.enum(FINDING_SEVERITIES).describe('high: the vault cannot unlock the drive today; medium: the right password is stored, among others'),
  detail: z.string(),
  protectorId: z.string().nullable(),
  mountPoint: z.string().nullable(),
  client: z.object({ id: z.string(), name: z.string() }),
  device: z.object({ id: z.string(), name: z.string() }),
  openedAt: z.string(),
  resolvedAt: z.string().nullable(),
});

const PendingLinkSchema = z.object({
  device: z.object({ id: z.string(), name: z.string() }),
  claims: z.object({ id: z.string(), name: z.string() }).nullable(),
  matchedOn: z.string().nullable(),
  client: z.object({ id: z.string(), name: z.string() }),
  enrolledAt: z.string(),
});

/** The agent's three calls (docs/agent-protocol.md) and the admin side: tokens, jobs, findings. */
export const agentRoutes =
  (c: Container): FastifyPluginAsyncZod =>
  async (app) => {
    app.post(
      '/agent/enroll',
      {
        config: { auth: 'public' },
        schema: {
          tags: ['agent'],
          summary: 'Agent: enroll a device with an enrollment token',
          security: [],
          body: EnrollRequest,
          response: { 200: EnrollResponse, ...errors(400, 401) },
        },
      },
      async (request) => c.agent.enroll(request.body, { ip: request.ip ?? null, userAgent: request.headers['user-agent'] ?? null }),
    );
    app.post(
      '/agent/checkin',
      {
        config: { auth: 'agent' },
        schema: {
          tags: ['agent'],
          summary: 'Agent: report facts, volumes (fingerprints only), events and job results; get password requests and jobs',
          body: CheckinRequest,
          response: { 200: CheckinResponse, ...errors(400, 401, 403, 409, 413) },
        },
      },
      async (request) => c.agent.checkin(actorOf(request), request.body),
    );
    app.post(
      '/agent/keys',
      {
        config: { auth: 'agent' },
        schema: {
          tags: ['agent'],
          summary: 'Agent: upload recovery passwords the server asked for',
          body: UploadRequest,
          response: { 200: UploadResponse, ...errors(400, 401, 403, 404, 409, 413) },
        },
      },
      async (request) => c.agent.uploadKeys(actorOf(request), request.body),
    );

    app.get(
      '/agent/enrollment-tokens',
      {
        schema: {
          tags: ['agent'],
          summary: 'Enrollment tokens (never the token itself)',
          querystring: z.strictObject({ clientId: Id.optional() }),
          response: { 200: z.array(EnrollmentTokenSchema), ...errors(400, 401, 403) },
        },
      },
      async (request) => c.agent.listEnrollmentTokens(actorOf(request), request.query.clientId),
    );
    app.post(
      '/agent/enrollment-tokens',
      {
        schema: {
          tags: ['agent'],
          summary: "Create an enrollment token for one client's agents; the token is in this response only",
          body: z.strictObject({
            clientId: Id,
            expiresInDays: z.number().int().min(1).max(365).optional(),
            maxUses: z.number().int().min(1).max(1_000_000).nullable().optional(),
          }),
          response: { 201: z.object({ token: z.string(), enrollmentToken: EnrollmentTokenSchema }), ...errors(400, 401, 403, 404) },
        },
      },
      async (request, reply) => {
        const r = await c.agent.createEnrollmentToken(actorOf(request), request.body);
        return reply.status(201).send({ token: r.token, enrollmentToken: r.view });
      },
    );
    app.delete(
      '/agent/enrollment-tokens/:tokenId',
      {
        schema: {
          tags: ['agent'],
          summary: 'Revoke an enrollment token',
          params: z.strictObject({ tokenId: Id }),
          response: { 200: Ok, ...errors(400, 401, 403, 404) },
        },
      },
      async (request) => {
        await c.agent.revokeEnrollmentToken(actorOf(request), request.params.tokenId);
        return { ok: true as const };
      },
    );
    app.get(
      '/devices/:deviceId/jobs',
      {
        schema: {
          tags: ['agent'],
          summary: "A device's agent jobs",
          params: z.strictObject({ deviceId: Id }),
          response: { 200: z.array(JobSchema), ...errors(400, 401, 403, 404) },
        },
      },
      async (request) => c.agent.listJobs(actorOf(request), request.params.deviceId),
    );
    app.post(
      '/devices/:deviceId/jobs',
      {
        schema: {
          tags: ['agent'],
          summary:
            'Queue work for the device agent: rotate, backup, backup-to-ad, backup-to-entra, re-escrow (a recovery password or a volume), enable-encryption, resume-protection, add-recovery-password (a volume)',
          params: z.strictObject({ deviceId: Id }),
          body: z.strictObject({
            kind: JobKind,
            mountPoint: MountPoint.optional().describe('the volume, e.g. "C:"; enable-encryption, resume-protection and add-recovery-password need it'),
            protectorId: z.string().max(40).optional().describe('a recovery password (key ID); backup, backup-to-ad and backup-to-entra need it'),
            encryptionMethod: z
              .enum(['default', ...JOB_ENCRYPTION_METHODS])
              .optional()
              .describe("enable-encryption only: the method; default: Windows' own"),
            usedSpaceOnly: z.boolean().optional().describe('enable-encryption only: encrypt used space only (default true)'),
          }),
          response: { 201: JobSchema, ...errors(400, 401, 403, 404) },
        },
      },
      async (request, reply) => reply.status(201).send(await c.agent.queueJobFor(actorOf(request), request.params.deviceId, request.body)),
    );
    app.get(
      '/clients/:clientId/agent-jobs',
      {
        schema: {
          tags: ['agent'],
          summary: "A client's agent jobs with their results, newest first (state=active: pending, sent or awaiting removal)",
          params: z.strictObject({ clientId: Id }),
          querystring: z.strictObject({
            state: z.enum(JOB_STATE_FILTERS).optional(),
            kind: JobKind.optional(),
            limit: z.coerce.number().int().min(1).max(1000).optional(),
          }),
          response: { 200: z.array(ClientJobSchema), ...errors(400, 401, 403, 404) },
        },
      },
      async (request) => c.agent.listClientJobs(actorOf(request), request.params.clientId, request.query),
    );
    app.post(
      '/clients/:clientId/agent-jobs',
      {
        schema: {
          tags: ['agent'],
          summary:
            "Queue one kind of agent job on many of a client's devices: those named, those with an open finding (one job per finding), or every device with an agent",
          params: z.strictObject({ clientId: Id }),
          body: z.strictObject({
            kind: JobKind,
            deviceIds: z.array(Id).min(1).max(1000).optional(),
            finding: z
              .enum(FINDING_CODES)
              .optional()
              .describe("devices with this open compliance finding; each job targets the finding's volume and recovery password"),
            mountPoint: MountPoint.optional().describe("without a finding: the volume (default: each device's operating-system volume)"),
            dryRun: z.boolean().optional().describe('say what would be queued, queue nothing'),
          }),
          response: {
            200: z.object({
              queued: z.number(),
              dryRun: z.boolean(),
              jobs: z.array(
                z.object({
                  jobId: z.string().nullable(),
                  deviceId: z.string(),
                  device: z.string(),
                  kind: z.string(),
                  mountPoint: z.string().nullable(),
                  protectorId: z.string().nullable(),
                }),
              ),
              skipped: z.array(z.object({ deviceId: z.string(), device: z.string().nullable(), why: z.string() })),
            }),
            ...errors(400, 401, 403, 404),
          },
        },
      },
      async (request) => c.agent.queueJobsForClient(actorOf(request), request.params.clientId, request.body),
    );
    app.post(
      '/devices/:deviceId/revoke-agent',
      {
        schema: {
          tags: ['agent'],
          summary: "Revoke the device's agent credential (it must enroll again)",
          params: z.strictObject({ deviceId: Id }),
          response: { 200: z.object({ revoked: z.number() }), ...errors(400, 401, 403, 404) },
        },
      },
      async (request) => c.agent.revokeDevice(actorOf(request), request.params.deviceId),
    );
    app.get(
      '/agent/pending-links',
      {
        schema: {
          tags: ['agent'],
          summary: 'Agents that enrolled as a device the vault already knows, without its credential, and wait for approval',
          querystring: z.strictObject({ clientId: Id.optional() }),
          response: { 200: z.array(PendingLinkSchema), ...errors(400, 401, 403) },
        },
      },
      async (request) => c.agent.listPendingLinks(actorOf(request), request.query.clientId),
    );
    app.post(
      '/devices/:deviceId/approve-agent-link',
      {
        schema: {
          tags: ['agent'],
          summary: 'Link the agent waiting under this device record to the existing device it enrolled as',
          params: z.strictObject({ deviceId: Id }),
          response: { 200: z.object({ deviceId: z.string(), device: z.string() }), ...errors(400, 401, 403, 404, 409) },
        },
      },
      async (request) => c.agent.approveLink(actorOf(request), request.params.deviceId),
    );
    app.get(
      '/findings',
      {
        schema: {
          tags: ['agent'],
          summary: 'Findings: unescrowed keys, keys that differ from the vault, encrypted volumes without a recovery password',
          querystring: z.strictObject({
            clientId: Id.optional(),
            deviceId: Id.optional(),
            open: z.enum(['true', 'false']).optional().describe('true: still open; false: resolved; none: both'),
            kind: z.enum(ESCROW_FINDING_KINDS).optional(),
            severity: z.enum(FINDING_SEVERITIES).optional(),
            limit: z.coerce.number().int().min(1).max(1000).optional().describe('default 200'),
            offset: z.coerce.number().int().min(0).max(1_000_000).optional().describe('skip this many (newest first): the next page'),
          }),
          response: { 200: z.array(FindingSchema), ...errors(400, 401, 403) },
        },
      },
      async (request) => {
        const { open, ...rest } = request.query;
        return c.agent.listFindings(actorOf(request), { ...rest, open: open === undefined ? undefined : open === 'true' });
      },
    );
  };
