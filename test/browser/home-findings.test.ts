/// <reference lib="dom" />
import { describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { cliActor } from '../../src/modules/authz/authz.js';
import { chromiumSuite, DESKTOP, PHONE, seriousA11yViolations, type ContextOptions } from './harness.js';

/**
 * Issue 17: the admin home (what needs attention, each line a link to its filtered list) and the
 * findings work queue across clients (filters in the URL, selection, bulk re-escrow with a dry run
 * first, then the jobs, verified through the server).
 */
const OWNER = cliActor('browser-test');

describe('admin home and findings work queue (Chromium)', () => {
  const suite = chromiumSuite();

  const as = async (role: string, opts: ContextOptions = {}) => (await suite.pageAs(role, opts)).page;
  const openFindings = () => suite.server.container.agent.listFindings(OWNER, { open: true, limit: 1000 });
  const noOverflow = async (p: Page) => expect(await p.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(PHONE.width);
  const countText = (n: number) => `${n} ${n === 1 ? 'finding' : 'findings'}`;

  it("home lists the demo's attention items, and each link opens its filtered list", async () => {
    const findings = await openFindings();
    const overview = await suite.server.container.clientOverview.clientsOverview(OWNER);
    const health = await suite.server.container.agentHealth.health(OWNER, { limit: 5000 });
    const high = findings.filter((f) => f.severity === 'high').length;
    const mismatched = findings.filter((f) => f.kind === 'mismatch').length;
    const failing = overview.filter((c) => c.compliance && c.compliance['non-compliant'] > 0);
    const staleClients = [...new Set(health.devices.filter((d) => d.stale || d.outdated).map((d) => d.client.id))];
    expect(high, 'the demo has high-severity findings').toBeGreaterThan(0);
    expect(mismatched, 'the demo has a key that may not unlock').toBeGreaterThan(0);
    expect(failing.length, 'the demo has non-compliant devices').toBeGreaterThan(0);
    expect(staleClients.length, 'the demo has stale agents').toBeGreaterThan(0);

    const p = await as('owner');
    await p.getByRole('navigation').getByRole('link', { name: 'Home' }).click();
    await p.getByRole('heading', { level: 1, name: 'What needs attention' }).waitFor();
    expect(await p.getByText('Nothing needs attention').count()).toBe(0);
    const section = (name: string) => p.getByRole('region', { name });

    // Every count is there, with the link to its list.
    const notUnlocking = section('Keys that may not unlock').getByRole('link', { name: /Stored key may not unlock/ });
    expect(await notUnlocking.getAttribute('href')).toBe('/findings?type=mismatch');
    expect(await notUnlocking.innerText()).toContain(`${mismatched} ${mismatched === 1 ? 'key' : 'keys'}`);
    const highLink = section('Open findings').getByRole('link', { name: /high-severity finding/ });
    expect(await highLink.innerText()).toBe(`${high} high-severity ${high === 1 ? 'finding' : 'findings'}`);
    for (const c of failing) {
      const link = section('Non-compliant devices').getByRole('link', { name: new RegExp(`^${c.name}: `) });
      expect(await link.getAttribute('href')).toBe(`/clients/${c.id}?compliance=non-compliant`);
      expect(await link.innerText()).toContain(`${c.compliance!['non-compliant']} non-compliant`);
    }
    const agentLinks = await section('Agents')
      .getByRole('link')
      .evaluateAll((as) => as.map((a) => a.getAttribute('href')));
    expect(agentLinks.sort()).toEqual(staleClients.map((id) => `/agents?client=${id}`).sort());
    expect(await seriousA11yViolations(p)).toEqual([]);

    // The high-severity line opens exactly those findings.
    await highLink.click();
    await p.waitForURL('**/findings?severity=high');
    await p.getByText(countText(high), { exact: true }).waitFor();
    expect(await p.getByRole('combobox', { name: 'Severity' }).inputValue()).toBe('high');

    // The key that may not unlock.
    await p.goBack();
    await notUnlocking.click();
    await p.waitForURL('**/findings?type=mismatch');
    await p.getByText(countText(mismatched), { exact: true }).waitFor();
    const types = await p.getByTestId('finding-row').locator('td:nth-child(3)').allInnerTexts();
    expect(new Set(types)).toEqual(new Set(['Stored key may not unlock']));

    // A client's non-compliant devices.
    await p.goBack();
    const c = failing[0]!;
    await section('Non-compliant devices')
      .getByRole('link', { name: new RegExp(`^${c.name}: `) })
      .click();
    await p.waitForURL(`**/clients/${c.id}?compliance=non-compliant`);
    expect(await p.getByRole('combobox', { name: 'Compliance' }).inputValue()).toBe('non-compliant');

    // Agents that stopped checking in, for their client.
    await p.goBack();
    await section('Agents').getByRole('link').first().click();
    await p.waitForURL(/\/agents\?client=/);
    expect(staleClients).toContain(new URL(p.url()).searchParams.get('client'));
  });

  it('findings filter by client and type (in the URL); a bulk re-escrow previews, then queues the jobs', async () => {
    const findings = await openFindings();
    // The client with the most keys the agents could not escrow.
    const perClient = new Map<string, number>();
    for (const f of findings.filter((f) => f.kind === 'unescrowed_key')) perClient.set(f.client.id, (perClient.get(f.client.id) ?? 0) + 1);
    const [clientId] = [...perClient.entries()].sort((a, b) => b[1] - a[1])[0]!;
    const client = suite.server.demo.clients.find((c) => c.id === clientId)!;
    const expected = findings.filter((f) => f.client.id === clientId && f.kind === 'unescrowed_key');
    const devices = [...new Set(expected.map((f) => f.device.id))].sort();
    // One job a device and drive (the re-escrow covers every recovery password of that drive).
    const drives = new Set(expected.map((f) => `${f.device.id}|${f.mountPoint}`)).size;

    const p = await as('owner');
    await p.getByRole('navigation').getByRole('link', { name: 'Findings' }).click();
    await p.getByRole('heading', { level: 1, name: 'Findings' }).waitFor();
    await p.getByText(countText(findings.length), { exact: true }).waitFor();
    await p.getByRole('combobox', { name: 'Client' }).selectOption(clientId);
    await p.getByRole('combobox', { name: 'Type' }).selectOption('unescrowed_key');
    await p.waitForURL(`**/findings?client=${clientId}&type=unescrowed_key`);
    await p.getByText(countText(expected.length), { exact: true }).waitFor();
    const rows = p.getByTestId('finding-row');
    expect((await rows.locator('td:nth-child(5)').allInnerTexts()).sort()).toEqual(expected.map((f) => f.device.name).sort());
    expect(new Set(await rows.locator('td:nth-child(4)').allInnerTexts())).toEqual(new Set([client.name]));
    expect(await seriousA11yViolations(p)).toEqual([]);

    // The filter survives a reload: it lives in the URL.
    await p.reload();
    await p.getByText(countText(expected.length), { exact: true }).waitFor();

    await p.getByRole('button', { name: `Select all ${expected.length}` }).click();
    await p.getByText(`${expected.length} selected`, { exact: false }).waitFor();
    await p.getByRole('button', { name: 'Re-escrow' }).click();
    const dialog = p.getByRole('dialog', { name: 'Re-escrow: what would be queued' });
    await dialog.getByText(`Would be queued (${drives})`).waitFor();
    const preview = await dialog.getByRole('list', { name: 'Jobs that would be queued' }).getByRole('listitem').allInnerTexts();
    expect(preview.sort()).toEqual(expected.map((f) => `${f.device.name} (${client.name}) · ${f.mountPoint}`).sort());
    expect(await seriousA11yViolations(p)).toEqual([]);
    // The dry run queued nothing.
    expect((await suite.server.container.agent.listClientJobs(OWNER, clientId, { state: 'active', kind: 're-escrow' })).length).toBe(0);

    await dialog.getByRole('button', { name: `Queue ${drives} ${drives === 1 ? 'job' : 'jobs'}` }).click();
    await dialog.waitFor({ state: 'detached' });
    await p.getByText(/re-escrow jobs? queued/).waitFor();
    const jobs = await suite.server.container.agent.listClientJobs(OWNER, clientId, { state: 'active', kind: 're-escrow' });
    expect([...new Set(jobs.map((j) => j.device.id))].sort()).toEqual(devices);
    expect(jobs.map((j) => `${j.device.id}|${j.mountPoint}`).sort()).toEqual(expected.map((f) => `${f.device.id}|${f.mountPoint}`).sort());
    expect(new Set(jobs.map((j) => j.origin))).toEqual(new Set(['bulk']));
  });

  it('home and findings at 390 px and in the dark: no sideways scrolling, no serious a11y problems', async () => {
    for (const variant of [
      { viewport: PHONE, colorScheme: 'light' as const },
      { viewport: PHONE, colorScheme: 'dark' as const },
      { viewport: DESKTOP, colorScheme: 'dark' as const },
    ]) {
      const where = `${variant.viewport.width} ${variant.colorScheme}`;
      const p = await as('admin', variant);
      await p.goto('/home');
      await p.getByRole('region', { name: 'Open findings' }).waitFor();
      if (variant.viewport === PHONE) await noOverflow(p);
      expect(await seriousA11yViolations(p), where).toEqual([]);
      await p.getByRole('region', { name: 'Open findings' }).getByRole('link').first().click();
      await p.waitForURL(/\/findings\?/);
      await p.getByTestId('finding-row').first().waitFor();
      if (variant.viewport === PHONE) {
        // Cards, each with its own checkbox, instead of a table.
        expect(await p.getByRole('table').count()).toBe(0);
        await p.getByTestId('finding-row').first().getByRole('checkbox').check();
        await p.getByText('1 selected', { exact: false }).waitFor();
        await noOverflow(p);
      }
      expect(await seriousA11yViolations(p), where).toEqual([]);
    }
  });

  it('an admin of a client with nothing wrong sees the calm state, and an empty queue says what to do', async () => {
    const calm = await suite.server.container.clients.create(OWNER, { name: 'Calm Client Ltd' });
    const email = 'calm-admin@example.test';
    await suite.server.container.identity.createUser(OWNER, { email, password: suite.server.demo.password, role: 'admin', clients: [calm.id] });
    const { page: p } = await suite.pageAs(email, { viewport: PHONE });
    await p.goto('/home');
    await p.getByRole('region', { name: 'Nothing needs attention' }).waitFor();
    expect(await p.getByRole('region', { name: 'Open findings' }).count()).toBe(0);
    await noOverflow(p);
    expect(await seriousA11yViolations(p)).toEqual([]);
    await p.goto('/findings');
    await p.getByText('No open findings').waitFor();
    expect(await p.getByText(/Settings → Enrollment/).count()).toBe(1);
    expect(await seriousA11yViolations(p)).toEqual([]);
  });

  it('a technician sees findings without bulk actions; helpdesk has neither page and is sent back', async () => {
    const t = await as('technician');
    await t.goto('/findings');
    await t.getByTestId('finding-row').first().waitFor();
    expect(await t.getByRole('button', { name: 'Re-escrow' }).count()).toBe(0);
    expect(await t.getByRole('checkbox').count()).toBe(0);

    const h = await as('helpdesk');
    const nav = h.getByRole('navigation');
    await nav.getByRole('link', { name: 'Find a key' }).waitFor();
    for (const name of ['Home', 'Findings']) expect(await nav.getByRole('link', { name }).count(), name).toBe(0);
    for (const path of ['/home', '/findings?type=mismatch']) {
      await h.goto(path);
      await h.getByRole('searchbox', { name: 'Find a key' }).waitFor();
      expect(new URL(h.url()).pathname).toBe('/');
    }
  });
});
