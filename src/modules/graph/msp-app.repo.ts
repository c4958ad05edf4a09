import type { Executor } from '../../db/database.js';
import type { GraphConsentStatesTable, GraphMspAppTable } from '../../db/schema.js';

export const MSP_APP_ID = 'msp';

/** The MSP's one multi-tenant app (one row) and its one-time admin-consent links. */
export function createMspAppRepo() {
  return {
    find: (exec: Executor) => exec.selectFrom('graph_msp_app').selectAll().where('id', '=', MSP_APP_ID).executeTakeFirst(),
    async upsert(exec: Executor, row: GraphMspAppTable): Promise<void> {
      const { id: _id, created_at: _created, ...patch } = row;
      await exec
        .insertInto('graph_msp_app')
        .values(row)
        .onConflict((oc) => oc.column('id').doUpdateSet(patch))
        .execute();
    },

    async setCertificateWarned(exec: Executor, warned: string): Promise<void> {
      await exec.updateTable('graph_msp_app').set({ certificate_warned: warned }).where('id', '=', MSP_APP_ID).execute();
    },

    // consent links
    async insertState(exec: Executor, row: GraphConsentStatesTable): Promise<void> {
      await exec.insertInto('graph_consent_states').values(row).execute();
    },
    findState: (exec: Executor, stateHash: string) =>
      exec.selectFrom('graph_consent_states').selectAll().where('state_hash', '=', stateHash).executeTakeFirst(),
    /** Spends a link once: false when it was already used (two callbacks at once link once). */
    async useState(exec: Executor, id: string, at: string, tenantId: string): Promise<boolean> {
      const r = await exec
        .updateTable('graph_consent_states')
        .set({ used_at: at, used_tenant_id: tenantId })
        .where('id', '=', id)
        .where('used_at', 'is', null)
        .executeTakeFirst();
      return Number(r.numUpdatedRows) === 1;
    },
    /** The client's links (newest first), without their state (only its hash is stored anyway). */
    statesOf: (exec: Executor, clientId: string, limit: number) =>
      exec
        .selectFrom('graph_consent_states')
        .select(['id', 'client_id', 'expected_tenant_id', 'created_by_name', 'created_at', 'expires_at', 'used_at', 'used_tenant_id'])
        .where('client_id', '=', clientId)
        .orderBy('created_at', 'desc')
        .limit(limit)
        .execute(),
    /** A client's links go when the client's Entra ID connection is removed. */
    async removeStatesOf(exec: Executor, clientId: string): Promise<void> {
      await exec.deleteFrom('graph_consent_states').where('client_id', '=', clientId).execute();
    },
  };
}
export type MspAppRepo = ReturnType<typeof createMspAppRepo>;
