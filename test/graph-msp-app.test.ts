import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GraphSimulator } from './graph-sim/simulator.js';
import { createTestApp, type Session, type TestApp } from './helpers/app.js';
import { ENGINE } from './helpers/engine.js';
import { freshTotp, logCapture, minutesAgo, updateSession } from './helpers/http.js';
import { buildApp } from '../src/app.js';
import { generateSelfSignedCertificate } from '../src/crypto/certificate.js';

const API = '/api/v1';
const PUBLIC_URL = 'http://keywarden.example.test';
const CALLBACK = `${PUBLIC_URL}/api/v1/graph/consent/callback`;
/** The simulator listens on loopback, which the egress policy refuses unless allowed. */
const LAB = { KEYWARDEN_EGRESS_ALLOW: '127.0.0.1', KEYWARDEN_PUBLIC_URL: PUBLIC_URL };

const T1 = '1a1a1a1a-1111-4222-8333-444444444444';
const T2 = '2b2b2b2b-1111-4222-8333-444444444444';
const T3 = '3c3c3c3c-1111-4222-8333-444444444444';
const T4 = '4d4d4d4d-1111-4222-8333-444444444444';
const T5 = '5e5e5e5e-1111-4222-8333-444444444444';
const MSP_APP = 'abcdefab-1234-4567-89ab-0123456789ab';

