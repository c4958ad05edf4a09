import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestVault, owner, type TestVault } from './helpers/vault.js';
import { ENGINE } from './helpers/engine.js';
import type { AuditEventsTable } from '../src/db/schema.js';

describe(`audit hash chain on ${ENGINE}`, () => {
  let v: TestVault;
  let rows: AuditEventsTable[];
  const N = 8;
  beforeAll(async () => {
    v = await createTestVault();
    for (let i = 0; i < N - 2; i++) await v.container.clients.create(owner, { name: `Client ${i}` });
    await v.container.keys.revealByKeyId(owner, { query: '4290b6c0', reason: 'other', ticket: 'T-1' });
    rows = await v.container.database.db.selectFrom('audit_events').selectAll().orderBy('seq').execute();
    expect(rows).toHaveLength(N);
  });
  afterAll(() => v.close());

  const db = () => v.container.database.db;
  const verify = async () => {
    const r = await v.cli(['audit', 'verify', '--json']);
    return { code: r.code, result: JSON.parse(r.stdout) as { intact: boolean; firstBrokenSeq?: number } };
  };
  const restore = async (...originals: AuditEventsTable[]) => {
    for (const row of originals) await db().deleteFrom('audit_events').where('id', '=', row.id).execute();
    for (const row of originals) await db().insertInto('audit_events').values(row).execute();
  };

  it('an untouched chain verifies (exit 0)', async () => {
    expect(await verify()).toEqual({ code: 0, result: { intact: true, events: N, headSeq: N } });
    const human = await v.cli(['audit', 'verify']);
    expect(human.stdout).toMatch(/Audit log intact: 8 events/);
  });

  const changes: [string, (r: AuditEventsTable) => Partial<AuditEventsTable>][] = [
    ['actor', () => ({ actor_name: 'someone else' })],
    ['action', () => ({ action: 'client.delete' })],
    ['outcome', (r) => ({ outcome: r.outcome === 'success' ? 'denied' : 'success' })],
    ['time', (r) => ({ occurred_at: new Date(Date.parse(r.occurred_at) - 3600_000).toISOString() })],
    ['details', () => ({ details: JSON.stringify({ name: 'forged' }) })],
    ['reason', () => ({ reason_code: 'lost-pin' })],
    ['own hash', (r) => ({ hash: r.hash.replace(/^./, (c) => (c === '0' ? '1' : '0')) })],
    ['previous hash', (r) => ({ prev_hash: r.prev_hash.replace(/^./, (c) => (c === '0' ? '1' : '0')) })],
  ];

  it.each(changes)('changing the %s of any single event is caught at that event', async (_, change) => {
    for (const row of rows) {
      await db().updateTable('audit_events').set(change(row)).where('seq', '=', row.seq).execute();
      expect(await verify()).toMatchObject({ code: 5, result: { intact: false, firstBrokenSeq: row.seq } });
      await restore(row);
    }
    expect((await verify()).code).toBe(0);
  });

  it('deleting any single event is caught (first, middle and newest)', async () => {
    for (const row of rows) {
      await db().deleteFrom('audit_events').where('seq', '=', row.seq).execute();
      expect(await verify()).toMatchObject({ code: 5, result: { intact: false, firstBrokenSeq: row.seq } });
      await db().insertInto('audit_events').values(row).execute();
    }
    expect((await verify()).code).toBe(0);
  });

  it('reordering any two events is caught at the earlier one', async () => {
    for (let i = 0; i < rows.length; i++) {
      for (const j of [i + 1, rows.length - 1]) {
        if (j <= i || j >= rows.length) continue;
        const [a, b] = [rows[i]!, rows[j]!];
        await db().updateTable('audit_events').set({ seq: -1 }).where('seq', '=', a.seq).execute();
        await db().updateTable('audit_events').set({ seq: a.seq }).where('seq', '=', b.seq).execute();
        await db().updateTable('audit_events').set({ seq: b.seq }).where('seq', '=', -1).execute();
        expect(await verify()).toMatchObject({ code: 5, result: { intact: false, firstBrokenSeq: a.seq } });
        await restore(a, b);
      }
    }
    expect((await verify()).code).toBe(0);
  });

  it('says which event broke in words, and keeps appending after a verify', async () => {
    const row = rows[3]!;
    await db().updateTable('audit_events').set({ ticket: 'changed' }).where('seq', '=', row.seq).execute();
    const human = await v.cli(['audit', 'verify']);
    expect(human.code).toBe(5);
    expect(human.stderr).toMatch(/Audit log BROKEN at event 4: event 4 was changed/);
    await restore(row);
    await v.container.clients.create(owner, { name: 'After verify' });
    expect(await verify()).toMatchObject({ code: 0, result: { intact: true, events: N + 1 } });
  });
});
