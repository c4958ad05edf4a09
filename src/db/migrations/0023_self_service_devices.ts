import type { Kysely } from 'kysely';

/**
 * Self-service recovery (issue 20): the Entra device ids an end user owns or uses, read once at
 * sign-in from Graph `/me/ownedDevices` and `/me/registeredDevices` with the person's own delegated
 * token (Graph has no application permission for these), kept with their 15-minute session as a
 * JSON array of lower-case ids. NULL: Graph could not be read at sign-in (only the primary user counts).
 * Device ids are not secrets; the token itself is never stored.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('self_service_sessions').addColumn('entra_device_ids', 'text').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('self_service_sessions').dropColumn('entra_device_ids').execute();
}
