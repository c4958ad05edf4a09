import { Kysely, PostgresDialect } from 'kysely';
import type { Executor } from './database.js';
import type { DB } from './schema.js';

/** Thrown by a probe executor at the first query: the work needs the database after all. */
export class NeedsDatabase extends Error {
  constructor() {
    super('this work needs the database');
  }
}

let base: Kysely<DB> | undefined;

/**
 * A PostgreSQL executor that has no database: the first query given to it throws NeedsDatabase.
 * Work that usually needs nothing more than what was already read (a routine agent check-in, whose
 * reads came in one statement) runs against it first; if it turns out to need a query it is run
 * again, in a real transaction. Queries compile as for PostgreSQL, so prepared queries keep their
 * compiled form. Each call returns a distinct object, so per-transaction bookkeeping keyed by the
 * executor never mixes two probes.
 */
export function probeExecutor(): Executor {
  base ??= new Kysely<DB>({
    dialect: new PostgresDialect({ pool: { connect: () => Promise.reject(new NeedsDatabase()), end: async () => undefined } as never }),
  });
  return base.withoutPlugins();
}
