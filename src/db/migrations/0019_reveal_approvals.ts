import type { Kysely } from 'kysely';

/**
 * Two-person approval for reveal (issue 19):
 * - reveal_policies: one row per client that has a policy (no row = off): off, required, or
 *   required for devices carrying one of the policy's tags; how long an approval and a request last.
 * - device_tags: simple labels on devices ("server", "executive"), which a tagged policy names.
 * - reveal_requests: a person (or their API token) asks to reveal one key record; a second person
 *   approves or denies; the approved requester reveals it once. Never a secret in any column.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('reveal_policies')
    .addColumn('client_id', 'text', (c) => c.primaryKey().references('clients.id'))
    .addColumn('mode', 'text', (c) => c.notNull())
    .addColumn('tags', 'text', (c) => c.notNull())
    .addColumn('approval_minutes', 'integer', (c) => c.notNull())
    .addColumn('request_hours', 'integer', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .addColumn('updated_by_name', 'text', (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('device_tags')
    .addColumn('device_id', 'text', (c) => c.notNull().references('devices.id'))
    .addColumn('client_id', 'text', (c) => c.notNull().references('clients.id'))
    .addColumn('tag', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('created_by_name', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('device_tags_pk', ['device_id', 'tag'])
    .execute();
  await db.schema.createIndex('device_tags_client_idx').on('device_tags').columns(['client_id', 'tag']).execute();

  await db.schema
    .createTable('reveal_requests')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('client_id', 'text', (c) => c.notNull().references('clients.id'))
    .addColumn('recovery_key_id', 'text', (c) => c.notNull().references('recovery_keys.id'))
    .addColumn('device_id', 'text')
    .addColumn('reason', 'text', (c) => c.notNull())
    .addColumn('ticket', 'text')
    .addColumn('note', 'text')
    .addColumn('requester_type', 'text', (c) => c.notNull())
    .addColumn('requester_id', 'text', (c) => c.notNull())
    .addColumn('requester_person_id', 'text', (c) => c.notNull())
    .addColumn('requester_name', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('requested_at', 'text', (c) => c.notNull())
    .addColumn('expires_at', 'text', (c) => c.notNull())
    .addColumn('decided_by_id', 'text')
    .addColumn('decided_by_name', 'text')
    .addColumn('decided_at', 'text')
    .addColumn('decision_note', 'text')
    .addColumn('approval_expires_at', 'text')
    .addColumn('used_at', 'text')
    .execute();
  await db.schema.createIndex('reveal_requests_client_idx').on('reveal_requests').columns(['client_id', 'status', 'requested_at']).execute();
  await db.schema.createIndex('reveal_requests_person_idx').on('reveal_requests').columns(['requester_person_id', 'requested_at']).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('reveal_requests').execute();
  await db.schema.dropTable('device_tags').execute();
  await db.schema.dropTable('reveal_policies').execute();
}
