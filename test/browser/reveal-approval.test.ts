/// <reference lib="dom" />
import { beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { cliActor } from '../../src/modules/authz/authz.js';
import { chromiumSuite, DESKTOP, seriousA11yViolations } from './harness.js';

/**
 * Two-person reveal in the console (issue 19, item 4): an admin switches the client's policy to
 * "every reveal" on the client page; a technician's reveal dialog asks for approval instead of
 * showing the password form; a second person (the admin, in another browser context) opens the
 * Requests queue and approves; the technician's dialog turns into the password form by itself and
 * reveals the key once. Each effect is checked through the server; no password outside the dialog.
 */
describe('two-person reveal, in Chromium', () => {
  const suite = chromiumSuite();
  let key: { id: string; keyId: string; clientId: string; clientName: string; device: string; password: string };
  const db = () => suite.server.container.database.db;
  const cli = cliActor('browser-test');

  beforeAll(async () => {
    const row = await db()
      .selectFrom('recovery_keys as k')
      .innerJoin('clients as c', 'c.id', 'k.client_id')
      .innerJoin('devices as d', 'd.id', 'k.device_id')
      .select(['k.id', 'k.key_id', 'k.client_id', 'c.name as client_name', 'd.name as device'])
      .where('k.state', '=', 'active')
      .where('k.key_id', 'is not', null)
      .orderBy('c.name')
      .orderBy('k.key_id')
      .executeTakeFirstOrThrow();
    const r = await suite.server.container.keys.revealByKeyId(cli, { query: row.id, reason: 'lost-pin' });
    if (r.status !== 'revealed') throw new Error('no key to test with');
    key = { id: row.id, keyId: row.key_id!, clientId: row.client_id, clientName: row.client_name, device: row.device, password: r.key.recoveryPassword };
  });

  const as = async (role: string): Promise<{ page: Page; lines: string[] }> => {
    const { page, consoleLines } = await suite.pageAs(role, { viewport: DESKTOP });
    return { page, lines: consoleLines };
  };
  const noSerious = async (p: Page, where: string) => expect(await seriousA11yViolations(p), where).toEqual([]);

  it('a technician asks, an admin in another browser approves, the technician reveals once', async () => {
    // The admin turns approval on for every reveal of the client, on its page.
    const admin = await as('admin');
    await admin.page.goto(`/clients/${key.clientId}`);
    const card = admin.page.getByTestId('reveal-policy');
    await card.getByText('Every reveal').click();
    await card.getByRole('button', { name: 'Save reveal policy' }).click();
    await expect.poll(async () => (await suite.server.container.revealApprovals.policy(cli, key.clientId)).mode).toBe('required');
    await noSerious(admin.page, 'client page with the reveal policy');

    // The technician's reveal dialog asks for approval instead of the password form.
    const tech = await as('technician');
    const box = tech.page.getByRole('searchbox', { name: 'Find a key' });
    await box.pressSequentially(key.keyId.toUpperCase());
    const result = tech.page.getByRole('list', { name: 'Matching keys' }).getByRole('listitem').first();
    await result.getByRole('button', { name: 'Reveal' }).click();
    const dialog = tech.page.getByRole('dialog', { name: 'Reveal recovery key' });
    await dialog.getByText('A second person must approve this reveal').waitFor();
    expect(await dialog.getByRole('button', { name: 'Show password' }).count()).toBe(0);
    await dialog.getByLabel('Reason').selectOption({ label: 'BIOS Changed' });
    await dialog.getByLabel('Ticket reference').fill('T-1919');
    await dialog.getByRole('button', { name: 'Request approval' }).click();
    await dialog.getByText('Waiting for approval').waitFor();
    await noSerious(tech.page, 'reveal dialog waiting for approval');
    const [request] = await suite.server.container.revealApprovals.list(cli, { status: 'pending' });
    expect(request).toMatchObject({ keyRecordId: key.id, ticket: 'T-1919', status: 'pending' });

    // The admin (a second person) opens the queue and approves.
    await admin.page.getByRole('link', { name: 'Requests' }).click();
    const row = admin.page.getByTestId('request-row').filter({ hasText: key.device });
    await row.getByRole('link', { name: key.device }).click();
    await admin.page.waitForURL(`**/requests/${request!.id}`);
    await noSerious(admin.page, 'request page');
    await admin.page.getByRole('button', { name: 'Approve' }).click();
    await expect.poll(() => admin.page.getByTestId('request-status').textContent()).toBe('Approved');
    expect(await admin.page.getByText(key.password).count()).toBe(0);

    // The technician's dialog turns into the password form by itself; the reveal uses the approval once.
    await dialog.getByTestId('approved-reveal').waitFor({ timeout: 20_000 });
    await dialog.getByLabel('Reason').selectOption({ label: 'BIOS Changed' });
    await dialog.getByLabel('Ticket reference').fill('T-1919');
    await dialog.getByRole('button', { name: 'Show password' }).click();
    await tech.page.getByTestId('recovery-password').waitFor();
    const groups = await tech.page.getByTestId('password-group').locator('.kw-group-digits').allTextContents();
    expect(groups.join('-')).toBe(key.password);
    await noSerious(tech.page, 'revealed after approval');

    // Through the server: the request is used, the reveal's audit names both people and the request.
    expect((await suite.server.container.revealApprovals.get(cli, request!.id)).status).toBe('used');
    const [ev] = await suite.server.container.audit.list(cli, { action: 'key.reveal', outcome: 'success', targetId: key.id, limit: 1 });
    expect(ev?.details).toMatchObject({ approvalRequestId: request!.id, requestedBy: expect.any(String), approvedBy: expect.any(String) });
    expect(ev?.details?.approvedBy).not.toBe(ev?.details?.requestedBy);
    for (const line of [...tech.lines, ...admin.lines]) expect(line).not.toContain(key.password);
  });
});
