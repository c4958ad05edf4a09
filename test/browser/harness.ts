/// <reference lib="dom" />
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { loadConfig } from '../../src/config.js';
import { openDatabase } from '../../src/db/database.js';
import { buildContainer, type Container } from '../../src/container.js';
import { buildApp } from '../../src/app.js';
import { initVault } from '../../src/modules/vault/vault.service.js';
import { cliActor } from '../../src/modules/authz/authz.js';
import { createDemoClock, seedBulkKeys, seedDemo, type BulkResult, type DemoSummary } from '../../src/modules/demo/demo.seed.js';
import { totpCodeAt } from '../../src/crypto/totp.js';
import { createTestDatabase, type TestDatabase } from '../helpers/engine.js';
import { allowPasswordOnly, randomMasterKey } from '../helpers/vault.js';
import { afterAll, afterEach, beforeAll, inject } from 'vitest';

/**
 * The browser tests' world: a real server (buildApp on a loopback socket) over a fresh vault
 * filled by `keywarden demo`'s seeder, the built console from dist/web, and Debian's Chromium
 * driven by playwright-core.
 */

export const ROOT = path.resolve(import.meta.dirname, '..', '..');
export const SCREENSHOTS = path.join(ROOT, 'test-output', 'screenshots');

export type ConsoleServer = {
  baseUrl: string;
  container: Container;
  demo: DemoSummary;
  bulk: BulkResult | null;
  db: TestDatabase;
  close(): Promise<void>;
};

/** A loopback port nobody listens on now (for a server whose public URL must name its port before it starts). */
export async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (a && typeof a === 'object' ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}

export async function startConsole(
  opts: {
    bulkKeys?: number;
    env?: NodeJS.ProcessEnv;
    webDir?: string;
    seed?: boolean;
    /** Keep what a new vault starts with: a second factor required of everyone (else switched off, see allowPasswordOnly). */
    keepRequiredMfa?: boolean;
    /** Listen on this port (a test that needs KEYWARDEN_PUBLIC_URL before the server starts); default any free one. */
    port?: number;
  } = {},
): Promise<ConsoleServer> {
  const db = await createTestDatabase();
  const env = { KEYWARDEN_DATA_DIR: db.dir + '/data', KEYWARDEN_DATABASE_URL: db.url, KEYWARDEN_MASTER_KEY: randomMasterKey(), ...opts.env };
  const config = loadConfig(env);
  const clock = createDemoClock();
  const database = openDatabase(config.database);
  try {
    await initVault(config, database, cliActor('browser-test'), clock);
    // Password-only demo people, as in createTestVault (see allowPasswordOnly).
    if (!opts.keepRequiredMfa) await allowPasswordOnly(database);
  } finally {
    await database.close();
  }
  const container = await buildContainer(config, { clock });
  // seed: false leaves the vault empty (the first-run setup screen).
  const demo = opts.seed === false ? (null as unknown as DemoSummary) : await seedDemo(container, { seed: 7 });
  const bulk = opts.bulkKeys ? await seedBulkKeys(container, opts.bulkKeys) : null;
  const app = await buildApp(container, { logger: false, webDir: opts.webDir ?? inject('webSnapshot') });
  await app.listen({ host: '127.0.0.1', port: opts.port ?? 0 });
  const addr = app.server.address();
  if (!addr || typeof addr === 'string') throw new Error('no address');
  return {
    baseUrl: `http://127.0.0.1:${addr.port}`,
    container,
    demo,
    bulk,
    db,
    close: async () => {
      await app.close();
      await container.close();
      await db.drop();
    },
  };
}

/** Debian's chromium package (never a downloaded browser). */
export function chromiumPath(): string {
  for (const p of ['/usr/bin/chromium', '/usr/bin/chromium-browser']) if (fs.existsSync(p)) return p;
  return execFileSync('sh', ['-c', 'command -v chromium'], { encoding: 'utf8' }).trim();
}

/**
 * Headless Chromium with the flags from the project notes. Playwright gives every launch a
 * fresh temporary profile of its own (and refuses --user-data-dir with launch()), so no state
 * is shared between runs.
 */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: chromiumPath(),
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

export const DESKTOP = { width: 1280, height: 800 } as const;
export const PHONE = { width: 390, height: 844 } as const;

