import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type Session, type TestApp } from './helpers/app.js';
import { owner } from './helpers/vault.js';
import { bytes, csvOf, randomRecoveryPassword } from './helpers/keys.js';
import { auditEvents } from './helpers/http.js';
import { ENGINE } from './helpers/engine.js';

/**
 * "Did it unlock? yes / no" after a reveal (issue 17, item 3), over HTTP: only the person who
 * revealed the key answers; yes settles a key ID with two stored passwords, no marks the key
 * "may not unlock" everywhere; bad input gets a clear 400.
 */
describe(`unlock outcome after a reveal on ${ENGINE}`, () => {
  let t: TestApp;
  let contoso: string;
  let fabrikam: string;
  const ids = { conflict: '4290b6c0-b17a-497a-8552-272cc30e80d4', plain: '7a11c0de-0000-4000-8000-000000000017' };
  const pw = { older: randomRecoveryPassword(), newer: randomRecoveryPassword(), plain: randomRecoveryPassword() };
  let olderId: string;
  let newerId: string;
  let plainId: string;
  let conflictFinding: string;
  let helpdesk: Session;
  let otherHelpdesk: Session;
  let technician: Session;
  let fabrikamTech: Session;
  let auditor: Session;

  const post = (s: Session, id: string, payload: unknown) =>
    t.app.inject({ method: 'POST', url: `/api/v1/keys/${id}/unlock-outcome`, headers: s.headers, payload: payload as Record<string, unknown> });
  const reveal = async (s: Session, id: string) => {
    const r = await t.app.inject({ method: 'POST', url: `/api/v1/keys/${id}/reveal`, headers: s.headers, payload: { reason: 'bios-changed', ticket: 'T-17' } });
    expect(r.statusCode, r.body).toBe(200);
    expect(r.json().status).toBe('revealed');
    return r.json().key.recoveryPassword as string;
  };
  const lookup = async (s: Session, keyId: string) => {
    const r = await t.app.inject({ method: 'GET', url: `/api/v1/keys/lookup?keyId=${keyId}`, headers: s.headers });
    expect(r.statusCode, r.body).toBe(200);
    return r.json() as { matches: number; keys: { id: string; state: string; mayNotUnlock: boolean }[]; tryFirst: string | null };
  };
  const findingsOf = (keyRowIds: string[]) =>
    t.container.database.db.selectFrom('findings').select(['id', 'kind', 'recovery_key_id', 'resolved_at']).where('recovery_key_id', 'in', keyRowIds).execute();

  beforeAll(async () => {
    t = await createTestApp();
    contoso = (await t.container.clients.create(owner, { name: 'Contoso' })).id;
    fabrikam = (await t.container.clients.create(owner, { name: 'Fabrikam' })).id;
    const imp = (rows: Parameters<typeof csvOf>[0], name: string) =>
      t.container.imports.importFile(owner, 'Contoso', { fileName: name, bytes: bytes(csvOf(rows)) });
    await imp(
      [
        { device: 'FAKE-OLD', keyId: ids.conflict, password: pw.older },
        { device: 'FAKE-PLAIN', keyId: ids.plain, password: pw.plain },
      ],
      'first.csv',
    );
    expect((await imp([{ device: 'FAKE-NEW', keyId: ids.conflict, password: pw.newer }], 'second.csv')).conflicts).toBe(1);
    const db = t.container.database.db;
    const rows = await db
      .selectFrom('recovery_keys as k')
      .innerJoin('devices as d', 'd.id', 'k.device_id')
      .select(['k.id', 'k.key_id', 'k.device_id', 'd.name'])
      .execute();
    olderId = rows.find((r) => r.name === 'FAKE-OLD')!.id;
    newerId = rows.find((r) => r.name === 'FAKE-NEW')!.id;
    plainId = rows.find((r) => r.name === 'FAKE-PLAIN')!.id;
    // What the agent writes (its own tests cover how): the older key also reported by an agent, so it
    // ranks first, and a key_conflict finding on the device that reported the key ID as well.
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
    conflictFinding = randomUUID();
    await db
      .insertInto('findings')
      .values({
        id: conflictFinding,
        client_id: contoso,
        device_id: rows.find((r) => r.name === 'FAKE-NEW')!.device_id!,
        volume_id: null,
        recovery_key_id: olderId,
        kind: 'key_conflict',
        protector_id: ids.conflict,
        detail: 'Key ID held by another device.',
        opened_at: now,
        resolved_at: null,
      })
      .execute();
    helpdesk = await t.signIn((await t.addUser('helpdesk', 'all')).email);
    otherHelpdesk = await t.signIn((await t.addUser('helpdesk', 'all')).email);
    technician = await t.signIn((await t.addUser('technician', 'all')).email);
    fabrikamTech = await t.signIn((await t.addUser('technician', [fabrikam])).email);
    auditor = await t.signIn((await t.addUser('auditor', 'all')).email);
  });
  afterAll(() => t.close());

  describe('who may answer, and bad input', () => {
    it('someone who did not reveal the key is refused (403), and nothing changes', async () => {
      const r = await post(otherHelpdesk, newerId, { unlocked: true });
      expect(r.statusCode).toBe(403);
      expect(r.json().message).toMatch(/Only the person who revealed this key/);
      expect((await findingsOf([olderId])).find((f) => f.id === conflictFinding)!.resolved_at).toBeNull();
    });
    it('someone who cannot see the client gets 404, the same as a key that does not exist', async () => {
      const r = await post(fabrikamTech, newerId, { unlocked: true });
      expect(r.statusCode).toBe(404);
      expect((await post(fabrikamTech, randomUUID(), { unlocked: true })).statusCode).toBe(404);
    });
    it('a role that may not reveal is refused (403)', async () => {
      const r = await post(auditor, newerId, { unlocked: false });
      expect(r.statusCode).toBe(403);
      expect(r.json().message).toMatch(/reveal recovery keys/);
    });
    it('bad input gets a clear 400', async () => {
      await reveal(helpdesk, plainId);
      const cases: [string, unknown, RegExp][] = [
        [plainId, { unlocked: 'yes' }, /unlocked/i],
        [plainId, {}, /unlocked/i],
        [plainId, { unlocked: true, extra: 1 }, /extra|unrecognized|not allowed/i],
        [plainId, { unlocked: true, ticket: 'x'.repeat(201) }, /ticket/i],
        ['not-a-record-id', { unlocked: true }, /keyRecordId|id/i],
      ];
      for (const [id, body, msg] of cases) {
        const r = await post(helpdesk, id, body);
        expect(r.statusCode, JSON.stringify(body)).toBe(400);
        expect(JSON.stringify(r.json()), JSON.stringify(body)).toMatch(msg);
      }
      // A recovery password pasted as the ticket is refused without being echoed.
      const r = await post(helpdesk, plainId, { unlocked: true, ticket: pw.plain });
      expect(r.statusCode).toBe(400);
      expect(r.body).not.toContain(pw.plain);
      expect(r.json().message).toMatch(/looks like it contains a recovery password/);
    });
  });

  it('no: the key is marked "may not unlock" in lookup and search; a later yes clears it', async () => {
    await reveal(technician, plainId);
    const r = await post(technician, plainId, { unlocked: false, ticket: 'T-17' });
    expect(r.statusCode, r.body).toBe(200);
    const body = r.json();
    expect(body).toMatchObject({ unlocked: false, openedFinding: true, superseded: 0 });
    expect(body.key.mayNotUnlock).toBe(true);
    expect((await lookup(technician, ids.plain)).keys[0]!.mayNotUnlock).toBe(true);
    const search = await t.app.inject({ method: 'GET', url: '/api/v1/keys?q=FAKE-PLAIN', headers: technician.headers });
    expect(search.json()[0].mayNotUnlock).toBe(true);
    const open = (await findingsOf([plainId])).filter((f) => f.kind === 'did_not_unlock' && !f.resolved_at);
    expect(open).toHaveLength(1);
    // The findings queue shows it too, in words.
    const queue = await t.app.inject({ method: 'GET', url: `/api/v1/findings?clientId=${contoso}&open=true`, headers: technician.headers });
    expect(queue.statusCode, queue.body).toBe(200);
    expect(queue.json().map((f: { kind: string }) => f.kind)).toContain('did_not_unlock');
    // Saying no again opens nothing new.
    expect((await post(technician, plainId, { unlocked: false })).json().openedFinding).toBe(false);
    const events = await auditEvents(t, { action: 'key.unlock_failed', targetId: plainId });
    expect(events).toHaveLength(2);
    expect(events[1]!.ticket).toBe('T-17');
    expect(events[0]!.actionLabel).toBe('Key did not unlock the drive');
    // Yes after all (a second try worked): the mark goes.
    const yes = await post(technician, plainId, { unlocked: true });
    expect(yes.json().key.mayNotUnlock).toBe(false);
    expect((await findingsOf([plainId])).every((f) => f.resolved_at)).toBe(true);
  });

  it('a conflict: no on the first candidate ranks it below; yes on the other resolves the conflict and supersedes the rest', async () => {
    const before = await lookup(helpdesk, ids.conflict);
    expect(before.matches).toBe(2);
    expect(before.tryFirst).toBe(olderId);
    expect(await reveal(helpdesk, olderId)).toBe(pw.older);
    const no = await post(helpdesk, olderId, { unlocked: false });
    expect(no.statusCode, no.body).toBe(200);
    expect(no.json().tryFirst).toBe(newerId);
    const mid = await lookup(helpdesk, ids.conflict);
    expect(mid.tryFirst).toBe(newerId);
    expect(mid.keys.map((k) => k.id)).toEqual([newerId, olderId]);
    expect(mid.keys[1]!.mayNotUnlock).toBe(true);

    // The helpdesk who revealed only the older key cannot confirm the newer one.
    expect((await post(helpdesk, newerId, { unlocked: true })).statusCode).toBe(403);
    expect(await reveal(helpdesk, newerId)).toBe(pw.newer);
    const yes = await post(helpdesk, newerId, { unlocked: true, ticket: 'T-17' });
    expect(yes.statusCode, yes.body).toBe(200);
    expect(yes.json()).toMatchObject({ unlocked: true, superseded: 1, tryFirst: newerId });
    expect(yes.json().resolvedFindings).toBeGreaterThanOrEqual(1);
    expect(yes.json().key.state).toBe('disclosed');

    const after = await lookup(helpdesk, ids.conflict);
    expect(after.keys.map((k) => [k.id, k.state])).toEqual([
      [newerId, 'disclosed'],
      [olderId, 'superseded'],
    ]);
    expect(after.tryFirst).toBe(newerId);
    const finding = (await findingsOf([olderId])).find((f) => f.id === conflictFinding)!;
    expect(finding.resolved_at).not.toBeNull();
    const confirmed = await auditEvents(t, { action: 'key.unlock_confirmed', targetId: newerId });
    expect(confirmed).toHaveLength(1);
    expect(confirmed[0]!.details).toMatchObject({ keyId: ids.conflict, superseded: 1 });
    expect((await auditEvents(t, { action: 'key.superseded', targetId: olderId })).length).toBe(1);
    expect((await auditEvents(t, { action: 'finding.resolve', targetId: conflictFinding })).length).toBe(1);
  });
});
