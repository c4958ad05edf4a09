import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseCsv } from 'csv-parse/sync';
import { buildApp } from '../src/app.js';
import { buildContainer, type Container } from '../src/container.js';
import { FINDING_INFO, type FindingCode } from '../src/domain/compliance/findings.js';
import { systemActor } from '../src/modules/authz/authz.js';
import { parsePeriod } from '../src/modules/reports/period.js';
import { createTestVault, owner as cliOwner, type TestVault } from './helpers/vault.js';
import { PASSWORD, sessionFrom, type Session } from './helpers/app.js';
import { ENGINE } from './helpers/engine.js';
import { SimMachine, TestAgent, injectTransport } from './agent/test-agent.js';

/**
 * The PDFs a client receives (issue 17, "reports people send"): a device named in Latin with
 * diacritics, Greek and Japanese prints as written (embedded Unicode fonts), cells wrap instead of
 * being cut (full time of day, ticket, the whole "what to do"), the MSP's branding is on them,
 * and a period (month, from/to) limits what they list, through the API and the CLI.
 */

const API = '/api/v1';
const DEVICE = 'Ünïcødé-Ωmega-日本';
const TICKET = 'T-4711';
const OLD_TICKET = 'T-0815';
/** A clock the test moves back to record an event of an earlier month. */
const clock = { offsetMs: 0, now: () => new Date(Date.now() + clock.offsetMs).toISOString() };

/** The text of a PDF in drawing order (-raw: a wrapped cell's lines stay together), spaces collapsed. */
function textOf(pdf: Buffer, dir: string, name: string): string {
  const file = path.join(dir, `${name}.pdf`);
  fs.writeFileSync(file, pdf);
  return execFileSync('pdftotext', ['-raw', '-enc', 'UTF-8', file, '-'], { encoding: 'utf8' }).replace(/\s+/g, ' ');
}

/** pdffonts' table: one row per font with its name and whether it is embedded. */
function fontsOf(dir: string, name: string): { name: string; embedded: string }[] {
  const out = execFileSync('pdffonts', [path.join(dir, `${name}.pdf`)], { encoding: 'utf8' });
  return out
    .split('\n')
    .slice(2)
    .filter((l) => l.trim())
    .map((l) => {
      const cols = l.trim().split(/\s+/);
      // name type [encoding words] emb sub uni object ID: emb is the 5th column from the end.
      return { name: cols[0]!, embedded: cols[cols.length - 5]! };
    });
}

