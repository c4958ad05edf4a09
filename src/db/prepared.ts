import { createHash } from 'node:crypto';
import { PostgresAdapter, type CompiledQuery, type Compilable, type Kysely } from 'kysely';
import type { Executor } from './database.js';
import type { DB } from './schema.js';

/**
 * Queries of the hot paths (agent check-in, device authentication, reveal) built and compiled once
 * per database instead of on every call.
 *
 * Kysely builds an immutable operation tree and compiles it to SQL for every execution: on a
 * routine check-in that was about a quarter of the server's CPU (bench/README.md, issue 18). A
 * prepared query is built once per engine with named placeholders standing in for the values; each
 * call substitutes its values into the compiled parameter list and executes the same SQL text.
 * SQLite then reuses its prepared statement (statement cache in database.ts) and PostgreSQL a named
 * server-side prepared statement (no parse or plan per call; see `namedStatements` below).
 *
 * A placeholder stands for one value: IN lists of varying length are not prepared queries.
 */
const MARK = '\u0000kw-param:';
type Slot = { name: string } | { value: unknown };

/** The PostgreSQL SQL texts of prepared queries: database.ts runs these as named statements. */
export const namedStatements = {
  texts: new Set<string>(),
  nameOf: (text: string) => `kw_${createHash('sha1').update(text).digest('hex').slice(0, 20)}`,
};

export type Placeholder<P> = <K extends keyof P & string>(name: K) => P[K];

export type Prepared<P, O> = {
  /** All rows. */
  all(exec: Executor, params: P): Promise<O[]>;
  /** The first row, or undefined. */
  first(exec: Executor, params: P): Promise<O | undefined>;
  /** Rows changed by an INSERT, UPDATE or DELETE. */
  run(exec: Executor, params: P): Promise<number>;
};

export function prepared<P extends object, O>(build: (db: Kysely<DB>, p: Placeholder<P>) => Compilable<O>): Prepared<P, O> {
  // One compilation per Kysely instance (its adapter object is shared by its transactions).
  const byAdapter = new WeakMap<object, { query: CompiledQuery<O>; slots: Slot[] }>();
  const placeholder = ((name: string) => `${MARK}${name}`) as Placeholder<P>;

  const compiled = (exec: Executor) => {
    const adapter = exec.getExecutor().adapter;
    let c = byAdapter.get(adapter);
    if (!c) {
      const query = build(exec, placeholder).compile();
      const slots = query.parameters.map((v): Slot => (typeof v === 'string' && v.startsWith(MARK) ? { name: v.slice(MARK.length) } : { value: v }));
      if (adapter instanceof PostgresAdapter) namedStatements.texts.add(query.sql);
      c = { query, slots };
      byAdapter.set(adapter, c);
    }
    return c;
  };

  const execute = (exec: Executor, params: P) => {
    const { query, slots } = compiled(exec);
    const parameters = slots.map((s) => {
      if ('value' in s) return s.value;
      const v = (params as Record<string, unknown>)[s.name];
      if (v === undefined) throw new Error(`prepared query: no value for ${s.name}`);
      return v;
    });
    return exec.executeQuery<O>({ ...query, parameters });
  };

  return {
    all: async (exec, params) => (await execute(exec, params)).rows,
    first: async (exec, params) => (await execute(exec, params)).rows[0],
    run: async (exec, params) => Number((await execute(exec, params)).numAffectedRows ?? 0n),
  };
}
