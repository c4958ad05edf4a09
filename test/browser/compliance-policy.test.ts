/// <reference lib="dom" />
import { describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { cliActor } from '../../src/modules/authz/authz.js';
import { chromiumSuite, DESKTOP, PHONE, screenshot, seriousA11yViolations, type ContextOptions } from './harness.js';

/**
 * The Compliance screen (issue 17): the MSP default policy, a client's overrides (inherited vs
 * overridden, override and clear), exemptions (add with reason and last day, remove) and
 * "Evaluate now", each walked in the page and checked through the server; read-only for roles
 * that may not change policies; helpdesk has no such screen.
 */
const OWNER = cliActor('browser-test');

describe('compliance policy screen (Chromium)', () => {
  const suite = chromiumSuite();

  const as = async (role: string, opts: ContextOptions = {}): Promise<Page> => (await suite.pageAs(role, opts)).page;
  const axe = async (p: Page) => {
    await p.waitForLoadState('networkidle');
    expect(await seriousA11yViolations(p)).toEqual([]);
  };

  it('MSP default, a client override and clearing it, walked in the page and stored by the server', async () => {
    const p = await as('owner');
    await p.getByRole('navigation').getByRole('link', { name: 'Compliance' }).click();
    await p.getByRole('heading', { name: 'MSP default policy' }).waitFor();
    await axe(p);
    await screenshot(p, 'compliance-desktop-light');

    // The default: devices are stale after 45 days instead of the built-in 30.
    const stale = p.getByLabel('A device is stale after (days)');
    expect(await stale.inputValue()).toBe('30');
    await stale.fill('45');
    await p.getByText('1 unsaved change').waitFor();
    await p.getByRole('button', { name: 'Save the default' }).click();
    await p.getByTestId('source-staleAfterDays').getByText('Set by your MSP default').waitFor();
    let def = await suite.server.container.compliance.getPolicy(OWNER, null);
    expect(def.overrides).toEqual(expect.objectContaining({ staleAfterDays: 45 }));

    // A client: the default's 45 is inherited; removable drives are overridden for it alone.
    const client = suite.server.demo.clients[0]!;
    await p.getByLabel('Policy for').selectOption({ label: client.name });
    await p.getByRole('heading', { name: `${client.name}: policy in force` }).waitFor();
    expect(await p.getByLabel('A device is stale after (days)').inputValue()).toBe('45');
    expect(await p.getByTestId('source-staleAfterDays').innerText()).toMatch(/from the msp default/i);
    expect(await p.getByTestId('source-protectRemovable').innerText()).toMatch(/built-in/i);
    await p.getByRole('switch', { name: 'Removable drives must be encrypted' }).check({ force: true });
    await p.getByRole('button', { name: 'Save overrides' }).click();
    await p.getByTestId('source-protectRemovable').getByText('Set for this client').waitFor();
    let own = await suite.server.container.compliance.getPolicy(OWNER, client.id);
    expect(own.overrides).toEqual({ protectRemovable: true });
    expect(own.sources.protectRemovable).toBe('client');
    expect(own.sources.staleAfterDays).toBe('default');
    // Another client still inherits everything.
    expect((await suite.server.container.compliance.getPolicy(OWNER, suite.server.demo.clients[1]!.id)).effective.protectRemovable).toBe(false);
    await axe(p);

    // Clear the override: the client inherits again.
    await p.getByRole('button', { name: 'Use the MSP default: Removable drives must be encrypted' }).click();
    await p.getByTestId('source-protectRemovable').getByText('Built-in value').waitFor();
    own = await suite.server.container.compliance.getPolicy(OWNER, client.id);
    expect(own.overrides).toEqual({});
    expect(own.effective.protectRemovable).toBe(false);

    // Back on the default, the 45 days go back to the built-in value.
    await p.getByLabel('Policy for').selectOption({ label: 'MSP default (every client inherits it)' });
    await p.getByRole('button', { name: 'Back to built-in: A device is stale after' }).click();
    await p.getByTestId('source-staleAfterDays').getByText('Built-in value').waitFor();
    def = await suite.server.container.compliance.getPolicy(OWNER, null);
    expect(def.overrides).not.toHaveProperty('staleAfterDays');
    expect(await p.getByLabel('A device is stale after (days)').inputValue()).toBe('30');

    // Evaluate now: the server answers with what it checked.
    await p.getByRole('button', { name: 'Evaluate now' }).click();
    await p.getByText(/checked against the policy/).waitFor();
  });

  it('an exemption added for a device with a reason and last day, then removed (phone, dark)', async () => {
    const p = await as('owner', { viewport: PHONE, colorScheme: 'dark' });
    const client = suite.server.demo.clients[0]!;
    const statuses = await suite.server.container.compliance.listStatuses(OWNER, { clientId: client.id, status: 'non-compliant', limit: 5 });
    const device = statuses[0]!.device;
    expect(device, 'the demo has a non-compliant device').toBeDefined();

    await p.goto('/compliance');
    await p.getByLabel('Policy for').selectOption({ label: client.name });
    await p.getByRole('heading', { name: 'Exemptions' }).waitFor();
    await axe(p);
    await p.getByRole('button', { name: 'Add an exemption' }).click();
    const dialog = p.getByRole('dialog', { name: 'Add an exemption' });
    await dialog.getByLabel('Find a device').fill(device.name);
    await dialog.getByRole('option', { name: new RegExp(`^${device.name}`) }).waitFor({ state: 'attached' });
    await dialog.getByLabel('Device', { exact: true }).selectOption({ index: 1 });
    await dialog.getByLabel('Reason').fill('Lab machine, disk replaced next week');
    const last = new Date(Date.now() + 10 * 86_400_000).toISOString().slice(0, 10);
    await dialog.getByLabel('Last day (optional)').fill(last);
    await axe(p);
    await screenshot(p, 'compliance-exemption-phone-dark');
    await dialog.getByRole('button', { name: 'Exempt the device' }).click();
    await dialog.waitFor({ state: 'detached' });

    const table = p.getByRole('region', { name: 'Exemptions' });
    const row = table.getByRole('row').filter({ hasText: device.name });
    await row.waitFor();
    expect(await row.innerText()).toContain('Lab machine, disk replaced next week');
    expect(await row.innerText()).toMatch(/in force/i);
    const stored = (await suite.server.container.compliance.listExemptions(OWNER, { deviceId: device.id })).filter((e) => e.active);
    expect(stored).toHaveLength(1);
    expect(stored[0]).toMatchObject({ reason: 'Lab machine, disk replaced next week', createdBy: expect.stringContaining('owner') });
    expect(stored[0]!.expiresAt!.slice(0, 10) >= last.slice(0, 8)).toBe(true);
    expect((await suite.server.container.compliance.deviceStatus(OWNER, device.id)).status).toBe('exempt');
    await axe(p);
    await row.scrollIntoViewIfNeeded();
    await screenshot(p, 'compliance-exemptions-phone-dark');

    await row.getByRole('button', { name: `Remove the exemption of ${device.name}` }).click();
    await row.waitFor({ state: 'detached' });
    expect((await suite.server.container.compliance.listExemptions(OWNER, { deviceId: device.id })).filter((e) => e.active)).toEqual([]);
    expect((await suite.server.container.compliance.deviceStatus(OWNER, device.id)).status).toBe('non-compliant');
  });

  it('read-only for an auditor (desktop dark, phone light): values in words, no edit controls', async () => {
    for (const variant of [
      { viewport: DESKTOP, colorScheme: 'dark' as const },
      { viewport: PHONE, colorScheme: 'light' as const },
    ]) {
      const p = await as('auditor', variant);
      await p.goto('/compliance');
      await p.getByRole('heading', { name: 'MSP default policy' }).waitFor();
      await p.getByText('Read only').waitFor();
      expect(await p.getByTestId('value-osProtector').innerText()).toBe('TPM (the chip unlocks the drive)');
      const policy = p.getByRole('region', { name: 'MSP default policy' });
      expect(await policy.getByRole('switch').count()).toBe(0);
      expect(await policy.getByRole('spinbutton').count()).toBe(0);
      expect(await policy.getByRole('combobox').count()).toBe(0);
      expect(await p.getByRole('button', { name: /^Remove the exemption/ }).count()).toBe(0);
      for (const name of ['Evaluate now', 'Save the default', 'Add an exemption', 'Back to built-in'])
        expect(await p.getByRole('button', { name }).count(), name).toBe(0);
      await p.getByRole('heading', { name: 'Exemptions' }).waitFor();
      await axe(p);
    }
  });

  it('helpdesk has no Compliance link and is sent away from the address', async () => {
    const p = await as('helpdesk');
    expect(await p.getByRole('link', { name: 'Compliance' }).count()).toBe(0);
    await p.goto('/compliance');
    await p.waitForURL((u) => !u.pathname.startsWith('/compliance'));
    expect(await p.getByRole('heading', { name: 'Compliance policy' }).count()).toBe(0);
  });
});
