import type { Db, Executor, Tx } from './database.js';

/**
 * What a service gets instead of the database: a handle its repos read through outside a
 * transaction, and a way to run work in one. Services never build queries themselves
 * (test/architecture.test.ts): they pass `reader` or `tx` to their repos.
 */
export type Transactions = {
  /** For reads outside a transaction; only repos query through it. */
  readonly reader: Executor;
  run<T>(work: (tx: Tx) => Promise<T>): Promise<T>;
};

export function transactions(db: Db): Transactions {
  return {
    reader: db,
    run: (work) => db.transaction().execute(work),
  };
}
