/// <reference lib="dom" />
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import {
  chromiumSuite,
  DESKTOP,
  PHONE,
  ROOT,
  SCREENSHOTS,
  enrolTotp,
  screenshot,
  seriousA11yViolations,
  signIn,
  startConsole,
  userOf,
  type ConsoleServer,
} from './harness.js';

/**
 * Every screen of the console at 1280×800 and on a 390-px phone, light and dark: a screenshot of
 * each (test-output/screenshots/, not committed) and axe-core on each, which must find no
 * serious or critical accessibility violation.
 *
 * KEYWARDEN_UPDATE_README_SCREENSHOTS=1 also writes the few small PNGs the README shows
 * (docs/screenshots/); a normal test run never changes committed files.
 */
type Variant = { name: string; viewport: { width: number; height: number }; scheme: 'light' | 'dark' };
const VARIANTS: Variant[] = [
  { name: 'desktop-light', viewport: DESKTOP, scheme: 'light' },
  { name: 'desktop-dark', viewport: DESKTOP, scheme: 'dark' },
  { name: 'phone-light', viewport: PHONE, scheme: 'light' },
  { name: 'phone-dark', viewport: PHONE, scheme: 'dark' },
];

type Finding = { screen: string; variant: string; id: string; impact: string; help: string; nodes: string[] };

