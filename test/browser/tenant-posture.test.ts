/// <reference lib="dom" />
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { cliActor } from '../../src/modules/authz/authz.js';
import { GraphSimulator } from '../graph-sim/simulator.js';
import { endpointProtectionProfile, settingsCatalogBitLocker } from '../graph-sim/posture.js';
import {
  PHONE,
  launchChromium,
  newContext,
  screenshot,
  screenshotFailure,
  seriousA11yViolations,
  signIn,
  startConsole,
  userOf,
  type ConsoleServer,
} from './harness.js';

/**
 * Tenant posture on the Compliance screen (issue 20): after an Entra ID sync against the Graph
 * simulator, the screen shows per client whether end users can read their own BitLocker keys and
 * whether Intune requires escrow before encrypting, with the client-level findings; a client
 * viewer sees their own client's posture and no other.
 */
const OWNER = cliActor('browser-test');

describe('tenant posture on the compliance screen (Chromium)', () => {
  let server: ConsoleServer;
  let browser: Browser;
  let sim: GraphSimulator;
  const open: BrowserContext[] = [];
  const clients: Record<string, string> = {};

  beforeAll(async () => {
    server = await startConsole({ env: { KEYWARDEN_EGRESS_ALLOW: '127.0.0.1' } });
    browser = await launchChromium();
    sim = new GraphSimulator();
    const urls = await sim.start();
    const tenants = [
      { name: 'Posture Alpha', tenantId: '5a5a5a5a-1111-4222-8333-444444444444', users: true, policy: endpointProtectionProfile('Alpha BitLocker', true) },
      { name: 'Posture Beta', tenantId: '6b6b6b6b-1111-4222-8333-444444444444', users: false, policy: null },
    ];
    for (const x of tenants) {
      const t = sim.seedTenant(x.tenantId, { keys: 2, devices: 1 });
      t.posture.usersCanReadOwnKeys = x.users;
      if (x.policy) t.posture.deviceConfigurations.push(x.policy);
      else t.posture.configurationPolicies.push(settingsCatalogBitLocker('Beta disk encryption', false));
      // A pilot policy assigned to nobody: listed, flagged, and no part of Alpha's "Yes".
      if (x.policy) t.posture.configurationPolicies.push(settingsCatalogBitLocker('Alpha pilot', true, []));
      const client = await server.container.clients.create(OWNER, { name: x.name });
      clients[x.name] = client.id;
      const conn = await server.container.graph.createConnection(OWNER, {
        clientId: client.id,
        tenantId: x.tenantId,
        appClientId: t.clientId,
        clientSecret: t.clientSecret,
        ...urls,
      });
      expect(await server.container.graph.runSync(conn.id)).toMatchObject({ status: 'succeeded', warnings: null });
    }
    await server.container.identity.createUser(OWNER, {
      email: 'beta-viewer@example.test',
      password: server.demo.password,
      role: 'client-viewer',
      clients: [clients['Posture Beta']!],
    });
  }, 120_000);
  afterEach(async (ctx) => {
    if (ctx.task.result?.state === 'fail') await screenshotFailure(ctx.task.name, open);
    for (const c of open.splice(0)) await c.close().catch(() => {});
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
    await sim?.stop();
  });

  const as = async (email: string, opts: { viewport?: { width: number; height: number } } = {}): Promise<Page> => {
    const { context } = await newContext(browser, server.baseUrl, opts);
    open.push(context);
    const page = await context.newPage();
    await signIn(page, server, email);
    return page;
  };

  it("the owner sees every synced client's posture, and one client's when it is picked", async () => {
    const p = await as(userOf(server, 'owner'));
    await p.getByRole('navigation').getByRole('link', { name: 'Compliance' }).click();
    await p.getByRole('heading', { name: 'Tenant posture (Entra ID and Intune)' }).waitFor();
    const alpha = p.getByRole('article', { name: 'Tenant posture of Posture Alpha' });
    const beta = p.getByRole('article', { name: 'Tenant posture of Posture Beta' });
    await alpha.waitFor();
    expect(await alpha.innerText()).toContain(
      'End users can read their own BitLocker keys in Entra ID: Yes — consider turning this off if you use Keywarden self-service',
    );
    expect(await alpha.innerText()).toContain('Intune requires recovery information stored before BitLocker is enabled: Yes ("Alpha BitLocker").');
    expect(await beta.innerText()).toContain('No ("Beta disk encryption") — devices may encrypt without an escrowed key.');
    // Each Intune policy says whom it is assigned to.
    const policies = alpha.getByRole('list', { name: 'Intune BitLocker policies of Posture Alpha' });
    expect((await policies.getByRole('listitem').allInnerTexts()).map((x) => x.replace(/\s+/g, ' ').trim())).toEqual([
      'Alpha BitLocker (endpoint protection profile): requires recovery information stored first · Assigned to all devices',
      'Alpha pilot (settings catalog): requires recovery information stored first · Not assigned to any group — applies to no device',
    ]);
    await beta.getByText('Intune encrypts without requiring the recovery key escrowed first').waitFor();
    await p.waitForLoadState('networkidle');
    expect(await seriousA11yViolations(p)).toEqual([]);
    await p.getByRole('heading', { name: 'Tenant posture (Entra ID and Intune)' }).scrollIntoViewIfNeeded();
    await screenshot(p, 'tenant-posture-desktop');

    await p.getByLabel('Policy for').selectOption({ label: 'Posture Beta' });
    await p.getByRole('heading', { name: 'Posture Beta: policy in force' }).waitFor();
    await beta.waitFor();
    expect(await alpha.count()).toBe(0);
  });

  it("a client viewer sees their client's posture only, on a phone too", async () => {
    const p = await as('beta-viewer@example.test', { viewport: PHONE });
    await p.goto('/compliance');
    await p.getByRole('heading', { name: 'Tenant posture (Entra ID and Intune)' }).waitFor();
    const beta = p.getByRole('article', { name: 'Tenant posture of Posture Beta' });
    await beta.waitFor();
    expect(await beta.innerText()).toContain('End users can read their own BitLocker keys in Entra ID: No');
    expect(await p.getByRole('article', { name: 'Tenant posture of Posture Alpha' }).count()).toBe(0);
    expect(await p.locator('body').innerText()).not.toContain('Alpha BitLocker');
    await beta.scrollIntoViewIfNeeded();
    await screenshot(p, 'tenant-posture-phone');
  });
});
