import fs from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliRun, createTestVault, type TestVault } from './helpers/vault.js';
import { createTestDatabase, ENGINE } from './helpers/engine.js';

describe(`keywarden user commands on ${ENGINE}`, () => {
  let v: TestVault;
  const pwFile = (name: string, pw: string) => {
    fs.writeFileSync(path.join(v.db.dir, name), pw + '\n');
    return name;
  };
  beforeAll(async () => {
    v = await createTestVault();
    await v.cli(['client', 'add', 'Contoso']);
    await v.cli(['client', 'add', 'Fabrikam']);
  });
  afterAll(() => v.close());

  it('the first user is an owner; later ones need a role; passwords come from a file, never an argument', async () => {
    const first = await v.cli(['user', 'add', 'Owner@Example.test', '--password-file', pwFile('o.txt', 'owner password 123')]);
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/Added owner@example.test as owner \(all clients\)/);
    const noRole = await v.cli(['user', 'add', 'tech@example.test', '--password-file', 'o.txt']);
    expect(noRole.code).toBe(2);
    expect(noRole.stderr).toMatch(/--role/);
    const tech = await v.cli([
      'user',
      'add',
      'tech@example.test',
      '--role',
      'technician',
      '--clients',
      'contoso',
      '--password-file',
      pwFile('t.txt', 'tech password 1234'),
      '--json',
    ]);
    expect(tech.code).toBe(0);
    expect(JSON.parse(tech.stdout)).toMatchObject({ email: 'tech@example.test', role: 'technician', clients: [expect.any(String)] });
    const short = await v.cli(['user', 'add', 'x@example.test', '--role', 'auditor', '--password-file', pwFile('s.txt', 'short')]);
    expect(short.code).toBe(2);
    expect(short.stderr).toMatch(/at least 12 characters/);
    expect(short.stderr).not.toContain('short\n');
    const noTty = await v.cli(['user', 'add', 'y@example.test', '--role', 'auditor'], { env: { CI: 'true' } });
    expect(noTty.code).toBe(2);
    expect(noTty.stderr).toMatch(/--password-file/);
  });

  it('lists, disables, enables and resets passwords', async () => {
    const list = await v.cli(['user', 'list', '--json']);
    expect(JSON.parse(list.stdout).map((u: { email: string }) => u.email)).toEqual(['owner@example.test', 'tech@example.test']);
    expect((await v.cli(['user', 'disable', 'tech@example.test'])).code).toBe(0);
    await expect(v.container.identity.login({ email: 'tech@example.test', password: 'tech password 1234', ip: null, userAgent: null })).rejects.toThrow();
    expect((await v.cli(['user', 'enable', 'tech@example.test'])).code).toBe(0);
    expect((await v.cli(['user', 'reset-password', 'tech@example.test', '--password-file', pwFile('n.txt', 'a brand new password')])).code).toBe(0);
    const r = await v.container.identity.login({ email: 'tech@example.test', password: 'a brand new password', ip: null, userAgent: null });
    expect(r.user.role).toBe('technician');
    expect((await v.cli(['user', 'disable', 'nobody@example.test'])).code).toBe(2);
    const human = await v.cli(['user', 'list']);
    expect(human.stdout).toMatch(/tech@example\.test\s+technician\s+1\s+active/);
  });
});

describe('keywarden init --admin-email', () => {
  it('creates the first owner once; on a vault with users it refuses, adds nobody and names `user add`', async () => {
    const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'keywarden-admin-'));
    const tdb = await createTestDatabase();
    const env: NodeJS.ProcessEnv = ENGINE === 'postgres' ? { KEYWARDEN_DATABASE_URL: tdb.url } : {};
    try {
      fs.writeFileSync(path.join(cwd, 'pw'), 'first owner password\n');
      // `npm start` first (init without an owner), then the README's "A first session": still the first owner.
      expect((await cliRun(['init'], env, cwd)).code).toBe(0);
      const r = await cliRun(['init', '--admin-email', 'boss@example.test', '--admin-password-file', 'pw'], env, cwd);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/created the owner boss@example.test/);
      const again = await cliRun(['init', '--admin-email', 'boss@example.test', '--admin-password-file', 'pw'], env, cwd);
      expect(again.code).toBe(2);
      expect(again.stderr).toMatch(/already has users, boss@example.test among them, so init adds no owner/);
      const other = await cliRun(['init', '--admin-email', 'second@example.test', '--admin-password-file', 'pw'], env, cwd);
      expect(other.code).toBe(2);
      expect(other.stderr).toContain('npx keywarden user add second@example.test --role owner');
      // The hint is a real command: it adds the second owner.
      const added = await cliRun(['user', 'add', 'second@example.test', '--role', 'owner', '--password-file', 'pw'], env, cwd);
      expect(added.code).toBe(0);
      const list = await cliRun(['user', 'list', '--json'], env, cwd);
      expect((JSON.parse(list.stdout) as { email: string; role: string }[]).map((u) => `${u.email} ${u.role}`).sort()).toEqual([
        'boss@example.test owner',
        'second@example.test owner',
      ]);
    } finally {
      fs.rmSync(cwd, { recursive: true, force: true });
      await tdb.drop();
    }
  });
});
