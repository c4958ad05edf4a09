import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
import { loadConfig } from '../../src/config.js';
import { openDatabase } from '../../src/db/database.js';
import { buildContainer, type Container } from '../../src/container.js';
import { buildApp } from '../../src/app.js';
import { initVault } from '../../src/modules/vault/vault.service.js';
import { systemActor } from '../../src/modules/authz/authz.js';
import { systemClock, type Clock } from '../../src/lib/clock.js';
import type { NotificationOptions } from '../../src/modules/notifications/notifications.service.js';
import { createTestDatabase, type TestDatabase } from './engine.js';
import { allowPasswordOnly, owner, randomMasterKey } from './vault.js';
import { PASSWORD, sessionFrom, type Session } from './app.js';

/**
 * What the notification tests run against: a real SMTP server (smtp-server) and a real HTTP receiver
 * in this process on 127.0.0.1:0, and a vault whose clock the test moves (no real waiting for
 * gathering windows, backoff or digest hours).
 */

/** Real time plus an offset the test moves forward. */
export class TestClock implements Clock {
  offsetMs = 0;
  now(): string {
    return new Date(Date.now() + this.offsetMs).toISOString();
  }
  advance(ms: number): void {
    this.offsetMs += ms;
  }
}

// ------------------------------------------------------------------------------------ SMTP

export type Mail = {
  from: string;
  to: string[];
  raw: string;
  subject: string;
  text: string;
  attachments: { contentType: string; filename: string | null; size: number }[];
};

function decodeQp(s: string): string {
  const bytes: number[] = [];
  const flat = s.replace(/=\r?\n/g, '');
  for (let i = 0; i < flat.length; i++) {
    if (flat[i] === '=' && /^[0-9A-F]{2}$/i.test(flat.slice(i + 1, i + 3))) {
      bytes.push(parseInt(flat.slice(i + 1, i + 3), 16));
      i += 2;
    } else bytes.push(...Buffer.from(flat[i]!, 'utf8'));
  }
  return Buffer.from(bytes).toString('utf8');
}
const headerOf = (head: string, name: string) => new RegExp(`^${name}:\\s*(.*)$`, 'im').exec(head.replace(/\s*\r\n[ \t]+/g, ' '))?.[1]?.trim() ?? '';

/** A small MIME reader: enough for what nodemailer writes (multipart, quoted-printable, base64). */
export function parseMail(raw: string, envelope: { from: string; to: string[] }): Mail {
  const split = raw.indexOf('\r\n\r\n');
  const head = raw.slice(0, split);
  // Whitespace between two encoded words is not part of the text (RFC 2047).
  const subject = headerOf(head, 'Subject')
    .replace(/\?=\s+=\?/g, '?==?')
    .replace(/=\?UTF-8\?Q\?(.*?)\?=/gi, (_m, q: string) => decodeQp(q.replace(/_/g, ' ')));
  const parts = raw.slice(split + 4).split(/\r\n--[^\r\n]+\r\n/);
  let text = '';
  const attachments: Mail['attachments'] = [];
  for (const part of [raw, ...parts]) {
    const i = part.indexOf('\r\n\r\n');
    if (i < 0) continue;
    const h = part.slice(0, i);
    const body = part.slice(i + 4).replace(/\r\n--[^\r\n]+--\r\n?$/, '');
    const type = headerOf(h, 'Content-Type');
    const cte = headerOf(h, 'Content-Transfer-Encoding').toLowerCase();
    if (/multipart\//i.test(type)) continue;
    const disposition = headerOf(h, 'Content-Disposition');
    if (/attachment/i.test(disposition)) {
      attachments.push({
        contentType: type.split(';')[0]!,
        filename: /filename="?([^";]+)"?/.exec(disposition)?.[1] ?? null,
        size: cte === 'base64' ? Buffer.from(body.replace(/\s+/g, ''), 'base64').length : body.length,
      });
      continue;
    }
    if (!/^text\//i.test(type)) continue;
    text += `\n${cte === 'quoted-printable' ? decodeQp(body) : cte === 'base64' ? Buffer.from(body.replace(/\s+/g, ''), 'base64').toString('utf8') : body}`;
  }
  return { ...envelope, raw, subject, text, attachments };
}

export type SmtpSink = { port: number; mails: Mail[]; logins: string[]; close(): Promise<void> };

