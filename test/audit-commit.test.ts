import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestVault, owner, type TestVault } from './helpers/vault.js';
import { ENGINE } from './helpers/engine.js';
import { transactions } from '../src/db/transactions.js';
import type { Executor, Tx } from '../src/db/database.js';

/**
 * Audit events are part of the transaction that records them: on PostgreSQL they are written at
 * its end, with one claim of the chain head, so the head row is not locked while the rest of the
 * transaction runs (issue 18). Whatever the engine: every event of a committed transaction is in
 * the chain in the order it was recorded, none of a rolled-back one is, and the chain verifies.
 */
describe(`audit events written at commit on ${ENGINE}`, () => {
  let v: TestVault;
  beforeAll(async () => {
    v = await createTestVault();
  });
  afterAll(() => v.close());

  const db = () => v.container.database.db;
  const run = <T>(work: (tx: Tx) => Promise<T>) => transactions(db()).run(work);
  const head = async () =>
    (await db().selectFrom('audit_head').select(['seq', 'hash']).where('id', '=', 1).executeTakeFirstOrThrow()) as { seq: number; hash: string };
  const eventsOf = async (tag: string) =>
    (await db().selectFrom('audit_events').select(['seq', 'details']).where('action', '=', 'audit.export').orderBy('seq').execute()).filter((r) =>
      (r.details ?? '').includes(`"tag":"${tag}"`),
    );
  const record = (exec: Executor, tag: string, i: number) =>
    v.container.audit.record(exec, owner, { action: 'audit.export', outcome: 'success', details: { tag, i } });

  it('keeps every event of a committed transaction, in the order recorded, with contiguous numbers', async () => {
    const before = await head();
    // More than the 1,000 rows one statement writes, so the chunks are chained across.
    await run(async (tx) => {
      for (let i = 0; i < 2500; i++) await record(tx, 'many', i);
    });
    const rows = await eventsOf('many');
    expect(rows.map((r) => (JSON.parse(r.details!) as { i: number }).i)).toEqual([...Array(2500).keys()]);
    expect(rows.map((r) => r.seq)).toEqual([...Array(2500).keys()].map((i) => before.seq + 1 + i));
    expect((await head()).seq).toBe(before.seq + 2500);
    expect(await v.container.audit.verifyChain(owner)).toMatchObject({ intact: true });
  });

  it('keeps none of a transaction that fails after recording, and the head does not move', async () => {
    const before = await head();
    await expect(
      run(async (tx) => {
        await record(tx, 'rolled-back', 0);
        await record(tx, 'rolled-back', 1);
        throw new Error('the change failed');
      }),
    ).rejects.toThrow('the change failed');
    expect(await eventsOf('rolled-back')).toHaveLength(0);
    expect(await head()).toEqual(before);
    expect(await v.container.audit.verifyChain(owner)).toMatchObject({ intact: true });
  });

  it("40 transactions at once: each one's events contiguous, all of them in the chain, the chain intact", async () => {
    await Promise.all(
      Array.from({ length: 40 }, (_, t) =>
        run(async (tx) => {
          for (let i = 0; i < 3; i++) {
            await record(tx, `parallel-${t}`, i);
            // Other work between the events, as a real transaction has.
            await tx.selectFrom('clients').select('id').limit(1).execute();
          }
        }),
      ),
    );
    for (let t = 0; t < 40; t++) {
      const seqs = (await eventsOf(`parallel-${t}`)).map((r) => r.seq);
      expect(seqs).toHaveLength(3);
      expect(seqs[2]! - seqs[0]!).toBe(2);
    }
    expect(await v.container.audit.verifyChain(owner)).toMatchObject({ intact: true });
  });

  it(
    ENGINE === 'postgres'
      ? 'a transaction that has recorded an event does not hold the chain head: another audited transaction commits meanwhile'
      : 'SQLite has one writer: another audited transaction waits for the open one',
    async () => {
      let release!: () => void;
      const held = new Promise<void>((r) => (release = r));
      let recorded!: () => void;
      const didRecord = new Promise<void>((r) => (recorded = r));
      const order: string[] = [];
      const slow = run(async (tx) => {
        await record(tx, 'slow', 0);
        recorded();
        await held;
        order.push('slow committed');
      });
      await didRecord;
      const quick = v.container.audit
        .recordNow(owner, { action: 'audit.export', outcome: 'success', details: { tag: 'quick', i: 0 } })
        .then(() => order.push('quick committed'));
      // Long enough for the quick one to finish when nothing blocks it, then let the slow one go.
      await Promise.race([quick, new Promise((r) => setTimeout(r, 1500))]);
      release();
      await Promise.all([slow, quick]);
      expect(order).toEqual(ENGINE === 'postgres' ? ['quick committed', 'slow committed'] : ['slow committed', 'quick committed']);
      // The chain is in commit order: the quick event comes first on PostgreSQL.
      const [q] = await eventsOf('quick');
      const [s] = await eventsOf('slow');
      expect(q!.seq < s!.seq).toBe(ENGINE === 'postgres');
      expect(await v.container.audit.verifyChain(owner)).toMatchObject({ intact: true });
    },
  );
});
