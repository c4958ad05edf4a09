import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type Session, type TestApp } from './helpers/app.js';
import { ENGINE } from './helpers/engine.js';
import { bytes, csvOf, randomKeyId, randomRecoveryPassword } from './helpers/keys.js';
import { auditEvents, multipart } from './helpers/http.js';
import { owner as cliOwner } from './helpers/vault.js';
import { openKeyring } from '../src/crypto/keyring.js';
import { createVaultRepo } from '../src/modules/vault/vault.repo.js';
import { createKeysRepo } from '../src/modules/keys/keys.repo.js';
import { createDevicesRepo, newDeviceRow, type NewDevice } from '../src/modules/devices/devices.repo.js';
import { formatKeyIdForDisplay } from '../src/domain/key-id.js';
import { newId } from '../src/lib/ids.js';

/**
 * Limits and identities hold when requests race, on both engines: parallel reveals by one person
 * never exceed the hourly limit, parallel imports of one file store each device and key once, and
 * doctor finds duplicates planted behind the product's back. On PostgreSQL the requests really run
 * side by side (a connection pool); on SQLite transactions are serialised by the engine.
 */

const API = '/api/v1';
const LIMIT = 3;

type Key = { keyId: string; password: string; device: string; drive: string };
const newKey = (device: string, drive = 'C:'): Key => ({ keyId: randomKeyId(), password: randomRecoveryPassword(), device, drive });

function reveal(t: TestApp, s: Session, query: string) {
  return t.app.inject({ method: 'POST', url: `${API}/keys/${encodeURIComponent(query)}/reveal`, headers: s.headers, payload: { reason: 'lost-pin' } });
}

