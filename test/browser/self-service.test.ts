/// <reference lib="dom" />
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliActor } from '../../src/modules/authz/authz.js';
import { PHONE, chromiumSuite, seriousA11yViolations } from './harness.js';
import { startOidcProvider, type TestIdp } from '../oidc/provider.js';
import { GraphSimulator, type SimTenant } from '../graph-sim/simulator.js';
import { simOwners } from '../graph-sim/owners.js';

/**
 * Issue 20 (self-service recovery): on a phone, an end user opens /recover, signs in with their
 * work account at the provider's own login page (multi-factor), sees the device they own (from
 * the Graph simulator), types the first 8 characters of its key ID and a reason, and sees the key
 * in the console's grouped digits with "This key will be changed after use". No console navigation.
 * The device comes from Graph /me/ownedDevices with Ann's own delegated token (User.Read); with
 * Graph unreachable at sign-in the page says devices from Entra could not be read.
 */
describe('self-service recovery in Chromium (phone)', () => {
  const TENANT = 'e5e5e5e5-1111-4222-8333-444444444444';
  const ANN = 'e0000000-0000-4000-8000-00000000000a';
  let idp: TestIdp;
  let sim: GraphSimulator;
  let tenant: SimTenant;
  const suite = chromiumSuite({ env: { KEYWARDEN_EGRESS_ALLOW: '127.0.0.1' } });

  beforeAll(async () => {
    const server = suite.server;
    idp = await startOidcProvider({
      redirectUris: [`${server.baseUrl}/api/v1/recover/callback`],
      users: {
        ann: {
          sub: 'sub-ann',
          password: 'idp password 1',
          amr: ['pwd', 'mfa'],
          extra: { oid: ANN, tid: TENANT, preferred_username: 'ann@contoso.example', name: 'Ann' },
        },
      },
    });
    sim = new GraphSimulator();
    const urls = await sim.start();
    tenant = sim.seedTenant(TENANT, { keys: 4, devices: 2 });
    // The simulator learns the IdP's access tokens as Ann's delegated tokens (User.Read).
    sim.trustDelegated(async (token) => {
      const a = await idp.accessToken(token);
      const extra = a?.user.extra as { tid?: string; oid?: string } | undefined;
      return a && extra?.tid && extra.oid ? { tenantId: extra.tid, userObjectId: extra.oid, scopes: a.scopes } : null;
    });
    const o = simOwners(tenant);
    o.addUser({ id: ANN, userPrincipalName: 'ann@contoso.example' });
    o.setOwners(tenant.devices[0]!.id, [ANN]);
    const cli = cliActor('browser-test');
    const client = await server.container.clients.create(cli, { name: 'Contoso Self-Service' });
    const conn = await server.container.graph.createConnection(cli, {
      clientId: client.id,
      tenantId: TENANT,
      appClientId: tenant.clientId,
      clientSecret: tenant.clientSecret,
      ...urls,
    });
    await server.container.graph.runSync(conn.id);
    await server.container.selfService.saveApp(cli, { issuer: idp.issuer, clientId: idp.clientId, clientSecret: idp.clientSecret, enabled: true });
    await server.container.selfService.setClient(cli, client.id, true);
  }, 120_000);
  afterAll(async () => {
    await idp?.close();
    await sim?.stop();
  });

  async function signIn() {
    const { context, consoleLines } = await suite.context({ viewport: PHONE });
    const page = await context.newPage();
    await page.goto('/recover');
    await page.getByRole('heading', { name: 'Recover your BitLocker key' }).waitFor();
    await page.getByRole('link', { name: 'Sign in with your work account' }).click();
    await page.waitForURL((u) => u.href.startsWith(idp.issuer));
    await page.getByLabel('Username').fill('ann');
    await page.getByLabel('Password').fill('idp password 1');
    await page.getByRole('button', { name: 'Sign in at the IdP' }).click();
    await page.waitForURL(`${suite.server.baseUrl}/recover`);
    await page.getByText('Signed in as ann@contoso.example').waitFor();
    return { page, consoleLines };
  }

  it('signs in at the provider, sees the device, enters the key ID prefix and a reason, and sees the key', async () => {
    const { context, consoleLines } = await suite.context({ viewport: PHONE });
    const page = await context.newPage();
    await page.goto('/recover');
    await page.getByRole('heading', { name: 'Recover your BitLocker key' }).waitFor();
    // Not the technician console: no console navigation, no console sign-in form.
    expect(await page.getByRole('navigation').count()).toBe(0);
    await page.getByRole('link', { name: 'Sign in with your work account' }).click();
    await page.waitForURL((u) => u.href.startsWith(idp.issuer));
    await page.getByLabel('Username').fill('ann');
    await page.getByLabel('Password').fill('idp password 1');
    await page.getByRole('button', { name: 'Sign in at the IdP' }).click();
    await page.waitForURL(`${suite.server.baseUrl}/recover`);
    await page.getByText('Signed in as ann@contoso.example').waitFor();
    await page.getByText(tenant.devices[0]!.displayName).waitFor();
    expect(await page.evaluate(() => document.cookie)).not.toContain('kw_recover_csrf');

    const key = tenant.keys.find((k) => k.deviceId === tenant.devices[0]!.deviceId)!;
    const input = page.getByLabel('Key ID (first 8 characters)');
    // Validated as typed: not hex.
    await input.fill('ZZZZ');
    await page.getByText('Only 0-9 and A-F, 8 characters.').waitFor();
    await input.fill(key.id.slice(0, 8).toUpperCase());
    await page.getByLabel('Why do you need the key?').fill('My laptop shows the blue recovery screen');
    await page.getByRole('button', { name: 'Show my key' }).click();
    await page.getByTestId('recovery-password').waitFor();
    const groups = await page.getByTestId('password-group').locator('.kw-group-digits').allTextContents();
    expect(groups.join('-')).toBe(key.key);
    await page.getByText('This key will be changed after use.').waitFor();
    expect(await seriousA11yViolations(page)).toEqual([]);
    // The password never reached the browser's console.
    expect(consoleLines.join('\n')).not.toContain(key.key);
    const audit = await suite.server.container.database.db.selectFrom('audit_events').selectAll().where('action', '=', 'key.self_service_reveal').execute();
    expect(audit.some((e) => e.outcome === 'success' && e.actor_name === 'ann@contoso.example')).toBe(true);
  }, 120_000);

  it('Graph unreachable at sign-in: the page says the devices from Entra could not be read', async () => {
    const db = suite.server.container.database.db;
    const conn = await db.selectFrom('graph_connections').select(['id', 'graph_url']).where('tenant_id', '=', TENANT).executeTakeFirstOrThrow();
    // Nothing listens on port 1.
    await db.updateTable('graph_connections').set({ graph_url: 'http://127.0.0.1:1/graph' }).where('id', '=', conn.id).execute();
    try {
      const { page } = await signIn();
      await page.getByText('Your devices from Microsoft Entra could not be read').waitFor();
      await page.getByText('No device of yours is known here. Call your IT provider.').waitFor();
      expect(await page.getByText(tenant.devices[0]!.displayName).count()).toBe(0);
      expect(await seriousA11yViolations(page)).toEqual([]);
    } finally {
      await db.updateTable('graph_connections').set({ graph_url: conn.graph_url }).where('id', '=', conn.id).execute();
    }
  }, 120_000);
});
