import { Kysely, PostgresDialect, SqliteDialect } from 'kysely';
import type { Engine, Executor } from './database.js';
import type { DB } from './schema.js';

/** Thrown by a probe executor at the first query: the work needs the database after all. */
export class NeedsDatabase extends Error {
  constructor() {
    super('this work needs the database');
  }
}

const bases = new Map<Engine, Kysely<DB>>();

/**
 * An executor that has no database: the first query given to it throws NeedsDatabase. Work that
 * usually needs nothing more than what was already read (a routine agent check-in, whose reads came
 * in one statement) runs against it first; if it turns out to need a query it is run again, in a
 * real transaction. Queries compile as for `engine`, so prepared queries keep their compiled form.
 * Each call returns a distinct object, so per-transaction bookkeeping keyed by the executor never
 * mixes two probes.
 */
export function probeExecutor(engine: Engine): Executor {
  let base = bases.get(engine);
  if (!base) {
    const refuse = () => Promise.reject(new NeedsDatabase());
    base = new Kysely<DB>({
      dialect:
        engine === 'postgres'
          ? new PostgresDialect({ pool: { connect: refuse, end: async () => undefined } as never })
          : new SqliteDialect({ database: refuse as never }),
    });
    bases.set(engine, base);
  }
  return base.withoutPlugins();
}
