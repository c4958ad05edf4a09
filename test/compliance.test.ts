import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { inflateSync } from 'node:zlib';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parse as parseCsv } from 'csv-parse/sync';
import { Transaction } from 'kysely';
import { buildApp } from '../src/app.js';
import { buildContainer, type Container } from '../src/container.js';
import { systemActor, type Role } from '../src/modules/authz/authz.js';
import type { NotificationEvent, Notifier } from '../src/modules/notifications/notifier.js';
import { createTestVault, owner as cliOwner, type TestVault } from './helpers/vault.js';
import { PASSWORD, sessionFrom, type Session } from './helpers/app.js';
import { ENGINE } from './helpers/engine.js';
import { bytes, csvOf } from './helpers/keys.js';
import { SimMachine, TestAgent, injectTransport } from './agent/test-agent.js';
import { GraphSimulator } from './graph-sim/simulator.js';

/**
 * Compliance end to end on a real database: policies inherited and overridden through the API,
 * exemptions, a device whose protection turns off through an agent check-in (status, finding,
 * history row, notifier event in the same transaction), re-evaluation after an import and on the
 * schedule, and the reports (CSV contents, PDF pages rendered by pdftoppm).
 */

const API = '/api/v1';
const COMPLIANCE_EVENTS: string[] = [
  'device.noncompliant',
  'device.compliant',
  'device.encryption_off',
  'device.protection_suspended',
  'device.stale',
  'key.unescrowed',
  'key.mismatch',
];

/** Records what producers emit, and whether they did it inside a transaction (the outbox contract). */
class RecordingNotifier implements Notifier {
  events: (NotificationEvent & { inTransaction: boolean })[] = [];
  async emit(tx: unknown, event: NotificationEvent): Promise<void> {
    this.events.push({ ...event, inTransaction: tx instanceof Transaction });
  }
  /** The compliance events (other producers, e.g. reveals and rotations, emit through the same notifier). */
  types() {
    return this.events.map((e) => e.type).filter((t) => COMPLIANCE_EVENTS.includes(t));
  }
  clear() {
    this.events = [];
  }
}

/** A clock the test can move forward (agent check-ins stay within their 15-minute skew window). */
const clock = { offsetMs: 0, now: () => new Date(Date.now() + clock.offsetMs).toISOString() };

/** True when a PNG has at least `min` pixels that are not white (the page is not blank). */
function nonWhitePixels(file: string): number {
  const png = fs.readFileSync(file);
  let pos = 8;
  let width = 0;
  let height = 0;
  let colorType = 0;
  const idat: Buffer[] = [];
  while (pos < png.length) {
    const len = png.readUInt32BE(pos);
    const type = png.toString('latin1', pos + 4, pos + 8);
    const data = png.subarray(pos + 8, pos + 8 + len);
    if (type === 'IHDR') {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      colorType = data[9]!;
    }
    if (type === 'IDAT') idat.push(data);
    pos += 12 + len;
  }
  const channels = colorType === 2 ? 3 : colorType === 6 ? 4 : colorType === 0 ? 1 : 3;
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels + 1;
  // Filtered bytes: a non-zero byte after filtering still means "differs from its neighbour", so
  // count rows whose data is not all "no change from white"; good enough to tell blank from drawn.
  let drawn = 0;
  for (let y = 0; y < height; y++) {
    const row = raw.subarray(y * stride + 1, (y + 1) * stride);
    const filter = raw[y * stride]!;
    for (let i = 0; i < row.length; i++) {
      const v = row[i]!;
      if (filter === 0 ? v !== 255 : v !== 0) drawn++;
    }
  }
  return drawn;
}

