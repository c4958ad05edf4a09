import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

/**
 * Builds the web console once per test run when dist/web is missing or older than its sources
 * (web/), so the browser tests always drive the code in the working tree. The tests then serve a
 * snapshot of it (test-output/web): a `npm run build` while the tests run replaces dist/web's
 * hashed assets, which would leave a running test server pointing at files that are gone.
 */
const ROOT = path.resolve(import.meta.dirname, '..', '..');
const WEB = path.join(ROOT, 'web');
const DIST = path.join(ROOT, 'dist', 'web');
const BUILT = path.join(DIST, 'index.html');
export const WEB_SNAPSHOT = path.join(ROOT, 'test-output', 'web');

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === 'node_modules' || entry.name.startsWith('.')) continue;
    const p = path.join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(p) : fs.statSync(p).mtimeMs);
  }
  return newest;
}

export function consoleIsStale(): boolean {
  if (!fs.existsSync(BUILT)) return true;
  return newestMtime(WEB) > fs.statSync(BUILT).mtimeMs;
}

export function buildConsole(outDir?: string): void {
  const args = [path.join(ROOT, 'node_modules', 'vite', 'bin', 'vite.js'), 'build', '--config', 'web/vite.config.ts', '--logLevel', 'warn'];
  if (outDir) args.push('--outDir', outDir, '--emptyOutDir');
  execFileSync(process.execPath, args, { cwd: ROOT, stdio: 'inherit' });
}

/** Every /assets/ file index.html names exists next to it (not caught half-way through a build). */
function complete(dir: string): boolean {
  const index = path.join(dir, 'index.html');
  if (!fs.existsSync(index)) return false;
  const assets = [...fs.readFileSync(index, 'utf8').matchAll(/\/assets\/([^"']+)/g)].map((m) => m[1]!);
  return assets.length > 0 && assets.every((a) => fs.existsSync(path.join(dir, 'assets', a)));
}

/** Builds dist/web when needed and returns a private, complete copy for the test server. */
export function prepareConsole(): string {
  if (consoleIsStale()) buildConsole();
  fs.rmSync(WEB_SNAPSHOT, { recursive: true, force: true });
  fs.cpSync(DIST, WEB_SNAPSHOT, { recursive: true });
  if (!complete(WEB_SNAPSHOT)) buildConsole(WEB_SNAPSHOT);
  if (!complete(WEB_SNAPSHOT)) throw new Error(`the web console build in ${WEB_SNAPSHOT} is incomplete`);
  return WEB_SNAPSHOT;
}

export default function setup(): void {
  prepareConsole();
}
