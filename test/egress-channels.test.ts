import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENGINE } from './helpers/engine.js';
import { owner } from './helpers/vault.js';
import type { Session } from './helpers/app.js';
import { createNotifyVault, startSmtp, type NotifyVault, type SmtpSink } from './helpers/notify.js';

/**
 * The egress policy as a client-scoped admin meets it through the API: notification channels that
 * point at cloud metadata, private, ULA or loopback addresses are refused when saved (and the
 * attempt audited); SMTP "send test" cannot tell an open port from a closed one or read a banner;
 * webhooks do not follow redirects and what a receiver answers is never shown or stored; a domain
 * controller on a loopback address is refused unless listed in KEYWARDEN_EGRESS_ALLOW.
 */
const API = '/api/v1';
const hex = (n = 8) => randomBytes(n).toString('hex');
const MARKER = `INTERNAL-SECRET-${hex()}`;

type Listener = { port: number; hits: string[]; close(): Promise<void> };
/** A TCP/HTTP listener on 127.0.0.1 that records every request path. */
async function listen(handler: (req: http.IncomingMessage, res: http.ServerResponse) => void): Promise<Listener> {
  const hits: string[] = [];
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      hits.push(req.url ?? '/');
      handler(req, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    hits,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A port nothing listens on (just freed). */
async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

describe(`egress policy: notification channels, SMTP relays and domain controllers on ${ENGINE}`, () => {
  /** Nothing allowed beyond the default rules (KEYWARDEN_EGRESS_ALLOW empty). */
  let strict: NotifyVault;
  /** The lab on this machine listed in KEYWARDEN_EGRESS_ALLOW, as the notification tests run. */
  let lab: NotifyVault;
  let smtp: SmtpSink;
  const closers: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    strict = await createNotifyVault({ timeoutMs: 1500, gatherSeconds: 0 }, { KEYWARDEN_EGRESS_ALLOW: '' });
    lab = await createNotifyVault({ timeoutMs: 1500, gatherSeconds: 0 });
    smtp = await startSmtp({ user: 'kw', pass: 'lab-password' });
  });
  afterAll(async () => {
    for (const c of closers) await c();
    await smtp?.close();
    await strict?.close();
    await lab?.close();
  });

  const call = (v: NotifyVault, s: Session, method: 'GET' | 'POST' | 'PATCH', url: string, payload?: object) =>
    v.app.inject({ method, url, headers: s.headers, ...(payload ? { payload } : {}) });
  /** A client and an admin limited to it. */
  const scopedAdmin = async (v: NotifyVault) => {
    const client = await v.container.clients.create(owner, { name: `Contoso ${hex(3)}` });
    return { client, admin: await v.signInAs('admin', [client.id]) };
  };
  const smtpBody = (clientId: string, port: number) => ({
    clientId,
    name: `Relay ${hex(2)}`,
    kind: 'email',
    host: '127.0.0.1',
    port,
    starttls: 'ignore',
    from: 'keywarden@msp.example',
    to: ['it@client.example'],
  });

  it('a client-scoped admin cannot point a webhook, Teams or Slack channel at metadata, private, ULA or loopback addresses: 400, audited, nothing stored', async () => {
    const { client, admin } = await scopedAdmin(strict);
    const rx = await listen((_req, res) => res.end('ok'));
    closers.push(rx.close);
    const targets = [
      ['https://169.254.169.254/latest/meta-data/iam/security-credentials/', /link-local address/],
      ['https://metadata.google.internal/computeMetadata/v1/', /cloud metadata name/],
      ['https://10.0.0.5/admin', /private network address/],
      ['https://192.168.1.10:8443/hook', /private network address/],
      ['https://[fd00::1]/hook', /private network address/],
      ['https://[::ffff:127.0.0.1]/hook', /loopback address/],
      [`http://localhost:${rx.port}/internal/status`, /loopback address/],
      [`http://127.0.0.1:${rx.port}/internal/status`, /loopback address/],
    ] as const;
    let refused = 0;
    for (const [url, why] of targets) {
      for (const kind of ['webhook', 'teams', 'slack'] as const) {
        const r = await call(strict, admin, 'POST', `${API}/notifications/channels`, { clientId: client.id, name: `Hook ${hex(2)}`, kind, url });
        expect(r.statusCode, `${kind} ${url}`).toBe(400);
        const body = r.json();
        expect(body.error).toBe('bad_request');
        expect(body.message).toMatch(why);
        expect(body.message).toMatch(/KEYWARDEN_EGRESS_ALLOW/);
        expect(body.message).toContain(kind === 'webhook' ? 'the webhook' : kind === 'teams' ? 'Microsoft Teams' : 'Slack');
        // A Teams or Slack URL is a secret: the refusal names the host at most, never the path.
        expect(body.message).not.toContain(new URL(url).pathname.length > 1 ? new URL(url).pathname : '\u0000');
        refused++;
      }
    }
    expect(rx.hits).toEqual([]);
    const list = await call(strict, admin, 'GET', `${API}/notifications/channels?clientId=${client.id}`);
    expect(list.statusCode).toBe(200);
    expect(list.json()).toEqual([]);
    const denied = (await strict.container.audit.list(owner, { limit: 1000, clientId: client.id })).filter(
      (e) => e.action === 'notification.channel.create' && e.outcome === 'failure',
    );
    expect(denied).toHaveLength(refused);

    // Changing an existing channel to such a target is refused the same way, and the channel keeps its URL.
    const ok = await call(strict, admin, 'POST', `${API}/notifications/channels`, {
      clientId: client.id,
      name: 'PSA',
      kind: 'webhook',
      url: 'https://93.184.215.14/hook',
    });
    expect(ok.statusCode).toBe(201);
    const id = ok.json().channel.id as string;
    const moved = await call(strict, admin, 'PATCH', `${API}/notifications/channels/${id}`, { url: 'https://169.254.169.254/latest/meta-data' });
    expect(moved.statusCode).toBe(400);
    expect(moved.json().message).toMatch(/link-local address/);
    expect((await call(strict, admin, 'GET', `${API}/notifications/channels?clientId=${client.id}`)).json()[0].settings.url).toBe('https://93.184.215.14/hook');
    const updates = (await strict.container.audit.list(owner, { limit: 1000, clientId: client.id })).filter((e) => e.action === 'notification.channel.update');
    expect(updates.map((e) => e.outcome)).toEqual(['failure']);
  });

  it('an SMTP relay on loopback is refused unless listed; listed, the lab relay works', async () => {
    const s = await scopedAdmin(strict);
    const r = await call(strict, s.admin, 'POST', `${API}/notifications/channels`, smtpBody(s.client.id, smtp.port));
    expect(r.statusCode).toBe(400);
    expect(r.json().message).toMatch(/does not connect to 127\.0\.0\.1, a loopback address, for the SMTP relay/);
    for (const host of ['169.254.169.254', 'metadata.google.internal', '0.0.0.0']) {
      const m = await call(strict, s.admin, 'POST', `${API}/notifications/channels`, { ...smtpBody(s.client.id, 25), host });
      expect(m.statusCode, host).toBe(400);
    }
    expect((await call(strict, s.admin, 'GET', `${API}/notifications/channels?clientId=${s.client.id}`)).json()).toEqual([]);
    expect(smtp.mails).toHaveLength(0);

    const l = await scopedAdmin(lab);
    const made = await call(lab, l.admin, 'POST', `${API}/notifications/channels`, smtpBody(l.client.id, smtp.port));
    expect(made.statusCode).toBe(201);
    const test = await call(lab, l.admin, 'POST', `${API}/notifications/channels/${made.json().channel.id}/test`);
    expect(test.json()).toMatchObject({ ok: true, responseCode: '250', error: null });
    expect(smtp.mails).toHaveLength(1);
  });

  it('SMTP "send test" is no port scanner: an open port, a closed one and a banner all read "could not be reached", never what the remote said', async () => {
    const { client, admin } = await scopedAdmin(lab);
    // An HTTP service (says nothing first) and a service that greets with a banner of its own.
    const web = await listen((_req, res) => res.end(MARKER));
    closers.push(web.close);
    const banner = net.createServer((sock) => sock.end(`SSH-2.0-${MARKER}\r\n`));
    await new Promise<void>((resolve) => banner.listen(0, '127.0.0.1', resolve));
    closers.push(() => new Promise<void>((resolve) => banner.close(() => resolve())));
    const refusing = net.createServer((sock) => sock.end(`554 5.7.1 ${MARKER} go away\r\n`));
    await new Promise<void>((resolve) => refusing.listen(0, '127.0.0.1', resolve));
    closers.push(() => new Promise<void>((resolve) => refusing.close(() => resolve())));

    const ports = {
      open: web.port,
      closed: await closedPort(),
      banner: (banner.address() as AddressInfo).port,
    };
    const answers: Record<string, { ok: boolean; responseCode: string | null; summary: string; error: string }> = {};
    for (const [what, port] of Object.entries(ports)) {
      const ch = await call(lab, admin, 'POST', `${API}/notifications/channels`, smtpBody(client.id, port));
      expect(ch.statusCode).toBe(201);
      const t = await call(lab, admin, 'POST', `${API}/notifications/channels/${ch.json().channel.id}/test`);
      expect(t.statusCode).toBe(200);
      const { ok, responseCode, summary, error } = t.json();
      answers[what] = { ok, responseCode, summary, error };
      expect(t.body).not.toContain(MARKER);
      expect(t.body).not.toContain('SSH-2.0');
      const d = await call(lab, admin, 'GET', `${API}/notifications/deliveries/${t.json().deliveryId}`);
      expect(d.body).not.toContain(MARKER);
    }
    expect(answers.open).toEqual(answers.closed);
    expect(answers.banner).toEqual(answers.closed);
    expect(answers.closed).toEqual({
      ok: false,
      responseCode: null,
      summary: 'no SMTP answer',
      error: 'the SMTP relay could not be reached (no SMTP server answered at that address and port)',
    });
    // A relay that refuses at its greeting: the code, never its words.
    const ch = await call(lab, admin, 'POST', `${API}/notifications/channels`, smtpBody(client.id, (refusing.address() as AddressInfo).port));
    const t = await call(lab, admin, 'POST', `${API}/notifications/channels/${ch.json().channel.id}/test`);
    expect(t.json().ok).toBe(false);
    expect(t.body).not.toContain(MARKER);
    expect(t.body).not.toContain('go away');
  });

  it('a webhook that answers with a redirect fails and the redirect is not followed', async () => {
    const { client, admin } = await scopedAdmin(lab);
    const second = await listen((_req, res) => res.end('stolen'));
    closers.push(second.close);
    const first = await listen((_req, res) => {
      res.writeHead(302, { location: `http://127.0.0.1:${second.port}/followed-redirect` });
      res.end();
    });
    closers.push(first.close);
    const ch = await call(lab, admin, 'POST', `${API}/notifications/channels`, {
      clientId: client.id,
      name: 'Redirecting',
      kind: 'webhook',
      url: `http://127.0.0.1:${first.port}/hook`,
    });
    expect(ch.statusCode).toBe(201);
    const t = await call(lab, admin, 'POST', `${API}/notifications/channels/${ch.json().channel.id}/test`);
    expect(t.json()).toMatchObject({ ok: false, responseCode: '302', summary: 'HTTP 302' });
    expect(t.json().error).toMatch(/redirect .*does not follow/);
    expect(first.hits).toEqual(['/hook']);
    expect(second.hits).toEqual([]);
    const d = await call(lab, admin, 'GET', `${API}/notifications/deliveries/${t.json().deliveryId}`);
    expect(d.json()).toMatchObject({ status: 'failed' });
  });

  it('what a webhook receiver answers is in no API answer and nowhere in the database', async () => {
    const { client, admin } = await scopedAdmin(lab);
    const auditor = await lab.signInAs('auditor', [client.id]);
    const internal = await listen((req, res) => {
      res.writeHead(req.url === '/fails' ? 500 : 200, { 'content-type': 'text/plain' });
      res.end(`${MARKER}: aws_secret_access_key=AKIAEXAMPLE/abcdef`);
    });
    closers.push(internal.close);
    const ids: string[] = [];
    for (const [kind, path] of [
      ['webhook', '/internal/status'],
      ['slack', '/services/T0/B0/x'],
      ['webhook', '/fails'],
    ] as const) {
      const ch = await call(lab, admin, 'POST', `${API}/notifications/channels`, {
        clientId: client.id,
        name: `Int ${hex(2)}`,
        kind,
        url: `http://127.0.0.1:${internal.port}${path}`,
      });
      expect(ch.statusCode).toBe(201);
      const t = await call(lab, admin, 'POST', `${API}/notifications/channels/${ch.json().channel.id}/test`);
      expect(t.statusCode).toBe(200);
      expect(t.body).not.toContain(MARKER);
      expect(t.json().summary).toMatch(/^HTTP (200|500)$/);
      ids.push(t.json().deliveryId as string);
    }
    expect(internal.hits).toHaveLength(3);
    for (const s of [admin, auditor]) {
      const list = await call(lab, s, 'GET', `${API}/notifications/deliveries?clientId=${client.id}`);
      expect(list.statusCode).toBe(200);
      expect(list.body).not.toContain(MARKER);
      for (const id of ids) {
        const d = await call(lab, s, 'GET', `${API}/notifications/deliveries/${id}`);
        expect(d.statusCode).toBe(200);
        expect(d.body).not.toContain(MARKER);
      }
    }
    const audit = await call(lab, auditor, 'GET', `${API}/audit?limit=1000`);
    expect(audit.body).not.toContain(MARKER);

    // Every row of every table.
    const db = lab.container.database.db;
    const tables = await db.introspection.getTables();
    expect(tables.length).toBeGreaterThan(10);
    for (const t of tables) {
      const rows = await sql<Record<string, unknown>>`select * from ${sql.table(t.name)}`.execute(db);
      const text = JSON.stringify(rows.rows, (_k, val: unknown) =>
        Buffer.isBuffer(val) ? val.toString('latin1') : typeof val === 'bigint' ? String(val) : val,
      );
      expect(text.includes(MARKER), `table ${t.name}`).toBe(false);
    }
    // And the bytes of the SQLite files (free pages and the write-ahead log too).
    if (lab.tdb.target.engine === 'sqlite') {
      const file = lab.tdb.target.file;
      for (const f of [file, `${file}-wal`]) if (fs.existsSync(f)) expect(fs.readFileSync(f).includes(MARKER), f).toBe(false);
    }
  });

  it('a domain controller on a loopback address is refused unless listed, in product words', async () => {
    const ownerS = await strict.signInAs('owner', 'all');
    const client = await strict.container.clients.create(owner, { name: `Litware ${hex(2)}` });
    const base = {
      clientId: client.id,
      tlsMode: 'ldaps' as const,
      allowUntrusted: true,
      bindDn: 'CN=svc,DC=corp,DC=example',
      password: `ad-${hex()}`,
      baseDns: ['DC=corp,DC=example'],
    };
    // An address is refused when the connection is saved.
    await expect(strict.container.directory.createConnection(owner, { ...base, hosts: ['127.0.0.1'] })).rejects.toThrow(
      /does not connect to 127\.0\.0\.1, a loopback address, for the domain controller/,
    );
    await expect(strict.container.directory.createConnection(owner, { ...base, hosts: ['169.254.169.254'] })).rejects.toThrow(/link-local/);
    // A name is checked at every connection: "localhost" resolves to loopback.
    const dc = net.createServer((sock) => sock.destroy());
    await new Promise<void>((resolve) => dc.listen(0, '127.0.0.1', resolve));
    closers.push(() => new Promise<void>((resolve) => dc.close(() => resolve())));
    let connected = 0;
    dc.on('connection', () => connected++);
    const conn = await strict.container.directory.createConnection(owner, { ...base, hosts: ['localhost'], port: (dc.address() as AddressInfo).port });
    const t = await strict.app.inject({ method: 'POST', url: `${API}/directory/connections/${conn.id}/test`, headers: ownerS.headers });
    expect(t.statusCode).toBe(200);
    expect(t.json()).toMatchObject({ ok: false });
    expect(t.json().detail).toMatch(
      /^not_allowed: Keywarden does not connect to localhost \((127\.0\.0\.1|::1)\), a loopback address, for the domain controller\. An operator can allow it with KEYWARDEN_EGRESS_ALLOW\./,
    );
    const run = await strict.container.directory.runSync(conn.id);
    expect(run).toMatchObject({ status: 'failed' });
    expect(run.errorText).toMatch(/^not_allowed: /);
    expect(connected).toBe(0);

    // Listed (the lab vault allows loopback), the same DC is contacted.
    const c2 = await lab.container.clients.create(owner, { name: `Litware ${hex(2)}` });
    const conn2 = await lab.container.directory.createConnection(owner, {
      ...base,
      clientId: c2.id,
      hosts: ['127.0.0.1'],
      port: (dc.address() as AddressInfo).port,
    });
    const run2 = await lab.container.directory.runSync(conn2.id);
    expect(run2.errorText).toMatch(/^unreachable: /);
    expect(connected).toBe(1);
  });
});
