import { once } from 'node:events';
import { pipeline } from 'node:stream/promises';
import type { Transactions } from '../../db/transactions.js';
import type { Clock } from '../../lib/clock.js';
import { badRequest, forbidden } from '../../lib/errors.js';
import { csvWriter } from '../../lib/csv.js';
import { FINDING_CODES, FINDING_INFO, type FindingCode } from '../../domain/compliance/findings.js';
import type { Finding } from '../../domain/compliance/evaluate.js';
import { addSummaries, summarizeCompliance, type ComplianceSummary } from '../../domain/compliance/summary.js';
import { formatKeyIdForDisplay } from '../../domain/key-id.js';
import { REASON_CODES } from '../../domain/reason-codes.js';
import { can, clientScope, type Actor } from '../authz/authz.js';
import type { AuditService } from '../audit/audit.service.js';
import type { ClientsRepo } from '../clients/clients.repo.js';
import { requireVisibleClient } from '../clients/visible-client.js';
import type { ComplianceService } from '../compliance/compliance.service.js';
import type { TenantPostureStore } from '../graph/posture.js';
import { policyText, type PostureLine, type PostureNote } from '../../domain/compliance/tenant-posture.js';
import { readBranding } from './branding.js';
import type { ReportPeriod } from './period.js';
import type { ReportsRepo } from './reports.repo.js';
import { PDF_REPORTS, REPORT_KINDS, type ReportKind } from './report-kinds.js';

export { REPORT_KINDS, PDF_REPORTS, type ReportKind };
export type ReportFormat = 'csv' | 'pdf';
/** `period` limits the events (reveals, recovery boots) and the compliance trend; null is all time. */
export type ReportRequest = { report: ReportKind; clientId?: string | null; format: ReportFormat; period?: ReportPeriod | null };

/**
 * Who may read which report, always limited to the actor's own clients:
 * - compliance, devices, escrow coverage, recovery boots: whoever may see devices (`device:read`).
 *   These show device names and key IDs, never a password.
 * - recovery audit (who revealed which key, when, why): whoever may read the audit log
 *   (`audit:read`), and a client's own IT staff, who see their client's devices but do not browse
 *   keys (`device:read` without `key:list`): a client is entitled to know who accessed its keys.
 *   MSP technicians (who browse keys) do not review each other's reveals.
 * Helpdesk reads no report: it looks keys up by ID and does not browse devices.
 */
export function mayReadReport(actor: Actor, report: ReportKind, clientId?: string | null): boolean {
  if (!can(actor, 'device:read', clientId)) return false;
  if (report !== 'recovery-audit') return true;
  return can(actor, 'audit:read', clientId) || !can(actor, 'key:list');
}

export const REPORT_TITLES: Record<ReportKind, string> = {
  'compliance-summary': 'BitLocker compliance summary',
  devices: 'Devices and compliance findings',
  'escrow-coverage': 'Recovery key escrow coverage',
  'recovery-audit': 'Recovery audit',
  'recovery-boots': 'Devices started with a recovery password',
};

/** What each report holds, in product words (the console's Reports screen lists them). */
export const REPORT_DESCRIPTIONS: Record<ReportKind, string> = {
  'compliance-summary':
    'Devices per compliance status and per client, the daily trend over the period, which findings affect how many devices (with the fix), and the devices that need attention.',
  devices: 'Every device with its compliance status, since when, when it was last seen, and each finding in a sentence.',
  'escrow-coverage': 'Per client and source (agent, Entra ID, Active Directory, import): how many devices have a recovery key escrowed, as a percentage.',
  'recovery-audit':
    'Every recovery password reveal and Entra ID / Intune portal read in the period: when, who, the device, the key ID, the reason and ticket. Never a password.',
  'recovery-boots': 'Devices that started with a recovery password in the period (event 24652): the device, key ID, drive and what became of the key.',
};

