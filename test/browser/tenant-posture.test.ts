/// <reference lib="dom" />
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { cliActor } from '../../src/modules/authz/authz.js';
import { GraphSimulator } from '../graph-sim/simulator.js';
import { endpointProtectionProfile, settingsCatalogBitLocker } from '../graph-sim/posture.js';
import { chromiumSuite, PHONE, screenshot, seriousA11yViolations, userOf } from './harness.js';

/**
 * Tenant posture on the Compliance screen (issue 20): after an Entra ID sync against the Graph
 * simulator, the screen shows per client whether end users can read their own BitLocker keys and
 * whether Intune requires escrow before encrypting, with the client-level findings; a client
 * viewer sees their own client's posture and no other.
 */
const OWNER = cliActor('browser-test');

describe('tenant posture on the compliance screen (Chromium)', () => {
  let sim: GraphSimulator;
  let urls: { loginUrl: string; graphUrl: string };
  const clients: Record<string, string> = {};

  // Registered before the console's hooks: started before it, stopped after it.
  beforeAll(async () => {
    sim = new GraphSimulator();
    urls = await sim.start();
  });
  afterAll(async () => {
    await sim?.stop();
  });
  const suite = chromiumSuite({ env: { KEYWARDEN_EGRESS_ALLOW: '127.0.0.1' } });

  beforeAll(async () => {
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
      const client = await suite.server.container.clients.create(OWNER, { name: x.name });
      clients[x.name] = client.id;
      const conn = await suite.server.container.graph.createConnection(OWNER, {
        clientId: client.id,
        tenantId: x.tenantId,
        appClientId: t.clientId,
        clientSecret: t.clientSecret,
        ...urls,
      });
      expect(await suite.server.container.graph.runSync(conn.id)).toMatchObject({ status: 'succeeded', warnings: null });
    }
    await suite.server.container.identity.createUser(OWNER, {
      email: 'beta-viewer@example.test',
      password: suite.server.demo.password,
      role: 'client-viewer',
      clients: [clients['Posture Beta']!],
    });
  }, 120_000);

  const as = async (email: string, opts: { viewport?: { width: number; height: number } } = {}): Promise<Page> => (await suite.pageAs(email, opts)).page;

  it("the owner sees every synced client's posture, and one client's when it is picked", async () => {
    const p = await as(userOf(suite.server, 'owner'));
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
