import type { Db, Engine } from '../../db/database.js';
import { createDevicesRepo } from '../devices/devices.repo.js';

/**
 * Write-behind for the one thing a routine check-in changes: when the device was last seen.
 *
 * An hourly check-in from 50,000 devices that reports exactly what the vault already knows would
 * otherwise rewrite the device row (facts and two timestamps) in its own transaction. Such a
 * check-in only notes the time here, and the buffer writes all noted times every `flushMs` in one
 * transaction (the devices repo's markSeen: one statement per 500 devices on PostgreSQL).
 *
 * Only these pure "seen at" timestamps are coalesced. Anything the agent reports that differs from
 * the database (facts, volumes, keys, events, job results) and the sequence number that guards
 * against replays are written in the check-in's own transaction before it is acknowledged. A crash
 * loses at most `flushMs` of timestamps, which the device's next check-in (an hour later) sets
 * again. With several processes on one database each flush only moves a timestamp forward
 * (`… < new time`), so a slow process never turns a device's clock back.
 */
export type SeenBuffer = {
  touch(clientId: string, deviceId: string, at: string): void;
  /** Writes what is pending now (tests, shutdown). */
  flush(): Promise<void>;
  /** Stops the timer and writes what is pending. */
  close(): Promise<void>;
  /** Devices waiting to be written (for /metrics and tests). */
  readonly pending: number;
};

export function createSeenBuffer({ db, engine, flushMs = 100, onError }: { db: Db; engine: Engine; flushMs?: number; onError?: (e: unknown) => void }): SeenBuffer {
  let pending = new Map<string, { clientId: string; deviceId: string; at: string }>();
  let flushing: Promise<void> = Promise.resolve();
  let timer: NodeJS.Timeout | undefined;
  let closed = false;

  const devices = createDevicesRepo();
  const write = (batch: { clientId: string; deviceId: string; at: string }[]) => db.transaction().execute((tx) => devices.markSeen(tx, engine, batch));

  function flush(): Promise<void> {
    // One flush at a time, in order; a failed flush puts its times back for the next one.
    flushing = flushing.then(async () => {
      if (pending.size === 0) return;
      const batch = [...pending.values()];
      pending = new Map();
      try {
        await write(batch);
      } catch (e) {
        for (const b of batch) {
          const newer = pending.get(b.deviceId);
          if (!newer || newer.at < b.at) pending.set(b.deviceId, b);
        }
        onError?.(e);
      }
    });
    return flushing;
  }

  return {
    touch(clientId, deviceId, at) {
      if (closed) return; // shutting down: a timestamp is not worth failing a check-in for
      const prev = pending.get(deviceId);
      if (!prev || prev.at < at) pending.set(deviceId, { clientId, deviceId, at });
      if (!timer) {
        timer = setTimeout(() => {
          timer = undefined;
          void flush();
        }, flushMs);
        timer.unref();
      }
    },
    flush,
    async close() {
      closed = true;
      if (timer) clearTimeout(timer);
      timer = undefined;
      await flush();
    },
    get pending() {
      return pending.size;
    },
  };
}
