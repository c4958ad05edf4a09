import { pipeline } from 'node:stream/promises';
import PDFDocument from 'pdfkit';
import { FINDING_INFO } from '../../domain/compliance/findings.js';
import { METHOD_WORDS, type Policy } from '../../domain/compliance/policy.js';
import type { Branding } from './branding.js';
import { PdfText } from './pdf-text.js';
import type { AuditRow, ReportScope, SummaryData } from './reports.service.js';

/**
 * The two PDF reports a client or auditor receives: the compliance summary and the recovery audit.
 * Drawn with embedded Noto fonts (pdf-fonts.ts: any script prints), A4 (the wide recovery audit in
 * landscape), the MSP's name and logo on every page; table cells wrap, nothing is cut off.
 * Pages are written to the output as they fill up, so a long recovery audit does not pile up in memory.
 */

const COLORS = {
  compliant: '#2f9e44',
  'non-compliant': '#e03131',
  exempt: '#868e96',
  unknown: '#ced4da',
  ink: '#212529',
  muted: '#6c757d',
  rule: '#dee2e6',
  band: '#f1f3f5',
};
const MARGIN = 40;
type Doc = PDFKit.PDFDocument;
type Column = { header: string; width: number; align?: 'left' | 'right' };
type Ctx = { doc: Doc; t: PdfText };
export type Period = { from: string; to: string } | null | undefined;

/** Date and full time of day (UTC), to the second: an audit needs the exact moment. */
const when = (iso: string) => (iso ? `${iso.slice(0, 10)} ${iso.slice(11, 19)}` : '');
const pct = (n: number, total: number) => (total ? `${(Math.round((n / total) * 1000) / 10).toFixed(1)}%` : '–');
/** "2026-11-01 to 2026-11-30": the end is exclusive inside, shown as the last day included; open ends (parsePeriod) in words. */
export function periodText(p: Period): string {
  if (!p) return 'all time';
  const first = p.from.slice(0, 10);
  const last = new Date(Date.parse(p.to) - 1).toISOString().slice(0, 10);
  if (first <= '1970-01-01') return `until ${last}`;
  if (p.to.startsWith('9999')) return `since ${first}`;
  return `${first} to ${last}`;
}

function startDocument(
  out: NodeJS.WritableStream,
  branding: Branding,
  title: string,
  scopeLabel: string,
  generatedAt: string,
  layout: 'portrait' | 'landscape' = 'portrait',
) {
  const doc = new PDFDocument({
    size: 'A4',
    layout,
    margin: MARGIN,
    info: { Title: `${title}: ${scopeLabel}`, Author: branding.mspName, Creator: 'Keywarden' },
  });
  const t = new PdfText(doc);
  const done = pipeline(doc, out);
  let page = 0;
  const frame = () => {
    page++;
    const { width, height } = doc.page;
    // Footer and header are drawn with the bottom margin lifted, or pdfkit would start yet another page.
    const bottom = doc.page.margins.bottom;
    doc.page.margins.bottom = 0;
    // Header band: the MSP's logo (or only its name) left, the report and its scope beside it.
    let x = MARGIN;
    if (branding.logoPng) {
      doc.image(branding.logoPng, MARGIN, 16, { fit: [110, 34] });
      x = MARGIN + 120;
    }
    t.draw(branding.mspName, x, 16, { size: 11, weight: 'bold', color: COLORS.ink, width: width - x - MARGIN, maxLines: 1 });
    t.draw(`${title} · ${scopeLabel}`, x, 33, { size: 8, color: COLORS.muted, width: width - x - MARGIN, maxLines: 1 });
    doc
      .moveTo(MARGIN, 54)
      .lineTo(width - MARGIN, 54)
      .strokeColor(COLORS.rule)
      .lineWidth(0.5)
      .stroke();
    t.draw(`Generated ${when(generatedAt)} UTC by Keywarden for ${branding.mspName} · Page ${page}`, MARGIN, height - 28, {
      size: 7,
      color: COLORS.muted,
      width: width - 2 * MARGIN,
      align: 'center',
      maxLines: 1,
    });
    doc.page.margins.bottom = bottom;
    doc.x = MARGIN;
    doc.y = 66;
    doc.fillColor(COLORS.ink);
  };
  doc.on('pageAdded', frame);
  frame();
  return { doc, t, done, pages: () => page };
}

