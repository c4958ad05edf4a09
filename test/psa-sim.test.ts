/**
 * Tests of the PSA simulators themselves (test/psa-sim: HaloPSA, ConnectWise PSA, Autotask) with
 * plain fetch over real HTTP. No database. The clock is injected so token expiry needs no sleeping.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { HaloPsaSimulator } from './psa-sim/halopsa.js';
import { ConnectWiseSimulator, CW_BASE_PATH, parseConditions } from './psa-sim/connectwise.js';
import { AT_PUBLISH, AT_STATUS, AutotaskSimulator, compileFilter } from './psa-sim/autotask.js';

type Json = any;

const T0 = Date.parse('2025-03-01T08:00:00Z');
let clock = T0;

async function call(url: string, init: RequestInit = {}): Promise<{ status: number; body: Json; headers: Headers }> {
  const res = await fetch(url, init);
  const text = await res.text();
  let body: Json = text;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    /* text body */
  }
  return { status: res.status, body, headers: res.headers };
}

function json(method: string, body: unknown, headers: Record<string, string> = {}): RequestInit {
  return { method, headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) };
}

// ------------------------------------------------------------------------------------------------
describe('HaloPSA simulator', () => {
  const sim = new HaloPsaSimulator({ now: () => clock });
  let seeded: ReturnType<HaloPsaSimulator['seed']>;

  beforeAll(async () => {
    await sim.start();
    sim.tenant = 'kwsim';
    seeded = sim.seed({ clients: 23 });
  });
  afterAll(async () => {
    expect(sim.errors()).toEqual([]);
    await sim.stop();
  });
  beforeEach(() => {
    sim.authFailure = false;
    sim.unreachable = false;
    sim.throttleEvery = undefined;
    sim.resetLog();
  });

  async function token(form: Record<string, string> = {}): Promise<{ status: number; body: Json }> {
    return call(`${sim.authUrl}/token?tenant=kwsim`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'client_credentials',
        client_id: sim.clientId,
        client_secret: sim.clientSecret,
        scope: 'all',
        ...form,
      }).toString(),
    });
  }
  async function bearer(): Promise<Record<string, string>> {
    const t = await token();
    expect(t.status).toBe(200);
    return { authorization: `Bearer ${t.body.access_token as string}` };
  }

  it('issues a bearer token for the right client credentials and refuses wrong ones', async () => {
    const ok = await token();
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ token_type: 'Bearer', expires_in: 3600, scope: 'all' });
    expect(typeof ok.body.access_token).toBe('string');

    expect((await token({ client_secret: 'wrong' })).body).toEqual({ error: 'invalid_client' });
    expect((await token({ grant_type: 'password' })).body.error).toBe('unsupported_grant_type');
    const noTenant = await call(`${sim.authUrl}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'client_credentials', client_id: sim.clientId, client_secret: sim.clientSecret, scope: 'all' }).toString(),
    });
    expect(noTenant.status).toBe(400);
    // the secret never reaches the request log
    expect(JSON.stringify(sim.requests())).not.toContain(sim.clientSecret);

    sim.authFailure = true;
    expect((await token()).status).toBe(400);
  });

  it('refuses API calls without a valid token, and after expiry', async () => {
    expect((await call(`${sim.apiUrl}/Tickets/${seeded.open.id}`)).status).toBe(401);
    const h = await bearer();
    expect((await call(`${sim.apiUrl}/Tickets/${seeded.open.id}`, { headers: h })).status).toBe(200);
    // expiry follows the injected clock
    clock = T0 + 3599_000;
    expect((await call(`${sim.apiUrl}/Tickets/${seeded.open.id}`, { headers: h })).status).toBe(200);
    clock = T0 + 3600_000;
    const r = await call(`${sim.apiUrl}/Tickets/${seeded.open.id}`, { headers: h });
    expect(r.status).toBe(401);
    expect(r.headers.get('www-authenticate')).toContain('invalid_token');
    clock = T0;
    const h2 = await bearer();
    sim.expireTokens();
    expect((await call(`${sim.apiUrl}/Tickets/${seeded.open.id}`, { headers: h2 })).status).toBe(401);
  });

  it('gets a ticket with status, client and agent; unknown ticket is 404', async () => {
    const h = await bearer();
    const r = await call(`${sim.apiUrl}/Tickets/${seeded.open.id}`, { headers: h });
    expect(r.body).toMatchObject({ id: seeded.open.id, client_id: sim.clients[0]!.id, client_name: 'Contoso Ltd', agent_id: 7, status_id: 2 });
    expect(sim.isClosedStatus(r.body.status_id)).toBe(false);
    const closed = await call(`${sim.apiUrl}/Tickets/${seeded.closed.id}`, { headers: h });
    expect(sim.isClosedStatus(closed.body.status_id)).toBe(true);
    expect((await call(`${sim.apiUrl}/Tickets/999999`, { headers: h })).status).toBe(404);
  });

  it('pages clients with page_size/page_no and record_count to the end', async () => {
    const h = await bearer();
    const names: string[] = [];
    for (let page = 1; ; page++) {
      const r = await call(`${sim.apiUrl}/Client?pageinate=true&page_size=10&page_no=${page}`, { headers: h });
      expect(r.status).toBe(200);
      expect(r.body.record_count).toBe(23);
      names.push(...r.body.clients.map((c: Json) => c.name as string));
      if (page * 10 >= r.body.record_count) break;
    }
    expect(names).toHaveLength(23);
    expect(new Set(names).size).toBe(23);
    const search = await call(`${sim.apiUrl}/Client?search=contoso`, { headers: h });
    expect(search.body.clients.map((c: Json) => c.name)).toEqual(['Contoso Ltd', 'Contoso Pharmaceuticals']);
  });

  it('posts a private note as an action, visible through notes()', async () => {
    const h = await bearer();
    const body = [{ ticket_id: seeded.open.id, note: 'Recovery key 4290B6C0… for LAPTOP-07 revealed', outcome: 'Private Note', hiddenfromuser: true }];
    const r = await call(`${sim.apiUrl}/Actions`, json('POST', body, h));
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({ ticket_id: seeded.open.id, hiddenfromuser: true, outcome: 'Private Note' });
    expect(sim.notes(seeded.open.id)).toEqual([expect.objectContaining({ note: body[0]!.note, hiddenfromuser: true })]);
    // not an array, or an unknown ticket: 400
    expect((await call(`${sim.apiUrl}/Actions`, json('POST', body[0], h))).status).toBe(400);
    expect((await call(`${sim.apiUrl}/Actions`, json('POST', [{ ticket_id: 424242, note: 'x' }], h))).status).toBe(400);
  });

  it('creates, updates and closes a ticket through POST /api/Tickets', async () => {
    const h = await bearer();
    const c = await call(
      `${sim.apiUrl}/Tickets`,
      json('POST', [{ summary: 'BitLocker finding: FAKE-1 not escrowed', client_id: sim.clients[1]!.id, priority_id: 2 }], h),
    );
    expect(c.status).toBe(201);
    const id = c.body.id as number;
    expect(sim.ticket(id)).toMatchObject({ client_name: 'Fabrikam, Inc.', status_id: 1, priority_id: 2 });
    const u = await call(`${sim.apiUrl}/Tickets`, json('POST', [{ id, details: 'Seen again at sync 2' }], h));
    expect(u.status).toBe(201);
    expect(sim.ticket(id)!.details).toBe('Seen again at sync 2');
    await call(`${sim.apiUrl}/Tickets`, json('POST', [{ id, status_id: 9 }], h));
    expect(sim.isClosedStatus(sim.ticket(id)!.status_id)).toBe(true);
    expect(sim.tickets().filter((t) => t.summary.startsWith('BitLocker finding'))).toHaveLength(1);
    expect((await call(`${sim.apiUrl}/Tickets`, json('POST', [{ id, status_id: 12345 }], h))).status).toBe(400);
    expect((await call(`${sim.apiUrl}/Tickets`, json('POST', [{ summary: 'x', client_id: 1 }], h))).status).toBe(400);
  });

  it('throttles every Nth API call with Retry-After (token calls not counted)', async () => {
    const h = await bearer();
    sim.throttleEvery = 3;
    sim.retryAfterSeconds = 7;
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) {
      const r = await call(`${sim.apiUrl}/Tickets/${seeded.open.id}`, { headers: h });
      statuses.push(r.status);
      if (r.status === 429) expect(r.headers.get('retry-after')).toBe('7');
    }
    expect(statuses).toEqual([200, 200, 429, 200, 200, 429]);
    expect(sim.throttled()).toHaveLength(2);
    // the calls right after the first 429 ignored its Retry-After (the clock did not move)
    expect(sim.violations().map((v) => v.path)).toEqual([`/api/Tickets/${seeded.open.id}`, `/api/Tickets/${seeded.open.id}`, `/api/Tickets/${seeded.open.id}`]);
    // a client that waits is fine
    sim.resetLog();
    sim.throttleEvery = 1;
    await call(`${sim.apiUrl}/Tickets/${seeded.open.id}`, { headers: h });
    sim.throttleEvery = undefined;
    clock += 7000;
    expect((await call(`${sim.apiUrl}/Tickets/${seeded.open.id}`, { headers: h })).status).toBe(200);
    expect(sim.violations()).toEqual([]);
    clock = T0;
  });

  it('can be unreachable: socket reset, 503, or no answer at all', async () => {
    const h = await bearer();
    sim.unreachable = 'reset';
    await expect(fetch(`${sim.apiUrl}/Tickets/${seeded.open.id}`, { headers: h })).rejects.toThrow();
    sim.unreachable = '503';
    expect((await call(`${sim.apiUrl}/Tickets/${seeded.open.id}`, { headers: h })).status).toBe(503);
    sim.unreachable = 'hang';
    await expect(fetch(`${sim.apiUrl}/Tickets/${seeded.open.id}`, { headers: h, signal: AbortSignal.timeout(200) })).rejects.toThrow();
    expect(sim.requests().map((r) => r.outcome)).toEqual(['answered', 'reset', 'answered', 'hang']);
  });
});

// ------------------------------------------------------------------------------------------------
describe('ConnectWise PSA simulator', () => {
  const sim = new ConnectWiseSimulator({ now: () => clock });
  let seeded: ReturnType<ConnectWiseSimulator['seed']>;
  let h: Record<string, string>;

  beforeAll(async () => {
    await sim.start();
    seeded = sim.seed({ companies: 57 });
    h = { authorization: sim.basicAuth(), clientId: sim.clientId, accept: 'application/vnd.connectwise.com+json; version=2025.1' };
  });
  afterAll(async () => {
    expect(sim.errors()).toEqual([]);
    await sim.stop();
  });
  beforeEach(() => {
    sim.authFailure = false;
    sim.unreachable = false;
    sim.throttleEvery = undefined;
    sim.resetLog();
  });

  it('needs the clientId header and the right companyId+public:private keys', async () => {
    const url = `${sim.apiUrl}/service/tickets/${seeded.open.id}`;
    expect((await call(url, { headers: h })).status).toBe(200);
    const noClient = await call(url, { headers: { authorization: sim.basicAuth() } });
    expect(noClient.status).toBe(401);
    expect(noClient.body.code).toBe('Unauthorized');
    const wrongKey = `Basic ${Buffer.from(`${sim.companyId}+${sim.publicKey}:nope`).toString('base64')}`;
    expect((await call(url, { headers: { ...h, authorization: wrongKey } })).status).toBe(401);
    sim.authFailure = true;
    expect((await call(url, { headers: h })).status).toBe(401);
  });

  it('gets a ticket with status, closedFlag, company and owner; unknown ticket is 404 NotFound', async () => {
    const r = await call(`${sim.apiUrl}/service/tickets/${seeded.open.id}`, { headers: h });
    expect(r.body).toMatchObject({
      id: seeded.open.id,
      closedFlag: false,
      status: { name: 'In Progress' },
      company: { id: sim.companies[0]!.id, identifier: 'ContosoLtd', name: 'Contoso Ltd' },
      owner: { identifier: 'atech' },
      resources: 'atech',
    });
    const closed = await call(`${sim.apiUrl}/service/tickets/${seeded.closed.id}`, { headers: h });
    expect(closed.body.closedFlag).toBe(true);
    const missing = await call(`${sim.apiUrl}/service/tickets/999999`, { headers: h });
    expect(missing.status).toBe(404);
    expect(missing.body.code).toBe('NotFound');
  });

  it('pages companies to the end by following the Link header', async () => {
    let url: string | null = `${sim.apiUrl}/company/companies?pageSize=25&orderBy=id%20asc`;
    const ids: number[] = [];
    let pages = 0;
    while (url) {
      const r = await call(url, { headers: h });
      expect(r.status).toBe(200);
      ids.push(...r.body.map((c: Json) => c.id as number));
      pages++;
      const m = /<([^>]+)>;\s*rel="next"/.exec(r.headers.get('link') ?? '');
      url = m ? m[1]! : null;
    }
    expect(pages).toBe(3);
    expect(ids).toEqual(sim.companies.map((c) => c.id));
    const middle = await call(`${sim.apiUrl}/company/companies?pageSize=25&page=2`, { headers: h });
    expect((middle.headers.get('link') ?? '').match(/rel="(\w+)"/g)).toEqual(['rel="first"', 'rel="prev"', 'rel="next"', 'rel="last"']);
    const lastPage = await call(`${sim.apiUrl}/company/companies?pageSize=25&page=3`, { headers: h });
    expect(lastPage.headers.get('link')).not.toContain('rel="next"');
    expect((await call(`${sim.apiUrl}/company/companies?pageSize=1001`, { headers: h })).status).toBe(400);
  });

  it('filters with a subset of the conditions language', async () => {
    const q = (c: string) => call(`${sim.apiUrl}/company/companies?conditions=${encodeURIComponent(c)}`, { headers: h });
    expect((await q('name like "Contoso*"')).body.map((c: Json) => c.name)).toEqual(['Contoso Ltd', 'Contoso Pharmaceuticals']);
    expect((await q('identifier="FourthCoffee" and deletedFlag=false')).body).toHaveLength(1);
    expect((await q(`id in (${sim.companies[0]!.id}, ${sim.companies[1]!.id})`)).body).toHaveLength(2);
    expect((await q(`id not in (${sim.companies[0]!.id}) and name contains "contoso"`)).body.map((c: Json) => c.name)).toEqual(['Contoso Pharmaceuticals']);
    const bad = await q('name ~~ "x"');
    expect(bad.status).toBe(400);
    expect(bad.body.code).toBe('InvalidObject');
    const tickets = await call(`${sim.apiUrl}/service/tickets?conditions=${encodeURIComponent(`company/id=${sim.companies[0]!.id} and closedFlag=false`)}`, {
      headers: h,
    });
    expect(tickets.body.map((t: Json) => t.id).sort()).toEqual([seeded.open.id, seeded.openUnassigned.id].sort());
    expect(parseConditions('(a=1 or a=2) and b="x"')({ a: 2, b: 'X' })).toBe(true);
  });

  it('posts an internal note, visible through notes(); a note needs text and a kind', async () => {
    const url = `${sim.apiUrl}/service/tickets/${seeded.open.id}/notes`;
    const r = await call(url, json('POST', { text: 'Recovery key revealed; rotation queued', internalAnalysisFlag: true }, h));
    expect(r.status).toBe(201);
    expect(sim.notes(seeded.open.id)).toEqual([expect.objectContaining({ internalAnalysisFlag: true, internalFlag: true, detailDescriptionFlag: false })]);
    const bad = await call(url, json('POST', { text: '' }, h));
    expect(bad.status).toBe(400);
    expect(bad.body.errors.map((e: Json) => e.field)).toEqual(['text', 'detailDescriptionFlag']);
    expect((await call(`${sim.apiUrl}/service/tickets/999999/notes`, json('POST', { text: 'x', internalAnalysisFlag: true }, h))).status).toBe(404);
  });

  it('creates a ticket, updates and closes it with JSON Patch', async () => {
    const c = await call(
      `${sim.apiUrl}/service/tickets`,
      json(
        'POST',
        { summary: 'BitLocker finding: FAKE-2', company: { identifier: 'Fabrikam,Inc.'.replace(/[^A-Za-z0-9]/g, '') }, board: { name: 'Security Findings' } },
        h,
      ),
    );
    expect(c.status).toBe(201);
    expect(c.body).toMatchObject({ board: { id: 2 }, status: { name: 'New' }, closedFlag: false, company: { name: 'Fabrikam, Inc.' } });
    const id = c.body.id as number;
    const p = await call(
      `${sim.apiUrl}/service/tickets/${id}`,
      json('PATCH', [{ op: 'replace', path: 'summary', value: 'BitLocker finding: FAKE-2 (seen twice)' }], h),
    );
    expect(p.status).toBe(200);
    const close = await call(`${sim.apiUrl}/service/tickets/${id}`, json('PATCH', [{ op: 'replace', path: '/status/name', value: 'Closed' }], h));
    expect(close.body).toMatchObject({ closedFlag: true, status: { id: 39 }, summary: 'BitLocker finding: FAKE-2 (seen twice)' });
    expect(sim.ticket(id)!.closedFlag).toBe(true);
    expect((await call(`${sim.apiUrl}/service/tickets/${id}`, json('PATCH', [{ op: 'remove', path: 'summary' }], h))).status).toBe(400);
    expect((await call(`${sim.apiUrl}/service/tickets/${id}`, json('PATCH', [{ op: 'replace', path: 'status/name', value: 'Nope' }], h))).status).toBe(400);
    const invalid = await call(`${sim.apiUrl}/service/tickets`, json('POST', { company: { id: 1 } }, h));
    expect(invalid.status).toBe(400);
    expect(invalid.body.errors.map((e: Json) => e.field)).toEqual(['summary', 'company']);
  });

  it('throttles every Nth call with 429 and Retry-After', async () => {
    sim.throttleEvery = 2;
    sim.retryAfterSeconds = 3;
    const a = await call(`${sim.apiUrl}/service/tickets/${seeded.open.id}`, { headers: h });
    const b = await call(`${sim.apiUrl}/service/tickets/${seeded.open.id}`, { headers: h });
    expect([a.status, b.status]).toEqual([200, 429]);
    expect(b.headers.get('retry-after')).toBe('3');
    expect(b.body.code).toBe('TooManyRequests');
  });

  it('can be unreachable', async () => {
    sim.unreachable = 'reset';
    await expect(fetch(`${sim.apiUrl}/service/tickets/${seeded.open.id}`, { headers: h })).rejects.toThrow();
    sim.unreachable = '503';
    expect((await call(`${sim.apiUrl}/service/tickets/${seeded.open.id}`, { headers: h })).status).toBe(503);
    expect(sim.requests().every((r) => r.path.startsWith(CW_BASE_PATH))).toBe(true);
  });
});

// ------------------------------------------------------------------------------------------------
describe('Autotask simulator', () => {
  const sim = new AutotaskSimulator({ now: () => clock });
  let seeded: ReturnType<AutotaskSimulator['seed']>;
  let api = '';
  let h: Record<string, string>;

  beforeAll(async () => {
    await sim.start();
    seeded = sim.seed({ companies: 1100 });
    h = sim.authHeaders();
    // the connector starts from the zone lookup, as a real one starts from webservices.autotask.net
    const z = await call(`${sim.url}/atservicesrest/v1.0/zoneInformation?user=${encodeURIComponent(sim.userName)}`);
    expect(z.status).toBe(200);
    expect(z.body).toMatchObject({ url: sim.zoneUrl, zoneName: expect.any(String), webUrl: expect.any(String), ci: expect.any(Number) });
    api = `${z.body.url as string}V1.0`;
  });
  afterAll(async () => {
    expect(sim.errors()).toEqual([]);
    await sim.stop();
  });
  beforeEach(() => {
    sim.authFailure = false;
    sim.unreachable = false;
    sim.throttleEvery = undefined;
    sim.resetLog();
  });

  it('zone lookup needs no auth and is not throttled; unknown user is refused', async () => {
    sim.throttleEvery = 1;
    const z = await call(`${sim.url}/atservicesrest/v1.0/zoneInformation?user=${encodeURIComponent(sim.userName)}`);
    expect(z.status).toBe(200);
    expect((await call(`${sim.url}/atservicesrest/v1.0/zoneInformation?user=someone@else.example`)).status).toBe(404);
  });

  it('needs ApiIntegrationCode, UserName and Secret headers', async () => {
    const url = `${api}/Tickets/${seeded.open.id}`;
    expect((await call(url, { headers: h })).status).toBe(200);
    const bad = await call(url, { headers: { ...h, Secret: 'wrong' } });
    expect(bad.status).toBe(401);
    expect(bad.body.errors).toHaveLength(1);
    expect((await call(url, { headers: { UserName: sim.userName, Secret: sim.secret } })).status).toBe(401);
    sim.authFailure = true;
    expect((await call(url, { headers: h })).status).toBe(401);
  });

  it('gets a ticket as {item} with status, companyID and assignedResourceID; unknown id is item null', async () => {
    const r = await call(`${api}/Tickets/${seeded.open.id}`, { headers: h });
    expect(r.body.item).toMatchObject({
      id: seeded.open.id,
      status: AT_STATUS.InProgress,
      companyID: sim.companies[1]!.id,
      assignedResourceID: sim.resources[0]!.id,
    });
    expect(r.body.item.ticketNumber).toMatch(/^T\d{8}\.\d{4}$/);
    const closed = await call(`${api}/Tickets/${seeded.closed.id}`, { headers: h });
    expect(closed.body.item.status).toBe(AT_STATUS.Complete);
    expect((await call(`${api}/Tickets/999999`, { headers: h })).body).toEqual({ item: null });
  });

  it('queries tickets with a JSON filter (POST and GET ?search=)', async () => {
    const filter = [
      { op: 'eq', field: 'companyID', value: sim.companies[1]!.id },
      { op: 'noteq', field: 'status', value: AT_STATUS.Complete },
    ];
    const post = await call(`${api}/Tickets/query`, json('POST', { filter }, h));
    expect(post.body.items.map((t: Json) => t.id)).toEqual([seeded.open.id, seeded.openUnassigned.id]);
    expect(post.body.pageDetails).toEqual({ count: 2, requestCount: 500, prevPageUrl: null, nextPageUrl: null });
    expect((await call(`${api}/Tickets/query/count`, json('POST', { filter }, h))).body).toEqual({ queryCount: 2 });
    const get = await call(`${api}/Tickets/query?search=${encodeURIComponent(JSON.stringify({ filter, IncludeFields: ['title'] }))}`, { headers: h });
    expect(get.body.items).toEqual([
      { id: seeded.open.id, title: seeded.open.title },
      { id: seeded.openUnassigned.id, title: seeded.openUnassigned.title },
    ]);
    const bad = await call(`${api}/Tickets/query`, json('POST', { filter: [{ op: 'like', field: 'title', value: 'x' }] }, h));
    expect(bad.status).toBe(500);
    expect(bad.body.errors[0]).toContain('like');
    expect((await call(`${api}/Tickets/query`, json('POST', { filter, MaxRecords: 501 }, h))).status).toBe(400);
    expect(
      compileFilter([
        {
          op: 'or',
          items: [
            { op: 'eq', field: 'a', value: 1 },
            { op: 'beginsWith', field: 'b', value: 'co' },
          ],
        },
      ])({ a: 2, b: 'Contoso' }),
    ).toBe(true);
  });

  it('pages companies 500 at a time to the end with nextPageUrl', async () => {
    const first = await call(`${api}/Companies/query`, json('POST', { filter: [{ op: 'exist', field: 'id' }] }, h));
    const ids: number[] = first.body.items.map((c: Json) => c.id as number);
    expect(first.body.pageDetails.count).toBe(500);
    let next = first.body.pageDetails.nextPageUrl as string | null;
    let pages = 1;
    while (next) {
      const r = await call(next, { headers: h });
      expect(r.status).toBe(200);
      ids.push(...r.body.items.map((c: Json) => c.id as number));
      next = r.body.pageDetails.nextPageUrl as string | null;
      pages++;
    }
    expect(pages).toBe(3);
    expect(ids).toEqual(sim.companies.map((c) => c.id));
    const tampered = await call(`${api}/Companies/query/next?paging=abc.def`, { headers: h });
    expect(tampered.status).toBe(400);
    const byName = await call(
      `${api}/Companies/query?search=${encodeURIComponent(JSON.stringify({ filter: [{ op: 'contains', field: 'companyName', value: 'contoso' }] }))}`,
      {
        headers: h,
      },
    );
    expect(byName.body.items.map((c: Json) => c.companyName)).toEqual(['Contoso Ltd', 'Contoso Pharmaceuticals']);
  });

  it('creates an internal note by the root and the child URL, visible through notes()', async () => {
    const note = { title: 'Keywarden', description: 'Recovery key revealed; rotation queued', noteType: 1, publish: AT_PUBLISH.InternalProjectTeam };
    const a = await call(`${api}/TicketNotes`, json('POST', { ...note, ticketID: seeded.open.id }, h));
    expect(a.status).toBe(200);
    expect(typeof a.body.itemId).toBe('number');
    const b = await call(`${api}/Tickets/${seeded.open.id}/Notes`, json('POST', note, h));
    expect(b.status).toBe(200);
    expect(sim.notes(seeded.open.id)).toHaveLength(2);
    expect(sim.notes(seeded.open.id)[0]).toMatchObject({ publish: AT_PUBLISH.InternalProjectTeam, description: note.description });
    const bad = await call(`${api}/Tickets/${seeded.open.id}/Notes`, json('POST', { title: 'x' }, h));
    expect(bad.status).toBe(500);
    expect(bad.body.errors.length).toBe(3);
  });

  it('creates a ticket, updates it and closes it (status Complete sets completedDate)', async () => {
    const c = await call(
      `${api}/Tickets`,
      json('POST', { companyID: sim.companies[2]!.id, title: 'BitLocker finding: FAKE-3', status: AT_STATUS.New, priority: 2, queueID: 8 }, h),
    );
    expect(c.status).toBe(200);
    const id = c.body.itemId as number;
    expect(sim.ticket(id)).toMatchObject({ title: 'BitLocker finding: FAKE-3', completedDate: null });
    expect((await call(`${api}/Tickets`, json('PATCH', { id, description: 'seen again' }, h))).body).toEqual({ itemId: id });
    await call(`${api}/Tickets`, json('PATCH', { id, status: AT_STATUS.Complete }, h));
    expect(sim.ticket(id)).toMatchObject({ status: AT_STATUS.Complete, description: 'seen again', completedDate: new Date(clock).toISOString() });
    const missing = await call(`${api}/Tickets`, json('POST', { title: 'x' }, h));
    expect(missing.status).toBe(500);
    expect(missing.body.errors.length).toBeGreaterThanOrEqual(3);
    expect((await call(`${api}/Tickets`, json('PATCH', { id: 999999, status: 5 }, h))).status).toBe(404);
  });

  it('throttles every Nth call, and enforces the thread limit per entity', async () => {
    sim.throttleEvery = 2;
    sim.retryAfterSeconds = 2;
    await call(`${api}/Tickets/${seeded.open.id}`, { headers: h });
    const t = await call(`${api}/Tickets/${seeded.open.id}`, { headers: h });
    expect(t.status).toBe(429);
    expect(t.headers.get('retry-after')).toBe('2');
    expect(t.body.errors).toHaveLength(1);
    sim.throttleEvery = undefined;

    const slow = new AutotaskSimulator({ latencyMs: 150 });
    await slow.start();
    try {
      slow.seed({ companies: 2 });
      const sh = slow.authHeaders();
      const id = slow.ticketList[0]!.id;
      const results = await Promise.all([0, 1, 2, 3].map(() => call(`${slow.zoneUrl}V1.0/Tickets/${id}`, { headers: sh })));
      expect(results.map((r) => r.status).sort()).toEqual([200, 200, 200, 429]);
      // another entity has its own threads
      expect((await call(`${slow.zoneUrl}V1.0/Companies/${slow.companies[1]!.id}`, { headers: sh })).status).toBe(200);
      // slots are released once answered
      expect((await call(`${slow.zoneUrl}V1.0/Tickets/${id}`, { headers: sh })).status).toBe(200);
      expect(slow.errors()).toEqual([]);
    } finally {
      await slow.stop();
    }
  });

  it('can be unreachable', async () => {
    sim.unreachable = 'reset';
    await expect(fetch(`${api}/Tickets/${seeded.open.id}`, { headers: h })).rejects.toThrow();
    sim.unreachable = '503';
    expect((await call(`${api}/Tickets/${seeded.open.id}`, { headers: h })).status).toBe(503);
    sim.unreachable = false;
    expect((await call(`${api}/Tickets/${seeded.open.id}`, { headers: h })).status).toBe(200);
  });
});
