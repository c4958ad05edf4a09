import type { Db } from '../../db/database.js';
import { notFound } from '../../lib/errors.js';
import { clientScope, requirePermission, type Actor } from '../authz/authz.js';

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

const ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

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

export function createKeyHistory({ db }: { db: Db }) {
  return async function history(actor: Actor, deviceId: string): Promise<KeyHistory> {
    requirePermission(actor, 'key:list');
    const scope = clientScope(actor);
    let q = db
      .selectFrom('devices as d')
      .innerJoin('clients as c', 'c.id', 'd.client_id')
      .select(['d.id', 'd.name', 'd.client_id', 'd.retired_at', 'c.name as client_name'])
      .where('d.id', '=', ID.test(deviceId) ? deviceId.toLowerCase() : '')
      .where('c.archived_at', 'is', null);
    if (scope) q = scope.length ? q.where('d.client_id', 'in', scope as string[]) : q.where((eb) => eb.val(false));
    const device = await q.executeTakeFirst();
    if (!device) throw notFound(`No device with id ${deviceId.slice(0, 60)}.`);
    const clientId = device.client_id;

    const volumes = await db.selectFrom('volumes').select(['id', 'mount_point', 'volume_type']).where('client_id', '=', clientId).where('device_id', '=', device.id).orderBy('mount_point').execute();
    // Metadata columns only: the ciphertext is never selected here.
    const keys = await db
      .selectFrom('recovery_keys')
      .select(['id', 'key_id', 'volume_id', 'state', 'source_created_at', 'first_seen_at', 'last_seen_at', 'destroyed_at', 'destroyed_reason'])
      .where('client_id', '=', clientId)
      .where('device_id', '=', device.id)
      .orderBy('first_seen_at')
      .execute();
    const ids = keys.map((k) => k.id);
    const sources = ids.length
      ? await db
          .selectFrom('key_sources')
          .select(['recovery_key_id', 'source_type', 'source_ref', 'source_created_at', 'first_seen_at', 'last_seen_at', 'removed_at'])
          .where('client_id', '=', clientId)
          .where('recovery_key_id', 'in', ids)
          .orderBy('first_seen_at')
          .execute()
      : [];
    const audits = ids.length
      ? await db
          .selectFrom('audit_events')
          .select(['occurred_at', 'action', 'outcome', 'actor_name', 'target_id', 'reason_code', 'ticket', 'details'])
          .where('client_id', '=', clientId)
          .where('target_id', 'in', ids)
          .where('action', 'in', Object.keys(AUDIT_TYPES))
          .where('outcome', '=', 'success')
          .orderBy('seq')
          .execute()
      : [];

    const timelines = new Map<string, KeyTimeline>();
    for (const k of keys) {
      const mine = sources.filter((s) => s.recovery_key_id === k.id);
      const events: HistoryEvent[] = [];
      for (const s of mine) {
        const source = { type: s.source_type, ref: s.source_ref };
        // "Created" as that source tells it (BitLocker's own time for Entra and AD), else when we first saw it there.
        events.push({ at: s.source_created_at ?? s.first_seen_at, type: 'created', source, detail: s.source_created_at ? 'time reported by the source' : 'first seen by this source' });
        if (s.removed_at) events.push({ at: s.removed_at, type: 'removed_at_source', source });
      }
      events.push({ at: k.first_seen_at, type: 'first_seen' });
      events.push({ at: k.last_seen_at, type: 'last_seen' });
      for (const a of audits.filter((x) => x.target_id === k.id)) {
        let d: Record<string, unknown> = {};
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
      if (k.destroyed_at && !events.some((e) => e.type === 'destroyed')) events.push({ at: k.destroyed_at, type: 'destroyed', detail: k.destroyed_reason ?? null });
      events.sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
      timelines.set(k.id, {
        id: k.id,
        keyId: k.key_id,
        state: k.state,
        createdAt: k.source_created_at,
        firstSeenAt: k.first_seen_at,
        lastSeenAt: k.last_seen_at,
        destroyedAt: k.destroyed_at ?? null,
        sources: mine.map((s) => ({ type: s.source_type, ref: s.source_ref, createdAt: s.source_created_at, firstSeenAt: s.first_seen_at, lastSeenAt: s.last_seen_at, removedAt: s.removed_at ?? null })),
        events,
      });
    }

    const byVolume = new Map<string | null, KeyTimeline[]>();
    for (const k of keys) (byVolume.get(k.volume_id) ?? byVolume.set(k.volume_id, []).get(k.volume_id)!).push(timelines.get(k.id)!);
    const out: KeyHistory['volumes'] = volumes.map((v) => ({ volume: { id: v.id, mountPoint: v.mount_point, type: v.volume_type }, keys: byVolume.get(v.id) ?? [] }));
    if (byVolume.get(null)?.length) out.push({ volume: null, keys: byVolume.get(null)! });
    return {
      device: { id: device.id, name: device.name, client: { id: clientId, name: device.client_name }, retiredAt: device.retired_at },
      volumes: out,
    };
  };
}
export type KeyHistoryFn = ReturnType<typeof createKeyHistory>;
