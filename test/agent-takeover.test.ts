import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type Session, type TestApp } from './helpers/app.js';
import { ENGINE } from './helpers/engine.js';
import { STATE_FILE, SimMachine, TestAgent, injectTransport, newRecoveryPassword, sameGuid } from './agent/test-agent.js';

const API = '/api/v1';
const bare = (id: string) => id.replace(/[{}]/g, '');

/**
 * An enrollment-token holder or an enrolled device must not take over what is not its own: another
 * device's identity (Entra device ID, serial + SMBIOS UUID), another device's keys, or the helpdesk
 * path to another client's key.
 */
describe(`agents cannot claim what is not theirs on ${ENGINE}`, () => {
  let t: TestApp;
  let owner: Session;
  let helpdesk: Session;
  let contoso: string;
  let fabrikam: string;
  let contosoToken: string;
  let fabrikamToken: string;
  let victim: TestAgent;

  const get = async (url: string, s: Session = owner) => (await t.app.inject({ method: 'GET', url: `${API}${url}`, headers: s.headers })).json();
  const keysOf = async (clientId: string) =>
    (await get(`/keys?clientId=${clientId}`)) as { id: string; keyId: string; state: string; device: { id: string } | null }[];
  const token = async (clientId: string) =>
    (await t.app.inject({ method: 'POST', url: `${API}/agent/enrollment-tokens`, headers: owner.headers, payload: { clientId } })).json().token as string;
  const agentFor = (m: SimMachine) => new TestAgent(injectTransport(t.app), m);

  beforeAll(async () => {
    t = await createTestApp({ KEYWARDEN_REVEAL_LIMIT_PER_HOUR: '1000' });
    owner = await t.signIn((await t.addUser('owner', 'all', 'owner@example.test')).email);
    helpdesk = await t.signIn((await t.addUser('helpdesk', 'all', 'helpdesk@example.test')).email);
    contoso = (await t.app.inject({ method: 'POST', url: `${API}/clients`, headers: owner.headers, payload: { name: 'Contoso' } })).json().id;
    fabrikam = (await t.app.inject({ method: 'POST', url: `${API}/clients`, headers: owner.headers, payload: { name: 'Fabrikam' } })).json().id;
    contosoToken = await token(contoso);
    fabrikamToken = await token(fabrikam);
    const m = new SimMachine('FAKE-VICTIM-01');
    m.entraDeviceId = randomUUID();
    victim = agentFor(m);
    expect((await victim.enroll(contosoToken)).json.pendingApproval).toBe(false);
    expect((await victim.run()).exitCode).toBe(0);
  });
  afterAll(() => t.close());

  it("enrolling with another device's Entra device ID waits for approval; the real agent keeps its device, credential and keys", async () => {
    const keysBefore = (await keysOf(contoso)).filter((k) => k.device?.id === victim.deviceId);
    expect(keysBefore.length).toBeGreaterThan(0);
    const m = new SimMachine('FAKE-ATTACKER-01');
    m.entraDeviceId = victim.machine.entraDeviceId;
    const attacker = agentFor(m);
    const e = await attacker.enroll(contosoToken);
    expect(e.status).toBe(200);
    expect(e.json.pendingApproval).toBe(true);
    expect(e.json.deviceId).not.toBe(victim.deviceId);

    // The attacker's reports land on its own waiting record; the victim's agent works as before.
    expect((await attacker.run()).exitCode).toBe(0);
    expect((await victim.run()).exitCode).toBe(0);
    const victimDevice = await get(`/devices/${victim.deviceId}`);
    expect(victimDevice.name).toBe('FAKE-VICTIM-01');
    const after = (await keysOf(contoso)).filter((k) => k.device?.id === victim.deviceId);
    expect(after.map((k) => `${k.id}:${k.state}`).sort()).toEqual(keysBefore.map((k) => `${k.id}:${k.state}`).sort());
    expect((await keysOf(contoso)).filter((k) => k.device?.id === attacker.deviceId)).toHaveLength(1);

    const pending = await get(`/agent/pending-links?clientId=${contoso}`);
    expect(pending).toEqual([
      expect.objectContaining({
        device: { id: attacker.deviceId, name: 'FAKE-ATTACKER-01' },
        claims: { id: victim.deviceId, name: 'FAKE-VICTIM-01' },
        matchedOn: 'entra',
      }),
    ]);
    const audit = (await get('/audit?limit=50')).map((x: { action: string }) => x.action);
    expect(audit).toContain('agent.enroll.pending');
  });

  it('an admin approves the link: the waiting agent becomes the device, the older credential stops, its keys follow', async () => {
    const m = new SimMachine('FAKE-REIMAGED-01', victim.machine.serial, victim.machine.smbiosUuid);
    const reimaged = agentFor(m);
    const e = await reimaged.enroll(contosoToken);
    expect(e.json.pendingApproval).toBe(true);
    expect((await reimaged.run()).exitCode).toBe(0);
    const waiting = reimaged.deviceId!;
    const pending = await get(`/agent/pending-links?clientId=${contoso}`);
    expect(pending.find((p: { device: { id: string } }) => p.device.id === waiting)).toMatchObject({ matchedOn: 'hardware', claims: { id: victim.deviceId } });

    expect((await t.app.inject({ method: 'POST', url: `${API}/devices/${waiting}/approve-agent-link`, headers: helpdesk.headers })).statusCode).toBe(403);
    const ok = await t.app.inject({ method: 'POST', url: `${API}/devices/${waiting}/approve-agent-link`, headers: owner.headers });
    expect(ok.statusCode, ok.body).toBe(200);
    expect(ok.json()).toEqual({ deviceId: victim.deviceId, device: 'FAKE-VICTIM-01' });

    // The old agent is cut off; the approved one reports for the existing device.
    expect((await victim.run()).exitCode).toBe(2);
    const run = await reimaged.run();
    expect(run.exitCode).toBe(0);
    const device = await get(`/devices/${victim.deviceId}`);
    expect(device.name).toBe('FAKE-REIMAGED-01');
    const mine = m.recoveryPasswords('C:')[0]!;
    const key = (await keysOf(contoso)).find((k) => sameGuid(k.keyId, mine.id))!;
    expect(key.device?.id).toBe(victim.deviceId);
    expect(key.state).toBe('active');
    expect((await get(`/devices/${waiting}`)).retiredAt).toBeTruthy();
    expect(await get(`/agent/pending-links?clientId=${contoso}`)).toHaveLength(1); // only the attacker's
    const again = await t.app.inject({ method: 'POST', url: `${API}/devices/${waiting}/approve-agent-link`, headers: owner.headers });
    expect(again.statusCode).toBe(404);
    const audit = (await get('/audit?limit=50')).map((x: { action: string }) => x.action);
    expect(audit).toContain('agent.link.approve');
    // The agent keeps the device id it was given at enrollment; the server goes by the credential.
    reimaged.deviceId = ok.json().deviceId;
    victim = reimaged;
  });

  it('a device whose agent was revoked and whose keys only its agents escrowed is adopted again without approval', async () => {
    const m = new SimMachine('FAKE-LONER-01');
    const first = agentFor(m);
    await first.enroll(contosoToken);
    expect((await first.run()).exitCode).toBe(0);
    expect((await t.app.inject({ method: 'POST', url: `${API}/devices/${first.deviceId}/revoke-agent`, headers: owner.headers })).json()).toEqual({
      revoked: 1,
    });
    m.files.delete(STATE_FILE); // the state file is gone: no credential to present
    const fresh = agentFor(m);
    const e = await fresh.enroll(contosoToken);
    expect(e.json.pendingApproval).toBe(false);
    expect(fresh.deviceId).toBe(first.deviceId);
  });

  it("a device cannot re-link, supersede or mark used another device's key; the key ID is flagged for review", async () => {
    const genuine = victim.machine.recoveryPasswords('C:')[0]!;
    const before = (await keysOf(contoso)).find((k) => sameGuid(k.keyId, genuine.id))!;
    const m = new SimMachine('FAKE-TAMPER-01');
    const tamper = agentFor(m);
    expect((await tamper.enroll(contosoToken)).json.pendingApproval).toBe(false);
    await tamper.run();

    // It reports the victim's protector ID on its own volume: not asked for, not re-linked.
    const stolen = { id: genuine.id, type: 'RecoveryPassword' as const, password: newRecoveryPassword() };
    m.volume('C:').protectors.push(stolen);
    m.logEvent(24652, { protectorId: genuine.id });
    const checkin = await tamper.post(`${API}/agent/checkin`, tamper.checkinBody());
    expect(checkin.status).toBe(200);
    expect(checkin.json.requestPasswords).toEqual([]);
    expect(checkin.json.jobs).toEqual([]);
    // And uploads it unasked, with a password of its own.
    const up = await tamper.upload([{ mountPoint: 'C:', protector: stolen }]);
    expect(up.status).toBe(200);
    expect(up.json.stored).toEqual([expect.objectContaining({ status: 'conflict' })]);
    // Then drops it, which would supersede it if it were its own.
    m.volume('C:').protectors = m.volume('C:').protectors.filter((p) => p !== stolen);
    expect((await tamper.run()).exitCode).toBe(0);

    const rows = (await keysOf(contoso)).filter((k) => sameGuid(k.keyId, genuine.id));
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ id: before.id, state: before.state, device: expect.objectContaining({ id: victim.deviceId }) });
    const findings = await get(`/findings?deviceId=${tamper.deviceId}`);
    expect(findings.map((f: { kind: string }) => f.kind)).toContain('key_conflict');
    expect(findings.find((f: { kind: string }) => f.kind === 'key_conflict').protectorId).toBe(genuine.id.toUpperCase());
  });

  it("a key planted under another client's key ID: a helpdesk reveal by full key ID lists both with their clients and reveals the right one by record id", async () => {
    const genuine = victim.machine.recoveryPasswords('C:')[0]!;
    const m = new SimMachine('FAKE-PLANTER-01');
    const planter = new TestAgent(injectTransport(t.app), m);
    await planter.enroll(fabrikamToken);
    await planter.run();
    const planted = { id: genuine.id, type: 'RecoveryPassword' as const, password: newRecoveryPassword() };
    const up = await planter.upload([{ mountPoint: 'C:', protector: planted }]);
    expect(up.json.stored[0].status).toBe('stored');

    const reveal = (query: string) =>
      t.app.inject({ method: 'POST', url: `${API}/keys/${query}/reveal`, headers: helpdesk.headers, payload: { reason: 'lost-pin', ticket: 'T-9' } });
    const amb = await reveal(bare(genuine.id));
    expect(amb.statusCode).toBe(200);
    const body = amb.json();
    expect(body).toMatchObject({ status: 'ambiguous', matches: 2 });
    expect(body.candidates.map((c: { client: { name: string } }) => c.client.name).sort()).toEqual(['Contoso', 'Fabrikam']);
    for (const c of body.candidates) expect(JSON.stringify(c)).not.toMatch(/\d{6}-\d{6}-\d{6}/);
    const lookup = await get(`/keys/lookup?keyId=${bare(genuine.id)}`, helpdesk);
    expect(lookup.matches).toBe(2);
    expect(lookup.keys.map((k: { client: { name: string } }) => k.client.name).sort()).toEqual(['Contoso', 'Fabrikam']);
    // A prefix is still no list for helpdesk.
    expect((await get(`/keys/lookup?keyId=${bare(genuine.id).slice(0, 8)}`, helpdesk)).keys).toEqual([]);

    const right = body.candidates.find((c: { client: { name: string } }) => c.client.name === 'Contoso');
    const r = await reveal(right.id);
    expect(r.statusCode).toBe(200);
    expect(r.json()).toMatchObject({ status: 'revealed', key: { recoveryPassword: genuine.password, client: { name: 'Contoso' } } });
  });
});
