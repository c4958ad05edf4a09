import type { Kysely } from 'kysely';

/**
 * A sync that stored every key can still have an optional step that did not work (importing the
 * portal's key reads from Entra): the run succeeded, and `warnings` says which step failed.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('sync_runs').addColumn('warnings', 'text').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('sync_runs').dropColumn('warnings').execute();
}
