import type { Kysely } from 'kysely';

/**
 * An agent that enrolls as a machine the vault already knows, without proving it holds that
 * device's credential, gets a credential of its own device record and waits for an admin to link
 * it (agent_credentials.link_device_id names the device it claims to be, link_match on what).
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('agent_credentials').addColumn('link_device_id', 'text').execute();
  await db.schema.alterTable('agent_credentials').addColumn('link_match', 'text').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('agent_credentials').dropColumn('link_match').execute();
  await db.schema.alterTable('agent_credentials').dropColumn('link_device_id').execute();
}
