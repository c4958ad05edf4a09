import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENGINE } from './helpers/engine.js';
import { owner as cliOwner } from './helpers/vault.js';
import { bytes, csvOf, randomKeyId, randomRecoveryPassword } from './helpers/keys.js';
import { createLifecycleApp, type LifecycleApp } from './helpers/lifecycle.js';
import type { Session } from './helpers/app.js';
import { openKeyring } from '../src/crypto/keyring.js';
import { createVaultRepo } from '../src/modules/vault/vault.repo.js';
import { newId } from '../src/lib/ids.js';
import { SimMachine, TestAgent, injectTransport } from './agent/test-agent.js';

const API = '/api/v1';
type Key = { keyId: string; password: string; device: string };

async function seed(t: LifecycleApp, client: string, prefix: string, n: number): Promise<Key[]> {
  const keys = Array.from({ length: n }, (_, i) => ({ keyId: randomKeyId(), password: randomRecoveryPassword(), device: `FAKE-${prefix}-${i % 4}` }));
  await t.c.imports.importFile(cliOwner, client, {
    fileName: `${prefix}.csv`,
    bytes: bytes(
      csvOf(keys.map((k, i) => ({ device: k.device, keyId: k.keyId, password: k.password, drive: i < 4 ? 'C:' : `${String.fromCharCode(68 + i)}:` }))),
    ),
  });
  return keys;
}

/** A keyring opened from scratch (no cache), as a restarted server or a restored backup would. */
const freshKeyring = (t: LifecycleApp) => openKeyring(createVaultRepo(), t.c.database.db, Buffer.from(t.v.masterKey, 'base64'), newId);