const bottomOf = (doc: Doc) => doc.page.height - doc.page.margins.bottom;

function ensure(doc: Doc, height: number) {
  if (doc.y + height > bottomOf(doc)) doc.addPage();
}

/** A paragraph across the page at doc.y, moving doc.y below it. */
function para({ doc, t }: Ctx, text: string, o: { size: number; color?: string; weight?: 'regular' | 'bold'; gap?: number }) {
  const width = doc.page.width - 2 * MARGIN;
  for (const line of t.wrap(text, width, o.size, o.weight)) {
    ensure(doc, t.lineHeight(o.size));
    doc.y += t.draw(line, MARGIN, doc.y, { size: o.size, width, weight: o.weight, color: o.color ?? COLORS.ink });
  }
  doc.y += o.gap ?? 0;
}

function heading(ctx: Ctx, text: string, size = 13) {
  ensure(ctx.doc, size + 40);
  ctx.doc.y += 8;
  para(ctx, text, { size, weight: 'bold', gap: 4 });
}

const PAD = 3;
const CELL = 7.5;

/**
 * Draws rows under a header row. Cells wrap (never cut): a row is as tall as its tallest cell, and
 * a new page (with the header again) starts when the next row does not fit.
 */
function table({ doc, t }: Ctx, columns: Column[], rows: Iterable<string[]>, withHeader = true) {
  const total = columns.reduce((s, c) => s + c.width, 0);
  const rowHeight = (cells: string[], weight: 'regular' | 'bold') =>
    Math.max(...cells.map((cell, i) => t.height(cell, columns[i]!.width - 2 * PAD, CELL, weight))) + 2 * PAD;
  const drawRow = (cells: string[], weight: 'regular' | 'bold', band: boolean) => {
    const h = rowHeight(cells, weight);
    const y = doc.y;
    if (band) doc.rect(MARGIN, y, total, h).fill(COLORS.band);
    let x = MARGIN;
    cells.forEach((cell, i) => {
      const c = columns[i]!;
      t.draw(cell, x + PAD, y + PAD, { size: CELL, width: c.width - 2 * PAD, weight, color: COLORS.ink, align: c.align ?? 'left' });
      x += c.width;
    });
    doc
      .moveTo(MARGIN, y + h)
      .lineTo(MARGIN + total, y + h)
      .strokeColor(COLORS.rule)
      .lineWidth(0.3)
      .stroke();
    doc.y = y + h;
  };
  const header = columns.map((c) => c.header);
  const drawHeader = () => {
    ensure(doc, rowHeight(header, 'bold') + 2 * t.lineHeight(CELL) + 2 * PAD);
    drawRow(header, 'bold', true);
  };
  if (withHeader) drawHeader();
  for (const row of rows) {
    if (doc.y + rowHeight(row, 'regular') > bottomOf(doc)) {
      doc.addPage();
      drawHeader();
    }
    drawRow(row, 'regular', false);
  }
  doc.x = MARGIN;
}

function statusBoxes({ doc, t }: Ctx, c: SummaryData['totals']) {
  const items: [string, number, string][] = [
    ['Compliant', c.compliant, COLORS.compliant],
    ['Not compliant', c['non-compliant'], COLORS['non-compliant']],
    ['Exempt', c.exempt, COLORS.exempt],
    ['Unknown', c.unknown, COLORS.unknown],
  ];
  const w = (doc.page.width - 2 * MARGIN - 3 * 10) / 4;
  const y = doc.y;
  items.forEach(([label, n, color], i) => {
    const x = MARGIN + i * (w + 10);
    doc.rect(x, y, w, 58).fill(COLORS.band);
    doc.rect(x, y, 4, 58).fill(color);
    t.draw(n.toLocaleString('en-US'), x + 12, y + 6, { size: 20, weight: 'bold', color: COLORS.ink, width: w - 16, maxLines: 1 });
    t.draw(`${label} · ${pct(n, c.total)}`, x + 12, y + 38, { size: 8, color: COLORS.muted, width: w - 16, maxLines: 1 });
  });
  doc.y = y + 70;
  doc.x = MARGIN;
}

