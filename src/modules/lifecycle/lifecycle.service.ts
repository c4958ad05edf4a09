import type { Executor, Tx } from '../../db/database.js';
import type { Transactions } from '../../db/transactions.js';
import type { Keyring } from '../../crypto/keyring.js';
import type { Clock } from '../../lib/clock.js';
import { badRequest, conflict, forbidden, notFound } from '../../lib/errors.js';
import {
  can,
  clientScope,
  requireFreshSecondFactor,
  requirePermission,
  systemActor,
  type Actor,
  type Permission,
  type SensitiveAction,
} from '../authz/authz.js';
import type { AuditService } from '../audit/audit.service.js';
import type { Scheduler } from '../jobs/scheduler.js';
import type { SchedulerRepo } from '../jobs/scheduler.repo.js';
import type { ClientsRepo } from '../clients/clients.repo.js';
import { requireVisibleClient } from '../clients/visible-client.js';
import type { DevicesRepo } from '../devices/devices.repo.js';
import type { KeysRepo } from '../keys/keys.repo.js';
import type { AgentRepo } from '../agent/agent.repo.js';
import type { GraphRepo } from '../graph/graph.repo.js';
import type { DirectoryRepo } from '../directory/directory.repo.js';
import type { SettingsRepo } from '../settings/settings.repo.js';
import { findRecoveryPasswordCandidates } from '../../domain/recovery-password.js';
import { APPROVAL_HOURS, SETTING_TWO_OWNER, type ApprovalView, type Approvals } from './approvals.js';
import type { LifecycleRepo } from './lifecycle.repo.js';

export type { ApprovalView } from './approvals.js';

/**
 * Decommission and retention, legal hold, crypto-shred and the approvals that guard them
 * (docs/lifecycle.md).
 *
 * Two things destroy key material, and nothing else does:
 * - destroyDeviceKeys: wipes the ciphertexts of one retired device's keys (metadata stays);
 *   run by the daily retention task once the client's retention period has passed, or on an
 *   owner's request (with the typed client name, and a second owner when that is switched on);
 * - offboardClient: destroys the client's data key (crypto-shred).
 * Both check legal holds inside the transaction that destroys, and both are audited per key.
 */

export const RETENTION_TASK_ID = 'lifecycle-retention';
export const RETENTION_TASK_KIND = 'lifecycle-retention';
export const DEFAULT_RETENTION_DAYS = 365;
/** The approval action that switches two-owner approval off: itself a two-owner action while it is on. */
export const DISABLE_TWO_OWNER = 'disable-two-owner-approval';

export type DestructiveAction = 'destroy-device-keys' | 'retention-run' | 'offboard-client';
const DESTRUCTIVE: readonly DestructiveAction[] = ['destroy-device-keys', 'retention-run', 'offboard-client'];
const STEP_UP_WORDS: Record<DestructiveAction, SensitiveAction> = {
  'destroy-device-keys': 'destroy recovery keys',
  'retention-run': 'destroy recovery keys',
  'offboard-client': 'offboard a client',
};

export type Hold = { at: string; reason: string; by: string } | null;
export type DeviceLifecycle = {
  id: string;
  name: string;
  retiredAt: string | null;
  retiredBy: string | null;
  /** null while not retired, or when the client keeps keys forever (retention 0). */
  keysKeptUntil: string | null;
  keysDestroyedAt: string | null;
  legalHold: Hold;
  /** "in service", "retired, keys kept until 2027-11-26", "retired, keys kept forever", "retired, keys destroyed on …". */
  status: string;
};
export type ClientLifecycle = {
  client: { id: string; name: string };
  retentionDays: number;
  legalHold: Hold;
  offboardedAt: string | null;
  offboardedBy: string | null;
  retiredDevices: DeviceLifecycle[];
  pendingApprovals: ApprovalView[];
};
export type DestroyOutcome = { status: 'executed'; action: string; result: Record<string, unknown> } | { status: 'pending'; approval: ApprovalView };
export type LifecycleSettings = { twoOwnerApproval: boolean; approvalHours: number; defaultRetentionDays: number; pendingApproval?: ApprovalView };

