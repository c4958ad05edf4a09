/**
 * GET /api/v1/agent/health: devices whose agent holds a live credential, with the version they
 * run, their last check-in, "stale" from their client's policy, "outdated" against the script this
 * server serves, and the jobs they failed or let expire in the last 7 days. Client-limited
 * principals see only their clients; device:read is required; no secret is ever in the answer.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from './helpers/app.js';
import { ENGINE } from './helpers/engine.js';
import { owner } from './helpers/vault.js';
import { expectNoLeak } from './helpers/http.js';
import type { Actor } from '../src/modules/authz/authz.js';
import type { AgentHealth } from '../src/modules/agent/agent-health.service.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CURRENT = /^\$AgentVersion\s*=\s*'([^']+)'/m.exec(fs.readFileSync(path.join(REPO, 'agent/Keywarden-Agent.ps1'), 'utf8'))![1]!;
const DAY = 86_400_000;
const daysAgo = (d: number) => new Date(Date.now() - d * DAY).toISOString();

/** The API's answer: the service's own view type. */
type Health = AgentHealth;

describe(`agent health on ${ENGINE}`, () => {
  let t: TestApp;
  const secrets: string[] = [];
  const clients = { own: { id: '', name: `Contoso ${randomBytes(3).toString('hex')}` }, other: { id: '', name: `Fabrikam ${randomBytes(3).toString('hex')}` } };
  /** name -> device id */
  const dev: Record<string, string> = {};
  const jobs: Record<string, string> = {};
  let ownerHeaders: Record<string, string>;

  async function enroll(clientId: string, name: string): Promise<{ id: string; credential: string }> {
    const tok = await t.container.agent.createEnrollmentToken(owner, { clientId });
    secrets.push(tok.token);
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/v1/agent/enroll',
      payload: { enrollmentToken: tok.token, agentVersion: CURRENT, device: { hostname: name, serialNumber: `SN-${name}`, smbiosUuid: randomUUID() } },
    });
    expect(res.statusCode, res.body).toBe(200);
    const body = res.json() as { deviceId: string; credential: string; fingerprintSalt: string };
    secrets.push(body.credential, body.fingerprintSalt);
    dev[name] = body.deviceId;
    return { id: body.deviceId, credential: body.credential };
  }

  async function checkin(credential: string, name: string, agentVersion?: string) {
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/v1/agent/checkin',
      headers: { authorization: `Bearer ${credential}` },
      payload: { seq: 1, sentAt: new Date().toISOString(), ...(agentVersion ? { agentVersion } : {}), device: { hostname: name }, volumes: [] },
    });
    expect(res.statusCode, res.body).toBe(200);
  }

  async function job(
    name: string,
    device: string,
    clientId: string,
    state: string,
    finishedDaysAgo: number | null,
    kind = 'rotate',
    detail: string | null = null,
  ) {
    const id = randomUUID();
    await t.container.database.db
      .insertInto('jobs')
      .values({
        id,
        client_id: clientId,
        device_id: dev[device]!,
        kind,
        mount_point: 'C:',
        protector_id: null,
        recovery_key_id: null,
        state,
        attempts: 3,
        max_attempts: 3,
        new_key_id: null,
        detail,
        created_by: 'test',
        created_at: daysAgo((finishedDaysAgo ?? 0) + 1),
        expires_at: daysAgo((finishedDaysAgo ?? 0) - 6),
        sent_at: null,
        finished_at: finishedDaysAgo === null ? null : daysAgo(finishedDaysAgo),
      })
      .execute();
    jobs[name] = id;
  }

  const setCheckin = (name: string, at: string) =>
    t.container.database.db.updateTable('devices').set({ last_checkin_at: at }).where('id', '=', dev[name]!).execute();
  const get = async (url: string, headers: Record<string, string>) => {
    const res = await t.app.inject({ method: 'GET', url, headers });
    expectNoLeak(res, secrets, url);
    for (const s of ['kwd_', 'kwe_', 'kw_', 'credential', 'fingerprint']) expect(res.body.includes(s), `${url} carries ${s}`).toBe(false);
    return res;
  };

  beforeAll(async () => {
    t = await createTestApp();
    clients.own.id = (await t.container.clients.create(owner, { name: clients.own.name })).id;
    clients.other.id = (await t.container.clients.create(owner, { name: clients.other.name })).id;
    // Own: its policy calls a device stale after 10 days.
    await t.container.compliance.updatePolicy(owner, clients.own.id, { set: { staleAfterDays: 10 } });

    const a = await enroll(clients.own.id, 'OWN-CURRENT');
    await checkin(a.credential, 'OWN-CURRENT', CURRENT);
    const b = await enroll(clients.own.id, 'OWN-OLD');
    await checkin(b.credential, 'OWN-OLD', '0.9.0');
    await enroll(clients.own.id, 'OWN-NEVER'); // enrolled, never checked in
    const d = await enroll(clients.own.id, 'OWN-AWAY');
    await checkin(d.credential, 'OWN-AWAY', CURRENT);
    await setCheckin('OWN-AWAY', daysAgo(15)); // more than Own's 10 days
    const e = await enroll(clients.own.id, 'OWN-REVOKED');
    await checkin(e.credential, 'OWN-REVOKED', CURRENT);
    await t.container.agent.revokeDevice(owner, dev['OWN-REVOKED']!);

    const f = await enroll(clients.other.id, 'OTHER-AWAY');
    await checkin(f.credential, 'OTHER-AWAY', CURRENT);
    await setCheckin('OTHER-AWAY', daysAgo(15)); // within the default 30 days
    const g = await enroll(clients.other.id, 'OTHER-NOVERSION');
    await checkin(g.credential, 'OTHER-NOVERSION');

    await job('old-failed', 'OWN-OLD', clients.own.id, 'failed', 1, 'rotate', 'no success after 3 attempts');
    await job('old-expired', 'OWN-OLD', clients.own.id, 'expired', 2, 'backup', 'not completed in time');
    await job('old-too-old', 'OWN-OLD', clients.own.id, 'failed', 9);
    await job('old-ok', 'OWN-OLD', clients.own.id, 'succeeded', 0.5);
    await job('old-pending', 'OWN-OLD', clients.own.id, 'pending', null);
    await job('old-intune', 'OWN-OLD', clients.own.id, 'failed', 0.5, 'intune-rotate', 'Graph said no');
    await job('revoked-failed', 'OWN-REVOKED', clients.own.id, 'failed', 0.2);
    await job('other-failed', 'OTHER-NOVERSION', clients.other.id, 'failed', 0.1, 'backup-to-ad', 'HRESULT 0x80072020');

    const u = await t.addUser('owner', 'all');
    ownerHeaders = (await t.signIn(u.email)).headers;
  });
  afterAll(async () => {
    await t?.close();
  });

  it('lists every live agent with its version, check-in, stale and outdated flags and failing jobs', async () => {
    const res = await get('/api/v1/agent/health', ownerHeaders);
    expect(res.statusCode, res.body).toBe(200);
    const h = res.json() as Health;
    expect(h.current).toBe(CURRENT);
    const by = Object.fromEntries(h.devices.map((d) => [d.name, d]));
    expect(Object.keys(by).sort()).toEqual(['OTHER-AWAY', 'OTHER-NOVERSION', 'OWN-AWAY', 'OWN-CURRENT', 'OWN-NEVER', 'OWN-OLD']);
    expect(by['OWN-CURRENT']).toMatchObject({
      id: dev['OWN-CURRENT'],
      client: clients.own,
      agentVersion: CURRENT,
      stale: false,
      outdated: false,
      failingJobs: 0,
    });
    expect(by['OWN-CURRENT']!.lastCheckinAt).not.toBeNull();
    expect(by['OWN-OLD']).toMatchObject({ agentVersion: '0.9.0', stale: false, outdated: true, failingJobs: 2 });
    expect(by['OWN-NEVER']).toMatchObject({ agentVersion: null, lastCheckinAt: null, stale: false, outdated: true, failingJobs: 0 });
    // Stale follows each client's policy: 15 days away is stale for Own (10 days), not for Other (30).
    expect(by['OWN-AWAY']).toMatchObject({ stale: true, outdated: false });
    expect(by['OTHER-AWAY']).toMatchObject({ client: clients.other, stale: false, outdated: false });
    expect(by['OTHER-NOVERSION']).toMatchObject({ agentVersion: null, outdated: true, failingJobs: 1 });

    const versions = Object.fromEntries(h.versions.map((v) => [String(v.version), v.devices]));
    expect(versions).toEqual({ [CURRENT]: 3, '0.9.0': 1, null: 2 });
    expect(h.versions.map((v) => v.version)).toEqual([CURRENT, '0.9.0', null]);

    // Failed or expired in the last 7 days, agent jobs only, newest first; not the revoked agent's.
    expect(h.failingJobs.map((j) => j.id)).toEqual([jobs['other-failed'], jobs['old-failed'], jobs['old-expired']]);
    expect(h.failingJobs[0]).toEqual({
      id: jobs['other-failed'],
      kind: 'backup-to-ad',
      state: 'failed',
      device: { id: dev['OTHER-NOVERSION'], name: 'OTHER-NOVERSION' },
      detail: 'HRESULT 0x80072020',
      finishedAt: expect.any(String),
    });
    expect(h.failingJobs[2]).toMatchObject({ kind: 'backup', state: 'expired', detail: 'not completed in time' });
  });

  it('puts devices with problems first, and limits both lists', async () => {
    const all = (await get('/api/v1/agent/health', ownerHeaders)).json() as Health;
    // Failing jobs first, then stale, then outdated; healthy agents last.
    expect(all.devices.slice(0, 2).map((d) => d.name)).toEqual(['OWN-OLD', 'OTHER-NOVERSION']);
    expect(all.devices.at(-1)!.name).toBe('OTHER-AWAY');
    expect(all.devices.findIndex((d) => d.name === 'OWN-AWAY')).toBeLessThan(all.devices.findIndex((d) => d.name === 'OWN-NEVER'));
    const two = (await get('/api/v1/agent/health?limit=2', ownerHeaders)).json() as Health;
    expect(two.devices.map((d) => d.name)).toEqual(['OWN-OLD', 'OTHER-NOVERSION']);
    expect(two.failingJobs.map((j) => j.id)).toEqual([jobs['other-failed'], jobs['old-failed']]);
    // The counts per version still cover every device.
    expect(two.versions.reduce((n, v) => n + v.devices, 0)).toBe(6);
    for (const q of ['limit=0', 'limit=5001', 'limit=many', 'clientId=not-an-id', 'client=x']) {
      const r = await get(`/api/v1/agent/health?${q}`, ownerHeaders);
      expect(r.statusCode, q).toBe(400);
    }
  });

  it('filters by client; a client outside the principal, or none, is not found', async () => {
    const own = (await get(`/api/v1/agent/health?clientId=${clients.own.id}`, ownerHeaders)).json() as Health;
    expect(new Set(own.devices.map((d) => d.client.id))).toEqual(new Set([clients.own.id]));
    expect(own.failingJobs.map((j) => j.id)).toEqual([jobs['old-failed'], jobs['old-expired']]);
    expect(own.versions.reduce((n, v) => n + v.devices, 0)).toBe(4);

    const tech = await t.addUser('technician', [clients.own.id]);
    const s = (await t.signIn(tech.email)).headers;
    const mine = await get('/api/v1/agent/health', s);
    expect(mine.statusCode).toBe(200);
    const h = mine.json() as Health;
    expect(h.devices.length).toBe(4);
    expect(h.devices.every((d) => d.client.id === clients.own.id)).toBe(true);
    expect(h.failingJobs.every((j) => j.device.id === dev['OWN-OLD'])).toBe(true);
    expect(mine.body).not.toContain(clients.other.name);
    expect(mine.body).not.toContain('OTHER-');
    expect(h.versions.reduce((n, v) => n + v.devices, 0)).toBe(4);

    const other = await get(`/api/v1/agent/health?clientId=${clients.other.id}`, s);
    const missing = await get(`/api/v1/agent/health?clientId=${randomUUID()}`, s);
    expect(other.statusCode).toBe(404);
    expect(missing.statusCode).toBe(404);
    expect(other.json().message.replace(clients.other.id, '<id>')).toBe(missing.json().message.replace(/[0-9a-f-]{36}/, '<id>'));
    expect(other.body).not.toContain(clients.other.name);
    // A global owner asking for a client that does not exist gets the same answer.
    expect((await get(`/api/v1/agent/health?clientId=${randomUUID()}`, ownerHeaders)).statusCode).toBe(404);
  });

  it('needs device:read: a helpdesk token is refused, a client-viewer token of the client is served, no credentials is 401', async () => {
    const creator = await t.addUser('owner', 'all');
    const person: Actor = {
      type: 'user',
      id: creator.id,
      name: creator.email,
      role: 'owner',
      clients: 'all',
      session: { id: 'health-test', mfaAt: null, mfaEnrolled: false, mfaEnrolmentRequired: false },
    };
    const helpdesk = await t.container.identity.createToken(person, { name: 'helpdesk', role: 'helpdesk', clients: [clients.own.id] });
    const viewer = await t.container.identity.createToken(person, { name: 'viewer', role: 'client-viewer', clients: [clients.other.id] });
    secrets.push(helpdesk.token, viewer.token);

    const denied = await get('/api/v1/agent/health', { authorization: `Bearer ${helpdesk.token}` });
    expect(denied.statusCode).toBe(403);
    const deniedFiltered = await get(`/api/v1/agent/health?clientId=${clients.own.id}`, { authorization: `Bearer ${helpdesk.token}` });
    expect(deniedFiltered.statusCode).toBe(403);

    const seen = await get('/api/v1/agent/health', { authorization: `Bearer ${viewer.token}` });
    expect(seen.statusCode).toBe(200);
    expect((seen.json() as Health).devices.map((d) => d.name).sort()).toEqual(['OTHER-AWAY', 'OTHER-NOVERSION']);

    expect((await get('/api/v1/agent/health', {})).statusCode).toBe(401);
    // The device credential of an agent opens the agent routes only.
    const agent = await enroll(clients.own.id, 'OWN-PROBE');
    expect((await get('/api/v1/agent/health', { authorization: `Bearer ${agent.credential}` })).statusCode).toBe(401);
  });

  it('is documented in the OpenAPI document with its parameters', async () => {
    const doc = (await t.app.inject({ method: 'GET', url: '/api/openapi.json' })).json() as {
      paths: Record<string, Record<string, { parameters?: { name: string; in: string }[]; responses?: Record<string, unknown> }>>;
    };
    const op = doc.paths['/api/v1/agent/health']?.get;
    expect(
      op?.parameters
        ?.filter((x) => x.in === 'query')
        .map((x) => x.name)
        .sort(),
    ).toEqual(['clientId', 'limit']);
    expect(Object.keys(op?.responses ?? {}).sort()).toEqual(['200', '400', '401', '403', '404']);
  });

  it('leaves out retired devices and archived clients', async () => {
    const { id } = await enroll(clients.own.id, 'OWN-RETIRED');
    await t.container.database.db.updateTable('devices').set({ retired_at: new Date().toISOString() }).where('id', '=', id).execute();
    const gone = (await t.container.clients.create(owner, { name: `Archived ${randomBytes(3).toString('hex')}` })).id;
    const g = await enroll(gone, 'GONE-AGENT');
    await checkin(g.credential, 'GONE-AGENT', CURRENT);
    await job('gone-failed', 'GONE-AGENT', gone, 'failed', 0.1);
    expect(((await get('/api/v1/agent/health', ownerHeaders)).json() as Health).devices.map((d) => d.name)).toContain('GONE-AGENT');
    // Archived directly, so only the health view's own rule can leave it out (offboarding would also revoke its agents).
    await t.container.database.db.updateTable('clients').set({ archived_at: new Date().toISOString() }).where('id', '=', gone).execute();
    const h = (await get('/api/v1/agent/health', ownerHeaders)).json() as Health;
    expect(h.devices.map((d) => d.name)).not.toContain('OWN-RETIRED');
    expect(h.devices.map((d) => d.name)).not.toContain('GONE-AGENT');
    expect(h.failingJobs.map((j) => j.id)).not.toContain(jobs['gone-failed']);
    expect(h.devices.map((d) => d.name)).toContain('OWN-CURRENT');
  });
});
