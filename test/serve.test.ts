import path from 'node:path';
import fs from 'node:fs';
import net from 'node:net';
import { spawn, type ChildProcess } from 'node:child_process';
import { readableLogLine } from '../src/http/request-log.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestVault, type TestVault } from './helpers/vault.js';
import { csvOf, randomKeyId, randomRecoveryPassword } from './helpers/keys.js';
import { ENGINE } from './helpers/engine.js';

const REPO = path.resolve(import.meta.dirname, '..');
const PASSWORD = 'a long enough test password';

/** `keywarden serve` as a real process on a real socket (port 0 = any free port). */
function startServer(
  env: NodeJS.ProcessEnv,
  opts: { logLevel?: string; tty?: boolean } = {},
): Promise<{ proc: ChildProcess; url: string; stderr: () => string }> {
  const args = ['--import', 'tsx', path.join(REPO, 'src', 'main.ts'), 'serve', '--port', '0'];
  // tty: under script(1), so stdout and stderr are a real terminal, as in a foreground `npm start`.
  const proc = opts.tty
    ? spawn('script', ['-q', '-e', '-c', [process.execPath, ...args].map((a) => `'${a}'`).join(' '), '/dev/null'], {
        cwd: REPO,
        env: { ...process.env, ...env, KEYWARDEN_LOG_LEVEL: opts.logLevel ?? 'info' },
        stdio: ['pipe', 'pipe', 'pipe'],
        detached: true,
      })
    : spawn(process.execPath, args, {
        cwd: REPO,
        env: { ...process.env, ...env, KEYWARDEN_LOG_LEVEL: opts.logLevel ?? 'info' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
  if (opts.tty) proc.stdout!.on('data', (d) => proc.stderr!.emit('data', d));
  let err = '';
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      // A server that never said it listens is not left behind (under script(1): the whole group).
      try {
        if (opts.tty) process.kill(-proc.pid!, 'SIGKILL');
        else proc.kill('SIGKILL');
      } catch {
        // already gone
      }
      reject(new Error(`server did not start:\n${err}`));
    }, 40_000);
    proc.stderr!.on('data', (d) => {
      err += d;
      const m = /listening on (http:\/\/[^\s]+?) \(/.exec(err);
      if (m) {
        clearTimeout(timer);
        // Under a terminal, stdout comes in through the stderr listener too (one stream, as on screen).
        resolve({ proc, url: m[1]!, stderr: () => (opts.tty ? err : err + out) });
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

  it('serves the API over a socket, logs JSON with request ids and no secrets, and stops cleanly on SIGTERM', { timeout: 60_000 }, async () => {
    // debug: the arrival of a request is logged too, so the test knows the reveal is in flight.
    const s = await startServer(v.env, { logLevel: 'debug' });
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
      // One info line per request, when it is answered: method, route, status and time.
      const info = lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((o) => o.level === 30);
      expect(info.filter((o) => o.msg === 'incoming request')).toEqual([]);
      const done = info.filter((o) => o.msg === 'request completed');
      expect(done.filter((o) => (o.req as { url: string }).url === '/healthz')).toHaveLength(1);
      expect(done.find((o) => (o.req as { url: string }).url === '/api/v1/keys/:id/reveal')).toMatchObject({
        req: { method: 'POST' },
        res: { statusCode: 200 },
        responseTime: expect.any(Number),
      });
      expect(logs).toMatch(/shutting down/);
      for (const secret of [password, PASSWORD, csrfToken, cookie.split('=')[1]!]) expect(logs).not.toContain(secret);
    } finally {
      if (s.proc.exitCode === null) {
        console.error(s.stderr().slice(-3000));
        s.proc.kill('SIGKILL');
      }
    }
  });

  it('on a terminal, logs one readable line per request, reveals included, and no JSON', { timeout: 60_000 }, async () => {
    const s = await startServer(v.env, { tty: true });
    try {
      expect((await fetch(`${s.url}/healthz`)).status).toBe(200);
      const login = await fetch(`${s.url}/api/v1/auth/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ email: 'owner@example.test', password: PASSWORD }),
      });
      const { csrfToken } = (await login.json()) as { csrfToken: string };
      const cookie = login.headers.get('set-cookie')!.split(';')[0]!;
      const reveal = await fetch(`${s.url}/api/v1/keys/${keyId.slice(0, 8)}/reveal`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', cookie, 'x-csrf-token': csrfToken },
        body: JSON.stringify({ reason: 'tpm-reset', ticket: 'T-10' }),
      });
      expect(reveal.status).toBe(200);
      const time = '\\d\\d:\\d\\d:\\d\\d';
      const line = (what: string) => new RegExp(`^${time}  ${what}  \\d+(\\.\\d)? ms\\r?$`, 'm');
      for (let i = 0; i < 200 && !line('POST /api/v1/keys/:id/reveal  200').test(s.stderr()); i++) await new Promise((r) => setTimeout(r, 25));
      const logs = s.stderr();
      expect(logs).toMatch(line('GET /healthz  200'));
      expect(logs).toMatch(line('POST /api/v1/auth/login  200'));
      expect(logs).toMatch(line('POST /api/v1/keys/:id/reveal  200'));
      expect(logs.match(/GET \/healthz/g)).toHaveLength(1);
      expect(logs).not.toMatch(/^\{/m);
      for (const secret of [password, PASSWORD, csrfToken, cookie.split('=')[1]!]) expect(logs).not.toContain(secret);
    } finally {
      // The whole group: script(1) and the server under it.
      try {
        process.kill(-s.proc.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  });

  it('a busy port names the port and the fix, and exits 2', { timeout: 30_000 }, async () => {
    const busy = net.createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
    const port = (busy.address() as net.AddressInfo).port;
    try {
      const r = await v.cli(['serve', '--port', String(port)], { env: { KEYWARDEN_LOG_LEVEL: 'silent' } });
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`Port ${port} is in use by another program on 127.0.0.1: stop it, or start Keywarden on another port with --port ${port + 1}`);
      expect(r.stderr).toContain(`KEYWARDEN_PORT=${port + 1}`);
      expect(r.stderr).not.toMatch(/unexpected problem/);
    } finally {
      busy.close();
    }
  });
});

describe('readable log lines', () => {
  const at = new Date(2026, 11, 6, 9, 5, 7).getTime();
  it('shows a request as method, route, status and time, and other lines as message and fields', () => {
    expect(
      readableLogLine(
        JSON.stringify({
          level: 30,
          time: at,
          pid: 1,
          hostname: 'h',
          reqId: 'r',
          req: { method: 'GET', url: '/api/v1/keys?q', remoteAddress: '127.0.0.1' },
          res: { statusCode: 401 },
          responseTime: 3.2,
          msg: 'request completed',
        }),
      ),
    ).toBe('09:05:07  GET /api/v1/keys?q  401  3.2 ms\n');
    expect(
      readableLogLine(JSON.stringify({ level: 30, time: at, msg: 'task finished', task: 'graph-sync', status: 'ok: 3 new keys, 40 unchanged', ms: 812 })),
    ).toBe('09:05:07  task finished  task=graph-sync  status="ok: 3 new keys, 40 unchanged"  ms=812\n');
    expect(readableLogLine(JSON.stringify({ level: 50, time: at, msg: 'task failed', task: 'ad-sync', status: 'failed: no DC answered' }))).toMatch(
      /^09:05:07 {2}ERROR {2}task failed/,
    );
    expect(readableLogLine('not json')).toBe('not json\n');
  });
});
