/// <reference lib="dom" />
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliActor } from '../../src/modules/authz/authz.js';
import { chromiumSuite, enrolTotp, freshCode, userOf } from './harness.js';
import { HaloPsaSimulator } from '../psa-sim/halopsa.js';

/**
 * Settings › PSA in Chromium: an owner whose step-up has gone stale connects HaloPSA (the simulator)
 * with a fresh code, sees it tested "ok" (the secret never comes back to the page), accepts the
 * suggested company for the client "Contoso" with one click, then sets that client's ticket policy
 * to required (assigned to the technician) on the client page's PSA card.
 */
describe('Settings › PSA in Chromium', () => {
  const halo = new HaloPsaSimulator();

  // Registered before the console's hooks: started before it, stopped after it.
  beforeAll(async () => {
    await halo.start();
    halo.tenant = 'kwsim';
    halo.seed();
  });
  afterAll(async () => {
    await halo.stop();
  });
  const suite = chromiumSuite({ env: { KEYWARDEN_EGRESS_ALLOW: '127.0.0.1' } });

  it('an owner connects HaloPSA, accepts a suggested company and requires a ticket for a client', async () => {
    const contoso = await suite.server.container.clients.create(cliActor('browser-test'), { name: 'Contoso' });
    const ownerEmail = userOf(suite.server, 'owner');
    const secret = await enrolTotp(suite.server, ownerEmail, suite.server.demo.password);
    const { page, consoleLines } = await suite.pageAs(ownerEmail, { totpSecret: secret });
    // The second factor proved at sign-in is an hour old: saving needs a fresh one.
    const owner = await suite.server.container.database.db.selectFrom('users').select('id').where('email', '=', ownerEmail).executeTakeFirstOrThrow();
    await suite.server.container.database.db
      .updateTable('sessions')
      .set({ mfa_at: new Date(Date.parse(suite.server.container.clock.now()) - 3_600_000).toISOString() })
      .where('user_id', '=', owner.id)
      .execute();

    await page.goto('/settings/psa');
    await page.getByText('No PSA is connected').waitFor();
    await page.getByRole('button', { name: 'Connect a PSA' }).click();
    const form = page.getByRole('form', { name: 'PSA connection' });
    await form.getByLabel('PSA', { exact: true }).selectOption({ label: 'HaloPSA' });
    await form.getByText('Where to find these in HaloPSA').waitFor();
    await form.getByLabel('HaloPSA address').fill(halo.url);
    await form.getByLabel('Client ID').fill(halo.clientId);
    await form.getByLabel('Client secret').fill(halo.clientSecret);
    await form.getByLabel('Tenant').fill('kwsim');
    await form.getByLabel('Authentication code').fill(await freshCode(suite.server.container, ownerEmail, secret));
    await form.getByRole('button', { name: 'Save and test' }).click();
    await form.waitFor({ state: 'detached' });
    await expect.poll(() => page.getByTestId('psa-status').textContent()).toBe('ok');
    expect(await page.content()).not.toContain(halo.clientSecret);

    // The company table suggests "Contoso Ltd" for "Contoso": one click links it.
    const row = page.getByTestId('psa-client-Contoso');
    await row.getByText('Suggested: Contoso Ltd').waitFor();
    await row.getByRole('button', { name: 'Accept Contoso Ltd for Contoso' }).click();
    await expect.poll(() => row.textContent()).toMatch(/Contoso Ltd \(\d+\)/);
    const linked = await suite.server.container.psa.clientSettings(cliActor('browser-test'), contoso.id);
    expect(linked.companyName).toBe('Contoso Ltd');

    // The client page's PSA card: required, assigned to the technician.
    await page.goto(`/clients/${contoso.id}`);
    const card = page.getByTestId('client-psa');
    await card.getByText('Contoso is Contoso Ltd').waitFor();
    await card.getByText('Required', { exact: true }).click();
    await card.getByRole('checkbox', { name: /assigned to the technician/ }).check();
    await card.getByRole('button', { name: 'Save ticket policy' }).click();
    await card.getByRole('status').filter({ hasText: 'Saved.' }).waitFor();
    const saved = await suite.server.container.psa.clientSettings(cliActor('browser-test'), contoso.id);
    expect(saved).toMatchObject({ ticketPolicy: 'required', requireAssignee: true, companyName: 'Contoso Ltd' });
    expect(consoleLines.join('\n')).not.toContain(halo.clientSecret);
  });
});
