import type { Executor } from '../../db/database.js';
import type { DevicesTable, FindingsTable, JobsTable, VolumesTable } from '../../db/schema.js';
import { isId } from '../../db/scope.js';
import type { Transactions } from '../../db/transactions.js';
import { agentFingerprint, newSalt, newSecret, sha256Hex } from '../../crypto/tokens.js';
import type { Clock } from '../../lib/clock.js';
import { newId } from '../../lib/ids.js';
import { badRequest, conflict, forbidden, notFound, unauthenticated } from '../../lib/errors.js';
import { BITLOCKER_EVENTS, parsePsVolumeType } from '../../domain/bitlocker.js';
import { isCurrentKey, isVolumeEncrypted } from '../../domain/device-status.js';
import { formatKeyIdForDisplay, parseKeyId } from '../../domain/key-id.js';
import { parseRecoveryPassword } from '../../domain/recovery-password.js';
import { normalizeMountPoint } from '../../domain/volume.js';
import { parsePrimaryUser } from '../../domain/primary-user.js';
import { normalizeReport, type ReportedVolume } from '../../domain/agent-report.js';
import type { Finding } from '../../domain/compliance/evaluate.js';
import { FINDING_CODES, type FindingCode } from '../../domain/compliance/findings.js';
import { ESCROW_FINDING_INFO, ESCROW_FINDING_KINDS, isEscrowFindingKind, type EscrowFindingKind, type FindingSeverity } from '../../domain/escrow-findings.js';
import { enforcesAnything, type Policy } from '../../domain/compliance/policy.js';
import { clientScope, requirePermission, systemActor, type Actor } from '../authz/authz.js';
import type { AuditService } from '../audit/audit.service.js';
import type { KeyIngest } from '../keys/keys.ingest.js';
import type { KeysRepo } from '../keys/keys.repo.js';
import type { KeyReport } from '../keys/keys.types.js';
import { deviceNameKey, newDeviceRow, type DevicesRepo } from '../devices/devices.repo.js';
import type { ClientsRepo } from '../clients/clients.repo.js';
import { requireVisibleClient } from '../clients/visible-client.js';
import type { AgentRepo, CheckinSnapshot } from './agent.repo.js';
import { NeedsDatabase, probeExecutor } from '../../db/probe.js';
import { JOB_LIFETIME_DAYS, JOB_MAX_ATTEMPTS } from './jobs.js';
import type { SeenBuffer } from './seen-buffer.js';
import type { Notifier } from '../notifications/notifier.js';
import {
  AGENT_JOB_KINDS,
  JOB_ENCRYPTION_METHODS,
  MAX_REQUESTED_PASSWORDS,
  type AgentJobKind,
  type CheckinRequest,
  type CheckinResponse,
  type EnrollRequest,
  type JobEncryptionMethod,
  type JobOffer,
  type UploadRequest,
  type UploadResponse,
} from './agent.protocol.js';

export const ENROLLMENT_TOKEN_PREFIX = 'kwe_';
export const DEVICE_CREDENTIAL_PREFIX = 'kwd_';
const CHECKIN_INTERVAL_SECONDS = 3600;
const MAX_CLOCK_SKEW_MS = 15 * 60_000;

export type JobKind = AgentJobKind;
export type JobView = {
  id: string;
  kind: string;
  state: string;
  mountPoint: string | null;
  protectorId: string | null;
  /** enable-encryption: the method asked for (null: Windows' default, or another kind). */
  encryptionMethod: string | null;
  /** enable-encryption: used space only (null for other kinds). */
  usedSpaceOnly: boolean | null;
  /** The recovery password the job escrowed (rotate: the new one); null until one was. */
  newProtectorId: string | null;
  /** manual | bulk | policy | disclosure | rotation; null for jobs from before these were recorded. */
  origin: string | null;
  attempts: number;
  maxAttempts: number;
  detail: string | null;
  createdAt: string;
  expiresAt: string;
  sentAt: string | null;
  finishedAt: string | null;
};
/** A job in a client's list: with its device. */
export type ClientJobView = JobView & { device: { id: string; name: string } };
export type JobOrigin = 'manual' | 'bulk' | 'policy' | 'disclosure' | 'rotation';
/** What a job needs besides its kind: the volume, the recovery password, enable-encryption's options. */
export type JobInput = {
  mountPoint?: string | null;
  protectorId?: string | null;
  /** enable-encryption only; 'default' (or nothing) = Windows' default. */
  encryptionMethod?: JobEncryptionMethod | 'default' | null;
  /** enable-encryption only; default true. */
  usedSpaceOnly?: boolean | null;
};
export type BulkQueueResult = {
  /** How many jobs were queued (a dry run: would be). */
  queued: number;
  dryRun: boolean;
  /** The jobs queued (a dry run: jobId null). */
  jobs: { jobId: string | null; deviceId: string; device: string; kind: JobKind; mountPoint: string | null; protectorId: string | null }[];
  /** Devices (or their volumes) that got no job, and why, in product words. */
  skipped: { deviceId: string; device: string | null; why: string }[];
};
export type FindingView = {
  id: string;
  kind: EscrowFindingKind;
  /** In product words (ESCROW_FINDING_INFO). */
  title: string;
  severity: FindingSeverity;
  detail: string;
  protectorId: string | null;
  mountPoint: string | null;
  client: { id: string; name: string };
  device: { id: string; name: string };
  openedAt: string;
  resolvedAt: string | null;
};
export type EnrollmentTokenView = {
  id: string;
  clientId: string;
  prefix: string;
  createdAt: string;
  expiresAt: string;
  maxUses: number | null;
  uses: number;
  revokedAt: string | null;
};

type Deps = {
  tx: Transactions;
  repo: AgentRepo;
  devices: Pick<DevicesRepo, 'findForEnrollment' | 'find' | 'findVisible' | 'nameOf' | 'insert' | 'patch' | 'volumesOfDevice' | 'insertVolume' | 'updateVolume' | 'findByEntraIds'>;
  keys: Pick<KeysRepo, 'setState' | 'patch' | 'ofDevice' | 'byKeyIds' | 'stateOf' | 'deviceOf' | 'mountPointOf' | 'sourcesOf'>;
  clients: Pick<ClientsRepo, 'rotatesAfterDisclosure'>;
  ingest: KeyIngest;
  audit: Pick<AuditService, 'record' | 'recordNow'>;
  clock: Clock;
  /** Compliance re-evaluation, in the same transaction, for check-ins and uploads that changed something. */
  onChanged?: (tx: Executor, clientId: string, deviceIds: string[]) => Promise<unknown>;
  /** Notifications, only where something happened: a recovery boot, a rotation done or failed. */
  notifier?: Notifier;
  /** Write-behind for "last seen" of unchanged check-ins; without it every check-in writes the row. */
  seen?: SeenBuffer;
  /** The client's compliance policy in force, read in the caller's transaction (default: the built-in one). */
  policy?: (exec: Executor, clientId: string) => Promise<Pick<Policy, 'directoryBackupAfterRotation' | 'encryptionMethod'>>;
  /** Devices of a client whose stored compliance evaluation has a finding of this code (bulk queueing by finding). */
  devicesWithFinding?: (exec: Executor, clientId: string, code: FindingCode) => Promise<{ deviceId: string; findings: Finding[] }[]>;
};

const addDays = (iso: string, days: number) => new Date(Date.parse(iso) + days * 86_400_000).toISOString();
const braces = (keyId: string) => formatKeyIdForDisplay(keyId);
const keyConflictDetail = (keyId: string, mountPoint: string) =>
  `Recovery password ${braces(keyId)} on ${mountPoint} has a key ID another device holds in the vault; it was not filed under this device. Check which device really has it.`;
export type PendingLinkView = {
  /** The device record the agent works under until the link is approved. */
  device: { id: string; name: string };
  /** The existing device it enrolled as (null when that device was deleted meanwhile). */
  claims: { id: string; name: string } | null;
  matchedOn: string | null;
  client: { id: string; name: string };
  enrolledAt: string;
};
type JobOptions = { encryptionMethod: JobEncryptionMethod | null; usedSpaceOnly: boolean | null };
function jobOptions(j: Pick<JobsTable, 'options'>): JobOptions {
  try {
    const o = j.options ? (JSON.parse(j.options) as Partial<JobOptions>) : {};
    return {
      encryptionMethod: (JOB_ENCRYPTION_METHODS as readonly string[]).includes(o.encryptionMethod as string) ? (o.encryptionMethod as JobEncryptionMethod) : null,
      usedSpaceOnly: typeof o.usedSpaceOnly === 'boolean' ? o.usedSpaceOnly : null,
    };
  } catch {
    return { encryptionMethod: null, usedSpaceOnly: null };
  }
}
const jobView = (j: JobsTable): JobView => {
  const o = jobOptions(j);
  return {
    id: j.id,
    kind: j.kind,
    state: j.state,
    mountPoint: j.mount_point,
    protectorId: j.protector_id,
    encryptionMethod: o.encryptionMethod,
    usedSpaceOnly: o.usedSpaceOnly,
    newProtectorId: j.new_key_id ? braces(j.new_key_id) : null,
    origin: j.origin ?? null,
    attempts: j.attempts,
    maxAttempts: j.max_attempts,
    detail: j.detail,
    createdAt: j.created_at,
    expiresAt: j.expires_at,
    sentAt: j.sent_at,
    finishedAt: j.finished_at,
  };
};

const ACTIVE_JOB_STATES = ['pending', 'sent', 'awaiting_removal'];
const isAgentJobKind = (kind: string): kind is JobKind => (AGENT_JOB_KINDS as readonly string[]).includes(kind);
/** Kinds that act on a whole volume: they name no protector. */
const VOLUME_KINDS: readonly JobKind[] = ['enable-encryption', 'resume-protection', 'add-recovery-password'];
/** Kinds that act on one recovery password. */
const PROTECTOR_KINDS: readonly JobKind[] = ['backup', 'backup-to-ad', 'backup-to-entra'];
/** Kinds that may report success only after a recovery password of their volume was escrowed with their job id. */
const ESCROW_FIRST: readonly JobKind[] = ['rotate', 'enable-encryption', 'resume-protection', 'add-recovery-password'];
const NOT_ESCROWED = 'reported done before a recovery password was escrowed';
/** A job of the same kind and volume that ended this recently is not queued again by the policy. */
const POLICY_BACKOFF_MS = 24 * 3_600_000;
/** Names a recovery password of the vault (braces) or, for a job without one, its volume. */
const jobTarget = (t: { mountPoint: string | null; protectorId: string | null }) =>
  t.protectorId ? `${t.protectorId}${t.mountPoint ? ` on ${t.mountPoint}` : ''}` : (t.mountPoint ?? 'the device');

/**
 * Checks what a job of `kind` needs and puts it in the stored form (mount point normalised,
 * protector with braces, options), or says what is wrong in product words.
 */
