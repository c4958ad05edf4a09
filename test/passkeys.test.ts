import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LightMyRequestResponse } from 'fastify';
import { createTestApp, PASSWORD, sessionFrom, type Session, type TestApp } from './helpers/app.js';
import { ENGINE } from './helpers/engine.js';
import { auditEvents, expectNoLeak, freshTotp, minutesAgo, updateSession } from './helpers/http.js';
import { owner as cliOwner } from './helpers/vault.js';
import { SoftAuthenticator } from './helpers/webauthn.js';

/**
 * Passkeys (WebAuthn) end to end over HTTP, with real WebAuthn answers from a software
 * authenticator (test/helpers/webauthn.ts): registration, password-less sign-in, passkey as the
 * second factor, step-up, rename and removal, and the attacks: a replayed or expired challenge,
 * another origin or RP ID, a cloned authenticator (counter going backwards), someone else's
 * passkey, an unknown passkey, and a burst of parallel requests on one challenge.
 */

const API = '/api/v1';
const ORIGIN = 'https://vault.example.test';
const RP_ID = 'vault.example.test';
const MAX_FAILURES = 4;

type Json = Record<string, unknown>;

describe(`passkeys on ${ENGINE}`, () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await createTestApp({ KEYWARDEN_PUBLIC_URL: ORIGIN, KEYWARDEN_LOGIN_MAX_FAILURES: String(MAX_FAILURES), KEYWARDEN_LOGIN_MAX_FAILURES_PER_IP: '1000' });
  });
  afterAll(async () => {
    await t?.close();
  });

  const post = (url: string, s: Session | null, payload: unknown = {}) =>
    t.app.inject({ method: 'POST', url: `${API}${url}`, headers: s?.headers ?? {}, payload: payload as Json });
  const get = (url: string, s: Session) => t.app.inject({ method: 'GET', url: `${API}${url}`, headers: s.headers });

  /** A new person of this role, signed in, with a fresh authenticator. */
  async function person(role: 'owner' | 'technician' = 'technician') {
    const u = await t.addUser(role, 'all');
    const s = await t.signIn(u.email);
    return { ...u, s, auth: new SoftAuthenticator() };
  }

  async function register(p: { s: Session; auth: SoftAuthenticator }, name = 'Laptop', origin = ORIGIN) {
    const opts = await post('/me/passkeys/options', p.s);
    expect(opts.statusCode, opts.body).toBe(200);
    const response = p.auth.create(opts.json(), { origin });
    return post('/me/passkeys', p.s, { name, response });
  }

  async function passwordless(auth: SoftAuthenticator, answer: Partial<Parameters<SoftAuthenticator['get']>[1]> = {}) {
    const opts = await post('/auth/passkey/options', null);
    expect(opts.statusCode, opts.body).toBe(200);
    const response = auth.get(opts.json(), { origin: ORIGIN, ...answer });
    return { res: await post('/auth/passkey', null, { response }), response, options: opts.json() as Json };
  }

  it('registers passkeys (several), lists them without key material, renames one, and counts them as a second factor', async () => {
    const p = await person();
    const first = await register(p, 'Work laptop');
    expect(first.statusCode, first.body).toBe(200);
    expect(first.json()).toMatchObject({ name: 'Work laptop', transports: ['internal'], backedUp: true, lastUsedAt: null });

    // Now the person has a second factor: a second passkey needs a fresh step-up, which registering the first gave.
    const second = await register(p, 'Phone');
    expect(second.statusCode, second.body).toBe(200);

    const list = await get('/me/passkeys', p.s);
    expect(list.statusCode).toBe(200);
    expect((list.json() as Json[]).map((x) => x.name)).toEqual(['Work laptop', 'Phone']);
    // No credential id and no public key in the list.
    expectNoLeak(list, [p.auth.credentials[0]!.id, p.auth.credentials[1]!.id]);
    expect(Object.keys((list.json() as Json[])[0]!).sort()).toEqual(['backedUp', 'createdAt', 'id', 'lastUsedAt', 'name', 'transports']);

    const me = await get('/me', p.s);
    expect(me.json()).toMatchObject({ user: { mfaEnabled: true } });

    const id = (first.json() as Json).id as string;
    const renamed = await t.app.inject({ method: 'PATCH', url: `${API}/me/passkeys/${id}`, headers: p.s.headers, payload: { name: 'Old laptop' } });
    expect(renamed.statusCode, renamed.body).toBe(200);
    expect(renamed.json()).toMatchObject({ id, name: 'Old laptop' });

    const events = await auditEvents(t, { action: 'passkey.register', actorId: p.id });
    expect(events.filter((e) => e.outcome === 'success')).toHaveLength(2);
    expect(JSON.stringify(events)).not.toContain(p.auth.credentials[0]!.id);

    // The password now answers "second factor needed", and says a passkey will do.
    const login = await post('/auth/login', null, { email: p.email, password: PASSWORD });
    expect(login.statusCode).toBe(401);
    expect(login.json()).toMatchObject({ details: { mfaRequired: true, passkey: true, totp: false } });
  });

  it('adding a passkey when you already have a second factor needs a fresh step-up', async () => {
    const p = await person();
    expect((await register(p)).statusCode).toBe(200);
    await updateSession(t, p.s.cookie, { mfa_at: minutesAgo(60) });
    const opts = await post('/me/passkeys/options', p.s);
    expect(opts.statusCode).toBe(403);
    expect(opts.json()).toMatchObject({ error: 'step_up_required' });
  });

  it('signs in password-less with a passkey (user verification required), and the session has its second factor', async () => {
    const p = await person();
    expect((await register(p)).statusCode).toBe(200);
    const { res } = await passwordless(p.auth);
    expect(res.statusCode, res.body).toBe(200);
    const s = sessionFrom(res);
    expect(s.userId).toBe(p.id);
    const me = await get('/me', s);
    expect((me.json() as Json).stepUpValidUntil).not.toBeNull();
    const ok = (await auditEvents(t, { action: 'auth.login', actorId: p.id, outcome: 'success' }))[0]!;
    expect(ok.details).toMatchObject({ method: 'passkey', passwordless: true });

    // Without user verification (only a touch), a password-less sign-in is refused.
    const noUv = await passwordless(p.auth, { uv: false });
    expect(noUv.res.statusCode).toBe(401);
    expect(noUv.res.json().message).toMatch(/did not verify you/);
    expectNoLeak(noUv.res, [noUv.options.challenge as string]);
  });

  it('uses the passkey as the second factor after a correct password; a wrong password gets no challenge', async () => {
    const p = await person();
    expect((await register(p)).statusCode).toBe(200);
    const wrong = await post('/auth/passkey/options', null, { email: p.email, password: 'not the password at all' });
    expect(wrong.statusCode).toBe(401);
    expect(wrong.json().message).toBe('The e-mail address or password is not right.');

    const opts = await post('/auth/passkey/options', null, { email: p.email, password: PASSWORD });
    expect(opts.statusCode, opts.body).toBe(200);
    expect((opts.json() as { allowCredentials: { id: string }[] }).allowCredentials.map((c) => c.id)).toEqual([p.auth.credentials[0]!.id]);
    // As a second factor, a touch is enough (the password was the first factor).
    const res = await post('/auth/passkey', null, { response: p.auth.get(opts.json(), { origin: ORIGIN, uv: false }) });
    expect(res.statusCode, res.body).toBe(200);
    expect(sessionFrom(res).userId).toBe(p.id);
    const ok = (await auditEvents(t, { action: 'auth.login', actorId: p.id, outcome: 'success' }))[0]!;
    expect(ok.details).toMatchObject({ method: 'passkey', passwordless: false });
  });

  it("refuses someone else's passkey as the second factor after your password, and in a step-up", async () => {
    const victim = await person();
    const attacker = await person();
    expect((await register(victim)).statusCode).toBe(200);
    expect((await register(attacker)).statusCode).toBe(200);

    // The attacker knows the victim's password, not the victim's passkey: their own passkey does not do.
    const opts = await post('/auth/passkey/options', null, { email: victim.email, password: PASSWORD });
    const res = await post('/auth/passkey', null, { response: attacker.auth.get(opts.json(), { origin: ORIGIN, credential: attacker.auth.credentials[0] }) });
    expect(res.statusCode).toBe(401);
    expect(res.json().message).toMatch(/belongs to another person/);
    expect(res.cookies.find((c) => c.name.includes('kw_session'))).toBeUndefined();
    const denied = await auditEvents(t, { action: 'auth.login', outcome: 'denied' });
    expect(denied.some((e) => (e.details as Json).problem === 'this passkey belongs to another person')).toBe(true);

    // Step-up with the other person's passkey on the attacker's session.
    const su = await post('/auth/step-up/passkey/options', victim.s);
    const stolen = await post('/auth/step-up/passkey', attacker.s, { response: victim.auth.get(su.json(), { origin: ORIGIN }) });
    expect(stolen.statusCode).toBe(400);
    expect(stolen.json().message).toMatch(/another person/);
  });

  it('step-up with a passkey sets the session’s second-factor time and opens a reveal-class action', async () => {
    const p = await person('owner');
    expect((await register(p)).statusCode).toBe(200);
    await updateSession(t, p.s.cookie, { mfa_at: minutesAgo(60) });
    const tokenBefore = await post('/tokens', p.s, { name: 'ci', role: 'auditor', clients: 'all' });
    expect(tokenBefore.statusCode).toBe(403);
    expect(tokenBefore.json()).toMatchObject({ error: 'step_up_required' });

    const opts = await post('/auth/step-up/passkey/options', p.s);
    expect(opts.statusCode, opts.body).toBe(200);
    const res = await post('/auth/step-up/passkey', p.s, { response: p.auth.get(opts.json(), { origin: ORIGIN }) });
    expect(res.statusCode, res.body).toBe(200);
    expect(Date.parse((res.json() as { mfaAt: string }).mfaAt)).toBeGreaterThan(Date.parse(minutesAgo(1)));
    const tokenAfter = await post('/tokens', p.s, { name: 'ci', role: 'auditor', clients: 'all' });
    expect(tokenAfter.statusCode, tokenAfter.body).toBe(201);
    const ok = (await auditEvents(t, { action: 'auth.step_up', actorId: p.id, outcome: 'success' }))[0]!;
    expect(ok.details).toMatchObject({ method: 'passkey' });
  });

  it('a replayed answer is refused (the challenge works once), as is an expired challenge', async () => {
    const p = await person();
    expect((await register(p)).statusCode).toBe(200);
    const { res, response, options } = await passwordless(p.auth);
    expect(res.statusCode).toBe(200);
    const replay = await post('/auth/passkey', null, { response });
    expect(replay.statusCode).toBe(401);
    expect(replay.json().message).toMatch(/already used \(a replay\)/);
    expectNoLeak(replay, [options.challenge as string]);

    const opts = await post('/auth/passkey/options', null);
    await t.container.database.db
      .updateTable('passkey_challenges')
      .set({ expires_at: minutesAgo(1) })
      .where('used_at', 'is', null)
      .execute();
    const late = await post('/auth/passkey', null, { response: p.auth.get(opts.json(), { origin: ORIGIN }) });
    expect(late.statusCode).toBe(401);
    expect(late.json().message).toMatch(/expired/);

    // A challenge Keywarden never gave.
    const forged = await post('/auth/passkey', null, {
      response: p.auth.get({ challenge: 'bm90LWEtcmVhbC1jaGFsbGVuZ2UtYXQtYWxsLXNlZW4', rpId: RP_ID }, { origin: ORIGIN }),
    });
    expect(forged.statusCode).toBe(401);
    expect(forged.json().message).toMatch(/not for a passkey sign-in Keywarden started/);

    const audit = JSON.stringify(await auditEvents(t, { action: 'auth.login' }));
    expect(audit).not.toContain(options.challenge as string);
    expect(audit).toContain('already used (a replay)');
  });

  it('refuses an answer made for another origin or another RP ID, at sign-in and at registration', async () => {
    const p = await person();
    expect((await register(p)).statusCode).toBe(200);
    const origin = await passwordless(p.auth, { origin: 'https://vault.example.test.evil.example' });
    expect(origin.res.statusCode).toBe(401);
    expect(origin.res.json().message).toMatch(/another web address/);

    const rpid = await passwordless(p.auth, { rpId: 'evil.example' });
    expect(rpid.res.statusCode).toBe(401);
    expect(rpid.res.json().message).toMatch(/another site/);

    const q = await person();
    const reg = await register(q, 'Phishing', 'https://keywarden-login.evil.example');
    expect(reg.statusCode).toBe(400);
    expect(reg.json().message).toMatch(/another web address/);
    expect((await get('/me/passkeys', q.s)).json()).toEqual([]);
    const failed = await auditEvents(t, { action: 'passkey.register', actorId: q.id, outcome: 'failure' });
    expect(failed).toHaveLength(1);
  });

  it('refuses a cloned authenticator (the signature counter goes backwards) and audits it', async () => {
    const p = await person();
    expect((await register(p)).statusCode).toBe(200);
    const a = await passwordless(p.auth, { counter: 7 });
    expect(a.res.statusCode, a.res.body).toBe(200);
    // The copy signs with a counter the original has already passed.
    const clone = await passwordless(p.auth, { counter: 5 });
    expect(clone.res.statusCode).toBe(401);
    expect(clone.res.json().message).toMatch(/signature counter went backwards .*copied/);
    const same = await passwordless(p.auth, { counter: 7 });
    expect(same.res.statusCode).toBe(401);
    const denied = await auditEvents(t, { action: 'auth.login', actorId: p.id, outcome: 'denied' });
    expect(denied.filter((e) => String((e.details as Json).problem).includes('counter went backwards'))).toHaveLength(2);
    // The original, moving on, still works.
    expect((await passwordless(p.auth, { counter: 8 })).res.statusCode).toBe(200);
  });

  it('refuses an unknown passkey, and a passkey whose user handle names another account', async () => {
    const p = await person();
    expect((await register(p)).statusCode).toBe(200);
    const stranger = new SoftAuthenticator();
    stranger.create({ challenge: 'eA', rp: { id: RP_ID }, user: { id: Buffer.from(p.id).toString('base64url') } }, { origin: ORIGIN });
    const unknown = await passwordless(stranger);
    expect(unknown.res.statusCode).toBe(401);
    expect(unknown.res.json().message).toMatch(/not registered with Keywarden/);

    const q = await person();
    p.auth.credentials[0]!.userHandle = Buffer.from(q.id).toString('base64url');
    const lying = await passwordless(p.auth);
    expect(lying.res.statusCode).toBe(401);
    expect(lying.res.json().message).toMatch(/named another account/);
    p.auth.credentials[0]!.userHandle = Buffer.from(p.id).toString('base64url');
  });

  it('failed passkey checks are throttled per account like codes: after the limit even a good answer is refused, and a parallel burst gets no extra tries', async () => {
    const p = await person();
    expect((await register(p)).statusCode).toBe(200);
    // Step-up: four answers made for another web address, then a good one.
    const bad = [];
    for (let i = 0; i < MAX_FAILURES + 3; i++) bad.push(await post('/auth/step-up/passkey/options', p.s));
    const burst = await Promise.all(
      bad.map((o) => post('/auth/step-up/passkey', p.s, { response: p.auth.get(o.json(), { origin: 'https://phish.example' }) })),
    );
    const codes = burst.map((r) => r.statusCode);
    expect(codes.filter((c) => c === 400)).toHaveLength(MAX_FAILURES);
    expect(codes.filter((c) => c === 429)).toHaveLength(3);
    const good = await post('/auth/step-up/passkey/options', p.s);
    const locked = await post('/auth/step-up/passkey', p.s, { response: p.auth.get(good.json(), { origin: ORIGIN }) });
    expect(locked.statusCode).toBe(429);
    expect(locked.json().message).toMatch(/Too many failed second-factor checks/);
    expect((await auditEvents(t, { action: 'auth.step_up', actorId: p.id, outcome: 'locked' })).length).toBeGreaterThan(0);

    // The passkey as second factor after the password counts against the same account.
    const opts = await post('/auth/passkey/options', null, { email: p.email, password: PASSWORD });
    const signIn = await post('/auth/passkey', null, { response: p.auth.get(opts.json(), { origin: ORIGIN }) });
    expect(signIn.statusCode).toBe(429);
  });

  it('a burst of parallel answers on one challenge signs in exactly once', async () => {
    const p = await person();
    expect((await register(p)).statusCode).toBe(200);
    const opts = await post('/auth/passkey/options', null);
    // Different counters, so only the challenge can stop the others.
    const answers = Array.from({ length: 8 }, (_, i) => p.auth.get(opts.json(), { origin: ORIGIN, counter: 100 + i }));
    const results = await Promise.all(answers.map((response) => post('/auth/passkey', null, { response })));
    expect(results.map((r) => r.statusCode).sort()).toEqual([200, 401, 401, 401, 401, 401, 401, 401]);
    expect(results.filter((r) => r.statusCode === 401).every((r) => /already used/.test(r.json().message as string))).toBe(true);
  });

  it('removing a passkey needs a fresh step-up; the last second factor stays while the vault requires one', async () => {
    const p = await person();
    expect((await register(p, 'A')).statusCode).toBe(200);
    expect((await register(p, 'B')).statusCode).toBe(200);
    const [a, b] = (await get('/me/passkeys', p.s)).json() as { id: string }[];
    const del = (id: string, s: Session = p.s) => t.app.inject({ method: 'DELETE', url: `${API}/me/passkeys/${id}`, headers: s.headers });

    await updateSession(t, p.s.cookie, { mfa_at: minutesAgo(60) });
    const stale = await del(a!.id);
    expect(stale.statusCode).toBe(403);
    expect(stale.json()).toMatchObject({ error: 'step_up_required' });
    await updateSession(t, p.s.cookie, { mfa_at: new Date().toISOString() });

    // Someone else cannot remove it (it is not theirs: not found).
    const other = await person();
    expect((await del(a!.id, other.s)).statusCode).toBe(404);

    await t.container.settings.update(cliOwner, { requireMfa: true });
    try {
      // Two removals at once, of the last two: one goes, the other is refused.
      const both = await Promise.all([del(a!.id), del(b!.id)]);
      expect(both.map((r) => r.statusCode).sort()).toEqual([200, 400]);
      expect(both.find((r) => r.statusCode === 400)!.json().message).toMatch(/last second factor/);
      expect((await get('/me/passkeys', p.s)).json()).toHaveLength(1);
    } finally {
      await t.container.settings.update(cliOwner, { requireMfa: false });
    }
    const last = ((await get('/me/passkeys', p.s)).json() as { id: string }[])[0]!;
    const removed = await del(last.id);
    expect(removed.statusCode, removed.body).toBe(200);
    expect((await get('/me/passkeys', p.s)).json()).toEqual([]);
    expect(await auditEvents(t, { action: 'passkey.remove', actorId: p.id })).toHaveLength(2);
    // Removed: it signs in no more.
    expect((await passwordless(p.auth)).res.statusCode).toBe(401);
  });

  it('a person who must enrol may add a passkey as their second factor; with an authenticator app, both are offered', async () => {
    const p = await person();
    await t.container.settings.update(cliOwner, { requireMfa: true });
    try {
      const s = await t.signIn(p.email);
      expect((await get('/clients', s)).statusCode).toBe(403);
      const res = await register({ s, auth: p.auth });
      expect(res.statusCode, res.body).toBe(200);
      expect((await get('/clients', s)).statusCode).toBe(200);
    } finally {
      await t.container.settings.update(cliOwner, { requireMfa: false });
    }
    // An authenticator app as well: the password step tells the console both are there.
    const s = (await passwordless(p.auth)).res;
    const sess = sessionFrom(s);
    const begin = await post('/me/mfa', sess);
    const secret = (begin.json() as { secret: string }).secret;
    expect((await post('/me/mfa/confirm', sess, { code: await freshTotp(t, secret) })).statusCode).toBe(200);
    const login = await post('/auth/login', null, { email: p.email, password: PASSWORD });
    expect(login.json()).toMatchObject({ details: { mfaRequired: true, passkey: true, totp: true } });
  });

  it('an operator lists a user’s passkeys and removes them all (a lost device) on the command line; their sessions end', async () => {
    const p = await person();
    expect((await register(p, 'Stolen laptop')).statusCode).toBe(200);
    const listed = await t.cli(['user', 'passkeys', p.email]);
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toMatch(/Stolen laptop/);
    expect(listed.stdout).not.toContain(p.auth.credentials[0]!.id);
    const removed = await t.cli(['user', 'passkeys', p.email, '--remove-all']);
    expect(removed.code, removed.stderr).toBe(0);
    expect(removed.stdout).toMatch(/Removed 1 passkey of/);
    expect((await get('/me', p.s)).statusCode).toBe(401);
    expect((await passwordless(p.auth)).res.statusCode).toBe(401);
    const audit = (await auditEvents(t, { action: 'passkey.remove', targetId: p.id }))[0]!;
    expect(audit.details).toMatchObject({ by: 'operator', removed: 1 });
  });

  it('API tokens cannot use passkeys; without KEYWARDEN_PUBLIC_URL passkeys are refused, not guessed', async () => {
    const p = await person('owner');
    const tok = await post('/tokens', p.s, { name: 'pk', role: 'technician', clients: 'all' });
    expect(tok.statusCode, tok.body).toBe(201);
    const bearer = { authorization: `Bearer ${(tok.json() as { token: string }).token}` };
    const r = await t.app.inject({ method: 'POST', url: `${API}/me/passkeys/options`, headers: bearer });
    expect(r.statusCode).toBe(403);
    expect((await t.app.inject({ method: 'GET', url: `${API}/me/passkeys`, headers: bearer })).statusCode).toBe(403);

    const plain = await createTestApp();
    try {
      const u = await plain.addUser('technician', 'all');
      const s = await plain.signIn(u.email);
      const opts = await plain.app.inject({ method: 'POST', url: `${API}/me/passkeys/options`, headers: s.headers });
      expect(opts.statusCode).toBe(400);
      expect(opts.json().message).toMatch(/KEYWARDEN_PUBLIC_URL/);
      const signIn: LightMyRequestResponse = await plain.app.inject({ method: 'POST', url: `${API}/auth/passkey/options`, payload: {} });
      expect(signIn.statusCode).toBe(400);
    } finally {
      await plain.close();
    }
  });

  it('an address may start only so many password-less sign-ins (each stores a challenge), also in a parallel burst', async () => {
    // 2 failed sign-ins per address → 4 × 2 = 8 starts per lockout window.
    const small = await createTestApp({ KEYWARDEN_PUBLIC_URL: ORIGIN, KEYWARDEN_LOGIN_MAX_FAILURES_PER_IP: '2' });
    try {
      const start = (ip: string) => small.app.inject({ method: 'POST', url: `${API}/auth/passkey/options`, payload: {}, remoteAddress: ip });
      const burst = await Promise.all(Array.from({ length: 14 }, () => start('10.66.0.1')));
      expect(burst.filter((r) => r.statusCode === 200)).toHaveLength(8);
      const refused = burst.filter((r) => r.statusCode === 429);
      expect(refused).toHaveLength(6);
      expect(refused[0]!.json().message).toMatch(/Too many sign-ins were started from your address/);
      expect(refused[0]!.headers['retry-after']).toBeDefined();
      const rows = await small.container.database.db.selectFrom('passkey_challenges').select('id').execute();
      expect(rows).toHaveLength(8);
      // Another address is not affected.
      expect((await start('10.66.0.2')).statusCode).toBe(200);
    } finally {
      await small.close();
    }
  });
});
