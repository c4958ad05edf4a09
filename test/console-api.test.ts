/**
 * The web console's server side: the page itself (CSP with a per-response style nonce,
 * caching, the single-page app's fallback), first-run setup, the helpdesk key-ID lookup, a
 * client's overview and devices table (sort, filter, pages, CSV), a device's history, the security
 * settings and what a reveal says will happen next. Real HTTP through app.inject, on SQLite or
 * PostgreSQL (KEYWARDEN_TEST_ENGINE).
 */
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/app.js';
import { NONCE_PLACEHOLDER } from '../src/http/web.js';
import { PASSWORD, createTestApp, type Session, type TestApp } from './helpers/app.js';
import { createTestVault, owner, type TestVault } from './helpers/vault.js';
import { bytes, csvOf, randomKeyId, randomRecoveryPassword } from './helpers/keys.js';
import { ENGINE } from './helpers/engine.js';
import { freshTotp, minutesAgo, updateSession } from './helpers/http.js';
import { SimMachine, TestAgent, injectTransport } from './agent/test-agent.js';

type Json = Record<string, any>;

describe(`web console: the page on ${ENGINE}`, () => {
  let v: TestVault;
  let web: string;
  beforeAll(async () => {
    v = await createTestVault();
    // A built console as Vite lays it out: index.html with the nonce placeholder, hashed assets.
    web = mkdtempSync(join(tmpdir(), 'kw-web-'));
    mkdirSync(join(web, 'assets'));
    writeFileSync(
      join(web, 'index.html'),
      `<!doctype html><meta name="kw-style-nonce" content="${NONCE_PLACEHOLDER}"><script type="module" src="/assets/index-abc123.js"></script>`,
    );
    writeFileSync(join(web, 'assets', 'index-abc123.js'), 'console.log("console");');
  });
  afterAll(async () => v.close());

  it('serves index.html with no-store and a fresh style nonce in both the CSP and the page', async () => {
    const app = await buildApp(v.container, { logger: false, webDir: web });
    try {
      const pages = await Promise.all([app.inject({ url: '/' }), app.inject({ url: '/' })]);
      const nonces = pages.map((r) => {
        expect(r.statusCode).toBe(200);
        expect(r.headers['cache-control']).toBe('no-store');
        const csp = String(r.headers['content-security-policy']);
        expect(csp).toContain("script-src 'self';");
        expect(csp).not.toContain('unsafe-inline');
        const nonce = /style-src 'self' 'nonce-([A-Za-z0-9+/=]+)'/.exec(csp)?.[1];
        expect(nonce).toBeTruthy();
        expect(r.body).toContain(`content="${nonce}"`);
        expect(r.body).not.toContain(NONCE_PLACEHOLDER);
        return nonce;
      });
      expect(nonces[0]).not.toBe(nonces[1]);
    } finally {
      await app.close();
    }
  });

  it('serves hashed assets for a year, answers the app paths with the page, keeps JSON 404s for the API', async () => {
    const app = await buildApp(v.container, { logger: false, webDir: web });
    try {
      const asset = await app.inject({ url: '/assets/index-abc123.js' });
      expect(asset.statusCode).toBe(200);
      expect(asset.headers['cache-control']).toContain('immutable');
      expect(asset.headers['cache-control']).toContain('max-age=31536000');
      expect((await app.inject({ url: '/assets/../index.html' })).statusCode).toBe(404);
      expect((await app.inject({ url: '/assets/nope.js' })).statusCode).toBe(404);

      const deep = await app.inject({ url: '/devices/4290b6c0-b17a-497a-8552-272cc30e80d4', headers: { accept: 'text/html,application/xhtml+xml' } });
      expect(deep.statusCode).toBe(200);
      expect(deep.headers['content-type']).toContain('text/html');
      expect(deep.headers['content-security-policy']).toContain('nonce-');

      const api = await app.inject({ url: '/api/v1/nothing-here', headers: { accept: 'text/html' } });
      expect(api.statusCode).toBe(404);
      expect(api.json()).toMatchObject({ error: 'not_found' });
      // A script asking for JSON, or a POST, gets the JSON 404 too.
      expect((await app.inject({ url: '/clients' })).statusCode).toBe(404);
      expect((await app.inject({ method: 'POST', url: '/clients', headers: { accept: 'text/html' } })).statusCode).toBe(404);
    } finally {
      await app.close();
    }
  });

  it('says so when the console was not built, and the route table is the same either way', async () => {
    const missing = await buildApp(v.container, { logger: false, webDir: join(web, 'not-there') });
    const built = await buildApp(v.container, { logger: false, webDir: web });
    try {
      const r = await missing.inject({ url: '/' });
      expect(r.statusCode).toBe(200);
      expect(r.body).toContain('npm run build');
      expect((await missing.inject({ url: '/assets/index-abc123.js' })).statusCode).toBe(404);
      const routes = (a: typeof built) => a.routeTable.map((x) => `${x.method} ${x.url} ${x.auth}`).sort();
      expect(routes(missing)).toEqual(routes(built));
      expect(routes(built)).toContain('GET / public');
      expect(routes(built)).toContain('GET /assets/* public');
    } finally {
      await missing.close();
      await built.close();
    }
  });
});

