import { pipeline } from 'node:stream/promises';
import PDFDocument from 'pdfkit';
import { FINDING_INFO } from '../../domain/compliance/findings.js';
import { METHOD_WORDS, type Policy } from '../../domain/compliance/policy.js';
import type { Branding } from './branding.js';
import type { AuditRow, ReportScope, SummaryData } from './reports.service.js';

/**
 * The two PDF reports a client or auditor receives: the compliance summary and the recovery audit.
 * Drawn with pdfkit's built-in Helvetica (no font files), A4, the MSP's name and logo on every page.
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
const MARGIN = 48;
type Doc = PDFKit.PDFDocument;
type Column = { header: string; width: number; align?: 'left' | 'right' };

const when = (iso: string) => (iso ? `${iso.slice(0, 10)} ${iso.slice(11, 16)}` : '');
const pct = (n: number, total: number) => (total ? `${(Math.round((n / total) * 1000) / 10).toFixed(1)}%` : '–');

function fit(doc: Doc, text: string, width: number): string {
  if (doc.widthOfString(text) <= width) return text;
  let lo = 0;
  let hi = text.length;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (doc.widthOfString(text.slice(0, mid) + '…') <= width) lo = mid;
    else hi = mid - 1;
  }
  return text.slice(0, lo) + '…';
}

/** pdfkit's standard fonts cover WinAnsi only: other characters would print as garbage. */
const printable = (s: string) => s.replace(/[^\x20-\x7e\u00a0-\u00ff–—…€]/g, '?');

function startDocument(out: NodeJS.WritableStream, branding: Branding, title: string, scopeLabel: string, generatedAt: string) {
  const doc = new PDFDocument({ size: 'A4', margin: MARGIN, info: { Title: `${title}: ${scopeLabel}`, Author: branding.mspName, Creator: 'Keywarden' } });
  const done = pipeline(doc, out);
  let page = 0;
  const frame = () => {
    page++;
    const { width, height } = doc.page;
    // Header band: logo (or the name) left, the MSP's name and the report right.
    let x = MARGIN;
    if (branding.logoPng) {
      doc.image(branding.logoPng, MARGIN, 18, { fit: [110, 34] });
      x = MARGIN + 120;
    }
    doc
      .font('Helvetica-Bold')
      .fontSize(11)
      .fillColor(COLORS.ink)
      .text(printable(branding.mspName), x, 24, { width: width - x - MARGIN, lineBreak: false });
    doc
      .font('Helvetica')
      .fontSize(8)
      .fillColor(COLORS.muted)
      .text(printable(`${title} · ${scopeLabel}`), x, 38, { width: width - x - MARGIN, lineBreak: false });
    doc
      .moveTo(MARGIN, 58)
      .lineTo(width - MARGIN, 58)
      .strokeColor(COLORS.rule)
      .lineWidth(0.5)
      .stroke();
    // Footer: drawn with the bottom margin lifted, or pdfkit would start yet another page.
    const bottom = doc.page.margins.bottom;
    doc.page.margins.bottom = 0;
    doc
      .font('Helvetica')
      .fontSize(7)
      .fillColor(COLORS.muted)
      .text(`Generated ${when(generatedAt)} UTC by Keywarden · Page ${page}`, MARGIN, height - 30, {
        width: width - 2 * MARGIN,
        align: 'center',
        lineBreak: false,
      });
    doc.page.margins.bottom = bottom;
    doc.x = MARGIN;
    doc.y = 72;
    doc.fillColor(COLORS.ink);
  };
  doc.on('pageAdded', frame);
  frame();
  return { doc, done, pages: () => page };
}

function heading(doc: Doc, text: string, size = 13) {
  ensure(doc, size + 30);
  doc.moveDown(0.6).font('Helvetica-Bold').fontSize(size).fillColor(COLORS.ink).text(text, MARGIN, doc.y);
  doc.moveDown(0.3);
}

function ensure(doc: Doc, height: number) {
  if (doc.y + height > doc.page.height - doc.page.margins.bottom) doc.addPage();
}

