import { createPrivateKey, randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GraphSimulator } from './graph-sim/simulator.js';
import { JWT_BEARER } from './graph-sim/consent.js';
import { generateSelfSignedCertificate } from '../src/crypto/certificate.js';

/** The simulator's multi-tenant apps, admin consent and client assertions, checked on their own. */
describe('Graph simulator: admin consent and certificate credentials', () => {
  const sim = new GraphSimulator();
  const T = '7a7a7a7a-1111-4222-8333-444444444444';
  const OTHER = '8b8b8b8b-1111-4222-8333-444444444444';
  const APP = 'fedcba98-1234-4567-89ab-0123456789ab';
  const REDIRECT = 'https://keywarden.example.test/api/v1/graph/consent/callback';
  const cert = generateSelfSignedCertificate({ commonName: 'sim', days: 30, bits: 2048, now: new Date() });
  const stranger = generateSelfSignedCertificate({ commonName: 'stranger', days: 30, bits: 2048, now: new Date() });
  let tokenUrl: string;

  const assertion = async (
    o: { key?: string; alg?: 'PS256' | 'RS256'; header?: Record<string, string>; iss?: string; aud?: string; exp?: number; jti?: string } = {},
  ) => {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({})
      .setProtectedHeader({ alg: o.alg ?? 'PS256', typ: 'JWT', ...(o.header ?? { 'x5t#S256': cert.x5tS256 }) })
      .setIssuer(o.iss ?? APP)
      .setSubject(o.iss ?? APP)
      .setAudience(o.aud ?? tokenUrl)
      .setJti(o.jti ?? randomUUID())
      .setIssuedAt(now)
      .setNotBefore(now)
      .setExpirationTime(o.exp ?? now + 600)
      .sign(createPrivateKey(o.key ?? cert.privateKeyPem));
  };
  const token = async (form: Record<string, string>, url = tokenUrl) => {
    const r = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'client_credentials', client_id: APP, scope: 'https://graph.microsoft.com/.default', ...form }),
    });
    const body = (await r.json()) as { access_token?: string; error?: string; error_codes?: number[] };
    return { status: r.status, error: body.error, code: body.error_codes?.[0], ok: !!body.access_token };
  };
  const withAssertion = async (a: string) => token({ client_assertion_type: JWT_BEARER, client_assertion: a });

  beforeAll(async () => {
    const { loginUrl } = await sim.start();
    tokenUrl = `${loginUrl}/${T}/oauth2/v2.0/token`;
    sim.seedTenant(T, { keys: 2, devices: 1 });
    sim.seedTenant(OTHER, { keys: 2, devices: 1 });
    sim.apps.register({ appId: APP, redirectUris: [REDIRECT], certificates: [cert.certificatePem], secrets: ['app-secret'] });
  });
  afterAll(() => sim.stop());

  it('admin consent: a registered redirect only; approve, refuse, and the service principal it creates', async () => {
    const base = `${sim.loginUrl}/organizations/v2.0/adminconsent?client_id=${APP}&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default&state=s1`;
    expect(() => sim.consent(`${base}&redirect_uri=${encodeURIComponent('https://evil.example/cb')}`, { tenantId: T })).toThrow(/AADSTS50011/);
    expect(() => sim.consent(base.replace(APP, randomUUID()) + `&redirect_uri=${encodeURIComponent(REDIRECT)}`, { tenantId: T })).toThrow(/AADSTS700016/);
    expect(() => sim.consent(base.replace('/organizations/', `/${OTHER}/`) + `&redirect_uri=${encodeURIComponent(REDIRECT)}`, { tenantId: T })).toThrow(
      /AADSTS50020/,
    );
    // Before consent: no service principal in the tenant.
    expect(await token({ client_secret: 'app-secret' })).toMatchObject({ status: 401, error: 'invalid_client', code: 7000229 });
    const refused = new URL(sim.consent(`${base}&redirect_uri=${encodeURIComponent(REDIRECT)}`, { tenantId: T, refuse: true }).location);
    expect(Object.fromEntries(refused.searchParams)).toMatchObject({ error: 'access_denied', state: 's1' });
    expect(sim.apps.hasConsent(T, APP)).toBe(false);
    const ok = new URL(sim.consent(`${base}&redirect_uri=${encodeURIComponent(REDIRECT)}`, { tenantId: T }).location);
    expect(ok.origin + ok.pathname).toBe(REDIRECT);
    expect(Object.fromEntries(ok.searchParams)).toMatchObject({ admin_consent: 'True', tenant: T, state: 's1' });
    expect(await token({ client_secret: 'app-secret' })).toMatchObject({ ok: true });
    expect(await token({ client_secret: 'wrong' })).toMatchObject({ status: 401, code: 7000215 });
    // Another tenant has not consented.
    expect(await token({ client_secret: 'app-secret' }, tokenUrl.replace(T, OTHER))).toMatchObject({ code: 7000229 });
  });

  it('client assertions: good ones (PS256 + x5t#S256, RS256 + x5t) work once; every documented failure has its code', async () => {
    expect(await withAssertion(await assertion())).toMatchObject({ ok: true });
    expect(await withAssertion(await assertion({ alg: 'RS256', header: { x5t: cert.x5t } }))).toMatchObject({ ok: true });
    const once = await assertion();
    expect(await withAssertion(once)).toMatchObject({ ok: true });
    expect(await withAssertion(once)).toMatchObject({ status: 401, code: 50027 });
    // Unknown thumbprint, wrong key for a known thumbprint.
    expect(await withAssertion(await assertion({ key: stranger.privateKeyPem, header: { 'x5t#S256': stranger.x5tS256 } }))).toMatchObject({
      status: 401,
      code: 700027,
    });
    expect(await withAssertion(await assertion({ key: stranger.privateKeyPem }))).toMatchObject({ status: 401, code: 700027 });
    expect(await withAssertion(await assertion({ iss: randomUUID() }))).toMatchObject({ code: 700021 });
    expect(await withAssertion(await assertion({ aud: 'https://login.microsoftonline.com/x/oauth2/v2.0/token' }))).toMatchObject({ code: 700023 });
    expect(await withAssertion(await assertion({ exp: Math.floor(Date.now() / 1000) - 60 }))).toMatchObject({ code: 700024 });
    expect(await withAssertion(await assertion({ header: {} }))).toMatchObject({ code: 50027 });
    expect(await token({ client_assertion_type: 'urn:other', client_assertion: await assertion() })).toMatchObject({ status: 400 });
    // Consent withdrawn, then the app deleted.
    sim.revokeConsent(T, APP);
    expect(await withAssertion(await assertion())).toMatchObject({ code: 7000229 });
    sim.apps.deleteApp(APP);
    expect(await withAssertion(await assertion())).toMatchObject({ status: 400, error: 'unauthorized_client', code: 700016 });
    expect(sim.errors()).toEqual([]);
  });

  it("a tenant's own app signs in with a certificate uploaded to it", async () => {
    const own = sim.tenant(OTHER);
    sim.apps.setTenantCertificates(OTHER, [cert.certificatePem]);
    const url = tokenUrl.replace(T, OTHER);
    const a = await new SignJWT({})
      .setProtectedHeader({ alg: 'PS256', 'x5t#S256': cert.x5tS256 })
      .setIssuer(own.clientId)
      .setSubject(own.clientId)
      .setAudience(url)
      .setJti(randomUUID())
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(createPrivateKey(cert.privateKeyPem));
    const r = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'client_credentials',
        client_id: own.clientId,
        scope: 'https://graph.microsoft.com/.default',
        client_assertion_type: JWT_BEARER,
        client_assertion: a,
      }),
    });
    expect(r.status).toBe(200);
    // The secret still works next to it.
    expect(
      (
        await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({
            grant_type: 'client_credentials',
            client_id: own.clientId,
            client_secret: own.clientSecret,
            scope: 'https://graph.microsoft.com/.default',
          }),
        })
      ).status,
    ).toBe(200);
  });
});
