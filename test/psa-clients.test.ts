/**
 * The PSA clients (src/integrations/psa) against the PSA simulators over real HTTP, through the
 * egress policy: sign-in and its refusal, tickets (open, closed, other company, unknown), company
 * paging to the end, internal notes, ticket create/update/close, the vendors' retry hints,
 * unreachable PSAs and the egress refusal. No database is needed; the file runs in the db project
 * on either engine. The clock is injected and the sleep advances it, so waits cost no real time.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createEgressPolicy, parseEgressAllow } from '../src/integrations/egress.js';
import { createPsaClient, PsaError, type PsaClient, type PsaClientDeps, type PsaConfig } from '../src/integrations/psa/index.js';
import type { PsaSimBase } from './psa-sim/common.js';
import { HaloPsaSimulator } from './psa-sim/halopsa.js';
import { ConnectWiseSimulator } from './psa-sim/connectwise.js';
import { AT_PUBLISH, AT_STATUS, AutotaskSimulator } from './psa-sim/autotask.js';
import { randomRecoveryPassword } from './helpers/keys.js';

const T0 = Date.parse('2025-03-01T08:00:00Z');
let clock = T0;
const waits: number[] = [];
const allow = createEgressPolicy({ allow: parseEgressAllow('127.0.0.1') });

function deps(over: Partial<PsaClientDeps> = {}): PsaClientDeps {
  return {
    egress: allow,
    now: () => clock,
    sleep: async (ms) => {
      waits.push(ms);
      clock += ms;
    },
    timeoutMs: 2000,
    ...over,
  };
}

/** Every message a client threw in this file; none may contain a secret. */
const messages: string[] = [];
const secrets: string[] = [];

async function failure(p: Promise<unknown>): Promise<PsaError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(PsaError);
    messages.push((e as PsaError).message);
    return e as PsaError;
  }
  throw new Error('expected a PsaError');
}

type Note = { text: string; internal: boolean };
type State = { title: string; description: string; closed: boolean; priority: number | null };

type Harness = {
  name: string;
  sim: PsaSimBase;
  start(): Promise<void>;
  config(): PsaConfig;
  /** The same config with a wrong secret. */
  wrongSecret(): PsaConfig;
  t: { open: string; openNumber: string; company: string; companyName: string | null; closed: string; other: string; otherCompany: string; unknown: string };
  /** Active companies the PSA holds. */
  companies(): number;
  /** A company to create tickets for. */
  newTicketCompany(): string;
  notes(id: string): Note[];
  state(id: string): State;
  /** Page size of the company list the client uses (the seed exceeds it). */
  pageSize: number;
  secrets(): string[];
};

const halo = new HaloPsaSimulator({ now: () => clock });
const cw = new ConnectWiseSimulator({ now: () => clock });
const at = new AutotaskSimulator({ now: () => clock });

