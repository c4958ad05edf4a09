import type { Executor } from '../../db/database.js';
import type { PsaClientSettingsTable, PsaConnectionTable, PsaMembersTable } from '../../db/schema.js';

export const PSA_CONNECTION_ID = 'psa';

/** The PSA connection (one row), the clients' PSA companies and ticket policies, the users' PSA members. */
export function createPsaRepo() {
  return {
    findConnection: (exec: Executor) => exec.selectFrom('psa_connection').selectAll().where('id', '=', PSA_CONNECTION_ID).executeTakeFirst(),
    async upsertConnection(exec: Executor, row: PsaConnectionTable): Promise<void> {
      const { id: _id, created_at: _created, ...patch } = row;
      await exec
        .insertInto('psa_connection')
        .values(row)
        .onConflict((oc) => oc.column('id').doUpdateSet(patch))
        .execute();
    },
    async setConnectionStatus(exec: Executor, status: PsaConnectionTable['status'], at: string, error: string | null): Promise<void> {
      await exec.updateTable('psa_connection').set({ status, last_checked_at: at, last_error: error }).where('id', '=', PSA_CONNECTION_ID).execute();
    },
    async removeConnection(exec: Executor): Promise<void> {
      await exec.deleteFrom('psa_connection').where('id', '=', PSA_CONNECTION_ID).execute();
    },

    clientSettings: (exec: Executor, clientId: string) =>
      exec.selectFrom('psa_client_settings').selectAll().where('client_id', '=', clientId).executeTakeFirst(),
    /** Which client (if any) holds a PSA company. */
    clientOfCompany: (exec: Executor, companyId: string) =>
      exec.selectFrom('psa_client_settings').select('client_id').where('company_id', '=', companyId).executeTakeFirst(),
    /** Every client's PSA settings with the client's name. */
    listClientSettings: (exec: Executor) =>
      exec
        .selectFrom('psa_client_settings')
        .innerJoin('clients', 'clients.id', 'psa_client_settings.client_id')
        .selectAll('psa_client_settings')
        .select('clients.name as client_name')
        .orderBy('clients.name')
        .execute(),
    async upsertClientSettings(exec: Executor, row: PsaClientSettingsTable): Promise<void> {
      const { client_id: _id, ...patch } = row;
      await exec
        .insertInto('psa_client_settings')
        .values(row)
        .onConflict((oc) => oc.column('client_id').doUpdateSet(patch))
        .execute();
    },
    /** Clients that are not archived, by name: the ones to link to a PSA company. */
    clientNames: (exec: Executor) => exec.selectFrom('clients').select(['id', 'name']).where('archived_at', 'is', null).orderBy('name').execute(),
    /** The PSA connection is gone: no client has a company or a ticket policy any more. */
    async resetAllClients(exec: Executor, at: string, by: string): Promise<number> {
      const r = await exec
        .updateTable('psa_client_settings')
        .set({ company_id: null, company_name: null, ticket_policy: 'off', updated_at: at, updated_by_name: by })
        .where((eb) => eb.or([eb('company_id', 'is not', null), eb('ticket_policy', '!=', 'off')]))
        .executeTakeFirst();
      return Number(r.numUpdatedRows);
    },
    /** Unlinks every client from its company (the PSA connection was replaced by another PSA). */
    async clearCompanies(exec: Executor, at: string, by: string): Promise<void> {
      await exec
        .updateTable('psa_client_settings')
        .set({ company_id: null, company_name: null, updated_at: at, updated_by_name: by })
        .where('company_id', 'is not', null)
        .execute();
    },

    member: (exec: Executor, userId: string) => exec.selectFrom('psa_members').select('member').where('user_id', '=', userId).executeTakeFirst(),
    listMembers: (exec: Executor) =>
      exec
        .selectFrom('users')
        .leftJoin('psa_members', 'psa_members.user_id', 'users.id')
        .select([
          'users.id as user_id',
          'users.email',
          'users.name',
          'users.role',
          'users.status',
          'psa_members.member',
          'psa_members.updated_at',
          'psa_members.updated_by_name',
        ])
        .orderBy('users.email')
        .execute(),
    async upsertMember(exec: Executor, row: PsaMembersTable): Promise<void> {
      const { user_id: _id, ...patch } = row;
      await exec
        .insertInto('psa_members')
        .values(row)
        .onConflict((oc) => oc.column('user_id').doUpdateSet(patch))
        .execute();
    },
    async removeMember(exec: Executor, userId: string): Promise<void> {
      await exec.deleteFrom('psa_members').where('user_id', '=', userId).execute();
    },
  };
}
export type PsaRepo = ReturnType<typeof createPsaRepo>;
