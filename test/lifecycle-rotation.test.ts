import fs from 'node:fs';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { loadConfig, type Config } from '../src/config.js';
import { openDatabase } from '../src/db/database.js';
import { buildContainer, type Container } from '../src/container.js';
import { buildApp } from '../src/app.js';
import { initVault } from '../src/modules/vault/vault.service.js';
import { systemClock } from '../src/lib/clock.js';
import { newId } from '../src/lib/ids.js';
import { openKeyring } from '../src/crypto/keyring.js';
import { createLocalKekProvider } from '../src/crypto/kek-provider.js';
import { loadMasterKeys } from '../src/crypto/master-key.js';
import { createVaultRepo } from '../src/modules/vault/vault.repo.js';
import { createTestDatabase, ENGINE, type TestDatabase } from './helpers/engine.js';
import { allowPasswordOnly, createTestVault, owner as cliOwner, randomMasterKey, cliRun } from './helpers/vault.js';
import { bytes, csvOf, randomKeyId, randomRecoveryPassword } from './helpers/keys.js';
import { SimMachine, TestAgent, type Transport } from './agent/test-agent.js';

const REPO = path.resolve(import.meta.dirname, '..');
const run = promisify(execFile);

/**
 * Master-key rotation while a real server (app.listen on 127.0.0.1:0) answers reveals, agent
 * check-ins and uploads, and client creations from several concurrent loops over real HTTP. The
 * rotation runs as its own `keywarden` process, as an operator would run it next to the server.
 */