export type ReportScope = { label: string; clientId: string | null; clients: { id: string; name: string }[] };
/** src/domain/compliance/summary.ts's numbers (the Clients overview shows the same); total: devices in service. */
export type StatusCounts = { compliant: number; 'non-compliant': number; exempt: number; unknown: number; total: number; percentCompliant: number | null };
export type SummaryData = {
  scope: ReportScope;
  generatedAt: string;
  totals: StatusCounts;
  perClient: (StatusCounts & { client: string })[];
  trend: (StatusCounts & { day: string })[];
  findings: { code: FindingCode; devices: number }[];
  attention: { client: string; device: string; since: string; lastSeenAt: string; findings: string[] }[];
  attentionMore: number;
  /** Tenant posture of the clients in scope that have an Entra ID connection (as the last sync read it). */
  posture: { client: string; checkedAt: string; lines: PostureLine[]; notes: PostureNote[]; policies: string[] }[];
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
/** The longest trend drawn: a year of daily bars. */
const MAX_TREND_DAYS = 366;
const ATTENTION_ROWS = 40;
const REASON_LABEL = new Map<string, string>(REASON_CODES.map((r) => [r.code, r.label]));
const pct = (n: number, total: number) => (total ? Math.round((n / total) * 1000) / 10 : 0);
const asCounts = (s: ComplianceSummary): StatusCounts => ({
  compliant: s.compliant,
  'non-compliant': s['non-compliant'],
  exempt: s.exempt,
  unknown: s.unknown,
  total: s.devices,
  percentCompliant: s.percentCompliant,
});
const day = (iso: string) => iso.slice(0, 10);
const lastDay = (p: ReportPeriod) => new Date(Date.parse(p.to) - 1).toISOString().slice(0, 10);
/** The file name's date: the period (2026-11-01_2026-11-30) or, for all time, the day it was made. */
const fileStamp = (iso: string, p?: ReportPeriod | null) => (p ? `${p.from.slice(0, 10)}_${lastDay(p)}` : iso.slice(0, 10));
const slug = (s: string) =>
  s
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-|-$/g, '')
    .slice(0, 40) || 'client';

type Deps = {
  tx: Transactions;
  repo: ReportsRepo;
  clients: Pick<ClientsRepo, 'listVisible'>;
  clock: Clock;
  audit: Pick<AuditService, 'record'>;
  compliance: Pick<ComplianceService, 'policyFor'>;
  posture?: Pick<TenantPostureStore, 'list'>;
};

/**
 * Reports as streams: every CSV is written a page of rows at a time from keyset-paginated queries
 * (never the whole table in memory); the PDFs (summary, recovery audit) are drawn by pdfkit, which
 * writes each finished page to the output stream.
 */