function planJob(
  kind: string,
  input: JobInput,
): { ok: true; mountPoint: string | null; protectorId: string | null; options: JobOptions | null } | { ok: false; field: string; message: string } {
  if (!isAgentJobKind(kind)) return { ok: false, field: 'kind', message: `Unknown job kind "${String(kind).slice(0, 40)}"; use one of ${AGENT_JOB_KINDS.join(', ')}.` };
  const id = input.protectorId ? parseKeyId(input.protectorId) : null;
  if (id && !id.ok) return { ok: false, field: 'protectorId', message: `protectorId: ${id.reason}` };
  const mountPoint = input.mountPoint ? normalizeMountPoint(input.mountPoint) : null;
  if (input.mountPoint != null && !mountPoint) return { ok: false, field: 'mountPoint', message: 'mountPoint is empty; name the volume, e.g. "C:".' };
  const protectorId = id?.ok ? braces(id.value) : null;
  if (kind !== 'enable-encryption' && (input.encryptionMethod != null || input.usedSpaceOnly != null)) {
    return { ok: false, field: 'encryptionMethod', message: 'Only an enable-encryption job takes encryptionMethod and usedSpaceOnly.' };
  }
  if (VOLUME_KINDS.includes(kind)) {
    if (!mountPoint) return { ok: false, field: 'mountPoint', message: `A ${kind} job needs the mountPoint of the volume, e.g. "C:".` };
    if (protectorId) return { ok: false, field: 'protectorId', message: `A ${kind} job acts on the whole volume ${mountPoint}; leave protectorId out.` };
  } else if (PROTECTOR_KINDS.includes(kind)) {
    if (!protectorId) return { ok: false, field: 'protectorId', message: `A ${kind} job needs the protectorId of a recovery password.` };
  } else if (!mountPoint && !protectorId) {
    return { ok: false, field: 'mountPoint', message: `A ${kind} job needs the mountPoint of the volume, the protectorId of a recovery password, or both.` };
  }
  let options: JobOptions | null = null;
  if (kind === 'enable-encryption') {
    const method = input.encryptionMethod ?? 'default';
    if (method !== 'default' && !(JOB_ENCRYPTION_METHODS as readonly string[]).includes(method)) {
      return { ok: false, field: 'encryptionMethod', message: `encryptionMethod must be default, ${JOB_ENCRYPTION_METHODS.join(', ')}.` };
    }
    options = { encryptionMethod: method === 'default' ? null : method, usedSpaceOnly: input.usedSpaceOnly ?? true };
  }
  return { ok: true, mountPoint, protectorId, options };
}

/** Whether an active job already does what `want` asks for (same kind, same recovery password or whole volume). */
function covers(active: Pick<JobsTable, 'kind' | 'mount_point' | 'protector_id'>, want: { kind: string; mountPoint: string | null; protectorId: string | null }): boolean {
  if (active.kind !== want.kind) {
    // enable-encryption and resume-protection add an escrowed recovery password first.
    return want.kind === 'add-recovery-password' && ['enable-encryption', 'resume-protection'].includes(active.kind) && active.mount_point === want.mountPoint;
  }
  if (want.protectorId && active.protector_id === want.protectorId) return true;
  // A job on the whole volume (no protector) covers every recovery password of it.
  return active.protector_id === null && active.mount_point !== null && active.mount_point === want.mountPoint;
}

type DesiredFinding = { kind: 'unescrowed_key' | 'mismatch' | 'no_recovery_password' | 'key_conflict'; volumeId: string; protectorId: string | null; keyRowId: string | null; detail: string };

/**
 * The server half of the Windows agent. The agent gathers and executes; every decision is here:
 * which keys to ask for, what changed, what is wrong (findings), and what the device should do (jobs).
 */