describe(`first-run setup on ${ENGINE}`, () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(async () => t.close());

  it('creates the first owner once, with the setup token printed on the server, and signs them in', async () => {
    expect((await t.app.inject({ url: '/api/v1/setup' })).json()).toEqual({ needed: true, signedIn: false });
    const setupToken = (await t.container.setup.issueToken())!;
    const body = { email: 'first@example.test', password: PASSWORD, setupToken };

    // Being on the server itself is no longer enough: the token is.
    const noToken = await t.app.inject({ method: 'POST', url: '/api/v1/setup', payload: { email: body.email, password: PASSWORD } });
    expect(noToken.statusCode).toBe(403);
    expect(noToken.json().message).toContain('keywarden user add');
    expect(await t.container.identity.hasUsers()).toBe(false);

    const weak = await t.app.inject({ method: 'POST', url: '/api/v1/setup', payload: { ...body, password: 'short' } });
    expect(weak.statusCode).toBe(400);

    // Two browsers racing: exactly one owner.
    const [a, b] = await Promise.all([
      t.app.inject({ method: 'POST', url: '/api/v1/setup', payload: body }),
      t.app.inject({ method: 'POST', url: '/api/v1/setup', payload: { email: 'second@example.test', password: PASSWORD, setupToken } }),
    ]);
    expect([a.statusCode, b.statusCode].sort()).toEqual([200, 409]);
    const winner = a.statusCode === 200 ? a : b;
    expect(winner.json().user.role).toBe('owner');
    const cookie = winner.cookies.find((c) => c.name === 'kw_session');
    expect(cookie?.httpOnly).toBe(true);
    const me = await t.app.inject({ url: '/api/v1/me', headers: { cookie: `kw_session=${cookie!.value}` } });
    expect(me.json().actor.role).toBe('owner');
    expect((await t.app.inject({ url: '/api/v1/setup', headers: { cookie: `kw_session=${cookie!.value}` } })).json()).toEqual({
      needed: false,
      signedIn: true,
    });

    const again = await t.app.inject({ method: 'POST', url: '/api/v1/setup', payload: { email: 'late@example.test', password: PASSWORD, setupToken } });
    expect(again.statusCode).toBe(409);
    expect((await t.container.identity.listUsers(owner)).length).toBe(1);
    const audit = await t.container.audit.list(owner, { action: 'user.create' });
    expect(audit).toHaveLength(1);
  });
});

