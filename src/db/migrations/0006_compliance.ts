import type { Kysely } from 'kysely';

/**
 * Compliance: policies (an MSP-wide default plus per-client overrides), per-device
 * exemptions, each device's current status with its findings, and the status history that answers
 * "since when". Rows that belong to a device go with it (ON DELETE CASCADE).
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('compliance_policies')
    /** 'default' for the MSP-wide policy, otherwise the client id. */
    .addColumn('scope', 'text', (c) => c.primaryKey())
    .addColumn('client_id', 'text', (c) => c.references('clients.id').onDelete('cascade'))
    /** JSON object of the fields set at this level; absent fields are inherited. */
    .addColumn('settings', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .addColumn('updated_by', 'text', (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('compliance_exemptions')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('client_id', 'text', (c) => c.notNull().references('clients.id').onDelete('cascade'))
    .addColumn('device_id', 'text', (c) => c.notNull().references('devices.id').onDelete('cascade'))
    .addColumn('reason', 'text', (c) => c.notNull())
    /** null: until revoked. */
    .addColumn('expires_at', 'text')
    .addColumn('created_by', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('revoked_at', 'text')
    .addColumn('revoked_by', 'text')
    .execute();
  await db.schema.createIndex('compliance_exemptions_device_idx').on('compliance_exemptions').columns(['client_id', 'device_id']).execute();

  await db.schema
    .createTable('device_compliance')
    .addColumn('device_id', 'text', (c) => c.primaryKey().references('devices.id').onDelete('cascade'))
    .addColumn('client_id', 'text', (c) => c.notNull().references('clients.id').onDelete('cascade'))
    /** compliant | non-compliant | exempt | unknown */
    .addColumn('status', 'text', (c) => c.notNull())
    /** JSON list of findings (code, volume, protector id, plain text); never a secret. */
    .addColumn('findings', 'text', (c) => c.notNull())
    /** Sorted finding keys: a change of status or findings is a change of this text. */
    .addColumn('signature', 'text', (c) => c.notNull())
    /** When the current status began. */
    .addColumn('status_since', 'text', (c) => c.notNull())
    /** When status or findings last changed. */
    .addColumn('changed_at', 'text', (c) => c.notNull())
    .addColumn('evaluated_at', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('device_compliance_client_idx').on('device_compliance').columns(['client_id', 'status']).execute();

  await db.schema
    .createTable('compliance_history')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('client_id', 'text', (c) => c.notNull().references('clients.id').onDelete('cascade'))
    .addColumn('device_id', 'text', (c) => c.notNull().references('devices.id').onDelete('cascade'))
    .addColumn('recorded_at', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    /** null for a device's first evaluation: the trend adds one to status and takes one from previous. */
    .addColumn('previous_status', 'text')
    /** JSON list of finding codes at that moment. */
    .addColumn('codes', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('compliance_history_client_idx').on('compliance_history').columns(['client_id', 'recorded_at']).execute();
  await db.schema.createIndex('compliance_history_device_idx').on('compliance_history').columns(['device_id', 'recorded_at']).execute();
  await db.schema.createIndex('device_compliance_client_device_idx').on('device_compliance').columns(['client_id', 'device_id']).execute();

  // Evaluation reads batches of devices of one client (client_id = ? AND device_id IN (…)) and
  // reports page through a client's devices by name. Without these, SQLite's planner (no ANALYZE
  // statistics) takes the client-only index and scans every device of the client per batch.
  for (const [name, table, columns] of INDEXES) await db.schema.createIndex(name).on(table).columns(columns).execute();
}

const INDEXES: [string, string, string[]][] = [
  ['devices_client_id_idx', 'devices', ['client_id', 'id']],
  ['devices_client_name_id_idx', 'devices', ['client_id', 'name_key', 'id']],
  ['recovery_keys_client_device_idx', 'recovery_keys', ['client_id', 'device_id']],
  ['findings_client_device_idx', 'findings', ['client_id', 'device_id', 'kind']],
  ['device_events_client_event_idx', 'device_events', ['client_id', 'event_id', 'occurred_at']],
];

export async function down(db: Kysely<any>): Promise<void> {
  for (const [name] of INDEXES) await db.schema.dropIndex(name).execute();
  await db.schema.dropTable('compliance_history').execute();
  await db.schema.dropTable('device_compliance').execute();
  await db.schema.dropTable('compliance_exemptions').execute();
  await db.schema.dropTable('compliance_policies').execute();
}
