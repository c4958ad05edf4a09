import { sql, type Expression, type SqlBool } from 'kysely';
import type { Engine, Executor } from '../../db/database.js';
import type { DevicesTable, VolumesTable } from '../../db/schema.js';
import { inClientScope, isId, type ClientScope } from '../../db/scope.js';
import { MAX_LOOKUP_LIST, bulkInsert } from '../../db/bulk.js';

export const deviceNameKey = (name: string) => name.trim().toLowerCase();

/** The facts a new device row may start with; everything else starts empty. */
export type NewDevice = { id: string; clientId: string; name: string; now: string } & Partial<
  Pick<DevicesTable, 'domain' | 'serial' | 'entra_device_id' | 'ad_object_guid' | 'ad_dn' | 'primary_user' | 'facts' | 'smbios_uuid'>
>;

/** A new device row (imports, the agent and the AD sync all create devices this one way). */
export function newDeviceRow(d: NewDevice): DevicesTable {
  return {
    id: d.id,
    client_id: d.clientId,
    name: d.name,
    name_key: deviceNameKey(d.name),
    domain: d.domain ?? null,
    serial: d.serial ?? null,
    entra_device_id: d.entra_device_id ?? null,
    ad_object_guid: d.ad_object_guid ?? null,
    ad_dn: d.ad_dn ?? null,
    agent_id: null,
    primary_user: d.primary_user ?? null,
    facts: d.facts ?? null,
    smbios_uuid: d.smbios_uuid ?? null,
    last_checkin_at: null,
    first_seen_at: d.now,
    last_seen_at: d.now,
    retired_at: null,
    created_at: d.now,
  };
}

/** The character that makes the next one literal in a LIKE pattern (see deviceTextMatch). */
const LIKE_ESCAPE = '\\';

/** Makes `%`, `_` and the escape character itself match literally in a LIKE pattern. */
export const escapeLike = (text: string): string => text.replace(/[\\%_]/g, (c) => LIKE_ESCAPE + c);

/**
 * The device text search, the one definition every search box uses: the device name, serial number
 * or primary user contains `text`, case-insensitively. `alias` is the devices table (or a derived
 * table with the same columns) in the caller's query. A typed `%` or `_` matches only itself, so
 * `q=%%` cannot list every device in scope.
 */
export function deviceTextMatch(alias: string, text: string): Expression<SqlBool> {
  const like = `%${escapeLike(text.trim().toLowerCase())}%`;
  const col = (c: string) => sql.ref(`${alias}.${c}`);
  return sql<SqlBool>`(${col('name_key')} like ${like} escape ${LIKE_ESCAPE} or lower(${col('serial')}) like ${like} escape ${LIKE_ESCAPE} or lower(${col('primary_user')}) like ${like} escape ${LIKE_ESCAPE})`;
}

/** What the agent reports about a device and may change on its row. */
export type DevicePatch = Partial<Omit<DevicesTable, 'id' | 'client_id' | 'created_at' | 'first_seen_at'>>;

/** Device and volume rows. Every method takes the client id (or a client scope) and puts it in the WHERE clause. */
const insertDeviceRows = bulkInsert<DevicesTable>('devices', [
  'id',
  'client_id',
  'name',
  'name_key',
  'domain',
  'serial',
  'entra_device_id',
  'ad_object_guid',
  'ad_dn',
  'agent_id',
  'primary_user',
  'facts',
  'smbios_uuid',
  'last_checkin_at',
  'first_seen_at',
  'last_seen_at',
  'retired_at',
  'created_at',
  'retired_by',
  'retire_reason',
  'legal_hold_at',
  'legal_hold_reason',
  'legal_hold_by',
  'keys_destroyed_at',
]);
const insertVolumeRows = bulkInsert<VolumesTable>(
  'volumes',
  [
    'id',
    'client_id',
    'device_id',
    'mount_point',
    'volume_type',
    'volume_guid',
    'encryption_state',
    'last_reported_at',
    'created_at',
    'volume_status',
    'protection_status',
    'lock_status',
    'encryption_method',
    'encryption_percentage',
    'protectors',
  ],
  { types: { encryption_percentage: 'integer' } },
);

