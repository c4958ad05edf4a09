/// <reference lib="dom" />
import { beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { parseRecoveryPassword } from '../../src/domain/recovery-password.js';
import { cliActor } from '../../src/modules/authz/authz.js';
import { chromiumSuite, enrolTotp, freshCode, pageTraces, signIn, userOf } from './harness.js';

/**
 * The helpdesk call, end to end in Chromium: sign in with TOTP, find a key by 8 characters,
 * the ambiguous case, reveal with a reason, copy, auto-hide, the audit entry; and what the
 * helpdesk and client-viewer roles can NOT do, in the page and at the API.
 */
/** The test's own look at the vault (not through the browser), to know what the page should show. */
const OWNER = cliActor('browser-test');

describe('web console in Chromium', () => {
  const suite = chromiumSuite();
  let techSecret: string;

  beforeAll(async () => {
    techSecret = await enrolTotp(suite.server, userOf(suite.server, 'technician'), suite.server.demo.password);
  });

  const page = async (opts: { permissions?: string[] } = {}) => {
    const { context, consoleLines } = await suite.context();
    if (opts.permissions) await context.grantPermissions(opts.permissions, { origin: suite.server.baseUrl });
    return { page: await context.newPage(), context, consoleLines };
  };
  const asTech = async (opts: { permissions?: string[]; clock?: boolean } = {}) => {
    const p = await page(opts);
    // A controllable clock (for the auto-hide timer) is installed before the console loads.
    if (opts.clock) await p.page.clock.install();
    await signIn(p.page, suite.server, userOf(suite.server, 'technician'), techSecret);
    return p;
  };
  const search = async (p: Page, text: string) => {
    const box = p.getByRole('searchbox', { name: 'Find a key' });
    await box.fill('');
    await box.pressSequentially(text);
  };
  const results = (p: Page) => p.getByRole('list', { name: 'Matching keys' }).getByRole('listitem');
  /** Opens the reveal dialog for the only result, picks a reason and shows the password. */
  const reveal = async (p: Page, prefix: string, ticket: string) => {
    await search(p, prefix);
    await results(p).first().getByRole('button', { name: 'Reveal' }).click();
    const dialog = p.getByRole('dialog', { name: 'Reveal recovery key' });
    await dialog.getByLabel('Reason').selectOption({ label: 'BIOS Changed' });
    await dialog.getByLabel('Ticket reference').fill(ticket);
    await dialog.getByLabel('Note').fill('Caller verified by phone number on file.');
    await dialog.getByRole('button', { name: 'Show password' }).click();
    await p.getByTestId('recovery-password').waitFor();
    const groups = await p.getByTestId('password-group').allInnerTexts();
    return { dialog, groups, password: groups.map((g) => g.replace(/\s+/g, ' ').trim().split(' ').pop()!).join('-') };
  };

  it('signs in with password and TOTP (a wrong code is refused) and lands on the search box, focused', async () => {
    const { page: p } = await page();
    await p.goto('/');
    // Not signed in: the console sends you to sign in.
    await p.waitForURL('**/login');
    await p.getByLabel('Email').fill(userOf(suite.server, 'technician'));
    await p.getByLabel('Password', { exact: true }).fill(suite.server.demo.password);
    await p.getByRole('button', { name: 'Sign in', exact: true }).click();
    const code = p.getByLabel('Authentication code');
    await code.waitFor();
    await code.fill('000000');
    await p.getByRole('button', { name: 'Verify' }).click();
    await p.getByRole('alert').filter({ hasText: /code/i }).first().waitFor();
    expect(await p.getByRole('button', { name: 'Sign out' }).count()).toBe(0);
    await code.fill(await freshCode(suite.server.container, userOf(suite.server, 'technician'), techSecret));
    await p.getByRole('button', { name: 'Verify' }).click();
    await p.getByRole('button', { name: 'Sign out' }).waitFor();
    await p.waitForFunction(() => document.activeElement?.getAttribute('type') === 'search');
    expect(await p.evaluate(() => (document.activeElement as HTMLInputElement).labels?.[0]?.textContent)).toMatch(/Find a key/);
    const nav = p.getByRole('navigation');
    for (const name of ['Find a key', 'Clients']) expect(await nav.getByRole('link', { name }).count(), name).toBe(1);
    // A technician has no audit-log screen.
    expect(await nav.getByRole('link', { name: 'Audit log' }).count()).toBe(0);
  });

  it('finds a key by the first 8 characters of its ID, with client, device and volume', async () => {
    const { page: p } = await asTech();
    const sample = suite.server.demo.samplePrefixes[0]!;
    await search(p, sample.prefix.toLowerCase());
    await results(p).filter({ hasText: sample.device }).waitFor();
    expect(await results(p).count()).toBe(1);
    const text = await results(p).first().innerText();
    expect(text).toContain(sample.client);
    expect(text).toMatch(new RegExp(sample.prefix, 'i'));
    expect(text).toMatch(/Volume C:/);
    // Typed with a brace and the dash, as copied from a key file ("{B11CD51C-0975…"): the same key.
    const [key] = await suite.server.container.keys.searchByKeyId(OWNER, sample.prefix);
    await search(p, `{${key!.keyId!.slice(0, 13).toUpperCase()}`);
    await results(p).filter({ hasText: sample.device }).waitFor();
    expect(await results(p).count()).toBe(1);
    // An ID that is nowhere: the page says so and what to check.
    await search(p, 'D5A2F7E1');
    await p.getByText('No key with that ID').waitFor();
  });

  it('says "several keys match: ask for more digits" when a prefix is ambiguous, and narrows down with more digits', async () => {
    const { page: p } = await asTech();
    await search(p, suite.server.demo.ambiguousPrefix);
    const alert = p.getByText('Several keys match');
    await alert.waitFor();
    expect(await p.getByText(/ask for more digits/).count()).toBeGreaterThan(0);
    expect(await results(p).count()).toBe(2);
    // The two keys are in different clients; one more group of digits picks one.
    const ids = await suite.server.container.keys.searchByKeyId(OWNER, suite.server.demo.ambiguousPrefix);
    const longer = ids[0]!.keyId!.slice(0, 13);
    await search(p, longer);
    await p.getByText('Several keys match').waitFor({ state: 'detached' });
    await results(p).filter({ hasText: ids[0]!.device!.name }).waitFor();
    expect(await results(p).count()).toBe(1);
  });

  it('reveals with a reason: 8 numbered groups, the rotation consequence, and the audit log entry', async () => {
    const { page: p, context, consoleLines } = await asTech();
    const sample = suite.server.demo.samplePrefixes[1]!;
    const { dialog, groups, password } = await reveal(p, sample.prefix, 'T-4242');
    expect(groups).toHaveLength(8);
    groups.forEach((g, i) => expect(g.replace(/\s+/g, ' ').trim()).toMatch(new RegExp(`^${i + 1} \\d{6}$`)));
    expect(parseRecoveryPassword(password).ok).toBe(true);
    expect(await dialog.getByText(/rotat/i).count()).toBeGreaterThan(0);
    expect(await dialog.getByText(/Hides in \d+ s/).count()).toBe(1);
    // Never in the URL, the title, storage, cookies or the browser console.
    const traces = await pageTraces(p, context);
    expect(traces).not.toContain(password);
    expect(traces).not.toContain(password.replace(/-/g, ''));
    expect(consoleLines.join('\n')).not.toContain(groups[0]!.split(/\s+/).pop());
    await dialog.getByRole('button', { name: 'Hide' }).click();
    await p.getByTestId('recovery-password').waitFor({ state: 'detached' });
    expect(await p.content()).not.toContain(password.split('-').slice(0, 2).join(''));

    await p.getByRole('navigation').getByRole('link', { name: 'Find a key' }).waitFor();
    // The technician has no audit screen; the owner sees the entry there.
    const owner = await suite.pageAs('owner');
    await owner.page.getByRole('navigation').getByRole('link', { name: 'Audit log' }).click();
    await owner.page.getByRole('heading', { level: 1, name: 'Audit log' }).waitFor();
    await owner.page.getByText('Chain verified').first().waitFor();
    const entry = owner.page.getByRole('row').filter({ hasText: 'T-4242' });
    await entry.first().waitFor();
    const row = await entry.first().innerText();
    expect(row).toMatch(/key\.reveal|reveal/i);
    expect(row).toContain(userOf(suite.server, 'technician'));
    expect(row).not.toContain(password);
  });

  it('copies the password to the clipboard, hides it after the configured time, and leaves no trace', async () => {
    const { page: p, context, consoleLines } = await asTech({ permissions: ['clipboard-read', 'clipboard-write'], clock: true });
    const hideSeconds = await p.evaluate(
      async () => ((await (await fetch('/api/v1/console/settings')).json()) as { revealHideSeconds: number }).revealHideSeconds,
    );
    expect(hideSeconds).toBeGreaterThan(0);
    const { dialog, password } = await reveal(p, suite.server.demo.samplePrefixes[2]!.prefix, 'T-4243');
    await dialog.getByRole('button', { name: 'Copy' }).click();
    await dialog.getByRole('button', { name: 'Copied' }).waitFor();
    expect(await p.evaluate(() => navigator.clipboard.readText())).toBe(password);
    // The countdown runs on the page's clock: jump past it instead of waiting.
    await p.clock.runFor((hideSeconds - 2) * 1000);
    expect(await p.getByTestId('recovery-password').count()).toBe(1);
    await p.clock.runFor(3000);
    await p.getByTestId('recovery-password').waitFor({ state: 'detached' });
    const html = await p.content();
    for (const g of password.split('-')) expect(html).not.toContain(`>${g}<`);
    expect(html).not.toContain(password);
    expect(await pageTraces(p, context)).not.toContain(password);
    expect(consoleLines.join('\n')).not.toContain(password);
    // What was typed into the dialog was the key ID; the password never reached the address bar.
    expect(p.url()).not.toMatch(/\d{6}-\d{6}/);
  });

  it('helpdesk: finds and reveals by key ID, but cannot browse key or device lists (hidden in the page, refused by the API)', async () => {
    const { page: p } = await suite.pageAs('helpdesk');
    const nav = p.getByRole('navigation');
    expect(await nav.getByRole('link', { name: 'Find a key' }).count()).toBe(1);
    for (const name of ['Clients', 'Audit log']) expect(await nav.getByRole('link', { name }).count(), name).toBe(0);
    // A device name is not a key ID: no list.
    const sample = suite.server.demo.samplePrefixes[3]!;
    await search(p, sample.device);
    await p
      .getByText(/at least its first 8 characters|key ID/)
      .first()
      .waitFor();
    expect(await results(p).count()).toBe(0);
    // The key ID works: the one key, its device, and Reveal.
    await search(p, sample.prefix);
    await results(p).filter({ hasText: sample.device }).waitFor();
    expect(await results(p).first().getByRole('button', { name: 'Reveal' }).count()).toBe(1);
    const { groups } = await reveal(p, sample.prefix, 'T-5000');
    expect(groups).toHaveLength(8);
    await p.getByRole('dialog', { name: 'Reveal recovery key' }).getByRole('button', { name: 'Hide' }).click();
    await p.keyboard.press('Escape');
    // The ambiguous case shows how many, not which.
    await search(p, suite.server.demo.ambiguousPrefix);
    await p.getByText('Several keys match').waitFor();
    expect(await results(p).count()).toBe(0);
    // Calling the API from the page, with the page's own session and CSRF token: refused.
    const statuses = await p.evaluate(
      async ([clientId]) => {
        const csrf = sessionStorage.getItem('kw.csrf') ?? '';
        const get = async (u: string) => (await fetch(u, { headers: { 'x-csrf-token': csrf } })).status;
        return {
          keys: await get('/api/v1/keys?q=CD-LT'),
          keysOfClient: await get(`/api/v1/keys?clientId=${clientId}`),
          devices: await get('/api/v1/devices'),
          clientDevices: await get(`/api/v1/clients/${clientId}/devices`),
        };
      },
      [suite.server.demo.clients[0]!.id],
    );
    expect(statuses).toEqual({ keys: 403, keysOfClient: 403, devices: 403, clientDevices: 403 });
    // And the page itself does not offer those screens by URL either.
    await p.goto(`/clients/${suite.server.demo.clients[0]!.id}`);
    await p.getByRole('button', { name: 'Sign out' }).waitFor();
    expect(await p.getByRole('row').count()).toBe(0);
  });

  it("client-viewer: sees only their own client's devices, in the page and at the API", async () => {
    const { page: p } = await suite.pageAs('client-viewer');
    const own = suite.server.demo.viewerClient;
    const other = suite.server.demo.clients.find((c) => c.id !== own.id)!;
    await p.getByRole('navigation').getByRole('link', { name: 'Clients' }).click();
    await p.getByRole('columnheader', { name: 'Client' }).waitFor();
    await p.getByRole('row').filter({ hasText: own.name }).first().waitFor();
    const rows = await p.getByRole('row').allInnerTexts();
    expect(rows.join('\n')).not.toContain(other.name);
    for (const c of suite.server.demo.clients.filter((c) => c.id !== own.id)) expect(rows.join('\n')).not.toContain(c.name);
    // Another client's page by URL: not found, nothing of it shown.
    await p.goto(`/clients/${other.id}`);
    await p.getByRole('button', { name: 'Sign out' }).waitFor();
    await p
      .getByText(/not found|no client|cannot/i)
      .first()
      .waitFor();
    expect(await p.getByRole('heading', { level: 1, name: other.name }).count()).toBe(0);
    const api = await p.evaluate(
      async ([mine, theirs]) => {
        const j = async (u: string) => {
          const r = await fetch(u);
          return { status: r.status, body: r.ok ? await r.json() : null };
        };
        const clients = await j('/api/v1/clients');
        return {
          clients: (clients.body as { id: string }[]).map((c) => c.id),
          own: (await j(`/api/v1/clients/${mine}`)).status,
          other: (await j(`/api/v1/clients/${theirs}`)).status,
          otherDevices: (await j(`/api/v1/clients/${theirs}/devices`)).status,
          keys: (await j('/api/v1/keys?q=FAB')).status,
        };
      },
      [own.id, other.id],
    );
    expect(api).toEqual({ clients: [own.id], own: 200, other: 404, otherDevices: 404, keys: 403 });
  });
});
