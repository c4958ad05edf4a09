import type { Executor } from '../../db/database.js';
import type { ClientsTable } from '../../db/schema.js';
import { inClientScope, isId, type ClientScope } from '../../db/scope.js';

export const clientNameKey = (name: string) => name.trim().toLowerCase();

export function createClientsRepo() {
  return {
    async insert(exec: Executor, row: ClientsTable): Promise<void> {
      await exec.insertInto('clients').values(row).execute();
    },
    findByNameKey(exec: Executor, nameKey: string, clients: ClientScope) {
      return inClientScope(exec.selectFrom('clients').selectAll().where('name_key', '=', nameKey), 'id', clients).executeTakeFirst();
    },
    findById(exec: Executor, id: string, clients: ClientScope) {
      return inClientScope(exec.selectFrom('clients').selectAll().where('id', '=', id), 'id', clients).executeTakeFirst();
    },
    /**
     * The one "visible client" lookup: the client with this id when the scope includes it and it
     * is not archived; undefined otherwise (callers answer 404, the same as for a missing id).
     */
    findVisible(exec: Executor, id: string, scope: ClientScope) {
      if (!isId(id)) return Promise.resolve(undefined);
      return inClientScope(
        exec.selectFrom('clients').selectAll().where('id', '=', id.toLowerCase()).where('archived_at', 'is', null),
        'id',
        scope,
      ).executeTakeFirst();
    },
    async update(exec: Executor, id: string, patch: Partial<Pick<ClientsTable, 'name' | 'name_key' | 'viewer_can_reveal' | 'archived_at' | 'updated_at'>>) {
      await exec.updateTable('clients').set(patch).where('id', '=', id).execute();
    },
    /** Clients with device and key counts, in name order. */
    /** Every client's id and name, archived ones included (new names are compared with them all). */
    allNames: (exec: Executor) => exec.selectFrom('clients').select(['id', 'name']).execute(),
    list(exec: Executor, clients: ClientScope) {
      const q = exec
        .selectFrom('clients as c')
        .select((eb) => [
          'c.id',
          'c.name',
          'c.created_at',
          'c.viewer_can_reveal',
          eb.selectFrom('devices as d').whereRef('d.client_id', '=', 'c.id').select(eb.fn.countAll<number>().as('n')).as('devices'),
          eb.selectFrom('recovery_keys as k').whereRef('k.client_id', '=', 'c.id').select(eb.fn.countAll<number>().as('n')).as('keys'),
        ])
        .where('c.archived_at', 'is', null);
      return inClientScope(q, 'c.id', clients).orderBy('c.name_key').execute();
    },
    /** Whether a disclosed key of this client should be rotated (the client's setting, on by default). */
    rotatesAfterDisclosure: async (exec: Executor, clientId: string) =>
      (await exec.selectFrom('clients').select('rotate_after_disclosure').where('id', '=', clientId).executeTakeFirst())?.rotate_after_disclosure === 1,
    /** Visible (not archived) clients in name order, with their per-client security switches. */
    listSecurity(exec: Executor, scope: ClientScope) {
      const q = exec.selectFrom('clients').select(['id', 'name', 'rotate_after_disclosure', 'viewer_can_reveal']).where('archived_at', 'is', null);
      return inClientScope(q, 'id', scope).orderBy('name_key').execute();
    },
    /** Visible (not archived) clients in name order: id and name only. */
    listVisible(exec: Executor, scope: ClientScope) {
      return inClientScope(exec.selectFrom('clients').select(['id', 'name']).where('archived_at', 'is', null), 'id', scope)
        .orderBy('name_key')
        .execute();
    },
    async setRotateAfterDisclosure(exec: Executor, id: string, on: boolean, now: string): Promise<void> {
      await exec
        .updateTable('clients')
        .set({ rotate_after_disclosure: on ? 1 : 0, updated_at: now })
        .where('id', '=', id)
        .execute();
    },
    /** Retention, legal hold and offboarding fields (the lifecycle module's changes to a client). */
    async setLifecycle(
      exec: Executor,
      id: string,
      patch: Partial<Pick<ClientsTable, 'retention_days' | 'legal_hold_at' | 'legal_hold_reason' | 'legal_hold_by' | 'offboarded_at' | 'offboarded_by'>> & {
        updated_at: string;
      },
    ): Promise<void> {
      await exec.updateTable('clients').set(patch).where('id', '=', id).execute();
    },
  };
}
export type ClientsRepo = ReturnType<typeof createClientsRepo>;
