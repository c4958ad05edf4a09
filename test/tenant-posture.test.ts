import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseCsv } from 'csv-parse/sync';
import { GraphSimulator } from './graph-sim/simulator.js';
import { assign, endpointProtectionProfile, settingsCatalogBitLocker, type SimDeviceConfiguration } from './graph-sim/posture.js';
import { createTestApp, type Session, type TestApp } from './helpers/app.js';
import { ENGINE } from './helpers/engine.js';
import { systemActor } from '../src/modules/authz/authz.js';

/**
 * Issue 20, tenant posture: every Entra sync reads whether end users may read their own BitLocker
 * keys (authorization policy) and whether Intune requires the recovery information stored before it
 * turns BitLocker on; the compliance API and the compliance report show it per client, only to
 * people who may see that client.
 */
const API = '/api/v1';
const admin = systemActor('test');
const LAB = { KEYWARDEN_EGRESS_ALLOW: '127.0.0.1' };

type Posture = {
  client: { id: string; name: string };
  usersCanReadOwnKeys: string;
  usersCanReadOwnKeysReason: string | null;
  intuneRequiresEscrow: string;
  intuneReason: string | null;
  intunePolicies: { name: string; kind: string; requiresEscrow: boolean; assigned: boolean | null; assignedTo: string }[];
  lines: { question: string; answer: string; text: string }[];
  notes: { code: string }[];
};

/** A non-BitLocker Intune profile: listed by Graph, ignored by posture. */
const wifiProfile = (): SimDeviceConfiguration => ({
  id: '5e5e5e5e-0000-4000-8000-000000000001',
  '@odata.type': '#microsoft.graph.windows10GeneralConfiguration',
  displayName: 'Wi-Fi and general',
});