function trendChart({ doc, t }: Ctx, trend: SummaryData['trend']) {
  const h = 120;
  ensure(doc, h + 40);
  const x0 = MARGIN + 30;
  const w = doc.page.width - MARGIN - x0;
  const y0 = doc.y;
  const max = Math.max(1, ...trend.map((p) => p.total));
  t.draw(max.toLocaleString('en-US'), MARGIN, y0 - 4, { size: 7, color: COLORS.muted, width: 26, align: 'right', maxLines: 1 });
  t.draw('0', MARGIN, y0 + h - 7, { size: 7, color: COLORS.muted, width: 26, align: 'right', maxLines: 1 });
  doc
    .moveTo(x0, y0 + h)
    .lineTo(x0 + w, y0 + h)
    .strokeColor(COLORS.rule)
    .lineWidth(0.5)
    .stroke();
  const slot = w / Math.max(trend.length, 1);
  const bar = Math.max(1, Math.min(18, slot * 0.7));
  trend.forEach((p, i) => {
    let y = y0 + h;
    for (const k of ['compliant', 'non-compliant', 'exempt', 'unknown'] as const) {
      const bh = (p[k] / max) * h;
      if (bh <= 0) continue;
      y -= bh;
      doc.rect(x0 + i * slot + (slot - bar) / 2, y, bar, bh).fill(COLORS[k]);
    }
  });
  if (trend.length) {
    t.draw(trend[0]!.day, x0, y0 + h + 3, { size: 7, color: COLORS.muted, width: 60, maxLines: 1 });
    t.draw(trend[trend.length - 1]!.day, x0 + w - 60, y0 + h + 3, { size: 7, color: COLORS.muted, width: 60, align: 'right', maxLines: 1 });
  }
  // Legend
  let lx = x0 + 90;
  for (const [k, label] of [
    ['compliant', 'Compliant'],
    ['non-compliant', 'Not compliant'],
    ['exempt', 'Exempt'],
    ['unknown', 'Unknown'],
  ] as const) {
    doc.rect(lx, y0 + h + 5, 7, 7).fill(COLORS[k]);
    t.draw(label, lx + 10, y0 + h + 3, { size: 7, color: COLORS.muted, width: 58, maxLines: 1 });
    lx += 70;
  }
  doc.y = y0 + h + 22;
  doc.x = MARGIN;
  doc.fillColor(COLORS.ink);
}

function policyLines(p: Policy): string[] {
  const volumes =
    [p.protectOs && 'operating-system drive', p.protectFixed && 'fixed data drives', p.protectRemovable && 'removable drives'].filter(Boolean).join(', ') ||
    'none';
  return [
    `Drives that must be encrypted: ${volumes}.`,
    `Minimum method: ${METHOD_WORDS[p.minMethodOs]} (OS), ${METHOD_WORDS[p.minMethodFixed]} (fixed), ${METHOD_WORDS[p.minMethodRemovable]} (removable).`,
    `OS drive protector: ${p.osProtector === 'tpm_pin' ? 'TPM + PIN' : p.osProtector === 'tpm' ? 'TPM' : 'any'}. Suspension allowed for ${p.suspendedGraceHours} h (updates).`,
    `Recovery password ${p.requireRecoveryPassword ? 'required and escrowed in Keywarden' : 'not required'}${p.requireDirectoryEscrow !== 'none' ? `, also in ${p.requireDirectoryEscrow === 'ad' ? 'Active Directory' : p.requireDirectoryEscrow === 'entra' ? 'Entra ID' : 'AD or Entra ID'}` : ''}${p.maxKeyAgeDays ? `; rotated every ${p.maxKeyAgeDays} days` : ''}. Stale after ${p.staleAfterDays} days unseen.`,
    enforcementLine(p),
  ];
}

