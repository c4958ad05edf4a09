import type { Transactions } from '../../db/transactions.js';
import { badRequest, notFound } from '../../lib/errors.js';
import { can, clientScope, requirePermission, type Actor } from '../authz/authz.js';
import type { KeysService } from '../keys/keys.service.js';
import type { KeySummary } from '../keys/keys.types.js';
import type { DevicesRepo } from './devices.repo.js';

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

type Deps = { tx: Transactions; repo: DevicesRepo; keys: Pick<KeysService, 'list'> };

type Row = NonNullable<Awaited<ReturnType<DevicesRepo['summaryById']>>>;
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

export function createDevicesService({ tx, repo, keys }: Deps) {
  return {
    /** Devices the actor may see, optionally one client's, optionally matching name, serial or user. */
    async list(actor: Actor, filter: { clientId?: string; q?: string; limit?: number; offset?: number } = {}): Promise<DeviceSummary[]> {
      requirePermission(actor, 'device:read', filter.clientId);
      const text = filter.q?.trim().toLowerCase();
      if (text && text.length > 100) throw badRequest('A search can be at most 100 characters.', { field: 'q' });
      const rows = await repo.list(tx.reader, clientScope(actor), {
        clientId: filter.clientId,
        text: text || undefined,
        limit: Math.min(Math.max(filter.limit ?? 100, 1), 1000),
        offset: Math.max(filter.offset ?? 0, 0),
      });
      return rows.map(summary);
    },

    /** One device with its volumes and key metadata (never a password). */
    async get(actor: Actor, id: string): Promise<DeviceDetail> {
      requirePermission(actor, 'device:read');
      const row = await repo.summaryById(tx.reader, clientScope(actor), id);
      if (!row) throw notFound(`No device with id ${id.slice(0, 60)}.`);
      const extra = await repo.find(tx.reader, row.client_id, row.id);
      if (!extra) throw notFound(`No device with id ${id.slice(0, 60)}.`);
      const volumes = await repo.volumesOfDevice(tx.reader, row.client_id, row.id);
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
