import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestVault, owner, type TestVault } from './helpers/vault.js';
import { bytes, csvOf, randomRecoveryPassword } from './helpers/keys.js';
import { ENGINE } from './helpers/engine.js';
import type { Actor, Role } from '../src/modules/authz/authz.js';

describe(`key search and reveal by role and client on ${ENGINE}`, () => {
  let v: TestVault;
  let contoso: string;
  let fabrikam: string;
  const ids = {
    contoso: 'c0ffee00-0000-4000-8000-000000000001',
    contoso2: 'c0ffee00-0000-4000-8000-000000000002',
    fabrikam: 'fab00000-0000-4000-8000-000000000003',
  };
  const pw = { contoso: randomRecoveryPassword(), contoso2: randomRecoveryPassword(), fabrikam: randomRecoveryPassword() };
  const actor = (role: Role, clients: 'all' | string[]): Actor => ({ type: 'user', id: `u-${role}`, name: role, role, clients });

  beforeAll(async () => {
    v = await createTestVault();
    contoso = (await v.container.clients.create(owner, { name: 'Contoso' })).id;
    fabrikam = (await v.container.clients.create(owner, { name: 'Fabrikam' })).id;
    await v.container.imports.importFile(owner, 'Contoso', {
      fileName: 'c.csv',
      bytes: bytes(
        csvOf([
          { device: 'FAKE-C1', keyId: ids.contoso, password: pw.contoso },
          { device: 'FAKE-C2', keyId: ids.contoso2, password: pw.contoso2 },
        ]),
      ),
    });
    await v.container.imports.importFile(owner, 'Fabrikam', {
      fileName: 'f.csv',
      bytes: bytes(csvOf([{ device: 'FAKE-F1', keyId: ids.fabrikam, password: pw.fabrikam }])),
    });
  });
  afterAll(() => v.close());

  it('prefix search uses the key ID range on this engine: exact prefix matches only', async () => {
    expect((await v.container.keys.searchByKeyId(owner, 'C0FFEE00')).map((k) => k.keyId).sort()).toEqual([ids.contoso, ids.contoso2]);
    expect((await v.container.keys.searchByKeyId(owner, '{c0ffee00-0000-4000-8000-00000000000')).length).toBe(2);
    expect((await v.container.keys.searchByKeyId(owner, 'c0ffee00-0000-4000-8000-000000000002')).map((k) => k.keyId)).toEqual([ids.contoso2]);
    expect(await v.container.keys.searchByKeyId(owner, 'c0ffee01')).toEqual([]);
    expect(await v.container.keys.searchByKeyId(owner, 'c0ffedff')).toEqual([]);
  });

  it("a technician of one client cannot find or reveal another client's key: not found, as if absent", async () => {
    const tech = actor('technician', [contoso]);
    const r = await v.container.keys.revealByKeyId(tech, { query: ids.fabrikam, reason: 'lost-pin' });
    expect(r).toEqual({ status: 'not_found' });
    expect(await v.container.keys.searchByKeyId(tech, 'fab00000')).toEqual([]);
    expect((await v.container.keys.list(tech)).map((k) => k.client.name)).toEqual(['Contoso', 'Contoso']);
    const own = await v.container.keys.revealByKeyId(tech, { query: ids.contoso, reason: 'lost-pin' });
    expect(own.status === 'revealed' && own.key.recoveryPassword).toBe(pw.contoso);
  });

  it('helpdesk reveals only a single match and never gets a list of keys', async () => {
    const hd = actor('helpdesk', 'all');
    await expect(v.container.keys.list(hd)).rejects.toThrow(/not allowed to list recovery keys/);
    await expect(v.container.keys.searchByKeyId(hd, 'c0ffee00')).rejects.toThrow(/not allowed/);
    const amb = await v.container.keys.revealByKeyId(hd, { query: 'c0ffee00', reason: 'lost-pin' });
    expect(amb).toEqual({ status: 'ambiguous', matches: 2, candidates: null });
    const one = await v.container.keys.revealByKeyId(hd, { query: 'fab00000', reason: 'lost-pin' });
    expect(one.status === 'revealed' && one.key.recoveryPassword).toBe(pw.fabrikam);
  });

  it('auditors and client viewers cannot reveal', async () => {
    for (const role of ['auditor', 'client-viewer'] as const) {
      await expect(v.container.keys.revealByKeyId(actor(role, 'all'), { query: ids.contoso, reason: 'lost-pin' })).rejects.toThrow(/not allowed/);
    }
    // The refusals are audited too.
    const events = await v.container.audit.list(owner, { action: 'key.reveal', limit: 100 });
    expect(
      events
        .filter((e) => e.outcome === 'denied')
        .map((e) => e.actorName)
        .sort(),
    ).toEqual(['auditor', 'client-viewer']);
  });

  it('every reveal attempt is in the audit log with its outcome, and no event holds a password', async () => {
    const events = await v.container.audit.list(owner, { limit: 1000 });
    const outcomes = events.filter((e) => e.action === 'key.reveal').map((e) => `${e.actorName}:${e.outcome}`);
    expect(outcomes).toEqual(expect.arrayContaining(['technician:not_found', 'technician:success', 'helpdesk:ambiguous', 'helpdesk:success']));
    const text = JSON.stringify(events);
    for (const p of Object.values(pw)) expect(text).not.toContain(p);
    // The audit rows of another client are not visible to a client-scoped auditor.
    const scoped = await v.container.audit.list(actor('auditor', [contoso]), { limit: 1000 });
    expect(scoped.every((e) => e.clientId === contoso)).toBe(true);
    expect(scoped.some((e) => e.clientId === fabrikam)).toBe(false);
  });

  it('a % or _ typed into a device search matches only itself, never every device in scope', async () => {
    await v.container.imports.importFile(owner, 'Contoso', {
      fileName: 'lab.csv',
      bytes: bytes(csvOf([{ device: 'LAB_50%PC', keyId: 'd15c0000-0000-4000-8000-000000000004', password: randomRecoveryPassword() }])),
    });
    const keyDevices = async (q: string) => (await v.container.keys.search(owner, q)).map((k) => k.device?.name);
    const devices = async (q: string) => (await v.container.devices.list(owner, { q })).map((d) => d.name);
    for (const q of ['%%', '__', 'fake_c', '\\\\', '\\%']) {
      expect(await keyDevices(q)).toEqual([]);
      expect(await devices(q)).toEqual([]);
    }
    expect(await keyDevices('b_50%p')).toEqual(['LAB_50%PC']);
    expect(await devices('B_50%P')).toEqual(['LAB_50%PC']);
    expect(await keyDevices('fake-c')).toHaveLength(2);
  });
});
