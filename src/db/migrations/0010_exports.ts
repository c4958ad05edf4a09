import type { Kysely } from 'kysely';

/**
 * Scheduled offline exports: per client or for all clients, encrypted to an age
 * recipient public key (never a passphrase: nothing secret is stored), written to a folder the
 * MSP's own backup system collects. The run itself is a scheduled_tasks row of kind
 * 'export-schedule' whose target_id is the schedule id.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('export_schedules')
    .addColumn('id', 'text', (c) => c.primaryKey())
    /** null = every client, one bundle holding all of them. */
    .addColumn('client_id', 'text', (c) => c.references('clients.id'))
    /** age X25519 recipient (age1…): a public key. */
    .addColumn('recipient', 'text', (c) => c.notNull())
    .addColumn('folder', 'text', (c) => c.notNull())
    /** daily | weekly */
    .addColumn('frequency', 'text', (c) => c.notNull())
    /** How many bundles of this schedule to keep in the folder; older ones are deleted. */
    .addColumn('keep', 'integer', (c) => c.notNull())
    .addColumn('created_by', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('last_run_at', 'text')
    .addColumn('last_status', 'text')
    .addColumn('last_file', 'text')
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('export_schedules').execute();
}
