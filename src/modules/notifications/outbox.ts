import type { Executor } from '../../db/database.js';
import type { Clock } from '../../lib/clock.js';
import { newId } from '../../lib/ids.js';
import { NOTIFICATION_EVENT_TYPES, type NotificationEvent, type Notifier } from './notifier.js';
import { createOutboxRepo, type OutboxRepo } from './outbox.repo.js';

const MAX_SUBJECT = 500;
const MAX_DETAILS = 16_000;

/**
 * The producers' side: one row in notification_outbox, inside the producer's transaction, and
 * nothing else (no rule lookup, no network). Routing, digests and sending happen later in the
 * delivery worker, so a check-in or a reveal never waits for a mail server.
 */
export function createOutboxNotifier({ clock, repo = createOutboxRepo() }: { clock: Clock; repo?: Pick<OutboxRepo, 'insert'> }): Notifier {
  return {
    async emit(tx: Executor, event: NotificationEvent): Promise<void> {
      if (!(NOTIFICATION_EVENT_TYPES as readonly string[]).includes(event.type)) throw new Error(`Unknown notification event type ${String(event.type)}`);
      let details = JSON.stringify(event.details ?? {});
      if (details.length > MAX_DETAILS) details = JSON.stringify({ note: 'details too long to keep' });
      const occurred = Number.isNaN(Date.parse(event.occurredAt)) ? clock.now() : new Date(event.occurredAt).toISOString();
      await repo.insert(tx, {
        id: newId(),
        client_id: event.clientId,
        event_type: event.type,
        device_id: event.deviceId ?? null,
        subject: event.subject.slice(0, MAX_SUBJECT),
        details,
        dedup_key: event.dedupKey?.slice(0, 300) ?? null,
        occurred_at: occurred,
        created_at: clock.now(),
        state: 'new',
        routed_at: null,
      });
    },
  };
}
