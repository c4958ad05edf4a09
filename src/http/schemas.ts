import { z } from 'zod';

/**
 * Shared, bounded request/response pieces. Every body is a strict object (unknown fields are a
 * 400), every string has a maximum length, every list a maximum size.
 */
export const Id = z.guid().describe('record id');
export const ClientIds = z.union([z.literal('all'), z.array(Id).max(1000)], { error: 'must be "all" or a list of client ids' });
export const RoleName = z.enum(['owner', 'admin', 'technician', 'helpdesk', 'auditor', 'client-viewer']);
export const Limit = z.coerce.number().int().min(1).max(1000).optional();
export const Offset = z.coerce.number().int().min(0).max(10_000_000).optional();
export const IsoTime = z.iso.datetime({ offset: true });

export const ErrorBody = z.object({
  error: z.string(),
  message: z.string(),
  requestId: z.string().optional(),
  fields: z.array(z.object({ field: z.string(), message: z.string() })).optional(),
  details: z.record(z.string(), z.unknown()).optional(),
});

export const Ok = z.object({ ok: z.literal(true) });

export const KeySummarySchema = z.object({
  id: z.string(),
  keyId: z.string().nullable(),
  client: z.object({ id: z.string(), name: z.string() }),
  device: z.object({ id: z.string(), name: z.string() }).nullable(),
  volume: z.object({ mountPoint: z.string().nullable(), type: z.string() }).nullable(),
  state: z.string(),
  mayNotUnlock: z
    .boolean()
    .describe(
      "the device's agent reported a different password for this key, or the person who revealed it said it did not unlock: it may not unlock the drive",
    ),
  createdAt: z.string().nullable(),
  firstSeenAt: z.string(),
  lastSeenAt: z.string(),
  sources: z.array(z.object({ type: z.string(), ref: z.string(), firstSeenAt: z.string(), lastSeenAt: z.string(), removedAt: z.string().nullable() })),
});

export const UserSchema = z.object({
  id: z.string(),
  email: z.string(),
  name: z.string(),
  role: RoleName,
  clients: z.union([z.literal('all'), z.array(z.string())]),
  status: z.enum(['active', 'disabled']),
  mfaEnabled: z.boolean().describe('has a second factor: an authenticator app or a passkey'),
  totpEnabled: z.boolean().describe('has an authenticator app'),
  ssoOnly: z.boolean().describe('Signs in only through single sign-on (password sign-in refused)'),
  lastLoginAt: z.string().nullable(),
  createdAt: z.string(),
  pendingApprovalId: z.string().optional().describe('Set when the change waits for a second owner (two-owner approval is on)'),
});

export const TokenSchema = z.object({
  id: z.string(),
  name: z.string(),
  prefix: z.string(),
  role: RoleName,
  clients: z.union([z.literal('all'), z.array(z.string())]),
  createdBy: z.string(),
  createdAt: z.string(),
  expiresAt: z.string().nullable(),
  lastUsedAt: z.string().nullable(),
  revokedAt: z.string().nullable(),
});

export const AuditEventSchema = z.object({
  seq: z.number(),
  id: z.string(),
  occurredAt: z.string(),
  actorType: z.string(),
  actorId: z.string(),
  actorName: z.string(),
  action: z.string(),
  clientId: z.string().nullable(),
  targetType: z.string().nullable(),
  targetId: z.string().nullable(),
  reasonCode: z.string().nullable(),
  ticket: z.string().nullable(),
  outcome: z.string(),
  ip: z.string().nullable(),
  userAgent: z.string().nullable(),
  details: z.record(z.string(), z.unknown()).nullable(),
  actor: z.string().describe('Who, in words: a person by name or email, a system actor by what it is'),
  actionLabel: z.string(),
  reasonLabel: z.string().nullable(),
  device: z.string().nullable().describe('The device the event is about, by name'),
  keyId: z.string().nullable().describe('The key the event is about, as the recovery screen shows it'),
  detailFields: z.array(z.object({ label: z.string(), value: z.string(), internal: z.boolean() })),
});

/** Standard error responses, listed on every route so the OpenAPI document tells the truth. */
export const errors = (...codes: (400 | 401 | 403 | 404 | 409 | 413 | 429 | 503)[]) =>
  Object.fromEntries(codes.map((c) => [c, ErrorBody])) as Record<number, typeof ErrorBody>;
