import type { Executor } from '../../db/database.js';
import { MAX_LOOKUP_LIST } from '../../db/bulk.js';
import { parseEncryptionMethod, parseKeyProtectorType, parseLockStatus, parseProtectionStatus, parseVolumeStatus } from '../../domain/bitlocker.js';
import { protectionOffSinceOf, type DeviceFacts, type VolumeFacts } from '../../domain/compliance/evaluate.js';
import type { DeviceComplianceTable } from '../../db/schema.js';
import type { ComplianceRepo } from './compliance.repo.js';

/**
 * Reads what the vault knows about a batch of devices of one client, and their current statuses, in
 * one query per batch (two when a volume's protection is off), and shapes it for the pure evaluation.
 */
export type LoadedDevice = DeviceFacts & { id: string; name: string; retiredAt: string | null };

const IN_CHUNK = MAX_LOOKUP_LIST;
const chunks = <T>(xs: readonly T[], n = IN_CHUNK): T[][] => {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += n) out.push(xs.slice(i, i + n));
  return out;
};

function parseProtectors(json: string | null): VolumeFacts['protectors'] {
  if (!json) return [];
  try {
    const list = JSON.parse(json) as { id?: unknown; type?: unknown }[];
    return Array.isArray(list) ? list.map((p) => ({ id: typeof p.id === 'string' ? p.id.toLowerCase() : null, type: parseKeyProtectorType(p.type) })) : [];
  } catch {
    return [];
  }
}

export async function loadDevices(
  repo: ComplianceRepo,
  exec: Executor,
  clientId: string,
  deviceIds: readonly string[],
): Promise<{ devices: LoadedDevice[]; statuses: DeviceComplianceTable[] }> {
  const out: LoadedDevice[] = [];
  const statuses: DeviceComplianceTable[] = [];
  for (const ids of chunks(deviceIds)) {
    const facts = await repo.deviceFacts(exec, clientId, ids);
    const { devices, volumes, keys, mismatches, exemptions } = facts;
    statuses.push(...facts.statuses);
    const sources = new Map<string, string[]>();
    for (const r of facts.sources) (sources.get(r.recovery_key_id) ?? sources.set(r.recovery_key_id, []).get(r.recovery_key_id)!).push(r.source_type);
    // Since when protection has been off: the current run of "Off" in the volume's history (null: unknown).
    const offVolumes = volumes.filter((v) => v.protection_status === 'Off').map((v) => v.id);
    const offSince = new Map<string, string | null>();
    for (const part of chunks(offVolumes)) {
      const rows = await repo.volumeStates(exec, clientId, part);
      const history = new Map<string, { recordedAt: string; protectionStatus: string | null }[]>();
      for (const r of rows)
        (history.get(r.volume_id) ?? history.set(r.volume_id, []).get(r.volume_id)!).push({ recordedAt: r.recorded_at, protectionStatus: r.protection_status });
      for (const id of part) offSince.set(id, protectionOffSinceOf(history.get(id) ?? []));
    }

    const byDevice = <T extends { device_id: string }>(rows: T[]) => {
      const m = new Map<string, T[]>();
      for (const r of rows) (m.get(r.device_id) ?? m.set(r.device_id, []).get(r.device_id)!).push(r);
      return m;
    };
    const vols = byDevice(volumes);
    const ks = byDevice(keys.filter((k): k is typeof k & { device_id: string } => k.device_id !== null));
    const mm = byDevice(mismatches);
    const ex = byDevice(exemptions);
    for (const d of devices) {
      out.push({
        id: d.id,
        name: d.name,
        retiredAt: d.retired_at,
        lastSeenAt: d.last_seen_at,
        lastCheckinAt: d.last_checkin_at,
        volumes: (vols.get(d.id) ?? []).map((v) => ({
          id: v.id,
          mountPoint: v.mount_point,
          type: (['os', 'fixed', 'removable'].includes(v.volume_type) ? v.volume_type : 'unknown') as VolumeFacts['type'],
          volumeStatus: parseVolumeStatus(v.volume_status),
          protectionStatus: parseProtectionStatus(v.protection_status),
          lockStatus: parseLockStatus(v.lock_status),
          encryptionMethod: parseEncryptionMethod(v.encryption_method),
          protectors: parseProtectors(v.protectors),
          protectionOffSince: offSince.get(v.id) ?? null,
        })),
        keys: (ks.get(d.id) ?? []).map((k) => ({
          id: k.id,
          keyId: k.key_id,
          volumeId: k.volume_id,
          state: k.state,
          createdAt: k.source_created_at ?? k.first_seen_at,
          sources: sources.get(k.id) ?? [],
        })),
        mismatchedProtectors: (mm.get(d.id) ?? []).filter((m) => m.protector_id).map((m) => ({ volumeId: m.volume_id, protectorId: m.protector_id! })),
        exemptions: (ex.get(d.id) ?? []).map((e) => ({ id: e.id, reason: e.reason, expiresAt: e.expires_at })),
      });
    }
  }
  return { devices: out, statuses };
}