describe(`lifecycle: crypto-shred a client (${ENGINE})`, () => {
  let t: LifecycleApp;
  let owner: Session;
  let shredId: string;
  let keepId: string;
  let shredKeys: Key[];
  let keepKeys: Key[];

  beforeAll(async () => {
    t = await createLifecycleApp();
    shredId = (await t.c.clients.create(cliOwner, { name: 'Northwind Traders' })).id;
    keepId = (await t.c.clients.create(cliOwner, { name: 'Tailspin Toys' })).id;
    shredKeys = await seed(t, 'Northwind Traders', 'NW', 12);
    keepKeys = await seed(t, 'Tailspin Toys', 'TT', 8);
    owner = await t.signIn((await t.addUser('owner', 'all')).email);
  });
  afterAll(() => t?.close());

  it('before: every key of both clients decrypts', async () => {
    const kr = await freshKeyring(t);
    for (const [clientId, n] of [
      [shredId, 12],
      [keepId, 8],
    ] as const) {
      const cipher = await kr.clientCipher(t.c.database.db, clientId);
      const rows = await t.c.database.db.selectFrom('recovery_keys').selectAll().where('client_id', '=', clientId).execute();
      expect(rows).toHaveLength(n);
      for (const r of rows)
        expect(cipher.openRecoveryPassword(r.id, { ciphertext: r.ciphertext, dataKeyVersion: r.data_key_version })).toMatch(/^\d{6}(-\d{6}){7}$/);
    }
  });

  it('offboarding destroys the data key: every ciphertext of that client is undecryptable at once, every other client intact', async () => {
    // The same process has the data key cached from the reveal: the shred must beat the cache.
    expect(
      (await t.app.inject({ method: 'POST', url: `${API}/keys/${shredKeys[0]!.keyId}/reveal`, headers: owner.headers, payload: { reason: 'lost-pin' } }))
        .statusCode,
    ).toBe(200);
    const tok = await t.app.inject({
      method: 'POST',
      url: `${API}/agent/enrollment-tokens`,
      headers: owner.headers,
      payload: { clientId: shredId, expiresInDays: 7 },
    });
    expect(tok.statusCode).toBe(201);

    const r = await t.app.inject({
      method: 'POST',
      url: `${API}/clients/${shredId}/offboard`,
      headers: owner.headers,
      payload: { confirm: 'Northwind Traders', reason: 'contract ended' },
    });
    expect(r.statusCode).toBe(200);
    expect(r.json()).toEqual({ status: 'executed', action: 'offboard-client', result: { dataKeysDestroyed: 1, keysMarkedDestroyed: 12 } });

    const db = t.c.database.db;
    expect(await db.selectFrom('data_keys').select('id').where('scope', '=', shredId).execute()).toEqual([]);
    // The ciphertexts are still there, and nothing can open them: not a fresh keyring, not this process.
    const rows = await db.selectFrom('recovery_keys').selectAll().where('client_id', '=', shredId).execute();
    expect(rows.every((k) => k.ciphertext.length > 20 && k.state === 'destroyed')).toBe(true);
    const kr = await freshKeyring(t);
    await expect(kr.clientCipher(db, shredId)).rejects.toThrow(/No data key found for client .*offboarded/);
    // Another client's key cannot stand in for it either (each ciphertext is bound to its client).
    const other = await kr.clientCipher(db, keepId);
    for (const k of rows)
      expect(() => other.openRecoveryPassword(k.id, { ciphertext: k.ciphertext, dataKeyVersion: k.data_key_version })).toThrow(/does not decrypt/);
    for (const k of shredKeys) {
      const rev = await t.app.inject({ method: 'POST', url: `${API}/keys/${k.keyId}/reveal`, headers: owner.headers, payload: { reason: 'lost-pin' } });
      expect(rev.statusCode).toBe(409);
      expect(rev.json().message).toMatch(/destroyed on \d{4}-\d{2}-\d{2} when its client was offboarded \(crypto-shred\)/);
    }
    // The other client: every key reveals, with its own password.
    for (const k of keepKeys) {
      const rev = await t.app.inject({ method: 'POST', url: `${API}/keys/${k.keyId}/reveal`, headers: owner.headers, payload: { reason: 'lost-pin' } });
      expect(rev.statusCode).toBe(200);
      expect(rev.json().key.recoveryPassword).toBe(k.password);
    }
  });

  it('the client stays with its metadata and audit trail; its agents, tokens and imports stop', async () => {
    const status = (await t.app.inject({ method: 'GET', url: `${API}/clients/${shredId}/lifecycle`, headers: owner.headers })).json();
    expect(status).toMatchObject({ client: { name: 'Northwind Traders' }, offboardedAt: t.clock.now() });
    const list = (await t.app.inject({ method: 'GET', url: `${API}/keys?clientId=${shredId}`, headers: owner.headers })).json();
    expect(list.map((k: { keyId: string }) => k.keyId).sort()).toEqual(shredKeys.map((k) => k.keyId).sort());
    const ev = await t.c.audit.list(cliOwner, { action: 'client.offboard' });
    expect(ev[0]).toMatchObject({ clientId: shredId, details: { client: 'Northwind Traders', reason: 'contract ended', dataKeysDestroyed: 1 } });
    expect(await t.c.audit.verify(cliOwner)).toMatchObject({ intact: true });
    const toks = await t.c.database.db.selectFrom('enrollment_tokens').select('revoked_at').where('client_id', '=', shredId).execute();
    expect(toks.every((x) => x.revoked_at)).toBe(true);
    await expect(
      t.c.imports.importFile(cliOwner, 'Northwind Traders', {
        fileName: 'late.csv',
        bytes: bytes(csvOf([{ device: 'FAKE-NW-9', keyId: randomKeyId(), password: randomRecoveryPassword() }])),
      }),
    ).rejects.toMatchObject({ kind: 'conflict', message: expect.stringMatching(/offboarded on \d{4}-\d{2}-\d{2}: its data key was destroyed/) });
    // Offboarding twice is refused.
    expect(
      (await t.app.inject({ method: 'POST', url: `${API}/clients/${shredId}/offboard`, headers: owner.headers, payload: { confirm: 'Northwind Traders' } }))
        .statusCode,
    ).toBe(409);
  });
});

