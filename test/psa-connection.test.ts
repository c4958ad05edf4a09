/**
 * The PSA connection over HTTP, against the three PSA simulators (test/psa-sim/) through the egress
 * policy: an owner connects HaloPSA, ConnectWise PSA and Autotask (secrets write-only: never in an
 * answer, an audit detail or the database row in clear), a wrong secret is saved as "failing" with
 * words, the company list suggests the PSA company by name, a company belongs to one client, a
 * ticket policy needs a company, another PSA clears the company links, removing the PSA turns the
 * ticket policies off, people are linked to PSA members, and the changes need a fresh second factor
 * from someone with an authenticator app. Runs on SQLite and PostgreSQL.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { totpCodeAt } from '../src/crypto/totp.js';
import { createTestApp, type Session, type TestApp } from './helpers/app.js';
import { auditEvents, expectNoLeak, minutesAgo, updateSession } from './helpers/http.js';
import { owner } from './helpers/vault.js';
import { HaloPsaSimulator } from './psa-sim/halopsa.js';
import { ConnectWiseSimulator } from './psa-sim/connectwise.js';
import { AutotaskSimulator } from './psa-sim/autotask.js';

const API = '/api/v1';

const halo = new HaloPsaSimulator();
const cw = new ConnectWiseSimulator();
const at = new AutotaskSimulator();

type Psa = {
  name: string;
  kind: 'halopsa' | 'connectwise' | 'autotask';
  /** The connection as an owner types it; `wrong` replaces the secret with a wrong one. */
  body(wrong?: boolean): Record<string, unknown>;
  /** The same settings without any secret (kept from before). */
  withoutSecrets(): Record<string, unknown>;
  secrets(): string[];
};

const PSAS: Psa[] = [
  {
    name: 'HaloPSA',
    kind: 'halopsa',
    body: (wrong) => ({
      kind: 'halopsa',
      url: halo.url,
      clientId: halo.clientId,
      clientSecret: wrong ? 'halo-wrong-secret-0001' : halo.clientSecret,
      tenant: 'kwsim',
    }),
    withoutSecrets: () => ({ kind: 'halopsa', url: halo.url, clientId: halo.clientId, tenant: 'kwsim' }),
    secrets: () => [halo.clientSecret, 'halo-wrong-secret-0001'],
  },
  {
    name: 'ConnectWise PSA',
    kind: 'connectwise',
    body: (wrong) => ({
      kind: 'connectwise',
      apiUrl: cw.apiUrl,
      companyId: cw.companyId,
      publicKey: cw.publicKey,
      privateKey: wrong ? 'cw-wrong-private-0001' : cw.privateKey,
      clientId: cw.clientId,
    }),
    withoutSecrets: () => ({ kind: 'connectwise', apiUrl: cw.apiUrl, companyId: cw.companyId, publicKey: cw.publicKey, clientId: cw.clientId }),
    secrets: () => [cw.privateKey, 'cw-wrong-private-0001'],
  },
  {
    name: 'Autotask',
    kind: 'autotask',
    body: (wrong) => ({
      kind: 'autotask',
      zoneLookupUrl: `${at.url}/atservicesrest`,
      userName: at.userName,
      secret: wrong ? 'at-wrong-secret-0001' : at.secret,
      integrationCode: at.integrationCode,
    }),
    withoutSecrets: () => ({ kind: 'autotask', zoneLookupUrl: `${at.url}/atservicesrest`, userName: at.userName }),
    secrets: () => [at.secret, at.integrationCode, 'at-wrong-secret-0001'],
  },
];
const allSecrets = () => PSAS.flatMap((p) => p.secrets());

