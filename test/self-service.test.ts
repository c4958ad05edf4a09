/**
 * Self-service recovery for end users (issue 20) against a real OpenID provider (oidc-provider)
 * and the Graph simulator: an owner of one device signs in (sees it, reveals its key, rotation
 * queued, audited with the UPN, the MSP notified); a tenant not linked, a client with self-service
 * off and a sign-in without MFA are refused; guessing other devices' key IDs finds nothing and is
 * rate-limited (also in a parallel burst); a replayed or forged state is refused; the end user's
 * session never reaches console routes and a console session never reaches the self-service ones.
 * The person's devices come from Graph `/me/ownedDevices|registeredDevices` with their own delegated
 * token (User.Read, issued by the IdP in the sign-in's code exchange; the Graph simulator asks the
 * IdP whose token it is): the client's app-only token cannot list a user's devices at all.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type Session, type TestApp } from './helpers/app.js';
import { owner as cliOwner } from './helpers/vault.js';
import { ENGINE } from './helpers/engine.js';
import { startOidcProvider, type TestIdp } from './oidc/provider.js';
import { GraphSimulator, type SimTenant } from './graph-sim/simulator.js';
import { simOwners } from './graph-sim/owners.js';
import { expectedIssuer } from '../src/modules/self-service/self-service.service.js';

const PUBLIC_URL = 'http://kw.test';
const REDIRECT = `${PUBLIC_URL}/api/v1/recover/callback`;
const API = '/api/v1';
const TENANT_A = 'a1a1a1a1-1111-4222-8333-444444444444';
const TENANT_OFF = 'b2b2b2b2-1111-4222-8333-444444444444';
const TENANT_NONE = 'c3c3c3c3-1111-4222-8333-444444444444';
const ANN = 'a0000000-0000-4000-8000-00000000000a';
const FAY = 'a0000000-0000-4000-8000-00000000000f';

describe(`self-service recovery for end users on ${ENGINE}`, () => {
  let t: TestApp;
  let idp: TestIdp;
  let sim: GraphSimulator;
  let owner: Session;
  let clientA: string;
  let tenantA: SimTenant;

  const user = (oid: string, upn: string, tid: string, amr = ['pwd', 'mfa'], withholdScopes?: string[]) => ({
    sub: `sub-${oid}`,
    amr,
    extra: { oid, tid, preferred_username: upn, name: upn },
    ...(withholdScopes ? { withholdScopes } : {}),
  });
  type EndUser = { cookie: string; csrf: string; headers: Record<string, string> };

  async function startAndReturn(login: string) {
    const start = await t.app.inject({ method: 'GET', url: `${API}/recover/start` });
    expect(start.statusCode, start.body).toBe(302);
    const state = start.cookies.find((c) => c.name === 'kw_recover_state')!;
    expect(state.httpOnly).toBe(true);
    // The delegated Graph permission for /me's devices is asked for in the same sign-in.
    expect(new URL(String(start.headers.location)).searchParams.get('scope')!.split(' ')).toEqual(expect.arrayContaining(['openid', 'User.Read']));
    const cb = await idp.signIn(String(start.headers.location), login);
    return { url: `${cb.pathname}${cb.search}`, stateCookie: state.value };
  }
  async function signIn(login: string): Promise<EndUser> {
    const { url, stateCookie } = await startAndReturn(login);
    const res = await t.app.inject({ method: 'GET', url, headers: { cookie: `kw_recover_state=${stateCookie}` } });
    expect(res.statusCode, res.body).toBe(302);
    expect(res.headers.location).toBe('/recover');
    const cookie = res.cookies.find((c) => c.name === 'kw_recover')!;
    expect(cookie.httpOnly).toBe(true);
    expect(cookie.path).toBe('/api/v1/recover');
    const csrf = res.cookies.find((c) => c.name === 'kw_recover_csrf')!.value;
    return { cookie: cookie.value, csrf, headers: { cookie: `kw_recover=${cookie.value}`, 'x-csrf-token': csrf } };
  }
  async function refused(login: string, reason: string) {
    const { url, stateCookie } = await startAndReturn(login);
    const res = await t.app.inject({ method: 'GET', url, headers: { cookie: `kw_recover_state=${stateCookie}` } });
    expect(res.statusCode).toBe(302);
    expect(res.headers.location).toBe(`/recover?error=${reason}`);
    expect(res.cookies.find((c) => c.name === 'kw_recover')).toBeUndefined();
  }
  const audits = async (action: string) =>
    (await t.container.database.db.selectFrom('audit_events').selectAll().where('action', '=', action).orderBy('seq').execute()).map((r) => ({
      ...r,
      details: JSON.parse(r.details ?? '{}') as Record<string, unknown>,
    }));
  const reveal = (u: EndUser, keyId: string, reason = 'my laptop asks for the key') =>
    t.app.inject({ method: 'POST', url: `${API}/recover/reveal`, headers: u.headers, payload: { keyId, reason } });

  beforeAll(async () => {
    idp = await startOidcProvider({
      redirectUris: [REDIRECT],
      users: {
        ann: user(ANN, 'ann@contoso.example', TENANT_A),
        bo: user('a0000000-0000-4000-8000-00000000000b', 'bo@contoso.example', TENANT_A),
        nomfa: user('a0000000-0000-4000-8000-00000000000c', 'cy@contoso.example', TENANT_A, ['pwd']),
        offuser: user('a0000000-0000-4000-8000-00000000000d', 'di@fabrikam.example', TENANT_OFF),
        stranger: user('a0000000-0000-4000-8000-00000000000e', 'ed@elsewhere.example', TENANT_NONE),
        // Owns a device too, but her grant leaves out User.Read (not consented).
        noscope: user(FAY, 'fay@contoso.example', TENANT_A, ['pwd', 'mfa'], ['User.Read']),
        // Primary user of devices in two clients (a guard against matching across clients).
        gus: user('a0000000-0000-4000-8000-000000000010', 'gus@contoso.example', TENANT_A),
        hal: user('a0000000-0000-4000-8000-000000000011', 'hal@contoso.example', TENANT_A),
      },
    });
    t = await createTestApp({ KEYWARDEN_PUBLIC_URL: PUBLIC_URL, KEYWARDEN_EGRESS_ALLOW: '127.0.0.1' });
    owner = await t.signIn((await t.addUser('owner', 'all', 'owner@example.test')).email);
    sim = new GraphSimulator();
    const urls = await sim.start();
    tenantA = sim.seedTenant(TENANT_A, { keys: 8, devices: 4 });
    // The Graph simulator learns the IdP's access tokens as delegated tokens of the person's tenant.
    sim.trustDelegated(async (token) => {
      const a = await idp.accessToken(token);
      const extra = a?.user.extra as { tid?: string; oid?: string } | undefined;
      return a && extra?.tid && extra.oid ? { tenantId: extra.tid, userObjectId: extra.oid, scopes: a.scopes } : null;
    });
    sim.seedTenant(TENANT_OFF, { keys: 2, devices: 1 });
    const connect = async (name: string, tenantId: string) => {
      const client = await t.container.clients.create(cliOwner, { name });
      const tn = sim.tenant(tenantId);
      const conn = await t.container.graph.createConnection(cliOwner, {
        clientId: client.id,
        tenantId,
        appClientId: tn.clientId,
        clientSecret: tn.clientSecret,
        ...urls,
      });
      await t.container.graph.runSync(conn.id);
      return client.id;
    };
    clientA = await connect('Contoso', TENANT_A);
    // Contoso rotates keys after disclosure (the client's security switch).
    await t.container.database.db.updateTable('clients').set({ rotate_after_disclosure: 1 }).where('id', '=', clientA).execute();
    const clientOff = await connect('Fabrikam', TENANT_OFF);
    // Ann owns the first device (Graph); Bo owns none.
    const o = simOwners(tenantA);
    o.addUser({ id: ANN, userPrincipalName: 'ann@contoso.example' });
    o.setOwners(tenantA.devices[0]!.id, [ANN]);
    o.addUser({ id: FAY, userPrincipalName: 'fay@contoso.example' });
    o.setOwners(tenantA.devices[2]!.id, [FAY]);

    const app = await t.app.inject({
      method: 'PUT',
      url: `${API}/settings/self-service`,
      headers: owner.headers,
      payload: { issuer: idp.issuer, clientId: idp.clientId, clientSecret: idp.clientSecret, enabled: true },
    });
    expect(app.statusCode, app.body).toBe(200);
    expect(app.json()).toMatchObject({ hasSecret: true, enabled: true });
    expect(app.body).not.toContain(idp.clientSecret);
    const on = await t.app.inject({ method: 'PUT', url: `${API}/clients/${clientA}/self-service`, headers: owner.headers, payload: { enabled: true } });
    expect(on.statusCode, on.body).toBe(200);
    // Fabrikam's switch stays off (the default).
    expect((await t.app.inject({ url: `${API}/clients/${clientOff}/self-service`, headers: owner.headers })).json()).toEqual({ enabled: false });
  }, 120_000);
  afterAll(async () => {
    await t?.close();
    await idp?.close();
    await sim?.stop();
  });

  it("the issuer rule: the template of the multi-tenant discovery document with the token's own tid", () => {
    expect(expectedIssuer('https://login.microsoftonline.com/{tenantid}/v2.0', TENANT_A)).toBe(`https://login.microsoftonline.com/${TENANT_A}/v2.0`);
    expect(expectedIssuer('http://127.0.0.1:1', TENANT_A)).toBe('http://127.0.0.1:1');
  });

  it('an owner of one device signs in, sees it, reveals its key: rotation queued, audited with the UPN, the MSP notified', async () => {
    const ann = await signIn('ann');
    const me = await t.app.inject({ url: `${API}/recover/me`, headers: { cookie: ann.headers.cookie! } });
    expect(me.statusCode, me.body).toBe(200);
    expect(me.json().upn).toBe('ann@contoso.example');
    expect(me.json().devices).toEqual([{ id: expect.any(String), name: tenantA.devices[0]!.displayName, why: 'owner' }]);
    expect(me.json().entraRead).toBe(true);
    // Read through her own delegated token at sign-in, never through the client's app-only connection.
    const graphCalls = sim.requests(TENANT_A).filter((r) => /ownedDevices|registeredDevices/i.test(r.path));
    expect(graphCalls.filter((r) => r.path.endsWith('/me/ownedDevices') && r.status === 200).length).toBeGreaterThan(0);
    expect(graphCalls.filter((r) => r.path.endsWith('/me/registeredDevices') && r.status === 200).length).toBeGreaterThan(0);
    expect(graphCalls.filter((r) => r.path.includes('/users/'))).toEqual([]);
    const session = await t.container.database.db
      .selectFrom('self_service_sessions')
      .select(['entra_device_ids'])
      .where('upn', '=', 'ann@contoso.example')
      .orderBy('created_at', 'desc')
      .executeTakeFirstOrThrow();
    expect(JSON.parse(session.entra_device_ids!)).toEqual([tenantA.devices[0]!.deviceId.toLowerCase()]);
    const key = tenantA.keys.find((k) => k.deviceId === tenantA.devices[0]!.deviceId && (k.volumeType === 1 || k.volumeType === 'operatingSystemVolume'))!;
    // No CSRF token: refused.
    const noCsrf = await t.app.inject({
      method: 'POST',
      url: `${API}/recover/reveal`,
      headers: { cookie: ann.headers.cookie! },
      payload: { keyId: key.id.slice(0, 8), reason: 'stuck at the blue screen' },
    });
    expect(noCsrf.statusCode).toBe(403);
    const r = await reveal(ann, key.id.slice(0, 8).toUpperCase());
    expect(r.statusCode, r.body).toBe(200);
    expect(r.json()).toMatchObject({ status: 'revealed', key: { keyId: key.id.toLowerCase(), recoveryPassword: key.key } });
    const ev = (await audits('key.self_service_reveal')).filter((e) => e.outcome === 'success');
    expect(ev).toHaveLength(1);
    expect(ev[0]).toMatchObject({ actor_type: 'end-user', actor_name: 'ann@contoso.example', client_id: clientA });
    expect(ev[0]!.details).toMatchObject({ upn: 'ann@contoso.example', tenantId: TENANT_A, keyId: key.id.toLowerCase() });
    expect(JSON.stringify(ev[0])).not.toContain(key.key);
    const stored = await t.container.database.db
      .selectFrom('recovery_keys')
      .select(['id', 'state'])
      .where('key_id', '=', key.id.toLowerCase())
      .executeTakeFirstOrThrow();
    expect(stored.state).toBe('disclosed');
    const jobs = await t.container.database.db.selectFrom('jobs').selectAll().where('recovery_key_id', '=', stored.id).execute();
    expect(
      jobs.map((j) => j.kind),
      'a rotation after disclosure is queued',
    ).toEqual(['intune-rotate']);
    expect(r.json().rotation).toBe('intune');
    const outbox = await t.container.database.db.selectFrom('notification_outbox').selectAll().where('event_type', '=', 'key.self_service_reveal').execute();
    expect(outbox).toHaveLength(1);
    expect(JSON.stringify(outbox[0])).toContain('ann@contoso.example');
    expect(JSON.stringify(outbox[0])).not.toContain(key.key);
  });

  it('a user guessing other devices\' key IDs gets the same "nothing", and is rate-limited', async () => {
    const bo = await signIn('bo');
    const other = tenantA.keys.find((k) => k.deviceId !== tenantA.devices[0]!.deviceId)!;
    const answers = [];
    for (const guess of [other.id.slice(0, 8), tenantA.keys[0]!.id.slice(0, 8), 'deadbeef', '00000000', 'abcdef12']) answers.push(await reveal(bo, guess));
    for (const a of answers) {
      expect(a.statusCode).toBe(200);
      expect(a.json()).toEqual({ status: 'not_found' });
    }
    const sixth = await reveal(bo, 'feedface');
    expect(sixth.statusCode).toBe(429);
    expect((await audits('key.self_service_reveal')).filter((e) => e.actor_name === 'bo@contoso.example' && e.outcome === 'rate_limited')).toHaveLength(1);
  });

  it('the limit holds under a parallel burst', async () => {
    const u = await signIn('ann');
    await t.container.database.db.deleteFrom('audit_events').where('action', '=', 'nothing').execute();
    const before = (await audits('key.self_service_reveal')).filter((e) => e.actor_name === 'ann@contoso.example' && e.outcome !== 'rate_limited').length;
    const burst = await Promise.all(Array.from({ length: 12 }, (_, i) => reveal(u, `0${i.toString(16)}bad${i.toString(16)}00`.slice(0, 8))));
    const counted = (await audits('key.self_service_reveal')).filter((e) => e.actor_name === 'ann@contoso.example' && e.outcome !== 'rate_limited').length;
    expect(counted).toBe(5);
    expect(burst.filter((r) => r.statusCode === 200)).toHaveLength(5 - before);
    expect(burst.filter((r) => r.statusCode === 429)).toHaveLength(12 - (5 - before));
  });

  it('the limit is per person: several sessions of one user, upper or lower case, in one burst share it', async () => {
    const [a, b] = [await signIn('hal'), await signIn('hal')];
    const guesses = Array.from({ length: 8 }, (_, i) => `c0ffee${i.toString(16)}${i.toString(16)}`);
    const burst = await Promise.all(guesses.map((g, i) => reveal(i % 2 ? a : b, i % 3 ? g.toUpperCase() : g)));
    expect(burst.filter((r) => r.statusCode === 200)).toHaveLength(5);
    expect(burst.filter((r) => r.statusCode === 429)).toHaveLength(3);
  });

  it("a device whose primary user is the person's UPN counts too; Graph unreachable at sign-in: only that, and the page is told", async () => {
    const db = t.container.database.db;
    const dev = await db
      .selectFrom('devices')
      .select(['id', 'name'])
      .where('client_id', '=', clientA)
      .where('entra_device_id', '=', tenantA.devices[1]!.deviceId.toLowerCase())
      .executeTakeFirstOrThrow();
    await db.updateTable('devices').set({ primary_user: 'ANN@contoso.example' }).where('id', '=', dev.id).execute();
    const conn = await db.selectFrom('graph_connections').select(['id', 'graph_url']).where('client_id', '=', clientA).executeTakeFirstOrThrow();
    // Nothing listens on port 1: Graph cannot be reached while Ann signs in.
    await db.updateTable('graph_connections').set({ graph_url: 'http://127.0.0.1:1/graph' }).where('id', '=', conn.id).execute();
    try {
      const ann = await signIn('ann');
      const me = await t.app.inject({ url: `${API}/recover/me`, headers: { cookie: ann.headers.cookie! } });
      expect(me.json().devices).toEqual([{ id: dev.id, name: dev.name, why: 'primary user' }]);
      expect(me.json().entraRead).toBe(false);
      const ok = (await audits('self_service.sign_in')).filter((e) => e.outcome === 'success').at(-1)!;
      expect(ok.details).toMatchObject({ upn: 'ann@contoso.example', entraDevices: 'not read' });
    } finally {
      await db.updateTable('graph_connections').set({ graph_url: conn.graph_url }).where('id', '=', conn.id).execute();
    }
    // Graph back: her owned device and the one she primarily uses.
    const again = await signIn('ann');
    const me2 = await t.app.inject({ url: `${API}/recover/me`, headers: { cookie: again.headers.cookie! } });
    expect(me2.json().entraRead).toBe(true);
    expect(
      me2
        .json()
        .devices.map((d: { why: string }) => d.why)
        .sort(),
    ).toEqual(['owner', 'primary user']);
    await db.updateTable('devices').set({ primary_user: null }).where('id', '=', dev.id).execute();
  });

  it("the same primary user on another client's device, or on a retired device, reaches neither", async () => {
    const db = t.container.database.db;
    const off = sim.tenant(TENANT_OFF);
    const offKey = off.keys[0]!;
    const mine = tenantA.devices[3]!;
    const mineKey = tenantA.keys.find((k) => k.deviceId === mine.deviceId)!;
    const byEntra = (id: string) =>
      db.selectFrom('devices').select(['id', 'client_id']).where('entra_device_id', '=', id.toLowerCase()).executeTakeFirstOrThrow();
    const offDevice = await byEntra(offKey.deviceId);
    const mineDevice = await byEntra(mine.deviceId);
    expect(offDevice.client_id).not.toBe(clientA);
    // Fabrikam's device names Gus (another client's tenant); Contoso's is retired.
    await db.updateTable('devices').set({ primary_user: 'GUS@contoso.example' }).where('id', 'in', [offDevice.id, mineDevice.id]).execute();
    await db.updateTable('devices').set({ retired_at: new Date().toISOString() }).where('id', '=', mineDevice.id).execute();
    try {
      const gus = await signIn('gus');
      const me = await t.app.inject({ url: `${API}/recover/me`, headers: { cookie: gus.headers.cookie! } });
      expect(me.json().devices).toEqual([]);
      for (const k of [offKey, mineKey]) expect((await reveal(gus, k.id.slice(0, 8))).json()).toEqual({ status: 'not_found' });
      // The same device back in service: now it is his (the test can tell the difference).
      await db.updateTable('devices').set({ retired_at: null }).where('id', '=', mineDevice.id).execute();
      const r = await reveal(gus, mineKey.id.slice(0, 8));
      expect(r.json()).toMatchObject({ status: 'revealed', key: { recoveryPassword: mineKey.key } });
    } finally {
      await db.updateTable('devices').set({ primary_user: null, retired_at: null }).where('id', 'in', [offDevice.id, mineDevice.id]).execute();
    }
  });

  it('a token without the delegated User.Read sees no device from Entra', async () => {
    const fay = await signIn('noscope');
    const me = await t.app.inject({ url: `${API}/recover/me`, headers: { cookie: fay.headers.cookie! } });
    expect(me.statusCode, me.body).toBe(200);
    expect(me.json()).toMatchObject({ upn: 'fay@contoso.example', devices: [], entraRead: false });
    expect(sim.requests(TENANT_A).some((r) => r.path.endsWith('/me/ownedDevices') && r.status === 403)).toBe(true);
  });

  it("the client's app-only token cannot list a user's devices, even with directory permissions", async () => {
    tenantA.permissions.add('Directory.Read.All');
    try {
      const tn = sim.tenant(TENANT_A);
      const tokenRes = await fetch(`${sim.loginUrl}/${TENANT_A}/oauth2/v2.0/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          grant_type: 'client_credentials',
          client_id: tn.clientId,
          client_secret: tn.clientSecret,
          scope: 'https://graph.microsoft.com/.default',
        }).toString(),
      });
      const appToken = ((await tokenRes.json()) as { access_token: string }).access_token;
      for (const rel of ['ownedDevices', 'registeredDevices']) {
        const r = await fetch(`${sim.graphUrl}/v1.0/users/${ANN}/${rel}?$select=id,deviceId`, { headers: { authorization: `Bearer ${appToken}` } });
        expect(r.status, rel).toBe(403);
        expect(((await r.json()) as { error: { code: string } }).error.code).toBe('Authorization_RequestDenied');
      }
      // /me needs a person.
      const me = await fetch(`${sim.graphUrl}/v1.0/me/ownedDevices`, { headers: { authorization: `Bearer ${appToken}` } });
      expect(me.status).toBe(400);
    } finally {
      tenantA.permissions.delete('Directory.Read.All');
    }
  });

  it('an address may start only so many end-user sign-ins (each stores a state row), also in a parallel burst', async () => {
    // The default 30 failed sign-ins per address → 120 starts per lockout window.
    const start = (ip: string) => t.app.inject({ method: 'GET', url: `${API}/recover/start`, remoteAddress: ip });
    const count = async () => (await t.container.database.db.selectFrom('self_service_states').select('id').execute()).length;
    const before = await count();
    const burst = await Promise.all(Array.from({ length: 130 }, () => start('10.78.0.1')));
    const started = burst.filter((r) => String(r.headers.location).startsWith(idp.issuer));
    const refusedStarts = burst.filter((r) => r.headers.location === '/recover?error=too-many-starts');
    expect(started).toHaveLength(120);
    expect(refusedStarts).toHaveLength(10);
    expect(await count()).toBe(before + 120);
    expect(String((await start('10.78.0.2')).headers.location).startsWith(idp.issuer)).toBe(true);
  });

  it('a user without MFA, of a client with self-service off, or of a tenant not linked, is refused', async () => {
    await refused('nomfa', 'no-mfa');
    await refused('offuser', 'tenant-not-enabled');
    await refused('stranger', 'tenant-not-enabled');
    const fails = (await audits('self_service.sign_in')).filter((e) => e.outcome === 'failure').map((e) => e.details.reason);
    expect(fails).toEqual(expect.arrayContaining(['no mfa', 'tenant not enabled']));
  });

  it("only Entra's multi-factor amr counts: a single factor (an email or text passcode), no amr, or amr not an array is refused", async () => {
    // 'otp' alone is Entra's one-time passcode by email or text (a guest's email passcode): one factor.
    for (const amr of [['otp'], ['sms'], ['pwd', 'wiaormfa'], undefined, 'mfa']) {
      idp.tamper((c) => {
        const { amr: _amr, ...rest } = c;
        return amr === undefined ? rest : { ...rest, amr };
      });
      try {
        await refused('ann', 'no-mfa');
      } finally {
        idp.tamper(null);
      }
    }
    // Windows Hello / passkey sign-ins say ngcmfa, a FIDO2 key fido: more than one factor.
    for (const amr of [['rsa', 'ngcmfa'], ['fido']]) {
      idp.tamper((c) => ({ ...c, amr }));
      try {
        await signIn('ann');
      } finally {
        idp.tamper(null);
      }
    }
  });

  it('a replayed or forged state is refused', async () => {
    const { url, stateCookie } = await startAndReturn('ann');
    const ok = await t.app.inject({ method: 'GET', url, headers: { cookie: `kw_recover_state=${stateCookie}` } });
    expect(ok.headers.location).toBe('/recover');
    const replay = await t.app.inject({ method: 'GET', url, headers: { cookie: `kw_recover_state=${stateCookie}` } });
    expect(replay.headers.location).toBe('/recover?error=state-unknown-or-used');
    const forged = await t.app.inject({
      method: 'GET',
      url: `${API}/recover/callback?code=x&state=forged-state`,
      headers: { cookie: `kw_recover_state=${stateCookie}` },
    });
    expect(forged.headers.location).toBe('/recover?error=state-unknown-or-used');
    // Another browser (no state cookie).
    const { url: url2 } = await startAndReturn('ann');
    const other = await t.app.inject({ method: 'GET', url: url2 });
    expect(other.headers.location).toBe('/recover?error=other-browser');
  });

  it('a token from another issuer is refused (tamper)', async () => {
    idp.tamper((c) => ({ ...c, iss: `https://login.microsoftonline.com/${TENANT_A}/v2.0` }));
    try {
      await refused('ann', 'wrong-issuer');
    } finally {
      idp.tamper(null);
    }
  });

  it("the end user's session never reaches console routes, and a console session never reaches the self-service ones", async () => {
    const ann = await signIn('ann');
    for (const url of [`${API}/me`, `${API}/clients`, `${API}/keys`]) {
      const r = await t.app.inject({ url, headers: { cookie: `kw_session=${ann.cookie}` } });
      expect(r.statusCode, url).toBe(401);
      const r2 = await t.app.inject({ url, headers: { cookie: ann.headers.cookie! } });
      expect(r2.statusCode, url).toBe(401);
    }
    const consoleOnRecover = await t.app.inject({ url: `${API}/recover/me`, headers: owner.headers });
    expect(consoleOnRecover.statusCode).toBe(401);
    const consoleCookieAsRecover = await t.app.inject({ url: `${API}/recover/me`, headers: { cookie: `kw_recover=${owner.cookie}` } });
    expect(consoleCookieAsRecover.statusCode).toBe(401);
  });

  it("switching self-service off ends the end users' sessions at once", async () => {
    const ann = await signIn('ann');
    expect((await t.app.inject({ url: `${API}/recover/me`, headers: { cookie: ann.headers.cookie! } })).statusCode).toBe(200);
    await t.app.inject({ method: 'PUT', url: `${API}/clients/${clientA}/self-service`, headers: owner.headers, payload: { enabled: false } });
    expect((await t.app.inject({ url: `${API}/recover/me`, headers: { cookie: ann.headers.cookie! } })).statusCode).toBe(401);
    const ev = (await audits('self_service.client')).at(-1)!;
    expect(ev.details).toMatchObject({ enabled: false, was: true });
    await t.app.inject({ method: 'PUT', url: `${API}/clients/${clientA}/self-service`, headers: owner.headers, payload: { enabled: true } });
  });

  it("a tenant no longer linked to the client (its connection switched off) ends its users' sessions at once", async () => {
    const db = t.container.database.db;
    const ann = await signIn('ann');
    const me = () => t.app.inject({ url: `${API}/recover/me`, headers: { cookie: ann.headers.cookie! } });
    expect((await me()).statusCode).toBe(200);
    const conn = await db.selectFrom('graph_connections').select(['id', 'client_id']).where('tenant_id', '=', TENANT_A).executeTakeFirstOrThrow();
    await db.updateTable('graph_connections').set({ enabled: 0 }).where('id', '=', conn.id).execute();
    try {
      expect((await me()).statusCode).toBe(401);
    } finally {
      await db.updateTable('graph_connections').set({ enabled: 1 }).where('id', '=', conn.id).execute();
    }
    expect((await me()).statusCode).toBe(200);
  });

  it("switching self-service off for the whole vault ends the end users' open sessions at once", async () => {
    const ann = await signIn('ann');
    const key = tenantA.keys.find((k) => k.deviceId === tenantA.devices[0]!.deviceId)!;
    expect((await t.app.inject({ url: `${API}/recover/me`, headers: { cookie: ann.headers.cookie! } })).statusCode).toBe(200);
    const off = await t.app.inject({ method: 'PUT', url: `${API}/settings/self-service`, headers: owner.headers, payload: { enabled: false } });
    expect(off.statusCode, off.body).toBe(200);
    try {
      expect((await t.app.inject({ url: `${API}/recover/me`, headers: { cookie: ann.headers.cookie! } })).statusCode).toBe(401);
      const r = await reveal(ann, key.id.slice(0, 8));
      expect(r.statusCode).toBe(401);
      expect(r.body).not.toContain(key.key);
    } finally {
      const on = await t.app.inject({ method: 'PUT', url: `${API}/settings/self-service`, headers: owner.headers, payload: { enabled: true } });
      expect(on.statusCode, on.body).toBe(200);
    }
  });

  it("sessions that ended or expired over a day ago are deleted at the next sign-in (they hold a person's UPN and devices)", async () => {
    const db = t.container.database.db;
    const rows = await db.selectFrom('self_service_sessions').selectAll().execute();
    expect(rows.length).toBeGreaterThan(1);
    const [old, ended] = rows;
    const longAgo = new Date(Date.now() - 2 * 86_400_000).toISOString();
    await db.updateTable('self_service_sessions').set({ expires_at: longAgo }).where('id', '=', old!.id).execute();
    await db.updateTable('self_service_sessions').set({ ended_at: longAgo }).where('id', '=', ended!.id).execute();
    await signIn('ann');
    const left = new Set((await db.selectFrom('self_service_sessions').select('id').execute()).map((r) => r.id));
    expect(left.has(old!.id)).toBe(false);
    expect(left.has(ended!.id)).toBe(false);
    expect(left.size).toBeGreaterThanOrEqual(rows.length - 1);
  });
});
