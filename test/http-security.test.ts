import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import { buildApp } from '../src/app.js';
import { sha256Hex } from '../src/crypto/tokens.js';
import { createTestApp, PASSWORD, sessionFrom, type Session, type TestApp } from './helpers/app.js';
import { ENGINE } from './helpers/engine.js';
import { bytes, csvOf, randomKeyId, randomRecoveryPassword } from './helpers/keys.js';
import {
  auditEvents,
  expectNoLeak,
  logCapture,
  minutesAgo,
  multipart,
  sessionRow,
  shapeOf,
  throttleRow,
  freshTotp,
  updateSession,
  wrongTotp,
} from './helpers/http.js';
import { owner as cliOwner } from './helpers/vault.js';

/**
 * The HTTP security rules, end to end through Fastify's inject(): sign-in throttling, second
 * factor and step-up, API tokens, CSRF, sessions, reveal limits, tenant isolation, audit,
 * headers, input handling and logs. Time-based rules are tested by moving stored timestamps.
 */

const API = '/api/v1';
const REVEAL_LIMIT = 3;
const MAX_FAILURES = 3;
const MAX_FAILURES_PER_IP = 5;
const LOCKOUT_MINUTES = 15;

type Key = { keyId: string; password: string; device: string };

async function seedKeys(t: TestApp, clientName: string, keys: Key[]): Promise<void> {
  const r = await t.container.imports.importFile(cliOwner, clientName, {
    fileName: `${clientName}-${keys[0]!.keyId.slice(0, 8)}.csv`,
    bytes: bytes(csvOf(keys.map((k) => ({ device: k.device, keyId: k.keyId, password: k.password })))),
  });
  expect(r.rejected).toEqual([]);
  expect(r.imported).toBe(keys.length);
}

const newKey = (device: string, keyId = randomKeyId()): Key => ({ keyId, password: randomRecoveryPassword(), device });

function login(t: TestApp, email: string, password: string, opts: { ip?: string; code?: string; ua?: string } = {}) {
  return t.app.inject({
    method: 'POST',
    url: `${API}/auth/login`,
    remoteAddress: opts.ip ?? '127.0.0.1',
    headers: opts.ua ? { 'user-agent': opts.ua } : {},
    payload: { email, password, ...(opts.code !== undefined ? { code: opts.code } : {}) },
  });
}