describe('PSA connection over HTTP (three simulators)', () => {
  let t: TestApp;
  let s: { owner: Session; admin: Session; tech: Session };
  let techId: string;
  let contoso: string;
  let fabrikam: string;
  let northwind: string;

  const req = (method: 'GET' | 'PUT' | 'POST' | 'DELETE', url: string, who: Session, payload?: unknown) =>
    t.app.inject({ method, url: `${API}${url}`, headers: who.headers, ...(payload === undefined ? {} : { payload: payload as object }) });
  /** Every answer in this file is checked for secrets, stack traces and SQL. */
  const ok = (r: LightMyRequestResponse, status = 200) => {
    expect(r.statusCode, r.body).toBe(status);
    expectNoLeak(r, allSecrets());
    return r.json() as Record<string, any>;
  };
  const connect = async (psa: Psa, wrong = false) => ok(await req('PUT', '/settings/psa', s.owner, psa.body(wrong)));
  const clean = async () => ok(await req('DELETE', '/settings/psa', s.owner));
  const row = () => t.container.database.db.selectFrom('psa_connection').selectAll().executeTakeFirst();

  beforeAll(async () => {
    await Promise.all([halo.start(), cw.start(), at.start()]);
    halo.tenant = 'kwsim';
    halo.seed();
    cw.seed();
    at.seed();
    t = await createTestApp();
    contoso = (await t.container.clients.create(owner, { name: 'Contoso' })).id;
    fabrikam = (await t.container.clients.create(owner, { name: 'Fabrikam' })).id;
    northwind = (await t.container.clients.create(owner, { name: 'Northwind' })).id;
    const o = await t.addUser('owner', 'all', 'owner@example.test');
    const a = await t.addUser('admin', 'all', 'admin@example.test');
    const tech = await t.addUser('technician', 'all', 'tech@example.test');
    techId = tech.id;
    s = { owner: await t.signIn(o.email), admin: await t.signIn(a.email), tech: await t.signIn(tech.email) };
  });
  afterAll(async () => {
    await t?.close();
    await Promise.all([halo.stop(), cw.stop(), at.stop()]);
    expect([...halo.errors(), ...cw.errors(), ...at.errors()]).toEqual([]);
  });

  for (const psa of PSAS) {
    it(`${psa.name}: a wrong secret is saved as failing, the right one works; secrets are never answered, audited or stored in clear`, async () => {
      await clean();
      const failing = await connect(psa, true);
      expect(failing.status).toBe('failing');
      expect(failing.lastError).toContain(psa.name);
      expect(failing.lastError).toMatch(/credential|sign|accept|refus/i);

      const saved = await connect(psa);
      expect(saved).toMatchObject({ kind: psa.kind, name: psa.name, status: 'ok', lastError: null });
      expect(saved.secretsSet.length).toBeGreaterThan(0);
      const shown = ok(await req('GET', '/settings/psa', s.owner));
      expect(shown.connection.status).toBe('ok');

      const r = await row();
      for (const secret of psa.secrets()) {
        expect(r!.secret_ciphertext.includes(secret), 'secret in clear in psa_connection.secret_ciphertext').toBe(false);
        expect(r!.settings.includes(secret), 'secret in psa_connection.settings').toBe(false);
      }
      // Saving the settings again without the secret keeps the stored one (write-only fields).
      const kept = ok(await req('PUT', '/settings/psa', s.owner, psa.withoutSecrets()));
      expect(kept.status).toBe('ok');
      const events = await auditEvents(t, { action: 'psa.connection' });
      expect(events.length).toBeGreaterThan(0);
      const details = JSON.stringify(events.map((e) => e.details));
      for (const secret of allSecrets()) expect(details.includes(secret), 'a secret in an audit detail').toBe(false);
    });

    it(`${psa.name}: companies with a suggestion by name; a company belongs to one client; a policy needs a company`, async () => {
      await clean();
      await connect(psa);
      const list = ok(await req('GET', '/psa/companies', s.admin));
      expect(list.psa).toBe(psa.name);
      expect(list.companies.length).toBeGreaterThan(5);
      const mine = list.clients.find((c: { clientId: string }) => c.clientId === contoso);
      // "Contoso" is "Contoso Ltd" (legal form aside), never "Contoso Pharmaceuticals".
      expect(mine.suggestion).toMatchObject({ name: 'Contoso Ltd' });
      const company = mine.suggestion.id as string;

      const linked = ok(await req('PUT', `/clients/${contoso}/psa`, s.admin, { companyId: company }));
      expect(linked).toMatchObject({ clientId: contoso, companyId: company, companyName: 'Contoso Ltd', ticketPolicy: 'off' });
      const after = ok(await req('GET', '/psa/companies', s.admin));
      expect(after.clients.find((c: { clientId: string }) => c.clientId === contoso)).toMatchObject({ companyId: company, suggestion: null });

      const twice = await req('PUT', `/clients/${fabrikam}/psa`, s.admin, { companyId: company });
      expect(twice.statusCode, twice.body).toBe(409);
      expect(twice.json().message).toContain('Contoso');
      const unknown = await req('PUT', `/clients/${fabrikam}/psa`, s.admin, { companyId: '987654' });
      expect(unknown.statusCode).toBe(400);
      expect(unknown.json().message).toContain('987654');

      const noCompany = await req('PUT', `/clients/${northwind}/psa`, s.admin, { ticketPolicy: 'required' });
      expect(noCompany.statusCode, noCompany.body).toBe(400);
      expect(noCompany.json().message).toMatch(/Link the client to its PSA company/);

      const policy = ok(await req('PUT', `/clients/${contoso}/psa`, s.admin, { ticketPolicy: 'required', requireAssignee: true }));
      expect(policy).toMatchObject({ ticketPolicy: 'required', requireAssignee: true, companyId: company });
      // A technician sees the client's policy, and may change nothing.
      expect(ok(await req('GET', `/clients/${contoso}/psa`, s.tech))).toMatchObject({ ticketPolicy: 'required' });
      expect((await req('PUT', `/clients/${contoso}/psa`, s.tech, { ticketPolicy: 'off' })).statusCode).toBe(403);
    });
  }

  it('a stored secret is never sent to a new address: moving the connection elsewhere needs the secrets again (an owner cannot read them out through a server of their own)', async () => {
    // The attacker's server: it records everything and names itself as Autotask's zone.
    const seen: string[] = [];
    const evil = http.createServer((q, res) => {
      let body = '';
      q.on('data', (c: Buffer) => (body += c.toString()));
      q.on('end', () => {
        seen.push(JSON.stringify({ url: q.url, headers: q.headers, body }));
        const zone = q.url?.includes('zoneInformation');
        res.writeHead(zone ? 200 : 401, { 'content-type': 'application/json' });
        res.end(zone ? JSON.stringify({ url: `${base}/` }) : '{}');
      });
    });
    await new Promise<void>((r) => evil.listen(0, '127.0.0.1', () => r()));
    const base = `http://127.0.0.1:${(evil.address() as AddressInfo).port}`;
    try {
      for (const psa of PSAS) {
        await clean();
        await connect(psa);
        const moved =
          psa.kind === 'halopsa'
            ? { ...psa.withoutSecrets(), url: base }
            : psa.kind === 'connectwise'
              ? { ...psa.withoutSecrets(), apiUrl: `${base}/v4_6_release/apis/3.0` }
              : { ...psa.withoutSecrets(), zoneLookupUrl: `${base}/atservicesrest` };
        const r = ok(await req('PUT', '/settings/psa', s.owner, moved), 400);
        expect(r.message, psa.name).toMatch(/is required again when the .+ address changes/);
        expect(seen, psa.name).toEqual([]);
        // Nothing changed: the connection still points at the PSA and works.
        expect(ok(await req('POST', '/settings/psa/test', s.owner)).status).toBe('ok');
        // Unchanged addresses keep the stored secrets as before.
        expect(ok(await req('PUT', '/settings/psa', s.owner, psa.withoutSecrets())).status).toBe('ok');
      }
    } finally {
      await new Promise<void>((r) => evil.close(() => r()));
    }
  });

  it('an admin limited to some clients cannot link a company (the list covers every client): no company name, no claim; unlinking and the policy stay theirs', async () => {
    await clean();
    await connect(PSAS[0]!);
    const list = ok(await req('GET', '/psa/companies', s.admin));
    const theirs = list.clients.find((c: { clientId: string }) => c.clientId === contoso).suggestion;
    const a = await t.addUser('admin', [northwind], 'northwind.admin@example.test');
    const scoped = await t.signIn(a.email);
    expect((await req('GET', '/psa/companies', scoped)).statusCode).toBe(403);
    // Trying ids would name other customers' companies, or claim Contoso's company for Northwind.
    for (const companyId of [theirs.id as string, '987654']) {
      const r = ok(await req('PUT', `/clients/${northwind}/psa`, scoped, { companyId }), 403);
      expect(JSON.stringify(r)).not.toContain(theirs.name);
    }
    expect(ok(await req('GET', `/clients/${northwind}/psa`, scoped))).toMatchObject({ companyId: null });
    // Linked by an admin of all clients, the policy (and unlinking) is the scoped admin's to set.
    const northwindCompany = list.companies.find((c: { id: string }) => c.id !== theirs.id).id as string;
    ok(await req('PUT', `/clients/${northwind}/psa`, s.admin, { companyId: northwindCompany }));
    expect(ok(await req('PUT', `/clients/${northwind}/psa`, scoped, { companyId: northwindCompany, ticketPolicy: 'required' }))).toMatchObject({
      ticketPolicy: 'required',
    });
    expect(ok(await req('PUT', `/clients/${northwind}/psa`, scoped, { companyId: null, ticketPolicy: 'off' }))).toMatchObject({ companyId: null });
  });

  it('another PSA unlinks every client from its company (the ids belong to the old PSA)', async () => {
    await clean();
    await connect(PSAS[0]!);
    const list = ok(await req('GET', '/psa/companies', s.admin));
    const company = list.clients.find((c: { clientId: string }) => c.clientId === contoso).suggestion.id;
    ok(await req('PUT', `/clients/${contoso}/psa`, s.admin, { companyId: company }));
    // The same PSA saved again keeps the link.
    await connect(PSAS[0]!);
    expect(ok(await req('GET', `/clients/${contoso}/psa`, s.admin)).companyId).toBe(company);

    const replaced = await connect(PSAS[1]!);
    expect(replaced.kind).toBe('connectwise');
    expect(ok(await req('GET', `/clients/${contoso}/psa`, s.admin))).toMatchObject({ companyId: null, companyName: null });
    const [event] = await auditEvents(t, { action: 'psa.connection' });
    expect(event!.details).toMatchObject({ replaced: 'HaloPSA', companyLinksCleared: true });
  });

  it('removing the PSA turns the ticket policies off and unlinks the companies', async () => {
    await clean();
    await connect(PSAS[2]!);
    const list = ok(await req('GET', '/psa/companies', s.admin));
    const company = list.clients.find((c: { clientId: string }) => c.clientId === contoso).suggestion.id;
    ok(await req('PUT', `/clients/${contoso}/psa`, s.admin, { companyId: company, ticketPolicy: 'validate' }));
    // An admin may not remove the vault-wide connection.
    expect((await req('DELETE', '/settings/psa', s.admin)).statusCode).toBe(403);
    const removed = ok(await req('DELETE', '/settings/psa', s.owner));
    expect(removed).toEqual({ removed: true, policiesTurnedOff: 1 });
    expect(ok(await req('GET', `/clients/${contoso}/psa`, s.admin))).toMatchObject({ companyId: null, ticketPolicy: 'off' });
    expect(ok(await req('GET', '/settings/psa', s.owner))).toEqual({ connection: null });
    expect(await row()).toBeUndefined();
    // Without a PSA, the company list says what to do.
    const none = await req('GET', '/psa/companies', s.admin);
    expect(none.statusCode).toBe(400);
    expect(none.json().message).toMatch(/No PSA is connected/);
  });

  it('a PSA that cannot be reached is saved as failing with words', async () => {
    await clean();
    halo.unreachable = '503';
    try {
      const failing = await connect(PSAS[0]!);
      expect(failing.status).toBe('failing');
      expect(failing.lastError).toContain('HaloPSA');
    } finally {
      halo.unreachable = false;
    }
    expect(ok(await req('POST', '/settings/psa/test', s.admin)).status).toBe('ok');
  });

  it('owners link people to PSA members; others may not read or change the list', async () => {
    const list = ok(await req('GET', '/psa/members', s.owner));
    expect(list.members.find((m: { userId: string }) => m.userId === techId)).toMatchObject({ email: 'tech@example.test', member: null });
    const linked = ok(await req('PUT', `/psa/members/${techId}`, s.owner, { member: 'Ada Tech' }));
    expect(linked).toMatchObject({ userId: techId, member: 'Ada Tech' });
    expect(ok(await req('GET', '/psa/members', s.owner)).members.find((m: { userId: string }) => m.userId === techId).member).toBe('Ada Tech');
    expect((await req('GET', '/psa/members', s.admin)).statusCode).toBe(403);
    expect((await req('PUT', `/psa/members/${techId}`, s.tech, { member: 'Bob Tech' })).statusCode).toBe(403);
    expect((await req('GET', '/settings/psa', s.tech)).statusCode).toBe(403);
    const cleared = ok(await req('PUT', `/psa/members/${techId}`, s.owner, { member: null }));
    expect(cleared.member).toBeNull();
    expect((await auditEvents(t, { action: 'psa.member' })).length).toBe(2);
  });

  it('with an authenticator app, a stale step-up is refused (step_up_required) until a fresh code', async () => {
    await clean();
    const enrolled = await t.addUser('owner', 'all', 'mfa.owner@example.test');
    const who = await t.signIn(enrolled.email);
    const secret = ok(await req('POST', '/me/mfa', who)).secret as string;
    ok(await req('POST', '/me/mfa/confirm', who, { code: totpCodeAt(secret, Date.now()) }));
    await updateSession(t, who.cookie, { mfa_at: minutesAgo(120) });

    for (const [method, url, body] of [
      ['PUT', '/settings/psa', PSAS[0]!.body()],
      ['DELETE', '/settings/psa', undefined],
      ['PUT', `/clients/${contoso}/psa`, { ticketPolicy: 'off' }],
      ['PUT', `/psa/members/${techId}`, { member: 'Ada Tech' }],
    ] as const) {
      const r = await req(method, url, who, body);
      expect(r.statusCode, `${method} ${url}`).toBe(403);
      expect(r.json().error).toBe('step_up_required');
      expectNoLeak(r, allSecrets());
    }
    expect(await row()).toBeUndefined();

    // Each code works once: the confirmation above spent this time step's.
    await t.container.database.db.updateTable('users').set({ totp_last_step: null }).where('email', '=', enrolled.email).execute();
    ok(await req('POST', '/auth/step-up', who, { code: totpCodeAt(secret, Date.now()) }));
    expect(ok(await req('PUT', '/settings/psa', who, PSAS[0]!.body())).status).toBe('ok');
  });
});
