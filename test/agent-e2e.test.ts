import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { createTestApp, type Session, type TestApp } from './helpers/app.js';
import { ENGINE } from './helpers/engine.js';
import { owner as cliOwner } from './helpers/vault.js';
import { EscrowChecker } from './agent/escrow-checker.js';
import {
  AGENT_VERSION,
  ENROLL_TOKEN_FILE,
  HRESULT,
  SimMachine,
  TestAgent,
  USER_AGENT,
  httpTransport,
  injectTransport,
  newRecoveryPassword,
  sameGuid,
  type Job,
  type JobResult,
  type SimVolume,
  type Transport,
} from './agent/test-agent.js';
import { newProtectorId } from './agent/sim-machine.js';

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
const ROUND_TRIP = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z$/;

/** A server on a real socket, an owner, a client and its enrollment tokens. */
async function lab() {
  const t = await createTestApp({ KEYWARDEN_REVEAL_LIMIT_PER_HOUR: '1000' });
  await t.app.listen({ host: '127.0.0.1', port: 0 });
  const base = `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`;
  const owner = await t.signIn((await t.addUser('owner', 'all', 'owner@example.test')).email);
  const clientId = (await t.app.inject({ method: 'POST', url: `${API}/clients`, headers: owner.headers, payload: { name: 'Contoso' } })).json().id as string;
  const token = async (maxUses = 50) =>
    (
      await t.app.inject({ method: 'POST', url: `${API}/agent/enrollment-tokens`, headers: owner.headers, payload: { clientId, expiresInDays: 7, maxUses } })
    ).json().token as string;
  const checker = await EscrowChecker.open(t);
  return { t, base, owner, clientId, token, checker, http: httpTransport(base) };
}
type Lab = Awaited<ReturnType<typeof lab>>;

/** A machine with its agent, enrolled over real HTTP, watched by the escrow checker, after its first run. */
async function enrolled(l: Lab, machine: SimMachine, opts: { transport?: Transport; agent?: (send: Transport, m: SimMachine) => TestAgent } = {}) {
  const agent = (opts.agent ?? ((s, m) => new TestAgent(s, m)))(opts.transport ?? l.http, machine);
  l.checker.watch(machine).watchAgent(agent);
  expect((await agent.enroll(await l.token())).status).toBe(200);
  const first = await agent.run();
  expect(first.exitCode, first.lines.join('\n')).toBe(0);
  return agent;
}

const jobsOf = async (l: Lab, deviceId: string) =>
  (await l.t.app.inject({ method: 'GET', url: `${API}/devices/${deviceId}/jobs`, headers: l.owner.headers })).json() as {
    id: string;
    kind: string;
    state: string;
    attempts: number;
    detail: string | null;
  }[];
const keysOf = async (l: Lab) =>
  (await l.t.app.inject({ method: 'GET', url: `${API}/keys?clientId=${l.clientId}`, headers: l.owner.headers })).json() as { keyId: string; state: string }[];
const queue = (
  l: Lab,
  deviceId: string,
  job: { kind: string; mountPoint?: string; protectorId?: string; encryptionMethod?: string; usedSpaceOnly?: boolean },
) => l.t.container.agent.queueJobFor(cliOwner, deviceId, job as Parameters<TestApp['container']['agent']['queueJobFor']>[2]);
const rps = (v: SimVolume) => v.protectors.filter((p) => p.type === 'RecoveryPassword');

