import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Database } from '../src/db/database.js';
import { migrateToLatest } from '../src/db/migrate.js';
import { prepared } from '../src/db/prepared.js';
import { transactions } from '../src/db/transactions.js';
import { createTestDatabase, ENGINE, type TestDatabase } from './helpers/engine.js';

/**
 * Transactions as services run them: on SQLite, transactions that start together share one commit
 * (group commit), each still all or nothing, and none is acknowledged before its data is committed;
 * on PostgreSQL each is its own transaction. And queries compiled once (prepared) run with each
 * call's own values on both engines.
 */
describe(`transactions and prepared queries on ${ENGINE}`, () => {
  let tdb: TestDatabase;
  let d: Database;
  let other: Database;
  const statements: string[] = [];
  const t0 = '2026-01-01T00:00:00.000Z';
  const id = (i: number) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`;
  const addClient = (exec: Database['db'], i: number) =>
    exec
      .insertInto('clients')
      .values({ id: id(i), name: `FAKE client ${i}`, name_key: `fake client ${i}`, created_at: t0, updated_at: t0, archived_at: null } as never)
      .execute();

  beforeAll(async () => {
    tdb = await createTestDatabase();
    d = openDatabase(tdb.target, {
      log: (e) => {
        if (e.level === 'query') statements.push(e.query.sql.toLowerCase());
      },
    });
    await migrateToLatest(d.db);
    // A second connection (another process, as far as the database knows) to see what is committed.
    other = openDatabase(tdb.target);
  });
  afterAll(async () => {
    await d?.close();
    await other?.close();
    await tdb?.drop();
  });

  const committed = async (ids: number[]) =>
    (
      await other.db
        .selectFrom('clients')
        .select('id')
        .where(
          'id',
          'in',
          ids.map((i) => id(i)),
        )
        .execute()
    ).length;

  it('runs concurrent transactions, each all or nothing: one that throws loses its writes, the others keep theirs', async () => {
    const tx = transactions(d.db);
    statements.length = 0;
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, (_, k) =>
        tx.run(
          async (t) => {
            await addClient(t, 100 + k);
            if (k === 4) throw new Error('unit 4 fails after writing');
            return k;
          },
          { shareCommit: true },
        ),
      ),
    );
    expect(results.map((r) => r.status)).toEqual([
      'fulfilled',
      'fulfilled',
      'fulfilled',
      'fulfilled',
      'rejected',
      'fulfilled',
      'fulfilled',
      'fulfilled',
      'fulfilled',
      'fulfilled',
    ]);
    expect((results[4] as PromiseRejectedResult).reason.message).toBe('unit 4 fails after writing');
    expect(await committed([104])).toBe(0);
    expect(await committed([100, 101, 102, 103, 105, 106, 107, 108, 109])).toBe(9);
    const commits = statements.filter((s) => s === 'commit').length;
    // SQLite: the ten started in one turn of the event loop and shared a commit; PostgreSQL: one each.
    if (ENGINE === 'sqlite') expect(commits).toBe(1);
    else expect(commits).toBe(9);
  });

  it('work that does not ask to share a commit gets a transaction and a commit of its own', async () => {
    const tx = transactions(d.db);
    statements.length = 0;
    await Promise.all([400, 401, 402].map((i) => tx.run((t) => addClient(t, i))));
    expect(statements.filter((s) => s === 'commit')).toHaveLength(3);
    expect(statements.some((s) => s.startsWith('savepoint'))).toBe(false);
    expect(await committed([400, 401, 402])).toBe(3);
  });

  it('acknowledges a transaction only once its writes are committed (readable from another connection)', async () => {
    const tx = transactions(d.db);
    const seen = await Promise.all(
      Array.from({ length: 5 }, (_, k) =>
        tx
          .run(
            async (t) => {
              await addClient(t, 200 + k);
            },
            { shareCommit: true },
          )
          .then(() => committed([200 + k])),
      ),
    );
    expect(seen).toEqual([1, 1, 1, 1, 1]);
  });

  it('a unit that breaks a constraint is rolled back alone, and the batch goes on', async () => {
    const tx = transactions(d.db);
    const results = await Promise.allSettled([
      tx.run((t) => addClient(t, 300), { shareCommit: true }),
      tx.run(
        async (t) => {
          await addClient(t, 301);
          await addClient(t, 300); // the same id again: a unique violation
        },
        { shareCommit: true },
      ),
      tx.run((t) => addClient(t, 302), { shareCommit: true }),
    ]);
    // On PostgreSQL the first and the second race for id 300: exactly one of them fails.
    expect(results.filter((r) => r.status === 'rejected')).toHaveLength(1);
    if (ENGINE === 'sqlite') {
      expect(results[1]!.status).toBe('rejected');
      expect(await committed([300, 302])).toBe(2);
      expect(await committed([301])).toBe(0);
    }
  });

  it('a prepared query runs each call with its own values, inside and outside a transaction', async () => {
    const byName = prepared<{ nameKey: string; id: string }, { id: string; name: string }>((db, p) =>
      db.selectFrom('clients').select(['id', 'name']).where('name_key', '=', p('nameKey')).where('id', '!=', p('id')),
    );
    const rename = prepared<{ id: string; name: string; nameKey: string }, never>((db, p) =>
      db
        .updateTable('clients')
        .set({ name: p('name'), name_key: p('nameKey') })
        .where('id', '=', p('id')),
    );
    expect(await byName.all(d.db, { nameKey: 'fake client 100', id: id(1) })).toEqual([{ id: id(100), name: 'FAKE client 100' }]);
    expect(await byName.first(d.db, { nameKey: 'fake client 101', id: id(1) })).toEqual({ id: id(101), name: 'FAKE client 101' });
    // The excluded id is a value too, not part of the compiled text.
    expect(await byName.first(d.db, { nameKey: 'fake client 101', id: id(101) })).toBeUndefined();
    await transactions(d.db).run(async (t) => {
      expect(await rename.run(t, { id: id(102), name: 'FAKE renamed', nameKey: 'fake renamed' })).toBe(1);
      expect(await rename.run(t, { id: id(999), name: 'nobody', nameKey: 'nobody' })).toBe(0);
    });
    expect(await byName.all(other.db, { nameKey: 'fake renamed', id: id(1) })).toEqual([{ id: id(102), name: 'FAKE renamed' }]);
    // A value that looks like SQL is a value.
    expect(await byName.all(d.db, { nameKey: "x' or '1'='1", id: id(1) })).toEqual([]);
    await expect(byName.all(d.db, { nameKey: 'fake client 100' } as never)).rejects.toThrow(/no value for id/);
  });
});
