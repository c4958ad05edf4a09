import type { Kysely } from 'kysely';

/**
 * Findings become PSA tickets (issue 21, item 3):
 * - psa_ticket_rules: one row per client that has rules (no row = off): which finding codes (and
 *   failed rotations) open tickets, with which PSA priority and board/queue, digest mode and its
 *   automatic threshold; plus the per-client run lease and the state of the last failed run (so a
 *   PSA outage is audited and notified once, not every 15 minutes).
 * - psa_finding_tickets: one row per (client, device, finding code) Keywarden opened a ticket for.
 *   Several rows share a PSA ticket id when a digest ticket covers them. `open_key` is set while a
 *   row is open and unique, so two runs can never both open a ticket for the same finding; closed
 *   rows keep their history with open_key NULL. Never a secret in any column.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('psa_ticket_rules')
    .addColumn('client_id', 'text', (c) => c.primaryKey().references('clients.id'))
    .addColumn('enabled', 'integer', (c) => c.notNull())
    .addColumn('codes', 'text', (c) => c.notNull())
    .addColumn('priority', 'text')
    .addColumn('queue', 'text')
    .addColumn('digest', 'integer', (c) => c.notNull())
    .addColumn('digest_threshold', 'integer', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .addColumn('updated_by_name', 'text', (c) => c.notNull())
    .addColumn('run_owner', 'text')
    .addColumn('run_until', 'text')
    .addColumn('last_run_at', 'text')
    .addColumn('failing_since', 'text')
    .addColumn('last_error', 'text')
    .execute();

  await db.schema
    .createTable('psa_finding_tickets')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('client_id', 'text', (c) => c.notNull().references('clients.id'))
    .addColumn('device_id', 'text', (c) => c.notNull())
    .addColumn('device_name', 'text', (c) => c.notNull())
    .addColumn('code', 'text', (c) => c.notNull())
    .addColumn('open_key', 'text')
    .addColumn('psa_kind', 'text', (c) => c.notNull())
    .addColumn('psa_ticket_id', 'text', (c) => c.notNull())
    .addColumn('psa_ticket_number', 'text', (c) => c.notNull())
    .addColumn('digest', 'integer', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('title', 'text', (c) => c.notNull())
    .addColumn('body', 'text', (c) => c.notNull())
    .addColumn('opened_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .addColumn('checked_at', 'text', (c) => c.notNull())
    .addColumn('closed_at', 'text')
    .addColumn('closed_reason', 'text')
    .execute();
  await db.schema.createIndex('psa_finding_tickets_open_uq').on('psa_finding_tickets').columns(['client_id', 'open_key']).unique().execute();
  await db.schema.createIndex('psa_finding_tickets_client_idx').on('psa_finding_tickets').columns(['client_id', 'state', 'opened_at']).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('psa_finding_tickets').execute();
  await db.schema.dropTable('psa_ticket_rules').execute();
}
