import { once } from 'node:events';
import { pipeline } from 'node:stream/promises';
import { stringify } from 'csv-stringify';
import { sql } from 'kysely';
import type { Db, Executor } from '../../db/database.js';
import type { Clock } from '../../lib/clock.js';
import { badRequest, forbidden, notFound } from '../../lib/errors.js';
import { FINDING_CODES, FINDING_INFO, type FindingCode } from '../../domain/compliance/findings.js';
import type { Finding } from '../../domain/compliance/evaluate.js';
import { formatKeyIdForDisplay } from '../../domain/key-id.js';
import { REASON_CODES } from '../../domain/reason-codes.js';
import { clientScope, type Actor, type Role } from '../authz/authz.js';
import type { AuditService } from '../audit/audit.service.js';
import type { ComplianceService } from '../compliance/compliance.service.js';
import { readBranding } from './branding.js';
import { renderRecoveryAuditPdf, renderSummaryPdf } from './reports.pdf.js';

export const REPORT_KINDS = ['compliance-summary', 'devices', 'escrow-coverage', 'recovery-audit', 'recovery-boots'] as const;
export type ReportKind = (typeof REPORT_KINDS)[number];
export type ReportFormat = 'csv' | 'pdf';
export type ReportRequest = { report: ReportKind; clientId?: string | null; format: ReportFormat };
export const PDF_REPORTS: readonly ReportKind[] = ['compliance-summary', 'recovery-audit'];

/**
 * Who may read which report, by role, always limited to the actor's own clients:
 * - compliance, devices, escrow coverage, recovery boots: whoever may see devices (owner, admin,
 *   technician, auditor, client-viewer). These show device names and key IDs, never a password.
 * - recovery audit (who revealed which key, when, why): whoever may read the audit log (owner,
 *   admin, auditor), and the client's own IT staff (client-viewer) for their client: a client is
 *   entitled to know who accessed its keys. Technicians do not review each other's reveals.
 * Helpdesk reads no report: it looks keys up by ID and does not browse devices.
 */
export const REPORT_READERS: Record<ReportKind, readonly Role[]> = {
  'compliance-summary': ['owner', 'admin', 'technician', 'auditor', 'client-viewer'],
  devices: ['owner', 'admin', 'technician', 'auditor', 'client-viewer'],
  'escrow-coverage': ['owner', 'admin', 'technician', 'auditor', 'client-viewer'],
  'recovery-boots': ['owner', 'admin', 'technician', 'auditor', 'client-viewer'],
  'recovery-audit': ['owner', 'admin', 'auditor', 'client-viewer'],
};

export const REPORT_TITLES: Record<ReportKind, string> = {
  'compliance-summary': 'BitLocker compliance summary',
  devices: 'Devices and compliance findings',
  'escrow-coverage': 'Recovery key escrow coverage',
  'recovery-audit': 'Recovery audit',
  'recovery-boots': 'Devices started with a recovery password',
};

export type ReportScope = { label: string; clientId: string | null; clients: { id: string; name: string }[] };
export type StatusCounts = { compliant: number; 'non-compliant': number; exempt: number; unknown: number; total: number };
export type SummaryData = {
  scope: ReportScope;
  generatedAt: string;
  totals: StatusCounts;
  perClient: (StatusCounts & { client: string })[];
  trend: (StatusCounts & { day: string })[];
  findings: { code: FindingCode; devices: number }[];
  attention: { client: string; device: string; since: string; lastSeenAt: string; findings: string[] }[];
  attentionMore: number;
};
export type AuditRow = {
  seq: number;
  when: string;
  source: string;
  status: string;
  who: string;
  client: string;
  device: string;
  keyId: string;
  reason: string;
  ticket: string;
  ip: string;
};

const PAGE = 2000;
const TREND_DAYS = 30;
const ATTENTION_ROWS = 40;
const REASON_LABEL = new Map<string, string>(REASON_CODES.map((r) => [r.code, r.label]));
const pct = (n: number, total: number) => (total ? Math.round((n / total) * 1000) / 10 : 0);
const emptyCounts = (): StatusCounts => ({ compliant: 0, 'non-compliant': 0, exempt: 0, unknown: 0, total: 0 });
const day = (iso: string) => iso.slice(0, 10);
const fileStamp = (iso: string) => iso.slice(0, 10);
const slug = (s: string) => s.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 40) || 'client';

