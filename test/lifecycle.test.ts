import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { ENGINE } from './helpers/engine.js';
import { owner as cliOwner } from './helpers/vault.js';
import { bytes, csvOf, randomKeyId, randomRecoveryPassword } from './helpers/keys.js';
import { createLifecycleApp, type LifecycleApp } from './helpers/lifecycle.js';
import type { Session } from './helpers/app.js';
import { RETENTION_TASK_ID } from '../src/modules/lifecycle/lifecycle.service.js';
import { createKeysRepo } from '../src/modules/keys/keys.repo.js';

const API = '/api/v1';
type Key = { keyId: string; password: string };
const newKey = (): Key => ({ keyId: randomKeyId(), password: randomRecoveryPassword() });

/** Imports keys for devices of a client through the real import path; returns the device ids by name. */
async function importKeys(t: LifecycleApp, client: string, rows: { device: string; key: Key; drive?: string }[], fileName = 'keys.csv') {
  await t.c.imports.importFile(cliOwner, client, {
    fileName,
    bytes: bytes(csvOf(rows.map((r) => ({ device: r.device, keyId: r.key.keyId, password: r.key.password, drive: r.drive })))),
  });
  const devices = await t.c.devices.list(cliOwner, { limit: 1000 });
  return Object.fromEntries(devices.map((d) => [d.name, d.id]));
}

const keyRow = (t: LifecycleApp, keyId: string) =>
  t.c.database.db.selectFrom('recovery_keys').selectAll().where('key_id', '=', keyId).executeTakeFirstOrThrow();

