import { parse as parseCsv } from 'csv-parse/sync';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/app.js';
import { buildContainer, type Container } from '../src/container.js';
import { systemActor } from '../src/modules/authz/authz.js';
import { createTestVault, owner as cliOwner, type TestVault } from './helpers/vault.js';
import { PASSWORD, sessionFrom, type Session } from './helpers/app.js';
import { ENGINE } from './helpers/engine.js';
import { bytes, csvOf, randomKeyId, randomRecoveryPassword } from './helpers/keys.js';
import { SimMachine, TestAgent, injectTransport } from './agent/test-agent.js';

/**
 * Numbers that agree (issue 17): the Clients overview, the client page (overview and its devices
 * table filtered by compliance status) and the compliance report show the same compliant /
 * non-compliant / exempt / unknown counts and per cent for one fixture; a client whose devices no
 * agent ever reported is "unknown", not 0 %; a device first seen with protection suspended is
 * non-compliant at once.
 */

const API = '/api/v1';
type Json = Record<string, any>;

describe(`compliance numbers agree on ${ENGINE}`, () => {
  let vault: TestVault;
  let c: Container;
  let app: Awaited<ReturnType<typeof buildApp>>;
  let owner: Session;
  let contoso: { id: string; name: string };
  let litware: { id: string; name: string };
  const agents: Record<string, TestAgent> = {};
  const get = (url: string) => app.inject({ method: 'GET', url, headers: owner.headers });
  const post = (url: string, payload: Record<string, unknown>) => app.inject({ method: 'POST', url, headers: owner.headers, payload });

  beforeAll(async () => {
    vault = await createTestVault();
    c = await buildContainer(vault.config);
    app = await buildApp(c, { logger: false });
    contoso = await c.clients.create(cliOwner, { name: 'Contoso' });
    litware = await c.clients.create(cliOwner, { name: 'Litware' });
    await c.identity.createUser(systemActor('test'), { email: 'owner@example.test', password: PASSWORD, role: 'owner', clients: 'all' });
    owner = sessionFrom(await app.inject({ method: 'POST', url: `${API}/auth/login`, payload: { email: 'owner@example.test', password: PASSWORD } }));
    const tok = (await post(`${API}/agent/enrollment-tokens`, { clientId: contoso.id, maxUses: 10 })).json().token as string;
    // Contoso: two compliant devices, one never encrypted, one first seen suspended, one exempt.
    for (const name of ['CON-OK-1', 'CON-OK-2', 'CON-CLEAR', 'CON-SUSPENDED', 'CON-EXEMPT']) {
      const a = new TestAgent(injectTransport(app), new SimMachine(name));
      expect((await a.enroll(tok)).status).toBe(200);
      if (name === 'CON-CLEAR')
        Object.assign(a.machine.volume('C:'), { status: 'FullyDecrypted', protection: 'Off', method: 'None', percentage: 0, protectors: [] });
      if (name === 'CON-SUSPENDED')
        Object.assign(a.machine.volume('C:'), { status: 'FullyEncrypted', protection: 'Off', method: 'XtsAes128', percentage: 100 });
      expect((await a.run()).exitCode).toBe(0);
      agents[name] = a;
    }
    expect((await post(`${API}/compliance/exemptions`, { deviceId: agents['CON-EXEMPT']!.deviceId!, reason: 'Lab machine, wiped weekly' })).statusCode).toBe(
      201,
    );
    // Litware: keys imported, no agent: nothing can be judged.
    await c.imports.importFile(cliOwner, 'Litware', {
      fileName: 'keys.csv',
      bytes: bytes(
        csvOf([
          { device: 'LIT-1', keyId: randomKeyId(), password: randomRecoveryPassword() },
          { device: 'LIT-2', keyId: randomKeyId(), password: randomRecoveryPassword() },
        ]),
      ),
    });
  });
  afterAll(async () => {
    await app?.close();
    await c?.close();
    await vault?.close();
  });

  it('a device first seen with protection suspended is protection_suspended at once (unknown start)', async () => {
    const s = await c.compliance.deviceStatus(cliOwner, agents['CON-SUSPENDED']!.deviceId!);
    expect(s.status).toBe('non-compliant');
    expect(s.findings.map((f) => f.code)).toEqual(['protection_suspended']);
  });

  it('the Clients overview, the client page, its filtered devices table and the compliance report agree', async () => {
    const want = { compliant: 2, 'non-compliant': 2, exempt: 1, unknown: 0, devices: 5, judged: 4, percentCompliant: 50, level: 'some' };
    const list = (await get(`${API}/console/clients`)).json() as Json[];
    const row = list.find((x) => x.id === contoso.id)!;
    expect(row.compliance).toEqual(want);
    const page = (await get(`${API}/clients/${contoso.id}/overview`)).json() as Json;
    expect(page.compliance).toEqual(want);

    // Every count is the length of its filtered list.
    for (const status of ['compliant', 'non-compliant', 'exempt', 'unknown'] as const) {
      const r = await get(`${API}/clients/${contoso.id}/devices?compliance=${status}&limit=500`);
      expect(r.statusCode, r.body).toBe(200);
      const body = r.json() as { total: number; items: Json[] };
      expect([status, body.total]).toEqual([status, want[status]]);
      expect(body.items.every((d) => d.compliance === status)).toBe(true);
    }
    const nonCompliant = (await get(`${API}/clients/${contoso.id}/devices?compliance=non-compliant`)).json().items.map((d: Json) => d.name);
    expect(nonCompliant).toEqual(['CON-CLEAR', 'CON-SUSPENDED']);

    // The report: the same counts and the same per cent.
    const csv = (await get(`${API}/reports/compliance-summary?format=csv`)).body;
    const rows = parseCsv(csv, { columns: true }) as Record<string, string>[];
    const rep = rows.find((r) => r.section === 'client' && r.scope === 'Contoso')!;
    expect(rep).toMatchObject({ devices: '5', compliant: '2', non_compliant: '2', exempt: '1', unknown: '0', compliant_percent: '50' });
  });

  it('a client without an evaluable device is unknown everywhere, not 0 %', async () => {
    const list = (await get(`${API}/console/clients`)).json() as Json[];
    const want = { compliant: 0, 'non-compliant': 0, exempt: 0, unknown: 2, devices: 2, judged: 0, percentCompliant: null, level: 'unknown' };
    expect(list.find((x) => x.id === litware.id)!.compliance).toEqual(want);
    expect((await get(`${API}/clients/${litware.id}/overview`)).json().compliance).toEqual(want);
    expect((await get(`${API}/clients/${litware.id}/devices?compliance=unknown`)).json().total).toBe(2);
    const rows = parseCsv((await get(`${API}/reports/compliance-summary?format=csv&clientId=${litware.id}`)).body, { columns: true }) as Record<
      string,
      string
    >[];
    // Empty per cent: unknown, where it used to say 0.
    expect(rows.find((r) => r.section === 'current')).toMatchObject({ devices: '2', unknown: '2', compliant_percent: '' });
  });

  it('every last-seen bar is the length of its filtered list (bands: 24 h, 7 d, 30 d, older)', async () => {
    // Litware's two devices: one seen 3 days ago, one exactly 30 days ago (the edge of "30 d").
    const now = Date.parse(c.clock.now());
    const day = 86_400_000;
    const lit = await c.database.db.selectFrom('devices').select(['id', 'name']).where('client_id', '=', litware.id).orderBy('name').execute();
    const seenAt = [new Date(now - 3 * day).toISOString(), new Date(now - 30 * day + 1000).toISOString()];
    for (const [i, d] of lit.entries()) await c.database.db.updateTable('devices').set({ last_seen_at: seenAt[i]! }).where('id', '=', d.id).execute();
    for (const client of [contoso, litware]) {
      const page = (await get(`${API}/clients/${client.id}/overview`)).json() as Json;
      let sum = 0;
      for (const band of ['day', 'week', 'month', 'older'] as const) {
        const r = await get(`${API}/clients/${client.id}/devices?seen=${band}&limit=500`);
        expect(r.statusCode, r.body).toBe(200);
        expect([client.name, band, r.json().total]).toEqual([client.name, band, page.lastSeen[band]]);
        sum += r.json().total as number;
      }
      expect(sum).toBe(page.devices);
    }
    expect((await get(`${API}/clients/${litware.id}/overview`)).json().lastSeen).toEqual({ day: 0, week: 1, month: 1, older: 0 });
    const csv = parseCsv((await get(`${API}/clients/${litware.id}/devices/export?seen=week`)).body, { columns: true }) as Record<string, string>[];
    expect(csv.map((r) => r.device)).toEqual([lit[0]!.name]);
    const bad = await get(`${API}/clients/${litware.id}/devices?seen=yesterday`);
    expect(bad.statusCode).toBe(400);
    expect(bad.json().message).toMatch(/seen/);
  });

  it('refuses a compliance filter it does not know, in product words', async () => {
    const r = await get(`${API}/clients/${contoso.id}/devices?compliance=green`);
    expect(r.statusCode).toBe(400);
    expect(r.json().message ?? r.body).toMatch(/compliance/);
  });
});
