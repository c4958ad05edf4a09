import type { Executor } from '../../db/database.js';
import { createClientsRepo } from '../clients/clients.repo.js';
import type { Notifier } from '../notifications/notifier.js';

const clients = createClientsRepo();

/**
 * The sync.failed notification of a directory sync (Entra ID, Active Directory), written in the
 * transaction that records the failed run. One per connection within the dedup window.
 */
export async function notifySyncFailed(
  exec: Executor,
  notifier: Notifier,
  sync: {
    source: 'Entra ID' | 'Active Directory';
    dedupKind: 'graph' | 'ad';
    clientId: string;
    connectionId: string;
    occurredAt: string;
    details: Record<string, string | null>;
  },
): Promise<void> {
  const client = await clients.findById(exec, sync.clientId, null);
  await notifier.emit(exec, {
    type: 'sync.failed',
    clientId: sync.clientId,
    subject: `The ${sync.source} sync of ${client?.name ?? 'a client'} failed`,
    details: { source: sync.source, ...sync.details },
    dedupKey: `sync.failed:${sync.dedupKind}:${sync.connectionId}`,
    occurredAt: sync.occurredAt,
  });
}