/** tls: implicit TLS ('secure'), STARTTLS offered ('starttls'), or neither (plain, the default). */
export async function startSmtp(auth: { user: string; pass: string }, tls?: { mode: 'secure' | 'starttls'; key: string; cert: string }): Promise<SmtpSink> {
  const mails: Mail[] = [];
  const logins: string[] = [];
  const server = new SMTPServer({
    logger: false,
    // No reverse DNS of 127.0.0.1 per connection: it would dominate every test delivery.
    disableReverseLookup: true,
    ...(tls ? { key: tls.key, cert: tls.cert, secure: tls.mode === 'secure' } : { disabledCommands: ['STARTTLS'] }),
    // Plain-SMTP channels under test speak to 127.0.0.1 without TLS (starttls: 'ignore'); AUTH is still checked.
    allowInsecureAuth: true,
    authOptional: true,
    onAuth(a, _session, cb) {
      logins.push(a.username ?? '');
      if (a.username === auth.user && a.password === auth.pass) cb(null, { user: a.username });
      else cb(new Error('Invalid username or password'));
    },
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        mails.push(
          parseMail(Buffer.concat(chunks).toString('utf8'), {
            from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
            to: session.envelope.rcptTo.map((r) => r.address),
          }),
        );
        cb();
      });
    },
  });
  // A client refusing the certificate drops the connection mid-handshake: expected in the TLS tests.
  server.on('error', () => {});
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.server.address() as AddressInfo).port;
  return { port, mails, logins, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

/** A throwaway self-signed certificate for 127.0.0.1 (openssl, as on any CI image). */
export function selfSignedCert(dir: string): { key: string; cert: string } {
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      `${dir}/smtp.key`,
      '-out',
      `${dir}/smtp.crt`,
      '-days',
      '2',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
    ],
    { stdio: 'ignore' },
  );
  return { key: fs.readFileSync(`${dir}/smtp.key`, 'utf8'), cert: fs.readFileSync(`${dir}/smtp.crt`, 'utf8') };
}

// ------------------------------------------------------------------------------------ HTTP receiver

export type Hit = { path: string; headers: http.IncomingHttpHeaders; body: string; json: any };
/** 'ok' answers 200; a number answers that status; 'hang' never answers (the sender must time out). */
export type ReceiverMode = 'ok' | 'hang' | number;

export async function startReceiver(): Promise<{ url: (path: string) => string; hits: Hit[]; mode: Map<string, ReceiverMode>; close(): Promise<void> }> {
  const hits: Hit[] = [];
  const mode = new Map<string, ReceiverMode>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      let json: unknown;
      try {
        json = JSON.parse(body);
      } catch {
        json = null;
      }
      const path = req.url ?? '/';
      hits.push({ path, headers: req.headers, body, json });
      const m = mode.get(path) ?? 'ok';
      if (m === 'hang') return; // never answers
      res.writeHead(m === 'ok' ? 200 : m, { 'content-type': 'text/plain' });
      res.end(m === 'ok' ? 'ok' : 'receiver is down');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: (path) => `http://127.0.0.1:${port}${path}`,
    hits,
    mode,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

// ------------------------------------------------------------------------------------ vault

export type NotifyVault = {
  tdb: TestDatabase;
  clock: TestClock;
  container: Container;
  app: Awaited<ReturnType<typeof buildApp>>;
  config: ReturnType<typeof loadConfig>;
  logs: string[];
  signInAs(role: 'owner' | 'admin' | 'auditor' | 'technician', clients: 'all' | string[]): Promise<Session>;
  /** A second Keywarden "process" on the same database (its own pool on PostgreSQL). */
  secondProcess(): Promise<Container>;
  close(): Promise<void>;
};

export async function createNotifyVault(options: Partial<NotificationOptions> = {}, extraEnv: NodeJS.ProcessEnv = {}): Promise<NotifyVault> {
  const tdb = await createTestDatabase();
  const env = {
    KEYWARDEN_DATA_DIR: `${tdb.dir}/data`,
    KEYWARDEN_DATABASE_URL: tdb.url,
    KEYWARDEN_MASTER_KEY: randomMasterKey(),
    // The SMTP server and HTTP receivers listen on this machine; a test of the egress policy's
    // refusals sets KEYWARDEN_EGRESS_ALLOW itself (e.g. to '').
    KEYWARDEN_EGRESS_ALLOW: '127.0.0.1,::1,localhost',
    ...extraEnv,
  };
  const config = loadConfig(env);
  const database = openDatabase(config.database);
  try {
    await initVault(config, database, owner, systemClock);
    // Password-only people, as in createTestVault (see allowPasswordOnly).
    await allowPasswordOnly(database);
  } finally {
    await database.close();
  }
  const clock = new TestClock();
  const container = await buildContainer(config, { clock, notifications: options });
  // Every log line the HTTP server writes, to prove no secret reaches one.
  const logs: string[] = [];
  const app = await buildApp(container, { logger: { level: 'trace', stream: { write: (line: string) => void logs.push(line) } } });
  const others: Container[] = [];
  let n = 0;
  return {
    tdb,
    clock,
    container,
    app,
    config,
    logs,
    async signInAs(role, clients) {
      const email = `notify-${role}-${++n}@example.test`;
      await container.identity.createUser(systemActor('test'), { email, password: PASSWORD, role, clients });
      const res = await app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { email, password: PASSWORD } });
      if (res.statusCode !== 200) throw new Error(`sign-in: ${res.statusCode} ${res.body}`);
      return sessionFrom(res);
    },
    async secondProcess() {
      // PostgreSQL: a pool of its own, as another server would have. SQLite: the same connection
      // (better-sqlite3 waits for a lock synchronously, so a second one in this process would block
      // the first); the claims are still tested, and BEGIN IMMEDIATE serialises the writers.
      if (tdb.target.engine === 'sqlite') return buildContainer(config, { clock, notifications: options, database: container.database });
      const c = await buildContainer(config, { clock, notifications: options });
      others.push(c);
      return c;
    },
    async close() {
      await app.close();
      for (const c of others) await c.close();
      await container.close();
      await tdb.drop();
    },
  };
}
