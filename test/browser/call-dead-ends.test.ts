/// <reference lib="dom" />
import { beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { chromiumSuite, seriousA11yViolations } from './harness.js';

/**
 * The two calls that used to dead-end (issue 17, item 3), walked as helpdesk and as technician over
 * the demo vault: a full key ID with two stored passwords (ranked, "try this one first"), and a key
 * the agent proved wrong ("may not unlock", re-escrow for people who manage agents). Also the
 * dialog's keyboard path: focus on Reason, Enter submits, the state turns to disclosed.
 */
describe('a call that never dead-ends, in Chromium', () => {
  const suite = chromiumSuite();
  /** A key ID held by two records of one client (a conflict), and a key with an open mismatch finding. */
  let conflict: { keyId: string; records: number; client: string };
  let mismatch: { keyId: string; keyRecord: string; deviceId: string; device: string };

  beforeAll(async () => {
    const db = suite.server.container.database.db;
    const keys = await db.selectFrom('recovery_keys').select(['id', 'key_id', 'client_id', 'device_id', 'state']).execute();
    const byId = new Map<string, number>();
    for (const k of keys) if (k.key_id && k.state === 'conflict') byId.set(`${k.client_id}|${k.key_id}`, (byId.get(`${k.client_id}|${k.key_id}`) ?? 0) + 1);
    const [pair, records] = [...byId].find(([, n]) => n >= 2)!;
    const client = await db.selectFrom('clients').select('name').where('id', '=', pair.split('|')[0]!).executeTakeFirstOrThrow();
    conflict = { keyId: pair.split('|')[1]!, records: keys.filter((k) => k.key_id === pair.split('|')[1]).length, client: client.name };
    const f = await db
      .selectFrom('findings as f')
      .innerJoin('recovery_keys as k', 'k.id', 'f.recovery_key_id')
      .innerJoin('devices as d', 'd.id', 'f.device_id')
      .select(['k.id', 'k.key_id', 'd.id as device_id', 'd.name'])
      .where('f.kind', '=', 'mismatch')
      .where('f.resolved_at', 'is', null)
      .where('k.state', '=', 'active')
      .orderBy('d.name')
      .executeTakeFirstOrThrow();
    mismatch = { keyId: f.key_id!, keyRecord: f.id, deviceId: f.device_id, device: f.name };
    expect(records).toBeGreaterThanOrEqual(2);
  });

  const as = async (role: string): Promise<Page> => (await suite.pageAs(role)).page;
  const search = async (p: Page, text: string) => {
    const box = p.getByRole('searchbox', { name: 'Find a key' });
    await box.fill('');
    await box.pressSequentially(text);
  };
  const results = (p: Page) => p.getByRole('list', { name: 'Matching keys' }).getByRole('listitem');
  const noSerious = async (p: Page, where: string) => expect(await seriousA11yViolations(p), where).toEqual([]);

  /** Reveal from a result card by keyboard: focus lands on Reason, Enter submits. */
  const revealByKeyboard = async (p: Page, item: ReturnType<typeof results>) => {
    await item.getByRole('button', { name: 'Reveal' }).click();
    const dialog = p.getByRole('dialog', { name: 'Reveal recovery key' });
    const reason = dialog.getByLabel('Reason');
    await reason.waitFor();
    await expect.poll(() => reason.evaluate((el) => el === document.activeElement)).toBe(true);
    await reason.selectOption({ label: 'BIOS Changed' });
    await reason.press('Enter');
    await p.getByTestId('recovery-password').waitFor();
    expect(await p.getByTestId('password-group').count()).toBe(8);
    return dialog;
  };

  for (const role of ['helpdesk', 'technician'] as const) {
    it(`${role}: a full key ID with two stored passwords lists every candidate, ranked, and reveals the chosen one`, async () => {
      const p = await as(role);
      // Read over the phone: upper case with spaces instead of dashes.
      await search(p, conflict.keyId.toUpperCase().replace(/-/g, ' '));
      await p.getByText(/stored keys have this full key ID/).waitFor();
      await expect.poll(() => results(p).count()).toBe(conflict.records);
      const first = results(p).first();
      expect(await first.getByText('Try this one first').count()).toBe(1);
      // Only one candidate carries the mark.
      expect(await p.getByRole('list', { name: 'Matching keys' }).getByText('Try this one first', { exact: true }).count()).toBe(1);
      // Each candidate names client, device, source, date and state.
      for (const item of await results(p).all()) {
        const text = await item.innerText();
        expect(text).toContain(conflict.client);
        expect(text).toMatch(/key from \S+/i);
        expect(text).toMatch(/source/i);
        expect(text).toMatch(/conflict|active|disclosed|rotated|superseded/i);
        expect(await item.getByRole('button', { name: 'Reveal' }).count()).toBe(1);
      }
      await noSerious(p, `${role} conflict candidates`);
      const dialog = await revealByKeyboard(p, first);
      await noSerious(p, `${role} reveal dialog`);
      await dialog.getByRole('button', { name: 'Hide' }).click();
      await p.keyboard.press('Escape');
    });

    it(`${role}: a key the agent proved wrong says "may not unlock" in search and dialog, and turns disclosed after the reveal`, async () => {
      const p = await as(role);
      // The first 8 digits, read with a space and the letter O for any zero.
      const typed = `${mismatch.keyId.slice(0, 4)} ${mismatch.keyId.slice(4, 8)}`.toUpperCase().replace(/0/g, 'O');
      await search(p, typed);
      const item = results(p).filter({ hasText: mismatch.device });
      await item.waitFor();
      expect(await item.getByText('May not unlock').count()).toBeGreaterThanOrEqual(1);
      // Neither role manages agents: they are told whom to ask, and get no re-escrow button.
      expect(await item.getByText(/ask an admin to have the agent re-escrow/).count()).toBe(1);
      expect(await item.getByRole('button', { name: 'Ask the agent to re-escrow' }).count()).toBe(0);
      await noSerious(p, `${role} mismatched key`);
      const dialog = await revealByKeyboard(p, item);
      expect(await dialog.getByText('May not unlock').count()).toBeGreaterThanOrEqual(1);
      expect(await dialog.getByTestId('key-state').innerText()).toMatch(/disclosed/i);
      await dialog.getByRole('button', { name: 'Hide' }).click();
      await p.keyboard.press('Escape');
      // The search result shows the new state without a reload (the cache was invalidated).
      await expect.poll(() => item.getByText('disclosed', { exact: true }).count()).toBe(1);
    });
  }

  it('technician: the device page marks the key "may not unlock" and the dialog says so', async () => {
    const p = await as('technician');
    await p.goto(`/devices/${mismatch.deviceId}`);
    const row = p.getByRole('row').filter({ hasText: mismatch.keyId.toUpperCase() });
    await row.waitFor();
    expect(await row.getByText('May not unlock').count()).toBe(1);
    await row.getByRole('button', { name: 'Reveal' }).click();
    const dialog = p.getByRole('dialog', { name: 'Reveal recovery key' });
    await dialog.getByText(/reported a different password/).waitFor();
    await noSerious(p, 'device page dialog');
  });

  it('admin: queues a re-escrow from the search result', async () => {
    const p = await as('admin');
    await search(p, mismatch.keyId.slice(0, 8));
    const item = results(p).filter({ hasText: mismatch.device });
    await item.getByRole('button', { name: 'Ask the agent to re-escrow' }).click();
    await item.getByText(/Re-escrow queued/).waitFor();
    const jobs = await suite.server.container.database.db
      .selectFrom('jobs')
      .select(['kind', 'state'])
      .where('device_id', '=', mismatch.deviceId)
      .where('kind', '=', 're-escrow')
      .execute();
    expect(jobs.map((j) => j.state)).toContain('pending');
  });
});
