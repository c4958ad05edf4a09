/**
 * The agent's primary user (issue 20: self-service for the devices a person "owns or primarily
 * uses ... or the agent's primary user"): the script reads the account that joined the device to
 * Entra ID (JoinInfo UserEmail) and reports it as `device.primaryUser`; the server stores it on the
 * device when nothing else set one, keeps it current while it is the agent's, lets an import's
 * value win, ignores a value that is no UPN (with a warning, never a failed check-in), and accepts
 * an old agent's report without the field. An end user whose UPN is that primary user, and who is
 * neither owner nor registered user of the device in Graph, then signs in to self-service
 * recovery, sees the device and reveals its key.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type Session, type TestApp } from './helpers/app.js';
import { owner as cliOwner } from './helpers/vault.js';
import { ENGINE } from './helpers/engine.js';
import { bytes, randomRecoveryPassword } from './helpers/keys.js';
import { startOidcProvider, type TestIdp } from './oidc/provider.js';
import { GraphSimulator } from './graph-sim/simulator.js';
import { SimMachine, TestAgent, injectTransport } from './agent/test-agent.js';

const PUBLIC_URL = 'http://kw.test';
const REDIRECT = `${PUBLIC_URL}/api/v1/recover/callback`;
const API = '/api/v1';
const TENANT = 'd4d4d4d4-1111-4222-8333-444444444444';
const GUS = 'gus@contoso.example';

describe(`the agent reports the device's primary user on ${ENGINE}`, () => {
  let t: TestApp;
  let idp: TestIdp;
  let sim: GraphSimulator;
  let owner: Session;
  let clientId: string;
  let n = 0;

  /** An Entra-joined machine of the tenant whose join account is `joinUser`, enrolled and after its first run. */
  async function joinedMachine(joinUser: string | null, opts: { name?: string; pending?: boolean } = {}) {
    const machine = new SimMachine(opts.name ?? `FAKE-PU-${String(++n).padStart(2, '0')}`);
    machine.entraDeviceId = randomUUID();
    machine.entraTenantId = TENANT;
    machine.entraJoinUser = joinUser;
    const agent = new TestAgent(injectTransport(t.app), machine);
    const token = (await t.app.inject({ method: 'POST', url: `${API}/agent/enrollment-tokens`, headers: owner.headers, payload: { clientId } })).json()
      .token as string;
    const enrolled = await agent.enroll(token);
    expect(enrolled.status).toBe(200);
    expect(enrolled.json.pendingApproval).toBe(opts.pending ?? false);
    const run = await agent.run();
    expect(run.exitCode, run.lines.join('\n')).toBe(0);
    return { machine, agent, deviceId: agent.deviceId! };
  }
  const deviceRow = (id: string) =>
    t.container.database.db.selectFrom('devices').select(['primary_user', 'primary_user_source']).where('id', '=', id).executeTakeFirstOrThrow();
  const deviceView = async (id: string) => {
    const r = await t.app.inject({ url: `${API}/devices/${id}`, headers: owner.headers });
    expect(r.statusCode, r.body).toBe(200);
    return r.json() as { primaryUser: string | null; facts: Record<string, unknown> | null };
  };
  /** The device part of the last check-in the agent sent. */
  const lastReported = (agent: TestAgent) => agent.wire.filter((w) => w.path === `${API}/agent/checkin`).at(-1)!.body.device as Record<string, unknown>;

  beforeAll(async () => {
    idp = await startOidcProvider({
      redirectUris: [REDIRECT],
      users: {
        gus: {
          sub: 'sub-gus',
          amr: ['pwd', 'mfa'],
          extra: { oid: 'a0000000-0000-4000-8000-000000000091', tid: TENANT, preferred_username: GUS, name: 'Gus' },
        },
      },
    });
    t = await createTestApp({ KEYWARDEN_PUBLIC_URL: PUBLIC_URL, KEYWARDEN_EGRESS_ALLOW: '127.0.0.1', KEYWARDEN_REVEAL_LIMIT_PER_HOUR: '1000' });
    owner = await t.signIn((await t.addUser('owner', 'all', 'owner@example.test')).email);
    sim = new GraphSimulator();
    const urls = await sim.start();
    sim.seedTenant(TENANT, { keys: 1, devices: 1 });
    sim.trustDelegated(async (token) => {
      const a = await idp.accessToken(token);
      const extra = a?.user.extra as { tid?: string; oid?: string } | undefined;
      return a && extra?.tid && extra.oid ? { tenantId: extra.tid, userObjectId: extra.oid, scopes: a.scopes } : null;
    });
    // The Graph connection links the tenant to the client (self-service finds the client by tenant).
    clientId = (await t.container.clients.create(cliOwner, { name: 'Contoso' })).id;
    const tn = sim.tenant(TENANT);
    await t.container.graph.createConnection(cliOwner, { clientId, tenantId: TENANT, appClientId: tn.clientId, clientSecret: tn.clientSecret, ...urls });
    const app = await t.app.inject({
      method: 'PUT',
      url: `${API}/settings/self-service`,
      headers: owner.headers,
      payload: { issuer: idp.issuer, clientId: idp.clientId, clientSecret: idp.clientSecret, enabled: true },
    });
    expect(app.statusCode, app.body).toBe(200);
    const on = await t.app.inject({ method: 'PUT', url: `${API}/clients/${clientId}/self-service`, headers: owner.headers, payload: { enabled: true } });
    expect(on.statusCode, on.body).toBe(200);
  }, 120_000);
  afterAll(async () => {
    await t?.close();
    await idp?.close();
    await sim?.stop();
  });

  it("an Entra-joined machine's join account becomes the device's primary user", async () => {
    const { agent, deviceId } = await joinedMachine(GUS);
    expect(lastReported(agent).primaryUser).toBe(GUS);
    expect(await deviceRow(deviceId)).toEqual({ primary_user: GUS, primary_user_source: 'agent' });
    expect((await deviceView(deviceId)).primaryUser).toBe(GUS);
  });

  it('a bulk-enrolment package account, the fooUser placeholder or no join account: no primary user', async () => {
    for (const joinUser of ['package_0b3c5a2e-1f4d-4c1b-9a57-3c2f1e0d9b8a@contoso.onmicrosoft.com', 'fooUser@contoso.example', null]) {
      const { agent, deviceId } = await joinedMachine(joinUser);
      expect(lastReported(agent).primaryUser, String(joinUser)).toBeNull();
      expect(await deviceRow(deviceId), String(joinUser)).toEqual({ primary_user: null, primary_user_source: null });
    }
    // A machine joined to no directory reports none, whatever a stale registry might hold.
    const { machine, agent, deviceId } = await joinedMachine(GUS);
    machine.entraDeviceId = null;
    expect((await agent.run()).exitCode).toBe(0);
    expect(lastReported(agent).primaryUser).toBeNull();
    expect(await deviceRow(deviceId)).toEqual({ primary_user: null, primary_user_source: null });
  });

  it('the agent keeps its own value current: a new join account replaces it, none clears it', async () => {
    const { machine, agent, deviceId } = await joinedMachine('ann@contoso.example');
    machine.entraJoinUser = 'Ann.Lee@contoso.example';
    expect((await agent.run()).exitCode).toBe(0);
    expect(await deviceRow(deviceId)).toEqual({ primary_user: 'Ann.Lee@contoso.example', primary_user_source: 'agent' });
    machine.entraJoinUser = null;
    expect((await agent.run()).exitCode).toBe(0);
    expect(await deviceRow(deviceId)).toEqual({ primary_user: null, primary_user_source: null });
    // Whose self-service sign-in reaches the device's keys changed each time: each change is audited.
    const changes = await t.container.database.db
      .selectFrom('audit_events')
      .select(['details', 'actor_type'])
      .where('action', '=', 'device.primary_user')
      .where('target_id', '=', deviceId)
      .orderBy('seq')
      .execute();
    expect(changes.map((c) => JSON.parse(c.details!) as { from: string | null; to: string | null })).toMatchObject([
      { from: null, to: 'ann@contoso.example' },
      { from: 'ann@contoso.example', to: 'Ann.Lee@contoso.example' },
      { from: 'Ann.Lee@contoso.example', to: null },
    ]);
    expect(changes.every((c) => c.actor_type === 'agent')).toBe(true);
  });

  it("an import's primary user wins over the agent's, and the agent leaves it alone from then on", async () => {
    const { machine, agent, deviceId } = await joinedMachine('ann@contoso.example');
    const csv = `Device,Recovery Password,Drive,User\n${machine.hostname},${randomRecoveryPassword()},E:,bo@contoso.example\n`;
    const imported = await t.container.imports.importFile(cliOwner, 'Contoso', { fileName: 'users.csv', bytes: bytes(csv) });
    expect(imported.imported, JSON.stringify(imported)).toBe(1);
    expect(await deviceRow(deviceId)).toEqual({ primary_user: 'bo@contoso.example', primary_user_source: null });
    machine.entraJoinUser = 'cy@contoso.example';
    expect((await agent.run()).exitCode).toBe(0);
    expect(lastReported(agent).primaryUser).toBe('cy@contoso.example');
    expect(await deviceRow(deviceId)).toEqual({ primary_user: 'bo@contoso.example', primary_user_source: null });
    machine.entraJoinUser = null;
    expect((await agent.run()).exitCode).toBe(0);
    expect(await deviceRow(deviceId)).toEqual({ primary_user: 'bo@contoso.example', primary_user_source: null });
  });

  it('an old-style report without the field checks in and changes nothing; a value that is no UPN is ignored with a warning', async () => {
    const { agent, deviceId } = await joinedMachine('dee@contoso.example');
    const old = agent.checkinBody();
    delete (old.device as { primaryUser?: unknown }).primaryUser;
    const r = await agent.post(`${API}/agent/checkin`, old);
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    expect(await deviceRow(deviceId)).toEqual({ primary_user: 'dee@contoso.example', primary_user_source: 'agent' });

    for (const bad of ['CONTOSO\\administrator', 'dee@contoso.example\u0007', `${'x'.repeat(300)}@contoso.example`, 'package_1@contoso.example']) {
      const body = agent.checkinBody();
      body.device.primaryUser = bad;
      const res = await agent.post(`${API}/agent/checkin`, body);
      expect(res.status, `${bad.slice(0, 40)}: ${JSON.stringify(res.json)}`).toBe(200);
      expect(await deviceRow(deviceId)).toEqual({ primary_user: 'dee@contoso.example', primary_user_source: 'agent' });
      const view = await deviceView(deviceId);
      expect(view.primaryUser).toBe('dee@contoso.example');
      expect(view.facts?.primaryUserIgnored, bad.slice(0, 40)).toMatch(/it was ignored$/);
    }
    // The next good report clears the warning.
    expect((await agent.run()).exitCode).toBe(0);
    expect((await deviceView(deviceId)).facts?.primaryUserIgnored).toBeUndefined();
  });

  it('a device waiting for an admin to link its agent takes no primary user from that agent', async () => {
    // The vault knows the name from an import: the new agent works under a record of its own until linked.
    const name = `FAKE-PU-${String(++n).padStart(2, '0')}`;
    const csv = `Device,Recovery Password,Drive\n${name},${randomRecoveryPassword()},C:\n`;
    expect((await t.container.imports.importFile(cliOwner, 'Contoso', { fileName: 'known.csv', bytes: bytes(csv) })).imported).toBe(1);
    const { agent, deviceId } = await joinedMachine(GUS, { name, pending: true });
    expect(lastReported(agent).primaryUser).toBe(GUS);
    expect(await deviceRow(deviceId)).toEqual({ primary_user: null, primary_user_source: null });
  });

  it('a person whose UPN is the agent-reported primary user (neither owner nor user in Graph) sees the device and reveals its key', async () => {
    const { machine, deviceId } = await joinedMachine(GUS.toUpperCase());
    const start = await t.app.inject({ method: 'GET', url: `${API}/recover/start` });
    expect(start.statusCode, start.body).toBe(302);
    const state = start.cookies.find((c) => c.name === 'kw_recover_state')!;
    const cb = await idp.signIn(String(start.headers.location), 'gus');
    const done = await t.app.inject({ method: 'GET', url: `${cb.pathname}${cb.search}`, headers: { cookie: `kw_recover_state=${state.value}` } });
    expect(done.headers.location).toBe('/recover');
    const cookie = done.cookies.find((c) => c.name === 'kw_recover')!.value;
    const csrf = done.cookies.find((c) => c.name === 'kw_recover_csrf')!.value;
    const headers = { cookie: `kw_recover=${cookie}`, 'x-csrf-token': csrf };

    const me = await t.app.inject({ url: `${API}/recover/me`, headers: { cookie: headers.cookie } });
    expect(me.statusCode, me.body).toBe(200);
    // Graph was read (and names no device of his); the first test's device is his too.
    expect(me.json()).toMatchObject({ upn: GUS, entraRead: true });
    const mine = (me.json().devices as { id: string; why: string }[]).find((d) => d.id === deviceId);
    expect(mine).toMatchObject({ why: 'primary user' });
    expect((me.json().devices as { why: string }[]).every((d) => d.why === 'primary user')).toBe(true);

    const c = machine.recoveryPasswords('C:')[0]!;
    const keyId = c.id.replace(/[{}]/g, '');
    const r = await t.app.inject({
      method: 'POST',
      url: `${API}/recover/reveal`,
      headers,
      payload: { keyId: keyId.slice(0, 8), reason: 'my laptop asks for the key' },
    });
    expect(r.statusCode, r.body).toBe(200);
    expect(r.json()).toMatchObject({ status: 'revealed', key: { keyId: keyId.toLowerCase(), recoveryPassword: c.password } });
    const audit = await t.container.database.db
      .selectFrom('audit_events')
      .selectAll()
      .where('action', '=', 'key.self_service_reveal')
      .where('outcome', '=', 'success')
      .execute();
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({ actor_name: GUS, client_id: clientId });
  });
});
