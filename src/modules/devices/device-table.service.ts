import type { Transactions } from '../../db/transactions.js';
import type { ComplianceStatus } from '../../domain/compliance/evaluate.js';
import { lastSeenBounds, type Encryption, type LastSeenBand } from '../../domain/device-status.js';
import type { Clock } from '../../lib/clock.js';
import { notFound } from '../../lib/errors.js';
import { clientScope, requirePermission, type Actor } from '../authz/authz.js';
import type { AuditRepo } from '../audit/audit.repo.js';
import { toAuditEvent } from '../audit/audit.service.js';
import type { AuditEvent } from '../audit/audit.types.js';
import { requireVisibleClient } from '../clients/visible-client.js';
import type { KeysRepo } from '../keys/keys.repo.js';
import type { DeviceTableFilter, DeviceTableRepo, DeviceTableRow, DeviceTableSort } from './device-table.repo.js';
import type { DevicesRepo } from './devices.repo.js';

/**
 * A client's devices table (filtered, sorted and paged by the database, and as CSV) and a device's
 * history: the encryption states its agent reported and its audit trail.
 */

export type DeviceRow = {
  id: string;
  name: string;
  serial: string | null;
  primaryUser: string | null;
  lastSeenAt: string;
  lastCheckinAt: string | null;
  keys: number;
  encryption: Encryption;
  escrowed: boolean;
  openFindings: number;
  /** The latest evaluation's status; 'unknown' when never evaluated (complianceStatusOf). */
  compliance: ComplianceStatus;
};
export type DeviceTableQuery = Omit<DeviceTableFilter, 'seen'> & {
  /** Last seen within 24 hours, 7 days, 30 days or longer ago: the client page's bands. */
  seen?: LastSeenBand;
  sort?: DeviceTableSort;
  dir?: 'asc' | 'desc';
  limit?: number;
  offset?: number;
};

const EXPORT_MAX = 100_000;
const HISTORY_MAX = 200;

export const toDeviceRow = (r: DeviceTableRow): DeviceRow => ({
  id: r.id,
  name: r.name,
  serial: r.serial,
  primaryUser: r.primary_user,
  lastSeenAt: r.last_seen_at,
  lastCheckinAt: r.last_checkin_at,
  keys: Number(r.keys ?? 0),
  encryption: r.encryption,
  escrowed: Number(r.escrowed) === 1,
  openFindings: Number(r.open_findings ?? 0),
  compliance: r.compliance,
});

type Deps = {
  tx: Transactions;
  repo: DeviceTableRepo;
  devices: Pick<DevicesRepo, 'findVisible'>;
  keys: Pick<KeysRepo, 'ofDevice'>;
  audit: Pick<AuditRepo, 'aboutTargets'>;
  clock: Clock;
};

export function createDeviceTableService({ tx, repo, devices, keys, audit, clock }: Deps) {
  const filterOf = ({ seen, ...q }: DeviceTableQuery): DeviceTableFilter => ({ ...q, seen: seen ? lastSeenBounds(seen, Date.parse(clock.now())) : undefined });

  const visibleDevice = async (actor: Actor, deviceId: string) => {
    const d = await devices.findVisible(tx.reader, deviceId, clientScope(actor));
    if (!d) throw notFound(`No device with id ${deviceId.slice(0, 60)}.`);
    return d;
  };

  return {
    /** The client page's devices table: filtered, sorted and paged by the database. */
    async clientDevices(actor: Actor, clientId: string, query: DeviceTableQuery): Promise<{ total: number; items: DeviceRow[] }> {
      const client = await requireVisibleClient(tx.reader, actor, clientId, 'device:read');
      const filter = filterOf(query);
      const total = await repo.total(tx.reader, client.id, filter);
      const rows = await repo.page(tx.reader, client.id, filter, query, Math.min(Math.max(query.limit ?? 50, 1), 500), Math.max(query.offset ?? 0, 0));
      return { total, items: rows.map(toDeviceRow) };
    },

    /** Every matching device of the table, for CSV (bounded; the table's own filters and order). */
    async exportClientDevices(actor: Actor, clientId: string, query: DeviceTableQuery): Promise<{ client: string; rows: DeviceRow[] }> {
      const client = await requireVisibleClient(tx.reader, actor, clientId, 'device:read');
      const rows = await repo.page(tx.reader, client.id, filterOf(query), query, EXPORT_MAX, 0);
      return { client: client.name, rows: rows.map(toDeviceRow) };
    },

    /** Reported encryption states of the device's volumes over time, newest first. */
    async volumeHistory(actor: Actor, deviceId: string) {
      requirePermission(actor, 'device:read');
      const device = await visibleDevice(actor, deviceId);
      const rows = await repo.volumeHistory(tx.reader, device.client_id, device.id, HISTORY_MAX);
      return rows.map((r) => ({
        id: r.id,
        recordedAt: r.recorded_at,
        mountPoint: r.mount_point,
        volumeStatus: r.volume_status,
        protectionStatus: r.protection_status,
        encryptionMethod: r.encryption_method,
        encryptionPercentage: r.encryption_percentage,
      }));
    },

    /** Audit events about the device or any of its keys, newest first (audit readers only). */
    async deviceAudit(actor: Actor, deviceId: string, limit = 100): Promise<AuditEvent[]> {
      requirePermission(actor, 'audit:read');
      const device = await visibleDevice(actor, deviceId);
      const keyIds = (await keys.ofDevice(tx.reader, device.client_id, device.id)).map((k) => k.id);
      const rows = await audit.aboutTargets(tx.reader, device.client_id, [device.id, ...keyIds], Math.min(Math.max(limit, 1), 500));
      return rows.map(toAuditEvent);
    },
  };
}
export type DeviceTableService = ReturnType<typeof createDeviceTableService>;
