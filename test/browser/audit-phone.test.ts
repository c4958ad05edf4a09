/// <reference lib="dom" />
import { describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { cliActor } from '../../src/modules/authz/authz.js';
import { chromiumSuite, DESKTOP, PHONE, seriousA11yViolations, type ContextOptions } from './harness.js';

/**
 * Issue 17 item 6: the audit log on a phone. Below 600 px each event is a card (action, outcome,
 * time, actor, client, device, key ID, ticket, reason), nothing scrolls sideways at 390 px, and the
 * search and filters work there; at 1280 px it stays a table.
 */
const OWNER = cliActor('browser-test');
const TICKET = 'T-10488';

describe('audit log on the phone (Chromium)', () => {
  const suite = chromiumSuite();

  const as = async (role: string, opts: ContextOptions = {}) => (await suite.pageAs(role, opts)).page;
  const noOverflow = async (p: Page, where: string) =>
    expect(await p.evaluate(() => document.documentElement.scrollWidth), where).toBeLessThanOrEqual(PHONE.width);
  const cards = (p: Page) => p.getByRole('list', { name: 'Audit events' }).getByRole('listitem');

  for (const colorScheme of ['light', 'dark'] as const) {
    it(`at 390 px (${colorScheme}) events are cards, search and filters work, nothing overflows`, async () => {
      const p = await as('owner', { viewport: PHONE, colorScheme });
      await p.goto('/audit');
      await p.getByRole('heading', { level: 1, name: 'Audit log' }).waitFor();
      await cards(p).first().waitFor();
      expect(await p.getByRole('table').count()).toBe(0);
      await noOverflow(p, 'first page');
      expect(await seriousA11yViolations(p)).toEqual([]);

      // Search by ticket: the cards show exactly the events the server finds.
      const byTicket = await suite.server.container.audit.list(OWNER, { search: TICKET });
      expect(byTicket.length, 'the demo has a reveal with this ticket').toBeGreaterThan(0);
      await p.getByLabel('Search').fill(TICKET);
      await expect.poll(async () => (await cards(p).allInnerTexts()).length).toBe(byTicket.length);
      for (const text of await cards(p).allInnerTexts()) expect(text).toContain(TICKET);
      const card = cards(p).first();
      expect(await card.innerText()).toContain(byTicket[0]!.actionLabel);
      expect(await card.innerText()).toContain(byTicket[0]!.device!);
      await noOverflow(p, 'search');

      // The filters fold under one button; an action filter narrows the cards to that action.
      await p.getByLabel('Search').fill('');
      const action = p.getByRole('combobox', { name: 'Action' });
      expect(await action.isVisible()).toBe(false);
      await p.getByRole('button', { name: 'Filters' }).click();
      await action.waitFor({ state: 'visible' });
      const label = [...suite.server.container.audit.actions(OWNER)].find((a) => a.action === 'key.reveal')!.label;
      await action.selectOption({ label });
      const reveals = await suite.server.container.audit.list(OWNER, { action: 'key.reveal', limit: 100 });
      await expect.poll(async () => (await cards(p).allInnerTexts()).length).toBe(reveals.length);
      for (const text of await cards(p).allInnerTexts()) expect(text).toContain(label);
      await noOverflow(p, 'filters open');
      expect(await seriousA11yViolations(p)).toEqual([]);
      await p.getByRole('button', { name: 'Hide filters' }).click();
      await p.getByRole('button', { name: 'Filters (1)' }).waitFor();

      // Every detail is one tap away, on the phone too.
      await cards(p)
        .first()
        .getByRole('button', { name: /All details of event/ })
        .click();
      const drawer = p.getByRole('dialog', { name: 'Event details' });
      await drawer.getByText('Record IDs').waitFor();
      await noOverflow(p, 'details');
      expect(await seriousA11yViolations(p)).toEqual([]);
    });
  }

  it('at 1280 px it stays a table with every filter in view', async () => {
    for (const colorScheme of ['light', 'dark'] as const) {
      const p = await as('auditor', { viewport: DESKTOP, colorScheme });
      await p.goto('/audit');
      const table = p.getByRole('region', { name: 'Audit events' }).getByRole('table');
      await table.waitFor();
      expect(await p.getByRole('list', { name: 'Audit events' }).count()).toBe(0);
      expect(await p.getByRole('button', { name: 'Filters' }).count()).toBe(0);
      expect(await p.getByRole('combobox', { name: 'Outcome' }).isVisible()).toBe(true);
      expect(await seriousA11yViolations(p), colorScheme).toEqual([]);
    }
  });

  it('a technician has no audit log link and is sent back from its address', async () => {
    const p = await as('technician', { viewport: PHONE });
    await p.getByRole('button', { name: 'Open navigation' }).click();
    const nav = p.getByRole('navigation');
    await nav.getByRole('link', { name: 'Find a key' }).waitFor();
    expect(await nav.getByRole('link', { name: 'Audit log' }).count()).toBe(0);
    await p.goto('/audit');
    await p.getByRole('searchbox', { name: 'Find a key' }).waitFor();
    expect(new URL(p.url()).pathname).toBe('/');
  });
});
