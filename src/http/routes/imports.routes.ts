import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Container } from '../../container.js';
import { badRequest, isAppError } from '../../lib/errors.js';
import { IMPORT_FORMATS, MAX_REPORTED_REJECTIONS, type ImportFormat } from '../../domain/import/index.js';
import type { ImportFileResult } from '../../modules/imports/imports.service.js';
import { actorOf } from '../plugins/auth.js';
import { requirePermission } from '../../modules/authz/authz.js';
import { errors } from '../schemas.js';

const Rejected = z.object({ file: z.string(), line: z.number(), reason: z.string() });
/** How many devices an answer names at most (an export of thousands is summed up in the counts). */
const MAX_LISTED_DEVICES = 200;

/**
 * Upload key files (multipart/form-data): fields `client` (name or id), optional `device`,
 * `format` (auto|txt|manage-bde|csv|json) and `dryRun`, then one or more `file` parts.
 * The same importers and rules as `keywarden import`; each file is one transaction.
 *
 * Every part is read (to private temporary files) before anything is imported, so an upload
 * refused for its size or number of files commits nothing. Rejected rows come back as a count
 * and the first MAX_REPORTED_REJECTIONS, never as an echo of everything that was wrong.
 */
export const importRoutes =
  (c: Container): FastifyPluginAsyncZod =>
  async (app) => {
    app.post(
      '/imports',
      {
        schema: {
          tags: ['imports'],
          summary: 'Import recovery keys from uploaded files (multipart: client, device?, format?, dryRun?, file…)',
          consumes: ['multipart/form-data'],
          response: {
            200: z.object({
              imported: z.number(),
              duplicates: z.number(),
              conflicts: z.number(),
              rejected: z.array(Rejected).describe(`The first ${MAX_REPORTED_REJECTIONS} rejected rows over all files, each with its file and line.`),
              rejectedCount: z.number().describe('Every rejected row over all files, listed or not.'),
              files: z.array(
                z.object({
                  file: z.string(),
                  format: z
                    .enum(IMPORT_FORMATS as [ImportFormat, ...ImportFormat[]])
                    .nullable()
                    .describe('null when the file could not be read in any format'),
                  imported: z.number(),
                  duplicates: z.number(),
                  conflicts: z.number(),
                  rejected: z.number(),
                }),
              ),
              devices: z
                .array(z.object({ id: z.string().nullable().describe('null in a dry run: nothing was stored'), name: z.string() }))
                .describe(`The devices the keys were (or would be) filed under, each once; the first ${MAX_LISTED_DEVICES}.`),
              dryRun: z.boolean(),
            }),
            ...errors(400, 401, 403, 404, 409, 413),
          },
        },
      },
      async (request) => {
        const actor = actorOf(request);
        // Permission before anything is looked up, so a role that cannot import learns nothing.
        requirePermission(actor, 'key:import');
        if (!request.isMultipart()) throw badRequest('Send the files as multipart/form-data: fields client, device, format, dryRun, then file parts.');
        const fields: Record<string, string> = {};
        const staged: { fileName: string; path: string; format: ImportFormat | 'auto' }[] = [];
        const results: ImportFileResult[] = [];
        const dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'keywarden-upload-'));
        try {
          const parts = request.parts();
          for (;;) {
            let next: Awaited<ReturnType<typeof parts.next>>;
            try {
              next = await parts.next();
            } catch (e) {
              if (isAppError(e) || (e as { statusCode?: number }).statusCode === 413) throw e;
              // A truncated body or a broken boundary: the upload itself is unreadable.
              throw badRequest('The upload could not be read as multipart/form-data (cut off, or a broken boundary). Send it again.');
            }
            if (next.done) break;
            const part = next.value;
            if (part.type === 'field') {
              if (!['client', 'device', 'format', 'dryRun'].includes(part.fieldname)) throw badRequest(`Unknown form field "${part.fieldname.slice(0, 40)}".`);
              fields[part.fieldname] = String(part.value).slice(0, 200);
              continue;
            }
            if (!fields.client) throw badRequest('Put the "client" field before the files.', { field: 'client' });
            const format = (fields.format ?? 'auto') as ImportFormat | 'auto';
            if (format !== 'auto' && !IMPORT_FORMATS.includes(format))
              throw badRequest(`Unknown format "${format}". Use auto, ${IMPORT_FORMATS.join(', ')}.`, { field: 'format' });
            const dest = path.join(dir, String(staged.length));
            try {
              await pipeline(part.file, fs.createWriteStream(dest, { mode: 0o600 }));
            } catch (e) {
              if (isAppError(e) || (e as { statusCode?: number }).statusCode === 413) throw e;
              throw badRequest(`The upload of ${part.filename || 'a file'} was cut off or malformed. Send it again.`);
            }
            if (part.file.truncated) throw Object.assign(new Error(`${part.filename || 'A file'} is larger than the upload limit.`), { statusCode: 413 });
            staged.push({ fileName: part.filename || 'upload', path: dest, format });
          }
          if (staged.length > 0) {
            const clientName = /^[0-9a-f-]{36}$/i.test(fields.client!) ? (await c.clients.get(actor, fields.client!)).name : fields.client!;
            const dryRun = fields.dryRun === 'true' || fields.dryRun === '1';
            for (const file of staged) {
              const bytes = await fs.promises.readFile(file.path);
              results.push(
                await c.imports.importFile(
                  actor,
                  clientName,
                  { fileName: file.fileName, bytes, format: file.format, defaultDevice: fields.device },
                  { dryRun },
                ),
              );
            }
          }
        } finally {
          await fs.promises.rm(dir, { recursive: true, force: true });
        }
        if (results.length === 0) throw badRequest('No file was uploaded: add at least one "file" part.', { field: 'file' });
        return {
          imported: results.reduce((s, r) => s + r.imported, 0),
          duplicates: results.reduce((s, r) => s + r.duplicates, 0),
          conflicts: results.reduce((s, r) => s + r.conflicts, 0),
          rejected: results.flatMap((r) => r.rejected).slice(0, MAX_REPORTED_REJECTIONS),
          rejectedCount: results.reduce((s, r) => s + r.rejectedCount, 0),
          files: results.map((r) => ({
            file: r.file,
            format: r.format,
            imported: r.imported,
            duplicates: r.duplicates,
            conflicts: r.conflicts,
            rejected: r.rejectedCount,
          })),
          devices: [...new Map(results.flatMap((r) => r.devices).map((d) => [d.id ?? `name:${d.name}`, d])).values()].slice(0, MAX_LISTED_DEVICES),
          dryRun: fields.dryRun === 'true' || fields.dryRun === '1',
        };
      },
    );
  };