describe(`compliance on ${ENGINE}`, () => {
  let vault: TestVault;
  let c: Container;
  let app: Awaited<ReturnType<typeof buildApp>>;
  const notifier = new RecordingNotifier();
  let contoso: { id: string; name: string };
  let fabrikam: { id: string; name: string };
  const sessions = {} as Record<string, Session>;
  let agent: TestAgent;

  const signIn = async (role: Role, clients: 'all' | string[], key: string) => {
    const email = `${key}@example.test`;
    await c.identity.createUser(systemActor('test'), { email, password: PASSWORD, role, clients });
    const r = await app.inject({ method: 'POST', url: `${API}/auth/login`, payload: { email, password: PASSWORD } });
    sessions[key] = sessionFrom(r);
  };
  const get = (url: string, as = 'owner') => app.inject({ method: 'GET', url, headers: sessions[as]!.headers });
  const send = (method: 'POST' | 'PATCH' | 'DELETE', url: string, payload: unknown, as = 'owner') =>
    app.inject({ method, url, headers: sessions[as]!.headers, ...(payload === undefined ? {} : { payload: payload as Record<string, unknown> }) });
  // Through the service: the clock moves days ahead in some tests, and sessions would expire.
  const statusOf = (deviceId: string) => c.compliance.deviceStatus(cliOwner, deviceId);

  beforeAll(async () => {
    vault = await createTestVault();
    c = await buildContainer(vault.config, { notifier, clock });
    app = await buildApp(c, { logger: false });
    contoso = await c.clients.create(cliOwner, { name: 'Contoso' });
    fabrikam = await c.clients.create(cliOwner, { name: 'Fabrikam' });
    await signIn('owner', 'all', 'owner');
    await signIn('admin', [contoso.id], 'admin');
    await signIn('helpdesk', [contoso.id], 'helpdesk');
    await signIn('auditor', [contoso.id], 'auditor');
    await signIn('technician', [contoso.id], 'technician');
    await signIn('client-viewer', [contoso.id], 'viewer');
    const tok = await send('POST', `${API}/agent/enrollment-tokens`, { clientId: contoso.id, maxUses: 10 });
    agent = new TestAgent(injectTransport(app), new SimMachine('CONTOSO-LT-001'));
    expect((await agent.enroll(tok.json().token)).status).toBe(200);
  });
  afterAll(async () => {
    await app?.close();
    await c?.close();
    await vault?.close();
  });
  beforeEach(() => {
    clock.offsetMs = 0;
  });

  // ------------------------------------------------------------------ policies
  describe('policies', () => {
    it('a client inherits the MSP default and overrides it field by field', async () => {
      let r = await send('PATCH', `${API}/compliance/policy`, { set: { staleAfterDays: 14, osProtector: 'tpm_pin' } });
      expect(r.statusCode).toBe(200);
      expect(r.json()).toMatchObject({
        scope: 'default',
        overrides: { staleAfterDays: 14, osProtector: 'tpm_pin' },
        effective: { staleAfterDays: 14, osProtector: 'tpm_pin', protectOs: true },
      });
      r = await send('PATCH', `${API}/clients/${contoso.id}/compliance/policy`, { set: { osProtector: 'tpm', maxKeyAgeDays: 365 } });
      expect(r.statusCode).toBe(200);
      expect(r.json()).toMatchObject({
        scope: 'client',
        clientId: contoso.id,
        overrides: { osProtector: 'tpm', maxKeyAgeDays: 365 },
        effective: { osProtector: 'tpm', staleAfterDays: 14, maxKeyAgeDays: 365 },
        sources: { osProtector: 'client', staleAfterDays: 'default', protectOs: 'builtin' },
        updatedBy: 'owner@example.test',
      });
      // Fabrikam has no overrides: the default as it is.
      expect((await get(`${API}/clients/${fabrikam.id}/compliance/policy`)).json()).toMatchObject({
        overrides: {},
        effective: { osProtector: 'tpm_pin', staleAfterDays: 14 },
      });
      // A later change of the default reaches clients for the fields they do not override.
      await send('PATCH', `${API}/compliance/policy`, { set: { staleAfterDays: 21 } });
      expect((await get(`${API}/clients/${contoso.id}/compliance/policy`)).json().effective).toMatchObject({ staleAfterDays: 21, osProtector: 'tpm' });
      // Inherit again.
      r = await send('PATCH', `${API}/clients/${contoso.id}/compliance/policy`, { inherit: ['osProtector', 'maxKeyAgeDays'] });
      expect(r.json()).toMatchObject({ overrides: {}, effective: { osProtector: 'tpm_pin', maxKeyAgeDays: null } });
      // Back to the built-in defaults for the rest of the file.
      await send('PATCH', `${API}/compliance/policy`, { inherit: ['staleAfterDays', 'osProtector'] });
      expect((await get(`${API}/compliance/policy`)).json().overrides).toEqual({});
      const audits = await c.audit.list(cliOwner, { action: 'compliance.policy', limit: 10 });
      expect(audits.length).toBe(5);
      expect(audits[audits.length - 1]!.details).toMatchObject({ scope: 'MSP default', after: { staleAfterDays: 14, osProtector: 'tpm_pin' } });
    });

    it('refuses invalid values and unknown fields in product words', async () => {
      const bad = await send('PATCH', `${API}/compliance/policy`, { set: { staleAfterDays: 0 } });
      expect(bad.statusCode).toBe(400);
      expect(bad.body).toMatch(/staleAfterDays/);
      expect((await send('PATCH', `${API}/compliance/policy`, { set: { colour: 'blue' } })).statusCode).toBe(400);
      expect((await send('PATCH', `${API}/compliance/policy`, { set: { minMethodOs: 'rot13' } })).statusCode).toBe(400);
    });

    it('who may read and change policies', async () => {
      // An admin of Contoso only: its client yes, the MSP default and other clients no.
      expect((await send('PATCH', `${API}/clients/${contoso.id}/compliance/policy`, { set: { suspendedGraceHours: 12 } }, 'admin')).statusCode).toBe(200);
      expect((await send('PATCH', `${API}/compliance/policy`, { set: { suspendedGraceHours: 12 } }, 'admin')).statusCode).toBe(403);
      expect((await send('PATCH', `${API}/clients/${fabrikam.id}/compliance/policy`, { set: { suspendedGraceHours: 12 } }, 'admin')).statusCode).toBe(404);
      // Everyone with access to the client reads it; nobody else.
      for (const who of ['helpdesk', 'auditor', 'technician', 'viewer']) {
        expect((await get(`${API}/clients/${contoso.id}/compliance/policy`, who)).statusCode).toBe(200);
        expect((await get(`${API}/clients/${fabrikam.id}/compliance/policy`, who)).statusCode).toBe(404);
        expect((await send('PATCH', `${API}/clients/${contoso.id}/compliance/policy`, { set: { suspendedGraceHours: 1 } }, who)).statusCode).toBe(403);
      }
      await send('PATCH', `${API}/clients/${contoso.id}/compliance/policy`, { inherit: ['suspendedGraceHours'] });
    });
  });

  // ------------------------------------------------------------------ the agent
  describe('a device reported by the agent', () => {
    it('first check-in: evaluated once the requested recovery password is uploaded (no flapping)', async () => {
      notifier.clear();
      const r = await agent.run();
      expect(r.exitCode).toBe(0);
      expect(r.lines).toContain("1 recovery password(s) escrowed at the server's request.");
      const s = await statusOf(agent.deviceId!);
      expect(s.status).toBe('compliant');
      expect(s.findings).toEqual([]);
      // (The policy changes above evaluated it once before it reported anything: unknown.) The
      // check-in asked for the password, so the upload seconds later evaluated: no "not escrowed".
      expect(s.history.map((h) => h.status)).toEqual(['compliant', 'unknown']);
      expect(notifier.types()).toEqual([]);
    });

    it('a requested password that never arrives: the hourly evaluation reports it', async () => {
      const tok = await send('POST', `${API}/agent/enrollment-tokens`, { clientId: fabrikam.id });
      const lazy = new TestAgent(injectTransport(app), new SimMachine('FABRIKAM-LT-001'));
      await lazy.enroll(tok.json().token);
      notifier.clear();
      const r = await lazy.post(`${API}/agent/checkin`, lazy.checkinBody());
      expect(r.json.requestPasswords).toHaveLength(1);
      await c.compliance.evaluateAll();
      expect((await statusOf(lazy.deviceId!)).findings.map((f) => f.code)).toEqual(['recovery_key_not_escrowed']);
      expect(notifier.types()).toEqual(['device.noncompliant', 'key.unescrowed']);
      expect(notifier.events.every((e) => e.inTransaction)).toBe(true);
      expect(notifier.events.find((e) => e.type === 'key.unescrowed')).toMatchObject({
        subject: 'FABRIKAM-LT-001 (Fabrikam): recovery password not escrowed (C:)',
        details: { finding: 'recovery_key_not_escrowed', mountPoint: 'C:' },
      });
    });

    it('protection turned off through a check-in: non-compliant, a finding, a history row and events', async () => {
      notifier.clear();
      const c0 = agent.machine.volume('C:');
      Object.assign(c0, { status: 'FullyDecrypted', protection: 'Off', method: 'None', percentage: 0 });
      expect((await agent.run()).exitCode).toBe(0);
      const s = await statusOf(agent.deviceId!);
      expect(s.status).toBe('non-compliant');
      expect(s.findings.map((f) => f.code)).toEqual(['os_volume_unprotected']);
      expect(s.findings[0]).toMatchObject({ mountPoint: 'C:', fix: expect.stringContaining('Turn BitLocker on') });
      expect(s.history[0]).toMatchObject({ status: 'non-compliant', previousStatus: 'compliant', codes: ['os_volume_unprotected'] });
      expect(notifier.types()).toEqual(['device.noncompliant', 'device.encryption_off']);
      const ev = notifier.events[0]!;
      expect(ev).toMatchObject({
        clientId: contoso.id,
        deviceId: agent.deviceId,
        subject: 'CONTOSO-LT-001 (Contoso) is not compliant',
        details: { client: 'Contoso', device: 'CONTOSO-LT-001', status: 'non-compliant', previousStatus: 'compliant', findingCodes: ['os_volume_unprotected'] },
        dedupKey: expect.stringMatching(new RegExp(`^device\\.noncompliant:${agent.deviceId}:\\d{4}-\\d{2}-\\d{2}T`)),
        inTransaction: true,
      });
      expect(JSON.stringify(notifier.events)).not.toMatch(/\d{6}-\d{6}-\d{6}/);
    });

    it('a check-in that changes nothing writes no history and emits nothing', async () => {
      notifier.clear();
      const before = (await statusOf(agent.deviceId!)).history.length;
      expect((await agent.run()).exitCode).toBe(0);
      expect((await statusOf(agent.deviceId!)).history.length).toBe(before);
      expect(notifier.types()).toEqual([]);
    });

    it('protection suspended for an update is within the grace period; back on: compliant again', async () => {
      notifier.clear();
      Object.assign(agent.machine.volume('C:'), { status: 'FullyEncrypted', protection: 'Off', method: 'XtsAes128', percentage: 100 });
      expect((await agent.run()).exitCode).toBe(0);
      // Suspended (protectors present, protection off) a moment ago: no finding.
      expect((await statusOf(agent.deviceId!)).status).toBe('compliant');
      expect(notifier.types()).toEqual(['device.compliant']);
      // 25 hours later (the scheduled evaluation) the grace is over.
      notifier.clear();
      clock.offsetMs = 25 * 3_600_000;
      await c.compliance.evaluateAll();
      const s = await statusOf(agent.deviceId!);
      expect(s.findings.map((f) => f.code)).toEqual(['protection_suspended']);
      expect(notifier.types()).toEqual(['device.noncompliant', 'device.protection_suspended']);
      clock.offsetMs = 0;
      Object.assign(agent.machine.volume('C:'), { protection: 'On' });
      expect((await agent.run()).exitCode).toBe(0);
      expect((await statusOf(agent.deviceId!)).status).toBe('compliant');
    });

    it('an exemption makes the device exempt until it expires or is revoked', async () => {
      Object.assign(agent.machine.volume('C:'), { status: 'FullyDecrypted', protection: 'Off', method: 'None', percentage: 0 });
      await agent.run();
      expect((await statusOf(agent.deviceId!)).status).toBe('non-compliant');
      const expiresAt = new Date(Date.now() + 2 * 86_400_000).toISOString();
      const ex = await send('POST', `${API}/compliance/exemptions`, { deviceId: agent.deviceId, reason: 'Disk replacement ordered', expiresAt });
      expect(ex.statusCode).toBe(201);
      expect(ex.json()).toMatchObject({
        device: { id: agent.deviceId, name: 'CONTOSO-LT-001' },
        reason: 'Disk replacement ordered',
        expiresAt,
        active: true,
        createdBy: 'owner@example.test',
      });
      expect((await statusOf(agent.deviceId!)).status).toBe('exempt');
      // Only owners and admins exempt devices; readers see the list.
      expect((await send('POST', `${API}/compliance/exemptions`, { deviceId: agent.deviceId, reason: 'nope' }, 'technician')).statusCode).toBe(403);
      expect((await get(`${API}/compliance/exemptions?clientId=${contoso.id}`, 'auditor')).json()).toHaveLength(1);
      // Three days later the exemption has expired: the scheduled evaluation notices.
      notifier.clear();
      clock.offsetMs = 3 * 86_400_000;
      await c.compliance.evaluateAll();
      expect((await statusOf(agent.deviceId!)).status).toBe('non-compliant');
      expect(notifier.types()).toContain('device.noncompliant');
      clock.offsetMs = 0;
      // (Back in the present it would apply again: end it.)
      expect((await send('DELETE', `${API}/compliance/exemptions/${ex.json().id}`, undefined)).statusCode).toBe(200);
      // A new one without expiry, revoked by an admin of the client.
      const ex2 = (await send('POST', `${API}/compliance/exemptions`, { deviceId: agent.deviceId, reason: 'Kiosk, no data' }, 'admin')).json();
      expect((await statusOf(agent.deviceId!)).status).toBe('exempt');
      expect((await send('DELETE', `${API}/compliance/exemptions/${ex2.id}`, undefined, 'admin')).statusCode).toBe(200);
      expect((await statusOf(agent.deviceId!)).status).toBe('non-compliant');
      // Leave the device protected for the report tests.
      Object.assign(agent.machine.volume('C:'), { status: 'FullyEncrypted', protection: 'On', method: 'XtsAes128', percentage: 100 });
      await agent.run();
      expect((await statusOf(agent.deviceId!)).status).toBe('compliant');
    });

    it('an unseen device goes stale on the schedule', async () => {
      notifier.clear();
      clock.offsetMs = 31 * 86_400_000;
      await c.compliance.evaluateAll();
      const s = await statusOf(agent.deviceId!);
      expect(s.findings.map((f) => f.code)).toContain('stale');
      expect(notifier.types()).toContain('device.stale');
      clock.offsetMs = 0;
      await c.compliance.evaluateAll();
      expect((await statusOf(agent.deviceId!)).status).toBe('compliant');
    });

    it('an import that escrows the missing password makes the device compliant', async () => {
      const tok = await send('POST', `${API}/agent/enrollment-tokens`, { clientId: contoso.id });
      const other = new TestAgent(injectTransport(app), new SimMachine('CONTOSO-LT-002'));
      await other.enroll(tok.json().token);
      // A check-in only (the password upload never happens).
      expect((await other.post(`${API}/agent/checkin`, other.checkinBody())).status).toBe(200);
      await c.compliance.evaluateAll();
      expect((await statusOf(other.deviceId!)).findings.map((f) => f.code)).toEqual(['recovery_key_not_escrowed']);
      notifier.clear();
      const p = other.machine.recoveryPasswords('C:')[0]!;
      await c.imports.importFile(cliOwner, 'Contoso', {
        fileName: 'keys.csv',
        bytes: bytes(csvOf([{ device: 'CONTOSO-LT-002', keyId: p.id, password: p.password!, drive: 'C:' }])),
      });
      expect((await statusOf(other.deviceId!)).status).toBe('compliant');
      expect(notifier.types()).toEqual(['device.compliant']);
    });
  });

  // ------------------------------------------------------------------ a sync
  it('an Entra ID sync that finds the key escrowed there clears not_in_directory (re-evaluated after the sync)', async () => {
    const tailspin = await c.clients.create(cliOwner, { name: 'Tailspin' });
    await c.compliance.updatePolicy(cliOwner, tailspin.id, { set: { requireDirectoryEscrow: 'entra' } });
    const tok = await send('POST', `${API}/agent/enrollment-tokens`, { clientId: tailspin.id });
    const a = new TestAgent(injectTransport(app), new SimMachine('TAILSPIN-LT-001'));
    await a.enroll(tok.json().token);
    await a.run();
    expect((await statusOf(a.deviceId!)).findings.map((f) => f.code)).toEqual(['not_in_directory']);
    // The same recovery password, backed up to Entra ID from the same machine.
    const sim = new GraphSimulator();
    const urls = await sim.start();
    try {
      const tenantId = '7a7a7a7a-1111-4222-8333-444444444444';
      const tenant = sim.seedTenant(tenantId, { keys: 0, devices: 1 });
      const entraDevice = tenant.devices[0]!;
      entraDevice.displayName = 'TAILSPIN-LT-001';
      const p = a.machine.recoveryPasswords('C:')[0]!;
      tenant.keys.push({
        id: p.id.replace(/[{}]/g, '').toLowerCase(),
        createdDateTime: new Date().toISOString(),
        volumeType: 1,
        deviceId: entraDevice.deviceId,
        key: p.password!,
      });
      const conn = await c.graph.createConnection(cliOwner, {
        clientId: tailspin.id,
        tenantId,
        appClientId: tenant.clientId,
        clientSecret: tenant.clientSecret,
        ...urls,
      });
      notifier.clear();
      expect(await c.graph.runSync(conn.id)).toMatchObject({ status: 'succeeded' });
      expect((await statusOf(a.deviceId!)).status).toBe('compliant');
      expect(notifier.types()).toEqual(['device.compliant']);
    } finally {
      await sim.stop();
    }
  });

  // ------------------------------------------------------------------ reports
  describe('reports', () => {
    let tmp: string;
    /** LT-001's recovery password that was revealed (and then rotated by the agent). */
    let revealed: { id: string; password?: string };
    beforeAll(async () => {
      tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kw-report-'));
      // A third Contoso device, never protected: one non-compliant device for the reports.
      const tok = await send('POST', `${API}/agent/enrollment-tokens`, { clientId: contoso.id });
      const bad = new TestAgent(injectTransport(app), new SimMachine('CONTOSO-LT-003'));
      await bad.enroll(tok.json().token);
      Object.assign(bad.machine.volume('C:'), { status: 'FullyDecrypted', protection: 'Off', method: 'None', percentage: 0, protectors: [] });
      await bad.run();
      // A reveal (recovery audit) and a boot with the recovery password (event 24652).
      revealed = agent.machine.recoveryPasswords('C:')[0]!;
      notifier.clear();
      const rv = await send('POST', `${API}/keys/${revealed.id.replace(/[{}]/g, '')}/reveal`, { reason: 'lost-pin', ticket: 'T-4711' });
      expect(rv.statusCode).toBe(200);
      // Revealed: due for rotation at once.
      expect((await statusOf(agent.deviceId!)).findings.map((f) => f.code)).toEqual(['key_rotation_due']);
      // The agent reports the boot with it, rotates it (the job queued by the reveal): compliant again.
      agent.machine.logEvent(24652, { protectorId: revealed.id, volume: 'C:' });
      await agent.run();
      expect((await statusOf(agent.deviceId!)).status).toBe('compliant');
      expect(notifier.types()).toEqual(['device.noncompliant', 'device.compliant']);
      // Branding for the PDFs.
      const logo = fs.readFileSync(path.resolve(import.meta.dirname, '../docs/logo-sample.png'));
      expect((await send('PATCH', `${API}/settings/branding`, { mspName: 'Northwind IT Services', logoPngBase64: logo.toString('base64') })).statusCode).toBe(
        200,
      );
    });
    afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

    const csv = async (report: string, query = '', as = 'owner') => {
      const r = await get(`${API}/reports/${report}?format=csv${query}`, as);
      expect(r.statusCode, r.body).toBe(200);
      expect(r.headers['content-type']).toMatch(/text\/csv/);
      expect(r.headers['content-disposition']).toMatch(new RegExp(`attachment; filename="keywarden-${report}-.*\\.csv"`));
      return parseCsv(r.body, { columns: true }) as Record<string, string>[];
    };

    it('compliance summary: counts, percentages, trend and findings', async () => {
      const rows = await csv('compliance-summary', `&clientId=${contoso.id}`);
      const current = rows.find((r) => r.section === 'current')!;
      expect(current).toMatchObject({
        scope: 'Contoso',
        devices: '3',
        compliant: '2',
        non_compliant: '1',
        exempt: '0',
        unknown: '0',
        compliant_percent: '67',
      });
      // Today's point of the trend is the current state (the history says how it got there).
      const trend = rows.filter((r) => r.section === 'trend');
      expect(trend.length).toBeGreaterThan(0);
      expect(trend[trend.length - 1]).toMatchObject({ devices: '3', compliant: '2', non_compliant: '1' });
      const findings = Object.fromEntries(rows.filter((r) => r.section === 'finding').map((r) => [r.date, r.devices]));
      expect(findings).toEqual({ os_volume_unprotected: '1' });
      // Fabrikam: its one device never uploaded its password.
      const fab = (await csv('compliance-summary', `&clientId=${fabrikam.id}`)).find((r) => r.section === 'current')!;
      expect(fab).toMatchObject({ scope: 'Fabrikam', devices: '1', compliant: '0', non_compliant: '1', compliant_percent: '0' });
    });

    it('devices: every device with status and findings', async () => {
      const rows = await csv('devices', `&clientId=${contoso.id}`);
      expect(rows.map((r) => [r.device, r.status])).toEqual([
        ['CONTOSO-LT-001', 'compliant'],
        ['CONTOSO-LT-002', 'compliant'],
        ['CONTOSO-LT-003', 'non-compliant'],
      ]);
      expect(rows[0]!.finding_codes).toBe('');
      expect(rows[2]!.finding_codes).toBe('os_volume_unprotected');
      expect(rows[2]!.findings).toContain('C: is not encrypted.');
    });

    it('escrow coverage by source', async () => {
      const rows = await csv('escrow-coverage', `&clientId=${contoso.id}`);
      const by = Object.fromEntries(rows.map((r) => [r.source, r]));
      expect(by['any source']).toMatchObject({ devices: '3', devices_with_key: '2', coverage_percent: '66.7' });
      expect(by['Keywarden agent']).toMatchObject({ devices_with_key: '1' });
      expect(by['Imported file']).toMatchObject({ devices_with_key: '1' });
      expect(by['Entra ID']).toMatchObject({ devices_with_key: '0', keys: '0' });
    });

    it('recovery audit: who, when, which key, why; never the password', async () => {
      const r = await get(`${API}/reports/recovery-audit?format=csv&clientId=${contoso.id}`, 'auditor');
      expect(r.statusCode).toBe(200);
      const rows = parseCsv(r.body, { columns: true }) as Record<string, string>[];
      expect(rows).toEqual([
        expect.objectContaining({
          who: 'owner@example.test',
          status: 'Successful',
          client: 'Contoso',
          device: 'CONTOSO-LT-001',
          key_id: revealed.id.toUpperCase(),
          reason: 'Lost PIN',
          ticket: 'T-4711',
          source: 'Keywarden',
        }),
      ]);
      expect(r.body).not.toContain(revealed.password!);
    });

    it('recovery boots: the event 24652 with the key it used', async () => {
      const rows = await csv('recovery-boots', `&clientId=${contoso.id}`);
      expect(rows).toEqual([
        expect.objectContaining({
          client: 'Contoso',
          device: 'CONTOSO-LT-001',
          key_id: revealed.id.toUpperCase(),
          mount_point: 'C:',
          key_state_now: 'rotated',
        }),
      ]);
    });

    it('who may read which report', async () => {
      for (const [who, report, status] of [
        ['viewer', 'compliance-summary', 200],
        ['viewer', 'recovery-audit', 200],
        ['technician', 'devices', 200],
        ['technician', 'recovery-audit', 403],
        ['helpdesk', 'compliance-summary', 403],
        ['helpdesk', 'recovery-boots', 403],
        ['auditor', 'escrow-coverage', 200],
      ] as const) {
        expect((await get(`${API}/reports/${report}?clientId=${contoso.id}`, who)).statusCode, `${who} ${report}`).toBe(status);
      }
      // Another client's report: refused like a client that does not exist.
      expect((await get(`${API}/reports/devices?clientId=${fabrikam.id}`, 'viewer')).statusCode).toBe(403);
      // The MSP-wide report of a client-limited reader covers only its clients.
      const mine = parseCsv((await get(`${API}/reports/devices`, 'viewer')).body, { columns: true }) as Record<string, string>[];
      expect(new Set(mine.map((r) => r.client))).toEqual(new Set(['Contoso']));
      // PDF only where it is offered.
      expect((await get(`${API}/reports/devices?format=pdf`)).statusCode).toBe(400);
      // Each report is audited.
      expect((await c.audit.list(cliOwner, { action: 'report.export', limit: 100 })).length).toBeGreaterThan(5);
    });

    const pages = (pdf: Buffer, name: string) => {
      const file = path.join(tmp, `${name}.pdf`);
      fs.writeFileSync(file, pdf);
      execFileSync('pdftoppm', ['-png', '-r', '40', file, path.join(tmp, name)]);
      return fs
        .readdirSync(tmp)
        .filter((f) => f.startsWith(`${name}-`) && f.endsWith('.png'))
        .sort()
        .map((f) => path.join(tmp, f));
    };

    it('PDF summary for a client: two pages (summary, devices needing attention), neither blank', async () => {
      const r = await get(`${API}/reports/compliance-summary?format=pdf&clientId=${contoso.id}`, 'viewer');
      expect(r.statusCode).toBe(200);
      expect(r.headers['content-type']).toBe('application/pdf');
      expect(r.rawPayload.subarray(0, 5).toString()).toBe('%PDF-');
      const pngs = pages(r.rawPayload, 'summary');
      expect(pngs).toHaveLength(2);
      for (const p of pngs) expect(nonWhitePixels(p)).toBeGreaterThan(500);
      const text = r.rawPayload.toString('latin1');
      expect(text).toContain('Northwind IT Services');
    });

    it('PDF summary MSP-wide: a clients page too', async () => {
      const r = await get(`${API}/reports/compliance-summary?format=pdf`);
      expect(pages(r.rawPayload, 'msp')).toHaveLength(3);
    });

    it('PDF recovery audit: one page, never a password', async () => {
      const r = await get(`${API}/reports/recovery-audit?format=pdf&clientId=${contoso.id}`, 'auditor');
      expect(r.statusCode).toBe(200);
      const pngs = pages(r.rawPayload, 'audit');
      expect(pngs).toHaveLength(1);
      expect(nonWhitePixels(pngs[0]!)).toBeGreaterThan(500);
      expect(r.rawPayload.toString('latin1')).not.toContain(revealed.password!);
    });

    it('PDF recovery audit over several pages: every request listed, the table continues page after page', async () => {
      const helpdesk: import('../src/modules/authz/authz.js').Actor = {
        type: 'user',
        id: 'matrix-helpdesk',
        name: 'helpdesk@example.test',
        role: 'helpdesk',
        clients: [contoso.id],
      };
      await c.database.db.transaction().execute(async (tx) => {
        for (let i = 0; i < 150; i++) {
          await c.audit.record(tx, helpdesk, {
            action: 'key.reveal',
            outcome: 'not_found',
            clientId: contoso.id,
            reasonCode: 'lost-pin',
            ticket: `T-${1000 + i}`,
            details: { query: `${String(i).padStart(8, '0')}` },
          });
        }
      });
      const rows = parseCsv((await get(`${API}/reports/recovery-audit?clientId=${contoso.id}`)).body, { columns: true }) as Record<string, string>[];
      expect(rows).toHaveLength(151);
      expect(rows[150]).toMatchObject({ who: 'helpdesk@example.test', status: 'Failed (not found)', key_id: 'query: 00000149', ticket: 'T-1149' });
      const r = await get(`${API}/reports/recovery-audit?format=pdf&clientId=${contoso.id}`);
      const pngs = pages(r.rawPayload, 'audit-long');
      // 151 one-line rows of about 16 pt on landscape A4 (about 30 a page, fewer under the title): six pages.
      expect(pngs).toHaveLength(6);
      for (const p of pngs) expect(nonWhitePixels(p)).toBeGreaterThan(500);
    });

    it('the one renderer the scheduled delivery uses writes to any stream', async () => {
      const chunks: Buffer[] = [];
      const { Writable } = await import('node:stream');
      const out = new Writable({ write: (ch, _e, cb) => (chunks.push(Buffer.from(ch)), cb()) });
      const r = await c.reports.render(systemActor('report-delivery'), { report: 'compliance-summary', clientId: contoso.id, format: 'pdf' }, out);
      expect(r).toEqual({ filename: expect.stringMatching(/^keywarden-compliance-summary-contoso-\d{4}-\d{2}-\d{2}\.pdf$/), contentType: 'application/pdf' });
      expect(Buffer.concat(chunks).subarray(0, 5).toString()).toBe('%PDF-');
    });

    it('CLI: keywarden report compliance --client NAME --format pdf|csv --out FILE', async () => {
      const pdf = path.join(tmp, 'cli.pdf');
      let r = await vault.cli(['report', 'compliance', '--client', 'contoso', '--format', 'pdf', '--out', pdf]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/Wrote .*cli\.pdf \(application\/pdf/);
      expect(fs.readFileSync(pdf).subarray(0, 5).toString()).toBe('%PDF-');
      const out = path.join(tmp, 'devices.csv');
      r = await vault.cli(['report', 'devices', '--client', 'Contoso', '--out', out]);
      expect(r.code, r.stderr).toBe(0);
      expect(fs.readFileSync(out, 'utf8')).toContain('CONTOSO-LT-003,');
      r = await vault.cli(['report', 'escrow', '--out', '-']);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain('client,source,devices');
      r = await vault.cli(['report', 'devices', '--format', 'pdf', '--out', path.join(tmp, 'x.pdf')]);
      expect(r.code).not.toBe(0);
      r = await vault.cli(['report', 'compliance', '--client', 'Nobody', '--out', path.join(tmp, 'y.csv')]);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('No client named "Nobody"');
    });
  });

  it('a retired device leaves the status table and the counts; its history says so', async () => {
    const d = await c.database.db.selectFrom('devices').select('id').where('name', '=', 'CONTOSO-LT-003').executeTakeFirstOrThrow();
    await c.database.db.updateTable('devices').set({ retired_at: new Date().toISOString() }).where('id', '=', d.id).execute();
    await c.compliance.evaluateAll();
    expect(await c.database.db.selectFrom('device_compliance').select('status').where('device_id', '=', d.id).executeTakeFirst()).toBeUndefined();
    const last = await c.database.db
      .selectFrom('compliance_history')
      .select(['status', 'previous_status'])
      .where('device_id', '=', d.id)
      .orderBy('recorded_at', 'desc')
      .executeTakeFirstOrThrow();
    expect(last).toEqual({ status: 'retired', previous_status: 'non-compliant' });
    const s = await c.reports.summaryData(cliOwner, contoso.id);
    expect(s.totals).toMatchObject({ total: 2, compliant: 2, 'non-compliant': 0 });
    expect(s.trend[s.trend.length - 1]).toMatchObject({ total: 2, compliant: 2, 'non-compliant': 0 });
  });
});
