import type { Kysely } from 'kysely';

/** Placeholder reserved for its issue; filled in by that work. */
export async function up(_db: Kysely<any>): Promise<void> {}

export async function down(_db: Kysely<any>): Promise<void> {}
