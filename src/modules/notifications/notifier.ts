import type { Executor } from '../../db/database.js';

/**
 * The contract between the modules that notice things (compliance, agent, keys, sync, audit) and
 * the notifications module that tells people. A producer calls `emit` inside the same transaction
 * as the change it reports, so a notification exists exactly when the change committed (outbox).
 *
 * An event never carries a recovery password, key material, token or secret: subject and details
 * are shown verbatim in emails, webhooks and chat messages.
 */
export const NOTIFICATION_EVENT_TYPES = [
  'device.noncompliant',
  'device.compliant',
  'device.encryption_off',
  'device.protection_suspended',
  'device.stale',
  'device.recovery_boot',
  'key.unescrowed',
  'key.mismatch',
  'key.revealed',
  'key.rotated',
  'key.rotation_failed',
  'sync.failed',
  'audit.chain_broken',
  'key.reveal_requested',
  'key.break_glass',
  'key.self_service_reveal',
  'graph.consent_lost',
  'graph.certificate_expiring',
  'psa.note_failed',
  'psa.ticket_sync_failed',
] as const;
export type NotificationEventType = (typeof NOTIFICATION_EVENT_TYPES)[number];

export type NotificationEvent = {
  type: NotificationEventType;
  /** null for MSP-wide events (audit chain broken). */
  clientId: string | null;
  deviceId?: string | null;
  /** One line in product words, e.g. "LAPTOP-042 (Contoso) is no longer compliant". */
  subject: string;
  /** Plain facts for the message body and the webhook payload; never secrets. */
  details: Record<string, string | number | boolean | null | string[]>;
  /** Same key within the dedup window = one notification (e.g. `${type}:${deviceId}:${findingCode}`). */
  dedupKey?: string;
  /** ISO-8601 time of the change (the service clock). */
  occurredAt: string;
};

export interface Notifier {
  emit(tx: Executor, event: NotificationEvent): Promise<void>;
}

/** For tests and for producers wired before the notifications module exists. */
export const nullNotifier: Notifier = { emit: async () => {} };
