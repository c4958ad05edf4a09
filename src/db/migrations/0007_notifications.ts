import type { Kysely } from 'kysely';

/**
 * Notifications: channels (email, signed webhook, Teams, Slack) and rules per client or
 * MSP-wide, the outbox that producers write inside their own transaction, the items waiting to be
 * sent (one per event × rule × channel, held for a digest), the deliveries (one message each) with
 * their attempt log, and scheduled report e-mails.
 *
 * Outbox, items, deliveries and attempts carry no foreign keys to clients or devices on purpose:
 * a producer's transaction must never fail because of the notification it writes, and the delivery
 * log outlives a removed channel (it keeps the channel's name).
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('notification_channels')
    .addColumn('id', 'text', (c) => c.primaryKey())
    /** null: MSP-wide (sealed with the global 'secrets' data key), otherwise the client's data key. */
    .addColumn('client_id', 'text', (c) => c.references('clients.id').onDelete('cascade'))
    .addColumn('name', 'text', (c) => c.notNull())
    /** 'email' | 'webhook' | 'teams' | 'slack' */
    .addColumn('kind', 'text', (c) => c.notNull())
    /** JSON of the non-secret settings (SMTP host, recipients, webhook URL…). */
    .addColumn('config', 'text', (c) => c.notNull())
    /** JSON of the secrets (SMTP password, signing secret, Teams/Slack URL), sealed. */
    .addColumn('secret_ciphertext', 'text')
    .addColumn('secret_data_key_version', 'integer')
    .addColumn('enabled', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('created_by', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('notification_channels_client').on('notification_channels').column('client_id').execute();

  await db.schema
    .createTable('notification_rules')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('client_id', 'text', (c) => c.references('clients.id').onDelete('cascade'))
    .addColumn('name', 'text', (c) => c.notNull())
    /** JSON list of event types. */
    .addColumn('event_types', 'text', (c) => c.notNull())
    /** 'none' | 'hourly' | 'daily' */
    .addColumn('digest', 'text', (c) => c.notNull())
    .addColumn('enabled', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('created_by', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('notification_rule_channels')
    .addColumn('rule_id', 'text', (c) => c.notNull().references('notification_rules.id').onDelete('cascade'))
    .addColumn('channel_id', 'text', (c) => c.notNull().references('notification_channels.id').onDelete('cascade'))
    .addPrimaryKeyConstraint('notification_rule_channels_pk', ['rule_id', 'channel_id'])
    .execute();
  await db.schema.createIndex('notification_rule_channels_channel').on('notification_rule_channels').column('channel_id').execute();

  await db.schema
    .createTable('notification_outbox')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('client_id', 'text')
    .addColumn('event_type', 'text', (c) => c.notNull())
    .addColumn('device_id', 'text')
    .addColumn('subject', 'text', (c) => c.notNull())
    .addColumn('details', 'text', (c) => c.notNull())
    .addColumn('dedup_key', 'text')
    .addColumn('occurred_at', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    /** 'new' | 'routed' | 'duplicate' | 'unmatched' */
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('routed_at', 'text')
    .execute();
  await db.schema.createIndex('notification_outbox_state').on('notification_outbox').columns(['state', 'created_at']).execute();
  await db.schema.createIndex('notification_outbox_dedup').on('notification_outbox').columns(['dedup_key', 'created_at']).execute();

  await db.schema
    .createTable('notification_items')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('outbox_id', 'text', (c) => c.notNull())
    .addColumn('rule_id', 'text', (c) => c.notNull())
    .addColumn('channel_id', 'text', (c) => c.notNull())
    .addColumn('client_id', 'text')
    /** When the item may be sent: at once (after a short gathering window) or at the digest hour. */
    .addColumn('due_at', 'text', (c) => c.notNull())
    .addColumn('delivery_id', 'text')
    .addColumn('created_at', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('notification_items_due').on('notification_items').columns(['delivery_id', 'due_at']).execute();

  await db.schema
    .createTable('notification_deliveries')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('channel_id', 'text', (c) => c.notNull())
    .addColumn('channel_name', 'text', (c) => c.notNull())
    .addColumn('channel_kind', 'text', (c) => c.notNull())
    .addColumn('client_id', 'text')
    .addColumn('rule_id', 'text')
    /** 'event' | 'digest' | 'test' | 'report' */
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('subject', 'text', (c) => c.notNull())
    /** JSON: the events of the message, or what a report e-mail renders. Never a secret. */
    .addColumn('payload', 'text', (c) => c.notNull())
    .addColumn('event_count', 'integer', (c) => c.notNull())
    /** 'pending' | 'sent' | 'failed' */
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('attempts', 'integer', (c) => c.notNull())
    .addColumn('max_attempts', 'integer', (c) => c.notNull())
    .addColumn('next_attempt_at', 'text')
    .addColumn('locked_by', 'text')
    .addColumn('locked_until', 'text')
    .addColumn('last_error', 'text')
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('sent_at', 'text')
    .execute();
  await db.schema.createIndex('notification_deliveries_due').on('notification_deliveries').columns(['status', 'next_attempt_at']).execute();
  await db.schema.createIndex('notification_deliveries_client').on('notification_deliveries').columns(['client_id', 'created_at']).execute();
  await db.schema.createIndex('notification_deliveries_channel').on('notification_deliveries').columns(['channel_id', 'created_at']).execute();

  await db.schema
    .createTable('notification_attempts')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('delivery_id', 'text', (c) => c.notNull().references('notification_deliveries.id').onDelete('cascade'))
    .addColumn('attempt', 'integer', (c) => c.notNull())
    .addColumn('at', 'text', (c) => c.notNull())
    /** 'sent' | 'failed' */
    .addColumn('outcome', 'text', (c) => c.notNull())
    /** HTTP status or SMTP reply code. */
    .addColumn('response_code', 'text')
    /** A short, secret-free summary of the answer ("250 queued", "HTTP 500"). */
    .addColumn('summary', 'text')
    .addColumn('error', 'text')
    .addColumn('duration_ms', 'integer', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('notification_attempts_delivery').on('notification_attempts').column('delivery_id').execute();

  await db.schema
    .createTable('report_schedules')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('client_id', 'text', (c) => c.notNull().references('clients.id').onDelete('cascade'))
    .addColumn('name', 'text', (c) => c.notNull())
    /** The e-mail channel whose SMTP settings send it. */
    .addColumn('channel_id', 'text', (c) => c.notNull().references('notification_channels.id').onDelete('cascade'))
    /** JSON list of addresses (the client's contacts). */
    .addColumn('recipients', 'text', (c) => c.notNull())
    /** JSON list of {report, format}. */
    .addColumn('reports', 'text', (c) => c.notNull())
    /** 'monthly' | 'weekly' | 'daily' */
    .addColumn('frequency', 'text', (c) => c.notNull())
    /** Day of month (1-28) for monthly, day of week (0 = Sunday) for weekly. */
    .addColumn('day', 'integer')
    .addColumn('hour', 'integer', (c) => c.notNull())
    .addColumn('minute', 'integer', (c) => c.notNull())
    .addColumn('enabled', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('next_run_at', 'text', (c) => c.notNull())
    .addColumn('last_run_at', 'text')
    .addColumn('last_delivery_id', 'text')
    .addColumn('created_by', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('report_schedules_due').on('report_schedules').columns(['enabled', 'next_run_at']).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const t of [
    'report_schedules',
    'notification_attempts',
    'notification_deliveries',
    'notification_items',
    'notification_outbox',
    'notification_rule_channels',
    'notification_rules',
    'notification_channels',
  ]) {
    await db.schema.dropTable(t).ifExists().execute();
  }
}
