/**
 * Single sign-on with OpenID Connect against a real OpenID provider (oidc-provider, test/oidc/):
 * the happy path, every check of the answer performed as an attack (issuer, audience, state replay
 * and a parallel burst, nonce, expired and not-yet-valid tokens, clock skew within and beyond the
 * allowance, another browser), mapping rules (JIT on and off, a group removed: sign-in refused,
 * sessions end, the account disabled; the scheduled re-validation does the same), SSO-only people
 * refused on password sign-in, the client secret never echoed, and the egress policy refusing an
 * issuer the operator has not allowed.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PASSWORD, createTestApp, type Session, type TestApp } from './helpers/app.js';
import { owner as cliOwner } from './helpers/vault.js';
import { ENGINE } from './helpers/engine.js';
import { startOidcProvider, type TestIdp } from './oidc/provider.js';
import { evaluateMapping, idTokenShowsMfa } from '../src/modules/sso/sso.mapping.js';

const PUBLIC_URL = 'http://kw.test';
const REDIRECT = `${PUBLIC_URL}/api/v1/auth/sso/callback`;
const API = '/api/v1';

describe(`single sign-on (OpenID Connect) on ${ENGINE}`, () => {
  let t: TestApp;
  let idp: TestIdp;
  let owner: Session;
  let clientA: string;
  let providerId: string;

  const audits = async (action: string) =>
    (await t.container.database.db.selectFrom('audit_events').selectAll().where('action', '=', action).orderBy('seq').execute()).map((r) => ({
      ...r,
      details: JSON.parse(r.details ?? '{}') as Record<string, unknown>,
    }));

  /** Start at Keywarden, sign in at the IdP as `login`, come back: the callback's answer. */
  async function ssoSignIn(login: string, opts: { provider?: string; keepCookie?: boolean; callback?: (u: URL) => URL } = {}) {
    const start = await t.app.inject({ method: 'GET', url: `${API}/auth/sso/${opts.provider ?? providerId}/start` });
    expect(start.statusCode, start.body).toBe(302);
    const state = start.cookies.find((c) => c.name === 'kw_sso_state')!;
    expect(state.httpOnly).toBe(true);
    let cb = await idp.signIn(String(start.headers.location), login);
    if (opts.callback) cb = opts.callback(cb);
    const url = `${cb.pathname}${cb.search}`;
    const headers = opts.keepCookie === false ? {} : { cookie: `kw_sso_state=${state.value}` };
    const res = await t.app.inject({ method: 'GET', url, headers });
    return { res, url, headers, start };
  }
  const refusedWith = (res: LightMyRequestResponse, reason: string) => {
    expect(res.statusCode).toBe(302);
    expect(res.headers.location).toBe(`/login?sso=${reason}`);
    expect(res.cookies.find((c) => c.name === 'kw_session')).toBeUndefined();
  };
  const sessionOf = (res: LightMyRequestResponse): Session => {
    expect(res.statusCode, res.body).toBe(302);
    expect(res.headers.location).toBe('/');
    const cookie = res.cookies.find((c) => c.name === 'kw_session')!;
    const csrf = res.cookies.find((c) => c.name === 'kw_sso_csrf')!;
    expect(cookie.httpOnly).toBe(true);
    expect(csrf.httpOnly).toBeFalsy();
    return { cookie: cookie.value, csrf: csrf.value, headers: { cookie: `kw_session=${cookie.value}`, 'x-csrf-token': csrf.value }, userId: '' };
  };
  const me = (s: Session) => t.app.inject({ method: 'GET', url: `${API}/me`, headers: s.headers });

  beforeAll(async () => {
    idp = await startOidcProvider({
      redirectUris: [REDIRECT],
      users: {
        alice: { sub: 'sub-alice', email: 'alice@example.test', name: 'Alice', groups: ['kw-admins'] },
        bob: { sub: 'sub-bob', email: 'bob@example.test', name: 'Bob', groups: ['kw-techs'] },
        carol: { sub: 'sub-carol', email: 'carol@example.test', groups: ['kw-techs'], amr: ['pwd', 'mfa'] },
        dave: { sub: 'sub-dave', email: 'dave@example.test', groups: ['other'] },
        erin: { sub: 'sub-erin', email: 'erin@example.test', email_verified: false, groups: ['kw-techs'] },
        frank: { sub: 'sub-frank', email: 'frank@example.test', groups: ['kw-techs'] },
      },
    });
    t = await createTestApp({ KEYWARDEN_PUBLIC_URL: PUBLIC_URL });
    const o = await t.addUser('owner', 'all', 'owner@example.test');
    owner = await t.signIn(o.email);
    clientA = (await t.container.clients.create(cliOwner, { name: 'Client A' })).id;
    // Alice exists already (linked on her first sign-in by verified e-mail).
    await t.addUser('admin', 'all', 'alice@example.test');
    const r = await t.app.inject({
      method: 'POST',
      url: `${API}/settings/sso/providers`,
      headers: owner.headers,
      payload: {
        kind: 'oidc',
        name: 'Test IdP',
        issuer: idp.issuer,
        clientId: idp.clientId,
        clientSecret: idp.clientSecret,
        scopes: ['openid', 'email', 'profile', 'groups', 'offline_access'],
        jit: true,
        idpMfa: true,
        mappingMode: 'first',
        mappings: [
          { claim: 'groups', value: 'kw-admins', role: 'admin', clients: 'all' },
          { claim: 'groups', value: 'kw-techs', role: 'technician', clients: [clientA] },
        ],
      },
    });
    expect(r.statusCode, r.body).toBe(200);
    providerId = r.json().id;
  }, 60_000);
  afterAll(async () => {
    await t?.close();
    await idp?.close();
  });

  it('lists enabled providers publicly by name and id only', async () => {
    const r = await t.app.inject({ method: 'GET', url: `${API}/auth/sso/providers` });
    expect(r.statusCode).toBe(200);
    expect(r.json()).toEqual({ providers: [{ id: providerId, name: 'Test IdP' }] });
  });

  it('never echoes the client secret: not in the answer, the list, the audit log, and sealed at rest', async () => {
    const list = await t.app.inject({ method: 'GET', url: `${API}/settings/sso/providers`, headers: owner.headers });
    expect(list.statusCode).toBe(200);
    expect(list.body).not.toContain(idp.clientSecret);
    expect(list.json()[0]).toMatchObject({ hasClientSecret: true, clientId: idp.clientId });
    const patched = await t.app.inject({
      method: 'PATCH',
      url: `${API}/settings/sso/providers/${providerId}`,
      headers: owner.headers,
      payload: { clientSecret: idp.clientSecret },
    });
    expect(patched.statusCode).toBe(200);
    expect(patched.body).not.toContain(idp.clientSecret);
    const rows = await t.container.database.db.selectFrom('audit_events').select('details').execute();
    expect(rows.some((r) => (r.details ?? '').includes(idp.clientSecret))).toBe(false);
    const stored = await t.container.database.db.selectFrom('sso_providers').select('client_secret').executeTakeFirstOrThrow();
    expect(stored.client_secret).not.toContain(idp.clientSecret);
  });

  it('signs an existing person in (linked by verified e-mail), then by provider and subject', async () => {
    const first = await ssoSignIn('alice');
    const s = sessionOf(first.res);
    expect(first.start.headers.location).toContain('code_challenge_method=S256');
    const m = await me(s);
    expect(m.statusCode).toBe(200);
    expect(m.json().user).toMatchObject({ email: 'alice@example.test', role: 'admin', clients: 'all' });
    // The CSRF token handed over works for changes.
    const out = await t.app.inject({ method: 'POST', url: `${API}/auth/logout`, headers: s.headers });
    expect(out.statusCode).toBe(200);
    const login = (await audits('auth.login')).filter((a) => a.details.method === 'sso' && a.outcome === 'success');
    expect(login.at(-1)!.details).toMatchObject({ email: 'alice@example.test', provider: 'Test IdP' });
    expect((await audits('sso.link')).map((a) => a.details.by)).toContain('verified e-mail');
    // The IdP's e-mail changes: the link (provider, subject) still finds Alice.
    idp.users.alice!.email = 'alice.new@example.test';
    const again = sessionOf((await ssoSignIn('alice')).res);
    expect((await me(again)).json().user.email).toBe('alice@example.test');
    idp.users.alice!.email = 'alice@example.test';
  });

  it('refuses an answer whose state was used already, and a parallel burst wins once', async () => {
    const { res, url, headers } = await ssoSignIn('alice');
    sessionOf(res);
    refusedWith(await t.app.inject({ method: 'GET', url, headers }), 'state-used');

    const start = await t.app.inject({ method: 'GET', url: `${API}/auth/sso/${providerId}/start` });
    const cookie = `kw_sso_state=${start.cookies.find((c) => c.name === 'kw_sso_state')!.value}`;
    const cb = await idp.signIn(String(start.headers.location), 'alice');
    const burst = await Promise.all(Array.from({ length: 6 }, () => t.app.inject({ method: 'GET', url: `${cb.pathname}${cb.search}`, headers: { cookie } })));
    expect(burst.filter((r) => r.headers.location === '/')).toHaveLength(1);
    expect(burst.filter((r) => r.headers.location === '/login?sso=state-used')).toHaveLength(5);
    expect((await audits('auth.login')).some((a) => a.outcome === 'failure' && a.details.reason === 'state unknown or used')).toBe(true);
  });

  it('refuses an answer brought back to another browser (no state cookie)', async () => {
    const { res } = await ssoSignIn('alice', { keepCookie: false });
    refusedWith(res, 'other-browser');
  });

  it('refuses an expired login state', async () => {
    const start = await t.app.inject({ method: 'GET', url: `${API}/auth/sso/${providerId}/start` });
    const cookie = `kw_sso_state=${start.cookies.find((c) => c.name === 'kw_sso_state')!.value}`;
    const cb = await idp.signIn(String(start.headers.location), 'alice');
    // Ten minutes have passed at the IdP.
    await t.container.database.db
      .updateTable('sso_login_states')
      .set({ expires_at: new Date(Date.now() - 1000).toISOString() })
      .where('used_at', 'is', null)
      .execute();
    refusedWith(await t.app.inject({ method: 'GET', url: `${cb.pathname}${cb.search}`, headers: { cookie } }), 'state-expired');
  });

  describe('the ID token (signed by the IdP, claims rewritten)', () => {
    const now = () => Math.floor(Date.now() / 1000);
    const withTamper = async (fn: (c: Record<string, unknown>) => Record<string, unknown>) => {
      idp.tamper(fn);
      try {
        return (await ssoSignIn('alice')).res;
      } finally {
        idp.tamper(null);
      }
    };
    it('a wrong issuer is refused', async () => {
      refusedWith(await withTamper((c) => ({ ...c, iss: 'http://127.0.0.1:1/evil' })), 'wrong-issuer');
      expect((await audits('auth.login')).at(-1)!.details).toMatchObject({ method: 'sso', reason: 'wrong issuer', provider: 'Test IdP' });
    });
    it('a wrong audience is refused', async () => {
      refusedWith(await withTamper((c) => ({ ...c, aud: 'another-app' })), 'wrong-audience');
    });
    it('a replayed or mismatched nonce is refused', async () => {
      let earlier = '';
      idp.tamper((c) => ((earlier = String(c.nonce)), c));
      sessionOf((await ssoSignIn('alice')).res);
      refusedWith(await withTamper((c) => ({ ...c, nonce: earlier })), 'nonce-mismatch');
      refusedWith(await withTamper((c) => ({ ...c, nonce: undefined })), 'nonce-mismatch');
    });
    it('an expired token is refused; expiry within the clock allowance is accepted', async () => {
      refusedWith(await withTamper((c) => ({ ...c, iat: now() - 7200, exp: now() - 3600 })), 'token-expired');
      refusedWith(await withTamper((c) => ({ ...c, exp: now() - 120 })), 'token-expired');
      sessionOf(await withTamper((c) => ({ ...c, exp: now() - 20 })));
    });
    it('a token not yet valid (iat or nbf in the future) is refused beyond the allowance, accepted within it', async () => {
      refusedWith(await withTamper((c) => ({ ...c, iat: now() + 600, exp: now() + 4200 })), 'token-not-yet-valid');
      refusedWith(await withTamper((c) => ({ ...c, nbf: now() + 600 })), 'token-not-yet-valid');
      refusedWith(await withTamper((c) => ({ ...c, iat: now() + 120 })), 'token-not-yet-valid');
      sessionOf(await withTamper((c) => ({ ...c, iat: now() + 30, nbf: now() + 30 })));
    });
  });

  it('JIT creates a mapped person (SSO only); without a rule that grants, nobody is created', async () => {
    const s = sessionOf((await ssoSignIn('bob')).res);
    const u = (await me(s)).json().user;
    expect(u).toMatchObject({ email: 'bob@example.test', role: 'technician', clients: [clientA], ssoOnly: true });
    refusedWith((await ssoSignIn('dave')).res, 'no-mapping');
    refusedWith((await ssoSignIn('erin')).res, 'no-verified-e-mail');
    expect(await t.container.database.db.selectFrom('users').select('id').where('email', 'in', ['dave@example.test', 'erin@example.test']).execute()).toEqual(
      [],
    );
  });

  it('JIT off: only existing people sign in', async () => {
    const off = await t.app.inject({ method: 'PATCH', url: `${API}/settings/sso/providers/${providerId}`, headers: owner.headers, payload: { jit: false } });
    expect(off.statusCode).toBe(200);
    try {
      refusedWith((await ssoSignIn('frank')).res, 'no-account');
      sessionOf((await ssoSignIn('bob')).res);
    } finally {
      await t.app.inject({ method: 'PATCH', url: `${API}/settings/sso/providers/${providerId}`, headers: owner.headers, payload: { jit: true } });
    }
  });

  it('an invitee signs in through the provider: the invitation is accepted (SSO only, mapped); without a rule that grants, it stays unused', async () => {
    const off = await t.app.inject({ method: 'PATCH', url: `${API}/settings/sso/providers/${providerId}`, headers: owner.headers, payload: { jit: false } });
    expect(off.statusCode).toBe(200);
    try {
      const invite = async (email: string) => {
        const r = await t.app.inject({
          method: 'POST',
          url: `${API}/invitations`,
          headers: owner.headers,
          payload: { email, role: 'helpdesk', clients: [clientA] },
        });
        expect(r.statusCode, r.body).toBe(201);
        return (r.json() as { invitation: { id: string } }).invitation.id;
      };
      const pending = async () =>
        ((await t.app.inject({ method: 'GET', url: `${API}/invitations`, headers: owner.headers })).json() as { id: string }[]).map((i) => i.id);

      // No rule grants this person anything: refused, and the invitation is still there to use.
      idp.users.judy = { sub: 'sub-judy', email: 'judy@example.test', groups: ['other'] };
      const forJudy = await invite('judy@example.test');
      refusedWith((await ssoSignIn('judy')).res, 'no-account');
      expect(await pending()).toContain(forJudy);
      expect(await t.container.database.db.selectFrom('users').select('id').where('email', '=', 'judy@example.test').execute()).toEqual([]);

      // A rule grants: the invitation is used (JIT is off, so only the invitation lets her in); the rules set the role.
      idp.users.ivan = { sub: 'sub-ivan', email: 'ivan@example.test', name: 'Ivan', groups: ['kw-techs'] };
      const forIvan = await invite('ivan@example.test');
      const s = sessionOf((await ssoSignIn('ivan')).res);
      expect((await me(s)).json().user).toMatchObject({ email: 'ivan@example.test', role: 'technician', clients: [clientA], ssoOnly: true });
      expect(await pending()).not.toContain(forIvan);
      const accepted = (await audits('invitation.accepted')).filter((e) => e.target_id === forIvan);
      expect(accepted.map((e) => [e.outcome, e.details.method])).toEqual([['success', 'sso']]);
      // Used once: signing in again goes by the link, not the invitation.
      sessionOf((await ssoSignIn('ivan')).res);
      expect((await audits('invitation.accepted')).filter((e) => e.target_id === forIvan)).toHaveLength(1);
    } finally {
      await t.app.inject({ method: 'PATCH', url: `${API}/settings/sso/providers/${providerId}`, headers: owner.headers, payload: { jit: true } });
    }
  });

  it('a group removed at the IdP: sign-in refused, every session ends, the account is disabled; a changed group narrows the role', async () => {
    idp.users.frank!.groups = ['kw-admins'];
    const s1 = sessionOf((await ssoSignIn('frank')).res);
    expect((await me(s1)).json().user).toMatchObject({ role: 'admin', clients: 'all' });
    idp.users.frank!.groups = ['kw-techs'];
    const s2 = sessionOf((await ssoSignIn('frank')).res);
    expect((await me(s2)).json().user).toMatchObject({ role: 'technician', clients: [clientA] });
    expect((await audits('user.role')).at(-1)!.details).toMatchObject({ role: 'technician', by: 'single sign-on mapping' });

    idp.users.frank!.groups = [];
    refusedWith((await ssoSignIn('frank')).res, 'mapping-no-longer-grants-access');
    expect((await me(s1)).statusCode).toBe(401);
    expect((await me(s2)).statusCode).toBe(401);
    const row = await t.container.database.db.selectFrom('users').selectAll().where('email', '=', 'frank@example.test').executeTakeFirstOrThrow();
    expect(row.status).toBe('disabled');
    expect((await audits('auth.session_revoked')).at(-1)!.details).toMatchObject({
      email: 'frank@example.test',
      reason: 'the sign-in provider no longer grants access',
    });
    // Back in the group: the account stays disabled until an owner enables it.
    idp.users.frank!.groups = ['kw-techs'];
    refusedWith((await ssoSignIn('frank')).res, 'account-disabled');
  });

  it('the scheduled re-validation confirms sessions with the refresh token, and ends those the mapping no longer grants', async () => {
    idp.users.bob!.groups = ['kw-techs'];
    const s = sessionOf((await ssoSignIn('bob')).res);
    const db = t.container.database.db;
    const bob = await db.selectFrom('users').select('id').where('email', '=', 'bob@example.test').executeTakeFirstOrThrow();
    const rec = await db.selectFrom('sso_sessions').selectAll().where('user_id', '=', bob.id).where('ended_at', 'is', null).execute();
    expect(rec.length).toBeGreaterThan(0);
    expect(rec.every((r) => r.refresh_token && !r.refresh_token.includes('.'))).toBe(true);
    // An hour later: due for confirmation; still in the group, so confirmed.
    const hourAgo = new Date(Date.now() - 3600_000).toISOString();
    await db.updateTable('sso_sessions').set({ validated_at: hourAgo }).where('user_id', '=', bob.id).execute();
    const before = idp.tokenRequests();
    const ok = await t.container.sso.revalidate();
    expect(ok.confirmed).toBeGreaterThan(0);
    expect(idp.tokenRequests()).toBeGreaterThan(before);
    expect((await me(s)).statusCode).toBe(200);
    // Removed from the group: the next confirmation ends the sessions and disables the account.
    idp.users.bob!.groups = [];
    await db.updateTable('sso_sessions').set({ validated_at: hourAgo }).where('user_id', '=', bob.id).execute();
    const r = await t.container.sso.revalidate();
    expect(r.ended).toBeGreaterThan(0);
    expect((await me(s)).statusCode).toBe(401);
    expect((await db.selectFrom('users').select('status').where('id', '=', bob.id).executeTakeFirstOrThrow()).status).toBe('disabled');
  });

  it('an SSO-only person is refused on password sign-in, with a clear message only after the right password', async () => {
    const u = await t.addUser('technician', [clientA], 'grace@example.test');
    const set = await t.app.inject({ method: 'PUT', url: `${API}/users/${u.id}/sso-only`, headers: owner.headers, payload: { ssoOnly: true } });
    expect(set.statusCode, set.body).toBe(200);
    const wrong = await t.app.inject({ method: 'POST', url: `${API}/auth/login`, payload: { email: u.email, password: 'not the password at all' } });
    expect(wrong.statusCode).toBe(401);
    expect(wrong.json().message).toBe('The e-mail address or password is not right.');
    const right = await t.app.inject({ method: 'POST', url: `${API}/auth/login`, payload: { email: u.email, password: PASSWORD } });
    expect(right.statusCode).toBe(401);
    expect(right.json().message).toMatch(/single sign-on only/);
    const lift = await t.app.inject({ method: 'PUT', url: `${API}/users/${u.id}/sso-only`, headers: owner.headers, payload: { ssoOnly: false } });
    expect(lift.statusCode).toBe(200);
    expect((await t.app.inject({ method: 'POST', url: `${API}/auth/login`, payload: { email: u.email, password: PASSWORD } })).statusCode).toBe(200);
  });

  it('IdP MFA (amr) satisfies step-up for an SSO-only person; step-up again at the IdP with prompt=login', async () => {
    const s = sessionOf((await ssoSignIn('carol')).res);
    const m = (await me(s)).json();
    expect(m.user).toMatchObject({ email: 'carol@example.test', ssoOnly: true });
    expect(m.stepUpValidUntil).not.toBeNull();
    const info = await t.app.inject({ method: 'GET', url: `${API}/me/sso`, headers: s.headers });
    expect(info.json()).toEqual({ stepUpProvider: { id: providerId, name: 'Test IdP' } });
    const start = await t.app.inject({ method: 'GET', url: `${API}/auth/sso/step-up?returnTo=/clients`, headers: s.headers });
    expect(start.statusCode, start.body).toBe(302);
    const to = new URL(String(start.headers.location));
    expect(to.searchParams.get('prompt')).toBe('login');
    expect(to.searchParams.get('max_age')).toBe('0');
    const cookie = `kw_sso_state=${start.cookies.find((c) => c.name === 'kw_sso_state')!.value}`;
    const cb = await idp.signIn(to.href, 'carol');
    const back = await t.app.inject({ method: 'GET', url: `${cb.pathname}${cb.search}`, headers: { cookie } });
    expect(back.statusCode).toBe(302);
    expect(back.headers.location).toBe('/clients');
    expect((await audits('auth.step_up')).at(-1)).toMatchObject({ outcome: 'success' });
    // Someone else signing in at the IdP cannot step up this session.
    const other = await t.app.inject({ method: 'GET', url: `${API}/auth/sso/step-up`, headers: s.headers });
    const c2 = `kw_sso_state=${other.cookies.find((c) => c.name === 'kw_sso_state')!.value}`;
    const cb2 = await idp.signIn(String(other.headers.location), 'alice');
    refusedWith(await t.app.inject({ method: 'GET', url: `${cb2.pathname}${cb2.search}`, headers: { cookie: c2 } }), 'another-person');
  });

  it('checks mapping rules: unknown clients and roles are refused', async () => {
    const bad = await t.app.inject({
      method: 'PATCH',
      url: `${API}/settings/sso/providers/${providerId}`,
      headers: owner.headers,
      payload: { mappings: [{ claim: 'groups', value: 'x', role: 'technician', clients: ['00000000-0000-4000-8000-000000000000'] }] },
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().message).toMatch(/no such client/);
    const role = await t.app.inject({
      method: 'PATCH',
      url: `${API}/settings/sso/providers/${providerId}`,
      headers: owner.headers,
      payload: { mappings: [{ claim: 'groups', value: 'x', role: 'superuser', clients: 'all' }] },
    });
    expect(role.statusCode).toBe(400);
    // Nobody below an owner may configure providers.
    const admin = await t.signIn((await t.addUser('admin', 'all')).email);
    expect((await t.app.inject({ method: 'GET', url: `${API}/settings/sso/providers`, headers: admin.headers })).statusCode).toBe(403);
  });

  it('evaluates mapping rules: first match, or the most privileged match', () => {
    const rules = [
      { claim: 'groups', value: 'techs', role: 'technician' as const, clients: ['a'] },
      { claim: 'groups', value: 'admins', role: 'admin' as const, clients: ['a', 'b'] },
      { claim: 'hd', value: 'example.test', role: 'auditor' as const, clients: 'all' as const },
    ];
    const claims = { groups: ['techs', 'admins'], hd: 'example.test' };
    expect(evaluateMapping(rules, 'first', claims)).toMatchObject({ role: 'technician', rule: 0 });
    expect(evaluateMapping(rules, 'most', claims)).toMatchObject({ role: 'admin', rule: 1 });
    expect(evaluateMapping(rules, 'first', { groups: [] })).toBeNull();
    expect(idTokenShowsMfa({ amr: ['pwd'] }, [])).toBe(false);
    expect(idTokenShowsMfa({ amr: ['pwd', 'mfa'] }, [])).toBe(true);
    expect(idTokenShowsMfa({ acr: 'urn:okta:loa:2fa:any' }, ['urn:okta:loa:2fa:any'])).toBe(true);
  });

  it('the CLI adds, lists (never the secret) and removes a provider', async () => {
    const file = path.join(t.db.dir, 'sso-secret.txt');
    fs.writeFileSync(file, 'cli-client-secret-value\n');
    const add = await t.cli([
      'sso',
      'add',
      '--kind',
      'okta',
      '--name',
      'Okta CLI',
      '--issuer',
      'https://example.okta.com',
      '--client-id',
      'okta-app',
      '--client-secret-file',
      file,
      '--map',
      'groups=kw-techs:technician:Client A',
    ]);
    expect(add.code, add.stderr).toBe(0);
    const list = await t.cli(['sso', 'list']);
    expect(list.stdout).toContain('Okta CLI');
    expect(list.stdout).toContain('stored');
    expect(list.stdout + (await t.cli(['sso', 'list', '--json'])).stdout).not.toContain('cli-client-secret-value');
    const rm = await t.cli(['sso', 'remove', 'Okta CLI']);
    expect(rm.code, rm.stderr).toBe(0);
    expect((await t.cli(['sso', 'list'])).stdout).not.toContain('Okta CLI');
  });

  it('an address may start only so many sign-ins (each stores a state row), also in a parallel burst', async () => {
    // The default 30 failed sign-ins per address → 120 starts per lockout window.
    const start = (ip: string) => t.app.inject({ method: 'GET', url: `${API}/auth/sso/${providerId}/start`, remoteAddress: ip });
    const before = (await t.container.database.db.selectFrom('sso_login_states').select('id').execute()).length;
    const burst = await Promise.all(Array.from({ length: 130 }, () => start('10.77.0.1')));
    const started = burst.filter((r) => String(r.headers.location).startsWith(idp.issuer));
    const refused = burst.filter((r) => r.headers.location === '/login?sso=too-many-starts');
    expect(started).toHaveLength(120);
    expect(refused).toHaveLength(10);
    expect((await t.container.database.db.selectFrom('sso_login_states').select('id').execute()).length).toBe(before + 120);
    expect(String((await start('10.77.0.2')).headers.location).startsWith(idp.issuer)).toBe(true);
  });

  it('a disabled or unknown provider does not start a sign-in', async () => {
    const r = await t.app.inject({ method: 'GET', url: `${API}/auth/sso/00000000-0000-4000-8000-000000000000/start` });
    refusedWith(r, 'provider-unavailable');
  });
});

