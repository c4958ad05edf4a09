/// <reference lib="dom" />
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { parse as parseCsv } from 'csv-parse/sync';
import { cliActor } from '../../src/modules/authz/authz.js';
import { startSmtp, type SmtpSink } from '../helpers/notify.js';
import { chromiumSuite, DESKTOP, PHONE, screenshot, seriousA11yViolations, type ContextOptions } from './harness.js';

/**
 * The Reports screen (issue 17): every report the server offers, for a client and a period,
 * downloaded as a person would and read byte for byte; a scheduled report e-mail created, sent now
 * through a real SMTP server (smtp-server on 127.0.0.1), paused and deleted; no edit controls for
 * a read-only role; no screen for helpdesk.
 */
const OWNER = cliActor('browser-test');

describe('reports screen (Chromium)', () => {
  let smtp: SmtpSink;

  // Registered before the console's hooks: started before it, closed after it.
  beforeAll(async () => {
    smtp = await startSmtp({ user: 'kw', pass: 'unused' });
  });
  afterAll(async () => {
    await smtp?.close();
  });
  // The SMTP server listens on this machine: let the egress policy reach it.
  const suite = chromiumSuite({ env: { KEYWARDEN_EGRESS_ALLOW: '127.0.0.1,::1,localhost' } });

  beforeAll(async () => {
    await suite.server.container.notifications.createChannel(OWNER, {
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

  const as = async (role: string, opts: ContextOptions = {}): Promise<Page> => (await suite.pageAs(role, opts)).page;
  const axe = async (p: Page) => {
    await p.waitForLoadState('networkidle');
    expect(await seriousA11yViolations(p)).toEqual([]);
  };
  const download = async (p: Page, button: string) => {
    const [dl] = await Promise.all([p.waitForEvent('download'), p.getByRole('button', { name: button }).click()]);
    return { name: dl.suggestedFilename(), bytes: fs.readFileSync((await dl.path())!) };
  };

  it('downloads reports for a client and a period: the CSV rows and the PDF are what the server made', async () => {
    const p = await as('owner');
    await p.getByRole('navigation').getByRole('link', { name: 'Reports' }).click();
    for (const title of ['BitLocker compliance summary', 'Devices and compliance findings', 'Recovery key escrow coverage', 'Recovery audit'])
      await p.getByRole('heading', { name: title }).waitFor();
    await axe(p);
    await screenshot(p, 'reports-desktop-light');

    // One client, a given month: the devices CSV lists that client's devices only.
    const client = suite.server.demo.clients[0]!;
    await p.getByLabel('Client').selectOption({ label: client.name });
    await p.getByLabel('Period').selectOption('month');
    const month = new Date().toISOString().slice(0, 7);
    await p.getByLabel('Month').fill(month);
    const devices = await download(p, 'Download Devices and compliance findings as CSV');
    expect(devices.name).toMatch(new RegExp(`^keywarden-devices-.+-${month}-01_${month}-\\d\\d\\.csv$`));
    const rows = parseCsv(devices.bytes.toString('utf8'), { columns: true, bom: true }) as Record<string, string>[];
    expect(Object.keys(rows[0]!)).toEqual(expect.arrayContaining(['client', 'device', 'status', 'finding_codes']));
    expect(new Set(rows.map((r) => r.client))).toEqual(new Set([client.name]));
    const inService = await suite.server.container.compliance.listStatuses(OWNER, { clientId: client.id, limit: 1000 });
    expect(rows.map((r) => r.device).sort()).toEqual(inService.map((s) => s.device.name).sort());

    // All clients, between two dates: every reveal listed falls in the period.
    await p.getByLabel('Client').selectOption({ label: 'All your clients' });
    await p.getByLabel('Period').selectOption('range');
    const from = new Date(Date.now() - 90 * 86_400_000).toISOString().slice(0, 10);
    const to = new Date().toISOString().slice(0, 10);
    await p.getByLabel('First day').fill(from);
    await p.getByLabel('Last day').fill(to);
    const audit = await download(p, 'Download Recovery audit as CSV');
    expect(audit.name).toBe(`keywarden-recovery-audit-all-clients-${from}_${to}.csv`);
    const reveals = parseCsv(audit.bytes.toString('utf8'), { columns: true, bom: true }) as Record<string, string>[];
    expect(reveals.length).toBeGreaterThan(0);
    for (const r of reveals) expect(r.when!.slice(0, 10) >= from && r.when!.slice(0, 10) <= to, r.when).toBe(true);
    expect(audit.bytes.toString('utf8')).not.toMatch(/\d{6}-\d{6}-\d{6}-\d{6}-\d{6}-\d{6}-\d{6}-\d{6}/);

    // The PDF is a PDF, and the export is in the audit log with its period.
    const pdf = await download(p, 'Download BitLocker compliance summary as PDF');
    expect(pdf.name).toBe(`keywarden-compliance-summary-all-clients-${from}_${to}.pdf`);
    expect(pdf.bytes.subarray(0, 5).toString('latin1')).toBe('%PDF-');
    expect(pdf.bytes.length).toBeGreaterThan(2000);
    const exports = await suite.server.container.audit.list(OWNER, { action: 'report.export', limit: 10 });
    expect(exports.map((e) => (e.details as { report?: string }).report)).toEqual(expect.arrayContaining(['devices', 'recovery-audit', 'compliance-summary']));

    // A period that ends before it starts is explained, and nothing is offered to download.
    await p.getByLabel('First day').fill(to);
    await p.getByLabel('Last day').fill(from);
    await p.getByText('The last day comes before the first day.').waitFor();
    expect(await p.getByRole('button', { name: 'Download Recovery audit as CSV' }).isDisabled()).toBe(true);
  });

  it('a scheduled e-mail: created, sent now through SMTP, paused and deleted (phone, dark)', async () => {
    const p = await as('owner', { viewport: PHONE, colorScheme: 'dark' });
    await p.goto('/reports');
    await p.getByRole('heading', { name: 'Scheduled report e-mails' }).waitFor();
    await p.getByText('No report is e-mailed on a schedule').waitFor();
    await axe(p);

    const client = suite.server.demo.clients[0]!;
    await p.getByRole('button', { name: 'Schedule an e-mail' }).click();
    const dialog = p.getByRole('dialog', { name: 'Schedule a report e-mail' });
    await dialog.getByLabel('Name').fill('Weekly summary for IT');
    await dialog.getByLabel('Client').selectOption({ label: client.name });
    await dialog.getByLabel('Send through').selectOption({ label: 'MSP mail (all clients)' });
    await dialog.getByLabel('Recipients').fill('it@client.example, cio@client.example');
    await dialog.getByRole('checkbox', { name: 'Recovery audit' }).uncheck();
    await dialog.getByRole('checkbox', { name: 'Devices and compliance findings' }).check();
    await dialog.getByLabel('How often').selectOption('weekly');
    await dialog.getByLabel('Day of the week').selectOption({ label: 'Monday' });
    await dialog.getByLabel('Time (UTC)').fill('06:30');
    await axe(p);
    await screenshot(p, 'reports-schedule-phone-dark');
    await dialog.getByRole('button', { name: 'Schedule' }).click();
    await dialog.waitFor({ state: 'detached' });

    const row = p.getByRole('region', { name: 'Scheduled report e-mails' }).getByRole('row').filter({ hasText: 'Weekly summary for IT' });
    await row.waitFor();
    expect(await row.innerText()).toContain('Every Monday at 06:30 UTC');
    const [stored] = await suite.server.container.notifications.listSchedules(OWNER, {});
    expect(stored).toMatchObject({
      clientId: client.id,
      name: 'Weekly summary for IT',
      recipients: ['it@client.example', 'cio@client.example'],
      reports: [
        { report: 'compliance-summary', format: 'pdf' },
        { report: 'devices', format: 'csv' },
      ],
      frequency: 'weekly',
      day: 1,
      hour: 6,
      minute: 30,
      enabled: true,
    });
    await axe(p);

    // Send now: queued by the page, sent by the delivery worker to the SMTP server.
    await row.getByRole('button', { name: 'Send "Weekly summary for IT" now' }).click();
    await row.getByTestId('last-delivery').waitFor();
    await suite.server.container.notifications.runOnce();
    const mail = smtp.mails.find((m) => m.to.includes('it@client.example'));
    expect(mail, 'the report e-mail reached the SMTP server').toBeDefined();
    expect(mail!.to.sort()).toEqual(['cio@client.example', 'it@client.example']);
    expect(mail!.attachments.map((a) => a.contentType).sort()).toEqual(['application/pdf', 'text/csv']);
    await row.getByText(/Last e-mail: sent/).waitFor({ timeout: 20_000 });
    await row.scrollIntoViewIfNeeded();
    await screenshot(p, 'reports-schedules-phone-dark');

    // Pause, then delete (with a confirmation).
    await row.getByRole('button', { name: 'Pause "Weekly summary for IT"' }).click();
    await row.getByText('Paused', { exact: true }).waitFor();
    expect((await suite.server.container.notifications.listSchedules(OWNER, {}))[0]!.enabled).toBe(false);
    await row.getByRole('button', { name: 'Delete "Weekly summary for IT"' }).click();
    await p.getByRole('dialog', { name: 'Delete the scheduled e-mail?' }).getByRole('button', { name: 'Delete' }).click();
    await p.getByText('No report is e-mailed on a schedule').waitFor();
    expect(await suite.server.container.notifications.listSchedules(OWNER, {})).toEqual([]);
  });

  it('an auditor reads reports and schedules without edit controls; a technician sees no recovery audit (desktop dark, phone light)', async () => {
    await suite.server.container.notifications.createSchedule(OWNER, {
      clientId: suite.server.demo.clients[0]!.id,
      name: 'Monthly for the auditor',
      channelId: (await suite.server.container.notifications.listChannels(OWNER, {}))[0]!.id,
      recipients: ['audit@client.example'],
    });
    for (const variant of [
      { viewport: DESKTOP, colorScheme: 'dark' as const },
      { viewport: PHONE, colorScheme: 'light' as const },
    ]) {
      const p = await as('auditor', variant);
      await p.goto('/reports');
      const row = p.getByRole('row').filter({ hasText: 'Monthly for the auditor' });
      await row.waitFor();
      expect(await row.innerText()).toContain('Monthly on day 1 at 07:00 UTC');
      await p.getByRole('heading', { name: 'Recovery audit' }).waitFor();
      for (const name of ['Schedule an e-mail', /Send ".*" now/, /Pause "/, /Delete "/])
        expect(await p.getByRole('button', { name }).count(), String(name)).toBe(0);
      await axe(p);
    }
    const t = await as('technician');
    await t.goto('/reports');
    await t.getByRole('heading', { name: 'Devices and compliance findings' }).waitFor();
    expect(await t.getByRole('heading', { name: 'Recovery audit' }).count()).toBe(0);
    expect(await t.getByRole('heading', { name: 'Scheduled report e-mails' }).count()).toBe(0);
  });

  it('helpdesk has no Reports link and is sent away from the address', async () => {
    const p = await as('helpdesk');
    expect(await p.getByRole('link', { name: 'Reports' }).count()).toBe(0);
    await p.goto('/reports');
    await p.waitForURL((u) => !u.pathname.startsWith('/reports'));
    expect(await p.getByRole('heading', { name: 'Reports' }).count()).toBe(0);
  });
});