describe(`client-facing PDF reports on ${ENGINE}`, () => {
  let vault: TestVault;
  let c: Container;
  let app: Awaited<ReturnType<typeof buildApp>>;
  let client: { id: string; name: string };
  let tmp: string;
  const sessions = {} as Record<string, Session>;
  let agent: TestAgent;
  /** When the reveal of the device's key was recorded (ISO). */
  let revealedAt: string;
  let oldAt: string;
  let finding: FindingCode;

  const get = (url: string, as = 'owner') => app.inject({ method: 'GET', url, headers: sessions[as]!.headers });
  const send = (method: 'POST' | 'PATCH', url: string, payload: Record<string, unknown>, as = 'owner') =>
    app.inject({ method, url, headers: sessions[as]!.headers, payload });
  const month = (iso: string) => iso.slice(0, 7);

  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kw-report-pdf-'));
    vault = await createTestVault();
    c = await buildContainer(vault.config, { clock });
    app = await buildApp(c, { logger: false });
    client = await c.clients.create(cliOwner, { name: 'Contoso Dental' });
    for (const [role, key] of [
      ['owner', 'owner'],
      ['auditor', 'auditor'],
    ] as const) {
      const email = `${key}@example.test`;
      await c.identity.createUser(systemActor('test'), { email, password: PASSWORD, role, clients: role === 'owner' ? 'all' : [client.id] });
      sessions[key] = sessionFrom(await app.inject({ method: 'POST', url: `${API}/auth/login`, payload: { email, password: PASSWORD } }));
    }
    const logo = fs.readFileSync(path.resolve(import.meta.dirname, '../docs/logo-sample.png'));
    expect((await send('PATCH', `${API}/settings/branding`, { mspName: 'Northwind IT Services', logoPngBase64: logo.toString('base64') })).statusCode).toBe(
      200,
    );

    // A reveal request of an earlier month (40 days ago): outside the current month's report.
    clock.offsetMs = -40 * 86_400_000;
    await c.audit.recordNow(cliOwner, {
      action: 'key.reveal',
      outcome: 'not_found',
      clientId: client.id,
      reasonCode: 'lost-pin',
      ticket: OLD_TICKET,
      details: { query: '00000000' },
    });
    clock.offsetMs = 0;

    // The device escrows its key through the agent; then its key is revealed with a ticket.
    const tok = await send('POST', `${API}/agent/enrollment-tokens`, { clientId: client.id, maxUses: 2 });
    agent = new TestAgent(injectTransport(app), new SimMachine(DEVICE));
    expect((await agent.enroll(tok.json().token)).status).toBe(200);
    await agent.run();
    const key = agent.machine.recoveryPasswords('C:')[0]!;
    const rv = await send('POST', `${API}/keys/${key.id.replace(/[{}]/g, '')}/reveal`, { reason: 'lost-pin', ticket: TICKET });
    expect(rv.statusCode).toBe(200);
    // Then the drive is decrypted: a finding with a "what to do" text.
    Object.assign(agent.machine.volume('C:'), { status: 'FullyDecrypted', protection: 'Off', method: 'None', percentage: 0 });
    await agent.run();
    const status = await c.compliance.deviceStatus(cliOwner, agent.deviceId!);
    expect(status.status).toBe('non-compliant');
    finding = status.findings[0]!.code as FindingCode;

    const events = await c.audit.list(cliOwner, { action: 'key.reveal', limit: 10 });
    revealedAt = events.find((e) => e.ticket === TICKET)!.occurredAt;
    oldAt = events.find((e) => e.ticket === OLD_TICKET)!.occurredAt;
  });
  afterAll(async () => {
    await app?.close();
    await c?.close();
    await vault?.close();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('recovery audit PDF: the device name as written, the full time of day, the ticket; fonts embedded', async () => {
    const r = await get(`${API}/reports/recovery-audit?format=pdf&clientId=${client.id}`, 'auditor');
    expect(r.statusCode).toBe(200);
    expect(r.headers['content-type']).toBe('application/pdf');
    const text = textOf(r.rawPayload, tmp, 'audit');
    expect(text).toContain(DEVICE);
    expect(text).not.toMatch(/\?mega|Ω\?|\?\?/);
    // Date and time of day to the second (the old report cut it to "2026-11-30 0…").
    expect(text).toContain(`${revealedAt.slice(0, 10)} ${revealedAt.slice(11, 19)}`);
    expect(text).toContain(TICKET);
    expect(text).toContain('Northwind IT Services');
    expect(text).toContain('period: all time');
    // Landscape: wider than tall.
    const info = execFileSync('pdfinfo', [path.join(tmp, 'audit.pdf')], { encoding: 'utf8' });
    const [, w, h] = /Page size:\s+([\d.]+) x ([\d.]+)/.exec(info)!;
    expect(Number(w)).toBeGreaterThan(Number(h));
    const fonts = fontsOf(tmp, 'audit');
    expect(fonts.length).toBeGreaterThan(1);
    for (const f of fonts) expect(f.embedded, f.name).toBe('yes');
    // Latin/Greek from Noto Sans, the Japanese characters from Noto Sans JP.
    expect(fonts.some((f) => /NotoSans-|NotoSans$/.test(f.name.replace(/^[A-Z]{6}\+/, '')))).toBe(true);
    expect(fonts.some((f) => /NotoSansJP/.test(f.name))).toBe(true);
  });

  it('compliance PDF: the device name, its finding and the whole "what to do" text; fonts embedded', async () => {
    const r = await get(`${API}/reports/compliance-summary?format=pdf&clientId=${client.id}`);
    expect(r.statusCode).toBe(200);
    const text = textOf(r.rawPayload, tmp, 'compliance');
    expect(text).toContain(DEVICE);
    expect(text).toContain(FINDING_INFO[finding].title);
    expect(text).toContain(FINDING_INFO[finding].fix.replace(/\s+/g, ' '));
    expect(text).toContain('Northwind IT Services');
    for (const f of fontsOf(tmp, 'compliance')) expect(f.embedded, f.name).toBe('yes');
    expect(fontsOf(tmp, 'compliance').some((f) => /NotoSansJP/.test(f.name))).toBe(true);
  });

  it('a month or a from/to range limits the requests listed (API)', async () => {
    const tickets = async (query: string) =>
      (parseCsv((await get(`${API}/reports/recovery-audit?clientId=${client.id}${query}`)).body, { columns: true }) as Record<string, string>[]).map(
        (row) => row.ticket,
      );
    expect(await tickets('')).toEqual(expect.arrayContaining([TICKET, OLD_TICKET]));
    expect(await tickets(`&month=${month(revealedAt)}`)).toEqual([TICKET]);
    expect(await tickets(`&month=${month(oldAt)}`)).toEqual([OLD_TICKET]);
    expect(await tickets(`&from=${oldAt.slice(0, 10)}&to=${oldAt.slice(0, 10)}`)).toEqual([OLD_TICKET]);
    expect(await tickets(`&from=${revealedAt.slice(0, 10)}`)).toEqual([TICKET]);
    expect(await tickets(`&to=${oldAt.slice(0, 10)}`)).toEqual([OLD_TICKET]);
    // The PDF too, and its file name carries the period.
    const r = await get(`${API}/reports/recovery-audit?format=pdf&clientId=${client.id}&month=${month(oldAt)}`);
    expect(r.headers['content-disposition']).toContain(`${month(oldAt)}-01_`);
    const text = textOf(r.rawPayload, tmp, 'audit-old');
    expect(text).toContain(OLD_TICKET);
    expect(text).not.toContain(TICKET);
    expect(text).not.toContain(DEVICE);
    // The compliance trend covers the period's days only: none in the earlier month (no evaluation then).
    const trend = async (query: string) =>
      (parseCsv((await get(`${API}/reports/compliance-summary?clientId=${client.id}${query}`)).body, { columns: true }) as Record<string, string>[])
        .filter((row) => row.section === 'trend')
        .map((row) => row.date!);
    const days = await trend(`&month=${month(revealedAt)}`);
    expect(days.length).toBeGreaterThan(0);
    for (const d of days) expect(d.slice(0, 7)).toBe(month(revealedAt));
    expect(await trend(`&month=${month(oldAt)}`)).toEqual([]);
    // The export is audited with its period.
    const exports = await c.audit.list(cliOwner, { action: 'report.export', limit: 1 });
    expect(exports[0]!.details).toMatchObject({ from: `${month(oldAt)}-01T00:00:00.000Z` });
  });

  it('refuses a bad period in product words (API)', async () => {
    for (const [query, message] of [
      ['month=2026-13', /"2026-13" is not a month: give month as YYYY-MM/],
      ['month=November', /is not a month/],
      ['from=2026-02-30', /"2026-02-30" is not a date: give from as YYYY-MM-DD/],
      ['to=30.11.2026', /give to as YYYY-MM-DD/],
      ['month=2026-11&from=2026-11-01', /either month or from\/to, not both/],
      ['from=2026-11-30&to=2026-11-01', /ends \(to 2026-11-01\) before it starts/],
    ] as const) {
      const r = await get(`${API}/reports/recovery-audit?clientId=${client.id}&${query}`);
      expect(r.statusCode, query).toBe(400);
      expect(r.json().message ?? r.body, query).toMatch(message);
    }
  });

  it('the period is documented in the OpenAPI description', async () => {
    const spec = (await app.inject({ method: 'GET', url: '/api/openapi.json' })).json();
    const params = spec.paths['/api/v1/reports/{report}'].get.parameters.map((p: { name: string }) => p.name);
    expect(params).toEqual(expect.arrayContaining(['month', 'from', 'to']));
  });

  it('CLI: --month and --from/--to, checked with the option names', async () => {
    const pdf = path.join(tmp, 'cli-audit.pdf');
    let r = await vault.cli(['report', 'recovery-audit', '--client', 'Contoso Dental', '--format', 'pdf', '--month', month(revealedAt), '--out', pdf]);
    expect(r.code, r.stderr).toBe(0);
    const text = textOf(fs.readFileSync(pdf), tmp, 'cli-audit');
    expect(text).toContain(TICKET);
    expect(text).not.toContain(OLD_TICKET);
    r = await vault.cli(['report', 'recovery-audit', '--from', oldAt.slice(0, 10), '--to', oldAt.slice(0, 10), '--out', '-']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(OLD_TICKET);
    expect(r.stdout).not.toContain(TICKET);
    r = await vault.cli(['report', 'compliance', '--month', '2026-13', '--out', path.join(tmp, 'x.csv')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('give --month as YYYY-MM');
    r = await vault.cli(['report', 'recovery-audit', '--month', '2026-11', '--to', '2026-11-30', '--out', path.join(tmp, 'y.csv')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('either --month or --from/--to');
    expect(fs.existsSync(path.join(tmp, 'x.csv'))).toBe(false);
  });

  it('parsePeriod: a month is its calendar days in UTC; from/to days are both included', () => {
    expect(parsePeriod({ month: '2026-11' })).toEqual({ from: '2026-11-01T00:00:00.000Z', to: '2026-12-01T00:00:00.000Z' });
    expect(parsePeriod({ month: '2026-12' })).toEqual({ from: '2026-12-01T00:00:00.000Z', to: '2027-01-01T00:00:00.000Z' });
    expect(parsePeriod({ from: '2026-11-05', to: '2026-11-05' })).toEqual({ from: '2026-11-05T00:00:00.000Z', to: '2026-11-06T00:00:00.000Z' });
    expect(parsePeriod({})).toBeNull();
  });
});
