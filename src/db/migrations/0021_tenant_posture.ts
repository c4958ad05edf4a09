import type { Kysely } from 'kysely';

/**
 * Tenant posture (issue 20): per client with an Entra ID connection, what the last sync read about
 * its tenant: may end users read their own BitLocker keys (authorization policy), and does Intune
 * require the recovery information stored before it turns BitLocker on (and which policies).
 * Each answer is yes / no / unknown, with the reason when unknown (a permission not granted).
 * `intune_policies` is JSON: [{ name, kind, requiresEscrow }]. Never a secret in any column.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('tenant_posture')
    .addColumn('client_id', 'text', (c) => c.primaryKey().references('clients.id'))
    .addColumn('tenant_id', 'text', (c) => c.notNull())
    .addColumn('users_read_own_keys', 'text', (c) => c.notNull())
    .addColumn('users_read_own_keys_reason', 'text')
    .addColumn('intune_requires_escrow', 'text', (c) => c.notNull())
    .addColumn('intune_reason', 'text')
    .addColumn('intune_policies', 'text', (c) => c.notNull())
    .addColumn('checked_at', 'text', (c) => c.notNull())
    .addColumn('changed_at', 'text', (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('tenant_posture').execute();
}