export function createReportsService({ tx: transactions, repo, clients, clock, audit, compliance, posture }: Deps) {
  const reader = transactions.reader;
  async function resolveScope(actor: Actor, req: ReportRequest): Promise<ReportScope> {
    if (!(REPORT_KINDS as readonly string[]).includes(req.report))
      throw badRequest(`Unknown report "${String(req.report).slice(0, 40)}"; choose one of ${REPORT_KINDS.join(', ')}.`, { field: 'report' });
    if (req.format !== 'csv' && req.format !== 'pdf') throw badRequest('The format is csv or pdf.', { field: 'format' });
    if (req.format === 'pdf' && !PDF_REPORTS.includes(req.report))
      throw badRequest(`The ${req.report} report is available as CSV; PDF is offered for ${PDF_REPORTS.join(' and ')}.`, { field: 'format' });
    if (!mayReadReport(actor, req.report)) throw forbidden(`You are not allowed to read the ${REPORT_TITLES[req.report].toLowerCase()} report.`);
    const scope = clientScope(actor);
    if (req.clientId) {
      const id = req.clientId.toLowerCase();
      // Outside the actor's clients: refused the same whether the client exists or not (nothing disclosed).
      if (!mayReadReport(actor, req.report, id)) throw forbidden('You are not allowed to read reports of that client.');
      const c = await requireVisibleClient(reader, actor, id);
      return { label: c.name, clientId: c.id, clients: [{ id: c.id, name: c.name }] };
    }
    const visible = await clients.listVisible(reader, scope);
    return { label: scope ? 'Your clients' : 'All clients', clientId: null, clients: visible };
  }

  // ------------------------------------------------------------------ data
  async function statusCounts(scope: ReportScope): Promise<{ totals: StatusCounts; perClient: Map<string, StatusCounts> }> {
    if (!scope.clients.length) return { totals: asCounts(summarizeCompliance([], 0)), perClient: new Map() };
    const ids = scope.clients.map((c) => c.id);
    const [byStatus, devices] = await Promise.all([repo.statusCounts(reader, ids), repo.deviceCounts(reader, ids)]);
    const deviceCount = new Map(devices.map((r) => [r.client_id, Number(r.n)]));
    // One definition for every screen and report: devices not evaluated yet count as unknown.
    const summaries = scope.clients.map((c) => {
      const rows = byStatus.filter((r) => r.client_id === c.id);
      return [c.id, summarizeCompliance(rows, deviceCount.get(c.id) ?? 0)] as const;
    });
    const perClient = new Map(summaries.map(([id, s]) => [id, asCounts(s)]));
    return { totals: asCounts(addSummaries(summaries.map(([, s]) => s))), perClient };
  }

  /** Status counts per day from the history: each row adds one to its status and takes one from the previous. */
  async function trend(scope: ReportScope, now: string, period?: ReportPeriod | null): Promise<SummaryData['trend']> {
    if (!scope.clients.length) return [];
    const rows = await repo.historyByDay(
      reader,
      scope.clients.map((c) => c.id),
    );
    const deltas = new Map<string, Record<string, number>>();
    const today = day(now);
    for (const r of rows) {
      // A row stamped after today (a clock that ran ahead) counts for today: the last point stays the present.
      const key = r.day > today ? today : r.day;
      const d = deltas.get(key) ?? deltas.set(key, {}).get(key)!;
      d[r.status] = (d[r.status] ?? 0) + Number(r.n);
      if (r.previous_status) d[r.previous_status] = (d[r.previous_status] ?? 0) - Number(r.n);
    }
    // The period's days up to today (at most a year, its end), or the last 30 days.
    const end = period && lastDay(period) < today ? lastDay(period) : today;
    const first = [...deltas.keys()][0] ?? end;
    let start = period
      ? day(period.from) > first
        ? day(period.from)
        : first
      : new Date(Date.parse(today) - (TREND_DAYS - 1) * 86_400_000).toISOString().slice(0, 10);
    if (Date.parse(end) - Date.parse(start) > (MAX_TREND_DAYS - 1) * 86_400_000)
      start = new Date(Date.parse(end) - (MAX_TREND_DAYS - 1) * 86_400_000).toISOString().slice(0, 10);
    const days = start > end ? 0 : Math.round((Date.parse(end) - Date.parse(start)) / 86_400_000) + 1;
    const running: Record<string, number> = {};
    const apply = (d: Record<string, number> | undefined) => {
      for (const [k, v] of Object.entries(d ?? {})) running[k] = (running[k] ?? 0) + v;
    };
    for (const [d, delta] of deltas) if (d < start) apply(delta);
    const out: SummaryData['trend'] = [];
    for (let i = 0; i < days; i++) {
      const d = new Date(Date.parse(start) + i * 86_400_000).toISOString().slice(0, 10);
      apply(deltas.get(d));
      const c = {
        compliant: running.compliant ?? 0,
        'non-compliant': running['non-compliant'] ?? 0,
        exempt: running.exempt ?? 0,
        unknown: running.unknown ?? 0,
      };
      out.push({ day: d, ...asCounts(addSummaries([c])) });
    }
    // Days before the first evaluation carry nothing: leave them out.
    const firstUsed = out.findIndex((p) => p.total > 0);
    return firstUsed < 0 ? [] : out.slice(firstUsed);
  }

  /** Pages of (device_compliance + device) rows of one client in device-name order, with findings. */
  async function* devicePages(clientId: string, filter: { statuses?: string[]; limit?: number } = {}) {
    let after: [string, string] | null = null;
    let left = filter.limit ?? Infinity;
    for (;;) {
      const rows = await repo.devicePage(reader, clientId, filter, after, Math.min(PAGE, left));
      if (rows.length === 0) return;
      yield rows;
      left -= rows.length;
      if (left <= 0 || rows.length < PAGE) return;
      const last = rows[rows.length - 1]!;
      after = [last.name_key, last.id];
    }
  }

  async function summaryData(scope: ReportScope, period?: ReportPeriod | null): Promise<SummaryData> {
    const now = clock.now();
    const { totals, perClient } = await statusCounts(scope);
    // Findings by code: one pass over the devices with findings, a page at a time.
    const byCode = new Map<FindingCode, number>();
    for (const c of scope.clients) {
      let after: string | null = null;
      for (;;) {
        const rows = await repo.findingsPage(reader, c.id, after, PAGE * 2);
        for (const r of rows)
          for (const code of new Set((JSON.parse(r.findings) as Finding[]).map((f) => f.code))) byCode.set(code, (byCode.get(code) ?? 0) + 1);
        if (rows.length < PAGE * 2) break;
        after = rows[rows.length - 1]!.device_id;
      }
    }
    const attention: SummaryData['attention'] = [];
    for (const c of scope.clients) {
      if (attention.length >= ATTENTION_ROWS) break;
      for await (const rows of devicePages(c.id, { statuses: ['non-compliant'], limit: ATTENTION_ROWS - attention.length })) {
        for (const r of rows) {
          attention.push({
            client: c.name,
            device: r.name,
            since: r.status_since ?? '',
            lastSeenAt: r.last_seen_at,
            findings: (JSON.parse(r.findings ?? '[]') as Finding[]).map((f) => `${FINDING_INFO[f.code].title}${f.mountPoint ? ` (${f.mountPoint})` : ''}`),
          });
        }
      }
    }
    const names = new Map(scope.clients.map((c) => [c.id, c.name]));
    const postureRows =
      posture && scope.clients.length
        ? await posture.list(
            reader,
            scope.clients.map((c) => c.id),
            scope.clientId,
          )
        : [];
    return {
      posture: postureRows
        .filter((p) => names.has(p.clientId))
        .map((p) => ({ client: names.get(p.clientId)!, checkedAt: p.checkedAt, lines: p.lines, notes: p.notes, policies: p.intunePolicies.map(policyText) }))
        .sort((a, b) => a.client.localeCompare(b.client)),
      scope,
      generatedAt: now,
      totals,
      perClient: scope.clients.map((c) => ({ client: c.name, ...perClient.get(c.id)! })),
      trend: await trend(scope, now, period),
      findings: FINDING_CODES.filter((c) => byCode.has(c)).map((code) => ({ code, devices: byCode.get(code)! })),
      attention,
      attentionMore: Math.max(0, totals['non-compliant'] - attention.length),
    };
  }

  async function* auditRows(actor: Actor, scope: ReportScope, period?: ReportPeriod | null): AsyncGenerator<AuditRow[]> {
    const names = new Map(scope.clients.map((c) => [c.id, c.name]));
    // A global reader's MSP-wide report also lists refused reveals that matched no client.
    const withoutClient = scope.clientId === null && clientScope(actor) === null;
    let after = 0;
    for (;;) {
      const rows = await repo.revealEventsPage(
        reader,
        scope.clients.map((c) => c.id),
        withoutClient,
        period ?? null,
        after,
        PAGE,
      );
      if (rows.length === 0) return;
      yield rows.map((r) => {
        const d = r.details ? (JSON.parse(r.details) as Record<string, unknown>) : {};
        const keyId = typeof d.keyId === 'string' ? formatKeyIdForDisplay(d.keyId) : typeof d.query === 'string' ? `query: ${d.query}` : '';
        return {
          seq: r.seq,
          when: r.occurred_at,
          source:
            r.action === 'entra.key_read'
              ? 'Entra / Intune portal'
              : r.actor_type === 'cli'
                ? 'Keywarden CLI'
                : r.actor_type === 'token'
                  ? 'Keywarden API token'
                  : 'Keywarden',
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
    const csv = csvWriter(columns);
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
        const s = await summaryData(scope, req.period);
        const row = (section: string, label: string, dayText: string, c: StatusCounts) => [
          section,
          label,
          dayText,
          c.total,
          c.compliant,
          c['non-compliant'],
          c.exempt,
          c.unknown,
          // compliant ÷ (compliant + non-compliant); empty when nothing is judged (unknown, not 0).
          c.percentCompliant ?? '',
          '',
        ];
        yield [row('current', scope.label, day(s.generatedAt), s.totals), ...s.perClient.map((c) => row('client', c.client, day(s.generatedAt), c))];
        yield s.trend.map((t) => row('trend', scope.label, t.day, t));
        yield s.findings.map((f) => ['finding', FINDING_INFO[f.code].title, f.code, f.devices, '', '', '', '', pct(f.devices, s.totals.total), '']);
        // Tenant posture: one row per answer, the answer in words in the last column.
        yield s.posture.flatMap((p) => p.lines.map((l) => ['tenant_posture', p.client, day(p.checkedAt), '', '', '', '', '', '', `${l.question}: ${l.text}`]));
        // Each Intune BitLocker policy behind the second answer: what it requires and whom it is assigned to.
        yield s.posture.flatMap((p) => p.policies.map((text) => ['tenant_posture_policy', p.client, day(p.checkedAt), '', '', '', '', '', '', text]));
        return;
      }
      case 'devices': {
        for (const c of scope.clients) {
          for await (const rows of devicePages(c.id)) {
            yield rows.map((r) => {
              const f = JSON.parse(r.findings ?? '[]') as Finding[];
              return [
                c.name,
                r.name,
                r.serial ?? '',
                r.primary_user ?? '',
                r.status ?? 'unknown',
                r.status_since ?? '',
                r.last_seen_at,
                r.last_checkin_at ?? '',
                f.map((x) => x.code).join(' '),
                f.map((x) => x.detail).join(' | '),
              ];
            });
          }
        }
        return;
      }
      case 'escrow-coverage': {
        for (const c of scope.clients) {
          const { total, any, bySource } = await repo.escrowCoverage(reader, c.id);
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
        for await (const rows of auditRows(actor, scope, req.period))
          yield rows.map((r) => [r.when, r.source, r.status, r.who, r.client, r.device, r.keyId, r.reason, r.ticket, r.ip]);
        return;
      }
      case 'recovery-boots': {
        for (const c of scope.clients) {
          let after: [string, string] | null = null;
          for (;;) {
            const rows = await repo.recoveryBootsPage(reader, c.id, req.period ?? null, after, PAGE);
            if (rows.length)
              yield rows.map((r) => [
                r.occurred_at,
                c.name,
                r.name,
                r.protector_id ? formatKeyIdForDisplay(r.protector_id) : '',
                r.mount_point ?? '',
                r.key_state ?? 'not in Keywarden',
              ]);
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
    'compliance-summary': ['section', 'scope', 'date', 'devices', 'compliant', 'non_compliant', 'exempt', 'unknown', 'compliant_percent', 'note'],
    devices: ['client', 'device', 'serial', 'primary_user', 'status', 'status_since', 'last_seen', 'last_checkin', 'finding_codes', 'findings'],
    'escrow-coverage': ['client', 'source', 'devices', 'devices_with_key', 'coverage_percent', 'keys'],
    'recovery-audit': ['when', 'source', 'status', 'who', 'client', 'device', 'key_id', 'reason', 'ticket', 'ip'],
    'recovery-boots': ['when', 'client', 'device', 'key_id', 'mount_point', 'key_state_now'],
  };

  const service = {
    /** The reports this actor may read, with their titles, descriptions and formats (CSV always; PDF for two). */
    catalog(actor: Actor): { report: ReportKind; title: string; description: string; formats: ReportFormat[] }[] {
      return REPORT_KINDS.filter((report) => mayReadReport(actor, report)).map((report) => ({
        report,
        title: REPORT_TITLES[report],
        description: REPORT_DESCRIPTIONS[report],
        formats: PDF_REPORTS.includes(report) ? ['csv', 'pdf'] : ['csv'],
      }));
    },

    /**
     * Checks the request and the actor's right to it, audits it, and returns the file name, content
     * type and a writer. Nothing is written before the checks pass, so HTTP can still answer an error.
     */
    async prepare(actor: Actor, req: ReportRequest): Promise<{ filename: string; contentType: string; write(out: NodeJS.WritableStream): Promise<void> }> {
      const scope = await resolveScope(actor, req);
      const now = clock.now();
      await transactions.run((tx) =>
        audit.record(tx, actor, {
          action: 'report.export',
          outcome: 'success',
          clientId: scope.clientId,
          targetType: 'report',
          targetId: req.report,
          details: { report: req.report, format: req.format, scope: scope.label, ...(req.period ? { from: req.period.from, to: req.period.to } : {}) },
        }),
      );
      const filename = `keywarden-${req.report}-${scope.clientId ? slug(scope.label) : 'all-clients'}-${fileStamp(now, req.period)}.${req.format}`;
      if (req.format === 'csv') {
        return { filename, contentType: 'text/csv; charset=utf-8', write: (out) => writeCsv(out, CSV_COLUMNS[req.report], csvRows(actor, req, scope)) };
      }
      return {
        filename,
        contentType: 'application/pdf',
        write: async (out) => {
          const branding = await readBranding(reader);
          // The PDF renderer (pdfkit, fonts) loads with the first PDF, not with the container.
          const { renderRecoveryAuditPdf, renderSummaryPdf } = await import('./reports.pdf.js');
          if (req.report === 'compliance-summary') {
            const data = await summaryData(scope, req.period);
            const policy = scope.clientId ? await compliance.policyFor(scope.clientId) : null;
            await renderSummaryPdf(out, { data, branding, policy, period: req.period });
          } else {
            await renderRecoveryAuditPdf(out, { scope, generatedAt: now, branding, rows: auditRows(actor, scope, req.period), period: req.period });
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

    summaryData: async (actor: Actor, clientId: string | null) =>
      summaryData(await resolveScope(actor, { report: 'compliance-summary', clientId, format: 'csv' })),
  };
  return service;
}
export type ReportsService = ReturnType<typeof createReportsService>;
