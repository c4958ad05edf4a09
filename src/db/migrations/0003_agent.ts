import type { Kysely } from 'kysely';

/**
 * The endpoint agent: enrollment tokens, device credentials, what devices report (facts, volume
 * state history, BitLocker events), what the server concludes (findings) and the work it hands
 * devices (jobs). Plus the per-client "rotate after disclosure" switch.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('enrollment_tokens')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('client_id', 'text', (c) => c.notNull().references('clients.id'))
    .addColumn('token_hash', 'text', (c) => c.notNull().unique())
    .addColumn('token_prefix', 'text', (c) => c.notNull())
    .addColumn('created_by', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('expires_at', 'text', (c) => c.notNull())
    .addColumn('max_uses', 'integer')
    .addColumn('uses', 'integer', (c) => c.notNull())
    .addColumn('revoked_at', 'text')
    .execute();

  await db.schema
    .createTable('agent_credentials')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('client_id', 'text', (c) => c.notNull().references('clients.id'))
    .addColumn('device_id', 'text', (c) => c.notNull().references('devices.id'))
    .addColumn('credential_hash', 'text', (c) => c.notNull().unique())
    /** Base64 salt the agent keys its password fingerprints with (not secret on its own). */
    .addColumn('fingerprint_salt', 'text', (c) => c.notNull())
    /** Highest request sequence number seen: a body with a lower or equal one is a replay. */
    .addColumn('last_seq', 'integer', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('last_used_at', 'text')
    .addColumn('revoked_at', 'text')
    .execute();
  await db.schema.createIndex('agent_credentials_device_idx').on('agent_credentials').columns(['device_id']).execute();

  // Facts the agent reports about the machine, as JSON, and when it last checked in.
  await db.schema.alterTable('devices').addColumn('facts', 'text').execute();
  await db.schema.alterTable('devices').addColumn('smbios_uuid', 'text').execute();
  await db.schema.alterTable('devices').addColumn('last_checkin_at', 'text').execute();

  // Current BitLocker state of each volume; its history goes to volume_states on change.
  for (const col of ['volume_status', 'protection_status', 'lock_status', 'encryption_method', 'protectors']) {
    await db.schema.alterTable('volumes').addColumn(col, 'text').execute();
  }
  await db.schema.alterTable('volumes').addColumn('encryption_percentage', 'integer').execute();

  await db.schema
    .createTable('volume_states')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('client_id', 'text', (c) => c.notNull().references('clients.id'))
    .addColumn('volume_id', 'text', (c) => c.notNull().references('volumes.id'))
    .addColumn('recorded_at', 'text', (c) => c.notNull())
    .addColumn('volume_status', 'text')
    .addColumn('protection_status', 'text')
    .addColumn('lock_status', 'text')
    .addColumn('encryption_method', 'text')
    .addColumn('encryption_percentage', 'integer')
    .addColumn('protectors', 'text')
    .execute();
  await db.schema.createIndex('volume_states_volume_idx').on('volume_states').columns(['volume_id', 'recorded_at']).execute();

  /** The protector id each recovery key has on its device, and the agent's fingerprint of it. */
  await db.schema
    .createTable('key_agent_fingerprints')
    .addColumn('recovery_key_id', 'text', (c) => c.notNull().references('recovery_keys.id'))
    .addColumn('device_id', 'text', (c) => c.notNull().references('devices.id'))
    .addColumn('client_id', 'text', (c) => c.notNull().references('clients.id'))
    .addColumn('fingerprint', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('key_agent_fingerprints_pk', ['recovery_key_id', 'device_id'])
    .execute();

  await db.schema
    .createTable('device_events')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('client_id', 'text', (c) => c.notNull().references('clients.id'))
    .addColumn('device_id', 'text', (c) => c.notNull().references('devices.id'))
    .addColumn('event_id', 'integer', (c) => c.notNull())
    .addColumn('occurred_at', 'text', (c) => c.notNull())
    .addColumn('protector_id', 'text')
    .addColumn('mount_point', 'text')
    .addColumn('received_at', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('device_events_device_idx').on('device_events').columns(['device_id', 'occurred_at']).execute();

  await db.schema
    .createTable('findings')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('client_id', 'text', (c) => c.notNull().references('clients.id'))
    .addColumn('device_id', 'text', (c) => c.notNull().references('devices.id'))
    .addColumn('volume_id', 'text', (c) => c.references('volumes.id'))
    .addColumn('recovery_key_id', 'text', (c) => c.references('recovery_keys.id'))
    /** unescrowed_key | mismatch | no_recovery_password */
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('protector_id', 'text')
    .addColumn('detail', 'text', (c) => c.notNull())
    .addColumn('opened_at', 'text', (c) => c.notNull())
    .addColumn('resolved_at', 'text')
    .execute();
  await db.schema.createIndex('findings_device_idx').on('findings').columns(['device_id', 'resolved_at']).execute();
  await db.schema.createIndex('findings_client_idx').on('findings').columns(['client_id', 'resolved_at']).execute();

  await db.schema
    .createTable('jobs')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('client_id', 'text', (c) => c.notNull().references('clients.id'))
    .addColumn('device_id', 'text', (c) => c.notNull().references('devices.id'))
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('mount_point', 'text')
    .addColumn('protector_id', 'text')
    .addColumn('recovery_key_id', 'text', (c) => c.references('recovery_keys.id'))
    /** pending | sent | awaiting_removal | succeeded | failed | expired | cancelled */
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('attempts', 'integer', (c) => c.notNull())
    .addColumn('max_attempts', 'integer', (c) => c.notNull())
    .addColumn('new_key_id', 'text')
    .addColumn('detail', 'text')
    .addColumn('created_by', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('expires_at', 'text', (c) => c.notNull())
    .addColumn('sent_at', 'text')
    .addColumn('finished_at', 'text')
    .execute();
  await db.schema.createIndex('jobs_device_idx').on('jobs').columns(['device_id', 'state']).execute();

  await db.schema
    .alterTable('clients')
    .addColumn('rotate_after_disclosure', 'integer', (c) => c.notNull().defaultTo(1))
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('clients').dropColumn('rotate_after_disclosure').execute();
  for (const t of ['jobs', 'findings', 'device_events', 'key_agent_fingerprints', 'volume_states']) await db.schema.dropTable(t).execute();
  await db.schema.alterTable('volumes').dropColumn('encryption_percentage').execute();
  for (const col of ['protectors', 'encryption_method', 'lock_status', 'protection_status', 'volume_status']) {
    await db.schema.alterTable('volumes').dropColumn(col).execute();
  }
  for (const col of ['last_checkin_at', 'smbios_uuid', 'facts']) await db.schema.alterTable('devices').dropColumn(col).execute();
  await db.schema.dropTable('agent_credentials').execute();
  await db.schema.dropTable('enrollment_tokens').execute();
}