describe(`exact under concurrency on ${ENGINE}`, () => {
  let t: TestApp;
  let ownerS: Session;

  const createClient = async (name: string): Promise<string> => {
    const r = await t.app.inject({ method: 'POST', url: `${API}/clients`, headers: ownerS.headers, payload: { name } });
    expect(r.statusCode, r.body).toBe(201);
    return r.json().id as string;
  };
  const importKeys = async (client: string, keys: Key[]) => {
    const r = await t.container.imports.importFile(cliOwner, client, {
      fileName: `${client}.csv`,
      bytes: bytes(csvOf(keys.map((k) => ({ device: k.device, keyId: k.keyId, password: k.password, drive: k.drive })))),
    });
    expect(r).toMatchObject({ imported: keys.length, rejected: [] });
  };
  const doctor = async () => {
    const r = await t.cli(['doctor', '--json']);
    return { code: r.code, report: JSON.parse(r.stdout) as { ok: boolean; checks: { name: string; ok: boolean; detail: string }[] } };
  };
  const check = (report: { checks: { name: string; ok: boolean; detail: string }[] }, name: string) => report.checks.find((c) => c.name === name)!;

  beforeAll(async () => {
    t = await createTestApp({ KEYWARDEN_REVEAL_LIMIT_PER_HOUR: String(LIMIT) });
    ownerS = await t.signIn((await t.addUser('owner', 'all', 'owner@example.test')).email);
  });
  afterAll(async () => {
    await t?.close();
  });

  it(`12 parallel reveals of 12 keys by one technician with a limit of ${LIMIT} an hour: exactly ${LIMIT} revealed, 9 refused, every one audited`, async () => {
    const clientId = await createClient('Race Dental');
    const keys = Array.from({ length: 12 }, (_, i) => newKey(`RACE-PC-${i}`));
    await importKeys('Race Dental', keys);
    const tech = await t.addUser('technician', 'all', 'racing.tech@example.test');
    const s = await t.signIn(tech.email);

    const answers = await Promise.all(keys.map((k) => reveal(t, s, k.keyId)));

    const revealed = answers.flatMap((r, i) => (r.statusCode === 200 ? [i] : []));
    expect(revealed).toHaveLength(LIMIT);
    expect(answers.filter((r) => r.statusCode === 429)).toHaveLength(keys.length - LIMIT);
    for (const i of revealed) expect(answers[i]!.json().key.recoveryPassword).toBe(keys[i]!.password);
    for (const r of answers.filter((x) => x.statusCode === 429)) {
      expect(r.json().error).toBe('rate_limited');
      for (const k of keys) expect(r.body).not.toContain(k.password);
    }

    // Every attempt is in the audit log: the reveals and each refusal, with what was asked for.
    const events = await auditEvents(t, { action: 'key.reveal', actorId: tech.id });
    expect(events.filter((e) => e.outcome === 'success')).toHaveLength(LIMIT);
    const refused = events.filter((e) => e.outcome === 'rate_limited');
    expect(refused).toHaveLength(keys.length - LIMIT);
    expect(new Set(refused.map((e) => e.details?.query))).toEqual(new Set(keys.filter((_, i) => !revealed.includes(i)).map((k) => k.keyId)));
    expect(events).toHaveLength(keys.length);

    // Only the revealed keys are disclosed.
    const listed = (await t.app.inject({ method: 'GET', url: `${API}/keys?clientId=${clientId}`, headers: ownerS.headers })).json() as {
      keyId: string;
      state: string;
    }[];
    const disclosed = new Set(revealed.map((i) => keys[i]!.keyId));
    for (const k of listed) expect(k.state).toBe(disclosed.has(k.keyId) ? 'disclosed' : 'active');

    expect(listed).toHaveLength(keys.length);
    // And a later attempt, alone, is still refused.
    expect((await reveal(t, s, keys.find((_, i) => !revealed.includes(i))!.keyId)).statusCode).toBe(429);
  });

  it('8 parallel imports of one file with 3 keys store 2 devices and 3 keys once; the other imports report duplicates; helpdesk reveals each key', async () => {
    const clientId = await createClient('Race Logistics');
    const keys = [newKey('RACE-DEV', 'C:'), newKey('RACE-DEV', 'D:'), newKey('RACE-DEV-2', 'C:')];
    const csv = csvOf(keys.map((k) => ({ device: k.device, keyId: k.keyId, password: k.password, drive: k.drive })));

    const answers = await Promise.all(
      Array.from({ length: 8 }, async () => {
        const body = await multipart({ client: clientId }, [{ name: 'race.csv', content: csv }]);
        return t.app.inject({ method: 'POST', url: `${API}/imports`, headers: { ...ownerS.headers, ...body.headers }, payload: body.payload });
      }),
    );
    for (const r of answers) expect(r.statusCode, r.body).toBe(200);
    const counts = answers.map((r) => r.json() as { imported: number; duplicates: number; conflicts: number });
    expect(counts.filter((c) => c.imported === 3 && c.duplicates === 0)).toHaveLength(1);
    expect(counts.filter((c) => c.imported === 0 && c.duplicates === 3)).toHaveLength(7);
    expect(counts.every((c) => c.conflicts === 0)).toBe(true);

    const stored = (await t.app.inject({ method: 'GET', url: `${API}/keys?clientId=${clientId}`, headers: ownerS.headers })).json() as {
      keyId: string;
      state: string;
      device: { name: string } | null;
    }[];
    expect(stored.map((k) => k.keyId).sort()).toEqual(keys.map((k) => k.keyId).sort());
    expect(stored.every((k) => k.state === 'active')).toBe(true);
    const devices = (await t.app.inject({ method: 'GET', url: `${API}/devices?clientId=${clientId}`, headers: ownerS.headers })).json() as { name: string }[];
    expect(devices.map((d) => d.name).sort()).toEqual(['RACE-DEV', 'RACE-DEV-2']);

    // The helpdesk call works for every key: one record per key ID, never "ambiguous".
    const helpdesk = await t.signIn((await t.addUser('helpdesk', 'all', 'race.helpdesk@example.test')).email);
    for (const k of keys) {
      const r = await reveal(t, helpdesk, k.keyId);
      expect(r.statusCode, r.body).toBe(200);
      expect(r.json()).toMatchObject({ status: 'revealed', key: { keyId: k.keyId, recoveryPassword: k.password } });
    }

    const { code, report } = await doctor();
    expect(check(report, 'duplicate keys').ok).toBe(true);
    expect(check(report, 'duplicate devices').ok).toBe(true);
    expect(code, JSON.stringify(report.checks)).toBe(0);
  });

  it('doctor reports duplicate active keys and duplicate devices planted through the repos, and exits 1', async () => {
    const clientId = await createClient('Planted Co');
    const twice = newKey('PLANTED-PC');
    const conflicted = newKey('PLANTED-PC', 'D:');
    await importKeys('Planted Co', [twice, conflicted]);

    const db = t.container.database.db;
    const keysRepo = createKeysRepo();
    const devicesRepo = createDevicesRepo();
    const keyring = await openKeyring(createVaultRepo(), db, Buffer.from(t.masterKey, 'base64'), newId);
    const cipher = await keyring.clientCipher(db, clientId);
    const original = await db
      .selectFrom('recovery_keys')
      .selectAll()
      .where('client_id', '=', clientId)
      .where('key_id', '=', twice.keyId)
      .executeTakeFirstOrThrow();
    const other = await db
      .selectFrom('recovery_keys')
      .selectAll()
      .where('client_id', '=', clientId)
      .where('key_id', '=', conflicted.keyId)
      .executeTakeFirstOrThrow();
    const copy = (of: typeof original, password: string, state: string) => {
      const id = newId();
      const sealed = cipher.sealRecoveryPassword(id, password);
      return { ...of, id, state, ciphertext: sealed.ciphertext, data_key_version: sealed.dataKeyVersion };
    };
    const now = new Date().toISOString();
    const device = (name: string, extra: Partial<NewDevice> = {}) => newDeviceRow({ id: newId(), clientId, name, now, ...extra });
    const retired = { ...device('PLANTED-PC'), retired_at: now };
    await db.transaction().execute(async (tx) => {
      // A second active record of one key, and (not a duplicate) a conflicting record of another.
      await keysRepo.insertKeys(tx, [copy(original, twice.password, 'active'), copy(other, randomRecoveryPassword(), 'conflict')]);
      await devicesRepo.insertMany(tx, [
        // The same name (and no serial) as the imported device.
        device('PLANTED-PC'),
        // The same serial under one name, the same Entra device and the same AD object under two names.
        device('PLANTED-SN', { serial: 'SN-1' }),
        device('PLANTED-SN', { serial: 'SN-1' }),
        device('PLANTED-ENTRA-A', { entra_device_id: '0a0a0a0a-0000-4000-8000-00000000000e' }),
        device('PLANTED-ENTRA-B', { entra_device_id: '0a0a0a0a-0000-4000-8000-00000000000e' }),
        device('PLANTED-AD-A', { ad_object_guid: '0b0b0b0b-0000-4000-8000-00000000000a' }),
        device('PLANTED-AD-B', { ad_object_guid: '0b0b0b0b-0000-4000-8000-00000000000a' }),
        // Not duplicates: other serials under one name, and a retired device.
        device('PLANTED-OTHER', { serial: 'SN-2' }),
        device('PLANTED-OTHER', { serial: 'SN-3' }),
        retired,
      ]);
    });

    const { code, report } = await doctor();
    expect(code).toBe(1);
    expect(report.ok).toBe(false);
    const keysCheck = check(report, 'duplicate keys');
    expect(keysCheck.ok).toBe(false);
    expect(keysCheck.detail).toContain(`1 key ID(s) have more than one active record`);
    expect(keysCheck.detail).toContain(`Planted Co key ${formatKeyIdForDisplay(twice.keyId)} (2 records)`);
    expect(keysCheck.detail).not.toContain(formatKeyIdForDisplay(conflicted.keyId));
    const devicesCheck = check(report, 'duplicate devices');
    expect(devicesCheck.ok).toBe(false);
    expect(devicesCheck.detail).toContain('4 device(s) are stored more than once');
    expect(devicesCheck.detail).toContain('Planted Co PLANTED-PC (2 records with the same name and serial)');
    expect(devicesCheck.detail).toContain('Planted Co PLANTED-SN (2 records with the same name and serial)');
    expect(devicesCheck.detail).toContain('Planted Co PLANTED-ENTRA-A (2 records with the same Entra device ID)');
    expect(devicesCheck.detail).toContain('Planted Co PLANTED-AD-A (2 records with the same AD object GUID)');
    expect(devicesCheck.detail).not.toContain('PLANTED-OTHER');
    // Everything else about the vault is intact: the planted key was sealed properly.
    expect(report.checks.filter((c) => !c.ok).map((c) => c.name)).toEqual(['duplicate keys', 'duplicate devices']);

    // The human output names the problems too.
    const human = await t.cli(['doctor']);
    expect(human.code).toBe(1);
    expect(human.stderr).toMatch(/duplicate keys: 1 key ID\(s\) have more than one active record/);
    expect(human.stderr).toMatch(/duplicate devices: 4 device\(s\)/);
  });
});
