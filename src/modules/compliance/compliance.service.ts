import { yieldToEventLoop } from '../../lib/yield.js';
import type { Executor } from '../../db/database.js';
import { bulkStepRows } from '../../db/bulk.js';
import type { CompliancePoliciesTable, ComplianceHistoryTable, DeviceComplianceTable } from '../../db/schema.js';
import type { Transactions } from '../../db/transactions.js';
import type { Clock } from '../../lib/clock.js';
import { newId } from '../../lib/ids.js';
import { badRequest, forbidden, notFound } from '../../lib/errors.js';
import { evaluateDevice, evaluationSignature, type ComplianceStatus, type Evaluation, type Finding } from '../../domain/compliance/evaluate.js';
import { FINDING_INFO, type FindingCode } from '../../domain/compliance/findings.js';
import {
  POLICY_FIELDS,
  applyOverrides,
  effectivePolicy,
  enforcesAnything,
  policyOverridesSchema,
  type Policy,
  type PolicyOverrides,
  type PolicySource,
} from '../../domain/compliance/policy.js';
import { formatKeyIdForDisplay } from '../../domain/key-id.js';
import { can, clientScope, requirePermission, systemActor, type Actor } from '../authz/authz.js';
import type { ClientsRepo } from '../clients/clients.repo.js';
import { requireVisibleClient } from '../clients/visible-client.js';
import type { AuditService } from '../audit/audit.service.js';
import type { NotificationEvent, NotificationEventType, Notifier } from '../notifications/notifier.js';
import type { PostureView, TenantPostureStore } from '../graph/posture.js';
import { loadDevices, type LoadedDevice } from './compliance.loader.js';
import type { ComplianceRepo } from './compliance.repo.js';

export type PolicyView = {
  scope: 'default' | 'client';
  clientId: string | null;
  /** The fields set at this level. */
  overrides: PolicyOverrides;
  /** The policy in force (built-in <- MSP default <- client). */
  effective: Policy;
  /** Where each effective field comes from. */
  sources: Record<keyof Policy, PolicySource>;
  updatedAt: string | null;
  updatedBy: string | null;
};

export type ExemptionView = {
  id: string;
  clientId: string;
  device: { id: string; name: string };
  reason: string;
  expiresAt: string | null;
  createdBy: string;
  createdAt: string;
  revokedAt: string | null;
  active: boolean;
};

export type FindingView = Finding & { title: string; explanation: string; fix: string };
export type DeviceComplianceView = {
  device: { id: string; name: string };
  client: { id: string; name: string };
  status: ComplianceStatus;
  since: string;
  changedAt: string;
  findings: FindingView[];
  history: { recordedAt: string; status: string; previousStatus: string | null; codes: string[] }[];
};

type Deps = {
  tx: Transactions;
  repo: ComplianceRepo;
  clients: Pick<ClientsRepo, 'listVisible'>;
  audit: Pick<AuditService, 'record'>;
  clock: Clock;
  notifier: Notifier;
  /**
   * The policy's enforce fields: turns a batch of evaluated devices' findings into agent jobs, in
   * the evaluation's transaction (the agent module decides what may be queued). Called only when
   * the policy enforces something.
   */
  enforce?: (tx: Executor, clientId: string, policy: Policy, devices: { deviceId: string; findings: Finding[] }[]) => Promise<unknown>;
  /** Tenant posture as the last Entra sync read it (the graph module owns it). */
  posture?: Pick<TenantPostureStore, 'list'>;
};

const BATCH = 500;
const DEFAULT_SCOPE = 'default';

/** Which finding codes, when they appear, are worth an event of their own. */
const FINDING_EVENTS: Partial<Record<FindingCode, NotificationEventType>> = {
  os_volume_unprotected: 'device.encryption_off',
  data_volume_unprotected: 'device.encryption_off',
  removable_volume_unprotected: 'device.encryption_off',
  protection_suspended: 'device.protection_suspended',
  stale: 'device.stale',
  recovery_key_not_escrowed: 'key.unescrowed',
  escrowed_key_mismatch: 'key.mismatch',
};

