import { PostgresAdapter } from 'kysely';
import type { Executor } from '../../db/database.js';

/**
 * Worker claims lock their rows with FOR UPDATE SKIP LOCKED on PostgreSQL, so several processes
 * share the work; SQLite serialises writers (BEGIN IMMEDIATE) and has no row locks.
 */
export const rowLocks = (exec: Executor): boolean => exec.getExecutor().adapter instanceof PostgresAdapter;
