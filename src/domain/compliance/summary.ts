import { COMPLIANCE_STATUSES, type ComplianceStatus } from './evaluate.js';

/**
 * The one definition of a client's (or a set of clients') compliance numbers, used by the Clients
 * overview, the client page and the compliance report, so the three always show the same figures:
 *
 * - every device in service counts once, under its stored status; a device that was never evaluated,
 *   or whose stored status is not one of COMPLIANCE_STATUSES, counts as **unknown**;
 * - **judged** devices are the compliant and the non-compliant ones: exempt devices are not judged
 *   (docs/compliance.md) and unknown ones cannot be;
 * - **percent compliant** = compliant ÷ judged, rounded to a whole per cent; `null` when no device
 *   is judged (no agent ever reported one): shown as "unknown", never as 0 %;
 * - the **level** colours it: `all` (nothing non-compliant: green), `most` (at least 80 % compliant:
 *   yellow), `some` (at least 50 %: orange), `few` (below 50 %: red), `unknown` (grey).
 */

export type ComplianceCounts = Record<ComplianceStatus, number>;
export type ComplianceLevel = 'all' | 'most' | 'some' | 'few' | 'unknown';
export type ComplianceSummary = ComplianceCounts & {
  /** Devices in service: the sum of the four statuses. */
  devices: number;
  /** Compliant + non-compliant. */
  judged: number;
  /** compliant ÷ judged in whole per cent; null when nothing is judged. */
  percentCompliant: number | null;
  level: ComplianceLevel;
};

/** Thresholds of the levels, in per cent compliant (documented in docs/compliance.md). */
export const LEVEL_THRESHOLDS = { most: 80, some: 50 } as const;

/** A stored status (or none: not evaluated yet) as one of the four statuses. */
export function complianceStatusOf(stored: string | null | undefined): ComplianceStatus {
  return (COMPLIANCE_STATUSES as readonly string[]).includes(stored ?? '') ? (stored as ComplianceStatus) : 'unknown';
}

/**
 * Counts per stored status (rows of a GROUP BY, in any order, possibly repeated) and the number of
 * devices in service; devices without a row are unknown.
 */
export function summarizeCompliance(byStatus: Iterable<{ status: string | null; n: number | string | bigint }>, devices: number): ComplianceSummary {
  const c: ComplianceCounts = { compliant: 0, 'non-compliant': 0, exempt: 0, unknown: 0 };
  let seen = 0;
  for (const r of byStatus) {
    const n = Number(r.n);
    seen += n;
    c[complianceStatusOf(r.status)] += n;
  }
  // Never evaluated yet (a device that just appeared): unknown. More rows than devices cannot
  // happen for devices in service; the total follows the rows then rather than go negative.
  c.unknown += Math.max(devices - seen, 0);
  return withSummary(c);
}

/** Adds up summaries (several clients: the MSP-wide line of a report). */
export function addSummaries(parts: Iterable<ComplianceCounts>): ComplianceSummary {
  const c: ComplianceCounts = { compliant: 0, 'non-compliant': 0, exempt: 0, unknown: 0 };
  for (const p of parts) for (const s of COMPLIANCE_STATUSES) c[s] += p[s];
  return withSummary(c);
}

function withSummary(c: ComplianceCounts): ComplianceSummary {
  const judged = c.compliant + c['non-compliant'];
  const ratio = judged ? c.compliant / judged : null;
  const level: ComplianceLevel =
    ratio === null
      ? 'unknown'
      : c['non-compliant'] === 0
        ? 'all'
        : ratio * 100 >= LEVEL_THRESHOLDS.most
          ? 'most'
          : ratio * 100 >= LEVEL_THRESHOLDS.some
            ? 'some'
            : 'few';
  // 999 of 1000 is not "100 %": only a client with nothing non-compliant shows 100.
  const percent = ratio === null ? null : c['non-compliant'] > 0 ? Math.min(Math.round(ratio * 100), 99) : 100;
  return { ...c, devices: c.compliant + c['non-compliant'] + c.exempt + c.unknown, judged, percentCompliant: percent, level };
}
