/// <reference lib="dom" />
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Download, Page } from 'playwright-core';
import { chromiumSuite, PHONE, ROOT, seriousA11yViolations } from './harness.js';

/**
 * The agent's screens in Chromium (issue 16): the rollout screen (token once, snippets per
 * deployment tool that never put the token on a command line, downloads whose bytes match the
 * manifest's SHA-256 and the repository), agent health, the device's job menu and the per-client
 * bulk queue with its dry run; and that a read-only role sees no queue action.
 */
describe('agent rollout, health and jobs in the console', () => {
  const suite = chromiumSuite();
  /** A demo device whose agent is enrolled, with its client. */
  let agentDevice: { id: string; name: string; clientId: string };

  beforeAll(async () => {
    const db = suite.server.container.database.db;
    const row = await db
      .selectFrom('agent_credentials')
      .innerJoin('devices', 'devices.id', 'agent_credentials.device_id')
      .innerJoin('volumes', 'volumes.device_id', 'devices.id')
      .select(['devices.id as id', 'devices.name as name', 'devices.client_id as clientId'])
      .where('agent_credentials.revoked_at', 'is', null)
      .where('devices.retired_at', 'is', null)
      .where('volumes.mount_point', '=', 'C:')
      .orderBy('devices.name')
      .executeTakeFirstOrThrow();
    agentDevice = row;
  });

  const as = (role: string, viewport?: { width: number; height: number }) => suite.pageAs(role, viewport ? { viewport } : {});
  const bytesOf = async (d: Download) => fs.readFileSync((await d.path())!);
  const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
  /** The deployment tabs and every snippet in each: the text a person would paste. */
  const allSnippets = async (p: Page) => {
    const tabs = p.getByRole('tablist', { name: 'Deployment route' }).getByRole('tab');
    const out: { route: string; title: string; code: string }[] = [];
    for (let i = 0; i < (await tabs.count()); i++) {
      const tab = tabs.nth(i);
      const route = (await tab.innerText()).trim();
      await tab.click();
      await expect.poll(() => tab.getAttribute('aria-selected')).toBe('true');
      const panel = p.getByRole('tabpanel', { name: route });
      const blocks = panel.getByTestId('snippet');
      for (let j = 0; j < (await blocks.count()); j++) {
        out.push({ route, title: (await blocks.nth(j).getAttribute('aria-label')) ?? '', code: await blocks.nth(j).innerText() });
      }
    }
    return out;
  };

  it('owner: creates a token on a direct page load, sees it once, and no snippet carries it', async () => {
    const { page: p, consoleLines } = await as('owner');
    // A direct load of the tab: the client list arrives after the page; the button must not stay disabled.
    await p.goto('/settings/enrollment');
    const create = p.getByRole('button', { name: 'Create enrollment token' });
    await expect.poll(() => create.isEnabled(), { timeout: 10_000 }).toBe(true);
    await p.getByLabel('Maximum devices').fill('5');
    await create.click();
    const token = (await p.getByTestId('secret-once').innerText()).trim();
    expect(token).toMatch(/^kwe_/);

    const snippets = await allSnippets(p);
    const routes = new Set(snippets.map((s) => s.route));
    for (const r of [
      'Intune Win32 app',
      'Intune Remediations',
      'Group Policy',
      'NinjaOne',
      'Datto RMM',
      'Syncro',
      'N-able',
      'ConnectWise Automate',
      'By hand',
    ]) {
      expect(routes, `a snippet for ${r}`).toContain(r);
    }
    for (const s of snippets) {
      expect(s.code, `${s.route} / ${s.title}`).not.toContain(token);
      expect(s.code, `${s.route} / ${s.title}`).not.toMatch(/kwe_/);
      // The token parameter itself never appears; naming the token's file (-EnrollmentTokenFile) is the safe way.
      expect(s.code, `${s.route} / ${s.title}`).not.toMatch(/-EnrollmentToken(?!File)\b/);
    }
    const install = snippets.find((s) => s.route === 'Intune Win32 app' && s.title === 'Install command')!;
    expect(install.code).toContain('%SystemRoot%\\Sysnative\\WindowsPowerShell\\v1.0\\powershell.exe');
    expect(install.code).toContain(`-ServerUrl ${suite.server.baseUrl}`);

    expect(await seriousA11yViolations(p)).toEqual([]);

    // The token is on the page exactly once (its one-time box), and never in the console or the address.
    const text = await p.evaluate(() => document.body.innerText);
    expect(text.split(token).length - 1).toBe(1);
    expect(consoleLines.join('\n')).not.toContain(token);
    expect(p.url()).not.toContain(token);

    // enroll.token for the Intune package, GPO share or manual install: exactly the token.
    const [file] = await Promise.all([p.waitForEvent('download'), p.getByRole('button', { name: 'Download enroll.token' }).click()]);
    expect(file.suggestedFilename()).toBe('enroll.token');
    expect((await bytesOf(file)).toString('utf8')).toBe(token);
  });

  it('owner: the downloads are the repository files, with the SHA-256 the manifest lists and a Get-FileHash check', async () => {
    const { page: p } = await as('owner');
    await p.goto('/settings/enrollment');
    const manifest = (await (await p.request.get('/api/v1/agent/files')).json()) as { version: string; files: { name: string; sha256: string }[] };
    await expect.poll(() => p.getByTestId('agent-version').innerText()).toContain(manifest.version);
    expect(await p.getByTestId('agent-file').count()).toBe(manifest.files.length);
    for (const name of ['Keywarden-Agent.ps1', 'Install-KeywardenAgent.ps1']) {
      const listed = manifest.files.find((f) => f.name === name)!;
      const row = p.getByTestId('agent-file').filter({ hasText: name });
      expect(await row.getByTestId('agent-file-sha256').innerText()).toBe(listed.sha256);
      const [d] = await Promise.all([p.waitForEvent('download'), row.getByRole('link', { name }).click()]);
      expect(d.suggestedFilename()).toBe(name);
      const bytes = await bytesOf(d);
      expect(sha256(bytes)).toBe(listed.sha256);
      const repo = path.join(ROOT, 'agent', name === 'Keywarden-Agent.ps1' ? '' : 'examples', name);
      expect(bytes.equals(fs.readFileSync(repo))).toBe(true);
    }
    const agent = manifest.files.find((f) => f.name === 'Keywarden-Agent.ps1')!;
    const check = p.getByTestId('snippet').filter({ hasText: 'Get-FileHash' }).first();
    expect(await check.innerText()).toBe(`(Get-FileHash -Algorithm SHA256 .\\Keywarden-Agent.ps1).Hash -eq '${agent.sha256.toUpperCase()}'`);
  });

  it('on a 390-px phone the snippets scroll inside their box, not the page, and are reachable by keyboard', async () => {
    const { page: p } = await as('owner', PHONE);
    await p.goto('/settings/enrollment');
    await p.getByRole('tablist', { name: 'Deployment route' }).getByRole('tab', { name: 'Intune Win32 app' }).click();
    const block = p.getByRole('tabpanel', { name: 'Intune Win32 app' }).getByTestId('snippet').filter({ hasText: 'Sysnative' }).first();
    await block.waitFor();
    const m = await block.evaluate((el) => ({
      scroll: el.scrollWidth,
      client: el.clientWidth,
      page: document.documentElement.scrollWidth,
      tabIndex: (el as HTMLElement).tabIndex,
    }));
    expect(m.page).toBeLessThanOrEqual(PHONE.width);
    expect(m.scroll).toBeGreaterThan(m.client);
    expect(m.tabIndex).toBe(0);
    await block.focus();
    for (let i = 0; i < 10; i++) await p.keyboard.press('ArrowRight');
    await expect.poll(() => block.evaluate((el) => el.scrollLeft)).toBeGreaterThan(0);
    expect(await p.evaluate(() => window.scrollX)).toBe(0);
    expect(await seriousA11yViolations(p)).toEqual([]);
  });

  it('owner: the health view lists devices with an agent (all clients, then one) and links to them', async () => {
    const { page: p } = await as('owner');
    type Health = { current: string; devices: { id: string; name: string; agentVersion: string | null; outdated: boolean }[] };
    const healthOf = async (q = '') => (await (await p.request.get(`/api/v1/agent/health${q}`)).json()) as Health;
    const all = await healthOf();
    expect(all.devices.length).toBeGreaterThan(0);
    await p.getByRole('link', { name: 'Agents' }).click();
    await p.getByRole('heading', { level: 1, name: 'Agents' }).waitFor();
    await p.getByText(`This server ships agent ${all.current}`, { exact: false }).waitFor();
    await p.getByText(/^All \(\d+\)$/).click();
    const table = p.getByRole('region', { name: 'Devices with an agent' });
    // The server's order (problems first), 50 to a page.
    const first = all.devices[0]!;
    const row = table.getByRole('row').nth(1);
    await row.getByRole('link', { name: first.name, exact: true }).waitFor();
    if (first.outdated) await row.getByText('outdated').waitFor();
    expect(await table.getByRole('row').count()).toBe(Math.min(all.devices.length, 50) + 1);
    expect(await seriousA11yViolations(p)).toEqual([]);
    await row.getByRole('link', { name: first.name, exact: true }).click();
    await p.getByRole('heading', { level: 1, name: first.name }).waitFor();
    expect(new URL(p.url()).pathname).toBe(`/devices/${first.id}`);

    // Per client: the filter (kept in the address) narrows the list to that client's devices.
    await p.goto(`/agents?client=${agentDevice.clientId}`);
    await p.getByRole('heading', { name: 'Agent jobs of this client' }).waitFor();
    await expect.poll(() => p.getByLabel('Client', { exact: true }).inputValue()).toBe(agentDevice.clientId);
    await p.getByText(/^All \(\d+\)$/).click();
    const one = await healthOf(`?clientId=${agentDevice.clientId}`);
    expect(one.devices.map((d) => d.id)).toContain(agentDevice.id);
    await table.getByRole('link', { name: one.devices[0]!.name, exact: true }).waitFor();
    expect(await table.getByRole('columnheader', { name: 'Client' }).count()).toBe(0);
    expect(await table.getByRole('row').count()).toBe(Math.min(one.devices.length, 50) + 1);
  });

  it('owner: queues a new kind on a volume and sees it with its label; bulk queue previews, then queues', async () => {
    const { page: p } = await as('owner');
    await p.goto(`/devices/${agentDevice.id}`);
    await p.getByRole('button', { name: 'Agent actions for C:' }).click();
    await p.getByRole('menuitem', { name: /Resume protection/ }).waitFor();
    expect(await seriousA11yViolations(p)).toEqual([]);
    await p.getByRole('menuitem', { name: /Resume protection/ }).click();
    const jobs = p.getByRole('list', { name: 'Agent jobs' });
    await jobs.getByText('Resume protection (C:)').waitFor();
    await jobs.getByText('waiting for the agent').first().waitFor();

    await p.getByRole('button', { name: 'Agent actions for C:' }).click();
    await p.getByRole('menuitem', { name: /Turn on encryption/ }).click();
    const dialog = p.getByRole('dialog', { name: /Turn on encryption for C:/ });
    await dialog.getByLabel('Encryption method').selectOption('XtsAes256');
    await dialog.getByRole('button', { name: 'Queue' }).click();
    await jobs.getByText('Turn on encryption (C:)').waitFor();
    await jobs.getByText(/XtsAes256, used space only/).waitFor();

    // The client: a dry run first (nothing queued), then the real thing.
    await p.goto(`/clients/${agentDevice.clientId}`);
    await p.getByRole('button', { name: 'Queue agent jobs' }).click();
    const bulk = p.getByRole('dialog', { name: /Queue agent jobs for/ });
    await bulk.getByLabel('Job').selectOption({ label: 'Add a recovery password' });
    await bulk.getByLabel('Devices').selectOption({ label: 'Every device with an agent (operating-system drive)' });
    const before = await suite.server.container.database.db
      .selectFrom('jobs')
      .select(({ fn }) => fn.countAll<number>().as('n'))
      .executeTakeFirstOrThrow();
    await bulk.getByRole('button', { name: 'Preview' }).click();
    const result = bulk.getByTestId('bulk-result');
    await result.getByText(/Would queue \d+ jobs?/).waitFor();
    const after = await suite.server.container.database.db
      .selectFrom('jobs')
      .select(({ fn }) => fn.countAll<number>().as('n'))
      .executeTakeFirstOrThrow();
    expect(Number(after.n)).toBe(Number(before.n));
    // The device with a resume-protection job already has that work covered: it is listed as skipped.
    await result.getByRole('region', { name: 'Skipped devices' }).getByText(agentDevice.name).waitFor();
    expect(await seriousA11yViolations(p)).toEqual([]);
    await bulk.getByRole('button', { name: /^Queue \d+ jobs?$/ }).click();
    await result.getByText(/^Queued \d+ jobs?/).waitFor();
    const done = await suite.server.container.database.db
      .selectFrom('jobs')
      .select(({ fn }) => fn.countAll<number>().as('n'))
      .executeTakeFirstOrThrow();
    expect(Number(done.n)).toBeGreaterThan(Number(before.n));
  });

  it('auditor (read-only) and helpdesk see no queue action; the API refuses the auditor too', async () => {
    const { page: p } = await as('auditor');
    await p.goto(`/devices/${agentDevice.id}`);
    await p.getByRole('heading', { level: 1, name: agentDevice.name }).waitFor();
    await p.getByRole('heading', { name: 'Agent jobs' }).waitFor();
    expect(await p.getByRole('button', { name: /^Agent actions/ }).count()).toBe(0);
    await p.goto(`/clients/${agentDevice.clientId}`);
    await p.getByRole('link', { name: 'Agent health' }).waitFor();
    expect(await p.getByRole('button', { name: 'Queue agent jobs' }).count()).toBe(0);
    await p.goto(`/agents?client=${agentDevice.clientId}`);
    await p.getByRole('heading', { name: 'Versions' }).waitFor();
    expect(await p.getByRole('button', { name: 'Queue agent jobs' }).count()).toBe(0);
    const status = await p.evaluate(async (clientId) => {
      const r = await fetch(`/api/v1/clients/${clientId}/agent-jobs`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-csrf-token': sessionStorage.getItem('kw.csrf') ?? '' },
        body: JSON.stringify({ kind: 'rotate', dryRun: true }),
      });
      return r.status;
    }, agentDevice.clientId);
    expect(status).toBe(403);

    const h = await as('helpdesk');
    expect(await h.page.getByRole('link', { name: 'Agents' }).count()).toBe(0);
    await h.page.goto('/agents');
    await h.page.getByRole('searchbox', { name: 'Find a key' }).waitFor();
    expect(new URL(h.page.url()).pathname).toBe('/');
  });
});
