import type { Kysely } from 'kysely';

/**
 * Microsoft Entra ID (Graph) connections per client, their sync runs, a database-backed task
 * schedule (leases, so several server processes never run one task twice at once), and
 * "removed at source" on key sources.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('graph_connections')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('client_id', 'text', (c) => c.notNull().unique().references('clients.id'))
    .addColumn('tenant_id', 'text', (c) => c.notNull())
    .addColumn('app_client_id', 'text', (c) => c.notNull())
    /** The app's client secret, sealed with the client's data key (AAD names this connection). */
    .addColumn('secret_ciphertext', 'text', (c) => c.notNull())
    .addColumn('secret_data_key_version', 'integer', (c) => c.notNull())
    .addColumn('login_url', 'text', (c) => c.notNull())
    .addColumn('graph_url', 'text', (c) => c.notNull())
    .addColumn('sync_interval_minutes', 'integer', (c) => c.notNull())
    .addColumn('enabled', 'integer', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .addColumn('last_sync_at', 'text')
    .addColumn('last_status', 'text')
    .addColumn('last_error', 'text')
    .addColumn('audit_cursor', 'text')
    .execute();

  await db.schema
    .createTable('sync_runs')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('client_id', 'text', (c) => c.notNull().references('clients.id'))
    .addColumn('connection_id', 'text', (c) => c.notNull().references('graph_connections.id'))
    .addColumn('started_at', 'text', (c) => c.notNull())
    .addColumn('finished_at', 'text')
    /** running | succeeded | failed */
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('keys_listed', 'integer', (c) => c.notNull())
    .addColumn('new_keys', 'integer', (c) => c.notNull())
    .addColumn('new_devices', 'integer', (c) => c.notNull())
    .addColumn('unchanged', 'integer', (c) => c.notNull())
    .addColumn('removed', 'integer', (c) => c.notNull())
    .addColumn('key_reads', 'integer', (c) => c.notNull())
    .addColumn('errors', 'integer', (c) => c.notNull())
    .addColumn('error_text', 'text')
    .addColumn('duration_ms', 'integer')
    .execute();
  await db.schema.createIndex('sync_runs_connection_idx').on('sync_runs').columns(['connection_id', 'started_at']).execute();

  /** Recurring and one-off work, leased by one process at a time. */
  await db.schema
    .createTable('scheduled_tasks')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('client_id', 'text', (c) => c.references('clients.id'))
    .addColumn('target_id', 'text')
    .addColumn('next_run_at', 'text', (c) => c.notNull())
    .addColumn('interval_minutes', 'integer')
    .addColumn('locked_by', 'text')
    .addColumn('locked_until', 'text')
    .addColumn('last_run_at', 'text')
    .addColumn('last_status', 'text')
    .execute();
  await db.schema.createIndex('scheduled_tasks_due_idx').on('scheduled_tasks').columns(['next_run_at']).execute();

  await db.schema.alterTable('key_sources').addColumn('removed_at', 'text').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('key_sources').dropColumn('removed_at').execute();
  await db.schema.dropTable('scheduled_tasks').execute();
  await db.schema.dropTable('sync_runs').execute();
  await db.schema.dropTable('graph_connections').execute();
}
