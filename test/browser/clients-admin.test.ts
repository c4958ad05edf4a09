/// <reference lib="dom" />
import fs from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { cliActor } from '../../src/modules/authz/authz.js';
import { chromiumSuite, DESKTOP, PHONE, enrolTotp, freshCode, screenshot, seriousA11yViolations, userOf } from './harness.js';

/**
 * Clients in the console (issue 17, items 2 and 6): add, rename and archive a client; a client's
 * legal hold, offboarding and break-glass export (owner, fresh step-up, the client's name typed);
 * the lists as cards on a 390-px phone. Every effect is checked through the server.
 */
const CLI = cliActor('browser-test');

type Variant = { name: string; viewport: { width: number; height: number }; scheme: 'light' | 'dark' };
const VARIANTS: Variant[] = [
  { name: 'desktop-light', viewport: DESKTOP, scheme: 'light' },
  { name: 'desktop-dark', viewport: DESKTOP, scheme: 'dark' },
  { name: 'phone-light', viewport: PHONE, scheme: 'light' },
  { name: 'phone-dark', viewport: PHONE, scheme: 'dark' },
];

describe('clients: add, rename, archive, legal hold, offboarding and export (Chromium)', () => {
  const suite = chromiumSuite();
  let ownerSecret: string;
  const secondOwner = 'second-owner@northwind-msp.example';

  beforeAll(async () => {
    ownerSecret = await enrolTotp(suite.server, userOf(suite.server, 'owner'), suite.server.demo.password);
    // A second owner, older than any request it approves.
    await suite.server.container.identity.createUser(CLI, {
      email: secondOwner,
      name: 'Second owner',
      password: suite.server.demo.password,
      role: 'owner',
      clients: 'all',
    });
  });

  const as = async (role: string, variant: Pick<Variant, 'viewport' | 'scheme'> = VARIANTS[0]!): Promise<Page> =>
    (await suite.pageAs(role, { viewport: variant.viewport, colorScheme: variant.scheme, totpSecret: role === 'owner' ? ownerSecret : undefined })).page;
  const db = () => suite.server.container.database.db;
  const clientRow = (id: string) => db().selectFrom('clients').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
  const visibleNames = async () => (await suite.server.container.clients.list(CLI)).map((c) => c.name);
  const auditOf = (action: string, clientId: string) =>
    db()
      .selectFrom('audit_events')
      .select(['action', 'outcome', 'actor_name', 'details'])
      .where('action', '=', action)
      .where('client_id', '=', clientId)
      .execute();
  /** The owner's last second-factor proof, made old: the next sensitive action needs a step-up. */
  const staleStepUp = async () => {
    const u = await db().selectFrom('users').select('id').where('email', '=', userOf(suite.server, 'owner')).executeTakeFirstOrThrow();
    await db().updateTable('sessions').set({ mfa_at: '2000-01-01T00:00:00.000Z' }).where('user_id', '=', u.id).execute();
  };
  const noSideways = (p: Page) => p.evaluate(() => document.scrollingElement!.scrollWidth);

  it('every variant: the clients list and a client page (cards below 600 px, no sideways scroll), dialogs included, pass axe', async () => {
    const client = suite.server.demo.clients.find((c) => c.devices > 0)!;
    for (const variant of VARIANTS) {
      const phone = variant.viewport.width < 600;
      const p = await as('owner', variant);
      await p.goto('/clients');
      await p.getByRole('link', { name: client.name, exact: true }).first().waitFor();
      expect(await p.getByRole('table').count(), variant.name).toBe(phone ? 0 : 1);
      if (phone) {
        expect(await p.getByRole('list', { name: 'Clients' }).getByRole('listitem').count()).toBe(suite.server.demo.clients.length);
        expect(await noSideways(p), variant.name).toBeLessThanOrEqual(PHONE.width);
      }
      expect(await seriousA11yViolations(p), `clients ${variant.name}`).toEqual([]);
      await screenshot(p, `clients-admin-list-${variant.name}`);

      await p.getByRole('button', { name: 'Add client' }).click();
      const add = p.getByRole('dialog', { name: 'Add client' });
      await add.getByLabel('Client name').waitFor();
      expect(await seriousA11yViolations(p), `add client ${variant.name}`).toEqual([]);
      await p.keyboard.press('Escape');
      await add.waitFor({ state: 'detached' });

      await p.goto(`/clients/${client.id}`);
      await p.getByRole('heading', { level: 1, name: client.name }).waitFor();
      const devices = p.getByRole('region', { name: 'Devices' });
      await devices.getByText(/^1–\d+ of \d+$/).waitFor();
      if (phone) {
        expect(await devices.getByRole('table').count()).toBe(0);
        expect(await devices.getByRole('list', { name: 'Devices' }).getByRole('listitem').count()).toBeGreaterThan(0);
        // Sorting is a select on the phone (the column headers are gone).
        await devices.getByRole('combobox', { name: 'Sort by' }).selectOption('lastSeenAt:desc');
        await devices.getByText(/^1–\d+ of \d+$/).waitFor();
        expect(await noSideways(p), variant.name).toBeLessThanOrEqual(PHONE.width);
      } else expect(await devices.getByRole('table').count()).toBe(1);
      await p
        .getByRole('region', { name: 'Retention, legal hold and offboarding' })
        .getByText(/Keys of retired devices are kept/)
        .waitFor();
      expect(await seriousA11yViolations(p), `client ${variant.name}`).toEqual([]);
      await screenshot(p, `clients-admin-client-${variant.name}`);

      await p.getByRole('button', { name: 'Break-glass export' }).click();
      const dialog = p.getByRole('dialog', { name: `Break-glass export of ${client.name}` });
      await dialog.getByLabel("Type the client's name to confirm").waitFor();
      if (phone) expect(await noSideways(p), variant.name).toBeLessThanOrEqual(PHONE.width);
      expect(await seriousA11yViolations(p), `export dialog ${variant.name}`).toEqual([]);
      await screenshot(p, `clients-admin-export-${variant.name}`);
      await p.keyboard.press('Escape');
      await p.context().close();
    }
  });

  for (const variant of [VARIANTS[0]!, VARIANTS[3]!]) {
    it(`admin (${variant.name}): adds a client (a duplicate name is refused at the field), renames it, sets a legal hold, archives it`, async () => {
      const existing = suite.server.demo.clients[0]!.name;
      const name = `Northwind ${variant.name}`;
      const renamed = `Northwind Traders ${variant.name}`;
      const duplicate = await suite.server.container.clients.create(CLI, { name: existing }).then(
        () => 'no error',
        (e: Error) => e.message,
      );
      expect(duplicate).toMatch(/already exists/);

      const p = await as('admin', variant);
      await p.goto('/clients');
      await p.getByRole('button', { name: 'Add client' }).click();
      const add = p.getByRole('dialog', { name: 'Add client' });
      await add.getByLabel('Client name').fill(existing);
      await add.getByRole('button', { name: 'Add client' }).click();
      // The server's own words, at the field.
      await add.getByText(duplicate).waitFor();
      expect(await add.getByLabel('Client name').getAttribute('aria-invalid')).toBe('true');
      await add.getByLabel('Client name').fill(name);
      await add.getByRole('button', { name: 'Add client' }).click();
      await add.waitFor({ state: 'detached' });
      await p.getByRole('link', { name, exact: true }).waitFor();
      expect(await visibleNames()).toContain(name);
      const created = (await suite.server.container.clients.list(CLI)).find((c) => c.name === name)!;
      expect((await auditOf('client.create', created.id)).length).toBe(1);

      // Rename from the list.
      await p.getByRole('button', { name: `Rename ${name}` }).click();
      const rename = p.getByRole('dialog', { name: `Rename ${name}` });
      await rename.getByLabel('Client name').fill(renamed);
      expect(await seriousA11yViolations(p)).toEqual([]);
      await rename.getByRole('button', { name: 'Rename' }).click();
      await rename.waitFor({ state: 'detached' });
      await p.getByRole('link', { name: renamed, exact: true }).waitFor();
      expect((await clientRow(created.id)).name).toBe(renamed);

      // On its page: a legal hold (admin may set one, not lift it), and no owner-only actions.
      await p.getByRole('link', { name: renamed, exact: true }).click();
      await p.getByRole('heading', { level: 1, name: renamed }).waitFor();
      expect(await p.getByRole('button', { name: 'Offboard client' }).count()).toBe(0);
      expect(await p.getByRole('button', { name: 'Break-glass export' }).count()).toBe(0);
      await p.getByRole('button', { name: 'Set legal hold' }).click();
      const hold = p.getByRole('dialog', { name: `Set legal hold on ${renamed}` });
      await hold.getByLabel('Reason').fill('Case 2026-114: litigation hold');
      await hold.getByRole('button', { name: 'Set legal hold' }).click();
      await hold.waitFor({ state: 'detached' });
      await p
        .getByText(/Case 2026-114: litigation hold/)
        .first()
        .waitFor();
      expect((await clientRow(created.id)).legal_hold_reason).toBe('Case 2026-114: litigation hold');
      expect(await p.getByRole('button', { name: 'Lift legal hold' }).count()).toBe(0);

      // Archive from the client page: the name typed, the consequences said.
      await p.getByRole('button', { name: 'Archive' }).click();
      const archive = p.getByRole('dialog', { name: `Archive ${renamed}` });
      await archive.getByText('Its audit trail is kept in full.').waitFor();
      await archive.getByText(/recovery keys stay encrypted in the vault/).waitFor();
      const confirm = archive.getByRole('button', { name: 'Archive client' });
      expect(await confirm.isDisabled()).toBe(true);
      await archive.getByLabel("Type the client's name to confirm").fill('Northwind');
      expect(await confirm.isDisabled()).toBe(true);
      await archive.getByLabel("Type the client's name to confirm").fill(renamed);
      expect(await seriousA11yViolations(p)).toEqual([]);
      await confirm.click();
      await p.waitForURL('**/clients');
      await p.getByRole('link', { name: existing, exact: true }).first().waitFor();
      // Gone from the list at once (not after a refetch).
      expect(await p.getByRole('link', { name: renamed, exact: true }).count()).toBe(0);
      expect(await visibleNames()).not.toContain(renamed);
      const row = await clientRow(created.id);
      expect(row.archived_at).not.toBeNull();
      expect((await auditOf('client.update', created.id)).map((e) => JSON.parse(e.details ?? '{}') as Record<string, unknown>)).toContainEqual({
        archived: true,
      });
      if (variant.viewport.width < 600) expect(await noSideways(p)).toBeLessThanOrEqual(PHONE.width);
    });
  }

  it('technician sees no add, rename, archive or lifecycle actions; helpdesk has no Clients screen at all', async () => {
    const client = suite.server.demo.clients[0]!;
    const t = await as('technician');
    await t.getByRole('navigation').getByRole('link', { name: 'Clients' }).click();
    await t.getByRole('link', { name: client.name, exact: true }).first().waitFor();
    expect(await t.getByRole('button', { name: 'Add client' }).count()).toBe(0);
    expect(await t.getByRole('button', { name: /^(Rename|Archive) / }).count()).toBe(0);
    await t.goto(`/clients/${client.id}`);
    await t.getByRole('heading', { level: 1, name: client.name }).waitFor();
    await t.getByText(/Keys of retired devices are kept/).waitFor();
    for (const name of ['Rename', 'Archive', 'Set legal hold', 'Offboard client', 'Break-glass export'])
      expect(await t.getByRole('button', { name }).count(), name).toBe(0);
    // The server is the authority: the same request from this page is refused.
    const status = await t.evaluate(async () => {
      const r = await fetch('/api/v1/clients', {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-csrf-token': sessionStorage.getItem('kw.csrf') ?? '' },
        body: JSON.stringify({ name: 'Sneaky' }),
      });
      return r.status;
    });
    expect(status).toBe(403);

    const h = await as('helpdesk');
    expect(await h.getByRole('navigation').getByRole('link', { name: 'Clients' }).count()).toBe(0);
    await h.goto('/clients');
    await h.waitForURL((u) => u.pathname === '/');
    expect(await h.getByRole('button', { name: 'Add client' }).count()).toBe(0);
  });

  it('owner: break-glass export and offboarding ask for a fresh step-up and the typed name; with two-owner approval the offboarding waits', async () => {
    const [exported, offboarded, pending] = suite.server.demo.clients.filter((c) => c.devices > 0);
    expect(pending, 'the demo has three clients with devices').toBeDefined();
    const p = await as('owner');

    // --- export: the server asks for a step-up (the page's last proof looked fresh), the code field appears
    await p.goto(`/clients/${exported!.id}`);
    await p.getByRole('heading', { level: 1, name: exported!.name }).waitFor();
    await staleStepUp();
    await p.getByRole('button', { name: 'Break-glass export' }).click();
    expect(await p.getByLabel('Authentication code').count()).toBe(0);
    const dialog = p.getByRole('dialog', { name: `Break-glass export of ${exported!.name}` });
    await dialog.getByRole('textbox', { name: 'Passphrase', exact: true }).fill('correct horse battery staple 42');
    await dialog.getByLabel('Passphrase again').fill('correct horse battery staple 42');
    const download = dialog.getByRole('button', { name: 'Download encrypted export' });
    expect(await download.isDisabled()).toBe(true);
    await dialog.getByLabel("Type the client's name to confirm").fill(exported!.name);
    await download.click();
    await dialog.getByText('Confirm it is you: enter a current code from your authenticator app.').waitFor();
    await dialog.getByLabel('Authentication code').fill(await freshCode(suite.server.container, userOf(suite.server, 'owner'), ownerSecret));
    const [file] = await Promise.all([p.waitForEvent('download'), download.click()]);
    const saved = await file.path();
    const bytes = fs.readFileSync(saved);
    expect(bytes.length).toBeGreaterThan(100);
    expect(bytes.toString('utf8')).toMatch(/age-encryption\.org|BEGIN AGE ENCRYPTED FILE/);
    // The passphrase is nowhere in the file, and the page says what happened.
    expect(bytes.toString('utf8')).not.toContain('correct horse battery staple 42');
    await p.getByText(new RegExp(`The encrypted bundle of ${exported!.name} was downloaded`)).waitFor();
    const exportEvents = await db()
      .selectFrom('audit_events')
      .select(['outcome', 'actor_name', 'client_id', 'details'])
      .where('action', '=', 'export.bundle')
      .orderBy('seq')
      .execute();
    expect(exportEvents.map((e) => e.outcome)).toEqual(['denied', 'success']);
    expect(exportEvents[1]!.actor_name).toBe(userOf(suite.server, 'owner'));
    expect(exportEvents[1]!.client_id).toBe(exported!.id);
    // The audit log answers it too (GET /api/v1/audit, with the page's own session).
    const inLog = await p.evaluate(async (clientId) => {
      const r = await fetch(`/api/v1/audit?action=export.bundle&clientId=${clientId}&outcome=success`);
      return ((await r.json()) as { action: string; outcome: string }[]).map((e) => `${e.action}:${e.outcome}`);
    }, exported!.id);
    expect(inLog).toEqual(['export.bundle:success']);

    // --- a legal hold (set by someone else) is lifted by the owner: reason, typed name, step-up
    await suite.server.container.lifecycle.setClientHold(CLI, offboarded!.id, { hold: true, reason: 'Insurance audit 7' });
    await staleStepUp();
    await p.goto(`/clients/${offboarded!.id}`);
    await p.getByText(/“Insurance audit 7”/).waitFor();
    await p.getByRole('button', { name: 'Lift legal hold' }).click();
    const lift = p.getByRole('dialog', { name: `Lift legal hold on ${offboarded!.name}` });
    await lift.getByLabel('Reason').fill('Audit closed');
    await lift.getByLabel("Type the client's name to confirm").fill(offboarded!.name);
    await lift.getByLabel('Authentication code').fill(await freshCode(suite.server.container, userOf(suite.server, 'owner'), ownerSecret));
    await lift.getByRole('button', { name: 'Lift legal hold' }).click();
    await p.getByText(`The legal hold on ${offboarded!.name} was lifted.`).waitFor();
    expect((await clientRow(offboarded!.id)).legal_hold_at ?? null).toBeNull();
    expect((await auditOf('legal_hold.clear', offboarded!.id)).map((e) => e.outcome)).toEqual(['success']);

    // --- offboard: a reload knows the proof is old, so the code is asked for up front
    await staleStepUp();
    await p.reload();
    await p.getByRole('heading', { level: 1, name: offboarded!.name }).waitFor();
    await p.getByRole('button', { name: 'Offboard client' }).click();
    const off = p.getByRole('dialog', { name: `Offboard ${offboarded!.name}` });
    await off.getByText(/cannot be undone/).waitFor();
    const go = off.getByRole('button', { name: 'Offboard client' });
    await off.getByLabel("Type the client's name to confirm").fill(offboarded!.name.toLowerCase());
    expect(await go.isDisabled()).toBe(true);
    await off.getByLabel("Type the client's name to confirm").fill(offboarded!.name);
    await off.getByLabel('Authentication code').fill(await freshCode(suite.server.container, userOf(suite.server, 'owner'), ownerSecret));
    expect(await seriousA11yViolations(p)).toEqual([]);
    await go.click();
    await p.getByText(new RegExp(`${offboarded!.name} was offboarded: its data key was destroyed`)).waitFor();
    await p.getByText(/^Offboarded on /).waitFor();
    expect(await p.getByRole('button', { name: 'Offboard client' }).count()).toBe(0);
    expect((await clientRow(offboarded!.id)).offboarded_at).not.toBeNull();
    expect((await auditOf('client.offboard', offboarded!.id)).map((e) => [e.outcome, e.actor_name])).toEqual([['success', userOf(suite.server, 'owner')]]);

    // --- two-owner approval on: the request waits, and the page says so in words
    await suite.server.container.lifecycle.updateSettings(CLI, { twoOwnerApproval: true });
    await p.goto(`/clients/${pending!.id}`);
    await p.getByRole('button', { name: 'Offboard client' }).click();
    const req = p.getByRole('dialog', { name: `Offboard ${pending!.name}` });
    await req.getByLabel("Type the client's name to confirm").fill(pending!.name);
    // Proved a moment ago: no code asked now.
    expect(await req.getByLabel('Authentication code').count()).toBe(0);
    await req.getByRole('button', { name: 'Offboard client' }).click();
    await p.getByText(new RegExp(`Offboarding ${pending!.name} waits for a second owner`)).waitFor();
    const waiting = p.getByRole('region', { name: 'Retention, legal hold and offboarding' });
    await waiting.getByText(/was requested by .* and waits for a second owner to approve it/).waitFor();
    expect(await seriousA11yViolations(p)).toEqual([]);
    // The owner who asked cannot approve their own request.
    expect(await waiting.getByRole('button', { name: 'Approve…' }).count()).toBe(0);
    expect((await clientRow(pending!.id)).offboarded_at ?? null).toBeNull();
    const approvals = () =>
      db().selectFrom('lifecycle_approvals').select(['action', 'status', 'approved_by_name']).where('client_id', '=', pending!.id).execute();
    expect(await approvals()).toEqual([{ action: 'offboard-client', status: 'pending', approved_by_name: null }]);

    // --- a second owner approves it on the same page: typed name, and it runs at once
    const { page: second } = await suite.pageAs(secondOwner, { viewport: PHONE, colorScheme: 'dark' });
    await second.goto(`/clients/${pending!.id}`);
    const region = second.getByRole('region', { name: 'Retention, legal hold and offboarding' });
    await region.getByText('As a second owner, approve it to run it now, or cancel it.').waitFor();
    await region.getByRole('button', { name: 'Approve…' }).click();
    const approve = second.getByRole('dialog', { name: `Approve a request for ${pending!.name}` });
    await approve.getByLabel("Type the client's name to confirm").fill(pending!.name);
    expect(await seriousA11yViolations(second)).toEqual([]);
    expect(await noSideways(second)).toBeLessThanOrEqual(PHONE.width);
    await approve.getByRole('button', { name: 'Approve and run' }).click();
    await second.getByText(/^Approved: offboarding this client/).waitFor();
    await second.getByText(/^Offboarded on /).waitFor();
    expect((await clientRow(pending!.id)).offboarded_at).not.toBeNull();
    expect(await approvals()).toEqual([{ action: 'offboard-client', status: 'executed', approved_by_name: secondOwner }]);
    expect((await auditOf('lifecycle.approve', pending!.id)).map((e) => e.actor_name)).toEqual([secondOwner]);
  });

  it('with no client left, the Clients page offers to add the first one in the console', async () => {
    for (const c of await suite.server.container.clients.list(CLI)) await suite.server.container.clients.archive(CLI, c.id);
    const p = await as('owner', VARIANTS[2]!);
    await p.goto('/clients');
    await p.getByText('No clients yet').waitFor();
    expect(await p.getByText(/CLI|keywarden client/).count()).toBe(0);
    expect(await seriousA11yViolations(p)).toEqual([]);
    await p.getByRole('button', { name: 'Add your first client' }).click();
    await p.getByRole('dialog', { name: 'Add client' }).getByLabel('Client name').fill('Fabrikam');
    await p.getByRole('dialog', { name: 'Add client' }).getByRole('button', { name: 'Add client' }).click();
    await p.getByRole('link', { name: 'Fabrikam', exact: true }).waitFor();
    expect(await visibleNames()).toEqual(['Fabrikam']);
    expect(await noSideways(p)).toBeLessThanOrEqual(PHONE.width);
  });
});
