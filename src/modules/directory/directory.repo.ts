import type { Executor } from '../../db/database.js';
import type { DirectoryConnectionsTable, DirectorySyncRunsTable } from '../../db/schema.js';
import { inClientScope, isId, type ClientScope } from '../../db/scope.js';

/** Active Directory connections (one per client) and their sync runs. */
export function createDirectoryRepo() {
  return {
    /** The connection with this id when the scope includes its client; undefined for any other id. */
    findVisible(exec: Executor, id: string, scope: ClientScope) {
      if (!isId(id)) return Promise.resolve(undefined);
      return inClientScope(exec.selectFrom('directory_connections').selectAll().where('id', '=', id), 'client_id', scope).executeTakeFirst();
    },
    /** For the scheduler's handler, which acts for no person. */
    find: (exec: Executor, id: string) => exec.selectFrom('directory_connections').selectAll().where('id', '=', id).executeTakeFirst(),
    findByClient: (exec: Executor, clientId: string) =>
      exec.selectFrom('directory_connections').selectAll().where('client_id', '=', clientId).executeTakeFirst(),
    list: (exec: Executor, scope: ClientScope) =>
      inClientScope(exec.selectFrom('directory_connections').selectAll().orderBy('created_at'), 'client_id', scope).execute(),
    async insert(exec: Executor, row: DirectoryConnectionsTable): Promise<void> {
      await exec.insertInto('directory_connections').values(row).execute();
    },
    async update(
      exec: Executor,
      id: string,
      patch: Partial<Pick<DirectoryConnectionsTable, 'last_dc' | 'last_usn' | 'last_sync_at' | 'last_status' | 'last_error' | 'updated_at'>>,
    ): Promise<void> {
      await exec.updateTable('directory_connections').set(patch).where('id', '=', id).execute();
    },

    /** Everything an admin may change from the console (the bind password as a new sealed value). */
    async edit(
      exec: Executor,
      id: string,
      patch: Partial<
        Pick<
          DirectoryConnectionsTable,
          | 'hosts'
          | 'port'
          | 'tls_mode'
          | 'ca_cert'
          | 'pinned_sha256'
          | 'allow_untrusted'
          | 'bind_dn'
          | 'password_ciphertext'
          | 'password_data_key_version'
          | 'base_dns'
          | 'sync_interval_minutes'
          | 'enabled'
          | 'last_dc'
          | 'last_usn'
          | 'updated_at'
        >
      >,
    ): Promise<void> {
      await exec.updateTable('directory_connections').set(patch).where('id', '=', id).execute();
    },
    /** The connection and its run history (keys it synced stay in the vault). */
    async remove(exec: Executor, id: string): Promise<void> {
      await exec.deleteFrom('directory_sync_runs').where('connection_id', '=', id).execute();
      await exec.deleteFrom('directory_connections').where('id', '=', id).execute();
    },

    // sync runs
    runsOf: (exec: Executor, connectionId: string, limit: number) =>
      exec.selectFrom('directory_sync_runs').selectAll().where('connection_id', '=', connectionId).orderBy('started_at', 'desc').limit(limit).execute(),
    latestRun: (exec: Executor, connectionId: string) =>
      exec.selectFrom('directory_sync_runs').selectAll().where('connection_id', '=', connectionId).orderBy('started_at', 'desc').limit(1).executeTakeFirst(),
    async insertRun(exec: Executor, row: DirectorySyncRunsTable): Promise<void> {
      await exec.insertInto('directory_sync_runs').values(row).execute();
    },
    async updateRun(exec: Executor, row: DirectorySyncRunsTable): Promise<void> {
      await exec.updateTable('directory_sync_runs').set(row).where('id', '=', row.id).execute();
    },
    /** Stops every AD connection of a client (offboarded: its bind password can no longer be opened). */
    async disableClientConnections(exec: Executor, clientId: string, now: string): Promise<void> {
      await exec.updateTable('directory_connections').set({ enabled: 0, updated_at: now }).where('client_id', '=', clientId).execute();
    },
  };
}
export type DirectoryRepo = ReturnType<typeof createDirectoryRepo>;
