import type { Executor } from '../../db/database.js';
import type { ExportSchedulesTable } from '../../db/schema.js';
import { EXPORTABLE_STATES } from '../../domain/export-bundle.js';

const CHUNK = 500;

/** Rows for offline exports and their schedules. Every key read names its clients. */
export function createExportsRepo() {
  return {
    /**
     * Keys that may still unlock a drive (active, disclosed but not yet rotated, in conflict) of
     * the given clients, with what a person needs to find the drive: client, device, volume.
     * Keys of retired devices are left out: the device has left service.
     */
    async exportableKeys(exec: Executor, clientIds: readonly string[]) {
      if (clientIds.length === 0) return [];
      const rows = await exec
        .selectFrom('recovery_keys as k')
        .innerJoin('clients as c', 'c.id', 'k.client_id')
        .leftJoin('devices as d', 'd.id', 'k.device_id')
        .leftJoin('volumes as v', 'v.id', 'k.volume_id')
        .select([
          'k.id',
          'k.client_id',
          'c.name as client_name',
          'd.name as device_name',
          'v.mount_point',
          'v.volume_type',
          'k.key_id',
          'k.ciphertext',
          'k.data_key_version',
          'k.state',
          'k.source_created_at',
          'k.first_seen_at',
          'k.last_seen_at',
        ])
        .where('k.client_id', 'in', clientIds as string[])
        .where('k.state', 'in', [...EXPORTABLE_STATES])
        .where((eb) => eb.or([eb('k.device_id', 'is', null), eb('d.retired_at', 'is', null)]))
        .orderBy('c.name_key')
        .orderBy('d.name_key')
        .orderBy('v.mount_point')
        .orderBy('k.first_seen_at')
        .execute();
      const sources = new Map<string, string[]>();
      for (let i = 0; i < rows.length; i += CHUNK) {
        const part = rows.slice(i, i + CHUNK).map((r) => r.id);
        const found = await exec
          .selectFrom('key_sources')
          .select(['recovery_key_id', 'source_type', 'source_ref'])
          .where('recovery_key_id', 'in', part)
          .orderBy('first_seen_at')
          .execute();
        for (const s of found)
          (sources.get(s.recovery_key_id) ?? sources.set(s.recovery_key_id, []).get(s.recovery_key_id)!).push(`${s.source_type}: ${s.source_ref}`);
      }
      return rows.map((r) => ({ ...r, sources: sources.get(r.id) ?? [] }));
    },

    /** Clients a scheduled "all clients" export covers: every client not archived. */
    activeClients(exec: Executor) {
      // Offboarded (crypto-shredded) clients have no readable key left.
      return exec
        .selectFrom('clients')
        .select(['id', 'name'])
        .where('archived_at', 'is', null)
        .where('offboarded_at', 'is', null)
        .orderBy('name_key')
        .execute();
    },

    async insertSchedule(exec: Executor, row: ExportSchedulesTable) {
      await exec.insertInto('export_schedules').values(row).execute();
    },

    listSchedules(exec: Executor) {
      return exec
        .selectFrom('export_schedules as s')
        .leftJoin('clients as c', 'c.id', 's.client_id')
        .selectAll('s')
        .select('c.name as client_name')
        .orderBy('s.created_at')
        .execute();
    },

    schedule(exec: Executor, id: string) {
      return exec
        .selectFrom('export_schedules as s')
        .leftJoin('clients as c', 'c.id', 's.client_id')
        .selectAll('s')
        .select('c.name as client_name')
        .where('s.id', '=', id)
        .executeTakeFirst();
    },

    async deleteSchedule(exec: Executor, id: string) {
      await exec.deleteFrom('export_schedules').where('id', '=', id).execute();
    },

    async recordRun(exec: Executor, id: string, run: { at: string; status: string; file: string | null }) {
      await exec
        .updateTable('export_schedules')
        .set({ last_run_at: run.at, last_status: run.status.slice(0, 500), last_file: run.file })
        .where('id', '=', id)
        .execute();
    },
  };
}
export type ExportsRepo = ReturnType<typeof createExportsRepo>;
export type ExportableKeyRow = Awaited<ReturnType<ExportsRepo['exportableKeys']>>[number];
