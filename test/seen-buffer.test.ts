import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Database } from '../src/db/database.js';
import { migrateToLatest } from '../src/db/migrate.js';
import { createSeenBuffer } from '../src/modules/agent/seen-buffer.js';
import { createTestDatabase, ENGINE, type TestDatabase } from './helpers/engine.js';

/**
 * The write-behind of "last seen" for unchanged check-ins: nothing is written until a flush, a
 * flush writes every noted device in one go, and times only move forward, also when two processes
 * (two buffers) flush out of order.
 */
describe(`check-in "last seen" write-behind on ${ENGINE}`, () => {
  let tdb: TestDatabase;
  let d: Database;
  const client = '00000000-0000-4000-8000-0000000000c1';
  const dev = (i: number) => `00000000-0000-4000-8000-00000000d00${i}`;
  beforeAll(async () => {
    tdb = await createTestDatabase();
    d = openDatabase(tdb.target);
    await migrateToLatest(d.db);
    const t0 = '2026-01-01T00:00:00.000Z';
    await d.db
      .insertInto('clients')
      .values({ id: client, name: 'Seen', name_key: 'seen', created_at: t0, updated_at: t0, archived_at: null } as never)
      .execute();
    for (let i = 1; i <= 3; i++) {
      await d.db
        .insertInto('devices')
        .values({
          id: dev(i),
          client_id: client,
          name: `FAKE-${i}`,
          name_key: `fake-${i}`,
          domain: null,
          serial: null,
          entra_device_id: null,
          ad_object_guid: null,
          ad_dn: null,
          agent_id: null,
          primary_user: null,
          facts: null,
          smbios_uuid: null,
          last_checkin_at: t0,
          first_seen_at: t0,
          last_seen_at: t0,
          retired_at: null,
          created_at: t0,
        })
        .execute();
    }
  });
  afterAll(async () => {
    await d.close();
    await tdb.drop();
  });
  const seen = async (i: number) => d.db.selectFrom('devices').select(['last_checkin_at', 'last_seen_at']).where('id', '=', dev(i)).executeTakeFirstOrThrow();

  it('writes noted times only on flush, all devices at once, and never moves a time back', async () => {
    const a = createSeenBuffer({ db: d.db, engine: d.engine, flushMs: 60_000 });
    const b = createSeenBuffer({ db: d.db, engine: d.engine, flushMs: 60_000 });
    a.touch(client, dev(1), '2026-01-01T10:00:00.000Z');
    a.touch(client, dev(1), '2026-01-01T09:00:00.000Z'); // an older time for the same device is ignored
    a.touch(client, dev(2), '2026-01-01T10:00:00.000Z');
    expect(a.pending).toBe(2);
    expect((await seen(1)).last_checkin_at).toBe('2026-01-01T00:00:00.000Z');
    await a.flush();
    expect(a.pending).toBe(0);
    expect(await seen(1)).toEqual({ last_checkin_at: '2026-01-01T10:00:00.000Z', last_seen_at: '2026-01-01T10:00:00.000Z' });
    expect((await seen(2)).last_checkin_at).toBe('2026-01-01T10:00:00.000Z');
    expect((await seen(3)).last_checkin_at).toBe('2026-01-01T00:00:00.000Z');

    // Another process flushing an older time afterwards does not turn the clock back.
    b.touch(client, dev(1), '2026-01-01T09:30:00.000Z');
    b.touch(client, dev(3), '2026-01-01T09:30:00.000Z');
    await b.close();
    expect((await seen(1)).last_checkin_at).toBe('2026-01-01T10:00:00.000Z');
    expect((await seen(3)).last_checkin_at).toBe('2026-01-01T09:30:00.000Z');
    // A device of another client is not touched through a wrong client id.
    a.touch('00000000-0000-4000-8000-0000000000c2', dev(2), '2026-01-01T11:00:00.000Z');
    await a.close();
    expect((await seen(2)).last_checkin_at).toBe('2026-01-01T10:00:00.000Z');
  });

  it('flushes by itself after flushMs', async () => {
    const c = createSeenBuffer({ db: d.db, engine: d.engine, flushMs: 20 });
    c.touch(client, dev(3), '2026-01-02T00:00:00.000Z');
    for (let i = 0; i < 500 && (await seen(3)).last_checkin_at !== '2026-01-02T00:00:00.000Z'; i++) await new Promise((r) => setTimeout(r, 10));
    expect((await seen(3)).last_checkin_at).toBe('2026-01-02T00:00:00.000Z');
    await c.close();
  });
});