describe(`the agent loop on ${ENGINE}`, () => {
  let l: Lab;
  let t: TestApp;
  let owner: Session;
  let clientId: string;
  let token: string;
  let agent: TestAgent;
  let machine: SimMachine;

  async function assertVolumesEscrowed() {
    for (const v of machine.volumes) expect(await l.checker.volumeEscrowed(v), `${SimMachine.mountPointOf(v)} has an escrowed recovery password`).toBe(true);
  }

  const reveal = (keyId: string) =>
    t.app.inject({
      method: 'POST',
      url: `${API}/keys/${keyId.replace(/[{}]/g, '')}/reveal`,
      headers: owner.headers,
      payload: { reason: 'lost-pin', ticket: 'T-1' },
    });

  beforeAll(async () => {
    l = await lab();
    ({ t, owner, clientId } = l);
    token = await l.token(10);
    expect(token).toMatch(/^kwe_/);
    machine = new SimMachine('FAKE-AGENT-01');
    machine.addVolume({
      driveLetter: 'D:',
      label: 'FAKE-DATA',
      method: 'XtsAes256',
      protectors: [
        { id: '{11111111-2222-4333-8444-555555555555}', type: 'RecoveryPassword', password: '471207-278498-422125-177177-561902-537405-468006-693451' },
        { id: '{AAAAAAAA-2222-4333-8444-555555555555}', type: 'ExternalKey' },
      ],
    });
    agent = new TestAgent(l.http, machine);
    l.checker.watch(machine).watchAgent(agent);
  });
  afterAll(() => t.close());
  afterEach(() => expect(l.checker.violations).toEqual([]));

  it('enrolls with the installer-written token over HTTP, sends what the script sends, and escrows every recovery password on its first run', async () => {
    machine.files.set(ENROLL_TOKEN_FILE, token);
    const run = await agent.run();
    expect(run.exitCode, run.lines.join('\n')).toBe(0);
    expect(run.finalLine).toBe('Keywarden exit=0: ok');
    expect(run.lines).toContain("2 recovery password(s) escrowed at the server's request.");
    // The one-shot token file is gone, and the log says so.
    expect(machine.files.has(ENROLL_TOKEN_FILE)).toBe(false);
    expect(run.lines).toContain(`Deleted the enrollment token file ${ENROLL_TOKEN_FILE}.`);
    // The wire: the script's headers, names for enums, round-trip times with 7 digits.
    const [enroll, checkin, upload] = agent.wire;
    expect(enroll!.path).toBe('/api/v1/agent/enroll');
    expect(enroll!.headers).toEqual({ 'content-type': 'application/json; charset=utf-8', 'user-agent': USER_AGENT });
    expect(checkin!.headers).toMatchObject({ 'user-agent': `Keywarden-Agent/${AGENT_VERSION}`, authorization: expect.stringMatching(/^Bearer kwd_/) });
    expect(checkin!.body.sentAt).toMatch(ROUND_TRIP);
    expect(checkin!.body.agentVersion).toBe(AGENT_VERSION);
    expect(checkin!.body.volumes.map((v: { mountPoint: string; volumeType: string }) => `${v.mountPoint}:${v.volumeType}`)).toEqual([
      'C::OperatingSystem',
      'D::Data',
    ]);
    expect(checkin!.body.volumes[0]).toMatchObject({
      volumeStatus: 'FullyEncrypted',
      protectionStatus: 'On',
      lockStatus: 'Unlocked',
      encryptionMethod: 'XtsAes128',
      encryptionPercentage: 100,
    });
    expect(checkin!.body.volumes[0].keyProtectors.map((p: { type: string }) => p.type)).toEqual(['Tpm', 'RecoveryPassword']);
    expect(checkin!.text).not.toMatch(/"(volumeType|volumeStatus|protectionStatus|lockStatus|encryptionMethod|type)":\d/);
    expect(upload!.body.keys).toHaveLength(2);
    await assertVolumesEscrowed();
    const device = (await t.app.inject({ method: 'GET', url: `${API}/devices/${agent.deviceId}`, headers: owner.headers })).json();
    expect(device.name).toBe('FAKE-AGENT-01');
    expect(device.volumes.map((v: { mountPoint: string; type: string }) => `${v.mountPoint}:${v.type}`).sort()).toEqual(['C::os', 'D::fixed']);
    expect(device.recoveryKeys).toHaveLength(2);
    const findings = (await t.app.inject({ method: 'GET', url: `${API}/findings?deviceId=${agent.deviceId}&open=true`, headers: owner.headers })).json();
    expect(findings).toEqual([]);
    // agent.json remembers how the run ended (the detection script prints it).
    expect(agent.savedState).toMatchObject({ lastExitCode: 0, lastMessage: 'ok', lastRunAt: expect.stringMatching(ROUND_TRIP) });
  });

  it('a routine check-in with unchanged keys carries no password and decrypts nothing', async () => {
    decrypts.count = 0;
    const before = agent.wire.length;
    const run = await agent.run();
    expect(run.checkin.requestPasswords).toEqual([]);
    expect(run.checkin.jobs).toEqual([]);
    expect(decrypts.count).toBe(0);
    const sent = agent.wire.slice(before);
    expect(sent.map((w) => w.path)).toEqual(['/api/v1/agent/checkin']);
    for (const v of machine.volumes) for (const p of v.protectors) if (p.password) expect(sent[0]!.text).not.toContain(p.password);
    expect(sent[0]!.text).not.toMatch(/\d{6}-\d{6}-\d{6}/);
  });

  it('the event cursor moves only after a successful check-in: events are sent again after a network failure', async () => {
    const p = machine.recoveryPasswords('D:')[0]!;
    machine.logEvent(845, { protectorId: p.id, volume: 'D:' });
    machine.failNetwork(/\/agent\/checkin$/);
    const failed = await agent.run();
    expect(failed.exitCode).toBe(1);
    expect(failed.finalLine).toMatch(/^Keywarden exit=1: Cannot reach the Keywarden server at .* \(check-in\): Unable to connect/);
    const before = agent.wire.length;
    expect((await agent.run()).exitCode).toBe(0);
    const events = agent.wire.slice(before)[0]!.body.events;
    expect(events).toEqual([{ id: 845, time: expect.stringMatching(ROUND_TRIP), protectorId: p.id, volume: 'D:' }]);
    // Sent once: the next run has nothing new.
    const again = agent.wire.length;
    await agent.run();
    expect(agent.wire[again]!.body.events).toEqual([]);
  });

  it('a changed key is requested and stored; the key it replaced is superseded, not deleted', async () => {
    const oldId = machine.recoveryPasswords('D:')[0]!.id;
    machine.addRecoveryPassword('D:');
    machine.removeProtector('D:', oldId);
    const run = await agent.run();
    expect(run.exitCode).toBe(0);
    expect(run.lines).toContain("1 recovery password(s) escrowed at the server's request.");
    const keys = await keysOf(l);
    expect(keys.find((k) => sameGuid(k.keyId, oldId))!.state).toBe('superseded');
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
    const jobs = await jobsOf(l, agent.deviceId!);
    expect(jobs.map((j) => `${j.kind}:${j.state}`)).toEqual(['rotate:pending']);

    // Killed right after adding the new protector, before uploading it.
    agent.failPoint = 'after-add-protector';
    await expect(agent.run()).rejects.toThrow('killed');
    expect(machine.recoveryPasswords('C:')).toHaveLength(2);
    await assertVolumesEscrowed();

    // Killed again after the upload but before removing the old protector.
    agent.failPoint = 'before-remove-protector';
    await expect(agent.run()).rejects.toThrow('killed');
    await assertVolumesEscrowed();

    // A clean run finishes the job with the escrowed spare: the old protector removed, the old key rotated.
    agent.failPoint = null;
    const checksBefore = l.checker.checks;
    const done = await agent.run();
    expect(done.exitCode, done.lines.join('\n')).toBe(0);
    expect(done.jobResults).toEqual([expect.objectContaining({ status: 'succeeded', removedProtectorId: old.id })]);
    expect(l.checker.checks).toBeGreaterThan(checksBefore);
    expect(machine.recoveryPasswords('C:')).toHaveLength(1);
    expect(sameGuid(machine.recoveryPasswords('C:')[0]!.id, old.id)).toBe(false);
    await assertVolumesEscrowed();
    expect((await keysOf(l)).find((k) => sameGuid(k.keyId, old.id))!.state).toBe('rotated');
    expect((await jobsOf(l, agent.deviceId!))[0]).toMatchObject({ kind: 'rotate', state: 'succeeded' });
    const actions = (await t.app.inject({ method: 'GET', url: `${API}/audit?limit=200`, headers: owner.headers }))
      .json()
      .map((e: { action: string }) => e.action);
    for (const a of ['agent.enroll', 'agent.upload', 'key.reveal', 'job.create', 'job.update', 'key.rotated', 'key.superseded']) expect(actions).toContain(a);
  });

  it('event 24652 (a recovery password used at boot), read from the System log, marks the key disclosed and queues its rotation', async () => {
    const p = machine.recoveryPasswords('D:')[0]!;
    const event = machine.logEvent(24652, { protectorId: p.id, volume: 'D:' });
    expect(event.logName).toBe('System');
    const body = agent.checkinBody();
    expect(body.events).toEqual([{ id: 24652, time: event.time, protectorId: p.id, volume: 'D:' }]);
    const first = await agent.post('/api/v1/agent/checkin', body);
    expect(first.status).toBe(200);
    expect(first.json.jobs).toEqual([expect.objectContaining({ kind: 'rotate', mountPoint: 'D:', encryptionMethod: null, usedSpaceOnly: null })]);
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
    (huge as { manageBde: unknown }).manageBde = { status: 'x'.repeat(1_100_000), protectors: '' };
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

  it('a restored agent.json (old sequence number) recovers once per run after the 409; a second 409 and a 5xx end the run with exit 1', async () => {
    const accepted = agent.wire.filter((w) => w.status === 200).at(-1)!.body.seq as number;
    agent.seq = accepted - 5;
    const before = agent.wire.length;
    const recovered = await agent.run();
    expect(recovered.exitCode, recovered.lines.join('\n')).toBe(0);
    const sent = agent.wire.slice(before);
    expect(sent.slice(0, 2).map((w) => w.status)).toEqual([409, 200]);
    expect(sent[0]!.body.seq).toBe(accepted - 4);
    const last = Number(/the last one seen is (\d+)/.exec(sent[0]!.response.message)![1]);
    expect(sent[1]!.body.seq).toBe(last + 1);
    expect(agent.log.some((x) => x.includes(`[WARN] The server had already seen sequence numbers up to ${last}`))).toBe(true);
    // A server that keeps answering 409: one retry, then exit 1 with the hint.
    const replaying = new TestAgent(async (req) => {
      const seq = (req.body as { seq: number }).seq;
      return {
        status: 409,
        json: {
          error: 'Conflict',
          message: `Request sequence ${seq} was already used (the last one seen is ${seq + 2}): a replayed or out-of-order request was refused.`,
        },
      };
    }, machine);
    const refused = await replaying.run();
    expect(refused.exitCode).toBe(1);
    expect(refused.finalLine).toMatch(/HTTP 409: .*as a replay/);
    expect(replaying.wire.map((w) => w.status)).toEqual([409, 409]);
    agent.seq = agent.seq + 10;
    const down = new TestAgent(async () => ({ status: 503, json: { error: 'Service Unavailable', message: 'down for maintenance' } }), machine);
    const r = await down.run();
    expect(r.exitCode).toBe(1);
    expect(r.finalLine).toMatch(/HTTP 503: .*down for maintenance/);
    expect((await agent.run()).exitCode).toBe(0);
  });

  it('re-enrolling the same machine finds its device and keeps counting sequence numbers; a revoked credential ends the run with exit 2', async () => {
    const firstId = agent.deviceId;
    const oldCredential = agent.credential;
    const seqBefore = agent.seq;
    expect((await agent.enroll(token)).status).toBe(200);
    expect(agent.deviceId).toBe(firstId);
    expect(agent.seq).toBe(seqBefore);
    const stale = await t.app.inject({
      method: 'POST',
      url: `${API}/agent/checkin`,
      headers: { authorization: `Bearer ${oldCredential}` },
      payload: agent.checkinBody(),
    });
    expect(stale.statusCode).toBe(401);
    const run = await agent.run();
    expect(run.exitCode).toBe(0);
    expect(agent.wire.at(-1)!.body.seq).toBeGreaterThan(seqBefore);
    const rev = await t.app.inject({ method: 'POST', url: `${API}/devices/${agent.deviceId}/revoke-agent`, headers: owner.headers });
    expect(rev.json()).toEqual({ revoked: 1 });
    const refused = await agent.run();
    expect(refused.exitCode).toBe(2);
    expect(refused.finalLine).toMatch(/HTTP 401.*-ForceReenroll/);
    expect(agent.wire.at(-1)!.response.message).toMatch(/Enroll the agent again/);
    expect(agent.savedState).toMatchObject({ lastExitCode: 2 });
  });

  it('refuses an unknown, revoked, expired or used-up enrollment token with one message (exit 2)', async () => {
    const other = new TestAgent(l.http, new SimMachine('FAKE-AGENT-02'));
    expect((await other.enroll('kwe_nonsense')).status).toBe(401);
    const one = (
      await t.app.inject({ method: 'POST', url: `${API}/agent/enrollment-tokens`, headers: owner.headers, payload: { clientId, maxUses: 1 } })
    ).json();
    expect((await other.enroll(one.token)).status).toBe(200);
    const used = await new TestAgent(l.http, new SimMachine('FAKE-AGENT-03')).enroll(one.token);
    expect(used.status).toBe(401);
    const nonsense = await new TestAgent(l.http, new SimMachine('FAKE-AGENT-04')).enroll('kwe_nonsense');
    expect(used.json.message).toBe(nonsense.json.message);
    // A run that must enroll with a refused token: exit 2, and the token is not in the output.
    const m = new SimMachine('FAKE-AGENT-05');
    m.files.set(ENROLL_TOKEN_FILE, one.token);
    const run = await new TestAgent(l.http, m).run();
    expect(run.exitCode).toBe(2);
    expect(run.finalLine).toMatch(/rejected the enrollment token/);
    expect(run.lines.join('\n')).not.toContain(one.token);
  });

  it('a token on the command line still works but is logged as a warning; no token at all is exit 2', async () => {
    const m = new SimMachine('FAKE-AGENT-06');
    const a = new TestAgent(l.http, m);
    expect((await a.run()).finalLine).toMatch(
      /^Keywarden exit=2: The device must enroll \(not enrolled yet\) but no enrollment token was found: pass -EnrollmentTokenFile/,
    );
    a.params.enrollmentToken = await l.token();
    const run = await a.run();
    expect(run.exitCode).toBe(0);
    expect(run.lines[0]).toMatch(/^WARN: the token was on a command line: Windows logs it/);
    expect(a.log.join('\n')).not.toMatch(/kwe_[A-Za-z0-9]/);
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
      expect((await agent.run()).exitCode).toBe(0);
      expect((await t.app.inject({ method: 'DELETE', url: `${API}/clients/${clientId}`, headers: owner.headers })).statusCode).toBe(200);
      expect((await agent.run()).exitCode).toBe(2);
      expect((await new TestAgent(injectTransport(t.app), new SimMachine('FAKE-LEAVING-2')).enroll(token)).status).toBe(401);
    } finally {
      await t.close();
    }
  });
});

// ------------------------------------------------------------------------------------------------
// The job procedures, each through the real check-in endpoint, with the escrow checker watching.
// ------------------------------------------------------------------------------------------------

describe(`agent jobs on ${ENGINE}`, () => {
  let l: Lab;
  beforeAll(async () => {
    l = await lab();
  });
  afterAll(() => l.t.close());
  afterEach(() => {
    const v = [...l.checker.violations];
    l.checker.violations.length = 0;
    expect(v).toEqual([]);
  });

  it('rotate without a protector ID replaces every recovery password of the volume, adding one first', async () => {
    const m = new SimMachine('FAKE-JOB-ALL');
    const d = m.addVolume({ driveLetter: 'D:', protectors: [{ id: newProtectorId(), type: 'RecoveryPassword', password: newRecoveryPassword() }] });
    m.addRecoveryPassword('D:');
    const before = rps(d).map((p) => p.id);
    const a = await enrolled(l, m);
    await queue(l, a.deviceId!, { kind: 'rotate', mountPoint: 'D:' });
    const run = await a.run();
    expect(run.exitCode, run.lines.join('\n')).toBe(0);
    const [result] = run.jobResults;
    expect(result).toMatchObject({ status: 'succeeded', removedProtectorId: before[0] });
    expect(result!.detail).toBe(`recovery password rotated on D:: new ${rps(d)[0]!.id}, removed ${before.join(', ')}`);
    expect(rps(d)).toHaveLength(1);
    expect(before).not.toContain(rps(d)[0]!.id);
    expect(sameGuid(result!.newProtectorId, rps(d)[0]!.id)).toBe(true);
    expect(await l.checker.volumeEscrowed(d)).toBe(true);
    expect(m.calls.filter((c) => c.method === 'DeleteKeyProtector').map((c) => c.args.VolumeKeyProtectorID)).toEqual(before);
    expect((await jobsOf(l, a.deviceId!))[0]).toMatchObject({ kind: 'rotate', state: 'succeeded' });
  });

  it('rotate skips a spare the vault answers "conflict" for, adds a new one, and only then removes the old', async () => {
    // Another device of the client already holds the spare's key ID.
    const spareId = newProtectorId();
    const squatter = new SimMachine('FAKE-JOB-SQUAT');
    squatter.volume('C:').protectors.push({ id: spareId, type: 'RecoveryPassword', password: newRecoveryPassword() });
    await enrolled(l, squatter);
    const m = new SimMachine('FAKE-JOB-SPARE');
    const c = m.volume('C:');
    const old = rps(c)[0]!;
    c.protectors.push({ id: spareId, type: 'RecoveryPassword', password: newRecoveryPassword() });
    const a = await enrolled(l, m);
    await queue(l, a.deviceId!, { kind: 'rotate', mountPoint: 'C:', protectorId: old.id });
    const run = await a.run();
    expect(run.exitCode, run.lines.join('\n')).toBe(0);
    const result = run.jobResults[0]!;
    expect(result).toMatchObject({ status: 'succeeded', removedProtectorId: old.id });
    expect(sameGuid(result.newProtectorId, spareId)).toBe(false);
    expect(rps(c).map((p) => p.id)).toEqual([spareId, result.newProtectorId]);
    expect(a.log.some((x) => x.includes(`[WARN] C:: recovery password ${spareId} is not escrowed (conflict`))).toBe(true);
  });

  it('rotate follows a protector whose drive letter changed (M2) instead of declaring it rotated', async () => {
    const m = new SimMachine('FAKE-JOB-MOVE');
    const x = { id: newProtectorId(), type: 'RecoveryPassword' as const, password: newRecoveryPassword() };
    const moved = m.addVolume({ driveLetter: 'D:', label: 'FAKE-USB-DOCK', protectors: [x] });
    const a = await enrolled(l, m);
    const job = await queue(l, a.deviceId!, { kind: 'rotate', mountPoint: 'D:', protectorId: x.id });
    expect(job.mountPoint).toBe('D:');
    // The dock came back as E:, and another drive took D:.
    moved.driveLetter = 'E:';
    const newcomer = m.addVolume({ driveLetter: 'D:', protectors: [{ id: newProtectorId(), type: 'RecoveryPassword', password: newRecoveryPassword() }] });
    const run = await a.run();
    expect(run.exitCode, run.lines.join('\n')).toBe(0);
    expect(run.jobResults[0]).toMatchObject({
      status: 'succeeded',
      removedProtectorId: x.id,
      detail: expect.stringMatching(/^recovery password rotated on E:.* \(the protector was on E:, not on D:\)$/),
    });
    expect(m.volumes.flatMap((v) => v.protectors).some((p) => sameGuid(p.id, x.id))).toBe(false);
    expect(rps(newcomer)).toHaveLength(1);
    expect(rps(moved)).toHaveLength(1);
    expect(await l.checker.volumeEscrowed(moved)).toBe(true);
    expect((await keysOf(l)).find((k) => sameGuid(k.keyId, x.id))!.state).toBe('rotated');
  });

  it('a failing job gets three real attempts (M4): jobs are not offered with job results', async () => {
    const m = new SimMachine('FAKE-JOB-FAIL');
    const a = await enrolled(l, m);
    const p = m.recoveryPasswords('C:')[0]!;
    const job = await queue(l, a.deviceId!, { kind: 'backup-to-ad', mountPoint: 'C:', protectorId: p.id });
    for (let attempt = 1; attempt <= 3; attempt++) {
      const run = await a.run();
      expect(run.exitCode).toBe(4);
      expect(run.jobResults).toEqual([
        expect.objectContaining({
          status: 'failed',
          detail: expect.stringMatching(/to Active Directory failed: BackupRecoveryInformationToActiveDirectory returned 0x00000001 \(S_FALSE/),
        }),
      ]);
      const second = a.wire.filter((w) => w.path === '/api/v1/agent/checkin').at(-1)!;
      expect(second.body.jobResults).toHaveLength(1);
      expect(second.response.jobs).toEqual([]);
      const j = (await jobsOf(l, a.deviceId!)).find((x) => x.id === job.id)!;
      expect(j).toMatchObject({ attempts: attempt, state: attempt < 3 ? 'pending' : 'failed' });
    }
    expect((await a.run()).jobResults).toEqual([]);
  });

  it('more than 32 requested passwords go up in batches of 32 (M7)', async () => {
    const m = new SimMachine('FAKE-JOB-FILESERVER');
    for (const letter of ['E:', 'F:']) {
      m.addVolume({
        driveLetter: letter,
        protectors: Array.from({ length: 20 }, () => ({ id: newProtectorId(), type: 'RecoveryPassword' as const, password: newRecoveryPassword() })),
      });
    }
    const a = new TestAgent(l.http, m);
    expect((await a.enroll(await l.token())).status).toBe(200);
    const run = await a.run();
    expect(run.exitCode, run.lines.join('\n')).toBe(0);
    expect(run.checkin.requestPasswords).toHaveLength(41);
    expect(a.wire.filter((w) => w.path === '/api/v1/agent/keys').map((w) => w.body.keys.length)).toEqual([32, 9]);
    expect(run.lines).toContain("41 recovery password(s) escrowed at the server's request.");
  });

  it('a requested password of a volume that is gone is skipped and logged, not a crash', async () => {
    const m = new SimMachine('FAKE-JOB-GONE');
    const e = m.addVolume({ driveLetter: 'E:', protectors: [{ id: newProtectorId(), type: 'RecoveryPassword', password: newRecoveryPassword() }] });
    const a = new TestAgent(l.http, m);
    expect((await a.enroll(await l.token())).status).toBe(200);
    // The server asks for E:'s password, but E: was unplugged in between.
    const send: Transport = async (req) => {
      const r = await l.http(req);
      if (req.url.endsWith('/checkin') && r.json.requestPasswords) m.volumes = m.volumes.filter((v) => v !== e);
      return r;
    };
    const b = new TestAgent(send, m);
    const run = await b.run();
    expect(run.exitCode, run.lines.join('\n')).toBe(0);
    expect(b.log.some((x) => /\[WARN\] Requested password \{.*\} on E:: volume E: not found on this device/.test(x))).toBe(true);
    expect(run.lines).toContain("1 recovery password(s) escrowed at the server's request.");
  });

  it('manage-bde fallback (WMI broken) in German: the server parses the masked text and the passwords are escrowed through -id', async () => {
    const m = new SimMachine('FAKE-JOB-BDE-DE');
    m.locale = 'de';
    m.cimBroken = true;
    m.addVolume({ driveLetter: 'D:', label: 'FAKE-DATEN', protectors: [{ id: newProtectorId(), type: 'RecoveryPassword', password: newRecoveryPassword() }] });
    m.addVolume({ driveLetter: null, label: 'FAKE-MOUNT', protectors: [{ id: newProtectorId(), type: 'RecoveryPassword', password: newRecoveryPassword() }] });
    const a = new TestAgent(l.http, m);
    expect((await a.enroll(await l.token())).status).toBe(200);
    const run = await a.run();
    expect(run.exitCode, run.lines.join('\n')).toBe(0);
    const checkin = a.wire.find((w) => w.path === '/api/v1/agent/checkin')!;
    expect(checkin.body.volumes).toEqual([]);
    expect(checkin.body.manageBde.status).toContain('Volume "C:" [Windows]');
    expect(checkin.text).not.toMatch(/\d{6}-\d{6}-\d{6}/);
    expect(checkin.body.manageBde.protectors).toMatch(/fp:[0-9a-f]{64}/);
    expect(m.calls.filter((c) => c.via === 'manage-bde').map((c) => c.method)).toEqual(
      expect.arrayContaining(['-status', '-protectors -get C:', '-protectors -get D:', `-protectors -get ${m.volumes[2]!.deviceId}`]),
    );
    expect(run.lines).toContain("3 recovery password(s) escrowed at the server's request.");
    for (const v of m.volumes) expect(await l.checker.volumeEscrowed(v)).toBe(true);
  });

  it('manage-bde fallback with one failing -protectors -get sends no report at all (M1): exit 3', async () => {
    const m = new SimMachine('FAKE-JOB-BDE-FAIL');
    const a = await enrolled(l, m);
    m.addVolume({ driveLetter: 'D:', protectors: [{ id: newProtectorId(), type: 'RecoveryPassword', password: newRecoveryPassword() }] });
    m.cimBroken = true;
    m.failManageBde(/^-protectors -get D:$/);
    const before = a.wire.length;
    const run = await a.run();
    expect(run.exitCode).toBe(3);
    expect(run.finalLine).toMatch(/manage-bde -protectors -get D: failed .*no volume report was sent/);
    expect(a.wire.slice(before)).toEqual([]);
    const c = m.recoveryPasswords('C:')[0]!;
    expect((await keysOf(l)).find((k) => sameGuid(k.keyId, c.id))!.state).toBe('active');
  });

  it('a locked data volume: reported as Windows reports it, its passwords cannot be read, a job on it fails "locked"', async () => {
    const m = new SimMachine('FAKE-JOB-LOCKED');
    m.addVolume({ driveLetter: 'E:', locked: true, protectors: [{ id: newProtectorId(), type: 'RecoveryPassword', password: newRecoveryPassword() }] });
    const a = new TestAgent(l.http, m);
    l.checker.watch(m).watchAgent(a);
    expect((await a.enroll(await l.token())).status).toBe(200);
    const run = await a.run();
    expect(run.exitCode, run.lines.join('\n')).toBe(0);
    const e = a.wire[1]!.body.volumes.find((v: { mountPoint: string }) => v.mountPoint === 'E:');
    expect(e).toMatchObject({
      volumeStatus: null,
      encryptionPercentage: null,
      protectionStatus: 'Unknown',
      lockStatus: 'Locked',
      encryptionMethod: 'XtsAes128',
    });
    expect(e.keyProtectors[0].fingerprint).toBeUndefined();
    await queue(l, a.deviceId!, { kind: 'add-recovery-password', mountPoint: 'E:' });
    const job = await a.run();
    expect(job.exitCode).toBe(4);
    expect(job.jobResults[0]).toMatchObject({ status: 'failed', detail: 'volume E: is locked; unlock it first' });
  });

  it('enable-encryption on an OS volume with a ready TPM: recovery password escrowed, TPM added, then encryption started', async () => {
    const m = new SimMachine('FAKE-JOB-ENC-OS');
    const c = m.volume('C:');
    Object.assign(c, { status: 'FullyDecrypted', protection: 'Off', method: 'None', percentage: 0, protectors: [] });
    const a = await enrolled(l, m);
    const checks = l.checker.checks;
    await queue(l, a.deviceId!, { kind: 'enable-encryption', mountPoint: 'C:', encryptionMethod: 'XtsAes256' });
    const run = await a.run();
    expect(run.exitCode, run.lines.join('\n')).toBe(0);
    expect(run.jobResults[0]).toMatchObject({
      status: 'succeeded',
      detail: `encryption started (XtsAes256, used space only) on C:; recovery password ${rps(c)[0]!.id} is escrowed`,
      newProtectorId: rps(c)[0]!.id,
    });
    expect(c).toMatchObject({ status: 'EncryptionInProgress', method: 'XtsAes256', usedSpaceOnly: true });
    expect(c.protectors.map((p) => p.type)).toEqual(['RecoveryPassword', 'Tpm']);
    expect(
      m.calls.filter((x) => x.returnValue === 0 && ['ProtectKeyWithNumericalPassword', 'ProtectKeyWithTPM', 'Encrypt'].includes(x.method)).map((x) => x.method),
    ).toEqual(['ProtectKeyWithNumericalPassword', 'ProtectKeyWithTPM', 'Encrypt']);
    expect(l.checker.checks).toBeGreaterThan(checks);
    expect((await jobsOf(l, a.deviceId!))[0]).toMatchObject({ kind: 'enable-encryption', state: 'succeeded' });
  });

  it('enable-encryption on an OS volume without a ready TPM fails and leaves the escrowed recovery password', async () => {
    const m = new SimMachine('FAKE-JOB-ENC-NOTPM');
    m.tpm.ready = false;
    const c = m.volume('C:');
    Object.assign(c, { status: 'FullyDecrypted', protection: 'Off', method: 'None', percentage: 0, protectors: [] });
    const a = await enrolled(l, m);
    await queue(l, a.deviceId!, { kind: 'enable-encryption', mountPoint: 'C:' });
    const run = await a.run();
    expect(run.exitCode).toBe(4);
    expect(run.jobResults[0]!.detail).toMatch(
      /^no ready TPM: C: cannot get a TPM protector, so encryption was not started; the recovery password \{.*\} stays on it, escrowed$/,
    );
    expect(c.status).toBe('FullyDecrypted');
    expect(rps(c)).toHaveLength(1);
    expect(await l.checker.volumeEscrowed(c)).toBe(true);
    expect(m.calls.some((x) => x.method === 'Encrypt')).toBe(false);
  });

  it('enable-encryption on a data volume waits for the OS volume, then encrypts with automatic unlock', async () => {
    const m = new SimMachine('FAKE-JOB-ENC-DATA');
    const c = m.volume('C:');
    Object.assign(c, { status: 'FullyDecrypted', protection: 'Off', method: 'None', percentage: 0, protectors: [] });
    const d = m.addDecryptedVolume('D:');
    const a = await enrolled(l, m);
    await queue(l, a.deviceId!, { kind: 'enable-encryption', mountPoint: 'D:' });
    const early = await a.run();
    expect(early.jobResults[0]).toMatchObject({
      status: 'failed',
      detail: expect.stringMatching(/^encrypt the operating-system drive first: C: is FullyDecrypted with protection Off/),
    });
    expect(d.status).toBe('FullyDecrypted');
    // The OS volume first; once Windows has finished encrypting it, the data volume follows.
    await queue(l, a.deviceId!, { kind: 'enable-encryption', mountPoint: 'C:' });
    const os = await a.run();
    expect(os.jobResults.map((r) => `${r.status}:${r.detail.replace(/\{.*\}/, '{id}')}`)).toContain(
      'succeeded:encryption started (Windows default, used space only) on C:; recovery password {id} is escrowed',
    );
    m.finishConversion('C:');
    const data = await a.run();
    expect(data.exitCode, data.lines.join('\n')).toBe(0);
    expect(data.jobResults[0]).toMatchObject({
      status: 'succeeded',
      detail: `encryption started (Windows default, used space only); automatic unlocking turned on on D:; recovery password ${rps(d)[0]!.id} is escrowed`,
    });
    expect(d).toMatchObject({ status: 'EncryptionInProgress', autoUnlock: true });
    expect(await l.checker.volumeEscrowed(d)).toBe(true);
  });

  it('resume-protection escrows a recovery password first, then turns protection on', async () => {
    const m = new SimMachine('FAKE-JOB-RESUME');
    const c = m.volume('C:');
    const a = await enrolled(l, m);
    c.protection = 'Off';
    await queue(l, a.deviceId!, { kind: 'resume-protection', mountPoint: 'C:' });
    const run = await a.run();
    expect(run.exitCode, run.lines.join('\n')).toBe(0);
    expect(run.jobResults[0]).toMatchObject({
      status: 'succeeded',
      detail: `protection turned on for C:; recovery password ${rps(c)[0]!.id} is escrowed`,
      newProtectorId: rps(c)[0]!.id,
    });
    expect(c.protection).toBe('On');
    expect((await jobsOf(l, a.deviceId!))[0]).toMatchObject({ kind: 'resume-protection', state: 'succeeded' });
  });

  it('add-recovery-password adds and escrows one on a TPM-only volume; a second one finds it already there', async () => {
    const m = new SimMachine('FAKE-JOB-ADD');
    const c = m.volume('C:');
    c.protectors = c.protectors.filter((p) => p.type !== 'RecoveryPassword');
    const a = await enrolled(l, m);
    await queue(l, a.deviceId!, { kind: 'add-recovery-password', mountPoint: 'C:' });
    const run = await a.run();
    expect(run.exitCode, run.lines.join('\n')).toBe(0);
    expect(rps(c)).toHaveLength(1);
    expect(run.jobResults[0]).toMatchObject({ status: 'succeeded', newProtectorId: rps(c)[0]!.id, detail: expect.stringMatching(/added to C: and escrowed$/) });
    await queue(l, a.deviceId!, { kind: 'add-recovery-password', mountPoint: 'C:' });
    const again = await a.run();
    expect(again.jobResults[0]).toMatchObject({ status: 'succeeded', detail: expect.stringMatching(/^C: already has an escrowed recovery password/) });
    expect(rps(c)).toHaveLength(1);
  });

  it('re-escrow uploads every recovery password of the volume with the job ID', async () => {
    const m = new SimMachine('FAKE-JOB-REESCROW');
    m.addRecoveryPassword('C:');
    const a = await enrolled(l, m);
    await queue(l, a.deviceId!, { kind: 're-escrow', mountPoint: 'C:' });
    const run = await a.run();
    expect(run.exitCode, run.lines.join('\n')).toBe(0);
    expect(run.jobResults[0]).toMatchObject({
      status: 'succeeded',
      detail: expect.stringMatching(/^escrowed 2 recovery password\(s\) of C:: \{.*\} duplicate, \{.*\} duplicate$/),
    });
    const upload = a.wire.filter((w) => w.path === '/api/v1/agent/keys').at(-1)!;
    expect(upload.body.jobId).toBe(run.jobResults[0]!.jobId);
    expect(upload.response.stored.map((s: { status: string }) => s.status)).toEqual(['duplicate', 'duplicate']);
  });

  it('backup-to-ad and backup-to-entra call Windows and report its answer; not joined is a failure with the HRESULT', async () => {
    const m = new SimMachine('FAKE-JOB-DIR');
    m.domainJoined = true;
    m.domain = 'contoso.example';
    const a = await enrolled(l, m);
    const p = m.recoveryPasswords('C:')[0]!;
    await queue(l, a.deviceId!, { kind: 'backup-to-ad', mountPoint: 'C:', protectorId: p.id });
    await queue(l, a.deviceId!, { kind: 'backup-to-entra', mountPoint: 'C:', protectorId: p.id });
    const run = await a.run();
    expect(run.exitCode).toBe(4);
    expect(run.jobResults.map((r) => `${r.status}: ${r.detail}`).sort()).toEqual([
      `failed: the backup of ${p.id} on C: to Microsoft Entra ID failed: BackupRecoveryInformationToCloudDomain returned 0x8007054B`,
      'succeeded: backed up to Active Directory',
    ]);
    expect(m.eventLog.map((e) => e.id)).toEqual(expect.arrayContaining([784, 846]));
    // The directory's events go to the server with the check-in that reports the results.
    const events = a.wire.filter((w) => w.path === '/api/v1/agent/checkin').at(-1)!.body.events;
    expect(events.map((e: { id: number }) => e.id).sort()).toEqual([784, 846]);
  });

  it('an unknown job kind (a newer server) fails "unsupported job kind"; jobs offered with job results are not run', async () => {
    const m = new SimMachine('FAKE-JOB-FUTURE');
    let offer = 0;
    const future: Transport = async (req) => {
      const r = await l.http(req);
      if (req.url.endsWith('/checkin') && r.status === 200) {
        offer++;
        const extra: Job = {
          id: crypto.randomUUID(),
          kind: offer === 2 ? 'wipe-volume' : 'rotate',
          mountPoint: 'C:',
          protectorId: null,
          encryptionMethod: null,
          usedSpaceOnly: null,
        };
        // Offer 2 is the first check-in of the second run; offer 3 its second check-in (with results).
        if (offer === 2 || offer === 3) r.json.jobs = [...r.json.jobs, extra];
      }
      return r;
    };
    const a = await enrolled(l, m, { transport: future });
    const run = await a.run();
    expect(run.exitCode).toBe(4);
    expect(run.jobResults).toEqual([expect.objectContaining({ status: 'failed', detail: `unsupported job kind "wipe-volume" (agent ${AGENT_VERSION})` })]);
    expect(a.log.some((x) => x.includes('1 job(s) offered with the results were not run; they run on the next run.'))).toBe(true);
    expect(m.calls.some((c) => c.method === 'ProtectKeyWithNumericalPassword')).toBe(false);
  });

  it('one volume that cannot be read is left out (L4); removable volumes and protectors without a GUID are not reported', async () => {
    const m = new SimMachine('FAKE-JOB-PARTIAL');
    m.addVolume({
      driveLetter: 'D:',
      protectors: [
        { id: newProtectorId(), type: 'RecoveryPassword', password: newRecoveryPassword() },
        { id: 'BitLocker', type: 'Unknown' },
      ],
    });
    const e = m.addVolume({ driveLetter: 'E:', protectors: [{ id: newProtectorId(), type: 'RecoveryPassword', password: newRecoveryPassword() }] });
    m.addVolume({ driveLetter: 'F:', kind: 'removable', protectors: [{ id: newProtectorId(), type: 'RecoveryPassword', password: newRecoveryPassword() }] });
    // A volume without a drive letter is reported (and escrowed) under its \\?\Volume{…}\ path.
    const hidden = m.addVolume({ driveLetter: null, protectors: [{ id: newProtectorId(), type: 'RecoveryPassword', password: newRecoveryPassword() }] });
    const a = await enrolled(l, m);
    const first = a.wire.find((w) => w.path === '/api/v1/agent/checkin')!;
    expect(first.body.volumes.map((v: { mountPoint: string }) => v.mountPoint)).toEqual(['C:', 'D:', 'E:', hidden.deviceId]);
    expect(a.wire.find((w) => w.path === '/api/v1/agent/keys')!.body.keys.map((k: { mountPoint: string }) => k.mountPoint)).toContain(hidden.deviceId);
    expect(await l.checker.volumeEscrowed(hidden)).toBe(true);
    expect(first.body.volumes[1].keyProtectors).toHaveLength(1);
    expect(a.log.some((x) => x.includes('[WARN] D:: protector with ID "BitLocker" (Unknown) is not reported: its ID is not a GUID.'))).toBe(true);
    // E:'s protectors cannot be read this time: E: is left out, the rest is reported, E:'s key stays.
    m.failMethod('GetKeyProtectors', 0x80041001, { volume: 'E:' });
    const before = a.wire.length;
    const run = await a.run();
    expect(run.exitCode).toBe(0);
    expect(run.lines).toContain('WARN: Volume E: could not be read and was left out of this report: GetKeyProtectors on E: returned 0x80041001');
    expect(run.lines).toContainEqual(
      expect.stringMatching(/^Checked in as device .*: 3 volume\(s\) from Win32_EncryptableVolume \(1 left out: E:\), \d+ event\(s\)\.$/),
    );
    expect(a.wire[before]!.body.volumes.map((v: { mountPoint: string }) => v.mountPoint)).toEqual(['C:', 'D:', hidden.deviceId]);
    expect((await keysOf(l)).find((k) => sameGuid(k.keyId, rps(e)[0]!.id))!.state).toBe('active');
  });

  it('a method that fails with an HRESULT fails the job and says what was done: a failed removal leaves both keys, the new one escrowed', async () => {
    const m = new SimMachine('FAKE-JOB-HRESULT');
    const a = await enrolled(l, m);
    const c = m.volume('C:');
    const old = rps(c)[0]!;
    await queue(l, a.deviceId!, { kind: 'rotate', mountPoint: 'C:', protectorId: old.id });
    m.failMethod('DeleteKeyProtector', HRESULT.FVE_E_LOCKED_VOLUME);
    const run = await a.run();
    expect(run.exitCode).toBe(4);
    const added = rps(c).find((p) => p.id !== old.id)!;
    expect(run.jobResults[0]!.detail).toBe(
      `could not remove the old protector ${old.id} from C: (DeleteKeyProtector on C: returned 0x80310000 (FVE_E_LOCKED_VOLUME: the volume is locked)); removed so far: none; new escrowed protector ${added.id}`,
    );
    expect(rps(c).map((p) => p.id)).toEqual([old.id, added.id]);
    expect(await l.checker.protectorEscrowed(added)).toBe(true);
    // The next run finishes it with the escrowed spare.
    const next = await a.run();
    expect(next.exitCode, next.lines.join('\n')).toBe(0);
    expect(rps(c).map((p) => p.id)).toEqual([added.id]);
  });

  it("the JSON is the script's own: non-ASCII as \\u escapes, read back by the server", async () => {
    const m = new SimMachine('FAKE-MÜNCHEN-01');
    const a = await enrolled(l, m);
    const checkin = a.wire.find((w) => w.path === '/api/v1/agent/checkin')!;
    expect(checkin.text).toContain('"hostname":"FAKE-M\\u00dcNCHEN-01"');
    expect(checkin.text).toMatch(/^[\x20-\x7e]*$/);
    const device = (await l.t.app.inject({ method: 'GET', url: `${API}/devices/${a.deviceId}`, headers: l.owner.headers })).json();
    expect(device.name).toBe('FAKE-MÜNCHEN-01');
  });

  it('-EnrollmentTokenFile: deleted after enrollment inside the state folder, left in place (with a warning) elsewhere', async () => {
    const inside = new SimMachine('FAKE-JOB-TOKFILE-1');
    const insidePath = 'C:\\ProgramData\\Keywarden\\rollout.token';
    inside.files.set(insidePath, `${await l.token()}\r\n`);
    const a = new TestAgent(l.http, inside);
    a.params.enrollmentTokenFile = insidePath;
    expect((await a.run()).exitCode).toBe(0);
    expect(inside.files.has(insidePath)).toBe(false);
    const outside = new SimMachine('FAKE-JOB-TOKFILE-2');
    const outsidePath = 'D:\\Deploy\\keywarden.token';
    outside.files.set(outsidePath, await l.token());
    const b = new TestAgent(l.http, outside);
    b.params.enrollmentTokenFile = outsidePath;
    expect((await b.run()).exitCode).toBe(0);
    expect(outside.files.has(outsidePath)).toBe(true);
    expect(b.log.some((x) => x.includes(`[WARN] The enrollment token file ${outsidePath} is outside`))).toBe(true);
    const missing = new TestAgent(l.http, new SimMachine('FAKE-JOB-TOKFILE-3'));
    missing.params.enrollmentTokenFile = outsidePath;
    expect((await missing.run()).finalLine).toBe(`Keywarden exit=2: The enrollment token file ${outsidePath} does not exist.`);
  });

  it('exit 3 when not elevated, exit 5 when another run holds the lock (and agent.json is left alone)', async () => {
    const m = new SimMachine('FAKE-JOB-EXIT');
    const a = await enrolled(l, m);
    m.lockHeldElsewhere = true;
    const locked = await a.run();
    expect(locked).toMatchObject({
      exitCode: 5,
      finalLine: 'Keywarden exit=5: another run holds the lock C:\\ProgramData\\Keywarden\\agent.lock (waited 120 seconds); this run did nothing',
    });
    expect(a.savedState!.lastExitCode).toBe(0);
    m.lockHeldElsewhere = false;
    m.elevated = false;
    expect((await a.run()).exitCode).toBe(3);
  });
});

// ------------------------------------------------------------------------------------------------
// The escrow checker catches an agent that gets the order wrong; the real agent passes the same case.
// ------------------------------------------------------------------------------------------------

/** Removes the old recovery password first, then adds and escrows the new one. */
class RemovesFirstAgent extends TestAgent {
  protected override async invokeRotateJob(job: Job, result: JobResult): Promise<void> {
    const volume = this.getJobVolume(job.mountPoint!);
    this.removeProtector(volume, job.protectorId!);
    const escrow = await this.getEscrowedRecoveryPassword(volume, job.id);
    Object.assign(result, { status: 'succeeded', detail: 'rotated', newProtectorId: escrow.protectorId, removedProtectorId: job.protectorId });
  }
}
/** Reports a backup done whatever the vault answered. */
class TrustingBackupAgent extends TestAgent {
  protected override async invokeBackupJob(job: Job, result: JobResult): Promise<void> {
    await this.getKeyUploadStatus(this.getProtectorKey(job.mountPoint!, job.protectorId!), job.id);
    Object.assign(result, { status: 'succeeded', detail: 'uploaded' });
  }
}
/** Starts encryption, then escrows. */
class EncryptsFirstAgent extends TestAgent {
  protected override async invokeEnableEncryptionJob(job: Job, result: JobResult): Promise<void> {
    const volume = this.getJobVolume(job.mountPoint!);
    this.invokeVolumeMethod(volume, 'ProtectKeyWithTPM');
    this.invokeVolumeMethod(volume, 'Encrypt', { EncryptionFlags: 1 });
    const escrow = await this.getEscrowedRecoveryPassword(volume, job.id);
    Object.assign(result, { status: 'succeeded', detail: 'encryption started', newProtectorId: escrow.protectorId });
  }
}
/** Turns protection on, then escrows. */
class ProtectsFirstAgent extends TestAgent {
  protected override async invokeResumeProtectionJob(job: Job, result: JobResult): Promise<void> {
    const volume = this.getJobVolume(job.mountPoint!);
    this.invokeVolumeMethod(volume, 'EnableKeyProtectors');
    const escrow = await this.getEscrowedRecoveryPassword(volume, job.id);
    Object.assign(result, { status: 'succeeded', detail: 'protection turned on', newProtectorId: escrow.protectorId });
  }
}

describe(`the escrow checker against wrong agents on ${ENGINE}`, () => {
  let l: Lab;
  beforeAll(async () => {
    l = await lab();
  });
  afterAll(() => l.t.close());

  type Make = (send: Transport, m: SimMachine) => TestAgent;
  const real: Make = (s, m) => new TestAgent(s, m);

  /** Runs one scenario with an agent and returns what the checker saw. */
  async function scenario(
    name: string,
    make: Make,
    setUp: (m: SimMachine) => void,
    job: (m: SimMachine) => { kind: string; mountPoint: string; protectorId?: string },
  ) {
    const m = new SimMachine(name);
    setUp(m);
    const start = l.checker.violations.length;
    const checks = l.checker.checks;
    const a = await enrolled(l, m, { agent: make });
    await queue(l, a.deviceId!, job(m));
    const run = await a.run();
    const violations = l.checker.violations.slice(start);
    return { run, violations, checks: l.checker.checks - checks };
  }

  it('rotation: removing the old protector before the new one is stored is caught; the real agent is not', async () => {
    const job = (m: SimMachine) => ({ kind: 'rotate', mountPoint: 'C:', protectorId: m.recoveryPasswords('C:')[0]!.id });
    const wrong = await scenario(
      'FAKE-WRONG-ROT',
      (s, m) => new RemovesFirstAgent(s, m),
      () => {},
      job,
    );
    expect(wrong.violations).toEqual([expect.objectContaining({ method: 'DeleteKeyProtector', volume: 'C:' })]);
    const right = await scenario('FAKE-RIGHT-ROT', real, () => {}, job);
    expect(right.run.exitCode).toBe(0);
    expect(right.checks).toBeGreaterThan(0);
    expect(right.violations).toEqual([]);
  });

  it('backup: reporting a backup done that the vault did not store is caught; the real agent reports it failed', async () => {
    // The protector's key ID belongs to another device of the client: the vault answers "conflict".
    const shared = newProtectorId();
    const other = new SimMachine('FAKE-WRONG-BAK-OTHER');
    other.volume('C:').protectors.push({ id: shared, type: 'RecoveryPassword', password: newRecoveryPassword() });
    await enrolled(l, other);
    const setUp = (m: SimMachine) => void m.volume('C:').protectors.push({ id: shared, type: 'RecoveryPassword', password: newRecoveryPassword() });
    const job = () => ({ kind: 'backup', mountPoint: 'C:', protectorId: shared });
    const wrong = await scenario('FAKE-WRONG-BAK', (s, m) => new TrustingBackupAgent(s, m), setUp, job);
    expect(wrong.violations).toEqual([expect.objectContaining({ method: 'report backup succeeded', volume: 'C:' })]);
    const right = await scenario('FAKE-RIGHT-BAK', real, setUp, job);
    expect(right.run.jobResults[0]).toMatchObject({ status: 'failed', detail: expect.stringMatching(/^the server answered conflict/) });
    expect(right.violations).toEqual([]);
  });

  it('enable-encryption: encrypting before a recovery password is stored is caught; the real agent is not', async () => {
    const setUp = (m: SimMachine) =>
      void Object.assign(m.volume('C:'), { status: 'FullyDecrypted', protection: 'Off', method: 'None', percentage: 0, protectors: [] });
    const job = () => ({ kind: 'enable-encryption', mountPoint: 'C:' });
    const wrong = await scenario('FAKE-WRONG-ENC', (s, m) => new EncryptsFirstAgent(s, m), setUp, job);
    expect(wrong.violations).toEqual([expect.objectContaining({ method: 'Encrypt', volume: 'C:' })]);
    const right = await scenario('FAKE-RIGHT-ENC', real, setUp, job);
    expect(right.run.exitCode).toBe(0);
    expect(right.checks).toBeGreaterThan(0);
    expect(right.violations).toEqual([]);
  });

  it('resume-protection: turning protection on before a recovery password is stored is caught; the real agent is not', async () => {
    // Suspended, TPM only: nothing escrowed to unlock it with.
    const setUp = (m: SimMachine) =>
      void Object.assign(m.volume('C:'), { protection: 'Off', protectors: m.volume('C:').protectors.filter((p) => p.type === 'Tpm') });
    const job = () => ({ kind: 'resume-protection', mountPoint: 'C:' });
    const wrong = await scenario('FAKE-WRONG-RES', (s, m) => new ProtectsFirstAgent(s, m), setUp, job);
    expect(wrong.violations).toEqual([expect.objectContaining({ method: 'EnableKeyProtectors', volume: 'C:' })]);
    const right = await scenario('FAKE-RIGHT-RES', real, setUp, job);
    expect(right.run.exitCode).toBe(0);
    expect(right.checks).toBeGreaterThan(0);
    expect(right.violations).toEqual([]);
  });
});
