import type { Kysely } from 'kysely';

/**
 * Where a device's primary user came from (issue 20: self-service by the agent's primary user).
 * 'agent': the device's own agent reported it (the Entra join user), and the agent keeps it current;
 * NULL: an import or Graph set it (or nobody did), and the agent leaves it alone. Devices from before
 * this migration got their primary user only from imports: NULL is right for them.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('devices').addColumn('primary_user_source', 'text').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('devices').dropColumn('primary_user_source').execute();
}