describe(`single sign-on and the egress policy on ${ENGINE}`, () => {
  it('refuses to reach an issuer the operator has not allowed', async () => {
    const idp = await startOidcProvider({ redirectUris: [REDIRECT], users: { a: { sub: 'a', email: 'a@example.test' } } });
    const t = await createTestApp({ KEYWARDEN_PUBLIC_URL: PUBLIC_URL, KEYWARDEN_EGRESS_ALLOW: '' });
    try {
      const o = await t.addUser('owner', 'all', 'owner@example.test');
      const s = await t.signIn(o.email);
      const created = await t.app.inject({
        method: 'POST',
        url: `${API}/settings/sso/providers`,
        headers: s.headers,
        payload: { kind: 'oidc', name: 'Lab IdP', issuer: idp.issuer, clientId: idp.clientId, clientSecret: idp.clientSecret },
      });
      expect(created.statusCode).toBe(200);
      const id = created.json().id;
      const test = await t.app.inject({ method: 'POST', url: `${API}/settings/sso/providers/${id}/test`, headers: s.headers });
      expect(test.json()).toMatchObject({ ok: false });
      expect(test.json().message).toMatch(/loopback/);
      const start = await t.app.inject({ method: 'GET', url: `${API}/auth/sso/${id}/start` });
      expect(start.statusCode).toBe(302);
      expect(start.headers.location).toBe('/login?sso=provider-unreachable');
      expect(idp.tokenRequests()).toBe(0);
    } finally {
      await t.close();
      await idp.close();
    }
  }, 60_000);
});
