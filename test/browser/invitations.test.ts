/// <reference lib="dom" />
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliActor } from '../../src/modules/authz/authz.js';
import { totpCodeAt } from '../../src/crypto/totp.js';
import { requireMfa } from '../../src/modules/settings/settings.repo.js';
import { startSmtp, type SmtpSink } from '../helpers/notify.js';
import { chromiumSuite, freePort, enrolTotp, pageTraces, seriousA11yViolations, userOf } from './harness.js';

/**
 * Issue 19, item 3 in Chromium: in a new vault (a second factor required of everyone) the owner
 * invites a technician from the Users tab; the invitation mail is caught by a real SMTP server;
 * the invitee opens the link, chooses a password, sets up an authenticator app (the vault requires
 * it) and lands in the console with the invited role. An owner without a second factor sees the
 * reminder on every page until they dismiss it for the session.
 */
const OPERATOR = cliActor('browser-test');
const INVITEE = 'new.technician@msp.example';
const INVITEE_PASSWORD = 'my own long password 2026';

describe('invitations and a second factor by default in Chromium', () => {
  let smtp: SmtpSink;

  // Registered before the console's hooks: started before it, closed after it.
  beforeAll(async () => {
    smtp = await startSmtp({ user: 'u', pass: 'p' });
  });
  afterAll(async () => {
    await smtp?.close();
  });
  const suite = chromiumSuite(async () => {
    const port = await freePort();
    return {
      keepRequiredMfa: true,
      port,
      env: { KEYWARDEN_PUBLIC_URL: `http://127.0.0.1:${port}`, KEYWARDEN_EGRESS_ALLOW: '127.0.0.1,::1,localhost' },
    };
  });

  beforeAll(async () => {
    await suite.server.container.notifications.createChannel(OPERATOR, {
      clientId: null,
      name: 'MSP mail',
      kind: 'email',
      host: '127.0.0.1',
      port: smtp.port,
      starttls: 'ignore',
      from: 'keywarden@msp.example',
      to: ['soc@msp.example'],
    });
  });

  it('owner invites → mail → the link → own password → authenticator app (required) → the console with the invited role', async () => {
    expect(await requireMfa(suite.server.container.database.db)).toBe(true);
    const ownerEmail = userOf(suite.server, 'owner');
    const secret = await enrolTotp(suite.server, ownerEmail, suite.server.demo.password);
    const { page: p } = await suite.pageAs(ownerEmail, { totpSecret: secret });

    await p.goto('/settings/users');
    await p.getByRole('button', { name: 'Invite', exact: true }).click();
    const dialog = p.getByRole('dialog', { name: 'Invite someone' });
    await dialog.getByLabel('Email').fill(INVITEE);
    await dialog.getByLabel('Role').selectOption('technician');
    await dialog.getByLabel('Access: all clients, present and future').check();
    await dialog.getByRole('button', { name: 'Send invitation' }).click();
    const shown = await p.getByTestId('secret-once').innerText();
    expect(shown).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/#\/invitation\/kwi_[A-Za-z0-9_-]+$/);
    await expect.poll(() => smtp.mails.some((m) => m.to.includes(INVITEE))).toBe(true);
    const mail = smtp.mails.find((m) => m.to.includes(INVITEE))!;
    const link = /(http:\/\/127\.0\.0\.1:\d+\/#\/invitation\/kwi_[A-Za-z0-9_-]+)/.exec(mail.text)?.[1];
    expect(link).toBe(shown);
    const token = link!.split('/').pop()!;
    // The pending list shows the invitation, never its token.
    const pending = p.getByRole('region', { name: 'Pending invitations' });
    await pending.getByText(INVITEE).waitFor();
    expect(await pending.innerText()).not.toContain(token);
    expect(await seriousA11yViolations(p)).toEqual([]);

    // The invitee, in a browser of their own.
    const { context: ic, consoleLines } = await suite.context();
    const q = await ic.newPage();
    await q.goto(link!);
    await q.getByRole('heading', { name: 'Join Keywarden' }).waitFor();
    const offer = await q.getByTestId('invitation-offer').innerText();
    expect(offer).toContain(INVITEE);
    expect(offer).toContain('Technician');
    expect(offer).toContain('all clients');
    // The link leaves the address bar once read.
    expect(q.url()).not.toContain(token);
    expect(await seriousA11yViolations(q)).toEqual([]);
    await q.getByLabel('Your name').fill('Nia Technician');
    await q.getByLabel('Choose a password').fill(INVITEE_PASSWORD);
    await q.getByLabel('The same password again').fill(INVITEE_PASSWORD);
    await q.getByRole('button', { name: 'Accept and sign in' }).click();

    // The vault requires a second factor: enrolment first.
    await q.getByRole('heading', { name: 'Set up two-step verification' }).waitFor();
    await q.getByRole('button', { name: 'Set up an authenticator app' }).click();
    const setupKey = (await q.getByTestId('mfa-setup-key').innerText()).replace(/\s+/g, '');
    await q.getByLabel('Authentication code').fill(totpCodeAt(setupKey));
    await q.getByRole('button', { name: 'Confirm' }).click();
    await q.getByRole('button', { name: 'I have saved them' }).click();

    // In the console, as a technician.
    await q.getByRole('button', { name: 'Sign out' }).waitFor();
    await q.getByRole('banner').getByText('Technician', { exact: true }).waitFor();
    expect(await q.getByRole('navigation').getByRole('link', { name: 'Find a key' }).count()).toBe(1);
    expect(await q.getByRole('navigation').getByRole('link', { name: 'Audit log' }).count()).toBe(0);
    const traces = await pageTraces(q, ic);
    expect(traces).not.toContain(token);
    expect(consoleLines.join('\n')).not.toContain(token);

    // The link is used up: opened again, it says so.
    const { context: xc } = await suite.context();
    const x = await xc.newPage();
    await x.goto(link!);
    await x
      .getByRole('alert')
      .getByText(/This invitation link is not valid/)
      .waitFor();
  });

  it('an owner without a second factor is reminded on every page, until they dismiss it for the session', async () => {
    await suite.server.container.settings.update(OPERATOR, { requireMfa: false });
    const email = 'second.owner@msp.example';
    await suite.server.container.identity.createUser(OPERATOR, { email, password: suite.server.demo.password, role: 'owner', clients: 'all' });
    const { page: p } = await suite.pageAs(email);
    const nag = p.getByTestId('second-factor-nag');
    await nag.waitFor();
    await p.getByRole('navigation').getByRole('link', { name: 'Clients' }).click();
    await nag.waitFor();
    await p.getByRole('button', { name: 'Dismiss for this session' }).click();
    await expect.poll(() => nag.count()).toBe(0);
    await p.getByRole('navigation').getByRole('link', { name: 'Settings' }).click();
    await p.reload();
    await p.getByRole('button', { name: 'Sign out' }).waitFor();
    expect(await nag.count()).toBe(0);

    // A technician is not nagged; a new session of the owner is.
    const { page: t } = await suite.pageAs('technician');
    expect(await t.getByTestId('second-factor-nag').count()).toBe(0);
    const { page: p2 } = await suite.pageAs(email);
    await p2.getByTestId('second-factor-nag').waitFor();
  });
});
