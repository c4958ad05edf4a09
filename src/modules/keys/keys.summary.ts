import type { Executor } from '../../db/database.js';
import type { KeySummaryRow, KeysRepo } from './keys.repo.js';
import type { KeyState, KeySummary } from './keys.types.js';

/**
 * Key rows as the API shows them (metadata and sources, never a password). The one place that
 * decides "may not unlock": an open mismatch finding from the device's agent on that key.
 */
export async function summarizeKeys(repo: Pick<KeysRepo, 'summaryExtras'>, exec: Executor, rows: readonly KeySummaryRow[]): Promise<KeySummary[]> {
  const { sources, mayNotUnlock } = await repo.summaryExtras(
    exec,
    rows.map((r) => r.id),
  );
  return toKeySummaries(rows, sources, mayNotUnlock);
}

type SourceRow = Awaited<ReturnType<KeysRepo['summaryExtras']>>['sources'][number];

/** Rows that were read with their sources and "may not unlock" flag (the reveal's search). */
export function summariesOf(rows: readonly (KeySummaryRow & { sources: SourceRow[]; may_not_unlock: boolean })[]): KeySummary[] {
  return toKeySummaries(
    rows,
    rows.flatMap((r) => r.sources),
    new Set(rows.filter((r) => r.may_not_unlock).map((r) => r.id)),
  );
}

function toKeySummaries(rows: readonly KeySummaryRow[], sources: readonly SourceRow[], mismatched: ReadonlySet<string>): KeySummary[] {
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
    mayNotUnlock: mismatched.has(r.id),
    createdAt: r.source_created_at,
    firstSeenAt: r.first_seen_at,
    lastSeenAt: r.last_seen_at,
    sources: byKey.get(r.id) ?? [],
  }));
}

/** States whose password is not the one to read out first (replaced, or gone). */
const SPENT: readonly string[] = ['rotated', 'superseded', 'destroyed'];

/**
 * Candidates for one key ID in the order to try them on the phone: keys that may work before keys
 * the agent proved wrong or that were replaced; then the ones the device's own agent reported
 * (it read them from the drive); then the newest. `tryFirst` is the record id of the first one,
 * or null when none of them is likely to unlock (all spent or mismatched).
 */
export function rankCandidates(keys: readonly KeySummary[]): { keys: KeySummary[]; tryFirst: string | null } {
  const unlikely = (k: KeySummary) => (SPENT.includes(k.state) ? 2 : k.mayNotUnlock ? 1 : 0);
  const byAgent = (k: KeySummary) => (k.sources.some((s) => s.type === 'agent' && !s.removedAt) ? 0 : 1);
  const date = (k: KeySummary) => k.createdAt ?? k.firstSeenAt;
  const sorted = [...keys].sort((a, b) => unlikely(a) - unlikely(b) || byAgent(a) - byAgent(b) || date(b).localeCompare(date(a)) || a.id.localeCompare(b.id));
  const first = sorted[0];
  return { keys: sorted, tryFirst: sorted.length > 1 && first && unlikely(first) === 0 ? first.id : null };
}
