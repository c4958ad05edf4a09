import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import SQLite from 'better-sqlite3';
import pg from 'pg';
import type { Config } from '../../config.js';
import { describeDatabase } from '../../config.js';
import type { Database } from '../../db/database.js';
import { migrations } from '../../db/migrations/index.js';
import { badRequest, conflict, vaultError } from '../../lib/errors.js';
import { fileDigest, listTar, readTarEntry, extractTarEntry, writeTar, TarError } from './tar.js';

/**
 * `keywarden backup` / `keywarden restore`.
 *
 * A backup is one POSIX tar file holding
 *   manifest.json     what is needed to restore and check: format, Keywarden version, engine,
 *                     applied migrations, master key id(s) (never the key), counts, audit head,
 *                     and the SHA-256 of the database file
 *   keywarden.db      SQLite: a page-for-page copy made with SQLite's online backup API
 *   keywarden.pgdump  PostgreSQL: pg_dump's custom format, for pg_restore
 * Both are consistent snapshots taken while the server keeps writing: SQLite copies every page
 * in one backup step (one read transaction; in WAL mode writers go on meanwhile); PostgreSQL
 * dumps from a snapshot exported by the transaction that also reads the manifest's counts.
 *
 * The master key is NOT in the backup. Without it the backup cannot be read, which is the point:
 * a stolen backup file is useless on its own. It is backed up separately, and every command
 * here says so.
 */
export const BACKUP_FORMAT = 'keywarden-backup';
export const BACKUP_VERSION = 1;
const SQLITE_ENTRY = 'keywarden.db';
const PG_ENTRY = 'keywarden.pgdump';

export type BackupManifest = {
  format: typeof BACKUP_FORMAT;
  version: typeof BACKUP_VERSION;
  createdAt: string;
  keywardenVersion: string;
  engine: 'sqlite' | 'postgres';
  /** The database the snapshot was taken from, in words (no password). */
  source: string;
  migrations: string[];
  schemaVersion: string | null;
  /** Public ids of the registered master keys (mk-…), newest first; the key itself is never here. */
  masterKeys: { version: number; keyId: string; retired: boolean }[];
  counts: { clients: number; devices: number; recoveryKeys: number; auditEvents: number; users: number };
  auditHead: { seq: number; hash: string } | null;
  files: { name: string; bytes: number; sha256: string }[];
};

export function keywardenVersion(): string {
  for (const rel of ['../../../package.json', '../../package.json']) {
    try {
      const p = JSON.parse(fs.readFileSync(path.resolve(import.meta.dirname, rel), 'utf8')) as { name?: string; version?: string };
      if (p.name === 'keywarden' && p.version) return p.version;
    } catch {
      // try the next location (src/ and dist/ sit at different depths)
    }
  }
  return 'unknown';
}

type Query = (sql: string) => Promise<Record<string, unknown>[]>;

/** The manifest's facts, read through the snapshot's own connection so they match its contents. */
async function snapshotFacts(q: Query) {
  const count = async (table: string) => Number((await q(`select count(*) as n from ${table}`))[0]?.n ?? 0);
  const applied = (await q('select name from kysely_migration order by name')).map((r) => String(r.name));
  const masters = await q('select version, key_id, retired_at from master_keys order by version desc');
  const head = (await q('select seq, hash from audit_head where id = 1'))[0];
  return {
    migrations: applied,
    schemaVersion: applied.at(-1) ?? null,
    masterKeys: masters.map((m) => ({ version: Number(m.version), keyId: String(m.key_id), retired: m.retired_at != null })),
    counts: {
      clients: await count('clients'),
      devices: await count('devices'),
      recoveryKeys: await count('recovery_keys'),
      auditEvents: await count('audit_events'),
      users: await count('users'),
    },
    auditHead: head ? { seq: Number(head.seq), hash: String(head.hash) } : null,
  };
}

