/**
 * Deterministic data for the benchmarks: the same seed gives the same key IDs, recovery passwords
 * and device names on every run (only the vault's own random data keys differ, so ciphertexts do).
 * `seedKeys` writes keys with raw batched inserts (multi-row INSERT on SQLite, INSERT … SELECT FROM
 * unnest(arrays) on PostgreSQL) (sealed and fingerprinted exactly like the real
 * ingest does), which is both the fast way to fill a vault with 1,000,000 keys and the "raw batched
 * inserts" baseline of the import benchmark.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { loadConfig, type Config } from '../src/config.js';
import { openDatabase, type Database, type Executor } from '../src/db/database.js';
import { initVault } from '../src/modules/vault/vault.service.js';
import { createVaultRepo } from '../src/modules/vault/vault.repo.js';
import { openKeyring } from '../src/crypto/keyring.js';
import { loadMasterKey } from '../src/crypto/master-key.js';
import { cliActor } from '../src/modules/authz/authz.js';
import { systemClock } from '../src/lib/clock.js';
import { newId } from '../src/lib/ids.js';
import { throwawayPostgres } from './lib.js';
import { bulkInsert, type BulkInsert } from '../src/db/bulk.js';

export type Engine = 'sqlite' | 'postgres';
export const PG_ADMIN = process.env.KEYWARDEN_BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/** 32 deterministic bytes for (seed, i, what). */
const bytes = (seed: string, i: number, what: string) => createHash('sha256').update(`${seed}:${what}:${i}`).digest();

