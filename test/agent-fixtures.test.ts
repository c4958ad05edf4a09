import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type Session, type TestApp } from './helpers/app.js';
import { ENGINE } from './helpers/engine.js';

const DIR = path.resolve(import.meta.dirname, 'fixtures', 'agent');
const API = '/api/v1';

/**
 * Recorded check-in bodies in the shapes Windows produces (PowerShell 5.1 integers, PowerShell 7
 * names, a locked volume, the manage-bde fallback in English and German) go through the real
 * endpoint; the server must read each into the same canonical volume state.
 */
describe(`recorded agent check-ins on ${ENGINE}`, () => {
  let t: TestApp;
  let owner: Session;
  let token: string;

  beforeAll(async () => {
    t = await createTestApp();
    owner = await t.signIn((await t.addUser('owner', 'all', 'owner@example.test')).email);
    const clientId = (await t.app.inject({ method: 'POST', url: `${API}/clients`, headers: owner.headers, payload: { name: 'Contoso' } })).json().id;
    token = (await t.app.inject({ method: 'POST', url: `${API}/agent/enrollment-tokens`, headers: owner.headers, payload: { clientId } })).json().token;
  });
  afterAll(() => t.close());

  async function checkIn(file: string) {
    const body = JSON.parse(fs.readFileSync(path.join(DIR, file), 'utf8'));
    const enrolled = await t.app.inject({
      method: 'POST',
      url: `${API}/agent/enroll`,
      payload: {
        enrollmentToken: token,
        device: { hostname: body.device.hostname, serialNumber: body.device.serialNumber, smbiosUuid: body.device.smbiosUuid },
      },
    });
    expect(enrolled.statusCode).toBe(200);
    const { credential, deviceId } = enrolled.json();
    // Fresh sequence and clock; everything else exactly as recorded.
    const res = await t.app.inject({
      method: 'POST',
      url: `${API}/agent/checkin`,
      headers: { authorization: `Bearer ${credential}` },
      payload: { ...body, seq: 1, sentAt: new Date().toISOString(), jobResults: [] },
    });
    expect(res.statusCode, res.body).toBe(200);
    const device = (await t.app.inject({ method: 'GET', url: `${API}/devices/${deviceId}`, headers: owner.headers })).json();
    const volumes = await t.container.database.db.selectFrom('volumes').selectAll().where('device_id', '=', deviceId).orderBy('mount_point').execute();
    const findings = (await t.app.inject({ method: 'GET', url: `${API}/findings?deviceId=${deviceId}&open=true`, headers: owner.headers })).json();
    return { res: res.json(), device, volumes, findings: findings.map((f: { kind: string; mountPoint: string }) => `${f.kind}:${f.mountPoint}`).sort() };
  }

  it('PowerShell 5.1 integers and PowerShell 7 names give the same state', async () => {
    const a = await checkIn('checkin-ps51-integers.json');
    const b = await checkIn('checkin-ps7-names.json');
    const state = (v: {
      mount_point: string | null;
      volume_type: string;
      volume_status: string | null;
      protection_status: string | null;
      lock_status: string | null;
      encryption_method: string | null;
      encryption_percentage: number | null;
    }) => [v.mount_point, v.volume_type, v.volume_status, v.protection_status, v.lock_status, v.encryption_method, v.encryption_percentage].join('|');
    expect(a.volumes.map(state)).toEqual(b.volumes.map(state));
    expect(a.volumes.map(state)[0]).toBe('C:|os|FullyEncrypted|On|Unlocked|XtsAes128|100');
    expect(a.volumes.map(state)[1]).toMatch(/^D:\|fixed\|FullyEncrypted\|On\|Unlocked\|/);
    // Both recovery passwords are unknown to the vault: asked for, and open as findings until uploaded.
    expect(a.res.requestPasswords.map((r: { mountPoint: string }) => r.mountPoint).sort()).toEqual(['C:', 'D:']);
    expect(a.findings).toEqual(['unescrowed_key:C:', 'unescrowed_key:D:']);
    // The facts the agent reported are kept and shown with the device.
    expect(a.device.facts).toMatchObject({ os: { caption: 'Microsoft Windows 11 Enterprise' }, tpm: { present: true }, secureBoot: true });
    expect(a.device.lastCheckinAt).toEqual(expect.any(String));
  });

  it('a locked volume is recorded without asking for passwords it cannot show', async () => {
    const r = await checkIn('checkin-locked-volume.json');
    const locked = r.volumes.find((v) => v.lock_status === 'Locked')!;
    expect(locked).toMatchObject({ volume_status: null, protection_status: 'Unknown', encryption_percentage: null });
    expect(r.res.requestPasswords.every((q: { mountPoint: string }) => q.mountPoint !== locked.mount_point)).toBe(true);
  });

  it('an encrypted volume without a recovery password is a finding; an unencrypted one is not', async () => {
    const r = await checkIn('checkin-unprotected.json');
    expect(r.res.requestPasswords).toEqual([]);
    expect(r.findings).toEqual(['no_recovery_password:C:']);
  });

  it.each(['checkin-manage-bde.json', 'checkin-manage-bde-de.json'])('the manage-bde fallback (%s) is read by structure', async (file) => {
    const r = await checkIn(file);
    expect(r.volumes.length).toBeGreaterThan(0);
    const c = r.volumes.find((v) => v.mount_point === 'C:')!;
    expect(c).toMatchObject({ volume_type: 'os', volume_status: 'FullyEncrypted', protection_status: 'On', lock_status: 'Unlocked' });
    expect(r.res.requestPasswords.some((q: { mountPoint: string }) => q.mountPoint === 'C:')).toBe(true);
  });

  it('recorded events are accepted and stored once', async () => {
    const events = JSON.parse(fs.readFileSync(path.join(DIR, 'events-sample.json'), 'utf8'));
    const body = JSON.parse(fs.readFileSync(path.join(DIR, 'checkin-ps7-names.json'), 'utf8'));
    const enrolled = (
      await t.app.inject({ method: 'POST', url: `${API}/agent/enroll`, payload: { enrollmentToken: token, device: { hostname: 'FAKE-EVENTS' } } })
    ).json();
    const send = (seq: number) =>
      t.app.inject({
        method: 'POST',
        url: `${API}/agent/checkin`,
        headers: { authorization: `Bearer ${enrolled.credential}` },
        payload: { ...body, device: { ...body.device, hostname: 'FAKE-EVENTS' }, seq, sentAt: new Date().toISOString(), events, jobResults: [] },
      });
    expect((await send(1)).statusCode).toBe(200);
    expect((await send(2)).statusCode).toBe(200);
    const stored = await t.container.database.db.selectFrom('device_events').select('event_id').where('device_id', '=', enrolled.deviceId).execute();
    expect(stored.map((e) => e.event_id).sort()).toEqual(events.map((e: { id: number }) => e.id).sort());
  });
});
