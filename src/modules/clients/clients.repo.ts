import type { Executor } from '../../db/database.js';
import type { ClientsTable } from '../../db/schema.js';
import { inClientScope, isId, type ClientScope } from '../../db/scope.js';

export const clientNameKey = (name: string) => name.trim().toLowerCase();

export function createClientsRepo() {
  return {
    async insert(exec: Executor, row: ClientsTable): Promise<void> {
      await exec.insertInto('clients').values(row).execute();
    },
    findByNameKey(exec: Executor, nameKey: string, clients: readonly string[] | null) {
      let q = exec.selectFrom('clients').selectAll().where('name_key', '=', nameKey);
      if (clients) q = clients.length ? q.where('id', 'in', clients as string[]) : q.where((eb) => eb.val(false));
      return q.executeTakeFirst();
    },
    findById(exec: Executor, id: string, clients: readonly string[] | null) {
      let q = exec.selectFrom('clients').selectAll().where('id', '=', id);
      if (clients) q = clients.length ? q.where('id', 'in', clients as string[]) : q.where((eb) => eb.val(false));
      return q.executeTakeFirst();
    },
    /**
     * The one "visible client" lookup: the client with this id when the scope includes it and it
     * is not archived; undefined otherwise (callers answer 404, the same as for a missing id).
     */
    findVisible(exec: Executor, id: string, scope: ClientScope) {
      if (!isId(id)) return Promise.resolve(undefined);
      return inClientScope(exec.selectFrom('clients').selectAll().where('id', '=', id.toLowerCase()).where('archived_at', 'is', null), 'id', scope).executeTakeFirst();
    },
    async update(exec: Executor, id: string, patch: Partial<Pick<ClientsTable, 'name' | 'name_key' | 'viewer_can_reveal' | 'archived_at' | 'updated_at'>>) {
      await exec.updateTable('clients').set(patch).where('id', '=', id).execute();
    },
    /** Clients with device and key counts, in name order. */
    list(exec: Executor, clients: readonly string[] | null) {
      let q = exec
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
      if (clients) q = clients.length ? q.where('c.id', 'in', clients as string[]) : q.where((eb) => eb.val(false));
      return q.orderBy('c.name_key').execute();
    },
  };
}
export type ClientsRepo = ReturnType<typeof createClientsRepo>;
