import type { Kysely } from 'kysely';

/**
 * Lifecycle: retention and legal hold on clients and devices, destroyed key material,
 * client offboarding (crypto-shred) and the approval objects that guard both destructive actions.
 * No foreign key here cascades: a key row is never removed as a side effect of anything.
 */
export async function up(db: Kysely<any>): Promise<void> {
  // 365 days unless a client says otherwise; 0 keeps a retired device's keys forever.
  await db.schema
    .alterTable('clients')
    .addColumn('retention_days', 'integer', (c) => c.notNull().defaultTo(365))
    .execute();
  for (const col of ['legal_hold_at', 'legal_hold_reason', 'legal_hold_by', 'offboarded_at', 'offboarded_by']) {
    await db.schema.alterTable('clients').addColumn(col, 'text').execute();
  }
  for (const col of ['retired_by', 'retire_reason', 'legal_hold_at', 'legal_hold_reason', 'legal_hold_by', 'keys_destroyed_at']) {
    await db.schema.alterTable('devices').addColumn(col, 'text').execute();
  }
  // destroyed_at set = the ciphertext was wiped; metadata (key ID, dates, sources, state) stays.
  await db.schema.alterTable('recovery_keys').addColumn('destroyed_at', 'text').execute();
  await db.schema.alterTable('recovery_keys').addColumn('destroyed_reason', 'text').execute();

  await db.schema
    .createTable('lifecycle_approvals')
    .addColumn('id', 'text', (c) => c.primaryKey())
    /** 'destroy-device-keys' | 'retention-run' | 'offboard-client' */
    .addColumn('action', 'text', (c) => c.notNull())
    .addColumn('client_id', 'text', (c) => c.notNull().references('clients.id'))
    .addColumn('device_id', 'text', (c) => c.references('devices.id'))
    /** pending | executed | cancelled | expired | failed */
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('reason', 'text')
    .addColumn('requested_by', 'text', (c) => c.notNull())
    .addColumn('requested_by_name', 'text', (c) => c.notNull())
    .addColumn('requested_at', 'text', (c) => c.notNull())
    .addColumn('expires_at', 'text', (c) => c.notNull())
    .addColumn('approved_by', 'text')
    .addColumn('approved_by_name', 'text')
    .addColumn('approved_at', 'text')
    .addColumn('closed_at', 'text')
    /** JSON summary of what the execution did (counts), never a secret. */
    .addColumn('result', 'text')
    .execute();
  await db.schema.createIndex('lifecycle_approvals_status_idx').on('lifecycle_approvals').columns(['status', 'client_id']).execute();
  await db.schema.createIndex('recovery_keys_destroy_idx').on('recovery_keys').columns(['device_id', 'destroyed_at']).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('recovery_keys_destroy_idx').execute();
  await db.schema.dropTable('lifecycle_approvals').execute();
  await db.schema.alterTable('recovery_keys').dropColumn('destroyed_reason').execute();
  await db.schema.alterTable('recovery_keys').dropColumn('destroyed_at').execute();
  for (const col of ['keys_destroyed_at', 'legal_hold_by', 'legal_hold_reason', 'legal_hold_at', 'retire_reason', 'retired_by']) {
    await db.schema.alterTable('devices').dropColumn(col).execute();
  }
  for (const col of ['offboarded_by', 'offboarded_at', 'legal_hold_by', 'legal_hold_reason', 'legal_hold_at', 'retention_days']) {
    await db.schema.alterTable('clients').dropColumn(col).execute();
  }
}
