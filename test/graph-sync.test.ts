import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GraphSimulator } from './graph-sim/simulator.js';
import { createTestApp, type Session, type TestApp } from './helpers/app.js';
import { ENGINE } from './helpers/engine.js';
import { systemActor } from '../src/modules/authz/authz.js';

const API = '/api/v1';
const admin = systemActor('test');
/** The simulator listens on loopback, which the egress policy refuses unless allowed. */
const LAB = { KEYWARDEN_EGRESS_ALLOW: '127.0.0.1' };

describe(`Entra ID sync against the Graph simulator on ${ENGINE}`, () => {
  let t: TestApp;
  let owner: Session;
  let sim: GraphSimulator;
  let urls: { loginUrl: string; graphUrl: string };

  const connect = async (clientName: string, tenantId: string, secret?: string) => {
    const client = await t.container.clients.create(admin, { name: clientName });
    const tenant = sim.tenant(tenantId);
    const conn = await t.container.graph.createConnection(admin, {
      clientId: client.id,
      tenantId,
      appClientId: tenant.clientId,
      clientSecret: secret ?? tenant.clientSecret,
      ...urls,
    });
    return { client, conn };
  };

  beforeAll(async () => {
    t = await createTestApp({ KEYWARDEN_REVEAL_LIMIT_PER_HOUR: '1000', ...LAB });
    owner = await t.signIn((await t.addUser('owner', 'all', 'owner@example.test')).email);
    // A request another worker sent before the 429 reached the client is not a violation; on a loaded
    // 2-core machine (the whole suite in parallel) it can arrive well after 100 ms. Retrying the
    // throttled request itself early is still always a violation.
    sim = new GraphSimulator({ inFlightGraceMs: 1000 });
    urls = await sim.start();
  });
  afterAll(async () => {
    await sim.stop();
    await t.close();
  });

  it('syncs 10,000 keys over 4,000 devices in pages of 200, reading each key once; a second sync reads none', async () => {
    const tenantId = '0a0a0a0a-1111-4222-8333-444444444444';
    sim.seedTenant(tenantId, { keys: 10_000, devices: 4_000, pageSize: 200 });
    const { client, conn } = await connect('Big Tenant', tenantId);
    const first = await t.container.graph.runSync(conn.id);
    expect(first).toMatchObject({ status: 'succeeded', keysListed: 10_000, newKeys: 10_000, keyReads: 10_000, newDevices: 4_000, errors: 0 });
    const reads = sim.keyReads(tenantId);
    expect(reads.size).toBe(10_000);
    expect([...reads.values()].every((n) => n === 1)).toBe(true);
    const listCalls = sim.requests(tenantId).filter((r) => r.path.endsWith('/recoveryKeys') && r.status === 200);
    expect(listCalls.length).toBe(50);

    const db = t.container.database.db;
    const count = await db
      .selectFrom('recovery_keys')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('client_id', '=', client.id)
      .executeTakeFirstOrThrow();
    expect(Number(count.n)).toBe(10_000);
    const devices = await db.selectFrom('devices').select(['name', 'entra_device_id']).where('client_id', '=', client.id).execute();
    expect(devices).toHaveLength(4_000);
    const simDevices = new Map(sim.tenant(tenantId).devices.map((d) => [d.deviceId.toLowerCase(), d.displayName]));
    for (const d of devices.slice(0, 200)) expect(d.name).toBe(simDevices.get(d.entra_device_id!));
    // A sample of keys decrypts to exactly what Entra holds.
    for (const k of sim.tenant(tenantId).keys.slice(0, 5)) {
      const r = await t.app.inject({ method: 'POST', url: `${API}/keys/${k.id}/reveal`, headers: owner.headers, payload: { reason: 'tpm-reset' } });
      expect(r.json().key.recoveryPassword).toBe(k.key);
    }

    sim.reset(tenantId);
    const second = await t.container.graph.runSync(conn.id);
    expect(second).toMatchObject({ status: 'succeeded', newKeys: 0, keyReads: 0, unchanged: 10_000 });
    expect(sim.keyReads(tenantId).size).toBe(0);
  }, 300_000);

  it('keys deleted in Entra are kept and marked removed at source', async () => {
    const tenantId = '0b0b0b0b-1111-4222-8333-444444444444';
    sim.seedTenant(tenantId, { keys: 20, devices: 10 });
    const { conn } = await connect('Shrinking', tenantId);
    await t.container.graph.runSync(conn.id);
    const gone = sim.tenant(tenantId).keys.splice(0, 3);
    const r = await t.container.graph.runSync(conn.id);
    expect(r).toMatchObject({ status: 'succeeded', removed: 3, keyReads: 0 });
    for (const k of gone) {
      const keys = (await t.app.inject({ method: 'GET', url: `${API}/keys?q=${k.id}`, headers: owner.headers })).json();
      expect(keys).toHaveLength(1);
    }
    const removed = await t.container.database.db
      .selectFrom('key_sources')
      .select('removed_at')
      .where('source_type', '=', 'entra')
      .where('source_ref', '=', tenantId)
      .where('removed_at', 'is not', null)
      .execute();
    expect(removed).toHaveLength(3);

    // keys list says so, per source (text and JSON).
    const listed = await t.cli(['keys', 'list', '--client', 'Shrinking', '--json']);
    expect(listed.code).toBe(0);
    const rows = JSON.parse(listed.stdout) as { keyId: string; sources: { type: string; removedAt: string | null; removedAtSource: boolean }[] }[];
    const goneIds = new Set(gone.map((k) => k.id.toLowerCase()));
    expect(rows).toHaveLength(20);
    for (const row of rows) {
      const entra = row.sources.filter((x) => x.type === 'entra');
      expect(entra).toHaveLength(1);
      expect(entra[0]!.removedAtSource).toBe(goneIds.has(row.keyId.toLowerCase()));
      expect(entra[0]!.removedAt !== null).toBe(goneIds.has(row.keyId.toLowerCase()));
    }
    const text = await t.cli(['keys', 'list', '--client', 'Shrinking']);
    expect(text.stdout.match(/entra \(removed at source \d{4}-\d{2}-\d{2}\)/g)).toHaveLength(3);
    // The API shows the same per source.
    const api = (await t.app.inject({ url: `${API}/keys?q=${gone[0]!.id}`, headers: owner.headers })).json();
    expect(api[0].sources).toEqual([expect.objectContaining({ type: 'entra', removedAt: expect.any(String) })]);
  });

  it('completes under throttling (every 5th request 429, Retry-After 1 s) and honours every Retry-After', async () => {
    const tenantId = '0c0c0c0c-1111-4222-8333-444444444444';
    sim.seedTenant(tenantId, { keys: 24, devices: 8, pageSize: 10 });
    sim.tenant(tenantId).throttleEvery = 5;
    sim.tenant(tenantId).retryAfter = { seconds: 1 };
    const { conn } = await connect('Throttled', tenantId);
    const r = await t.container.graph.runSync(conn.id);
    expect(r).toMatchObject({ status: 'succeeded', newKeys: 24, errors: 0 });
    expect(sim.throttledAt(tenantId).length).toBeGreaterThan(3);
    expect(sim.violations(tenantId)).toEqual([]);
  }, 120_000);

  it('50 tenants sync at once; a bad secret fails only its own tenant, with the sign-in error code', async () => {
    const ids = Array.from({ length: 50 }, (_, i) => `1d${String(i).padStart(6, '0')}-1111-4222-8333-444444444444`);
    for (const id of ids) sim.seedTenant(id, { keys: 10, devices: 4 });
    sim.tenant(ids[1]!).throttleEvery = 4;
    sim.tenant(ids[1]!).retryAfter = { httpDate: true, seconds: 1 };
    const conns: { id: string }[] = [];
    for (const [i, id] of ids.entries()) conns.push((await connect(`Tenant ${i}`, id, i === 0 ? 'wrong secret' : undefined)).conn);
    const runs = await Promise.all(conns.map((c) => t.container.graph.runSync(c.id)));
    expect(runs[0]).toMatchObject({ status: 'failed' });
    expect(runs[0]!.errorText).toMatch(/AADSTS7000215|invalid_client/);
    for (const r of runs.slice(1)) expect(r).toMatchObject({ status: 'succeeded', newKeys: 10 });
    expect(sim.violations(ids[1]!)).toEqual([]);
    const list = (await t.app.inject({ method: 'GET', url: `${API}/graph/connections`, headers: owner.headers })).json();
    expect(list.find((c: { id: string }) => c.id === conns[0]!.id)).toMatchObject({
      lastStatus: 'failed',
      lastError: expect.stringMatching(/invalid_client|AADSTS/),
    });
  }, 120_000);

  it('rotation: reveal → Intune rotate call → the next sync sees the new key → the old key is rotated', async () => {
    const tenantId = '0e0e0e0e-1111-4222-8333-444444444444';
    const tenant = sim.seedTenant(tenantId, { keys: 4, devices: 2 });
    const { conn } = await connect('Intune', tenantId);
    await t.container.graph.runSync(conn.id);
    const old = tenant.keys[0]!;
    if (!tenant.managedDevices.some((m) => m.azureADDeviceId.toLowerCase() === old.deviceId.toLowerCase())) {
      tenant.managedDevices.push({ id: '5e5e5e5e-1111-4222-8333-444444444444', azureADDeviceId: old.deviceId, deviceName: 'FAKE-INTUNE' });
    }
    const r = await t.app.inject({
      method: 'POST',
      url: `${API}/keys/${old.id}/reveal`,
      headers: owner.headers,
      payload: { reason: 'lost-pin', ticket: 'T-7' },
    });
    expect(r.statusCode).toBe(200);
    const job = await t.container.database.db
      .selectFrom('jobs')
      .selectAll()
      .where('kind', '=', 'intune-rotate')
      .where('protector_id', '=', old.id)
      .executeTakeFirstOrThrow();
    expect(job.state).toBe('pending');
    expect(await t.container.scheduler.runNow(`intune-rotate:${job.id}`)).toBe('rotation requested from Intune');
    expect(sim.requests(tenantId).some((q) => q.method === 'POST' && q.path.endsWith('/rotateBitLockerKeys') && q.status === 204)).toBe(true);
    expect(tenant.keys.length).toBe(5);
    await t.container.graph.runSync(conn.id);
    const keys = (await t.app.inject({ method: 'GET', url: `${API}/keys?q=${old.id}`, headers: owner.headers })).json();
    expect(keys[0].state).toBe('rotated');
  });
});