export const withInfo = (f: Finding): FindingView => ({
  ...f,
  protectorId: f.protectorId ? formatKeyIdForDisplay(f.protectorId) : null,
  ...FINDING_INFO[f.code],
});
const findingKey = (f: Pick<Finding, 'code' | 'volumeId' | 'protectorId'>) => `${f.code}|${f.volumeId ?? ''}|${f.protectorId ?? ''}`;

/**
 * Compliance: policies, exemptions, and each device's evaluated status. Evaluation reads the vault,
 * runs the pure rules in src/domain/compliance, and writes only what changed: the current status,
 * a history row, and notification events (in the same transaction, through the notifier's outbox).
 */
export function createComplianceService({ tx: transactions, repo, clients, audit, clock, notifier, enforce, posture }: Deps) {
  const reader = transactions.reader;
  // ------------------------------------------------------------------ policies
  type Overrides = { overrides: PolicyOverrides; updatedAt: string | null; updatedBy: string | null };
  const toOverrides = (row: CompliancePoliciesTable | undefined): Overrides => {
    if (!row) return { overrides: {}, updatedAt: null, updatedBy: null };
    // A stored field that no longer validates (a future version's) is ignored, not fatal.
    const parsed = policyOverridesSchema.safeParse(JSON.parse(row.settings));
    return { overrides: parsed.success ? parsed.data : {}, updatedAt: row.updated_at, updatedBy: row.updated_by };
  };
  async function readOverrides(exec: Executor, scope: string): Promise<Overrides> {
    return toOverrides(await repo.findPolicy(exec, scope));
  }

  const policyOf = (rows: readonly CompliancePoliciesTable[], clientId: string): Policy => {
    const at = (scope: string) => toOverrides(rows.find((r) => r.scope === scope)).overrides;
    return effectivePolicy(at(DEFAULT_SCOPE), at(clientId)).policy;
  };
  async function policyFor(exec: Executor, clientId: string): Promise<Policy> {
    return policyOf((await repo.evaluationContext(exec, clientId, DEFAULT_SCOPE))?.policies ?? [], clientId);
  }

  async function visibleDevice(exec: Executor, actor: Actor, deviceId: string) {
    const d = await repo.findVisibleDevice(exec, deviceId, clientScope(actor));
    if (!d) throw notFound(`No device with id ${deviceId.slice(0, 60)}.`);
    return d;
  }

  // ------------------------------------------------------------------ evaluation
  type Outcome = { evaluated: number; changed: number; events: number };

  /**
   * Evaluates devices of one client inside the caller's transaction and stores what changed.
   * The unit of work every trigger uses: a check-in, an upload, a sync, an import, the schedule.
   */
  async function evaluateIn(tx: Executor, clientId: string, deviceIds: readonly string[], policy?: Policy): Promise<Outcome> {
    const out: Outcome = { evaluated: 0, changed: 0, events: 0 };
    if (deviceIds.length === 0) return out;
    const now = clock.now();
    // Client and policies in one query: a device's evaluation runs inside reveals and check-ins.
    const context = await repo.evaluationContext(tx, clientId, DEFAULT_SCOPE);
    if (!context) return out;
    const client = { id: clientId, name: context.name };
    const pol = policy ?? policyOf(context.policies, clientId);
    const step = bulkStepRows(tx);
    for (let i = 0; i < deviceIds.length; i += step) {
      if (i > 0) await yieldToEventLoop();
      const ids = deviceIds.slice(i, i + step);
      const { devices, statuses: currentRows } = await loadDevices(repo, tx, clientId, ids);
      const current = new Map(currentRows.map((r) => [r.device_id, r]));
      const upserts: DeviceComplianceTable[] = [];
      const history: ComplianceHistoryTable[] = [];
      const retired: string[] = [];
      // Every evaluated device with findings, changed or not: enforcement turned on later still acts.
      const enforceable: { deviceId: string; findings: Finding[] }[] = [];
      for (const d of devices) {
        const prev = current.get(d.id);
        if (d.retiredAt) {
          // Retired devices leave the statistics: one last history row takes them out of the trend.
          if (prev) {
            retired.push(d.id);
            history.push({ id: newId(), client_id: clientId, device_id: d.id, recorded_at: now, status: 'retired', previous_status: prev.status, codes: '[]' });
          }
          continue;
        }
        out.evaluated++;
        const e = evaluateDevice(d, pol, now);
        if (e.status === 'non-compliant') enforceable.push({ deviceId: d.id, findings: e.findings });
        const signature = evaluationSignature(e);
        if (prev && prev.signature === signature) continue;
        out.changed++;
        upserts.push({
          device_id: d.id,
          client_id: clientId,
          status: e.status,
          findings: JSON.stringify(e.findings),
          signature,
          status_since: prev && prev.status === e.status ? prev.status_since : now,
          changed_at: now,
          evaluated_at: now,
        });
        history.push({
          id: newId(),
          client_id: clientId,
          device_id: d.id,
          recorded_at: now,
          status: e.status,
          previous_status: prev?.status ?? null,
          codes: JSON.stringify(e.findings.map((f) => f.code)),
        });
        out.events += await notify(tx, client, d, prev, e, now);
      }
      await repo.upsertStatuses(tx, upserts);
      await repo.insertHistory(tx, history);
      await repo.deleteStatuses(tx, clientId, retired);
      if (enforce && enforceable.length && enforcesAnything(pol)) await enforce(tx, clientId, pol, enforceable);
    }
    return out;
  }

  /** Status transitions and newly appeared findings become notification events (never secrets). */
  async function notify(
    tx: Executor,
    client: { id: string; name: string },
    d: LoadedDevice,
    prev: DeviceComplianceTable | undefined,
    e: Evaluation,
    now: string,
  ): Promise<number> {
    const events: NotificationEvent[] = [];
    const who = `${d.name} (${client.name})`;
    const lines = e.findings.map((f) => `${FINDING_INFO[f.code].title}: ${f.detail}`);
    const base = { clientId: client.id, deviceId: d.id, occurredAt: now };
    const details = (extra: Record<string, string | number | boolean | null | string[]> = {}) => ({
      client: client.name,
      device: d.name,
      deviceId: d.id,
      status: e.status,
      previousStatus: prev?.status ?? null,
      findings: lines,
      ...extra,
    });
    // Each status transition is its own fact (keyed by its time), so non-compliant -> compliant ->
    // non-compliant within the dedup window is told twice; a flapping finding is still deduplicated below.
    if (e.status === 'non-compliant' && prev?.status !== 'non-compliant') {
      events.push({
        ...base,
        type: 'device.noncompliant',
        subject: `${who} is not compliant`,
        details: details({ findingCodes: e.findings.map((f) => f.code) }),
        dedupKey: `device.noncompliant:${d.id}:${now}`,
      });
    }
    if (e.status === 'compliant' && prev?.status === 'non-compliant') {
      events.push({ ...base, type: 'device.compliant', subject: `${who} is compliant again`, details: details(), dedupKey: `device.compliant:${d.id}:${now}` });
    }
    if (e.status !== 'exempt') {
      const before = new Set(prev ? (JSON.parse(prev.findings) as Finding[]).map(findingKey) : []);
      for (const f of e.findings) {
        const type = FINDING_EVENTS[f.code];
        if (!type || before.has(findingKey(f))) continue;
        events.push({
          ...base,
          type,
          subject: `${who}: ${FINDING_INFO[f.code].title.toLowerCase()}${f.mountPoint ? ` (${f.mountPoint})` : ''}`,
          details: details({
            finding: f.code,
            detail: f.detail,
            fix: FINDING_INFO[f.code].fix,
            mountPoint: f.mountPoint,
            keyId: f.protectorId ? formatKeyIdForDisplay(f.protectorId) : null,
          }),
          dedupKey: `${type}:${d.id}:${f.code}:${f.volumeId ?? ''}:${f.protectorId ?? ''}`,
        });
      }
    }
    for (const ev of events) await notifier.emit(tx, ev);
    return events.length;
  }

  async function evaluateClientAll(clientId: string): Promise<Outcome> {
    const total: Outcome = { evaluated: 0, changed: 0, events: 0 };
    const policy = await policyFor(reader, clientId);
    let after: string | null = null;
    for (;;) {
      const ids = await repo.deviceIds(reader, clientId, after, BATCH * 4);
      if (ids.length === 0) break;
      after = ids[ids.length - 1]!;
      // A transaction per batch: status rows, history and events of a batch commit together.
      const r = await transactions.run((tx) => evaluateIn(tx, clientId, ids, policy));
      total.evaluated += r.evaluated;
      total.changed += r.changed;
      total.events += r.events;
    }
    return total;
  }

  const service = {
    // ------------------------------------------------------------------ hooks for producers
    /** Re-evaluates devices inside a producer's transaction (agent check-in, upload, import). */
    evaluateDevicesIn: (tx: Executor, clientId: string, deviceIds: readonly string[]) => evaluateIn(tx, clientId, [...new Set(deviceIds)]),

    // ------------------------------------------------------------------ evaluation on demand / schedule
    /** One client (all its devices), or every active client. Owner/admin; the scheduler runs it as the system. */
    async evaluate(actor: Actor, input: { clientId?: string } = {}): Promise<Outcome & { clients: number }> {
      requirePermission(actor, 'client:manage', input.clientId);
      if (input.clientId) {
        const c = await requireVisibleClient(reader, actor, input.clientId);
        return { clients: 1, ...(await evaluateClientAll(c.id)) };
      }
      const visible = await clients.listVisible(reader, clientScope(actor));
      const total = { clients: visible.length, evaluated: 0, changed: 0, events: 0 };
      for (const c of visible) {
        const r = await evaluateClientAll(c.id);
        total.evaluated += r.evaluated;
        total.changed += r.changed;
        total.events += r.events;
      }
      return total;
    },

    /** Every active client, as the scheduler's system actor (the "compliance-evaluate" task). */
    evaluateAll: () => service.evaluate(systemActor('compliance')),

    /** After a Graph or AD sync: the client's devices (last seen, new keys, sources gone or back). */
    async afterSync(clientId: string): Promise<void> {
      await evaluateClientAll(clientId);
    },

    // ------------------------------------------------------------------ policies
    async getPolicy(actor: Actor, clientId: string | null): Promise<PolicyView> {
      // Another client's id answers like a missing one (404), not with a 403 that confirms it exists.
      requirePermission(actor, 'client:read');
      const client = clientId ? await requireVisibleClient(reader, actor, clientId) : null;
      const msp = await readOverrides(reader, DEFAULT_SCOPE);
      const own = client ? await readOverrides(reader, client.id) : msp;
      const { policy, sources } = effectivePolicy(msp.overrides, client ? own.overrides : {});
      return {
        scope: client ? 'client' : 'default',
        clientId: client?.id ?? null,
        overrides: own.overrides,
        effective: policy,
        sources,
        updatedAt: own.updatedAt,
        updatedBy: own.updatedBy,
      };
    },

    /**
     * Sets fields (`set`) and removes overrides (`inherit`) at one level. The MSP default is the
     * owner's (or an admin with every client); a client's policy, an owner or admin of that client.
     */
    async updatePolicy(actor: Actor, clientId: string | null, input: { set?: Record<string, unknown>; inherit?: string[] }): Promise<PolicyView> {
      requirePermission(actor, 'client:manage');
      if (!clientId && actor.clients !== 'all') throw forbidden('Only an owner or an administrator of every client may change the MSP-wide default policy.');
      const unknown = (input.inherit ?? []).filter((f) => !(POLICY_FIELDS as string[]).includes(f));
      if (unknown.length) throw badRequest(`Unknown policy field: ${unknown.join(', ').slice(0, 100)}.`, { field: 'inherit' });
      await transactions.run(async (tx) => {
        const client = clientId ? await requireVisibleClient(tx, actor, clientId) : null;
        const scope = client?.id ?? DEFAULT_SCOPE;
        const before = await readOverrides(tx, scope);
        let next: PolicyOverrides;
        try {
          next = applyOverrides(before.overrides, input.set ?? {}, input.inherit ?? []);
        } catch (e) {
          const issue = (e as { issues?: { path: (string | number)[]; message: string }[] }).issues?.[0];
          throw badRequest(issue ? `Policy field ${issue.path.join('.')}: ${issue.message}` : 'The policy is not valid.', { field: issue?.path.join('.') });
        }
        const now = clock.now();
        const row = { scope, client_id: client?.id ?? null, settings: JSON.stringify(next), updated_at: now, updated_by: actor.name };
        await repo.upsertPolicy(tx, row);
        await audit.record(tx, actor, {
          action: 'compliance.policy',
          outcome: 'success',
          clientId: client?.id ?? null,
          targetType: 'compliance_policy',
          targetId: scope,
          details: { scope: client ? client.name : 'MSP default', before: before.overrides, after: next },
        });
      });
      // The new rules apply at once: re-evaluate the client (or every client for the default).
      if (clientId) await evaluateClientAll(clientId.toLowerCase());
      else await service.evaluateAll();
      return service.getPolicy(actor, clientId);
    },

    // ------------------------------------------------------------------ exemptions
    async listExemptions(actor: Actor, filter: { clientId?: string; deviceId?: string } = {}): Promise<ExemptionView[]> {
      requirePermission(actor, 'device:read', filter.clientId);
      const now = clock.now();
      const rows = await repo.listExemptions(reader, clientScope(actor), filter, 1000);
      return rows.map((r) => ({
        id: r.id,
        clientId: r.client_id,
        device: { id: r.device_id, name: r.device_name },
        reason: r.reason,
        expiresAt: r.expires_at,
        createdBy: r.created_by,
        createdAt: r.created_at,
        revokedAt: r.revoked_at,
        active: !r.revoked_at && (r.expires_at === null || r.expires_at > now),
      }));
    },

    async createExemption(actor: Actor, input: { deviceId: string; reason: string; expiresAt?: string | null }): Promise<ExemptionView> {
      requirePermission(actor, 'client:manage');
      const reason = input.reason.trim();
      if (reason.length < 3 || reason.length > 500) throw badRequest('Give a reason for the exemption (3 to 500 characters).', { field: 'reason' });
      const now = clock.now();
      const expiresAt = input.expiresAt ? new Date(input.expiresAt).toISOString() : null;
      if (expiresAt && expiresAt <= now) throw badRequest('The expiry must be in the future.', { field: 'expiresAt' });
      const id = newId();
      const device = await transactions.run(async (tx) => {
        const d = await visibleDevice(tx, actor, input.deviceId);
        requirePermission(actor, 'client:manage', d.client_id);
        await repo.insertExemption(tx, {
          id,
          client_id: d.client_id,
          device_id: d.id,
          reason,
          expires_at: expiresAt,
          created_by: actor.name,
          created_at: now,
          revoked_at: null,
          revoked_by: null,
        });
        await audit.record(tx, actor, {
          action: 'compliance.exemption',
          outcome: 'success',
          clientId: d.client_id,
          targetType: 'device',
          targetId: d.id,
          details: { device: d.name, exemption: id, reason, expiresAt },
        });
        await evaluateIn(tx, d.client_id, [d.id]);
        return d;
      });
      return {
        id,
        clientId: device.client_id,
        device: { id: device.id, name: device.name },
        reason,
        expiresAt,
        createdBy: actor.name,
        createdAt: now,
        revokedAt: null,
        active: true,
      };
    },

    async revokeExemption(actor: Actor, id: string): Promise<void> {
      requirePermission(actor, 'client:manage');
      await transactions.run(async (tx) => {
        const e = await repo.findExemption(tx, id, clientScope(actor));
        if (!e) throw notFound(`No exemption with id ${id.slice(0, 60)}.`);
        if (e.revoked_at) return;
        const now = clock.now();
        await repo.revokeExemption(tx, e.id, now, actor.name);
        await audit.record(tx, actor, {
          action: 'compliance.exemption_revoke',
          outcome: 'success',
          clientId: e.client_id,
          targetType: 'device',
          targetId: e.device_id,
          details: { exemption: e.id, reason: e.reason },
        });
        await evaluateIn(tx, e.client_id, [e.device_id]);
      });
    },

    // ------------------------------------------------------------------ status views
    async deviceStatus(actor: Actor, deviceId: string): Promise<DeviceComplianceView> {
      requirePermission(actor, 'device:read');
      const d = await visibleDevice(reader, actor, deviceId);
      let row = await repo.findStatus(reader, d.client_id, d.id);
      if (!row) {
        // Never evaluated yet (a device that just appeared): evaluate now rather than answer nothing.
        await transactions.run((tx) => evaluateIn(tx, d.client_id, [d.id]));
        row = await repo.findStatus(reader, d.client_id, d.id);
      }
      const history = await repo.history(reader, d.client_id, d.id, 100);
      const now = clock.now();
      return {
        device: { id: d.id, name: d.name },
        client: { id: d.client_id, name: d.client_name },
        status: (row?.status ?? 'unknown') as ComplianceStatus,
        since: row?.status_since ?? now,
        changedAt: row?.changed_at ?? now,
        findings: row ? (JSON.parse(row.findings) as Finding[]).map(withInfo) : [],
        history: history.map((h) => ({
          recordedAt: h.recorded_at,
          status: h.status,
          previousStatus: h.previous_status,
          codes: JSON.parse(h.codes) as string[],
        })),
      };
    },

    /** Current statuses, a page at a time (keyset on device id). */
    async listStatuses(actor: Actor, filter: { clientId?: string; status?: ComplianceStatus; after?: string; limit?: number } = {}) {
      requirePermission(actor, 'device:read', filter.clientId);
      const rows = await repo.listStatuses(reader, clientScope(actor), filter, Math.min(Math.max(filter.limit ?? 200, 1), 1000));
      return rows.map((r) => ({
        device: { id: r.device_id, name: r.name },
        client: { id: r.client_id, name: r.client_name },
        status: r.status as ComplianceStatus,
        since: r.status_since,
        lastSeenAt: r.last_seen_at,
        findings: (JSON.parse(r.findings) as Finding[]).map(withInfo),
      }));
    },

    /**
     * Tenant posture per client (clients with an Entra ID connection that synced), within the
     * actor's clients: may end users read their own keys, does Intune require escrow first.
     */
    async tenantPosture(actor: Actor, filter: { clientId?: string } = {}): Promise<(PostureView & { client: { id: string; name: string } })[]> {
      requirePermission(actor, 'device:read', filter.clientId);
      const scope = clientScope(actor);
      const names = new Map((await clients.listVisible(reader, scope)).map((c) => [c.id, c.name]));
      const rows = posture ? await posture.list(reader, scope, filter.clientId?.toLowerCase()) : [];
      return rows.filter((r) => names.has(r.clientId)).map((r) => ({ ...r, client: { id: r.clientId, name: names.get(r.clientId)! } }));
    },

    /** The policy in force for a client, read in the caller's transaction (the agent's rotation backups). */
    policyIn: (exec: Executor, clientId: string) => policyFor(exec, clientId),

    /** Devices of a client whose stored evaluation has a finding of this code, with those findings. */
    async devicesWithFinding(exec: Executor, clientId: string, code: FindingCode): Promise<{ deviceId: string; findings: Finding[] }[]> {
      const rows = await repo.statusesWithFinding(exec, clientId, code);
      return rows
        .map((r) => ({ deviceId: r.device_id, findings: (JSON.parse(r.findings) as Finding[]).filter((f) => f.code === code) }))
        .filter((r) => r.findings.length > 0);
    },

    /** For the reports module: may this actor read compliance data of a client? */
    canRead: (actor: Actor, clientId: string | null) => can(actor, 'device:read', clientId),
    policyFor: (clientId: string) => policyFor(reader, clientId),
  };
  return service;
}
export type ComplianceService = ReturnType<typeof createComplianceService>;
