import type { Db } from '../../db/database.js';
import { badRequest, notFound } from '../../lib/errors.js';
import { can, clientScope, requirePermission, type Actor } from '../authz/authz.js';
import type { KeysService } from '../keys/keys.service.js';
import type { KeySummary } from '../keys/keys.types.js';

export type DeviceSummary = {
  id: string;
  client: { id: string; name: string };
  name: string;
  domain: string | null;
  serial: string | null;
  entraDeviceId: string | null;
  primaryUser: string | null;
  firstSeenAt: string;
  lastSeenAt: string;
  retiredAt: string | null;
  keys: number;
};

export type DeviceDetail = DeviceSummary & {
  /** What the agent last reported (OS, TPM, Secure Boot, Entra join, model), or null. */
  facts: Record<string, unknown> | null;
  lastCheckinAt: string | null;
  volumes: { id: string; mountPoint: string | null; type: string; volumeGuid: string | null; encryptionState: string | null; lastReportedAt: string | null }[];
  recoveryKeys: KeySummary[];
};

type Deps = { db: Db; keys: Pick<KeysService, 'list'> };

const ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function createDevicesService({ db, keys }: Deps) {
  const base = (clients: readonly string[] | null) => {
    let q = db
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
      ]);
    if (clients) q = clients.length ? q.where('d.client_id', 'in', clients as string[]) : q.where((eb) => eb.val(false));
    return q;
  };
  type Row = Awaited<ReturnType<ReturnType<typeof base>['execute']>>[number];
  const summary = (r: Row): DeviceSummary => ({
    id: r.id,
    client: { id: r.client_id, name: r.client_name },
    name: r.name,
    domain: r.domain,
    serial: r.serial,
    entraDeviceId: r.entra_device_id,
    primaryUser: r.primary_user,
    firstSeenAt: r.first_seen_at,
    lastSeenAt: r.last_seen_at,
    retiredAt: r.retired_at,
    keys: Number(r.keys ?? 0),
  });

  return {
    /** Devices the actor may see, optionally one client's, optionally matching name, serial or user. */
    async list(actor: Actor, filter: { clientId?: string; q?: string; limit?: number; offset?: number } = {}): Promise<DeviceSummary[]> {
      requirePermission(actor, 'device:read', filter.clientId);
      let q = base(clientScope(actor));
      if (filter.clientId) q = q.where('d.client_id', '=', filter.clientId);
      const text = filter.q?.trim().toLowerCase();
      if (text) {
        if (text.length > 100) throw badRequest('A search can be at most 100 characters.', { field: 'q' });
        const like = `%${text}%`;
        q = q.where((eb) => eb.or([eb('d.name_key', 'like', like), eb(eb.fn('lower', ['d.serial']), 'like', like), eb(eb.fn('lower', ['d.primary_user']), 'like', like)]));
      }
      const rows = await q
        .orderBy('c.name_key')
        .orderBy('d.name_key')
        .limit(Math.min(Math.max(filter.limit ?? 100, 1), 1000))
        .offset(Math.max(filter.offset ?? 0, 0))
        .execute();
      return rows.map(summary);
    },

    /** One device with its volumes and key metadata (never a password). */
    async get(actor: Actor, id: string): Promise<DeviceDetail> {
      requirePermission(actor, 'device:read');
      const row = ID.test(id) ? await base(clientScope(actor)).where('d.id', '=', id.toLowerCase()).executeTakeFirst() : undefined;
      if (!row) throw notFound(`No device with id ${id.slice(0, 60)}.`);
      const extra = await db.selectFrom('devices').select(['facts', 'last_checkin_at']).where('client_id', '=', row.client_id).where('id', '=', row.id).executeTakeFirstOrThrow();
      const volumes = await db
        .selectFrom('volumes')
        .selectAll()
        .where('client_id', '=', row.client_id)
        .where('device_id', '=', row.id)
        .orderBy('mount_point')
        .execute();
      // Key metadata only for roles that may see that keys exist (not helpdesk, not client staff).
      const recoveryKeys = can(actor, 'key:list', row.client_id) ? await keys.list(actor, { clientId: row.client_id, deviceId: row.id }) : [];
      return {
        ...summary(row),
        facts: extra.facts ? (JSON.parse(extra.facts) as Record<string, unknown>) : null,
        lastCheckinAt: extra.last_checkin_at,
        volumes: volumes.map((v) => ({
          id: v.id,
          mountPoint: v.mount_point,
          type: v.volume_type,
          volumeGuid: v.volume_guid,
          encryptionState: v.encryption_state,
          lastReportedAt: v.last_reported_at,
        })),
        recoveryKeys,
      };
    },
  };
}
export type DevicesService = ReturnType<typeof createDevicesService>;
