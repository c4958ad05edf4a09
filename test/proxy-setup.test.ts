/**
 * Who the client is behind a reverse proxy, and who may become the first owner.
 *
 * KEYWARDEN_TRUST_PROXY names how many proxies (or which addresses) may speak for the client in
 * X-Forwarded-For; the client is the right-most address that no trusted proxy added, so a value the
 * client writes itself at the left changes nothing: not the audit log, not the per-address sign-in
 * lockout. First-run setup over HTTP needs the one-time setup token printed on the server's terminal;
 * the peer address (forged or real, even 127.0.0.1) never suffices.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/app.js';
import { loadConfig, parseTrustProxy } from '../src/config.js';
import { SETUP_TOKEN_KEY } from '../src/modules/identity/setup.service.js';
import { createSettingsRepo } from '../src/modules/settings/settings.repo.js';
import { createTestApp, PASSWORD, type TestApp } from './helpers/app.js';
import { ENGINE } from './helpers/engine.js';
import { logCapture, sessionRow, throttleRow } from './helpers/http.js';
import { owner } from './helpers/vault.js';

const API = '/api/v1';
const PROXY = '127.0.0.1';
const REAL = '192.0.2.200';
const FORGED = '198.51.100.77';

describe('KEYWARDEN_TRUST_PROXY', () => {
  it('takes false, a hop count or proxy addresses/CIDRs, and refuses "trust everything"', () => {
    expect(parseTrustProxy('false')).toBe(false);
    expect(parseTrustProxy('0')).toBe(false);
    expect(parseTrustProxy('')).toBe(false);
    expect(parseTrustProxy('1')).toBe(1);
    expect(parseTrustProxy('2')).toBe(2);
    expect(parseTrustProxy('127.0.0.1, 10.0.0.0/24,fd00::/64, ::1')).toEqual(['127.0.0.1', '10.0.0.0/24', 'fd00::/64', '::1']);
    expect(loadConfig({ KEYWARDEN_TRUST_PROXY: '10.1.2.3' }).server.trustProxy).toEqual(['10.1.2.3']);
    expect(loadConfig({}).server.trustProxy).toBe(false);

    for (const v of ['true', 'TRUE', ' true ']) {
      expect(() => loadConfig({ KEYWARDEN_TRUST_PROXY: v })).toThrow(
        /KEYWARDEN_TRUST_PROXY=true would trust every X-Forwarded-For entry.*KEYWARDEN_TRUST_PROXY=1.*127\.0\.0\.1/,
      );
    }
    for (const v of ['yes', '10.0.0.0/33', 'fd00::/129', '10.0.0.300', 'nginx', '1.5', '-1', '127.0.0.1/8/2', '11']) {
      expect(() => parseTrustProxy(v), v).toThrow(/KEYWARDEN_TRUST_PROXY/);
    }
  });
});

describe(`first-run setup needs the setup token, not an address, on ${ENGINE}`, () => {
  let t: TestApp;
  beforeAll(async () => {
    // Behind one proxy, as deployed: the proxy (127.0.0.1) appends the real client to X-Forwarded-For.
    t = await createTestApp({ KEYWARDEN_TRUST_PROXY: '1' });
  });
  afterAll(async () => t.close());

  const setup = (payload: Record<string, unknown>, headers: Record<string, string> = {}, remoteAddress = PROXY) =>
    t.app.inject({ method: 'POST', url: `${API}/setup`, payload, headers, remoteAddress });

  it('refuses a forged "127.0.0.1" and a bare loopback peer without the token; the printed token makes the owner once', async () => {
    const printed = await t.cli(['init']);
    expect(printed.code).toBe(0);
    const token = /(kws_[A-Za-z0-9_-]{40,})/.exec(printed.stdout)?.[1];
    expect(token, printed.stdout).toBeDefined();
    expect((await t.app.inject({ url: `${API}/setup` })).json()).toEqual({ needed: true, signedIn: false });

    const attacker = { email: 'attacker@evil.example', password: 'attackerpassword1' };
    // The review's attack: the attacker writes 127.0.0.1 at the left, the proxy appends the real address.
    const spoofed = await setup(attacker, { 'x-forwarded-for': '127.0.0.1, 203.0.113.9' });
    expect(spoofed.statusCode).toBe(403);
    expect(spoofed.json().message).toMatch(/setup token/);
    // Straight from the server itself (no proxy, no header) is not enough either.
    const local = await setup(attacker, {}, '127.0.0.1');
    expect(local.statusCode).toBe(403);
    const wrong = await setup({ ...attacker, setupToken: `kws_${'A'.repeat(43)}` }, { 'x-forwarded-for': '203.0.113.9' });
    expect(wrong.statusCode).toBe(403);
    expect(await t.container.identity.hasUsers()).toBe(false);

    const denied = await t.container.audit.list(owner, { action: 'auth.denied' });
    expect(denied.map((e) => [e.ip, e.details?.why])).toEqual(
      expect.arrayContaining([
        ['203.0.113.9', 'no setup token'],
        ['127.0.0.1', 'no setup token'],
        ['203.0.113.9', 'wrong setup token'],
      ]),
    );
    expect(denied.every((e) => e.targetType === 'setup' && e.outcome === 'denied')).toBe(true);
    expect(JSON.stringify(denied)).not.toContain(token!);

    // The operator, from anywhere, with the token printed on the server's terminal.
    const made = await setup({ email: 'owner@example.test', password: PASSWORD, setupToken: token! }, { 'x-forwarded-for': '203.0.113.50' });
    expect(made.statusCode).toBe(200);
    expect(made.json().user).toMatchObject({ email: 'owner@example.test', role: 'owner', clients: 'all' });
    expect((await t.container.identity.listUsers(owner)).map((u) => u.email)).toEqual(['owner@example.test']);

    // The token is dead: stored nowhere, and reusing it makes nobody.
    expect(await createSettingsRepo().get(t.container.database.db, SETUP_TOKEN_KEY)).toBeUndefined();
    const reuse = await setup({ ...attacker, setupToken: token! }, { 'x-forwarded-for': '203.0.113.9' });
    expect(reuse.statusCode).toBe(409);
    expect((await t.container.identity.listUsers(owner)).length).toBe(1);
    expect((await t.app.inject({ url: `${API}/setup` })).json()).toEqual({ needed: false, signedIn: false });
    // Once an owner exists, init and serve print no token.
    expect(await t.container.setup.issueToken()).toBeNull();
    const again = await t.cli(['init']);
    expect(again.stdout).not.toMatch(/kws_/);
  });
});

/** Sign-in failures through the proxy with a chosen X-Forwarded-For. */
function proxied(t: TestApp, proxy: string) {
  let n = 0;
  return (xff: string) =>
    t.app.inject({
      method: 'POST',
      url: `${API}/auth/login`,
      remoteAddress: proxy,
      headers: { 'x-forwarded-for': xff },
      payload: { email: `spray${++n}@example.test`, password: 'wrongwrongwrong' },
    });
}