describe(`tenant posture from Entra ID and Intune on ${ENGINE}`, () => {
  let t: TestApp;
  let owner: Session;
  let sim: GraphSimulator;
  let urls: { loginUrl: string; graphUrl: string };
  let tmp: string;
  const conns: Record<string, { clientId: string; connId: string; tenantId: string }> = {};

  const connect = async (name: string, tenantId: string) => {
    const client = await t.container.clients.create(admin, { name });
    const tenant = sim.tenant(tenantId);
    const conn = await t.container.graph.createConnection(admin, {
      clientId: client.id,
      tenantId,
      appClientId: tenant.clientId,
      clientSecret: tenant.clientSecret,
      ...urls,
    });
    conns[name] = { clientId: client.id, connId: conn.id, tenantId };
    return conns[name];
  };
  const tokenFor = async (tenantId: string): Promise<string> => {
    const tenant = sim.tenant(tenantId);
    const r = await fetch(`${urls.loginUrl}/${tenant.tenantId}/oauth2/v2.0/token`, {
      method: 'POST',
      body: new URLSearchParams({
        grant_type: 'client_credentials',
        client_id: tenant.clientId,
        client_secret: tenant.clientSecret,
        scope: 'https://graph.microsoft.com/.default',
      }),
    });
    return ((await r.json()) as { access_token: string }).access_token;
  };
  const get = async (url: string, s: Session = owner) => t.app.inject({ method: 'GET', url: `${API}${url}`, headers: s.headers });
  const postureOf = async (clientId: string, s: Session = owner): Promise<Posture> => {
    const r = await get(`/compliance/tenant-posture?clientId=${clientId}`, s);
    expect(r.statusCode).toBe(200);
    const list = r.json() as Posture[];
    expect(list).toHaveLength(1);
    return list[0]!;
  };

  beforeAll(async () => {
    t = await createTestApp({ ...LAB });
    owner = await t.signIn((await t.addUser('owner', 'all', 'owner@example.test')).email);
    sim = new GraphSimulator({ inFlightGraceMs: 0 });
    urls = await sim.start();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kw-posture-'));

    // Contoso: users may read their keys (Entra's default); Intune's template requires escrow first.
    const a = sim.seedTenant('1a1a1a1a-1111-4222-8333-444444444444', { keys: 3, devices: 2 });
    a.posture.usersCanReadOwnKeys = true;
    a.posture.deviceConfigurations.push(wifiProfile(), endpointProtectionProfile('Contoso BitLocker', true));
    // Fabrikam: users may not; a settings catalog policy turns BitLocker on without requiring escrow.
    const b = sim.seedTenant('2b2b2b2b-1111-4222-8333-444444444444', { keys: 3, devices: 2 });
    b.posture.usersCanReadOwnKeys = false;
    b.posture.configurationPolicies.push(settingsCatalogBitLocker('Fabrikam disk encryption', false));
    // Litware: no Intune BitLocker policy at all (its devices are encrypted by the agent).
    sim.seedTenant('3c3c3c3c-1111-4222-8333-444444444444', { keys: 2, devices: 1 });
    // Tailspin: the app lacks both posture permissions.
    const d = sim.seedTenant('4d4d4d4d-1111-4222-8333-444444444444', { keys: 2, devices: 1 });
    d.permissions.delete('Policy.Read.All');
    d.permissions.delete('DeviceManagementConfiguration.Read.All');
    await connect('Contoso', a.tenantId);
    await connect('Fabrikam', b.tenantId);
    await connect('Litware', '3c3c3c3c-1111-4222-8333-444444444444');
    await connect('Tailspin', d.tenantId);
    for (const c of Object.values(conns)) await t.container.graph.runSync(c.connId);
  }, 120_000);
  afterAll(async () => {
    await sim.stop();
    await t.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('users may read their keys, Intune requires escrow (Endpoint protection template): yes / yes, no client-level finding for Intune', async () => {
    const p = await postureOf(conns.Contoso!.clientId);
    expect(p).toMatchObject({
      client: { name: 'Contoso' },
      usersCanReadOwnKeys: 'yes',
      intuneRequiresEscrow: 'yes',
      intunePolicies: [{ name: 'Contoso BitLocker', kind: 'endpoint protection profile', requiresEscrow: true, assigned: true, assignedTo: 'all devices' }],
    });
    expect(p.lines.map((l) => `${l.question}: ${l.text}`)).toEqual([
      expect.stringMatching(/^End users can read their own BitLocker keys in Entra ID: Yes — consider turning this off if you use Keywarden self-service/),
      'Intune requires recovery information stored before BitLocker is enabled: Yes ("Contoso BitLocker").',
    ]);
    expect(p.notes.map((n) => n.code)).toEqual(['entra_users_read_own_keys']);
  });

  it('users may not, a settings catalog policy encrypts without escrow: no / no (policy named), a client-level finding', async () => {
    const p = await postureOf(conns.Fabrikam!.clientId);
    expect(p).toMatchObject({
      usersCanReadOwnKeys: 'no',
      intuneRequiresEscrow: 'no',
      intunePolicies: [{ name: 'Fabrikam disk encryption', kind: 'settings catalog', requiresEscrow: false }],
    });
    expect(p.lines[1]!.text).toBe('No ("Fabrikam disk encryption") — devices may encrypt without an escrowed key.');
    expect(p.notes.map((n) => n.code)).toEqual(['intune_escrow_not_required']);
  });

  it('no Intune BitLocker policy: "no", said as such, and not a finding (the client encrypts some other way)', async () => {
    const p = await postureOf(conns.Litware!.clientId);
    expect(p).toMatchObject({ intuneRequiresEscrow: 'no', intunePolicies: [] });
    expect(p.lines[1]!.text).toMatch(/^No — no Intune policy turns BitLocker on/);
    expect(p.notes.map((n) => n.code)).toEqual(['entra_users_read_own_keys']);
  });

  it('permissions missing: both answers unknown with what to grant; the sync still succeeded (with a warning) and stored every key', async () => {
    const c = conns.Tailspin!;
    const [run] = (await get(`/graph/connections/${c.connId}/runs`)).json() as { status: string; warnings: string | null; newKeys: number }[];
    expect(run).toMatchObject({ status: 'succeeded', newKeys: 2 });
    expect(run!.warnings).toMatch(/grant Policy\.Read\.All/);
    expect(run!.warnings).toMatch(/grant DeviceManagementConfiguration\.Read\.All/);
    expect(run!.warnings).not.toMatch(/Insufficient privileges|Application is not authorized/); // Graph's own text is never repeated
    const p = await postureOf(c.clientId);
    expect(p).toMatchObject({ usersCanReadOwnKeys: 'unknown', intuneRequiresEscrow: 'unknown', intunePolicies: [], notes: [] });
    expect(p.usersCanReadOwnKeysReason).toMatch(/^grant Policy\.Read\.All/);
    expect(p.intuneReason).toMatch(/^grant DeviceManagementConfiguration\.Read\.All/);
    expect(p.lines.map((l) => l.text)).toEqual([
      expect.stringMatching(/^Unknown — grant Policy\.Read\.All/),
      expect.stringMatching(/^Unknown — grant DeviceManagementConfiguration/),
    ]);
    // Forbidden answers were what Graph said: the simulator saw the reads and refused them.
    const refused = sim
      .requests(c.tenantId)
      .filter((r) => r.status === 403)
      .map((r) => r.path);
    expect(refused).toEqual(
      expect.arrayContaining([expect.stringContaining('/policies/authorizationPolicy'), expect.stringContaining('/deviceConfigurations')]),
    );
  });

  it('the posture changes at the next sync (audited once per change); a sync without change leaves it and writes no event', async () => {
    const c = conns.Tailspin!;
    const tenant = sim.tenant(c.tenantId);
    tenant.permissions.add('Policy.Read.All');
    tenant.permissions.add('DeviceManagementConfiguration.Read.All');
    tenant.posture.usersCanReadOwnKeys = false;
    // Paged: the policy that does not require escrow is on the last page.
    tenant.posture.pageSize = 1;
    tenant.posture.deviceConfigurations.push(
      wifiProfile(),
      endpointProtectionProfile('Tailspin laptops', true),
      endpointProtectionProfile('Tailspin kiosks', false),
    );
    const run = await t.container.graph.runSync(c.connId);
    expect(run).toMatchObject({ status: 'succeeded', warnings: null });
    let p = await postureOf(c.clientId);
    expect(p).toMatchObject({ usersCanReadOwnKeys: 'no', intuneRequiresEscrow: 'no' });
    expect(p.intunePolicies.map((x) => `${x.name}:${x.requiresEscrow}`)).toEqual(['Tailspin laptops:true', 'Tailspin kiosks:false']);
    expect(p.lines[1]!.text).toBe('No ("Tailspin kiosks") — devices may encrypt without an escrowed key.');

    const events = async () => (await get(`/audit?action=graph.posture_changed&clientId=${c.clientId}`)).json() as { items?: unknown[] } | unknown[];
    const count = async () => {
      const e = await events();
      return (Array.isArray(e) ? e : (e.items ?? [])).length;
    };
    const before = await count();
    expect(before).toBe(2); // first sync (unknown) and this change
    await t.container.graph.runSync(c.connId);
    expect(await count()).toBe(2);

    tenant.posture.deviceConfigurations.splice(2, 1); // the kiosk profile is fixed (removed)
    await t.container.graph.runSync(c.connId);
    p = await postureOf(c.clientId);
    expect(p).toMatchObject({ intuneRequiresEscrow: 'yes', notes: [] });
    expect(await count()).toBe(3);
  });

  it('Graph unavailable for the posture step: the last answers stand, the sync succeeds with a warning and no change is audited', async () => {
    const c = conns.Contoso!;
    const tenant = sim.tenant(c.tenantId);
    const changes = async () => ((await get(`/audit?action=graph.posture_changed&clientId=${c.clientId}`)).json() as unknown[]).length;
    const before = await changes();
    tenant.posture.failure = { status: 500, code: 'InternalServerError', message: 'remote text that must not be repeated' };
    try {
      const run = await t.container.graph.runSync(c.connId);
      expect(run.status).toBe('succeeded');
      expect(run.warnings).toMatch(/Microsoft Graph answered HTTP 500 when Keywarden read the authorization policy/);
      expect(run.warnings).not.toContain('remote text');
    } finally {
      delete tenant.posture.failure;
    }
    const p = await postureOf(c.clientId);
    expect(p).toMatchObject({ usersCanReadOwnKeys: 'yes', intuneRequiresEscrow: 'yes', intunePolicies: [{ name: 'Contoso BitLocker' }] });
    expect(await changes()).toBe(before);
  });

  it('a client viewer sees only their client’s posture; another client’s is neither listed nor readable', async () => {
    const viewer = await t.signIn((await t.addUser('client-viewer', [conns.Fabrikam!.clientId], 'viewer@example.test')).email);
    const all = (await get('/compliance/tenant-posture', viewer)).json() as Posture[];
    expect(all.map((p) => p.client.name)).toEqual(['Fabrikam']);
    const other = await get(`/compliance/tenant-posture?clientId=${conns.Contoso!.clientId}`, viewer);
    expect([403, 404]).toContain(other.statusCode);
    expect(other.body).not.toContain('Contoso BitLocker');
    // The owner sees all four.
    const mine = (await get('/compliance/tenant-posture')).json() as Posture[];
    expect(mine.map((p) => p.client.name).sort()).toEqual(['Contoso', 'Fabrikam', 'Litware', 'Tailspin']);
    // The report of the viewer's client carries its posture and nobody else's.
    const csv = await get(`/reports/compliance-summary?format=csv&clientId=${conns.Fabrikam!.clientId}`, viewer);
    expect(csv.statusCode).toBe(200);
    expect(csv.body).not.toContain('Contoso');
  });

  it('the compliance report: CSV rows and PDF text per client in product words', async () => {
    const id = conns.Fabrikam!.clientId;
    const rows = parseCsv((await get(`/reports/compliance-summary?format=csv&clientId=${id}`)).body, { columns: true }) as Record<string, string>[];
    const posture = rows.filter((r) => r.section === 'tenant_posture');
    expect(posture.map((r) => [r.scope, r.note])).toEqual([
      ['Fabrikam', 'End users can read their own BitLocker keys in Entra ID: No — only administrators read recovery keys in Entra ID.'],
      [
        'Fabrikam',
        'Intune requires recovery information stored before BitLocker is enabled: No ("Fabrikam disk encryption") — devices may encrypt without an escrowed key.',
      ],
    ]);
    const pdf = await get(`/reports/compliance-summary?format=pdf&clientId=${conns.Contoso!.clientId}`);
    expect(pdf.statusCode).toBe(200);
    const file = path.join(tmp, 'contoso.pdf');
    fs.writeFileSync(file, pdf.rawPayload);
    const text = execFileSync('pdftotext', ['-raw', '-enc', 'UTF-8', file, '-'], { encoding: 'utf8' }).replace(/\s+/g, ' ');
    expect(text).toContain('Tenant posture (Entra ID and Intune)');
    expect(text).toContain('End users can read their own BitLocker keys in Entra ID');
    expect(text).toContain('Yes — consider turning this off if you use Keywarden self-service');
    expect(text).toContain('Yes ("Contoso BitLocker")');
    // MSP-wide: every client's answers, with the client named.
    const all = parseCsv((await get('/reports/compliance-summary?format=csv')).body, { columns: true }) as Record<string, string>[];
    expect(new Set(all.filter((r) => r.section === 'tenant_posture').map((r) => r.scope))).toEqual(new Set(['Contoso', 'Fabrikam', 'Litware', 'Tailspin']));
  });

  it('"Test connection" names the two optional posture permissions, granted or not', async () => {
    const c = conns.Fabrikam!;
    const tenant = sim.tenant(c.tenantId);
    tenant.permissions.delete('Policy.Read.All');
    try {
      const r = await t.app.inject({ method: 'POST', url: `${API}/graph/connections/${c.connId}/test`, headers: owner.headers });
      expect(r.statusCode).toBe(200);
      const body = r.json() as { ok: boolean; checks: { check: string; ok: boolean; detail: string }[] };
      expect(body.ok).toBe(true); // optional: the connection works without them
      expect(body.checks.find((x) => x.check.startsWith('Policy.Read.All'))).toMatchObject({ ok: false, detail: expect.stringMatching(/^403 /) });
      expect(body.checks.find((x) => x.check.startsWith('DeviceManagementConfiguration.Read.All'))).toMatchObject({ ok: true });
    } finally {
      tenant.permissions.add('Policy.Read.All');
    }
  });

  it('the simulator answers as documented: v1.0 authorizationPolicy is the object, beta a collection; Intune refuses without its permission', async () => {
    const tenant = sim.tenant(conns.Contoso!.tenantId);
    const token = (
      (await (
        await fetch(`${urls.loginUrl}/${tenant.tenantId}/oauth2/v2.0/token`, {
          method: 'POST',
          body: new URLSearchParams({
            grant_type: 'client_credentials',
            client_id: tenant.clientId,
            client_secret: tenant.clientSecret,
            scope: 'https://graph.microsoft.com/.default',
          }),
        })
      ).json()) as { access_token: string }
    ).access_token;
    const g = async (p: string) => {
      const r = await fetch(`${urls.graphUrl}${p}`, { headers: { authorization: `Bearer ${token}` } });
      return { status: r.status, json: (await r.json()) as Record<string, unknown> };
    };
    const v1 = await g('/v1.0/policies/authorizationPolicy');
    expect(v1.status).toBe(200);
    expect(v1.json).toMatchObject({ id: 'authorizationPolicy', defaultUserRolePermissions: { allowedToReadBitlockerKeysForOwnedDevice: true } });
    expect(String(v1.json['@odata.context'])).toMatch(/#policies\/authorizationPolicy\/\$entity$/);
    expect(v1.json.value).toBeUndefined();
    const beta = await g('/beta/policies/authorizationPolicy');
    expect(beta.json.value).toEqual([expect.objectContaining({ id: 'authorizationPolicy' })]);
    expect((await g('/beta/policies/authorizationPolicy/authorizationPolicy')).json).toMatchObject({ id: 'authorizationPolicy' });
    const configs = await g('/v1.0/deviceManagement/deviceConfigurations');
    expect(configs.json.value).toEqual([
      expect.objectContaining({ '@odata.type': '#microsoft.graph.windows10GeneralConfiguration' }),
      expect.objectContaining({
        '@odata.type': '#microsoft.graph.windows10EndpointProtectionConfiguration',
        bitLockerSystemDrivePolicy: expect.objectContaining({
          recoveryOptions: expect.objectContaining({ enableBitLockerAfterRecoveryInformationToStore: true }),
        }),
      }),
    ]);
    expect((await g('/v1.0/deviceManagement/configurationPolicies')).status).toBe(400); // settings catalog: beta only
    tenant.permissions.delete('DeviceManagementConfiguration.Read.All');
    tenant.permissions.delete('Policy.Read.All');
    try {
      expect(await g('/v1.0/deviceManagement/deviceConfigurations')).toMatchObject({ status: 403, json: { error: { code: 'Forbidden' } } });
      expect(await g('/beta/deviceManagement/configurationPolicies')).toMatchObject({ status: 403, json: { error: { code: 'Forbidden' } } });
      expect(await g('/v1.0/policies/authorizationPolicy')).toMatchObject({ status: 403, json: { error: { code: 'Authorization_RequestDenied' } } });
    } finally {
      tenant.permissions.add('DeviceManagementConfiguration.Read.All');
      tenant.permissions.add('Policy.Read.All');
    }
  });

  describe('only assigned Intune policies count', () => {
    // Northwind: its own client and tenant, set up anew by each test (after the tests above, which count four clients).
    const NORTHWIND = '7e7e7e7e-1111-4222-8333-444444444444';
    const tenant = () => sim.tenant(NORTHWIND);
    const sync = async () => {
      const run = await t.container.graph.runSync(conns.Northwind!.connId);
      expect(run.status).toBe('succeeded');
      return run;
    };
    const posture = () => postureOf(conns.Northwind!.clientId);
    const assignmentReads = () =>
      sim
        .requests(NORTHWIND)
        .map((r) => r.path)
        .map((p) => p.split('?')[0]!.replace(/^\/graph/, ''))
        .filter((p) => p.endsWith('/assignments'));

    beforeAll(async () => {
      sim.seedTenant(NORTHWIND, { keys: 1, devices: 1 });
      await connect('Northwind', NORTHWIND);
    });

    it('a policy that requires escrow but is assigned to nobody: "no", the reason names it; no finding (it encrypts no device)', async () => {
      tenant().posture.deviceConfigurations = [wifiProfile(), endpointProtectionProfile('BitLocker baseline', true, [])];
      tenant().posture.configurationPolicies = [];
      await sync();
      const p = await posture();
      expect(p).toMatchObject({
        intuneRequiresEscrow: 'no',
        intuneReason: '"BitLocker baseline" requires it but is not assigned to any group',
        intunePolicies: [{ name: 'BitLocker baseline', requiresEscrow: true, assigned: false, assignedTo: 'no group' }],
      });
      expect(p.lines[1]!.text).toBe(
        'No — "BitLocker baseline" requires it but is not assigned to any group: an Intune policy applies only to the devices and users it is assigned to.',
      );
      expect(p.notes.map((n) => n.code)).not.toContain('intune_escrow_not_required');
      // The assignments were read from Graph, for the BitLocker profile only (the Wi-Fi profile's are not needed).
      const id = tenant().posture.deviceConfigurations[1]!.id;
      expect(assignmentReads()).toContain(`/v1.0/deviceManagement/deviceConfigurations/${id}/assignments`);
      expect(assignmentReads().some((x) => x.includes(wifiProfile().id))).toBe(false);
    });

    it('assigned to all devices: "yes"; a settings catalog policy assigned to groups counts too, an unassigned one that does not require escrow does not spoil it', async () => {
      tenant().posture.deviceConfigurations[1]!.assignments = [assign.allDevices()];
      tenant().posture.configurationPolicies = [
        settingsCatalogBitLocker('Laptops encryption', true, [assign.group(), assign.group(), assign.exclude()]),
        settingsCatalogBitLocker('Old kiosk test', false, []),
      ];
      await sync();
      const p = await posture();
      expect(p).toMatchObject({ intuneRequiresEscrow: 'yes', intuneReason: null });
      expect(p.notes.map((n) => n.code)).not.toContain('intune_escrow_not_required');
      expect(p.intunePolicies.map((x) => `${x.name}: ${x.assigned} (${x.assignedTo})`)).toEqual([
        'BitLocker baseline: true (all devices)',
        'Laptops encryption: true (2 groups (1 group excluded))',
        'Old kiosk test: false (no group)',
      ]);
      expect(p.lines[1]!.text).toBe('Yes ("BitLocker baseline", "Laptops encryption").');
      const catalogId = tenant().posture.configurationPolicies[0]!.id;
      expect(assignmentReads()).toContain(`/beta/deviceManagement/configurationPolicies/${catalogId}/assignments`);
    });

    it('assigned only to an excluded group: "no", saying so', async () => {
      tenant().posture.deviceConfigurations[1]!.assignments = [assign.exclude()];
      tenant().posture.configurationPolicies = [];
      await sync();
      const p = await posture();
      expect(p).toMatchObject({
        intuneRequiresEscrow: 'no',
        intuneReason: '"BitLocker baseline" requires it but is assigned only to excluded groups',
        intunePolicies: [{ name: 'BitLocker baseline', assigned: false, assignedTo: 'only excluded groups (1)' }],
      });
      // The report says the same per policy (CSV row and PDF text).
      const rows = parseCsv((await get(`/reports/compliance-summary?format=csv&clientId=${conns.Northwind!.clientId}`)).body, {
        columns: true,
      }) as Record<string, string>[];
      expect(rows.filter((r) => r.section === 'tenant_posture_policy').map((r) => [r.scope, r.note])).toEqual([
        [
          'Northwind',
          '"BitLocker baseline" (endpoint protection profile): requires recovery information stored first; assigned only excluded groups (1) — applies to no device',
        ],
      ]);
    });

    it('assignments refused (403): "unknown" with what to grant, the policies still listed, the sync succeeded with a warning', async () => {
      tenant().posture.deviceConfigurations[1]!.assignments = [assign.allDevices()];
      tenant().posture.assignmentsFailure = { status: 403, code: 'Forbidden', message: 'remote text that must not be repeated' };
      try {
        const run = await sync();
        expect(run.warnings).toMatch(
          /grant DeviceManagementConfiguration\.Read\.All .* so Keywarden can read the assignments of the Intune BitLocker policies/,
        );
        expect(run.warnings).not.toContain('remote text');
      } finally {
        delete tenant().posture.assignmentsFailure;
      }
      const p = await posture();
      expect(p).toMatchObject({
        intuneRequiresEscrow: 'unknown',
        intunePolicies: [{ name: 'BitLocker baseline', requiresEscrow: true, assigned: null, assignedTo: 'not read' }],
      });
      expect(p.intuneReason).toMatch(/^grant DeviceManagementConfiguration\.Read\.All to the app registration/);
      expect(p.lines[1]!.text).toMatch(/^Unknown — grant DeviceManagementConfiguration\.Read\.All/);
      // Granted again (assignments readable): the next sync says "yes".
      await sync();
      expect(await posture()).toMatchObject({ intuneRequiresEscrow: 'yes', intunePolicies: [{ assigned: true, assignedTo: 'all devices' }] });
    });

    it('assignments unavailable (HTTP 500): the last answer stands, with a warning; nothing audited', async () => {
      const changes = async () => ((await get(`/audit?action=graph.posture_changed&clientId=${conns.Northwind!.clientId}`)).json() as unknown[]).length;
      const before = await changes();
      tenant().posture.deviceConfigurations[1]!.assignments = []; // would be a "no" if it were read
      tenant().posture.assignmentsFailure = { status: 500, code: 'InternalServerError', message: 'remote text' };
      try {
        const run = await sync();
        expect(run.warnings).toMatch(/Microsoft Graph answered HTTP 500 when Keywarden read the assignments of the Intune BitLocker policies/);
      } finally {
        delete tenant().posture.assignmentsFailure;
        tenant().posture.deviceConfigurations[1]!.assignments = [assign.allDevices()];
      }
      expect(await posture()).toMatchObject({ intuneRequiresEscrow: 'yes', intunePolicies: [{ assigned: true, assignedTo: 'all devices' }] });
      expect(await changes()).toBe(before);
    });

    it('the report shows each policy with whom it is assigned to (PDF)', async () => {
      const pdf = await get(`/reports/compliance-summary?format=pdf&clientId=${conns.Northwind!.clientId}`);
      expect(pdf.statusCode).toBe(200);
      const file = path.join(tmp, 'northwind.pdf');
      fs.writeFileSync(file, pdf.rawPayload);
      const text = execFileSync('pdftotext', ['-raw', '-enc', 'UTF-8', file, '-'], { encoding: 'utf8' }).replace(/\s+/g, ' ');
      expect(text).toContain('Intune BitLocker policy');
      expect(text).toContain('"BitLocker baseline" (endpoint protection profile): requires recovery information stored first; assigned to all devices');
    });

    it('the simulator serves assignments as documented: per policy, not in the lists, 404 for an unknown policy', async () => {
      const catalog = settingsCatalogBitLocker('Sim check', true, [assign.group('11111111-2222-4333-8444-555555555555'), assign.allUsers()]);
      tenant().posture.configurationPolicies = [catalog];
      const token = await tokenFor(NORTHWIND);
      const g = async (p: string) => {
        const r = await fetch(`${urls.graphUrl}${p}`, { headers: { authorization: `Bearer ${token}` } });
        return { status: r.status, json: (await r.json()) as Record<string, unknown> };
      };
      const config = tenant().posture.deviceConfigurations[1]!;
      const v1 = await g(`/v1.0/deviceManagement/deviceConfigurations/${config.id}/assignments`);
      expect(v1.json.value).toEqual([
        {
          id: `${config.id}_adadadad-808e-44e2-905a-0b7873a8a531`,
          source: 'direct',
          sourceId: config.id,
          intent: 'apply',
          target: expect.objectContaining({ '@odata.type': '#microsoft.graph.allDevicesAssignmentTarget', deviceAndAppManagementAssignmentFilterType: 'none' }),
        },
      ]);
      const beta = await g(`/beta/deviceManagement/configurationPolicies/${catalog.id}/assignments`);
      expect((beta.json.value as { target: Record<string, unknown> }[]).map((a) => a.target)).toEqual([
        expect.objectContaining({ '@odata.type': '#microsoft.graph.groupAssignmentTarget', groupId: '11111111-2222-4333-8444-555555555555' }),
        expect.objectContaining({ '@odata.type': '#microsoft.graph.allLicensedUsersAssignmentTarget' }),
      ]);
      const lists = [await g('/v1.0/deviceManagement/deviceConfigurations'), await g('/beta/deviceManagement/configurationPolicies')];
      for (const l of lists) expect(JSON.stringify(l.json.value)).not.toContain('assignments');
      expect((await g('/beta/deviceManagement/configurationPolicies/00000000-0000-4000-8000-000000000000/assignments')).status).toBe(404);
      expect((await g(`/v1.0/deviceManagement/configurationPolicies/${catalog.id}/assignments`)).status).toBe(400); // beta only
      tenant().permissions.delete('DeviceManagementConfiguration.Read.All');
      try {
        expect((await g(`/v1.0/deviceManagement/deviceConfigurations/${config.id}/assignments`)).status).toBe(403);
      } finally {
        tenant().permissions.add('DeviceManagementConfiguration.Read.All');
      }
    });
  });

  it('removing the Entra ID connection removes the posture (Keywarden no longer knows it)', async () => {
    const c = conns.Litware!;
    const r = await t.app.inject({ method: 'DELETE', url: `${API}/graph/connections/${c.connId}`, headers: owner.headers });
    expect(r.statusCode).toBeLessThan(300);
    expect((await get(`/compliance/tenant-posture?clientId=${c.clientId}`)).json()).toEqual([]);
    expect(sim.errors()).toEqual([]);
  });
});
