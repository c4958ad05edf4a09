/// <reference lib="dom" />
/**
 * The helpdesk moment, timed in a real browser: from the keystroke that completes an 8-character
 * key-ID prefix to the matching key on screen, in the web console (dist/web) served by the real
 * server over a vault with the demo MSP plus N generated keys (default 100,000).
 *
 *   npx tsx bench/console-search.ts                         # SQLite, 100,000 keys, 24 prefixes
 *   npx tsx bench/console-search.ts --engine postgres --keys 100000 --prefixes 30
 *
 * The time is taken inside the page: performance.now() at the keydown of the 8th character, and
 * again in the first animation frame after the list shows exactly that key (MutationObserver).
 * It includes the console's debounce, the HTTP round trip, the server's search, JSON parsing and
 * React rendering. The API alone (same searches, from Node over the same socket) is printed too.
 *
 * PostgreSQL: KEYWARDEN_BENCH_PG_URL (default postgres://postgres@127.0.0.1:5432/postgres); a
 * throwaway database is created and dropped.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { loadConfig } from '../src/config.js';
import { openDatabase } from '../src/db/database.js';
import { buildContainer } from '../src/container.js';
import { buildApp } from '../src/app.js';
import { initVault } from '../src/modules/vault/vault.service.js';
import { cliActor } from '../src/modules/authz/authz.js';
import { createDemoClock, seedBulkKeys, seedDemo } from '../src/modules/demo/demo.seed.js';
import { prepareConsole } from '../test/browser/global-setup.js';
import { launchChromium } from '../test/browser/harness.js';
import { throwawayPostgres } from './lib.js';

const args = process.argv.slice(2);
const arg = (name: string, dflt: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? args[i + 1]! : dflt;
};
const engine = arg('engine', 'sqlite');
const keys = Number(arg('keys', '100000'));
const prefixCount = Math.max(20, Number(arg('prefixes', '24')));
const pgAdmin = process.env.KEYWARDEN_BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
};
const ms = (x: number) => `${x.toFixed(1)} ms`;

// dist/web, built when older than web/, served from a private copy.
const webDir = prepareConsole();

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keywarden-search-bench-'));
const env: NodeJS.ProcessEnv = {
  KEYWARDEN_DATA_DIR: path.join(dir, 'data'),
  KEYWARDEN_MASTER_KEY: randomBytes(32).toString('base64'),
  KEYWARDEN_LOG_LEVEL: 'warn',
};
let dropPg: (() => Promise<void>) | undefined;
if (engine === 'postgres') {
  const tmp = await throwawayPostgres(pgAdmin, `kw_search_bench_${process.pid}`);
  env.KEYWARDEN_DATABASE_URL = tmp.url;
  dropPg = tmp.drop;
}
const config = loadConfig(env);
const clock = createDemoClock();
const database = openDatabase(config.database);
await initVault(config, database, cliActor('bench'), clock);
await database.close();
const container = await buildContainer(config, { clock });

const t = Date.now();
const demo = await seedDemo(container, { seed: 7 });
const bulk = await seedBulkKeys(container, keys, {
  onProgress: (d, n) => d % 20000 === 0 && process.stdout.write(`\r  seeding ${d.toLocaleString('en')} / ${n.toLocaleString('en')} keys`),
});
const total = Number(
  (
    await container.database.db
      .selectFrom('recovery_keys')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .executeTakeFirstOrThrow()
  ).n,
);
console.log(
  `\n${engine}: ${total.toLocaleString('en')} keys in the vault (demo + ${keys.toLocaleString('en')} generated), seeded in ${((Date.now() - t) / 1000).toFixed(1)} s`,
);

const app = await buildApp(container, { logger: false, webDir });
await app.listen({ host: '127.0.0.1', port: 0 });
const { port } = app.server.address() as { port: number };
const base = `http://127.0.0.1:${port}`;

// Prefixes that each find exactly one key (a random 8-hex prefix among 100,000 keys almost always does).
const prefixes: string[] = [];
for (const id of bulk.sampleKeyIds) {
  if (prefixes.length >= prefixCount) break;
  const p = id.slice(0, 8);
  if ((await container.keys.searchByKeyId(cliActor('bench'), p)).length === 1) prefixes.push(p.toUpperCase());
}

const browser = await launchChromium();
const context = await browser.newContext({ baseURL: base, viewport: { width: 1280, height: 800 } });
const page = await context.newPage();
const tech = demo.users.find((u) => u.role === 'technician')!.email;
await page.goto('/login');
await page.getByLabel('Email').fill(tech);
await page.getByLabel('Password', { exact: true }).fill(demo.password);
await page.getByRole('button', { name: 'Sign in' }).click();
const box = page.getByRole('searchbox', { name: 'Find a key' });
await box.waitFor();

async function measure(prefix: string): Promise<number> {
  await box.fill('');
  await page.getByText('Ready when the phone rings').waitFor();
  await box.pressSequentially(prefix.slice(0, 7));
  // Arm the stopwatch in the page, then type the 8th character. (A string, not a function: tsx
  // would wrap named functions in a helper that does not exist inside the page.)
  await page.evaluate(`(() => {
    const want = ${JSON.stringify(prefix.toLowerCase())};
    const input = document.querySelector('input[type=search]');
    let t0 = 0;
    input.addEventListener('keydown', () => { t0 = performance.now(); }, { once: true, capture: true });
    window.__kwDone = new Promise((resolve) => {
      const obs = new MutationObserver(() => {
        const items = document.querySelector('ul[aria-label="Matching keys"]')?.querySelectorAll('li');
        if (t0 && items && items.length === 1 && items[0].textContent.toLowerCase().replace(/[{}-]/g, '').includes(want)) {
          obs.disconnect();
          requestAnimationFrame(() => resolve(performance.now() - t0));
        }
      });
      obs.observe(document.body, { subtree: true, childList: true, characterData: true });
    });
  })()`);
  await box.press(prefix[7]!);
  return page.evaluate('window.__kwDone') as Promise<number>;
}

// Warm-up (first query compiles statements, loads pages into the cache), not counted.
await measure(prefixes[0]!);
const browserTimes: number[] = [];
for (const p of prefixes) browserTimes.push(await measure(p));

// The API alone, with the same session, for the split.
const cookies = (await context.cookies()).map((c) => `${c.name}=${c.value}`).join('; ');
const apiTimes: number[] = [];
let bytes = 0;
for (const p of prefixes) {
  const s = performance.now();
  const r = await fetch(`${base}/api/v1/keys?q=${p}&limit=51`, { headers: { cookie: cookies } });
  bytes = (await r.text()).length;
  apiTimes.push(performance.now() - s);
}

const debounce = /useDebouncedValue\([^,]+,\s*(\d+)\)/.exec(
  fs.readFileSync(path.resolve(import.meta.dirname, '..', 'web', 'src', 'pages', 'FindKey.tsx'), 'utf8'),
)?.[1];
console.log(`\nTyping the 8th character of a key-ID prefix -> the one matching key on screen (${prefixes.length} prefixes, Chromium ${browser.version()}):`);
console.log(
  `  browser: p50 ${ms(pct(browserTimes, 50))}, p95 ${ms(pct(browserTimes, 95))}, min ${ms(Math.min(...browserTimes))}, max ${ms(Math.max(...browserTimes))}`,
);
console.log(`  API only (GET /api/v1/keys?q=<prefix>, ${bytes} bytes): p50 ${ms(pct(apiTimes, 50))}, p95 ${ms(pct(apiTimes, 95))}`);
console.log(`  (the console debounces names and serials by ${debounce ?? '?'} ms; a key ID of 8+ hex digits is searched on the keystroke)`);

await browser.close();
await app.close();
await container.close();
await dropPg?.();
fs.rmSync(dir, { recursive: true, force: true });