function reveal(t: TestApp, headers: Record<string, string>, id: string, body: Record<string, unknown> = { reason: 'lost-pin' }, extra: { ip?: string } = {}) {
  return t.app.inject({ method: 'POST', url: `${API}/keys/${encodeURIComponent(id)}/reveal`, headers, payload: body, remoteAddress: extra.ip ?? '127.0.0.1' });
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

const LOCKED_MESSAGE = /^Too many failed sign-ins\. Try again in \d+ minutes?\.$/;

describe(`HTTP security on ${ENGINE}`, () => {
  let t: TestApp;
  let ownerS: Session;
  let ownerId: string;
  let contoso: string;
  let fabrikam: string;
  const c = {
    one: newKey('FAKE-C1'),
    two: newKey('FAKE-C2'),
    three: newKey('FAKE-C3'),
    four: newKey('FAKE-C4'),
    five: newKey('FAKE-C5'),
    six: newKey('FAKE-C6'),
  };
  const amb = [newKey('FAKE-AMB1', 'abba0000-0000-4000-8000-000000000001'), newKey('FAKE-AMB2', 'abba0000-0000-4000-8000-000000000002')];
  const f = { one: newKey('FAKE-F1') };
  const allPasswords = () => [PASSWORD, ...Object.values(c), ...amb, ...Object.values(f)].map((k) => (typeof k === 'string' ? k : k.password));

  beforeAll(async () => {
    t = await createTestApp({
      KEYWARDEN_LOGIN_MAX_FAILURES: String(MAX_FAILURES),
      KEYWARDEN_LOGIN_MAX_FAILURES_PER_IP: String(MAX_FAILURES_PER_IP),
      KEYWARDEN_LOGIN_LOCKOUT_MINUTES: String(LOCKOUT_MINUTES),
      KEYWARDEN_REVEAL_LIMIT_PER_HOUR: String(REVEAL_LIMIT),
    });
    const o = await t.addUser('owner', 'all', 'owner@example.test');
    ownerId = o.id;
    ownerS = await t.signIn(o.email);
    const mk = async (name: string) => {
      const r = await t.app.inject({ method: 'POST', url: `${API}/clients`, headers: ownerS.headers, payload: { name } });
      expect(r.statusCode).toBe(201);
      return r.json().id as string;
    };
    contoso = await mk('Contoso');
    fabrikam = await mk('Fabrikam');
    await seedKeys(t, 'Contoso', [...Object.values(c), ...amb]);
    await seedKeys(t, 'Fabrikam', Object.values(f));
  });
  afterAll(async () => {
    await t?.close();
  });

  // ------------------------------------------------------------------ sign-in throttling
  describe('sign-in lockout', () => {
    it(`locks an account after ${MAX_FAILURES} wrong passwords: even the right password then gets 429 with Retry-After and a sentence`, async () => {
      const u = await t.addUser('technician', 'all', 'locked.one@example.test');
      const ip = '10.1.0.1';
      for (let i = 0; i < MAX_FAILURES; i++) {
        const r = await login(t, u.email, `wrong password ${i}`, { ip });
        expect(r.statusCode).toBe(401);
        expect(r.json()).toMatchObject({ error: 'unauthenticated', message: 'The e-mail address or password is not right.' });
        expect(r.cookies.find((k) => k.name === 'kw_session')).toBeUndefined();
      }
      for (const password of [u.password, 'still wrong']) {
        const r = await login(t, u.email, password, { ip });
        expect(r.statusCode).toBe(429);
        expect(r.json().error).toBe('rate_limited');
        expect(r.json().message).toMatch(LOCKED_MESSAGE);
        const retryAfter = Number(r.headers['retry-after']);
        expect(Number.isInteger(retryAfter)).toBe(true);
        expect(retryAfter).toBeGreaterThan(0);
        expect(retryAfter).toBeLessThanOrEqual(LOCKOUT_MINUTES * 60);
        expect(r.json().message).toContain(`${Math.ceil(retryAfter / 60)} minute`);
        expect(r.cookies.find((k) => k.name === 'kw_session')).toBeUndefined();
      }
      // From another address the account is still locked: the lock is on the account, whatever
      // the spelling of the address.
      expect((await login(t, u.email, u.password, { ip: '10.1.0.99' })).statusCode).toBe(429);
      expect((await login(t, `  ${u.email.toUpperCase()} `, u.password, { ip: '10.1.0.98' })).statusCode).toBe(429);
    });

    it('treats an e-mail address that does not exist exactly like a real one (no account enumeration)', async () => {
      const real = await t.addUser('technician', 'all', 'locked.two@example.test');
      const realAnswers: LightMyRequestResponse[] = [];
      const ghostAnswers: LightMyRequestResponse[] = [];
      for (let i = 0; i <= MAX_FAILURES; i++) {
        realAnswers.push(await login(t, real.email, `nope ${i}`, { ip: '10.1.0.2' }));
        ghostAnswers.push(await login(t, 'nobody.here@example.test', `nope ${i}`, { ip: '10.1.1.2' }));
      }
      for (let i = 0; i <= MAX_FAILURES; i++) {
        const a = realAnswers[i]!;
        const b = ghostAnswers[i]!;
        expect(b.statusCode).toBe(a.statusCode);
        expect(shapeOf(b)).toEqual(shapeOf(a));
        expect('retry-after' in b.headers).toBe('retry-after' in a.headers);
      }
      expect(realAnswers.map((r) => r.statusCode)).toEqual([...Array(MAX_FAILURES).fill(401), 429]);
      expect(ghostAnswers[MAX_FAILURES]!.json().message).toMatch(LOCKED_MESSAGE);
    });

    it(`locks an address after ${MAX_FAILURES_PER_IP} failures across different accounts`, async () => {
      const ip = '10.1.0.3';
      const victims = [];
      for (let i = 0; i < 2; i++) victims.push(await t.addUser('helpdesk', 'all', `spray${i}@example.test`));
      const targets = [...victims.map((v) => v.email), 'spray-ghost1@example.test', 'spray-ghost2@example.test', 'spray-ghost3@example.test'];
      expect(targets.length).toBe(MAX_FAILURES_PER_IP);
      for (const email of targets) expect((await login(t, email, 'Winter2024!', { ip })).statusCode).toBe(401);

      const fresh = await t.addUser('helpdesk', 'all', 'spray-fresh@example.test');
      const blocked = await login(t, fresh.email, fresh.password, { ip });
      expect(blocked.statusCode).toBe(429);
      expect(blocked.headers['retry-after']).toBeDefined();
      expect(blocked.json().message).toMatch(LOCKED_MESSAGE);
      // The accounts themselves are not locked: the same person from another address gets in.
      expect((await login(t, fresh.email, fresh.password, { ip: '10.1.0.4' })).statusCode).toBe(200);
      expect((await login(t, victims[0]!.email, PASSWORD, { ip: '10.1.0.4' })).statusCode).toBe(200);
      const row = await throttleRow(t, `ip:${ip}`);
      expect(row?.locked_until).toBeTruthy();
    });

    it('backs off: a second lockout in a row lasts longer than the first', async () => {
      const u = await t.addUser('technician', 'all', 'backoff@example.test');
      const key = `acct:${u.email}`;
      const lockOnce = async (ip: string) => {
        for (let i = 0; i < MAX_FAILURES; i++) expect((await login(t, u.email, `bad ${i}`, { ip })).statusCode).toBe(401);
        // Attempts are counted before they are checked: the one after the limit is refused unchecked, and locks.
        const before = Date.now();
        expect((await login(t, u.email, 'one too many', { ip })).statusCode).toBe(429);
        const after = Date.now();
        const row = await throttleRow(t, key);
        expect(row?.locked_until).toBeTruthy();
        const until = Date.parse(row!.locked_until!);
        // Bounds of the lockout's length, from the request's own start and end.
        return { min: until - after, max: until - before, lockouts: row!.lockouts };
      };
      const first = await lockOnce('10.1.0.5');
      expect(first.lockouts).toBe(1);

      // The first lockout has run out (moved into the past instead of waiting).
      await t.container.database.db
        .updateTable('login_throttle')
        .set({ locked_until: minutesAgo(1) })
        .where('key', '=', key)
        .execute();

      const second = await lockOnce('10.1.0.6');
      expect(second.lockouts).toBe(2);
      expect(second.min).toBeGreaterThan(first.max);
      const r = await login(t, u.email, u.password, { ip: '10.1.0.7' });
      expect(r.statusCode).toBe(429);
      expect(Number(r.headers['retry-after'])).toBeGreaterThan(LOCKOUT_MINUTES * 60);
    });

    it("an owner's password reset lifts the account lockout", async () => {
      const u = await t.addUser('technician', 'all', 'reset.me@example.test');
      const ip = '10.1.0.8';
      for (let i = 0; i < MAX_FAILURES; i++) await login(t, u.email, `bad ${i}`, { ip });
      expect((await login(t, u.email, u.password, { ip })).statusCode).toBe(429);
      const newPassword = 'a brand new passphrase 42';
      const reset = await t.app.inject({ method: 'POST', url: `${API}/users/${u.id}/password`, headers: ownerS.headers, payload: { password: newPassword } });
      expect(reset.statusCode).toBe(200);
      expect(await throttleRow(t, `acct:${u.email}`)).toBeUndefined();
      expect((await login(t, u.email, u.password, { ip })).statusCode).toBe(401); // the old password is gone
      expect((await login(t, u.email, newPassword, { ip })).statusCode).toBe(200);
    });

    it('audits failed and locked sign-ins, with the address and without the password tried', async () => {
      const failures = await auditEvents(t, { action: 'auth.login', outcome: 'failure' });
      const one = failures.filter((e) => e.details?.email === 'locked.one@example.test');
      expect(one.length).toBe(MAX_FAILURES);
      expect(one[0]).toMatchObject({ ip: '10.1.0.1', details: expect.objectContaining({ reason: 'wrong password' }) });
      const ghost = failures.filter((e) => e.details?.email === 'nobody.here@example.test');
      expect(ghost.length).toBe(MAX_FAILURES);
      expect(ghost[0]!.details).toMatchObject({ reason: 'unknown account' });

      const locked = await auditEvents(t, { action: 'auth.login', outcome: 'locked' });
      const lockedEmails = locked.map((e) => e.details?.email);
      expect(lockedEmails).toEqual(
        expect.arrayContaining(['locked.one@example.test', 'nobody.here@example.test', 'spray-fresh@example.test', 'reset.me@example.test']),
      );
      const text = JSON.stringify([...failures, ...locked]);
      for (const tried of ['wrong password 0', 'nope 1', 'Winter2024!', PASSWORD]) expect(text).not.toContain(tried);
    });
  });

  // ------------------------------------------------------------------ API tokens
  describe('API tokens', () => {
    let techToken: string;
    let techTokenId: string;

    it('creates a token shown once (kw_…); the list never shows it', async () => {
      const r = await t.app.inject({
        method: 'POST',
        url: `${API}/tokens`,
        headers: ownerS.headers,
        payload: { name: 'rmm sync', role: 'technician', clients: [contoso] },
      });
      expect(r.statusCode).toBe(201);
      const body = r.json();
      techToken = body.token;
      techTokenId = body.apiToken.id;
      expect(techToken).toMatch(/^kw_[A-Za-z0-9_-]{20,}$/);
      expect(body.apiToken).toMatchObject({ name: 'rmm sync', role: 'technician', clients: [contoso], revokedAt: null, lastUsedAt: null });
      expect(techToken.startsWith(body.apiToken.prefix)).toBe(true);
      expect(body.apiToken.prefix.length).toBeLessThan(techToken.length / 2);
      expect(JSON.stringify(body.apiToken)).not.toContain(techToken);

      const list = await t.app.inject({ method: 'GET', url: `${API}/tokens`, headers: ownerS.headers });
      expect(list.statusCode).toBe(200);
      expect(list.json().map((x: { id: string }) => x.id)).toContain(techTokenId);
      expect(list.body).not.toContain(techToken);
      expect(list.body).not.toContain(techToken.slice(12));
      // Only the hash is stored.
      const row = await t.container.database.db.selectFrom('api_tokens').selectAll().where('id', '=', techTokenId).executeTakeFirstOrThrow();
      expect(row.token_hash).toBe(sha256Hex(techToken));
      expect(JSON.stringify(row)).not.toContain(techToken);
    });

    it('works as a Bearer token with its role and client scope, and records its last use', async () => {
      const h = bearer(techToken);
      const me = await t.app.inject({ method: 'GET', url: `${API}/me`, headers: h });
      expect(me.statusCode).toBe(200);
      expect(me.json().actor).toMatchObject({ type: 'token', role: 'technician', clients: [contoso] });

      const clients = await t.app.inject({ method: 'GET', url: `${API}/clients`, headers: h });
      expect(clients.json().map((x: { name: string }) => x.name)).toEqual(['Contoso']);
      expect((await t.app.inject({ method: 'GET', url: `${API}/clients/${fabrikam}`, headers: h })).statusCode).toBe(404);
      const keys = await t.app.inject({ method: 'GET', url: `${API}/keys`, headers: h });
      expect(keys.statusCode).toBe(200);
      expect(new Set(keys.json().map((k: { client: { name: string } }) => k.client.name))).toEqual(new Set(['Contoso']));
      // A technician may not manage clients or users.
      expect((await t.app.inject({ method: 'POST', url: `${API}/clients`, headers: h, payload: { name: 'Nope' } })).statusCode).toBe(403);
      expect((await t.app.inject({ method: 'GET', url: `${API}/users`, headers: h })).statusCode).toBe(403);
      // Another client's key is not there for this token.
      expect((await reveal(t, h, f.one.keyId)).statusCode).toBe(404);
      const own = await reveal(t, h, c.six.keyId);
      expect(own.statusCode).toBe(200);
      expect(own.json().key.recoveryPassword).toBe(c.six.password);

      const row = await t.container.database.db.selectFrom('api_tokens').select(['last_used_at']).where('id', '=', techTokenId).executeTakeFirstOrThrow();
      expect(row.last_used_at).toBeTruthy();
      const listed = (await t.app.inject({ method: 'GET', url: `${API}/tokens`, headers: ownerS.headers }))
        .json()
        .find((x: { id: string }) => x.id === techTokenId);
      expect(listed.lastUsedAt).toBeTruthy();
    });

    it('needs no CSRF header (browsers do not send tokens on their own)', async () => {
      const r = await t.app.inject({
        method: 'POST',
        url: `${API}/tokens`,
        headers: ownerS.headers,
        payload: { name: 'admin bot', role: 'admin', clients: 'all' },
      });
      expect(r.statusCode).toBe(201);
      const created = await t.app.inject({ method: 'POST', url: `${API}/clients`, headers: bearer(r.json().token), payload: { name: 'Made By Token' } });
      expect(created.statusCode).toBe(201);
      const events = await auditEvents(t, { action: 'client.create' });
      expect(events[0]).toMatchObject({ actorType: 'token', actorId: `token:${r.json().apiToken.id}`, outcome: 'success' });
    });

    it('an expired token is refused with 401', async () => {
      const r = await t.app.inject({
        method: 'POST',
        url: `${API}/tokens`,
        headers: ownerS.headers,
        payload: { name: 'short lived', role: 'auditor', clients: 'all', expiresInDays: 1 },
      });
      const token = r.json().token as string;
      expect((await t.app.inject({ method: 'GET', url: `${API}/audit`, headers: bearer(token) })).statusCode).toBe(200);
      await t.container.database.db
        .updateTable('api_tokens')
        .set({ expires_at: minutesAgo(1) })
        .where('id', '=', r.json().apiToken.id)
        .execute();
      const expired = await t.app.inject({ method: 'GET', url: `${API}/audit`, headers: bearer(token) });
      expect(expired.statusCode).toBe(401);
      expect(expired.json().error).toBe('unauthenticated');
    });

    it('a revoked token is refused with 401', async () => {
      const r = await t.app.inject({
        method: 'POST',
        url: `${API}/tokens`,
        headers: ownerS.headers,
        payload: { name: 'to revoke', role: 'auditor', clients: 'all' },
      });
      const token = r.json().token as string;
      expect((await t.app.inject({ method: 'GET', url: `${API}/clients`, headers: bearer(token) })).statusCode).toBe(200);
      const del = await t.app.inject({ method: 'DELETE', url: `${API}/tokens/${r.json().apiToken.id}`, headers: ownerS.headers });
      expect(del.statusCode).toBe(200);
      expect((await t.app.inject({ method: 'GET', url: `${API}/clients`, headers: bearer(token) })).statusCode).toBe(401);
      const listed = (await t.app.inject({ method: 'GET', url: `${API}/tokens`, headers: ownerS.headers }))
        .json()
        .find((x: { id: string }) => x.id === r.json().apiToken.id);
      expect(listed.revokedAt).toBeTruthy();
    });

    it('refuses malformed and unknown tokens, and a session cookie sent as a token', async () => {
      for (const authorization of ['Bearer kw_not-a-real-token', 'Bearer', 'Basic b3duZXI6cGFzcw==', `Bearer ${ownerS.cookie}`, `Bearer ${techToken}x`]) {
        const r = await t.app.inject({ method: 'GET', url: `${API}/clients`, headers: { authorization } });
        expect(r.statusCode, authorization).toBe(401);
      }
    });

    it('a token cannot create tokens (403), even with the owner role', async () => {
      const r = await t.app.inject({
        method: 'POST',
        url: `${API}/tokens`,
        headers: ownerS.headers,
        payload: { name: 'owner bot', role: 'owner', clients: 'all' },
      });
      expect(r.statusCode).toBe(201);
      const h = bearer(r.json().token);
      const nested = await t.app.inject({ method: 'POST', url: `${API}/tokens`, headers: h, payload: { name: 'child', role: 'auditor', clients: 'all' } });
      expect(nested.statusCode).toBe(403);
      expect(nested.json().error).toBe('forbidden');
      expect(nested.body).not.toMatch(/kw_/);
    });

    it('a token stops working when the person who created it is disabled', async () => {
      const a = await t.addUser('admin', 'all', 'token.creator@example.test');
      const s = await t.signIn(a.email);
      const r = await t.app.inject({
        method: 'POST',
        url: `${API}/tokens`,
        headers: s.headers,
        payload: { name: 'creator bot', role: 'auditor', clients: 'all' },
      });
      expect(r.statusCode).toBe(201);
      const h = bearer(r.json().token);
      expect((await t.app.inject({ method: 'GET', url: `${API}/clients`, headers: h })).statusCode).toBe(200);
      expect((await t.app.inject({ method: 'PATCH', url: `${API}/users/${a.id}`, headers: ownerS.headers, payload: { status: 'disabled' } })).statusCode).toBe(
        200,
      );
      expect((await t.app.inject({ method: 'GET', url: `${API}/clients`, headers: h })).statusCode).toBe(401);
    });

    it('an admin cannot create an owner token (403) but can create a lower one', async () => {
      const a = await t.addUser('admin', 'all', 'admin.tokens@example.test');
      const s = await t.signIn(a.email);
      const up = await t.app.inject({ method: 'POST', url: `${API}/tokens`, headers: s.headers, payload: { name: 'too much', role: 'owner', clients: 'all' } });
      expect(up.statusCode).toBe(403);
      expect(up.json().error).toBe('forbidden');
      const ok = await t.app.inject({
        method: 'POST',
        url: `${API}/tokens`,
        headers: s.headers,
        payload: { name: 'fine', role: 'technician', clients: [contoso] },
      });
      expect(ok.statusCode).toBe(201);
      // Admins see only their own tokens.
      const mine = (await t.app.inject({ method: 'GET', url: `${API}/tokens`, headers: s.headers })).json();
      expect(mine.map((x: { name: string }) => x.name)).toEqual(['fine']);
    });
  });

  // ------------------------------------------------------------------ CSRF
  describe('CSRF', () => {
    it('refuses a cookie request that changes something without the x-csrf-token header, and audits it', async () => {
      const noHeader = await t.app.inject({
        method: 'POST',
        url: `${API}/clients`,
        headers: { cookie: ownerS.headers.cookie! },
        payload: { name: 'Csrf Victim' },
      });
      expect(noHeader.statusCode).toBe(403);
      expect(noHeader.json().error).toBe('forbidden');
      expect(noHeader.json().message).toMatch(/x-csrf-token/i);
      const wrong = await t.app.inject({
        method: 'POST',
        url: `${API}/clients`,
        headers: { cookie: ownerS.headers.cookie!, 'x-csrf-token': 'x'.repeat(43) },
        payload: { name: 'Csrf Victim' },
      });
      expect(wrong.statusCode).toBe(403);
      for (const [method, url, payload] of [
        ['PATCH', `${API}/clients/${contoso}`, { name: 'Renamed' }],
        ['DELETE', `${API}/clients/${fabrikam}`, undefined],
        ['POST', `${API}/keys/${c.one.keyId}/reveal`, { reason: 'lost-pin' }],
        ['POST', `${API}/auth/logout`, undefined],
      ] as const) {
        const r = await t.app.inject({ method, url, headers: { cookie: ownerS.headers.cookie! }, ...(payload ? { payload } : {}) });
        expect(r.statusCode, `${method} ${url}`).toBe(403);
        expectNoLeak(r, allPasswords());
      }
      const clients = (await t.app.inject({ method: 'GET', url: `${API}/clients`, headers: { cookie: ownerS.headers.cookie! } })).json();
      expect(clients.map((x: { name: string }) => x.name).sort()).toEqual(['Contoso', 'Fabrikam', 'Made By Token']);
      const denied = await auditEvents(t, { action: 'auth.denied', actorId: ownerId });
      expect(denied.length).toBeGreaterThanOrEqual(6);
      expect(denied.map((e) => e.details?.route)).toEqual(
        expect.arrayContaining([`POST ${API}/clients`, `PATCH ${API}/clients/:clientId`, `POST ${API}/keys/:id/reveal`]),
      );
      expect(denied[0]).toMatchObject({ outcome: 'denied', actorType: 'user' });
      // The session is still good: CSRF refusals do not end it.
      expect((await t.app.inject({ method: 'GET', url: `${API}/me`, headers: ownerS.headers })).statusCode).toBe(200);
    });

    it('lets reads through without the header', async () => {
      for (const url of [`${API}/clients`, `${API}/me`, `${API}/keys`, `${API}/audit?limit=5`]) {
        expect((await t.app.inject({ method: 'GET', url, headers: { cookie: ownerS.headers.cookie! } })).statusCode, url).toBe(200);
      }
    });

    it("one session's CSRF token does not work with another session's cookie", async () => {
      const other = await t.signIn('owner@example.test');
      const a = await t.app.inject({
        method: 'POST',
        url: `${API}/clients`,
        headers: { cookie: other.headers.cookie!, 'x-csrf-token': ownerS.csrf },
        payload: { name: 'Crossed' },
      });
      expect(a.statusCode).toBe(403);
      const b = await t.app.inject({
        method: 'POST',
        url: `${API}/clients`,
        headers: { cookie: ownerS.headers.cookie!, 'x-csrf-token': other.csrf },
        payload: { name: 'Crossed' },
      });
      expect(b.statusCode).toBe(403);
      const u = await t.addUser('admin', 'all', 'csrf.other@example.test');
      const s = await t.signIn(u.email);
      const x = await t.app.inject({
        method: 'POST',
        url: `${API}/clients`,
        headers: { cookie: s.headers.cookie!, 'x-csrf-token': ownerS.csrf },
        payload: { name: 'Crossed' },
      });
      expect(x.statusCode).toBe(403);
      // With the matching pair it works.
      const ok = await t.app.inject({ method: 'POST', url: `${API}/clients`, headers: other.headers, payload: { name: 'Crossed' } });
      expect(ok.statusCode).toBe(201);
    });
  });

  // ------------------------------------------------------------------ sessions
  describe('sessions', () => {
    it('logout revokes the session: the cookie no longer works', async () => {
      const u = await t.addUser('auditor', 'all', 'logout@example.test');
      const s = await t.signIn(u.email);
      expect((await t.app.inject({ method: 'GET', url: `${API}/me`, headers: s.headers })).statusCode).toBe(200);
      const out = await t.app.inject({ method: 'POST', url: `${API}/auth/logout`, headers: s.headers });
      expect(out.statusCode).toBe(200);
      const cleared = out.cookies.find((k) => k.name === 'kw_session');
      expect(cleared?.value ?? '').toBe('');
      const after = await t.app.inject({ method: 'GET', url: `${API}/me`, headers: s.headers });
      expect(after.statusCode).toBe(401);
      expect(after.json().error).toBe('unauthenticated');
      expect((await sessionRow(t, s.cookie))?.revoked_at).toBeTruthy();
      expect((await auditEvents(t, { action: 'auth.logout', actorId: u.id })).length).toBe(1);
    });

    it('ends a session left idle longer than KEYWARDEN_SESSION_IDLE_MINUTES (30), and one past its absolute end', async () => {
      const u = await t.addUser('auditor', 'all', 'idle@example.test');
      const s = await t.signIn(u.email);
      await updateSession(t, s.cookie, { last_seen_at: minutesAgo(29) });
      expect((await t.app.inject({ method: 'GET', url: `${API}/me`, headers: s.headers })).statusCode).toBe(200);
      // Activity moved the idle clock.
      expect(Date.parse((await sessionRow(t, s.cookie))!.last_seen_at)).toBeGreaterThan(Date.now() - 5 * 60_000);
      await updateSession(t, s.cookie, { last_seen_at: minutesAgo(31) });
      const idle = await t.app.inject({ method: 'GET', url: `${API}/me`, headers: s.headers });
      expect(idle.statusCode).toBe(401);
      expect(idle.json().message).toMatch(/session has ended/i);

      const s2 = await t.signIn(u.email);
      await updateSession(t, s2.cookie, { expires_at: minutesAgo(1) });
      expect((await t.app.inject({ method: 'GET', url: `${API}/me`, headers: s2.headers })).statusCode).toBe(401);
    });

    it('disabling a user ends their sessions (and their sign-in)', async () => {
      const u = await t.addUser('technician', 'all', 'disable.me@example.test');
      const s1 = await t.signIn(u.email);
      const s2 = await t.signIn(u.email);
      const r = await t.app.inject({ method: 'PATCH', url: `${API}/users/${u.id}`, headers: ownerS.headers, payload: { status: 'disabled' } });
      expect(r.statusCode).toBe(200);
      expect(r.json().status).toBe('disabled');
      for (const s of [s1, s2]) {
        expect((await t.app.inject({ method: 'GET', url: `${API}/me`, headers: s.headers })).statusCode).toBe(401);
        expect((await sessionRow(t, s.cookie))?.revoked_at).toBeTruthy();
      }
      const again = await login(t, u.email, u.password, { ip: '10.3.0.1' });
      expect(again.statusCode).toBe(401);
      // Re-enabling does not bring the old sessions back.
      await t.app.inject({ method: 'PATCH', url: `${API}/users/${u.id}`, headers: ownerS.headers, payload: { status: 'active' } });
      expect((await t.app.inject({ method: 'GET', url: `${API}/me`, headers: s1.headers })).statusCode).toBe(401);
    });

    it('the session cookie is HttpOnly, SameSite=Strict, Path=/ and not Secure on plain http', async () => {
      const r = await login(t, 'owner@example.test', PASSWORD);
      expect(r.statusCode).toBe(200);
      const raw = [r.headers['set-cookie']].flat().find((h) => String(h).startsWith('kw_session='));
      expect(raw).toBeDefined();
      const attrs = String(raw)
        .split(';')
        .map((a) => a.trim().toLowerCase());
      expect(attrs).toContain('httponly');
      expect(attrs).toContain('samesite=strict');
      expect(attrs).toContain('path=/');
      expect(attrs).not.toContain('secure');
      expect(r.body).not.toContain(sessionFrom(r).cookie);
    });
  });

  // ------------------------------------------------------------------ reveal rate limit
  describe('reveal rate limit', () => {
    it(`the reveal after ${REVEAL_LIMIT} in an hour gets 429 with Retry-After, is audited, and carries no password`, async () => {
      const u = await t.addUser('technician', 'all', 'busy.tech@example.test');
      const s = await t.signIn(u.email);
      for (const k of [c.one, c.two, c.three]) {
        const r = await reveal(t, s.headers, k.keyId);
        expect(r.statusCode).toBe(200);
        expect(r.json().key.recoveryPassword).toBe(k.password);
      }
      const limited = await reveal(t, s.headers, c.four.keyId);
      expect(limited.statusCode).toBe(429);
      expect(limited.json().error).toBe('rate_limited');
      expect(limited.json().message.length).toBeGreaterThan(20);
      expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
      expectNoLeak(limited, allPasswords());
      const ev = await auditEvents(t, { action: 'key.reveal', actorId: u.id, outcome: 'rate_limited' });
      expect(ev.length).toBe(1);
      expect(ev[0]!.details).toMatchObject({ query: c.four.keyId });
      // The key was not revealed, so it is not marked disclosed.
      const four = (await t.app.inject({ method: 'GET', url: `${API}/keys?q=${c.four.keyId}`, headers: ownerS.headers })).json();
      expect(four[0].state).toBe('active');
      // The limit is per person: somebody else still reveals.
      const other = await t.signIn((await t.addUser('technician', 'all', 'calm.tech@example.test')).email);
      expect((await reveal(t, other.headers, c.four.keyId)).statusCode).toBe(200);
    });
  });

  describe('reveal rate limit counts misses too', () => {
    it('probing key IDs that do not exist uses up the same hourly allowance', async () => {
      const u = await t.addUser('technician', 'all', 'prober@example.test');
      const s = await t.signIn(u.email);
      for (let i = 0; i < REVEAL_LIMIT; i++) {
        expect((await reveal(t, s.headers, `dead${String(i).padStart(4, '0')}-0000-4000-8000-000000000000`)).statusCode).toBe(404);
      }
      const limited = await reveal(t, s.headers, c.one.keyId);
      expect(limited.statusCode).toBe(429);
      expectNoLeak(limited, allPasswords());
    });
  });

  // ------------------------------------------------------------------ tenant isolation
  describe('another client looks like nothing', () => {
    let tech: Session;
    let techId: string;
    let fabKeyRecord: string;
    let fabDevice: string;
    beforeAll(async () => {
      const u = await t.addUser('technician', [contoso], 'contoso.tech@example.test');
      techId = u.id;
      tech = await t.signIn(u.email);
      const keys = (await t.app.inject({ method: 'GET', url: `${API}/keys?clientId=${fabrikam}`, headers: ownerS.headers })).json();
      fabKeyRecord = keys[0].id;
      fabDevice = keys[0].device.id;
    });

    it.each([
      ['key', 'keys'],
      ['device', 'devices'],
      ['client', 'clients'],
    ])('a %s of another client is 404, identical to one that does not exist', async (_what, path) => {
      const missing = '0badc0de-0000-4000-8000-0000000000ff';
      const existing = path === 'keys' ? fabKeyRecord : path === 'devices' ? fabDevice : fabrikam;
      // The owner sees it: it does exist.
      expect((await t.app.inject({ method: 'GET', url: `${API}/${path}/${existing}`, headers: ownerS.headers })).statusCode).toBe(200);
      const other = await t.app.inject({ method: 'GET', url: `${API}/${path}/${existing}`, headers: tech.headers });
      const none = await t.app.inject({ method: 'GET', url: `${API}/${path}/${missing}`, headers: tech.headers });
      expect(other.statusCode).toBe(404);
      expect(none.statusCode).toBe(404);
      expect(other.json().error).toBe('not_found');
      expect(shapeOf(other, existing)).toEqual(shapeOf(none, missing));
    });

    it("revealing another client's key is 404 like an unknown key ID, and audited as not_found", async () => {
      const ghost = 'feed0000-0000-4000-8000-000000000abc';
      const other = await reveal(t, tech.headers, f.one.keyId);
      const none = await reveal(t, tech.headers, ghost);
      expect(other.statusCode).toBe(404);
      expect(none.statusCode).toBe(404);
      expect(shapeOf(other, f.one.keyId)).toEqual(shapeOf(none, ghost));
      expectNoLeak(other, allPasswords());
      const ev = await auditEvents(t, { action: 'key.reveal', actorId: techId, outcome: 'not_found' });
      expect(ev.map((e) => e.details?.query)).toEqual([ghost, f.one.keyId]);
      // Also by 8-character prefix.
      expect((await reveal(t, tech.headers, f.one.keyId.slice(0, 8))).statusCode).toBe(404);
      // Nor does a search or a list show it.
      const found = (await t.app.inject({ method: 'GET', url: `${API}/keys?q=${f.one.keyId.slice(0, 8)}`, headers: tech.headers })).json();
      expect(found).toEqual([]);
      const devices = (await t.app.inject({ method: 'GET', url: `${API}/devices?q=FAKE-F1`, headers: tech.headers })).json();
      expect(devices).toEqual([]);
      // By its record id (what the console links to), too. (Another Contoso technician: misses
      // count towards the hourly reveal limit of 3 in this file, and this one has used it up.)
      const second = await t.signIn((await t.addUser('technician', [contoso], 'contoso.tech2@example.test')).email);
      const byRecord = await reveal(t, second.headers, fabKeyRecord);
      expect(byRecord.statusCode).toBe(404);
      expect(shapeOf(byRecord, fabKeyRecord)).toEqual(shapeOf(none, ghost));
    });

    it("filtering a list by another client's id answers like filtering by an unknown id", async () => {
      const ghost = '0badc0de-0000-4000-8000-0000000000ee';
      for (const path of ['keys', 'devices']) {
        const other = await t.app.inject({ method: 'GET', url: `${API}/${path}?clientId=${fabrikam}`, headers: tech.headers });
        const none = await t.app.inject({ method: 'GET', url: `${API}/${path}?clientId=${ghost}`, headers: tech.headers });
        expect(other.statusCode, path).toBe(none.statusCode);
        expect(other.json().error, path).toBe(none.json().error);
        expect(other.body).not.toContain('Fabrikam');
      }
    });
  });

  // ------------------------------------------------------------------ audit
  describe('audit of reveals', () => {
    it('a successful reveal is audited with actor, address, user agent, reason and ticket, committed before the answer', async () => {
      const u = await t.addUser('technician', 'all', 'auditme@example.test');
      const s = await t.signIn(u.email);
      const r = await t.app.inject({
        method: 'POST',
        url: `${API}/keys/${c.five.keyId.slice(0, 8).toUpperCase()}/reveal`,
        headers: { ...s.headers, 'user-agent': 'KeywardenTest/1.0 (helpdesk)' },
        remoteAddress: '10.2.0.1',
        payload: { reason: 'bios-changed', ticket: 'T-4242', note: 'caller verified' },
      });
      expect(r.statusCode).toBe(200);
      expect(r.json().status).toBe('revealed');
      expect(r.json().key.recoveryPassword).toBe(c.five.password);
      expect(r.headers['cache-control']).toBe('no-store');
      // Read straight away: the event is already committed when the response arrives.
      const ev = await auditEvents(t, { action: 'key.reveal', actorId: u.id });
      expect(ev.length).toBe(1);
      expect(ev[0]).toMatchObject({
        actorType: 'user',
        actorId: u.id,
        actorName: u.email,
        outcome: 'success',
        ip: '10.2.0.1',
        userAgent: 'KeywardenTest/1.0 (helpdesk)',
        reasonCode: 'bios-changed',
        ticket: 'T-4242',
        clientId: contoso,
        targetType: 'recovery_key',
        targetId: r.json().key.id,
      });
      expect(ev[0]!.details).toMatchObject({ keyId: c.five.keyId, note: 'caller verified' });
      expect(JSON.stringify(ev)).not.toContain(c.five.password);
      expect(r.json().key.state).toBe('disclosed');
    });

    it('a reveal by a role that may not reveal is 403 and audited (key.reveal denied and auth.denied)', async () => {
      const u = await t.addUser('auditor', 'all', 'nosy.auditor@example.test');
      const s = await t.signIn(u.email);
      const r = await reveal(t, s.headers, c.one.keyId);
      expect(r.statusCode).toBe(403);
      expect(r.json().error).toBe('forbidden');
      expectNoLeak(r, allPasswords());
      expect((await auditEvents(t, { action: 'key.reveal', actorId: u.id, outcome: 'denied' })).length).toBe(1);
      const denied = await auditEvents(t, { action: 'auth.denied', actorId: u.id });
      expect(denied.length).toBe(1);
      expect(denied[0]!.details).toMatchObject({ route: `POST ${API}/keys/:id/reveal` });
    });

    it('an ambiguous prefix answers 200 "ambiguous" with candidates, no passwords, and is audited', async () => {
      const u = await t.addUser('technician', 'all', 'ambiguous@example.test');
      const s = await t.signIn(u.email);
      const r = await reveal(t, s.headers, 'abba0000');
      expect(r.statusCode).toBe(200);
      expect(r.json()).toMatchObject({ status: 'ambiguous', matches: 2 });
      expect(
        r
          .json()
          .candidates.map((k: { keyId: string }) => k.keyId)
          .sort(),
      ).toEqual(amb.map((k) => k.keyId));
      expectNoLeak(r, allPasswords());
      const ev = await auditEvents(t, { action: 'key.reveal', actorId: u.id, outcome: 'ambiguous' });
      expect(ev.length).toBe(1);
      expect(ev[0]!.details).toMatchObject({ query: 'abba0000', matches: 2 });
      // Nothing was disclosed.
      for (const k of r.json().candidates) expect(k.state).toBe('active');
    });

    it('a recovery password pasted into the note of a reveal never reaches the audit log in clear text (as for the ticket)', async () => {
      const u = await t.addUser('technician', 'all', 'paste.note@example.test');
      const s = await t.signIn(u.email);
      const pasted = randomRecoveryPassword();
      const viaTicket = await reveal(t, s.headers, c.two.keyId, { reason: 'lost-pin', ticket: `T-1 ${pasted}` });
      expect(viaTicket.statusCode).toBe(400);
      const viaNote = await reveal(t, s.headers, c.two.keyId, { reason: 'lost-pin', ticket: 'T-2', note: `the user read out ${pasted}` });
      expect.soft(viaNote.statusCode, 'a note holding a recovery password is refused like a ticket').toBe(400);
      const events = await auditEvents(t, { actorId: u.id });
      expect(JSON.stringify(events)).not.toContain(pasted);
      expect(JSON.stringify(events).replace(/[^0-9]/g, '')).not.toContain(pasted.replace(/-/g, ''));
    });

    it('the audit chain is intact after all of this', async () => {
      const v = await t.app.inject({ method: 'GET', url: `${API}/audit/verify`, headers: ownerS.headers });
      expect(v.statusCode).toBe(200);
      expect(v.json().intact).toBe(true);
    });
  });

  // ------------------------------------------------------------------ headers
  describe('security headers', () => {
    const routes = (): [string, { method: 'GET' | 'POST'; url: string; headers?: Record<string, string>; payload?: Record<string, unknown> }, number][] => [
      ['health', { method: 'GET', url: '/healthz' }, 200],
      ['api 200', { method: 'GET', url: `${API}/clients`, headers: ownerS.headers }, 200],
      ['api 401', { method: 'GET', url: `${API}/clients` }, 401],
      ['api 404', { method: 'GET', url: `${API}/no-such-thing` }, 404],
      ['root 404', { method: 'GET', url: '/no-such-page' }, 404],
      ['login 400', { method: 'POST', url: `${API}/auth/login`, payload: { email: 'x' } }, 400],
      ['openapi', { method: 'GET', url: '/api/openapi.json' }, 200],
      ['docs', { method: 'GET', url: '/api/docs/static/swagger-initializer.js' }, 200],
    ];

    const directives = (csp: string) =>
      new Map(
        csp
          .split(';')
          .map((d) => d.trim())
          .filter(Boolean)
          .map((d) => {
            const [name, ...v] = d.split(/\s+/);
            return [name!.toLowerCase(), v] as const;
          }),
      );

    it('every response has a strict CSP, no-referrer, nosniff and (on http) no HSTS', async () => {
      for (const [label, req, status] of routes()) {
        const r = await t.app.inject(req);
        expect(r.statusCode, label).toBe(status);
        const csp = String(r.headers['content-security-policy'] ?? '');
        expect(csp, label).not.toBe('');
        const d = directives(csp);
        const scripts = d.get('script-src') ?? d.get('default-src');
        expect(scripts, `${label}: script-src`).toBeDefined();
        expect(scripts, label).not.toContain("'unsafe-inline'");
        expect(scripts, label).not.toContain("'unsafe-eval'");
        expect(scripts, label).not.toContain('*');
        expect(d.get('frame-ancestors'), label).toEqual(["'none'"]);
        expect(r.headers['referrer-policy'], label).toBe('no-referrer');
        expect(r.headers['x-content-type-options'], label).toBe('nosniff');
        expect(r.headers['strict-transport-security'], label).toBeUndefined();
        if (req.url.startsWith('/api/') && !req.url.startsWith('/api/docs')) expect(r.headers['cache-control'], label).toBe('no-store');
      }
    });

    it('API answers are never cached, errors and the reveal included', async () => {
      const u = await t.addUser('technician', 'all', 'cache@example.test');
      const s = await t.signIn(u.email);
      const r = await reveal(t, s.headers, c.six.keyId);
      expect(r.statusCode).toBe(200);
      expect(r.headers['cache-control']).toBe('no-store');
      for (const res of [
        await t.app.inject({ method: 'GET', url: `${API}/tokens`, headers: ownerS.headers }),
        await t.app.inject({ method: 'GET', url: `${API}/audit/export?format=csv`, headers: ownerS.headers }),
        await reveal(t, s.headers, 'not-a-key'),
        await login(t, 'owner@example.test', PASSWORD),
      ]) {
        expect(res.headers['cache-control']).toBe('no-store');
      }
    });
  });

  // ------------------------------------------------------------------ input
  describe('bad input', () => {
    it('an unknown field is a 400 that names it', async () => {
      const r = await t.app.inject({ method: 'POST', url: `${API}/clients`, headers: ownerS.headers, payload: { name: 'Extra', colour: 'blue' } });
      expect(r.statusCode).toBe(400);
      expect(r.json().error).toBe('bad_request');
      expect(r.json().fields).toEqual([{ field: 'colour', message: expect.any(String) }]);
      const q = await t.app.inject({ method: 'GET', url: `${API}/keys?colour=blue`, headers: ownerS.headers });
      expect(q.statusCode).toBe(400);
      expect(q.json().fields.map((x: { field: string }) => x.field)).toContain('colour');
      const extra = await t.app.inject({
        method: 'POST',
        url: `${API}/auth/login`,
        remoteAddress: '10.9.9.9',
        payload: { email: 'owner@example.test', password: PASSWORD, remember: true },
      });
      expect(extra.statusCode).toBe(400);
      expect(extra.json().fields.map((x: { field: string }) => x.field)).toEqual(['remember']);
      expectNoLeak(extra, allPasswords());
    });

    it('wrong types get field-level messages', async () => {
      const r = await t.app.inject({
        method: 'POST',
        url: `${API}/users`,
        headers: ownerS.headers,
        payload: { email: 42, password: true, role: 'king', clients: 'some' },
      });
      expect(r.statusCode).toBe(400);
      const fields = r.json().fields as { field: string; message: string }[];
      expect(new Set(fields.map((x) => x.field))).toEqual(new Set(['email', 'password', 'role', 'clients']));
      for (const x of fields) expect(x.message.length, x.field).toBeGreaterThan(3);
      expect(fields.find((x) => x.field === 'email')!.message).toBe('must be a string');
      expect(fields.find((x) => x.field === 'role')!.message).toMatch(/must be one of .*owner/);
      const p = await t.app.inject({ method: 'GET', url: `${API}/clients/not-an-id`, headers: ownerS.headers });
      expect(p.statusCode).toBe(400);
      expect(p.json().fields).toEqual([{ field: 'clientId', message: expect.stringMatching(/id/) }]);
      const n = await t.app.inject({ method: 'GET', url: `${API}/audit?limit=lots`, headers: ownerS.headers });
      expect(n.statusCode).toBe(400);
      expect(n.json().fields.map((x: { field: string }) => x.field)).toEqual(['limit']);
      const missing = await t.app.inject({ method: 'POST', url: `${API}/keys/${c.one.keyId}/reveal`, headers: ownerS.headers, payload: {} });
      expect(missing.statusCode).toBe(400);
      expect(missing.json().fields).toEqual([{ field: 'reason', message: 'is required' }]);
    });

    it('every field message is a product sentence, not Zod\'s bare "Invalid input" (e.g. clients: "all" or a list)', async () => {
      const r = await t.app.inject({
        method: 'POST',
        url: `${API}/users`,
        headers: ownerS.headers,
        payload: { email: 'x@example.test', password: PASSWORD, role: 'auditor', clients: 'some' },
      });
      expect(r.statusCode).toBe(400);
      expect(r.json().fields).toHaveLength(1);
      expect(r.json().fields[0].field).toBe('clients');
      expect(r.json().fields[0].message).not.toMatch(/^Invalid input/);
      const tok = await t.app.inject({ method: 'POST', url: `${API}/tokens`, headers: ownerS.headers, payload: { name: 'x', role: 'auditor', clients: 7 } });
      expect(tok.statusCode).toBe(400);
      expect(tok.json().fields[0].message).not.toMatch(/^Invalid input/);
    });

    it('a body over 1 MB is 413, invalid JSON is 400, a content type it does not read is 415', async () => {
      const big = JSON.stringify({ name: 'x'.repeat(1024 * 1024 + 10) });
      const r = await t.app.inject({ method: 'POST', url: `${API}/clients`, headers: { ...ownerS.headers, 'content-type': 'application/json' }, payload: big });
      expect(r.statusCode).toBe(413);
      expect(r.json().error).toBe('too_large');
      const anon = await t.app.inject({
        method: 'POST',
        url: `${API}/auth/login`,
        headers: { 'content-type': 'application/json' },
        payload: JSON.stringify({ email: 'a@b.c', password: 'p'.repeat(1_100_000) }),
      });
      expect(anon.statusCode).toBe(413);
      const bad = await t.app.inject({
        method: 'POST',
        url: `${API}/clients`,
        headers: { ...ownerS.headers, 'content-type': 'application/json' },
        payload: '{"name": "Half',
      });
      expect(bad.statusCode).toBe(400);
      expect(bad.json()).toMatchObject({ error: 'bad_request', message: expect.stringMatching(/JSON/) });
      const text = await t.app.inject({
        method: 'POST',
        url: `${API}/clients`,
        headers: { ...ownerS.headers, 'content-type': 'application/x-www-form-urlencoded' },
        payload: 'name=Plain',
      });
      expect(text.statusCode).toBe(415);
      for (const res of [r, anon, bad, text]) expectNoLeak(res, allPasswords());
    });

    it('odd and hostile input never gets a 5xx, a stack trace, SQL text or a stored secret back', async () => {
      const hostile = [
        "' OR 1=1 --",
        "x'); DROP TABLE users; --",
        '%',
        '_',
        '\\',
        'a\u0000b',
        '\u0000',
        '😀🔑',
        'ＡＢＣ',
        '\ud800',
        '{{7*7}}',
        '<script>alert(1)</script>',
        '../../etc/passwd',
        'x'.repeat(100),
        c.one.password, // a recovery password typed into a search box
      ];
      const responses: { label: string; res: LightMyRequestResponse }[] = [];
      const send = async (label: string, req: InjectOptions) => {
        responses.push({ label, res: await t.app.inject(req) });
      };
      const enc = (h: string) => {
        try {
          return encodeURIComponent(h);
        } catch {
          return '%ED%A0%80'; // a lone surrogate: not valid UTF-8 once decoded
        }
      };
      for (const h of hostile) {
        const q = enc(h);
        await send(`keys q ${JSON.stringify(h)}`, { method: 'GET', url: `${API}/keys?q=${q}`, headers: ownerS.headers });
        await send(`devices q ${JSON.stringify(h)}`, { method: 'GET', url: `${API}/devices?q=${q}`, headers: ownerS.headers });
        await send(`audit action ${JSON.stringify(h)}`, { method: 'GET', url: `${API}/audit?action=${q}&actorId=${q}`, headers: ownerS.headers });
        await send(`reveal ${JSON.stringify(h)}`, { method: 'POST', url: `${API}/keys/${q}/reveal`, headers: ownerS.headers, payload: { reason: 'lost-pin' } });
        await send(`reveal ticket ${JSON.stringify(h)}`, {
          method: 'POST',
          url: `${API}/keys/deadbeef/reveal`,
          headers: ownerS.headers,
          payload: { reason: 'other', ticket: h, note: h },
        });
        await send(`login ${JSON.stringify(h)}`, { method: 'POST', url: `${API}/auth/login`, remoteAddress: '10.8.0.1', payload: { email: h, password: h } });
        await send(`client ${JSON.stringify(h)}`, { method: 'POST', url: `${API}/clients`, headers: ownerS.headers, payload: { name: h } });
        await send(`user ${JSON.stringify(h)}`, {
          method: 'POST',
          url: `${API}/users`,
          headers: ownerS.headers,
          payload: { email: h, password: h, role: 'auditor', clients: [h] },
        });
        await send(`get client ${JSON.stringify(h)}`, { method: 'GET', url: `${API}/clients/${q}`, headers: ownerS.headers });
        // Clear the address throttle the login attempts build up, so every attempt reaches the database.
        await t.container.database.db.deleteFrom('login_throttle').where('key', '=', 'ip:10.8.0.1').execute();
      }
      await send('audit from', { method: 'GET', url: `${API}/audit?from=yesterday`, headers: ownerS.headers });
      await send('limit huge', { method: 'GET', url: `${API}/keys?limit=99999999999999999999`, headers: ownerS.headers });
      await send('offset negative', { method: 'GET', url: `${API}/devices?offset=-1`, headers: ownerS.headers });
      await send('array body', { method: 'POST', url: `${API}/clients`, headers: ownerS.headers, payload: [1, 2] as never });
      await send('null body', { method: 'POST', url: `${API}/clients`, headers: { ...ownerS.headers, 'content-type': 'application/json' }, payload: 'null' });
      await send('proto', {
        method: 'POST',
        url: `${API}/clients`,
        headers: { ...ownerS.headers, 'content-type': 'application/json' },
        payload: '{"name":"P","__proto__":{"admin":true}}',
      });
      const fiveHundreds = responses.filter((r) => r.res.statusCode >= 500).map((r) => `${r.label} → ${r.res.statusCode} ${r.res.body}`);
      expect(fiveHundreds).toEqual([]);
      for (const { label, res } of responses) {
        expectNoLeak(
          res,
          [
            PASSWORD,
            ...Object.values(c)
              .filter((k) => k !== c.one)
              .map((k) => k.password),
            f.one.password,
          ],
          label,
        );
        // A recovery password typed where a key ID, search or sign-in goes is not echoed back
        // (creating a client or user stores what was typed, so those are left out).
        if (!/^(client|user) /.test(label)) expect(res.body.includes(c.one.password), `${label} echoes a recovery password`).toBe(false);
        expect(res.headers['content-type'], label).toMatch(/^application\/json/);
      }
    });

    it("a malformed multipart upload is the client's mistake: 4xx, not 500", async () => {
      const responses: { label: string; res: LightMyRequestResponse }[] = [];
      const send = async (label: string, req: InjectOptions) => {
        responses.push({ label, res: await t.app.inject(req) });
      };
      await send('no multipart', { method: 'POST', url: `${API}/imports`, headers: ownerS.headers, payload: { client: 'Contoso' } });
      const broken = await multipart({ client: 'Contoso' }, [{ name: 'k.csv', content: 'x' }]);
      await send('broken multipart', {
        method: 'POST',
        url: `${API}/imports`,
        headers: { ...ownerS.headers, ...broken.headers },
        payload: broken.payload.subarray(0, broken.payload.length - 20),
      });
      await send('multipart bad boundary', {
        method: 'POST',
        url: `${API}/imports`,
        headers: { ...ownerS.headers, 'content-type': 'multipart/form-data; boundary=zzz' },
        payload: 'garbage',
      });

      const fiveHundreds = responses.filter((r) => r.res.statusCode >= 500).map((r) => `${r.label} → ${r.res.statusCode} ${r.res.body}`);
      expect(fiveHundreds).toEqual([]);
      for (const { label, res } of responses) {
        expectNoLeak(
          res,
          [
            PASSWORD,
            ...Object.values(c)
              .filter((k) => k !== c.one)
              .map((k) => k.password),
            f.one.password,
          ],
          label,
        );
        // The one recovery password that was sent is not echoed back either.
        expect(res.body.includes(c.one.password), `${label} echoes a recovery password`).toBe(false);
        expect(res.headers['content-type'], label).toMatch(/^application\/json/);
      }
    });
  });

  // ------------------------------------------------------------------ logs
  describe('logs', () => {
    /** Sign-in, a failed sign-in, an import, a reveal, a token and some errors, through an app that logs to memory. */
    async function loggedFlows(level: string, n: number) {
      const log = logCapture();
      const logged = await buildApp(t.container, { logger: { level, stream: log.stream } });
      try {
        const u = await t.addUser('admin', 'all', `logged.admin.${n}@example.test`);
        const loginRes = await logged.inject({ method: 'POST', url: `${API}/auth/login`, payload: { email: u.email, password: u.password } });
        expect(loginRes.statusCode).toBe(200);
        const s = sessionFrom(loginRes);
        // A failed sign-in with a password that must not be logged either.
        const tried = `my-other-password-do-not-log-${n}`;
        expect(
          (await logged.inject({ method: 'POST', url: `${API}/auth/login`, remoteAddress: '10.7.0.1', payload: { email: u.email, password: tried } }))
            .statusCode,
        ).toBe(401);

        const imported = [newKey(`FAKE-LOG${n}A`), newKey(`FAKE-LOG${n}B`)];
        const form = await multipart({ client: 'Contoso' }, [
          { name: `log-keys-${n}.csv`, content: csvOf(imported.map((k) => ({ device: k.device, keyId: k.keyId, password: k.password }))) },
        ]);
        const imp = await logged.inject({ method: 'POST', url: `${API}/imports`, headers: { ...s.headers, ...form.headers }, payload: form.payload });
        expect(imp.statusCode).toBe(200);
        expect(imp.json().imported).toBe(2);

        const rv = await logged.inject({
          method: 'POST',
          url: `${API}/keys/${imported[0]!.keyId}/reveal`,
          headers: s.headers,
          payload: { reason: 'lost-pin' },
        });
        expect(rv.statusCode).toBe(200);
        expect(rv.json().key.recoveryPassword).toBe(imported[0]!.password);

        const tok = await logged.inject({
          method: 'POST',
          url: `${API}/tokens`,
          headers: s.headers,
          payload: { name: `logged ${n}`, role: 'admin', clients: 'all' },
        });
        expect(tok.statusCode).toBe(201);
        const token = tok.json().token as string;
        expect((await logged.inject({ method: 'GET', url: `${API}/audit?limit=1`, headers: bearer(token) })).statusCode).toBe(200);
        const form2 = await multipart({ client: 'Contoso', dryRun: 'true' }, [
          { name: `log-dry-${n}.csv`, content: csvOf(imported.map((k) => ({ device: k.device, keyId: k.keyId, password: k.password }))) },
        ]);
        expect(
          (await logged.inject({ method: 'POST', url: `${API}/imports`, headers: { ...bearer(token), ...form2.headers }, payload: form2.payload })).statusCode,
        ).toBe(200);
        expect((await logged.inject({ method: 'GET', url: `${API}/clients`, headers: bearer(token + 'x') })).statusCode).toBe(401);
        // Error paths log too.
        expect(
          (await logged.inject({ method: 'POST', url: `${API}/clients`, headers: { cookie: s.headers.cookie! }, payload: { name: 'no csrf' } })).statusCode,
        ).toBe(403);
        expect(
          (await logged.inject({ method: 'POST', url: `${API}/clients`, headers: { ...s.headers, 'content-type': 'application/json' }, payload: '{bad' }))
            .statusCode,
        ).toBe(400);
        expect((await logged.inject({ method: 'POST', url: `${API}/auth/logout`, headers: s.headers })).statusCode).toBe(200);

        const secrets: [string, string][] = [
          ['sign-in password', u.password],
          ['failed sign-in password', tried],
          ['revealed recovery password', imported[0]!.password],
          ['imported recovery password', imported[1]!.password],
          ['session cookie', s.cookie],
          ['CSRF token', s.csrf],
          ['API token', token],
          ['API token secret part', token.slice(12)],
        ];
        return { text: log.text(), lines: log.lines(), secrets, digits: imported.map((k) => k.password.replace(/-/g, '')) };
      } finally {
        await logged.close();
      }
    }

    function expectClean(r: Awaited<ReturnType<typeof loggedFlows>>) {
      expect(r.text.length).toBeGreaterThan(0);
      const leaks = r.secrets
        .filter(([, value]) => r.text.includes(value))
        .map(([what]) => {
          const line = r.lines.find((l) => JSON.stringify(l).includes(r.secrets.find(([w]) => w === what)![1]));
          return `${what} (in a "${String(line?.msg)}" line)`;
        });
      expect(leaks, 'secrets found in the log').toEqual([]);
      // Recovery passwords in any grouping (digits only).
      for (const d of r.digits) expect(r.text.replace(/[^0-9]/g, '')).not.toContain(d);
    }

    it('at the info level: request lines carry a request id, and no password, recovery password, cookie, CSRF token or API token is written', async () => {
      const r = await loggedFlows('info', 1);
      expectClean(r);
      const requestLines = r.lines.filter((l) => 'req' in l || 'res' in l);
      expect(requestLines.length).toBeGreaterThanOrEqual(10);
      for (const l of requestLines) expect(typeof l.reqId === 'string' && (l.reqId as string).length > 0, JSON.stringify(l)).toBe(true);
      // One line per request at info, written when it is answered: its id, route and status together.
      expect(r.lines.filter((l) => l.msg === 'incoming request')).toEqual([]);
      const completed = r.lines.filter((l) => l.msg === 'request completed');
      expect(new Set(completed.map((l) => l.reqId)).size).toBe(completed.length);
      for (const l of completed) expect(l, JSON.stringify(l)).toMatchObject({ req: { url: expect.any(String) }, res: { statusCode: expect.any(Number) } });
    });

    it('at the trace level (KEYWARDEN_LOG_LEVEL=trace) no secret is written either', async () => {
      expectClean(await loggedFlows('trace', 2));
    });
  });
});

// ==================================================================== second factor
describe(`second factor (TOTP), step-up and the "MFA required" rule on ${ENGINE}`, () => {
  let t: TestApp;
  let ownerS: Session;
  let secret: string;
  let recoveryCodes: string[];
  const key = newKey('FAKE-MFA1');
  const tech = { email: 'mfa.tech@example.test', id: '' };

  beforeAll(async () => {
    t = await createTestApp({ KEYWARDEN_STEP_UP_MINUTES: '15' });
    const o = await t.addUser('owner', 'all', 'mfa.owner@example.test');
    ownerS = await t.signIn(o.email);
    expect((await t.app.inject({ method: 'POST', url: `${API}/clients`, headers: ownerS.headers, payload: { name: 'Contoso' } })).statusCode).toBe(201);
    await seedKeys(t, 'Contoso', [key]);
    tech.id = (await t.addUser('technician', 'all', tech.email)).id;
  });
  afterAll(async () => {
    await t?.close();
  });

  it('enrols: POST /me/mfa gives a secret and an otpauth:// URI for Keywarden', async () => {
    const s = await t.signIn(tech.email);
    const r = await t.app.inject({ method: 'POST', url: `${API}/me/mfa`, headers: s.headers });
    expect(r.statusCode).toBe(200);
    secret = r.json().secret;
    expect(secret).toMatch(/^[A-Z2-7]{16,}=*$/);
    const uri = new URL(r.json().otpauthUri);
    expect(uri.protocol).toBe('otpauth:');
    expect(uri.host).toBe('totp');
    expect(uri.searchParams.get('issuer')).toBe('Keywarden');
    expect(uri.searchParams.get('secret')).toBe(secret);
    expect(decodeURIComponent(uri.pathname)).toContain(tech.email);

    const wrong = await t.app.inject({ method: 'POST', url: `${API}/me/mfa/confirm`, headers: s.headers, payload: { code: wrongTotp(secret) } });
    expect(wrong.statusCode).toBe(400);
    expect(wrong.json().fields?.[0]?.field).toBe('code');
    expect((await t.app.inject({ method: 'GET', url: `${API}/me`, headers: s.headers })).json().user.mfaEnabled).toBe(false);

    const ok = await t.app.inject({ method: 'POST', url: `${API}/me/mfa/confirm`, headers: s.headers, payload: { code: await freshTotp(t, secret) } });
    expect(ok.statusCode).toBe(200);
    recoveryCodes = ok.json().recoveryCodes;
    expect(recoveryCodes).toHaveLength(10);
    expect(new Set(recoveryCodes).size).toBe(10);
    for (const rc of recoveryCodes) expect(rc).toMatch(/^[a-z0-9]{5}-[a-z0-9]{5}$/);
    expect((await t.app.inject({ method: 'GET', url: `${API}/me`, headers: s.headers })).json().user.mfaEnabled).toBe(true);
    // The secret is stored sealed, never as given.
    const row = await t.container.database.db.selectFrom('users').select(['totp_secret']).where('id', '=', tech.id).executeTakeFirstOrThrow();
    expect(row.totp_secret).not.toContain(secret);
    // Confirming again is refused.
    expect(
      (await t.app.inject({ method: 'POST', url: `${API}/me/mfa/confirm`, headers: s.headers, payload: { code: await freshTotp(t, secret) } })).statusCode,
    ).toBe(409);
    expect((await auditEvents(t, { action: 'mfa.enrol', actorId: tech.id })).length).toBe(1);
  });

  it('sign-in then needs a code: none → 401 mfaRequired, wrong → 401, right → 200, a recovery code works once', async () => {
    const none = await login(t, tech.email, PASSWORD);
    expect(none.statusCode).toBe(401);
    expect(none.json().details).toEqual({ mfaRequired: true, totp: true, passkey: false });
    expect(none.cookies.find((k) => k.name === 'kw_session')).toBeUndefined();

    const wrong = await login(t, tech.email, PASSWORD, { code: wrongTotp(secret) });
    expect(wrong.statusCode).toBe(401);
    expect(wrong.json().details?.mfaRequired).toBeUndefined();
    expect(wrong.cookies.find((k) => k.name === 'kw_session')).toBeUndefined();

    // A right code with a wrong password is still a wrong password.
    expect((await login(t, tech.email, 'not the password', { code: await freshTotp(t, secret) })).statusCode).toBe(401);

    const code = await freshTotp(t, secret);
    const right = await login(t, tech.email, PASSWORD, { code });
    expect(right.statusCode).toBe(200);
    expect(right.cookies.find((k) => k.name === 'kw_session')?.value).toBeTruthy();
    // The same code a second time is refused: a code seen over a shoulder is already spent.
    const replay = await login(t, tech.email, PASSWORD, { code });
    expect(replay.statusCode).toBe(401);

    const rc = recoveryCodes[0]!;
    const once = await login(t, tech.email, PASSWORD, { code: rc });
    expect(once.statusCode).toBe(200);
    const twice = await login(t, tech.email, PASSWORD, { code: rc });
    expect(twice.statusCode).toBe(401);
    // Another recovery code, typed without the dash and in capitals, still works.
    expect((await login(t, tech.email, PASSWORD, { code: recoveryCodes[1]!.replace('-', '').toUpperCase() })).statusCode).toBe(200);

    const failures = await auditEvents(t, { action: 'auth.login', outcome: 'failure' });
    expect(failures.filter((e) => e.details?.reason === 'wrong second factor').length).toBe(3);
  });

  it('step-up: a reveal with an old second-factor proof is 403 step_up_required until POST /auth/step-up', async () => {
    const res = await login(t, tech.email, PASSWORD, { code: await freshTotp(t, secret) });
    const s = sessionFrom(res);
    // Fresh from sign-in: no step-up needed.
    expect((await t.app.inject({ method: 'GET', url: `${API}/me`, headers: s.headers })).json().stepUpValidUntil).toBeTruthy();

    await updateSession(t, s.cookie, { mfa_at: minutesAgo(16) });
    const stale = await reveal(t, s.headers, key.keyId);
    expect(stale.statusCode).toBe(403);
    expect(stale.json().error).toBe('step_up_required');
    expectNoLeak(stale, [key.password, PASSWORD]);
    const denied = await auditEvents(t, { action: 'key.reveal', actorId: tech.id, outcome: 'denied' });
    expect(denied.length).toBe(1);
    expect(denied[0]!.details).toMatchObject({ problem: 'step-up required', query: key.keyId });

    const bad = await t.app.inject({ method: 'POST', url: `${API}/auth/step-up`, headers: s.headers, payload: { code: wrongTotp(secret) } });
    expect(bad.statusCode).toBe(400);
    expect((await reveal(t, s.headers, key.keyId)).statusCode).toBe(403);

    const up = await t.app.inject({ method: 'POST', url: `${API}/auth/step-up`, headers: s.headers, payload: { code: await freshTotp(t, secret) } });
    expect(up.statusCode).toBe(200);
    expect(Date.parse(up.json().mfaAt)).toBeGreaterThan(Date.now() - 60_000);
    const steps = await auditEvents(t, { action: 'auth.step_up', actorId: tech.id });
    expect(steps.map((e) => e.outcome)).toEqual(['success', 'failure']);

    const revealed = await reveal(t, s.headers, key.keyId);
    expect(revealed.statusCode).toBe(200);
    expect(revealed.json().key.recoveryPassword).toBe(key.password);
  });

  it('step-up needs a session: an API token gets 403', async () => {
    const tok = await t.app.inject({
      method: 'POST',
      url: `${API}/tokens`,
      headers: ownerS.headers,
      payload: { name: 'bot', role: 'technician', clients: 'all' },
    });
    const r = await t.app.inject({ method: 'POST', url: `${API}/auth/step-up`, headers: bearer(tok.json().token), payload: { code: '123456' } });
    expect(r.statusCode).toBe(403);
  });

  describe('when the owner requires a second factor', () => {
    let pending: Session;
    let pendingId: string;

    beforeAll(async () => {
      // The owner sets up their own authenticator first, so they keep working.
      const begin = await t.app.inject({ method: 'POST', url: `${API}/me/mfa`, headers: ownerS.headers });
      const ownerSecret = begin.json().secret as string;
      expect(
        (await t.app.inject({ method: 'POST', url: `${API}/me/mfa/confirm`, headers: ownerS.headers, payload: { code: await freshTotp(t, ownerSecret) } }))
          .statusCode,
      ).toBe(200);
      const set = await t.app.inject({ method: 'PATCH', url: `${API}/settings`, headers: ownerS.headers, payload: { requireMfa: true } });
      expect(set.statusCode).toBe(200);
      expect(set.json()).toEqual({ requireMfa: true });
      const u = await t.addUser('admin', 'all', 'pending@example.test');
      pendingId = u.id;
      const res = await login(t, u.email, u.password);
      expect(res.statusCode).toBe(200);
      expect(res.json().mfaEnrolmentRequired).toBe(true);
      pending = sessionFrom(res);
    });

    const allowed = new Set([
      `GET ${API}/me`,
      `POST ${API}/me/mfa`,
      `POST ${API}/me/mfa/confirm`,
      `DELETE ${API}/me/mfa`,
      // A passkey is a second factor too (issue 19): listing, starting and finishing its set-up.
      `GET ${API}/me/passkeys`,
      `POST ${API}/me/passkeys/options`,
      `POST ${API}/me/passkeys`,
      `POST ${API}/auth/logout`,
      `POST ${API}/auth/login`,
    ]);

    it('a user without an authenticator signs in, but every route except /me, /me/mfa* and /auth/logout is 403', async () => {
      // Public routes, the agent's own routes and the end users' self-service routes do not use a console session at all.
      const routes = t.app.routeTable.filter(
        (r) =>
          r.url.startsWith(API) &&
          r.auth !== 'public' &&
          r.auth !== 'agent' &&
          r.auth !== 'self-service' &&
          !allowed.has(`${r.method} ${r.url}`) &&
          r.url !== `${API}/me/password`,
      );
      expect(routes.length).toBeGreaterThan(20);
      const id = '11111111-2222-4333-8444-555555555555';
      for (const r of routes) {
        const url = r.url.replace(/:\w+/g, id);
        const res = await t.app.inject({ method: r.method as 'GET', url, headers: pending.headers, ...(r.method === 'GET' ? {} : { payload: {} }) });
        expect(res.statusCode, `${r.method} ${r.url}`).toBe(403);
        expect(res.json().error, `${r.method} ${r.url}`).toBe('forbidden');
        expect(res.json().message).toMatch(/authenticator/i);
      }
      const me = await t.app.inject({ method: 'GET', url: `${API}/me`, headers: pending.headers });
      expect(me.statusCode).toBe(200);
      expect(me.json().mfaEnrolmentRequired).toBe(true);
      expect((await auditEvents(t, { action: 'auth.denied', actorId: pendingId })).length).toBe(routes.length);
    });

    it('POST /me/password is not among the routes open before enrolment either', async () => {
      const r = await t.app.inject({
        method: 'POST',
        url: `${API}/me/password`,
        headers: pending.headers,
        payload: { currentPassword: PASSWORD, newPassword: PASSWORD },
      });
      expect(r.statusCode).toBe(403);
    });

    it('after enrolling in the same session the user gets through; logout works before enrolment', async () => {
      const other = await t.addUser('auditor', 'all', 'pending.two@example.test');
      const s2 = sessionFrom(await login(t, other.email, other.password));
      expect((await t.app.inject({ method: 'POST', url: `${API}/auth/logout`, headers: s2.headers })).statusCode).toBe(200);
      expect((await t.app.inject({ method: 'GET', url: `${API}/me`, headers: s2.headers })).statusCode).toBe(401);

      const sess = await t.signIn('pending@example.test');
      const begin = await t.app.inject({ method: 'POST', url: `${API}/me/mfa`, headers: sess.headers });
      expect(begin.statusCode).toBe(200);
      const confirm = await t.app.inject({
        method: 'POST',
        url: `${API}/me/mfa/confirm`,
        headers: sess.headers,
        payload: { code: await freshTotp(t, begin.json().secret) },
      });
      expect(confirm.statusCode).toBe(200);
      expect((await t.app.inject({ method: 'GET', url: `${API}/clients`, headers: sess.headers })).statusCode).toBe(200);
      expect((await t.app.inject({ method: 'GET', url: `${API}/me`, headers: sess.headers })).json().mfaEnrolmentRequired).toBe(false);
    });

    it('a user cannot remove their authenticator while it is required; they can once the rule is off', async () => {
      const s = sessionFrom(await login(t, tech.email, PASSWORD, { code: await freshTotp(t, secret) }));
      const r = await t.app.inject({ method: 'DELETE', url: `${API}/me/mfa`, headers: s.headers, payload: { code: await freshTotp(t, secret) } });
      expect(r.statusCode).toBeGreaterThanOrEqual(400);
      expect(r.statusCode).toBeLessThan(500);
      expect(r.json().message).toMatch(/required/i);
      expect((await t.app.inject({ method: 'GET', url: `${API}/me`, headers: s.headers })).json().user.mfaEnabled).toBe(true);
      expect((await login(t, tech.email, PASSWORD)).json().details).toEqual({ mfaRequired: true, totp: true, passkey: false });

      expect((await t.app.inject({ method: 'PATCH', url: `${API}/settings`, headers: ownerS.headers, payload: { requireMfa: false } })).json()).toEqual({
        requireMfa: false,
      });
      const off = await t.app.inject({ method: 'DELETE', url: `${API}/me/mfa`, headers: s.headers, payload: { code: await freshTotp(t, secret) } });
      expect(off.statusCode).toBe(200);
      expect((await t.app.inject({ method: 'GET', url: `${API}/me`, headers: s.headers })).json().user.mfaEnabled).toBe(false);
      expect((await login(t, tech.email, PASSWORD)).statusCode).toBe(200);
    });
  });
});

// ==================================================================== https
describe(`behind an https public URL on ${ENGINE}`, () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp({ KEYWARDEN_PUBLIC_URL: 'https://vault.example.test' });
    await t.addUser('owner', 'all', 'secure.owner@example.test');
  });
  afterAll(async () => {
    await t?.close();
  });

  it('the session cookie is __Host-kw_session: Secure, Path=/, no Domain (and still HttpOnly, SameSite=Strict)', async () => {
    const r = await login(t, 'secure.owner@example.test', PASSWORD);
    expect(r.statusCode).toBe(200);
    const cookies = [r.headers['set-cookie']].flat().map(String);
    expect(cookies.some((h) => h.startsWith('kw_session='))).toBe(false);
    const raw = cookies.find((h) => h.startsWith('__Host-kw_session='));
    const attrs = String(raw)
      .split(';')
      .map((a) => a.trim().toLowerCase());
    expect(attrs).toEqual(expect.arrayContaining(['secure', 'httponly', 'samesite=strict', 'path=/']));
    expect(attrs.some((a) => a.startsWith('domain='))).toBe(false);
    const s = sessionFrom(r);
    expect((await t.app.inject({ method: 'GET', url: `${API}/me`, headers: s.headers })).statusCode).toBe(200);
    // The plain name is not a session over https: a cookie planted without the prefix is ignored.
    const plain = await t.app.inject({ method: 'GET', url: `${API}/me`, headers: { cookie: `kw_session=${s.cookie}` } });
    expect(plain.statusCode).toBe(401);
    const out = await t.app.inject({ method: 'POST', url: `${API}/auth/logout`, headers: s.headers });
    const cleared = [out.headers['set-cookie']].flat().find((h) => String(h).startsWith('__Host-kw_session='));
    expect(String(cleared).toLowerCase()).toContain('secure');
    expect(String(cleared).toLowerCase()).toContain('path=/');
  });

  it('every response carries HSTS', async () => {
    for (const req of [
      { method: 'GET' as const, url: '/healthz' },
      { method: 'GET' as const, url: `${API}/me` },
      { method: 'GET' as const, url: '/nothing-here' },
      { method: 'GET' as const, url: '/api/openapi.json' },
    ]) {
      const r = await t.app.inject(req);
      const hsts = String(r.headers['strict-transport-security'] ?? '');
      expect(hsts, req.url).toMatch(/max-age=(\d+)/);
      expect(Number(/max-age=(\d+)/.exec(hsts)![1])).toBeGreaterThanOrEqual(180 * 24 * 3600);
    }
  });
});