describe(`console API on ${ENGINE}`, () => {
  let t: TestApp;
  let ownerS: Session;
  let helpdesk: Session;
  let viewer: Session;
  let contoso: string;
  let fabrikam: string;
  let agent: TestAgent;
  const twin = 'c0ffee42';
  const keys = {
    solo: { keyId: randomKeyId(), password: randomRecoveryPassword() },
    twinA: { keyId: twin + randomKeyId().slice(8), password: randomRecoveryPassword() },
    twinB: { keyId: twin + randomKeyId().slice(8), password: randomRecoveryPassword() },
  };
  const get = (url: string, s: Session) => t.app.inject({ url, headers: s.headers });

  beforeAll(async () => {
    t = await createTestApp();
    contoso = (await t.container.clients.create(owner, { name: 'Contoso' })).id;
    fabrikam = (await t.container.clients.create(owner, { name: 'Fabrikam' })).id;
    const rows = [
      { device: 'CON-SOLO', keyId: keys.solo.keyId, password: keys.solo.password },
      { device: 'CON-TWIN-A', keyId: keys.twinA.keyId, password: keys.twinA.password },
      { device: '=HYPERLINK("x")', keyId: randomKeyId(), password: randomRecoveryPassword() },
    ];
    expect((await t.container.imports.importFile(owner, 'Contoso', { fileName: 'c.csv', bytes: bytes(csvOf(rows)) })).imported).toBe(3);
    await t.container.imports.importFile(owner, 'Fabrikam', {
      fileName: 'f.csv',
      bytes: bytes(csvOf([{ device: 'FAB-TWIN-B', keyId: keys.twinB.keyId, password: keys.twinB.password }])),
    });
    // One device with a Keywarden agent: an encrypted C: whose key is escrowed by the agent.
    const enrollment = await t.container.agent.createEnrollmentToken(owner, { clientId: contoso, expiresInDays: 1, maxUses: 5 });
    agent = new TestAgent(injectTransport(t.app), new SimMachine('CON-AGENT-01'));
    expect((await agent.enroll(enrollment.token)).status).toBe(200);
    expect((await agent.run()).exitCode).toBe(0);

    const o = await t.addUser('owner', 'all', 'owner@example.test');
    ownerS = await t.signIn(o.email);
    helpdesk = await t.signIn((await t.addUser('helpdesk', [contoso, fabrikam], 'helpdesk@example.test')).email);
    viewer = await t.signIn((await t.addUser('client-viewer', [contoso], 'viewer@example.test')).email);
  });
  afterAll(async () => t.close());

  it('lets helpdesk confirm the device of one key by its ID, and only count several', async () => {
    const one = (await get(`/api/v1/keys/lookup?keyId=${keys.solo.keyId.slice(0, 8).toUpperCase()}`, helpdesk)).json();
    expect(one.matches).toBe(1);
    expect(one.keys[0]).toMatchObject({ keyId: keys.solo.keyId, device: { name: 'CON-SOLO' }, client: { name: 'Contoso' } });
    expect(JSON.stringify(one)).not.toContain(keys.solo.password);

    const braces = (await get(`/api/v1/keys/lookup?keyId=${encodeURIComponent(`{${keys.solo.keyId.slice(0, 13).toUpperCase()}`)}`, helpdesk)).json();
    expect(braces.matches).toBe(1);

    const several = (await get(`/api/v1/keys/lookup?keyId=${twin}`, helpdesk)).json();
    expect(several).toEqual({ matches: 2, keys: [], tryFirst: null });
    const forOwner = (await get(`/api/v1/keys/lookup?keyId=${twin}`, ownerS)).json();
    expect(forOwner.matches).toBe(2);
    expect(forOwner.keys.map((k: Json) => k.device.name).sort()).toEqual(['CON-TWIN-A', 'FAB-TWIN-B']);

    expect((await get('/api/v1/keys/lookup?keyId=ffffffff', helpdesk)).json()).toEqual({ matches: 0, keys: [], tryFirst: null });
    const name = await get('/api/v1/keys/lookup?keyId=CON-SOLO', helpdesk);
    expect(name.statusCode).toBe(400);
    const pasted = await get(`/api/v1/keys/lookup?keyId=${keys.solo.password}`, helpdesk);
    expect(pasted.statusCode).toBe(400);
    expect(pasted.body).not.toContain(keys.solo.password);
    // A client's own staff cannot reveal (the owner has not allowed it): no lookup either.
    expect((await get(`/api/v1/keys/lookup?keyId=${keys.solo.keyId}`, viewer)).statusCode).toBe(403);
  });

  it("summarises a client's devices: encryption, escrow, last seen, sources", async () => {
    const o = (await get(`/api/v1/clients/${contoso}/overview`, ownerS)).json();
    expect(o).toMatchObject({
      client: { id: contoso, name: 'Contoso' },
      devices: 4,
      keys: 4,
      encryption: { encrypted: 1, 'not-encrypted': 0, unknown: 3 },
      escrow: { escrowed: 4, notEscrowed: 0 },
      lastSeen: { day: 4, week: 0, month: 0, older: 0 },
      openFindings: 0,
    });
    expect(o.sources).toEqual({ import: 3, agent: 1 });
    // Counted from the policy evaluation: after one, every device has a status.
    expect(o.compliance.devices).toBe(4);
    const evaluated = await t.app.inject({ method: 'POST', url: '/api/v1/compliance/evaluate', headers: ownerS.headers, payload: { clientId: contoso } });
    expect(evaluated.statusCode).toBe(200);
    type Counts = { compliant: number; 'non-compliant': number; exempt: number; unknown: number };
    const after = (await get(`/api/v1/clients/${contoso}/overview`, ownerS)).json().compliance as Counts;
    // Every device counted once under one of the four statuses (never evaluated: unknown).
    expect(after.compliant + after['non-compliant'] + after.exempt + after.unknown).toBe(4);

    const list = (await get('/api/v1/console/clients', ownerS)).json() as Json[];
    const sum = (x: Counts) => x.compliant + x['non-compliant'] + x.exempt + x.unknown;
    expect(list.map((c) => [c.name, c.devices, c.encryption.encrypted, c.escrow.escrowed, sum(c.compliance)])).toEqual([
      ['Contoso', 4, 1, 4, 4],
      ['Fabrikam', 1, 0, 1, 1],
    ]);
    // Helpdesk sees the client names, not their devices.
    expect((await get('/api/v1/console/clients', helpdesk)).json().map((c: Json) => [c.name, c.devices, c.compliance])).toEqual([
      ['Contoso', 0, null],
      ['Fabrikam', 0, null],
    ]);
    // The client viewer sees their client only; another client's id is "not found".
    expect((await get('/api/v1/console/clients', viewer)).json().map((c: Json) => c.name)).toEqual(['Contoso']);
    expect((await get(`/api/v1/clients/${fabrikam}/overview`, viewer)).statusCode).toBe(404);
    expect((await get(`/api/v1/clients/${contoso}/overview`, helpdesk)).statusCode).toBe(403);
  });

  it('sorts, filters and pages the devices table on the server, and exports it as CSV', async () => {
    const page1 = (await get(`/api/v1/clients/${contoso}/devices?sort=name&dir=asc&limit=2`, ownerS)).json();
    expect(page1.total).toBe(4);
    expect(page1.items.map((d: Json) => d.name)).toEqual(['=HYPERLINK("x")', 'CON-AGENT-01']);
    const page2 = (await get(`/api/v1/clients/${contoso}/devices?sort=name&dir=asc&limit=2&offset=2`, ownerS)).json();
    expect(page2.items.map((d: Json) => d.name)).toEqual(['CON-SOLO', 'CON-TWIN-A']);
    const desc = (await get(`/api/v1/clients/${contoso}/devices?sort=name&dir=desc&limit=1`, ownerS)).json();
    expect(desc.items[0].name).toBe('CON-TWIN-A');

    const encrypted = (await get(`/api/v1/clients/${contoso}/devices?encryption=encrypted`, ownerS)).json();
    expect(encrypted.total).toBe(1);
    expect(encrypted.items[0]).toMatchObject({ name: 'CON-AGENT-01', encryption: 'encrypted', escrowed: true, keys: 1 });
    expect(encrypted.items[0].lastCheckinAt).toBeTruthy();
    expect((await get(`/api/v1/clients/${contoso}/devices?escrowed=false`, ownerS)).json().total).toBe(0);
    const search = (await get(`/api/v1/clients/${contoso}/devices?q=twin`, ownerS)).json();
    expect(search.items.map((d: Json) => d.name)).toEqual(['CON-TWIN-A']);
    const byKeys = (await get(`/api/v1/clients/${contoso}/devices?sort=encryption&dir=asc`, ownerS)).json();
    expect(byKeys.items[0].encryption).toBe('encrypted');
    expect((await get(`/api/v1/clients/${contoso}/devices?sort=password`, ownerS)).statusCode).toBe(400);

    const csv = await get(`/api/v1/clients/${contoso}/devices/export?q=con-`, ownerS);
    expect(csv.statusCode).toBe(200);
    expect(csv.headers['content-type']).toContain('text/csv');
    expect(csv.headers['content-disposition']).toMatch(/attachment; filename="keywarden-devices-Contoso-\d{4}-\d{2}-\d{2}\.csv"/);
    const lines = csv.body.trim().split('\n');
    expect(lines[0]).toBe('device,serial,primaryUser,encryption,keyEscrowed,compliance,keys,openFindings,lastSeenAt,lastCheckinAt,id');
    expect(lines).toHaveLength(4);
    expect(csv.body).toContain('CON-AGENT-01,');
    for (const k of Object.values(keys)) expect(csv.body).not.toContain(k.password);
    // A cell that a spreadsheet would run as a formula is quoted out.
    const all = (await get(`/api/v1/clients/${contoso}/devices/export`, ownerS)).body;
    expect(all).toContain(`"'=HYPERLINK(""x"")"`);
    expect(all).not.toMatch(/^=/m);
  });

  it("tells what a reveal sets in motion, per the client's rotate-after-disclosure switch", async () => {
    const agentKey = (await t.container.keys.list(owner, { clientId: contoso, deviceId: agent.deviceId! }))[0]!;
    const reveal = (id: string) =>
      t.app.inject({ method: 'POST', url: `/api/v1/keys/${id}/reveal`, headers: ownerS.headers, payload: { reason: 'lost-pin', ticket: 'T-7' } });

    const r = (await reveal(agentKey.id)).json();
    expect(r.status).toBe('revealed');
    expect(r.rotation).toBe('agent');
    expect((await reveal(keys.solo.keyId)).json().rotation).toBeNull();

    const off = await t.app.inject({
      method: 'PATCH',
      url: '/api/v1/settings/security',
      headers: ownerS.headers,
      payload: { clients: [{ id: fabrikam, rotateAfterDisclosure: false }] },
    });
    expect(off.statusCode).toBe(200);
    expect(off.json().clients.find((c: Json) => c.id === fabrikam).rotateAfterDisclosure).toBe(false);
    expect(off.json().clients.find((c: Json) => c.id === contoso).rotateAfterDisclosure).toBe(true);

    // The device's own trail has the reveals of its key, and nothing of other devices.
    const trail = (await get(`/api/v1/devices/${agent.deviceId}/audit`, ownerS)).json() as Json[];
    expect(trail.filter((e) => e.action === 'key.reveal').map((e) => [e.targetId, e.ticket])).toEqual([[agentKey.id, 'T-7']]);
    expect(trail.every((e) => e.clientId === contoso)).toBe(true);
    expect((await get(`/api/v1/devices/${agent.deviceId}/audit`, helpdesk)).statusCode).toBe(403);

    const history = (await get(`/api/v1/devices/${agent.deviceId}/volume-history`, ownerS)).json() as Json[];
    expect(history[0]).toMatchObject({ mountPoint: 'C:', volumeStatus: 'FullyEncrypted', protectionStatus: 'On' });
    expect((await get(`/api/v1/devices/${agent.deviceId}/volume-history`, viewer)).statusCode).toBe(200);
  });

  it('keeps the security settings: how long a password stays on screen, MFA required', async () => {
    expect((await get('/api/v1/console/settings', helpdesk)).json()).toEqual({ revealHideSeconds: 60, stepUpMinutes: expect.any(Number) });
    const set = await t.app.inject({ method: 'PATCH', url: '/api/v1/settings/security', headers: ownerS.headers, payload: { revealHideSeconds: 45 } });
    expect(set.statusCode).toBe(200);
    expect(set.json()).toMatchObject({ revealHideSeconds: 45, requireMfa: false, revealLimitPerHour: expect.any(Number) });
    expect((await get('/api/v1/console/settings', helpdesk)).json().revealHideSeconds).toBe(45);
    for (const bad of [5, 601, 30.5]) {
      expect(
        (await t.app.inject({ method: 'PATCH', url: '/api/v1/settings/security', headers: ownerS.headers, payload: { revealHideSeconds: bad } })).statusCode,
      ).toBe(400);
    }
    expect(
      (await t.app.inject({ method: 'PATCH', url: '/api/v1/settings/security', headers: helpdesk.headers, payload: { revealHideSeconds: 30 } })).statusCode,
    ).toBe(403);
    const audit = await t.container.audit.list(owner, { action: 'settings.update' });
    expect(audit[0]?.details).toEqual({ revealHideSeconds: 45 });
  });

  it('keeps vault-wide settings from an owner limited to some clients, and from a stale second factor', async () => {
    const patch = (s: Session, url: string, payload: Json) => t.app.inject({ method: 'PATCH', url, headers: s.headers, payload });
    const before = (await get('/api/v1/settings/security', ownerS)).json();
    const scoped = await t.signIn((await t.addUser('owner', [contoso], 'scoped-owner@example.test')).email);
    expect((await get('/api/v1/settings/security', scoped)).statusCode).toBe(403);
    expect((await get('/api/v1/settings', scoped)).statusCode).toBe(403);
    expect(
      (
        await patch(scoped, '/api/v1/settings/security', {
          clients: [{ id: fabrikam, rotateAfterDisclosure: !before.clients.find((c: Json) => c.id === fabrikam).rotateAfterDisclosure }],
        })
      ).statusCode,
    ).toBe(403);
    expect((await patch(scoped, '/api/v1/settings/security', { clients: [{ id: contoso, rotateAfterDisclosure: false }] })).statusCode).toBe(403);
    expect((await patch(scoped, '/api/v1/settings', { requireMfa: true })).statusCode).toBe(403);
    expect((await patch(scoped, '/api/v1/settings/branding', { mspName: 'Scoped MSP' })).statusCode).toBe(403);
    expect((await get('/api/v1/settings/security', ownerS)).json()).toEqual(before);

    // An owner with an authenticator changes settings only within the step-up window.
    const second = await t.signIn((await t.addUser('owner', 'all', 'mfa-owner@example.test')).email);
    const secret = (await t.app.inject({ method: 'POST', url: '/api/v1/me/mfa', headers: second.headers })).json().secret as string;
    expect(
      (await t.app.inject({ method: 'POST', url: '/api/v1/me/mfa/confirm', headers: second.headers, payload: { code: await freshTotp(t, secret) } }))
        .statusCode,
    ).toBe(200);
    await updateSession(t, second.cookie, { mfa_at: minutesAgo(t.config.policy.stepUpMinutes + 1) });
    for (const [url, body] of [
      ['/api/v1/settings/security', { revealHideSeconds: 50 }],
      ['/api/v1/settings', { requireMfa: false }],
      ['/api/v1/settings/branding', { mspName: 'Stale MSP' }],
    ] as const) {
      const r = await patch(second, url, body);
      expect(r.statusCode).toBe(403);
      expect(r.json().error).toBe('step_up_required');
    }
    expect(
      (await t.app.inject({ method: 'POST', url: '/api/v1/auth/step-up', headers: second.headers, payload: { code: await freshTotp(t, secret) } })).statusCode,
    ).toBe(200);
    expect((await patch(second, '/api/v1/settings/security', { revealHideSeconds: before.revealHideSeconds })).statusCode).toBe(200);
  });

  it('lists Active Directory connections without their bind password', async () => {
    const r = await get('/api/v1/directory/connections', ownerS);
    expect(r.statusCode).toBe(200);
    expect(r.json()).toEqual([]);
    expect((await get('/api/v1/directory/connections', helpdesk)).statusCode).toBe(403);
  });
});