const harnesses: Harness[] = [
  {
    name: 'HaloPSA',
    sim: halo,
    pageSize: 100,
    async start() {
      await halo.start();
      halo.tenant = 'kwsim';
      const s = halo.seed({ clients: 250 });
      halo.clients[5]!.inactive = true;
      this.t = {
        open: String(s.open.id),
        openNumber: String(s.open.id),
        company: String(s.open.client_id),
        companyName: 'Contoso Ltd',
        closed: String(s.closed.id),
        other: String(s.otherClientOpen.id),
        otherCompany: String(s.otherClientOpen.client_id),
        unknown: '999999',
      };
    },
    config: () => ({ kind: 'halopsa', authUrl: halo.authUrl, apiUrl: halo.apiUrl, clientId: halo.clientId, clientSecret: halo.clientSecret, tenant: 'kwsim' }),
    wrongSecret: () => ({
      kind: 'halopsa',
      authUrl: halo.authUrl,
      apiUrl: halo.apiUrl,
      clientId: halo.clientId,
      clientSecret: 'halo-wrong-secret-0001',
      tenant: 'kwsim',
    }),
    t: undefined as never,
    companies: () => halo.clients.filter((c) => !c.inactive).length,
    newTicketCompany: () => String(halo.clients[3]!.id),
    notes: (id) => halo.notes(Number(id)).map((a) => ({ text: a.note, internal: a.hiddenfromuser === true })),
    state: (id) => {
      const t = halo.ticket(Number(id))!;
      return { title: t.summary, description: t.details, closed: halo.isClosedStatus(t.status_id), priority: t.priority_id };
    },
    secrets: () => [halo.clientSecret, 'halo-wrong-secret-0001'],
  },
  {
    name: 'ConnectWise PSA',
    sim: cw,
    pageSize: 1000,
    async start() {
      await cw.start();
      const s = cw.seed({ companies: 2100 });
      cw.companies[6]!.deletedFlag = true;
      this.t = {
        open: String(s.open.id),
        openNumber: String(s.open.id),
        company: String(s.open.company.id),
        companyName: 'Contoso Ltd',
        closed: String(s.closed.id),
        other: String(s.otherCompanyOpen.id),
        otherCompany: String(s.otherCompanyOpen.company.id),
        unknown: '999999',
      };
    },
    config: () => ({
      kind: 'connectwise',
      apiUrl: cw.apiUrl,
      companyId: cw.companyId,
      publicKey: cw.publicKey,
      privateKey: cw.privateKey,
      clientId: cw.clientId,
    }),
    wrongSecret: () => ({
      kind: 'connectwise',
      apiUrl: cw.apiUrl,
      companyId: cw.companyId,
      publicKey: cw.publicKey,
      privateKey: 'cw-wrong-private-0001',
      clientId: cw.clientId,
    }),
    t: undefined as never,
    companies: () => cw.companies.filter((c) => !c.deletedFlag).length,
    newTicketCompany: () => String(cw.companies[3]!.id),
    notes: (id) => cw.notes(Number(id)).map((n) => ({ text: n.text, internal: n.internalAnalysisFlag && !n.externalFlag && !n.detailDescriptionFlag })),
    state: (id) => {
      const t = cw.ticket(Number(id))!;
      return { title: t.summary, description: t.initialDescription ?? '', closed: t.closedFlag, priority: t.priority.id };
    },
    secrets: () => [cw.privateKey, 'cw-wrong-private-0001', Buffer.from(`${cw.companyId}+${cw.publicKey}:${cw.privateKey}`).toString('base64')],
  },
  {
    name: 'Autotask',
    sim: at,
    pageSize: 500,
    async start() {
      await at.start();
      const s = at.seed({ companies: 1100 });
      at.companies[7]!.isActive = false;
      this.t = {
        open: String(s.open.id),
        openNumber: s.open.ticketNumber,
        company: String(s.open.companyID),
        companyName: null,
        closed: String(s.closed.id),
        other: String(s.otherCompanyOpen.id),
        otherCompany: String(s.otherCompanyOpen.companyID),
        unknown: '999999',
      };
    },
    config: () => ({
      kind: 'autotask',
      zoneLookupUrl: `${at.url}/atservicesrest`,
      userName: at.userName,
      secret: at.secret,
      integrationCode: at.integrationCode,
    }),
    wrongSecret: () => ({
      kind: 'autotask',
      zoneLookupUrl: `${at.url}/atservicesrest`,
      userName: at.userName,
      secret: 'at-wrong-secret-0001',
      integrationCode: at.integrationCode,
    }),
    t: undefined as never,
    companies: () => at.companies.filter((c) => c.isActive).length,
    newTicketCompany: () => String(at.companies[3]!.id),
    notes: (id) => at.notes(Number(id)).map((n) => ({ text: n.description, internal: n.publish === AT_PUBLISH.InternalProjectTeam })),
    state: (id) => {
      const t = at.ticket(Number(id))!;
      return { title: t.title, description: t.description, closed: t.status === AT_STATUS.Complete, priority: t.priority };
    },
    secrets: () => [at.secret, at.integrationCode, 'at-wrong-secret-0001'],
  },
];

afterAll(() => {
  // No thrown message anywhere in this file carries a secret.
  expect(messages.length).toBeGreaterThan(20);
  for (const m of messages) for (const s of secrets) expect(m).not.toContain(s);
});

