import { sql, type Kysely } from 'kysely';

/**
 * Findings → PSA tickets, second step (issue 21):
 * - client-level findings (a setting of the client's Microsoft 365 tenant, or Keywarden's lost
 *   consent there) get tickets too, with no device: `device_id` and `device_name` become nullable;
 * - `priority`: the PSA priority last written to the ticket, so a changed rule updates each open
 *   ticket once. Rows from before this migration take their client's current rule priority (what
 *   their tickets were most likely opened with), so an upgrade does not rewrite every open ticket.
 *
 * SQLite cannot drop NOT NULL from a column, so the table is rebuilt (create, copy, drop, rename) on
 * both engines alike, as 0011 does; nothing references psa_finding_tickets.
 */
const COMMON = [
  'id',
  'client_id',
  'device_id',
  'device_name',
  'code',
  'open_key',
  'psa_kind',
  'psa_ticket_id',
  'psa_ticket_number',
  'digest',
  'state',
  'title',
  'body',
  'opened_at',
  'updated_at',
  'checked_at',
  'closed_at',
  'closed_reason',
];

async function rebuild(db: Kysely<any>, clientLevel: boolean): Promise<void> {
  let t = db.schema
    .createTable('psa_finding_tickets_next')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('client_id', 'text', (c) => c.notNull().references('clients.id'))
    .addColumn('device_id', 'text', (c) => (clientLevel ? c : c.notNull()))
    .addColumn('device_name', 'text', (c) => (clientLevel ? c : c.notNull()))
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
    .addColumn('closed_reason', 'text');
  if (clientLevel) t = t.addColumn('priority', 'text');
  await t.execute();
  const cols = sql.join(COMMON.map((c) => sql.ref(c)));
  if (clientLevel) {
    await sql`insert into psa_finding_tickets_next (${cols}, priority)
      select ${cols}, (select r.priority from psa_ticket_rules r where r.client_id = psa_finding_tickets.client_id) from psa_finding_tickets`.execute(db);
  } else {
    // The older schema has no place for a ticket without a device: those rows go on the way down.
    await sql`insert into psa_finding_tickets_next (${cols}) select ${cols} from psa_finding_tickets where device_id is not null`.execute(db);
  }
  await db.schema.dropTable('psa_finding_tickets').execute();
  await db.schema.alterTable('psa_finding_tickets_next').renameTo('psa_finding_tickets').execute();
  await db.schema.createIndex('psa_finding_tickets_open_uq').on('psa_finding_tickets').columns(['client_id', 'open_key']).unique().execute();
  await db.schema.createIndex('psa_finding_tickets_client_idx').on('psa_finding_tickets').columns(['client_id', 'state', 'opened_at']).execute();
}

export async function up(db: Kysely<any>): Promise<void> {
  await rebuild(db, true);
}

export async function down(db: Kysely<any>): Promise<void> {
  await rebuild(db, false);
}