type Deps = {
  tx: Transactions;
  repo: LifecycleRepo;
  approvals: Approvals;
  clients: Pick<ClientsRepo, 'setLifecycle'>;
  devices: Pick<DevicesRepo, 'setLifecycle'>;
  keys: Pick<KeysRepo, 'destroyMaterial' | 'markClientKeysDestroyed'>;
  agent: Pick<AgentRepo, 'stopClient'>;
  graph: Pick<GraphRepo, 'disableClientConnections'>;
  directory: Pick<DirectoryRepo, 'disableClientConnections'>;
  tasks: Pick<SchedulerRepo, 'removeClientTasks'>;
  settings: Pick<SettingsRepo, 'set'>;
  keyring: Pick<Keyring<Executor>, 'destroyClientKeys'>;
  audit: Pick<AuditService, 'record' | 'recordNow'>;
  clock: Clock;
  stepUpMinutes: number;
  scheduler: () => Pick<Scheduler, 'ensureTask'>;
};

const day = (iso: string) => iso.slice(0, 10);
const addDays = (iso: string, d: number) => new Date(Date.parse(iso) + d * 86_400_000).toISOString();
const text = (v: unknown) => (typeof v === 'string' ? v : null);

function holdOf(r: { legal_hold_at?: string | null; legal_hold_reason?: string | null; legal_hold_by?: string | null }): Hold {
  return r.legal_hold_at ? { at: r.legal_hold_at, reason: r.legal_hold_reason ?? '', by: r.legal_hold_by ?? '' } : null;
}

function cleanReason(raw: string | undefined | null, required: boolean): string | null {
  const r = (raw ?? '').trim().replace(/\s+/g, ' ');
  if (!r) {
    if (required) throw badRequest('Give a reason (it goes into the audit log).', { field: 'reason' });
    return null;
  }
  if (r.length > 500) throw badRequest('A reason can be at most 500 characters.', { field: 'reason' });
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(r)) throw badRequest('The reason contains control characters.', { field: 'reason' });
  // Reasons go into the audit log, which must never hold a recovery password.
  if (findRecoveryPasswordCandidates(r).length) throw badRequest('The reason looks like it contains a recovery password; leave it out.', { field: 'reason' });
  return r;
}

/** The typed confirmation: the client's name exactly as shown (surrounding spaces aside). */
function confirmName(clientName: string, typed: string | undefined) {
  if ((typed ?? '').trim() !== clientName) {
    throw badRequest(`To confirm, type the client's name exactly as shown: "${clientName}".`, { field: 'confirm' });
  }
}

