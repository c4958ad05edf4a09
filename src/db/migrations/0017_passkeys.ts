import type { Kysely } from 'kysely';

/**
 * Passkeys (WebAuthn): the credentials people register (several each), and the single-use
 * challenges of registration, sign-in and step-up. A challenge is stored by its SHA-256 only and
 * taken by a conditional update (used_at), so one answer works once, also under a parallel burst.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('passkeys')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('user_id', 'text', (c) => c.notNull().references('users.id'))
    /** The authenticator's credential id (base64url); one credential belongs to one person. */
    .addColumn('credential_id', 'text', (c) => c.notNull().unique())
    /** The COSE public key (base64url): public, it only checks signatures. */
    .addColumn('public_key', 'text', (c) => c.notNull())
    /** The authenticator's signature counter; an answer that does not move it forward is refused (a cloned authenticator). */
    .addColumn('sign_count', 'bigint', (c) => c.notNull())
    /** JSON list of transports the browser reported (internal, usb, hybrid …). */
    .addColumn('transports', 'text', (c) => c.notNull())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('backed_up', 'integer', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('last_used_at', 'text')
    .execute();
  await db.schema.createIndex('passkeys_user_idx').on('passkeys').columns(['user_id']).execute();

  await db.schema
    .createTable('passkey_challenges')
    .addColumn('id', 'text', (c) => c.primaryKey())
    /** SHA-256 of the challenge; the challenge itself is never stored. */
    .addColumn('challenge_hash', 'text', (c) => c.notNull().unique())
    /** register | sign-in | step-up */
    .addColumn('purpose', 'text', (c) => c.notNull())
    /** The person, where known (registration, step-up, passkey as second factor); null for a password-less sign-in. */
    .addColumn('user_id', 'text', (c) => c.references('users.id'))
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('expires_at', 'text', (c) => c.notNull())
    .addColumn('used_at', 'text')
    .execute();
  await db.schema.createIndex('passkey_challenges_expires_idx').on('passkey_challenges').columns(['expires_at']).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('passkey_challenges').execute();
  await db.schema.dropTable('passkeys').execute();
}