export function createDevicesRepo() {
  /** Device rows with their client's name and key count, inside a client scope. */
  const summaryQuery = (exec: Executor, scope: ClientScope) =>
    inClientScope(
      exec
        .selectFrom('devices as d')
        .innerJoin('clients as c', 'c.id', 'd.client_id')
        .select((eb) => [
          'd.id',
          'd.client_id',
          'c.name as client_name',
          'd.name',
          'd.domain',
          'd.serial',
          'd.entra_device_id',
          'd.primary_user',
          'd.first_seen_at',
          'd.last_seen_at',
          'd.retired_at',
          eb.selectFrom('recovery_keys as k').whereRef('k.device_id', '=', 'd.id').select(eb.fn.countAll<number>().as('n')).as('keys'),
        ]),
      'd.client_id',
      scope,
    );

  return {
    findByNameKeys(exec: Executor, clientId: string, nameKeys: string[]) {
      if (nameKeys.length === 0) return Promise.resolve([] as DevicesTable[]);
      return exec.selectFrom('devices').selectAll().where('client_id', '=', clientId).where('name_key', 'in', nameKeys).execute();
    },
    findByEntraIds(exec: Executor, clientId: string, ids: string[]) {
      if (ids.length === 0) return Promise.resolve([] as DevicesTable[]);
      return exec.selectFrom('devices').selectAll().where('client_id', '=', clientId).where('entra_device_id', 'in', ids).execute();
    },
    insertMany: (exec: Executor, rows: DevicesTable[]): Promise<void> => insertDeviceRows(exec, rows),
    async update(
      exec: Executor,
      clientId: string,
      id: string,
      patch: Partial<Pick<DevicesTable, 'domain' | 'serial' | 'entra_device_id' | 'primary_user' | 'primary_user_source'>>,
    ): Promise<void> {
      await exec.updateTable('devices').set(patch).where('client_id', '=', clientId).where('id', '=', id).execute();
    },
    async touch(exec: Executor, clientId: string, ids: string[], now: string): Promise<void> {
      for (let i = 0; i < ids.length; i += MAX_LOOKUP_LIST) {
        await exec
          .updateTable('devices')
          .set({ last_seen_at: now })
          .where('client_id', '=', clientId)
          .where('id', 'in', ids.slice(i, i + MAX_LOOKUP_LIST))
          .execute();
      }
    },
    async volumesOf(exec: Executor, clientId: string, deviceIds: string[]): Promise<VolumesTable[]> {
      const out: VolumesTable[] = [];
      for (let i = 0; i < deviceIds.length; i += MAX_LOOKUP_LIST) {
        const part = deviceIds.slice(i, i + MAX_LOOKUP_LIST);
        out.push(...(await exec.selectFrom('volumes').selectAll().where('client_id', '=', clientId).where('device_id', 'in', part).execute()));
      }
      return out;
    },
    insertVolumes: (exec: Executor, rows: VolumesTable[]): Promise<void> => insertVolumeRows(exec, rows),
    async setVolumeType(exec: Executor, clientId: string, id: string, volumeType: string): Promise<void> {
      await exec.updateTable('volumes').set({ volume_type: volumeType }).where('client_id', '=', clientId).where('id', '=', id).execute();
    },

    // ---------------------------------------------------------------- for people (API, console, CLI)
    /** Devices inside the scope, optionally one client's, optionally matching a text search. */
    list(exec: Executor, scope: ClientScope, filter: { clientId?: string; text?: string; limit: number; offset: number }) {
      let q = summaryQuery(exec, scope);
      if (filter.clientId) q = q.where('d.client_id', '=', filter.clientId);
      if (filter.text) q = q.where(deviceTextMatch('d', filter.text));
      return q.orderBy('c.name_key').orderBy('d.name_key').limit(filter.limit).offset(filter.offset).execute();
    },
    /** One device inside the scope, with its client's name and key count; undefined for any other id. */
    summaryById(exec: Executor, scope: ClientScope, id: string) {
      if (!isId(id)) return Promise.resolve(undefined);
      return summaryQuery(exec, scope).where('d.id', '=', id.toLowerCase()).executeTakeFirst();
    },
    /** The device row with this id when the scope includes its client; undefined otherwise. */
    findVisible(exec: Executor, id: string, scope: ClientScope): Promise<DevicesTable | undefined> {
      if (!isId(id)) return Promise.resolve(undefined);
      return inClientScope(exec.selectFrom('devices').selectAll().where('id', '=', id.toLowerCase()), 'client_id', scope).executeTakeFirst();
    },
    volumesOfDevice: (exec: Executor, clientId: string, deviceId: string) =>
      exec.selectFrom('volumes').selectAll().where('client_id', '=', clientId).where('device_id', '=', deviceId).orderBy('mount_point').execute(),

    // ---------------------------------------------------------------- for the agent
    /** The device an enrolling agent is: by Entra id, then by hardware, then an unclaimed device of that name. */
    findForEnrollment: async (
      exec: Executor,
      clientId: string,
      d: { entraDeviceId: string | null; serial: string | null; smbiosUuid: string | null; nameKey: string },
    ): Promise<DevicesTable | undefined> => {
      const base = () => exec.selectFrom('devices').selectAll().where('client_id', '=', clientId).where('retired_at', 'is', null);
      if (d.entraDeviceId) {
        const byEntra = await base().where('entra_device_id', '=', d.entraDeviceId).executeTakeFirst();
        if (byEntra) return byEntra;
      }
      if (d.serial && d.smbiosUuid) {
        const byHardware = await base().where('serial', '=', d.serial).where('smbios_uuid', '=', d.smbiosUuid).executeTakeFirst();
        if (byHardware) return byHardware;
      }
      // A device known only by name (imported keys) that no agent has claimed yet is adopted.
      return base()
        .where('name_key', '=', d.nameKey)
        .where('smbios_uuid', 'is', null)
        .where((eb) => eb.or([eb('serial', 'is', null), eb('serial', '=', d.serial ?? '')]))
        .executeTakeFirst();
    },
    find: (exec: Executor, clientId: string, id: string) =>
      exec.selectFrom('devices').selectAll().where('client_id', '=', clientId).where('id', '=', id).executeTakeFirst(),
    nameOf: async (exec: Executor, clientId: string, id: string) =>
      (await exec.selectFrom('devices').select('name').where('client_id', '=', clientId).where('id', '=', id).executeTakeFirst())?.name ?? null,
    async insert(exec: Executor, row: DevicesTable): Promise<void> {
      await exec.insertInto('devices').values(row).execute();
    },
    async patch(exec: Executor, clientId: string, id: string, patch: DevicePatch): Promise<void> {
      await exec.updateTable('devices').set(patch).where('client_id', '=', clientId).where('id', '=', id).execute();
    },
    async insertVolume(exec: Executor, row: VolumesTable): Promise<void> {
      await exec.insertInto('volumes').values(row).execute();
    },
    async updateVolume(exec: Executor, clientId: string, id: string, patch: Partial<Omit<VolumesTable, 'id' | 'client_id' | 'device_id'>>): Promise<void> {
      await exec.updateTable('volumes').set(patch).where('client_id', '=', clientId).where('id', '=', id).execute();
    },
    /**
     * Moves "last seen" of many devices forward (the agent's write-behind buffer). A time only ever
     * moves forward, so a slow process never turns a device's clock back.
     */
    async markSeen(exec: Executor, engine: Engine, batch: { clientId: string; deviceId: string; at: string }[]): Promise<void> {
      if (engine === 'postgres') {
        for (let i = 0; i < batch.length; i += 500) {
          const part = batch.slice(i, i + 500);
          const values = sql.join(part.map((b) => sql`(${b.deviceId}, ${b.clientId}, ${b.at})`));
          await sql`update devices as d set last_checkin_at = v.at, last_seen_at = greatest(d.last_seen_at, v.at)
                    from (values ${values}) as v(id, client_id, at)
                    where d.id = v.id and d.client_id = v.client_id and (d.last_checkin_at is null or d.last_checkin_at < v.at)`.execute(exec);
        }
        return;
      }
      // SQLite: the same prepared statement per device, all in the caller's transaction (one commit).
      for (const b of batch) {
        await exec
          .updateTable('devices')
          .set({ last_checkin_at: b.at, last_seen_at: sql<string>`max(last_seen_at, ${b.at})` })
          .where('client_id', '=', b.clientId)
          .where('id', '=', b.deviceId)
          .where((eb) => eb.or([eb('last_checkin_at', 'is', null), eb('last_checkin_at', '<', b.at)]))
          .execute();
      }
    },

    // ---------------------------------------------------------------- for the Active Directory sync
    /** The device an AD computer object is, by its objectGUID. */
    findByAdObjectGuid: (exec: Executor, clientId: string, guid: string) =>
      exec.selectFrom('devices').selectAll().where('client_id', '=', clientId).where('ad_object_guid', '=', guid).executeTakeFirst(),

    // ---------------------------------------------------------------- for lifecycle
    /** Retirement, legal hold and "keys destroyed" fields of one device. */
    async setLifecycle(
      exec: Executor,
      clientId: string,
      id: string,
      patch: Partial<
        Pick<DevicesTable, 'retired_at' | 'retired_by' | 'retire_reason' | 'legal_hold_at' | 'legal_hold_reason' | 'legal_hold_by' | 'keys_destroyed_at'>
      >,
    ): Promise<void> {
      await exec.updateTable('devices').set(patch).where('client_id', '=', clientId).where('id', '=', id).execute();
    },
  };
}
export type DevicesRepo = ReturnType<typeof createDevicesRepo>;
