import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type Session, type TestApp } from './helpers/app.js';
import { ENGINE } from './helpers/engine.js';
import { auditEvents } from './helpers/http.js';
import { WireDevice, braced, listen, newProtector, request, volume, type WireVolume } from './helpers/agent-wire.js';
import type { JobView } from '../src/modules/agent/agent.service.js';

/** The API's job view (the service type the route's schema restates). */
type Job = JobView;

/** Encrypted, TPM only: no recovery password (finding recovery_password_missing). */
const tpmOnly = (): WireVolume[] => [volume('C:', { protectors: [newProtector('Tpm')] })];
const decrypted = (mountPoint: string, over: Partial<WireVolume> = {}) =>
  volume(mountPoint, { volumeStatus: 'FullyDecrypted', protectionStatus: 'Off', encryptionMethod: 'None', encryptionPercentage: 0, protectors: [], ...over });

/**
 * The policy's enforce fields turn compliance findings into agent jobs: add a recovery password,
 * re-escrow, enable encryption, resume protection, rotate by age; only for devices whose agent may
 * act, never twice, not again within a day after one ended, and audited as the policy's doing.
 */
describe(`policy enforcement queues agent jobs (${ENGINE})`, () => {
  let t: TestApp;
  let base: string;
  let owner: Session;
  let n = 0;

  const api = (method: string, url: string, body?: unknown) => request(base, method, `/api/v1${url}`, { headers: owner.headers, body });
  const jobsOf = async (d: WireDevice): Promise<Job[]> => (await api('GET', `/devices/${d.deviceId}/jobs`)).json;
  const newClient = async (name: string) => {
    const id = (await api('POST', '/clients', { name })).json.id as string;
    const token = (await api('POST', '/agent/enrollment-tokens', { clientId: id })).json.token as string;
    return { id, token };
  };
  const setPolicy = async (clientId: string, set: Record<string, unknown>) => {
    const r = await api('PATCH', `/clients/${clientId}/compliance/policy`, { set });
    expect(r.status, r.body).toBe(200);
    return r.json;
  };
  const evaluate = async (clientId: string) => expect((await api('POST', '/compliance/evaluate', { clientId })).status).toBe(200);
  const device = async (token: string, volumes: WireVolume[]) => {
    const d = new WireDevice(base, `FAKE-ENF-${String(++n).padStart(2, '0')}`, volumes);
    await d.settle(token);
    return d;
  };

  beforeAll(async () => {
    t = await createTestApp();
    base = await listen(t.app);
    owner = await t.signIn((await t.addUser('owner', 'all', 'owner@example.test')).email);
  });
  afterAll(() => t.close());

  it("has the enforce fields off by default, with Windows' method and directory backups after rotation on", async () => {
    const c = await newClient('Defaults Co');
    const p = (await api('GET', `/clients/${c.id}/compliance/policy`)).json;
    expect(p.effective).toMatchObject({
      enforceEscrow: false,
      enforceEncryption: false,
      enforceKeyAge: false,
      encryptionMethod: 'default',
      directoryBackupAfterRotation: true,
    });
    expect(p.sources).toMatchObject({ enforceEscrow: 'builtin', encryptionMethod: 'builtin' });
    const bad = await api('PATCH', `/clients/${c.id}/compliance/policy`, { set: { encryptionMethod: 'Aes512' } });
    expect(bad.status).toBe(400);
    expect(bad.json.message).toMatch(/encryptionMethod/);
    const d = await device(c.token, tpmOnly());
    const findings = (await api('GET', `/devices/${d.deviceId}/compliance`)).json.findings.map((f: { code: string }) => f.code);
    expect(findings).toContain('recovery_password_missing');
    expect(await jobsOf(d)).toEqual([]);
  });

  it('enforceEscrow: adds a recovery password where a drive has none, once, audited as the policy; done when escrowed', async () => {
    const c = await newClient('Escrow Co');
    const d = await device(c.token, tpmOnly());
    expect(await jobsOf(d)).toEqual([]);
    await setPolicy(c.id, { enforceEscrow: true });
    const jobs = await jobsOf(d);
    expect(jobs).toEqual([expect.objectContaining({ kind: 'add-recovery-password', state: 'pending', mountPoint: 'C:', protectorId: null, origin: 'policy' })]);
    const audit = await auditEvents(t, { action: 'job.create', targetId: jobs[0]!.id });
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({
      actorType: 'system',
      actorName: 'Keywarden (compliance policy)',
      details: { kind: 'add-recovery-password', why: 'policy', finding: 'recovery_password_missing' },
    });
    // Evaluating again (the hourly task, a check-in) queues nothing more.
    await evaluate(c.id);
    await d.checkin();
    expect((await jobsOf(d)).map((j) => j.id)).toEqual([jobs[0]!.id]);

    // The agent does it: escrow first, then done; the finding goes and nothing new is queued.
    const offered = (await d.checkin()).json.jobs;
    expect(offered).toEqual([
      { id: jobs[0]!.id, kind: 'add-recovery-password', mountPoint: 'C:', protectorId: null, encryptionMethod: null, usedSpaceOnly: null },
    ]);
    const fresh = newProtector();
    d.volume('C:').protectors.push(fresh);
    expect((await d.upload([{ mountPoint: 'C:', id: fresh.id, password: fresh.password! }], jobs[0]!.id)).json.stored[0].status).toBe('stored');
    await d.checkin({ jobResults: [{ jobId: jobs[0]!.id, status: 'succeeded', newProtectorId: fresh.id }] });
    await d.checkin();
    await evaluate(c.id);
    expect((await jobsOf(d)).map((j) => `${j.kind}:${j.state}`)).toEqual(['add-recovery-password:succeeded']);
    expect((await api('GET', `/devices/${d.deviceId}/compliance`)).json.status).toBe('compliant');
  });

  it('enforceEscrow: re-escrows a recovery password the vault does not hold', async () => {
    const c = await newClient('Reescrow Co');
    await setPolicy(c.id, { enforceEscrow: true });
    const d = new WireDevice(base, 'FAKE-ENF-UNESCROWED');
    await d.enroll(c.token);
    // The device reports its password but never uploads it (the upload failed).
    expect((await d.checkin()).json.requestPasswords).toHaveLength(1);
    await evaluate(c.id);
    const k = d.recoveryPasswords('C:')[0]!;
    expect(await jobsOf(d)).toEqual([expect.objectContaining({ kind: 're-escrow', mountPoint: 'C:', protectorId: braced(k.id), origin: 'policy' })]);
  });

  it('a job the policy queued that failed is not queued again within 24 hours, then it is', async () => {
    const c = await newClient('Backoff Co');
    await setPolicy(c.id, { enforceEscrow: true });
    // Queued by the device's first check-in (compliance runs in it).
    const d = await device(c.token, tpmOnly());
    const [job] = await jobsOf(d);
    expect(job).toMatchObject({ kind: 'add-recovery-password', origin: 'policy' });
    for (let run = 1; run <= 3; run++) {
      expect((await d.checkin()).json.jobs.map((j: Job) => j.id)).toEqual([job!.id]);
      await d.checkin({ jobResults: [{ jobId: job!.id, status: 'failed', detail: 'FAKE: the volume refused the protector' }] });
    }
    expect((await jobsOf(d)).map((j) => `${j.kind}:${j.state}:${j.attempts}`)).toEqual(['add-recovery-password:failed:3']);
    await evaluate(c.id);
    expect(await jobsOf(d)).toHaveLength(1);
    // A day later the policy tries again.
    const dayAgo = new Date(Date.now() - 25 * 3_600_000).toISOString();
    await t.container.database.db.updateTable('jobs').set({ finished_at: dayAgo }).where('id', '=', job!.id).execute();
    await evaluate(c.id);
    expect((await jobsOf(d)).map((j) => `${j.kind}:${j.state}`).sort()).toEqual(['add-recovery-password:failed', 'add-recovery-password:pending']);
  });

  it("enforceEncryption: encrypts the OS drive first with the policy's method, then data drives; resumes suspended protection; leaves a decrypting drive alone", async () => {
    const c = await newClient('Encrypt Co');
    await setPolicy(c.id, { enforceEncryption: true, encryptionMethod: 'XtsAes256', suspendedGraceHours: 0 });
    const bare = await device(c.token, [decrypted('C:', { volumeType: 'OperatingSystem' }), decrypted('D:')]);
    const dataOnly = await device(c.token, [volume('C:'), decrypted('D:')]);
    const decrypting = await device(c.token, [volume('C:', { volumeStatus: 'DecryptionInProgress', encryptionPercentage: 40 })]);
    const suspended = await device(c.token, [volume('C:', { protectionStatus: 'Off' })]);
    await evaluate(c.id);

    expect(await jobsOf(bare)).toEqual([
      expect.objectContaining({ kind: 'enable-encryption', mountPoint: 'C:', encryptionMethod: 'XtsAes256', usedSpaceOnly: true, origin: 'policy' }),
    ]);
    expect((await bare.checkin()).json.jobs).toEqual([
      { id: (await jobsOf(bare))[0]!.id, kind: 'enable-encryption', mountPoint: 'C:', protectorId: null, encryptionMethod: 'XtsAes256', usedSpaceOnly: true },
    ]);
    expect(await jobsOf(dataOnly)).toEqual([expect.objectContaining({ kind: 'enable-encryption', mountPoint: 'D:', encryptionMethod: 'XtsAes256' })]);
    expect(await jobsOf(decrypting)).toEqual([]);
    expect(await jobsOf(suspended)).toEqual([
      expect.objectContaining({ kind: 'resume-protection', mountPoint: 'C:', encryptionMethod: null, usedSpaceOnly: null }),
    ]);
    const audit = await auditEvents(t, { action: 'job.create', targetId: (await jobsOf(suspended))[0]!.id });
    expect(audit[0]!.details).toMatchObject({ why: 'policy', finding: 'protection_suspended' });

    // Windows' own method: the offer asks for none.
    await setPolicy(c.id, { encryptionMethod: 'default' });
    const later = await device(c.token, [volume('C:'), decrypted('E:')]);
    expect(await jobsOf(later)).toEqual([
      expect.objectContaining({ kind: 'enable-encryption', mountPoint: 'E:', encryptionMethod: null, usedSpaceOnly: true }),
    ]);
  });

  it('enforceKeyAge: rotates recovery passwords older than maxKeyAgeDays', async () => {
    const c = await newClient('Age Co');
    const d = await device(c.token, [volume('C:')]);
    const k = d.recoveryPasswords('C:')[0]!;
    const old = new Date(Date.now() - 40 * 86_400_000).toISOString();
    await t.container.database.db
      .updateTable('recovery_keys')
      .set({ first_seen_at: old, source_created_at: old })
      .where('device_id', '=', d.deviceId!)
      .execute();
    await setPolicy(c.id, { maxKeyAgeDays: 30 });
    expect((await api('GET', `/devices/${d.deviceId}/compliance`)).json.findings.map((f: { code: string }) => f.code)).toContain('key_rotation_due');
    expect(await jobsOf(d)).toEqual([]); // a finding only, until the policy enforces it
    await setPolicy(c.id, { enforceKeyAge: true });
    expect(await jobsOf(d)).toEqual([expect.objectContaining({ kind: 'rotate', mountPoint: 'C:', protectorId: braced(k.id), origin: 'policy' })]);
  });

  it('queues nothing for a device whose agent was revoked, waits for a link, is on legal hold or exempt', async () => {
    const c = await newClient('Unfit Co');
    const revoked = await device(c.token, tpmOnly());
    expect((await api('POST', `/devices/${revoked.deviceId}/revoke-agent`)).status).toBe(200);
    const held = await device(c.token, tpmOnly());
    expect((await api('PUT', `/devices/${held.deviceId}/legal-hold`, { hold: true, reason: 'FAKE litigation' })).status).toBe(200);
    const exempt = await device(c.token, tpmOnly());
    expect((await api('POST', '/compliance/exemptions', { deviceId: exempt.deviceId, reason: 'FAKE kiosk, no recovery password by design' })).status).toBe(201);
    const real = await device(c.token, [volume('C:')]);
    const twin = new WireDevice(base, 'FAKE-ENF-TWIN', tpmOnly());
    Object.assign(twin, { serial: real.serial, smbiosUuid: real.smbiosUuid });
    expect((await twin.enroll(c.token)).json.pendingApproval).toBe(true);
    await twin.checkin();

    await setPolicy(c.id, { enforceEscrow: true, enforceEncryption: true });
    await evaluate(c.id);
    for (const d of [revoked, held, exempt, twin]) expect(await jobsOf(d), d.hostname).toEqual([]);
    // The same finding on a fit device does get its job (the rule above is what held the others back).
    const fit = await device(c.token, tpmOnly());
    expect((await jobsOf(fit)).map((j) => j.kind)).toEqual(['add-recovery-password']);
  });
});
