import { createHash } from 'node:crypto';
import { PostgresAdapter, sql } from 'kysely';
import type { Executor } from './database.js';

/** What a lock serialises; the namespace keeps one kind of lock from colliding with another. */
export type LockNamespace = 'reveal' | 'ingest' | 'self-service' | 'tenant' | 'psa-tickets';

/**
 * A stable signed 64-bit number for (namespace, key): the first 8 bytes of a SHA-256, so every
 * process and every Keywarden version computes the same number for the same key.
 */
export function lockNumber(namespace: LockNamespace, key: string): bigint {
  return createHash('sha256').update(`keywarden:${namespace}:${key}`).digest().readBigInt64BE(0);
}

/**
 * Holds an exclusive lock on (namespace, key) until the caller's transaction ends (commit or
 * rollback). Take it as the first thing in the transaction: a lock taken after the transaction
 * already holds row locks (an audit event, a device row) can deadlock with a transaction that
 * holds this lock and wants those rows.
 *
 * PostgreSQL: a transaction-scoped advisory lock. Transactions run at READ COMMITTED, so once the
 * lock is granted every statement sees what the previous holder committed.
 * SQLite: nothing to do. Every transaction starts with BEGIN IMMEDIATE (src/db/database.ts),
 * which takes the database's single write lock up front, across processes; two transactions
 * never run side by side, so a per-key lock would add nothing.
 */
export async function lockKey(tx: Executor, namespace: LockNamespace, key: string): Promise<void> {
  // Outside a transaction the lock would be released before the work it guards even starts.
  if (!tx.isTransaction) throw new Error(`lockKey(${namespace}) needs a transaction`);
  if (!(tx.getExecutor().adapter instanceof PostgresAdapter)) return;
  await sql`select pg_advisory_xact_lock(${lockNumber(namespace, key).toString()}::bigint)`.execute(tx);
}
