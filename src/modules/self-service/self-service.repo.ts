import type { Executor } from '../../db/database.js';
import { inClientScope, type ClientScope } from '../../db/scope.js';
import type { SelfServiceAppTable, SelfServiceSessionsTable, SelfServiceStatesTable } from '../../db/schema.js';

export const APP_ROW = 'app';

/** Self-service recovery: the sign-in app, each client's switch, started sign-ins and end-user sessions. */
export function createSelfServiceRepo() {
  return {
    findApp: (exec: Executor) => exec.selectFrom('self_service_app').selectAll().where('id', '=', APP_ROW).executeTakeFirst(),
    async saveApp(exec: Executor, row: SelfServiceAppTable): Promise<void> {
      const { id: _id, ...rest } = row;
      const r = await exec.updateTable('self_service_app').set(rest).where('id', '=', APP_ROW).executeTakeFirst();
      if (Number(r.numUpdatedRows) === 0)
        await exec
          .insertInto('self_service_app')
          .values({ ...row, id: APP_ROW })
          .execute();
    },

    /** Whether the client's admin switched self-service on (no row: off). */
    async clientEnabled(exec: Executor, clientId: string): Promise<boolean> {
      const r = await exec.selectFrom('self_service_clients').select('enabled').where('client_id', '=', clientId).executeTakeFirst();
      return r?.enabled === 1;
    },
    /** The clients in scope whose self-service is on, in one query (an MSP has hundreds). */
    async enabledClients(exec: Executor, scope: ClientScope): Promise<string[]> {
      const rows = await inClientScope(
        exec.selectFrom('self_service_clients').select('client_id').where('enabled', '=', 1).orderBy('client_id'),
        'client_id',
        scope,
      ).execute();
      return rows.map((r) => r.client_id);
    },
    async setClient(exec: Executor, clientId: string, enabled: boolean, at: string, by: string): Promise<void> {
      const r = await exec
        .updateTable('self_service_clients')
        .set({ enabled: enabled ? 1 : 0, updated_at: at, updated_by_name: by })
        .where('client_id', '=', clientId)
        .executeTakeFirst();
      if (Number(r.numUpdatedRows) === 0)
        await exec
          .insertInto('self_service_clients')
          .values({ client_id: clientId, enabled: enabled ? 1 : 0, updated_at: at, updated_by_name: by })
          .execute();
    },

    async insertState(exec: Executor, row: SelfServiceStatesTable): Promise<void> {
      await exec.insertInto('self_service_states').values(row).execute();
    },
    /** Takes a state once: a replay, or a parallel second answer, finds nothing. */
    takeState: (exec: Executor, stateHash: string, now: string) =>
      exec
        .updateTable('self_service_states')
        .set({ used_at: now })
        .where('state_hash', '=', stateHash)
        .where('used_at', 'is', null)
        .returningAll()
        .executeTakeFirst(),
    async deleteStatesBefore(exec: Executor, before: string): Promise<void> {
      await exec.deleteFrom('self_service_states').where('expires_at', '<', before).execute();
    },

    /** Sessions that ended or expired before a time: nothing needs them (limits count the audit log). */
    async deleteSessionsBefore(exec: Executor, before: string): Promise<number> {
      const r = await exec
        .deleteFrom('self_service_sessions')
        .where((eb) => eb.or([eb('expires_at', '<', before), eb('ended_at', '<', before)]))
        .executeTakeFirst();
      return Number(r.numDeletedRows);
    },
    async insertSession(exec: Executor, row: SelfServiceSessionsTable): Promise<void> {
      await exec.insertInto('self_service_sessions').values(row).execute();
    },
    /** An open session by its token's hash (not ended, not expired). */
    openSession: (exec: Executor, tokenHash: string, now: string) =>
      exec
        .selectFrom('self_service_sessions')
        .selectAll()
        .where('token_hash', '=', tokenHash)
        .where('ended_at', 'is', null)
        .where('expires_at', '>', now)
        .executeTakeFirst(),
    async endSession(exec: Executor, id: string, now: string): Promise<void> {
      await exec.updateTable('self_service_sessions').set({ ended_at: now }).where('id', '=', id).where('ended_at', 'is', null).execute();
    },

    /**
     * The client's devices (not retired) that an end user owns or primarily uses: their Entra
     * device id is one Graph named for the user, or the primary user Keywarden holds is their UPN.
     */
    userDevices(exec: Executor, clientId: string, entraDeviceIds: readonly string[], upn: string) {
      return exec
        .selectFrom('devices')
        .select(['id', 'name', 'entra_device_id', 'primary_user', 'last_seen_at'])
        .where('client_id', '=', clientId)
        .where('retired_at', 'is', null)
        .where((eb) => {
          const or = [eb(eb.fn('lower', ['primary_user']), '=', upn.toLowerCase())];
          if (entraDeviceIds.length) or.push(eb(eb.fn('lower', ['entra_device_id']), 'in', [...entraDeviceIds]));
          return eb.or(or);
        })
        .orderBy('name_key')
        .limit(100)
        .execute();
    },
  };
}
export type SelfServiceRepo = ReturnType<typeof createSelfServiceRepo>;
export type SelfServiceSession = SelfServiceSessionsTable;
