/// <reference lib="dom" />
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliActor } from '../../src/modules/authz/authz.js';
import { chromiumSuite, userOf } from './harness.js';
import { startOidcProvider, type TestIdp } from '../oidc/provider.js';

/**
 * Issue 19 (single sign-on): the sign-in page's "Sign in with …" button goes to a real OpenID
 * provider (oidc-provider on 127.0.0.1), the person signs in on the provider's own login page and
 * comes back signed in; the CSRF token handed over works for a change (signing out), and its
 * cookie is gone. A person the vault does not know comes back to the sign-in page with a reason.
 * An SSO-only person whose provider's multi-factor sign-in counts steps up at the provider (signs in
 * there again) from the reveal dialog, and then reveals.
 */
describe('single sign-on in Chromium', () => {
  const suite = chromiumSuite({ env: { KEYWARDEN_EGRESS_ALLOW: '127.0.0.1' } });
  let idp: TestIdp;
  let techEmail: string;
  let providerId: string;

  beforeAll(async () => {
    techEmail = userOf(suite.server, 'technician');
    idp = await startOidcProvider({
      redirectUris: [`${suite.server.baseUrl}/api/v1/auth/sso/callback`],
      users: {
        tech: { sub: 'sub-tech', email: techEmail, password: 'idp password 1', name: 'Tech' },
        stranger: { sub: 'sub-stranger', email: 'stranger@example.test', password: 'idp password 2' },
      },
    });
    ({ id: providerId } = await suite.server.container.sso.createProvider(cliActor('browser-test'), {
      kind: 'oidc',
      name: 'Contoso IdP',
      issuer: idp.issuer,
      clientId: idp.clientId,
      clientSecret: idp.clientSecret,
      scopes: ['openid', 'email', 'profile'],
    }));
  });
  afterAll(async () => {
    await idp?.close();
  });

  const atIdp = async (page: import('playwright-core').Page, login: string, password: string) => {
    await page.getByRole('link', { name: 'Sign in with Contoso IdP' }).click();
    await page.waitForURL((u) => u.href.startsWith(idp.issuer));
    await page.getByLabel('Username').fill(login);
    await page.getByLabel('Password').fill(password);
    await page.getByRole('button', { name: 'Sign in at the IdP' }).click();
  };

  it('signs in with the "Sign in with …" button through the provider\'s login page', async () => {
    const { context } = await suite.context();
    const page = await context.newPage();
    await page.goto('/login');
    await atIdp(page, 'tech', 'idp password 1');
    await page.getByRole('button', { name: 'Sign out' }).waitFor();
    expect(page.url().startsWith(suite.server.baseUrl)).toBe(true);
    await expect.poll(() => page.getByText(techEmail).first().isVisible()).toBe(true);
    // The CSRF token moved to sessionStorage; its hand-over cookie is gone.
    expect(await page.evaluate(() => sessionStorage.getItem('kw.csrf'))).toBeTruthy();
    expect(await page.evaluate(() => document.cookie)).not.toContain('kw_sso_csrf');
    const logins = await suite.server.container.database.db.selectFrom('audit_events').selectAll().where('action', '=', 'auth.login').execute();
    expect(logins.some((e) => e.outcome === 'success' && (e.details ?? '').includes('"method":"sso"') && (e.details ?? '').includes(techEmail))).toBe(true);
    // A change with the handed-over CSRF token: signing out works.
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(/\/login$/);
    const outs = await suite.server.container.database.db.selectFrom('audit_events').selectAll().where('action', '=', 'auth.logout').execute();
    expect(outs.length).toBeGreaterThan(0);
  });

  it('a person the vault does not know comes back to sign-in with the reason', async () => {
    const { context } = await suite.context();
    const page = await context.newPage();
    await page.goto('/login');
    await atIdp(page, 'stranger', 'idp password 2');
    await page.waitForURL(/\/login\?sso=no-account$/);
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('There is no Keywarden account for you yet');
  });

  it("an SSO-only person whose provider's multi-factor sign-in counts steps up at the provider before a reveal", async () => {
    const operator = cliActor('browser-test');
    await suite.server.container.sso.updateProvider(operator, providerId, { idpMfa: true });
    const tech = await suite.server.container.identity.getUserByEmail(operator, techEmail);
    await suite.server.container.sso.setSsoOnly(operator, tech.id, true);
    // Signed in with a password only at the provider: no multi-factor proof in this session yet.
    idp.users.tech!.amr = ['pwd'];
    const { context } = await suite.context();
    const page = await context.newPage();
    await page.goto('/login');
    await atIdp(page, 'tech', 'idp password 1');
    await page.getByRole('button', { name: 'Sign out' }).waitFor();

    const sample = suite.server.demo.samplePrefixes[0]!;
    const reveal = async () => {
      await page.getByRole('searchbox', { name: 'Find a key' }).pressSequentially(sample.prefix);
      await page.getByRole('list', { name: 'Matching keys' }).getByRole('listitem').first().getByRole('button', { name: 'Reveal' }).click();
      const dialog = page.getByRole('dialog', { name: 'Reveal recovery key' });
      await dialog.getByLabel('Reason').selectOption({ label: 'BIOS Changed' });
      await dialog.getByLabel('Ticket reference').fill('SSO-1901');
      await dialog.getByRole('button', { name: 'Show password' }).click();
      return dialog;
    };
    await page.goto('/');
    const dialog = await reveal();
    // No authenticator app and no passkey: the provider is the way to step up.
    const atProvider = dialog.getByRole('link', { name: 'Confirm at Contoso IdP (step-up)' });
    await atProvider.waitFor();
    expect(await dialog.getByLabel('Authentication code').count()).toBe(0);
    expect(await page.getByTestId('recovery-password').count()).toBe(0);

    // This time the provider asks for (and reports) its second factor.
    idp.users.tech!.amr = ['pwd', 'mfa'];
    await atProvider.click();
    await page.waitForURL((u) => u.href.startsWith(idp.issuer));
    await page.getByLabel('Username').fill('tech');
    await page.getByLabel('Password').fill('idp password 1');
    await page.getByRole('button', { name: 'Sign in at the IdP' }).click();
    await page.waitForURL((u) => u.href.startsWith(suite.server.baseUrl));
    await page.getByRole('button', { name: 'Sign out' }).waitFor();

    // Back in the console with a fresh proof: the reveal goes through.
    await reveal();
    await page.getByTestId('recovery-password').waitFor();
    const stepUps = await suite.server.container.audit.list(operator, { action: 'auth.step_up', actorId: tech.id, outcome: 'success', limit: 5 });
    expect(stepUps.length).toBeGreaterThan(0);
    const reveals = await suite.server.container.audit.list(operator, { action: 'key.reveal', actorId: tech.id, outcome: 'success', limit: 5 });
    expect(reveals.some((e) => e.ticket === 'SSO-1901')).toBe(true);
  });
});