/** What the Keywarden agent does about findings on its own (the policy's enforce fields). */
function enforcementLine(p: Policy): string {
  const acts = [
    p.enforceEscrow && 'adds and escrows missing recovery passwords',
    p.enforceEncryption &&
      `turns on encryption (${p.encryptionMethod === 'default' ? "Windows' default method" : METHOD_WORDS[p.encryptionMethod]}) and resumes suspended protection`,
    p.enforceKeyAge && p.maxKeyAgeDays && 'rotates recovery passwords past their maximum age',
  ].filter(Boolean);
  const backup = p.directoryBackupAfterRotation ? ' Rotated passwords are also backed up to AD / Entra ID where the device is joined.' : '';
  return (
    (acts.length ? `The Keywarden agent ${acts.join('; ')}, always escrowing first.` : 'The Keywarden agent reports findings; it changes nothing on its own.') +
    backup
  );
}

export async function renderSummaryPdf(
  out: NodeJS.WritableStream,
  input: { data: SummaryData; branding: Branding; policy: Policy | null; period?: Period },
): Promise<number> {
  const { data, branding, policy } = input;
  const { doc, t, done, pages } = startDocument(out, branding, 'BitLocker compliance report', data.scope.label, data.generatedAt);
  const ctx = { doc, t };
  const full = doc.page.width - 2 * MARGIN;
  para(ctx, 'BitLocker compliance report', { size: 20, weight: 'bold' });
  para(
    ctx,
    `${data.scope.label} · ${data.totals.total.toLocaleString('en-US')} devices · status as of ${when(data.generatedAt)} UTC${input.period ? ` · trend for ${periodText(input.period)}` : ''}`,
    { size: 10, color: COLORS.muted, gap: 10 },
  );
  statusBoxes(ctx, data.totals);
  if (policy) {
    para(ctx, 'Policy', { size: 9, weight: 'bold' });
    for (const l of policyLines(policy)) para(ctx, l, { size: 8, color: COLORS.muted });
  }
  heading(ctx, input.period ? `Trend (${periodText(input.period)})` : `Trend (last ${data.trend.length || 0} days)`);
  if (data.trend.length) trendChart(ctx, data.trend);
  else para(ctx, 'No evaluations recorded in this period.', { size: 9, color: COLORS.muted });
  heading(ctx, 'Findings');
  if (data.findings.length === 0) para(ctx, 'No device has a finding.', { size: 9, color: COLORS.muted });
  else
    table(
      ctx,
      [
        { header: 'Finding', width: 150 },
        { header: 'Devices', width: 45, align: 'right' },
        { header: 'What to do', width: full - 195 },
      ],
      data.findings.map((f) => [FINDING_INFO[f.code].title, f.devices.toLocaleString('en-US'), FINDING_INFO[f.code].fix]),
    );
  if (data.posture.length) {
    heading(ctx, 'Tenant posture (Entra ID and Intune)');
    const mspWide = data.scope.clientId === null;
    table(
      ctx,
      [...(mspWide ? [{ header: 'Client', width: 90 }] : []), { header: 'Question', width: 170 }, { header: 'Answer', width: full - 170 - (mspWide ? 90 : 0) }],
      data.posture.flatMap((p) => p.lines.map((l) => [...(mspWide ? [p.client] : []), l.question, l.text])),
    );
    // The Intune policies behind the second answer: only assigned ones count, so say whom each reaches.
    const policies = data.posture.flatMap((p) => p.policies.map((text) => [...(mspWide ? [p.client] : []), text]));
    if (policies.length)
      table(ctx, [...(mspWide ? [{ header: 'Client', width: 90 }] : []), { header: 'Intune BitLocker policy', width: full - (mspWide ? 90 : 0) }], policies);
    const checked = data.posture.map((p) => p.checkedAt).sort()[0]!;
    para(ctx, `As read by the Entra ID sync (oldest reading ${when(checked)} UTC).`, { size: 8, color: COLORS.muted });
  }
  if (data.scope.clientId === null && data.perClient.length) {
    doc.addPage();
    heading(ctx, 'Clients');
    table(
      ctx,
      [
        { header: 'Client', width: full - 330 },
        { header: 'Devices', width: 60, align: 'right' },
        { header: 'Compliant', width: 80, align: 'right' },
        { header: 'Not compliant', width: 70, align: 'right' },
        { header: 'Exempt', width: 60, align: 'right' },
        { header: 'Unknown', width: 60, align: 'right' },
      ],
      data.perClient.map((c) => [
        c.client,
        String(c.total),
        `${c.compliant} (${c.percentCompliant === null ? 'unknown' : `${c.percentCompliant}%`})`,
        String(c['non-compliant']),
        String(c.exempt),
        String(c.unknown),
      ]),
    );
  }
  if (data.attention.length) {
    doc.addPage();
    heading(ctx, 'Devices that need attention');
    const mspWide = data.scope.clientId === null;
    table(
      ctx,
      [
        ...(mspWide ? [{ header: 'Client', width: 80 }] : []),
        { header: 'Device', width: 105 },
        { header: 'Not compliant since (UTC)', width: 82 },
        { header: 'Last seen (UTC)', width: 82 },
        { header: 'Findings', width: full - 269 - (mspWide ? 80 : 0) },
      ],
      data.attention.map((a) => [...(mspWide ? [a.client] : []), a.device, when(a.since), when(a.lastSeenAt), a.findings.join('; ')]),
    );
    if (data.attentionMore > 0) {
      doc.y += 6;
      para(ctx, `${data.attentionMore.toLocaleString('en-US')} more devices are not compliant: see the devices report (CSV) for the full list.`, {
        size: 8,
        color: COLORS.muted,
      });
    }
  }
  doc.end();
  await done;
  return pages();
}

