import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliRun, createTestVault, type TestVault } from './helpers/vault.js';
import { csvOf, randomKeyId, randomRecoveryPassword } from './helpers/keys.js';
import { createTestDatabase, ENGINE } from './helpers/engine.js';

const REPO = path.resolve(import.meta.dirname, '..');

describe(`keywarden CLI on ${ENGINE}`, () => {
  let v: TestVault;
  const outputs: string[] = [];
  const run = async (args: string[], env?: NodeJS.ProcessEnv) => {
    const r = await v.cli(args, { env });
    outputs.push(r.stdout + r.stderr);
    return r;
  };
  const write = (name: string, text: string | Buffer) => {
    const file = path.join(v.db.dir, name);
    fs.writeFileSync(file, text);
    return file;
  };
  // Two keys that share their first 8 characters, as happens in a big vault.
  const shared = 'abcdef01';
  const keys = [
    { device: 'FAKE-CLI-1', keyId: `${shared}-1111-4111-8111-111111111111`, password: randomRecoveryPassword() },
    { device: 'FAKE-CLI-2', keyId: `${shared}-2222-4222-8222-222222222222`, password: randomRecoveryPassword() },
    { device: 'FAKE-CLI-3', keyId: randomKeyId(), password: randomRecoveryPassword() },
  ];

  beforeAll(async () => {
    v = await createTestVault();
  });
  afterAll(() => v.close());

  it('adds and lists clients', async () => {
    expect((await run(['client', 'add', 'Contoso'])).code).toBe(0);
    const dup = await run(['client', 'add', 'contoso']);
    expect(dup.code).toBe(1);
    expect(dup.stderr).toMatch(/already exists/);
    const list = await run(['client', 'list', '--json']);
    expect(JSON.parse(list.stdout)).toMatchObject([{ name: 'Contoso', devices: 0, keys: 0 }]);
  });

  it('imports with the documented JSON summary and exit codes', async () => {
    const file = write('keys.csv', csvOf(keys));
    const r = await run(['import', file, '--client', 'Contoso', '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ imported: 3, duplicates: 0, conflicts: 0, rejected: [], rejectedCount: 0 });

    const bad = write('bad.csv', `${csvOf(keys.slice(0, 1))}FAKE-CLI-9,${randomKeyId()},111111-222222-333333-444444-555555-666666-777777-888888,C:\n`);
    const partial = await run(['import', bad, '--client', 'Contoso', '--json']);
    expect(partial.code).toBe(1);
    expect(JSON.parse(partial.stdout)).toEqual({
      imported: 0,
      duplicates: 1,
      conflicts: 0,
      rejected: [{ file: bad, line: 3, reason: expect.stringMatching(/group 7 of 8 is out of range/) }],
      rejectedCount: 1,
    });

    const human = await run(['import', file, '--client', 'Contoso']);
    expect(human.stdout).toMatch(/0 keys imported, 3 duplicates, 0 conflicts, 0 rows rejected/);
  });

  it('exits 2 on usage errors without touching the vault', async () => {
    const file = write('k2.csv', csvOf([{ device: 'X', keyId: randomKeyId(), password: randomRecoveryPassword() }]));
    expect((await run(['import', file])).code).toBe(2); // no --client
    expect((await run(['import', file, '--client', 'Nobody'])).code).toBe(2);
    expect((await run(['import', 'missing.csv', '--client', 'Contoso'])).code).toBe(2);
    expect((await run(['import', file, '--client', 'Contoso', '--format', 'xml'])).code).toBe(2);
    expect((await run(['frobnicate'])).code).toBe(2);
    const list = await run(['keys', 'list', '--json']);
    expect(JSON.parse(list.stdout)).toHaveLength(3);
  });

  it('an unreadable file is reported as rejected and the other files still go in', async () => {
    const junk = write('junk.bin', Buffer.from([0, 1, 2, 3, 250, 251]));
    const ok = write('ok.csv', csvOf([{ device: 'FAKE-CLI-4', keyId: randomKeyId(), password: randomRecoveryPassword() }]));
    const r = await run(['import', junk, ok, '--client', 'Contoso', '--json']);
    expect(r.code).toBe(1);
    const out = JSON.parse(r.stdout);
    expect(out.imported).toBe(1);
    expect(out.rejected).toEqual([{ file: junk, line: 0, reason: expect.stringMatching(/format/) }]);
  });

  it('looks up a key by its 8-character prefix and reveals it (exit 0), audited first', async () => {
    const r = await run(['lookup', keys[2]!.keyId.slice(0, 8).toUpperCase(), '--reason', 'bios-changed', '--ticket', 'T-100', '--json']);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out).toEqual({
      keyId: keys[2]!.keyId,
      recoveryPassword: keys[2]!.password,
      client: 'Contoso',
      device: 'FAKE-CLI-3',
      volume: { mountPoint: 'C:', type: 'unknown' },
      state: 'disclosed',
      sources: [expect.objectContaining({ type: 'import', ref: 'keys.csv' })],
    });
    const audit = await run(['audit', 'list', '--action', 'key.reveal', '--json']);
    expect(JSON.parse(audit.stdout)[0]).toMatchObject({ action: 'key.reveal', outcome: 'success', reasonCode: 'bios-changed', ticket: 'T-100' });
    const human = await run(['lookup', `{${keys[2]!.keyId.toUpperCase()}}`, '--reason', 'lost-pin']);
    expect(human.stdout).toContain(keys[2]!.password);
    expect(human.stdout).toContain('disclosed');
  });

  it('lists candidates without passwords when a prefix matches several keys (exit 3)', async () => {
    const r = await run(['lookup', shared, '--reason', 'tpm-reset', '--json']);
    expect(r.code).toBe(3);
    const out = JSON.parse(r.stdout);
    expect(out.matches).toBe(2);
    expect(out.candidates.map((c: { keyId: string }) => c.keyId).sort()).toEqual([keys[0]!.keyId, keys[1]!.keyId]);
    expect(r.stdout + r.stderr).not.toContain(keys[0]!.password);
    const human = await run(['lookup', shared, '--reason', 'tpm-reset']);
    expect(human.code).toBe(3);
    expect(human.stdout).toContain('FAKE-CLI-1');
    // The full ID then picks exactly one.
    expect((await run(['lookup', keys[0]!.keyId, '--reason', 'tpm-reset'])).code).toBe(0);
  });

  it('exits 4 when nothing matches and 2 for a bad key ID or reason', async () => {
    expect((await run(['lookup', '00000000', '--reason', 'lost-pin'])).code).toBe(4);
    expect((await run(['lookup', '1234', '--reason', 'lost-pin'])).code).toBe(2);
    expect((await run(['lookup', keys[1]!.keyId, '--reason', 'curiosity'])).code).toBe(2);
    const other = await run(['lookup', keys[1]!.keyId, '--reason', 'other']);
    expect(other.code).toBe(2);
    expect(other.stderr).toMatch(/ticket/);
    expect((await run(['lookup', keys[1]!.keyId])).code).toBe(2);
    // A password pasted where the key ID goes is refused without being echoed back.
    const pasted = await run(['lookup', keys[1]!.password, '--reason', 'lost-pin']);
    expect(pasted.code).toBe(2);
    expect(pasted.stderr).toMatch(/looks like a recovery password, not a key ID/);
    expect(pasted.stderr).not.toContain(keys[1]!.password.slice(0, 13));
    const denied = await run(['audit', 'list', '--action', 'key.reveal', '--json']);
    expect(JSON.parse(denied.stdout).map((e: { outcome: string }) => e.outcome)).toContain('not_found');
  });

  it('keys list shows metadata and never a password', async () => {
    const r = await run(['keys', 'list', '--client', 'contoso', '--json']);
    const list = JSON.parse(r.stdout);
    expect(list.length).toBe(4);
    expect(list[0]).toEqual(
      expect.objectContaining({
        keyId: expect.any(String),
        client: 'Contoso',
        device: expect.any(String),
        state: expect.any(String),
        sources: expect.any(Array),
      }),
    );
    const human = await run(['keys', 'list']);
    expect(human.stdout).toMatch(/\{ABCDEF01-1111-4111-8111-111111111111\}\s+Contoso\s+FAKE-CLI-1/);
    for (const k of keys) {
      expect(r.stdout).not.toContain(k.password);
      expect(human.stdout).not.toContain(k.password);
    }
  });

  it('shows import progress and the rate for large files', async () => {
    // Enough keys for five progress lines on PostgreSQL too, which ingests 2,000 keys a step (src/db/bulk.ts).
    const rows = Array.from({ length: 10_000 }, (_, i) => ({ device: `FAKE-BULK-${i % 700}`, keyId: randomKeyId(), password: randomRecoveryPassword() }));
    const file = write('bulk.csv', csvOf(rows));
    const r = await run(['import', file, '--client', 'Contoso']);
    expect(r.code).toBe(0);
    const progress = r.stderr.split('\n').filter((l) => / keys \(\d[\d,]* keys\/s\)$/.test(l));
    expect(progress.length).toBeGreaterThanOrEqual(5);
    expect(progress.at(-1)).toContain('10,000 / 10,000 keys');
    expect(r.stderr).toMatch(/10,000 rows in \d+\.\d s \([\d,]+ rows\/s\)/);
  });

  it('no password reached any output except the reveals', () => {
    const all = outputs.join('\n');
    const revealed = new Set([keys[2]!.password, keys[0]!.password]);
    expect(all).not.toContain(keys[1]!.password.slice(0, 13));
    for (const k of keys) if (!revealed.has(k.password)) expect(all).not.toContain(k.password);
  });
});

describe('keywarden init', () => {
  it('creates the folder, a 0600 master key and the database; a second run changes nothing', async () => {
    const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'keywarden-init-'));
    const tdb = await createTestDatabase();
    // On SQLite the default location is used, as a newcomer would; on PostgreSQL the test database.
    const env: NodeJS.ProcessEnv = ENGINE === 'postgres' ? { KEYWARDEN_DATABASE_URL: tdb.url } : {};
    try {
      const first = await cliRun(['init'], env, cwd);
      expect(first.code).toBe(0);
      expect(first.stdout).toMatch(/Keywarden vault initialized/);
      // `keywarden` is not on PATH after `npm ci`: every next step is spelled with npx.
      const steps = first.stdout.slice(first.stdout.indexOf('Next steps:')).split('\n').slice(1, 6);
      expect(steps).toHaveLength(5);
      for (const step of steps) expect(step).toMatch(/^ {2}npx keywarden /);
      expect(first.stdout).not.toMatch(/(?<!npx )keywarden (user|serve|client|import|lookup)/);
      const keyFile = path.join(cwd, 'keywarden-data', 'master.key');
      expect(fs.statSync(keyFile).mode & 0o777).toBe(0o600);
      expect(fs.statSync(path.join(cwd, 'keywarden-data')).mode & 0o777).toBe(0o700);
      if (ENGINE === 'sqlite') expect(fs.existsSync(path.join(cwd, 'keywarden-data', 'keywarden.db'))).toBe(true);
      const key = fs.readFileSync(keyFile, 'utf8');

      const second = await cliRun(['init'], env, cwd);
      expect(second.code).toBe(0);
      expect(second.stdout).toMatch(/already initialized .*nothing changed/);
      expect(fs.readFileSync(keyFile, 'utf8')).toBe(key);

      // A vault whose master key went missing is not silently given a new one.
      fs.renameSync(keyFile, keyFile + '.bak');
      const lost = await cliRun(['init'], env, cwd);
      expect(lost.code).toBe(1);
      expect(lost.stderr).toMatch(/already initialized, but its master key file .* is missing/);
      expect(fs.existsSync(keyFile)).toBe(false);
      const noKey = await cliRun(['client', 'list'], env, cwd);
      expect(noKey.code).toBe(1);
      expect(noKey.stderr).toMatch(/No master key at/);
      fs.renameSync(keyFile + '.bak', keyFile);
      expect((await cliRun(['client', 'list'], env, cwd)).code).toBe(0);

      // --data-dir puts a second vault elsewhere.
      if (ENGINE === 'sqlite') {
        const other = await cliRun(['init', '--data-dir', 'second'], {}, cwd);
        expect(other.code).toBe(0);
        expect(fs.existsSync(path.join(cwd, 'second', 'master.key'))).toBe(true);
      }
      // A command before init says what to do.
      const before = await cliRun(['client', 'list'], { ...env, KEYWARDEN_DATA_DIR: path.join(cwd, 'never') }, cwd);
      if (ENGINE === 'sqlite') {
        expect(before.code).toBe(1);
        expect(before.stderr).toMatch(/Run "npx keywarden init" first/);
      }
    } finally {
      fs.rmSync(cwd, { recursive: true, force: true });
      await tdb.drop();
    }
  });

  it('no installed package asks for a newer Node than the project (no EBADENGINE warning at `npm ci`)', () => {
    const lock = JSON.parse(fs.readFileSync(path.join(REPO, 'package-lock.json'), 'utf8')) as { packages: Record<string, { engines?: { node?: string } }> };
    // The project says node >=20.11; a dependency that says >=21 or more (cookie@2, content-disposition@3) is pinned back by "overrides".
    const newer = Object.entries(lock.packages)
      .filter(([, p]) => /^\s*>=?\s*v?(2[1-9]|[3-9]\d)/.test(p.engines?.node ?? ''))
      .map(([name, p]) => `${name} ${p.engines!.node}`);
    expect(newer).toEqual([]);
  });

  it('the installed bin runs from dist (what `npx keywarden` starts)', () => {
    if (!fs.existsSync(path.join(REPO, 'dist', 'main.js'))) execFileSync('npm', ['run', 'build'], { cwd: REPO });
    const r = spawnSync(process.execPath, [path.join(REPO, 'bin', 'keywarden.js'), '--help'], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    for (const cmd of ['init', 'client', 'import', 'lookup', 'keys', 'audit']) expect(r.stdout).toContain(cmd);
    const bad = spawnSync(process.execPath, [path.join(REPO, 'bin', 'keywarden.js'), 'lookup'], { encoding: 'utf8' });
    expect(bad.status).toBe(2);
  });
});
