import type { Kysely } from 'kysely';

/**
 * Invitations (issue 19): an owner or admin invites someone by e-mail with the role and clients
 * fixed in the invitation. Only the SHA-256 of the one-time link's token is stored. The invitation
 * is used up by one conditional update (accepted_at) so that two parallel acceptances cannot both win.
 *
 * This migration changes no setting: a vault that exists keeps its "require a second factor" as it is;
 * only a vault created from now on starts with it on (initVault).
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('invitations')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('email', 'text', (c) => c.notNull())
    .addColumn('role', 'text', (c) => c.notNull())
    .addColumn('all_clients', 'integer', (c) => c.notNull())
    // JSON array of client ids (empty when all_clients).
    .addColumn('client_ids', 'text', (c) => c.notNull())
    .addColumn('token_hash', 'text', (c) => c.notNull().unique())
    .addColumn('invited_by', 'text', (c) => c.notNull().references('users.id'))
    .addColumn('invited_by_name', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('expires_at', 'text', (c) => c.notNull())
    .addColumn('sent_at', 'text')
    .addColumn('mail_status', 'text')
    .addColumn('approval_id', 'text')
    .addColumn('approved_at', 'text')
    .addColumn('accepted_at', 'text')
    .addColumn('accepted_user_id', 'text')
    .addColumn('revoked_at', 'text')
    .execute();
  await db.schema.createIndex('invitations_email_idx').on('invitations').columns(['email']).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('invitations').execute();
}
