/// <reference lib="dom" />
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliActor } from '../../src/modules/authz/authz.js';
import { GraphSimulator } from '../graph-sim/simulator.js';
import { DESKTOP, chromiumSuite, freePort, seriousA11yViolations } from './harness.js';

/**
 * Settings → Connections, the MSP's one Entra ID app (issue 20): an owner sets it up with a
 * generated certificate, uploads the public certificate to the (simulated) app registration, copies
 * a client's consent link; the client's administrator follows it through the Graph simulator and
 * lands on Keywarden's callback page; the connection then shows the tenant, signing in with the MSP
 * app, and a sync stores the tenant's keys.
 */
const OWNER = cliActor('browser-test');
const APP = '0c0ffee0-1234-4567-89ab-0123456789ab';
const TENANT = '9f9f9f9f-1111-4222-8333-444444444444';
const OWN_TENANT = '8e8e8e8e-1111-4222-8333-444444444444';

describe('Settings: the MSP Entra ID app and consent links (Chromium)', () => {
  let sim: GraphSimulator;
  let urls: { loginUrl: string; graphUrl: string };
  let publicUrl: string;

  // The simulator starts before the console and stops after it (after-hooks run in reverse).
  beforeAll(async () => {
    sim = new GraphSimulator();
    urls = await sim.start();
    sim.seedTenant(TENANT, { keys: 6, devices: 3 });
    sim.seedTenant(OWN_TENANT, { keys: 4, devices: 2 });
  });
  afterAll(async () => {
    await sim?.stop();
  });
  const suite = chromiumSuite(async () => {
    const port = await freePort();
    publicUrl = `http://127.0.0.1:${port}`;
    // The simulator is on this machine: allowed, as an operator would.
    return { port, env: { KEYWARDEN_EGRESS_ALLOW: '127.0.0.1,::1,localhost', KEYWARDEN_PUBLIC_URL: publicUrl } };
  });
  beforeAll(async () => {
    await suite.server.container.clients.create(OWNER, { name: 'Woodgrove Bank' });
    await suite.server.container.clients.create(OWNER, { name: 'Proseware' });
  });

  it('owner sets up the app, copies a consent link, the client admin consents, the tenant is linked and syncs', async () => {
    const { page: p, context } = await suite.pageAs('owner', { viewport: DESKTOP });
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: suite.server.baseUrl });
    await p.getByRole('navigation').getByRole('link', { name: 'Settings' }).click();
    await p.getByRole('tab', { name: 'Connections' }).click();
    await p.getByRole('heading', { name: 'Entra ID app for all clients' }).waitFor();

    // ---- The owner sets up the MSP app with a generated certificate.
    await p.getByRole('button', { name: 'Set up the MSP app' }).click();
    const d = p.getByRole('dialog', { name: 'Set up the MSP app' });
    await d.getByLabel('Application (client) ID').fill(APP);
    expect(await d.getByLabel('Credential').inputValue()).toBe('generate');
    await d.getByLabel('Sign-in URL').fill(urls.loginUrl);
    await d.getByLabel('Graph URL').fill(urls.graphUrl);
    expect(await seriousA11yViolations(p)).toEqual([]);
    await d.getByRole('button', { name: 'Save' }).click();
    await d.waitFor({ state: 'detached' });
    const card = p.getByRole('article', { name: 'MSP app' });
    await card.getByText(/Certificate [0-9A-F]{40} · valid until/).waitFor();
    const pem = (await card.getByLabel('Public certificate', { exact: true }).innerText()).trim();
    expect(pem).toMatch(/^-----BEGIN CERTIFICATE-----[\s\S]+-----END CERTIFICATE-----$/);
    expect(await p.content()).not.toMatch(/PRIVATE KEY/);
    // … and uploads it to the multi-tenant app registration, with Keywarden's redirect URI.
    sim.apps.register({ appId: APP, redirectUris: [`${publicUrl}/api/v1/graph/consent/callback`], certificates: [pem] });

    // ---- A consent link for Woodgrove Bank, copied.
    await card.getByLabel('Client').selectOption({ label: 'Woodgrove Bank' });
    await card.getByRole('button', { name: 'Consent link' }).click();
    const linkBox = card.getByRole('textbox', { name: 'Consent link' });
    await linkBox.waitFor();
    await card.getByRole('button', { name: 'Copy: consent link' }).click();
    const copied = await p.evaluate(() => navigator.clipboard.readText());
    expect(copied).toBe(await linkBox.inputValue());
    expect(new URL(copied).pathname).toBe('/login/organizations/v2.0/adminconsent');
    expect(await seriousA11yViolations(p)).toEqual([]);

    // ---- The client's administrator consents; their browser comes back to Keywarden.
    const { location } = sim.consent(copied, { tenantId: TENANT });
    const admin = await context.newPage();
    await admin.goto(location);
    await admin.getByText('Consent recorded for Woodgrove Bank; you can close this window.').waitFor();
    await admin.close();

    // ---- The connection shows the tenant, signing in with the MSP app; a sync stores its keys.
    await p.reload();
    const conn = p.getByRole('article', { name: 'Entra ID of Woodgrove Bank' });
    await conn.getByText(`tenant ${TENANT}`, { exact: false }).waitFor();
    await conn.getByText('MSP app', { exact: true }).waitFor();
    await conn.getByRole('button', { name: 'Sync now' }).click();
    await p.getByText('Sync of Woodgrove Bank succeeded: 6 new keys', { exact: false }).first().waitFor();
    expect(sim.tenant(TENANT).audits.at(-1)!.initiatedBy.app!.appId).toBe(APP);
    expect(sim.errors()).toEqual([]);
  });

  it('an admin connects a per-client app with a generated certificate; once uploaded, it signs in and syncs', async () => {
    const { page: p } = await suite.pageAs('admin', { viewport: DESKTOP });
    await p.getByRole('navigation').getByRole('link', { name: 'Settings' }).click();
    await p.getByRole('tab', { name: 'Connections' }).click();
    // Admins see the MSP app but do not set it.
    await p.getByRole('heading', { name: 'Entra ID app for all clients' }).waitFor();
    expect(await p.getByRole('button', { name: /MSP app$/ }).count()).toBe(0);
    await p.getByRole('button', { name: 'Connect a tenant' }).click();
    const d = p.getByRole('dialog', { name: 'Connect an Entra ID tenant' });
    await d.getByLabel('Client', { exact: true }).selectOption({ label: 'Proseware' });
    await d.getByLabel('Tenant ID').fill(OWN_TENANT);
    await d.getByLabel('Application (client) ID').fill(sim.tenant(OWN_TENANT).clientId);
    await d.getByLabel('Credential').selectOption('generate');
    await d.getByLabel('Sign-in URL').fill(urls.loginUrl);
    await d.getByLabel('Graph URL').fill(urls.graphUrl);
    await d.getByRole('button', { name: 'Connect' }).click();
    const pem = (await d.getByLabel('Public certificate', { exact: true }).innerText()).trim();
    expect(pem).toMatch(/^-----BEGIN CERTIFICATE-----/);
    expect(await seriousA11yViolations(p)).toEqual([]);
    await d.getByRole('button', { name: 'Done' }).click();
    sim.apps.setTenantCertificates(OWN_TENANT, [pem]);
    const conn = p.getByRole('article', { name: 'Entra ID of Proseware' });
    await conn.getByText('certificate', { exact: true }).waitFor();
    await conn.getByText(/Certificate [0-9A-F]{40} · valid until/).waitFor();
    await conn.getByRole('button', { name: 'Sync now' }).click();
    await p.getByText('Sync of Proseware succeeded: 4 new keys', { exact: false }).first().waitFor();
  });
});
