import { describe, expect, it } from 'vitest';
import { backoffMs, itemDueAt, nextReportRun, reportPeriod, reportTimingProblem } from './notification-timing.js';

describe('notification timing', () => {
  it('holds immediate items for the gathering window, hourly ones to the next full hour, daily ones to the digest hour', () => {
    const opts = { gatherSeconds: 30, dailyHourUtc: 7 };
    expect(itemDueAt('2026-03-01T10:15:20.000Z', 'none', opts)).toBe('2026-03-01T10:15:50.000Z');
    expect(itemDueAt('2026-03-01T10:15:20.000Z', 'hourly', opts)).toBe('2026-03-01T11:00:00.000Z');
    expect(itemDueAt('2026-03-01T23:59:59.000Z', 'hourly', opts)).toBe('2026-03-02T00:00:00.000Z');
    expect(itemDueAt('2026-03-01T06:59:00.000Z', 'daily', opts)).toBe('2026-03-01T07:00:00.000Z');
    expect(itemDueAt('2026-03-01T07:00:00.000Z', 'daily', opts)).toBe('2026-03-02T07:00:00.000Z');
    expect(itemDueAt('2026-12-31T08:00:00.000Z', 'daily', opts)).toBe('2027-01-01T07:00:00.000Z');
  });

  it('backs off exponentially with equal jitter, capped', () => {
    const o = { baseMs: 60_000, capMs: 3600_000 };
    expect(backoffMs(1, o, () => 0)).toBe(30_000);
    expect(backoffMs(1, o, () => 1)).toBe(60_000);
    expect(backoffMs(2, o, () => 0)).toBe(60_000);
    expect(backoffMs(3, o, () => 1)).toBe(240_000);
    expect(backoffMs(20, o, () => 1)).toBe(3600_000);
    expect(backoffMs(20, o, () => 0)).toBe(1800_000);
  });

  it('computes the next monthly, weekly and daily report run strictly after a time', () => {
    const monthly = { frequency: 'monthly' as const, day: 1, hour: 7, minute: 0 };
    expect(nextReportRun(monthly, '2026-03-01T06:59:00.000Z')).toBe('2026-03-01T07:00:00.000Z');
    expect(nextReportRun(monthly, '2026-03-01T07:00:00.000Z')).toBe('2026-04-01T07:00:00.000Z');
    expect(nextReportRun(monthly, '2026-12-15T00:00:00.000Z')).toBe('2027-01-01T07:00:00.000Z');
    // 2026-03-04 is a Wednesday (3); Monday = 1.
    const weekly = { frequency: 'weekly' as const, day: 1, hour: 8, minute: 30 };
    expect(nextReportRun(weekly, '2026-03-04T12:00:00.000Z')).toBe('2026-03-09T08:30:00.000Z');
    expect(nextReportRun(weekly, '2026-03-09T08:29:00.000Z')).toBe('2026-03-09T08:30:00.000Z');
    expect(nextReportRun(weekly, '2026-03-09T08:30:00.000Z')).toBe('2026-03-16T08:30:00.000Z');
    const daily = { frequency: 'daily' as const, day: null, hour: 6, minute: 0 };
    expect(nextReportRun(daily, '2026-03-04T05:00:00.000Z')).toBe('2026-03-04T06:00:00.000Z');
    expect(nextReportRun(daily, '2026-03-04T06:00:00.000Z')).toBe('2026-03-05T06:00:00.000Z');
  });

  it('names the period a report covers and refuses impossible schedules', () => {
    expect(reportPeriod({ frequency: 'monthly', day: 1, hour: 7, minute: 0 }, '2026-03-01T07:00:00.000Z')).toEqual({
      from: '2026-02-01T00:00:00.000Z',
      to: '2026-03-01T00:00:00.000Z',
    });
    expect(reportPeriod({ frequency: 'weekly', day: 1, hour: 7, minute: 0 }, '2026-03-09T07:00:00.000Z')).toEqual({
      from: '2026-03-02T00:00:00.000Z',
      to: '2026-03-09T00:00:00.000Z',
    });
    expect(reportTimingProblem({ frequency: 'monthly', day: 31, hour: 7, minute: 0 })).toMatch(/1 to 28/);
    expect(reportTimingProblem({ frequency: 'weekly', day: 7, hour: 7, minute: 0 })).toMatch(/Sunday/);
    expect(reportTimingProblem({ frequency: 'daily', day: null, hour: 24, minute: 0 })).toMatch(/hour/);
    expect(reportTimingProblem({ frequency: 'daily', day: null, hour: 23, minute: 59 })).toBeNull();
  });
});
