import type { Transactions } from '../../db/transactions.js';
import { badRequest, conflict } from '../../lib/errors.js';
import { ImportFormatError, type ImportFormat } from '../../domain/import/index.js';
import { requirePermission, type Actor } from '../authz/authz.js';
import type { AuditService } from '../audit/audit.service.js';
import type { ClientsService } from '../clients/clients.service.js';
import type { KeyIngest } from '../keys/keys.ingest.js';
import type { KeyReport } from '../keys/keys.types.js';
import { parseImportOffThread } from './import-parse.js';

export type ImportFileInput = {
  fileName: string;
  bytes: Uint8Array;
  format?: ImportFormat | 'auto';
  /** Device name for rows that do not carry one (TXT files, manage-bde output). */
  defaultDevice?: string | null;
};

export type ImportRejected = { file: string; line: number; reason: string };
export type ImportFileResult = {
  file: string;
  format: ImportFormat | null;
  imported: number;
  duplicates: number;
  conflicts: number;
  /** The first MAX_REPORTED_REJECTIONS rejected rows, in line order. */
  rejected: ImportRejected[];
  /** Every rejected row, listed or not. */
  rejectedCount: number;
  /** The devices the keys were filed under (id null in a dry run: nothing was stored). */
  devices: { id: string | null; name: string }[];
};

type Deps = {
  tx: Transactions;
  ingest: KeyIngest;
  clients: Pick<ClientsService, 'getByName'>;
  audit: Pick<AuditService, 'record'>;
};

/** Thrown inside the transaction to roll a dry run back after counting. */
class DryRunRollback extends Error {
  constructor(readonly result: ImportFileResult) {
    super('dry run');
  }
}

const MAX_FILE_BYTES = 256 * 1024 * 1024;

export function createImportsService({ tx: transactions, ingest, clients, audit }: Deps) {
  return {
    /**
     * Imports one file into one client in one transaction: every good row goes in, every bad
     * row is reported with its line and reason, and nothing is half-written.
     */
    async importFile(
      actor: Actor,
      clientName: string,
      input: ImportFileInput,
      opts: { dryRun?: boolean; onProgress?: (done: number, total: number) => void } = {},
    ): Promise<ImportFileResult> {
      requirePermission(actor, 'key:import');
      const client = await clients.getByName(actor, clientName);
      requirePermission(actor, 'key:import', client.id);
      // Its data key is gone: nothing can be sealed for it any more, so say so before parsing.
      if (client.offboardedAt)
        throw conflict(
          `Client "${client.name}" was offboarded on ${client.offboardedAt.slice(0, 10)}: its data key was destroyed, so no keys can be imported into it.`,
        );
      const file = input.fileName;
      if (input.bytes.byteLength > MAX_FILE_BYTES) throw badRequest(`${file} is larger than 256 MB; split it into smaller files.`);

      let parsed;
      try {
        parsed = await parseImportOffThread({ bytes: input.bytes, fileName: file, format: input.format ?? 'auto' });
      } catch (e) {
        if (e instanceof ImportFormatError) {
          return {
            file,
            format: null,
            imported: 0,
            duplicates: 0,
            conflicts: 0,
            rejected: [{ file, line: 0, reason: e.message }],
            rejectedCount: 1,
            devices: [],
          };
        }
        throw e;
      }
      const defaultDevice = input.defaultDevice?.trim() || undefined;
      const reports: KeyReport[] = parsed.records.map((r) => ({
        keyId: r.keyId,
        recoveryPassword: r.recoveryPassword,
        device: {
          name: r.deviceName ?? (r.entraDeviceId ? undefined : defaultDevice),
          domain: r.domain,
          serial: r.serial,
          user: r.user,
          entraDeviceId: r.entraDeviceId,
        },
        volume: { mountPoint: r.mountPoint, volumeType: r.volumeType },
        createdAt: r.createdAt ?? null,
      }));
      const rejected = parsed.rejected.map((r) => ({ file, line: r.line, reason: r.reason }));
      const sourceRef = baseName(file);

      try {
        return await transactions.run(async (tx) => {
          const counts = await ingest(tx, actor, client.id, { type: 'import', ref: sourceRef }, reports, opts.onProgress);
          const result: ImportFileResult = {
            file,
            format: parsed.format,
            imported: counts.imported,
            duplicates: counts.duplicates,
            conflicts: counts.conflicts,
            rejected,
            rejectedCount: parsed.rejectedCount,
            devices: counts.devices.map((d) => ({ id: opts.dryRun ? null : d.id, name: d.name })),
          };
          await audit.record(tx, actor, {
            action: 'keys.import',
            outcome: 'success',
            clientId: client.id,
            targetType: 'client',
            targetId: client.id,
            details: {
              file: sourceRef,
              format: parsed.format,
              imported: counts.imported,
              duplicates: counts.duplicates,
              conflicts: counts.conflicts,
              rejected: parsed.rejectedCount,
            },
          });
          if (opts.dryRun) throw new DryRunRollback(result);
          return result;
        });
      } catch (e) {
        if (e instanceof DryRunRollback) return e.result;
        throw e;
      }
    },
  };
}
export type ImportsService = ReturnType<typeof createImportsService>;

const baseName = (p: string) => p.split(/[\\/]/).pop() || p;