describe(`one multi-tenant MSP app, consent links and certificate credentials on ${ENGINE}`, () => {
  let t: TestApp;
  let api: FastifyInstance;
  const log = logCapture();
  let owner: Session;
  let admin: Session;
  let sim: GraphSimulator;
  let urls: { loginUrl: string; graphUrl: string };
  /** Every answer the tests received: checked for private keys at the end. */
  const answers: string[] = [];
  const clients: Record<string, { id: string; name: string }> = {};

  const call = async (s: Session | null, method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, payload?: unknown) => {
    const r = await api.inject({ method, url, headers: s?.headers ?? {}, ...(payload === undefined ? {} : { payload: payload as object }) });
    answers.push(r.body);
    return r;
  };
  /** The client's administrator follows the link; the browser lands on Keywarden's callback. */
  const follow = async (location: string) => {
    const u = new URL(location);
    expect(u.origin + u.pathname).toBe(CALLBACK);
    return call(null, 'GET', u.pathname + u.search);
  };
  const linkFor = async (clientId: string, tenantId?: string) => {
    const r = await call(admin, 'POST', `${API}/graph/consent-links`, { clientId, ...(tenantId ? { tenantId } : {}) });
    expect(r.statusCode, r.body).toBe(201);
    return r.json() as { url: string; expiresAt: string };
  };
  const connectionOf = async (clientId: string) => {
    const list = (await call(owner, 'GET', `${API}/graph/connections`)).json() as {
      id: string;
      clientId: string;
      tenantId: string;
      credentialKind: string;
      lastStatus: string | null;
      lastError: string | null;
      consentLostAt: string | null;
      appClientId: string;
    }[];
    return list.find((c) => c.clientId === clientId);
  };
  const sync = async (connectionId: string) => {
    const r = await call(owner, 'POST', `${API}/graph/connections/${connectionId}/sync`);
    expect(r.statusCode, r.body).toBe(200);
    return r.json() as { status: string; newKeys: number; errorText: string | null };
  };
  const keyCount = async (clientId: string) =>
    Number(
      (
        await t.container.database.db
          .selectFrom('recovery_keys')
          .select((eb) => eb.fn.countAll<number>().as('n'))
          .where('client_id', '=', clientId)
          .executeTakeFirstOrThrow()
      ).n,
    );
  const audits = (action: string) => t.container.database.db.selectFrom('audit_events').selectAll().where('action', '=', action).orderBy('seq').execute();

  beforeAll(async () => {
    t = await createTestApp(LAB);
    api = await buildApp(t.container, { logger: { level: 'debug', stream: log.stream } });
    owner = await t.signIn((await t.addUser('owner', 'all', 'msp.owner@example.test')).email);
    for (const name of ['Alpha', 'Bravo', 'Charlie', 'Delta', 'Echo']) {
      const c = await t.container.clients.create({ type: 'cli', id: 'cli', name: 'test', role: 'owner', clients: 'all' }, { name });
      clients[name] = { id: c.id, name };
    }
    admin = await t.signIn(
      (
        await t.addUser(
          'admin',
          Object.values(clients).map((c) => c.id),
          'msp.admin@example.test',
        )
      ).email,
    );
    sim = new GraphSimulator();
    urls = await sim.start();
    for (const tid of [T1, T2, T3, T4, T5]) sim.seedTenant(tid, { keys: 12, devices: 4 });
  });
  afterAll(async () => {
    await sim?.stop();
    await api?.close();
    await t?.close();
  });

  it('an owner sets up the MSP app with a generated certificate; the public certificate is offered, the key never', async () => {
    // Not configured yet: no consent link can be made.
    expect((await call(admin, 'POST', `${API}/graph/consent-links`, { clientId: clients.Alpha!.id })).statusCode).toBe(400);
    // An admin (integration:manage, not settings) may not set it.
    expect((await call(admin, 'PUT', `${API}/graph/msp-app`, { appClientId: MSP_APP, generateCertificate: true, ...urls })).statusCode).toBe(403);
    // The first time a credential is required; two at once are refused.
    const none = await call(owner, 'PUT', `${API}/graph/msp-app`, { appClientId: MSP_APP, ...urls });
    expect(none.statusCode).toBe(400);
    expect(none.json().message).toMatch(/credential is required/);
    const two = await call(owner, 'PUT', `${API}/graph/msp-app`, { appClientId: MSP_APP, clientSecret: 'x', generateCertificate: true, ...urls });
    expect(two.statusCode).toBe(400);
    expect(two.json().message).toMatch(/Choose one credential/);

    const r = await call(owner, 'PUT', `${API}/graph/msp-app`, { appClientId: MSP_APP, generateCertificate: true, ...urls });
    expect(r.statusCode, r.body).toBe(200);
    const app = r.json() as {
      credentialKind: string;
      hasCertificate: boolean;
      certificate: { thumbprint: string; daysLeft: number; expiringSoon: boolean };
      certificatePem: string;
    };
    expect(app).toMatchObject({ credentialKind: 'certificate', hasCertificate: true, hasSecret: false, appClientId: MSP_APP });
    expect(app.certificate.thumbprint).toMatch(/^[0-9A-F]{40}$/);
    expect(app.certificate.expiringSoon).toBe(false);
    expect(app.certificatePem).toMatch(/^-----BEGIN CERTIFICATE-----/);
    const download = await call(admin, 'GET', `${API}/graph/msp-app/certificate`);
    expect(download.json()).toMatchObject({ certificatePem: app.certificatePem, thumbprint: app.certificate.thumbprint });
    // The MSP uploads that certificate to its multi-tenant app registration, with Keywarden's redirect URI.
    sim.apps.register({ appId: MSP_APP, displayName: 'Keywarden (MSP)', redirectUris: [CALLBACK], certificates: [app.certificatePem] });
    const [row] = await t.container.database.db.selectFrom('graph_msp_app').selectAll().execute();
    expect(row!.secret_ciphertext).not.toMatch(/PRIVATE KEY/);
    expect((await audits('graph.msp_app')).at(-1)).toMatchObject({ outcome: 'success' });
  });

  it('consent link → admin consents → tenant linked to the client → sync signs in with a certificate assertion', async () => {
    const link = await linkFor(clients.Alpha!.id);
    const u = new URL(link.url);
    expect(u.pathname).toBe('/login/organizations/v2.0/adminconsent');
    expect(u.searchParams.get('client_id')).toBe(MSP_APP);
    expect(u.searchParams.get('redirect_uri')).toBe(CALLBACK);
    expect(u.searchParams.get('state')).toMatch(/^[A-Za-z0-9_-]{40,}$/);
    // Only its hash is stored.
    const states = await t.container.database.db.selectFrom('graph_consent_states').select('state_hash').execute();
    expect(states.map((s) => s.state_hash)).not.toContain(u.searchParams.get('state'));

    const { location } = sim.consent(link.url, { tenantId: T1 });
    const page = await follow(location);
    expect(page.statusCode, page.body).toBe(200);
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    expect(page.body).toContain('Consent recorded for Alpha; you can close this window.');

    const conn = (await connectionOf(clients.Alpha!.id))!;
    expect(conn).toMatchObject({ tenantId: T1, credentialKind: 'msp_app', appClientId: MSP_APP, lastStatus: 'consented' });
    const run = await sync(conn.id);
    expect(run).toMatchObject({ status: 'succeeded', newKeys: 12 });
    expect(await keyCount(clients.Alpha!.id)).toBe(12);
    // The key reads in the tenant were made by the MSP app (its token came from the assertion).
    expect(sim.tenant(T1).audits.at(-1)!.initiatedBy.app!.appId).toBe(MSP_APP);
    expect(sim.requests(T1).filter((r) => r.kind === 'token' && r.status === 200).length).toBeGreaterThan(0);
    expect((await audits('graph.consent')).at(-1)).toMatchObject({ outcome: 'success', client_id: clients.Alpha!.id });
    expect(sim.errors()).toEqual([]);
  });

  it('a replayed, forged, expired or refused consent links nothing', async () => {
    const link = await linkFor(clients.Bravo!.id);
    // The client's administrator declines: nothing linked, the link still works afterwards.
    const declined = await follow(sim.consent(link.url, { tenantId: T2, refuse: true }).location);
    expect(declined.statusCode).toBe(400);
    expect(declined.body).toContain('Consent was not given');
    expect(await connectionOf(clients.Bravo!.id)).toBeUndefined();

    const { location } = sim.consent(link.url, { tenantId: T2 });
    expect((await follow(location)).statusCode).toBe(200);
    // Two answers at once (a double click): one links, the other is refused.
    const twice = await linkFor(clients.Bravo!.id);
    const again = sim.consent(twice.url, { tenantId: T2 }).location;
    const both = await Promise.all([follow(again), follow(again)]);
    expect(both.map((r) => r.statusCode).sort()).toEqual([200, 400]);
    // Replayed: the same answer again.
    const replay = await follow(location);
    expect(replay.statusCode).toBe(400);
    expect(replay.body).toContain('already used');
    // Forged: a state Keywarden never issued.
    const forged = new URL(location);
    forged.searchParams.set('state', 'A'.repeat(43));
    const f = await follow(forged.href);
    expect(f.statusCode).toBe(400);
    expect(f.body).toContain('not valid');
    // A callback without any state.
    const bare = await call(null, 'GET', `/api/v1/graph/consent/callback?admin_consent=True&tenant=${T3}`);
    expect(bare.statusCode).toBe(400);
    // Expired: a week-old link.
    const old = await linkFor(clients.Charlie!.id);
    await t.container.database.db
      .updateTable('graph_consent_states')
      .set({ expires_at: '2000-01-01T00:00:00.000Z' })
      .where('client_id', '=', clients.Charlie!.id)
      .execute();
    const expired = await follow(sim.consent(old.url, { tenantId: T3 }).location);
    expect(expired.statusCode).toBe(400);
    expect(expired.body).toContain('expired');
    expect(await connectionOf(clients.Charlie!.id)).toBeUndefined();

    const refusals = (await audits('graph.consent')).filter((a) => a.outcome === 'failure').map((a) => JSON.parse(a.details ?? '{}').why as string);
    expect(refusals).toEqual(
      expect.arrayContaining(['state already used', 'unknown state', 'no or malformed state', 'state expired', 'Entra answered access_denied']),
    );
  });

  it("a link bound to one tenant refuses another tenant's consent, and a tenant linked to one client cannot be linked to another", async () => {
    // Charlie's link names T3; an answer carrying T4 (another tenant's admin) is refused.
    const bound = await linkFor(clients.Charlie!.id, T3);
    expect(new URL(bound.url).pathname).toBe(`/login/${T3}/v2.0/adminconsent`);
    const state = new URL(bound.url).searchParams.get('state')!;
    sim.consent(bound.url.replace(`/login/${T3}/`, `/login/${T4}/`), { tenantId: T4 });
    const wrong = await call(null, 'GET', `/api/v1/graph/consent/callback?admin_consent=True&tenant=${T4}&state=${state}`);
    expect(wrong.statusCode).toBe(400);
    expect(wrong.body).toContain('for another Microsoft 365 tenant');
    expect(await connectionOf(clients.Charlie!.id)).toBeUndefined();
    // The right tenant then works with the same link.
    expect((await follow(sim.consent(bound.url, { tenantId: T3 }).location)).statusCode).toBe(200);
    expect(await connectionOf(clients.Charlie!.id)).toMatchObject({ tenantId: T3, credentialKind: 'msp_app' });

    // Delta's administrator consents from T1, which Alpha already holds: refused, Alpha keeps it.
    const delta = await linkFor(clients.Delta!.id);
    const taken = await follow(sim.consent(delta.url, { tenantId: T1 }).location);
    expect(taken.statusCode).toBe(400);
    expect(taken.body).toContain('already linked');
    expect(await connectionOf(clients.Delta!.id)).toBeUndefined();
    expect(await connectionOf(clients.Alpha!.id)).toMatchObject({ tenantId: T1 });
    // A link naming a tenant that another client holds is refused up front.
    const upFront = await call(admin, 'POST', `${API}/graph/consent-links`, { clientId: clients.Delta!.id, tenantId: T1 });
    expect(upFront.statusCode).toBe(400);
    // A per-client app for a tenant another client holds is refused too (its keys would land in two clients).
    const direct = await call(admin, 'POST', `${API}/graph/connections`, {
      clientId: clients.Delta!.id,
      tenantId: T1,
      appClientId: sim.tenant(T1).clientId,
      clientSecret: 'per-client-secret-for-a-taken-tenant',
      ...urls,
    });
    expect(direct.statusCode, direct.body).toBe(409);
    expect(direct.json().message).toContain('already connected to another client');
    expect(await connectionOf(clients.Delta!.id)).toBeUndefined();
  });

  it("two clients' consent links answered at once by the same tenant: one client gets it, the other is refused", async () => {
    const T6 = '6f6f6f6f-1111-4222-8333-444444444444';
    sim.seedTenant(T6, { keys: 3, devices: 1 });
    const cli = { type: 'cli' as const, id: 'cli', name: 'test', role: 'owner' as const, clients: 'all' as const };
    const foxtrot = await t.container.clients.create(cli, { name: 'Foxtrot' });
    const golf = await t.container.clients.create(cli, { name: 'Golf' });
    // An owner makes them (the admin of this file is scoped to the first five clients).
    const link = async (clientId: string) => {
      const r = await call(owner, 'POST', `${API}/graph/consent-links`, { clientId });
      expect(r.statusCode, r.body).toBe(201);
      return r.json() as { url: string };
    };
    const [f, g] = [await link(foxtrot.id), await link(golf.id)];
    const answers = await Promise.all([follow(sim.consent(f.url, { tenantId: T6 }).location), follow(sim.consent(g.url, { tenantId: T6 }).location)]);
    expect(answers.map((r) => r.statusCode).sort()).toEqual([200, 400]);
    const linked = await t.container.database.db.selectFrom('graph_connections').select('client_id').where('tenant_id', '=', T6).execute();
    expect(linked).toHaveLength(1);
  });

  it('a link that names no tenant cannot move a linked client to the tenant of whoever answers it (a forwarded or leaked link)', async () => {
    // The attacker: an administrator of a tenant of their own (any free tenant) who got hold of
    // Bravo's consent link. Without the check Bravo's connection moved to their tenant: Bravo's
    // syncs read the attacker's devices and keys, and the attacker's users got Bravo's self-service.
    const T7 = '7a7a7a7a-1111-4222-8333-444444444444';
    sim.seedTenant(T7, { keys: 2, devices: 1 });
    const bravo = clients.Bravo!;
    expect(await connectionOf(bravo.id)).toMatchObject({ tenantId: T2 });
    // A link made before Bravo was linked names no tenant (a new link would name T2 by itself).
    const link = await linkFor(bravo.id);
    await t.container.database.db.updateTable('graph_consent_states').set({ expected_tenant_id: null }).where('client_id', '=', bravo.id).execute();
    expect(new URL((await linkFor(bravo.id)).url).pathname).toBe(`/login/${T2}/v2.0/adminconsent`);
    const hijack = await follow(sim.consent(link.url.replace(`/login/${T2}/`, '/login/organizations/'), { tenantId: T7 }).location);
    expect(hijack.statusCode).toBe(400);
    expect(hijack.body).toContain('cannot link another Microsoft 365 tenant');
    expect(await connectionOf(bravo.id)).toMatchObject({ tenantId: T2 });
    expect(await t.container.database.db.selectFrom('graph_connections').select('id').where('tenant_id', '=', T7).execute()).toEqual([]);
    const refusal = (await audits('graph.consent')).at(-1)!;
    expect(refusal).toMatchObject({ outcome: 'failure', client_id: bravo.id });
    expect(JSON.parse(refusal.details ?? '{}').why).toContain('the link names no tenant');
    // The client's own administrator can still use the same link; moving the client takes a link naming the new tenant.
    expect((await follow(sim.consent(link.url, { tenantId: T2 }).location)).statusCode).toBe(200);
    expect(await connectionOf(bravo.id)).toMatchObject({ tenantId: T2 });
  });

  it('consent withdrawn mid-life: the connection says so, one notification, keys kept; a new consent recovers', async () => {
    const alpha = clients.Alpha!;
    const conn = (await connectionOf(alpha.id))!;
    sim.revokeConsent(T1, MSP_APP);
    const outbox = () =>
      t.container.database.db
        .selectFrom('notification_outbox')
        .selectAll()
        .where('event_type', '=', 'graph.consent_lost')
        .where('client_id', '=', alpha.id)
        .execute();
    for (let i = 0; i < 2; i++) {
      const run = await sync(conn.id);
      expect(run.status).toBe('failed');
      expect(run.errorText).toContain('AADSTS7000229');
    }
    const after = (await connectionOf(alpha.id))!;
    expect(after.lastStatus).toBe('consent_revoked');
    expect(after.lastError).toContain(`Admin consent for the Keywarden app was withdrawn in tenant ${T1}`);
    expect(after.consentLostAt).not.toBeNull();
    expect(await outbox()).toHaveLength(1);
    expect((await audits('graph.consent_lost')).filter((a) => a.client_id === alpha.id)).toHaveLength(1);
    expect(await keyCount(alpha.id)).toBe(12);
    // A client-level finding in compliance says so, with what to do.
    const notes = async () => {
      const r = await call(owner, 'GET', `${API}/compliance/tenant-posture?clientId=${alpha.id}`);
      expect(r.statusCode, r.body).toBe(200);
      return (r.json() as { notes: { code: string; fix: string }[] }[]).flatMap((p) => p.notes);
    };
    expect((await notes()).find((n) => n.code === 'entra_consent_lost')?.fix).toContain('new consent link');

    // Re-consent with a new link: linked again, the next sync works and clears the state.
    const again = await linkFor(alpha.id);
    expect((await follow(sim.consent(again.url, { tenantId: T1 }).location)).statusCode).toBe(200);
    const run = await sync(conn.id);
    expect(run.status).toBe('succeeded');
    expect(await connectionOf(alpha.id)).toMatchObject({ lastStatus: 'succeeded', consentLostAt: null, tenantId: T1 });
    expect((await notes()).map((n) => n.code)).not.toContain('entra_consent_lost');
    expect(await keyCount(alpha.id)).toBe(12);

    // The app deleted in its home tenant: the same state, noticed once.
    sim.apps.deleteApp(MSP_APP);
    expect((await sync(conn.id)).errorText).toContain('AADSTS700016');
    expect(await connectionOf(alpha.id)).toMatchObject({ lastStatus: 'consent_revoked' });
    expect(await outbox()).toHaveLength(2);
    sim.apps.app(MSP_APP).deleted = false;
  });

  it('per-client apps sign in with a certificate too (generated or uploaded); a certificate the app does not have is a clear error', async () => {
    const echo = clients.Echo!;
    const r = await call(admin, 'POST', `${API}/graph/connections`, {
      clientId: echo.id,
      tenantId: T4,
      appClientId: sim.tenant(T4).clientId,
      generateCertificate: true,
      ...urls,
    });
    expect(r.statusCode, r.body).toBe(201);
    const conn = r.json() as { id: string; credentialKind: string; certificatePem: string; certificate: { thumbprint: string } };
    expect(conn.credentialKind).toBe('certificate');
    const dl = await call(admin, 'GET', `${API}/graph/connections/${conn.id}/certificate`);
    expect(dl.json()).toMatchObject({ certificatePem: conn.certificatePem, thumbprint: conn.certificate.thumbprint });
    // Not uploaded to the app registration yet: the sign-in says which certificate to upload.
    const before = await sync(conn.id);
    expect(before.status).toBe('failed');
    expect(before.errorText).toContain('refused the certificate');
    expect(before.errorText).toContain('AADSTS700027');
    sim.apps.setTenantCertificates(T4, [conn.certificatePem]);
    expect(await sync(conn.id)).toMatchObject({ status: 'succeeded', newKeys: 12 });

    // An uploaded certificate and key (Delta, T5).
    const own = generateSelfSignedCertificate({ commonName: 'Delta app', days: 365, bits: 2048, now: new Date() });
    const wrongKey = generateSelfSignedCertificate({ commonName: 'Other', days: 365, bits: 2048, now: new Date() });
    const mismatch = await call(admin, 'POST', `${API}/graph/connections`, {
      clientId: clients.Delta!.id,
      tenantId: T5,
      appClientId: sim.tenant(T5).clientId,
      certificatePem: own.certificatePem,
      privateKeyPem: wrongKey.privateKeyPem,
      ...urls,
    });
    expect(mismatch.statusCode).toBe(400);
    expect(mismatch.json().message).toBe('The private key does not belong to this certificate.');
    const up = await call(admin, 'POST', `${API}/graph/connections`, {
      clientId: clients.Delta!.id,
      tenantId: T5,
      appClientId: sim.tenant(T5).clientId,
      certificatePem: own.certificatePem,
      privateKeyPem: own.privateKeyPem,
      ...urls,
    });
    expect(up.statusCode, up.body).toBe(201);
    sim.apps.setTenantCertificates(T5, [own.certificatePem]);
    expect(await sync(up.json().id)).toMatchObject({ status: 'succeeded', newKeys: 12 });
    // The app registration loses that certificate (replaced by another): a clear error, keys stay.
    sim.apps.setTenantCertificates(T5, [wrongKey.certificatePem]);
    const failed = await sync(up.json().id);
    expect(failed.status).toBe('failed');
    expect(failed.errorText).toContain('refused the certificate');
    expect(await keyCount(clients.Delta!.id)).toBe(12);

    // The uploaded private key appears nowhere.
    const keyBody = own.privateKeyPem.split('\n')[1]!;
    expect(answers.join('\n')).not.toContain(keyBody);
    expect(log.text()).not.toContain(keyBody);
  });

  it('the egress policy refuses a sign-in URL it does not allow', async () => {
    const r = await call(owner, 'PUT', `${API}/graph/msp-app`, { appClientId: MSP_APP, loginUrl: 'https://169.254.169.254/login' });
    expect(r.statusCode).toBe(400);
    expect(r.json().fields[0].field).toBe('loginUrl');
    expect(r.json().message).toMatch(/169.254.169.254/);
    expect((await call(owner, 'GET', `${API}/graph/msp-app`)).json()).toMatchObject({ loginUrl: urls.loginUrl });
    const failure = (await audits('graph.msp_app')).at(-1)!;
    expect(failure.outcome).toBe('failure');
  });

  it('a stolen owner session without a fresh second factor cannot change the MSP app', async () => {
    const mfaOwner = await t.signIn((await t.addUser('owner', 'all', 'msp.mfa-owner@example.test')).email);
    const secret = (await api.inject({ method: 'POST', url: `${API}/me/mfa`, headers: mfaOwner.headers })).json().secret as string;
    const confirm = await api.inject({
      method: 'POST',
      url: `${API}/me/mfa/confirm`,
      headers: mfaOwner.headers,
      payload: { code: await freshTotp(t, secret) },
    });
    expect(confirm.statusCode).toBe(200);
    await updateSession(t, mfaOwner.cookie, { mfa_at: minutesAgo(t.config.policy.stepUpMinutes + 1) });
    const before = (await call(owner, 'GET', `${API}/graph/msp-app`)).json();
    const stale = await call(mfaOwner, 'PUT', `${API}/graph/msp-app`, { appClientId: randomUUID(), clientSecret: 'attacker-secret-value' });
    expect(stale.statusCode).toBe(403);
    expect(stale.json().error).toBe('step_up_required');
    expect((await call(owner, 'GET', `${API}/graph/msp-app`)).json()).toEqual(before);
    // After a step-up the same owner may.
    const step = await api.inject({ method: 'POST', url: `${API}/auth/step-up`, headers: mfaOwner.headers, payload: { code: await freshTotp(t, secret) } });
    expect(step.statusCode).toBe(200);
    const ok = await call(mfaOwner, 'PUT', `${API}/graph/msp-app`, { appClientId: MSP_APP });
    expect(ok.statusCode, ok.body).toBe(200);
    expect(ok.json()).toMatchObject({ appClientId: MSP_APP, credentialKind: before.credentialKind });
  });

  it('the CLI shows the MSP app, prints its certificate and makes consent links', async () => {
    const show = await t.cli(['graph', 'app', 'show']);
    expect(show.code, show.stderr).toBe(0);
    expect(show.stdout).toContain(`Application ID: ${MSP_APP}`);
    expect(show.stdout).toMatch(/Certificate: {4}[0-9A-F]{40}, valid until \d{4}-\d{2}-\d{2}/);
    const cert = await t.cli(['graph', 'app', 'cert']);
    expect(cert.stdout).toMatch(/^-----BEGIN CERTIFICATE-----/);
    expect(cert.stdout).not.toMatch(/PRIVATE KEY/);
    const link = await t.cli(['graph', 'consent-link', '--client', 'Echo']);
    expect(link.code, link.stderr).toBe(0);
    const url = new URL(link.stdout.trim());
    expect(url.searchParams.get('redirect_uri')).toBe(CALLBACK);
    expect(link.stderr).toContain("Send this link to an administrator of Echo's Microsoft 365 tenant");
  });

  it('certificates running out are warned 30 and 7 days ahead and once expired: each stage once per certificate, a new one starts over', async () => {
    const db = t.container.database.db;
    const inDays = (d: number) => new Date(Date.now() + d * 86_400_000).toISOString();
    const warnings = async () =>
      (await db.selectFrom('notification_outbox').selectAll().where('event_type', '=', 'graph.certificate_expiring').orderBy('created_at').execute()).map(
        (e) => ({
          client: e.client_id,
          subject: e.subject,
          stage: (JSON.parse(e.details) as { stage: string }).stage,
        }),
      );
    const app = (await db.selectFrom('graph_msp_app').selectAll().executeTakeFirstOrThrow())!;
    expect(app.credential_kind).toBe('certificate');
    // A client app with its own certificate (Echo, from the per-client certificate test).
    const echoConn = (await db.selectFrom('graph_connections').selectAll().where('client_id', '=', clients.Echo!.id).executeTakeFirstOrThrow())!;
    expect(echoConn.credential_kind).toBe('certificate');
    const before = (await warnings()).length;

    // Far from expiry: nothing.
    expect(await t.container.mspApp.checkCertificates()).toEqual({ warned: 0 });
    await db
      .updateTable('graph_msp_app')
      .set({ certificate_expires_at: inDays(20) })
      .execute();
    await db
      .updateTable('graph_connections')
      .set({ certificate_expires_at: inDays(5) })
      .where('id', '=', echoConn.id)
      .execute();
    expect(await t.container.mspApp.checkCertificates()).toEqual({ warned: 2 });
    // The next day's check says nothing new.
    expect(await t.container.mspApp.checkCertificates()).toEqual({ warned: 0 });
    let w = (await warnings()).slice(before);
    expect(w).toHaveLength(2);
    expect(w).toEqual(
      expect.arrayContaining([
        {
          client: null,
          stage: '30',
          subject: expect.stringMatching(
            /^The certificate of the MSP's Entra ID app expires on \d{4}-\d{2}-\d{2} \(\d+ days left\): \d+ clients? sign in with it\./,
          ),
        },
        { client: clients.Echo!.id, stage: '7', subject: expect.stringMatching(/^The certificate Echo's Entra ID connection signs in with expires on /) },
      ]),
    );
    // Later stages: 7 days, then expired.
    await db
      .updateTable('graph_msp_app')
      .set({ certificate_expires_at: inDays(3) })
      .execute();
    await db
      .updateTable('graph_connections')
      .set({ certificate_expires_at: inDays(-1) })
      .where('id', '=', echoConn.id)
      .execute();
    expect(await t.container.mspApp.checkCertificates()).toEqual({ warned: 2 });
    w = (await warnings()).slice(before);
    expect(w.map((x) => `${x.client ? 'Echo' : 'MSP app'} ${x.stage}`).sort()).toEqual(['Echo 7', 'Echo expired', 'MSP app 30', 'MSP app 7']);
    expect(w.find((x) => x.stage === 'expired')!.subject).toMatch(/expired on \d{4}-\d{2}-\d{2}/);
    // A new certificate for the MSP app starts over (far from expiry: nothing).
    const renewed = await call(owner, 'PUT', `${API}/graph/msp-app`, { appClientId: MSP_APP, generateCertificate: true, ...urls });
    expect(renewed.statusCode, renewed.body).toBe(200);
    sim.apps.register({ appId: MSP_APP, displayName: 'Keywarden (MSP)', redirectUris: [CALLBACK], certificates: [renewed.json().certificatePem] });
    expect(await t.container.mspApp.checkCertificates()).toEqual({ warned: 0 });
    const audited = (await audits('graph.certificate_expiring')).slice(-4);
    expect(audited.map((a) => (JSON.parse(a.details!) as { stage: string }).stage).sort()).toEqual(['30', '7', '7', 'expired']);
    // The scheduled task runs the same check daily.
    expect(await db.selectFrom('scheduled_tasks').select(['kind', 'interval_minutes']).where('id', '=', 'graph-certificates').executeTakeFirst()).toEqual({
      kind: 'graph-certificates',
      interval_minutes: 1440,
    });
  });

  it('no private key in any answer, log or audit record', async () => {
    const all = await t.container.database.db.selectFrom('audit_events').selectAll().execute();
    const everything = [answers.join('\n'), log.text(), JSON.stringify(all)].join('\n');
    expect(everything).not.toMatch(/PRIVATE KEY/);
    // Client secrets are write-only too: a secret credential answers hasSecret only.
    const secret = `msp-secret-${randomUUID()}`;
    const r = await call(owner, 'PUT', `${API}/graph/msp-app`, { appClientId: MSP_APP, clientSecret: secret });
    expect(r.json()).toMatchObject({ credentialKind: 'secret', hasSecret: true, certificate: null, certificatePem: null });
    const show = await call(owner, 'GET', `${API}/graph/msp-app`);
    expect(show.body).not.toContain(secret);
    expect(log.text()).not.toContain(secret);
    expect(JSON.stringify(await t.container.database.db.selectFrom('audit_events').selectAll().execute())).not.toContain(secret);
  });
});