/** The connection string without its password, and the password for PGPASSWORD (never an argument). */
function pgConnection(url: string): { url: string; env: NodeJS.ProcessEnv } {
  const u = new URL(url);
  const password = u.password ? decodeURIComponent(u.password) : undefined;
  u.password = '';
  return { url: u.toString(), env: password ? { PGPASSWORD: password } : {} };
}

/** The PostgreSQL client tools are looked up on the PATH of `env` (the CLI's environment). */
function toolVersion(tool: 'pg_dump' | 'pg_restore', env: NodeJS.ProcessEnv): string | null {
  const r = spawnSync(tool, ['--version'], { encoding: 'utf8', env });
  return r.error || r.status !== 0 ? null : r.stdout.trim();
}

function runTool(tool: string, args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(tool, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => void (stderr = (stderr + d.toString('utf8')).slice(-4000)));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve();
      // The tool's own text can quote SQL or the server's address, never a password (PGPASSWORD).
      else reject(vaultError(`${tool} failed (exit ${code}): ${stderr.trim().split('\n').slice(-3).join(' ')}`));
    });
  });
}

/** What to do by hand when pg_dump is not installed. */
export function pgDumpGuidance(config: Config): string {
  const url = config.database.engine === 'postgres' ? pgConnection(config.database.url).url : 'postgres://…';
  return [
    'pg_dump was not found on PATH, so this PostgreSQL database cannot be backed up from here.',
    'Install the PostgreSQL client tools of the server\'s major version (Debian/Ubuntu: apt-get install postgresql-client), then run "keywarden backup" again,',
    'or take the dump yourself (consistent while the server runs) and keep it with the master key id:',
    `  PGPASSWORD=… pg_dump --format=custom --no-owner --no-privileges --file=keywarden.pgdump "${url}"`,
    'Restore it with: pg_restore --no-owner --no-privileges --exit-on-error --dbname="postgres://…/empty_database" keywarden.pgdump',
  ].join('\n');
}

export type BackupResult = { file: string; manifest: BackupManifest; masterKey: string };

/**
 * Takes a consistent snapshot of the vault while it runs and packs it with its manifest.
 * `out` must not exist; the archive appears under that name only once it is complete.
 */
