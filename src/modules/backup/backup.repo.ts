import type { Executor } from '../../db/database.js';

/**
 * What `keywarden doctor` reads to check a vault: it reads every module's tables and writes none
 * (the reads are listed for 'backup' in TABLE_READS, src/db/owners.ts).
 */
export function createBackupRepo() {
  const count = async (exec: Executor, t: 'clients' | 'devices' | 'recovery_keys' | 'audit_events') =>
    Number(
      (
        await exec
          .selectFrom(t)
          .select((eb) => eb.fn.countAll().as('n'))
          .executeTakeFirstOrThrow()
      ).n,
    );
  return {
    /** Names of the migrations applied to this database (empty when it has no Keywarden schema). */
    appliedMigrations(exec: Executor): Promise<string[]> {
      return exec
        .selectFrom('kysely_migration' as never)
        .select('name' as never)
        .execute()
        .then((rows) => (rows as { name: string }[]).map((r) => r.name))
        .catch(() => [] as string[]);
    },
    async counts(exec: Executor) {
      return {
        clients: await count(exec, 'clients'),
        devices: await count(exec, 'devices'),
        recoveryKeys: await count(exec, 'recovery_keys'),
        auditEvents: await count(exec, 'audit_events'),
      };
    },
    /** Every client, offboarded ones included, in name order. */
    allClients(exec: Executor) {
      return exec.selectFrom('clients').select(['id', 'name', 'offboarded_at']).orderBy('name_key').execute();
    },
    /** One page of a client's sealed recovery passwords, in id order. */
    sealedPasswords(exec: Executor, clientId: string, offset: number, limit: number) {
      return exec
        .selectFrom('recovery_keys')
        .select(['id', 'ciphertext', 'data_key_version'])
        .where('client_id', '=', clientId)
        .orderBy('id')
        .limit(limit)
        .offset(offset)
        .execute();
    },
  };
}
export type BackupRepo = ReturnType<typeof createBackupRepo>;
