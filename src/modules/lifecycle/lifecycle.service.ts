import type { Db, Executor } from '../../db/database.js';
import type { Keyring } from '../../crypto/keyring.js';
import type { Clock } from '../../lib/clock.js';
import { newId } from '../../lib/ids.js';
import { badRequest, conflict, forbidden, notFound } from '../../lib/errors.js';
import { can, clientScope, requirePermission, systemActor, type Actor } from '../authz/authz.js';
import type { AuditService } from '../audit/audit.service.js';
import type { Scheduler } from '../jobs/scheduler.js';
import { findRecoveryPasswordCandidates } from '../../domain/recovery-password.js';

/**
 * Decommission and retention, legal hold, crypto-shred and the approvals that guard them
 * (issue 9; docs/lifecycle.md).
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
const APPROVAL_HOURS = 72;
const SETTING_TWO_OWNER = 'lifecycle.two_owner_approval';

export type DestructiveAction = 'destroy-device-keys' | 'retention-run' | 'offboard-client';
const ACTION_WORDS: Record<DestructiveAction, string> = {
  'destroy-device-keys': "destroy a retired device's keys",
  'retention-run': 'destroy the keys whose retention period has passed',
  'offboard-client': 'offboard a client (destroy its data key)',
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
export type ApprovalView = {
  id: string;
  action: DestructiveAction;
  client: { id: string; name: string };
  device: { id: string; name: string } | null;
  status: string;
  reason: string | null;
  requestedBy: string;
  requestedAt: string;
  expiresAt: string;
  approvedBy: string | null;
  approvedAt: string | null;
  closedAt: string | null;
  result: Record<string, unknown> | null;
};
export type DestroyOutcome =
  | { status: 'executed'; action: DestructiveAction; result: Record<string, unknown> }
  | { status: 'pending'; approval: ApprovalView };

type Deps = {
  db: Db;
  keyring: Pick<Keyring<Executor>, 'destroyClientKeys'>;
  audit: Pick<AuditService, 'record' | 'recordNow'>;
  clock: Clock;
  scheduler: () => Pick<Scheduler, 'ensureTask'>;
};

const ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const day = (iso: string) => iso.slice(0, 10);
const addDays = (iso: string, d: number) => new Date(Date.parse(iso) + d * 86_400_000).toISOString();
const addHours = (iso: string, h: number) => new Date(Date.parse(iso) + h * 3_600_000).toISOString();

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

/**
 * Destroying key material is for owners acting as themselves: a signed-in owner or the local
 * CLI (which holds the master key anyway). An API token, even an owner's, cannot.
 */
function requireOwnerPerson(actor: Actor, what: string): void {
  if (actor.role !== 'owner') throw forbidden(`Only an owner can ${what}.`);
  if (actor.type !== 'user' && actor.type !== 'cli') throw forbidden(`Only an owner signed in as a person can ${what}; API tokens cannot.`);
}

