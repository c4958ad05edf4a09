import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type Session, type TestApp } from './helpers/app.js';
import { ENGINE } from './helpers/engine.js';
import { auditEvents } from './helpers/http.js';
import { randomRecoveryPassword } from './helpers/keys.js';
import { WireDevice, braced, listen, manageBdeProtectors, manageBdeStatus, newProtector, request, volume, type WireVolume } from './helpers/agent-wire.js';
import type { Actor } from '../src/modules/authz/authz.js';
import type { JobView } from '../src/modules/agent/agent.service.js';

const NOT_ESCROWED = 'reported done before a recovery password was escrowed';
/** The API's job view (the service type the route's schema restates). */
type Job = JobView & { device?: { id: string; name: string } };

/**
 * The server side of agent jobs, spoken to over HTTP with hand-built protocol bodies: the new job
 * kinds and their validation, the escrow-first rule, backups that never succeed on a conflict,
 * attempts that are real attempts, the cap on requested passwords, manage-bde reports with
 * problems, directory backups after a rotation, and bulk queueing per client.
 */
describe(`agent jobs on the server (${ENGINE})`, () => {
  let t: TestApp;
  let base: string;
  let owner: Session;
  let contoso: string;
  let fabrikam: string;
  let contosoToken: string;
  let fabrikamToken: string;
  let n = 0;

  const api = (method: string, url: string, body?: unknown, headers: Record<string, string> = owner.headers) =>
    request(base, method, `/api/v1${url}`, { headers, body });
  const queue = (deviceId: string, body: Record<string, unknown>) => api('POST', `/devices/${deviceId}/jobs`, body);
  const jobsOf = async (deviceId: string): Promise<Job[]> => (await api('GET', `/devices/${deviceId}/jobs`)).json;
  const jobOf = async (deviceId: string, id: string): Promise<Job> => (await jobsOf(deviceId)).find((j) => j.id === id)!;
  const keysOf = async (deviceId: string): Promise<{ keyId: string; state: string; device: { id: string } | null }[]> =>
    ((await api('GET', '/keys?limit=1000')).json as { keyId: string; state: string; device: { id: string } | null }[]).filter((k) => k.device?.id === deviceId);
  const stateOfKey = async (deviceId: string, id: string) => (await keysOf(deviceId)).find((k) => braced(k.keyId) === braced(id))?.state;
  const device = async (volumes?: WireVolume[], token = () => contosoToken) => {
    const d = new WireDevice(base, `FAKE-JOBS-${String(++n).padStart(2, '0')}`, volumes);
    await d.settle(token());
    return d;
  };
  const enrollToken = async (clientId: string) => (await api('POST', '/agent/enrollment-tokens', { clientId })).json.token as string;

  beforeAll(async () => {
    t = await createTestApp();
    base = await listen(t.app);
    owner = await t.signIn((await t.addUser('owner', 'all', 'owner@example.test')).email);
    contoso = (await api('POST', '/clients', { name: 'Contoso' })).json.id;
    fabrikam = (await api('POST', '/clients', { name: 'Fabrikam' })).json.id;
    contosoToken = await enrollToken(contoso);
    fabrikamToken = await enrollToken(fabrikam);
  });
  afterAll(() => t.close());

  it('queues the new kinds with their own validation, and offers enable-encryption with its method', async () => {
    const d = await device([
      volume('C:'),
      volume('D:', { volumeStatus: 'FullyDecrypted', protectionStatus: 'Off', encryptionMethod: 'None', encryptionPercentage: 0, protectors: [] }),
    ]);
    const onC = d.recoveryPasswords('C:')[0]!;
    const refused: [Record<string, unknown>, RegExp | null][] = [
      [{ kind: 'enable-encryption' }, /enable-encryption job needs the mountPoint/],
      [{ kind: 'add-recovery-password', mountPoint: 'C:', protectorId: onC.id }, /acts on the whole volume C:; leave protectorId out/],
      [{ kind: 'resume-protection', mountPoint: '  ' }, /mountPoint is empty/],
      [{ kind: 're-escrow' }, /needs the mountPoint of the volume, the protectorId of a recovery password, or both/],
      [{ kind: 'backup', mountPoint: 'C:' }, /backup job needs the protectorId/],
      [{ kind: 'backup-to-entra', mountPoint: 'C:', protectorId: 'not-a-guid' }, /protectorId/],
      [{ kind: 'rotate', mountPoint: 'C:', encryptionMethod: 'XtsAes256' }, /Only an enable-encryption job takes encryptionMethod/],
      [{ kind: 'resume-protection', mountPoint: 'C:', usedSpaceOnly: false }, /Only an enable-encryption job takes/],
      [{ kind: 'enable-encryption', mountPoint: 'D:', encryptionMethod: 'Aes512' }, null],
      [{ kind: 'format-disk', mountPoint: 'C:' }, null],
    ];
    for (const [body, message] of refused) {
      const r = await queue(d.deviceId!, body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      if (message) expect(r.json.message).toMatch(message);
    }

    const enable = await queue(d.deviceId!, { kind: 'enable-encryption', mountPoint: 'd:', encryptionMethod: 'XtsAes256', usedSpaceOnly: false });
    expect(enable.status, enable.body).toBe(201);
    expect(enable.json).toMatchObject({
      kind: 'enable-encryption',
      state: 'pending',
      mountPoint: 'D:',
      protectorId: null,
      encryptionMethod: 'XtsAes256',
      usedSpaceOnly: false,
      origin: 'manual',
      newProtectorId: null,
    });
    // The same work again is the same job.
    expect((await queue(d.deviceId!, { kind: 'enable-encryption', mountPoint: 'D:', encryptionMethod: 'XtsAes256', usedSpaceOnly: false })).json.id).toBe(
      enable.json.id,
    );
    const windowsDefault = await queue(d.deviceId!, { kind: 'enable-encryption', mountPoint: 'E:' });
    expect(windowsDefault.json).toMatchObject({ encryptionMethod: null, usedSpaceOnly: true });
    const resume = (await queue(d.deviceId!, { kind: 'resume-protection', mountPoint: 'C:' })).json;
    // A protector alone: the volume is the one the vault knows it on.
    const backup = await queue(d.deviceId!, { kind: 'backup-to-ad', protectorId: onC.id.replace(/[{}]/g, '').toLowerCase() });
    expect(backup.status, backup.body).toBe(201);
    expect(backup.json).toMatchObject({ mountPoint: 'C:', protectorId: braced(onC.id), encryptionMethod: null, usedSpaceOnly: null });

    const offers = (await d.checkin()).json.jobs as Record<string, unknown>[];
    expect(offers.find((o) => o.id === enable.json.id)).toEqual({
      id: enable.json.id,
      kind: 'enable-encryption',
      mountPoint: 'D:',
      protectorId: null,
      encryptionMethod: 'XtsAes256',
      usedSpaceOnly: false,
    });
    expect(offers.find((o) => o.id === windowsDefault.json.id)).toMatchObject({ encryptionMethod: null, usedSpaceOnly: true });
    expect(offers.find((o) => o.id === resume.id)).toEqual({
      id: resume.id,
      kind: 'resume-protection',
      mountPoint: 'C:',
      protectorId: null,
      encryptionMethod: null,
      usedSpaceOnly: null,
    });
    expect(offers.find((o) => o.id === backup.json.id)).toEqual({
      id: backup.json.id,
      kind: 'backup-to-ad',
      mountPoint: 'C:',
      protectorId: braced(onC.id),
      encryptionMethod: null,
      usedSpaceOnly: null,
    });
  });

  for (const kind of ['enable-encryption', 'resume-protection', 'add-recovery-password'] as const) {
    it(`${kind}: "done" before a recovery password of its volume was escrowed with its job id puts it back to pending`, async () => {
      const d = await device([
        volume('C:'),
        volume(
          'D:',
          kind === 'enable-encryption'
            ? { volumeStatus: 'FullyDecrypted', protectionStatus: 'Off', encryptionMethod: 'None', encryptionPercentage: 0, protectors: [] }
            : {},
        ),
      ]);
      const job = (await queue(d.deviceId!, { kind, mountPoint: 'D:' })).json as Job;
      expect((await d.checkin()).json.jobs.map((j: Job) => j.id)).toEqual([job.id]);

      // Attack 1: success with no upload at all.
      const lie = await d.checkin({ jobResults: [{ jobId: job.id, status: 'succeeded', detail: 'done', newProtectorId: braced(randomUUID()) }] });
      expect(lie.status).toBe(200);
      expect(lie.json.jobs).toEqual([]);
      expect(await jobOf(d.deviceId!, job.id)).toMatchObject({ state: 'pending', detail: NOT_ESCROWED, newProtectorId: null });

      // Attack 2: an escrowed password, but of another volume.
      expect((await d.checkin()).json.jobs.map((j: Job) => j.id)).toEqual([job.id]);
      const other = d.recoveryPasswords('C:')[0]!;
      expect((await d.upload([{ mountPoint: 'C:', id: other.id, password: other.password! }], job.id)).json.stored[0].status).toBe('duplicate');
      await d.checkin({ jobResults: [{ jobId: job.id, status: 'succeeded', detail: 'done' }] });
      expect(await jobOf(d.deviceId!, job.id)).toMatchObject({ state: 'pending', detail: NOT_ESCROWED, newProtectorId: null });

      // Attack 3: a password of the volume that the vault answers "conflict" (differs under a known key ID).
      expect((await d.checkin()).json.jobs.map((j: Job) => j.id)).toEqual([job.id]);
      if (kind !== 'enable-encryption') {
        const known = d.recoveryPasswords('D:')[0]!;
        expect((await d.upload([{ mountPoint: 'D:', id: known.id, password: randomRecoveryPassword() }], job.id)).json.stored[0].status).toBe('conflict');
        expect((await jobOf(d.deviceId!, job.id)).newProtectorId).toBeNull();
      }

      // The real thing: a new recovery password on D:, stored, then done.
      const fresh = newProtector();
      d.volume('D:').protectors.push(fresh);
      const up = await d.upload([{ mountPoint: 'D:', id: fresh.id, password: fresh.password! }], job.id);
      expect(up.json.stored[0].status).toBe('stored');
      expect(await jobOf(d.deviceId!, job.id)).toMatchObject({ state: 'sent', newProtectorId: braced(fresh.id) });
      const done = await d.checkin({ jobResults: [{ jobId: job.id, status: 'succeeded', detail: 'protection turned on', newProtectorId: fresh.id }] });
      expect(done.json.jobs).toEqual([]);
      expect(await jobOf(d.deviceId!, job.id)).toMatchObject({
        state: 'succeeded',
        detail: 'protection turned on',
        newProtectorId: braced(fresh.id),
        attempts: 3,
      });
      const updates = (await auditEvents(t, { action: 'job.update', targetId: job.id })).map(
        (e) => `${(e.details as { to: string }).to}:${(e.details as { why?: string }).why ?? ''}`,
      );
      expect(updates.filter((u) => u === `pending:${NOT_ESCROWED}`)).toHaveLength(2);
      expect(updates[0]).toBe('succeeded:protection turned on');
    });
  }

  it('backup and re-escrow never succeed on a conflict, and a "done" without an escrowed upload is refused (L10)', async () => {
    const d = await device([volume('C:'), volume('D:')]);
    const k = d.recoveryPasswords('C:')[0]!;
    for (const kind of ['backup', 're-escrow'] as const) {
      const job = (await queue(d.deviceId!, { kind, mountPoint: 'C:', protectorId: k.id })).json as Job;
      expect((await d.checkin()).json.jobs.map((j: Job) => j.id)).toEqual([job.id]);
      // The same key ID with another password: the vault keeps both and answers conflict.
      const clash = await d.upload([{ mountPoint: 'C:', id: k.id, password: randomRecoveryPassword() }], job.id);
      expect(clash.json.stored[0].status).toBe('conflict');
      expect(await jobOf(d.deviceId!, job.id)).toMatchObject({ state: 'sent', detail: `the vault answered conflict for ${braced(k.id)}: not escrowed` });
      await d.checkin({ jobResults: [{ jobId: job.id, status: 'succeeded', detail: 'uploaded' }] });
      expect((await jobOf(d.deviceId!, job.id)).state).toBe('pending');
      // The real password: a duplicate of what the vault holds, escrowed.
      expect((await d.checkin()).json.jobs.map((j: Job) => j.id)).toEqual([job.id]);
      expect((await d.upload([{ mountPoint: 'C:', id: k.id, password: k.password! }], job.id)).json.stored[0].status).toBe('duplicate');
      expect(await jobOf(d.deviceId!, job.id)).toMatchObject({ state: 'succeeded', newProtectorId: braced(k.id) });
    }

    // re-escrow of a whole volume: done only when every recovery password it reports is in the vault.
    const unasked = newProtector();
    d.volume('D:').protectors.push(unasked);
    expect((await d.checkin()).json.requestPasswords).toEqual([{ mountPoint: 'D:', protectorId: braced(unasked.id) }]); // not uploaded
    const all = (await queue(d.deviceId!, { kind: 're-escrow', mountPoint: 'D:' })).json as Job;
    expect((await d.checkin()).json.jobs.map((j: Job) => j.id)).toEqual([all.id]);
    const old = d.recoveryPasswords('D:')[0]!;
    expect((await d.upload([{ mountPoint: 'D:', id: old.id, password: old.password! }], all.id)).json.stored[0].status).toBe('duplicate');
    await d.checkin({ jobResults: [{ jobId: all.id, status: 'succeeded' }] });
    expect(await jobOf(d.deviceId!, all.id)).toMatchObject({ state: 'pending', detail: `${NOT_ESCROWED}: ${braced(unasked.id)} on D: is not in the vault` });
    expect((await d.checkin()).json.jobs.map((j: Job) => j.id)).toEqual([all.id]);
    expect((await d.upload([{ mountPoint: 'D:', id: unasked.id, password: unasked.password! }], all.id)).json.stored[0].status).toBe('stored');
    await d.checkin({ jobResults: [{ jobId: all.id, status: 'succeeded', detail: 'all escrowed' }] });
    expect(await jobOf(d.deviceId!, all.id)).toMatchObject({ state: 'succeeded', detail: 'all escrowed' });
  });

  it('offers no job in a check-in that carries results, so a failing job gets exactly three real attempts (M4)', async () => {
    const d = await device();
    const job = (await queue(d.deviceId!, { kind: 'add-recovery-password', mountPoint: 'C:' })).json as Job;
    // A check-in reporting any result (here one the server does not know) gets no job: it would be ignored.
    expect((await d.checkin({ jobResults: [{ jobId: randomUUID(), status: 'succeeded' }] })).json.jobs).toEqual([]);
    expect((await jobOf(d.deviceId!, job.id)).attempts).toBe(0);
    for (let run = 1; run <= 3; run++) {
      const first = await d.checkin();
      expect(
        first.json.jobs.map((j: Job) => j.id),
        `run ${run}`,
      ).toEqual([job.id]);
      expect((await jobOf(d.deviceId!, job.id)).attempts).toBe(run);
      const second = await d.checkin({ jobResults: [{ jobId: job.id, status: 'failed', detail: `FAKE failure ${run}` }] });
      expect(second.json.jobs, `run ${run}: the job is pending again but not offered here`).toEqual([]);
    }
    expect(await jobOf(d.deviceId!, job.id)).toMatchObject({ state: 'failed', attempts: 3, maxAttempts: 3, detail: 'FAKE failure 3' });
    expect((await d.checkin()).json.jobs).toEqual([]);
  });

  it('asks for at most 128 passwords per check-in, the rest at the next ones; an upload carries at most 32 (M7)', async () => {
    const many = Array.from({ length: 5 }, (_, i) =>
      volume(`${String.fromCharCode(69 + i)}:`, { protectors: Array.from({ length: 30 }, () => newProtector()) }),
    );
    const d = new WireDevice(base, 'FAKE-JOBS-FILESERVER', [volume('C:'), ...many]);
    await d.enroll(contosoToken);
    const first = await d.checkin();
    expect(first.status).toBe(200);
    expect(first.json.requestPasswords).toHaveLength(128);
    const all = d.volumes.flatMap((v) => v.protectors.filter((p) => p.password).map((p) => ({ mountPoint: v.mountPoint, id: p.id, password: p.password! })));
    expect(all).toHaveLength(151);
    expect((await d.upload(all.slice(0, 33))).status).toBe(400);
    for (const u of await d.uploadRequested(first.json.requestPasswords))
      expect(u.json.stored.every((s: { status: string }) => s.status === 'stored')).toBe(true);
    const second = await d.checkin();
    expect(second.json.requestPasswords).toHaveLength(23);
    await d.uploadRequested(second.json.requestPasswords);
    expect((await d.checkin()).json.requestPasswords).toEqual([]);
  });

  it('a report with problems supersedes no key and opens no "no recovery password" where the protector text is missing (M1)', async () => {
    const c = volume('C:', { protectors: [newProtector('Tpm'), newProtector()] });
    const dvol = volume('D:', { protectors: [newProtector()] });
    const d = await device([c, dvol]);
    const onD = d.recoveryPasswords('D:')[0]!;
    expect(await stateOfKey(d.deviceId!, onD.id)).toBe('active');

    // The fallback read both volumes' status but only C:'s protectors (a failed -protectors -get).
    const partial = await d.checkin({ volumes: null, manageBde: { status: manageBdeStatus([c, dvol]), protectors: manageBdeProtectors(d, [c]) } });
    expect(partial.status, partial.body).toBe(200);
    expect(await stateOfKey(d.deviceId!, onD.id)).toBe('active');
    const findings = (await api('GET', `/findings?deviceId=${d.deviceId}&open=true`)).json as { kind: string }[];
    expect(findings.map((f) => f.kind)).not.toContain('no_recovery_password');
    const facts = (await api('GET', `/devices/${d.deviceId}`)).json.facts as { reportProblems?: string[] };
    expect(facts.reportProblems?.join(' ')).toMatch(/D:.*the status lists key protectors but the protector text has none/);
    const compliance = (await api('GET', `/devices/${d.deviceId}/compliance`)).json as { findings: { code: string }[] };
    expect(compliance.findings.map((f) => f.code)).not.toContain('recovery_password_missing');

    // A complete report without D:'s protector is the truth: superseded, and the finding opens.
    const complete = await d.checkin({ volumes: d.volumesBody().map((v) => (v.mountPoint === 'D:' ? { ...v, keyProtectors: [] } : v)) });
    expect(complete.status).toBe(200);
    expect(await stateOfKey(d.deviceId!, onD.id)).toBe('superseded');
    expect(((await api('GET', `/findings?deviceId=${d.deviceId}&open=true`)).json as { kind: string }[]).map((f) => f.kind)).toContain('no_recovery_password');
    expect(((await api('GET', `/devices/${d.deviceId}`)).json.facts as { reportProblems?: string[] }).reportProblems).toBeUndefined();
  });

  it('after a rotation, the new recovery password is backed up to the directories the device is joined to, unless the policy says no (M3)', async () => {
    const rotate = async (d: WireDevice) => {
      const old = d.recoveryPasswords('C:')[0]!;
      const job = (await queue(d.deviceId!, { kind: 'rotate', mountPoint: 'C:', protectorId: old.id })).json as Job;
      expect((await d.checkin()).json.jobs.map((j: Job) => j.id)).toEqual([job.id]);
      // "Done" with nothing escrowed is refused, as for every escrow-first kind.
      await d.checkin({ jobResults: [{ jobId: job.id, status: 'succeeded', newProtectorId: braced(randomUUID()), removedProtectorId: old.id }] });
      expect(await jobOf(d.deviceId!, job.id)).toMatchObject({ state: 'pending', detail: NOT_ESCROWED });
      expect(await stateOfKey(d.deviceId!, old.id)).toBe('active');
      expect((await d.checkin()).json.jobs.map((j: Job) => j.id)).toEqual([job.id]);
      const fresh = newProtector();
      d.volume('C:').protectors.push(fresh);
      expect((await d.upload([{ mountPoint: 'C:', id: fresh.id, password: fresh.password! }], job.id)).json.stored[0].status).toBe('stored');
      expect((await jobOf(d.deviceId!, job.id)).state).toBe('awaiting_removal');
      d.volume('C:').protectors = d.volume('C:').protectors.filter((p) => p !== old);
      const done = await d.checkin({
        jobResults: [{ jobId: job.id, status: 'succeeded', detail: `removed ${old.id}`, newProtectorId: fresh.id, removedProtectorId: old.id }],
      });
      expect(done.json.jobs).toEqual([]);
      expect(await stateOfKey(d.deviceId!, old.id)).toBe('rotated');
      return { job: await jobOf(d.deviceId!, job.id), fresh };
    };

    const joined = new WireDevice(base, 'FAKE-JOBS-HYBRID');
    joined.domainJoined = true;
    joined.entraJoinType = 'HybridJoined';
    await joined.settle(contosoToken);
    const { job, fresh } = await rotate(joined);
    expect(job).toMatchObject({ state: 'succeeded', newProtectorId: braced(fresh.id) });
    expect(job.detail).toMatch(/backup of the new recovery password to Active Directory and Entra ID queued/);
    const backups = (await jobsOf(joined.deviceId!)).filter((j) => j.kind.startsWith('backup-to-'));
    expect(backups.map((b) => [b.kind, b.state, b.mountPoint, b.protectorId, b.origin]).sort()).toEqual([
      ['backup-to-ad', 'pending', 'C:', braced(fresh.id), 'rotation'],
      ['backup-to-entra', 'pending', 'C:', braced(fresh.id), 'rotation'],
    ]);
    expect(((await joined.checkin()).json.jobs as Job[]).map((j) => j.kind).sort()).toEqual(['backup-to-ad', 'backup-to-entra']);

    // An Entra-joined device of a client whose policy turned the backup off: nothing more.
    const off = await api('PATCH', `/clients/${fabrikam}/compliance/policy`, { set: { directoryBackupAfterRotation: false } });
    expect(off.status, off.body).toBe(200);
    const cloud = new WireDevice(base, 'FAKE-JOBS-CLOUD');
    cloud.entraJoinType = 'AzureAdJoined';
    await cloud.settle(fabrikamToken);
    const r = await rotate(cloud);
    expect(r.job.state).toBe('succeeded');
    expect((await jobsOf(cloud.deviceId!)).map((j) => j.kind)).toEqual(['rotate']);
  });

  it('bulk queueing per client: named devices, a finding, or every agent; unfit devices listed with the reason; dry runs queue nothing', async () => {
    const a = await device();
    const b = await device();
    const revoked = await device();
    expect((await api('POST', `/devices/${revoked.deviceId}/revoke-agent`)).status).toBe(200);
    const held = await device();
    expect((await api('PUT', `/devices/${held.deviceId}/legal-hold`, { hold: true, reason: 'FAKE litigation' })).status).toBe(200);
    const retired = await device();
    expect((await api('POST', `/devices/${retired.deviceId}/retire`, { reason: 'FAKE returned' })).status).toBe(200);
    // A re-imaged machine with the serial number and SMBIOS UUID of a device with a live agent waits for approval.
    const twin = new WireDevice(base, 'FAKE-JOBS-TWIN');
    Object.assign(twin, { serial: a.serial, smbiosUuid: a.smbiosUuid });
    expect((await twin.enroll(contosoToken)).json.pendingApproval).toBe(true);
    const elsewhere = await device(undefined, () => fabrikamToken);
    const ghost = randomUUID();
    const ids = [a, b, revoked, held, retired, twin, elsewhere].map((x) => x.deviceId!);

    const dry = await api('POST', `/clients/${contoso}/agent-jobs`, { kind: 'add-recovery-password', deviceIds: [...ids, ghost], dryRun: true });
    expect(dry.status, dry.body).toBe(200);
    expect(dry.json.queued).toBe(2);
    expect(dry.json.dryRun).toBe(true);
    expect(dry.json.jobs).toEqual([
      { jobId: null, deviceId: a.deviceId, device: a.hostname, kind: 'add-recovery-password', mountPoint: 'C:', protectorId: null },
      { jobId: null, deviceId: b.deviceId, device: b.hostname, kind: 'add-recovery-password', mountPoint: 'C:', protectorId: null },
    ]);
    expect(dry.json.skipped).toEqual([
      { deviceId: revoked.deviceId, device: revoked.hostname, why: 'no enrolled agent' },
      { deviceId: held.deviceId, device: held.hostname, why: 'on legal hold: its keys stay as they are' },
      { deviceId: retired.deviceId, device: retired.hostname, why: 'retired' },
      { deviceId: twin.deviceId, device: twin.hostname, why: 'its agent waits for an admin to approve its link to this device' },
      { deviceId: elsewhere.deviceId, device: null, why: 'no such device in this client' },
      { deviceId: ghost, device: null, why: 'no such device in this client' },
    ]);
    expect(dry.body).not.toContain(elsewhere.hostname);
    expect((await api('GET', `/clients/${contoso}/agent-jobs?state=active&kind=add-recovery-password`)).json).toEqual([]);

    const real = await api('POST', `/clients/${contoso}/agent-jobs`, { kind: 'add-recovery-password', deviceIds: ids });
    expect(real.json.queued).toBe(2);
    expect(real.json.jobs.every((j: { jobId: string | null }) => typeof j.jobId === 'string')).toBe(true);
    const again = await api('POST', `/clients/${contoso}/agent-jobs`, { kind: 'add-recovery-password', deviceIds: [a.deviceId] });
    expect(again.json).toMatchObject({ queued: 0, skipped: [{ deviceId: a.deviceId, why: 'already queued: add-recovery-password for C:' }] });
    const listed = (await api('GET', `/clients/${contoso}/agent-jobs?state=active&kind=add-recovery-password`)).json as Job[];
    expect(listed.map((j) => [j.device!.name, j.origin, j.state]).sort()).toEqual([
      [a.hostname, 'bulk', 'pending'],
      [b.hostname, 'bulk', 'pending'],
    ]);
    const created = await auditEvents(t, { action: 'job.create', targetId: real.json.jobs[0].jobId });
    expect(created[0]!.details).toMatchObject({ kind: 'add-recovery-password', why: 'bulk' });

    // A result shows in both listings, with what the job escrowed.
    const job = listed.find((j) => j.device!.id === a.deviceId)!;
    expect((await a.checkin()).json.jobs.map((j: Job) => j.id)).toEqual([job.id]);
    const fresh = newProtector();
    a.volume('C:').protectors.push(fresh);
    await a.upload([{ mountPoint: 'C:', id: fresh.id, password: fresh.password! }], job.id);
    await a.checkin({ jobResults: [{ jobId: job.id, status: 'succeeded', detail: 'already has an escrowed recovery password', newProtectorId: fresh.id }] });
    const done = ((await api('GET', `/clients/${contoso}/agent-jobs?state=succeeded`)).json as Job[]).find((j) => j.id === job.id);
    expect(done).toMatchObject({
      detail: 'already has an escrowed recovery password',
      newProtectorId: braced(fresh.id),
      device: { id: a.deviceId, name: a.hostname },
    });
    expect(await jobOf(a.deviceId!, job.id)).toMatchObject({ state: 'succeeded', newProtectorId: braced(fresh.id) });

    // By finding: one job per finding, on the finding's volume.
    const bare = await device([volume('C:'), volume('D:', { protectors: [newProtector('ExternalKey')] })]);
    const byFinding = await api('POST', `/clients/${contoso}/agent-jobs`, { kind: 'add-recovery-password', finding: 'recovery_password_missing' });
    expect(byFinding.status, byFinding.body).toBe(200);
    // (The device of the manage-bde test above lost its D: recovery password too.)
    const found = (byFinding.json.jobs as { deviceId: string; mountPoint: string; protectorId: string | null }[]).filter((j) => j.deviceId === bare.deviceId);
    expect(found).toEqual([expect.objectContaining({ mountPoint: 'D:', protectorId: null })]);
    expect(byFinding.json.jobs.some((j: { deviceId: string }) => j.deviceId === a.deviceId || j.deviceId === b.deviceId)).toBe(false);
    const lacking = await api('POST', `/clients/${contoso}/agent-jobs`, {
      kind: 'add-recovery-password',
      finding: 'recovery_password_missing',
      deviceIds: [b.deviceId],
    });
    expect(lacking.json).toMatchObject({ queued: 0, skipped: [{ deviceId: b.deviceId, why: 'no open finding recovery_password_missing' }] });

    // Every device with an agent: one backup per recovery password of its OS volume.
    const everyone = await api('POST', `/clients/${contoso}/agent-jobs`, { kind: 'backup-to-entra', dryRun: true });
    const backedUp = everyone.json.jobs as { deviceId: string; protectorId: string }[];
    expect(
      backedUp
        .filter((j) => j.deviceId === a.deviceId)
        .map((j) => j.protectorId)
        .sort(),
    ).toEqual(
      a
        .recoveryPasswords('C:')
        .map((p) => braced(p.id))
        .sort(),
    );
    expect(backedUp.some((j) => [revoked, held, retired, elsewhere].some((x) => x.deviceId === j.deviceId))).toBe(false);

    const bad = await api('POST', `/clients/${contoso}/agent-jobs`, { kind: 'enable-encryption', finding: 'stale', mountPoint: 'C:' });
    expect(bad.status).toBe(400);
    expect(bad.json.message).toMatch(/finding or a mountPoint, not both/);
  });

  it('bulk queueing needs agent:manage in the client; listing needs device:read; other clients answer like missing ones', async () => {
    const d = await device();
    const scopedAdmin = await t.signIn((await t.addUser('admin', [contoso], 'scoped-admin@example.test')).email);
    const helpdesk = await t.signIn((await t.addUser('helpdesk', [contoso], 'helpdesk@example.test')).email);
    const creator = await t.addUser('owner', 'all', 'token-maker@example.test');
    const person: Actor = {
      type: 'user',
      id: creator.id,
      name: creator.email,
      role: 'owner',
      clients: 'all',
      session: { id: 'agent-jobs-test', mfaAt: null, mfaEnrolled: false, mfaEnrolmentRequired: false },
    };
    const technician = await t.container.identity.createToken(person, { name: 'technician', role: 'technician', clients: [contoso] });
    const tech = { authorization: `Bearer ${technician.token}` };
    const body = { kind: 'resume-protection', deviceIds: [d.deviceId], dryRun: true };

    const inOther = await api('POST', `/clients/${fabrikam}/agent-jobs`, body, scopedAdmin.headers);
    const missing = await api('POST', `/clients/${randomUUID()}/agent-jobs`, body, scopedAdmin.headers);
    expect(inOther.status).toBe(404);
    expect(missing.status).toBe(404);
    expect(inOther.json.message.replace(fabrikam, '<id>')).toBe(missing.json.message.replace(/[0-9a-f-]{36}/, '<id>'));
    expect(inOther.body).not.toContain('Fabrikam');
    expect((await api('GET', `/clients/${fabrikam}/agent-jobs`, undefined, scopedAdmin.headers)).status).toBe(404);
    const mine = await api('POST', `/clients/${contoso}/agent-jobs`, body, scopedAdmin.headers);
    expect(mine.status, mine.body).toBe(200);
    expect(mine.json.queued).toBe(1);

    const denied = await api('POST', `/clients/${contoso}/agent-jobs`, body, tech);
    expect(denied.status).toBe(403);
    expect((await api('GET', `/clients/${contoso}/agent-jobs`, undefined, tech)).status).toBe(200);
    expect((await api('GET', `/clients/${fabrikam}/agent-jobs`, undefined, tech)).status).toBe(404);
    expect((await api('GET', `/clients/${contoso}/agent-jobs`, undefined, helpdesk.headers)).status).toBe(403);
    expect((await api('POST', `/clients/${contoso}/agent-jobs`, body, helpdesk.headers)).status).toBe(403);
    expect((await request(base, 'GET', `/api/v1/clients/${contoso}/agent-jobs`)).status).toBe(401);
    // A device credential opens the agent routes only.
    expect((await request(base, 'GET', `/api/v1/clients/${contoso}/agent-jobs`, { headers: { authorization: `Bearer ${d.credential}` } })).status).toBe(401);
  });
});