export function keyIdOf(seed: string, i: number): string {
  const h = bytes(seed, i, 'key').toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** A valid 48-digit recovery password: every 6-digit group is a multiple of 11 below 720,896. */
export function passwordOf(seed: string, i: number): string {
  const b = bytes(seed, i, 'pw');
  return Array.from({ length: 8 }, (_, g) => String(b.readUInt16LE(g * 2) * 11).padStart(6, '0')).join('-');
}

export const deviceNameOf = (i: number) => `BENCH-PC-${String(i).padStart(7, '0')}`;

/** A fresh, initialised vault on one engine in a temporary folder (and a throwaway PostgreSQL database). */
export type BenchVault = { engine: Engine; dir: string; env: NodeJS.ProcessEnv; config: Config; drop(): Promise<void> };

export async function createBenchVault(engine: Engine, label: string, extraEnv: NodeJS.ProcessEnv = {}): Promise<BenchVault> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `kw-bench-${label}-`));
  const env: NodeJS.ProcessEnv = {
    KEYWARDEN_DATA_DIR: path.join(dir, 'data'),
    KEYWARDEN_MASTER_KEY: randomBytes(32).toString('base64'),
    KEYWARDEN_LOG_LEVEL: 'warn',
    ...extraEnv,
  };
  let dropPg: (() => Promise<void>) | undefined;
  if (engine === 'postgres') {
    const pg = await throwawayPostgres(PG_ADMIN, `kw_bench_${label.replace(/\W/g, '_')}_${process.pid}`);
    env.KEYWARDEN_DATABASE_URL = pg.url;
    dropPg = pg.drop;
  }
  const config = loadConfig(env);
  const d = openDatabase(config.database);
  try {
    await initVault(config, d, cliActor('bench'), systemClock);
  } finally {
    await d.close();
  }
  return {
    engine,
    dir,
    env,
    config,
    drop: async () => {
      await dropPg?.();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Inserts `count` keys (two per device, C: and D:) for one client with multi-row INSERTs of
 * `batch` rows, one transaction per 10,000 keys. Sealing and fingerprints use the vault's keyring.
 */
export async function seedKeys(
  database: Database,
  config: Config,
  clientId: string,
  opts: { seed: string; count: number; from?: number; batch?: number },
): Promise<void> {
  const { db } = database;
  const keyring = await openKeyring(createVaultRepo(), db, loadMasterKey(config.masterKey), newId);
  const cipher = await keyring.clientCipher(db, clientId);
  const fingerprint = await keyring.fingerprinter(db);
  const batch = opts.batch ?? 500;
  const now = new Date('2026-01-01T00:00:00Z').toISOString();
  const from = opts.from ?? 0;
  for (let start = from; start < from + opts.count; start += 10_000) {
    const end = Math.min(from + opts.count, start + 10_000);
    await db.transaction().execute(async (tx: Executor) => {
      const devices = [];
      const keys = [];
      for (let i = start; i < end; i++) {
        const dev = Math.floor(i / 2);
        const deviceId = uuidOf(opts.seed, dev, 'device');
        if (i % 2 === 0 || i === start) {
          const name = deviceNameOf(dev);
          devices.push({
            id: deviceId,
            client_id: clientId,
            name,
            name_key: name.toLowerCase(),
            domain: null,
            serial: null,
            entra_device_id: null,
            ad_object_guid: null,
            ad_dn: null,
            agent_id: null,
            primary_user: null,
            facts: null,
            smbios_uuid: null,
            last_checkin_at: null,
            first_seen_at: now,
            last_seen_at: now,
            retired_at: null,
            created_at: now,
          });
        }
        const id = uuidOf(opts.seed, i, 'row');
        const pw = passwordOf(opts.seed, i);
        const sealed = cipher.sealRecoveryPassword(id, pw);
        keys.push({
          id,
          client_id: clientId,
          device_id: deviceId,
          volume_id: null,
          key_id: keyIdOf(opts.seed, i),
          ciphertext: sealed.ciphertext,
          data_key_version: sealed.dataKeyVersion,
          fingerprint: fingerprint(clientId, pw),
          state: 'active',
          source_created_at: now,
          first_seen_at: now,
          last_seen_at: now,
          state_changed_at: now,
          created_at: now,
        });
      }
      if (database.engine === 'postgres') {
        // One statement per 10,000 rows: every column as an array parameter, unnested by the server.
        const col = <T extends Record<string, unknown>>(rows: T[], k: keyof T) => rows.map((r) => r[k]);
        await sql`insert into devices (id, client_id, name, name_key, first_seen_at, last_seen_at, created_at)
                  select * from unnest(${col(devices, 'id')}::text[], ${col(devices, 'client_id')}::text[], ${col(devices, 'name')}::text[], ${col(devices, 'name_key')}::text[],
                                       ${col(devices, 'first_seen_at')}::text[], ${col(devices, 'last_seen_at')}::text[], ${col(devices, 'created_at')}::text[])
                  on conflict (id) do nothing`.execute(tx);
        await sql`insert into recovery_keys (id, client_id, device_id, key_id, ciphertext, data_key_version, fingerprint, state, source_created_at, first_seen_at, last_seen_at, state_changed_at, created_at)
                  select * from unnest(${col(keys, 'id')}::text[], ${col(keys, 'client_id')}::text[], ${col(keys, 'device_id')}::text[], ${col(keys, 'key_id')}::text[],
                                       ${col(keys, 'ciphertext')}::text[], ${col(keys, 'data_key_version')}::int[], ${col(keys, 'fingerprint')}::text[], ${col(keys, 'state')}::text[],
                                       ${col(keys, 'source_created_at')}::text[], ${col(keys, 'first_seen_at')}::text[], ${col(keys, 'last_seen_at')}::text[],
                                       ${col(keys, 'state_changed_at')}::text[], ${col(keys, 'created_at')}::text[])`.execute(tx);
        return;
      }
      // SQLite: multi-row INSERTs through the statement cache.
      for (let i = 0; i < devices.length; i += batch)
        await tx
          .insertInto('devices')
          .values(devices.slice(i, i + batch))
          .onConflict((oc) => oc.column('id').doNothing())
          .execute();
      for (let i = 0; i < keys.length; i += batch)
        await tx
          .insertInto('recovery_keys')
          .values(keys.slice(i, i + batch))
          .execute();
    });
  }
}

export function uuidOf(seed: string, i: number, what: string): string {
  const h = bytes(seed, i, what).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** One CSV line per key, in the format of the import command (the Entra portal's export). */
export function csvOf(seed: string, count: number): string {
  const lines = ['Computer Name,Recovery Key ID,Recovery Password,Drive Letter,Created'];
  for (let i = 0; i < count; i++) {
    lines.push(
      `${deviceNameOf(Math.floor(i / 2))},{${keyIdOf(seed, i).toUpperCase()}},${passwordOf(seed, i)},${i % 2 ? 'D:' : 'C:'},2025-0${1 + (i % 9)}-15T10:00:00Z`,
    );
  }
  return lines.join('\r\n') + '\r\n';
}

/** Nearest-rank percentile of a sorted array. */
export const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? NaN;

/**
 * The tables a CSV import writes, parents first (found by counting every table's rows before and
 * after an import): devices and their compliance, one volume, key and key source per key. The
 * import also writes one audit event, left out here (it cannot be removed and put back without
 * the chain noticing, and it is one row).
 */
export const IMPORT_TABLES = ['devices', 'volumes', 'recovery_keys', 'key_sources', 'device_compliance', 'compliance_history'] as const;

/**
 * The like-for-like baseline of the import benchmark: takes the rows an import wrote for one
 * client out of the database, then times putting exactly those rows back with raw batched inserts
 * (src/db/bulk.ts: multi-row VALUES on SQLite, INSERT … SELECT FROM unnest on PostgreSQL, the
 * fastest form each engine has), in one transaction. Returns the seconds and the rows written.
 */
export async function reinsertImported(database: Database, clientId: string): Promise<{ seconds: number; rows: number }> {
  const { db } = database;
  const saved: { table: string; rows: Record<string, unknown>[]; insert: BulkInsert<Record<string, unknown>> }[] = [];
  for (const table of IMPORT_TABLES) {
    const rows = (await db.selectFrom(table).selectAll().where('client_id', '=', clientId).execute()) as Record<string, unknown>[];
    const columns = rows.length ? Object.keys(rows[0]!) : [];
    const types: Record<string, 'integer' | 'bigint' | 'boolean'> = {};
    if (database.engine === 'postgres') {
      const cols = await sql<{
        column_name: string;
        data_type: string;
      }>`select column_name, data_type from information_schema.columns where table_name = ${table}`.execute(db);
      for (const c of cols.rows) if (c.data_type === 'integer' || c.data_type === 'bigint' || c.data_type === 'boolean') types[c.column_name] = c.data_type;
    }
    saved.push({ table, rows, insert: bulkInsert<Record<string, unknown>>(table, columns, { types }) });
  }
  for (const { table } of [...saved].reverse())
    await db
      .deleteFrom(table as 'devices')
      .where('client_id', '=', clientId)
      .execute();
  const t0 = performance.now();
  await db.transaction().execute(async (tx) => {
    for (const s of saved) await s.insert(tx, s.rows);
  });
  return { seconds: (performance.now() - t0) / 1000, rows: saved.reduce((n, s) => n + s.rows.length, 0) };
}