export function createAgentService({ tx: transactions, repo, devices, keys, clients, ingest, audit: auditLog, clock, onChanged, notifier, seen, policy, devicesWithFinding }: Deps) {
  // Transactions that wrote an audit event keep full durability (see repo.relaxDurability).
  const audited = new WeakSet<object>();
  // Transactions whose check-in changed a volume or recorded a new event (compliance looks again).
  const changedTx = new WeakSet<object>();
  // Transactions that created or changed a job (a check-in re-reads its jobs after that).
  const jobsChanged = new WeakSet<object>();
  const audit = {
    record: (tx: Executor, actor: Actor, event: Parameters<AuditService['record']>[2]) => {
      audited.add(tx);
      return auditLog.record(tx, actor, event);
    },
  };
  const deviceOf = (actor: Actor) => {
    if (actor.type !== 'agent' || !actor.device || actor.clients === 'all' || actor.clients.length !== 1) {
      throw forbidden('This endpoint is for the Keywarden agent, with a device credential.');
    }
    return { ...actor.device, clientId: actor.clients[0]! };
  };

  /** Replay and clock checks shared by every agent request that carries seq and sentAt. */
  const admit = async (tx: Executor, dev: { credentialId: string }, seq: number, sentAt: string) => {
    checkClock(sentAt);
    if (!(await repo.claimSeq(tx, dev.credentialId, seq, clock.now()))) await refuseReplay(tx, dev, seq);
  };
  const checkClock = (sentAt: string) => {
    const skew = Math.abs(Date.parse(sentAt) - Date.parse(clock.now()));
    if (skew > MAX_CLOCK_SKEW_MS) {
      throw badRequest(`The device clock is off by ${Math.round(skew / 60_000)} minutes (sentAt); fix the time on the device and retry.`, { field: 'sentAt' });
    }
  };
  const refuseReplay = async (tx: Executor, dev: { credentialId: string }, seq: number): Promise<never> => {
    const last = await repo.lastSeq(tx, dev.credentialId);
    throw conflict(`Request sequence ${seq} was already used (the last one seen is ${last}): a replayed or out-of-order request was refused.`);
  };

  /** Queues a job unless the same work is already waiting for that device. */
  const queueJob = async (
    tx: Executor,
    actor: Actor,
    job: {
      clientId: string;
      deviceId: string;
      kind: JobKind;
      mountPoint: string | null;
      protectorId: string | null;
      keyRowId: string | null;
      options?: JobOptions | null;
      origin: JobOrigin;
      /** Extra audit details: the finding a policy job answers, the rotation a backup follows. */
      because?: Record<string, string>;
    },
    active?: JobsTable[],
  ): Promise<JobsTable> => {
    const same = (active ?? (await repo.activeJobs(tx, job.clientId, job.deviceId))).find(
      (j) => j.device_id === job.deviceId && j.kind === job.kind && j.protector_id === job.protectorId && j.mount_point === job.mountPoint,
    );
    if (same) return same;
    const now = clock.now();
    const row: JobsTable = {
      id: newId(),
      client_id: job.clientId,
      device_id: job.deviceId,
      kind: job.kind,
      mount_point: job.mountPoint,
      protector_id: job.protectorId,
      recovery_key_id: job.keyRowId,
      state: 'pending',
      attempts: 0,
      max_attempts: JOB_MAX_ATTEMPTS,
      new_key_id: null,
      detail: null,
      created_by: actor.id,
      created_at: now,
      expires_at: addDays(now, JOB_LIFETIME_DAYS),
      sent_at: null,
      finished_at: null,
      options: job.options ? JSON.stringify(job.options) : null,
      origin: job.origin,
    };
    await repo.insertJob(tx, row);
    jobsChanged.add(tx);
    await audit.record(tx, actor, {
      action: 'job.create',
      outcome: 'success',
      clientId: job.clientId,
      targetType: 'job',
      targetId: row.id,
      details: {
        kind: job.kind,
        deviceId: job.deviceId,
        mountPoint: job.mountPoint,
        protectorId: job.protectorId,
        why: job.origin,
        ...(job.options ? { options: job.options } : {}),
        ...job.because,
      },
    });
    active?.push(row);
    return row;
  };

  const setJob = async (tx: Executor, actor: Actor, job: JobsTable, patch: Partial<JobsTable>, why?: string) => {
    await repo.updateJob(tx, job.client_id, job.id, patch);
    jobsChanged.add(tx);
    if (patch.state && patch.state !== job.state) {
      await audit.record(tx, actor, {
        action: 'job.update',
        outcome: patch.state === 'failed' || patch.state === 'expired' ? 'failure' : 'success',
        clientId: job.client_id,
        targetType: 'job',
        targetId: job.id,
        details: { kind: job.kind, from: job.state, to: patch.state, ...(why ? { why } : {}) },
      });
      if (notifier && job.kind === 'rotate' && (patch.state === 'failed' || patch.state === 'expired')) {
        const deviceName = await devices.nameOf(tx, job.client_id, job.device_id);
        await notifier.emit(tx, {
          type: 'key.rotation_failed',
          clientId: job.client_id,
          deviceId: job.device_id,
          subject: `Rotating the recovery password on ${deviceName ?? 'a device'} ${patch.state === 'expired' ? 'was not done in time' : 'failed'}`,
          details: { device: deviceName, mountPoint: job.mount_point, protectorId: job.protector_id, outcome: patch.state, why: why ?? null, attempts: patch.attempts ?? job.attempts },
          dedupKey: `key.rotation_failed:${job.id}`,
          occurredAt: clock.now(),
        });
      }
    }
    Object.assign(job, patch);
  };

  const markKey = async (tx: Executor, actor: Actor, clientId: string, key: { id: string; key_id: string | null; state: string }, state: string, action: 'key.superseded' | 'key.rotated' | 'key.used', why: string) => {
    if (key.state === state) return;
    await keys.setState(tx, clientId, key.id, state, clock.now());
    await audit.record(tx, actor, { action, outcome: 'success', clientId, targetType: 'recovery_key', targetId: key.id, details: { keyId: key.key_id, from: key.state, to: state, why } });
    if (notifier && action === 'key.rotated') {
      const device = await keys.deviceOf(tx, clientId, key.id);
      await notifier.emit(tx, {
        type: 'key.rotated',
        clientId,
        deviceId: device?.id ?? null,
        subject: `The recovery password${key.key_id ? ` ${braces(key.key_id)}` : ''} on ${device?.name ?? 'a device'} was rotated`,
        details: { device: device?.name ?? null, keyId: key.key_id, why, by: 'agent' },
        occurredAt: clock.now(),
      });
    }
    key.state = state;
  };

  const service = {
    // ------------------------------------------------------------ enrollment tokens (admins)
    async createEnrollmentToken(
      actor: Actor,
      input: { clientId: string; expiresInDays?: number; maxUses?: number | null },
    ): Promise<{ token: string; view: EnrollmentTokenView }> {
      requirePermission(actor, 'agent:manage');
      const days = input.expiresInDays ?? 30;
      if (!Number.isInteger(days) || days < 1 || days > 365) throw badRequest('expiresInDays must be a whole number from 1 to 365.', { field: 'expiresInDays' });
      if (input.maxUses != null && (!Number.isInteger(input.maxUses) || input.maxUses < 1 || input.maxUses > 1_000_000)) {
        throw badRequest('maxUses must be a whole number from 1 to 1,000,000.', { field: 'maxUses' });
      }
      return transactions.run(async (tx) => {
        const client = await requireVisibleClient(tx, actor, input.clientId, 'agent:manage');
        const token = newSecret(ENROLLMENT_TOKEN_PREFIX);
        const now = clock.now();
        const row = {
          id: newId(),
          client_id: client.id,
          token_hash: sha256Hex(token),
          token_prefix: token.slice(0, ENROLLMENT_TOKEN_PREFIX.length + 6),
          created_by: actor.id,
          created_at: now,
          expires_at: addDays(now, days),
          max_uses: input.maxUses ?? null,
          uses: 0,
          revoked_at: null,
        };
        await repo.insertEnrollmentToken(tx, row);
        await audit.record(tx, actor, {
          action: 'agent.token.create',
          outcome: 'success',
          clientId: client.id,
          targetType: 'enrollment_token',
          targetId: row.id,
          details: { client: client.name, expiresAt: row.expires_at, maxUses: row.max_uses },
        });
        return { token, view: { id: row.id, clientId: row.client_id, prefix: row.token_prefix, createdAt: now, expiresAt: row.expires_at, maxUses: row.max_uses, uses: 0, revokedAt: null } };
      });
    },

    async listEnrollmentTokens(actor: Actor, clientId?: string): Promise<EnrollmentTokenView[]> {
      requirePermission(actor, 'agent:manage', clientId);
      const rows = await repo.listEnrollmentTokens(transactions.reader, clientScope(actor), clientId);
      return rows.map((r) => ({ id: r.id, clientId: r.client_id, prefix: r.token_prefix, createdAt: r.created_at, expiresAt: r.expires_at, maxUses: r.max_uses, uses: r.uses, revokedAt: r.revoked_at }));
    },

    async revokeEnrollmentToken(actor: Actor, id: string): Promise<void> {
      requirePermission(actor, 'agent:manage');
      await transactions.run(async (tx) => {
        const t = await repo.findEnrollmentToken(tx, id, clientScope(actor));
        if (!t) throw notFound(`No enrollment token with id ${id}.`);
        if (t.revoked_at) return;
        await repo.revokeEnrollmentToken(tx, id, clock.now());
        await audit.record(tx, actor, { action: 'agent.token.revoke', outcome: 'success', clientId: t.client_id, targetType: 'enrollment_token', targetId: id });
      });
    },

    // ------------------------------------------------------------ enrollment (the agent)
    async enroll(input: EnrollRequest, ctx: { ip: string | null; userAgent: string | null }) {
      const hash = sha256Hex(input.enrollmentToken);
      return transactions.run(async (tx) => {
        const token = await repo.findEnrollmentTokenByHash(tx, hash);
        const now = clock.now();
        // One answer for unknown, expired, revoked and used-up tokens: nothing to probe.
        if (!token || !(await repo.useEnrollmentToken(tx, token.id, now))) {
          throw unauthenticated('The enrollment token is not valid: it may be mistyped, expired, revoked or used up. Ask your administrator for a new one.');
        }
        const d = input.device;
        const parsedEntra = d.entraDeviceId ? parseKeyId(d.entraDeviceId) : null;
        const entra = parsedEntra?.ok ? parsedEntra.value : null;
        const name = d.hostname.trim();
        const serial = d.serialNumber?.trim() || null;
        const smbiosUuid = d.smbiosUuid?.trim().toLowerCase() || null;
        const match = await devices.findForEnrollment(tx, token.client_id, { entraDeviceId: entra, serial, smbiosUuid, nameKey: deviceNameKey(name) });
        const matchedOn = !match ? null : entra && match.entra_device_id === entra ? 'entra' : serial && smbiosUuid && match.serial === serial && match.smbios_uuid === smbiosUuid ? 'hardware' : 'name';
        // Entra device ID, serial number, SMBIOS UUID and name are not secrets: matching them hands
        // over a device only when (a) the agent proves it holds that device's live credential (a
        // re-enrollment, a restored image, a moved server), or (b) nothing of value is at stake: no
        // live agent to cut off, and no key from any source but this device's own agents (an
        // Entra/AD/imported key would otherwise be superseded or put in conflict by whoever knows
        // the ID). Everything else (a re-imaged laptop whose credential is gone, an impostor) waits
        // under a device record of its own until an admin with agent:manage links it.
        let adopt = false;
        if (match) {
          const proof = input.previousCredential ? await repo.findCredentialByHash(tx, sha256Hex(input.previousCredential)) : undefined;
          const proven = !!proof && !proof.revoked_at && proof.client_id === token.client_id && proof.device_id === match.id;
          adopt = proven || (!(await repo.hasActiveCredential(tx, token.client_id, match.id)) && !(await hasForeignKeys(tx, token.client_id, match.id)));
        }
        let device: DevicesTable;
        if (match && adopt) {
          device = match;
          await devices.patch(tx, token.client_id, device.id, {
            serial: device.serial ?? serial,
            smbios_uuid: device.smbios_uuid ?? smbiosUuid,
            entra_device_id: device.entra_device_id ?? entra,
            domain: d.domain ?? device.domain,
            last_seen_at: now,
          });
          // A new credential replaces any earlier one of this device.
          await repo.revokeDeviceCredentials(tx, token.client_id, device.id, now);
        } else {
          // A new device, or one waiting for approval: it carries no identity attribute of the
          // device it claims to be, so nothing (enrollment, Entra, AD, imports) matches it instead.
          device = newDeviceRow({
            id: newId(),
            clientId: token.client_id,
            name,
            now,
            domain: d.domain,
            serial: match ? null : serial,
            entra_device_id: match ? null : entra,
            smbios_uuid: match ? null : smbiosUuid,
          });
          await devices.insert(tx, device);
        }
        const pending = !!match && !adopt;
        const credential = newSecret(DEVICE_CREDENTIAL_PREFIX);
        const salt = newSalt();
        const credentialId = newId();
        await repo.insertCredential(tx, {
          id: credentialId,
          client_id: token.client_id,
          device_id: device.id,
          credential_hash: sha256Hex(credential),
          fingerprint_salt: salt,
          last_seq: 0,
          created_at: now,
          last_used_at: null,
          revoked_at: null,
          link_device_id: pending ? match.id : null,
          link_match: pending ? matchedOn : null,
        });
        await devices.patch(tx, token.client_id, device.id, { agent_id: credentialId });
        const agentActor: Actor = { type: 'agent', id: `agent:${device.id}`, name: `agent on ${name}`, role: 'client-viewer', clients: [token.client_id], ip: ctx.ip, userAgent: ctx.userAgent };
        await audit.record(tx, agentActor, {
          action: pending ? 'agent.enroll.pending' : 'agent.enroll',
          outcome: 'success',
          clientId: token.client_id,
          targetType: 'device',
          targetId: device.id,
          details: {
            hostname: name,
            existingDevice: !!match && adopt,
            ...(pending ? { claims: { deviceId: match.id, device: match.name, matchedOn } } : {}),
            enrollmentToken: token.token_prefix,
            agentVersion: input.agentVersion ?? null,
          },
        });
        return { deviceId: device.id, credential, fingerprintSalt: salt, checkinIntervalSeconds: CHECKIN_INTERVAL_SECONDS, pendingApproval: pending };
      });
    },

    /** Resolves a device credential to an agent actor, or null (unknown, revoked, retired device). */
    async authenticateDevice(credential: string, ctx: { ip: string | null; userAgent: string | null }): Promise<Actor | null> {
      if (!credential.startsWith(DEVICE_CREDENTIAL_PREFIX) || credential.length > 200) return null;
      const c = await repo.findCredentialByHash(transactions.reader, sha256Hex(credential));
      // Revoked, retired device, or a client that was archived: the agent is done.
      if (!c || c.revoked_at || c.device_retired_at || c.client_archived_at) return null;
      return {
        type: 'agent',
        id: `agent:${c.device_id}`,
        name: `agent on ${c.device_name}`,
        role: 'client-viewer',
        clients: [c.client_id],
        device: { id: c.device_id, credentialId: c.id, salt: c.fingerprint_salt },
        ip: ctx.ip,
        userAgent: ctx.userAgent,
      };
    },

    // ------------------------------------------------------------ check-in
    async checkin(actor: Actor, body: CheckinRequest): Promise<CheckinResponse> {
      const dev = deviceOf(actor);
      const report = normalizeReport({ volumes: body.volumes ?? null, manageBde: body.manageBde ?? null });
      checkClock(body.sentAt);
      const now = clock.now();
      const ref = { clientId: dev.clientId, deviceId: dev.id };
      const claim = { credentialId: dev.credentialId, seq: body.seq, now };
      // PostgreSQL: one statement claims the sequence number and reads everything (its own
      // transaction); the check-in then runs against a probe that has no database. A routine
      // check-in (nothing changed) needs none and is done: one round trip. One that has something
      // to write or read hits the probe and runs again, in a transaction, from a fresh snapshot.
      const routine = await repo.claimRoutine(transactions.reader, ref, claim);
      if (routine) {
        if (!routine.claimed) return refuseReplay(transactions.reader, dev, body.seq);
        try {
          return await runCheckin(probeExecutor(), routine.snapshot, true);
        } catch (e) {
          if (!(e instanceof NeedsDatabase)) throw e;
        }
        return transactions.run(async (tx) => {
          const snap = await repo.lockAndSnapshot(tx, ref, dev.credentialId);
          if (!snap) throw notFound('This device no longer exists.');
          return runCheckin(tx, snap, false);
        });
      }
      // SQLite: the claim and the reads in the transaction (no round trips to save; commits are shared).
      return transactions.run(
        async (tx) => {
          const start = await repo.claimAndSnapshot(tx, ref, claim);
          if (!start.claimed) return refuseReplay(tx, dev, body.seq);
          return runCheckin(tx, start.snapshot, false);
        },
        { shareCommit: true },
      );

      async function runCheckin(tx: Executor, snap: CheckinSnapshot, probe: boolean): Promise<CheckinResponse> {
        const clientId = dev.clientId;
        const device = snap.device;
        if (!device) throw notFound('This device no longer exists.');
        const pendingLink = snap.link;
        // Jobs read at the start stay valid until this check-in changes one.
        const activeJobs = () => (jobsChanged.has(tx) ? repo.activeJobs(tx, clientId, device.id) : Promise.resolve(snap.jobs));
        const seenDeferred = await updateFacts(tx, actor, device, body, now, !!pendingLink, report.problems);

        // A report with problems (a manage-bde fallback that could not read every volume's
        // protectors, an unreadable protector id) is not the whole truth: it supersedes no key, and
        // a volume it shows without protectors keeps the protectors and findings it had.
        const complete = report.problems.length === 0;
        const uncovered = new Set(complete ? [] : report.volumes.filter((v) => v.protectors.length === 0).map((v) => v.mountPoint));
        const volumes = await syncVolumes(tx, device, report.volumes, now, uncovered, snap.volumes);
        const requestPasswords: CheckinResponse['requestPasswords'] = [];
        const ask = (r: CheckinResponse['requestPasswords'][number]) => {
          // The rest at the next check-in: an answer asks for at most MAX_REQUESTED_PASSWORDS.
          if (requestPasswords.length < MAX_REQUESTED_PASSWORDS) requestPasswords.push(r);
        };
        const desired: DesiredFinding[] = [];

        // What the vault knows about the protectors this device reports.
        const reportedIds = report.volumes.flatMap((v) => v.protectors.filter((p) => p.type === 'RecoveryPassword').map((p) => p.id));
        const deviceKeys = snap.keys;
        const otherKeys = await keys.byKeyIds(tx, clientId, reportedIds.filter((id) => !deviceKeys.some((k) => k.key_id === id)));
        const allKeys = [...deviceKeys, ...otherKeys];
        const fps = new Map(snap.fingerprints.map((f) => [f.recovery_key_id, f.fingerprint]));

        for (const v of report.volumes) {
          const vol = volumes.get(v.mountPoint)!;
          const recovery = v.protectors.filter((p) => p.type === 'RecoveryPassword');
          if (uncovered.has(v.mountPoint)) continue;
          if (isVolumeEncrypted(v.volumeStatus) && recovery.length === 0 && v.lockStatus !== 'Locked') {
            desired.push({ kind: 'no_recovery_password', volumeId: vol.id, protectorId: null, keyRowId: null, detail: `${v.mountPoint} is encrypted but has no recovery password protector: nobody could unlock it after a TPM or boot change.` });
          }
          for (const p of recovery) {
            const candidates = allKeys.filter((k) => k.key_id === p.id);
            const held = candidates.find((k) => k.device_id !== null && k.device_id !== device.id);
            const mine = candidates.find((k) => k.device_id === device.id);
            if (!mine && held) {
              // A key ID another device holds is never taken over on a report: it may be a cloned
              // disk, a moved drive or a device claiming what is not its own. Someone decides.
              desired.push({ kind: 'key_conflict', volumeId: vol.id, protectorId: p.id, keyRowId: held.id, detail: keyConflictDetail(p.id, v.mountPoint) });
              continue;
            }
            if (!mine) {
              // Not in the vault, or only as a key of no device (an import without a device): the
              // upload that follows files it here, and links an unlinked record only when its
              // password is the same (the ingest rules), which is proof the device holds it.
              desired.push({ kind: 'unescrowed_key', volumeId: vol.id, protectorId: p.id, keyRowId: null, detail: `Recovery password ${braces(p.id)} on ${v.mountPoint} is not in the vault.` });
              if (p.fingerprint) ask({ mountPoint: v.mountPoint, protectorId: braces(p.id) });
              continue;
            }
            if (mine.volume_id !== vol.id) {
              // The device's own key, filed without its volume (or under another mount point) until now.
              await keys.patch(tx, clientId, mine.id, { volume_id: vol.id });
              mine.volume_id = vol.id;
            }
            if (!p.fingerprint) continue; // a locked volume cannot show its passwords
            const known = candidates.filter((k) => k.device_id === device.id).map((k) => fps.get(k.id)).filter(Boolean);
            if (known.includes(p.fingerprint)) continue;
            ask({ mountPoint: v.mountPoint, protectorId: braces(p.id) });
            if (known.length) {
              desired.push({ kind: 'mismatch', volumeId: vol.id, protectorId: p.id, keyRowId: mine.id, detail: `Recovery password ${braces(p.id)} on ${v.mountPoint} differs from the one in the vault.` });
            }
          }
          // Keys of this volume the device no longer has: superseded (or rotated, when a rotate job replaced them).
          if (v.lockStatus === 'Locked' || !complete) continue;
          const present = new Set(recovery.map((p) => p.id));
          for (const k of allKeys.filter((k) => k.device_id === device.id && k.volume_id === vol.id && k.key_id && !present.has(k.key_id))) {
            if (!isCurrentKey(k.state)) continue;
            // The replacement is escrowed (awaiting removal, or escrowed before a failed attempt): rotated.
            const rotating = (await activeJobs()).find((j) => j.kind === 'rotate' && j.recovery_key_id === k.id && j.new_key_id !== null);
            const wholeVolume = rotating
              ? undefined
              : (await activeJobs()).find((j) => j.kind === 'rotate' && j.protector_id === null && j.mount_point === v.mountPoint && j.new_key_id !== null);
            if (rotating) {
              await markKey(tx, actor, clientId, k, 'rotated', 'key.rotated', 'replaced by the rotate job; the device no longer has it');
              await finishRotation(tx, actor, device, rotating, body, now, null);
            } else if (wholeVolume && k.key_id !== wholeVolume.new_key_id) {
              // A rotation of every recovery password of the volume: done when the agent says so.
              await markKey(tx, actor, clientId, k, 'rotated', 'key.rotated', 'replaced by the rotate job; the device no longer has it');
            } else {
              await markKey(tx, actor, clientId, k, 'superseded', 'key.superseded', `the device no longer has this protector on ${v.mountPoint}`);
            }
          }
        }

        await recordEvents(tx, actor, device, body.events ?? [], now);
        await applyJobResults(tx, actor, device, body, now);
        // Findings change in this check-in only here: the ones read at the start are current.
        await reconcileFindings(tx, actor, device, desired, now, new Set([...uncovered].map((m) => volumes.get(m)!.id)), snap.findings);
        // The agent runs jobs from the first check-in of a run only; one offered in the check-in
        // that reports results would be ignored and still count as an attempt.
        const jobs = body.jobResults?.length ? [] : await offerJobs(tx, actor, device, now, await activeJobs());
        // Compliance only when something changed, or the device is back after a day away (stale):
        // a check-in that changed nothing costs nothing more. When passwords were just requested,
        // the upload that follows within seconds evaluates instead (no "not escrowed" flap).
        const away = Date.parse(now) - Date.parse(device.last_seen_at) > 86_400_000;
        if (onChanged && requestPasswords.length === 0 && (changedTx.has(tx) || audited.has(tx) || away)) {
          // Compliance reads when the device was last seen: write it now, not 100 ms later.
          if (seenDeferred) await devices.patch(tx, clientId, device.id, { last_checkin_at: now, last_seen_at: now });
          await onChanged(tx, clientId, [device.id]);
        }
        // (A probe's claim was committed relaxed already.)
        if (!probe && !audited.has(tx)) await repo.relaxDurability(tx);
        return { requestPasswords, jobs, nextCheckinSeconds: CHECKIN_INTERVAL_SECONDS };
      }
    },

    // ------------------------------------------------------------ key upload
    async uploadKeys(actor: Actor, body: UploadRequest): Promise<UploadResponse> {
      const dev = deviceOf(actor);
      return transactions.run(async (tx) => {
        await admit(tx, dev, body.seq, body.sentAt);
        const now = clock.now();
        const clientId = dev.clientId;
        const device = await devices.find(tx, clientId, dev.id);
        if (!device) throw notFound('This device no longer exists.');
        const job = body.jobId ? await repo.findJob(tx, clientId, device.id, body.jobId) : undefined;
        if (body.jobId && !job) throw notFound(`No job ${body.jobId} for this device.`);

        const stored: UploadResponse['stored'] = [];
        const reports: KeyReport[] = [];
        const accepted: { index: number; protectorId: string; keyId: string; password: string; mountPoint: string }[] = [];
        // Key IDs another device of the client holds: never filed here (see the check-in).
        const ids = body.keys.map((k) => parseKeyId(k.protectorId)).flatMap((r) => (r.ok ? [r.value] : []));
        const known = await keys.byKeyIds(tx, clientId, ids);
        const heldElsewhere = new Map(known.filter((k) => k.device_id !== null && k.device_id !== device.id).map((k) => [k.key_id!, k]));
        const ownIds = new Set(known.filter((k) => k.device_id === device.id).map((k) => k.key_id!));
        const conflicts: { mountPoint: string; keyId: string; keyRowId: string }[] = [];
        body.keys.forEach((k, i) => {
          const id = parseKeyId(k.protectorId);
          const pw = parseRecoveryPassword(k.recoveryPassword);
          const mountPoint = normalizeMountPoint(k.mountPoint);
          const protectorId = id.ok ? braces(id.value) : k.protectorId.slice(0, 40);
          if (!id.ok || !pw.ok || !mountPoint) {
            stored[i] = { protectorId, status: 'rejected', reason: !id.ok ? `protector id: ${id.reason}` : !pw.ok ? `recovery password: ${pw.reason}` : 'mount point is empty' };
            return;
          }
          const held = heldElsewhere.get(id.value);
          if (held && !ownIds.has(id.value)) {
            stored[i] = { protectorId, status: 'conflict', reason: 'another device holds this key ID; it was not stored and is flagged for review' };
            conflicts.push({ mountPoint, keyId: id.value, keyRowId: held.id });
            return;
          }
          accepted.push({ index: i, protectorId, keyId: id.value, password: pw.value, mountPoint });
          reports.push({
            keyId: id.value,
            recoveryPassword: pw.value,
            // By id: a name can be shared (a device waiting for its link has the name of the one it claims).
            device: { id: device.id, name: device.name },
            volume: { mountPoint, volumeType: parsePsVolumeType(k.volumeType) },
            createdAt: null,
          });
        });
        if (reports.length) {
          const r = await ingest(tx, actor, clientId, { type: 'agent', ref: device.id }, reports);
          for (let j = 0; j < accepted.length; j++) {
            const a = accepted[j]!;
            const outcome = r.outcomes[j]!;
            stored[a.index] = { protectorId: a.protectorId, status: outcome === 'imported' ? 'stored' : outcome };
            await repo.saveFingerprint(tx, { recovery_key_id: r.keyRowIds[j]!, device_id: device.id, client_id: clientId, fingerprint: agentFingerprint(dev.salt, a.password), created_at: now });
            // Whatever the outcome, the device's own key is in the vault now: its findings are settled.
            for (const f of (await repo.openFindings(tx, clientId, device.id)).filter((f) => f.protector_id === a.keyId && f.kind !== 'no_recovery_password')) {
              await repo.resolveFinding(tx, clientId, f.id, now);
              await audit.record(tx, actor, { action: 'finding.resolve', outcome: 'success', clientId, targetType: 'finding', targetId: f.id, details: { kind: f.kind, protectorId: a.protectorId } });
            }
            if (job) await noteJobUpload(tx, actor, job, a, outcome, now);
          }
        }
        if (conflicts.length) {
          const open = await repo.openFindings(tx, clientId, device.id);
          const vols = await devices.volumesOfDevice(tx, clientId, device.id);
          for (const c of conflicts) {
            if (open.some((f) => f.kind === 'key_conflict' && f.protector_id === c.keyId)) continue;
            const id = newId();
            const detail = keyConflictDetail(c.keyId, c.mountPoint);
            await repo.insertFinding(tx, {
              id,
              client_id: clientId,
              device_id: device.id,
              volume_id: vols.find((v) => v.mount_point === c.mountPoint)?.id ?? null,
              recovery_key_id: c.keyRowId,
              kind: 'key_conflict',
              protector_id: c.keyId,
              detail,
              opened_at: now,
              resolved_at: null,
            });
            await audit.record(tx, actor, { action: 'finding.open', outcome: 'success', clientId, targetType: 'finding', targetId: id, details: { kind: 'key_conflict', device: device.name, detail } });
          }
        }
        await audit.record(tx, actor, {
          action: 'agent.upload',
          outcome: 'success',
          clientId,
          targetType: 'device',
          targetId: device.id,
          details: { keys: stored.map((s) => ({ protectorId: s.protectorId, status: s.status })), jobId: body.jobId ?? null },
        });
        await onChanged?.(tx, clientId, [device.id]);
        return { stored };
      });
    },

    // ------------------------------------------------------------ admin views and actions
    async queueJobFor(actor: Actor, deviceId: string, input: JobInput & { kind: JobKind }): Promise<JobView> {
      requirePermission(actor, 'agent:manage');
      return transactions.run(async (tx) => {
        const device = await findVisibleDevice(tx, actor, deviceId);
        if (!(await repo.hasActiveCredential(tx, device.client_id, device.id))) {
          throw badRequest(`${device.name} has no enrolled agent to run the job.`);
        }
        const plan = planJob(input.kind, input);
        if (!plan.ok) throw badRequest(plan.message, { field: plan.field });
        const row = await queueJob(tx, actor, { ...(await resolveKey(tx, device.client_id, device.id, plan)), clientId: device.client_id, deviceId: device.id, kind: input.kind, origin: 'manual' });
        return jobView(row);
      });
    },

    async listJobs(actor: Actor, deviceId: string): Promise<JobView[]> {
      requirePermission(actor, 'device:read');
      const device = await findVisibleDevice(transactions.reader, actor, deviceId);
      return (await repo.jobsOf(transactions.reader, device.client_id, device.id)).map(jobView);
    },

    /** A client's agent jobs, newest first; `state` 'active' = pending, sent or awaiting removal. */
    async listClientJobs(actor: Actor, clientId: string, filter: { state?: string; kind?: string; limit?: number } = {}): Promise<ClientJobView[]> {
      requirePermission(actor, 'device:read');
      const client = await requireVisibleClient(transactions.reader, actor, clientId, 'device:read');
      if (filter.kind && !isAgentJobKind(filter.kind)) throw badRequest(`Unknown job kind "${filter.kind.slice(0, 40)}".`, { field: 'kind' });
      const rows = await repo.clientJobs(transactions.reader, client.id, {
        kinds: filter.kind ? [filter.kind] : AGENT_JOB_KINDS,
        states: filter.state === 'active' ? ACTIVE_JOB_STATES : filter.state ? [filter.state] : undefined,
        limit: Math.min(Math.max(filter.limit ?? 200, 1), 1000),
      });
      return rows.map((r) => ({ ...jobView(r), device: { id: r.device_id, name: r.device_name } }));
    },

    /**
     * Queues one kind of job on many devices of a client: the devices named, the devices with an
     * open finding of a code (one job per finding, on its volume and recovery password), or every
     * device with an agent. Devices that cannot take it are listed with the reason, not refused.
     */
    async queueJobsForClient(
      actor: Actor,
      clientId: string,
      input: { kind: JobKind; deviceIds?: string[]; finding?: FindingCode; mountPoint?: string | null; dryRun?: boolean },
    ): Promise<BulkQueueResult> {
      requirePermission(actor, 'agent:manage');
      if (!isAgentJobKind(input.kind)) throw badRequest(`Unknown job kind "${String(input.kind).slice(0, 40)}"; use one of ${AGENT_JOB_KINDS.join(', ')}.`, { field: 'kind' });
      if (input.finding !== undefined && !(FINDING_CODES as readonly string[]).includes(input.finding)) {
        throw badRequest(`Unknown finding code "${String(input.finding).slice(0, 60)}".`, { field: 'finding' });
      }
      if (input.finding && input.mountPoint) throw badRequest('Give a finding or a mountPoint, not both: a finding names its own volume.', { field: 'mountPoint' });
      const kind = input.kind;
      const dryRun = input.dryRun === true;
      return transactions.run(async (tx) => {
        const client = await requireVisibleClient(tx, actor, clientId, 'agent:manage');
        const out: BulkQueueResult = { queued: 0, dryRun, jobs: [], skipped: [] };
        const policy = await policyOf(tx, client.id);

        // What to do on which device: from the findings, or on the volume named (default: the OS volume).
        const wanted = new Map<string, { mountPoint: string | null; protectorId: string | null }[] | null>();
        const named = input.deviceIds ? [...new Set(input.deviceIds.map((d) => d.toLowerCase()))] : null;
        if (input.finding) {
          const rows = await (devicesWithFinding?.(tx, client.id, input.finding) ?? Promise.resolve([]));
          const byDevice = new Map(rows.map((r) => [r.deviceId, r.findings.filter((f) => f.code === input.finding)]));
          for (const id of named ?? [...byDevice.keys()]) {
            const fs = byDevice.get(id);
            wanted.set(id, fs?.length ? fs.map((f) => ({ mountPoint: f.mountPoint, protectorId: f.protectorId ? braces(f.protectorId) : null })) : null);
          }
        } else {
          for (const id of named ?? (await repo.agentDeviceIds(tx, client.id))) wanted.set(id, []);
        }
        const ids = [...wanted.keys()];
        const batch = await loadBatch(tx, client.id, ids);
        for (const id of ids) {
          const d = batch.devices.get(id);
          if (!d) {
            out.skipped.push({ deviceId: id, device: null, why: 'no such device in this client' });
            continue;
          }
          const why = unfit(d);
          if (why) {
            out.skipped.push({ deviceId: id, device: d.name, why });
            continue;
          }
          let targets = wanted.get(id);
          if (targets === null) {
            out.skipped.push({ deviceId: id, device: d.name, why: `no open finding ${input.finding}` });
            continue;
          }
          if (targets!.length === 0) {
            // No finding: the volume named, or the operating-system volume the agent reported.
            const vols = batch.volumes.get(id) ?? [];
            const vol = input.mountPoint ? vols.find((v) => v.mount_point === normalizeMountPoint(input.mountPoint!)) : vols.find((v) => v.volume_type === 'os');
            const mountPoint = input.mountPoint ? normalizeMountPoint(input.mountPoint) : (vol?.mount_point ?? null);
            if (!mountPoint) {
              out.skipped.push({ deviceId: id, device: d.name, why: 'its agent reported no operating-system volume; name a mountPoint' });
              continue;
            }
            if (PROTECTOR_KINDS.includes(kind)) {
              const passwords = recoveryPasswordIds(vol?.protectors ?? null);
              if (passwords.length === 0) {
                out.skipped.push({ deviceId: id, device: d.name, why: `${mountPoint} has no recovery password to back up` });
                continue;
              }
              targets = passwords.map((p) => ({ mountPoint, protectorId: braces(p) }));
            } else targets = [{ mountPoint, protectorId: null }];
          }
          for (const t of targets!) {
            const plan = planJob(kind, {
              mountPoint: t.mountPoint,
              protectorId: VOLUME_KINDS.includes(kind) ? null : t.protectorId,
              ...(kind === 'enable-encryption' ? { encryptionMethod: policy.encryptionMethod } : {}),
            });
            if (!plan.ok) {
              out.skipped.push({ deviceId: id, device: d.name, why: plan.message });
              continue;
            }
            const want = { kind, mountPoint: plan.mountPoint, protectorId: plan.protectorId };
            const dup = (batch.active.get(id) ?? []).find((j) => covers(j, want));
            if (dup) {
              out.skipped.push({ deviceId: id, device: d.name, why: `already queued: ${dup.kind} for ${jobTarget({ mountPoint: dup.mount_point, protectorId: dup.protector_id })}` });
              continue;
            }
            let jobId: string | null = null;
            if (!dryRun) {
              const list = batch.active.get(id) ?? batch.active.set(id, []).get(id)!;
              const row = await queueJob(
                tx,
                actor,
                { ...(await resolveKey(tx, client.id, id, plan)), clientId: client.id, deviceId: id, kind, origin: 'bulk', because: input.finding ? { finding: input.finding } : undefined },
                list,
              );
              jobId = row.id;
            } else {
              (batch.active.get(id) ?? batch.active.set(id, []).get(id)!).push({ kind, mount_point: plan.mountPoint, protector_id: plan.protectorId } as JobsTable);
            }
            out.queued++;
            out.jobs.push({ jobId, deviceId: id, device: d.name, kind, mountPoint: plan.mountPoint, protectorId: plan.protectorId });
          }
        }
        return out;
      });
    },

    /**
     * Called by compliance in its evaluation's transaction: the policy's enforce fields turn findings
     * into agent jobs (escrow, encryption, key age). Only devices with a live agent that are not
     * waiting for a link, retired or on hold; never a second job for the same work, and not again
     * within 24 hours after one of the same kind and volume ended (the device's next report shows
     * whether it worked; a failure is not retried every hour).
     */
    async enforcePolicy(tx: Executor, clientId: string, policy: Policy, evaluated: { deviceId: string; findings: Finding[] }[]): Promise<{ queued: number }> {
      if (!enforcesAnything(policy)) return { queued: 0 };
      const wants = new Map<string, { kind: JobKind; finding: Finding; protectorId: string | null }[]>();
      for (const d of evaluated) {
        const list: { kind: JobKind; finding: Finding; protectorId: string | null }[] = [];
        const osUnprotected = d.findings.some((f) => f.code === 'os_volume_unprotected');
        for (const f of d.findings) {
          if (!f.mountPoint) continue;
          const kind = enforcedKind(policy, f.code);
          if (!kind) continue;
          // A data drive's auto-unlock needs an encrypted OS drive: that one comes first.
          if (f.code === 'data_volume_unprotected' && osUnprotected) continue;
          list.push({ kind, finding: f, protectorId: kind === 'rotate' || kind === 're-escrow' ? (f.protectorId ? braces(f.protectorId) : null) : null });
        }
        if (list.length) wants.set(d.deviceId, list);
      }
      if (wants.size === 0) return { queued: 0 };
      const ids = [...wants.keys()];
      const now = clock.now();
      const batch = await loadBatch(tx, clientId, ids, new Date(Date.parse(now) - POLICY_BACKOFF_MS).toISOString());
      // Rotation by age only: a revealed key is rotated by the disclosure rule (rotate after disclosure), not by the policy.
      const rotateIds = [...wants.values()].flat().filter((w) => w.kind === 'rotate' && w.finding.protectorId).map((w) => w.finding.protectorId!);
      const keyState = new Map((await keys.byKeyIds(tx, clientId, [...new Set(rotateIds)])).map((k) => [`${k.device_id}|${k.key_id}`, k]));
      const actor = systemActor('compliance policy');
      let queued = 0;
      for (const [id, list] of wants) {
        const d = batch.devices.get(id);
        if (!d || unfit(d)) continue;
        const vols = new Map((batch.volumes.get(id) ?? []).map((v) => [v.id, v]));
        for (const w of list) {
          const f = w.finding;
          const volume = f.volumeId ? vols.get(f.volumeId) : undefined;
          // Only a drive that is not encrypted at all: one being decrypted was decrypted on purpose.
          if (w.kind === 'enable-encryption' && volume?.volume_status !== 'FullyDecrypted') continue;
          let keyRowId: string | null = null;
          if (w.kind === 'rotate') {
            const k = f.protectorId ? keyState.get(`${id}|${f.protectorId}`) : undefined;
            if (!k || k.state !== 'active') continue;
            keyRowId = k.id;
          }
          const plan = planJob(w.kind, {
            mountPoint: f.mountPoint,
            protectorId: w.protectorId,
            ...(w.kind === 'enable-encryption' ? { encryptionMethod: policy.encryptionMethod } : {}),
          });
          if (!plan.ok) continue;
          const want = { kind: w.kind, mountPoint: plan.mountPoint, protectorId: plan.protectorId };
          const active = batch.active.get(id) ?? batch.active.set(id, []).get(id)!;
          if (active.some((j) => covers(j, want))) continue;
          if ((batch.ended.get(id) ?? []).some((j) => j.kind === want.kind && (j.mount_point === want.mountPoint || (!!want.protectorId && j.protector_id === want.protectorId)))) continue;
          await queueJob(
            tx,
            actor,
            { clientId, deviceId: id, kind: w.kind, mountPoint: plan.mountPoint, protectorId: plan.protectorId, keyRowId, options: plan.options, origin: 'policy', because: { finding: f.code } },
            active,
          );
          queued++;
        }
      }
      return { queued };
    },

    async listFindings(
      actor: Actor,
      filter: { clientId?: string; deviceId?: string; open?: boolean; kind?: EscrowFindingKind; severity?: FindingSeverity; limit?: number; offset?: number } = {},
    ): Promise<FindingView[]> {
      requirePermission(actor, 'device:read', filter.clientId);
      const { kind, severity, ...rest } = filter;
      // Type and severity both narrow the kinds asked for (a kind of another severity matches nothing).
      const kinds = kind || severity ? ESCROW_FINDING_KINDS.filter((k) => (!kind || k === kind) && (!severity || ESCROW_FINDING_INFO[k].severity === severity)) : undefined;
      if (kinds?.length === 0) return [];
      const rows = await repo.listFindings(transactions.reader, clientScope(actor), {
        ...rest,
        kinds,
        limit: Math.min(Math.max(filter.limit ?? 200, 1), 1000),
        offset: Math.max(filter.offset ?? 0, 0),
      });
      // The check-in writes only the kinds of ESCROW_FINDING_KINDS (DesiredFinding).
      return rows.filter((r) => isEscrowFindingKind(r.kind)).map((r) => ({
        id: r.id,
        kind: r.kind as EscrowFindingKind,
        title: ESCROW_FINDING_INFO[r.kind as EscrowFindingKind].title,
        severity: ESCROW_FINDING_INFO[r.kind as EscrowFindingKind].severity,
        detail: r.detail,
        protectorId: r.protector_id ? braces(r.protector_id) : null,
        mountPoint: r.mount_point ?? null,
        client: { id: r.client_id, name: r.client_name },
        device: { id: r.device_id, name: r.device_name },
        openedAt: r.opened_at,
        resolvedAt: r.resolved_at,
      }));
    },

    /** Stops a device's agent credential; the agent has to enroll again with a token. */
    async revokeDevice(actor: Actor, deviceId: string): Promise<{ revoked: number }> {
      requirePermission(actor, 'agent:manage');
      return transactions.run(async (tx) => {
        const device = await findVisibleDevice(tx, actor, deviceId);
        const n = await repo.revokeDeviceCredentials(tx, device.client_id, device.id, clock.now());
        await audit.record(tx, actor, { action: 'agent.revoke', outcome: 'success', clientId: device.client_id, targetType: 'device', targetId: device.id, details: { device: device.name, credentials: n } });
        return { revoked: n };
      });
    },

    /** Agents that enrolled as a known device without proof and wait for an admin to link them. */
    async listPendingLinks(actor: Actor, clientId?: string): Promise<PendingLinkView[]> {
      requirePermission(actor, 'agent:manage', clientId);
      const rows = await repo.listPendingLinks(transactions.reader, clientScope(actor), clientId);
      return rows.map((r) => ({
        device: { id: r.device_id, name: r.device_name },
        claims: r.link_device_id && r.link_device_name ? { id: r.link_device_id, name: r.link_device_name } : null,
        matchedOn: r.link_match ?? null,
        client: { id: r.client_id, name: r.client_name },
        enrolledAt: r.created_at,
      }));
    },

    /**
     * An admin confirms that the agent waiting under deviceId is the machine it enrolled as: its
     * credential moves to that device (whose older credentials stop), the keys it escrowed
     * meanwhile follow, and the waiting record is retired.
     */
    async approveLink(actor: Actor, deviceId: string): Promise<{ deviceId: string; device: string }> {
      requirePermission(actor, 'agent:manage');
      return transactions.run(async (tx) => {
        const waiting = await findVisibleDevice(tx, actor, deviceId);
        const clientId = waiting.client_id;
        const cred = await repo.pendingLinkOf(tx, clientId, waiting.id);
        if (!cred?.link_device_id) throw notFound(`${waiting.name} has no agent waiting for approval.`);
        const target = await devices.find(tx, clientId, cred.link_device_id);
        if (!target || target.retired_at) throw conflict(`The device ${waiting.name} enrolled as no longer exists or was retired; revoke this agent and let it enroll again.`);
        const now = clock.now();
        const revoked = await repo.revokeDeviceCredentials(tx, clientId, target.id, now);
        await repo.linkCredential(tx, clientId, cred.id, target.id);
        for (const k of await keys.ofDevice(tx, clientId, waiting.id)) await keys.patch(tx, clientId, k.id, { device_id: target.id, volume_id: null });
        await repo.moveFingerprints(tx, clientId, waiting.id, target.id);
        await repo.cancelJobsOf(tx, clientId, waiting.id, now, `the agent was linked to ${target.name}`);
        for (const f of await repo.openFindings(tx, clientId, waiting.id)) await repo.resolveFinding(tx, clientId, f.id, now);
        await devices.patch(tx, clientId, target.id, { agent_id: cred.id, last_seen_at: now });
        await devices.patch(tx, clientId, waiting.id, { agent_id: null, retired_at: now, retired_by: actor.id, retire_reason: `agent linked to ${target.name}` });
        await audit.record(tx, actor, {
          action: 'agent.link.approve',
          outcome: 'success',
          clientId,
          targetType: 'device',
          targetId: target.id,
          details: { device: target.name, from: { deviceId: waiting.id, device: waiting.name }, matchedOn: cred.link_match ?? null, revokedCredentials: revoked },
        });
        await onChanged?.(tx, clientId, [target.id, waiting.id]);
        return { deviceId: target.id, device: target.name };
      });
    },

    /**
     * Called in the reveal's transaction: a disclosed key should be replaced. When the client
     * rotates after disclosure (the default) and the device has an agent, queue a rotate job.
     */
    async onKeyDisclosed(tx: Executor, actor: Actor, key: { id: string; client_id: string; device_id: string | null; key_id: string | null }): Promise<void> {
      if (!key.device_id || !key.key_id) return;
      if (!(await clients.rotatesAfterDisclosure(tx, key.client_id))) return;
      if (!(await repo.hasActiveCredential(tx, key.client_id, key.device_id))) return;
      const mountPoint = await keys.mountPointOf(tx, key.client_id, key.id);
      await queueJob(tx, actor, { clientId: key.client_id, deviceId: key.device_id, kind: 'rotate', mountPoint, protectorId: braces(key.key_id), keyRowId: key.id, origin: 'disclosure' });
    },
  };

  // ---------------------------------------------------------------- jobs of many devices
  const policyOf = async (exec: Executor, clientId: string) =>
    (await policy?.(exec, clientId)) ?? { directoryBackupAfterRotation: true, encryptionMethod: 'default' as const };

  /** Everything bulk queueing and enforcement need about a set of devices, in a fixed number of queries. */
  async function loadBatch(exec: Executor, clientId: string, ids: readonly string[], endedSince?: string) {
    const group = <T extends { device_id: string }>(rows: T[]) => {
      const m = new Map<string, T[]>();
      for (const r of rows) (m.get(r.device_id) ?? m.set(r.device_id, []).get(r.device_id)!).push(r);
      return m;
    };
    const valid = ids.filter(isId);
    const [targets, volumes, active, ended] = await Promise.all([
      repo.jobTargets(exec, clientId, valid),
      repo.volumesOfDevices(exec, clientId, valid),
      repo.activeJobsOfDevices(exec, clientId, valid),
      endedSince ? repo.jobsEndedSince(exec, clientId, valid, endedSince) : Promise.resolve([]),
    ]);
    return { devices: new Map(targets.map((t) => [t.id, t])), volumes: group(volumes), active: group(active.filter((j) => isAgentJobKind(j.kind))), ended: group(ended) };
  }

  /** The device's own key row for a job's recovery password, and the volume it sits on when the job names none. */
  async function resolveKey(
    exec: Executor,
    clientId: string,
    deviceId: string,
    plan: { mountPoint: string | null; protectorId: string | null; options: JobOptions | null },
  ): Promise<{ mountPoint: string | null; protectorId: string | null; keyRowId: string | null; options: JobOptions | null }> {
    const keyId = parseKeyIdOrNull(plan.protectorId);
    const key = keyId ? (await keys.byKeyIds(exec, clientId, [keyId])).find((k) => k.device_id === deviceId) : undefined;
    const mountPoint = plan.mountPoint ?? (key ? await keys.mountPointOf(exec, clientId, key.id) : null) ?? null;
    return { mountPoint, protectorId: plan.protectorId, keyRowId: key?.id ?? null, options: plan.options };
  }

  // ---------------------------------------------------------------- check-in steps
  /** Whether a key of the device came from anything but the device's own agents (Entra, AD, an import). */
  async function hasForeignKeys(exec: Executor, clientId: string, deviceId: string): Promise<boolean> {
    const rows = await keys.ofDevice(exec, clientId, deviceId);
    if (rows.length === 0) return false;
    return (await keys.sourcesOf(exec, rows.map((k) => k.id))).some((src) => src.source_type !== 'agent' || src.source_ref !== deviceId);
  }

  async function findVisibleDevice(exec: Executor, actor: Actor, deviceId: string): Promise<DevicesTable> {
    const d = await devices.findVisible(exec, deviceId, clientScope(actor));
    if (!d) throw notFound(`No device with id ${deviceId.slice(0, 60)}.`);
    return d;
  }

  async function updateFacts(
    tx: Executor,
    actor: Actor,
    device: DevicesTable,
    body: CheckinRequest,
    now: string,
    pendingLink: boolean,
    problems: string[],
  ) {
    const d = body.device;
    const entra = d.entra?.deviceId ?? d.entraDeviceId ?? null;
    const parsedEntra = entra ? parseKeyId(entra) : null;
    let entraId = parsedEntra?.ok ? parsedEntra.value : device.entra_device_id;
    // Identity attributes are what enrollment, Entra and AD match devices on: a device waiting
    // for its link keeps none, and no device takes an Entra device ID another device of the
    // client already has.
    if (pendingLink) entraId = device.entra_device_id;
    else if (entraId && entraId !== device.entra_device_id && (await devices.findByEntraIds(tx, device.client_id, [entraId])).some((x) => x.id !== device.id)) {
      entraId = device.entra_device_id;
    }
    const name = d.hostname.trim();
    const primary = primaryUserOf(device, d.primaryUser, pendingLink);
    const facts = {
      manufacturer: d.manufacturer ?? null,
      model: d.model ?? null,
      os: d.os ?? null,
      entra: d.entra ?? null,
      adComputerName: d.adComputerName ?? null,
      domainJoined: d.domainJoined ?? null,
      tpm: d.tpm ?? null,
      secureBoot: d.secureBoot ?? null,
      agentVersion: body.agentVersion ?? null,
      // What the last report could not read (shown with the device; nothing was superseded because of it).
      ...(problems.length ? { reportProblems: problems.slice(0, 20).map((p) => p.slice(0, 300)) } : {}),
      // A primary user the agent sent that is no UPN: ignored, and why is shown with the device.
      ...(primary.ignored ? { primaryUserIgnored: primary.ignored } : {}),
    };
    const patch = {
      name,
      name_key: deviceNameKey(name),
      domain: d.domain ?? device.domain,
      serial: pendingLink ? device.serial : d.serialNumber?.trim() || device.serial,
      smbios_uuid: pendingLink ? device.smbios_uuid : d.smbiosUuid?.trim().toLowerCase() || device.smbios_uuid,
      entra_device_id: entraId,
      primary_user: primary.user,
      primary_user_source: primary.source,
      facts: JSON.stringify(facts),
    };
    // The common hourly check-in reports the same facts: then only "seen at" changes, and that goes
    // to the write-behind buffer instead of a row rewrite in this transaction (see seen-buffer.ts).
    const same = device.last_checkin_at !== null && (Object.keys(patch) as (keyof typeof patch)[]).every((k) => device[k] === patch[k]);
    if (same && seen) {
      seen.touch(device.client_id, device.id, now);
      return true;
    }
    await devices.patch(tx, device.client_id, device.id, { ...patch, last_checkin_at: now, last_seen_at: now });
    // The primary user decides whose self-service sign-in reaches this device's keys: every change is audited.
    if (patch.primary_user !== device.primary_user) {
      await audit.record(tx, actor, {
        action: 'device.primary_user',
        outcome: 'success',
        clientId: device.client_id,
        targetType: 'device',
        targetId: device.id,
        details: { device: name, from: device.primary_user, to: patch.primary_user, source: 'agent' },
      });
    }
    device.name = name;
    return false;
  }

  /**
   * The device's primary user after a check-in that reported `reported` (undefined: an agent before
   * 1.2.0, which does not know the field). A primary user from an import or Graph stays (source
   * null); the agent fills an empty one and keeps the one it set itself current, down to clearing
   * it when Windows no longer names a join user. A device waiting for an admin's link keeps what it
   * has: self-service lets that user reveal the device's keys, so an unconfirmed agent sets none.
   */
  function primaryUserOf(
    device: DevicesTable,
    reported: string | null | undefined,
    pendingLink: boolean,
  ): { user: string | null; source: 'agent' | null; ignored: string | null } {
    const kept = { user: device.primary_user, source: device.primary_user_source ?? null, ignored: null };
    if (reported === undefined || pendingLink) return kept;
    const parsed = reported === null ? null : parsePrimaryUser(reported);
    if (parsed && !parsed.ok) return { ...kept, ignored: `${parsed.reason}; it was ignored` };
    const theAgents = device.primary_user === null || device.primary_user_source === 'agent';
    if (!theAgents) return kept;
    return parsed ? { user: parsed.value, source: 'agent', ignored: null } : { user: null, source: null, ignored: null };
  }

  /** `keepProtectors`: mount points whose protectors the report could not read; their stored list stays. */
  async function syncVolumes(
    tx: Executor,
    device: DevicesTable,
    reported: ReportedVolume[],
    now: string,
    keepProtectors: ReadonlySet<string>,
    existing: VolumesTable[],
  ): Promise<Map<string, VolumesTable>> {
    const out = new Map<string, VolumesTable>();
    for (const v of reported) {
      let row = existing.find((x) => x.mount_point === v.mountPoint);
      const state = {
        volume_status: v.volumeStatus,
        protection_status: v.protectionStatus,
        lock_status: v.lockStatus,
        encryption_method: v.encryptionMethod,
        encryption_percentage: v.encryptionPercentage === null ? null : Math.round(v.encryptionPercentage),
        protectors: keepProtectors.has(v.mountPoint) && row ? row.protectors : JSON.stringify(v.protectors.map((p) => ({ id: p.id, type: p.type }))),
      };
      const changed = !row || (Object.keys(state) as (keyof typeof state)[]).some((k) => row![k] !== state[k]);
      if (!row) {
        row = {
          id: newId(),
          client_id: device.client_id,
          device_id: device.id,
          mount_point: v.mountPoint,
          volume_type: v.volumeType,
          volume_guid: null,
          encryption_state: v.volumeStatus,
          last_reported_at: now,
          created_at: now,
          ...state,
        };
        await devices.insertVolume(tx, row);
      } else if (changed || (row.volume_type === 'unknown' && v.volumeType !== 'unknown')) {
        // Unchanged volumes are not rewritten: the device's last_checkin_at says they were seen.
        const patch = { ...state, last_reported_at: now, encryption_state: v.volumeStatus, ...(row.volume_type === 'unknown' && v.volumeType !== 'unknown' ? { volume_type: v.volumeType } : {}) };
        await devices.updateVolume(tx, device.client_id, row.id, patch);
        Object.assign(row, patch);
      }
      // History only on change, so a device checking in hourly does not fill the table.
      if (changed) {
        changedTx.add(tx);
        await repo.insertVolumeState(tx, { id: newId(), client_id: device.client_id, volume_id: row.id, recorded_at: now, ...state });
      }
      out.set(v.mountPoint, row);
    }
    return out;
  }

  async function recordEvents(tx: Executor, actor: Actor, device: DevicesTable, events: NonNullable<CheckinRequest['events']>, now: string) {
    for (const e of events) {
      if (!(e.id in BITLOCKER_EVENTS)) continue;
      const pid = e.protectorId ? parseKeyId(e.protectorId) : null;
      const fresh = await repo.insertEvent(tx, {
        id: newId(),
        client_id: device.client_id,
        device_id: device.id,
        event_id: e.id,
        occurred_at: new Date(e.time).toISOString(),
        protector_id: pid?.ok ? pid.value : null,
        mount_point: e.volume ? normalizeMountPoint(e.volume) : null,
        received_at: now,
      });
      if (fresh) changedTx.add(tx);
      if (fresh && e.id === 24652 && notifier) {
        await notifier.emit(tx, {
          type: 'device.recovery_boot',
          clientId: device.client_id,
          deviceId: device.id,
          subject: `${device.name} was started with a recovery password${e.volume ? ` (${normalizeMountPoint(e.volume)})` : ''}`,
          details: { device: device.name, protectorId: pid?.ok ? braces(pid.value) : null, mountPoint: e.volume ? normalizeMountPoint(e.volume) : null, at: new Date(e.time).toISOString() },
          dedupKey: `device.recovery_boot:${device.id}:${new Date(e.time).toISOString()}`,
          occurredAt: new Date(e.time).toISOString(),
        });
      }
      if (!fresh || e.id !== 24652 || !pid?.ok) continue;
      // The recovery password was typed at boot: it is known to whoever read it out. Rotate it.
      // Only the device's own key: an event cannot mark another device's key as used.
      const k = (await keys.byKeyIds(tx, device.client_id, [pid.value])).find((x) => x.device_id === device.id);
      if (!k) continue;
      if (k.state === 'active') await markKey(tx, actor, device.client_id, k, 'disclosed', 'key.used', `used to start Windows on ${device.name} (event 24652)`);
      await service.onKeyDisclosed(tx, actor, { id: k.id, client_id: device.client_id, device_id: device.id, key_id: k.key_id });
    }
  }

  /**
   * An upload carrying a job's id: what it proves for the job. Only "stored" or "duplicate" counts as
   * escrowed (a conflict is a password that differs from the vault's under the same key ID).
   */
  async function noteJobUpload(tx: Executor, actor: Actor, job: JobsTable, key: { keyId: string; mountPoint: string; protectorId: string }, outcome: string, now: string) {
    if (!ACTIVE_JOB_STATES.includes(job.state) || !isAgentJobKind(job.kind)) return;
    const escrowed = outcome === 'imported' || outcome === 'duplicate';
    const named = parseKeyIdOrNull(job.protector_id);
    const kind = job.kind;
    if (kind === 'backup' || (kind === 're-escrow' && named)) {
      if (key.keyId !== named) return;
      if (escrowed) await setJob(tx, actor, job, { state: 'succeeded', finished_at: now, new_key_id: key.keyId, detail: 'recovery password escrowed' }, 'protector uploaded');
      else await setJob(tx, actor, job, { detail: `the vault answered ${outcome} for ${key.protectorId}: not escrowed` });
      return;
    }
    if (!escrowed || job.state === 'awaiting_removal') return;
    if (kind === 'rotate') {
      if (key.keyId === named) return;
      // The old key's volume as the vault knows it now: the agent follows a protector whose drive letter changed.
      const old = job.recovery_key_id ? await keys.mountPointOf(tx, job.client_id, job.recovery_key_id) : null;
      if (job.mount_point && key.mountPoint !== job.mount_point && key.mountPoint !== old) return;
      await setJob(tx, actor, job, { state: 'awaiting_removal', new_key_id: key.keyId }, 'new recovery password escrowed');
      return;
    }
    if ((ESCROW_FIRST.includes(kind) || kind === 're-escrow') && !job.new_key_id && key.mountPoint === job.mount_point) {
      // Escrowed first: the job may now enable, resume or report done (the state stays until it does).
      await setJob(tx, actor, job, { new_key_id: key.keyId });
    }
  }

  async function applyJobResults(tx: Executor, actor: Actor, device: DevicesTable, body: CheckinRequest, now: string) {
    for (const r of body.jobResults ?? []) {
      const job = await repo.findJob(tx, device.client_id, device.id, r.jobId);
      // Only the agent's own kinds: an Intune rotation of the same device is not the agent's to report.
      if (!job || !ACTIVE_JOB_STATES.includes(job.state) || !isAgentJobKind(job.kind)) continue;
      const detail = r.detail?.slice(0, 500) ?? null;
      if (r.status === 'failed') {
        const final = job.attempts >= job.max_attempts;
        await setJob(tx, actor, job, { state: final ? 'failed' : 'pending', detail, ...(final ? { finished_at: now } : {}) }, detail ?? 'the agent reported a failure');
        continue;
      }
      const refused = await refuseSuccess(tx, device, job);
      if (refused) {
        // "Done" without an escrowed recovery password would leave nothing to unlock the disk with: try again.
        await setJob(tx, actor, job, { state: 'pending', detail: refused }, refused);
        continue;
      }
      if (job.kind === 'rotate') {
        await finishRotation(tx, actor, device, job, body, now, detail, r.removedProtectorId ?? null);
        continue;
      }
      await setJob(tx, actor, job, { state: 'succeeded', finished_at: now, detail }, detail ?? undefined);
    }
  }

  /**
   * Why the agent's "succeeded" cannot be taken for this job, or null when it can. Kinds that escrow
   * first need the recovery password they escrowed (uploaded with the job's id, answered stored or
   * duplicate); backup and re-escrow of one password succeed at that upload, so a report of success
   * for one still waiting means the vault never answered stored or duplicate.
   */
  async function refuseSuccess(tx: Executor, device: DevicesTable, job: JobsTable): Promise<string | null> {
    const kind = job.kind as JobKind;
    if (ESCROW_FIRST.includes(kind)) return job.new_key_id ? null : NOT_ESCROWED;
    if (kind === 'backup' || (kind === 're-escrow' && job.protector_id)) return `${NOT_ESCROWED} (the vault did not answer stored or duplicate for ${job.protector_id})`;
    if (kind === 're-escrow') {
      if (!job.new_key_id) return NOT_ESCROWED;
      // Every recovery password the volume has (as the agent last reported it) must be in the vault.
      const vol = (await devices.volumesOfDevice(tx, device.client_id, device.id)).find((v) => v.mount_point === job.mount_point);
      const held = new Set((await keys.ofDevice(tx, device.client_id, device.id)).filter((k) => k.state === 'active' || k.state === 'disclosed').map((k) => k.key_id));
      const missing = recoveryPasswordIds(vol?.protectors ?? null).filter((id) => !held.has(id));
      if (missing.length) return `${NOT_ESCROWED}: ${missing.map(braces).join(', ')} on ${job.mount_point} is not in the vault`;
    }
    return null;
  }

  /**
   * A rotation is done: the old key is rotated, and (unless the policy says otherwise) the new one
   * is backed up to the directory the device is joined to, as Microsoft's own rotation does, so AD
   * and Entra ID do not keep showing only the removed password.
   */
  async function finishRotation(tx: Executor, actor: Actor, device: DevicesTable, job: JobsTable, body: CheckinRequest, now: string, detail: string | null, removedProtectorId: string | null = null) {
    if (job.recovery_key_id) {
      const old = await keys.stateOf(tx, device.client_id, job.recovery_key_id);
      if (old) await markKey(tx, actor, device.client_id, old, 'rotated', 'key.rotated', 'replaced by a new recovery password on the device');
    } else if (removedProtectorId) {
      // A rotation of every recovery password of the volume: the one the agent removed.
      const removed = parseKeyIdOrNull(removedProtectorId);
      const k = removed && removed !== job.new_key_id ? (await keys.byKeyIds(tx, device.client_id, [removed])).find((x) => x.device_id === device.id) : undefined;
      if (k && isCurrentKey(k.state)) await markKey(tx, actor, device.client_id, k, 'rotated', 'key.rotated', 'replaced by a new recovery password on the device');
    }
    const backups: JobKind[] = [];
    if (job.new_key_id && (await policyOf(tx, device.client_id)).directoryBackupAfterRotation) {
      if (body.device.domainJoined === true) backups.push('backup-to-ad');
      if (body.device.entra?.joinType === 'AzureAdJoined' || body.device.entra?.joinType === 'HybridJoined') backups.push('backup-to-entra');
    }
    const note = backups.length ? `backup of the new recovery password to ${backups.map((b) => (b === 'backup-to-ad' ? 'Active Directory' : 'Entra ID')).join(' and ')} queued` : null;
    const text = [detail, note].filter(Boolean).join('; ').slice(0, 1000) || null;
    await setJob(tx, actor, job, { state: 'succeeded', finished_at: now, detail: text }, text ?? undefined);
    if (!backups.length) return;
    const fresh = (await keys.byKeyIds(tx, device.client_id, [job.new_key_id!])).find((k) => k.device_id === device.id);
    const mountPoint = job.mount_point ?? (fresh ? await keys.mountPointOf(tx, device.client_id, fresh.id) : null) ?? null;
    for (const kind of backups) {
      await queueJob(tx, actor, {
        clientId: device.client_id,
        deviceId: device.id,
        kind,
        mountPoint,
        protectorId: braces(job.new_key_id!),
        keyRowId: fresh?.id ?? null,
        origin: 'rotation',
        because: { rotateJob: job.id },
      });
    }
  }

  /** `keepVolumes`: volumes the report could not read in full; their open findings stay as they are. */
  async function reconcileFindings(
    tx: Executor,
    actor: Actor,
    device: DevicesTable,
    desired: DesiredFinding[],
    now: string,
    keepVolumes: ReadonlySet<string>,
    openFindings: FindingsTable[],
  ) {
    // did_not_unlock is a person's report after a reveal (keys.outcome.ts), not the agent's to settle: it
    // closes when the key is re-escrowed (uploadKeys) or someone says the key did unlock.
    const open = openFindings.filter(
      (f) => f.kind !== 'did_not_unlock' && (!f.volume_id || !keepVolumes.has(f.volume_id)),
    );
    const key = (f: { kind: string; volume_id?: string | null; volumeId?: string; protector_id?: string | null; protectorId?: string | null }) =>
      `${f.kind}|${f.volume_id ?? f.volumeId}|${f.protector_id ?? f.protectorId ?? ''}`;
    const want = new Map(desired.map((d) => [key(d), d]));
    for (const f of open) {
      if (want.has(key(f))) {
        want.delete(key(f));
        continue;
      }
      await repo.resolveFinding(tx, device.client_id, f.id, now);
      await audit.record(tx, actor, { action: 'finding.resolve', outcome: 'success', clientId: device.client_id, targetType: 'finding', targetId: f.id, details: { kind: f.kind, device: device.name } });
    }
    for (const d of want.values()) {
      const id = newId();
      await repo.insertFinding(tx, {
        id,
        client_id: device.client_id,
        device_id: device.id,
        volume_id: d.volumeId,
        recovery_key_id: d.keyRowId,
        kind: d.kind,
        protector_id: d.protectorId,
        detail: d.detail,
        opened_at: now,
        resolved_at: null,
      });
      await audit.record(tx, actor, { action: 'finding.open', outcome: 'success', clientId: device.client_id, targetType: 'finding', targetId: id, details: { kind: d.kind, device: device.name, detail: d.detail } });
    }
  }

  async function offerJobs(tx: Executor, actor: Actor, device: DevicesTable, now: string, active: JobsTable[]): Promise<JobOffer[]> {
    const offers: JobOffer[] = [];
    for (const job of active) {
      // Other producers' jobs of the device (an Intune rotation) are not for the agent.
      if (!isAgentJobKind(job.kind)) continue;
      if (job.expires_at <= now) {
        await setJob(tx, actor, job, { state: 'expired', finished_at: now }, 'not completed in time');
        continue;
      }
      if (job.attempts >= job.max_attempts) {
        await setJob(tx, actor, job, { state: 'failed', finished_at: now }, `no success after ${job.attempts} attempts`);
        continue;
      }
      await setJob(tx, actor, job, { state: job.state === 'pending' ? 'sent' : job.state, attempts: job.attempts + 1, sent_at: now });
      const o = jobOptions(job);
      offers.push({ id: job.id, kind: job.kind, mountPoint: job.mount_point, protectorId: job.protector_id, ...o });
    }
    return offers;
  }

  return service;
}

