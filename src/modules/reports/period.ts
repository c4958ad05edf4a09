import { badRequest } from '../../lib/errors.js';

/** A report period: `from` included, `to` excluded, both ISO instants (UTC). */
export type ReportPeriod = { from: string; to: string };
export type PeriodInput = { month?: string; from?: string; to?: string };

const MONTH = /^(\d{4})-(\d{2})$/;
const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;

/** How the caller names the three inputs in messages: query parameters (API) or options (CLI). */
export type PeriodNames = Record<'month' | 'from' | 'to', string>;
const API_NAMES: PeriodNames = { month: 'month', from: 'from', to: 'to' };

function date(value: string, field: 'from' | 'to', names: PeriodNames): number {
  const m = DATE.exec(value);
  const t = m ? Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])) : NaN;
  // Date.UTC rolls 2026-02-30 over to March: compare back to catch dates that do not exist.
  if (!m || new Date(t).toISOString().slice(0, 10) !== value)
    throw badRequest(`"${value.slice(0, 20)}" is not a date: give ${names[field]} as YYYY-MM-DD, e.g. 2026-11-01.`, { field });
  return t;
}

/**
 * The period asked for, or null for all time. `month` (YYYY-MM) is that calendar month; `from`
 * and `to` (YYYY-MM-DD) are days, both included (UTC); either may be left out.
 */
export function parsePeriod(input: PeriodInput, names: PeriodNames = API_NAMES): ReportPeriod | null {
  const { month, from, to } = input;
  if (month !== undefined && (from !== undefined || to !== undefined))
    throw badRequest(`Give either ${names.month} or ${names.from}/${names.to}, not both.`, { field: 'month' });
  if (month !== undefined) {
    const m = MONTH.exec(month);
    const mo = m ? Number(m[2]) : 0;
    if (!m || mo < 1 || mo > 12) throw badRequest(`"${month.slice(0, 20)}" is not a month: give ${names.month} as YYYY-MM, e.g. 2026-11.`, { field: 'month' });
    const start = Date.UTC(Number(m[1]), mo - 1, 1);
    const end = Date.UTC(Number(m[1]), mo, 1);
    return { from: new Date(start).toISOString(), to: new Date(end).toISOString() };
  }
  if (from === undefined && to === undefined) return null;
  const start = from !== undefined ? date(from, 'from', names) : Date.UTC(1970, 0, 1);
  const end = to !== undefined ? date(to, 'to', names) + 86_400_000 : Date.UTC(9999, 0, 1);
  if (end <= start) throw badRequest(`The period ends (${names.to} ${to}) before it starts (${names.from} ${from}).`, { field: 'to' });
  return { from: new Date(start).toISOString(), to: new Date(end).toISOString() };
}
