import { CompiledQuery, PostgresAdapter } from 'kysely';
import type { Executor } from './database.js';
import { namedStatements } from './prepared.js';

/**
 * Multi-row INSERTs for bulk writes (imports, syncs, compliance evaluation), without building a
 * query object per batch: Kysely parses and compiles every row of a `.values([...])` afresh, which
 * was about a tenth of an import's CPU time, and PostgreSQL plans a VALUES list of thousands of
 * parameters every time it sees one.
 *
 * - SQLite: `INSERT ... VALUES (?, ?), (?, ?) ...` in batches of a fixed number of rows, so the
 *   statement text repeats and src/db/database.ts's statement cache prepares it once.
 * - PostgreSQL: `INSERT ... SELECT * FROM unnest($1::text[], $2::integer[], ...)`, one parameter
 *   per column whatever the number of rows: one statement text per table, run as a named
 *   server-side prepared statement (src/db/prepared.ts, namedStatements).
 *
 * Every row is written as given (all listed columns); `onConflict` is appended as written, and
 * works on both engines when it uses the common `ON CONFLICT (...) DO ...` form.
 */
export type BulkInsert<Row> = (exec: Executor, rows: readonly Row[]) => Promise<void>;

const isPostgres = (exec: Executor) => exec.getExecutor().adapter instanceof PostgresAdapter;

/**
 * How many rows a bulk step (an ingest chunk, a compliance batch) takes at once, and so how long
 * its lookup lists get (both engines take 2,000 parameters in a statement). On PostgreSQL every
 * statement is a round trip, so bigger steps mean fewer of them (`npx tsx bench/prof-import.ts
 * --queries` counts them). SQLite runs a step synchronously on the event loop: smaller steps let
 * health checks and sign-ins through between them.
 */
export const bulkStepRows = (exec: Executor): number => (isPostgres(exec) ? 2000 : 500);
/** The longest lookup list a repo sends in one statement (what bulkStepRows can ask for). */
export const MAX_LOOKUP_LIST = 2000;

/** SQLite's limit on parameters per statement (SQLITE_MAX_VARIABLE_NUMBER since 3.32). */
const SQLITE_MAX_PARAMS = 32_766;
/** Rows per SQLite statement (8,000 parameters for the widest table, recovery_keys). */
const SQLITE_MAX_ROWS = 500;
/** Rows per PostgreSQL statement: bounds the size of one message to the server. */
const PG_MAX_ROWS = 5_000;

export function bulkInsert<Row>(
  table: string,
  columns: readonly (keyof Row & string)[],
  opts: {
    /** PostgreSQL array type of the columns that are not text (the arrays are cast to it). */
    types?: Partial<Record<keyof Row & string, 'integer' | 'bigint' | 'boolean'>>;
    /** e.g. `on conflict (device_id) do update set status = excluded.status` */
    onConflict?: string;
  } = {},
): BulkInsert<Row> {
  const quote = (name: string) => `"${name}"`;
  const head = `insert into ${quote(table)} (${columns.map(quote).join(', ')})`;
  const tail = opts.onConflict ? ` ${opts.onConflict}` : '';
  const sqliteRows = Math.max(1, Math.min(SQLITE_MAX_ROWS, Math.floor(SQLITE_MAX_PARAMS / columns.length)));
  const sqliteTuple = `(${columns.map(() => '?').join(', ')})`;
  const sqliteText = new Map<number, string>();
  const pgText = `${head} select * from unnest(` + columns.map((c, i) => `$${i + 1}::${opts.types?.[c] ?? 'text'}[]`).join(', ') + `)${tail}`;
  namedStatements.texts.add(pgText);

  return async (exec, rows) => {
    if (rows.length === 0) return;
    if (isPostgres(exec)) {
      for (let start = 0; start < rows.length; start += PG_MAX_ROWS) {
        const part = rows.slice(start, start + PG_MAX_ROWS);
        const params = columns.map((c) => part.map((r) => r[c] ?? null));
        await exec.executeQuery(CompiledQuery.raw(pgText, params));
      }
      return;
    }
    for (let start = 0; start < rows.length; start += sqliteRows) {
      const n = Math.min(sqliteRows, rows.length - start);
      let text = sqliteText.get(n);
      if (!text) {
        text = `${head} values ${Array.from({ length: n }, () => sqliteTuple).join(', ')}${tail}`;
        sqliteText.set(n, text);
      }
      const params: unknown[] = new Array(n * columns.length);
      let p = 0;
      for (let i = start; i < start + n; i++) {
        const r = rows[i]!;
        for (const c of columns) params[p++] = r[c] ?? null;
      }
      await exec.executeQuery(CompiledQuery.raw(text, params));
    }
  };
}
