import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENGINE } from './helpers/engine.js';
import { createLifecycleApp, type LifecycleApp } from './helpers/lifecycle.js';
import { owner as cliOwner } from './helpers/vault.js';
import { bytes, csvOf, randomKeyId, randomRecoveryPassword } from './helpers/keys.js';
import { expectNoLeak } from './helpers/http.js';
import type { Session } from './helpers/app.js';
import { totpCodeAt } from '../src/crypto/totp.js';
import { createRevealApprovalsRepo } from '../src/modules/reveal-approvals/reveal-approvals.repo.js';

/**
 * Two-person reveal over real HTTP (issue 19, item 4): a client's policy (off / required / tagged),
 * a request, a second person's approval with a fresh step-up, one reveal with the request id, and
 * what must never happen: approving one's own request (also through one's API token), an approver
 * from another client, an approval used twice (also in parallel), used for another key, or after it
 * expired; break-glass by anyone but an owner in person. Time moves with the test clock.
 */

const API = '/api/v1';
type Key = { keyId: string; password: string; device: string; recordId: string };

describe(`two-person reveal on ${ENGINE}`, () => {
  let lc: LifecycleApp;
  let contoso: string;
  let fabrikam: string;
  const keys: Record<'srv' | 'lap' | 'srv2' | 'exec' | 'fab', Key> = {
    srv: { keyId: randomKeyId(), password: randomRecoveryPassword(), device: 'FAKE-SRV1', recordId: '' },
    lap: { keyId: randomKeyId(), password: randomRecoveryPassword(), device: 'FAKE-LAP1', recordId: '' },
    srv2: { keyId: randomKeyId(), password: randomRecoveryPassword(), device: 'FAKE-SRV2', recordId: '' },
    exec: { keyId: randomKeyId(), password: randomRecoveryPassword(), device: 'FAKE-CEO1', recordId: '' },
    fab: { keyId: randomKeyId(), password: randomRecoveryPassword(), device: 'FAKE-FAB1', recordId: '' },
  };
  const passwords = () => Object.values(keys).map((k) => k.password);
  const s = {} as Record<'owner' | 'admin' | 'tech' | 'approver' | 'helpdesk' | 'fabTech' | 'auditor' | 'viewer' | 'scopedAdmin', Session>;
  const ids = {} as Record<keyof typeof s, string>;
  const emails = {} as Record<keyof typeof s, string>;
  let ownerSecret: string;
  let adminToken: string;

  const req = (method: 'GET' | 'POST' | 'PUT', url: string, who: Session | string, payload?: Record<string, unknown>) =>
    lc.app.inject({
      method,
      url: `${API}${url}`,
      headers: typeof who === 'string' ? { authorization: `Bearer ${who}` } : who.headers,
      ...(payload ? { payload } : {}),
    });
  const reveal = (who: Session | string, k: Key, extra: Record<string, unknown> = {}) =>
    req('POST', `/keys/${k.recordId}/reveal`, who, { reason: 'lost-pin', ticket: 'T-1001', ...extra });
  const ask = (who: Session | string, k: Key, extra: Record<string, unknown> = {}) =>
    req('POST', '/reveal-requests', who, { keyRecordId: k.recordId, reason: 'lost-pin', ticket: 'T-1001', ...extra });
  const approve = (who: Session | string, id: string) => req('POST', `/reveal-requests/${id}/approve`, who, {});
  const ok = (r: LightMyRequestResponse, status = 200) => {
    expect(r.statusCode, r.body).toBe(status);
    expectNoLeak(r, passwords());
    return r.json();
  };
  const setPolicy = async (body: Record<string, unknown>) => ok(await req('PUT', `/clients/${contoso}/reveal-policy`, s.admin, body));
  const audit = (action: string) => lc.c.audit.list(cliOwner, { action, limit: 1000 });
  const outbox = (type: string) => lc.c.database.db.selectFrom('notification_outbox').selectAll().where('event_type', '=', type).execute();
  const stepUp = async (who: Session, secret: string) => {
    const code = totpCodeAt(secret, lc.clock.t);
    // Each time step works once: a test that steps up twice in one step clears the replay marker.
    await lc.c.database.db.updateTable('users').set({ totp_last_step: null }).execute();
    const r = await lc.app.inject({ method: 'POST', url: `${API}/auth/step-up`, headers: who.headers, payload: { code } });
    expect(r.statusCode, r.body).toBe(200);
  };
  const enrolMfa = async (who: Session): Promise<string> => {
    const secret = (await req('POST', '/me/mfa', who)).json().secret as string;
    const r = await req('POST', '/me/mfa/confirm', who, { code: totpCodeAt(secret, lc.clock.t) });
    expect(r.statusCode, r.body).toBe(200);
    return secret;
  };

  beforeAll(async () => {
    // The test clock starts now (authenticator codes are computed for its time) and moves on demand.
    lc = await createLifecycleApp(new Date().toISOString(), { KEYWARDEN_SESSION_IDLE_MINUTES: '1440', KEYWARDEN_SESSION_MAX_HOURS: '720' });
    contoso = (await lc.c.clients.create(cliOwner, { name: 'Contoso' })).id;
    fabrikam = (await lc.c.clients.create(cliOwner, { name: 'Fabrikam' })).id;
    const { fab, ...mine } = keys;
    await lc.c.imports.importFile(cliOwner, 'Contoso', { fileName: 'c.csv', bytes: bytes(csvOf(Object.values(mine))) });
    await lc.c.imports.importFile(cliOwner, 'Fabrikam', { fileName: 'f.csv', bytes: bytes(csvOf([fab])) });
    for (const k of Object.values(keys)) k.recordId = (await lc.c.keys.searchByKeyId(cliOwner, k.keyId))[0]!.id;
    const people: [keyof typeof s, Parameters<LifecycleApp['addUser']>[0], 'all' | string[]][] = [
      ['owner', 'owner', 'all'],
      ['admin', 'admin', 'all'],
      ['tech', 'technician', [contoso]],
      ['approver', 'technician', [contoso]],
      ['helpdesk', 'helpdesk', [contoso]],
      ['fabTech', 'technician', [fabrikam]],
      ['auditor', 'auditor', [contoso]],
      ['viewer', 'client-viewer', [contoso]],
      ['scopedAdmin', 'admin', [contoso]],
    ];
    for (const [name, role, clients] of people) {
      const u = await lc.addUser(role, clients);
      ids[name] = u.id;
      emails[name] = u.email;
      s[name] = await lc.signIn(u.email);
    }
    ownerSecret = await enrolMfa(s.owner);
    // An API token of a Contoso admin (an integration): it may ask and reveal, never approve.
    const t = await req('POST', '/tokens', s.scopedAdmin, { name: 'psa integration', role: 'admin', clients: [contoso] });
    expect(t.statusCode, t.body).toBe(201);
    adminToken = t.json().token;
  });
  afterAll(() => lc?.close());

  it('off by default: the policy says so and a technician reveals directly', async () => {
    expect(ok(await req('GET', `/clients/${contoso}/reveal-policy`, s.tech))).toMatchObject({ mode: 'off', tags: [], approvalMinutes: 15, requestHours: 4 });
    expect(ok(await req('GET', `/keys/${keys.lap.recordId}/approval`, s.tech))).toMatchObject({ required: false, requests: [] });
    const r = await reveal(s.tech, keys.lap);
    expect(r.statusCode, r.body).toBe(200);
    expect(r.json().key.recoveryPassword).toBe(keys.lap.password);
    // Nobody asks for approval of a key that needs none.
    expect((await ask(s.tech, keys.lap)).statusCode).toBe(409);
  });

  it('only people who manage the client set the policy; it is audited', async () => {
    expect((await req('PUT', `/clients/${contoso}/reveal-policy`, s.tech, { mode: 'off' })).statusCode).toBe(403);
    expect((await req('PUT', `/clients/${fabrikam}/reveal-policy`, s.scopedAdmin, { mode: 'required' })).statusCode).toBe(404);
    expect((await req('PUT', `/clients/${contoso}/reveal-policy`, s.admin, { mode: 'tagged', tags: [] })).statusCode).toBe(400);
    expect((await req('PUT', `/clients/${contoso}/reveal-policy`, s.admin, { mode: 'tagged', tags: ['Not A Tag!'] })).statusCode).toBe(400);
    expect(await setPolicy({ mode: 'required' })).toMatchObject({ mode: 'required', updatedBy: expect.any(String) });
    const [e] = await audit('reveal_policy.update');
    expect(e).toMatchObject({ clientId: contoso, outcome: 'success', details: { from: 'off', to: 'required' } });
  });

  let flowId = '';
  it('required: a reveal answers "needs a second person\'s approval" without anything secret; the request is audited and notified with a console link', async () => {
    const r = await reveal(s.tech, keys.srv);
    expect(r.statusCode).toBe(403);
    expect(r.json()).toMatchObject({ error: 'approval_required', details: { keyRecordId: keys.srv.recordId } });
    expect(r.json().message).toMatch(/second person's approval/);
    expectNoLeak(r, passwords());
    const denied = (await audit('key.reveal')).find((e) => e.outcome === 'denied' && e.targetId === keys.srv.recordId);
    expect(denied?.details).toMatchObject({ problem: 'approval required' });

    expect(ok(await req('GET', `/keys/${keys.srv.recordId}/approval`, s.tech))).toMatchObject({ required: true, requests: [] });
    // Same validation as a reveal: a pasted recovery password is refused, and never echoed.
    for (const bad of [{ ticket: keys.srv.password }, { note: `the key is ${keys.srv.password}` }, { reason: 'because' }]) {
      const b = await ask(s.tech, keys.srv, bad);
      expect(b.statusCode, b.body).toBe(400);
      expectNoLeak(b, passwords());
    }
    // Another client's key: not found, as if absent.
    expect((await ask(s.tech, keys.fab)).statusCode).toBe(404);

    const created = ok(await ask(s.tech, keys.srv, { note: 'user on the phone, laptop at the desk' }), 201);
    expect(created).toMatchObject({
      status: 'pending',
      mine: true,
      mayDecide: false,
      keyId: keys.srv.keyId,
      device: { name: keys.srv.device },
      ticket: 'T-1001',
    });
    flowId = created.id;
    expect(created.path).toBe(`/requests/${flowId}`);
    const [e] = await audit('reveal_request.create');
    expect(e).toMatchObject({ targetId: flowId, actorId: ids.tech, reasonCode: 'lost-pin', ticket: 'T-1001', clientId: contoso });
    const [n] = await outbox('key.reveal_requested');
    expect(n).toBeDefined();
    const details = JSON.parse(n!.details) as Record<string, unknown>;
    expect(details.open).toBe(`/requests/${flowId}`);
    expect(String(details.open)).not.toMatch(/approve|token|code=/i);
    for (const p of passwords()) expect(n!.details + n!.subject).not.toContain(p);

    // Waiting: the reveal with the request id still answers "needs approval".
    const early = await reveal(s.tech, keys.srv, { approvalRequestId: flowId });
    expect(early.statusCode).toBe(403);
    expect(early.json()).toMatchObject({ error: 'approval_required', details: { requestId: flowId } });
  });

  it('the requester cannot approve their own request, nor can an approver from another client (404) or an auditor', async () => {
    const self = await approve(s.tech, flowId);
    expect(self.statusCode).toBe(403);
    expect(self.json().message).toMatch(/second person/);
    expect((await approve(s.fabTech, flowId)).statusCode).toBe(404);
    expect((await req('GET', `/reveal-requests/${flowId}`, s.fabTech)).statusCode).toBe(404);
    expect(ok(await req('GET', '/reveal-requests', s.fabTech)).map((x: { id: string }) => x.id)).not.toContain(flowId);
    expect((await approve(s.auditor, flowId)).statusCode).toBe(403);
    // A client-viewer may approve only where the owner lets client staff reveal.
    expect((await approve(s.viewer, flowId)).statusCode).toBe(403);
    expect((await req('GET', `/reveal-requests/${flowId}`, s.tech)).json().status).toBe('pending');
  });

  it('a second technician of the client approves; the requester reveals once; the audit names both and the request', async () => {
    const queue = ok(await req('GET', '/reveal-requests?status=pending', s.approver));
    expect(queue.find((x: { id: string }) => x.id === flowId)).toMatchObject({ mayDecide: true, mine: false });
    const a = ok(await approve(s.approver, flowId));
    expect(a).toMatchObject({ status: 'approved', decidedBy: expect.any(String) });
    expect(Date.parse(a.approvalExpiresAt) - lc.clock.t).toBe(15 * 60_000);
    expect((await approve(s.helpdesk, flowId)).statusCode).toBe(409);

    // Someone else cannot use the approval.
    expect((await reveal(s.approver, keys.srv, { approvalRequestId: flowId })).statusCode).toBe(403);
    const r = await reveal(s.tech, keys.srv, { approvalRequestId: flowId });
    expect(r.statusCode, r.body).toBe(200);
    expect(r.json().key.recoveryPassword).toBe(keys.srv.password);
    const ev = (await audit('key.reveal')).find((e) => e.outcome === 'success' && e.targetId === keys.srv.recordId && e.actorId === ids.tech);
    expect(ev?.details).toMatchObject({ approvalRequestId: flowId, requestedBy: expect.stringContaining('technician'), approvedBy: a.decidedBy });
    expect(ev?.details?.approvedBy).not.toBe(ev?.details?.requestedBy);

    const again = await reveal(s.tech, keys.srv, { approvalRequestId: flowId });
    expect(again.statusCode).toBe(409);
    expect((await req('GET', `/reveal-requests/${flowId}`, s.tech)).json()).toMatchObject({ status: 'used', usedAt: expect.any(String) });
    // Without a request id the next reveal needs approval again.
    expect((await reveal(s.tech, keys.srv)).json().error).toBe('approval_required');
  });

  it('a helpdesk person may approve; an approval cannot reveal another key', async () => {
    const id = ok(await ask(s.tech, keys.srv2), 201).id as string;
    ok(await approve(s.helpdesk, id));
    const other = await reveal(s.tech, keys.exec, { approvalRequestId: id });
    expect(other.statusCode).toBe(403);
    expect(other.json().message).toMatch(/another key/);
    expectNoLeak(other, passwords());
    // Refused without spending it: it still reveals the key it was approved for.
    const r = await reveal(s.tech, keys.srv2, { approvalRequestId: id });
    expect(r.statusCode, r.body).toBe(200);
    expect(r.json().key.recoveryPassword).toBe(keys.srv2.password);
  });

  it('an approval reveals only with the ticket it was asked for (case, spaces and "#" aside)', async () => {
    const id = ok(await ask(s.tech, keys.srv2), 201).id as string;
    ok(await approve(s.helpdesk, id));
    for (const ticket of ['T-2002', undefined]) {
      const other = await reveal(s.tech, keys.srv2, { approvalRequestId: id, ticket });
      expect(other.statusCode, other.body).toBe(409);
      expect(other.json().message).toMatch(/approval was given for ticket T-1001/);
      expect(other.json().fields).toEqual([expect.objectContaining({ field: 'ticket' })]);
      expectNoLeak(other, passwords());
    }
    // Refused without spending it: the same ticket, typed differently, reveals once.
    const r = await reveal(s.tech, keys.srv2, { approvalRequestId: id, ticket: ' #t-1001' });
    expect(r.statusCode, r.body).toBe(200);
    expect(r.json().key.recoveryPassword).toBe(keys.srv2.password);
  });

  it('requests expire after hours, approvals after minutes (test clock)', async () => {
    const stale = ok(await ask(s.tech, keys.exec), 201).id as string;
    lc.clock.advanceHours(4);
    expect((await approve(s.approver, stale)).statusCode).toBe(409);
    expect((await req('GET', `/reveal-requests/${stale}`, s.tech)).json().status).toBe('expired');

    const id = ok(await ask(s.tech, keys.exec), 201).id as string;
    ok(await approve(s.approver, id));
    lc.clock.t += 16 * 60_000;
    const late = await reveal(s.tech, keys.exec, { approvalRequestId: id });
    expect(late.statusCode).toBe(403);
    expect(late.json()).toMatchObject({ error: 'approval_required', details: { requestId: id } });
    expect(late.json().message).toMatch(/expired/);
  });

  it('two parallel reveals with one approval: exactly one reveals, both are audited', async () => {
    const id = ok(await ask(s.tech, keys.exec), 201).id as string;
    ok(await approve(s.approver, id));
    const answers = await Promise.all([0, 1, 2].map(() => reveal(s.tech, keys.exec, { approvalRequestId: id })));
    const codes = answers.map((r) => r.statusCode).sort();
    expect(codes).toEqual([200, 409, 409]);
    const won = answers.find((r) => r.statusCode === 200)!;
    expect(won.json().key.recoveryPassword).toBe(keys.exec.password);
    for (const r of answers.filter((x) => x.statusCode !== 200)) expectNoLeak(r, passwords());
    const events = (await audit('key.reveal')).filter(
      (e) => e.details?.approvalRequestId === id || (e.outcome === 'denied' && e.targetId === keys.exec.recordId),
    );
    expect(events.filter((e) => e.outcome === 'success')).toHaveLength(1);
  });

  it('two approvers at once: one decides, the other finds it decided; two transactions spending one approval: one wins', async () => {
    const id = ok(await ask(s.tech, keys.exec), 201).id as string;
    const both = await Promise.all([approve(s.approver, id), req('POST', `/reveal-requests/${id}/deny`, s.helpdesk, {})]);
    expect(both.map((r) => r.statusCode).sort()).toEqual([200, 409]);
    const status = (await req('GET', `/reveal-requests/${id}`, s.tech)).json().status as string;
    expect(['approved', 'denied']).toContain(status);
    const decisions = (await audit('reveal_request.approve')).concat(await audit('reveal_request.deny')).filter((e) => e.targetId === id);
    expect(decisions).toHaveLength(1);

    // Below the per-person reveal lock: the conditional update alone lets one of two transactions spend it.
    const id2 = ok(await ask(s.tech, keys.exec), 201).id as string;
    ok(await approve(s.approver, id2));
    const repo = createRevealApprovalsRepo();
    const spend = () =>
      lc.c.database.db.transaction().execute(async (t) => {
        const won = await repo.use(t, id2, keys.exec.recordId, ids.tech, lc.clock.now());
        // Held open a moment, so the other transaction runs while this one has not committed.
        await new Promise((r) => setTimeout(r, 50));
        return won;
      });
    expect((await Promise.all([spend(), spend()])).filter(Boolean)).toHaveLength(1);
  });

  it('an API token asks and reveals after approval; neither its creator nor the token approves', async () => {
    const id = ok(await ask(adminToken, keys.exec), 201).id as string;
    expect((await req('GET', `/reveal-requests/${id}`, s.scopedAdmin)).json()).toMatchObject({ mine: true, requestedByToken: true, mayDecide: false });
    const creator = await approve(s.scopedAdmin, id);
    expect(creator.statusCode).toBe(403);
    expect(creator.json().message).toMatch(/API token of yours/);
    expect((await approve(adminToken, id)).statusCode).toBe(403);
    // A token never decides, even for someone else's request.
    const other = ok(await ask(s.tech, keys.srv2), 201).id as string;
    expect((await approve(adminToken, other)).statusCode).toBe(403);
    expect((await req('POST', `/reveal-requests/${other}/deny`, adminToken, {})).statusCode).toBe(403);
    ok(await req('POST', `/reveal-requests/${other}/deny`, s.approver, { note: 'no ticket for this' }));
    expect((await reveal(s.tech, keys.srv2, { approvalRequestId: other })).statusCode).toBe(403);

    ok(await approve(s.approver, id));
    // The person behind the token did not ask: the approval belongs to the token.
    expect((await reveal(s.scopedAdmin, keys.exec, { approvalRequestId: id })).statusCode).toBe(403);
    const r = await reveal(adminToken, keys.exec, { approvalRequestId: id });
    expect(r.statusCode, r.body).toBe(200);
    expect(r.json().key.recoveryPassword).toBe(keys.exec.password);
  });

  it('the requester cancels; nobody else can', async () => {
    const id = ok(await ask(s.tech, keys.exec), 201).id as string;
    expect((await req('POST', `/reveal-requests/${id}/cancel`, s.approver)).statusCode).toBe(403);
    expect(ok(await req('POST', `/reveal-requests/${id}/cancel`, s.tech)).status).toBe('cancelled');
    expect((await approve(s.approver, id)).statusCode).toBe(409);
    expect((await audit('reveal_request.cancel'))[0]).toMatchObject({ targetId: id, actorId: ids.tech });
  });

  it('client staff approve only where the owner lets them reveal', async () => {
    const id = ok(await ask(s.tech, keys.exec), 201).id as string;
    expect((await approve(s.viewer, id)).statusCode).toBe(403);
    await lc.c.clients.update(cliOwner, contoso, { viewerCanReveal: true });
    // Reveal rights are read at sign-in: the viewer signs in again.
    const viewer = await lc.signIn(emails.viewer);
    expect(ok(await approve(viewer, id)).status).toBe('approved');
    await lc.c.clients.update(cliOwner, contoso, { viewerCanReveal: false });
  });

  it('approving and denying need a fresh step-up from a person with an authenticator', async () => {
    const secret = await enrolMfa(s.approver);
    const id = ok(await ask(s.tech, keys.exec), 201).id as string;
    lc.clock.t += 16 * 60_000;
    const r = await approve(s.approver, id);
    expect(r.statusCode).toBe(403);
    expect(r.json().error).toBe('step_up_required');
    expect((await req('POST', `/reveal-requests/${id}/deny`, s.approver, {})).json().error).toBe('step_up_required');
    await stepUp(s.approver, secret);
    expect(ok(await approve(s.approver, id)).status).toBe('approved');
  });

  it('tagged: only devices with one of the tags need approval; tags are set by those who manage the client, audited', async () => {
    const srvDevice = (await lc.c.devices.list(cliOwner, { q: 'fake-srv1' }))[0]!.id;
    expect((await req('PUT', `/devices/${srvDevice}/tags`, s.tech, { tags: ['server'] })).statusCode).toBe(403);
    const fabDevice = (await lc.c.devices.list(cliOwner, { q: 'fake-fab1' }))[0]!.id;
    expect((await req('PUT', `/devices/${fabDevice}/tags`, s.scopedAdmin, { tags: ['server'] })).statusCode).toBe(404);
    expect(ok(await req('PUT', `/devices/${srvDevice}/tags`, s.scopedAdmin, { tags: ['Server', 'server', 'rack-2'] }))).toEqual({
      deviceId: srvDevice,
      tags: ['rack-2', 'server'],
    });
    expect(ok(await req('GET', `/devices/${srvDevice}/tags`, s.tech)).tags).toEqual(['rack-2', 'server']);
    expect(ok(await req('GET', `/clients/${contoso}/device-tags`, s.tech))).toEqual([
      { deviceId: srvDevice, deviceName: keys.srv.device, tags: ['rack-2', 'server'] },
    ]);
    expect((await audit('device.tags'))[0]).toMatchObject({ targetId: srvDevice, details: { to: ['rack-2', 'server'] } });

    await setPolicy({ mode: 'tagged', tags: ['server', 'executive'] });
    expect((await reveal(s.tech, keys.srv)).json().error).toBe('approval_required');
    expect((await reveal(s.tech, keys.lap)).statusCode).toBe(200);
    expect((await reveal(s.tech, keys.srv2)).statusCode).toBe(200);
    await setPolicy({ mode: 'off' });
    expect((await reveal(s.tech, keys.srv)).statusCode).toBe(200);
    await setPolicy({ mode: 'required' });
  });

  it('break-glass: an owner in person, with a fresh step-up and a reason; audited loudly and notified', async () => {
    // Not an admin, not an owner's API token.
    const adminTry = await reveal(s.admin, keys.lap, { breakGlassReason: 'server down, nobody else awake' });
    expect(adminTry.statusCode).toBe(403);
    expect((await reveal(adminToken, keys.lap, { breakGlassReason: 'server down, nobody else awake' })).statusCode).toBe(403);
    // Stale step-up.
    lc.clock.t += 16 * 60_000;
    const stale = await reveal(s.owner, keys.lap, { breakGlassReason: 'server down, nobody else awake' });
    expect(stale.statusCode).toBe(403);
    expect(stale.json().error).toBe('step_up_required');
    await stepUp(s.owner, ownerSecret);
    expect((await reveal(s.owner, keys.lap, { breakGlassReason: 'x' })).statusCode).toBe(400);
    expect((await reveal(s.owner, keys.lap, { breakGlassReason: `pasted ${keys.lap.password}` })).statusCode).toBe(400);
    // Without break-glass an owner asks like everyone else.
    expect((await reveal(s.owner, keys.lap)).json().error).toBe('approval_required');
    const r = await reveal(s.owner, keys.lap, { breakGlassReason: 'server down, nobody else awake' });
    expect(r.statusCode, r.body).toBe(200);
    expect(r.json().key.recoveryPassword).toBe(keys.lap.password);
    const [bg] = await audit('key.break_glass');
    expect(bg).toMatchObject({
      actorId: ids.owner,
      targetId: keys.lap.recordId,
      clientId: contoso,
      details: { breakGlassReason: 'server down, nobody else awake' },
    });
    const ev = (await audit('key.reveal')).find((e) => e.outcome === 'success' && e.actorId === ids.owner);
    expect(ev?.details).toMatchObject({ breakGlass: true });
    const [n] = await outbox('key.break_glass');
    expect(n?.subject).toMatch(/BREAK-GLASS/);
    expect(n!.details + n!.subject).not.toContain(keys.lap.password);
  });

  it('lists: approvers see their clients only; the requester sees their own; no password anywhere', async () => {
    const all = ok(await req('GET', '/reveal-requests', s.owner));
    expect(all.length).toBeGreaterThan(5);
    const fab = ok(await req('GET', '/reveal-requests', s.fabTech));
    expect(fab).toEqual([]);
    expect((await req('GET', `/reveal-requests?clientId=${fabrikam}`, s.tech)).statusCode).toBe(403);
    const mine = ok(await req('GET', '/reveal-requests?mine=true', s.approver));
    expect(mine.every((x: { mine: boolean }) => x.mine)).toBe(true);
    expect((await req('GET', '/reveal-requests', s.auditor)).statusCode).toBe(403);
    // The audit log and the requests hold no password.
    const text = JSON.stringify(await lc.c.audit.list(cliOwner, { limit: 5000 })) + JSON.stringify(all);
    for (const p of passwords()) expect(text).not.toContain(p);
  });
});
