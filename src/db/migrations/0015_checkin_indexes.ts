import type { Kysely } from 'kysely';

/**
 * Indexes for what every agent check-in reads (issue 18):
 * - a device's key fingerprints were found by scanning the whole table (its primary key starts
 *   with the key's id): at 50,000 devices, 100,000 rows read per check-in;
 * - a device's open findings were found among all its findings, resolved ones included, which
 *   only grow.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.createIndex('key_agent_fingerprints_device_idx').on('key_agent_fingerprints').columns(['client_id', 'device_id']).execute();
  await db.schema.createIndex('findings_device_open_idx').on('findings').columns(['client_id', 'device_id', 'resolved_at']).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('findings_device_open_idx').execute();
  await db.schema.dropIndex('key_agent_fingerprints_device_idx').execute();
}
