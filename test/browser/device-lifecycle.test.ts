/// <reference lib="dom" />
import { beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { chromiumSuite, DESKTOP, PHONE, seriousA11yViolations } from './harness.js';

/**
 * The device page's lifecycle (issue 17, item 2): retire → reinstate → legal hold walked as an
 * admin, lifting the hold and destroying keys as an owner (with two-owner approval: the request
 * shown in words), the state in words, blocked actions disabled with why; and the phone layout
 * (item 6): cards below 600 px, the Reveal button on screen without sideways scrolling.
 */
describe('device lifecycle and the phone layout, in Chromium', () => {
  const suite = chromiumSuite();
  let device: { id: string; name: string; clientId: string; client: string };

  const db = () => suite.server.container.database.db;
  const row = () =>
    db()
      .selectFrom('devices')
      .select(['retired_at', 'retire_reason', 'legal_hold_at', 'legal_hold_reason', 'keys_destroyed_at'])
      .where('id', '=', device.id)
      .executeTakeFirstOrThrow();
  const auditOf = (action: string) =>
    db().selectFrom('audit_events').select(['outcome', 'actor_name', 'details']).where('action', '=', action).where('target_id', '=', device.id).execute();

  beforeAll(async () => {
    // A device in service with keys and an agent, in a client without a hold.
    const d = await db()
      .selectFrom('devices as d')
      .innerJoin('clients as c', 'c.id', 'd.client_id')
      .select(['d.id', 'd.name', 'c.id as client_id', 'c.name as client_name'])
      .where('d.retired_at', 'is', null)
      .where('d.legal_hold_at', 'is', null)
      .where('c.legal_hold_at', 'is', null)
      .where('d.last_checkin_at', 'is not', null)
      .where((eb) => eb.exists(eb.selectFrom('recovery_keys as k').select('k.id').whereRef('k.device_id', '=', 'd.id').where('k.state', '=', 'active')))
      .orderBy('d.name')
      .executeTakeFirstOrThrow();
    device = { id: d.id, name: d.name, clientId: d.client_id, client: d.client_name };
  });

  const as = async (role: string, viewport: { width: number; height: number } = DESKTOP, colorScheme: 'light' | 'dark' = 'light'): Promise<Page> =>
    (await suite.pageAs(role, { viewport, colorScheme })).page;
  const lifecycle = (p: Page) => p.getByRole('region', { name: 'Lifecycle' });
  const noSerious = async (p: Page, where: string) => expect(await seriousA11yViolations(p), where).toEqual([]);
  const act = async (p: Page, button: string, dialogTitle: string, fill: (d: ReturnType<Page['getByRole']>) => Promise<void>, submit: string) => {
    await lifecycle(p).getByRole('button', { name: button }).click();
    const dialog = p.getByRole('dialog', { name: dialogTitle });
    await dialog.waitFor();
    await fill(dialog);
    await noSerious(p, `${dialogTitle} dialog`);
    await dialog.getByRole('button', { name: submit, exact: true }).click();
    await dialog.waitFor({ state: 'hidden' });
  };

  for (const [viewport, scheme] of [
    [DESKTOP, 'light'],
    [PHONE, 'dark'],
  ] as const) {
    it(`admin at ${viewport.width} px, ${scheme}: retire → reinstate → legal hold, each in words and in the vault`, async () => {
      // Each walk starts from a device in service without a hold.
      await db()
        .updateTable('devices')
        .set({ legal_hold_at: null, legal_hold_reason: null, legal_hold_by: null, retired_at: null })
        .where('id', '=', device.id)
        .execute();
      const held = (await auditOf('legal_hold.set')).length;
      const retired = (await auditOf('device.retire')).length;
      const p = await as('admin', viewport, scheme);
      await p.goto(`/devices/${device.id}`);
      await lifecycle(p).getByText('In service: its keys are kept').waitFor();
      await noSerious(p, 'lifecycle in service');
      // Admins manage the lifecycle but destroy nothing: no lift, no destroy.
      expect(
        await lifecycle(p)
          .getByRole('button', { name: /Destroy keys now/ })
          .count(),
      ).toBe(0);

      await act(p, 'Retire…', 'Retire this device', (d) => d.getByLabel('Reason').fill('Laptop returned, leaver L-17'), 'Retire');
      await lifecycle(p)
        .getByTestId('lifecycle-status')
        .getByText(/Retired on .*: retired, keys kept until/)
        .waitFor();
      expect((await row()).retired_at).not.toBeNull();
      expect((await row()).retire_reason).toBe('Laptop returned, leaver L-17');
      await noSerious(p, 'lifecycle retired');

      await act(p, 'Reinstate…', 'Put this device back in service', async () => {}, 'Reinstate');
      await lifecycle(p).getByText('In service: its keys are kept').waitFor();
      expect((await row()).retired_at).toBeNull();

      await act(p, 'Set legal hold…', 'Put this device under legal hold', (d) => d.getByLabel('Reason').fill('Litigation hold LH-2026-4'), 'Set legal hold');
      await lifecycle(p)
        .getByTestId('legal-hold')
        .getByText(/Under legal hold since .*Litigation hold LH-2026-4/)
        .waitFor();
      expect((await row()).legal_hold_reason).toBe('Litigation hold LH-2026-4');
      // An admin cannot lift it (owners only): no button.
      expect(await lifecycle(p).getByRole('button', { name: 'Lift legal hold…' }).count()).toBe(0);
      await noSerious(p, 'lifecycle held');
      expect((await auditOf('device.retire')).length).toBe(retired + 1);
      expect((await auditOf('legal_hold.set')).length).toBe(held + 1);
    });
  }

  it('owner (phone, light): a hold blocks destroying, with why; lifted, the destroy request waits for a second owner, in words; without that, it destroys at once', async () => {
    const now = new Date().toISOString();
    await db()
      .updateTable('devices')
      .set({ retired_at: now, retired_by: 'admin', legal_hold_at: now, legal_hold_reason: 'Audit 2026', legal_hold_by: 'admin' })
      .where('id', '=', device.id)
      .execute();
    await db()
      .insertInto('settings')
      .values({ key: 'lifecycle.two_owner_approval', value: 'true', updated_at: now })
      .onConflict((oc) => oc.column('key').doUpdateSet({ value: 'true' }))
      .execute();
    const p = await as('owner', PHONE, 'light');
    await p.goto(`/devices/${device.id}`);
    const destroy = lifecycle(p).getByRole('button', { name: 'Destroy keys now…' });
    await destroy.waitFor();
    expect(await destroy.isDisabled()).toBe(true);
    await lifecycle(p)
      .getByText(/not available: The device is under legal hold since/)
      .waitFor();
    await noSerious(p, 'owner held');

    await act(p, 'Lift legal hold…', 'Lift the legal hold', (d) => d.getByLabel('Reason').fill('Audit closed'), 'Lift legal hold');
    await expect.poll(async () => (await row()).legal_hold_at).toBeNull();
    await expect.poll(() => destroy.isDisabled()).toBe(false);

    await act(
      p,
      'Destroy keys now…',
      "Destroy this device's keys now",
      async (d) => {
        await d.getByLabel('Reason').fill('Disk shredded');
        await d.getByLabel(/Type the client's name/).fill(device.client);
      },
      'Destroy keys',
    );
    // Two-owner approval is on: nothing is destroyed yet, the request is shown in words.
    await lifecycle(p)
      .getByTestId('pending-approval')
      .getByText(/Destroying this device's keys waits for a second owner's approval: requested by/)
      .waitFor();
    expect((await row()).keys_destroyed_at).toBeNull();
    const approvals = await db().selectFrom('lifecycle_approvals').select(['status', 'action', 'target_id']).where('target_id', '=', device.id).execute();
    expect(approvals).toEqual([{ status: 'pending', action: 'destroy-device-keys', target_id: device.id }]);
    expect(await destroy.isDisabled()).toBe(true);
    await noSerious(p, 'owner pending approval');

    // Without two-owner approval (the request withdrawn), the owner's destroy runs at once.
    await db().updateTable('lifecycle_approvals').set({ status: 'cancelled' }).where('target_id', '=', device.id).execute();
    await db().updateTable('settings').set({ value: 'false' }).where('key', '=', 'lifecycle.two_owner_approval').execute();
    await p.reload();
    await expect.poll(() => destroy.isDisabled()).toBe(false);
    await act(p, 'Destroy keys now…', "Destroy this device's keys now", (d) => d.getByLabel(/Type the client's name/).fill(device.client), 'Destroy keys');
    await lifecycle(p)
      .getByTestId('lifecycle-status')
      .getByText(/retired, keys destroyed on/)
      .waitFor();
    expect((await row()).keys_destroyed_at).not.toBeNull();
    const states = await db().selectFrom('recovery_keys').select('state').where('device_id', '=', device.id).execute();
    expect(new Set(states.map((k) => k.state))).toEqual(new Set(['destroyed']));
    await lifecycle(p)
      .getByText(/It cannot be reinstated: its keys were destroyed on/)
      .waitFor();
    expect(await lifecycle(p).getByRole('button', { name: 'Reinstate…' }).isDisabled()).toBe(true);
    await noSerious(p, 'owner keys destroyed');
  });

  it('technician sees the state in words but no lifecycle action; helpdesk is sent away from the device page', async () => {
    const p = await as('technician');
    await p.goto(`/devices/${device.id}`);
    await lifecycle(p).getByTestId('lifecycle-status').waitFor();
    expect(await lifecycle(p).getByRole('button').count()).toBe(0);
    const h = await as('helpdesk');
    await h.goto(`/devices/${device.id}`);
    await expect.poll(() => new URL(h.url()).pathname).toBe('/');
    expect(await h.getByRole('link', { name: 'Clients' }).count()).toBe(0);
  });

  for (const scheme of ['light', 'dark'] as const) {
    it(`phone 390 px, ${scheme}: keys are cards, Reveal on screen, nothing scrolls sideways`, async () => {
      const p = await as('technician', PHONE, scheme);
      await p.goto(`/devices/${device.id}`);
      const cards = p.getByRole('list', { name: 'Recovery keys' }).getByRole('listitem');
      await cards.first().waitFor();
      expect(await p.getByRole('table').filter({ hasText: 'Key ID' }).count()).toBe(0);
      expect(await p.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
      const reveal = cards.first().getByRole('button', { name: /^Reveal key/ });
      await reveal.scrollIntoViewIfNeeded();
      const box = (await reveal.boundingBox())!;
      expect(box.x).toBeGreaterThanOrEqual(0);
      expect(box.x + box.width).toBeLessThanOrEqual(390);
      expect(await p.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
      await noSerious(p, `phone ${scheme}`);
      await reveal.click();
      await p.getByRole('dialog', { name: 'Reveal recovery key' }).getByLabel('Reason').waitFor();
      await noSerious(p, `phone ${scheme} dialog`);
    });
  }
});
