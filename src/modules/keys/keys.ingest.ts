import { yieldToEventLoop } from '../../lib/yield.js';
import type { Executor } from '../../db/database.js';
import { lockKey } from '../../db/locks.js';
import { bulkStepRows } from '../../db/bulk.js';
import type { DevicesTable, KeySourcesTable, RecoveryKeysTable, VolumesTable } from '../../db/schema.js';
import type { Keyring } from '../../crypto/keyring.js';
import type { Clock } from '../../lib/clock.js';
import { newId } from '../../lib/ids.js';
import type { Actor } from '../authz/authz.js';
import type { AuditService } from '../audit/audit.service.js';
import { deviceNameKey, newDeviceRow, type DevicesRepo } from '../devices/devices.repo.js';
import type { IngestKeyRow, KeysRepo } from './keys.repo.js';
import type { IngestOutcome, IngestResult, KeyReport, SourceType } from './keys.types.js';

/**
 * Merging reported keys into the vault. The rules (see README.md in this folder):
 * - same key ID + same password  -> the same key; the source is added (or its last-seen moved)
 * - same key ID + other password -> conflict: a new row, both flagged, both kept, audited
 * - no key ID, password known    -> the same key (and a later key ID fills the gap)
 * - nothing is deleted or overwritten; only empty facts (device, volume, key ID, date) get filled
 * Work runs in chunks: one lookup per chunk for existing keys, multi-row inserts, batched updates.
 * One ingest per client at a time (imports, syncs and agent uploads of the same keys): each sees
 * the keys and devices the one before it committed, so a key or a device is never stored twice.
 */

type Deps = {
  keys: KeysRepo;
  devices: DevicesRepo;
  keyring: Pick<Keyring<Executor>, 'clientCipher' | 'fingerprinter'>;
  audit: Pick<AuditService, 'record'>;
  clock: Clock;
};

type Known = IngestKeyRow & { isNew: boolean };

