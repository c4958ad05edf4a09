import { badRequest } from '../../lib/errors.js';

/**
 * The MSP's name and logo on reports sent to clients. Kept in the settings table (the settings
 * module reads and changes it): the logo is a small PNG stored as base64, no file storage to back
 * up separately.
 */
export { readBranding, type Branding } from '../settings/settings.repo.js';

export const LOGO_MAX_BYTES = 256 * 1024;
const PNG_MAGIC = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** A PNG that pdfkit can draw: checked once at upload so a report never fails on it later. */
export async function checkLogo(png: Buffer): Promise<void> {
  if (png.length === 0 || png.length > LOGO_MAX_BYTES)
    throw badRequest(`The logo must be a PNG file of at most ${LOGO_MAX_BYTES / 1024} KB.`, { field: 'logoPngBase64' });
  if (!png.subarray(0, 8).equals(PNG_MAGIC)) throw badRequest('The logo must be a PNG image.', { field: 'logoPngBase64' });
  // pdfkit loads here, on an upload, not with the container (the CLI's lookup never needs it).
  const { default: PDFDocument } = await import('pdfkit');
  try {
    const doc = new PDFDocument({ autoFirstPage: true });
    doc.image(png, 0, 0, { fit: [100, 40] });
    doc.end();
  } catch {
    throw badRequest('The logo is not a readable PNG image.', { field: 'logoPngBase64' });
  }
}
