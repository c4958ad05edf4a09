/// <reference lib="dom" />
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Locator, Page } from 'playwright-core';
import { cliActor } from '../../src/modules/authz/authz.js';
import { chromiumSuite, enrolTotp, freshCode, userOf } from './harness.js';
import { bytes, csvOf, randomKeyId, randomRecoveryPassword } from '../helpers/keys.js';
import { HaloPsaSimulator } from '../psa-sim/halopsa.js';

/**
 * The ticket-bound reveal dialog (issue 21) in Chromium, against the HaloPSA simulator. The PSA is
 * connected over HTTP as an owner would (Settings › PSA has its own browser test); "Contoso" is
 * linked to "Contoso Ltd" with the ticket policy "required". A technician's dialog says a ticket is
 * required, shows the PSA's refusal of a closed ticket next to the ticket field (no password), and
 * reveals with the open ticket, which then has exactly one internal note. With the PSA unreachable,
 * the technician is refused without a break-glass button; an owner whose step-up has gone stale
 * confirms with a code, is offered "Break glass: reveal without a checked ticket", gives a reason
 * and gets the password.
 */
describe('ticket-bound reveal dialog, in Chromium', () => {
  const halo = new HaloPsaSimulator();
  let tickets: ReturnType<HaloPsaSimulator['seed']>;
  const cli = cliActor('browser-test');
  type Key = { keyId: string; password: string; device: string; recordId: string };
  const keys: Key[] = [];

  /** Signs in over HTTP (no browser) and returns a fetch for the API as that person. */
  const apiAs = async (email: string) => {
    const login = await fetch(`${suite.server.baseUrl}/api/v1/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email, password: suite.server.demo.password }),
    });
    if (login.status !== 200) throw new Error(`sign-in for ${email} failed: ${login.status}`);
    const cookie = login.headers
      .getSetCookie()
      .map((c) => c.split(';')[0])
      .join('; ');
    const { csrfToken } = (await login.json()) as { csrfToken: string };
    return async (method: string, url: string, body?: unknown) => {
      const r = await fetch(`${suite.server.baseUrl}/api/v1${url}`, {
        method,
        headers: { cookie, 'x-csrf-token': csrfToken, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await r.text();
      if (r.status !== 200) throw new Error(`${method} ${url}: ${r.status} ${text}`);
      return JSON.parse(text) as Record<string, unknown>;
    };
  };

  // Registered before the console's hooks: started before it, stopped after it.
  beforeAll(async () => {
    await halo.start();
    tickets = halo.seed();
  });
  afterAll(async () => {
    await halo.stop();
  });
  const suite = chromiumSuite({ env: { KEYWARDEN_EGRESS_ALLOW: '127.0.0.1' } });

  beforeAll(async () => {
    // Two keys of Contoso's laptops: one for the checked-ticket reveal, one for the PSA outage.
    const contoso = await suite.server.container.clients.create(cli, { name: 'Contoso' });
    for (const device of ['FAKE-CONTOSO-LAP1', 'FAKE-CONTOSO-LAP2'])
      keys.push({ keyId: randomKeyId(), password: randomRecoveryPassword(), device, recordId: '' });
    await suite.server.container.imports.importFile(cli, 'Contoso', { fileName: 'contoso.csv', bytes: bytes(csvOf(keys)) });
    for (const k of keys) k.recordId = (await suite.server.container.keys.searchByKeyId(cli, k.keyId))[0]!.id;

    // The owner (password only until later in this test) connects HaloPSA and links the client.
    const owner = await apiAs(userOf(suite.server, 'owner'));
    const connection = await owner('PUT', '/settings/psa', {
      kind: 'halopsa',
      url: halo.url,
      authUrl: halo.authUrl,
      apiUrl: halo.apiUrl,
      clientId: halo.clientId,
      clientSecret: halo.clientSecret,
    });
    expect(connection).toMatchObject({ status: 'ok' });
    await owner('PUT', `/clients/${contoso.id}/psa`, { companyId: String(tickets.open.client_id), ticketPolicy: 'required' });
    expect(await suite.server.container.psa.clientSettings(cli, contoso.id)).toMatchObject({ companyName: 'Contoso Ltd', ticketPolicy: 'required' });
  });
  afterEach(() => {
    halo.unreachable = false;
  });

  const signedIn = async (email: string, totpSecret?: string): Promise<{ page: Page; lines: string[] }> => {
    const { page, consoleLines } = await suite.pageAs(email, { totpSecret });
    return { page, lines: consoleLines };
  };
  /** Finds the key by its ID and opens its reveal dialog. */
  const openReveal = async (page: Page, k: Key): Promise<Locator> => {
    await page.getByRole('searchbox', { name: 'Find a key' }).pressSequentially(k.keyId.toUpperCase());
    const result = page.getByRole('list', { name: 'Matching keys' }).getByRole('listitem').filter({ hasText: k.device });
    await result.getByRole('button', { name: 'Reveal', exact: true }).click();
    const dialog = page.getByRole('dialog', { name: 'Reveal recovery key' });
    await dialog.getByText(k.device, { exact: true }).waitFor();
    return dialog;
  };
  /** What a screen reader announces with the field: the texts its aria-describedby names (hint and error). */
  const describedBy = (field: Locator) =>
    field.evaluate((el) =>
      (el.getAttribute('aria-describedby') ?? '')
        .split(/\s+/)
        .filter(Boolean)
        .map((id) => document.getElementById(id)?.textContent ?? '')
        .join(' | '),
    );
  const shownPassword = async (page: Page) => {
    await page.getByTestId('recovery-password').waitFor();
    return (await page.getByTestId('password-group').locator('.kw-group-digits').allTextContents()).join('-');
  };
  const allNotes = () => [tickets.open, tickets.closed, tickets.openUnassigned, tickets.otherClientOpen].flatMap((t) => halo.notes(t.id));
  const breakGlassButton = (dialog: Locator) => dialog.getByRole('button', { name: 'Break glass: reveal without a checked ticket', exact: true });

  it('a technician is refused a closed ticket next to the ticket field, then reveals with the open ticket; one internal note', async () => {
    const k = keys[0]!;
    const tech = await signedIn(userOf(suite.server, 'technician'));
    const dialog = await openReveal(tech.page, k);
    const ticket = dialog.getByLabel('Ticket reference', { exact: true });
    // The client's ticket policy arrives with the dialog's approval query, a moment after the dialog.
    await expect.poll(() => ticket.getAttribute('required')).not.toBeNull();
    await expect.poll(() => describedBy(ticket)).toContain('Required: an open ticket of this client in HaloPSA, checked before the key is shown');

    await dialog.getByLabel('Reason', { exact: true }).selectOption({ label: 'Lost PIN' });
    await ticket.fill(String(tickets.closed.id));
    await dialog.getByRole('button', { name: 'Show password', exact: true }).click();
    await expect.poll(() => ticket.getAttribute('aria-invalid')).toBe('true');
    expect(await describedBy(ticket)).toMatch(new RegExp(`Ticket ${tickets.closed.id} .*is closed .*reopen it or use an open ticket`));
    // The refusal is the field's error, not a second alert elsewhere in the dialog.
    expect(await dialog.getByRole('alert').count()).toBe(0);
    expect(await tech.page.getByTestId('recovery-password').count()).toBe(0);
    expect(await tech.page.content()).not.toContain(k.password);
    expect(await breakGlassButton(dialog).count()).toBe(0);

    // Typing clears the refusal; the open ticket reveals.
    await ticket.fill(String(tickets.open.id));
    expect(await ticket.getAttribute('aria-invalid')).not.toBe('true');
    await dialog.getByRole('button', { name: 'Show password', exact: true }).click();
    expect(await shownPassword(tech.page)).toBe(k.password);

    // Exactly one internal note, on the open ticket, without the password; nothing on the closed one.
    await suite.server.container.psaTickets.settled();
    const notes = halo.notes(tickets.open.id);
    expect(notes).toHaveLength(1);
    expect(notes[0]!.hiddenfromuser).toBe(true);
    expect(notes[0]!.note).toContain(k.device);
    expect(allNotes()).toHaveLength(1);
    for (const n of allNotes()) expect(n.note).not.toContain(k.password);
    const reveals = (await suite.server.container.audit.list(cli, { action: 'key.reveal', limit: 100 })).filter((e) => e.targetId === k.recordId);
    expect(reveals.map((e) => e.outcome).sort()).toEqual(['denied', 'success']);
    for (const line of tech.lines) expect(line).not.toContain(k.password);
  });

  it('PSA unreachable: the technician gets no break-glass; an owner confirms with a code, breaks the glass with a reason and reveals', async () => {
    const k = keys[1]!;
    const notesBefore = allNotes().length;
    halo.unreachable = 'reset';

    const tech = await signedIn(userOf(suite.server, 'technician'));
    const techDialog = await openReveal(tech.page, k);
    const techTicket = techDialog.getByLabel('Ticket reference', { exact: true });
    await techDialog.getByLabel('Reason', { exact: true }).selectOption({ label: 'Lost PIN' });
    await techTicket.fill(String(tickets.open.id));
    await techDialog.getByRole('button', { name: 'Show password', exact: true }).click();
    await expect.poll(() => techTicket.getAttribute('aria-invalid'), { timeout: 20_000 }).toBe('true');
    expect(await describedBy(techTicket)).toMatch(
      /HaloPSA cannot be reached to check ticket .*Contoso requires a valid ticket\. An owner can reveal with break-glass/,
    );
    expect(await breakGlassButton(techDialog).count()).toBe(0);
    expect(await tech.page.getByTestId('recovery-password').count()).toBe(0);

    // The owner has an authenticator app and signed in an hour ago: the dialog asks for a code.
    const ownerEmail = userOf(suite.server, 'owner');
    const secret = await enrolTotp(suite.server, ownerEmail, suite.server.demo.password);
    const owner = await signedIn(ownerEmail, secret);
    const ownerRow = await suite.server.container.database.db.selectFrom('users').select('id').where('email', '=', ownerEmail).executeTakeFirstOrThrow();
    await suite.server.container.database.db
      .updateTable('sessions')
      .set({ mfa_at: new Date(Date.parse(suite.server.container.clock.now()) - 3_600_000).toISOString() })
      .where('user_id', '=', ownerRow.id)
      .execute();
    await owner.page.reload();
    const dialog = await openReveal(owner.page, k);
    const ticket = dialog.getByLabel('Ticket reference', { exact: true });
    const code = dialog.getByLabel('Authentication code', { exact: true });
    await dialog.getByLabel('Reason', { exact: true }).selectOption({ label: 'Lost PIN' });
    await ticket.fill(String(tickets.open.id));
    await code.fill(await freshCode(suite.server.container, ownerEmail, secret));
    await dialog.getByRole('button', { name: 'Show password', exact: true }).click();
    await breakGlassButton(dialog).waitFor({ timeout: 20_000 });
    expect(await describedBy(ticket)).toMatch(/HaloPSA cannot be reached to check ticket /);
    // The code was used for the step-up: the dialog no longer asks for one.
    await code.waitFor({ state: 'detached' });
    expect(await owner.page.getByTestId('recovery-password').count()).toBe(0);

    await breakGlassButton(dialog).click();
    // The reason box opens where the button was, focused: the owner types the reason at once.
    const why = dialog.getByLabel('Why break the glass?', { exact: true });
    await expect.poll(() => why.evaluate((el) => el === document.activeElement)).toBe(true);
    expect(await describedBy(why)).toContain('Revealing without a checked ticket is audited as break-glass and notified');
    await why.fill('The PSA is down and the CEO waits at the airport');
    await dialog.getByRole('button', { name: 'Show password', exact: true }).click();
    expect(await shownPassword(owner.page)).toBe(k.password);

    // Through the server: one break-glass, with the owner's reason and the PSA's problem; no note posted yet.
    const bg = (await suite.server.container.audit.list(cli, { action: 'key.break_glass', limit: 100 })).filter((e) => e.targetId === k.recordId);
    expect(bg).toHaveLength(1);
    expect(bg[0]!.details).toMatchObject({
      breakGlassReason: 'The PSA is down and the CEO waits at the airport',
      psaProblem: expect.stringMatching(/unreachable/),
    });
    await suite.server.container.psaTickets.settled();
    expect(allNotes()).toHaveLength(notesBefore);
    for (const line of [...tech.lines, ...owner.lines]) expect(line).not.toContain(k.password);
  });
});