export async function createBackup(
  config: Config,
  database: Database,
  out: string,
  now: string,
  toolEnv: NodeJS.ProcessEnv = process.env,
): Promise<BackupResult> {
  if (fs.existsSync(out)) throw badRequest(`${out} already exists; choose another name (a backup never overwrites a file).`);
  if (!fs.existsSync(path.dirname(out))) throw badRequest(`The folder ${path.dirname(out)} does not exist.`);
  const work = fs.mkdtempSync(path.join(path.dirname(out), '.keywarden-backup-'));
  try {
    let facts: Awaited<ReturnType<typeof snapshotFacts>>;
    let entry: { name: string; file: string };
    if (config.database.engine === 'sqlite') {
      if (!database.sqlite) throw vaultError('The SQLite handle is not available for the online backup.');
      const copy = path.join(work, SQLITE_ENTRY);
      // One step copies every page inside one read transaction: a snapshot that writers in other
      // connections (the running server) cannot tear, and no restart when they commit meanwhile.
      await database.sqlite.backup(copy, { progress: () => 0x7fffffff });
      const snap = new SQLite(copy, { readonly: true, fileMustExist: true });
      try {
        facts = await snapshotFacts(async (sql) => snap.prepare(sql).all() as Record<string, unknown>[]);
        const check = snap.pragma('integrity_check', { simple: true });
        if (check !== 'ok') throw vaultError(`The snapshot failed SQLite's integrity check (${String(check)}).`);
      } finally {
        snap.close();
      }
      entry = { name: SQLITE_ENTRY, file: copy };
    } else {
      if (!toolVersion('pg_dump', toolEnv)) throw vaultError(pgDumpGuidance(config));
      const conn = pgConnection(config.database.url);
      const client = new pg.Client({ connectionString: config.database.url });
      await client.connect();
      try {
        // pg_dump reads the very snapshot this transaction exported, so the manifest's counts and
        // the dump agree exactly, whatever the server commits in between.
        await client.query('begin isolation level repeatable read read only');
        const snapshot = String((await client.query('select pg_export_snapshot() as s')).rows[0].s);
        facts = await snapshotFacts(async (sql) => (await client.query(sql)).rows as Record<string, unknown>[]);
        const dump = path.join(work, PG_ENTRY);
        await runTool('pg_dump', ['--format=custom', '--no-owner', '--no-privileges', `--snapshot=${snapshot}`, `--file=${dump}`, `--dbname=${conn.url}`], {
          ...toolEnv,
          ...conn.env,
        });
        await client.query('commit');
        entry = { name: PG_ENTRY, file: dump };
      } finally {
        await client.end().catch(() => {});
      }
    }
    if (facts.masterKeys.length === 0) throw vaultError('This database holds no initialized vault (no master key registered); nothing to back up.');

    const manifest: BackupManifest = {
      format: BACKUP_FORMAT,
      version: BACKUP_VERSION,
      createdAt: now,
      keywardenVersion: keywardenVersion(),
      engine: config.database.engine,
      source: describeDatabase(config.database),
      ...facts,
      files: [],
    };
    // The payload's checksum goes into the manifest, which comes first in the archive.
    const partial = path.join(work, 'archive.tar');
    manifest.files = [{ name: entry.name, ...fileDigest(entry.file) }];
    const written = writeTar(partial, [{ name: 'manifest.json', data: Buffer.from(JSON.stringify(manifest, null, 2) + '\n') }, entry]);
    if (written[1]?.sha256 !== manifest.files[0]!.sha256) throw vaultError('The snapshot changed while it was being packed; run the backup again.');
    fs.renameSync(partial, out);
    return { file: out, manifest, masterKey: masterKeyWhere(config) };
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

export function masterKeyWhere(config: Config): string {
  return config.masterKey.kind === 'env' ? 'the KEYWARDEN_MASTER_KEY environment variable' : config.masterKey.path;
}

/** Reads and checks the manifest of a backup file. */
export function readBackup(file: string): { manifest: BackupManifest; payload: { name: string; offset: number; size: number } } {
  let entries: ReturnType<typeof listTar>;
  try {
    entries = listTar(file);
  } catch (e) {
    if (e instanceof TarError) throw badRequest(`${file} is not a complete Keywarden backup: ${e.message}.`);
    throw badRequest(`Cannot read ${file}.`);
  }
  const m = entries.find((e) => e.name === 'manifest.json');
  if (!m || m.size > 10 * 1024 * 1024) throw badRequest(`${file} is not a Keywarden backup (no manifest.json).`);
  let manifest: BackupManifest;
  try {
    manifest = JSON.parse(readTarEntry(file, m).toString('utf8')) as BackupManifest;
  } catch {
    throw badRequest(`The manifest of ${file} is not readable.`);
  }
  if (manifest.format !== BACKUP_FORMAT) throw badRequest(`${file} is not a Keywarden backup.`);
  if (manifest.version !== BACKUP_VERSION) throw badRequest(`${file} is a backup format version ${manifest.version}, which this Keywarden does not read.`);
  const name = manifest.engine === 'sqlite' ? SQLITE_ENTRY : PG_ENTRY;
  const payload = entries.find((e) => e.name === name);
  const expected = manifest.files.find((f) => f.name === name);
  if (!payload || !expected) throw badRequest(`${file} lacks its database file (${name}).`);
  if (payload.size !== expected.bytes) throw badRequest(`${file} is damaged: ${name} has ${payload.size} bytes, the manifest says ${expected.bytes}.`);
  const unknown = manifest.migrations.filter((n) => !(n in migrations));
  if (unknown.length)
    throw badRequest(`${file} comes from a newer Keywarden (${manifest.keywardenVersion}; migrations ${unknown.join(', ')}); upgrade before restoring.`);
  return { manifest, payload };
}

const isEmptyDir = (dir: string) => !fs.existsSync(dir) || fs.readdirSync(dir).length === 0;

export type RestoreResult = { manifest: BackupManifest; target: string; dataDir: string };

/**
 * Restores a backup into an EMPTY place only: a data folder with nothing in it (SQLite), or a
 * PostgreSQL database without tables. It never overwrites a vault. The master key is not part of
 * the backup and has to be put in place afterwards.
 */
export async function restoreBackup(config: Config, file: string, toolEnv: NodeJS.ProcessEnv = process.env): Promise<RestoreResult> {
  const { manifest, payload } = readBackup(file);
  if (manifest.engine !== config.database.engine) {
    throw badRequest(
      `This is a ${manifest.engine === 'sqlite' ? 'SQLite' : 'PostgreSQL'} backup, but the target is ${describeDatabase(config.database)}. ` +
        (manifest.engine === 'sqlite'
          ? 'Restore it without KEYWARDEN_DATABASE_URL (into a data folder).'
          : 'Set KEYWARDEN_DATABASE_URL to an empty PostgreSQL database.'),
    );
  }
  const expected = manifest.files.find((f) => f.name === payload.name)!;
  if (config.database.engine === 'sqlite') {
    const target = config.database.file;
    if (!isEmptyDir(config.dataDir))
      throw conflict(`The data folder ${config.dataDir} is not empty. Restore only into an empty (or new) folder: it never overwrites a vault.`);
    if (fs.existsSync(target)) throw conflict(`${target} already exists. Restore only into an empty place: it never overwrites a vault.`);
    fs.mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
    fs.chmodSync(config.dataDir, 0o700);
    fs.mkdirSync(path.dirname(target), { recursive: true, mode: 0o700 });
    const tmp = `${target}.restoring`;
    try {
      const sum = extractTarEntry(file, payload, tmp);
      if (sum !== expected.sha256) throw badRequest(`${file} is damaged: the database file does not match its checksum.`);
      fs.renameSync(tmp, target);
    } finally {
      fs.rmSync(tmp, { force: true });
    }
    return { manifest, target, dataDir: config.dataDir };
  }

  // PostgreSQL: pg_restore into a database without tables.
  if (!toolVersion('pg_restore', toolEnv)) {
    throw vaultError(
      'pg_restore was not found on PATH. Install the PostgreSQL client tools, or unpack the backup (tar -xf FILE) and run:\n  pg_restore --no-owner --no-privileges --exit-on-error --dbname="postgres://…/empty_database" keywarden.pgdump',
    );
  }
  const client = new pg.Client({ connectionString: config.database.url });
  await client.connect();
  try {
    const tables = Number(
      (await client.query("select count(*) as n from information_schema.tables where table_schema not in ('pg_catalog', 'information_schema')")).rows[0].n,
    );
    if (tables > 0)
      throw conflict(`${describeDatabase(config.database)} is not empty (${tables} tables). Restore only into an empty database: it never overwrites a vault.`);
  } finally {
    await client.end().catch(() => {});
  }
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'keywarden-restore-'));
  try {
    const dump = path.join(work, PG_ENTRY);
    const sum = extractTarEntry(file, payload, dump);
    if (sum !== expected.sha256) throw badRequest(`${file} is damaged: the database dump does not match its checksum.`);
    const conn = pgConnection(config.database.url);
    await runTool('pg_restore', ['--no-owner', '--no-privileges', '--exit-on-error', `--dbname=${conn.url}`, dump], { ...toolEnv, ...conn.env });
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  return { manifest, target: describeDatabase(config.database), dataDir: config.dataDir };
}
