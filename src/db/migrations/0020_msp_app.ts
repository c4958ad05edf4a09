import type { Kysely } from 'kysely';

/**
 * One multi-tenant Entra ID app for the whole MSP, and certificate credentials (issue 20):
 * - graph_msp_app: at most one row (id 'msp'): the app's application id, its credential (a client
 *   secret or a certificate's private key, sealed with the vault's `secrets` key; the public
 *   certificate, its thumbprint and expiry in clear), its sign-in and Graph URLs.
 * - graph_consent_states: one-time admin-consent links, the state stored as its SHA-256 only, bound
 *   to the client that asked (and to a tenant when the MSP typed one), with an expiry.
 * - graph_connections: how the connection signs in (`credential_kind`: secret, certificate or
 *   msp_app; existing rows are 'secret'), the public certificate of a per-client app, and when
 *   Keywarden noticed that admin consent was withdrawn (one notification, not one per sync).
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('graph_msp_app')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('app_client_id', 'text', (c) => c.notNull())
    .addColumn('credential_kind', 'text', (c) => c.notNull())
    .addColumn('secret_ciphertext', 'text', (c) => c.notNull())
    .addColumn('certificate_pem', 'text')
    .addColumn('certificate_thumbprint', 'text')
    .addColumn('certificate_expires_at', 'text')
    .addColumn('login_url', 'text', (c) => c.notNull())
    .addColumn('graph_url', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .addColumn('updated_by_name', 'text', (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('graph_consent_states')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('client_id', 'text', (c) => c.notNull().references('clients.id'))
    .addColumn('state_hash', 'text', (c) => c.notNull().unique())
    .addColumn('expected_tenant_id', 'text')
    .addColumn('created_by_name', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('expires_at', 'text', (c) => c.notNull())
    .addColumn('used_at', 'text')
    .addColumn('used_tenant_id', 'text')
    .execute();
  await db.schema.createIndex('graph_consent_states_client_idx').on('graph_consent_states').columns(['client_id', 'created_at']).execute();

  await db.schema
    .alterTable('graph_connections')
    .addColumn('credential_kind', 'text', (c) => c.notNull().defaultTo('secret'))
    .execute();
  await db.schema.alterTable('graph_connections').addColumn('certificate_pem', 'text').execute();
  await db.schema.alterTable('graph_connections').addColumn('certificate_thumbprint', 'text').execute();
  await db.schema.alterTable('graph_connections').addColumn('certificate_expires_at', 'text').execute();
  await db.schema.alterTable('graph_connections').addColumn('consent_lost_at', 'text').execute();
  await db.schema.createIndex('graph_connections_tenant_idx').on('graph_connections').column('tenant_id').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('graph_connections_tenant_idx').execute();
  for (const col of ['consent_lost_at', 'certificate_expires_at', 'certificate_thumbprint', 'certificate_pem', 'credential_kind']) {
    await db.schema.alterTable('graph_connections').dropColumn(col).execute();
  }
  await db.schema.dropTable('graph_consent_states').execute();
  await db.schema.dropTable('graph_msp_app').execute();
}
