import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LightMyRequestResponse } from 'fastify';
import { systemActor } from '../src/modules/authz/authz.js';
import { migrateDown, migrateToLatest } from '../src/db/migrate.js';
import { createSettingsRepo, REQUIRE_MFA_KEY, requireMfa } from '../src/modules/settings/settings.repo.js';
import { createNotifyVault, startSmtp, type NotifyVault, type SmtpSink } from './helpers/notify.js';
import { PASSWORD, createTestApp, sessionFrom, type Session, type TestApp } from './helpers/app.js';
import { totpNow } from './helpers/http.js';
import { owner as cliOwner } from './helpers/vault.js';
import { ENGINE } from './helpers/engine.js';

/**
 * Invitations by e-mail (issue 19, item 3), over real HTTP with a real SMTP server: the link is
 * taken from the captured mail and followed. Every attack named in the issue is performed here.
 */

const API = '/api/v1';
const PUBLIC_URL = 'http://keywarden.test';
const GENERIC = /This invitation link is not valid/;
const LINK = /(http:\/\/keywarden\.test\/#\/invitation\/(kwi_[A-Za-z0-9_-]+))/;
const NEW_PASSWORD = 'a long invited password 42';

let v: NotifyVault;
let smtp: SmtpSink;
let ownerS: Session;
let clientA: string;
let clientB: string;
let n = 0;

const inject = (method: 'GET' | 'POST' | 'DELETE' | 'PATCH', url: string, s: Session | null, payload?: unknown, remoteAddress?: string) =>
  v.app.inject({
    method,
    url: `${API}${url}`,
    headers: s?.headers ?? {},
    ...(payload !== undefined ? { payload: payload as object } : {}),
    ...(remoteAddress ? { remoteAddress } : {}),
  });

const fresh = () => `invitee-${++n}-${Date.now().toString(36)}@example.test`;

async function invite(s: Session, body: Record<string, unknown>): Promise<LightMyRequestResponse> {
  return inject('POST', '/invitations', s, body);
}

/** The link in the last mail to this address. */
function linkIn(to: string): { link: string; token: string } {
  const mail = [...smtp.mails].reverse().find((m) => m.to.includes(to));
  if (!mail) throw new Error(`no mail to ${to}`);
  const m = LINK.exec(mail.text);
  if (!m) throw new Error('no invitation link in the mail');
  return { link: m[1]!, token: m[2]! };
}

const accept = (token: string, body: Record<string, unknown> = {}, remoteAddress?: string) =>
  inject('POST', '/invitations/accept', null, { token, password: NEW_PASSWORD, name: 'Ivy Invitee', ...body }, remoteAddress);

beforeAll(async () => {
  smtp = await startSmtp({ user: 'u', pass: 'p' });
  v = await createNotifyVault({}, { KEYWARDEN_PUBLIC_URL: PUBLIC_URL });
  clientA = (await v.container.clients.create(cliOwner, { name: 'Alpine Ski House' })).id;
  clientB = (await v.container.clients.create(cliOwner, { name: 'Coho Winery' })).id;
  await v.container.notifications.createChannel(cliOwner, {
    clientId: null,
    name: 'MSP mail',
    kind: 'email',
    host: '127.0.0.1',
    port: smtp.port,
    starttls: 'ignore',
    from: 'keywarden@msp.example',
    to: ['soc@msp.example'],
  });
  ownerS = await v.signInAs('owner', 'all');
});

afterAll(async () => {
  await v?.close();
  await smtp?.close();
});

describe('invitations', () => {
  it('happy path: the mail carries a one-time link in the fragment; the invitee sees the offer, sets a password and is signed in with the invited role', async () => {
    const email = fresh();
    const res = await invite(ownerS, { email, role: 'technician', clients: [clientA] });
    expect(res.statusCode, res.body).toBe(201);
    const body = res.json();
    expect(body.mail).toEqual({ sent: true, reason: null });
    expect(body.invitation).toMatchObject({ email, role: 'technician', clients: [clientA], status: 'pending', mail: 'sent' });
    const { link, token } = linkIn(email);
    // The token travels only in the fragment: never in a query string.
    expect(link).toBe(`${PUBLIC_URL}/#/invitation/${token}`);
    expect(link).not.toContain('?');
    expect(body.token).toBe(token);
    expect(body.link).toBe(link);

    // Stored as its SHA-256 only.
    const rows = await v.container.database.db.selectFrom('invitations').selectAll().execute();
    expect(JSON.stringify(rows)).not.toContain(token);

    // The list never carries a token.
    const list = await inject('GET', '/invitations', ownerS);
    expect(list.statusCode).toBe(200);
    expect(list.body).not.toContain(token);
    expect(list.json().map((i: { email: string }) => i.email)).toContain(email);

    const preview = await inject('POST', '/invitations/preview', null, { token });
    expect(preview.statusCode, preview.body).toBe(200);
    expect(preview.json()).toMatchObject({ email, role: 'technician', clients: [{ id: clientA, name: 'Alpine Ski House' }], awaitingApproval: false });
    expect(preview.json().invitedBy).toMatch(/notify-owner/);

    // The password rules of any new password.
    expect((await accept(token, { password: 'short' })).statusCode).toBe(400);

    const ok = await accept(token);
    expect(ok.statusCode, ok.body).toBe(200);
    expect(ok.json()).toMatchObject({ user: { email, name: 'Ivy Invitee', role: 'technician', clients: [clientA] }, mfaEnrolmentRequired: false });
    const invitee = sessionFrom(ok);
    const me = await inject('GET', '/me', invitee);
    expect(me.json()).toMatchObject({ actor: { role: 'technician', clients: [clientA] }, secondFactorMissing: false });
    // Their own password signs them in later.
    expect((await inject('POST', '/auth/login', null, { email, password: NEW_PASSWORD })).statusCode).toBe(200);

    // Used: gone from the list; the link is dead.
    expect((await inject('GET', '/invitations', ownerS)).json().map((i: { email: string }) => i.email)).not.toContain(email);
    const again = await accept(token);
    expect(again.statusCode).toBe(400);
    expect(again.json().message).toMatch(GENERIC);

    // Audited, never with the token; no log line carries it.
    const events = await v.container.audit.list(cliOwner, { limit: 1000 });
    const mine = events.filter((e) => JSON.stringify(e).includes(email));
    expect(mine.map((e) => e.action)).toEqual(expect.arrayContaining(['user.invited', 'invitation.accepted', 'user.create', 'auth.login']));
    expect(JSON.stringify(events)).not.toContain(token);
    expect(v.logs.join('\n')).not.toContain(token);
  });

  it('expired, revoked, used and unknown links all answer the same words', async () => {
    const messages: string[] = [];
    // Unknown.
    const unknown = await accept('kwi_' + 'A'.repeat(43));
    expect(unknown.statusCode).toBe(400);
    messages.push(unknown.json().message);

    // Revoked.
    const r1 = (await invite(ownerS, { email: fresh(), role: 'helpdesk', clients: [clientA] })).json();
    const del = await inject('DELETE', `/invitations/${r1.invitation.id}`, ownerS);
    expect(del.statusCode, del.body).toBe(200);
    expect((await inject('DELETE', `/invitations/${r1.invitation.id}`, ownerS)).statusCode).toBe(409);
    const revoked = await accept(r1.token);
    messages.push(revoked.json().message);
    expect((await inject('POST', '/invitations/preview', null, { token: r1.token })).json().message).toBe(unknown.json().message);

    // Expired (the vault's clock moves instead of the test waiting).
    const r2 = (await invite(ownerS, { email: fresh(), role: 'helpdesk', clients: [clientA], expiresInHours: 1 })).json();
    v.clock.advance(61 * 60_000);
    try {
      const expired = await accept(r2.token);
      messages.push(expired.json().message);
    } finally {
      v.clock.advance(-61 * 60_000);
    }
    ownerS = await v.signInAs('owner', 'all');

    // Used.
    const r3 = (await invite(ownerS, { email: fresh(), role: 'helpdesk', clients: [clientA] })).json();
    expect((await accept(r3.token)).statusCode).toBe(200);
    messages.push((await accept(r3.token)).json().message);

    expect(new Set(messages).size).toBe(1);
    expect(messages[0]).toMatch(GENERIC);
    expect((await invite(ownerS, { email: fresh(), role: 'helpdesk', clients: [clientA], expiresInHours: 24 * 15 })).statusCode).toBe(400);
  });

  it('resend: a new link by mail, the old one dead', async () => {
    const email = fresh();
    const first = (await invite(ownerS, { email, role: 'auditor', clients: [clientA] })).json();
    const again = await inject('POST', `/invitations/${first.invitation.id}/resend`, ownerS, {});
    expect(again.statusCode, again.body).toBe(200);
    const { token } = linkIn(email);
    expect(token).toBe(again.json().token);
    expect(token).not.toBe(first.token);
    expect((await accept(first.token)).json().message).toMatch(GENERIC);
    expect((await accept(token)).statusCode).toBe(200);
    const events = await v.container.audit.list(cliOwner, { action: 'invitation.resent', limit: 100 });
    expect(events.some((e) => e.targetId === first.invitation.id)).toBe(true);
    expect(JSON.stringify(events)).not.toContain(token);
  });

  it('a parallel burst of acceptances makes one user: one wins, the rest are refused', async () => {
    const email = fresh();
    const { token } = (await invite(ownerS, { email, role: 'technician', clients: [clientB] })).json();
    const second = await v.secondProcess();
    const results = await Promise.allSettled([
      ...Array.from({ length: 4 }, (_, i) => accept(token, { name: `Racer ${i}` })),
      ...Array.from({ length: 2 }, () => second.invitations.accept(token, { password: NEW_PASSWORD, ip: '127.0.0.2', userAgent: null })),
    ]);
    const wins = results.filter((r) => (r.status === 'fulfilled' ? ('statusCode' in r.value ? r.value.statusCode === 200 : true) : false));
    expect(wins).toHaveLength(1);
    for (const r of results) {
      if (r.status === 'rejected') expect(String((r.reason as Error).message)).toMatch(GENERIC);
      else if ('statusCode' in r.value && r.value.statusCode !== 200) expect(r.value.json().message).toMatch(GENERIC);
    }
    const users = await v.container.database.db.selectFrom('users').select('id').where('email', '=', email).execute();
    expect(users).toHaveLength(1);
    const accepted = await v.container.audit.list(cliOwner, { action: 'invitation.accepted', outcome: 'success', limit: 1000 });
    expect(accepted.filter((e) => JSON.stringify(e.details).includes(email))).toHaveLength(1);
  });

  it("the grant is checked again at acceptance against the inviter's reach of now: narrowed or disabled, the invitation is void", async () => {
    const inviterEmail = fresh();
    const inviter = await v.container.identity.createUser(systemActor('test'), { email: inviterEmail, password: PASSWORD, role: 'owner', clients: 'all' });
    const s = sessionFrom(await inject('POST', '/auth/login', null, { email: inviterEmail, password: PASSWORD }));
    const narrowed = (await invite(s, { email: fresh(), role: 'technician', clients: [clientA] })).json();
    const disabledOne = (await invite(s, { email: fresh(), role: 'technician', clients: [clientA] })).json();

    // Narrowed to client B only: client A is no longer theirs to give.
    expect((await inject('PATCH', `/users/${inviter.id}`, ownerS, { clients: [clientB] })).statusCode).toBe(200);
    const r1 = await accept(narrowed.token);
    expect(r1.statusCode).toBe(400);
    expect(r1.json().message).toMatch(GENERIC);
    // The invitee is not even shown the offer.
    expect((await inject('POST', '/invitations/preview', null, { token: disabledOne.token })).statusCode).toBe(400);

    // Given back, then disabled.
    expect((await inject('PATCH', `/users/${inviter.id}`, ownerS, { clients: 'all' })).statusCode).toBe(200);
    expect((await inject('PATCH', `/users/${inviter.id}`, ownerS, { status: 'disabled' })).statusCode).toBe(200);
    expect((await accept(disabledOne.token)).json().message).toMatch(GENERIC);
    const failures = await v.container.audit.list(cliOwner, { action: 'invitation.accepted', outcome: 'failure', limit: 1000 });
    expect(failures.some((e) => e.targetId === narrowed.invitation.id)).toBe(true);
    expect(failures.some((e) => e.targetId === disabledOne.invitation.id)).toBe(true);
  });

  it('escalation: nobody invites beyond their own role and clients; out-of-reach invitations are invisible', async () => {
    // Admins invite (user:invite) but do not manage users: never an owner, never beyond their own role.
    const admin = await v.signInAs('admin', 'all');
    expect((await invite(admin, { email: fresh(), role: 'owner', clients: 'all' })).statusCode).toBe(403);
    expect((await invite(admin, { email: fresh(), role: 'owner', clients: [clientA] })).statusCode).toBe(403);
    const byAdmin = await invite(admin, { email: fresh(), role: 'technician', clients: [clientA] });
    expect(byAdmin.statusCode, byAdmin.body).toBe(201);
    expect((await invite(admin, { email: fresh(), role: 'admin', clients: [clientB] })).statusCode).toBe(201);
    const adminList = (await inject('GET', '/invitations', admin)).json() as { id: string; role: string }[];
    expect(adminList.some((i) => i.id === byAdmin.json().invitation.id)).toBe(true);
    // Invitations to an owner are outside an admin's reach: not listed.
    expect(adminList.every((i) => i.role !== 'owner')).toBe(true);
    expect((await inject('GET', '/users', admin)).statusCode).toBe(403);
    // The invitee becomes what the admin invited, nothing more.
    const accepted = await accept(byAdmin.json().token);
    expect(accepted.statusCode, accepted.body).toBe(200);
    expect(accepted.json().user).toMatchObject({ role: 'technician', clients: [clientA] });
    // An admin limited to client A invites for client A only.
    const limitedAdminEmail = fresh();
    await v.container.identity.createUser(systemActor('test'), { email: limitedAdminEmail, password: PASSWORD, role: 'admin', clients: [clientA] });
    const limitedAdmin = sessionFrom(await inject('POST', '/auth/login', null, { email: limitedAdminEmail, password: PASSWORD }));
    expect((await invite(limitedAdmin, { email: fresh(), role: 'helpdesk', clients: [clientB] })).statusCode).toBe(400);
    expect((await invite(limitedAdmin, { email: fresh(), role: 'helpdesk', clients: 'all' })).statusCode).toBe(403);
    expect((await invite(limitedAdmin, { email: fresh(), role: 'helpdesk', clients: [clientA] })).statusCode).toBe(201);

    // An owner limited to client A.
    const limitedEmail = fresh();
    await v.container.identity.createUser(systemActor('test'), { email: limitedEmail, password: PASSWORD, role: 'owner', clients: [clientA] });
    const limited = sessionFrom(await inject('POST', '/auth/login', null, { email: limitedEmail, password: PASSWORD }));
    const otherClient = await invite(limited, { email: fresh(), role: 'technician', clients: [clientB] });
    expect(otherClient.statusCode).toBe(400);
    expect(otherClient.json().message).toMatch(/No such client/);
    expect((await invite(limited, { email: fresh(), role: 'technician', clients: 'all' })).statusCode).toBe(403);
    expect((await invite(limited, { email: fresh(), role: 'owner', clients: 'all' })).statusCode).toBe(403);
    const mine = await invite(limited, { email: fresh(), role: 'technician', clients: [clientA] });
    expect(mine.statusCode, mine.body).toBe(201);

    // An invitation for client B is outside the limited owner's reach: not listed, 404 to revoke or resend.
    const forB = (await invite(ownerS, { email: fresh(), role: 'technician', clients: [clientB] })).json();
    const list = (await inject('GET', '/invitations', limited)).json() as { id: string; clients: string[] | 'all' }[];
    expect(list.some((i) => i.id === forB.invitation.id)).toBe(false);
    expect(list.every((i) => i.clients !== 'all' && i.clients.every((c) => c === clientA))).toBe(true);
    expect((await inject('DELETE', `/invitations/${forB.invitation.id}`, limited)).statusCode).toBe(404);
    expect((await inject('POST', `/invitations/${forB.invitation.id}/resend`, limited, {})).statusCode).toBe(404);
    expect((await accept(forB.token)).statusCode).toBe(200);

    // An e-mail that already has a user is refused at creation.
    const taken = await invite(ownerS, { email: limitedEmail, role: 'technician', clients: [clientA] });
    expect(taken.statusCode).toBe(409);
    // A second pending invitation for the same address too.
    const dup = fresh();
    expect((await invite(ownerS, { email: dup, role: 'technician', clients: [clientA] })).statusCode).toBe(201);
    expect((await invite(ownerS, { email: dup, role: 'technician', clients: [clientA] })).statusCode).toBe(409);
  });

  it('while two-owner approval is on, an invitation that gives vault control waits for a second owner', async () => {
    const second = await v.signInAs('owner', 'all');
    const on = await inject('PATCH', '/lifecycle/settings', ownerS, { twoOwnerApproval: true });
    expect(on.statusCode, on.body).toBe(200);
    try {
      const email = fresh();
      const res = await invite(ownerS, { email, role: 'owner', clients: 'all' });
      expect(res.statusCode, res.body).toBe(201);
      const body = res.json();
      expect(body.pendingApprovalId).toBeTruthy();
      expect(body.invitation.status).toBe('awaiting-approval');
      expect((await inject('POST', '/invitations/preview', null, { token: body.token })).json()).toMatchObject({ awaitingApproval: true });
      const early = await accept(body.token);
      expect(early.statusCode).toBe(409);
      expect(await v.container.database.db.selectFrom('users').select('id').where('email', '=', email).execute()).toHaveLength(0);
      // The inviter cannot approve their own request; a second owner can.
      expect((await inject('POST', `/lifecycle/approvals/${body.pendingApprovalId}/approve`, ownerS, {})).statusCode).toBe(403);
      const approved = await inject('POST', `/lifecycle/approvals/${body.pendingApprovalId}/approve`, second, {});
      expect(approved.statusCode, approved.body).toBe(200);
      const ok = await accept(body.token);
      expect(ok.statusCode, ok.body).toBe(200);
      expect(ok.json().user).toMatchObject({ role: 'owner', clients: 'all' });
    } finally {
      // Switching it off is itself approved by the second owner.
      const off = await inject('PATCH', '/lifecycle/settings', ownerS, { twoOwnerApproval: false });
      if (off.json().pendingApprovalId) await inject('POST', `/lifecycle/approvals/${off.json().pendingApprovalId}/approve`, second, {});
    }
  });

  it('the invitation works when the mail does not go out: the inviter has the link once', async () => {
    const channel = (await v.container.notifications.listChannels(cliOwner)).find((c) => c.clientId === null)!;
    await v.container.notifications.updateChannel(cliOwner, channel.id, { enabled: false });
    try {
      const email = fresh();
      const res = await invite(ownerS, { email, role: 'helpdesk', clients: [clientA] });
      expect(res.statusCode).toBe(201);
      expect(res.json().mail.sent).toBe(false);
      expect(res.json().mail.reason).toMatch(/e-mail channel/);
      expect(res.json().invitation.mail).toMatch(/^not sent/);
      expect(smtp.mails.some((m) => m.to.includes(email))).toBe(false);
      expect((await accept(res.json().token)).statusCode).toBe(200);
    } finally {
      await v.container.notifications.updateChannel(cliOwner, channel.id, { enabled: true });
    }
  });

  it('guessing links is throttled per address', async () => {
    const ip = '10.77.0.1';
    let last = 0;
    for (let i = 0; i < 40 && last !== 429; i++) last = (await accept(`kwi_guess${i}`, {}, ip)).statusCode;
    expect(last).toBe(429);
    // A real link from that address is refused too while it is locked.
    const { token } = (await invite(ownerS, { email: fresh(), role: 'helpdesk', clients: [clientA] })).json();
    expect((await accept(token, {}, ip)).statusCode).toBe(429);
    expect((await accept(token, {}, '10.77.0.2')).statusCode).toBe(200);
  });

  it('the SSO seam accepts an invitation for a verified e-mail without a password', async () => {
    const email = fresh();
    expect((await invite(ownerS, { email, role: 'auditor', clients: [clientA] })).statusCode).toBe(201);
    await expect(v.container.invitations.acceptWithVerifiedEmail({ email: fresh(), method: 'oidc', ip: null, userAgent: null })).rejects.toThrow(GENERIC);
    const r = await v.container.invitations.acceptWithVerifiedEmail({ email: email.toUpperCase(), method: 'oidc', ip: null, userAgent: null });
    expect(r.user).toMatchObject({ email, role: 'auditor', clients: [clientA] });
    // No password was chosen: none signs in.
    expect((await inject('POST', '/auth/login', null, { email, password: NEW_PASSWORD })).statusCode).toBe(401);
  });
});

describe('a second factor by default', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp({}, { keepRequiredMfa: true });
  });
  afterAll(async () => t?.close());

  it('a new vault requires a second factor; the owner without one is nagged, enrols, and may turn the rule off with a fresh step-up', async () => {
    expect(await requireMfa(t.container.database.db)).toBe(true);
    const o = await t.addUser('owner', 'all');
    const login = await t.app.inject({ method: 'POST', url: `${API}/auth/login`, payload: { email: o.email, password: PASSWORD } });
    expect(login.json().mfaEnrolmentRequired).toBe(true);
    const s = sessionFrom(login);
    const me = await t.app.inject({ method: 'GET', url: `${API}/me`, headers: s.headers });
    expect(me.json()).toMatchObject({ mfaEnrolmentRequired: true, secondFactorMissing: true });
    // Nothing else until enrolled.
    expect((await t.app.inject({ method: 'GET', url: `${API}/clients`, headers: s.headers })).statusCode).toBe(403);
    expect((await t.app.inject({ method: 'PATCH', url: `${API}/settings`, headers: s.headers, payload: { requireMfa: false } })).statusCode).toBe(403);

    const begin = await t.app.inject({ method: 'POST', url: `${API}/me/mfa`, headers: s.headers });
    const secret = begin.json().secret as string;
    expect((await t.app.inject({ method: 'POST', url: `${API}/me/mfa/confirm`, headers: s.headers, payload: { code: totpNow(secret) } })).statusCode).toBe(200);
    expect((await t.app.inject({ method: 'GET', url: `${API}/me`, headers: s.headers })).json()).toMatchObject({
      mfaEnrolmentRequired: false,
      secondFactorMissing: false,
    });

    // An old proof is not enough to turn it off.
    await t.container.database.db
      .updateTable('sessions')
      .set({ mfa_at: new Date(Date.now() - 3600_000).toISOString() })
      .execute();
    const stale = await t.app.inject({ method: 'PATCH', url: `${API}/settings`, headers: s.headers, payload: { requireMfa: false } });
    expect(stale.statusCode).toBe(403);
    expect(await requireMfa(t.container.database.db)).toBe(true);
    await t.container.database.db.updateTable('users').set({ totp_last_step: null }).execute();
    expect((await t.app.inject({ method: 'POST', url: `${API}/auth/step-up`, headers: s.headers, payload: { code: totpNow(secret) } })).statusCode).toBe(200);
    const off = await t.app.inject({ method: 'PATCH', url: `${API}/settings`, headers: s.headers, payload: { requireMfa: false } });
    expect(off.statusCode, off.body).toBe(200);
    expect(off.json()).toEqual({ requireMfa: false });
  });

  it('an invitee in a vault that requires a second factor lands on enrolment', async () => {
    // The owner above turned the rule off; an owner who only uses a password invites, then it is on again.
    const o = await t.addUser('owner', 'all');
    const s0 = await t.signIn(o.email);
    const created = await t.app.inject({
      method: 'POST',
      url: `${API}/invitations`,
      headers: s0.headers,
      payload: { email: 'enrol-me@example.test', role: 'technician', clients: 'all' },
    });
    expect(created.statusCode, created.body).toBe(201);
    const { token } = created.json() as { token: string };
    await createSettingsRepo().set(t.container.database.db, REQUIRE_MFA_KEY, 'true', new Date().toISOString());
    // Only a person invites (the invitation is checked against them when it is used).
    await expect(t.container.invitations.create(cliOwner, { email: 'cli@example.test', role: 'technician', clients: 'all' })).rejects.toThrow(
      /signed-in person/,
    );
    const res = await t.app.inject({ method: 'POST', url: `${API}/invitations/accept`, payload: { token, password: NEW_PASSWORD } });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json().mfaEnrolmentRequired).toBe(true);
    const s = sessionFrom(res);
    expect((await t.app.inject({ method: 'GET', url: `${API}/clients`, headers: s.headers })).statusCode).toBe(403);
    expect((await t.app.inject({ method: 'POST', url: `${API}/me/mfa`, headers: s.headers })).statusCode).toBe(200);
  });

  it(`the migration leaves an existing vault's setting as it was (${ENGINE})`, async () => {
    const db = t.container.database.db;
    const settings = createSettingsRepo();
    // A vault from before issue 19 never had the setting: it stays off through the migration.
    await settings.remove(db, REQUIRE_MFA_KEY);
    await migrateDown(db);
    await migrateToLatest(db);
    expect(await settings.get(db, REQUIRE_MFA_KEY)).toBeUndefined();
    expect(await requireMfa(db)).toBe(false);
    await settings.set(db, REQUIRE_MFA_KEY, 'true', new Date().toISOString());
    await migrateDown(db);
    await migrateToLatest(db);
    expect(await requireMfa(db)).toBe(true);
  });
});
