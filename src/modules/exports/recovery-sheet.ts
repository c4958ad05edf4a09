import { formatKeyIdForDisplay } from '../../domain/key-id.js';
import { keysByDevice, passwordGroups, type BundleKeyEntry } from '../../domain/export-bundle.js';

/**
 * The printable recovery sheet for the paper copy in the safe: one A4 page per device with the
 * client, device, each key ID and its password in 8 numbered groups of large monospace digits
 * (what a person types at the blue BitLocker screen), the date, and a "destroy when superseded"
 * footer. The PDF's metadata carries no password or device name; the built-in Courier and
 * Helvetica fonts mean nothing is embedded or fetched.
 */
export type SheetInput = { keys: readonly BundleKeyEntry[]; printedAt: string; printedBy: string };

const A4 = { width: 595.28, height: 841.89 };
const MARGIN = 48;
/** Height of one key block at full size; more keys than fit on a page shrink the blocks. */
const BLOCK = 150;

export async function renderRecoverySheet({ keys, printedAt, printedBy }: SheetInput): Promise<Buffer> {
  // pdfkit (and its fonts) load when a sheet is printed, not with the container: `keywarden lookup` never needs them.
  const { default: PDFDocument } = await import('pdfkit');
  const doc = new PDFDocument({
    size: 'A4',
    margin: MARGIN,
    autoFirstPage: false,
    bufferPages: true,
    info: { Title: 'Keywarden recovery sheet', Author: 'Keywarden', Subject: 'BitLocker recovery passwords — confidential', Creator: 'Keywarden' },
  });
  const chunks: Buffer[] = [];
  doc.on('data', (c: Buffer) => chunks.push(c));
  const done = new Promise<void>((resolve, reject) => {
    doc.on('end', resolve);
    doc.on('error', reject);
  });

  const date = printedAt.slice(0, 10);
  const width = A4.width - 2 * MARGIN;
  const devices = keysByDevice(keys);
  for (const d of devices) {
    doc.addPage();
    let y = MARGIN;
    doc.font('Helvetica').fontSize(9).fillColor('#555555').text('KEYWARDEN · BITLOCKER RECOVERY SHEET · CONFIDENTIAL', MARGIN, y, { width, align: 'left' });
    doc.text(`Printed ${date}`, MARGIN, y, { width, align: 'right' });
    y += 22;
    doc
      .fillColor('#000000')
      .font('Helvetica-Bold')
      .fontSize(22)
      .text(d.device ?? 'Keys without a device', MARGIN, y, { width, lineBreak: false, ellipsis: true });
    y += 30;
    doc.font('Helvetica').fontSize(12).text(`Client: ${d.client}`, MARGIN, y, { width, lineBreak: false, ellipsis: true });
    y += 26;
    doc
      .moveTo(MARGIN, y)
      .lineTo(A4.width - MARGIN, y)
      .lineWidth(1)
      .strokeColor('#000000')
      .stroke();
    y += 14;

    const available = A4.height - MARGIN - 70 - y;
    const scale = Math.min(1, available / (d.keys.length * BLOCK));
    for (const k of d.keys) {
      const volume = k.volume ? `Volume ${k.volume}` : 'Volume unknown';
      doc
        .font('Helvetica')
        .fontSize(10 * Math.max(scale, 0.7))
        .fillColor('#333333')
        .text(`${volume}   ·   state ${k.state}   ·   created ${(k.createdAt ?? k.firstSeenAt).slice(0, 10)}`, MARGIN, y, {
          width,
          lineBreak: false,
          ellipsis: true,
        });
      y += 16 * scale;
      doc
        .font('Helvetica-Bold')
        .fontSize(11 * Math.max(scale, 0.7))
        .fillColor('#000000')
        .text('Key ID', MARGIN, y, { lineBreak: false });
      doc
        .font('Courier-Bold')
        .fontSize(13 * Math.max(scale, 0.7))
        .text(k.keyId ? formatKeyIdForDisplay(k.keyId) : '(no key ID recorded)', MARGIN + 60, y - 1, { lineBreak: false });
      y += 22 * scale;
      // Two rows of four groups, each numbered above, as on the BitLocker recovery screen.
      const groups = passwordGroups(k.recoveryPassword);
      const cell = width / 4;
      for (let row = 0; row < 2; row++) {
        for (let col = 0; col < 4; col++) {
          const i = row * 4 + col;
          const x = MARGIN + col * cell;
          doc
            .font('Helvetica')
            .fontSize(8 * Math.max(scale, 0.8))
            .fillColor('#666666')
            .text(String(i + 1), x, y, { width: cell - 8, align: 'center', lineBreak: false });
          doc
            .font('Courier-Bold')
            .fontSize(22 * scale)
            .fillColor('#000000')
            .text(groups[i] ?? '', x, y + 10 * scale, { width: cell - 8, align: 'center', lineBreak: false });
        }
        y += 40 * scale;
      }
      y += 12 * scale;
      doc
        .moveTo(MARGIN, y - 6 * scale)
        .lineTo(A4.width - MARGIN, y - 6 * scale)
        .lineWidth(0.3)
        .strokeColor('#999999')
        .stroke();
    }
  }

  // Footer on every page, once the page count is known.
  const range = doc.bufferedPageRange();
  for (let i = range.start; i < range.start + range.count; i++) {
    doc.switchToPage(i);
    const fy = A4.height - MARGIN - 30;
    doc
      .moveTo(MARGIN, fy - 6)
      .lineTo(A4.width - MARGIN, fy - 6)
      .lineWidth(1)
      .strokeColor('#000000')
      .stroke();
    doc
      .font('Helvetica-Bold')
      .fontSize(10)
      .fillColor('#000000')
      .text('DESTROY WHEN SUPERSEDED — shred this page once the key is rotated or the device retired.', MARGIN, fy, {
        width,
        lineBreak: false,
      });
    doc
      .font('Helvetica')
      .fontSize(8)
      .fillColor('#555555')
      .text(`Printed ${date} by ${printedBy}. Keep in a locked safe. Page ${i - range.start + 1} of ${range.count}.`, MARGIN, fy + 14, {
        width,
        lineBreak: false,
        ellipsis: true,
      });
  }
  doc.end();
  await done;
  return Buffer.concat(chunks);
}
