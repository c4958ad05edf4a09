/// <reference lib="dom" />
import { describe, expect, it } from 'vitest';
import { cliActor } from '../../src/modules/authz/authz.js';
import { chromiumSuite, seriousA11yViolations } from './harness.js';

/**
 * Numbers that agree and lead somewhere (issue 17): on the Clients overview a client no agent ever
 * reported is "Compliance unknown", not 0 %; the non-compliant count opens the client's devices
 * table filtered to exactly those devices; on the client page each compliance legend entry does the
 * same for its status, and the filter survives a reload (it lives in the URL).
 */
const OWNER = cliActor('browser-test');

describe('compliance counts link to their devices (Chromium)', () => {
  const suite = chromiumSuite();

  const asOwner = async () => (await suite.pageAs('owner')).page;
  /** What the server says, to know what the page must show. */
  const devicesWith = async (clientId: string, compliance: string) =>
    (await suite.server.container.deviceTable.clientDevices(OWNER, clientId, { compliance: compliance as 'compliant', limit: 500 })).items
      .map((d) => d.name)
      .sort();

  it('the overview says "unknown" for agent-less clients, and "N non-compliant" opens those N devices', async () => {
    const overview = await suite.server.container.clientOverview.clientsOverview(OWNER);
    const failing = overview.find((c) => c.compliance && c.compliance['non-compliant'] > 0 && c.compliance['non-compliant'] <= 25)!;
    const agentless = overview.find((c) => c.devices > 0 && c.compliance?.level === 'unknown')!;
    expect(failing, 'the demo has a client with non-compliant devices').toBeDefined();
    expect(agentless, 'the demo has a client without agents').toBeDefined();

    const p = await asOwner();
    await p.getByRole('navigation').getByRole('link', { name: 'Clients' }).click();
    const table = p.getByRole('table');
    const row = table.getByRole('row').filter({ has: p.getByRole('link', { name: agentless.name, exact: true }) });
    await row.waitFor();
    // Badges are drawn in capitals (innerText follows text-transform).
    expect(await row.innerText()).toMatch(/compliance unknown/i);
    expect(await row.innerText()).not.toMatch(/\b0% compliant/i);
    expect(await seriousA11yViolations(p)).toEqual([]);

    const n = failing.compliance!['non-compliant'];
    await p.getByRole('link', { name: `${n} non-compliant devices of ${failing.name}: show them` }).click();
    await p.waitForURL(`**/clients/${failing.id}?compliance=non-compliant`);
    await p.getByText(`1–${n} of ${n}`).waitFor();
    expect(await p.getByRole('combobox', { name: 'Compliance' }).inputValue()).toBe('non-compliant');
    const devices = p.getByRole('table').last();
    const names = (await devices.locator('tbody tr td:first-child').allInnerTexts()).map((s) => s.trim()).sort();
    expect(names).toEqual(await devicesWith(failing.id, 'non-compliant'));
    const badges = await devices.locator('tbody tr td:nth-child(4)').allInnerTexts();
    expect(new Set(badges.map((s) => s.trim().toLowerCase()))).toEqual(new Set(['non-compliant']));
  });

  it('on the client page every compliance legend entry opens its devices, and the filter is in the URL', async () => {
    const overview = await suite.server.container.clientOverview.clientsOverview(OWNER);
    const client = overview.find((c) => c.compliance && c.compliance.compliant > 0 && c.compliance['non-compliant'] > 0)!;
    const p = await asOwner();
    await p.goto(`/clients/${client.id}`);
    const card = p.getByRole('region', { name: 'Compliance' });
    await card.waitFor();
    const c = client.compliance!;
    expect(await card.innerText()).toContain(c.percentCompliant === null ? 'unknown' : `${c.percentCompliant}%`);
    expect(await seriousA11yViolations(p)).toEqual([]);

    for (const [label, status] of [
      ['Compliant', 'compliant'],
      ['Non-compliant', 'non-compliant'],
    ] as const) {
      const n = c[status];
      await card.getByRole('link', { name: `${label}: ${n} devices, show them` }).click();
      await p.waitForURL(`**/clients/${client.id}?compliance=${status}`);
      await p.getByText(`of ${n}`, { exact: false }).last().waitFor();
      const total = await p.getByText(new RegExp(`^1–\\d+ of ${n}$`)).innerText();
      expect(total).toMatch(new RegExp(`of ${n}$`));
    }
    // A reload keeps the filter: the link is shareable.
    await p.reload();
    await p.getByText(new RegExp(`^1–\\d+ of ${c['non-compliant']}$`)).waitFor();
    expect(await p.getByRole('combobox', { name: 'Compliance' }).inputValue()).toBe('non-compliant');
    // "Any" clears it from the URL.
    await p.getByRole('combobox', { name: 'Compliance' }).selectOption('');
    await p.waitForURL(`**/clients/${client.id}`);
  });
});
