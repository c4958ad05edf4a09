import type { Kysely } from 'kysely';

/**
 * The PSA connection (issue 21): HaloPSA, ConnectWise PSA or Autotask, one per vault.
 * - psa_connection: at most one row (id 'psa'): which PSA, its settings that are not secret
 *   (addresses, client id, public key, user name) as JSON, and its secrets (Halo client secret,
 *   ConnectWise private key, Autotask secret and integration code) sealed with the vault's
 *   `secrets` key; the result of the last connection test.
 * - psa_client_settings: per client, the PSA company it is linked to (one client per company) and
 *   its ticket policy for reveals (off / validate / required, optionally assigned to the technician).
 * - psa_members: per Keywarden user, the PSA identity an owner linked (agent / member / resource id,
 *   login or name), compared with a ticket's assignees.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('psa_connection')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('settings', 'text', (c) => c.notNull())
    .addColumn('secret_ciphertext', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('last_checked_at', 'text')
    .addColumn('last_error', 'text')
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .addColumn('updated_by_name', 'text', (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('psa_client_settings')
    .addColumn('client_id', 'text', (c) => c.primaryKey().references('clients.id'))
    .addColumn('company_id', 'text')
    .addColumn('company_name', 'text')
    .addColumn('ticket_policy', 'text', (c) => c.notNull())
    .addColumn('require_assignee', 'integer', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .addColumn('updated_by_name', 'text', (c) => c.notNull())
    .execute();
  // One client per PSA company: a ticket of that company must not unlock two clients' keys.
  // (NULLs do not collide on either engine, so clients without a company are fine.)
  await db.schema.createIndex('psa_client_settings_company_idx').on('psa_client_settings').column('company_id').unique().execute();

  await db.schema
    .createTable('psa_members')
    .addColumn('user_id', 'text', (c) => c.primaryKey().references('users.id'))
    .addColumn('member', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .addColumn('updated_by_name', 'text', (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('psa_members').execute();
  await db.schema.dropTable('psa_client_settings').execute();
  await db.schema.dropTable('psa_connection').execute();
}