for (const [label, trust, proxy] of [
  ['one trusted hop', '1', PROXY],
  ["the proxy's CIDR", '10.20.0.0/16, fd00:20::/32', '10.20.0.5'],
] as const) {
  describe(`client address behind ${label} on ${ENGINE}`, () => {
    let t: TestApp;
    beforeAll(async () => {
      t = await createTestApp({ KEYWARDEN_TRUST_PROXY: trust, KEYWARDEN_LOGIN_MAX_FAILURES_PER_IP: '3' });
    });
    afterAll(async () => t.close());

    it('audits and throttles the address the proxy saw; rotating the left-most value does not escape the lockout', async () => {
      const login = proxied(t, proxy);
      const first = await login(`${FORGED}, ${REAL}`);
      expect(first.statusCode).toBe(401);
      const [event] = await t.container.audit.list(owner, { action: 'auth.login', limit: 1 });
      expect(event!.ip).toBe(REAL);
      expect(await throttleRow(t, `ip:${REAL}`)).toBeDefined();
      expect(await throttleRow(t, `ip:${FORGED}`)).toBeUndefined();

      const codes = [];
      for (let i = 1; i <= 4; i++) codes.push((await login(`198.51.101.${i}, ${REAL}`)).statusCode);
      // Three failures per address: the fourth attempt from REAL is locked whatever comes first.
      expect(codes).toEqual([401, 401, 429, 429]);
      const locked = await t.container.audit.list(owner, { action: 'auth.login', limit: 50 });
      expect(locked.every((e) => e.ip === REAL)).toBe(true);

      // Someone else behind the same proxy is not caught by REAL's lockout.
      expect((await login(`${FORGED}, 192.0.2.201`)).statusCode).toBe(401);
    });

    it('ignores X-Forwarded-For from a peer that is not a trusted proxy', async () => {
      if (trust === '1') return; // a hop count trusts whichever peer connects: listen on the proxy's side only
      const direct = await t.app.inject({
        method: 'POST',
        url: `${API}/auth/login`,
        remoteAddress: '203.0.113.77',
        headers: { 'x-forwarded-for': '10.20.0.9, 192.0.2.250' },
        payload: { email: 'direct@example.test', password: 'wrongwrongwrong' },
      });
      expect(direct.statusCode).toBe(401);
      const [event] = await t.container.audit.list(owner, { action: 'auth.login', limit: 1 });
      expect(event!.ip).toBe('203.0.113.77');
    });

    it('also gives the client address to sessions', async () => {
      const u = await t.addUser('admin', 'all', `session-${trust.length}@example.test`);
      const res = await t.app.inject({
        method: 'POST',
        url: `${API}/auth/login`,
        remoteAddress: proxy,
        headers: { 'x-forwarded-for': `${FORGED}, 192.0.2.210` },
        payload: { email: u.email, password: u.password },
      });
      expect(res.statusCode).toBe(200);
      const [ok] = await t.container.audit.list(owner, { action: 'auth.login', outcome: 'success', limit: 1 });
      expect(ok!.ip).toBe('192.0.2.210');
      const cookie = res.cookies.find((c) => c.name === 'kw_session')!.value;
      expect((await sessionRow(t, cookie))!.ip).toBe('192.0.2.210');
    });
  });
}

