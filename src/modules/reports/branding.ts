import PDFDocument from 'pdfkit';
import type { Db, Executor } from '../../db/database.js';
import type { Clock } from '../../lib/clock.js';
import { badRequest } from '../../lib/errors.js';
import { requirePermission, type Actor } from '../authz/authz.js';
import type { AuditService } from '../audit/audit.service.js';

/**
 * The MSP's name and logo on reports sent to clients. Kept in the settings table: the logo is a
 * small PNG stored as base64 (no file storage to back up separately).
 */
export const BRANDING_NAME_KEY = 'branding.msp_name';
export const BRANDING_LOGO_KEY = 'branding.logo_png';
export const LOGO_MAX_BYTES = 256 * 1024;
const PNG_MAGIC = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

export type Branding = { mspName: string; logoPng: Buffer | null };
export type BrandingView = { mspName: string; hasLogo: boolean; logoBytes: number | null };

export async function readBranding(exec: Executor): Promise<Branding> {
  const rows = await exec.selectFrom('settings').select(['key', 'value']).where('key', 'in', [BRANDING_NAME_KEY, BRANDING_LOGO_KEY]).execute();
  const get = (k: string) => rows.find((r) => r.key === k)?.value;
  const logo = get(BRANDING_LOGO_KEY);
  return { mspName: get(BRANDING_NAME_KEY) || 'Keywarden', logoPng: logo ? Buffer.from(logo, 'base64') : null };
}

/** A PNG that pdfkit can draw: checked once at upload so a report never fails on it later. */
export function checkLogo(png: Buffer): void {
  if (png.length === 0 || png.length > LOGO_MAX_BYTES) throw badRequest(`The logo must be a PNG file of at most ${LOGO_MAX_BYTES / 1024} KB.`, { field: 'logoPngBase64' });
  if (!png.subarray(0, 8).equals(PNG_MAGIC)) throw badRequest('The logo must be a PNG image.', { field: 'logoPngBase64' });
  try {
    const doc = new PDFDocument({ autoFirstPage: true });
    doc.image(png, 0, 0, { fit: [100, 40] });
    doc.end();
  } catch {
    throw badRequest('The logo is not a readable PNG image.', { field: 'logoPngBase64' });
  }
}

export function createBrandingService({ db, audit, clock }: { db: Db; audit: Pick<AuditService, 'record'>; clock: Clock }) {
  const view = (b: Branding): BrandingView => ({ mspName: b.mspName, hasLogo: !!b.logoPng, logoBytes: b.logoPng?.length ?? null });
  return {
    async get(actor: Actor): Promise<BrandingView> {
      requirePermission(actor, 'settings:manage');
      return view(await readBranding(db));
    },
    /** Owner only: a name (1-100 characters) and a PNG logo (null removes it). */
    async update(actor: Actor, input: { mspName?: string; logoPngBase64?: string | null }): Promise<BrandingView> {
      requirePermission(actor, 'settings:manage');
      const name = input.mspName?.trim();
      if (input.mspName !== undefined && (!name || name.length > 100)) throw badRequest('The MSP name must be 1 to 100 characters.', { field: 'mspName' });
      let logo: Buffer | null | undefined;
      if (input.logoPngBase64 === null) logo = null;
      else if (input.logoPngBase64 !== undefined) {
        logo = Buffer.from(input.logoPngBase64, 'base64');
        checkLogo(logo);
      }
      const now = clock.now();
      await db.transaction().execute(async (tx) => {
        const put = (key: string, value: string) =>
          tx.insertInto('settings').values({ key, value, updated_at: now }).onConflict((oc) => oc.column('key').doUpdateSet({ value, updated_at: now })).execute();
        if (name) await put(BRANDING_NAME_KEY, name);
        if (logo) await put(BRANDING_LOGO_KEY, logo.toString('base64'));
        if (logo === null) await tx.deleteFrom('settings').where('key', '=', BRANDING_LOGO_KEY).execute();
        await audit.record(tx, actor, {
          action: 'settings.update',
          outcome: 'success',
          details: { branding: { ...(name ? { mspName: name } : {}), ...(logo ? { logoBytes: logo.length } : logo === null ? { logo: 'removed' } : {}) } },
        });
      });
      return view(await readBranding(db));
    },
  };
}
export type BrandingService = ReturnType<typeof createBrandingService>;