export function createLifecycleService(deps: Deps) {
  const { tx, repo, approvals, clients, devices, keys, agent, graph, directory, tasks, settings, keyring, audit, clock, stepUpMinutes, scheduler } = deps;

  /**
   * A power a person exercises with a fresh second factor. An API token is told plainly that it can
   * never do this, rather than that it lacks a permission.
   */
  function requireSensitive(actor: Actor, permission: Permission, clientId: string | null, action: SensitiveAction): void {
    if (actor.type === 'token') throw forbidden(`Only a signed-in person can ${action}; API tokens cannot.`);
    requirePermission(actor, permission, clientId);
    requireFreshSecondFactor(actor, action, clock.now(), stepUpMinutes);
  }

  // ------------------------------------------------------------------ look-ups (tenancy in every WHERE)
  const findDevice = (exec: Executor, actor: Actor, id: string) => repo.findDevice(exec, id, clientScope(actor));
  type DeviceRow = NonNullable<Awaited<ReturnType<typeof findDevice>>>;
  const requireDevice = async (exec: Executor, actor: Actor, id: string): Promise<DeviceRow> => {
    const d = await findDevice(exec, actor, id);
    if (!d) throw notFound(`No device with id ${id.slice(0, 60)}.`);
    return d;
  };

  const deviceView = (
    d: Pick<DeviceRow, 'id' | 'name' | 'retired_at' | 'retired_by' | 'keys_destroyed_at' | 'legal_hold_at' | 'legal_hold_reason' | 'legal_hold_by'>,
    retentionDays: number,
  ): DeviceLifecycle => {
    const until = d.retired_at && retentionDays > 0 ? addDays(d.retired_at, retentionDays) : null;
    let status = 'in service';
    if (d.retired_at) {
      if (d.keys_destroyed_at) status = `retired, keys destroyed on ${day(d.keys_destroyed_at)}`;
      else if (d.legal_hold_at) status = `retired, keys kept (legal hold since ${day(d.legal_hold_at)})`;
      else status = until ? `retired, keys kept until ${day(until)}` : 'retired, keys kept forever';
    }
    return {
      id: d.id,
      name: d.name,
      retiredAt: d.retired_at,
      retiredBy: d.retired_by ?? null,
      keysKeptUntil: until,
      keysDestroyedAt: d.keys_destroyed_at ?? null,
      legalHold: holdOf(d),
      status,
    };
  };

  // ------------------------------------------------------------------ the destructive core (inside a transaction)

  /**
   * Wipes the recovery-password ciphertexts of one device's keys and marks them destroyed. The
   * key rows (key ID, dates, state, sources) stay; the fingerprint stays too, so a source that
   * reports the same key again is recognised as this (destroyed) key instead of being stored anew.
   */
  async function destroyDeviceKeysTx(t: Executor, actor: Actor, device: { id: string; client_id: string; name: string }, why: string): Promise<number> {
    const now = clock.now();
    const live = await repo.liveKeysOf(t, device.client_id, device.id);
    for (const k of live) {
      await keys.destroyMaterial(t, device.client_id, k.id, now, why);
      await audit.record(t, actor, {
        action: 'key.destroyed',
        outcome: 'success',
        clientId: device.client_id,
        targetType: 'recovery_key',
        targetId: k.id,
        details: { keyId: k.key_id, device: device.name, from: k.state, why },
      });
    }
    await devices.setLifecycle(t, device.client_id, device.id, { keys_destroyed_at: now });
    await audit.record(t, actor, {
      action: 'device.keys_destroyed',
      outcome: 'success',
      clientId: device.client_id,
      targetType: 'device',
      targetId: device.id,
      details: { device: device.name, keys: live.length, why },
    });
    return live.length;
  }

  /** Refuses when a hold (client or device) or an offboarding stands in the way. Read in the destroying transaction. */
  async function assertDestroyable(t: Executor, clientId: string, deviceId: string | null, action: DestructiveAction) {
    const c = await repo.clientLifecycle(t, clientId);
    if (!c) throw notFound(`No client with id ${clientId.slice(0, 60)}.`);
    if (c.offboarded_at) throw conflict(`Client "${c.name}" was already offboarded on ${day(c.offboarded_at)}.`);
    if (c.legal_hold_at)
      throw conflict(`Client "${c.name}" is under legal hold since ${day(c.legal_hold_at)}: nothing of it can be destroyed until the hold is cleared.`);
    if (deviceId) {
      const d = await repo.deviceLifecycle(t, clientId, deviceId);
      if (!d) throw notFound(`No device with id ${deviceId.slice(0, 60)}.`);
      if (d.legal_hold_at)
        throw conflict(`Device "${d.name}" is under legal hold since ${day(d.legal_hold_at)}: its keys cannot be destroyed until the hold is cleared.`);
      if (!d.retired_at) throw conflict(`Device "${d.name}" is in service: retire it first (its keys are only destroyed after it is retired).`);
      if (d.keys_destroyed_at) throw conflict(`The keys of device "${d.name}" were already destroyed on ${day(d.keys_destroyed_at)}.`);
    }
    if (action === 'offboard-client') {
      const held = await repo.heldDevice(t, clientId);
      if (held) throw conflict(`Device "${held.name}" of client "${c.name}" is under legal hold: the client cannot be offboarded until the hold is cleared.`);
    }
    return c;
  }

  /** Retired devices whose retention has passed and that no hold protects (one client, or all). */
  async function dueDevices(exec: Executor, clientId: string | null) {
    const now = clock.now();
    const due = [];
    let held = 0;
    for (const r of await repo.retiredWithKeys(exec, clientId)) {
      const days = Number(r.retention_days ?? DEFAULT_RETENTION_DAYS);
      if (days <= 0 || addDays(r.retired_at!, days) > now) continue;
      if (r.legal_hold_at || r.client_hold_at) {
        held++;
        continue;
      }
      due.push(r);
    }
    return { due, held };
  }

  async function retentionRunTx(t: Executor, actor: Actor, clientId: string | null) {
    const { due, held } = await dueDevices(t, clientId);
    let n = 0;
    for (const d of due)
      n += await destroyDeviceKeysTx(
        t,
        actor,
        d,
        `retention period of ${Number(d.retention_days ?? DEFAULT_RETENTION_DAYS)} days after retirement on ${day(d.retired_at!)} passed`,
      );
    const result = { devices: due.length, keys: n, heldBack: held };
    await audit.record(t, actor, { action: 'retention.run', outcome: 'success', clientId, details: result });
    return result;
  }

  /**
   * Crypto-shred: the client's data key goes, so every ciphertext sealed with it (recovery
   * passwords, its Entra app secret, its AD bind password) is unreadable from this moment. Its
   * connections, agents and enrollment tokens stop; its keys are marked destroyed; the client row,
   * key metadata and audit trail stay.
   */
  async function offboardTx(t: Tx, actor: Actor, client: { id: string; name: string }, reason: string | null) {
    const now = clock.now();
    const dataKeys = await keyring.destroyClientKeys(t, client.id);
    const marked = await keys.markClientKeysDestroyed(t, client.id, now, 'client offboarded (data key destroyed)');
    await clients.setLifecycle(t, client.id, { offboarded_at: now, offboarded_by: actor.name, updated_at: now });
    // Nothing may keep feeding or reading a client whose key is gone.
    await graph.disableClientConnections(t, client.id, now);
    await directory.disableClientConnections(t, client.id, now);
    await tasks.removeClientTasks(t, client.id);
    await agent.stopClient(t, client.id, now, 'client offboarded');
    const result = { dataKeysDestroyed: dataKeys, keysMarkedDestroyed: marked };
    await audit.record(t, actor, {
      action: 'client.offboard',
      outcome: 'success',
      clientId: client.id,
      targetType: 'client',
      targetId: client.id,
      details: { client: client.name, reason, ...result },
    });
    return result;
  }

  async function execute(t: Tx, actor: Actor, action: DestructiveAction, clientId: string, deviceId: string | null, reason: string | null) {
    const c = await assertDestroyable(t, clientId, deviceId, action);
    if (action === 'destroy-device-keys') {
      const d = (await repo.deviceLifecycle(t, clientId, deviceId!))!;
      const n = await destroyDeviceKeysTx(t, actor, d, `destroyed on request${reason ? `: ${reason}` : ''} (before the end of the retention period)`);
      return { device: d.name, keys: n };
    }
    if (action === 'retention-run') return retentionRunTx(t, actor, clientId);
    return offboardTx(t, actor, c, reason);
  }

  // Approved requests run as the approver, with what the request recorded.
  for (const action of DESTRUCTIVE) {
    approvals.register(action, (t, approver, p) => execute(t, approver, action, String(p.clientId), text(p.deviceId), text(p.reason)));
  }
  approvals.register(DISABLE_TWO_OWNER, async (t, approver) => {
    await settings.set(t, SETTING_TWO_OWNER, 'false', clock.now());
    await audit.record(t, approver, { action: 'lifecycle.settings', outcome: 'success', details: { twoOwnerApproval: false, approved: true } });
    return { twoOwnerApproval: false };
  });

  async function request(
    actor: Actor,
    action: DestructiveAction,
    target: { clientId?: string; deviceId?: string },
    input: { confirm?: string; reason?: string | null },
  ): Promise<DestroyOutcome> {
    requireSensitive(actor, 'lifecycle:destroy', null, STEP_UP_WORDS[action]);
    const reason = cleanReason(input.reason, false);
    return tx.run(async (t) => {
      let clientId: string;
      let clientName: string;
      let deviceId: string | null = null;
      if (target.deviceId) {
        const d = await requireDevice(t, actor, target.deviceId);
        clientId = d.client_id;
        clientName = d.client_name;
        deviceId = d.id;
      } else {
        const c = await requireVisibleClient(t, actor, target.clientId!, 'lifecycle:destroy');
        clientId = c.id;
        clientName = c.name;
      }
      requirePermission(actor, 'lifecycle:destroy', clientId);
      confirmName(clientName, input.confirm);
      await assertDestroyable(t, clientId, deviceId, action);
      if (await approvals.twoOwnerRequired(t)) {
        const approval = await approvals.request(t, actor, {
          action,
          clientId,
          targetType: deviceId ? 'device' : 'client',
          targetId: deviceId ?? clientId,
          reason,
          params: { clientId, deviceId, reason },
        });
        return { status: 'pending', approval };
      }
      const result = await execute(t, actor, action, clientId, deviceId, reason);
      return { status: 'executed', action, result };
    });
  }

  const service = {
    /** Two-owner approval of guarded actions, for this module and any other that registers one. */
    approvals,

    // ---------------------------------------------------------------- retire / reinstate
    async retireDevice(actor: Actor, deviceId: string, input: { reason?: string | null } = {}): Promise<DeviceLifecycle> {
      requirePermission(actor, 'lifecycle:manage');
      const reason = cleanReason(input.reason, false);
      return tx.run(async (t) => {
        const d = await requireDevice(t, actor, deviceId);
        requirePermission(actor, 'lifecycle:manage', d.client_id);
        if (d.client_offboarded_at) throw conflict(`Client "${d.client_name}" was offboarded; its devices cannot change.`);
        if (d.retired_at) throw conflict(`Device "${d.name}" is already retired (since ${day(d.retired_at)}).`);
        const now = clock.now();
        await devices.setLifecycle(t, d.client_id, d.id, { retired_at: now, retired_by: actor.name, retire_reason: reason });
        const view = deviceView({ ...d, retired_at: now, retired_by: actor.name }, Number(d.retention_days ?? DEFAULT_RETENTION_DAYS));
        await audit.record(t, actor, {
          action: 'device.retire',
          outcome: 'success',
          clientId: d.client_id,
          targetType: 'device',
          targetId: d.id,
          details: { device: d.name, reason, keysKeptUntil: view.keysKeptUntil },
        });
        // The daily task that destroys keys after their retention; created once, idempotent.
        await scheduler().ensureTask(t, { id: RETENTION_TASK_ID, kind: RETENTION_TASK_KIND, clientId: null, targetId: null, intervalMinutes: 24 * 60 });
        return view;
      });
    },

    async reinstateDevice(actor: Actor, deviceId: string): Promise<DeviceLifecycle> {
      requirePermission(actor, 'lifecycle:manage');
      return tx.run(async (t) => {
        const d = await requireDevice(t, actor, deviceId);
        requirePermission(actor, 'lifecycle:manage', d.client_id);
        if (!d.retired_at) throw conflict(`Device "${d.name}" is not retired.`);
        if (d.keys_destroyed_at) throw conflict(`Device "${d.name}" cannot be reinstated: its keys were destroyed on ${day(d.keys_destroyed_at)}.`);
        await devices.setLifecycle(t, d.client_id, d.id, { retired_at: null, retired_by: null, retire_reason: null });
        await audit.record(t, actor, {
          action: 'device.reinstate',
          outcome: 'success',
          clientId: d.client_id,
          targetType: 'device',
          targetId: d.id,
          details: { device: d.name, retiredAt: d.retired_at },
        });
        return deviceView({ ...d, retired_at: null, retired_by: null }, Number(d.retention_days ?? DEFAULT_RETENTION_DAYS));
      });
    },

    async deviceStatus(actor: Actor, deviceId: string): Promise<DeviceLifecycle> {
      requirePermission(actor, 'device:read');
      const d = await requireDevice(tx.reader, actor, deviceId);
      return deviceView(d, Number(d.retention_days ?? DEFAULT_RETENTION_DAYS));
    },

    // ---------------------------------------------------------------- legal hold
    /** Setting a hold only protects (lifecycle:manage); lifting one lets destruction resume (lifecycle:destroy, fresh second factor). */
    async setDeviceHold(actor: Actor, deviceId: string, input: { hold: boolean; reason?: string | null }): Promise<DeviceLifecycle> {
      if (input.hold) requirePermission(actor, 'lifecycle:manage');
      else requireSensitive(actor, 'lifecycle:destroy', null, 'lift a legal hold');
      const reason = cleanReason(input.reason, true)!;
      return tx.run(async (t) => {
        const d = await requireDevice(t, actor, deviceId);
        requirePermission(actor, input.hold ? 'lifecycle:manage' : 'lifecycle:destroy', d.client_id);
        const now = clock.now();
        if (input.hold && d.legal_hold_at) throw conflict(`Device "${d.name}" is already under legal hold (since ${day(d.legal_hold_at)}).`);
        if (!input.hold && !d.legal_hold_at) throw conflict(`Device "${d.name}" is not under legal hold.`);
        const patch = input.hold
          ? { legal_hold_at: now, legal_hold_reason: reason, legal_hold_by: actor.name }
          : { legal_hold_at: null, legal_hold_reason: null, legal_hold_by: null };
        await devices.setLifecycle(t, d.client_id, d.id, patch);
        await audit.record(t, actor, {
          action: input.hold ? 'legal_hold.set' : 'legal_hold.clear',
          outcome: 'success',
          clientId: d.client_id,
          targetType: 'device',
          targetId: d.id,
          details: { device: d.name, reason },
        });
        return deviceView({ ...d, ...patch }, Number(d.retention_days ?? DEFAULT_RETENTION_DAYS));
      });
    },

    async setClientHold(actor: Actor, clientId: string, input: { hold: boolean; reason?: string | null }): Promise<ClientLifecycle> {
      const permission: Permission = input.hold ? 'lifecycle:manage' : 'lifecycle:destroy';
      if (input.hold) requirePermission(actor, permission);
      else requireSensitive(actor, permission, null, 'lift a legal hold');
      const reason = cleanReason(input.reason, true)!;
      await tx.run(async (t) => {
        const c = await requireVisibleClient(t, actor, clientId, permission);
        requirePermission(actor, permission, c.id);
        if (input.hold && c.legal_hold_at) throw conflict(`Client "${c.name}" is already under legal hold (since ${day(c.legal_hold_at)}).`);
        if (!input.hold && !c.legal_hold_at) throw conflict(`Client "${c.name}" is not under legal hold.`);
        const now = clock.now();
        const patch = input.hold
          ? { legal_hold_at: now, legal_hold_reason: reason, legal_hold_by: actor.name }
          : { legal_hold_at: null, legal_hold_reason: null, legal_hold_by: null };
        await clients.setLifecycle(t, c.id, { ...patch, updated_at: now });
        await audit.record(t, actor, {
          action: input.hold ? 'legal_hold.set' : 'legal_hold.clear',
          outcome: 'success',
          clientId: c.id,
          targetType: 'client',
          targetId: c.id,
          details: { client: c.name, reason },
        });
      });
      return service.clientStatus(actor, clientId);
    },

    // ---------------------------------------------------------------- retention and status
    async setRetention(actor: Actor, clientId: string, days: number): Promise<ClientLifecycle> {
      // Shortening retention brings destruction closer: the same power as destroying.
      requireSensitive(actor, 'lifecycle:destroy', null, 'change lifecycle settings');
      if (!Number.isInteger(days) || days < 0 || days > 36_500)
        throw badRequest('retentionDays must be a whole number of days from 0 (keep forever) to 36500.', { field: 'retentionDays' });
      await tx.run(async (t) => {
        const c = await requireVisibleClient(t, actor, clientId, 'lifecycle:destroy');
        requirePermission(actor, 'lifecycle:destroy', c.id);
        await clients.setLifecycle(t, c.id, { retention_days: days, updated_at: clock.now() });
        await audit.record(t, actor, {
          action: 'client.retention',
          outcome: 'success',
          clientId: c.id,
          targetType: 'client',
          targetId: c.id,
          details: { client: c.name, from: Number(c.retention_days ?? DEFAULT_RETENTION_DAYS), to: days },
        });
      });
      return service.clientStatus(actor, clientId);
    },

    async clientStatus(actor: Actor, clientId: string): Promise<ClientLifecycle> {
      const c = await requireVisibleClient(tx.reader, actor, clientId, 'device:read');
      requirePermission(actor, 'device:read', c.id);
      const days = Number(c.retention_days ?? DEFAULT_RETENTION_DAYS);
      const retired = await repo.retiredDevices(tx.reader, c.id);
      return {
        client: { id: c.id, name: c.name },
        retentionDays: days,
        legalHold: holdOf(c),
        offboardedAt: c.offboarded_at ?? null,
        offboardedBy: c.offboarded_by ?? null,
        retiredDevices: retired.map((d) => deviceView(d, days)),
        pendingApprovals: can(actor, 'lifecycle:approve', c.id) ? await approvals.pendingFor(tx.reader, c.id) : [],
      };
    },

    // ---------------------------------------------------------------- settings
    async getSettings(actor: Actor): Promise<LifecycleSettings> {
      requirePermission(actor, 'settings:manage');
      return { twoOwnerApproval: await approvals.twoOwnerRequired(tx.reader), approvalHours: APPROVAL_HOURS, defaultRetentionDays: DEFAULT_RETENTION_DAYS };
    },

    /**
     * Switching two-owner approval on takes effect at once. Switching it off while it is on is
     * itself a request a second owner approves, so one owner cannot switch it off and destroy alone.
     */
    async updateSettings(actor: Actor, patch: { twoOwnerApproval?: boolean }): Promise<LifecycleSettings> {
      requireSensitive(actor, 'settings:manage', null, 'change lifecycle settings');
      const pending = await tx.run(async (t) => {
        if (patch.twoOwnerApproval === false && (await approvals.twoOwnerRequired(t))) {
          return approvals.request(t, actor, {
            action: DISABLE_TWO_OWNER,
            clientId: null,
            targetType: 'setting',
            targetId: SETTING_TWO_OWNER,
            params: { twoOwnerApproval: false },
          });
        }
        if (patch.twoOwnerApproval !== undefined) await settings.set(t, SETTING_TWO_OWNER, String(patch.twoOwnerApproval), clock.now());
        await audit.record(t, actor, { action: 'lifecycle.settings', outcome: 'success', details: patch });
        return undefined;
      });
      const now = await service.getSettings(actor);
      return pending ? { ...now, pendingApproval: pending } : now;
    },

    // ---------------------------------------------------------------- destructive actions
    /** Destroys a retired device's keys now, before its retention ends (holds still win). */
    destroyDeviceKeys: (actor: Actor, deviceId: string, input: { confirm?: string; reason?: string | null }) =>
      request(actor, 'destroy-device-keys', { deviceId }, input),
    /** Runs the retention job for one client now (only what is past retention is destroyed). */
    runRetentionNow: (actor: Actor, clientId: string, input: { confirm?: string; reason?: string | null }) =>
      request(actor, 'retention-run', { clientId }, input),
    /** Crypto-shred. The break-glass export (keywarden export) comes first; see docs/lifecycle.md. */
    offboardClient: (actor: Actor, clientId: string, input: { confirm?: string; reason?: string | null }) =>
      request(actor, 'offboard-client', { clientId }, input),

    listApprovals: (actor: Actor, filter: { status?: string } = {}): Promise<ApprovalView[]> => approvals.list(actor, filter),
    /** A second, different owner approves (typing the client name again); the action runs at once. */
    approve: (actor: Actor, approvalId: string, input: { confirm?: string }): Promise<DestroyOutcome> => approvals.approve(actor, approvalId, input),
    cancel: (actor: Actor, approvalId: string): Promise<ApprovalView> => approvals.cancel(actor, approvalId),

    /** The daily task: destroys what is past retention across all clients. */
    async runScheduledRetention(): Promise<string> {
      await approvals.expire();
      const r = await tx.run((t) => retentionRunTx(t, systemActor('retention'), null));
      return `ok: ${r.keys} keys of ${r.devices} retired devices destroyed${r.heldBack ? `, ${r.heldBack} devices held back by a legal hold` : ''}`;
    },
  };

  return service;
}
export type LifecycleService = ReturnType<typeof createLifecycleService>;
