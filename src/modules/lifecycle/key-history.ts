import type { Transactions } from '../../db/transactions.js';
import { notFound } from '../../lib/errors.js';
import { clientScope, requirePermission, type Actor } from '../authz/authz.js';
import type { LifecycleRepo } from './lifecycle.repo.js';

/**
 * Key history: for every volume of a device, every key it has had, as a timeline built from what
 * the vault already records (key rows, key sources, the audit log). Metadata only: no password,
 * no ciphertext. Readable by whoever may list the device's keys (owner, admin, technician, auditor).
 */
export type HistoryEvent = {
  at: string;
  /** created | first_seen | last_seen | removed_at_source | disclosed | portal_read | rotated | superseded | used | conflict | destroyed */
  type: string;
  /** A source ('agent', 'entra', 'ad', 'import') and which one, for created / seen / removed events. */
  source?: { type: string; ref: string };
  /** Who did it (disclosures, destruction). */
  by?: string;
  reason?: string | null;
  ticket?: string | null;
  detail?: string | null;
};
export type KeyTimeline = {
  id: string;
  keyId: string | null;
  state: string;
  createdAt: string | null;
  firstSeenAt: string;
  lastSeenAt: string;
  destroyedAt: string | null;
  sources: { type: string; ref: string; createdAt: string | null; firstSeenAt: string; lastSeenAt: string; removedAt: string | null }[];
  events: HistoryEvent[];
};
export type KeyHistory = {
  device: { id: string; name: string; client: { id: string; name: string }; retiredAt: string | null };
  volumes: { volume: { id: string; mountPoint: string | null; type: string } | null; keys: KeyTimeline[] }[];
};

/** Audit actions that belong in a key's timeline, and how they read there. */
const AUDIT_TYPES: Record<string, string> = {
  'key.reveal': 'disclosed',
  'entra.key_read': 'portal_read',
  'key.rotated': 'rotated',
  'key.superseded': 'superseded',
  'key.used': 'used',
  'key.conflict': 'conflict',
  'key.destroyed': 'destroyed',
};

const text = (v: unknown) => (typeof v === 'string' ? v : null);

export function createKeyHistory({ tx, repo }: { tx: Transactions; repo: LifecycleRepo }) {
  return async function history(actor: Actor, deviceId: string): Promise<KeyHistory> {
    requirePermission(actor, 'key:list');
    const exec = tx.reader;
    const device = await repo.historyDevice(exec, deviceId, clientScope(actor));
    if (!device) throw notFound(`No device with id ${deviceId.slice(0, 60)}.`);
    const clientId = device.client_id;

    const volumes = await repo.volumesOf(exec, clientId, device.id);
    const keys = await repo.keyMetadataOf(exec, clientId, device.id);
    const ids = keys.map((k) => k.id);
    const sources = await repo.sourcesOf(exec, clientId, ids);
    const audits = await repo.keyAuditEvents(exec, clientId, ids, Object.keys(AUDIT_TYPES));

    const timelines = new Map<string, KeyTimeline>();
    for (const k of keys) {
      const mine = sources.filter((s) => s.recovery_key_id === k.id);
      const events: HistoryEvent[] = [];
      for (const s of mine) {
        const source = { type: s.source_type, ref: s.source_ref };
        // "Created" as that source tells it (BitLocker's own time for Entra and AD), else when we first saw it there.
        events.push({
          at: s.source_created_at ?? s.first_seen_at,
          type: 'created',
          source,
          detail: s.source_created_at ? 'time reported by the source' : 'first seen by this source',
        });
        if (s.removed_at) events.push({ at: s.removed_at, type: 'removed_at_source', source });
      }
      events.push({ at: k.first_seen_at, type: 'first_seen' });
      events.push({ at: k.last_seen_at, type: 'last_seen' });
      for (const a of audits.filter((x) => x.target_id === k.id)) {
        let d: Record<string, unknown>;
        try {
          d = a.details ? (JSON.parse(a.details) as Record<string, unknown>) : {};
        } catch {
          d = {};
        }
        events.push({
          at: a.occurred_at,
          type: AUDIT_TYPES[a.action]!,
          by: a.actor_name,
          reason: a.reason_code,
          ticket: a.ticket,
          detail: text(d.why) ?? text(d.problem) ?? text(d.note) ?? null,
        });
      }
      // A client offboarding marks keys destroyed in one statement, audited once for the client.
      if (k.destroyed_at && !events.some((e) => e.type === 'destroyed'))
        events.push({ at: k.destroyed_at, type: 'destroyed', detail: k.destroyed_reason ?? null });
      events.sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
      timelines.set(k.id, {
        id: k.id,
        keyId: k.key_id,
        state: k.state,
        createdAt: k.source_created_at,
        firstSeenAt: k.first_seen_at,
        lastSeenAt: k.last_seen_at,
        destroyedAt: k.destroyed_at ?? null,
        sources: mine.map((s) => ({
          type: s.source_type,
          ref: s.source_ref,
          createdAt: s.source_created_at,
          firstSeenAt: s.first_seen_at,
          lastSeenAt: s.last_seen_at,
          removedAt: s.removed_at ?? null,
        })),
        events,
      });
    }

    const byVolume = new Map<string | null, KeyTimeline[]>();
    for (const k of keys) (byVolume.get(k.volume_id) ?? byVolume.set(k.volume_id, []).get(k.volume_id)!).push(timelines.get(k.id)!);
    const out: KeyHistory['volumes'] = volumes.map((v) => ({
      volume: { id: v.id, mountPoint: v.mount_point, type: v.volume_type },
      keys: byVolume.get(v.id) ?? [],
    }));
    if (byVolume.get(null)?.length) out.push({ volume: null, keys: byVolume.get(null)! });
    return {
      device: { id: device.id, name: device.name, client: { id: clientId, name: device.client_name }, retiredAt: device.retired_at },
      volumes: out,
    };
  };
}
export type KeyHistoryFn = ReturnType<typeof createKeyHistory>;
