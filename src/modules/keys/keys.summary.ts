import type { Executor } from '../../db/database.js';
import type { KeySummaryRow, KeysRepo } from './keys.repo.js';
import type { KeyState, KeySummary } from './keys.types.js';

/** Key rows as the API shows them (metadata and sources, never a password). */
export async function summarizeKeys(repo: Pick<KeysRepo, 'sourcesOf'>, exec: Executor, rows: readonly KeySummaryRow[]): Promise<KeySummary[]> {
  const sources = await repo.sourcesOf(
    exec,
    rows.map((r) => r.id),
  );
  const byKey = new Map<string, KeySummary['sources']>();
  for (const s of sources) {
    (byKey.get(s.recovery_key_id) ?? byKey.set(s.recovery_key_id, []).get(s.recovery_key_id)!).push({
      type: s.source_type,
      ref: s.source_ref,
      firstSeenAt: s.first_seen_at,
      lastSeenAt: s.last_seen_at,
      removedAt: s.removed_at ?? null,
    });
  }
  return rows.map((r) => ({
    id: r.id,
    keyId: r.key_id,
    client: { id: r.client_id, name: r.client_name },
    device: r.device_id ? { id: r.device_id, name: r.device_name ?? '' } : null,
    volume: r.mount_point || r.volume_type ? { mountPoint: r.mount_point ?? null, type: r.volume_type ?? 'unknown' } : null,
    state: r.state as KeyState,
    createdAt: r.source_created_at,
    firstSeenAt: r.first_seen_at,
    lastSeenAt: r.last_seen_at,
    sources: byKey.get(r.id) ?? [],
  }));
}
