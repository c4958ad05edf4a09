import type { Executor } from '../../db/database.js';
import type { DevicesTable, VolumesTable } from '../../db/schema.js';

export const deviceNameKey = (name: string) => name.trim().toLowerCase();

/** Device and volume rows. Every method takes the client id and puts it in the WHERE clause. */
export function createDevicesRepo() {
  return {
    findByNameKeys(exec: Executor, clientId: string, nameKeys: string[]) {
      if (nameKeys.length === 0) return Promise.resolve([] as DevicesTable[]);
      return exec.selectFrom('devices').selectAll().where('client_id', '=', clientId).where('name_key', 'in', nameKeys).execute();
    },
    findByEntraIds(exec: Executor, clientId: string, ids: string[]) {
      if (ids.length === 0) return Promise.resolve([] as DevicesTable[]);
      return exec.selectFrom('devices').selectAll().where('client_id', '=', clientId).where('entra_device_id', 'in', ids).execute();
    },
    async insertMany(exec: Executor, rows: DevicesTable[]): Promise<void> {
      for (let i = 0; i < rows.length; i += 200) await exec.insertInto('devices').values(rows.slice(i, i + 200)).execute();
    },
    async update(
      exec: Executor,
      clientId: string,
      id: string,
      patch: Partial<Pick<DevicesTable, 'domain' | 'serial' | 'entra_device_id' | 'primary_user'>>,
    ): Promise<void> {
      await exec.updateTable('devices').set(patch).where('client_id', '=', clientId).where('id', '=', id).execute();
    },
    async touch(exec: Executor, clientId: string, ids: string[], now: string): Promise<void> {
      for (let i = 0; i < ids.length; i += 500) {
        await exec
          .updateTable('devices')
          .set({ last_seen_at: now })
          .where('client_id', '=', clientId)
          .where('id', 'in', ids.slice(i, i + 500))
          .execute();
      }
    },
    async volumesOf(exec: Executor, clientId: string, deviceIds: string[]): Promise<VolumesTable[]> {
      const out: VolumesTable[] = [];
      for (let i = 0; i < deviceIds.length; i += 500) {
        const part = deviceIds.slice(i, i + 500);
        out.push(...(await exec.selectFrom('volumes').selectAll().where('client_id', '=', clientId).where('device_id', 'in', part).execute()));
      }
      return out;
    },
    async insertVolumes(exec: Executor, rows: VolumesTable[]): Promise<void> {
      for (let i = 0; i < rows.length; i += 300) await exec.insertInto('volumes').values(rows.slice(i, i + 300)).execute();
    },
    async setVolumeType(exec: Executor, clientId: string, id: string, volumeType: string): Promise<void> {
      await exec.updateTable('volumes').set({ volume_type: volumeType }).where('client_id', '=', clientId).where('id', '=', id).execute();
    },
  };
}
export type DevicesRepo = ReturnType<typeof createDevicesRepo>;
