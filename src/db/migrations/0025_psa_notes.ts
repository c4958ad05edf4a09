import type { Kysely } from 'kysely';

/**
 * Ticket-bound reveal (issue 21): the internal note a reveal posts on its PSA ticket, written in the
 * reveal's transaction (an outbox row) and delivered after commit; a scheduler task retries with
 * back-off while the PSA is down and gives up after a number of attempts. The text names the key ID
 * prefix, device, client, technician, reason code and rotation: never a recovery password, never
 * the reveal's free-text note. `validated` = 0: the PSA could not be asked at reveal time, so the
 * ticket's company is checked again before the note is posted.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('psa_note_outbox')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('client_id', 'text', (c) => c.notNull().references('clients.id'))
    .addColumn('recovery_key_id', 'text', (c) => c.notNull())
    .addColumn('psa_kind', 'text', (c) => c.notNull())
    .addColumn('ticket_ref', 'text', (c) => c.notNull())
    .addColumn('ticket_id', 'text')
    .addColumn('company_id', 'text', (c) => c.notNull())
    .addColumn('validated', 'integer', (c) => c.notNull())
    .addColumn('text', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('attempts', 'integer', (c) => c.notNull())
    .addColumn('next_attempt_at', 'text', (c) => c.notNull())
    .addColumn('last_problem', 'text')
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('done_at', 'text')
    .execute();
  await db.schema.createIndex('psa_note_outbox_due_idx').on('psa_note_outbox').columns(['status', 'next_attempt_at']).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('psa_note_outbox').execute();
}
