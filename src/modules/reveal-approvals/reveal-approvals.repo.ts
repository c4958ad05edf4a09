import type { Executor } from '../../db/database.js';
import { inClientScope, type ClientScope } from '../../db/scope.js';
import type { RevealPoliciesTable, RevealRequestsTable } from '../../db/schema.js';

export type RequestRow = RevealRequestsTable & { client_name: string; device_name: string | null; key_id: string | null };

/** What a list asks for; 'open' = pending and not yet expired, or approved and still usable. */
export type RequestFilter = {
  status?: 'pending' | 'approved' | 'denied' | 'cancelled' | 'used' | 'expired' | 'open';
  clientId?: string;
  requesterPersonId?: string;
  keyRecordId?: string;
  limit: number;
};

/** Two-person reveal: policies per client and reveal requests. Never a secret in either. */
export function createRevealApprovalsRepo() {
  const requests = (exec: Executor) =>
    exec
      .selectFrom('reveal_requests as r')
      .innerJoin('clients as c', 'c.id', 'r.client_id')
      .innerJoin('recovery_keys as k', 'k.id', 'r.recovery_key_id')
      .leftJoin('devices as d', 'd.id', 'r.device_id')
      .selectAll('r')
      .select(['c.name as client_name', 'd.name as device_name', 'k.key_id']);

  return {
    policy: (exec: Executor, clientId: string): Promise<RevealPoliciesTable | undefined> =>
      exec.selectFrom('reveal_policies').selectAll().where('client_id', '=', clientId).executeTakeFirst(),

    async upsertPolicy(exec: Executor, row: RevealPoliciesTable): Promise<void> {
      const { client_id: _c, ...rest } = row;
      await exec
        .insertInto('reveal_policies')
        .values(row)
        .onConflict((oc) => oc.column('client_id').doUpdateSet(rest))
        .execute();
    },

    /** Whether the device carries one of these tags. */
    async deviceHasTag(exec: Executor, clientId: string, deviceId: string, tags: readonly string[]): Promise<boolean> {
      if (tags.length === 0) return false;
      const row = await exec
        .selectFrom('device_tags')
        .select('tag')
        .where('client_id', '=', clientId)
        .where('device_id', '=', deviceId)
        .where('tag', 'in', [...tags])
        .executeTakeFirst();
      return !!row;
    },

    async insert(exec: Executor, row: RevealRequestsTable): Promise<void> {
      await exec.insertInto('reveal_requests').values(row).execute();
    },

    /** One request inside the scope (an empty scope finds nothing). */
    get: (exec: Executor, scope: ClientScope, id: string): Promise<RequestRow | undefined> =>
      inClientScope(requests(exec).where('r.id', '=', id), 'r.client_id', scope).executeTakeFirst(),

    list(exec: Executor, scope: ClientScope, now: string, f: RequestFilter): Promise<RequestRow[]> {
      let q = inClientScope(requests(exec), 'r.client_id', scope);
      if (f.clientId) q = q.where('r.client_id', '=', f.clientId);
      if (f.requesterPersonId) q = q.where('r.requester_person_id', '=', f.requesterPersonId);
      if (f.keyRecordId) q = q.where('r.recovery_key_id', '=', f.keyRecordId);
      if (f.status === 'pending') q = q.where('r.status', '=', 'pending').where('r.expires_at', '>', now);
      else if (f.status === 'approved') q = q.where('r.status', '=', 'approved').where('r.approval_expires_at', '>', now);
      else if (f.status === 'open')
        q = q.where((eb) =>
          eb.or([
            eb.and([eb('r.status', '=', 'pending'), eb('r.expires_at', '>', now)]),
            eb.and([eb('r.status', '=', 'approved'), eb('r.approval_expires_at', '>', now)]),
          ]),
        );
      else if (f.status === 'expired')
        q = q.where((eb) =>
          eb.or([
            eb.and([eb('r.status', '=', 'pending'), eb('r.expires_at', '<=', now)]),
            eb.and([eb('r.status', '=', 'approved'), eb('r.approval_expires_at', '<=', now)]),
          ]),
        );
      else if (f.status) q = q.where('r.status', '=', f.status);
      return q.orderBy('r.requested_at', 'desc').orderBy('r.id').limit(f.limit).execute();
    },

    /** Open requests a person has now (a bound on how many they may keep open). */
    async openCount(exec: Executor, personId: string, now: string): Promise<number> {
      const row = await exec
        .selectFrom('reveal_requests')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('requester_person_id', '=', personId)
        .where('status', '=', 'pending')
        .where('expires_at', '>', now)
        .executeTakeFirstOrThrow();
      return Number(row.n);
    },

    /**
     * Decides a pending, unexpired request: one conditional update, so of two approvers at once
     * exactly one decides and the other finds it decided.
     */
    async decide(
      exec: Executor,
      id: string,
      now: string,
      patch: Pick<RevealRequestsTable, 'status' | 'decided_by_id' | 'decided_by_name' | 'decided_at' | 'decision_note' | 'approval_expires_at'>,
    ): Promise<boolean> {
      const r = await exec
        .updateTable('reveal_requests')
        .set(patch)
        .where('id', '=', id)
        .where('status', '=', 'pending')
        .where('expires_at', '>', now)
        .executeTakeFirst();
      return Number(r.numUpdatedRows) === 1;
    },

    async cancel(exec: Executor, id: string, now: string): Promise<boolean> {
      const r = await exec
        .updateTable('reveal_requests')
        .set({ status: 'cancelled', decided_at: now })
        .where('id', '=', id)
        .where('status', 'in', ['pending', 'approved'])
        .executeTakeFirst();
      return Number(r.numUpdatedRows) === 1;
    },

    /**
     * Takes an approval for the one reveal it allows: approved, still inside its window, this key,
     * this requester. A conditional update: two reveals at once, one wins.
     */
    async use(exec: Executor, id: string, keyRecordId: string, requesterId: string, now: string): Promise<boolean> {
      const r = await exec
        .updateTable('reveal_requests')
        .set({ status: 'used', used_at: now })
        .where('id', '=', id)
        .where('recovery_key_id', '=', keyRecordId)
        .where('requester_id', '=', requesterId)
        .where('status', '=', 'approved')
        .where('approval_expires_at', '>', now)
        .executeTakeFirst();
      return Number(r.numUpdatedRows) === 1;
    },
  };
}
export type RevealApprovalsRepo = ReturnType<typeof createRevealApprovalsRepo>;
