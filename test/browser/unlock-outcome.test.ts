/// <reference lib="dom" />
import { randomUUID } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { cliActor } from '../../src/modules/authz/authz.js';
import { chromiumSuite, DESKTOP, PHONE, seriousA11yViolations, userOf } from './harness.js';

/**
 * "Did it unlock? yes / no" after a reveal (issue 17, item 3), walked as helpdesk and as technician
 * over the demo vault's two dead-end calls: a full key ID with two stored passwords (no on the first
 * candidate ranks it below, yes on the other resolves the conflict), and a key the agent proved
 * wrong (no keeps it "may not unlock" and offers a re-escrow; an admin queues one). Each effect is
 * checked through the server. Desktop 1280 and phone 390, light and dark, axe at each step.
 */
describe('did it unlock, in Chromium', () => {
  const suite = chromiumSuite();
  let conflict: { keyId: string; clientId: string; records: string[]; finding: string };
  let mismatch: { keyId: string; keyRecord: string; deviceId: string; device: string };
  const db = () => suite.server.container.database.db;
  const lookup = (keyId: string) => suite.server.container.keyLookup.lookup(cliActor('browser-test'), keyId);

  beforeAll(async () => {
    const keys = await db().selectFrom('recovery_keys').select(['id', 'key_id', 'client_id', 'device_id', 'state']).where('state', '=', 'conflict').execute();
    const groups = new Map<string, typeof keys>();
    for (const k of keys) if (k.key_id) groups.set(`${k.client_id}|${k.key_id}`, [...(groups.get(`${k.client_id}|${k.key_id}`) ?? []), k]);
    const pair = [...groups.values()].find((g) => g.length >= 2)!;
    // A key_conflict finding about the key ID, as the agent files one when another device reports it.
    const finding = randomUUID();
    await db()
      .insertInto('findings')
      .values({
        id: finding,
        client_id: pair[0]!.client_id,
        device_id: pair[0]!.device_id!,
        volume_id: null,
        recovery_key_id: pair[0]!.id,
        kind: 'key_conflict',
        protector_id: pair[0]!.key_id,
        detail: 'Key ID held by another device.',
        opened_at: new Date().toISOString(),
        resolved_at: null,
      })
      .execute();
    conflict = { keyId: pair[0]!.key_id!, clientId: pair[0]!.client_id, records: pair.map((k) => k.id), finding };
    const f = await db()
      .selectFrom('findings as f')
      .innerJoin('recovery_keys as k', 'k.id', 'f.recovery_key_id')
      .innerJoin('devices as d', 'd.id', 'f.device_id')
      .select(['k.id', 'k.key_id', 'd.id as device_id', 'd.name'])
      .where('f.kind', '=', 'mismatch')
      .where('f.resolved_at', 'is', null)
      .where('k.state', '=', 'active')
      .where('d.last_checkin_at', 'is not', null)
      .orderBy('d.name')
      .executeTakeFirstOrThrow();
    mismatch = { keyId: f.key_id!, keyRecord: f.id, deviceId: f.device_id, device: f.name };
  });

  const as = async (role: string, viewport: { width: number; height: number }, colorScheme: 'light' | 'dark'): Promise<Page> =>
    (await suite.pageAs(role, { viewport, colorScheme })).page;
  const search = async (p: Page, text: string) => {
    const box = p.getByRole('searchbox', { name: 'Find a key' });
    await box.fill('');
    await box.pressSequentially(text);
  };
  const results = (p: Page) => p.getByRole('list', { name: 'Matching keys' }).getByRole('listitem');
  const noSerious = async (p: Page, where: string) => expect(await seriousA11yViolations(p), where).toEqual([]);
  const reveal = async (p: Page, revealButton: ReturnType<Page['getByRole']>) => {
    await revealButton.click();
    const dialog = p.getByRole('dialog', { name: 'Reveal recovery key' });
    await dialog.getByLabel('Reason').selectOption({ label: 'BIOS Changed' });
    await dialog.getByLabel('Ticket reference').fill('T-1717');
    await dialog.getByRole('button', { name: 'Show password' }).click();
    await p.getByTestId('recovery-password').waitFor();
    await dialog.getByRole('group', { name: 'Did it unlock?' }).waitFor();
    return dialog;
  };
  const userId = async (role: string) =>
    (await db().selectFrom('users').select('id').where('email', '=', userOf(suite.server, role)).executeTakeFirstOrThrow()).id;
  const outcomes = async (role: string, action: string, target: string) =>
    db()
      .selectFrom('audit_events')
      .select(['ticket', 'outcome'])
      .where('action', '=', action)
      .where('target_id', '=', target)
      .where('actor_id', '=', await userId(role))
      .execute();

  const walks = [
    { role: 'helpdesk', viewport: DESKTOP, scheme: 'light' },
    { role: 'technician', viewport: PHONE, scheme: 'dark' },
  ] as const;

  for (const { role, viewport, scheme } of walks) {
    it(`${role} (${viewport.width} px, ${scheme}): a conflict — no on the first candidate ranks it below, yes on the other resolves it`, async () => {
      // Each walk starts from the demo's conflict: both records in conflict, the finding open.
      await db().updateTable('recovery_keys').set({ state: 'conflict' }).where('id', 'in', conflict.records).execute();
      await db().updateTable('findings').set({ resolved_at: null }).where('id', '=', conflict.finding).execute();
      await db().deleteFrom('findings').where('kind', '=', 'did_not_unlock').where('recovery_key_id', 'in', conflict.records).execute();
      const before = await lookup(conflict.keyId);
      const [first, second] = [before.tryFirst!, conflict.records.find((r) => r !== before.tryFirst)!];
      expect(first).toBeTruthy();

      const p = await as(role, viewport, scheme);
      await search(p, conflict.keyId.toUpperCase());
      await expect.poll(() => results(p).count()).toBe(2);
      const top = results(p).first();
      expect(await top.getByText('Try this one first').count()).toBe(1);
      await noSerious(p, `${role} candidates`);

      // It does not unlock: say so.
      let dialog = await reveal(p, top.getByRole('button', { name: 'Reveal' }));
      await noSerious(p, `${role} did it unlock?`);
      await dialog.getByRole('button', { name: 'No' }).click();
      await dialog.getByText('Recorded: it did not unlock').waitFor();
      expect(await dialog.getByText('May not unlock').count()).toBeGreaterThanOrEqual(1);
      await noSerious(p, `${role} answered no`);
      const mid = await lookup(conflict.keyId);
      expect(mid.tryFirst).toBe(second);
      expect(mid.keys.find((k) => k.id === first)!.mayNotUnlock).toBe(true);
      expect(await outcomes(role, 'key.unlock_failed', first)).toEqual([{ ticket: 'T-1717', outcome: 'success' }]);
      await dialog.getByRole('button', { name: 'Hide' }).click();
      await p.keyboard.press('Escape');

      // The list re-ranks without a reload: the other record is the one to try now.
      await expect.poll(() => results(p).first().getByText('Try this one first').count()).toBe(1);
      await expect.poll(() => results(p).last().getByText('May not unlock').count()).toBeGreaterThanOrEqual(1);
      dialog = await reveal(p, results(p).first().getByRole('button', { name: 'Reveal' }));
      await dialog.getByRole('button', { name: 'Yes, it unlocked' }).click();
      await dialog.getByText('Recorded: it unlocked').waitFor();
      await dialog.getByText(/other stored password is now marked superseded and the conflict is resolved/).waitFor();
      await noSerious(p, `${role} answered yes`);

      // Through the server: the conflict is resolved and the ranking says so.
      const after = await lookup(conflict.keyId);
      expect(after.tryFirst).toBe(second);
      expect(after.keys.map((k) => [k.id, k.state])).toEqual([
        [second, 'disclosed'],
        [first, 'superseded'],
      ]);
      const f = await db().selectFrom('findings').select('resolved_at').where('id', '=', conflict.finding).executeTakeFirstOrThrow();
      expect(f.resolved_at).not.toBeNull();
      expect(await outcomes(role, 'key.unlock_confirmed', second)).toEqual([{ ticket: 'T-1717', outcome: 'success' }]);
      await dialog.getByRole('button', { name: 'Hide' }).click();
      await p.keyboard.press('Escape');
    });
  }

  for (const { role, viewport, scheme } of [
    { role: 'helpdesk', viewport: PHONE, scheme: 'light' },
    { role: 'technician', viewport: DESKTOP, scheme: 'dark' },
  ] as const) {
    it(`${role} (${viewport.width} px, ${scheme}): the mismatched key — no keeps it "may not unlock" and says who can re-escrow`, async () => {
      const p = await as(role, viewport, scheme);
      await search(p, mismatch.keyId.slice(0, 8));
      const item = results(p).filter({ hasText: mismatch.device });
      await item.waitFor();
      const dialog = await reveal(p, item.getByRole('button', { name: 'Reveal' }));
      await dialog.getByRole('button', { name: 'No' }).click();
      await dialog.getByText('Recorded: it did not unlock').waitFor();
      await dialog.getByText(/now marked “may not unlock”/).waitFor();
      // Neither role manages agents: told whom to ask, no re-escrow button.
      expect(await dialog.getByText(/ask an admin to have the agent re-escrow/).count()).toBe(1);
      expect(await dialog.getByRole('button', { name: 'Ask the agent to re-escrow' }).count()).toBe(0);
      await noSerious(p, `${role} mismatch answered no`);
      if (viewport === PHONE) expect(await p.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
      const open = await db()
        .selectFrom('findings')
        .select('id')
        .where('kind', '=', 'did_not_unlock')
        .where('recovery_key_id', '=', mismatch.keyRecord)
        .where('resolved_at', 'is', null)
        .execute();
      expect(open).toHaveLength(1);
      expect((await lookup(mismatch.keyId)).keys[0]!.mayNotUnlock).toBe(true);
      expect(await outcomes(role, 'key.unlock_failed', mismatch.keyRecord)).toHaveLength(1);
    });
  }

  it('admin (phone, dark): from the device page, no offers the re-escrow, which queues an agent job', async () => {
    const p = await as('admin', PHONE, 'dark');
    await p.goto(`/devices/${mismatch.deviceId}`);
    const card = p.getByRole('list', { name: 'Recovery keys' }).getByRole('listitem').filter({ hasText: mismatch.keyId.toUpperCase() });
    await card.waitFor();
    expect(await card.getByText('May not unlock').count()).toBe(1);
    const dialog = await reveal(p, card.getByRole('button', { name: /^Reveal key/ }));
    await dialog.getByRole('button', { name: 'No' }).click();
    await dialog.getByText('Recorded: it did not unlock').waitFor();
    await noSerious(p, 'admin answered no');
    await dialog.getByRole('button', { name: 'Ask the agent to re-escrow' }).click();
    await dialog.getByText(/Re-escrow queued/).waitFor();
    const jobs = await db().selectFrom('jobs').select(['kind', 'state']).where('device_id', '=', mismatch.deviceId).where('kind', '=', 're-escrow').execute();
    expect(jobs.map((j) => j.state)).toContain('pending');
  });

  it('someone who did not reveal the key cannot record an outcome (the server refuses)', async () => {
    const p = await as('technician', DESKTOP, 'light');
    // A key this technician never revealed.
    const other = await db()
      .selectFrom('recovery_keys')
      .select('id')
      .where('state', '=', 'active')
      .where('id', 'not in', [...conflict.records, mismatch.keyRecord])
      .executeTakeFirstOrThrow();
    const refused = await p.evaluate(async (id) => {
      const r = await fetch(`/api/v1/keys/${id}/unlock-outcome`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-csrf-token': sessionStorage.getItem('kw.csrf') ?? '' },
        body: JSON.stringify({ unlocked: true }),
      });
      return { status: r.status, body: (await r.json()) as { message: string } };
    }, other.id);
    expect(refused.status).toBe(403);
    expect(refused.body.message).toMatch(/Only the person who revealed this key/);
  });
});
