import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createTestApp, type Session, type TestApp } from './helpers/app.js';
import { ENGINE } from './helpers/engine.js';
import { SimMachine, TestAgent, injectTransport, sameGuid } from './agent/test-agent.js';

// Count decryptions of recovery passwords: a routine check-in must cause none.
const decrypts = vi.hoisted(() => ({ count: 0 }));
vi.mock('../src/crypto/aead.js', async (importOriginal) => {
  const orig = await importOriginal<typeof import('../src/crypto/aead.js')>();
  return {
    ...orig,
    openText: (key: Buffer, sealed: string, aad: string) => {
      if (aad.startsWith('keywarden/recovery-password/')) decrypts.count++;
      return orig.openText(key, sealed, aad);
    },
  };
});

const API = '/api/v1';

describe(`the agent loop on ${ENGINE}`, () => {
  let t: TestApp;
  let owner: Session;
  let clientId: string;
  let token: string;
  let agent: TestAgent;
  let machine: SimMachine;
  const requests: string[] = [];

  /** Every volume keeps at least one recovery password whose exact password the vault holds. */
  async function assertVolumesEscrowed() {
    for (const v of machine.volumes) {
      const escrowed = [];
      for (const p of v.protectors.filter((x) => x.type === 'RecoveryPassword')) {
        const keys = (await t.app.inject({ method: 'GET', url: `${API}/keys?q=${p.id.slice(1, 9)}`, headers: owner.headers })).json();
        if (keys.some((k: { keyId: string; state: string }) => sameGuid(k.keyId, p.id) && ['active', 'disclosed', 'conflict'].includes(k.state)))
          escrowed.push(p.id);
      }
      expect(escrowed.length, `${v.mountPoint} has an escrowed recovery password`).toBeGreaterThan(0);
    }
  }

  const reveal = (keyId: string) =>
    t.app.inject({
      method: 'POST',
      url: `${API}/keys/${keyId.replace(/[{}]/g, '')}/reveal`,
      headers: owner.headers,
      payload: { reason: 'lost-pin', ticket: 'T-1' },
    });

  beforeAll(async () => {
    t = await createTestApp({ KEYWARDEN_REVEAL_LIMIT_PER_HOUR: '1000' });
    const u = await t.addUser('owner', 'all', 'owner@example.test');
    owner = await t.signIn(u.email);
    clientId = (await t.app.inject({ method: 'POST', url: `${API}/clients`, headers: owner.headers, payload: { name: 'Contoso' } })).json().id;
    const tok = await t.app.inject({
      method: 'POST',
      url: `${API}/agent/enrollment-tokens`,
      headers: owner.headers,
      payload: { clientId, expiresInDays: 7, maxUses: 10 },
    });
    expect(tok.statusCode).toBe(201);
    token = tok.json().token;
    expect(token).toMatch(/^kwe_/);
    machine = new SimMachine('FAKE-AGENT-01');
    machine.volumes.push({
      mountPoint: 'D:',
      os: false,
      status: 'FullyEncrypted',
      protection: 'On',
      locked: false,
      method: 'XtsAes256',
      percentage: 100,
      protectors: [
        { id: '{11111111-2222-4333-8444-555555555555}', type: 'RecoveryPassword', password: '471207-278498-422125-177177-561902-537405-468006-693451' },
        { id: '{AAAAAAAA-2222-4333-8444-555555555555}', type: 'ExternalKey' },
      ],
    });
    const base = injectTransport(t.app);
    agent = new TestAgent(
      async (req) => {
        requests.push(JSON.stringify(req.body));
        return base(req);
      },
      machine,
      'ps51',
    );
  });
  afterAll(() => t.close());

  it('enrolls with a token and escrows every recovery password on its first run', async () => {
    const e = await agent.enroll(token);
    expect(e.status).toBe(200);
    expect(e.json.credential).toMatch(/^kwd_/);
    const run = await agent.run();
    expect(run.status).toBe(200);
    expect(agent.log).toEqual(['uploaded 2: 200']);
    await assertVolumesEscrowed();
    const device = (await t.app.inject({ method: 'GET', url: `${API}/devices/${agent.deviceId}`, headers: owner.headers })).json();
    expect(device.name).toBe('FAKE-AGENT-01');
    expect(device.volumes.map((v: { mountPoint: string; type: string }) => `${v.mountPoint}:${v.type}`).sort()).toEqual(['C::os', 'D::fixed']);
    expect(device.recoveryKeys).toHaveLength(2);
    const findings = (await t.app.inject({ method: 'GET', url: `${API}/findings?deviceId=${agent.deviceId}&open=true`, headers: owner.headers })).json();
    expect(findings).toEqual([]);
  });

  it('a routine check-in with unchanged keys carries no password and decrypts nothing', async () => {
    decrypts.count = 0;
    requests.length = 0;
    const run = await agent.run();
    expect(run.checkin.requestPasswords).toEqual([]);
    expect(run.checkin.jobs).toEqual([]);
    expect(decrypts.count).toBe(0);
    expect(requests).toHaveLength(1);
    for (const v of machine.volumes) for (const p of v.protectors) if (p.password) expect(requests[0]).not.toContain(p.password);
    expect(requests[0]).not.toMatch(/\d{6}-\d{6}-\d{6}/);
  });

  it('a changed key is requested and stored; the key it replaced is superseded, not deleted', async () => {
    const oldId = machine.recoveryPasswords('D:')[0]!.id;
    machine.addRecoveryPassword('D:');
    machine.removeProtector('D:', oldId);
    const run = await agent.run();
    expect(run.status).toBe(200);
    expect(agent.log.at(-1)).toBe('uploaded 1: 200');
    const keys = (await t.app.inject({ method: 'GET', url: `${API}/keys?clientId=${clientId}`, headers: owner.headers })).json();
    expect(keys.find((k: { keyId: string }) => sameGuid(k.keyId, oldId)).state).toBe('superseded');
    await assertVolumesEscrowed();
  });

  it('a different password under a known protector id is requested and flagged as a mismatch', async () => {
    const p = machine.recoveryPasswords('D:')[0]!;
    const original = p.password!;
    p.password = '496298-461032-321464-595518-463221-173943-033616-139579';
    const first = await agent.post('/api/v1/agent/checkin', agent.checkinBody());
    expect(first.json.requestPasswords).toEqual([{ mountPoint: 'D:', protectorId: p.id.toUpperCase() }]);
    const findings = (await t.app.inject({ method: 'GET', url: `${API}/findings?deviceId=${agent.deviceId}&open=true`, headers: owner.headers })).json();
    expect(findings.map((f: { kind: string }) => f.kind)).toEqual(['mismatch']);
    const up = await agent.upload([{ mountPoint: 'D:', protector: p }]);
    expect(up.json.stored[0].status).toBe('conflict');
    p.password = original;
  });

  it('revealing a key queues a rotation; a rotation interrupted mid-way never leaves the volume without an escrowed key', async () => {
    const old = machine.recoveryPasswords('C:')[0]!;
    const r = await reveal(old.id);
    expect(r.statusCode).toBe(200);
    expect(r.json().key.state).toBe('disclosed');
    const jobs = (await t.app.inject({ method: 'GET', url: `${API}/devices/${agent.deviceId}/jobs`, headers: owner.headers })).json();
    expect(jobs.map((j: { kind: string; state: string }) => `${j.kind}:${j.state}`)).toEqual(['rotate:pending']);

    // The agent is killed right after adding the new protector, before uploading it.
    agent.failPoint = 'after-add-protector';
    await expect(agent.run()).rejects.toThrow('killed');
    expect(machine.recoveryPasswords('C:')).toHaveLength(2);
    await assertVolumesEscrowed();

    // Killed again after the upload but before removing the old protector.
    agent.failPoint = 'before-remove-protector';
    await expect(agent.run()).rejects.toThrow('killed');
    await assertVolumesEscrowed();

    // A clean run finishes the job: the new key escrowed, the old protector removed, the old key rotated.
    agent.failPoint = null;
    const done = await agent.run();
    expect(done.status).toBe(200);
    expect(machine.recoveryPasswords('C:')).toHaveLength(1);
    expect(sameGuid(machine.recoveryPasswords('C:')[0]!.id, old.id)).toBe(false);
    await assertVolumesEscrowed();
    const keys = (await t.app.inject({ method: 'GET', url: `${API}/keys?clientId=${clientId}`, headers: owner.headers })).json();
    expect(keys.find((k: { keyId: string }) => sameGuid(k.keyId, old.id)).state).toBe('rotated');
    const after = (await t.app.inject({ method: 'GET', url: `${API}/devices/${agent.deviceId}/jobs`, headers: owner.headers })).json();
    expect(after[0]).toMatchObject({ kind: 'rotate', state: 'succeeded' });
    // And the whole story is in the audit log.
    const actions = (await t.app.inject({ method: 'GET', url: `${API}/audit?limit=200`, headers: owner.headers }))
      .json()
      .map((e: { action: string }) => e.action);
    for (const a of ['agent.enroll', 'agent.upload', 'key.reveal', 'job.create', 'job.update', 'key.rotated', 'key.superseded']) expect(actions).toContain(a);
  });

  it('event 24652 (a recovery password used at boot) marks the key disclosed and queues its rotation', async () => {
    const p = machine.recoveryPasswords('D:')[0]!;
    machine.events.push({ id: 24652, time: new Date().toISOString(), protectorId: p.id });
    const first = await agent.post('/api/v1/agent/checkin', agent.checkinBody());
    expect(first.status).toBe(200);
    expect(first.json.jobs).toEqual([expect.objectContaining({ kind: 'rotate', mountPoint: 'D:' })]);
  });

  it('refuses replayed, stale, malformed, oversized and foreign payloads with clear errors', async () => {
    const replay = await agent.post(agent.lastBody!.url, agent.lastBody!.body);
    expect(replay.status).toBe(409);
    expect(replay.json.message).toMatch(/already used/);
    const stale = agent.checkinBody();
    stale.sentAt = new Date(Date.now() - 3_600_000).toISOString();
    expect((await agent.post('/api/v1/agent/checkin', stale)).status).toBe(400);
    const bad = await agent.post('/api/v1/agent/checkin', { ...agent.checkinBody(), surprise: 1 });
    expect(bad.status).toBe(400);
    expect(bad.json.fields[0].field).toBe('surprise');
    const huge = agent.checkinBody();
    (huge as any).manageBde = { status: 'x'.repeat(1_100_000), protectors: '' };
    expect((await agent.post('/api/v1/agent/checkin', huge)).status).toBe(413);
    const foreign = await agent.upload([{ mountPoint: 'C:', protector: machine.recoveryPasswords('C:')[0]! }], '00000000-0000-4000-8000-000000000000');
    expect(foreign.status).toBe(404);
    // An agent credential is not an API token and opens nothing else.
    const elsewhere = await t.app.inject({ method: 'GET', url: `${API}/keys`, headers: { authorization: `Bearer ${agent.credential}` } });
    expect(elsewhere.statusCode).toBe(401);
    const userToken = (
      await t.app.inject({ method: 'POST', url: `${API}/tokens`, headers: owner.headers, payload: { name: 'x', role: 'admin', clients: 'all' } })
    ).json().token;
    expect(
      (await t.app.inject({ method: 'POST', url: `${API}/agent/checkin`, headers: { authorization: `Bearer ${userToken}` }, payload: agent.checkinBody() }))
        .statusCode,
    ).toBe(401);
  });

  it('re-enrolling the same machine finds its device; a revoked credential is refused', async () => {
    const firstId = agent.deviceId;
    const oldCredential = agent.credential;
    expect((await agent.enroll(token)).status).toBe(200);
    expect(agent.deviceId).toBe(firstId);
    const stale = await t.app.inject({
      method: 'POST',
      url: `${API}/agent/checkin`,
      headers: { authorization: `Bearer ${oldCredential}` },
      payload: agent.checkinBody(),
    });
    expect(stale.statusCode).toBe(401);
    expect((await agent.run()).status).toBe(200);
    const rev = await t.app.inject({ method: 'POST', url: `${API}/devices/${agent.deviceId}/revoke-agent`, headers: owner.headers });
    expect(rev.json()).toEqual({ revoked: 1 });
    const refused = await agent.run();
    expect(refused.status).toBe(401);
    expect(refused.checkin.message).toMatch(/Enroll the agent again/);
  });

  it('refuses an unknown, revoked, expired or used-up enrollment token with one message', async () => {
    const other = new TestAgent(injectTransport(t.app), new SimMachine('FAKE-AGENT-02'));
    expect((await other.enroll('kwe_nonsense')).status).toBe(401);
    const one = (
      await t.app.inject({ method: 'POST', url: `${API}/agent/enrollment-tokens`, headers: owner.headers, payload: { clientId, maxUses: 1 } })
    ).json();
    expect((await other.enroll(one.token)).status).toBe(200);
    const used = await new TestAgent(injectTransport(t.app), new SimMachine('FAKE-AGENT-03')).enroll(one.token);
    expect(used.status).toBe(401);
    const nonsense = await new TestAgent(injectTransport(t.app), new SimMachine('FAKE-AGENT-04')).enroll('kwe_nonsense');
    expect(used.json.message).toBe(nonsense.json.message);
  });
});

describe(`agents of an archived client on ${ENGINE}`, () => {
  it('can neither enroll nor check in once the client is archived', async () => {
    const t = await createTestApp();
    try {
      const owner = await t.signIn((await t.addUser('owner', 'all', 'owner@example.test')).email);
      const clientId = (await t.app.inject({ method: 'POST', url: `${API}/clients`, headers: owner.headers, payload: { name: 'Leaving' } })).json().id;
      const token = (await t.app.inject({ method: 'POST', url: `${API}/agent/enrollment-tokens`, headers: owner.headers, payload: { clientId } })).json().token;
      const agent = new TestAgent(injectTransport(t.app), new SimMachine('FAKE-LEAVING-1'));
      expect((await agent.enroll(token)).status).toBe(200);
      expect((await agent.run()).status).toBe(200);
      expect((await t.app.inject({ method: 'DELETE', url: `${API}/clients/${clientId}`, headers: owner.headers })).statusCode).toBe(200);
      expect((await agent.run()).status).toBe(401);
      expect((await new TestAgent(injectTransport(t.app), new SimMachine('FAKE-LEAVING-2')).enroll(token)).status).toBe(401);
    } finally {
      await t.close();
    }
  });
});
