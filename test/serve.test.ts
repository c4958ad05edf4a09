import path from 'node:path';
import fs from 'node:fs';
import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestVault, type TestVault } from './helpers/vault.js';
import { csvOf, randomKeyId, randomRecoveryPassword } from './helpers/keys.js';
import { ENGINE } from './helpers/engine.js';

const REPO = path.resolve(import.meta.dirname, '..');
const PASSWORD = 'a long enough test password';

/** `keywarden serve` as a real process on a real socket (port 0 = any free port). */
function startServer(env: NodeJS.ProcessEnv): Promise<{ proc: ChildProcess; url: string; stderr: () => string }> {
  const proc = spawn(process.execPath, ['--import', 'tsx', path.join(REPO, 'src', 'main.ts'), 'serve', '--port', '0'], {
    cwd: REPO,
    env: { ...process.env, ...env, KEYWARDEN_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${err}`)), 15_000);
    proc.stderr!.on('data', (d) => {
      err += d;
      const m = /listening on (http:\/\/[^\s]+?) \(/.exec(err);
      if (m) {
        clearTimeout(timer);
        resolve({ proc, url: m[1]!, stderr: () => err + out });
      }
    });
    proc.on('exit', (code) => reject(new Error(`server exited with ${code}:\n${err}`)));
  });
}

describe(`keywarden serve on ${ENGINE}`, () => {
  let v: TestVault;
  const keyId = randomKeyId();
  const password = randomRecoveryPassword();
  beforeAll(async () => {
    v = await createTestVault();
    fs.writeFileSync(path.join(v.db.dir, 'pw.txt'), PASSWORD + '\n');
    expect((await v.cli(['user', 'add', 'owner@example.test', '--password-file', 'pw.txt'])).code).toBe(0);
    await v.cli(['client', 'add', 'Contoso']);
    fs.writeFileSync(path.join(v.db.dir, 'k.csv'), csvOf([{ device: 'FAKE-SRV-1', keyId, password }]));
    expect((await v.cli(['import', 'k.csv', '--client', 'Contoso'])).code).toBe(0);
    await v.container.close();
  });
  afterAll(async () => {
    await v.db.drop();
  });

  it('serves the API over a socket, logs JSON with request ids and no secrets, and stops cleanly on SIGTERM', { timeout: 30_000 }, async () => {
    const s = await startServer(v.env);
    try {
      expect((await fetch(`${s.url}/healthz`)).status).toBe(200);
      expect(await (await fetch(`${s.url}/readyz`)).json()).toEqual({ status: 'ready' });
      const login = await fetch(`${s.url}/api/v1/auth/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ email: 'owner@example.test', password: PASSWORD }),
      });
      expect(login.status).toBe(200);
      const { csrfToken } = (await login.json()) as { csrfToken: string };
      const cookie = login.headers.get('set-cookie')!.split(';')[0]!;
      expect(login.headers.get('set-cookie')).toMatch(/HttpOnly/i);
      expect(login.headers.get('set-cookie')).toMatch(/SameSite=Strict/i);

      // Start a reveal and SIGTERM at once: the request in flight still completes.
      const reveal = fetch(`${s.url}/api/v1/keys/${keyId.slice(0, 8)}/reveal`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', cookie, 'x-csrf-token': csrfToken },
        body: JSON.stringify({ reason: 'tpm-reset', ticket: 'T-9' }),
      });
      // Signal once the server has logged the request as received, so it is truly in flight.
      for (let i = 0; i < 2000 && !/"url":"\/api\/v1\/keys\/[0-9a-f]{8}\/reveal"/.test(s.stderr()); i++) await new Promise((r) => setTimeout(r, 1));
      s.proc.kill('SIGTERM');
      const res = await reveal;
      expect(res.status).toBe(200);
      expect(res.headers.get('cache-control')).toBe('no-store');
      const body = (await res.json()) as { key: { recoveryPassword: string } };
      expect(body.key.recoveryPassword).toBe(password);
      const code = await new Promise<number | null | string>((r) => {
        if (s.proc.exitCode !== null) return r(s.proc.exitCode);
        s.proc.on('exit', r);
        setTimeout(() => r(`still running 10 s after SIGTERM:\n${s.stderr().slice(-1500)}`), 10_000);
      });
      expect(code).toBe(0);

      const logs = s.stderr();
      const lines = logs.split('\n').filter((l) => l.startsWith('{'));
      expect(lines.length).toBeGreaterThan(3);
      for (const l of lines) expect(() => JSON.parse(l)).not.toThrow();
      expect(lines.some((l) => JSON.parse(l).reqId)).toBe(true);
      expect(logs).toMatch(/shutting down/);
      for (const secret of [password, PASSWORD, csrfToken, cookie.split('=')[1]!]) expect(logs).not.toContain(secret);
    } finally {
      if (s.proc.exitCode === null) {
        console.error(s.stderr().slice(-3000));
        s.proc.kill('SIGKILL');
      }
    }
  });
});