export function createKeyIngest({ keys, devices, keyring, audit, clock }: Deps) {
  return async function ingest(
    tx: Executor,
    actor: Actor,
    clientId: string,
    source: { type: SourceType; ref: string },
    reports: KeyReport[],
    onProgress?: (done: number, total: number) => void,
  ): Promise<IngestResult> {
    // Held until the caller's transaction ends. Callers that write before ingesting take it first.
    await lockKey(tx, 'ingest', clientId);
    const now = clock.now();
    const chunkSize = bulkStepRows(tx);
    const cipher = await keyring.clientCipher(tx, clientId);
    const fingerprint = await keyring.fingerprinter(tx);

    const byKeyId = new Map<string, Known[]>();
    const byFp = new Map<string, Known[]>();
    const seenRows = new Map<string, Known>();
    const remember = (k: Known) => {
      if (seenRows.has(k.id)) return;
      seenRows.set(k.id, k);
      if (k.key_id) (byKeyId.get(k.key_id) ?? byKeyId.set(k.key_id, []).get(k.key_id)!).push(k);
      (byFp.get(k.fingerprint) ?? byFp.set(k.fingerprint, []).get(k.fingerprint)!).push(k);
    };
    const askedKeyIds = new Set<string>();
    const askedFps = new Set<string>();

    const devicesByName = new Map<string, DevicesTable>();
    const devicesByEntra = new Map<string, DevicesTable>();
    const volumesByDevice = new Map<string, VolumesTable[]>();
    const touchedDevices = new Set<string>();
    // Devices this ingest creates: their last-seen time is already now.
    const createdDevices = new Set<string>();
    // New devices and volumes are written in bulk at the end of each chunk, before its keys.
    let pendingDevices: DevicesTable[] = [];
    let pendingVolumeRows: VolumesTable[] = [];

    const result: IngestResult = { imported: 0, duplicates: 0, conflicts: 0, outcomes: [], keyRowIds: [], devices: [], deviceIds: [] };
    const filedUnder = new Set<string>();

    const devicesById = new Map<string, DevicesTable | null>();
    const resolveDevice = async (d: KeyReport['device']): Promise<DevicesTable | null> => {
      // A reporter that knows its own device record (the agent) names it by id: names can be shared.
      if (d?.id) {
        if (!devicesById.has(d.id)) devicesById.set(d.id, (await devices.find(tx, clientId, d.id)) ?? null);
        return devicesById.get(d.id)!;
      }
      const name = d?.name?.trim();
      const entraId = d?.entraDeviceId;
      let device = (entraId && devicesByEntra.get(entraId)) || (name && devicesByName.get(deviceNameKey(name))) || null;
      if (!device && !name && !entraId) return null;
      if (!device) {
        device = newDeviceRow({
          id: newId(),
          clientId,
          // A Graph export may carry only the Entra device id; it stands in until a sync names it.
          name: name || entraId!,
          now,
          domain: d?.domain,
          serial: d?.serial,
          entra_device_id: entraId,
          primary_user: d?.user,
        });
        pendingDevices.push(device);
        createdDevices.add(device.id);
        volumesByDevice.set(device.id, []);
      } else {
        // Fill facts the device row does not have yet; never overwrite one it has.
        const patch: Parameters<DevicesRepo['update']>[3] = {};
        if (!device.entra_device_id && entraId) patch.entra_device_id = entraId;
        if (!device.domain && d?.domain) patch.domain = d.domain;
        if (!device.serial && d?.serial) patch.serial = d.serial;
        // An import's or Graph's primary user also replaces one the device's agent reported
        // (devices.primary_user_source 'agent'): the agent only fills the gap.
        if (d?.user && (!device.primary_user || device.primary_user_source === 'agent')) {
          patch.primary_user = d.user;
          patch.primary_user_source = null;
        }
        if (Object.keys(patch).length) {
          // A device of this chunk is not written yet: its pending row takes the facts.
          if (!pendingDevices.includes(device)) await devices.update(tx, clientId, device.id, patch);
          Object.assign(device, patch);
        }
        if (!createdDevices.has(device.id)) touchedDevices.add(device.id);
      }
      devicesByName.set(device.name_key, device);
      if (device.entra_device_id) devicesByEntra.set(device.entra_device_id, device);
      return device;
    };

    const resolveVolume = async (device: DevicesTable | null, v: KeyReport['volume']): Promise<VolumesTable | null> => {
      if (!device || (!v?.mountPoint && (!v?.volumeType || v.volumeType === 'unknown'))) return null;
      let list = volumesByDevice.get(device.id);
      if (!list) {
        list = await devices.volumesOf(tx, clientId, [device.id]);
        volumesByDevice.set(device.id, list);
      }
      const found = v.mountPoint
        ? list.find((x) => x.mount_point === v.mountPoint)
        : list.find((x) => x.mount_point === null && x.volume_type === v.volumeType);
      if (found) {
        if (found.volume_type === 'unknown' && v.volumeType && v.volumeType !== 'unknown') {
          await devices.setVolumeType(tx, clientId, found.id, v.volumeType);
          found.volume_type = v.volumeType;
        }
        return found;
      }
      const row: VolumesTable = {
        id: newId(),
        client_id: clientId,
        device_id: device.id,
        mount_point: v.mountPoint ?? null,
        // A lone "C:" from manage-bde is the system drive in practice, but we do not guess.
        volume_type: v.volumeType ?? 'unknown',
        volume_guid: null,
        encryption_state: null,
        last_reported_at: null,
        created_at: now,
        volume_status: null,
        protection_status: null,
        lock_status: null,
        encryption_method: null,
        encryption_percentage: null,
        protectors: null,
      };
      pendingVolumeRows.push(row);
      list.push(row);
      return row;
    };

    for (let start = 0; start < reports.length; start += chunkSize) {
      const chunk = reports.slice(start, start + chunkSize);
      const fps = chunk.map((r) => fingerprint(clientId, r.recoveryPassword));

      // One round trip per chunk for what the vault already knows about these keys.
      const newKeyIds = [...new Set(chunk.map((r) => r.keyId).filter((k): k is string => !!k && !askedKeyIds.has(k)))];
      const newFps = [...new Set(fps.filter((f) => !askedFps.has(f)))];
      newKeyIds.forEach((k) => askedKeyIds.add(k));
      newFps.forEach((f) => askedFps.add(f));
      for (const row of await keys.findForIngest(tx, clientId, newKeyIds, newFps)) remember({ ...row, isNew: false });

      // Devices by name / Entra id for this chunk, in bulk.
      const names = [
        ...new Set(
          chunk
            .map((r) => r.device?.name?.trim())
            .filter((n): n is string => !!n)
            .map(deviceNameKey),
        ),
      ].filter((n) => !devicesByName.has(n));
      for (const d of await devices.findByNameKeys(tx, clientId, names)) devicesByName.set(d.name_key, d);
      const entraIds = [...new Set(chunk.map((r) => r.device?.entraDeviceId).filter((n): n is string => !!n))].filter((n) => !devicesByEntra.has(n));
      for (const d of await devices.findByEntraIds(tx, clientId, entraIds)) devicesByEntra.set(d.entra_device_id!, d);
      // Volumes of the existing devices this chunk touches, in one query.
      const needVolumes = new Set<string>();
      for (const r of chunk) {
        const name = r.device?.name?.trim();
        const d = (r.device?.entraDeviceId && devicesByEntra.get(r.device.entraDeviceId)) || (name && devicesByName.get(deviceNameKey(name)));
        if (d && !volumesByDevice.has(d.id)) needVolumes.add(d.id);
      }
      if (needVolumes.size) {
        for (const id of needVolumes) volumesByDevice.set(id, []);
        for (const vol of await devices.volumesOf(tx, clientId, [...needVolumes])) volumesByDevice.get(vol.device_id)!.push(vol);
      }

      const inserts: RecoveryKeysTable[] = [];
      const sources = new Map<string, KeySourcesTable>();
      const touched = new Set<string>();
      const conflicted = new Set<string>();
      const patches = new Map<string, Parameters<KeysRepo['patch']>[3]>();
      const addSource = (keyRowId: string, createdAt: string | null) => {
        if (!sources.has(keyRowId)) {
          sources.set(keyRowId, {
            id: newId(),
            client_id: clientId,
            recovery_key_id: keyRowId,
            source_type: source.type,
            source_ref: source.ref,
            source_created_at: createdAt,
            first_seen_at: now,
            last_seen_at: now,
          });
        }
      };

      for (let i = 0; i < chunk.length; i++) {
        const r = chunk[i]!;
        const fp = fps[i]!;
        const createdAt = r.createdAt ?? null;
        const device = await resolveDevice(r.device);
        if (device && !filedUnder.has(device.id)) {
          filedUnder.add(device.id);
          result.devices.push({ id: device.id, name: device.name });
        }
        const volume = await resolveVolume(device, r.volume);

        const sameId = r.keyId ? (byKeyId.get(r.keyId) ?? []) : [];
        const samePassword = byFp.get(fp) ?? [];
        let match: Known | undefined;
        let clash: Known[] = [];
        if (r.keyId) {
          match = sameId.find((k) => k.fingerprint === fp);
          if (!match) {
            // The password is known under no ID yet: this report supplies the ID.
            match = samePassword.find((k) => k.key_id === null);
            clash = [...sameId, ...samePassword.filter((k) => k.key_id !== null && k.key_id !== r.keyId)];
          }
        } else {
          match = samePassword[0];
        }

        let outcome: IngestOutcome;
        if (match) {
          outcome = 'duplicate';
          const patch: Parameters<KeysRepo['patch']>[3] = {};
          if (!match.key_id && r.keyId) patch.key_id = r.keyId;
          if (!match.device_id && device) patch.device_id = device.id;
          if (!match.volume_id && volume) patch.volume_id = volume.id;
          if (createdAt && (!match.source_created_at || createdAt < match.source_created_at)) patch.source_created_at = createdAt;
          if (Object.keys(patch).length) {
            if (match.isNew) {
              Object.assign(
                inserts.find((k) => k.id === match.id)!,
                patch,
              );
            } else {
              // Applied after this chunk's new devices and volumes are written (foreign keys).
              patches.set(match.id, { ...patches.get(match.id), ...patch });
            }
            const hadKeyId = match.key_id;
            Object.assign(match, patch);
            // Index it under the key ID it just got, so later reports with that ID find it.
            if (!hadKeyId && match.key_id) (byKeyId.get(match.key_id) ?? byKeyId.set(match.key_id, []).get(match.key_id)!).push(match);
          }
          if (!match.isNew) touched.add(match.id);
          addSource(match.id, createdAt);
        } else {
          outcome = clash.length ? 'conflict' : 'imported';
          const id = newId();
          const sealed = cipher.sealRecoveryPassword(id, r.recoveryPassword);
          const row: RecoveryKeysTable = {
            id,
            client_id: clientId,
            device_id: device?.id ?? null,
            volume_id: volume?.id ?? null,
            key_id: r.keyId,
            ciphertext: sealed.ciphertext,
            data_key_version: sealed.dataKeyVersion,
            fingerprint: fp,
            state: clash.length ? 'conflict' : 'active',
            source_created_at: createdAt,
            first_seen_at: now,
            last_seen_at: now,
            state_changed_at: now,
            created_at: now,
          };
          inserts.push(row);
          remember({ ...row, isNew: true });
          addSource(id, createdAt);
          for (const k of clash) {
            if (k.isNew) {
              const pending = inserts.find((x) => x.id === k.id)!;
              if (pending.state === 'active') pending.state = 'conflict';
            } else conflicted.add(k.id);
            if (k.state === 'active') k.state = 'conflict';
          }
          if (clash.length) {
            await audit.record(tx, actor, {
              action: 'key.conflict',
              outcome: 'success',
              clientId,
              targetType: 'recovery_key',
              targetId: id,
              details: {
                keyId: r.keyId,
                source: source.type,
                sourceRef: source.ref,
                conflictsWith: clash.map((k) => k.id),
                problem:
                  r.keyId && clash.some((k) => k.key_id === r.keyId)
                    ? 'a different recovery password was reported under the same key ID'
                    : 'the same recovery password was reported under a different key ID',
              },
            });
          }
        }
        result.outcomes.push(outcome);
        result.keyRowIds.push(match ? match.id : inserts[inserts.length - 1]!.id);
        if (outcome === 'imported') result.imported++;
        else if (outcome === 'duplicate') result.duplicates++;
        else result.conflicts++;
      }

      await devices.insertMany(tx, pendingDevices);
      await devices.insertVolumes(tx, pendingVolumeRows);
      pendingDevices = [];
      pendingVolumeRows = [];
      await keys.insertKeys(tx, inserts);
      for (const [id, patch] of patches) await keys.patch(tx, clientId, id, patch);
      await keys.upsertSources(tx, [...sources.values()]);
      await keys.touch(tx, clientId, [...touched], now);
      await keys.flagConflicts(tx, clientId, [...conflicted], now);
      onProgress?.(Math.min(start + chunkSize, reports.length), reports.length);
      // SQLite answers synchronously: without this a large import would hold the event loop
      // (health checks, sign-ins) from its first chunk to its last.
      if (start + chunkSize < reports.length) await yieldToEventLoop();
    }
    await devices.touch(tx, clientId, [...touchedDevices], now);
    const keyDevices = new Set<string>();
    for (const id of result.keyRowIds) {
      const deviceId = seenRows.get(id)?.device_id;
      if (deviceId) keyDevices.add(deviceId);
    }
    result.deviceIds = [...keyDevices];
    return result;
  };
}
export type KeyIngest = ReturnType<typeof createKeyIngest>;
