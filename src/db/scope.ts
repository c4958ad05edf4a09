import { sql } from 'kysely';

/**
 * The one tenancy primitive. A client scope is the list of client ids an actor may see, or null
 * for "all clients" (`clientScope(actor)` in src/modules/authz). Every query that reads or writes
 * client-owned rows on an actor's behalf applies it here, so no copy of the rule can drift:
 * an empty scope matches nothing, never everything.
 */
export type ClientScope = readonly string[] | null;

/** The UUID shape of every id Keywarden issues (case-insensitive; ids are stored in lower case). */
export const ID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** True when `id` has the shape of an id Keywarden issued (an id of any other shape is simply not found). */
export const isId = (id: string): boolean => ID_PATTERN.test(id);

/**
 * Restricts a query to the rows whose `column` (a client id column, e.g. 'client_id' or 'd.client_id')
 * is inside the scope. Works on select, update and delete builders.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- any Kysely builder with a where clause
export function inClientScope<QB extends { where: (...args: any[]) => any }>(qb: QB, column: string, scope: ClientScope): QB {
  if (scope === null) return qb;
  return (scope.length ? qb.where(sql.ref(column), 'in', [...scope]) : qb.where(sql<boolean>`1 = 0`)) as QB;
}

/** True when the scope includes this client. */
export function scopeIncludes(scope: ClientScope, clientId: string): boolean {
  return scope === null || scope.includes(clientId);
}
