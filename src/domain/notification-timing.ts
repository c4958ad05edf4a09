/**
 * When notifications and scheduled reports go out: pure functions over ISO-8601 UTC times, so the
 * delivery worker can be driven by an injected clock in tests.
 */

export type DigestMode = 'none' | 'hourly' | 'daily';
export const DIGEST_MODES: readonly DigestMode[] = ['none', 'hourly', 'daily'];

/**
 * When an item of a rule becomes due. 'none' waits only the short gathering window, so a burst of
 * events from one sync (500 devices at once) lands in one digest instead of 500 messages; hourly
 * goes out at the next full hour, daily at the next `dailyHourUtc`:00 UTC.
 */
export function itemDueAt(nowIso: string, mode: DigestMode, opts: { gatherSeconds: number; dailyHourUtc: number }): string {
  const now = new Date(nowIso);
  if (mode === 'none') return new Date(now.getTime() + opts.gatherSeconds * 1000).toISOString();
  if (mode === 'hourly') {
    const next = new Date(now);
    next.setUTCMinutes(0, 0, 0);
    next.setUTCHours(next.getUTCHours() + 1);
    return next.toISOString();
  }
  const next = new Date(now);
  next.setUTCHours(opts.dailyHourUtc, 0, 0, 0);
  if (next.getTime() <= now.getTime()) next.setUTCDate(next.getUTCDate() + 1);
  return next.toISOString();
}

/**
 * Exponential backoff with "equal jitter": half the delay is fixed, half random, so retries of
 * many deliveries to one recovering endpoint spread out instead of arriving together.
 * attempt is the number of attempts made so far (1 after the first failure).
 */
export function backoffMs(attempt: number, opts: { baseMs: number; capMs: number }, random: () => number = Math.random): number {
  const exp = Math.min(opts.capMs, opts.baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(exp / 2 + random() * (exp / 2));
}

export type ReportFrequency = 'monthly' | 'weekly' | 'daily';
export type ReportTiming = { frequency: ReportFrequency; day: number | null; hour: number; minute: number };

/** Checks a schedule's fields; returns a message in product words, or null when it is valid. */
export function reportTimingProblem(t: ReportTiming): string | null {
  if (!Number.isInteger(t.hour) || t.hour < 0 || t.hour > 23) return 'hour must be 0 to 23 (UTC).';
  if (!Number.isInteger(t.minute) || t.minute < 0 || t.minute > 59) return 'minute must be 0 to 59.';
  if (t.frequency === 'monthly' && (t.day === null || !Number.isInteger(t.day) || t.day < 1 || t.day > 28)) {
    return 'day must be 1 to 28 for a monthly schedule (every month has those days).';
  }
  if (t.frequency === 'weekly' && (t.day === null || !Number.isInteger(t.day) || t.day < 0 || t.day > 6)) {
    return 'day must be 0 (Sunday) to 6 (Saturday) for a weekly schedule.';
  }
  return null;
}

/** The first run strictly after `afterIso` (UTC). */
export function nextReportRun(t: ReportTiming, afterIso: string): string {
  const after = new Date(afterIso);
  const at = (y: number, m: number, d: number) => new Date(Date.UTC(y, m, d, t.hour, t.minute, 0, 0));
  if (t.frequency === 'daily') {
    let c = at(after.getUTCFullYear(), after.getUTCMonth(), after.getUTCDate());
    if (c <= after) c = at(after.getUTCFullYear(), after.getUTCMonth(), after.getUTCDate() + 1);
    return c.toISOString();
  }
  if (t.frequency === 'weekly') {
    const delta = (t.day! - after.getUTCDay() + 7) % 7;
    let c = at(after.getUTCFullYear(), after.getUTCMonth(), after.getUTCDate() + delta);
    if (c <= after) c = at(after.getUTCFullYear(), after.getUTCMonth(), after.getUTCDate() + delta + 7);
    return c.toISOString();
  }
  let c = at(after.getUTCFullYear(), after.getUTCMonth(), t.day!);
  if (c <= after) c = at(after.getUTCFullYear(), after.getUTCMonth() + 1, t.day!);
  return c.toISOString();
}

/** The period a report sent at `runIso` covers: the previous month, week or day. */
export function reportPeriod(t: ReportTiming, runIso: string): { from: string; to: string } {
  const run = new Date(runIso);
  const to = new Date(Date.UTC(run.getUTCFullYear(), run.getUTCMonth(), run.getUTCDate()));
  const from = new Date(to);
  if (t.frequency === 'monthly') from.setUTCMonth(from.getUTCMonth() - 1);
  else if (t.frequency === 'weekly') from.setUTCDate(from.getUTCDate() - 7);
  else from.setUTCDate(from.getUTCDate() - 1);
  return { from: from.toISOString(), to: to.toISOString() };
}
