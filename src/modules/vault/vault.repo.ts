import { PostgresAdapter } from 'kysely';
import type { Executor } from '../../db/database.js';
import type { DataKeyPurpose, KeyStore } from '../../crypto/keyring.js';

/** The keyring's storage: master-key verifiers and wrapped data keys. */
export function createVaultRepo(): KeyStore<Executor> & { isInitialized(exec: Executor): Promise<boolean> } {
  return {
    async isInitialized(exec) {
      const row = await exec.selectFrom('master_keys').select('version').limit(1).executeTakeFirst();
      return row !== undefined;
    },
    listMasterKeys(exec) {
      return exec.selectFrom('master_keys').select(['version', 'key_id', 'verifier']).where('retired_at', 'is', null).orderBy('version', 'desc').execute();
    },
    async insertMasterKey(exec, row) {
      await exec
        .insertInto('master_keys')
        .values({ ...row, retired_at: null })
        .execute();
    },
    listDataKeys(exec, purpose: DataKeyPurpose, scope: string) {
      return exec
        .selectFrom('data_keys')
        .select(['id', 'purpose', 'scope', 'version', 'kek_version', 'wrapped_key'])
        .where('purpose', '=', purpose)
        .where('scope', '=', scope)
        .execute();
    },
    async insertDataKey(exec, row) {
      await exec
        .insertInto('data_keys')
        .values({ ...row, retired_at: null })
        .execute();
    },
    // Lifecycle: master-key rotation and client crypto-shred.
    listAllDataKeys(exec) {
      const q = exec.selectFrom('data_keys').select(['id', 'purpose', 'scope', 'version', 'kek_version', 'wrapped_key']).orderBy('id');
      // On PostgreSQL the rewrap holds the rows, so a concurrent rotation waits instead of interleaving.
      return (exec.getExecutor().adapter instanceof PostgresAdapter ? q.forUpdate() : q).execute();
    },
    lockMasterKeys(exec) {
      const q = exec.selectFrom('master_keys').select(['version', 'key_id', 'verifier']).where('retired_at', 'is', null).orderBy('version', 'desc');
      return (exec.getExecutor().adapter instanceof PostgresAdapter ? q.forShare() : q).execute();
    },
    listAllMasterKeys(exec) {
      return exec.selectFrom('master_keys').select(['version', 'key_id', 'verifier']).orderBy('version').execute();
    },
    async maxMasterKeyVersion(exec) {
      const r = await exec
        .selectFrom('master_keys')
        .select((eb) => eb.fn.max<number>('version').as('v'))
        .executeTakeFirst();
      return Number(r?.v ?? 0);
    },
    async rewrapDataKey(exec, id, kekVersion, wrappedKey) {
      await exec.updateTable('data_keys').set({ kek_version: kekVersion, wrapped_key: wrappedKey }).where('id', '=', id).execute();
    },
    async retireMasterKeys(exec, versions, now) {
      if (versions.length) await exec.updateTable('master_keys').set({ retired_at: now }).where('version', 'in', versions).execute();
    },
    async deleteDataKeys(exec, purpose, scope) {
      const r = await exec.deleteFrom('data_keys').where('purpose', '=', purpose).where('scope', '=', scope).executeTakeFirst();
      return Number(r.numDeletedRows);
    },
  };
}
export type VaultRepo = ReturnType<typeof createVaultRepo>;
