/**
 * Parses one uploaded key file on a worker thread, so a large file never holds up the event
 * loop (health checks, sign-ins, reveals) while it is read. Records go back in batches: each
 * message is small enough to be copied into the main thread without a pause of its own.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { ImportFormatError, parseImport, type ImportFormat } from '../../domain/import/index.js';

export type ParseJob = { fileName: string; format: ImportFormat | 'auto' };
export type ParseMessage =
  | { kind: 'records'; records: ReturnType<typeof parseImport>['records'] }
  | { kind: 'done'; format: ImportFormat; rejected: ReturnType<typeof parseImport>['rejected']; rejectedCount: number }
  | { kind: 'format-error'; message: string }
  | { kind: 'error'; message: string };

const BATCH = 2000;

if (parentPort) {
  const port = parentPort;
  const job = workerData as ParseJob;
  port.once('message', (bytes: Uint8Array) => {
    try {
      const parsed = parseImport({ bytes, fileName: job.fileName, format: job.format });
      for (let i = 0; i < parsed.records.length; i += BATCH)
        port.postMessage({ kind: 'records', records: parsed.records.slice(i, i + BATCH) } satisfies ParseMessage);
      port.postMessage({ kind: 'done', format: parsed.format, rejected: parsed.rejected, rejectedCount: parsed.rejectedCount } satisfies ParseMessage);
    } catch (e) {
      port.postMessage(
        (e instanceof ImportFormatError
          ? { kind: 'format-error', message: e.message }
          : { kind: 'error', message: String((e as Error)?.message ?? e) }) satisfies ParseMessage,
      );
    }
  });
}
