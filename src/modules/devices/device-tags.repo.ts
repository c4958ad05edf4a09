import type { Executor } from '../../db/database.js';
import { inClientScope, type ClientScope } from '../../db/scope.js';

/** Labels on devices ("server", "executive"): the devices module owns `device_tags`. */
export function createDeviceTagsRepo() {
  return {
    async tagsOf(exec: Executor, clientId: string, deviceId: string): Promise<string[]> {
      const rows = await exec
        .selectFrom('device_tags')
        .select('tag')
        .where('client_id', '=', clientId)
        .where('device_id', '=', deviceId)
        .orderBy('tag')
        .execute();
      return rows.map((r) => r.tag);
    },
    /** Every tagged device of a client (inside the scope), with its name and tags. */
    async taggedDevices(exec: Executor, scope: ClientScope, clientId: string): Promise<{ device_id: string; device_name: string; tag: string }[]> {
      return inClientScope(
        exec
          .selectFrom('device_tags as t')
          .innerJoin('devices as d', 'd.id', 't.device_id')
          .select(['t.device_id', 'd.name as device_name', 't.tag'])
          .where('t.client_id', '=', clientId),
        't.client_id',
        scope,
      )
        .orderBy('d.name')
        .orderBy('t.tag')
        .execute();
    },
    /** Replaces a device's tags. */
    async setTags(exec: Executor, clientId: string, deviceId: string, tags: readonly string[], now: string, by: string): Promise<void> {
      await exec.deleteFrom('device_tags').where('client_id', '=', clientId).where('device_id', '=', deviceId).execute();
      if (tags.length) {
        await exec
          .insertInto('device_tags')
          .values(tags.map((tag) => ({ device_id: deviceId, client_id: clientId, tag, created_at: now, created_by_name: by })))
          .execute();
      }
    },
  };
}
export type DeviceTagsRepo = ReturnType<typeof createDeviceTagsRepo>;
