import { CompiledQuery, SqliteAdapter } from 'kysely';
import type { Db, Executor, Tx } from './database.js';

/**
 * What a service gets instead of the database: a handle its repos read through outside a
 * transaction, and a way to run work in one. Services never build queries themselves
 * (test/architecture.test.ts): they pass `reader` or `tx` to their repos.
 */
export type Transactions = {
  /** For reads outside a transaction; only repos query through it. */
  readonly reader: Executor;
  /**
   * Runs `work` in a transaction; resolves once it is committed, rejects (nothing kept) if it threw.
   * `shareCommit`: short, frequent work (agent check-ins) may share its COMMIT with others that
   * start in the same turn of the event loop (SQLite group commit, below).
   */
  run<T>(work: (tx: Tx) => Promise<T>, opts?: { shareCommit?: boolean }): Promise<T>;
};

/** The group-commit runner of each SQLite database (every service's Transactions share it). */
const sqliteRunners = new WeakMap<Db, Transactions['run']>();

/** Work registered to run at the end of a transaction, just before its COMMIT (see `atCommit`). */
const commitHooks = new WeakMap<Executor, Map<object, (tx: Tx) => Promise<void>>>();

/**
 * Runs `hook` once at the end of this transaction, after the caller's work and before COMMIT,
 * inside the transaction (a hook that throws rolls everything back). One hook per `key`: a second
 * registration with the same key is ignored, so a service can queue many items and flush them
 * together. Answers false when `exec` is not a transaction that runs hooks (SQLite, or a plain
 * handle): the caller then does its work at once.
 *
 * Why: work that takes a hot lock (the audit chain head) holds it from its statement to COMMIT.
 * Done last, it holds it for its own statements and the commit only, not for the rest of the
 * transaction's round trips.
 */
export function atCommit(exec: Executor, key: object, hook: (tx: Tx) => Promise<void>): boolean {
  const hooks = commitHooks.get(exec);
  if (!hooks) return false;
  if (!hooks.has(key)) hooks.set(key, hook);
  return true;
}

export function transactions(db: Db): Transactions {
  const plain = <T>(work: (tx: Tx) => Promise<T>) => db.transaction().execute(work);
  if (!(db.getExecutor().adapter instanceof SqliteAdapter)) {
    // PostgreSQL: each transaction runs its commit hooks (atCommit) after its work.
    const withHooks = <T>(work: (tx: Tx) => Promise<T>) =>
      db.transaction().execute(async (tx) => {
        const hooks = new Map<object, (tx: Tx) => Promise<void>>();
        commitHooks.set(tx, hooks);
        const value = await work(tx);
        // A hook may queue more work (another key), so run until none is left.
        while (hooks.size) {
          const [key, hook] = hooks.entries().next().value!;
          hooks.delete(key);
          await hook(tx);
        }
        commitHooks.delete(tx);
        return value;
      });
    return { reader: db, run: withHooks };
  }
  let shared = sqliteRunners.get(db);
  if (!shared) sqliteRunners.set(db, (shared = groupCommit(db)));
  const group = shared;
  return { reader: db, run: (work, opts) => (opts?.shareCommit ? group(work) : plain(work)) };
}

// Compiled once: a batch runs these around every unit.
const SAVEPOINT = CompiledQuery.raw('savepoint kw_unit');
const RELEASE = CompiledQuery.raw('release kw_unit');
const ROLLBACK_TO = CompiledQuery.raw('rollback to kw_unit');

type Unit = { work: (tx: Tx) => Promise<unknown>; resolve: (v: unknown) => void; reject: (e: unknown) => void };

/**
 * SQLite group commit: transactions that start in the same turn of the event loop (the check-ins
 * whose requests arrived together) run one after another inside one BEGIN … COMMIT, each in its
 * own savepoint, and share the commit. Only work that asks for it: a batch answers all its units
 * at the end, so long units (a sync's writes) would hold the others' answers, and the event loop,
 * for the whole batch (50 concurrent Entra syncs then sent Graph requests during a Retry-After). SQLite has one writer at a time anyway, so nothing waits
 * longer for the lock; what is saved is a commit (a WAL append of every page written, and the
 * WAL-index update) per transaction, which was a tenth of a check-in server's CPU (bench/README.md).
 *
 * Each unit is still all or nothing: one that throws is rolled back to its savepoint, and the
 * others commit. No unit's promise resolves before the COMMIT that holds its writes succeeded, so
 * an answer never goes out for data that is not durable; if the COMMIT fails, every unit of the
 * batch fails.
 */
function groupCommit(db: Db, maxBatch = 64): Transactions['run'] {
  let queue: Unit[] = [];
  let scheduled = false;

  const schedule = () => {
    if (scheduled) return;
    scheduled = true;
    // Not a microtask: the turn's other requests get to queue their transactions first.
    setImmediate(() => {
      scheduled = false;
      const batch = queue.slice(0, maxBatch);
      queue = queue.slice(batch.length);
      if (queue.length) schedule();
      void runBatch(batch);
    });
  };

  const runBatch = async (batch: Unit[]) => {
    if (batch.length === 1) {
      const u = batch[0]!;
      return db.transaction().execute(u.work).then(u.resolve, u.reject);
    }
    const outcomes: (() => void)[] = [];
    let trx;
    try {
      trx = await db.startTransaction().execute();
    } catch (e) {
      for (const u of batch) u.reject(e);
      return;
    }
    try {
      for (const u of batch) {
        await trx.executeQuery(SAVEPOINT);
        try {
          const value = await u.work(trx);
          await trx.executeQuery(RELEASE);
          outcomes.push(() => u.resolve(value));
        } catch (e) {
          await trx.executeQuery(ROLLBACK_TO);
          await trx.executeQuery(RELEASE);
          outcomes.push(() => u.reject(e));
        }
      }
      await trx.commit().execute();
    } catch (e) {
      // The transaction itself failed (the disk, a broken savepoint): nothing of the batch is kept.
      await trx
        .rollback()
        .execute()
        .catch(() => undefined);
      for (const u of batch) u.reject(e);
      return;
    }
    for (const settle of outcomes) settle();
  };

  return <T>(work: (tx: Tx) => Promise<T>) =>
    new Promise<T>((resolve, reject) => {
      queue.push({ work, resolve: resolve as (v: unknown) => void, reject });
      schedule();
    });
}