describe(`lifecycle: key history (${ENGINE})`, () => {
  let t: LifecycleApp;
  let owner: Session;
  let ownerEmail: string;
  let clientId: string;
  let agent: TestAgent;
  let machine: SimMachine;

  beforeAll(async () => {
    t = await createLifecycleApp(new Date().toISOString());
    clientId = (await t.c.clients.create(cliOwner, { name: 'Litware' })).id;
    ownerEmail = (await t.addUser('owner', 'all')).email;
    owner = await t.signIn(ownerEmail);
    const tok = await t.app.inject({ method: 'POST', url: `${API}/agent/enrollment-tokens`, headers: owner.headers, payload: { clientId, expiresInDays: 7 } });
    machine = new SimMachine('FAKE-HIST-01');
    agent = new TestAgent(injectTransport(t.app), machine);
    expect((await agent.enroll(tok.json().token)).status).toBe(200);
    expect((await agent.run()).exitCode).toBe(0);
  });
  afterAll(() => t?.close());

  it('a timeline per volume: created per source, seen, disclosed (when, to whom, why), rotated, destroyed; never a password', async () => {
    const first = machine.recoveryPasswords('C:')[0]!;
    const firstKeyId = first.id.replace(/[{}]/g, '').toLowerCase();
    // The same key also arrives from an import file: a second source.
    await t.c.imports.importFile(cliOwner, 'Litware', {
      fileName: 'portal-export.csv',
      bytes: bytes(csvOf([{ device: 'FAKE-HIST-01', keyId: firstKeyId, password: first.password! }])),
    });
    const rev = await t.app.inject({
      method: 'POST',
      url: `${API}/keys/${firstKeyId}/reveal`,
      headers: owner.headers,
      payload: { reason: 'lost-pin', ticket: 'T-42' },
    });
    expect(rev.statusCode).toBe(200);
    // The disclosure queued a rotation; the agent carries it out over its next runs.
    for (let i = 0; i < 3; i++) await agent.run();
    const second = machine.recoveryPasswords('C:').find((p) => p.id !== first.id)!;
    expect(second).toBeDefined();

    const res = await t.app.inject({ method: 'GET', url: `${API}/devices/${agent.deviceId}/key-history`, headers: owner.headers });
    expect(res.statusCode).toBe(200);
    for (const p of [first.password!, second.password!]) expect(res.body.includes(p)).toBe(false);
    const h = res.json();
    expect(h.device).toMatchObject({ name: 'FAKE-HIST-01', client: { name: 'Litware' }, retiredAt: null });
    const c = h.volumes.find((v: { volume: { mountPoint: string } | null }) => v.volume?.mountPoint === 'C:');
    expect(c.keys.map((k: { keyId: string; state: string }) => `${k.keyId} ${k.state}`)).toEqual([
      `${firstKeyId} rotated`,
      `${second.id.replace(/[{}]/g, '').toLowerCase()} active`,
    ]);
    const old = c.keys[0];
    const types = old.events.map((e: { type: string }) => e.type);
    expect(types).toEqual(expect.arrayContaining(['created', 'first_seen', 'last_seen', 'disclosed', 'rotated']));
    expect(
      old.events
        .filter((e: { type: string }) => e.type === 'created')
        .map((e: { source: { type: string; ref: string } }) => e.source.type)
        .sort(),
    ).toEqual(['agent', 'import']);
    expect(old.events.find((e: { type: string }) => e.type === 'disclosed')).toMatchObject({ by: ownerEmail, reason: 'lost-pin', ticket: 'T-42' });
    expect(types.indexOf('disclosed')).toBeLessThan(types.indexOf('rotated'));
    expect(old.sources.map((s: { type: string }) => s.type).sort()).toEqual(['agent', 'import']);

    // Destroyed: retire, then an owner destroys the keys now.
    await t.c.lifecycle.retireDevice(cliOwner, agent.deviceId!, { reason: 'stolen' });
    await t.c.lifecycle.destroyDeviceKeys(cliOwner, agent.deviceId!, { confirm: 'Litware' });
    const after = (await t.app.inject({ method: 'GET', url: `${API}/devices/${agent.deviceId}/key-history`, headers: owner.headers })).json();
    const keys = after.volumes.find((v: { volume: { mountPoint: string } | null }) => v.volume?.mountPoint === 'C:').keys;
    for (const k of keys) {
      expect(k.state).toBe('destroyed');
      expect(k.events.at(-1)).toMatchObject({ type: 'destroyed', by: cliOwner.name });
    }
  });

  it('the CLI prints the same history (and --json); roles that may not list keys are refused', async () => {
    const json = await t.v.cli(['keys', 'history', '--device', 'FAKE-HIST-01', '--client', 'Litware', '--json']);
    expect(json.code).toBe(0);
    const h = JSON.parse(json.stdout);
    expect(h.device.name).toBe('FAKE-HIST-01');
    const text = await t.v.cli(['keys', 'history', '--device', 'fake-hist-01']);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/Key history of FAKE-HIST-01 \(Litware\), retired/);
    expect(text.stdout).toMatch(/disclosed {2}\(by .*reason lost-pin, ticket T-42\)/);
    expect(text.stdout).toMatch(/destroyed/);
    const helpdesk = await t.signIn((await t.addUser('helpdesk', 'all')).email);
    expect((await t.app.inject({ method: 'GET', url: `${API}/devices/${agent.deviceId}/key-history`, headers: helpdesk.headers })).statusCode).toBe(403);
    const other = (await t.c.clients.create(cliOwner, { name: 'Other Co' })).id;
    const admin = await t.signIn((await t.addUser('admin', [other])).email);
    expect((await t.app.inject({ method: 'GET', url: `${API}/devices/${agent.deviceId}/key-history`, headers: admin.headers })).statusCode).toBe(404);
  });
});