describe('every console screen: screenshots and axe-core', () => {
  const suite = chromiumSuite();
  /** A second console over an empty vault: the first-run setup screen. */
  let empty: ConsoleServer;
  let deviceId: string;
  const shots: string[] = [];

  beforeAll(async () => {
    empty = await startConsole({ seed: false });
    await enrolTotp(suite.server, userOf(suite.server, 'admin'), suite.server.demo.password);
    const d = await suite.server.container.database.db
      .selectFrom('devices')
      .select('id')
      .where('name', '=', suite.server.demo.samplePrefixes[0]!.device)
      .executeTakeFirstOrThrow();
    deviceId = d.id;
  });
  afterAll(async () => {
    await empty?.close();
  });

  /** Waits for a screen, checks it with axe, and saves its picture. */
  async function capture(p: Page, screen: string, variant: Variant, findings: Finding[]) {
    // Let transitions (modals, theme) settle; nothing time-dependent is asserted here.
    await p.waitForLoadState('networkidle');
    await p.evaluate(() => document.fonts.ready);
    await p.waitForTimeout(250);
    shots.push(await screenshot(p, `${screen}-${variant.name}`));
    for (const v of await seriousA11yViolations(p)) findings.push({ screen, variant: variant.name, ...v });
  }

  for (const variant of VARIANTS) {
    it(`${variant.name}: sign-in, setup, find, reveal, device, clients, home, findings, compliance, reports, import, notifications, agents, audit, settings`, async () => {
      const findings: Finding[] = [];
      const { context } = await suite.context({ viewport: variant.viewport, colorScheme: variant.scheme });
      try {
        const p = await context.newPage();
        const h1 = (name: string | RegExp) => p.getByRole('heading', { level: 1, name }).waitFor();

        // First run: no owner yet.
        const setupPage = await context.newPage();
        await setupPage.goto(`${empty.baseUrl}/`);
        await setupPage.getByLabel('Confirm password').waitFor();
        await setupPage.getByRole('button', { name: 'Create owner' }).waitFor();
        await capture(setupPage, 'setup', variant, findings);
        await setupPage.close();

        // Sign in, then the TOTP step (the admin has an authenticator).
        await p.goto('/login');
        await p.getByRole('button', { name: 'Sign in', exact: true }).waitFor();
        await capture(p, 'sign-in', variant, findings);
        await p.getByLabel('Email').fill(userOf(suite.server, 'admin'));
        await p.getByLabel('Password', { exact: true }).fill(suite.server.demo.password);
        await p.getByRole('button', { name: 'Sign in', exact: true }).click();
        await p.getByLabel('Authentication code').waitFor();
        await capture(p, 'sign-in-totp', variant, findings);
        await context.clearCookies();

        // The owner sees every screen.
        await signIn(p, suite.server, userOf(suite.server, 'owner'));
        const box = p.getByRole('searchbox', { name: 'Find a key' });
        await box.waitFor();
        await capture(p, 'find-key', variant, findings);
        const sample = suite.server.demo.samplePrefixes[0]!;
        await box.pressSequentially(sample.prefix);
        await p.getByRole('listitem').filter({ hasText: sample.device }).waitFor();
        await capture(p, 'find-key-result', variant, findings);
        await box.fill('');
        await box.pressSequentially(suite.server.demo.ambiguousPrefix);
        await p.getByText('Several keys match').waitFor();
        await capture(p, 'find-key-ambiguous', variant, findings);

        await box.fill('');
        await box.pressSequentially(sample.prefix);
        await p.getByRole('listitem').filter({ hasText: sample.device }).getByRole('button', { name: 'Reveal' }).click();
        const dialog = p.getByRole('dialog', { name: 'Reveal recovery key' });
        await dialog.getByLabel('Reason').waitFor();
        await capture(p, 'reveal-form', variant, findings);
        await dialog.getByLabel('Reason').selectOption({ label: 'TPM Reset' });
        await dialog.getByLabel('Ticket reference').fill(`T-SHOT-${variant.name}`);
        await dialog.getByRole('button', { name: 'Show password' }).click();
        await p.getByTestId('recovery-password').waitFor();
        await capture(p, 'reveal-password', variant, findings);
        await dialog.getByRole('button', { name: 'Hide' }).click();
        await p.keyboard.press('Escape');

        await p.goto(`/devices/${deviceId}`);
        await h1(sample.device);
        await capture(p, 'device', variant, findings);

        await p.goto('/clients');
        // A table on the desktop, cards on the phone: the first client's link is in both.
        await p.getByRole('link', { name: suite.server.demo.clients[0]!.name, exact: true }).first().waitFor();
        await capture(p, 'clients', variant, findings);
        const client = suite.server.demo.clients[0]!;
        await p.goto(`/clients/${client.id}`);
        await h1(client.name);
        await p
          .getByRole('button', { name: /Export CSV/ })
          .first()
          .waitFor();
        await capture(p, 'client', variant, findings);

        // The day's other screens (each has its own walk-through test; here: picture and axe).
        for (const [url, title, shot] of [
          ['/home', 'What needs attention', 'home'],
          ['/findings', 'Findings', 'findings'],
          ['/compliance', 'Compliance policy', 'compliance'],
          ['/reports', 'Reports', 'reports'],
          ['/imports', 'Import keys', 'imports'],
          ['/notifications', 'Notifications', 'notifications'],
          ['/agents', /Agents/, 'agents'],
        ] as const) {
          await p.goto(url);
          await h1(title);
          await capture(p, shot, variant, findings);
        }

        await p.goto('/audit');
        await h1('Audit log');
        await p
          .getByText(/Chain verified|Chain broken/)
          .first()
          .waitFor();
        await capture(p, 'audit', variant, findings);

        await p.goto('/settings');
        await h1('Settings');
        await capture(p, 'settings', variant, findings);
        for (const tab of ['users', 'tokens', 'enrollment', 'integrations', 'branding', 'security']) {
          await p.goto(`/settings/${tab}`);
          await h1('Settings');
          await capture(p, `settings-${tab}`, variant, findings);
        }

        if (variant.name === 'desktop-light') {
          // The theme switch works by hand too (not only following the system setting).
          const scheme = () => p.evaluate(() => document.documentElement.getAttribute('data-mantine-color-scheme'));
          expect(await scheme()).toBe('light');
          await p.getByRole('button', { name: 'Toggle color scheme' }).click();
          await p.waitForFunction(() => document.documentElement.getAttribute('data-mantine-color-scheme') === 'dark');
        }
      } finally {
        await context.close();
      }
      if (findings.length) fs.writeFileSync(path.join(SCREENSHOTS, `axe-${variant.name}.json`), JSON.stringify(findings, null, 2));
      expect(findings, JSON.stringify(findings, null, 2)).toEqual([]);
    });
  }

  afterAll(async () => {
    if (!process.env.KEYWARDEN_UPDATE_README_SCREENSHOTS) return;
    // The README's pictures: a few screens, scaled down to 60% in Chromium itself (no image tools).
    const out = path.join(ROOT, 'docs', 'screenshots');
    fs.mkdirSync(out, { recursive: true });
    const page = await suite.browser.newPage({ viewport: { width: 768, height: 480 }, deviceScaleFactor: 1 });
    try {
      for (const name of [
        'find-key-result-desktop-light',
        'reveal-password-desktop-dark',
        'client-desktop-light',
        'audit-desktop-dark',
        'home-desktop-light',
        'findings-desktop-dark',
        'compliance-desktop-light',
        'imports-desktop-dark',
        'device-phone-light',
      ]) {
        const src = path.join(SCREENSHOTS, `${name}.png`);
        if (!fs.existsSync(src)) continue;
        const png = fs.readFileSync(src);
        // 60 % of the picture's own size (read from the PNG header): 1280×800 → 768×480, a phone 390 wide → 234.
        const [w, h] = [Math.round(png.readUInt32BE(16) * 0.6), Math.round(png.readUInt32BE(20) * 0.6)];
        await page.setViewportSize({ width: w, height: h });
        await page.setContent(
          `<body style="margin:0"><img style="width:${w}px;height:${h}px;display:block" src="data:image/png;base64,${png.toString('base64')}"></body>`,
        );
        await page.locator('img').screenshot({ path: path.join(out, `${name.replace(/-desktop/, '')}.png`) });
      }
    } finally {
      await page.close();
    }
  });
});
