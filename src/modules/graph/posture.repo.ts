import type { Executor } from '../../db/database.js';
import type { TenantPostureTable } from '../../db/schema.js';
import { inClientScope, isId, type ClientScope } from '../../db/scope.js';

/** Tenant posture (one row per client with an Entra ID connection), written by the Entra sync. */
export function createPostureRepo() {
  return {
    find: (exec: Executor, clientId: string) => exec.selectFrom('tenant_posture').selectAll().where('client_id', '=', clientId).executeTakeFirst(),
    async upsert(exec: Executor, row: TenantPostureTable): Promise<void> {
      const { client_id: _id, ...rest } = row;
      await exec
        .insertInto('tenant_posture')
        .values(row)
        .onConflict((oc) => oc.column('client_id').doUpdateSet(rest))
        .execute();
    },
    /** The posture of the clients in scope (one client when clientId is given). */
    /** With the connection's consent state: consent lost is a client-level note too. */
    list(exec: Executor, scope: ClientScope, clientId?: string | null) {
      let q = exec
        .selectFrom('tenant_posture')
        .leftJoin('graph_connections', 'graph_connections.client_id', 'tenant_posture.client_id')
        .selectAll('tenant_posture')
        .select('graph_connections.consent_lost_at')
        .orderBy('tenant_posture.client_id');
      if (clientId) {
        if (!isId(clientId)) return Promise.resolve([]);
        q = q.where('tenant_posture.client_id', '=', clientId);
      }
      return inClientScope(q, 'tenant_posture.client_id', scope).execute();
    },
    /** With the connection: a client without Entra ID has no tenant posture. */
    async remove(exec: Executor, clientId: string): Promise<void> {
      await exec.deleteFrom('tenant_posture').where('client_id', '=', clientId).execute();
    },
  };
}
export type PostureRepo = ReturnType<typeof createPostureRepo>;
