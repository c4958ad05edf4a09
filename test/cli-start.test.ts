/**
 * CLI start-up (issue 18): `keywarden --help` and `keywarden lookup` load only what they use. The
 * web server (Fastify), the PDF renderer (pdfkit), LDAP (ldapts) and SMTP (nodemailer) load when a
 * command that needs them runs, never for help or a lookup.
 *
 * Each case starts the built bin (what `npx keywarden` runs) under tools/load-trace.mjs, which
 * records every module the process loaded: ES modules through a module.register resolve hook, and
 * CommonJS files from the require cache. bench/cli-start.ts measures the time this saves.
 */
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestVault, type TestVault } from './helpers/vault.js';
import { csvOf, randomKeyId, randomRecoveryPassword } from './helpers/keys.js';
import { ENGINE } from './helpers/engine.js';

const REPO = path.resolve(import.meta.dirname, '..');
const BIN = path.join(REPO, 'bin', 'keywarden.js');
const TRACER = pathToFileURL(path.join(REPO, 'tools', 'load-trace.mjs')).href;
const HEAVY = ['fastify', 'pdfkit', 'ldapts', 'nodemailer'];

/** Newest modification time of any file under dir (ms). */
function newest(dir: string): number {
  let t = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(full) : fs.statSync(full).mtimeMs);
  }
  return t;
}

/** The packages among the loaded files (node_modules/<name> or node_modules/@scope/<name>). */
const packagesIn = (files: string[]) =>
  new Set(files.map((f) => /[\\/]node_modules[\\/]((?:@[^\\/]+[\\/])?[^\\/]+)/.exec(f)?.[1]?.replace(/\\/g, '/')).filter((p): p is string => !!p));

describe(`which modules the CLI loads (${ENGINE})`, () => {
  let v: TestVault;
  let traceDir: string;
  let n = 0;
  const keyId = randomKeyId();
  const password = randomRecoveryPassword();

  /** Runs node with the tracer; returns its exit status, output and the loaded files. */
  const traced = (nodeArgs: string[], env: NodeJS.ProcessEnv = {}, cwd = v.db.dir) => {
    const out = path.join(traceDir, `trace-${++n}.txt`);
    const r = spawnSync(process.execPath, ['--import', TRACER, ...nodeArgs], {
      cwd,
      encoding: 'utf8',
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env, KEYWARDEN_LOAD_TRACE: out },
    });
    const files = fs.existsSync(out) ? fs.readFileSync(out, 'utf8').split('\n').filter(Boolean) : [];
    return { status: r.status, stdout: r.stdout, stderr: r.stderr, files, packages: packagesIn(files) };
  };
  const cli = (args: string[], env: NodeJS.ProcessEnv = {}) => traced([BIN, ...args], env);

  beforeAll(async () => {
    // The bin runs dist/: build it when it is missing or older than src/ (TypeScript only; the console is not needed).
    const main = path.join(REPO, 'dist', 'main.js');
    if (!fs.existsSync(main) || fs.statSync(main).mtimeMs < newest(path.join(REPO, 'src'))) {
      execFileSync(process.execPath, [path.join(REPO, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'], { cwd: REPO });
    }
    v = await createTestVault();
    traceDir = fs.mkdtempSync(path.join(v.db.dir, 'traces-'));
    expect((await v.cli(['client', 'add', 'Contoso'])).code).toBe(0);
    const file = path.join(v.db.dir, 'keys.csv');
    fs.writeFileSync(file, csvOf([{ device: 'FAKE-START-1', keyId, password }]));
    expect((await v.cli(['import', file, '--client', 'Contoso'])).code).toBe(0);
  });
  afterAll(() => v?.close());

  it('the tracer sees each of these packages when something does load them (ESM and CommonJS)', () => {
    // Run from the repository, where the packages resolve.
    const esm = traced(['--input-type=module', '-e', HEAVY.map((p) => `import '${p}';`).join(' ')], {}, REPO);
    expect(esm.status).toBe(0);
    for (const p of HEAVY) expect(esm.packages).toContain(p);
    // Packages that CommonJS code requires never pass the ESM hooks; the require cache has them.
    const cjs = traced(['-e', "require('pdfkit')"], {}, REPO);
    expect(cjs.status).toBe(0);
    expect(cjs.packages).toContain('fontkit');
  });

  for (const args of [['--help'], ['lookup', '--help'], ['serve', '--help'], ['report', 'compliance', '--help'], ['export', 'schedule', 'add', '--help']]) {
    it(`keywarden ${args.join(' ')} loads no server, PDF, LDAP or SMTP code, and not the vault`, () => {
      const r = cli(args);
      expect(r.status).toBe(0);
      expect(r.stdout).toContain('Usage: keywarden');
      expect(r.packages).toContain('commander');
      for (const p of [...HEAVY, 'kysely', 'better-sqlite3', 'pg', 'zod']) expect(r.packages, p).not.toContain(p);
      expect(r.files.filter((f) => f.endsWith(`${path.sep}container.js`))).toEqual([]);
    });
  }

  it('keywarden lookup opens the vault and reveals the key without loading server, PDF, LDAP or SMTP code', () => {
    const r = cli(['lookup', keyId.slice(0, 8), '--reason', 'bios-changed', '--ticket', 'T-1', '--json'], v.env);
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ keyId, recoveryPassword: password, client: 'Contoso' });
    // The container and the database did load (the trace is not simply empty)…
    expect(r.packages).toContain('kysely');
    expect(r.files.some((f) => f.endsWith(`${path.sep}container.js`))).toBe(true);
    // …and nothing a lookup does not use.
    for (const p of [...HEAVY, 'prom-client', 'age-encryption', '@clack/prompts']) expect(r.packages, p).not.toContain(p);
    if (ENGINE === 'sqlite') expect(r.packages).not.toContain('pg');
  });
});
