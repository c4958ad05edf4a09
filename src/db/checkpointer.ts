import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/**
 * SQLite WAL checkpoints off the request path.
 *
 * With WAL and `synchronous = NORMAL` a commit appends to the -wal file without an fsync, but every
 * 1,000 pages the committing connection copies the WAL back into the database and fsyncs it: in
 * the middle of whichever request happened to commit then, on the event loop (bench/README.md,
 * issue 18). A server instead runs checkpoints on a worker thread with its own connection, and its
 * main connection checkpoints on its own only when the WAL passes `fallbackPages` (if the worker
 * stopped, the WAL still cannot grow without bound).
 *
 * PASSIVE checkpoints take no lock that writers or readers wait on; they copy what no reader still
 * needs, and the next writer starts the WAL file over once everything was copied.
 */
export type Checkpointer = { close(): Promise<void> };

// Plain CommonJS run by the worker (eval: no file to locate next to dist/ or src/).
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const SQLite = require(workerData.driver);
const db = new SQLite(workerData.file);
db.pragma('busy_timeout = 5000');
db.pragma('synchronous = NORMAL');
let busy = false;
const tick = () => {
  if (busy) return;
  busy = true;
  try {
    db.pragma('wal_checkpoint(PASSIVE)');
  } catch (e) {
    parentPort.postMessage({ error: String(e && e.message || e) });
  } finally {
    busy = false;
  }
};
const timer = setInterval(tick, workerData.everyMs);
parentPort.on('message', (m) => {
  if (m === 'close') {
    clearInterval(timer);
    tick();
    db.close();
    parentPort.close();
  }
});
`;

export function startCheckpointer(file: string, opts: { everyMs?: number; onError?: (message: string) => void } = {}): Checkpointer {
  const worker = new Worker(WORKER, {
    eval: true,
    workerData: { file, driver: createRequire(import.meta.url).resolve('better-sqlite3'), everyMs: opts.everyMs ?? 1_000 },
  });
  worker.unref();
  worker.on('message', (m: { error?: string }) => m.error && opts.onError?.(m.error));
  worker.on('error', (e) => opts.onError?.(e.message));
  return {
    close: () =>
      new Promise<void>((resolve) => {
        worker.once('exit', () => resolve());
        // Unreferenced while it runs (it never keeps a process alive), but waited for now.
        worker.ref();
        worker.postMessage('close');
        // A checkpoint stuck behind a lock must not hold up shutdown.
        setTimeout(() => void worker.terminate(), 5_000).unref();
      }),
  };
}