/** Why a device's agent may not be given work right now, or null when it may. */
function unfit(d: { retired_at: string | null; legal_hold_at?: string | null; client_legal_hold_at?: string | null; has_agent: boolean; pending_link: boolean }): string | null {
  if (d.retired_at) return 'retired';
  if (d.legal_hold_at || d.client_legal_hold_at) return 'on legal hold: its keys stay as they are';
  if (!d.has_agent) return 'no enrolled agent';
  if (d.pending_link) return 'its agent waits for an admin to approve its link to this device';
  return null;
}

/** The job a policy's enforce fields ask for on a finding, if any. */
function enforcedKind(policy: Policy, code: FindingCode): JobKind | null {
  if (policy.enforceEscrow && code === 'recovery_password_missing') return 'add-recovery-password';
  if (policy.enforceEscrow && code === 'recovery_key_not_escrowed') return 're-escrow';
  if (policy.enforceEncryption && (code === 'os_volume_unprotected' || code === 'data_volume_unprotected')) return 'enable-encryption';
  if (policy.enforceEncryption && code === 'protection_suspended') return 'resume-protection';
  if (policy.enforceKeyAge && code === 'key_rotation_due') return 'rotate';
  return null;
}

/** Key IDs (normalised) of the recovery-password protectors in a volume row's protector list. */
function recoveryPasswordIds(json: string | null): string[] {
  if (!json) return [];
  try {
    const list = JSON.parse(json) as { id?: unknown; type?: unknown }[];
    return Array.isArray(list) ? list.filter((p) => p.type === 'RecoveryPassword' && typeof p.id === 'string').flatMap((p) => parseKeyIdOrNull(p.id as string) ?? []) : [];
  } catch {
    return [];
  }
}

function parseKeyIdOrNull(s: string | null): string | null {
  if (!s) return null;
  const r = parseKeyId(s);
  return r.ok ? r.value : null;
}

export type AgentService = ReturnType<typeof createAgentService>;
