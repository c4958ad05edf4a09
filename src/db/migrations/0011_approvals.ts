import { sql, type Kysely } from 'kysely';

/**
 * Approvals become generic: a request may concern the whole vault (no client: switching two-owner
 * approval off, creating an owner, granting "all clients"), names what it is about (target) and
 * carries the parameters the approved action runs with (JSON, never a secret).
 *
 * SQLite cannot drop NOT NULL from a column, so the table is rebuilt (create, copy, drop, rename)
 * on both engines alike; nothing references lifecycle_approvals, so the swap breaks no foreign key.
 */
const COMMON = [
  'id',
  'action',
  'client_id',
  'device_id',
  'status',
  'reason',
  'requested_by',
  'requested_by_name',
  'requested_at',
  'expires_at',
  'approved_by',
  'approved_by_name',
  'approved_at',
  'closed_at',
  'result',
];

async function rebuild(db: Kysely<any>, generic: boolean): Promise<void> {
  let t = db.schema
    .createTable('lifecycle_approvals_next')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('action', 'text', (c) => c.notNull())
    .addColumn('client_id', 'text', (c) => (generic ? c.references('clients.id') : c.notNull().references('clients.id')))
    .addColumn('device_id', 'text', (c) => c.references('devices.id'));
  if (generic) t = t.addColumn('target_type', 'text').addColumn('target_id', 'text').addColumn('params', 'text');
  await t
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('reason', 'text')
    .addColumn('requested_by', 'text', (c) => c.notNull())
    .addColumn('requested_by_name', 'text', (c) => c.notNull())
    .addColumn('requested_at', 'text', (c) => c.notNull())
    .addColumn('expires_at', 'text', (c) => c.notNull())
    .addColumn('approved_by', 'text')
    .addColumn('approved_by_name', 'text')
    .addColumn('approved_at', 'text')
    .addColumn('closed_at', 'text')
    .addColumn('result', 'text')
    .execute();
  const cols = sql.join(COMMON.map((c) => sql.ref(c)));
  if (generic) {
    // Requests made before this migration concern a device (destroy its keys) or a client.
    await sql`insert into lifecycle_approvals_next (${cols}, target_type, target_id)
      select ${cols}, case when device_id is null then 'client' else 'device' end, coalesce(device_id, client_id) from lifecycle_approvals`.execute(db);
  } else {
    // The older schema has no place for a vault-wide request: those are dropped on the way down.
    await sql`insert into lifecycle_approvals_next (${cols}) select ${cols} from lifecycle_approvals where client_id is not null`.execute(db);
  }
  await db.schema.dropTable('lifecycle_approvals').execute();
  await db.schema.alterTable('lifecycle_approvals_next').renameTo('lifecycle_approvals').execute();
  await db.schema.createIndex('lifecycle_approvals_status_idx').on('lifecycle_approvals').columns(['status', 'client_id']).execute();
}

export async function up(db: Kysely<any>): Promise<void> {
  await rebuild(db, true);
}

export async function down(db: Kysely<any>): Promise<void> {
  await rebuild(db, false);
}
