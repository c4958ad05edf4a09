/// <reference lib="dom" />
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { cliActor } from '../../src/modules/authz/authz.js';
import { GraphSimulator } from '../graph-sim/simulator.js';
import { chromiumSuite, DESKTOP, PHONE, seriousA11yViolations, type ContextOptions } from './harness.js';

/**
 * Settings → Connections and Settings → Branding (issue 17).
 * Active Directory: connected from the console against a domain controller that cannot be reached
 * (a closed local port: no Samba AD DC here, the successful path is test/ad-sync.test.ts), "Test"
 * says so check by check, "Sync now" records the failure in the history, then edited (the password
 * left blank is kept), disabled and removed. Entra ID: a tenant of the Graph simulator, tested,
 * synced and removed. Branding: name and logo saved, seen in the preview and through the API.
 * Desktop 1280 and phone 390, light and dark, axe at each; roles without the permission get no tab.
 */
const OWNER = cliActor('browser-test');
const AD_PASSWORD = 'Ad-Bind-Secret-93c1f0e2';

describe('Settings: connections and branding (Chromium)', () => {
  let sim: GraphSimulator;
  let urls: { loginUrl: string; graphUrl: string };
  let closedPort: number;

  // Registered before the console's hooks: started before it, stopped after it.
  beforeAll(async () => {
    const srv = net.createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    closedPort = (srv.address() as AddressInfo).port;
    await new Promise<void>((r) => srv.close(() => r()));
    sim = new GraphSimulator();
    urls = await sim.start();
  });
  afterAll(async () => {
    await sim?.stop();
  });
  // The simulator and the "domain controller" are on this machine: allowed, as an operator would.
  const suite = chromiumSuite({ env: { KEYWARDEN_EGRESS_ALLOW: '127.0.0.1,::1,localhost' } });

  const as = async (role: string, opts: ContextOptions = {}) => (await suite.pageAs(role, opts)).page;
  const openTab = async (p: Page, tab: 'Connections' | 'Branding', phone = false) => {
    if (phone) await p.getByRole('button', { name: 'Open navigation' }).click();
    await p.getByRole('navigation').getByRole('link', { name: 'Settings' }).click();
    await p.getByRole('tab', { name: tab }).click();
  };
  const client = (name: string) => suite.server.demo.clients.find((c) => c.name === name)!;
  const adOf = async (clientId: string) => (await suite.server.container.directory.listConnections(OWNER)).find((c) => c.clientId === clientId);

  it('connects Active Directory, "Test" fails clearly against an unreachable DC, sync history shows it, then edit, disable, remove (desktop, light)', async () => {
    const tailspin = client('Tailspin Toys');
    expect(await adOf(tailspin.id)).toBeUndefined();
    const p = await as('owner', { viewport: DESKTOP, colorScheme: 'light' });
    await openTab(p, 'Connections');
    await p.getByRole('heading', { name: 'Active Directory' }).waitFor();
    expect(await seriousA11yViolations(p)).toEqual([]);

    await p.getByRole('button', { name: 'Connect Active Directory' }).click();
    const d = p.getByRole('dialog', { name: 'Connect Active Directory' });
    await d.getByLabel('Client').selectOption({ label: 'Tailspin Toys' });
    await d.getByLabel('Domain controllers').fill('127.0.0.1');
    await d.getByLabel('Port').fill(String(closedPort));
    await d.getByLabel("Trust the domain controller's certificate by").selectOption('any');
    await d.getByText('This choice is recorded in the audit log.', { exact: false }).waitFor();
    await d.getByLabel('Bind account (DN)').fill('CN=svc-keywarden,OU=Service Accounts,DC=tailspintoys,DC=example');
    await d.getByLabel('Bind password').fill(AD_PASSWORD);
    await d.getByLabel('Search under (base DNs)').fill('OU=Computers,DC=tailspintoys,DC=example');
    expect(await seriousA11yViolations(p)).toEqual([]);
    await d.getByRole('button', { name: 'Connect' }).click();
    await d.waitFor({ state: 'detached' });

    const created = (await adOf(tailspin.id))!;
    expect(created).toMatchObject({ hosts: ['127.0.0.1'], port: closedPort, allowUntrusted: true, enabled: true, tlsMode: 'ldaps' });
    const before = (await suite.server.container.database.db
      .selectFrom('directory_connections')
      .select('password_ciphertext')
      .where('id', '=', created.id)
      .executeTakeFirst())!;

    // ---- Test: each check's result, the failure in words
    const card = p.getByRole('article', { name: 'Active Directory of Tailspin Toys' });
    await card.getByRole('button', { name: 'Test connection' }).click();
    const result = card.getByRole('alert').filter({ hasText: 'Connection test failed' });
    await result.waitFor();
    const text = await result.innerText();
    expect(text).toMatch(/✗ Connect and sign in: unreachable: /);
    expect(await seriousA11yViolations(p)).toEqual([]);

    // ---- Sync now: failed, in the history with its error
    await card.getByRole('button', { name: 'Sync now' }).click();
    await p
      .getByText(/Sync of Tailspin Toys failed: unreachable/)
      .first()
      .waitFor();
    await card.getByRole('button', { name: 'Sync history' }).click();
    const history = card.getByRole('table', { name: 'Sync history of Active Directory of Tailspin Toys' });
    await history.waitFor();
    const rows = history.locator('tbody tr');
    expect(await rows.count()).toBe(1);
    expect(await rows.first().innerText()).toMatch(/failed[\s\S]*unreachable/i);
    expect(await card.innerText()).toMatch(/Last sync .* · failed · unreachable/);
    const runs = await suite.server.container.directory.runs(OWNER, created.id);
    expect(runs).toHaveLength(1);
    expect(runs[0]!.status).toBe('failed');
    expect(await seriousA11yViolations(p)).toEqual([]);

    // ---- Edit: the password field is empty, blank keeps the stored one
    await card.getByRole('button', { name: 'Edit' }).click();
    const e = p.getByRole('dialog', { name: 'Edit the Active Directory connection' });
    expect(await e.getByLabel('Bind password').inputValue()).toBe('');
    await e.getByText('Leave blank to keep the current password.', { exact: false }).waitFor();
    await e.getByLabel('Bind account (DN)').fill('CN=svc-keywarden-read,OU=Service Accounts,DC=tailspintoys,DC=example');
    await e.getByLabel('Sync every (minutes)').fill('240');
    await e.getByRole('button', { name: 'Save' }).click();
    await e.waitFor({ state: 'detached' });
    await card.getByText('CN=svc-keywarden-read', { exact: false }).waitFor();
    expect(await adOf(tailspin.id)).toMatchObject({ bindDn: 'CN=svc-keywarden-read,OU=Service Accounts,DC=tailspintoys,DC=example', syncIntervalMinutes: 240 });
    const after = (await suite.server.container.database.db
      .selectFrom('directory_connections')
      .select('password_ciphertext')
      .where('id', '=', created.id)
      .executeTakeFirst())!;
    expect(after.password_ciphertext).toBe(before.password_ciphertext);

    // ---- Disable, then remove
    await card.getByRole('button', { name: 'Disable' }).click();
    await card.getByRole('button', { name: 'Enable' }).waitFor();
    expect((await adOf(tailspin.id))!.enabled).toBe(false);
    expect(await card.getByRole('button', { name: 'Sync now' }).isDisabled()).toBe(true);
    await card.getByRole('button', { name: 'Remove' }).click();
    const confirm = p.getByRole('dialog', { name: 'Remove the Active Directory connection of Tailspin Toys?' });
    await confirm.getByRole('button', { name: 'Remove' }).click();
    await card.waitFor({ state: 'detached' });
    expect(await adOf(tailspin.id)).toBeUndefined();
    // The bind password never reached the page.
    expect(await p.content()).not.toContain(AD_PASSWORD);
  });

  it('tests and syncs an Entra ID tenant of the Graph simulator, shows its history, removes it (phone, dark)', async () => {
    const contoso = client('Contoso Dental');
    const tenantId = '5e5e5e5e-1111-4222-8333-444444444444';
    sim.seedTenant(tenantId, { keys: 4, devices: 3 });
    const tenant = sim.tenant(tenantId);
    const conn = await suite.server.container.graph.createConnection(OWNER, {
      clientId: contoso.id,
      tenantId,
      appClientId: tenant.clientId,
      clientSecret: tenant.clientSecret,
      ...urls,
    });
    const p = await as('owner', { viewport: PHONE, colorScheme: 'dark' });
    await openTab(p, 'Connections', true);
    const card = p.getByRole('article', { name: 'Entra ID of Contoso Dental' });
    await card.waitFor();
    expect(await seriousA11yViolations(p)).toEqual([]);
    await card.getByRole('button', { name: 'Test connection' }).click();
    const result = card.getByRole('alert').filter({ hasText: 'Connection works' });
    await result.waitFor();
    expect((await result.innerText()).match(/✓/g)?.length).toBeGreaterThanOrEqual(2);
    expect(await result.innerText()).not.toContain('✗');

    await card.getByRole('button', { name: 'Sync now' }).click();
    await p
      .getByText(/Sync of Contoso Dental succeeded: 4 new keys/)
      .first()
      .waitFor();
    await card.getByRole('button', { name: 'Sync history' }).click();
    const history = card.getByRole('table', { name: 'Sync history of Entra ID of Contoso Dental' });
    await history.waitFor();
    expect(await history.locator('tbody tr').first().innerText()).toMatch(/succeeded[\s\S]*4 new/i);
    expect(await seriousA11yViolations(p)).toEqual([]);
    const runs = await suite.server.container.graph.runs(OWNER, conn.id);
    expect(runs[0]).toMatchObject({ status: 'succeeded', newKeys: 4 });

    await card.getByRole('button', { name: 'Remove' }).click();
    await p.getByRole('dialog', { name: 'Remove the Entra ID connection of Contoso Dental?' }).getByRole('button', { name: 'Remove' }).click();
    await card.waitFor({ state: 'detached' });
    expect((await suite.server.container.graph.listConnections(OWNER)).some((c) => c.id === conn.id)).toBe(false);
    expect(await p.content()).not.toContain(tenant.clientSecret);
  });

  it('connections pass axe at desktop dark and phone light', async () => {
    for (const [viewport, colorScheme] of [
      [DESKTOP, 'dark'],
      [PHONE, 'light'],
    ] as const) {
      const p = await as('owner', { viewport, colorScheme });
      await openTab(p, 'Connections', viewport === PHONE);
      await p
        .getByRole('article', { name: /^Active Directory of / })
        .first()
        .waitFor();
      expect(await seriousA11yViolations(p)).toEqual([]);
    }
  });

  it('branding: name and logo saved, seen in the preview and through the API (desktop dark, phone light)', async () => {
    const p = await as('owner', { viewport: DESKTOP, colorScheme: 'dark' });
    await openTab(p, 'Branding');
    const preview = p.getByTestId('branding-preview');
    await preview.waitFor();
    const before = await suite.server.container.settings.getBranding(OWNER);
    expect(before.mspName).not.toBe('Blue Yonder Managed IT');
    expect(await preview.innerText()).toContain(before.mspName);
    expect(await seriousA11yViolations(p)).toEqual([]);

    await p.getByLabel('MSP name').fill('Blue Yonder Managed IT');
    expect(await preview.innerText()).toContain('Blue Yonder Managed IT');
    await p.getByText('Not saved yet', { exact: false }).waitFor();
    // A real PNG: a corner of this very page.
    const png = await p.screenshot({ clip: { x: 0, y: 0, width: 48, height: 24 } });
    await p.locator('input[type="file"]').setInputFiles({ name: 'blue-yonder.png', mimeType: 'image/png', buffer: png });
    const img = preview.getByRole('img', { name: 'Logo of Blue Yonder Managed IT' });
    await img.waitFor();
    expect(await seriousA11yViolations(p)).toEqual([]);
    await p.getByRole('button', { name: 'Save branding' }).click();
    await p.getByText('Branding saved', { exact: false }).first().waitFor();
    const saved = await suite.server.container.settings.getBranding(OWNER);
    expect(saved).toEqual({ mspName: 'Blue Yonder Managed IT', hasLogo: true, logoBytes: png.length });

    // A new visit shows what is stored.
    const q = await as('owner', { viewport: PHONE, colorScheme: 'light' });
    await openTab(q, 'Branding', true);
    const pv = q.getByTestId('branding-preview');
    await pv.waitFor();
    expect(await pv.innerText()).toContain('Blue Yonder Managed IT');
    await pv.getByText('Your stored logo').waitFor();
    expect(await q.getByLabel('MSP name').inputValue()).toBe('Blue Yonder Managed IT');
    expect(await seriousA11yViolations(q)).toEqual([]);
  });

  it('an admin has Connections but not Branding; a technician has neither and is sent back to My account', async () => {
    const a = await as('admin');
    await a.getByRole('navigation').getByRole('link', { name: 'Settings' }).click();
    await a.getByRole('tab', { name: 'Connections' }).waitFor();
    expect(await a.getByRole('tab', { name: 'Branding' }).count()).toBe(0);
    await a.goto('/settings/branding');
    await a.waitForURL('**/settings/account');

    const t = await as('technician');
    await t.getByRole('navigation').getByRole('link', { name: 'Settings' }).click();
    await t.getByRole('tab', { name: 'My account' }).waitFor();
    expect(await t.getByRole('tab', { name: 'Connections' }).count()).toBe(0);
    expect(await t.getByRole('tab', { name: 'Branding' }).count()).toBe(0);
    for (const tab of ['integrations', 'branding']) {
      await t.goto(`/settings/${tab}`);
      await t.waitForURL('**/settings/account');
    }
  });
});
