/**
 * Runs the key-file parsers (pure src/domain code) where they cannot stall the server: files
 * up to INLINE_BYTES are parsed in place (a few milliseconds, less than starting a thread), larger
 * ones on a worker thread of their own.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { ImportFormatError, parseImport, type ImportFormat, type ImportRecord, type ParsedImport } from '../../domain/import/index.js';
import type { ParseJob, ParseMessage } from './import.worker.js';

const INLINE_BYTES = 256 * 1024;

/**
 * The worker next to this file: compiled JavaScript in a build; from TypeScript sources (tests,
 * `tsx`) a small bootstrap registers tsx in the thread first.
 */
function startWorker(job: ParseJob): Worker {
  if (!import.meta.url.endsWith('.ts')) return new Worker(new URL('./import.worker.js', import.meta.url), { workerData: job });
  const tsxDir = path.dirname(createRequire(import.meta.url).resolve('tsx/package.json'));
  const tsx = pathToFileURL(path.join(tsxDir, 'dist/esm/api/index.mjs')).href;
  const entry = new URL('./import.worker.ts', import.meta.url).href;
  const boot = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); });`;
  return new Worker(boot, { eval: true, workerData: job });
}

export async function parseImportOffThread(input: { bytes: Uint8Array; fileName: string; format: ImportFormat | 'auto' }): Promise<ParsedImport> {
  if (input.bytes.byteLength <= INLINE_BYTES) return parseImport(input);
  const worker = startWorker({ fileName: input.fileName, format: input.format });
  try {
    return await new Promise<ParsedImport>((resolve, reject) => {
      const records: ImportRecord[] = [];
      worker.on('message', (m: ParseMessage) => {
        if (m.kind === 'records') for (const r of m.records) records.push(r);
        else if (m.kind === 'done') resolve({ format: m.format, records, rejected: m.rejected, rejectedCount: m.rejectedCount });
        else if (m.kind === 'format-error') reject(new ImportFormatError(m.message));
        else reject(new Error(`the import parser failed: ${m.message}`));
      });
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`the import parser stopped (exit code ${code})`)));
      worker.postMessage(input.bytes);
    });
  } finally {
    await worker.terminate();
  }
}
