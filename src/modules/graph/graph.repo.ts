import type { Executor } from '../../db/database.js';
import type { GraphConnectionsTable, SyncRunsTable } from '../../db/schema.js';
import { inClientScope, isId, type ClientScope } from '../../db/scope.js';

/** Entra ID connections (one per client) and their sync runs. */
export function createGraphRepo() {
  return {
    /** The connection with this id when the scope includes its client; undefined for any other id. */
    findVisible(exec: Executor, id: string, scope: ClientScope) {
      if (!isId(id)) return Promise.resolve(undefined);
      return inClientScope(exec.selectFrom('graph_connections').selectAll().where('id', '=', id), 'client_id', scope).executeTakeFirst();
    },
    /** For the scheduler's handlers, which act for no person. */
    find: (exec: Executor, id: string) => exec.selectFrom('graph_connections').selectAll().where('id', '=', id).executeTakeFirst(),
    /**
     * The client a Microsoft tenant is linked to: through its enabled Entra ID connection (whatever
     * credential it uses). Null when no client, or more than one, has that tenant.
     */
    async clientOfTenant(exec: Executor, tenantId: string): Promise<string | null> {
      const rows = await exec
        .selectFrom('graph_connections')
        .select('client_id')
        .where('tenant_id', '=', tenantId.toLowerCase())
        .where('enabled', '=', 1)
        .limit(2)
        .execute();
      return rows.length === 1 ? rows[0]!.client_id : null;
    },
    /** Connections that sign in with their own certificate (for expiry warnings). */
    withCertificates: (exec: Executor) =>
      exec
        .selectFrom('graph_connections')
        .select(['id', 'client_id', 'tenant_id', 'certificate_thumbprint', 'certificate_expires_at', 'certificate_warned'])
        .where('credential_kind', '=', 'certificate')
        .where('certificate_expires_at', 'is not', null)
        .execute(),
    /** How many connections sign in through the MSP app (they stop when its certificate expires). */
    async countMspApp(exec: Executor): Promise<number> {
      const r = await exec
        .selectFrom('graph_connections')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('credential_kind', '=', 'msp_app')
        .executeTakeFirstOrThrow();
      return Number(r.n);
    },
    findByClient: (exec: Executor, clientId: string) => exec.selectFrom('graph_connections').selectAll().where('client_id', '=', clientId).executeTakeFirst(),
    list: (exec: Executor, scope: ClientScope) =>
      inClientScope(exec.selectFrom('graph_connections').selectAll().orderBy('created_at'), 'client_id', scope).execute(),
    async insert(exec: Executor, row: GraphConnectionsTable): Promise<void> {
      await exec.insertInto('graph_connections').values(row).execute();
    },
    async update(exec: Executor, id: string, patch: Partial<Omit<GraphConnectionsTable, 'id' | 'client_id' | 'created_at'>>): Promise<void> {
      await exec.updateTable('graph_connections').set(patch).where('id', '=', id).execute();
    },
    /** The connection linked to this Entra tenant, if any (one tenant belongs to one client). */
    findByTenant: (exec: Executor, tenantId: string) =>
      exec.selectFrom('graph_connections').selectAll().where('tenant_id', '=', tenantId.toLowerCase()).executeTakeFirst(),
    /** Notes that consent was found withdrawn; false when it was already noted (notify once). */
    async markConsentLost(exec: Executor, id: string, at: string): Promise<boolean> {
      const r = await exec
        .updateTable('graph_connections')
        .set({ consent_lost_at: at, updated_at: at })
        .where('id', '=', id)
        .where('consent_lost_at', 'is', null)
        .executeTakeFirst();
      return Number(r.numUpdatedRows) === 1;
    },
    /** The connection and its run history. */
    async remove(exec: Executor, id: string): Promise<void> {
      await exec.deleteFrom('sync_runs').where('connection_id', '=', id).execute();
      await exec.deleteFrom('graph_connections').where('id', '=', id).execute();
    },

    // sync runs
    runsOf: (exec: Executor, connectionId: string, limit: number) =>
      exec.selectFrom('sync_runs').selectAll().where('connection_id', '=', connectionId).orderBy('started_at', 'desc').limit(limit).execute(),
    async insertRun(exec: Executor, row: SyncRunsTable): Promise<void> {
      await exec.insertInto('sync_runs').values(row).execute();
    },
    async updateRun(exec: Executor, row: SyncRunsTable): Promise<void> {
      await exec.updateTable('sync_runs').set(row).where('id', '=', row.id).execute();
    },
    /** Marks the connection's runs still "running" as failed (their process stopped mid-sync). */
    async failRunning(exec: Executor, connectionId: string, at: string, errorText: string): Promise<void> {
      await exec
        .updateTable('sync_runs')
        .set({ status: 'failed', finished_at: at, error_text: errorText })
        .where('connection_id', '=', connectionId)
        .where('status', '=', 'running')
        .execute();
    },
    /** Stops every Entra ID connection of a client (offboarded: its secret can no longer be opened). */
    async disableClientConnections(exec: Executor, clientId: string, now: string): Promise<void> {
      await exec.updateTable('graph_connections').set({ enabled: 0, updated_at: now }).where('client_id', '=', clientId).execute();
    },
  };
}
export type GraphRepo = ReturnType<typeof createGraphRepo>;