describe.each(harnesses)('$name client', (h) => {
  let client: PsaClient;

  beforeAll(async () => {
    await h.start();
    secrets.push(...h.secrets());
  });
  afterAll(async () => {
    expect(h.sim.errors()).toEqual([]);
    await h.sim.stop();
  });
  beforeEach(() => {
    h.sim.authFailure = false;
    h.sim.unreachable = false;
    h.sim.throttleEvery = undefined;
    h.sim.retryAfterSeconds = 1;
    h.sim.resetLog();
    waits.length = 0;
    clock = T0;
    client = createPsaClient(h.config(), deps());
  });

  it('signs in and tests the connection; wrong credentials are refused in clear words without the secret', async () => {
    await client.testConnection();
    expect(client.kind).toBe(h.config().kind);

    const wrong = createPsaClient(h.wrongSecret(), deps());
    const e = await failure(wrong.testConnection());
    expect(e.code).toBe('auth_failed');
    expect(e.message).toContain(h.name);
    expect(e.message).toMatch(/credentials|client ID or secret/);

    // Credentials revoked while the client holds a token (Halo) or keys (the others).
    h.sim.authFailure = true;
    const revoked = await failure(client.getTicket(h.t.open));
    expect(revoked.code).toBe('auth_failed');
    expect(revoked.status).toBeGreaterThanOrEqual(400);
  });

  it('gets an open ticket with its company and assignee, a closed one, another company’s, and null for an unknown one', async () => {
    const open = await client.getTicket(h.t.open);
    expect(open).toMatchObject({ id: h.t.open, number: h.t.openNumber, open: true, companyId: h.t.company, companyName: h.t.companyName });
    expect(open!.summary).toMatch(/BitLocker recovery screen/);
    expect(open!.statusName).toBe('In Progress');
    expect(open!.assigneeIds.length + open!.assigneeLogins.length).toBeGreaterThan(0);

    const closed = await client.getTicket(h.t.closed);
    expect(closed).toMatchObject({ id: h.t.closed, open: false, companyId: h.t.company });
    expect(closed!.statusName).toMatch(/Closed|Complete/);

    const other = await client.getTicket(h.t.other);
    expect(other).toMatchObject({ open: true, companyId: h.t.otherCompany });
    expect(other!.companyId).not.toBe(h.t.company);

    expect(await client.getTicket(h.t.unknown)).toBeNull();

    // Something that is no ticket id is refused before anything is sent.
    const before = h.sim.requests().length;
    const bad = await failure(client.getTicket('12; DROP'));
    expect(bad.code).toBe('bad_request');
    expect(h.sim.requests()).toHaveLength(before);
  });

  it('lists every active company to the last page, and stops at the page cap', async () => {
    const list = await client.listCompanies();
    expect(h.companies()).toBeGreaterThan(h.pageSize * 2);
    expect(list).toHaveLength(h.companies());
    expect(new Set(list.map((c) => c.id)).size).toBe(list.length);
    expect(list.map((c) => c.name)).toEqual(expect.arrayContaining(['Contoso Ltd', 'Contoso Pharmaceuticals', 'Fabrikam, Inc.']));
    expect(list.find((c) => c.id === h.t.company)?.name).toBe('Contoso Ltd');
    const pages = h.sim.requests().filter((r) => /client|compan/i.test(r.path)).length;
    expect(pages).toBe(Math.ceil(h.companies() / h.pageSize));

    const capped = createPsaClient(h.config(), deps({ maxPages: 2 }));
    const e = await failure(capped.listCompanies());
    expect(e.code).toBe('too_many');
  });

  it('posts an internal note the customer does not see', async () => {
    const text = `Recovery key 4290B6C0… for LAPTOP-07 revealed by Ada Tech, reason "boot loop"; rotation queued (${h.name})`;
    await client.addInternalNote(h.t.open, text);
    const notes = h.notes(h.t.open);
    expect(notes).toEqual([{ text, internal: true }]);
  });

  it('never sends text that holds a recovery password (note, new ticket, update, closing note)', async () => {
    const pw = randomRecoveryPassword();
    secrets.push(pw);
    const before = h.sim.requests().length;
    const attempts = [
      client.addInternalNote(h.t.open, `Key for LAPTOP-07: ${pw}`),
      client.addInternalNote(h.t.open, `Key: ${pw.split('-').join(' ')}`),
      client.createTicket({ companyId: h.newTicketCompany(), title: 'Finding', description: `password ${pw}` }),
      client.updateTicket(h.t.open, { description: pw.replace(/-/g, '') }),
      client.closeTicket(h.t.open, `was ${pw}`),
    ];
    for (const a of attempts) {
      const e = await failure(a);
      expect(e.code).toBe('bad_request');
      expect(e.message).toContain(`looks like a recovery password to ${h.name}`);
    }
    expect(h.sim.requests()).toHaveLength(before);
    expect(h.notes(h.t.open).some((n) => n.text.includes(pw.slice(0, 6)))).toBe(false);
    expect(h.state(h.t.open).closed).toBe(false);
  });

  it('creates, updates and closes a ticket (with a closing note)', async () => {
    const id = await client.createTicket({
      companyId: h.newTicketCompany(),
      title: 'BitLocker: key not escrowed on LAPTOP-09',
      description: 'Finding NO_KEY.',
      priority: '1',
    });
    expect(id).toMatch(/^\d+$/);
    let ticket = await client.getTicket(id);
    expect(ticket).toMatchObject({ id, open: true, companyId: h.newTicketCompany(), summary: 'BitLocker: key not escrowed on LAPTOP-09' });
    expect(h.state(id)).toMatchObject({ description: 'Finding NO_KEY.', closed: false, priority: 1 });

    await client.updateTicket(id, { description: 'Finding NO_KEY, second sync: still missing.', priority: '3' });
    expect(h.state(id)).toMatchObject({
      title: 'BitLocker: key not escrowed on LAPTOP-09',
      description: 'Finding NO_KEY, second sync: still missing.',
      priority: 3,
    });

    await client.closeTicket(id, 'The finding cleared: the key is escrowed.');
    expect(h.state(id).closed).toBe(true);
    ticket = await client.getTicket(id);
    expect(ticket!.open).toBe(false);
    expect(h.notes(id)).toEqual([{ text: 'The finding cleared: the key is escrowed.', internal: true }]);
  });

  it('honours the retry hint when throttled: every call succeeds and none comes early', async () => {
    h.sim.throttleEvery = 3;
    h.sim.retryAfterSeconds = 2;
    for (let i = 0; i < 4; i++) expect((await client.getTicket(h.t.open))!.open).toBe(true);
    expect((await client.listCompanies()).length).toBe(h.companies());
    await client.addInternalNote(h.t.other, 'Throttled note');
    expect(h.sim.throttled().length).toBeGreaterThanOrEqual(2);
    expect(h.sim.violations()).toEqual([]);
    expect(waits).toContain(2000);
    expect(h.notes(h.t.other).filter((n) => n.text === 'Throttled note')).toHaveLength(1);

    // A hint longer than the client waits for fails at once as throttled.
    h.sim.retryAfterSeconds = 120;
    h.sim.throttleEvery = 1;
    const e = await failure(createPsaClient(h.config(), deps()).getTicket(h.t.open));
    expect(e).toMatchObject({ code: 'throttled', status: 429 });
  });

  it('reports an unreachable PSA: connection reset, 503 maintenance page, no answer', async () => {
    h.sim.unreachable = 'reset';
    const reset = await failure(client.getTicket(h.t.open));
    expect(reset.code).toBe('unreachable');
    expect(reset.message).toContain(`Cannot reach ${h.name}`);

    h.sim.unreachable = '503';
    const down = await failure(createPsaClient(h.config(), deps()).addInternalNote(h.t.open, 'never posted'));
    expect(down).toMatchObject({ code: 'unreachable', status: 503 });
    expect(down.message).not.toMatch(/html|Service Unavailable<\//i);

    // A short wait allowed: the client retries within its bound, then gives up.
    const patient = createPsaClient(h.config(), deps({ maxWaitMs: 60_000, maxRetries: 2 }));
    expect((await failure(patient.getTicket(h.t.open))).code).toBe('unreachable');
    expect(waits.filter((w) => w === 30_000)).toHaveLength(2);

    h.sim.unreachable = 'hang';
    const hung = await failure(createPsaClient(h.config(), deps({ timeoutMs: 300 })).getTicket(h.t.open));
    expect(hung.code).toBe('unreachable');
    expect(hung.message).toMatch(/did not answer within 300 ms\./);
    h.sim.unreachable = false;
    expect(h.notes(h.t.open).some((n) => n.text === 'never posted')).toBe(false);
  });

  it('is refused by the egress policy when loopback is not allowed, and sends nothing', async () => {
    const locked = createPsaClient(h.config(), deps({ egress: createEgressPolicy({ allow: [] }) }));
    const e = await failure(locked.getTicket(h.t.open));
    expect(e.code).toBe('refused');
    expect(e.message).toMatch(/loopback/);
    expect(h.sim.requests()).toEqual([]);
  });

  it('refuses addresses that are not https (http only for this machine)', () => {
    const cfg = h.config() as Record<string, unknown>;
    const key = h.name === 'Autotask' ? 'zoneLookupUrl' : 'apiUrl';
    for (const bad of ['http://psa.example.com/api', 'ftp://psa.example.com', 'https://user:pw@psa.example.com/api', 'not a url']) {
      let thrown: unknown;
      try {
        createPsaClient({ ...cfg, [key]: bad } as PsaConfig, deps());
      } catch (e) {
        thrown = e;
      }
      expect(thrown).toBeInstanceOf(PsaError);
      expect((thrown as PsaError).code).toBe('bad_request');
      messages.push((thrown as PsaError).message);
    }
  });
});

describe('vendor specifics', () => {
  const sims: PsaSimBase[] = [];
  afterAll(async () => {
    for (const s of sims) {
      expect(s.errors()).toEqual([]);
      await s.stop();
    }
  });

  it('HaloPSA: caches the token, gets a fresh one once when it is revoked, and sends the tenant', async () => {
    const sim = new HaloPsaSimulator({ now: () => clock });
    sims.push(sim);
    await sim.start();
    sim.tenant = 'kwsim';
    const s = sim.seed();
    clock = T0;
    const cfg: PsaConfig = {
      kind: 'halopsa',
      authUrl: sim.authUrl,
      apiUrl: sim.apiUrl,
      clientId: sim.clientId,
      clientSecret: sim.clientSecret,
      tenant: 'kwsim',
    };
    const c = createPsaClient(cfg, deps());
    await c.getTicket(String(s.open.id));
    await c.getTicket(String(s.closed.id));
    const tokenCalls = () => sim.requests().filter((r) => r.path === '/auth/token');
    expect(tokenCalls()).toHaveLength(1);
    expect(tokenCalls()[0]!.query).toContain('tenant=kwsim');
    sim.expireTokens();
    expect((await c.getTicket(String(s.open.id)))!.open).toBe(true);
    expect(tokenCalls()).toHaveLength(2);
    // Expiry by the clock: a new token before the old one lapses.
    clock += 3600_000;
    await c.getTicket(String(s.open.id));
    expect(tokenCalls()).toHaveLength(3);
    expect(sim.requests().filter((r) => r.status === 401)).toHaveLength(1);

    // Without the tenant a hosted instance refuses the sign-in.
    const e = await failure(createPsaClient({ ...cfg, tenant: undefined }, deps()).testConnection());
    expect(e.code).toBe('auth_failed');
    expect(e.message).toMatch(/tenant/);
  });

  it('ConnectWise: the clientId header is required; the owner and resources are given as logins', async () => {
    const sim = new ConnectWiseSimulator({ now: () => clock });
    sims.push(sim);
    await sim.start();
    const s = sim.seed();
    const cfg: PsaConfig = {
      kind: 'connectwise',
      apiUrl: sim.apiUrl,
      companyId: sim.companyId,
      publicKey: sim.publicKey,
      privateKey: sim.privateKey,
      clientId: sim.clientId,
    };
    const t = await createPsaClient(cfg, deps()).getTicket(String(s.open.id));
    expect(t).toMatchObject({ assigneeIds: ['170'], assigneeNames: ['Ada Tech'], assigneeLogins: ['atech'], statusName: 'In Progress' });
    expect((await createPsaClient(cfg, deps()).getTicket(String(s.openUnassigned.id)))!.assigneeLogins).toEqual([]);
    const e = await failure(createPsaClient({ ...cfg, clientId: 'not-registered' }, deps()).testConnection());
    expect(e.code).toBe('auth_failed');
    // closeStatusName chooses the status instead of the board's default closed one.
    const c = createPsaClient({ ...cfg, closeStatusName: '>Closed' }, deps());
    await c.closeTicket(String(s.openUnassigned.id));
    expect(sim.ticket(s.openUnassigned.id)).toMatchObject({ closedFlag: true, status: { name: '>Closed' } });
    expect(sim.notes(s.openUnassigned.id)).toEqual([]);
  });

  it('Autotask: looks the zone up once, finds tickets by number, and waits out the thread limit', async () => {
    const sim = new AutotaskSimulator({ latencyMs: 100 });
    sims.push(sim);
    await sim.start();
    const s = sim.seed();
    const cfg: PsaConfig = {
      kind: 'autotask',
      zoneLookupUrl: `${sim.url}/atservicesrest`,
      userName: sim.userName,
      secret: sim.secret,
      integrationCode: sim.integrationCode,
    };
    // Real time here: the thread limit frees up as requests finish, not by the clock.
    const c = createPsaClient(cfg, { egress: allow, timeoutMs: 5000 });
    const results = await Promise.all(Array.from({ length: 5 }, () => c.getTicket(String(s.open.id))));
    expect(results.every((r) => r?.id === String(s.open.id))).toBe(true);
    expect(sim.throttled().length).toBeGreaterThan(0);
    const zone = sim.requests().filter((r) => /zoneinformation/i.test(r.path));
    expect(zone).toHaveLength(1);
    // No request carries the secret in its address.
    expect(JSON.stringify(sim.requests())).not.toContain(sim.secret);

    const byNumber = await c.getTicket(s.closed.ticketNumber);
    expect(byNumber).toMatchObject({ id: String(s.closed.id), number: s.closed.ticketNumber, open: false });
    expect(await c.getTicket('T20990101.9999')).toBeNull();

    const unknownUser = await failure(createPsaClient({ ...cfg, userName: 'nobody@msp.example' }, { egress: allow }).testConnection());
    expect(unknownUser.code).toBe('auth_failed');
    expect(unknownUser.message).toMatch(/API user name/);
  });
});

/** A PSA that misbehaves on purpose: each test gives it a handler. Records what reached it. */
class HostileServer {
  hits: { method: string; url: string; auth: boolean }[] = [];
  handler: (req: http.IncomingMessage, res: http.ServerResponse) => void = (_q, r) => r.end();
  private server = http.createServer((req, res) => {
    this.hits.push({ method: req.method ?? '', url: req.url ?? '', auth: Boolean(req.headers.authorization || req.headers.secret) });
    req.resume();
    req.on('end', () => this.handler(req, res));
  });
  url = '';
  async start() {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', () => r()));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }
  async stop() {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

function send(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

describe('a hostile or broken PSA', () => {
  const psa = new HostileServer();
  const trap = new HostileServer();
  beforeAll(async () => {
    await psa.start();
    await trap.start();
  });
  afterAll(async () => {
    await psa.stop();
    await trap.stop();
  });
  beforeEach(() => {
    psa.hits = [];
    trap.hits = [];
    trap.handler = (_q, r) => send(r, 200, { items: [], pageDetails: { nextPageUrl: null } });
  });
  const halo = (): PsaConfig => ({
    kind: 'halopsa',
    authUrl: `${psa.url}/auth`,
    apiUrl: `${psa.url}/api`,
    clientId: 'halo-client',
    clientSecret: 'halo-hostile-secret-0002',
  });
  const token = (res: http.ServerResponse) => send(res, 200, { token_type: 'Bearer', access_token: 'tok-hostile', expires_in: 3600 });

  it('does not follow a redirect with the bearer token', async () => {
    secrets.push('halo-hostile-secret-0002', 'tok-hostile');
    psa.handler = (req, res) => {
      if (req.url?.startsWith('/auth/token')) return token(res);
      res.writeHead(302, { location: `${trap.url}/steal` });
      res.end();
    };
    const e = await failure(createPsaClient(halo(), deps()).getTicket('1'));
    expect(e).toMatchObject({ code: 'redirect', status: 302 });
    expect(trap.hits).toEqual([]);
  });

  it('never repeats what the PSA said, even on a failed sign-in or an error page', async () => {
    const echo = 'ECHO-halo-hostile-secret-0002 <script>';
    psa.handler = (req, res) => {
      if (req.url?.startsWith('/auth/token')) return send(res, 400, { error: 'invalid_client', error_description: echo });
      send(res, 500, { message: echo });
    };
    const signIn = await failure(createPsaClient(halo(), deps()).testConnection());
    expect(signIn.code).toBe('auth_failed');
    expect(signIn.message).not.toContain('ECHO');
    psa.handler = (req, res) => (req.url?.startsWith('/auth/token') ? token(res) : send(res, 500, { message: echo }));
    const server = await failure(createPsaClient(halo(), deps()).getTicket('1'));
    expect(server).toMatchObject({ code: 'http_500', status: 500 });
    expect(server.message).toBe('HaloPSA answered HTTP 500.');
    // An unknown OAuth error code is not repeated either.
    psa.handler = (req, res) => send(res, 400, { error: echo });
    expect((await failure(createPsaClient(halo(), deps()).testConnection())).message).not.toContain('ECHO');
  });

  it('Autotask: a zone that is not https is refused, and a next page on another origin is not followed', async () => {
    const cfg: PsaConfig = {
      kind: 'autotask',
      zoneLookupUrl: `${psa.url}/atservicesrest`,
      userName: 'api@msp.example',
      secret: 'at-hostile-secret-0003',
      integrationCode: 'CODE',
    };
    secrets.push('at-hostile-secret-0003');
    psa.handler = (_req, res) => send(res, 200, { url: 'http://203.0.113.9/atservicesrest/' });
    const zone = await failure(createPsaClient(cfg, deps()).testConnection());
    expect(zone.code).toBe('bad_answer');
    expect(psa.hits).toHaveLength(1);
    expect(psa.hits[0]!.auth).toBe(false);

    psa.hits = [];
    psa.handler = (req, res) => {
      if (/zoneInformation/i.test(req.url ?? '')) return send(res, 200, { url: `${psa.url}/atservicesrest/` });
      send(res, 200, {
        items: [{ id: 1, companyName: 'Contoso Ltd' }],
        pageDetails: { count: 1, nextPageUrl: `${trap.url}/atservicesrest/V1.0/Companies/query/next?paging=x` },
      });
    };
    const link = await failure(createPsaClient(cfg, deps()).listCompanies());
    expect(link.code).toBe('foreign_link');
    expect(trap.hits).toEqual([]);
  });

  it('ConnectWise: the Link header decides only whether there is a next page; the keys never follow it', async () => {
    const cfg: PsaConfig = {
      kind: 'connectwise',
      apiUrl: `${psa.url}/v4_6_release/apis/3.0`,
      companyId: 'x',
      publicKey: 'p',
      privateKey: 'cw-hostile-private-0004',
      clientId: 'c',
    };
    secrets.push('cw-hostile-private-0004');
    psa.handler = (req, res) => {
      const page = new URL(req.url ?? '/', psa.url).searchParams.get('page');
      if (page === '1') return send(res, 200, [{ id: 1, name: 'Contoso Ltd', identifier: 'Contoso' }], { link: `<${trap.url}/steal?page=2>; rel="next"` });
      send(res, 200, [{ id: 2, name: 'Fabrikam, Inc.', identifier: 'Fabrikam' }]);
    };
    const list = await createPsaClient(cfg, deps()).listCompanies();
    expect(list.map((c) => c.name)).toEqual(['Contoso Ltd', 'Fabrikam, Inc.']);
    expect(trap.hits).toEqual([]);
    expect(psa.hits.map((h) => new URL(h.url, psa.url).searchParams.get('page'))).toEqual(['1', '2']);
  });

  it('an answer that is not what the PSA documents is a clear error, not a crash', async () => {
    psa.handler = (req, res) => (req.url?.startsWith('/auth/token') ? token(res) : send(res, 200, ['not', 'a', 'ticket']));
    const e = await failure(createPsaClient(halo(), deps()).getTicket('1'));
    expect(e.code).toBe('bad_answer');
    expect(e.message).toMatch(/HaloPSA answered the ticket in a form Keywarden does not understand/);
  });
});
