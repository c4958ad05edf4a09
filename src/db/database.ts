import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import SQLite from 'better-sqlite3';
import {
  CompiledQuery,
  Kysely,
  PostgresDialect,
  SqliteDialect,
  SqliteDriver,
  type DatabaseConnection,
  type KyselyConfig,
  type Driver,
  type Transaction,
} from 'kysely';
import type { DatabaseTarget } from '../config.js';
import type { DB } from './schema.js';
import { namedStatements } from './prepared.js';
import { startCheckpointer, type Checkpointer } from './checkpointer.js';

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

/**
 * Kysely prepares every query afresh; better-sqlite3's prepare() parses and plans the SQL each
 * time, which was 9% of a routine agent check-in's CPU (bench/prof-checkin.ts). The SQL text of a
 * query built by the repos is the same from call to call (values are parameters), so prepared
 * statements are kept by SQL text and reused. A statement that is still being iterated (a
 * streaming query) is busy and cannot be shared: then a fresh one is prepared for that call.
 */
function withStatementCache(sqlite: SQLite.Database, max = 500) {
  const cache = new Map<string, SQLite.Statement>();
  return {
    prepare(sqlText: string) {
      const hit = cache.get(sqlText);
      if (hit && !hit.busy) return hit;
      const stmt = sqlite.prepare(sqlText);
      if (!hit) {
        // Queries with IN lists of varying length have many texts: keep the cache bounded.
        if (cache.size >= max) cache.delete(cache.keys().next().value!);
        cache.set(sqlText, stmt);
      }
      return stmt;
    },
    close() {
      cache.clear();
      sqlite.close();
    },
  };
}

export type Database = {
  db: Db;
  engine: Engine;
  close(): Promise<void>;
  /** PostgreSQL pool occupancy, for /metrics (a growing `waiting` is the first sign of overload). */
  poolStats?: () => { total: number; idle: number; waiting: number };
  /** SQLite only: the raw better-sqlite3 handle, for its online backup API (keywarden backup). */
  sqlite?: SQLite.Database;
  /** SQLite only: WAL checkpoints on a worker thread from now on (a long-running server; see checkpointer.ts). */
  backgroundCheckpoints?: (onError?: (message: string) => void) => void;
};

/**
 * pg loads with the first PostgreSQL database, not with this module: the CLI on a SQLite vault never
 * needs it. It is CommonJS, so it is required synchronously (openDatabase stays synchronous).
 */
let pgModule: typeof import('pg') | undefined;
function loadPg(): typeof import('pg') {
  if (!pgModule) {
    pgModule = createRequire(import.meta.url)('pg') as typeof import('pg');
    // COUNT(*) and other int8 results arrive as strings from pg; every int8 we read is a count.
    pgModule.types.setTypeParser(20, (v: string) => Number(v));
  }
  return pgModule;
}

/**
 * The vault file holds every sealed key and the audit log: only the service account may read it,
 * whatever the umask. An empty file is a valid empty database, and SQLite gives the -wal and -shm
 * files it creates next to it the same permissions.
 */
function createPrivateFile(file: string): void {
  try {
    fs.closeSync(fs.openSync(file, 'wx', 0o600));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    // A vault created by an older version may be readable by others: tighten it (and its -wal/-shm),
    // when this account owns them; a file someone else owns is left as the operator set it.
    for (const f of [file, `${file}-wal`, `${file}-shm`]) {
      try {
        if ((fs.statSync(f).mode & 0o077) !== 0) fs.chmodSync(f, 0o600);
      } catch {
        // Missing, or not ours to change.
      }
    }
  }
}

/**
 * The hot-path queries (src/db/prepared.ts) run as named server-side prepared statements: PostgreSQL
 * parses and plans each once per connection instead of on every call (an unnamed statement is
 * parsed and planned every time). Only those SQL texts are named, so a connection holds a bounded
 * number of them; any other query goes through unchanged.
 */
function withNamedStatements(pool: import('pg').Pool): import('pg').Pool {
  const patched = new WeakSet<object>();
  const connect = pool.connect.bind(pool) as () => Promise<import('pg').PoolClient>;
  return new Proxy(pool, {
    get(target, prop, receiver) {
      if (prop !== 'connect') return Reflect.get(target, prop, receiver);
      return async () => {
        const client = await connect();
        if (!patched.has(client)) {
          patched.add(client);
          const query = client.query.bind(client) as (...a: unknown[]) => unknown;
          (client as { query: unknown }).query = (...a: unknown[]) => {
            const [text, values] = a;
            if (a.length === 2 && typeof text === 'string' && Array.isArray(values) && namedStatements.texts.has(text)) {
              return query({ name: namedStatements.nameOf(text), text, values });
            }
            return query(...a);
          };
        }
        return client;
      };
    },
  });
}

/** `log`: Kysely's query log (bench/prof-checkin.ts counts and times every statement with it). */
export function openDatabase(target: DatabaseTarget, opts: { log?: KyselyConfig['log'] } = {}): Database {
  if (target.engine === 'sqlite') {
    if (target.file !== ':memory:') {
      fs.mkdirSync(path.dirname(target.file), { recursive: true });
      createPrivateFile(target.file);
    }
    const sqlite = new SQLite(target.file);
    // WAL lets readers run while a writer commits; busy_timeout makes a second process wait
    // instead of failing at once; foreign keys are off by default in SQLite.
    sqlite.pragma('journal_mode = WAL');
    sqlite.pragma('busy_timeout = 5000');
    sqlite.pragma('foreign_keys = ON');
    sqlite.pragma('synchronous = NORMAL');
    // 64 MB page cache: bulk imports touch random spots of several indexes (random UUID keys).
    sqlite.pragma('cache_size = -65536');
    const db = new Kysely<DB>({ dialect: new ImmediateSqliteDialect({ database: withStatementCache(sqlite) }), log: opts.log });
    let checkpointer: Checkpointer | undefined;
    return {
      db,
      engine: 'sqlite',
      sqlite,
      close: async () => {
        await checkpointer?.close();
        await db.destroy();
      },
      backgroundCheckpoints: (onError) => {
        if (checkpointer || target.file === ':memory:') return;
        // The worker checkpoints every second; this connection only past 10,000 pages (40 MB of WAL).
        sqlite.pragma('wal_autocheckpoint = 10000');
        checkpointer = startCheckpointer(target.file, { onError });
      },
    };
  }
  const pool = new (loadPg().Pool)({ connectionString: target.url, max: 10 });
  // A dropped idle connection must not crash the process; the next query reconnects.
  pool.on('error', () => {});
  const db = new Kysely<DB>({ dialect: new PostgresDialect({ pool: withNamedStatements(pool) }), log: opts.log });
  return { db, engine: 'postgres', close: () => db.destroy(), poolStats: () => ({ total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount }) };
}
