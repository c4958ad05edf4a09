/**
 * When to warn that a certificate Keywarden signs in with (the MSP app's, a client's app's) runs out:
 * 30 days before, 7 days before, and once it has expired. Each stage is told once per certificate
 * (remembered as `<thumbprint>:<stage>`); a new certificate starts over.
 */
export type ExpiryStage = '30' | '7' | 'expired';

const DAY = 86_400_000;

/** The stage a certificate expiring at `expiresAt` is in at `now`, or null while it has more than 30 days. */
export function expiryStage(expiresAt: string, now: string): ExpiryStage | null {
  const left = Date.parse(expiresAt) - Date.parse(now);
  if (!Number.isFinite(left)) return null;
  if (left <= 0) return 'expired';
  if (left <= 7 * DAY) return '7';
  if (left <= 30 * DAY) return '30';
  return null;
}

const RANK: Record<ExpiryStage, number> = { '30': 1, '7': 2, expired: 3 };

/**
 * The stage to warn about now, or null: only a stage later than the one already told for this
 * certificate (`warned`, `<thumbprint>:<stage>` or null). A certificate first seen at 5 days is told
 * once (stage 7), not twice.
 */
export function stageToWarn(thumbprint: string, expiresAt: string, now: string, warned: string | null | undefined): ExpiryStage | null {
  const stage = expiryStage(expiresAt, now);
  if (!stage) return null;
  const [thumb, told] = (warned ?? '').split(':');
  if (thumb === thumbprint && told && told in RANK && RANK[told as ExpiryStage] >= RANK[stage]) return null;
  return stage;
}

/** Days left, rounded down (0 on the last day, negative once expired). */
export const daysLeft = (expiresAt: string, now: string) => Math.floor((Date.parse(expiresAt) - Date.parse(now)) / DAY);
