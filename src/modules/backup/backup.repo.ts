import { sql } from 'kysely';
import type { Executor } from '../../db/database.js';

/** How many duplicate groups doctor lists at most; the count beyond that is still reported. */
const DUPLICATES_LISTED = 1000;

/** A device identity that more than one current device row of a client shares. */
export type DuplicateDevices = { client_name: string; name: string; identity: 'name and serial' | 'Entra device ID' | 'AD object GUID'; n: number };

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

    /**
     * Key IDs with more than one current record (active or disclosed) in one client. Ingest keeps one
     * record per key ID and password, and a second password under the same ID is a conflict, so a
     * group here is a key stored twice: a reveal by key ID can only answer "ambiguous".
     */
    duplicateKeys(exec: Executor) {
      return exec
        .selectFrom('recovery_keys as k')
        .innerJoin('clients as c', 'c.id', 'k.client_id')
        .select((eb) => ['c.name as client_name', 'k.key_id', eb.fn.countAll<number>().as('n')])
        .where('k.key_id', 'is not', null)
        .where('k.state', 'in', ['active', 'disclosed'])
        .groupBy(['k.client_id', 'c.name', 'k.key_id'])
        .having((eb) => eb.fn.countAll(), '>', 1)
        .orderBy('c.name')
        .orderBy('k.key_id')
        .limit(DUPLICATES_LISTED)
        .execute()
        .then((rows) => rows.map((r) => ({ client_name: r.client_name, key_id: r.key_id!, n: Number(r.n) })));
    },

    /**
     * Devices that are in use (not retired) and share what identifies a device within a client: an
     * Entra device ID, an AD object GUID, or the name with the same serial number and SMBIOS UUID
     * (both possibly empty: imports know devices by name only).
     */
    async duplicateDevices(exec: Executor): Promise<DuplicateDevices[]> {
      const current = () => exec.selectFrom('devices as d').innerJoin('clients as c', 'c.id', 'd.client_id').where('d.retired_at', 'is', null);
      const byName = await current()
        .select((eb) => ['c.name as client_name', eb.fn.min('d.name').as('name'), eb.fn.countAll<number>().as('n')])
        .groupBy(['d.client_id', 'c.name', 'd.name_key', sql`coalesce(d.serial, '')`, sql`coalesce(d.smbios_uuid, '')`])
        .having((eb) => eb.fn.countAll(), '>', 1)
        .orderBy('c.name')
        .limit(DUPLICATES_LISTED)
        .execute();
      const byColumn = async (column: 'd.entra_device_id' | 'd.ad_object_guid') =>
        current()
          .select((eb) => ['c.name as client_name', eb.fn.min('d.name').as('name'), eb.fn.countAll<number>().as('n')])
          .where(column, 'is not', null)
          .groupBy(['d.client_id', 'c.name', column])
          .having((eb) => eb.fn.countAll(), '>', 1)
          .orderBy('c.name')
          .limit(DUPLICATES_LISTED)
          .execute();
      const rows = (identity: DuplicateDevices['identity'], list: { client_name: string; name: string; n: number | string }[]) =>
        list.map((r) => ({ client_name: r.client_name, name: r.name, identity, n: Number(r.n) }));
      return [
        ...rows('name and serial', byName),
        ...rows('Entra device ID', await byColumn('d.entra_device_id')),
        ...rows('AD object GUID', await byColumn('d.ad_object_guid')),
      ];
    },
  };
}
export type BackupRepo = ReturnType<typeof createBackupRepo>;
