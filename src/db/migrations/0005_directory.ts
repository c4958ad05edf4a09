import type { Kysely } from 'kysely';

/**
 * On-premises Active Directory: one LDAP connection per client (password sealed with the client's
 * data key), and its sync runs. The highest USN seen on a given domain controller makes the next
 * sync incremental.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('directory_connections')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('client_id', 'text', (c) => c.notNull().unique().references('clients.id'))
    /** JSON list of host names, tried in order (failover). */
    .addColumn('hosts', 'text', (c) => c.notNull())
    .addColumn('port', 'integer', (c) => c.notNull())
    /** ldaps | starttls */
    .addColumn('tls_mode', 'text', (c) => c.notNull())
    .addColumn('ca_cert', 'text')
    .addColumn('pinned_sha256', 'text')
    /** 1 only when an admin explicitly chose to accept any certificate (audited). */
    .addColumn('allow_untrusted', 'integer', (c) => c.notNull())
    .addColumn('bind_dn', 'text', (c) => c.notNull())
    .addColumn('password_ciphertext', 'text', (c) => c.notNull())
    .addColumn('password_data_key_version', 'integer', (c) => c.notNull())
    /** JSON list of base DNs to search (an OU per client is common for MSPs). */
    .addColumn('base_dns', 'text', (c) => c.notNull())
    .addColumn('sync_interval_minutes', 'integer', (c) => c.notNull())
    .addColumn('enabled', 'integer', (c) => c.notNull())
    .addColumn('last_dc', 'text')
    .addColumn('last_usn', 'text')
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .addColumn('last_sync_at', 'text')
    .addColumn('last_status', 'text')
    .addColumn('last_error', 'text')
    .execute();

  await db.schema
    .createTable('directory_sync_runs')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('client_id', 'text', (c) => c.notNull().references('clients.id'))
    .addColumn('connection_id', 'text', (c) => c.notNull().references('directory_connections.id'))
    .addColumn('started_at', 'text', (c) => c.notNull())
    .addColumn('finished_at', 'text')
    .addColumn('status', 'text', (c) => c.notNull())
    /** full | incremental */
    .addColumn('mode', 'text', (c) => c.notNull())
    .addColumn('dc', 'text')
    .addColumn('objects_read', 'integer', (c) => c.notNull())
    .addColumn('new_keys', 'integer', (c) => c.notNull())
    .addColumn('new_devices', 'integer', (c) => c.notNull())
    .addColumn('unchanged', 'integer', (c) => c.notNull())
    .addColumn('removed', 'integer', (c) => c.notNull())
    .addColumn('invalid', 'integer', (c) => c.notNull())
    .addColumn('error_text', 'text')
    .addColumn('duration_ms', 'integer')
    .execute();
  await db.schema.createIndex('directory_sync_runs_conn_idx').on('directory_sync_runs').columns(['connection_id', 'started_at']).execute();
  await db.schema.createIndex('devices_ad_guid_idx').on('devices').columns(['ad_object_guid']).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('devices_ad_guid_idx').execute();
  await db.schema.dropTable('directory_sync_runs').execute();
  await db.schema.dropTable('directory_connections').execute();
}
