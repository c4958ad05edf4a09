import type { Kysely } from 'kysely';

/**
 * Self-service recovery for end users (issue 20):
 * - self_service_clients: one row per client whose admin switched self-service on or off (no row = off).
 * - self_service_app: the vault-wide sign-in app (one row, id 'app'): a multi-tenant Entra ID app;
 *   its client secret sealed with the vault's secrets key (AAD bound to the row).
 * - self_service_states: a started end-user sign-in (state hash, browser hash, nonce and PKCE sealed), used once.
 * - self_service_sessions: an end user's short session (token and CSRF token stored as SHA-256),
 *   never a console session.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('self_service_clients')
    .addColumn('client_id', 'text', (c) => c.primaryKey().references('clients.id'))
    .addColumn('enabled', 'integer', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .addColumn('updated_by_name', 'text', (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('self_service_app')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('issuer', 'text', (c) => c.notNull())
    .addColumn('client_id', 'text', (c) => c.notNull())
    .addColumn('client_secret', 'text')
    .addColumn('credential_kind', 'text', (c) => c.notNull())
    .addColumn('enabled', 'integer', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('self_service_states')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('state_hash', 'text', (c) => c.notNull().unique())
    .addColumn('browser_hash', 'text', (c) => c.notNull())
    .addColumn('sealed', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('expires_at', 'text', (c) => c.notNull())
    .addColumn('used_at', 'text')
    .execute();

  await db.schema
    .createTable('self_service_sessions')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('token_hash', 'text', (c) => c.notNull().unique())
    .addColumn('csrf_hash', 'text', (c) => c.notNull())
    .addColumn('client_id', 'text', (c) => c.notNull().references('clients.id'))
    .addColumn('tenant_id', 'text', (c) => c.notNull())
    .addColumn('object_id', 'text', (c) => c.notNull())
    .addColumn('upn', 'text', (c) => c.notNull())
    .addColumn('name', 'text')
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('expires_at', 'text', (c) => c.notNull())
    .addColumn('ended_at', 'text')
    .execute();
  await db.schema.createIndex('self_service_sessions_user_idx').on('self_service_sessions').columns(['tenant_id', 'object_id']).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('self_service_sessions').execute();
  await db.schema.dropTable('self_service_states').execute();
  await db.schema.dropTable('self_service_app').execute();
  await db.schema.dropTable('self_service_clients').execute();
}
