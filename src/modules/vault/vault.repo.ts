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
      return exec
        .selectFrom('master_keys')
        .select(['version', 'key_id', 'verifier'])
        .where('retired_at', 'is', null)
        .orderBy('version', 'desc')
        .execute();
    },
    async insertMasterKey(exec, row) {
      await exec.insertInto('master_keys').values({ ...row, retired_at: null }).execute();
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
      await exec.insertInto('data_keys').values({ ...row, retired_at: null }).execute();
    },
  };
}
export type VaultRepo = ReturnType<typeof createVaultRepo>;
