/// <reference lib="dom" />
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { cliActor } from '../../src/modules/authz/authz.js';
import { SIGNATURE_HEADER, TIMESTAMP_HEADER, verifyWebhook } from '../../src/crypto/webhook-signature.js';
import { startReceiver, type Hit } from '../helpers/notify.js';
import { chromiumSuite, DESKTOP, PHONE, seriousA11yViolations, type ContextOptions } from './harness.js';

/**
 * The Notifications screen (issue 17): a webhook channel added like a person would, "Send test"
 * received by a real HTTP listener in this test, a rule created, the delivery log showing the
 * test with its attempt; the signing secret shown once and never again ("leave blank to keep").
 * Desktop 1280 and phone 390, light and dark, axe at each; a technician gets no link and is sent away.
 */
const OWNER = cliActor('browser-test');

describe('Notifications (Chromium)', () => {
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  let signingSecret = '';

  // Registered before the console's hooks: started before it, closed after it.
  beforeAll(async () => {
    receiver = await startReceiver();
  });
  afterAll(async () => {
    await receiver?.close();
  });
  // The receiver listens on this machine, which the egress policy refuses unless allowed.
  const suite = chromiumSuite({ env: { KEYWARDEN_EGRESS_ALLOW: '127.0.0.1,::1,localhost' } });

  const as = async (role: string, opts: ContextOptions = {}) => (await suite.pageAs(role, opts)).page;
  const gotoNotifications = async (p: Page, phone = false) => {
    if (phone) await p.getByRole('button', { name: 'Open navigation' }).click();
    await p.getByRole('navigation').getByRole('link', { name: 'Notifications' }).click();
    await p
      .getByRole('heading', { name: 'Notifications', level: 1 })
      .or(p.getByRole('heading', { name: 'Notifications' }).first())
      .first()
      .waitFor();
  };
  const signed = (h: Hit) =>
    verifyWebhook(
      signingSecret,
      String(h.headers[TIMESTAMP_HEADER.toLowerCase()]),
      h.body,
      String(h.headers[SIGNATURE_HEADER.toLowerCase()]),
      // The HMAC is what is checked here; the server's (demo) clock decides the timestamp.
      Number(h.headers[TIMESTAMP_HEADER.toLowerCase()]),
    );
  /** A local port that was free a moment ago and is closed now: a domain controller nobody answers at. */
  const closedPort = async () => {
    const srv = net.createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as AddressInfo).port;
    await new Promise<void>((r) => srv.close(() => r()));
    return port;
  };
  const channels = () => suite.server.container.notifications.listChannels(OWNER, {});

  it('adds a webhook channel, "Send test" reaches the listener, a rule is created, the delivery log shows it (desktop, light)', async () => {
    const p = await as('owner', { viewport: DESKTOP, colorScheme: 'light' });
    await gotoNotifications(p);
    await p.getByRole('tab', { name: 'Channels' }).waitFor();
    expect(await seriousA11yViolations(p)).toEqual([]);

    // ---- add a channel
    await p.getByRole('button', { name: 'Add channel' }).click();
    const dialog = p.getByRole('dialog', { name: 'Add a channel' });
    await dialog.getByLabel('For', { exact: true }).selectOption({ label: 'All clients (MSP-wide)' });
    await dialog.getByLabel('Kind').selectOption({ label: 'Webhook' });
    await dialog.getByLabel('Channel name').fill('Ops webhook');
    await dialog.getByLabel('Webhook URL').fill(receiver.url('/ops-hook'));
    expect(await seriousA11yViolations(p)).toEqual([]);
    await dialog.getByRole('button', { name: 'Add channel' }).click();
    await dialog.waitFor({ state: 'detached' });

    const [ch] = (await channels()).filter((c) => c.name === 'Ops webhook');
    expect(ch, 'the channel exists on the server').toBeDefined();
    expect(ch).toMatchObject({ kind: 'webhook', clientId: null, enabled: true, masked: { signingSecret: '••••••••' } });
    // The generated signing secret is shown once, here.
    await p.getByText('Signing secret of Ops webhook').waitFor();
    signingSecret = (await p.getByTestId('secret-once').innerText()).trim();
    expect(signingSecret).toMatch(/^kwwh_[A-Za-z0-9_-]{40,}$/);
    await p.getByRole('button', { name: 'Done' }).click();
    expect(await p.locator('body').innerText()).not.toContain(signingSecret);

    // ---- send test: the listener receives it, the page says so
    const card = p.getByRole('article', { name: 'Channel Ops webhook' });
    await card.getByRole('button', { name: 'Send test' }).click();
    const result = card.getByRole('alert').filter({ hasText: /^Test message/ });
    await result.waitFor();
    expect(await result.innerText()).toMatch(/Test message delivered/);
    const first = receiver.hits.filter((h) => h.path === '/ops-hook');
    expect(first).toHaveLength(1);
    expect(signed(first[0]!)).toBe(true);

    // ---- edit: the secret left blank is kept (another test still goes out, signed)
    await card.getByRole('button', { name: 'Edit' }).click();
    const edit = p.getByRole('dialog', { name: 'Edit Ops webhook' });
    expect(await edit.getByLabel('Signing secret').inputValue()).toBe('');
    await edit.getByText('Leave blank to keep the stored one.').waitFor();
    await edit.getByLabel('Channel name').fill('Ops webhook (NOC)');
    await edit.getByRole('button', { name: 'Save' }).click();
    await edit.waitFor({ state: 'detached' });
    const renamed = p.getByRole('article', { name: 'Channel Ops webhook (NOC)' });
    await renamed.getByRole('button', { name: 'Send test' }).click();
    await expect.poll(() => receiver.hits.filter((h) => h.path === '/ops-hook').length).toBe(2);
    await renamed
      .getByRole('alert')
      .filter({ hasText: /^Test message delivered/ })
      .waitFor();
    // Still signed with the secret shown at creation: the blank field kept it.
    expect(signed(receiver.hits.at(-1)!)).toBe(true);

    // ---- a rule
    await p.getByRole('tab', { name: 'Rules' }).click();
    await p.getByRole('button', { name: 'Add rule' }).click();
    const rd = p.getByRole('dialog', { name: 'Add a rule' });
    await rd.getByLabel('For', { exact: true }).selectOption({ label: 'All clients (MSP-wide)' });
    await rd.getByLabel('Rule name').fill('Sync failures to the NOC');
    await rd.getByRole('checkbox', { name: 'An Entra ID or AD sync failed' }).check();
    await rd.getByRole('checkbox', { name: 'The audit chain is broken' }).check();
    await rd.getByRole('checkbox', { name: /^Ops webhook \(NOC\)/ }).check();
    await rd.getByLabel('Send').selectOption({ label: 'At once' });
    expect(await seriousA11yViolations(p)).toEqual([]);
    await rd.getByRole('button', { name: 'Add rule' }).click();
    await rd.waitFor({ state: 'detached' });
    const rules = await suite.server.container.notifications.listRules(OWNER, {});
    const rule = rules.find((r) => r.name === 'Sync failures to the NOC');
    expect(rule).toMatchObject({ clientId: null, digest: 'none', channelIds: [ch!.id], enabled: true });
    expect([...rule!.eventTypes].sort()).toEqual(['audit.chain_broken', 'sync.failed']);
    const row = p.getByRole('table', { name: 'Rules' }).getByRole('row').filter({ hasText: 'Sync failures to the NOC' });
    expect(await row.innerText()).toMatch(/At once/);

    // ---- the rule fires: an Active Directory sync fails (its DC cannot be reached), the delivery worker runs
    const port = await closedPort();
    const tailspin = suite.server.demo.clients.find((c) => c.name === 'Tailspin Toys')!;
    const conn = await suite.server.container.directory.createConnection(OWNER, {
      clientId: tailspin.id,
      hosts: ['127.0.0.1'],
      port,
      allowUntrusted: true,
      bindDn: 'CN=svc,DC=tailspintoys,DC=example',
      password: 'not-used-by-this-test',
      baseDns: ['DC=tailspintoys,DC=example'],
    });
    expect((await suite.server.container.directory.runSync(conn.id)).status).toBe('failed');
    // Routed now; an immediate rule still waits its 30-second gathering window (a burst goes out as one
    // message). Test-only shortcut instead of waiting: the window is over.
    await suite.server.container.notifications.runOnce();
    const waiting = await suite.server.container.database.db
      .updateTable('notification_items')
      .set({ due_at: new Date(Date.parse(suite.server.container.clock.now()) - 1000).toISOString() })
      .where('delivery_id', 'is', null)
      .executeTakeFirst();
    expect(Number(waiting.numUpdatedRows)).toBe(1);
    await suite.server.container.notifications.runOnce();
    await expect.poll(() => receiver.hits.filter((h) => h.path === '/ops-hook').length).toBe(3);
    expect(JSON.stringify(receiver.hits.at(-1)!.json)).toContain('sync.failed');
    expect(signed(receiver.hits.at(-1)!)).toBe(true);

    // ---- the delivery log: both tests and the rule's message, sent, with their attempt
    await p.getByRole('tab', { name: 'Delivery log' }).click();
    const log = p.getByRole('table', { name: 'Delivery log' });
    await log.waitFor();
    const sent = await suite.server.container.notifications.listDeliveries(OWNER, { channelId: ch!.id });
    expect(sent).toHaveLength(3);
    expect(sent.every((d) => d.status === 'sent')).toBe(true);
    expect(sent.filter((d) => d.ruleId === rule!.id)).toHaveLength(1);
    const logRows = log.getByRole('row').filter({ hasText: /Ops webhook/ });
    expect(await logRows.count()).toBe(3);
    const fromRule = logRows.filter({ hasText: 'The Active Directory sync of Tailspin Toys failed' });
    expect(await fromRule.count()).toBe(1);
    expect(await fromRule.innerText()).toMatch(/sent/i);
    await logRows
      .first()
      .getByRole('button', { name: /^Attempts of / })
      .click();
    const att = p.getByRole('dialog');
    await att.getByText('Attempt 1').waitFor();
    expect(await att.innerText()).toMatch(/sent/i);
    expect(await seriousA11yViolations(p)).toEqual([]);
    await p.keyboard.press('Escape');
    expect(await p.locator('body').innerText()).not.toContain(signingSecret);
  });

  it('a failing channel says why in words, in the test result and the log (phone, dark)', async () => {
    receiver.mode.set('/broken', 500);
    const [ch] = (await channels()).filter((c) => c.name === 'Ops webhook (NOC)');
    await suite.server.container.notifications.createChannel(OWNER, { clientId: null, name: 'Broken hook', kind: 'webhook', url: receiver.url('/broken') });
    const p = await as('owner', { viewport: PHONE, colorScheme: 'dark' });
    await gotoNotifications(p, true);
    const card = p.getByRole('article', { name: 'Channel Broken hook' });
    await card.getByRole('button', { name: 'Send test' }).click();
    const result = card.getByRole('alert').filter({ hasText: /^Test message/ });
    await result.waitFor();
    expect(await result.innerText()).toMatch(/Test message failed/);
    expect(await result.innerText()).toMatch(/500/);
    expect(await seriousA11yViolations(p)).toEqual([]);
    await p.getByRole('tab', { name: 'Delivery log' }).click();
    const row = p.getByRole('table', { name: 'Delivery log' }).getByRole('row').filter({ hasText: 'Broken hook' }).first();
    await row.waitFor();
    expect(await row.innerText()).toMatch(/500/);
    expect(await seriousA11yViolations(p)).toEqual([]);
    await p.getByRole('tab', { name: 'Rules' }).click();
    await p.getByText('Sync failures to the NOC').first().waitFor();
    expect(await seriousA11yViolations(p)).toEqual([]);
    expect(ch).toBeDefined();
  });

  it('desktop dark and phone light pass axe', async () => {
    for (const [viewport, colorScheme] of [
      [DESKTOP, 'dark'],
      [PHONE, 'light'],
    ] as const) {
      const p = await as('owner', { viewport, colorScheme });
      await gotoNotifications(p, viewport === PHONE);
      await p.getByRole('article', { name: 'Channel Ops webhook (NOC)' }).waitFor();
      expect(await seriousA11yViolations(p)).toEqual([]);
      await p.getByRole('tab', { name: 'Delivery log' }).click();
      await p.getByRole('table', { name: 'Delivery log' }).waitFor();
      expect(await seriousA11yViolations(p)).toEqual([]);
    }
  });

  it('an auditor reads channels and the log but changes nothing; a technician has no link and is sent away', async () => {
    const a = await as('auditor');
    await gotoNotifications(a);
    const card = a.getByRole('article', { name: 'Channel Ops webhook (NOC)' });
    await card.waitFor();
    expect(await card.getByRole('button', { name: 'Send test' }).count()).toBe(0);
    expect(await a.getByRole('button', { name: 'Add channel' }).count()).toBe(0);
    await a.getByRole('tab', { name: 'Delivery log' }).click();
    await a.getByRole('table', { name: 'Delivery log' }).waitFor();

    const t = await as('technician');
    expect(await t.getByRole('navigation').getByRole('link', { name: 'Notifications' }).count()).toBe(0);
    await t.goto('/notifications');
    await t.waitForURL((u) => !u.pathname.startsWith('/notifications'));
    expect(await t.getByRole('heading', { name: 'Notifications' }).count()).toBe(0);
  });
});
