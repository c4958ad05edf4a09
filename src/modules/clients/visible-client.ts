import type { Executor } from '../../db/database.js';
import { notFound } from '../../lib/errors.js';
import { clientScope, requirePermission, type Actor, type Permission } from '../authz/authz.js';
import { createClientsRepo } from './clients.repo.js';

const repo = createClientsRepo();

/**
 * The client an actor names, when the actor holds `permission` for it and the client is visible
 * (inside the actor's scope, not archived); otherwise "not found", exactly like an id that does not
 * exist, so a client-limited principal cannot learn that another client exists.
 */
export async function requireVisibleClient(exec: Executor, actor: Actor, clientId: string, permission: Permission = 'client:read') {
  requirePermission(actor, permission);
  const row = await repo.findVisible(exec, clientId, clientScope(actor));
  if (!row) throw notFound(`No client with id ${clientId.slice(0, 60)}.`);
  return row;
}