export function createLifecycleService({ db, keyring, audit, clock, scheduler }: Deps) {
  // ------------------------------------------------------------------ look-ups (tenancy in every WHERE)
  const findClient = async (exec: Executor, actor: Actor, id: string) => {
    const scope = clientScope(actor);
    if (!ID.test(id) || (scope && !scope.includes(id.toLowerCase()))) return undefined;
    return exec.selectFrom('clients').selectAll().where('id', '=', id.toLowerCase()).where('archived_at', 'is', null).executeTakeFirst();
  };
  const findDevice = async (exec: Executor, actor: Actor, id: string) => {
    if (!ID.test(id)) return undefined;
    const scope = clientScope(actor);
    let q = exec
      .selectFrom('devices as d')
      .innerJoin('clients as c', 'c.id', 'd.client_id')
      .selectAll('d')
      .select(['c.name as client_name', 'c.retention_days', 'c.legal_hold_at as client_hold_at', 'c.offboarded_at as client_offboarded_at'])
      .where('d.id', '=', id.toLowerCase())
      .where('c.archived_at', 'is', null);
    if (scope) q = scope.length ? q.where('d.client_id', 'in', scope as string[]) : q.where((eb) => eb.val(false));
    return q.executeTakeFirst();
  };
  type DeviceRow = NonNullable<Awaited<ReturnType<typeof findDevice>>>;

  const deviceView = (d: Pick<DeviceRow, 'id' | 'name' | 'retired_at' | 'retired_by' | 'keys_destroyed_at' | 'legal_hold_at' | 'legal_hold_reason' | 'legal_hold_by'>, retentionDays: number): DeviceLifecycle => {
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

  const approvalView = async (exec: Executor, r: { id: string; action: string; client_id: string; device_id: string | null; status: string; reason: string | null; requested_by_name: string; requested_at: string; expires_at: string; approved_by_name: string | null; approved_at: string | null; closed_at: string | null; result: string | null }): Promise<ApprovalView> => {
    const c = await exec.selectFrom('clients').select(['id', 'name']).where('id', '=', r.client_id).executeTakeFirst();
    const d = r.device_id ? await exec.selectFrom('devices').select(['id', 'name']).where('client_id', '=', r.client_id).where('id', '=', r.device_id).executeTakeFirst() : undefined;
    return {
      id: r.id,
      action: r.action as DestructiveAction,
      client: { id: r.client_id, name: c?.name ?? '' },
      device: d ? { id: d.id, name: d.name } : null,
      status: r.status,
      reason: r.reason,
      requestedBy: r.requested_by_name,
      requestedAt: r.requested_at,
      expiresAt: r.expires_at,
      approvedBy: r.approved_by_name,
      approvedAt: r.approved_at,
      closedAt: r.closed_at,
      result: r.result ? (JSON.parse(r.result) as Record<string, unknown>) : null,
    };
  };

  const twoOwnerRequired = async (exec: Executor) =>
    (await exec.selectFrom('settings').select('value').where('key', '=', SETTING_TWO_OWNER).executeTakeFirst())?.value === 'true';

  // ------------------------------------------------------------------ the destructive core (inside a transaction)

  /**
   * Wipes the recovery-password ciphertexts of one device's keys and marks them destroyed. The
   * key rows (key ID, dates, state, sources) stay; the fingerprint stays too, so a source that
   * reports the same key again is recognised as this (destroyed) key instead of being stored anew.
   */
  async function destroyDeviceKeysTx(tx: Executor, actor: Actor, device: { id: string; client_id: string; name: string }, why: string): Promise<number> {
    const now = clock.now();
    const keys = await tx
      .selectFrom('recovery_keys')
      .select(['id', 'key_id', 'state'])
      .where('client_id', '=', device.client_id)
      .where('device_id', '=', device.id)
      .where('destroyed_at', 'is', null)
      .execute();
    for (const k of keys) {
      await tx
        .updateTable('recovery_keys')
        .set({ ciphertext: '', state: 'destroyed', state_changed_at: now, destroyed_at: now, destroyed_reason: why })
        .where('client_id', '=', device.client_id)
        .where('id', '=', k.id)
        .execute();
      await audit.record(tx, actor, {
        action: 'key.destroyed',
        outcome: 'success',
        clientId: device.client_id,
        targetType: 'recovery_key',
        targetId: k.id,
        details: { keyId: k.key_id, device: device.name, from: k.state, why },
      });
    }
    await tx.updateTable('devices').set({ keys_destroyed_at: now }).where('client_id', '=', device.client_id).where('id', '=', device.id).execute();
    await audit.record(tx, actor, {
      action: 'device.keys_destroyed',
      outcome: 'success',
      clientId: device.client_id,
      targetType: 'device',
      targetId: device.id,
      details: { device: device.name, keys: keys.length, why },
    });
    return keys.length;
  }

  /** Refuses when a hold (client or device) or an offboarding stands in the way. Read in the destroying transaction. */
  async function assertDestroyable(tx: Executor, clientId: string, deviceId: string | null, action: DestructiveAction) {
    const c = await tx.selectFrom('clients').select(['name', 'legal_hold_at', 'offboarded_at']).where('id', '=', clientId).executeTakeFirstOrThrow();
    if (c.offboarded_at) throw conflict(`Client "${c.name}" was already offboarded on ${day(c.offboarded_at)}.`);
    if (c.legal_hold_at) throw conflict(`Client "${c.name}" is under legal hold since ${day(c.legal_hold_at)}: nothing of it can be destroyed until the hold is cleared.`);
    if (deviceId) {
      const d = await tx.selectFrom('devices').select(['name', 'retired_at', 'legal_hold_at', 'keys_destroyed_at']).where('client_id', '=', clientId).where('id', '=', deviceId).executeTakeFirstOrThrow();
      if (d.legal_hold_at) throw conflict(`Device "${d.name}" is under legal hold since ${day(d.legal_hold_at)}: its keys cannot be destroyed until the hold is cleared.`);
      if (!d.retired_at) throw conflict(`Device "${d.name}" is in service: retire it first (its keys are only destroyed after it is retired).`);
      if (d.keys_destroyed_at) throw conflict(`The keys of device "${d.name}" were already destroyed on ${day(d.keys_destroyed_at)}.`);
    }
    if (action === 'offboard-client') {
      const held = await tx.selectFrom('devices').select('name').where('client_id', '=', clientId).where('legal_hold_at', 'is not', null).executeTakeFirst();
      if (held) throw conflict(`Device "${held.name}" of client "${c.name}" is under legal hold: the client cannot be offboarded until the hold is cleared.`);
    }
  }

  /** Retired devices whose retention has passed and that no hold protects (one client, or all). */
  async function dueDevices(exec: Executor, clientId: string | null) {
    let q = exec
      .selectFrom('devices as d')
      .innerJoin('clients as c', 'c.id', 'd.client_id')
      .select(['d.id', 'd.client_id', 'd.name', 'd.retired_at', 'd.legal_hold_at', 'c.retention_days', 'c.legal_hold_at as client_hold_at'])
      .where('d.retired_at', 'is not', null)
      .where('d.keys_destroyed_at', 'is', null)
      .where('c.offboarded_at', 'is', null);
    if (clientId) q = q.where('d.client_id', '=', clientId);
    const now = clock.now();
    const rows = await q.orderBy('d.retired_at').execute();
    const due = [];
    let held = 0;
    for (const r of rows) {
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

  async function retentionRunTx(tx: Executor, actor: Actor, clientId: string | null) {
    const { due, held } = await dueDevices(tx, clientId);
    let keys = 0;
    for (const d of due) keys += await destroyDeviceKeysTx(tx, actor, d, `retention period of ${Number(d.retention_days ?? DEFAULT_RETENTION_DAYS)} days after retirement on ${day(d.retired_at!)} passed`);
    const result = { devices: due.length, keys, heldBack: held };
    await audit.record(tx, actor, { action: 'retention.run', outcome: 'success', clientId, details: result });
    return result;
  }

  /**
   * Crypto-shred: the client's data key goes, so every ciphertext sealed with it (recovery
   * passwords, its Entra app secret, its AD bind password) is unreadable from this moment. Its
   * connections, agents and enrollment tokens stop; its keys are marked destroyed; the client row,
   * key metadata and audit trail stay.
   */
  async function offboardTx(tx: Executor, actor: Actor, client: { id: string; name: string }, reason: string | null) {
    const now = clock.now();
    const dataKeys = await keyring.destroyClientKeys(tx, client.id);
    const keys = await tx
      .updateTable('recovery_keys')
      .set({ state: 'destroyed', state_changed_at: now, destroyed_at: now, destroyed_reason: 'client offboarded (data key destroyed)' })
      .where('client_id', '=', client.id)
      .where('destroyed_at', 'is', null)
      .executeTakeFirst();
    await tx.updateTable('clients').set({ offboarded_at: now, offboarded_by: actor.name, updated_at: now }).where('id', '=', client.id).execute();
    // Nothing may keep feeding or reading a client whose key is gone.
    await tx.updateTable('graph_connections').set({ enabled: 0, updated_at: now }).where('client_id', '=', client.id).execute();
    await tx.updateTable('directory_connections').set({ enabled: 0, updated_at: now }).where('client_id', '=', client.id).execute();
    await tx.deleteFrom('scheduled_tasks').where('client_id', '=', client.id).execute();
    await tx.updateTable('agent_credentials').set({ revoked_at: now }).where('client_id', '=', client.id).where('revoked_at', 'is', null).execute();
    await tx.updateTable('enrollment_tokens').set({ revoked_at: now }).where('client_id', '=', client.id).where('revoked_at', 'is', null).execute();
    await tx
      .updateTable('jobs')
      .set({ state: 'cancelled', finished_at: now, detail: 'client offboarded' })
      .where('client_id', '=', client.id)
      .where('state', 'in', ['pending', 'sent', 'awaiting_removal'])
      .execute();
    const result = { dataKeysDestroyed: dataKeys, keysMarkedDestroyed: Number(keys.numUpdatedRows) };
    await audit.record(tx, actor, { action: 'client.offboard', outcome: 'success', clientId: client.id, targetType: 'client', targetId: client.id, details: { client: client.name, reason, ...result } });
    return result;
  }

  async function execute(tx: Executor, actor: Actor, action: DestructiveAction, clientId: string, deviceId: string | null, reason: string | null) {
    await assertDestroyable(tx, clientId, deviceId, action);
    if (action === 'destroy-device-keys') {
      const d = await tx.selectFrom('devices').select(['id', 'client_id', 'name']).where('client_id', '=', clientId).where('id', '=', deviceId!).executeTakeFirstOrThrow();
      const keys = await destroyDeviceKeysTx(tx, actor, d, `destroyed on request${reason ? `: ${reason}` : ''} (before the end of the retention period)`);
      return { device: d.name, keys };
    }
    if (action === 'retention-run') return retentionRunTx(tx, actor, clientId);
    const c = await tx.selectFrom('clients').select(['id', 'name']).where('id', '=', clientId).executeTakeFirstOrThrow();
    return offboardTx(tx, actor, c, reason);
  }

  /** The typed confirmation: the client's name exactly as shown (surrounding spaces aside). */
  function confirmName(clientName: string, typed: string | undefined) {
    if ((typed ?? '').trim() !== clientName) {
      throw badRequest(`To confirm, type the client's name exactly as shown: "${clientName}".`, { field: 'confirm' });
    }
  }

  async function request(actor: Actor, action: DestructiveAction, target: { clientId?: string; deviceId?: string }, input: { confirm?: string; reason?: string | null }): Promise<DestroyOutcome> {
    requireOwnerPerson(actor, ACTION_WORDS[action]);
    const reason = cleanReason(input.reason, false);
    return db.transaction().execute(async (tx) => {
      let clientId: string;
      let clientName: string;
      let deviceId: string | null = null;
      if (target.deviceId) {
        const d = await findDevice(tx, actor, target.deviceId);
        if (!d) throw notFound(`No device with id ${target.deviceId.slice(0, 60)}.`);
        clientId = d.client_id;
        clientName = d.client_name;
        deviceId = d.id;
      } else {
        const c = await findClient(tx, actor, target.clientId!);
        if (!c) throw notFound(`No client with id ${target.clientId!.slice(0, 60)}.`);
        clientId = c.id;
        clientName = c.name;
      }
      confirmName(clientName, input.confirm);
      await assertDestroyable(tx, clientId, deviceId, action);
      if (await twoOwnerRequired(tx)) {
        const now = clock.now();
        const row = {
          id: newId(),
          action,
          client_id: clientId,
          device_id: deviceId,
          status: 'pending',
          reason,
          requested_by: actor.id,
          requested_by_name: actor.name,
          requested_at: now,
          expires_at: addHours(now, APPROVAL_HOURS),
          approved_by: null,
          approved_by_name: null,
          approved_at: null,
          closed_at: null,
          result: null,
        };
        await tx.insertInto('lifecycle_approvals').values(row).execute();
        await audit.record(tx, actor, { action: 'lifecycle.request', outcome: 'success', clientId, targetType: 'approval', targetId: row.id, details: { action, deviceId, reason, expiresAt: row.expires_at } });
        return { status: 'pending', approval: await approvalView(tx, row) };
      }
      const result = await execute(tx, actor, action, clientId, deviceId, reason);
      return { status: 'executed', action, result };
    });
  }

  const service = {
    // ---------------------------------------------------------------- retire / reinstate
    async retireDevice(actor: Actor, deviceId: string, input: { reason?: string | null } = {}): Promise<DeviceLifecycle> {
      requirePermission(actor, 'client:manage');
      const reason = cleanReason(input.reason, false);
      return db.transaction().execute(async (tx) => {
        const d = await findDevice(tx, actor, deviceId);
        if (!d) throw notFound(`No device with id ${deviceId.slice(0, 60)}.`);
        if (d.client_offboarded_at) throw conflict(`Client "${d.client_name}" was offboarded; its devices cannot change.`);
        if (d.retired_at) throw conflict(`Device "${d.name}" is already retired (since ${day(d.retired_at)}).`);
        const now = clock.now();
        await tx.updateTable('devices').set({ retired_at: now, retired_by: actor.name, retire_reason: reason }).where('client_id', '=', d.client_id).where('id', '=', d.id).execute();
        const days = Number(d.retention_days ?? DEFAULT_RETENTION_DAYS);
        const view = deviceView({ ...d, retired_at: now, retired_by: actor.name }, days);
        await audit.record(tx, actor, { action: 'device.retire', outcome: 'success', clientId: d.client_id, targetType: 'device', targetId: d.id, details: { device: d.name, reason, keysKeptUntil: view.keysKeptUntil } });
        // The daily task that destroys keys after their retention; created once, idempotent.
        await scheduler().ensureTask(tx, { id: RETENTION_TASK_ID, kind: RETENTION_TASK_KIND, clientId: null, targetId: null, intervalMinutes: 24 * 60 });
        return view;
      });
    },

    async reinstateDevice(actor: Actor, deviceId: string): Promise<DeviceLifecycle> {
      requirePermission(actor, 'client:manage');
      return db.transaction().execute(async (tx) => {
        const d = await findDevice(tx, actor, deviceId);
        if (!d) throw notFound(`No device with id ${deviceId.slice(0, 60)}.`);
        if (!d.retired_at) throw conflict(`Device "${d.name}" is not retired.`);
        if (d.keys_destroyed_at) throw conflict(`Device "${d.name}" cannot be reinstated: its keys were destroyed on ${day(d.keys_destroyed_at)}.`);
        await tx.updateTable('devices').set({ retired_at: null, retired_by: null, retire_reason: null }).where('client_id', '=', d.client_id).where('id', '=', d.id).execute();
        await audit.record(tx, actor, { action: 'device.reinstate', outcome: 'success', clientId: d.client_id, targetType: 'device', targetId: d.id, details: { device: d.name, retiredAt: d.retired_at } });
        return deviceView({ ...d, retired_at: null, retired_by: null }, Number(d.retention_days ?? DEFAULT_RETENTION_DAYS));
      });
    },

    async deviceStatus(actor: Actor, deviceId: string): Promise<DeviceLifecycle> {
      requirePermission(actor, 'device:read');
      const d = await findDevice(db, actor, deviceId);
      if (!d) throw notFound(`No device with id ${deviceId.slice(0, 60)}.`);
      return deviceView(d, Number(d.retention_days ?? DEFAULT_RETENTION_DAYS));
    },

    // ---------------------------------------------------------------- legal hold
    /** Setting a hold only protects (client:manage); lifting one lets destruction resume (owner only). */
    async setDeviceHold(actor: Actor, deviceId: string, input: { hold: boolean; reason?: string | null }): Promise<DeviceLifecycle> {
      requirePermission(actor, 'client:manage');
      if (!input.hold && actor.role !== 'owner') throw forbidden('Only an owner can lift a legal hold.');
      const reason = cleanReason(input.reason, true)!;
      return db.transaction().execute(async (tx) => {
        const d = await findDevice(tx, actor, deviceId);
        if (!d) throw notFound(`No device with id ${deviceId.slice(0, 60)}.`);
        const now = clock.now();
        if (input.hold && d.legal_hold_at) throw conflict(`Device "${d.name}" is already under legal hold (since ${day(d.legal_hold_at)}).`);
        if (!input.hold && !d.legal_hold_at) throw conflict(`Device "${d.name}" is not under legal hold.`);
        const patch = input.hold ? { legal_hold_at: now, legal_hold_reason: reason, legal_hold_by: actor.name } : { legal_hold_at: null, legal_hold_reason: null, legal_hold_by: null };
        await tx.updateTable('devices').set(patch).where('client_id', '=', d.client_id).where('id', '=', d.id).execute();
        await audit.record(tx, actor, { action: input.hold ? 'legal_hold.set' : 'legal_hold.clear', outcome: 'success', clientId: d.client_id, targetType: 'device', targetId: d.id, details: { device: d.name, reason } });
        return deviceView({ ...d, ...patch }, Number(d.retention_days ?? DEFAULT_RETENTION_DAYS));
      });
    },

    async setClientHold(actor: Actor, clientId: string, input: { hold: boolean; reason?: string | null }): Promise<ClientLifecycle> {
      requirePermission(actor, 'client:manage');
      if (!input.hold && actor.role !== 'owner') throw forbidden('Only an owner can lift a legal hold.');
      const reason = cleanReason(input.reason, true)!;
      await db.transaction().execute(async (tx) => {
        const c = await findClient(tx, actor, clientId);
        if (!c) throw notFound(`No client with id ${clientId.slice(0, 60)}.`);
        if (input.hold && c.legal_hold_at) throw conflict(`Client "${c.name}" is already under legal hold (since ${day(c.legal_hold_at)}).`);
        if (!input.hold && !c.legal_hold_at) throw conflict(`Client "${c.name}" is not under legal hold.`);
        const now = clock.now();
        const patch = input.hold ? { legal_hold_at: now, legal_hold_reason: reason, legal_hold_by: actor.name } : { legal_hold_at: null, legal_hold_reason: null, legal_hold_by: null };
        await tx.updateTable('clients').set({ ...patch, updated_at: now }).where('id', '=', c.id).execute();
        await audit.record(tx, actor, { action: input.hold ? 'legal_hold.set' : 'legal_hold.clear', outcome: 'success', clientId: c.id, targetType: 'client', targetId: c.id, details: { client: c.name, reason } });
      });
      return service.clientStatus(actor, clientId);
    },

    // ---------------------------------------------------------------- retention and status
    async setRetention(actor: Actor, clientId: string, days: number): Promise<ClientLifecycle> {
      // Shortening retention brings destruction closer: vault owners only.
      requirePermission(actor, 'settings:manage');
      if (!Number.isInteger(days) || days < 0 || days > 36_500) throw badRequest('retentionDays must be a whole number of days from 0 (keep forever) to 36500.', { field: 'retentionDays' });
      await db.transaction().execute(async (tx) => {
        const c = await findClient(tx, actor, clientId);
        if (!c) throw notFound(`No client with id ${clientId.slice(0, 60)}.`);
        await tx.updateTable('clients').set({ retention_days: days, updated_at: clock.now() }).where('id', '=', c.id).execute();
        await audit.record(tx, actor, { action: 'client.retention', outcome: 'success', clientId: c.id, targetType: 'client', targetId: c.id, details: { client: c.name, from: Number(c.retention_days ?? DEFAULT_RETENTION_DAYS), to: days } });
      });
      return service.clientStatus(actor, clientId);
    },

    async clientStatus(actor: Actor, clientId: string): Promise<ClientLifecycle> {
      requirePermission(actor, 'device:read');
      const c = await findClient(db, actor, clientId);
      if (!c) throw notFound(`No client with id ${clientId.slice(0, 60)}.`);
      const days = Number(c.retention_days ?? DEFAULT_RETENTION_DAYS);
      const devices = await db.selectFrom('devices').selectAll().where('client_id', '=', c.id).where('retired_at', 'is not', null).orderBy('name_key').execute();
      const pending = can(actor, 'settings:manage')
        ? await db.selectFrom('lifecycle_approvals').selectAll().where('client_id', '=', c.id).where('status', '=', 'pending').orderBy('requested_at').execute()
        : [];
      return {
        client: { id: c.id, name: c.name },
        retentionDays: days,
        legalHold: holdOf(c),
        offboardedAt: c.offboarded_at ?? null,
        offboardedBy: c.offboarded_by ?? null,
        retiredDevices: devices.map((d) => deviceView(d, days)),
        pendingApprovals: await Promise.all(pending.map((p) => approvalView(db, p))),
      };
    },

    // ---------------------------------------------------------------- settings
    async getSettings(actor: Actor): Promise<{ twoOwnerApproval: boolean; approvalHours: number; defaultRetentionDays: number }> {
      requirePermission(actor, 'settings:manage');
      return { twoOwnerApproval: await twoOwnerRequired(db), approvalHours: APPROVAL_HOURS, defaultRetentionDays: DEFAULT_RETENTION_DAYS };
    },

    async updateSettings(actor: Actor, patch: { twoOwnerApproval?: boolean }) {
      requireOwnerPerson(actor, 'change who must approve destructive actions');
      await db.transaction().execute(async (tx) => {
        if (patch.twoOwnerApproval !== undefined) {
          const now = clock.now();
          const value = String(patch.twoOwnerApproval);
          const exists = await tx.selectFrom('settings').select('key').where('key', '=', SETTING_TWO_OWNER).executeTakeFirst();
          if (exists) await tx.updateTable('settings').set({ value, updated_at: now }).where('key', '=', SETTING_TWO_OWNER).execute();
          else await tx.insertInto('settings').values({ key: SETTING_TWO_OWNER, value, updated_at: now }).execute();
        }
        await audit.record(tx, actor, { action: 'lifecycle.settings', outcome: 'success', details: patch });
      });
      return service.getSettings(actor);
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

    async listApprovals(actor: Actor, filter: { status?: string } = {}): Promise<ApprovalView[]> {
      requirePermission(actor, 'settings:manage');
      await expireApprovals();
      let q = db.selectFrom('lifecycle_approvals').selectAll();
      if (filter.status) q = q.where('status', '=', filter.status);
      const rows = await q.orderBy('requested_at', 'desc').limit(200).execute();
      return Promise.all(rows.map((r) => approvalView(db, r)));
    },

    /** A second, different owner approves (typing the client name again); the action runs at once. */
    async approve(actor: Actor, approvalId: string, input: { confirm?: string }): Promise<DestroyOutcome> {
      requireOwnerPerson(actor, 'approve the destruction of key material');
      await expireApprovals();
      return db.transaction().execute(async (tx) => {
        const a = ID.test(approvalId) ? await tx.selectFrom('lifecycle_approvals').selectAll().where('id', '=', approvalId.toLowerCase()).executeTakeFirst() : undefined;
        const scope = clientScope(actor);
        if (!a || (scope && !scope.includes(a.client_id))) throw notFound(`No approval request with id ${approvalId.slice(0, 60)}.`);
        if (a.status !== 'pending') throw conflict(`That request is ${a.status}; only a pending request can be approved.`);
        if (a.requested_by === actor.id) throw forbidden('A second owner must approve: the owner who asked cannot approve their own request.');
        const c = await tx.selectFrom('clients').select(['id', 'name']).where('id', '=', a.client_id).executeTakeFirstOrThrow();
        confirmName(c.name, input.confirm);
        const now = clock.now();
        await audit.record(tx, actor, { action: 'lifecycle.approve', outcome: 'success', clientId: a.client_id, targetType: 'approval', targetId: a.id, details: { action: a.action, requestedBy: a.requested_by_name } });
        const result = await execute(tx, actor, a.action as DestructiveAction, a.client_id, a.device_id, a.reason);
        const patch = { status: 'executed', approved_by: actor.id, approved_by_name: actor.name, approved_at: now, closed_at: now, result: JSON.stringify(result) };
        await tx.updateTable('lifecycle_approvals').set(patch).where('id', '=', a.id).execute();
        return { status: 'executed', action: a.action as DestructiveAction, result };
      });
    },

    async cancel(actor: Actor, approvalId: string): Promise<ApprovalView> {
      requirePermission(actor, 'settings:manage');
      return db.transaction().execute(async (tx) => {
        const a = ID.test(approvalId) ? await tx.selectFrom('lifecycle_approvals').selectAll().where('id', '=', approvalId.toLowerCase()).executeTakeFirst() : undefined;
        const scope = clientScope(actor);
        if (!a || (scope && !scope.includes(a.client_id))) throw notFound(`No approval request with id ${approvalId.slice(0, 60)}.`);
        if (a.status !== 'pending') throw conflict(`That request is ${a.status}; only a pending request can be cancelled.`);
        const now = clock.now();
        await tx.updateTable('lifecycle_approvals').set({ status: 'cancelled', closed_at: now }).where('id', '=', a.id).execute();
        await audit.record(tx, actor, { action: 'lifecycle.cancel', outcome: 'success', clientId: a.client_id, targetType: 'approval', targetId: a.id, details: { action: a.action } });
        return approvalView(tx, { ...a, status: 'cancelled', closed_at: now });
      });
    },

    /** The daily task: destroys what is past retention across all clients. */
    async runScheduledRetention(): Promise<string> {
      await expireApprovals();
      const r = await db.transaction().execute((tx) => retentionRunTx(tx, systemActor('retention'), null));
      return `ok: ${r.keys} keys of ${r.devices} retired devices destroyed${r.heldBack ? `, ${r.heldBack} devices held back by a legal hold` : ''}`;
    },
  };

  /** Pending requests past their expiry become 'expired' (audited), so they can never be approved. */
  async function expireApprovals(): Promise<void> {
    const now = clock.now();
    const stale = await db.selectFrom('lifecycle_approvals').select(['id', 'client_id', 'action']).where('status', '=', 'pending').where('expires_at', '<=', now).execute();
    for (const a of stale) {
      await db.transaction().execute(async (tx) => {
        const r = await tx.updateTable('lifecycle_approvals').set({ status: 'expired', closed_at: now }).where('id', '=', a.id).where('status', '=', 'pending').executeTakeFirst();
        if (Number(r.numUpdatedRows) === 1) {
          await audit.record(tx, systemActor('approvals'), { action: 'lifecycle.expire', outcome: 'success', clientId: a.client_id, targetType: 'approval', targetId: a.id, details: { action: a.action } });
        }
      });
    }
  }

  return service;
}
export type LifecycleService = ReturnType<typeof createLifecycleService>;