describe(`lifecycle: retire, retention, legal hold, reinstate (${ENGINE})`, () => {
  let t: LifecycleApp;
  let owner: Session;
  let ownerUser: { id: string; email: string };
  let admin: Session;
  let clientId: string;
  const keys = { retired: newKey(), retired2: newKey(), held: newKey(), kept: newKey(), live: newKey() };
  let ids: Record<string, string>;

  const reveal = (s: Session, k: Key) =>
    t.app.inject({ method: 'POST', url: `${API}/keys/${k.keyId}/reveal`, headers: s.headers, payload: { reason: 'lost-pin', ticket: 'T-1' } });
  const runRetentionTask = () => t.c.scheduler.runNow(RETENTION_TASK_ID);

  beforeAll(async () => {
    t = await createLifecycleApp();
    clientId = (await t.c.clients.create(cliOwner, { name: 'Contoso Ltd' })).id;
    ids = await importKeys(t, 'Contoso Ltd', [
      { device: 'FAKE-OLD-1', key: keys.retired },
      { device: 'FAKE-OLD-1', key: keys.retired2, drive: 'D:' },
      { device: 'FAKE-HELD-1', key: keys.held },
      { device: 'FAKE-KEPT-1', key: keys.kept },
      { device: 'FAKE-LIVE-1', key: keys.live },
    ]);
    ownerUser = await t.addUser('owner', 'all');
    owner = await t.signIn(ownerUser.email);
    admin = await t.signIn((await t.addUser('admin', [clientId])).email);
  });
  afterAll(() => t?.close());

  it('retires a device: "retired, keys kept until DATE" (365 days by default), audited; keys still reveal', async () => {
    const r = await t.app.inject({
      method: 'POST',
      url: `${API}/devices/${ids['FAKE-OLD-1']}/retire`,
      headers: admin.headers,
      payload: { reason: 'laptop returned' },
    });
    expect(r.statusCode).toBe(200);
    expect(r.json()).toMatchObject({
      retiredAt: '2026-01-05T09:00:00.000Z',
      keysKeptUntil: '2027-01-05T09:00:00.000Z',
      status: 'retired, keys kept until 2027-01-05',
      legalHold: null,
    });
    // Retiring twice is refused, not repeated.
    expect((await t.app.inject({ method: 'POST', url: `${API}/devices/${ids['FAKE-OLD-1']}/retire`, headers: admin.headers, payload: {} })).statusCode).toBe(
      409,
    );
    const events = await t.c.audit.list(cliOwner, { action: 'device.retire' });
    expect(events[0]).toMatchObject({ targetId: ids['FAKE-OLD-1'], details: { reason: 'laptop returned', keysKeptUntil: '2027-01-05T09:00:00.000Z' } });
    const status = (await t.app.inject({ method: 'GET', url: `${API}/clients/${clientId}/lifecycle`, headers: owner.headers })).json();
    expect(status.retentionDays).toBe(365);
    expect(status.retiredDevices.map((d: { name: string; status: string }) => `${d.name}: ${d.status}`)).toEqual([
      'FAKE-OLD-1: retired, keys kept until 2027-01-05',
    ]);
    expect((await reveal(owner, keys.retired)).statusCode).toBe(200);
  });

  it('retention elapses (injected clock) -> the daily task destroys the material; metadata and audit stay', async () => {
    for (const name of ['FAKE-HELD-1', 'FAKE-KEPT-1']) {
      expect((await t.app.inject({ method: 'POST', url: `${API}/devices/${ids[name]}/retire`, headers: owner.headers, payload: {} })).statusCode).toBe(200);
    }
    // The held device: a legal hold set by an admin (setting one only protects).
    const hold = await t.app.inject({
      method: 'PUT',
      url: `${API}/devices/${ids['FAKE-HELD-1']}/legal-hold`,
      headers: admin.headers,
      payload: { hold: true, reason: 'litigation 2026-17' },
    });
    expect(hold.statusCode).toBe(200);
    expect(hold.json().status).toBe('retired, keys kept (legal hold since 2026-01-05)');
    // FAKE-KEPT-1 is reinstated before destruction.
    const back = await t.app.inject({ method: 'POST', url: `${API}/devices/${ids['FAKE-KEPT-1']}/reinstate`, headers: admin.headers });
    expect(back.statusCode).toBe(200);
    expect(back.json()).toMatchObject({ retiredAt: null, status: 'in service' });

    const before = await keyRow(t, keys.retired.keyId);
    expect(before.ciphertext.length).toBeGreaterThan(20);

    t.clock.advanceDays(364);
    expect(await runRetentionTask()).toMatch(/^ok: 0 keys/);
    expect((await keyRow(t, keys.retired.keyId)).ciphertext).toBe(before.ciphertext);

    t.clock.advanceDays(2);
    expect(await runRetentionTask()).toBe('ok: 2 keys of 1 retired devices destroyed, 1 devices held back by a legal hold');
    for (const k of [keys.retired, keys.retired2]) {
      const row = await keyRow(t, k.keyId);
      // The material is gone; the metadata is not.
      expect(row.ciphertext).toBe('');
      expect(row).toMatchObject({ state: 'destroyed', key_id: k.keyId, device_id: ids['FAKE-OLD-1'], destroyed_at: t.clock.now() });
      expect(row.first_seen_at).toBe('2026-01-05T09:00:00.000Z');
      const sources = await t.c.database.db.selectFrom('key_sources').selectAll().where('recovery_key_id', '=', row.id).execute();
      expect(sources.map((s) => s.source_type)).toEqual(['import']);
    }
    // Every destruction is audited, by the retention task, and the chain is intact.
    const destroyed = await t.c.audit.list(cliOwner, { action: 'key.destroyed' });
    expect(destroyed.map((e) => e.details!.keyId).sort()).toEqual([keys.retired.keyId, keys.retired2.keyId].sort());
    expect(destroyed.every((e) => e.actorId === 'system:retention' && String(e.details!.why).startsWith('retention period of 365 days'))).toBe(true);
    expect(await t.c.audit.verify(cliOwner)).toMatchObject({ intact: true });
    // The held device and the reinstated one keep their keys.
    expect((await keyRow(t, keys.held.keyId)).ciphertext.length).toBeGreaterThan(20);
    expect((await keyRow(t, keys.kept.keyId)).state).toBe('active');
  });

  it('a reveal of a destroyed key answers clearly (409), audited, and the device cannot be reinstated', async () => {
    owner = await t.signIn(ownerUser.email); // the session aged with the clock
    const r = await reveal(owner, keys.retired);
    expect(r.statusCode).toBe(409);
    expect(r.json().message).toBe(
      `This key was destroyed on ${t.clock.now().slice(0, 10)} after the retention period; its recovery password no longer exists in the vault.`,
    );
    const ev = (await t.c.audit.list(cliOwner, { action: 'key.reveal' }))[0]!;
    expect(ev).toMatchObject({ outcome: 'failure', details: { problem: 'the key was destroyed' } });
    expect((await t.app.inject({ method: 'POST', url: `${API}/devices/${ids['FAKE-OLD-1']}/reinstate`, headers: owner.headers })).statusCode).toBe(409);
    const status = (await t.app.inject({ method: 'GET', url: `${API}/clients/${clientId}/lifecycle`, headers: owner.headers })).json();
    expect(status.retiredDevices.find((d: { name: string }) => d.name === 'FAKE-OLD-1').status).toBe(
      `retired, keys destroyed on ${t.clock.now().slice(0, 10)}`,
    );
  });

  it('legal hold: a client hold blocks everything; only an owner lifts a hold; lifting lets retention resume', async () => {
    admin = await t.signIn((await t.addUser('admin', [clientId])).email);
    const clear = await t.app.inject({
      method: 'PUT',
      url: `${API}/devices/${ids['FAKE-HELD-1']}/legal-hold`,
      headers: admin.headers,
      payload: { hold: false, reason: 'settled' },
    });
    expect(clear.statusCode).toBe(403);
    const noReason = await t.app.inject({
      method: 'PUT',
      url: `${API}/clients/${clientId}/legal-hold`,
      headers: owner.headers,
      payload: { hold: true, reason: ' ' },
    });
    expect(noReason.statusCode).toBe(400);
    // A reason goes into the audit log: a pasted recovery password is refused without being echoed.
    const pasted = await t.app.inject({
      method: 'PUT',
      url: `${API}/clients/${clientId}/legal-hold`,
      headers: owner.headers,
      payload: { hold: true, reason: `key ${keys.held.password}` },
    });
    expect(pasted.statusCode).toBe(400);
    expect(pasted.body.includes(keys.held.password)).toBe(false);
    const chold = await t.app.inject({
      method: 'PUT',
      url: `${API}/clients/${clientId}/legal-hold`,
      headers: owner.headers,
      payload: { hold: true, reason: 'regulator inquiry' },
    });
    expect(chold.statusCode).toBe(200);
    expect(chold.json().legalHold).toMatchObject({ reason: 'regulator inquiry' });
    // Device hold lifted, but the client hold still protects it.
    expect(
      (
        await t.app.inject({
          method: 'PUT',
          url: `${API}/devices/${ids['FAKE-HELD-1']}/legal-hold`,
          headers: owner.headers,
          payload: { hold: false, reason: 'settled' },
        })
      ).statusCode,
    ).toBe(200);
    expect(await runRetentionTask()).toMatch(/^ok: 0 keys of 0 retired devices destroyed, 1 devices held back/);
    expect((await keyRow(t, keys.held.keyId)).state).toBe('active');
    // On-demand destruction is refused under a hold, too.
    const forced = await t.app.inject({
      method: 'POST',
      url: `${API}/devices/${ids['FAKE-HELD-1']}/destroy-keys`,
      headers: owner.headers,
      payload: { confirm: 'Contoso Ltd' },
    });
    expect(forced.statusCode).toBe(409);
    expect(forced.json().message).toMatch(/under legal hold/);
    expect(
      (
        await t.app.inject({
          method: 'PUT',
          url: `${API}/clients/${clientId}/legal-hold`,
          headers: owner.headers,
          payload: { hold: false, reason: 'inquiry closed' },
        })
      ).statusCode,
    ).toBe(200);
    expect(await runRetentionTask()).toBe('ok: 1 keys of 1 retired devices destroyed');
    expect((await keyRow(t, keys.held.keyId)).state).toBe('destroyed');
    const holds = await t.c.audit.list(cliOwner, { clientId });
    expect(holds.filter((e) => e.action.startsWith('legal_hold.')).map((e) => `${e.action} ${e.targetType} ${e.details!.reason}`)).toEqual([
      'legal_hold.clear client inquiry closed',
      'legal_hold.clear device settled',
      'legal_hold.set client regulator inquiry',
      'legal_hold.set device litigation 2026-17',
    ]);
  });

  it("retention 0 keeps a retired device's keys forever; retention is an owner setting", async () => {
    expect(
      (await t.app.inject({ method: 'PATCH', url: `${API}/clients/${clientId}/lifecycle`, headers: admin.headers, payload: { retentionDays: 1 } })).statusCode,
    ).toBe(403);
    const r = await t.app.inject({ method: 'PATCH', url: `${API}/clients/${clientId}/lifecycle`, headers: owner.headers, payload: { retentionDays: 0 } });
    expect(r.statusCode).toBe(200);
    expect(r.json().retentionDays).toBe(0);
    const retire = await t.app.inject({ method: 'POST', url: `${API}/devices/${ids['FAKE-KEPT-1']}/retire`, headers: owner.headers, payload: {} });
    expect(retire.json()).toMatchObject({ keysKeptUntil: null, status: 'retired, keys kept forever' });
    t.clock.advanceDays(3650);
    expect(await runRetentionTask()).toMatch(/^ok: 0 keys/);
    expect((await keyRow(t, keys.kept.keyId)).state).toBe('active');
    // Back to a year: ten years after retirement, the keys go at the next run.
    expect((await t.c.lifecycle.setRetention(cliOwner, clientId, 365)).retentionDays).toBe(365);
    expect(await runRetentionTask()).toBe('ok: 1 keys of 1 retired devices destroyed');
  });

  it('nothing cascades: the schema has no ON DELETE CASCADE into keys, and archiving a client keeps every key', async () => {
    const cascading: string[] = [];
    for (const table of ['recovery_keys', 'key_sources', 'data_keys']) {
      if (ENGINE === 'sqlite') {
        const fks = await sql<{ table: string; on_delete: string }>`select * from pragma_foreign_key_list(${table})`.execute(t.c.database.db);
        cascading.push(...fks.rows.filter((f) => f.on_delete.toUpperCase() !== 'NO ACTION').map((f) => `${table} -> ${f.table} ${f.on_delete}`));
      } else {
        const fks = await sql<{ name: string; rule: string }>`
          select tc.constraint_name as name, rc.delete_rule as rule from information_schema.table_constraints tc
          join information_schema.referential_constraints rc on rc.constraint_name = tc.constraint_name
          where tc.table_name = ${table} and tc.constraint_type = 'FOREIGN KEY'`.execute(t.c.database.db);
        cascading.push(...fks.rows.filter((f) => f.rule !== 'NO ACTION').map((f) => `${table} ${f.name} ${f.rule}`));
      }
    }
    expect(cascading).toEqual([]);
    const spare = await t.c.clients.create(cliOwner, { name: 'Spare Archive Co' });
    const k = newKey();
    await importKeys(t, 'Spare Archive Co', [{ device: 'FAKE-SPARE-1', key: k }]);
    const before = await keyRow(t, k.keyId);
    owner = await t.signIn(ownerUser.email);
    // A key that vanished from its source (Entra / AD "removed at source") is marked, never deleted.
    const gone = await createKeysRepo().markSourcePresence(t.c.database.db, spare.id, { type: 'import', ref: 'keys.csv' }, new Set(), t.clock.now());
    expect(gone).toBe(1);
    expect(await keyRow(t, k.keyId)).toEqual(before);
    expect((await t.app.inject({ method: 'DELETE', url: `${API}/clients/${spare.id}`, headers: owner.headers })).statusCode).toBe(200);
    expect(await keyRow(t, k.keyId)).toEqual(before);
  });
});

