import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from './helpers/app.js';
import { owner } from './helpers/vault.js';
import { bytes, csvOf, randomRecoveryPassword } from './helpers/keys.js';
import { ENGINE } from './helpers/engine.js';
import type { Actor, Role } from '../src/modules/authz/authz.js';
import type { KeySummary } from '../src/modules/keys/keys.types.js';

/**
 * The helpdesk call without dead ends (issue 17, item 3): a key ID read over the phone, a key ID
 * with two stored passwords, and a key the agent proved wrong.
 */
describe(`a call that never dead-ends on ${ENGINE}`, () => {
  let t: TestApp;
  let contoso: string;
  const ids = {
    spaced: '35d132dc-e86a-4f00-8000-000000000001',
    conflict: '4290b6c0-b17a-497a-8552-272cc30e80d4',
    mismatch: '1e20111f-0000-4000-8000-000000000009',
  };
  const pw = { spaced: randomRecoveryPassword(), older: randomRecoveryPassword(), newer: randomRecoveryPassword(), mismatch: randomRecoveryPassword() };
  const actor = (role: Role): Actor => ({ type: 'user', id: `u-${role}`, name: role, role, clients: 'all' });
  let olderId: string;
  let newerId: string;
  let mismatchRecord: string;

  beforeAll(async () => {
    t = await createTestApp();
    contoso = (await t.container.clients.create(owner, { name: 'Contoso' })).id;
    const imp = (rows: Parameters<typeof csvOf>[0], name: string) =>
      t.container.imports.importFile(owner, 'Contoso', { fileName: name, bytes: bytes(csvOf(rows)) });
    await imp(
      [
        { device: 'FAKE-SPACED', keyId: ids.spaced, password: pw.spaced },
        { device: 'FAKE-OLD', keyId: ids.conflict, password: pw.older },
        { device: 'FAKE-WS-0029', keyId: ids.mismatch, password: pw.mismatch },
        // A device whose name reads as a key ID once O and I are forgiven (0FF1CE01).
        { device: 'OFFICE01', keyId: randomUUID(), password: randomRecoveryPassword() },
      ],
      'first.csv',
    );
    // The same key ID with another password: a conflict, kept as a second record.
    const second = await imp([{ device: 'FAKE-NEW', keyId: ids.conflict, password: pw.newer }], 'second.csv');
    expect(second.conflicts).toBe(1);
    const db = t.container.database.db;
    const rows = await db.selectFrom('recovery_keys').select(['id', 'key_id', 'device_id', 'volume_id', 'first_seen_at']).execute();
    const recs = rows.filter((r) => r.key_id === ids.conflict);
    const devices = await db.selectFrom('devices').select(['id', 'name']).execute();
    const deviceName = (id: string | null) => devices.find((d) => d.id === id)?.name;
    olderId = recs.find((r) => deviceName(r.device_id) === 'FAKE-OLD')!.id;
    newerId = recs.find((r) => deviceName(r.device_id) === 'FAKE-NEW')!.id;
    // Fixtures for what the agent would write (its own tests cover how): the older key was also
    // reported by the device's agent, and the agent proved the FAKE-WS-0029 key wrong.
    const now = new Date().toISOString();
    await db
      .insertInto('key_sources')
      .values({
        id: randomUUID(),
        client_id: contoso,
        recovery_key_id: olderId,
        source_type: 'agent',
        source_ref: 'fake-agent',
        first_seen_at: now,
        last_seen_at: now,
        removed_at: null,
      })
      .execute();
    const mm = rows.find((r) => r.key_id === ids.mismatch)!;
    mismatchRecord = mm.id;
    await db
      .insertInto('findings')
      .values({
        id: randomUUID(),
        client_id: contoso,
        device_id: mm.device_id!,
        volume_id: mm.volume_id,
        recovery_key_id: mm.id,
        kind: 'mismatch',
        protector_id: ids.mismatch,
        detail: 'Recovery password differs from the one in the vault.',
        opened_at: now,
        resolved_at: null,
      })
      .execute();
  });
  afterAll(() => t.close());

  describe('search forgives the phone', () => {
    const spoken = ['35D132DC E86A', '35d132dc e86a 4f00', '35D1 32DC', '35D132DC.E86A', '{35D132DC E86A}', '35D132DC\u2013E86A'];
    it.each(spoken)('helpdesk finds the key by "%s"', async (text) => {
      const r = await t.container.keyLookup.lookup(actor('helpdesk'), text);
      expect(r.keys.map((k) => k.keyId)).toEqual([ids.spaced]);
    });
    it.each(['4290B6CO', '4290B6C0', '429OB6CO', '4290b6co-bl7a', '4290 B6C0'])('O is 0 and I / l are 1: "%s" finds the conflict', async (text) => {
      const r = await t.container.keyLookup.lookup(actor('technician'), text);
      expect(new Set(r.keys.map((k) => k.keyId))).toEqual(new Set([ids.conflict]));
      expect(r.matches).toBe(2);
    });
    it('the reveal (API, console and CLI path) takes the same spoken forms', async () => {
      const r = await t.container.keys.revealByKeyId(actor('technician'), { query: '35D132DC E86A', reason: 'lost-pin' });
      expect(r.status === 'revealed' && r.key.recoveryPassword).toBe(pw.spaced);
    });
    it('a device-name search is unchanged: OFFICE01 still finds the device', async () => {
      const r = await t.container.keys.search(actor('technician'), 'OFFICE01');
      expect(r.map((k) => k.device?.name)).toContain('OFFICE01');
      const fake = await t.container.keys.search(actor('technician'), 'FAKE-WS');
      expect(fake.map((k) => k.device?.name)).toEqual(['FAKE-WS-0029']);
    });
    it('letters that are not hex still get the plain error, without echoing more than the query', async () => {
      await expect(t.container.keyLookup.lookup(actor('helpdesk'), '4290B6XZ')).rejects.toThrow(/only hex digits/);
      await expect(t.container.keyLookup.lookup(actor('helpdesk'), '4290 B6')).rejects.toThrow(/at least the first 8/);
    });
    it('over HTTP: GET /keys/lookup with a space and a letter O', async () => {
      const hd = await t.addUser('helpdesk', 'all');
      const s = await t.signIn(hd.email);
      const res = await t.app.inject({ method: 'GET', url: `/api/v1/keys/lookup?keyId=${encodeURIComponent('35D132DC E86A')}`, headers: s.headers });
      expect(res.statusCode).toBe(200);
      expect(res.json().keys[0].keyId).toBe(ids.spaced);
    });
  });

  describe('a full key ID with two stored passwords', () => {
    it.each(['helpdesk', 'technician', 'admin', 'owner'] as Role[])(
      '%s sees both candidates ranked, agent-reported first, with try-this-first',
      async (role) => {
        const r = await t.container.keyLookup.lookup(actor(role), ids.conflict.toUpperCase());
        expect(r.matches).toBe(2);
        expect(r.keys.map((k) => k.id)).toEqual([olderId, newerId]);
        expect(r.tryFirst).toBe(olderId);
        const first = r.keys[0]!;
        expect(first.client.name).toBe('Contoso');
        expect(first.device?.name).toBe('FAKE-OLD');
        expect(first.sources.map((s) => s.type).sort()).toEqual(['agent', 'import']);
        expect(first.state).toBe('conflict');
        expect(JSON.stringify(r)).not.toContain(pw.older);
      },
    );
    it('without an agent source the newest comes first', async () => {
      await t.container.database.db.deleteFrom('key_sources').where('recovery_key_id', '=', olderId).where('source_type', '=', 'agent').execute();
      try {
        const r = await t.container.keyLookup.lookup(actor('helpdesk'), ids.conflict);
        expect(r.keys.map((k) => k.device?.name)).toEqual(['FAKE-NEW', 'FAKE-OLD']);
        expect(r.tryFirst).toBe(newerId);
      } finally {
        const now = new Date().toISOString();
        await t.container.database.db
          .insertInto('key_sources')
          .values({
            id: randomUUID(),
            client_id: contoso,
            recovery_key_id: olderId,
            source_type: 'agent',
            source_ref: 'fake-agent',
            first_seen_at: now,
            last_seen_at: now,
            removed_at: null,
          })
          .execute();
      }
    });
    it('an ambiguous reveal answers the ranked candidates; the record id reveals the chosen one', async () => {
      const hd = actor('helpdesk');
      const r = await t.container.keys.revealByKeyId(hd, { query: ids.conflict, reason: 'bios-changed', ticket: 'T-1' });
      expect(r.status).toBe('ambiguous');
      if (r.status !== 'ambiguous') return;
      expect(r.candidates?.map((k) => k.id)).toEqual([olderId, newerId]);
      expect(r.candidates && r.tryFirst).toBe(olderId);
      const second = await t.container.keys.revealByKeyId(hd, { query: newerId, reason: 'bios-changed', ticket: 'T-1' });
      expect(second.status === 'revealed' && second.key.recoveryPassword).toBe(pw.newer);
    });
    it('a prefix still gives helpdesk only the count', async () => {
      const r = await t.container.keys.revealByKeyId(actor('helpdesk'), { query: '4290B6C0', reason: 'lost-pin' });
      expect(r).toEqual({ status: 'ambiguous', matches: 2, candidates: null });
    });
    it('CLI lookup lists numbered candidates and reveals one with --candidate or --key', async () => {
      const list = await t.cli(['lookup', ids.conflict, '--reason', 'bios-changed', '--ticket', 'T-2']);
      expect(list.code).toBe(3);
      expect(list.stderr).toMatch(/--candidate <n>/);
      expect(list.stdout).toMatch(/1 .*FAKE-OLD.*try this one first/);
      expect(list.stdout).not.toContain(pw.older);
      const one = await t.cli(['lookup', ids.conflict, '--reason', 'bios-changed', '--ticket', 'T-2', '--candidate', '1']);
      expect(one.code).toBe(0);
      expect(one.stdout).toContain(pw.older);
      const byKey = await t.cli(['lookup', '4290B6CO', '--reason', 'bios-changed', '--ticket', 'T-2', '--key', newerId, '--json']);
      expect(byKey.code).toBe(0);
      expect(JSON.parse(byKey.stdout).recoveryPassword).toBe(pw.newer);
      const bad = await t.cli(['lookup', ids.conflict, '--reason', 'lost-pin', '--candidate', '3']);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toMatch(/pick 1 to 2/);
      const notOne = await t.cli(['lookup', ids.conflict, '--reason', 'lost-pin', '--key', mismatchRecord]);
      expect(notOne.code).toBe(4);
      expect(notOne.stderr).toMatch(/not one of the keys/);
    });
  });

  describe('a key the agent proved wrong', () => {
    it('shows may-not-unlock in lookup, search, the device page and the reveal answer', async () => {
      const found = await t.container.keyLookup.lookup(actor('helpdesk'), '1E20111F');
      expect(found.keys[0]).toMatchObject({ keyId: ids.mismatch, mayNotUnlock: true });
      const search = await t.container.keys.search(actor('technician'), '1E20111F');
      expect(search[0]!.mayNotUnlock).toBe(true);
      const deviceId = search[0]!.device!.id;
      const device = await t.container.devices.get(actor('technician'), deviceId);
      expect(device.recoveryKeys.map((k: KeySummary) => k.mayNotUnlock)).toEqual([true]);
      const revealed = await t.container.keys.revealByKeyId(actor('technician'), { query: '1E20111F', reason: 'lost-pin' });
      expect(revealed.status === 'revealed' && revealed.key.mayNotUnlock).toBe(true);
      // Other keys are not flagged.
      expect((await t.container.keyLookup.lookup(actor('helpdesk'), ids.spaced)).keys[0]!.mayNotUnlock).toBe(false);
    });
    it('a resolved mismatch no longer warns', async () => {
      const db = t.container.database.db;
      await db.updateTable('findings').set({ resolved_at: new Date().toISOString() }).where('recovery_key_id', '=', mismatchRecord).execute();
      try {
        expect((await t.container.keyLookup.lookup(actor('helpdesk'), '1E20111F')).keys[0]!.mayNotUnlock).toBe(false);
      } finally {
        await db.updateTable('findings').set({ resolved_at: null }).where('recovery_key_id', '=', mismatchRecord).execute();
      }
    });
    it('over HTTP the flag is part of the key shape', async () => {
      const tech = await t.addUser('technician', 'all');
      const s = await t.signIn(tech.email);
      const res = await t.app.inject({ method: 'GET', url: '/api/v1/keys?q=1E20111F', headers: s.headers });
      expect(res.statusCode).toBe(200);
      expect(res.json()[0].mayNotUnlock).toBe(true);
    });
  });
});
