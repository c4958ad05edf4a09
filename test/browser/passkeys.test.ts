/// <reference lib="dom" />
import { describe, expect, it } from 'vitest';
import { chromiumSuite, freePort, signIn, userOf } from './harness.js';
import { cliActor } from '../../src/modules/authz/authz.js';

/**
 * Issue 19, passkeys in Chromium with the DevTools virtual authenticator (a platform authenticator
 * with resident keys and user verification): add a passkey on the Account page, sign out, sign in
 * with it (no password), confirm a reveal with it (step-up), and remove it.
 *
 * WebAuthn needs a host name (not an IP address), so the console is reached as localhost and
 * KEYWARDEN_PUBLIC_URL names that address: the relying party is "localhost".
 */
describe('passkeys in Chromium', () => {
  let base: string;
  const suite = chromiumSuite(async () => {
    const port = await freePort();
    base = `http://localhost:${port}`;
    return { port, env: { KEYWARDEN_PUBLIC_URL: base } };
  });

  /** Makes the person's second-factor proof an hour old, as if they had been signed in for a while. */
  const ageStepUp = async (userId: string) => {
    const old = new Date(Date.parse(suite.server.container.clock.now()) - 60 * 60_000).toISOString();
    await suite.server.container.database.db.updateTable('sessions').set({ mfa_at: old }).where('user_id', '=', userId).execute();
  };

  it('adds a passkey on the Account page, signs in with it after signing out, steps up with it before a reveal, and removes it', async () => {
    const { context, consoleLines } = await suite.context({ baseUrl: base });
    const page = await context.newPage();
    const cdp = await context.newCDPSession(page);
    await cdp.send('WebAuthn.enable');
    const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
      options: { protocol: 'ctap2', transport: 'internal', hasResidentKey: true, hasUserVerification: true, isUserVerified: true },
    });

    const email = userOf(suite.server, 'technician');
    const user = (await suite.server.container.identity.getUserByEmail(cliActor('browser-test'), email))!;
    await signIn(page, suite.server, email);

    // Account page: add a passkey with a name.
    await page.goto('/settings/account');
    const section = page.getByRole('region', { name: 'Passkeys' });
    await section.getByLabel('Passkey name').fill('Test laptop');
    await section.getByRole('button', { name: 'Add a passkey' }).click();
    const table = section.getByRole('table', { name: 'Your passkeys' });
    await table.getByRole('cell', { name: 'Test laptop', exact: true }).waitFor();
    const creds = (await cdp.send('WebAuthn.getCredentials', { authenticatorId })).credentials;
    expect(creds).toHaveLength(1);
    expect(creds[0]!.isResidentCredential).toBe(true);
    const rows = await suite.server.container.database.db.selectFrom('passkeys').select(['name', 'credential_id']).where('user_id', '=', user.id).execute();
    // DevTools gives the credential id in base64, Keywarden keeps it in base64url.
    const credentialId = Buffer.from(creds[0]!.credentialId, 'base64').toString('base64url');
    expect(rows).toEqual([{ name: 'Test laptop', credential_id: credentialId }]);

    // Sign out, then sign in with the passkey alone.
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL('**/login');
    await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
    await page.getByRole('button', { name: 'Sign out' }).waitFor();
    const logins = await suite.server.container.audit.list(cliActor('browser-test'), { action: 'auth.login', actorId: user.id, outcome: 'success', limit: 5 });
    expect(logins[0]!.details).toMatchObject({ method: 'passkey', passwordless: true });

    // A reveal after a while: the dialog asks for a step-up, and the passkey gives it.
    await ageStepUp(user.id);
    const sample = suite.server.demo.samplePrefixes[0]!;
    await page.goto('/');
    const box = page.getByRole('searchbox', { name: 'Find a key' });
    await box.pressSequentially(sample.prefix);
    await page.getByRole('list', { name: 'Matching keys' }).getByRole('listitem').first().getByRole('button', { name: 'Reveal' }).click();
    const dialog = page.getByRole('dialog', { name: 'Reveal recovery key' });
    await dialog.getByLabel('Reason').selectOption({ label: 'BIOS Changed' });
    await dialog.getByLabel('Ticket reference').fill('PK-1901');
    await dialog.getByRole('button', { name: 'Show password' }).click();
    const confirm = dialog.getByRole('button', { name: 'Confirm with a passkey (step-up)' });
    await confirm.waitFor();
    await confirm.click();
    await confirm.waitFor({ state: 'detached' });
    await dialog.getByRole('button', { name: 'Show password' }).click();
    await page.getByTestId('recovery-password').waitFor();
    const stepUps = await suite.server.container.audit.list(cliActor('browser-test'), {
      action: 'auth.step_up',
      actorId: user.id,
      outcome: 'success',
      limit: 5,
    });
    expect(stepUps[0]!.details).toMatchObject({ method: 'passkey' });
    await dialog.getByRole('button', { name: 'Hide' }).click();
    await page.keyboard.press('Escape');

    // Remove it: the proof is old again, so the page asks for a step-up (with the passkey), then removes it.
    await ageStepUp(user.id);
    await page.goto('/settings/account');
    await section.getByRole('button', { name: 'Remove Test laptop' }).click();
    await section
      .getByRole('alert')
      .filter({ hasText: /Confirm it is you/ })
      .waitFor();
    await section.getByRole('button', { name: 'Confirm with a passkey' }).click();
    await table.waitFor({ state: 'detached' });
    const removed = await suite.server.container.audit.list(cliActor('browser-test'), { action: 'passkey.remove', actorId: user.id, limit: 5 });
    expect(removed.map((e) => e.outcome)).toEqual(['success']);

    // Nothing secret in the console: no challenge, no credential id.
    const logged = consoleLines.join('\n');
    expect(logged).not.toContain(credentialId);
  });
});