/** A context that records console messages, so tests can check that no secret was logged. */
export async function newContext(
  browser: Browser,
  baseUrl: string,
  opts: { viewport?: { width: number; height: number }; colorScheme?: 'light' | 'dark' } = {},
) {
  const context = await browser.newContext({
    baseURL: baseUrl,
    viewport: opts.viewport ?? DESKTOP,
    colorScheme: opts.colorScheme ?? 'light',
    deviceScaleFactor: 1,
  });
  // Fail fast: a missing element is a failure, not a reason to wait for the test timeout.
  context.setDefaultTimeout(15_000);
  const consoleLines: string[] = [];
  context.on('console', (m) => consoleLines.push(m.text()));
  context.on('weberror', (e) => consoleLines.push(String(e.error())));
  return { context, consoleLines };
}

/**
 * A TOTP code the server has not seen yet. The server accepts each time step once; tests sign in
 * several times a minute, so the user's last-used step is cleared first (test-only shortcut).
 */
export async function freshCode(c: Container, userEmail: string, secret: string): Promise<string> {
  await c.database.db.updateTable('users').set({ totp_last_step: null }).where('email', '=', userEmail).execute();
  return totpCodeAt(secret);
}

/** Turns on TOTP for a user through the API, as the user would in Settings; returns the secret. */
export async function enrolTotp(server: ConsoleServer, email: string, password: string): Promise<string> {
  const base = server.baseUrl;
  const login = await fetch(`${base}/api/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email, password }),
  });
  if (login.status !== 200) throw new Error(`sign-in for ${email} failed: ${login.status}`);
  const cookie = login.headers
    .getSetCookie()
    .map((c) => c.split(';')[0])
    .join('; ');
  const { csrfToken } = (await login.json()) as { csrfToken: string };
  const headers = { cookie, 'x-csrf-token': csrfToken, 'content-type': 'application/json' };
  const begin = await fetch(`${base}/api/v1/me/mfa`, { method: 'POST', headers, body: '{}' });
  if (begin.status !== 200) throw new Error(`MFA enrolment failed: ${begin.status} ${await begin.text()}`);
  const { secret } = (await begin.json()) as { secret: string };
  const confirm = await fetch(`${base}/api/v1/me/mfa/confirm`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ code: await freshCode(server.container, email, secret) }),
  });
  if (confirm.status !== 200) throw new Error(`MFA confirmation failed: ${confirm.status} ${await confirm.text()}`);
  await fetch(`${base}/api/v1/auth/logout`, { method: 'POST', headers, body: '{}' });
  return secret;
}

/** Signs in through the console's own form (and its TOTP step when the user has one). */
export async function signIn(page: Page, server: ConsoleServer, email: string, totpSecret?: string): Promise<void> {
  await page.goto('/login');
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password', { exact: true }).fill(server.demo.password);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  if (totpSecret) {
    const code = page.getByLabel('Authentication code');
    await code.waitFor();
    await code.fill(await freshCode(server.container, email, totpSecret));
    await page.getByRole('button', { name: 'Verify' }).click();
  }
  // The header's Sign out button is there on every screen size (the phone's navigation is folded away).
  await page.getByRole('button', { name: 'Sign out' }).waitFor();
}

export const userOf = (server: ConsoleServer, role: string) => server.demo.users.find((u) => u.role === role)!.email;

let axeSource: string | undefined;
/**
 * axe-core from node_modules, run on the current page: violations rated serious or critical.
 * The console's CSP (script-src 'self') rightly blocks an injected <script> (page.addScriptTag),
 * so axe is evaluated through the DevTools protocol instead, with the CSP left on.
 */
export async function seriousA11yViolations(page: Page): Promise<{ id: string; impact: string; help: string; nodes: string[] }[]> {
  axeSource ??= fs.readFileSync(path.join(ROOT, 'node_modules', 'axe-core', 'axe.min.js'), 'utf8');
  if (!(await page.evaluate(() => 'axe' in window))) await page.evaluate(axeSource);
  // Colours are judged as shown: a toast or dialog still fading in (a CSS transition) blends with
  // what is behind it and would be measured at a contrast it never has once shown. Finite animations
  // are waited for (a spinner's never ends and is not), at most 2 s.
  await page.evaluate(() =>
    Promise.race([
      Promise.all(
        document
          .getAnimations()
          .filter((a) => Number.isFinite(Number(a.effect?.getComputedTiming().endTime ?? Infinity)))
          .map((a) => a.finished.catch(() => undefined)),
      ),
      new Promise((resolve) => setTimeout(resolve, 2000)),
    ]),
  );
  const result = await page.evaluate(async () => {
    const axe = (
      window as unknown as {
        axe: {
          run(
            ctx: Document,
            opts: object,
          ): Promise<{ violations: { id: string; impact: string; help: string; nodes: { target: string[]; failureSummary?: string }[] }[] }>;
        };
      }
    ).axe;
    return axe.run(document, { resultTypes: ['violations'] });
  });
  return result.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.slice(0, 5).map((n) => `${n.target.join(' ')}${n.failureSummary ? `: ${n.failureSummary.split('\n').slice(1).join(' ').trim()}` : ''}`),
    }));
}

export async function screenshot(page: Page, name: string): Promise<string> {
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  const file = path.join(SCREENSHOTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: false });
  return file;
}

/** Everything the page keeps that a password must never reach: URL, title, both storages. */
export async function pageTraces(page: Page, context: BrowserContext): Promise<string> {
  const inPage = await page.evaluate(() => {
    const dump = (s: Storage) => Array.from({ length: s.length }, (_, i) => `${s.key(i)}=${s.getItem(s.key(i)!)}`).join('\n');
    return [location.href, document.title, dump(localStorage), dump(sessionStorage), history.length].join('\n');
  });
  const cookies = (await context.cookies()).map((c) => `${c.name}=${c.value}`).join('\n');
  return `${inPage}\n${cookies}`;
}

export async function screenshotFailure(testName: string, contexts: BrowserContext[]): Promise<void> {
  const dir = path.join(ROOT, 'test-output', 'failures');
  fs.mkdirSync(dir, { recursive: true });
  const slug = testName.replace(/[^a-z0-9]+/gi, '-').slice(0, 60);
  let i = 0;
  for (const c of contexts) for (const p of c.pages()) await p.screenshot({ path: path.join(dir, `${slug}-${++i}.png`), fullPage: true }).catch(() => {});
}

export type ConsoleOptions = NonNullable<Parameters<typeof startConsole>[0]>;
export type ContextOptions = NonNullable<Parameters<typeof newContext>[2]>;

export type ChromiumSuite = {
  /** The console under test (started in the suite's beforeAll). */
  readonly server: ConsoleServer;
  readonly browser: Browser;
  /** A new context on the console (or on `baseUrl`), closed after the test; a failed test leaves a picture of its pages. */
  context(opts?: ContextOptions & { baseUrl?: string }): Promise<{ context: BrowserContext; consoleLines: string[] }>;
  /** A new context and page, signed in through the console's form as a demo role ('owner', 'technician', …) or an email, with its TOTP step when a secret is given. */
  pageAs(who: string, opts?: ContextOptions & { totpSecret?: string }): Promise<{ page: Page; context: BrowserContext; consoleLines: string[] }>;
};

/**
 * The plumbing of a browser test file, called at the top of its describe: a beforeAll that starts
 * the console (startConsole with `consoleOpts`) and Chromium, an afterEach that pictures a failed
 * test's pages (test-output/failures/) and closes every context the test opened, and an afterAll
 * that closes Chromium and the server.
 *
 * vitest runs beforeAll hooks in the order they are registered and after-hooks in reverse: a file's
 * own beforeAll registered after this call finds the server started (and its afterAll runs while the
 * server is still up); one registered before it runs first and its afterAll last, for a simulator
 * the console's options must name. `consoleOpts` may be a function (called in the beforeAll) for
 * options known only then.
 */
export function chromiumSuite(consoleOpts: ConsoleOptions | (() => ConsoleOptions | Promise<ConsoleOptions>) = {}): ChromiumSuite {
  let server: ConsoleServer | undefined;
  let browser: Browser | undefined;
  const open: BrowserContext[] = [];

  beforeAll(async () => {
    server = await startConsole(typeof consoleOpts === 'function' ? await consoleOpts() : consoleOpts);
    browser = await launchChromium();
  });
  afterEach(async (ctx) => {
    if (ctx.task.result?.state === 'fail') await screenshotFailure(ctx.task.name, open);
    for (const c of open.splice(0)) await c.close().catch(() => {});
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  const started = <T>(what: string, value: T | undefined): T => {
    if (value === undefined) throw new Error(`chromiumSuite: the ${what} is not started yet (it starts in the suite's beforeAll)`);
    return value;
  };
  const suite: ChromiumSuite = {
    get server() {
      return started('console server', server);
    },
    get browser() {
      return started('browser', browser);
    },
    async context({ baseUrl, ...opts } = {}) {
      const made = await newContext(suite.browser, baseUrl ?? suite.server.baseUrl, opts);
      open.push(made.context);
      return made;
    },
    async pageAs(who, { totpSecret, ...opts } = {}) {
      const { context, consoleLines } = await suite.context(opts);
      const page = await context.newPage();
      await signIn(page, suite.server, who.includes('@') ? who : userOf(suite.server, who), totpSecret);
      return { page, context, consoleLines };
    },
  };
  return suite;
}