describe(`lifecycle: destructive actions need an owner, the typed client name, and (when on) a second owner (${ENGINE})`, () => {
  let t: LifecycleApp;
  let ownerA: Session;
  let ownerB: Session;
  let admin: Session;
  let ownerToken: string;
  let clientId: string;
  let ids: Record<string, string>;
  const k1 = newKey();
  const k2 = newKey();
  const k3 = newKey();

  beforeAll(async () => {
    t = await createLifecycleApp();
    clientId = (await t.c.clients.create(cliOwner, { name: 'Fabrikam Inc' })).id;
    ids = await importKeys(t, 'Fabrikam Inc', [
      { device: 'FAKE-FAB-1', key: k1 },
      { device: 'FAKE-FAB-2', key: k2 },
      { device: 'FAKE-FAB-3', key: k3 },
    ]);
    for (const d of ['FAKE-FAB-1', 'FAKE-FAB-2', 'FAKE-FAB-3']) await t.c.lifecycle.retireDevice(cliOwner, ids[d]!, {});
    const a = await t.addUser('owner', 'all');
    ownerA = await t.signIn(a.email);
    ownerB = await t.signIn((await t.addUser('owner', 'all')).email);
    admin = await t.signIn((await t.addUser('admin', 'all')).email);
    const tok = await t.app.inject({
      method: 'POST',
      url: `${API}/tokens`,
      headers: ownerA.headers,
      payload: { name: 'automation', role: 'owner', clients: 'all' },
    });
    expect(tok.statusCode).toBe(201);
    ownerToken = tok.json().token;
  });
  afterAll(() => t?.close());

  const destroy = (headers: Record<string, string>, deviceName: string, confirm: string) =>
    t.app.inject({ method: 'POST', url: `${API}/devices/${ids[deviceName]}/destroy-keys`, headers, payload: { confirm, reason: 'disk shredded' } });
  const intact = async (k: Key) => (await keyRow(t, k.keyId)).ciphertext.length > 20;

  it("refuses a wrong typed name, a non-owner, and an owner's API token; nothing is destroyed", async () => {
    const wrong = await destroy(ownerA.headers, 'FAKE-FAB-1', 'fabrikam inc');
    expect(wrong.statusCode).toBe(400);
    expect(wrong.json().message).toBe('To confirm, type the client\'s name exactly as shown: "Fabrikam Inc".');
    expect((await destroy(admin.headers, 'FAKE-FAB-1', 'Fabrikam Inc')).statusCode).toBe(403);
    const byToken = await destroy({ authorization: `Bearer ${ownerToken}` }, 'FAKE-FAB-1', 'Fabrikam Inc');
    expect(byToken.statusCode).toBe(403);
    expect(byToken.json().message).toMatch(/API tokens cannot/);
    const offboardByAdmin = await t.app.inject({
      method: 'POST',
      url: `${API}/clients/${clientId}/offboard`,
      headers: admin.headers,
      payload: { confirm: 'Fabrikam Inc' },
    });
    expect(offboardByAdmin.statusCode).toBe(403);
    const offboardWrong = await t.app.inject({
      method: 'POST',
      url: `${API}/clients/${clientId}/offboard`,
      headers: ownerA.headers,
      payload: { confirm: 'Fabrikam' },
    });
    expect(offboardWrong.statusCode).toBe(400);
    // The CLI asks for the typed name as well.
    const cli = await t.v.cli(['device', 'destroy-keys', '--device', 'FAKE-FAB-1', '--confirm', 'Fabrikam']);
    expect(cli.code).toBe(2);
    expect(cli.stderr).toMatch(/type the client's name exactly/);
    expect(await intact(k1)).toBe(true);
    expect(await t.c.database.db.selectFrom('clients').select('offboarded_at').where('id', '=', clientId).executeTakeFirstOrThrow()).toEqual({
      offboarded_at: null,
    });
  });

  it("an owner with the typed name destroys a retired device's keys at once (two-owner off); the CLI too", async () => {
    const r = await destroy(ownerA.headers, 'FAKE-FAB-1', ' Fabrikam Inc ');
    expect(r.statusCode).toBe(200);
    expect(r.json()).toEqual({ status: 'executed', action: 'destroy-device-keys', result: { device: 'FAKE-FAB-1', keys: 1 } });
    expect(await intact(k1)).toBe(false);
    const cli = await t.v.cli(['device', 'destroy-keys', '--device', 'FAKE-FAB-2', '--confirm', 'Fabrikam Inc']);
    expect(cli.code).toBe(0);
    expect(cli.stdout).toMatch(/Done \(destroy-device-keys\): device FAKE-FAB-2, keys 1/);
    expect(await intact(k2)).toBe(false);
  });

  it('two-owner mode: a request waits; the same owner cannot approve; a second owner approves with the typed name; expiry', async () => {
    expect(
      (await t.app.inject({ method: 'PATCH', url: `${API}/lifecycle/settings`, headers: admin.headers, payload: { twoOwnerApproval: true } })).statusCode,
    ).toBe(403);
    const on = await t.app.inject({ method: 'PATCH', url: `${API}/lifecycle/settings`, headers: ownerA.headers, payload: { twoOwnerApproval: true } });
    expect(on.json()).toMatchObject({ twoOwnerApproval: true });

    const req = await destroy(ownerA.headers, 'FAKE-FAB-3', 'Fabrikam Inc');
    expect(req.statusCode).toBe(202);
    const approval = req.json().approval;
    expect(approval).toMatchObject({ action: 'destroy-device-keys', status: 'pending', device: { name: 'FAKE-FAB-3' }, reason: 'disk shredded' });
    expect(await intact(k3)).toBe(true);

    const self = await t.app.inject({
      method: 'POST',
      url: `${API}/lifecycle/approvals/${approval.id}/approve`,
      headers: ownerA.headers,
      payload: { confirm: 'Fabrikam Inc' },
    });
    expect(self.statusCode).toBe(403);
    expect(self.json().message).toMatch(/second owner must approve/);
    expect(
      (
        await t.app.inject({
          method: 'POST',
          url: `${API}/lifecycle/approvals/${approval.id}/approve`,
          headers: admin.headers,
          payload: { confirm: 'Fabrikam Inc' },
        })
      ).statusCode,
    ).toBe(403);
    expect(
      (
        await t.app.inject({
          method: 'POST',
          url: `${API}/lifecycle/approvals/${approval.id}/approve`,
          headers: ownerB.headers,
          payload: { confirm: 'Fabrikam' },
        })
      ).statusCode,
    ).toBe(400);
    expect(await intact(k3)).toBe(true);
    const ok = await t.app.inject({
      method: 'POST',
      url: `${API}/lifecycle/approvals/${approval.id}/approve`,
      headers: ownerB.headers,
      payload: { confirm: 'Fabrikam Inc' },
    });
    expect(ok.statusCode).toBe(200);
    expect(ok.json()).toEqual({ status: 'executed', action: 'destroy-device-keys', result: { device: 'FAKE-FAB-3', keys: 1 } });
    expect(await intact(k3)).toBe(false);
    // Approving twice does nothing more.
    expect(
      (
        await t.app.inject({
          method: 'POST',
          url: `${API}/lifecycle/approvals/${approval.id}/approve`,
          headers: ownerB.headers,
          payload: { confirm: 'Fabrikam Inc' },
        })
      ).statusCode,
    ).toBe(409);
    const list = (await t.app.inject({ method: 'GET', url: `${API}/lifecycle/approvals`, headers: ownerA.headers })).json();
    expect(list[0]).toMatchObject({ id: approval.id, status: 'executed', approvedBy: expect.stringMatching(/@example.test/) });
    const audit = (await t.c.audit.list(cliOwner, { clientId })).map((e) => e.action);
    expect(audit.slice(0, 4)).toEqual(['device.keys_destroyed', 'key.destroyed', 'lifecycle.approve', 'lifecycle.request']);

    // A request nobody approves expires and can then never run.
    const late = await t.app.inject({
      method: 'POST',
      url: `${API}/clients/${clientId}/offboard`,
      headers: ownerA.headers,
      payload: { confirm: 'Fabrikam Inc' },
    });
    expect(late.statusCode).toBe(202);
    t.clock.advanceHours(73);
    ownerB = await t.signIn((await t.addUser('owner', 'all')).email);
    const expired = await t.app.inject({
      method: 'POST',
      url: `${API}/lifecycle/approvals/${late.json().approval.id}/approve`,
      headers: ownerB.headers,
      payload: { confirm: 'Fabrikam Inc' },
    });
    expect(expired.statusCode).toBe(409);
    expect(expired.json().message).toMatch(/expired/);
    expect((await t.c.audit.list(cliOwner, { action: 'lifecycle.expire' })).length).toBe(1);
    expect((await t.c.database.db.selectFrom('clients').select('offboarded_at').where('id', '=', clientId).executeTakeFirstOrThrow()).offboarded_at).toBeNull();
  });
});

describe(`lifecycle: two-owner approval protects itself (${ENGINE})`, () => {
  let t: LifecycleApp;
  let ownerA: Session;
  let ownerB: Session;
  let emails: { a: string; b: string };
  let scoped: Session;
  let ids: Record<string, string>;
  let contoso: string;
  let fabrikam: string;

  beforeAll(async () => {
    t = await createLifecycleApp();
    contoso = (await t.c.clients.create(cliOwner, { name: 'Contoso Ltd' })).id;
    fabrikam = (await t.c.clients.create(cliOwner, { name: 'Fabrikam Inc' })).id;
    await importKeys(t, 'Contoso Ltd', [{ device: 'FAKE-CON-1', key: newKey() }]);
    ids = await importKeys(t, 'Fabrikam Inc', [{ device: 'FAKE-FAB-1', key: newKey() }]);
    for (const d of ['FAKE-CON-1', 'FAKE-FAB-1']) await t.c.lifecycle.retireDevice(cliOwner, ids[d]!, {});
    emails = { a: (await t.addUser('owner', 'all')).email, b: (await t.addUser('owner', 'all')).email };
    ownerA = await t.signIn(emails.a);
    ownerB = await t.signIn(emails.b);
    scoped = await t.signIn((await t.addUser('owner', [contoso])).email);
    expect(
      (await t.app.inject({ method: 'PATCH', url: `${API}/lifecycle/settings`, headers: ownerA.headers, payload: { twoOwnerApproval: true } })).json(),
    ).toMatchObject({ twoOwnerApproval: true });
  });
  afterAll(() => t?.close());

  const settings = async (s: Session) => (await t.app.inject({ method: 'GET', url: `${API}/lifecycle/settings`, headers: s.headers })).json();
  const approve = (s: Session, id: string, confirm?: string) =>
    t.app.inject({ method: 'POST', url: `${API}/lifecycle/approvals/${id}/approve`, headers: s.headers, payload: confirm === undefined ? {} : { confirm } });

  it('the requester cannot switch two-owner approval off alone: the switch waits for a second owner and stays on', async () => {
    const off = await t.app.inject({ method: 'PATCH', url: `${API}/lifecycle/settings`, headers: ownerA.headers, payload: { twoOwnerApproval: false } });
    expect(off.statusCode).toBe(202);
    expect(off.json()).toMatchObject({
      twoOwnerApproval: true,
      pendingApproval: { action: 'disable-two-owner-approval', client: null, status: 'pending', target: { type: 'setting' } },
    });
    expect((await settings(ownerA)).twoOwnerApproval).toBe(true);
    const self = await approve(ownerA, off.json().pendingApproval.id);
    expect(self.statusCode).toBe(403);
    expect(self.json().message).toMatch(/second owner must approve/);
    // Destruction still waits for a second owner.
    const destroy = await t.app.inject({
      method: 'POST',
      url: `${API}/devices/${ids['FAKE-FAB-1']}/destroy-keys`,
      headers: ownerA.headers,
      payload: { confirm: 'Fabrikam Inc' },
    });
    expect(destroy.statusCode).toBe(202);
    expect((await settings(ownerA)).twoOwnerApproval).toBe(true);
  });

  it("a scoped owner lists only its clients' requests, never vault-wide ones, and cannot approve others'", async () => {
    const mine = await t.app.inject({
      method: 'POST',
      url: `${API}/devices/${ids['FAKE-CON-1']}/destroy-keys`,
      headers: ownerA.headers,
      payload: { confirm: 'Contoso Ltd' },
    });
    expect(mine.statusCode).toBe(202);
    const all = (await t.app.inject({ method: 'GET', url: `${API}/lifecycle/approvals?status=pending`, headers: ownerB.headers })).json() as {
      id: string;
      client: { id: string } | null;
    }[];
    expect(all.map((a) => a.client?.id ?? null).sort()).toEqual([contoso, fabrikam, null].sort());
    const listed = await t.app.inject({ method: 'GET', url: `${API}/lifecycle/approvals`, headers: scoped.headers });
    expect(listed.statusCode).toBe(200);
    expect(listed.json()).toEqual([expect.objectContaining({ id: mine.json().approval.id, client: { id: contoso, name: 'Contoso Ltd' } })]);
    for (const a of all.filter((x) => x.client?.id !== contoso)) {
      expect((await approve(scoped, a.id, 'Fabrikam Inc')).statusCode).toBe(404);
      expect((await t.app.inject({ method: 'POST', url: `${API}/lifecycle/approvals/${a.id}/cancel`, headers: scoped.headers })).statusCode).toBe(404);
    }
    // Its own client's request it may approve (it is a second owner whose account predates the request).
    const ok = await approve(scoped, mine.json().approval.id, 'Contoso Ltd');
    expect(ok.statusCode).toBe(200);
    expect(ok.json()).toMatchObject({ status: 'executed', action: 'destroy-device-keys', result: { device: 'FAKE-CON-1', keys: 1 } });
  });

  it('an owner account created after a request cannot approve it', async () => {
    t.clock.advanceHours(1);
    const late = await t.signIn((await t.addUser('owner', 'all')).email);
    const pending = (
      (await t.app.inject({ method: 'GET', url: `${API}/lifecycle/approvals?status=pending`, headers: late.headers })).json() as {
        id: string;
        action: string;
      }[]
    ).find((a) => a.action === 'disable-two-owner-approval')!;
    const r = await approve(late, pending.id);
    expect(r.statusCode).toBe(403);
    expect(r.json().message).toMatch(/created after the request/);
    expect((await settings(late)).twoOwnerApproval).toBe(true);
  });

  it("a second owner's approval switches two-owner approval off", async () => {
    ownerA = await t.signIn(emails.a);
    ownerB = await t.signIn(emails.b);
    const pending = (
      (await t.app.inject({ method: 'GET', url: `${API}/lifecycle/approvals?status=pending`, headers: ownerB.headers })).json() as {
        id: string;
        action: string;
      }[]
    ).find((a) => a.action === 'disable-two-owner-approval')!;
    const r = await approve(ownerB, pending.id);
    expect(r.statusCode).toBe(200);
    expect(r.json()).toEqual({ status: 'executed', action: 'disable-two-owner-approval', result: { twoOwnerApproval: false } });
    expect((await settings(ownerA)).twoOwnerApproval).toBe(false);
    const audit = await t.c.audit.list(cliOwner, { action: 'lifecycle.settings' });
    expect(audit[0]).toMatchObject({ details: { twoOwnerApproval: false, approved: true } });
    // Off now: switching it off again (or on) takes effect at once.
    expect(
      (await t.app.inject({ method: 'PATCH', url: `${API}/lifecycle/settings`, headers: ownerA.headers, payload: { twoOwnerApproval: false } })).statusCode,
    ).toBe(200);
  });
});
