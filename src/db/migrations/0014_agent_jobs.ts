import type { Kysely } from 'kysely';

/**
 * Agent jobs that act on findings: `options` holds what a job kind needs beyond its volume and
 * protector (JSON, e.g. enable-encryption's method and "used space only"), `origin` says who asked
 * for it (manual, bulk, policy, disclosure, rotation).
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('jobs').addColumn('options', 'text').execute();
  await db.schema.alterTable('jobs').addColumn('origin', 'text').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('jobs').dropColumn('origin').execute();
  await db.schema.alterTable('jobs').dropColumn('options').execute();
}
