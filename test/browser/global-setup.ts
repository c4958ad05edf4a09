import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

/**
 * Builds the web console once per test run when dist/web is missing or older than its sources
 * (web/), so the browser tests always drive the code in the working tree. The tests then serve a
 * snapshot of it (test-output/web-<pid>, one per test run): a `npm run build` while the tests run
 * replaces dist/web's hashed assets, which would leave a running test server pointing at files
 * that are gone, and two test runs at once must not empty each other's copy.
 */
import type { TestProject } from 'vitest/node';

declare module 'vitest' {
  export interface ProvidedContext {
    webSnapshot: string;
  }
}

const ROOT = path.resolve(import.meta.dirname, '..', '..');
const WEB = path.join(ROOT, 'web');
const DIST = path.join(ROOT, 'dist', 'web');
const BUILT = path.join(DIST, 'index.html');
const SNAPSHOT_ROOT = path.join(ROOT, 'test-output');

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

/**
 * Returns a private, complete build of the console for this run's test server: a copy of dist/web
 * when that is current, else a build of the working tree straight into the private folder (dist/web
 * is left to `npm run build`, so test runs at once never write the same files).
 */
export function prepareConsole(): string {
  const snapshot = path.join(SNAPSHOT_ROOT, `web-${process.pid}`);
  fs.rmSync(snapshot, { recursive: true, force: true });
  if (!consoleIsStale()) fs.cpSync(DIST, snapshot, { recursive: true });
  if (!complete(snapshot)) buildConsole(snapshot);
  if (!complete(snapshot)) throw new Error(`the web console build in ${snapshot} is incomplete`);
  return snapshot;
}

export default function setup(project: TestProject): () => void {
  const snapshot = prepareConsole();
  project.provide('webSnapshot', snapshot);
  return () => fs.rmSync(snapshot, { recursive: true, force: true });
}