describe(`a proxy in front while trust is off, on ${ENGINE}`, () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(async () => t.close());

  it('logs one warning, on the first request that carries X-Forwarded-For', async () => {
    const log = logCapture();
    const app = await buildApp(t.container, { logger: { level: 'warn', stream: log.stream } });
    try {
      await app.inject({ url: '/healthz' });
      expect(log.text()).not.toMatch(/KEYWARDEN_TRUST_PROXY/);
      for (let i = 0; i < 3; i++) {
        const r = await app.inject({ url: '/healthz', remoteAddress: PROXY, headers: { 'x-forwarded-for': `203.0.113.${i}` } });
        expect(r.statusCode).toBe(200);
      }
      const warnings = log.lines().filter((l) => String(l.msg).includes('KEYWARDEN_TRUST_PROXY'));
      expect(warnings).toHaveLength(1);
      expect(warnings[0]!.level).toBe(40);
      // Trust stays off: the forwarded address is not taken.
      const failed = await app.inject({
        method: 'POST',
        url: `${API}/auth/login`,
        remoteAddress: PROXY,
        headers: { 'x-forwarded-for': REAL },
        payload: { email: 'nobody@example.test', password: 'wrongwrongwrong' },
      });
      expect(failed.statusCode).toBe(401);
      const [event] = await t.container.audit.list(owner, { action: 'auth.login', limit: 1 });
      expect(event!.ip).toBe(PROXY);
    } finally {
      await app.close();
    }
  });
});
