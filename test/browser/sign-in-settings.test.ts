/// <reference lib="dom" />
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliActor } from '../../src/modules/authz/authz.js';
import { chromiumSuite, enrolTotp, freshCode, userOf } from './harness.js';
import { startOidcProvider, type TestIdp } from '../oidc/provider.js';

/**
 * Settings → Sign-in in Chromium: an owner whose step-up has gone stale adds an OpenID Connect
 * provider with a mapping rule (the form asks for a fresh code and saves), tests its discovery,
 * and the provider's button then signs a new technician in just in time, who appears in Users &
 * roles as SSO only; turning that off with a stale step-up asks for a code first. The client secret typed in the form never comes back to the page.
 */
describe('Settings → Sign-in in Chromium', () => {
  const suite = chromiumSuite({ env: { KEYWARDEN_EGRESS_ALLOW: '127.0.0.1' } });
  let idp: TestIdp;

  beforeAll(async () => {
    idp = await startOidcProvider({
      redirectUris: [`${suite.server.baseUrl}/api/v1/auth/sso/callback`],
      users: { newtech: { sub: 'sub-newtech', email: 'new.tech@example.test', password: 'idp password 3', name: 'New Tech', groups: ['kw-techs'] } },
    });
  });
  afterAll(async () => {
    await idp?.close();
  });

  it('an owner adds a provider with a rule (stale step-up: a fresh code), tests it, and a new technician signs in through it', async () => {
    const ownerEmail = userOf(suite.server, 'owner');
    const secret = await enrolTotp(suite.server, ownerEmail, suite.server.demo.password);
    const { page } = await suite.pageAs(ownerEmail, { totpSecret: secret });
    // The second factor proved at sign-in is an hour old: saving needs a fresh one.
    const owner = await suite.server.container.database.db.selectFrom('users').select('id').where('email', '=', ownerEmail).executeTakeFirstOrThrow();
    const ageStepUp = () =>
      suite.server.container.database.db
        .updateTable('sessions')
        .set({ mfa_at: new Date(Date.parse(suite.server.container.clock.now()) - 3_600_000).toISOString() })
        .where('user_id', '=', owner.id)
        .execute();
    await ageStepUp();

    await page.goto('/settings/sign-in');
    await page.getByText('No sign-in provider').waitFor();
    await page.getByRole('button', { name: 'Add provider' }).click();
    const dialog = page.getByRole('dialog', { name: 'Add a sign-in provider' });
    await dialog.getByLabel('Kind').selectOption({ label: 'Other OpenID Connect provider' });
    await dialog.getByLabel('Name on the sign-in button').fill('Fabrikam IdP');
    await dialog.getByLabel('Issuer URL').fill(idp.issuer);
    await dialog.getByLabel('Client id').fill(idp.clientId);
    await dialog.getByLabel('Client secret').fill(idp.clientSecret);
    await dialog.getByLabel('Scopes').fill('openid email profile groups');
    await dialog.getByRole('switch', { name: /Add new people on their first sign-in/ }).check({ force: true });
    await dialog.getByRole('button', { name: 'Add rule' }).click();
    await dialog.getByLabel('Value').fill('kw-techs');
    await dialog.getByLabel('Role').selectOption({ label: 'Technician' });
    await dialog.getByLabel('Clients').click();
    await page.getByRole('option', { name: 'All clients' }).click();
    await dialog.getByLabel('Authentication code').fill(await freshCode(suite.server.container, ownerEmail, secret));
    await dialog.getByRole('button', { name: 'Save' }).click();
    await dialog.waitFor({ state: 'detached' });

    await page.getByRole('heading', { name: /Fabrikam IdP/ }).waitFor();
    await expect.poll(() => page.getByText('1 mapping rule (first match)').isVisible()).toBe(true);
    expect(await page.content()).not.toContain(idp.clientSecret);
    await page.getByRole('button', { name: 'Test discovery' }).click();
    await expect.poll(() => page.getByRole('status').first().textContent()).toContain(`Discovery works: issuer ${idp.issuer}`);
    const created = await suite.server.container.audit.list(cliActor('browser-test'), { action: 'sso.provider.create', limit: 5 });
    expect(created.length).toBe(1);

    // The sign-in page offers it; a technician nobody added signs in through it and is created.
    const { context: other } = await suite.context();
    const tech = await other.newPage();
    await tech.goto('/login');
    await tech.getByRole('link', { name: 'Sign in with Fabrikam IdP' }).click();
    await tech.waitForURL((u) => u.href.startsWith(idp.issuer));
    await tech.getByLabel('Username').fill('newtech');
    await tech.getByLabel('Password').fill('idp password 3');
    await tech.getByRole('button', { name: 'Sign in at the IdP' }).click();
    await tech.getByRole('button', { name: 'Sign out' }).waitFor();
    await expect.poll(() => tech.getByText('new.tech@example.test').first().isVisible()).toBe(true);

    // The owner sees the new person as an SSO-only technician.
    await page.goto('/settings/users');
    const sw = page.getByRole('switch', { name: 'SSO only for new.tech@example.test' });
    await sw.waitFor();
    expect(await sw.isChecked()).toBe(true);
    expect(await page.getByRole('row', { name: /new\.tech@example\.test/ }).textContent()).toContain('Technician');

    // Turning "SSO only" off needs a fresh second factor again: the step-up panel asks, then the change is made.
    await ageStepUp();
    await page.reload();
    await sw.waitFor();
    await sw.click({ force: true });
    const confirm = page.getByRole('alert').filter({ hasText: 'Confirm it is you' });
    await confirm.getByLabel('Authentication code').fill(await freshCode(suite.server.container, ownerEmail, secret));
    await confirm.getByRole('button', { name: 'Verify and save' }).click();
    await expect.poll(() => sw.isChecked()).toBe(false);
    const row = await suite.server.container.database.db
      .selectFrom('users')
      .select('sso_only')
      .where('email', '=', 'new.tech@example.test')
      .executeTakeFirstOrThrow();
    expect(row.sso_only).toBe(0);
  });
});
