/**
 * Lets the event loop run (other requests, health checks) in the middle of long work. On SQLite every
 * query runs synchronously on this thread, so a long loop of queries would otherwise hold the whole
 * server; awaiting a resolved query only yields to microtasks, not to waiting sockets.
 */
export const yieldToEventLoop = (): Promise<void> => new Promise<void>((resolve) => setImmediate(resolve));