describe(`master-key rotation under load (${ENGINE})`, () => {
  let tdb: TestDatabase;
  let config: Config;
  let env: NodeJS.ProcessEnv;
  let c: Container;
  let app: FastifyInstance;
  let base: string;
  let bearer: Record<string, string>;
  const seeded: { clientId: string; keyId: string; password: string }[] = [];
  const agents: TestAgent[] = [];

  beforeAll(async () => {
    tdb = await createTestDatabase();
    // No KEYWARDEN_MASTER_KEY: init generates the key ring file in the data folder.
    env = { KEYWARDEN_DATA_DIR: path.join(tdb.dir, 'data'), KEYWARDEN_DATABASE_URL: tdb.url, KEYWARDEN_REVEAL_LIMIT_PER_HOUR: '10000' };
    config = loadConfig(env);
    const database = openDatabase(config.database);
    await initVault(config, database, cliOwner, systemClock);
    // Password-only people, as in createTestVault (see allowPasswordOnly).
    await allowPasswordOnly(database);
    await database.close();
    c = await buildContainer(config);
    app = await buildApp(c, { logger: false });
    await app.listen({ host: '127.0.0.1', port: 0 });
    base = `http://127.0.0.1:${(app.server!.address() as AddressInfo).port}`;

    for (const name of ['Alpine Ski House', 'Coho Winery', 'Wide World Importers']) {
      const id = (await c.clients.create(cliOwner, { name })).id;
      const keys = Array.from({ length: 15 }, (_, i) => ({
        device: `FAKE-${name.slice(0, 4).toUpperCase()}-${i}`,
        keyId: randomKeyId(),
        password: randomRecoveryPassword(),
      }));
      await c.imports.importFile(cliOwner, name, { fileName: 'seed.csv', bytes: bytes(csvOf(keys)) });
      seeded.push(...keys.map((k) => ({ clientId: id, keyId: k.keyId, password: k.password })));
    }
    const u = await c.identity.createUser(cliOwner, {
      email: 'rotation-owner@example.test',
      password: 'correct horse battery staple',
      role: 'owner',
      clients: 'all',
    });
    const tok = await c.identity.createToken(
      {
        type: 'user',
        id: u.id,
        name: u.email,
        role: 'owner',
        clients: 'all',
        session: { id: 'rotation', mfaAt: null, mfaEnrolled: false, mfaEnrolmentRequired: false },
      },
      { name: 'load', role: 'owner', clients: 'all' },
    );
    bearer = { authorization: `Bearer ${tok.token}` };
  });
  afterAll(async () => {
    await app?.close();
    await c?.close();
    await tdb?.drop();
  });

  const results = { ok: 0, failed: [] as string[] };
  /** fetch over the real socket; every answer is counted, every failure kept with its text. */
  async function call(
    method: string,
    url: string,
    body: unknown,
    headers: Record<string, string>,
    want: number[] = [200],
  ): Promise<{ status: number; json: any }> {
    let status = 0;
    let text: string;
    try {
      const r = await fetch(base + url, { method, headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
      status = r.status;
      text = await r.text();
    } catch (e) {
      text = String(e);
    }
    if (want.includes(status)) results.ok++;
    else results.failed.push(`${method} ${url} -> ${status} ${text.slice(0, 200)}`);
    let json: any;
    try {
      json = JSON.parse(text);
    } catch {
      json = null;
    }
    return { status, json };
  }
  const fetchTransport: Transport = ({ method, url, body, headers }) => call(method, url, body, headers ?? {}, [200]);

  it('rotates while reveals, check-ins and client creations run: zero failed requests; afterwards every key opens under the new version only', async () => {
    for (const [i, s] of [0, 15, 30].entries()) {
      const tok = await call('POST', '/api/v1/agent/enrollment-tokens', { clientId: seeded[s]!.clientId, expiresInDays: 1 }, bearer, [201]);
      const agent = new TestAgent(fetchTransport, new SimMachine(`FAKE-ROT-AGENT-${i}`));
      expect((await agent.enroll(tok.json.token)).status).toBe(200);
      agents.push(agent);
    }
    const ringFile = (config.masterKey as { path: string }).path;
    const oldKeys = loadMasterKeys(config.masterKey);
    expect(oldKeys).toHaveLength(1);
    // What an old database backup holds: the wrapped data keys and the registered master key.
    const backup = {
      masters: await c.database.db.selectFrom('master_keys').select(['version', 'key_id', 'verifier']).execute(),
      dataKeys: await c.database.db.selectFrom('data_keys').selectAll().execute(),
    };

    let stop = false;
    let rotating = false;
    let duringRotation = 0;
    const counted = <T>(p: Promise<T>) => p.then((v) => ((duringRotation += rotating ? 1 : 0), v));
    const revealLoop = async (n: number) => {
      for (let i = n; !stop; i += 7) {
        const k = seeded[i % seeded.length]!;
        const r = await counted(call('POST', `/api/v1/keys/${k.keyId}/reveal`, { reason: 'lost-pin' }, bearer));
        if (r.status === 200 && r.json.key.recoveryPassword !== k.password) results.failed.push(`reveal ${k.keyId}: wrong password`);
      }
    };
    const agentLoop = async (agent: TestAgent) => {
      for (let i = 0; !stop; i++) {
        // A new recovery password each time: the check-in asks for it and the upload seals it.
        // The oldest goes once there are a few, as the agent's payload allows at most 32 protectors
        // per volume and a quiet machine runs many iterations.
        const present = agent.machine.recoveryPasswords('C:');
        if (present.length >= 6) agent.machine.removeProtector('C:', present[0]!.id);
        agent.machine.addRecoveryPassword('C:');
        const r = await counted(agent.run());
        if (r.exitCode !== 0) results.failed.push(`agent run -> ${r.finalLine}`);
      }
    };
    const clientLoop = async () => {
      for (let i = 0; !stop; i++) await counted(call('POST', '/api/v1/clients', { name: `Rotation Client ${newId().slice(0, 8)}` }, bearer, [201]));
    };
    const loops = [revealLoop(0), revealLoop(3), revealLoop(5), revealLoop(11), ...agents.map(agentLoop), clientLoop()];

    // Let the load run, then rotate from a separate keywarden process.
    while (results.ok < 60) await new Promise((r) => setTimeout(r, 20));
    rotating = true;
    const out = await run(process.execPath, ['--import', 'tsx', path.join(REPO, 'src', 'main.ts'), 'keys', 'rotate-master', '--json'], {
      cwd: REPO,
      env: { ...process.env, ...env },
    });
    rotating = false;
    const afterRotation = results.ok;
    while (results.ok < afterRotation + 60) await new Promise((r) => setTimeout(r, 20));
    stop = true;
    await Promise.all(loops);

    expect(results.failed).toEqual([]);
    expect(duringRotation).toBeGreaterThan(0);
    // The figures for the report: how much load the rotation ran under.
    console.info(`rotation under load (${ENGINE}): ${results.ok} requests answered, ${duringRotation} while the rotate-master process ran, 0 failed`);
    const r = JSON.parse(out.stdout);
    expect(r).toMatchObject({ fromVersions: [1], toVersion: 2, newKeySource: 'generated', removedOldFromFile: true });
    expect(out.stderr).toMatch(/back up the new master key now/);

    const db = c.database.db;
    expect(
      (await db.selectFrom('master_keys').select(['version', 'retired_at']).orderBy('version').execute()).map((m) => [m.version, m.retired_at !== null]),
    ).toEqual([
      [1, true],
      [2, false],
    ]);
    const dataKeys = await db.selectFrom('data_keys').selectAll().execute();
    expect(dataKeys.length).toBeGreaterThan(backup.dataKeys.length); // clients were created during the rotation
    expect(new Set(dataKeys.map((d) => d.kek_version))).toEqual(new Set([2]));
    expect(r.rewrapped).toBeGreaterThanOrEqual(backup.dataKeys.length);
    // Only the new key is left in the ring file, mode 0600.
    const ring = loadMasterKeys(config.masterKey);
    expect(ring).toHaveLength(1);
    expect(ring[0]!.equals(oldKeys[0]!)).toBe(false);
    expect(fs.statSync(ringFile).mode & 0o777).toBe(0o600);

    // A fresh process with the new ring opens every data key and every stored recovery password.
    const kr = await openKeyring(createVaultRepo(), db, ring, newId);
    expect(kr.kekVersion).toBe(2);
    const keys = await db.selectFrom('recovery_keys').select(['id', 'client_id', 'ciphertext', 'data_key_version']).execute();
    expect(keys.length).toBeGreaterThan(seeded.length);
    const byClient = new Map<string, Awaited<ReturnType<typeof kr.clientCipher>>>();
    for (const k of keys) {
      if (!byClient.has(k.client_id)) byClient.set(k.client_id, await kr.clientCipher(db, k.client_id));
      expect(byClient.get(k.client_id)!.openRecoveryPassword(k.id, { ciphertext: k.ciphertext, dataKeyVersion: k.data_key_version })).toMatch(
        /^\d{6}(-\d{6}){7}$/,
      );
    }
    for (const client of await db.selectFrom('clients').select('id').execute()) await kr.clientCipher(db, client.id);
    // The old key alone no longer opens this vault...
    await expect(openKeyring(createVaultRepo(), db, oldKeys, newId)).rejects.toThrow(/does not unlock this vault/);
    // ...and an old database backup needs the old key: the new ring cannot open what it holds.
    expect(() => createLocalKekProvider(() => ring, backup.masters)).toThrow(/does not unlock this vault/);
    expect(createLocalKekProvider(() => oldKeys, backup.masters).currentVersion()).toBe(1);

    // Audited, chain intact; the running server keeps answering with no restart.
    expect((await c.audit.list(cliOwner, { action: 'vault.rotate_master' }))[0]).toMatchObject({ details: { fromVersions: [1], toVersion: 2 } });
    expect(await c.audit.verify(cliOwner)).toMatchObject({ intact: true });
    expect(c.keyring.kekVersion).toBe(2);
  });
});

describe(`master-key rotation with KEYWARDEN_MASTER_KEY (${ENGINE})`, () => {
  it('needs the new key next to the old one in the variable; afterwards the new key alone opens everything', async () => {
    const v = await createTestVault();
    try {
      await v.container.clients.create(cliOwner, { name: 'Env Client' });
      const k = { device: 'FAKE-ENV-1', keyId: randomKeyId(), password: randomRecoveryPassword() };
      await v.container.imports.importFile(cliOwner, 'Env Client', { fileName: 'k.csv', bytes: bytes(csvOf([k])) });

      const alone = await v.cli(['keys', 'rotate-master']);
      expect(alone.code).toBe(2);
      expect(alone.stderr).toMatch(/KEYWARDEN_MASTER_KEY holds no new key.*"OLD,NEW"/);

      const fresh = randomMasterKey();
      const both = await v.cli(['keys', 'rotate-master', '--json'], { env: { KEYWARDEN_MASTER_KEY: `${v.masterKey},${fresh}` } });
      expect(both.code).toBe(0);
      expect(JSON.parse(both.stdout)).toMatchObject({ toVersion: 2, newKeySource: 'ring', file: null });

      const withNew = await cliRun(['lookup', k.keyId, '--reason', 'lost-pin'], { ...v.env, KEYWARDEN_MASTER_KEY: fresh }, v.db.dir);
      expect(withNew.code).toBe(0);
      expect(withNew.stdout).toContain(k.password);
      const withOld = await cliRun(['keys', 'list'], { ...v.env, KEYWARDEN_MASTER_KEY: v.masterKey }, v.db.dir);
      expect(withOld.code).not.toBe(0);
      expect(withOld.stderr).toMatch(/does not unlock this vault/);
    } finally {
      await v.close();
    }
  });
});

describe(`master-key rotation, twice, with --keep-old in between (${ENGINE})`, () => {
  it('never reuses a retired key as the next version; each rotation leaves every key readable', async () => {
    const tdb = await createTestDatabase();
    try {
      const env = { KEYWARDEN_DATA_DIR: path.join(tdb.dir, 'data'), KEYWARDEN_DATABASE_URL: tdb.url };
      const config = loadConfig(env);
      const database = openDatabase(config.database);
      await initVault(config, database, cliOwner, systemClock);
      await database.close();
      const k = { device: 'FAKE-TWICE-1', keyId: randomKeyId(), password: randomRecoveryPassword() };
      expect((await cliRun(['client', 'add', 'Twice Co'], env, tdb.dir)).code).toBe(0);
      const csv = path.join(tdb.dir, 'k.csv');
      fs.writeFileSync(csv, csvOf([k]));
      expect((await cliRun(['import', csv, '--client', 'Twice Co'], env, tdb.dir)).code).toBe(0);
      const v1 = loadMasterKeys(config.masterKey);

      const first = await cliRun(['keys', 'rotate-master', '--keep-old', '--json'], env, tdb.dir);
      expect(first.code).toBe(0);
      expect(JSON.parse(first.stdout)).toMatchObject({ fromVersions: [1], toVersion: 2, removedOldFromFile: false });
      const afterFirst = loadMasterKeys(config.masterKey);
      expect(afterFirst).toHaveLength(2);
      expect(afterFirst[0]!.equals(v1[0]!)).toBe(true);

      const second = await cliRun(['keys', 'rotate-master', '--json'], env, tdb.dir);
      expect(second.code).toBe(0);
      expect(JSON.parse(second.stdout)).toMatchObject({ fromVersions: [2], toVersion: 3, newKeySource: 'generated', removedOldFromFile: true });
      const ring = loadMasterKeys(config.masterKey);
      expect(ring).toHaveLength(1);
      expect([v1[0]!, afterFirst[1]!].some((old) => old.equals(ring[0]!))).toBe(false);

      const look = await cliRun(['lookup', k.keyId, '--reason', 'lost-pin'], env, tdb.dir);
      expect(look.code).toBe(0);
      expect(look.stdout).toContain(k.password);
      const audit = await cliRun(['audit', 'verify'], env, tdb.dir);
      expect(audit.code).toBe(0);
    } finally {
      await tdb.drop();
    }
  });
});
