import fs from 'node:fs';
import path from 'node:path';
import SQLite from 'better-sqlite3';
import pg from 'pg';
import {
  CompiledQuery,
  Kysely,
  PostgresDialect,
  SqliteDialect,
  SqliteDriver,
  type DatabaseConnection,
  type Driver,
  type Transaction,
} from 'kysely';
import type { DatabaseTarget } from '../config.js';
import type { DB } from './schema.js';

export type Engine = 'sqlite' | 'postgres';
export type Db = Kysely<DB>;
export type Tx = Transaction<DB>;
/** Repos accept either the root handle or a transaction. */
export type Executor = Kysely<DB> | Transaction<DB>;

/**
 * SQLite transactions start with BEGIN IMMEDIATE: a writer takes the write lock up front and
 * waits (busy_timeout) for another process, instead of failing with SQLITE_BUSY when a read
 * lock has to be upgraded half-way through (the CLI and the server may share one file).
 */
class ImmediateSqliteDriver extends SqliteDriver {
  override async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('begin immediate'));
  }
}
class ImmediateSqliteDialect extends SqliteDialect {
  readonly #config: ConstructorParameters<typeof SqliteDialect>[0];
  constructor(config: ConstructorParameters<typeof SqliteDialect>[0]) {
    super(config);
    this.#config = config;
  }
  override createDriver(): Driver {
    return new ImmediateSqliteDriver(this.#config);
  }
}

export type Database = { db: Db; engine: Engine; close(): Promise<void> };

// COUNT(*) and other int8 results arrive as strings from pg; every int8 we read is a count.
pg.types.setTypeParser(20, (v: string) => Number(v));

export function openDatabase(target: DatabaseTarget): Database {
  if (target.engine === 'sqlite') {
    if (target.file !== ':memory:') fs.mkdirSync(path.dirname(target.file), { recursive: true });
    const sqlite = new SQLite(target.file);
    // WAL lets readers run while a writer commits; busy_timeout makes a second process wait
    // instead of failing at once; foreign keys are off by default in SQLite.
    sqlite.pragma('journal_mode = WAL');
    sqlite.pragma('busy_timeout = 5000');
    sqlite.pragma('foreign_keys = ON');
    sqlite.pragma('synchronous = NORMAL');
    // 64 MB page cache: bulk imports touch random spots of several indexes (random UUID keys).
    sqlite.pragma('cache_size = -65536');
    const db = new Kysely<DB>({ dialect: new ImmediateSqliteDialect({ database: sqlite }) });
    return { db, engine: 'sqlite', close: () => db.destroy() };
  }
  const pool = new pg.Pool({ connectionString: target.url, max: 10 });
  // A dropped idle connection must not crash the process; the next query reconnects.
  pool.on('error', () => {});
  const db = new Kysely<DB>({ dialect: new PostgresDialect({ pool }) });
  return { db, engine: 'postgres', close: () => db.destroy() };
}