export async function renderRecoveryAuditPdf(
  out: NodeJS.WritableStream,
  input: { scope: ReportScope; generatedAt: string; branding: Branding; rows: AsyncIterable<AuditRow[]>; period?: Period },
): Promise<number> {
  // Landscape: nine columns of times, names, key IDs and tickets need the width.
  const { doc, t, done, pages } = startDocument(out, input.branding, 'Recovery audit', input.scope.label, input.generatedAt, 'landscape');
  const ctx = { doc, t };
  para(ctx, 'Recovery audit', { size: 20, weight: 'bold' });
  para(
    ctx,
    `${input.scope.label} · period: ${periodText(input.period)}. Every request for a BitLocker recovery password: who asked, when, for which key, why, and whether it was given. Recovery passwords themselves never appear in this report.`,
    { size: 9, color: COLORS.muted, gap: 10 },
  );
  // A single-client report leaves out the client column: every row would repeat the same name.
  const mspWide = input.scope.clientId === null;
  const full = doc.page.width - 2 * MARGIN;
  const keyWidth = mspWide ? 110 : 170;
  const columns: Column[] = [
    { header: 'When (UTC)', width: 88 },
    { header: 'Who', width: 132 },
    { header: 'Source', width: 55 },
    { header: 'Status', width: 72 },
    ...(mspWide ? [{ header: 'Client', width: 75 }] : []),
    { header: 'Device', width: 90 },
    // A full key ID fits on one line in a single-client report; it wraps, never cut, otherwise.
    { header: 'Key ID', width: keyWidth },
    { header: 'Reason', width: 75 },
    { header: 'Ticket', width: full - 512 - keyWidth - (mspWide ? 75 : 0) },
  ];
  let count = 0;
  // Rows arrive a page of the query at a time; later pages continue the same table.
  for await (const page of input.rows) {
    table(
      ctx,
      columns,
      page.map((r) => [when(r.when), r.who, r.source, r.status, ...(mspWide ? [r.client] : []), r.device, r.keyId, r.reason, r.ticket]),
      count === 0,
    );
    count += page.length;
  }
  doc.y += 6;
  if (count === 0) para(ctx, 'No recovery password was requested in this period.', { size: 9, color: COLORS.muted });
  else para(ctx, `${count.toLocaleString('en-US')} requests.`, { size: 8, color: COLORS.muted });
  doc.end();
  await done;
  return pages();
}
