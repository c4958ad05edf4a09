import type { Kysely } from 'kysely';

/**
 * Single sign-on with OpenID Connect (issue 19):
 * - sso_providers: an identity provider an owner configured (Entra ID, Google, Okta, any OIDC), its
 *   client secret sealed with the vault's secrets key, its mapping rules (claim or group -> role and
 *   clients) as JSON;
 * - sso_links: which person at which provider (issuer + subject) is which Keywarden user;
 * - sso_login_states: one row per sign-in started, used once (state looked up by its hash; nonce and
 *   PKCE verifier sealed), expiring in minutes;
 * - sso_sessions: the console sessions opened through a provider, with what re-validates them (a
 *   sealed refresh token when the provider issued one) and when they were last confirmed;
 * - users.sso_only: the person signs in only through single sign-on (password sign-in refused).
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('sso_providers')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('issuer', 'text', (c) => c.notNull())
    .addColumn('allowed_tenants', 'text')
    .addColumn('client_id', 'text', (c) => c.notNull())
    .addColumn('client_secret', 'text')
    .addColumn('scopes', 'text', (c) => c.notNull())
    .addColumn('enabled', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('jit', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('idp_mfa', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('mfa_acr', 'text')
    .addColumn('mapping_mode', 'text', (c) => c.notNull())
    .addColumn('mappings', 'text', (c) => c.notNull())
    .addColumn('revalidate_minutes', 'integer', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .execute();
  await db.schema
    .createTable('sso_links')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('provider_id', 'text', (c) => c.notNull().references('sso_providers.id'))
    .addColumn('subject', 'text', (c) => c.notNull())
    .addColumn('user_id', 'text', (c) => c.notNull().references('users.id'))
    .addColumn('email', 'text')
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('last_login_at', 'text')
    .addUniqueConstraint('sso_links_subject_uq', ['provider_id', 'subject'])
    .execute();
  await db.schema.createIndex('sso_links_user_idx').on('sso_links').column('user_id').execute();
  await db.schema
    .createTable('sso_login_states')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('state_hash', 'text', (c) => c.notNull().unique())
    .addColumn('browser_hash', 'text', (c) => c.notNull())
    .addColumn('provider_id', 'text', (c) => c.notNull())
    .addColumn('purpose', 'text', (c) => c.notNull())
    .addColumn('session_id', 'text')
    .addColumn('sealed', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('expires_at', 'text', (c) => c.notNull())
    .addColumn('used_at', 'text')
    .execute();
  await db.schema.createIndex('sso_login_states_expiry_idx').on('sso_login_states').column('expires_at').execute();
  await db.schema
    .createTable('sso_sessions')
    .addColumn('session_id', 'text', (c) => c.primaryKey().references('sessions.id'))
    .addColumn('provider_id', 'text', (c) => c.notNull())
    .addColumn('link_id', 'text', (c) => c.notNull())
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('refresh_token', 'text')
    .addColumn('idp_mfa', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('validated_at', 'text', (c) => c.notNull())
    .addColumn('ended_at', 'text')
    .execute();
  await db.schema.createIndex('sso_sessions_open_idx').on('sso_sessions').columns(['ended_at', 'validated_at']).execute();
  await db.schema
    .alterTable('users')
    .addColumn('sso_only', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('users').dropColumn('sso_only').execute();
  await db.schema.dropTable('sso_sessions').execute();
  await db.schema.dropTable('sso_login_states').execute();
  await db.schema.dropTable('sso_links').execute();
  await db.schema.dropTable('sso_providers').execute();
}
