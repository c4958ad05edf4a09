import type { Executor } from '../../db/database.js';
import { forbidden } from '../../lib/errors.js';
import { can, requirePermission, type Actor } from '../authz/authz.js';
import { requireVisibleClient } from '../clients/visible-client.js';

/** Notification settings are seen by whoever manages the client or reads its audit trail. */
export function mayRead(actor: Actor, clientId?: string | null): void {
  if (!can(actor, 'client:manage', clientId) && !can(actor, 'audit:read', clientId)) throw forbidden('You are not allowed to see notification settings.');
}

/**
 * Permission first, then visibility: another client's id is "not found", like a missing one.
 * MSP-wide settings (client null) belong to principals over all clients.
 */
export async function mayManage(exec: Executor, actor: Actor, clientId: string | null): Promise<string | null> {
  requirePermission(actor, 'client:manage');
  if (clientId === null) {
    if (actor.clients !== 'all') throw forbidden('Only an owner or admin over all clients can manage MSP-wide notifications.');
    return null;
  }
  return (await requireVisibleClient(exec, actor, clientId, 'client:manage')).id;
}