/** Draws rows under a header row, starting a new page (with the header again) when one is full. */
function table(doc: Doc, columns: Column[], rows: Iterable<string[]>, rowHeight = 14, withHeader = true) {
  const drawHeader = () => {
    ensure(doc, rowHeight * 2);
    let x = MARGIN;
    const y = doc.y;
    doc
      .rect(
        MARGIN,
        y - 2,
        columns.reduce((s, c) => s + c.width, 0),
        rowHeight,
      )
      .fill(COLORS.band);
    doc.font('Helvetica-Bold').fontSize(7.5).fillColor(COLORS.ink);
    for (const c of columns) {
      doc.text(c.header, x + 3, y + 1, { width: c.width - 6, align: c.align ?? 'left', lineBreak: false });
      x += c.width;
    }
    doc.y = y + rowHeight;
  };
  if (withHeader) drawHeader();
  doc.font('Helvetica').fontSize(7.5);
  for (const row of rows) {
    if (doc.y + rowHeight > doc.page.height - doc.page.margins.bottom) {
      doc.addPage();
      drawHeader();
      doc.font('Helvetica').fontSize(7.5);
    }
    let x = MARGIN;
    const y = doc.y;
    doc.fillColor(COLORS.ink);
    row.forEach((cell, i) => {
      const c = columns[i]!;
      doc.text(fit(doc, printable(cell), c.width - 6), x + 3, y + 1, { width: c.width - 6, align: c.align ?? 'left', lineBreak: false });
      x += c.width;
    });
    doc
      .moveTo(MARGIN, y + rowHeight - 2)
      .lineTo(x, y + rowHeight - 2)
      .strokeColor(COLORS.rule)
      .lineWidth(0.3)
      .stroke();
    doc.y = y + rowHeight;
  }
  doc.x = MARGIN;
}

function statusBoxes(doc: Doc, c: SummaryData['totals']) {
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
    doc
      .font('Helvetica-Bold')
      .fontSize(20)
      .fillColor(COLORS.ink)
      .text(n.toLocaleString('en-US'), x + 12, y + 8, { width: w - 16, lineBreak: false });
    doc
      .font('Helvetica')
      .fontSize(8)
      .fillColor(COLORS.muted)
      .text(`${label} · ${pct(n, c.total)}`, x + 12, y + 36, { width: w - 16, lineBreak: false });
  });
  doc.y = y + 70;
  doc.x = MARGIN;
}