type Deps = { db: Db; clock: Clock; audit: Pick<AuditService, 'record'>; compliance: Pick<ComplianceService, 'policyFor'> };

/**
 * Reports as streams: every CSV is written a page of rows at a time from keyset-paginated queries
 * (never the whole table in memory); the PDFs (summary, recovery audit) are drawn by pdfkit, which
 * writes each finished page to the output stream.
 */
export function createReportsService({ db, clock, audit, compliance }: Deps) {
  async function resolveScope(actor: Actor, req: ReportRequest): Promise<ReportScope> {
    if (!(REPORT_KINDS as readonly string[]).includes(req.report)) throw badRequest(`Unknown report "${String(req.report).slice(0, 40)}"; choose one of ${REPORT_KINDS.join(', ')}.`, { field: 'report' });
    if (req.format !== 'csv' && req.format !== 'pdf') throw badRequest('The format is csv or pdf.', { field: 'format' });
    if (req.format === 'pdf' && !PDF_REPORTS.includes(req.report)) throw badRequest(`The ${req.report} report is available as CSV; PDF is offered for ${PDF_REPORTS.join(' and ')}.`, { field: 'format' });
    if (!REPORT_READERS[req.report].includes(actor.role)) throw forbidden(`You are not allowed to read the ${REPORT_TITLES[req.report].toLowerCase()} report.`);
    const scope = clientScope(actor);
    if (req.clientId) {
      const id = req.clientId.toLowerCase();
      // Outside the actor's clients: refused like a client that does not exist (nothing disclosed).
      if (scope && !scope.includes(id)) throw forbidden('You are not allowed to read reports of that client.');
      const c = /^[0-9a-f-]{36}$/.test(id) ? await db.selectFrom('clients').select(['id', 'name']).where('id', '=', id).executeTakeFirst() : undefined;
      if (!c) throw notFound(`No client with id ${req.clientId.slice(0, 60)}.`);
      return { label: c.name, clientId: c.id, clients: [c] };
    }
    let q = db.selectFrom('clients').select(['id', 'name']).where('archived_at', 'is', null);
    if (scope) q = scope.length ? q.where('id', 'in', scope as string[]) : q.where((eb) => eb.val(false));
    const clients = await q.orderBy('name_key').execute();
    return { label: scope ? 'Your clients' : 'All clients', clientId: null, clients };
  }

  // ------------------------------------------------------------------ data
  async function statusCounts(scope: ReportScope): Promise<{ totals: StatusCounts; perClient: Map<string, StatusCounts> }> {
    const perClient = new Map<string, StatusCounts>(scope.clients.map((c) => [c.id, emptyCounts()]));
    const totals = emptyCounts();
    if (!scope.clients.length) return { totals, perClient };
    const ids = scope.clients.map((c) => c.id);
    const [byStatus, devices] = await Promise.all([
      db
        .selectFrom('device_compliance as s')
        .innerJoin('devices as d', 'd.id', 's.device_id')
        .select(['s.client_id', 's.status', (eb) => eb.fn.countAll<number>().as('n')])
        .where('s.client_id', 'in', ids)
        .where('d.retired_at', 'is', null)
        .groupBy(['s.client_id', 's.status'])
        .execute(),
      db.selectFrom('devices').select(['client_id', (eb) => eb.fn.countAll<number>().as('n')]).where('client_id', 'in', ids).where('retired_at', 'is', null).groupBy('client_id').execute(),
    ]);
    for (const r of byStatus) {
      const c = perClient.get(r.client_id)!;
      const k = r.status as keyof StatusCounts;
      if (k in c && k !== 'total') c[k] += Number(r.n);
    }
    for (const r of devices) {
      const c = perClient.get(r.client_id)!;
      c.total = Number(r.n);
      // Devices not evaluated yet count as unknown.
      c.unknown += Math.max(0, c.total - c.compliant - c['non-compliant'] - c.exempt - c.unknown);
    }
    for (const c of perClient.values()) for (const k of Object.keys(totals) as (keyof StatusCounts)[]) totals[k] += c[k];
    return { totals, perClient };
  }

  /** Status counts per day from the history: each row adds one to its status and takes one from the previous. */
  async function trend(scope: ReportScope, now: string): Promise<SummaryData['trend']> {
    if (!scope.clients.length) return [];
    const rows = await db
      .selectFrom('compliance_history')
      .select([sql<string>`substr(recorded_at, 1, 10)`.as('day'), 'status', 'previous_status', (eb) => eb.fn.countAll<number>().as('n')])
      .where('client_id', 'in', scope.clients.map((c) => c.id))
      .groupBy([sql`substr(recorded_at, 1, 10)`, 'status', 'previous_status'])
      .orderBy(sql`substr(recorded_at, 1, 10)`)
      .execute();
    const deltas = new Map<string, Record<string, number>>();
    const today = day(now);
    for (const r of rows) {
      // A row stamped after today (a clock that ran ahead) counts for today: the last point stays the present.
      const key = r.day > today ? today : r.day;
      const d = deltas.get(key) ?? deltas.set(key, {}).get(key)!;
      d[r.status] = (d[r.status] ?? 0) + Number(r.n);
      if (r.previous_status) d[r.previous_status] = (d[r.previous_status] ?? 0) - Number(r.n);
    }
    const start = new Date(Date.parse(day(now)) - (TREND_DAYS - 1) * 86_400_000).toISOString().slice(0, 10);
    const running: Record<string, number> = {};
    const apply = (d: Record<string, number> | undefined) => {
      for (const [k, v] of Object.entries(d ?? {})) running[k] = (running[k] ?? 0) + v;
    };
    for (const [d, delta] of deltas) if (d < start) apply(delta);
    const out: SummaryData['trend'] = [];
    for (let i = 0; i < TREND_DAYS; i++) {
      const d = new Date(Date.parse(start) + i * 86_400_000).toISOString().slice(0, 10);
      apply(deltas.get(d));
      const c = { compliant: running.compliant ?? 0, 'non-compliant': running['non-compliant'] ?? 0, exempt: running.exempt ?? 0, unknown: running.unknown ?? 0 };
      out.push({ day: d, ...c, total: c.compliant + c['non-compliant'] + c.exempt + c.unknown });
    }
    // Days before the first evaluation carry nothing: leave them out.
    const first = out.findIndex((p) => p.total > 0);
    return first < 0 ? [] : out.slice(first);
  }

  /** Pages of (device_compliance + device) rows of one client in device-name order, with findings. */
  async function* devicePages(exec: Executor, clientId: string, filter: { statuses?: string[]; limit?: number } = {}) {
    let after: [string, string] | null = null;
    let left = filter.limit ?? Infinity;
    for (;;) {
      let q = exec
        .selectFrom('devices as d')
        .leftJoin('device_compliance as s', 's.device_id', 'd.id')
        .select(['d.id', 'd.name', 'd.name_key', 'd.serial', 'd.primary_user', 'd.last_seen_at', 'd.last_checkin_at', 's.status', 's.status_since', 's.findings'])
        .where('d.client_id', '=', clientId)
        .where('d.retired_at', 'is', null);
      if (filter.statuses) q = q.where('s.status', 'in', filter.statuses);
      if (after) {
        const [k, id] = after;
        // A row-value comparison, so the (client_id, name_key, id) index serves the page directly.
        q = q.where((eb) => eb(eb.refTuple('d.name_key', 'd.id'), '>', eb.tuple(k, id)));
      }
      const rows = await q.orderBy('d.name_key').orderBy('d.id').limit(Math.min(PAGE, left)).execute();
      if (rows.length === 0) return;
      yield rows;
      left -= rows.length;
      if (left <= 0 || rows.length < PAGE) return;
      const last = rows[rows.length - 1]!;
      after = [last.name_key, last.id];
    }
  }

  async function summaryData(scope: ReportScope): Promise<SummaryData> {
    const now = clock.now();
    const { totals, perClient } = await statusCounts(scope);
    // Findings by code: one pass over the devices with findings, a page at a time.
    const byCode = new Map<FindingCode, number>();
    for (const c of scope.clients) {
      let after: string | null = null;
      for (;;) {
        let q = db.selectFrom('device_compliance as s').innerJoin('devices as d', 'd.id', 's.device_id').select(['s.device_id', 's.findings']).where('s.client_id', '=', c.id).where('d.retired_at', 'is', null).where('s.findings', '!=', '[]');
        if (after) q = q.where('s.device_id', '>', after);
        const rows = await q.orderBy('s.device_id').limit(PAGE * 2).execute();
        for (const r of rows) for (const code of new Set((JSON.parse(r.findings) as Finding[]).map((f) => f.code))) byCode.set(code, (byCode.get(code) ?? 0) + 1);
        if (rows.length < PAGE * 2) break;
        after = rows[rows.length - 1]!.device_id;
      }
    }
    const attention: SummaryData['attention'] = [];
    for (const c of scope.clients) {
      if (attention.length >= ATTENTION_ROWS) break;
      for await (const rows of devicePages(db, c.id, { statuses: ['non-compliant'], limit: ATTENTION_ROWS - attention.length })) {
        for (const r of rows) {
          attention.push({ client: c.name, device: r.name, since: r.status_since ?? '', lastSeenAt: r.last_seen_at, findings: (JSON.parse(r.findings ?? '[]') as Finding[]).map((f) => `${FINDING_INFO[f.code].title}${f.mountPoint ? ` (${f.mountPoint})` : ''}`) });
        }
      }
    }
    return {
      scope,
      generatedAt: now,
      totals,
      perClient: scope.clients.map((c) => ({ client: c.name, ...perClient.get(c.id)! })),
      trend: await trend(scope, now),
      findings: FINDING_CODES.filter((c) => byCode.has(c)).map((code) => ({ code, devices: byCode.get(code)! })),
      attention,
      attentionMore: Math.max(0, totals['non-compliant'] - attention.length),
    };
  }

  async function* auditRows(actor: Actor, scope: ReportScope): AsyncGenerator<AuditRow[]> {
    const names = new Map(scope.clients.map((c) => [c.id, c.name]));
    // A global reader's MSP-wide report also lists refused reveals that matched no client.
    const withoutClient = scope.clientId === null && clientScope(actor) === null;
    let after = 0;
    for (;;) {
      let q = db
        .selectFrom('audit_events')
        .select(['seq', 'occurred_at', 'actor_type', 'actor_name', 'action', 'client_id', 'reason_code', 'ticket', 'outcome', 'ip', 'details'])
        .where('action', 'in', ['key.reveal', 'entra.key_read'])
        .where('seq', '>', after);
      const ids = scope.clients.map((c) => c.id);
      q = q.where((eb) => {
        const parts = [];
        if (ids.length) parts.push(eb('client_id', 'in', ids));
        if (withoutClient) parts.push(eb('client_id', 'is', null));
        return parts.length ? eb.or(parts) : eb.val(false);
      });
      const rows = await q.orderBy('seq').limit(PAGE).execute();
      if (rows.length === 0) return;
      yield rows.map((r) => {
        const d = r.details ? (JSON.parse(r.details) as Record<string, unknown>) : {};
        const keyId = typeof d.keyId === 'string' ? formatKeyIdForDisplay(d.keyId) : typeof d.query === 'string' ? `query: ${d.query}` : '';
        return {
          seq: r.seq,
          when: r.occurred_at,
          source: r.action === 'entra.key_read' ? 'Entra / Intune portal' : r.actor_type === 'cli' ? 'Keywarden CLI' : r.actor_type === 'token' ? 'Keywarden API token' : 'Keywarden',
          status: r.outcome === 'success' ? 'Successful' : `Failed (${r.outcome.replace('_', ' ')})`,
          who: r.actor_name,
          client: r.client_id ? (names.get(r.client_id) ?? '') : '',
          device: typeof d.device === 'string' ? d.device : '',
          keyId,
          reason: r.reason_code ? (REASON_LABEL.get(r.reason_code) ?? r.reason_code) : '',
          ticket: r.ticket ?? '',
          ip: r.ip ?? '',
        };
      });
      if (rows.length < PAGE) return;
      after = rows[rows.length - 1]!.seq;
    }
  }

  // ------------------------------------------------------------------ CSV
  async function writeCsv(out: NodeJS.WritableStream, columns: string[], rows: AsyncIterable<unknown[][]>): Promise<void> {
    const csv = stringify({ header: true, columns });
    const done = pipeline(csv, out);
    for await (const page of rows) {
      for (const row of page) if (!csv.write(row)) await once(csv, 'drain');
    }
    csv.end();
    await done;
  }

  async function* csvRows(actor: Actor, req: ReportRequest, scope: ReportScope): AsyncGenerator<unknown[][]> {
    switch (req.report) {
      case 'compliance-summary': {
        const s = await summaryData(scope);
        const row = (section: string, label: string, dayText: string, c: StatusCounts) => [section, label, dayText, c.total, c.compliant, c['non-compliant'], c.exempt, c.unknown, pct(c.compliant, c.total)];
        yield [row('current', scope.label, day(s.generatedAt), s.totals), ...s.perClient.map((c) => row('client', c.client, day(s.generatedAt), c))];
        yield s.trend.map((t) => row('trend', scope.label, t.day, t));
        yield s.findings.map((f) => ['finding', FINDING_INFO[f.code].title, f.code, f.devices, '', '', '', '', pct(f.devices, s.totals.total)]);
        return;
      }
      case 'devices': {
        for (const c of scope.clients) {
          for await (const rows of devicePages(db, c.id)) {
            yield rows.map((r) => {
              const f = JSON.parse(r.findings ?? '[]') as Finding[];
              return [c.name, r.name, r.serial ?? '', r.primary_user ?? '', r.status ?? 'unknown', r.status_since ?? '', r.last_seen_at, r.last_checkin_at ?? '', f.map((x) => x.code).join(' '), f.map((x) => x.detail).join(' | ')];
            });
          }
        }
        return;
      }
      case 'escrow-coverage': {
        for (const c of scope.clients) {
          const [total, any, bySource] = await Promise.all([
            db.selectFrom('devices').select((eb) => eb.fn.countAll<number>().as('n')).where('client_id', '=', c.id).where('retired_at', 'is', null).executeTakeFirstOrThrow(),
            db
              .selectFrom('recovery_keys as k')
              .innerJoin('devices as d', 'd.id', 'k.device_id')
              .select([sql<number>`count(distinct k.device_id)`.as('devices'), sql<number>`count(distinct k.id)`.as('keys')])
              .where('k.client_id', '=', c.id)
              .where('d.retired_at', 'is', null)
              .where('k.state', 'in', ['active', 'disclosed', 'conflict'])
              .executeTakeFirstOrThrow(),
            db
              .selectFrom('recovery_keys as k')
              .innerJoin('devices as d', 'd.id', 'k.device_id')
              .innerJoin('key_sources as s', 's.recovery_key_id', 'k.id')
              .select(['s.source_type', sql<number>`count(distinct k.device_id)`.as('devices'), sql<number>`count(distinct k.id)`.as('keys')])
              .where('k.client_id', '=', c.id)
              .where('d.retired_at', 'is', null)
              .where('k.state', 'in', ['active', 'disclosed', 'conflict'])
              .where('s.removed_at', 'is', null)
              .groupBy('s.source_type')
              .execute(),
          ]);
          const n = Number(total.n);
          const label: Record<string, string> = { agent: 'Keywarden agent', entra: 'Entra ID', ad: 'Active Directory', import: 'Imported file' };
          yield [
            [c.name, 'any source', n, Number(any.devices), pct(Number(any.devices), n), Number(any.keys)],
            ...['agent', 'entra', 'ad', 'import'].map((src) => {
              const r = bySource.find((x) => x.source_type === src);
              return [c.name, label[src], n, Number(r?.devices ?? 0), pct(Number(r?.devices ?? 0), n), Number(r?.keys ?? 0)];
            }),
          ];
        }
        return;
      }
      case 'recovery-audit': {
        for await (const rows of auditRows(actor, scope)) yield rows.map((r) => [r.when, r.source, r.status, r.who, r.client, r.device, r.keyId, r.reason, r.ticket, r.ip]);
        return;
      }
      case 'recovery-boots': {
        for (const c of scope.clients) {
          let after: [string, string] | null = null;
          for (;;) {
            let q = db
              .selectFrom('device_events as e')
              .innerJoin('devices as d', 'd.id', 'e.device_id')
              .select((eb) => [
                'e.id',
                'e.occurred_at',
                'e.protector_id',
                'e.mount_point',
                'd.name',
                eb
                  .selectFrom('recovery_keys as k')
                  .select('k.state')
                  .whereRef('k.client_id', '=', 'e.client_id')
                  .whereRef('k.key_id', '=', 'e.protector_id')
                  .orderBy('k.state_changed_at', 'desc')
                  .limit(1)
                  .as('key_state'),
              ])
              .where('e.client_id', '=', c.id)
              .where('e.event_id', '=', 24652);
            if (after) {
              const [t, id] = after;
              q = q.where((eb) => eb(eb.refTuple('e.occurred_at', 'e.id'), '>', eb.tuple(t, id)));
            }
            const rows = await q.orderBy('e.occurred_at').orderBy('e.id').limit(PAGE).execute();
            if (rows.length) yield rows.map((r) => [r.occurred_at, c.name, r.name, r.protector_id ? formatKeyIdForDisplay(r.protector_id) : '', r.mount_point ?? '', r.key_state ?? 'not in Keywarden']);
            if (rows.length < PAGE) break;
            const last = rows[rows.length - 1]!;
            after = [last.occurred_at, last.id];
          }
        }
        return;
      }
    }
  }

  const CSV_COLUMNS: Record<ReportKind, string[]> = {
    'compliance-summary': ['section', 'scope', 'date', 'devices', 'compliant', 'non_compliant', 'exempt', 'unknown', 'compliant_percent'],
    devices: ['client', 'device', 'serial', 'primary_user', 'status', 'status_since', 'last_seen', 'last_checkin', 'finding_codes', 'findings'],
    'escrow-coverage': ['client', 'source', 'devices', 'devices_with_key', 'coverage_percent', 'keys'],
    'recovery-audit': ['when', 'source', 'status', 'who', 'client', 'device', 'key_id', 'reason', 'ticket', 'ip'],
    'recovery-boots': ['when', 'client', 'device', 'key_id', 'mount_point', 'key_state_now'],
  };

  const service = {
    /**
     * Checks the request and the actor's right to it, audits it, and returns the file name, content
     * type and a writer. Nothing is written before the checks pass, so HTTP can still answer an error.
     */
    async prepare(actor: Actor, req: ReportRequest): Promise<{ filename: string; contentType: string; write(out: NodeJS.WritableStream): Promise<void> }> {
      const scope = await resolveScope(actor, req);
      const now = clock.now();
      await db.transaction().execute((tx) =>
        audit.record(tx, actor, { action: 'report.export', outcome: 'success', clientId: scope.clientId, targetType: 'report', targetId: req.report, details: { report: req.report, format: req.format, scope: scope.label } }),
      );
      const filename = `keywarden-${req.report}-${scope.clientId ? slug(scope.label) : 'all-clients'}-${fileStamp(now)}.${req.format}`;
      if (req.format === 'csv') {
        return { filename, contentType: 'text/csv; charset=utf-8', write: (out) => writeCsv(out, CSV_COLUMNS[req.report], csvRows(actor, req, scope)) };
      }
      return {
        filename,
        contentType: 'application/pdf',
        write: async (out) => {
          const branding = await readBranding(db);
          if (req.report === 'compliance-summary') {
            const data = await summaryData(scope);
            const policy = scope.clientId ? await compliance.policyFor(scope.clientId) : null;
            await renderSummaryPdf(out, { data, branding, policy });
          } else {
            await renderRecoveryAuditPdf(out, { scope, generatedAt: now, branding, rows: auditRows(actor, scope) });
          }
        },
      };
    },

    /** The one renderer (HTTP, CLI, scheduled delivery): writes the report to `out` and ends it. */
    async render(actor: Actor, req: ReportRequest, out: NodeJS.WritableStream): Promise<{ filename: string; contentType: string }> {
      const r = await service.prepare(actor, req);
      await r.write(out);
      return { filename: r.filename, contentType: r.contentType };
    },

    summaryData: async (actor: Actor, clientId: string | null) => summaryData(await resolveScope(actor, { report: 'compliance-summary', clientId, format: 'csv' })),
  };
  return service;
}
export type ReportsService = ReturnType<typeof createReportsService>;
