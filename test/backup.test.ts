import { migrations } from '../src/db/migrations/index.js';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliRun, createTestVault, owner, randomMasterKey, type TestVault } from './helpers/vault.js';
import { bytes, csvOf, randomKeyId, randomRecoveryPassword } from './helpers/keys.js';
import { createTestDatabase, ENGINE, type TestDatabase } from './helpers/engine.js';
import { loadConfig } from '../src/config.js';
import { buildContainer } from '../src/container.js';
import { openDatabase } from '../src/db/database.js';

/**
 * Backup while the vault keeps taking writes, restore into an empty place, doctor, every key
 * decrypts — on the engine under test. The backup runs as its own process (the CLI next to a
 * running server), the writes go on in this one; SQLite uses its online backup API, PostgreSQL
 * pg_dump from an exported snapshot. PostgreSQL restores into a throwaway database with
 * pg_restore; SQLite into an empty data folder.
 */
const REPO = path.resolve(import.meta.dirname, '..');
type Key = { device: string; keyId: string; password: string };

/** The real CLI in a child process (what an operator runs while `keywarden serve` is up). */
function cliProcess(args: string[], env: NodeJS.ProcessEnv, cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(path.join(REPO, 'node_modules', '.bin', 'tsx'), [path.join(REPO, 'src', 'main.ts'), ...args], {
      cwd,
      env: { PATH: process.env.PATH, HOME: cwd, ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => void (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => void (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

describe(`backup, restore and doctor on ${ENGINE}`, () => {
  let v: TestVault;
  let work: string;
  let backupFile: string;
  let manifest: {
    counts: { clients: number; devices: number; recoveryKeys: number; auditEvents: number };
    masterKeys: { keyId: string }[];
    engine: string;
    files: { name: string }[];
    schemaVersion: string;
  };
  let target: { env: NodeJS.ProcessEnv; db?: TestDatabase };
  const before: Key[] = [];
  const during: Key[] = [];
  const spares: TestDatabase[] = [];
  const newKeys = (n: number, tag: string): Key[] =>
    Array.from({ length: n }, (_, i) => ({ device: `FAKE-BK-${tag}-${i % 7}`, keyId: randomKeyId(), password: randomRecoveryPassword() }));

  /** An empty place to restore into: a new data folder, and on PostgreSQL a new empty database. */
  async function emptyTarget(masterKey?: string): Promise<{ env: NodeJS.ProcessEnv; db?: TestDatabase }> {
    const dir = path.join(work, `restore-${Math.random().toString(36).slice(2, 8)}`);
    const env: NodeJS.ProcessEnv = { KEYWARDEN_DATA_DIR: dir, ...(masterKey ? { KEYWARDEN_MASTER_KEY: masterKey } : {}) };
    if (ENGINE === 'sqlite') return { env };
    const db = await createTestDatabase();
    spares.push(db);
    return { env: { ...env, KEYWARDEN_DATABASE_URL: db.url }, db };
  }

  beforeAll(async () => {
    v = await createTestVault();
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'keywarden-backup-'));
    await v.container.clients.create(owner, { name: 'Contoso' });
    await v.container.clients.create(owner, { name: 'Fabrikam' });
    before.push(...newKeys(60, 'C'));
    const fab = newKeys(15, 'F');
    before.push(...fab);
    await v.container.imports.importFile(owner, 'Contoso', { fileName: 'contoso.csv', bytes: bytes(csvOf(before.slice(0, 60))) });
    await v.container.imports.importFile(owner, 'Fabrikam', { fileName: 'fabrikam.csv', bytes: bytes(csvOf(fab)) });
  });
  afterAll(async () => {
    await v.close();
    for (const d of spares) await d.drop();
    fs.rmSync(work, { recursive: true, force: true });
  });

  it('takes a consistent backup in another process while imports keep committing', async () => {
    backupFile = path.join(work, 'vault.kwbackup');
    let running = true;
    let duringBackup = 0;
    const writer = (async () => {
      for (let i = 0; running && i < 2000; i++) {
        const ks = newKeys(3, `W${i}`);
        await v.container.imports.importFile(owner, i % 2 ? 'Contoso' : 'Fabrikam', { fileName: `w${i}.csv`, bytes: bytes(csvOf(ks)) });
        during.push(...ks);
        if (running) duringBackup++;
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    const r = await cliProcess(['backup', '--out', backupFile, '--json'], v.env, v.db.dir);
    running = false;
    await writer;
    expect(r.stderr).toMatch(/THE MASTER KEY IS NOT IN THIS BACKUP/);
    expect(r.code, r.stderr).toBe(0);
    expect(duringBackup).toBeGreaterThan(0); // writes committed while the backup ran
    const out = JSON.parse(r.stdout) as { manifest: typeof manifest; masterKey: { notIncluded: boolean; ids: string } };
    manifest = out.manifest;
    expect(out.masterKey.notIncluded).toBe(true);
    expect(manifest.engine).toBe(ENGINE);
    // The newest migration of this build.
    expect(manifest.schemaVersion).toBe(Object.keys(migrations).sort().at(-1));
    expect(manifest.masterKeys.map((m) => m.keyId)).toEqual([v.container.keyring.masterKeyId]);
    expect(manifest.counts.clients).toBe(2);
    // A snapshot taken at one instant: every key from before, some of the ones written during.
    expect(manifest.counts.recoveryKeys).toBeGreaterThanOrEqual(before.length);
    expect(manifest.counts.recoveryKeys).toBeLessThanOrEqual(before.length + during.length);
    expect(manifest.counts.recoveryKeys % 3).toBe(0);

    // A plain tar archive: the system's tar lists it.
    const listing = spawnSync('tar', ['-tf', backupFile], { encoding: 'utf8' });
    expect(listing.status).toBe(0);
    expect(listing.stdout.trim().split('\n')).toEqual(['manifest.json', ENGINE === 'sqlite' ? 'keywarden.db' : 'keywarden.pgdump']);
    // The master key is not in it, in any form.
    const raw = fs.readFileSync(backupFile);
    expect(raw.includes(Buffer.from(v.masterKey))).toBe(false);
    expect(raw.includes(Buffer.from(v.masterKey, 'base64'))).toBe(false);
    const audited = await v.container.audit.list(owner, { action: 'vault.backup' });
    expect(audited[0]).toMatchObject({ outcome: 'success', details: { engine: ENGINE, counts: manifest.counts } });
  });

  it('restores into an empty place only, and says the master key must be put back', async () => {
    target = await emptyTarget();
    const r = await cliRun(['restore', backupFile], target.env, work);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`${manifest.counts.recoveryKeys} recovery keys`));
    expect(r.stderr).toMatch(new RegExp(`master key is not in the backup. Put master key ${manifest.masterKeys[0]!.keyId}`));
    // Again into the same (now non-empty) place: refused, nothing touched.
    const again = await cliRun(['restore', backupFile], target.env, work);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/not empty/);
    // Nor over the live vault.
    const live = await cliRun(['restore', backupFile], v.env, work);
    expect(live.code).toBe(1);
    expect(live.stderr).toMatch(/not empty|already exists/);
  });

  it('doctor says clearly when the master key is missing or wrong (exit 1)', async () => {
    const missing = await cliRun(['doctor'], target.env, work);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(new RegExp(`master key: there is no master key at .*${manifest.masterKeys[0]!.keyId}`));
    const wrong = await cliRun(['doctor', '--json'], { ...target.env, KEYWARDEN_MASTER_KEY: randomMasterKey() }, work);
    expect(wrong.code).toBe(1);
    const report = JSON.parse(wrong.stdout) as { ok: boolean; problems: string[] };
    expect(report.ok).toBe(false);
    expect(report.problems.join('\n')).toMatch(/master key: The master key does not unlock this vault: it expects master key mk-/);
  });

  it('with the right master key doctor reports everything intact, and every key decrypts through lookup', async () => {
    const env = { ...target.env, KEYWARDEN_MASTER_KEY: v.masterKey };
    const r = await cliRun(['doctor', '--json'], env, work);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as { ok: boolean; counts: typeof manifest.counts; checks: { name: string; ok: boolean; detail: string }[] };
    expect(report.ok).toBe(true);
    expect(report.checks.map((c) => c.name)).toEqual([
      'schema',
      'counts',
      'duplicate keys',
      'duplicate devices',
      'master key',
      'data keys',
      'recovery passwords',
      'audit chain',
    ]);
    expect(report.counts).toEqual({
      clients: 2,
      devices: manifest.counts.devices,
      recoveryKeys: manifest.counts.recoveryKeys,
      auditEvents: manifest.counts.auditEvents,
    });
    expect(report.checks.find((c) => c.name === 'recovery passwords')!.detail).toBe(`all ${manifest.counts.recoveryKeys} stored recovery passwords decrypt`);
    expect(report.checks.find((c) => c.name === 'audit chain')!.detail).toBe(`intact: ${manifest.counts.auditEvents} events verified`);

    const human = await cliRun(['doctor'], env, work);
    expect(human.stdout).toMatch(/Everything checked is intact/);

    // The restored vault serves every key it holds, with the password that was stored.
    const c = await buildContainer(loadConfig(env));
    try {
      const known = new Map([...before, ...during].map((k) => [k.keyId, k.password]));
      const listed = await c.keys.list(owner, { limit: 100_000 });
      expect(listed.length).toBe(manifest.counts.recoveryKeys);
      for (const k of before)
        expect(
          listed.some((x) => x.keyId === k.keyId),
          k.keyId,
        ).toBe(true);
      let revealed = 0;
      for (const k of listed) {
        const r = await c.keys.revealByKeyId(owner, { query: k.keyId!, reason: 'lost-pin' });
        expect(r.status).toBe('revealed');
        if (r.status === 'revealed') expect(r.key.recoveryPassword).toBe(known.get(k.keyId!));
        revealed++;
      }
      expect(revealed).toBe(manifest.counts.recoveryKeys);
      expect((await c.audit.verify(owner)).intact).toBe(true);
    } finally {
      await c.close();
    }
  });

  it('doctor finds a changed audit event and a password that no longer decrypts', async () => {
    const env = { ...target.env, KEYWARDEN_MASTER_KEY: v.masterKey };
    const database = openDatabase(loadConfig(env).database);
    try {
      await database.db.updateTable('audit_events').set({ details: '{"changed":true}' }).where('seq', '=', 3).execute();
      const victim = await database.db.selectFrom('recovery_keys').select(['id', 'ciphertext']).orderBy('id').limit(1).executeTakeFirstOrThrow();
      const other = await database.db.selectFrom('recovery_keys').select(['ciphertext']).where('id', '!=', victim.id).limit(1).executeTakeFirstOrThrow();
      // A ciphertext copied from another row: well-formed, but bound to the other row.
      await database.db.updateTable('recovery_keys').set({ ciphertext: other.ciphertext }).where('id', '=', victim.id).execute();
    } finally {
      await database.close();
    }
    const r = await cliRun(['doctor'], env, work);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/audit chain: BROKEN at event 3: event 3 was changed/);
    expect(r.stderr).toMatch(/recovery passwords: these do not decrypt: .* key record /);
    expect(r.stderr).toMatch(/2 problem\(s\)/);
  });

  it('PostgreSQL without pg_dump on PATH stops with the exact manual commands; SQLite needs no tool', async () => {
    const out = path.join(work, 'no-tool.kwbackup');
    const r = await cliRun(['backup', '--out', out], { ...v.env, PATH: '/nonexistent' }, work);
    if (ENGINE === 'postgres') {
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/pg_dump was not found on PATH/);
      expect(r.stderr).toContain(`pg_dump --format=custom --no-owner --no-privileges --file=keywarden.pgdump "${v.db.url}"`);
      expect(r.stderr).toMatch(/pg_restore --no-owner --no-privileges --exit-on-error/);
      expect(fs.existsSync(out)).toBe(false);
      const failed = await v.container.audit.list(owner, { action: 'vault.backup', outcome: 'error' });
      expect(failed[0]!.details?.problem).toMatch(/pg_dump was not found/);
    } else {
      expect(r.code, r.stderr).toBe(0);
      expect(fs.existsSync(out)).toBe(true);
    }
    expect(fs.readdirSync(work).filter((f) => f.startsWith('.keywarden-backup-'))).toEqual([]); // no work folder left behind
  });

  it('a damaged backup file is refused before anything is restored', async () => {
    const damaged = path.join(work, 'damaged.kwbackup');
    const raw = Buffer.from(fs.readFileSync(backupFile));
    raw[raw.length - 3000]! ^= 0xff;
    fs.writeFileSync(damaged, raw);
    const t = await emptyTarget();
    const r = await cliRun(['restore', damaged], t.env, work);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/is damaged: the database (file|dump) does not match its checksum/);
    expect(fs.existsSync(String(t.env.KEYWARDEN_DATA_DIR) + '/keywarden.db')).toBe(false);
    const cut = path.join(work, 'cut.kwbackup');
    fs.writeFileSync(cut, fs.readFileSync(backupFile).subarray(0, 4096));
    const c = await cliRun(['restore', cut], (await emptyTarget()).env, work);
    expect(c.code).toBe(2);
    expect(c.stderr).toMatch(/not a complete Keywarden backup|lacks its database/);
  });
});
