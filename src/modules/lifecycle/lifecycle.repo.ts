import type { Insertable, Selectable } from 'kysely';
import type { Executor } from '../../db/database.js';
import type { LifecycleApprovalsTable } from '../../db/schema.js';
import { inClientScope, isId, type ClientScope } from '../../db/scope.js';

/**
 * Approval requests (lifecycle_approvals, owned here), and the read-only views lifecycle needs of
 * clients, devices, keys and the audit log (joins declared in TABLE_READS). Every other write goes
 * through the owning module's repo.
 */
/** An approval request as read from the table (optional columns are filled by the database). */
export type ApprovalRow = Selectable<LifecycleApprovalsTable>;

export function createLifecycleRepo() {
  return {
    // ---------------------------------------------------------------- approvals
    async insertApproval(exec: Executor, row: Insertable<LifecycleApprovalsTable>): Promise<void> {
      await exec.insertInto('lifecycle_approvals').values(row).execute();
    },

    async approval(exec: Executor, id: string): Promise<ApprovalRow | undefined> {
      if (!isId(id)) return undefined;
      return exec.selectFrom('lifecycle_approvals').selectAll().where('id', '=', id.toLowerCase()).executeTakeFirst();
    },

    /**
     * Requests inside a scope: a client-limited principal sees its clients' requests only; vault-wide
     * requests (no client) only a principal with every client (scope null).
     */
    listApprovals(exec: Executor, scope: ClientScope, f: { status?: string; clientId?: string; limit: number }): Promise<ApprovalRow[]> {
      let q = inClientScope(exec.selectFrom('lifecycle_approvals').selectAll(), 'client_id', scope);
      if (f.status) q = q.where('status', '=', f.status);
      if (f.clientId) q = q.where('client_id', '=', f.clientId);
      return q.orderBy('requested_at', 'desc').limit(f.limit).execute();
    },

    /** Closes a pending request; false when it was no longer pending (someone else got there first). */
    async closeApproval(
      exec: Executor,
      id: string,
      patch: Partial<Pick<LifecycleApprovalsTable, 'status' | 'approved_by' | 'approved_by_name' | 'approved_at' | 'closed_at' | 'result'>>,
    ): Promise<boolean> {
      const r = await exec.updateTable('lifecycle_approvals').set(patch).where('id', '=', id).where('status', '=', 'pending').executeTakeFirst();
      return Number(r.numUpdatedRows) === 1;
    },

    async setApprovalResult(exec: Executor, id: string, result: string): Promise<void> {
      await exec.updateTable('lifecycle_approvals').set({ result }).where('id', '=', id).execute();
    },

    staleApprovals: (exec: Executor, now: string) =>
      exec.selectFrom('lifecycle_approvals').select(['id', 'client_id', 'action']).where('status', '=', 'pending').where('expires_at', '<=', now).execute(),

    /** When this person's account was created (undefined for no such account). */
    accountCreatedAt: async (exec: Executor, userId: string) =>
      isId(userId) ? (await exec.selectFrom('users').select('created_at').where('id', '=', userId).executeTakeFirst())?.created_at : undefined,

    clientName: async (exec: Executor, clientId: string) =>
      (await exec.selectFrom('clients').select('name').where('id', '=', clientId).executeTakeFirst())?.name,

    deviceName: async (exec: Executor, clientId: string, deviceId: string) =>
      (await exec.selectFrom('devices').select('name').where('client_id', '=', clientId).where('id', '=', deviceId).executeTakeFirst())?.name,

    // ---------------------------------------------------------------- clients and devices (read)
    /** A device the scope includes, of a client that is not archived, with its client's lifecycle fields. */
    findDevice(exec: Executor, id: string, scope: ClientScope) {
      const q = exec
        .selectFrom('devices as d')
        .innerJoin('clients as c', 'c.id', 'd.client_id')
        .selectAll('d')
        .select(['c.name as client_name', 'c.retention_days', 'c.legal_hold_at as client_hold_at', 'c.offboarded_at as client_offboarded_at'])
        .where('d.id', '=', isId(id) ? id.toLowerCase() : '')
        .where('c.archived_at', 'is', null);
      return inClientScope(q, 'd.client_id', scope).executeTakeFirst();
    },

    clientLifecycle: (exec: Executor, clientId: string) =>
      exec.selectFrom('clients').select(['id', 'name', 'legal_hold_at', 'offboarded_at']).where('id', '=', clientId).executeTakeFirst(),

    deviceLifecycle: (exec: Executor, clientId: string, deviceId: string) =>
      exec
        .selectFrom('devices')
        .select(['id', 'client_id', 'name', 'retired_at', 'legal_hold_at', 'keys_destroyed_at'])
        .where('client_id', '=', clientId)
        .where('id', '=', deviceId)
        .executeTakeFirst(),

    heldDevice: (exec: Executor, clientId: string) =>
      exec.selectFrom('devices').select('name').where('client_id', '=', clientId).where('legal_hold_at', 'is not', null).executeTakeFirst(),

    retiredDevices: (exec: Executor, clientId: string) =>
      exec.selectFrom('devices').selectAll().where('client_id', '=', clientId).where('retired_at', 'is not', null).orderBy('name_key').execute(),

    /** Retired devices whose keys are not destroyed yet, of clients not offboarded (one client, or all). */
    retiredWithKeys(exec: Executor, clientId: string | null) {
      let q = exec
        .selectFrom('devices as d')
        .innerJoin('clients as c', 'c.id', 'd.client_id')
        .select(['d.id', 'd.client_id', 'd.name', 'd.retired_at', 'd.legal_hold_at', 'c.retention_days', 'c.legal_hold_at as client_hold_at'])
        .where('d.retired_at', 'is not', null)
        .where('d.keys_destroyed_at', 'is', null)
        .where('c.offboarded_at', 'is', null);
      if (clientId) q = q.where('d.client_id', '=', clientId);
      return q.orderBy('d.retired_at').execute();
    },

    /** Keys of a device whose material still exists. */
    liveKeysOf: (exec: Executor, clientId: string, deviceId: string) =>
      exec
        .selectFrom('recovery_keys')
        .select(['id', 'key_id', 'state'])
        .where('client_id', '=', clientId)
        .where('device_id', '=', deviceId)
        .where('destroyed_at', 'is', null)
        .execute(),

    // ---------------------------------------------------------------- key history (metadata only, read)
    historyDevice(exec: Executor, id: string, scope: ClientScope) {
      const q = exec
        .selectFrom('devices as d')
        .innerJoin('clients as c', 'c.id', 'd.client_id')
        .select(['d.id', 'd.name', 'd.client_id', 'd.retired_at', 'c.name as client_name'])
        .where('d.id', '=', isId(id) ? id.toLowerCase() : '')
        .where('c.archived_at', 'is', null);
      return inClientScope(q, 'd.client_id', scope).executeTakeFirst();
    },

    volumesOf: (exec: Executor, clientId: string, deviceId: string) =>
      exec
        .selectFrom('volumes')
        .select(['id', 'mount_point', 'volume_type'])
        .where('client_id', '=', clientId)
        .where('device_id', '=', deviceId)
        .orderBy('mount_point')
        .execute(),

    /** Metadata columns only: the ciphertext is never selected here. */
    keyMetadataOf: (exec: Executor, clientId: string, deviceId: string) =>
      exec
        .selectFrom('recovery_keys')
        .select(['id', 'key_id', 'volume_id', 'state', 'source_created_at', 'first_seen_at', 'last_seen_at', 'destroyed_at', 'destroyed_reason'])
        .where('client_id', '=', clientId)
        .where('device_id', '=', deviceId)
        .orderBy('first_seen_at')
        .execute(),

    sourcesOf: (exec: Executor, clientId: string, keyRowIds: string[]) =>
      keyRowIds.length
        ? exec
            .selectFrom('key_sources')
            .select(['recovery_key_id', 'source_type', 'source_ref', 'source_created_at', 'first_seen_at', 'last_seen_at', 'removed_at'])
            .where('client_id', '=', clientId)
            .where('recovery_key_id', 'in', keyRowIds)
            .orderBy('first_seen_at')
            .execute()
        : Promise.resolve([]),

    /** Successful audit events of these actions about these keys, oldest first. */
    keyAuditEvents: (exec: Executor, clientId: string, keyRowIds: string[], actions: string[]) =>
      keyRowIds.length
        ? exec
            .selectFrom('audit_events')
            .select(['occurred_at', 'action', 'outcome', 'actor_name', 'target_id', 'reason_code', 'ticket', 'details'])
            .where('client_id', '=', clientId)
            .where('target_id', 'in', keyRowIds)
            .where('action', 'in', actions)
            .where('outcome', '=', 'success')
            .orderBy('seq')
            .execute()
        : Promise.resolve([]),
  };
}
export type LifecycleRepo = ReturnType<typeof createLifecycleRepo>;