function trendChart(doc: Doc, trend: SummaryData['trend']) {
  const h = 120;
  ensure(doc, h + 40);
  const x0 = MARGIN + 30;
  const w = doc.page.width - MARGIN - x0;
  const y0 = doc.y;
  const max = Math.max(1, ...trend.map((t) => t.total));
  doc.font('Helvetica').fontSize(7).fillColor(COLORS.muted);
  doc.text(max.toLocaleString('en-US'), MARGIN, y0 - 3, { width: 26, align: 'right', lineBreak: false });
  doc.text('0', MARGIN, y0 + h - 6, { width: 26, align: 'right', lineBreak: false });
  doc
    .moveTo(x0, y0 + h)
    .lineTo(x0 + w, y0 + h)
    .strokeColor(COLORS.rule)
    .lineWidth(0.5)
    .stroke();
  const slot = w / Math.max(trend.length, 1);
  const bar = Math.max(2, Math.min(18, slot * 0.7));
  trend.forEach((t, i) => {
    let y = y0 + h;
    for (const k of ['compliant', 'non-compliant', 'exempt', 'unknown'] as const) {
      const bh = (t[k] / max) * h;
      if (bh <= 0) continue;
      y -= bh;
      doc.rect(x0 + i * slot + (slot - bar) / 2, y, bar, bh).fill(COLORS[k]);
    }
  });
  doc.font('Helvetica').fontSize(7).fillColor(COLORS.muted);
  if (trend.length) {
    doc.text(trend[0]!.day, x0, y0 + h + 4, { lineBreak: false });
    doc.text(trend[trend.length - 1]!.day, x0 + w - 60, y0 + h + 4, { width: 60, align: 'right', lineBreak: false });
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
    doc.fillColor(COLORS.muted).text(label, lx + 10, y0 + h + 4, { lineBreak: false });
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

export async function renderSummaryPdf(out: NodeJS.WritableStream, input: { data: SummaryData; branding: Branding; policy: Policy | null }): Promise<number> {
  const { data, branding, policy } = input;
  const { doc, done, pages } = startDocument(out, branding, 'BitLocker compliance report', data.scope.label, data.generatedAt);
  doc.font('Helvetica-Bold').fontSize(20).fillColor(COLORS.ink).text('BitLocker compliance report', MARGIN, doc.y);
  doc
    .font('Helvetica')
    .fontSize(10)
    .fillColor(COLORS.muted)
    .text(printable(`${data.scope.label} · ${data.totals.total.toLocaleString('en-US')} devices · as of ${when(data.generatedAt)} UTC`));
  doc.moveDown(0.8);
  statusBoxes(doc, data.totals);
  if (policy) {
    doc.font('Helvetica-Bold').fontSize(9).fillColor(COLORS.ink).text('Policy');
    doc.font('Helvetica').fontSize(8).fillColor(COLORS.muted);
    for (const l of policyLines(policy)) doc.text(l);
  }
  heading(doc, `Trend (last ${data.trend.length || 0} days)`);
  if (data.trend.length) trendChart(doc, data.trend);
  else doc.font('Helvetica').fontSize(9).fillColor(COLORS.muted).text('No evaluations recorded yet.');
  heading(doc, 'Findings');
  if (data.findings.length === 0) doc.font('Helvetica').fontSize(9).fillColor(COLORS.muted).text('No device has a finding.');
  else
    table(
      doc,
      [
        { header: 'Finding', width: 150 },
        { header: 'Devices', width: 50, align: 'right' },
        { header: 'What to do', width: doc.page.width - 2 * MARGIN - 200 },
      ],
      data.findings.map((f) => [FINDING_INFO[f.code].title, f.devices.toLocaleString('en-US'), FINDING_INFO[f.code].fix]),
      16,
    );
  if (data.scope.clientId === null && data.perClient.length) {
    doc.addPage();
    heading(doc, 'Clients');
    table(
      doc,
      [
        { header: 'Client', width: 170 },
        { header: 'Devices', width: 60, align: 'right' },
        { header: 'Compliant', width: 70, align: 'right' },
        { header: 'Not compliant', width: 70, align: 'right' },
        { header: 'Exempt', width: 50, align: 'right' },
        { header: 'Unknown', width: 50, align: 'right' },
      ],
      data.perClient.map((c) => [
        c.client,
        String(c.total),
        `${c.compliant} (${pct(c.compliant, c.total)})`,
        String(c['non-compliant']),
        String(c.exempt),
        String(c.unknown),
      ]),
    );
  }
  if (data.attention.length) {
    doc.addPage();
    heading(doc, 'Devices that need attention');
    table(
      doc,
      [
        ...(data.scope.clientId === null ? [{ header: 'Client', width: 80 }] : []),
        { header: 'Device', width: 100 },
        { header: 'Not compliant since', width: 80 },
        { header: 'Last seen', width: 60 },
        { header: 'Findings', width: doc.page.width - 2 * MARGIN - 240 - (data.scope.clientId === null ? 80 : 0) },
      ],
      data.attention.map((a) => [
        ...(data.scope.clientId === null ? [a.client] : []),
        a.device,
        when(a.since),
        a.lastSeenAt.slice(0, 10),
        a.findings.join('; '),
      ]),
    );
    if (data.attentionMore > 0) {
      doc
        .moveDown(0.5)
        .font('Helvetica')
        .fontSize(8)
        .fillColor(COLORS.muted)
        .text(`${data.attentionMore.toLocaleString('en-US')} more devices are not compliant: see the devices report (CSV) for the full list.`, MARGIN);
    }
  }
  doc.end();
  await done;
  return pages();
}

export async function renderRecoveryAuditPdf(
  out: NodeJS.WritableStream,
  input: { scope: ReportScope; generatedAt: string; branding: Branding; rows: AsyncIterable<AuditRow[]> },
): Promise<number> {
  const { doc, done, pages } = startDocument(out, input.branding, 'Recovery audit', input.scope.label, input.generatedAt);
  doc.font('Helvetica-Bold').fontSize(20).fillColor(COLORS.ink).text('Recovery audit', MARGIN, doc.y);
  doc
    .font('Helvetica')
    .fontSize(9)
    .fillColor(COLORS.muted)
    .text(
      printable(
        `${input.scope.label}. Every request for a BitLocker recovery password: who asked, when, for which key, why, and whether it was given. Recovery passwords themselves never appear in this report.`,
      ),
    );
  doc.moveDown(0.8);
  const columns: Column[] = [
    { header: 'When (UTC)', width: 62 },
    { header: 'Who', width: 88 },
    { header: 'Source', width: 55 },
    { header: 'Status', width: 50 },
    { header: 'Client', width: 55 },
    { header: 'Device', width: 55 },
    { header: 'Key ID', width: 62 },
    { header: 'Reason / ticket', width: doc.page.width - 2 * MARGIN - 427 },
  ];
  let count = 0;
  // The table helper takes an iterable; rows arrive a page of the query at a time.
  for await (const page of input.rows) {
    table(
      doc,
      columns,
      page.map((r) => [
        when(r.when),
        r.who,
        r.source,
        r.status,
        r.client,
        r.device,
        r.keyId.replace(/^\{([0-9A-F]{8})[^}]*\}$/, '{$1…}'),
        [r.reason, r.ticket].filter(Boolean).join(' · '),
      ]),
      14,
      // Later query pages continue the same table.
      count === 0,
    );
    count += page.length;
  }
  if (count === 0) doc.font('Helvetica').fontSize(9).fillColor(COLORS.muted).text('No recovery password was requested.', MARGIN);
  else
    doc
      .moveDown(0.5)
      .font('Helvetica')
      .fontSize(8)
      .fillColor(COLORS.muted)
      .text(`${count.toLocaleString('en-US')} requests.`, MARGIN);
  doc.end();
  await done;
  return pages();
}
