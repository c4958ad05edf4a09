import type { Kysely } from 'kysely';

/**
 * The first schema. Written only with Kysely's schema builder and portable types (text,
 * integer) so the same migration runs up and down on SQLite and PostgreSQL.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('master_keys')
    .addColumn('version', 'integer', (c) => c.primaryKey())
    .addColumn('key_id', 'text', (c) => c.notNull())
    .addColumn('verifier', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('retired_at', 'text')
    .execute();

  await db.schema
    .createTable('data_keys')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('purpose', 'text', (c) => c.notNull())
    .addColumn('scope', 'text', (c) => c.notNull())
    .addColumn('version', 'integer', (c) => c.notNull())
    .addColumn('kek_version', 'integer', (c) => c.notNull().references('master_keys.version'))
    .addColumn('wrapped_key', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('retired_at', 'text')
    .addUniqueConstraint('data_keys_purpose_scope_version_uq', ['purpose', 'scope', 'version'])
    .execute();

  await db.schema
    .createTable('clients')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('name_key', 'text', (c) => c.notNull().unique())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .addColumn('archived_at', 'text')
    .execute();

  await db.schema
    .createTable('devices')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('client_id', 'text', (c) => c.notNull().references('clients.id'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('name_key', 'text', (c) => c.notNull())
    .addColumn('domain', 'text')
    .addColumn('serial', 'text')
    .addColumn('entra_device_id', 'text')
    .addColumn('ad_object_guid', 'text')
    .addColumn('ad_dn', 'text')
    .addColumn('agent_id', 'text')
    .addColumn('primary_user', 'text')
    .addColumn('first_seen_at', 'text', (c) => c.notNull())
    .addColumn('last_seen_at', 'text', (c) => c.notNull())
    .addColumn('retired_at', 'text')
    .addColumn('created_at', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('devices_client_name_idx').on('devices').columns(['client_id', 'name_key']).execute();
  await db.schema.createIndex('devices_entra_idx').on('devices').columns(['entra_device_id']).execute();
  await db.schema.createIndex('devices_serial_idx').on('devices').columns(['serial']).execute();

  await db.schema
    .createTable('volumes')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('client_id', 'text', (c) => c.notNull().references('clients.id'))
    .addColumn('device_id', 'text', (c) => c.notNull().references('devices.id'))
    .addColumn('mount_point', 'text')
    .addColumn('volume_type', 'text', (c) => c.notNull())
    .addColumn('volume_guid', 'text')
    .addColumn('encryption_state', 'text')
    .addColumn('last_reported_at', 'text')
    .addColumn('created_at', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('volumes_device_idx').on('volumes').columns(['device_id']).execute();

  await db.schema
    .createTable('recovery_keys')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('client_id', 'text', (c) => c.notNull().references('clients.id'))
    .addColumn('device_id', 'text', (c) => c.references('devices.id'))
    .addColumn('volume_id', 'text', (c) => c.references('volumes.id'))
    .addColumn('key_id', 'text')
    .addColumn('ciphertext', 'text', (c) => c.notNull())
    .addColumn('data_key_version', 'integer', (c) => c.notNull())
    .addColumn('fingerprint', 'text', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('source_created_at', 'text')
    .addColumn('first_seen_at', 'text', (c) => c.notNull())
    .addColumn('last_seen_at', 'text', (c) => c.notNull())
    .addColumn('state_changed_at', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .execute();
  // key_id alone: the helpdesk prefix search spans the clients a technician may see.
  await db.schema.createIndex('recovery_keys_key_id_idx').on('recovery_keys').columns(['key_id']).execute();
  await db.schema.createIndex('recovery_keys_client_key_idx').on('recovery_keys').columns(['client_id', 'key_id']).execute();
  await db.schema.createIndex('recovery_keys_client_fp_idx').on('recovery_keys').columns(['client_id', 'fingerprint']).execute();
  await db.schema.createIndex('recovery_keys_device_idx').on('recovery_keys').columns(['device_id']).execute();

  await db.schema
    .createTable('key_sources')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('client_id', 'text', (c) => c.notNull().references('clients.id'))
    .addColumn('recovery_key_id', 'text', (c) => c.notNull().references('recovery_keys.id'))
    .addColumn('source_type', 'text', (c) => c.notNull())
    .addColumn('source_ref', 'text', (c) => c.notNull())
    .addColumn('source_created_at', 'text')
    .addColumn('first_seen_at', 'text', (c) => c.notNull())
    .addColumn('last_seen_at', 'text', (c) => c.notNull())
    .addUniqueConstraint('key_sources_key_type_ref_uq', ['recovery_key_id', 'source_type', 'source_ref'])
    .execute();

  await db.schema
    .createTable('audit_events')
    .addColumn('seq', 'integer', (c) => c.primaryKey())
    .addColumn('id', 'text', (c) => c.notNull().unique())
    .addColumn('occurred_at', 'text', (c) => c.notNull())
    .addColumn('actor_type', 'text', (c) => c.notNull())
    .addColumn('actor_id', 'text', (c) => c.notNull())
    .addColumn('actor_name', 'text', (c) => c.notNull())
    .addColumn('action', 'text', (c) => c.notNull())
    .addColumn('client_id', 'text')
    .addColumn('target_type', 'text')
    .addColumn('target_id', 'text')
    .addColumn('reason_code', 'text')
    .addColumn('ticket', 'text')
    .addColumn('outcome', 'text', (c) => c.notNull())
    .addColumn('ip', 'text')
    .addColumn('user_agent', 'text')
    .addColumn('details', 'text')
    .addColumn('prev_hash', 'text', (c) => c.notNull())
    .addColumn('hash', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('audit_events_client_idx').on('audit_events').columns(['client_id', 'seq']).execute();
  await db.schema.createIndex('audit_events_target_idx').on('audit_events').columns(['target_id']).execute();

  // One row that holds the chain's tip. Appending locks it (FOR UPDATE on PostgreSQL), so two
  // processes cannot both extend the chain from the same previous hash; it also lets verify
  // notice when the newest rows were deleted.
  await db.schema
    .createTable('audit_head')
    .addColumn('id', 'integer', (c) => c.primaryKey())
    .addColumn('seq', 'integer', (c) => c.notNull())
    .addColumn('hash', 'text', (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of ['audit_head', 'audit_events', 'key_sources', 'recovery_keys', 'volumes', 'devices', 'clients', 'data_keys', 'master_keys']) {
    await db.schema.dropTable(table).execute();
  }
}