describe(`Entra portal key reads and connection tests on ${ENGINE}`, () => {
  it('imports "Read BitLocker key" events made in the portal, not the sync\'s own reads, once', async () => {
    const t = await createTestApp(LAB);
    const sim = new GraphSimulator();
    const urls = await sim.start();
    try {
      const tenantId = '0f0f0f0f-1111-4222-8333-444444444444';
      const tenant = sim.seedTenant(tenantId, { keys: 3, devices: 2 });
      const client = await t.container.clients.create(admin, { name: 'Portal' });
      const conn = await t.container.graph.createConnection(admin, {
        clientId: client.id,
        tenantId,
        appClientId: tenant.clientId,
        clientSecret: tenant.clientSecret,
        ...urls,
      });
      await t.container.graph.runSync(conn.id);
      sim.portalRead(tenantId, tenant.keys[1]!.id, { userPrincipalName: 'helpdesk@fake-tenant.example', ipAddress: '198.51.100.7' });
      await t.container.graph.runSync(conn.id);
      await t.container.graph.runSync(conn.id);
      const events = await t.container.audit.list(admin, { action: 'entra.key_read' });
      expect(events).toHaveLength(1);
      expect(events[0]).toMatchObject({
        actorName: 'helpdesk@fake-tenant.example (in Entra)',
        ip: '198.51.100.7',
        details: expect.objectContaining({ keyId: tenant.keys[1]!.id.toLowerCase() }),
      });
      expect(events[0]!.targetId).toEqual(expect.any(String));
    } finally {
      await sim.stop();
      await t.close();
    }
  });

  it("a failing portal-read import leaves the sync succeeded with warnings, every key stored, without Graph's text", async () => {
    const t = await createTestApp(LAB);
    const sim = new GraphSimulator();
    const urls = await sim.start();
    try {
      const tenantId = '0e0e0e0e-1111-4222-8333-444444444444';
      const tenant = sim.seedTenant(tenantId, { keys: 5, devices: 2 });
      const client = await t.container.clients.create(admin, { name: 'Audit broken' });
      const conn = await t.container.graph.createConnection(admin, {
        clientId: client.id,
        tenantId,
        appClientId: tenant.clientId,
        clientSecret: tenant.clientSecret,
        ...urls,
      });
      const remoteText = 'internal detail from the remote side';
      for (const [status, code] of [
        [500, 'InternalServerError'],
        [400, 'BadRequest'],
        [404, 'ResourceNotFound'],
      ] as const) {
        tenant.auditFailure = { status, code, message: remoteText };
        const run = await t.container.graph.runSync(conn.id);
        expect(run.status).toBe('succeeded');
        expect(run.errorText).toBeNull();
        expect(run.warnings).toMatch(
          new RegExp(`Portal key reads were not imported: Microsoft Graph answered HTTP ${status} to the directory audit log.*Every key was synced`),
        );
        expect(run.warnings).not.toContain(remoteText);
        expect(run.warnings).not.toContain(code);
      }
      expect((await t.container.keys.list(admin, { clientId: client.id })).length).toBe(5);
      const [connection] = await t.container.graph.listConnections(admin);
      expect(connection).toMatchObject({ lastStatus: 'succeeded with warnings', lastError: expect.stringMatching(/^Portal key reads were not imported/) });
      const [audited] = await t.container.audit.list(admin, { action: 'graph.sync', limit: 1 });
      expect(audited).toMatchObject({
        outcome: 'success',
        details: expect.objectContaining({ warnings: expect.stringMatching(/Portal key reads/), portalKeyReads: 'failed' }),
      });
      expect(JSON.stringify(audited)).not.toContain(remoteText);

      // The API and the CLI show the warning.
      const owner = await t.signIn((await t.addUser('owner', 'all', 'owner@example.test')).email);
      const runs = (await t.app.inject({ url: `${API}/graph/connections/${conn.id}/runs`, headers: owner.headers })).json();
      expect(runs[0]).toMatchObject({ status: 'succeeded', warnings: expect.stringMatching(/HTTP 404/) });
      const cli = await t.cli(['graph', 'sync', '--client', 'Audit broken']);
      expect(cli.code).toBe(0);
      expect(cli.stdout).toMatch(/Audit broken: succeeded with warnings — Portal key reads were not imported/);
      expect(cli.stdout).not.toContain(remoteText);

      // Fixed at the source: the next sync has no warning, and the connection says so.
      delete tenant.auditFailure;
      const clean = await t.container.graph.runSync(conn.id);
      expect(clean).toMatchObject({ status: 'succeeded', warnings: null });
      expect((await t.container.graph.listConnections(admin))[0]).toMatchObject({ lastStatus: 'succeeded', lastError: null });
    } finally {
      await sim.stop();
      await t.close();
    }
  });

  it('"test connection" says which permission is missing, by Graph\'s error code', async () => {
    const t = await createTestApp(LAB);
    const sim = new GraphSimulator();
    const urls = await sim.start();
    try {
      const tenantId = '0d0d0d0d-1111-4222-8333-444444444444';
      const tenant = sim.seedTenant(tenantId, { keys: 2, devices: 1 });
      tenant.permissions.delete('BitlockerKey.Read.All');
      const client = await t.container.clients.create(admin, { name: 'Basic only' });
      const conn = await t.container.graph.createConnection(admin, {
        clientId: client.id,
        tenantId,
        appClientId: tenant.clientId,
        clientSecret: tenant.clientSecret,
        ...urls,
      });
      const r = await t.container.graph.testConnection(admin, conn.id);
      expect(r.ok).toBe(false);
      // keywarden graph test reports the problem with exit 1 (text and JSON).
      const cli = await t.cli(['graph', 'test', '--client', 'Basic only']);
      expect(cli.code).toBe(1);
      expect(cli.stdout).toMatch(/FAIL {2}BitlockerKey\.Read\.All: read a recovery password/);
      const json = await t.cli(['graph', 'test', '--client', 'Basic only', '--json']);
      expect(json.code).toBe(1);
      expect(JSON.parse(json.stdout).ok).toBe(false);
      const failed = r.checks.filter((c) => !c.ok);
      expect(failed.map((c) => c.check)).toEqual(['BitlockerKey.Read.All: read a recovery password']);
      // Graph's error code, in Keywarden's words (Graph's own message is never repeated).
      expect(failed[0]!.detail).toMatch(/^403 Authorization_RequestDenied: Microsoft Graph denied access: the app registration lacks a permission/);
      expect(failed[0]!.detail).not.toMatch(/Insufficient privileges/);
      // A sync without the permission fails with the same text, and reads nothing it may not.
      const run = await t.container.graph.runSync(conn.id);
      expect(run.status).toBe('failed');
      expect(run.errorText).toMatch(/Authorization_RequestDenied/);
    } finally {
      await sim.stop();
      await t.close();
    }
  });
});
