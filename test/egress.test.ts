/**
 * The egress policy (src/integrations/egress.ts) on its own, without a database, and then Microsoft
 * Graph connections through HTTP on the engine under test: refused targets, redirects, foreign
 * @odata.nextLink pages and remote error text that must never be repeated.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createEgressPolicy, egressProblem, parseEgressAllow, type EgressKind } from '../src/integrations/egress.js';
import { AppError } from '../src/lib/errors.js';
import { systemActor } from '../src/modules/authz/authz.js';
import { createTestApp, type Session, type TestApp } from './helpers/app.js';
import { ENGINE } from './helpers/engine.js';
import { bytes, csvOf, randomKeyId, randomRecoveryPassword } from './helpers/keys.js';

type Hit = { method: string; url: string; authorization: string | undefined; local: string };
type Lab = { port: number; url: string; hits: Hit[]; close(): Promise<void> };

/** A listener that records every request it receives and answers with `handler`. */
async function listener(handler: (req: http.IncomingMessage, res: http.ServerResponse) => void = (_q, r) => r.end('ok'), host = '127.0.0.1'): Promise<Lab> {
  const hits: Hit[] = [];
  const server = http.createServer((req, res) => {
    hits.push({ method: req.method!, url: req.url!, authorization: req.headers.authorization, local: req.socket.localAddress! });
    req.resume();
    req.on('end', () => handler(req, res));
  });
  await new Promise<void>((r) => server.listen(0, host, r));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    url: `http://${host}:${port}`,
    hits,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

const json = (res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
};

/** The refusal of resolve(), or null when the address is accepted. */
async function refusal(policy: ReturnType<typeof createEgressPolicy>, host: string, port: number, kind: EgressKind): Promise<string | null> {
  try {
    await policy.resolve(host, port, kind, 'the test service');
    return null;
  } catch (e) {
    expect(e).toBeInstanceOf(AppError);
    expect((e as AppError).status).toBe(400);
    return (e as AppError).message;
  }
}

const labs: Lab[] = [];
const lab = async (...args: Parameters<typeof listener>) => {
  const l = await listener(...args);
  labs.push(l);
  return l;
};
afterEach(async () => {
  await Promise.all(labs.splice(0).map((l) => l.close()));
});

describe('the egress policy', () => {
  const none = createEgressPolicy({ allow: [] });
  const refusedEverywhere = [
    '127.0.0.1',
    '127.8.9.10',
    '::1',
    '169.254.169.254',
    'fe80::1',
    '0.0.0.0',
    '::',
    '100.64.0.1',
    '100.127.255.254',
    '224.0.0.1',
    'ff02::1',
    '::ffff:127.0.0.1',
    '::ffff:7f00:1',
    '::ffff:169.254.169.254',
    '::ffff:a9fe:a9fe',
    '64:ff9b::7f00:1',
    'fd00:ec2::254',
    'metadata.google.internal',
    'metadata.google.internal.',
    'METADATA.GOOGLE.INTERNAL',
  ];
  const privateOnes = ['10.0.0.5', '172.16.0.1', '172.31.255.254', '192.168.1.1', 'fd00::1', 'fc12:3456::1', '::ffff:10.0.0.5', '::ffff:c0a8:101'];

  it.each(refusedEverywhere)('refuses %s for internet and local services', async (host) => {
    expect(await refusal(none, host, 443, 'internet')).toMatch(/^Keywarden does not connect to .*KEYWARDEN_EGRESS_ALLOW/);
    expect(await refusal(none, host, 443, 'local')).toMatch(/^Keywarden does not connect to /);
  });

  it.each(privateOnes)('refuses the private address %s for internet services, allows it for local ones', async (host) => {
    expect(await refusal(none, host, 443, 'internet')).toMatch(/a private network address/);
    expect(await refusal(none, host, 25, 'local')).toBeNull();
  });

  it('says what the address is, in product words', () => {
    expect(egressProblem('127.0.0.1', 'internet')).toBe('a loopback address');
    expect(egressProblem('169.254.169.254', 'local')).toMatch(/link-local .*metadata/);
    expect(egressProblem('100.64.1.1', 'local')).toBe('a carrier-grade NAT address');
    expect(egressProblem('10.1.2.3', 'internet')).toBe('a private network address');
    expect(egressProblem('10.1.2.3', 'local')).toBeNull();
    expect(egressProblem('172.32.0.1', 'internet')).toBeNull();
    expect(egressProblem('8.8.8.8', 'internet')).toBeNull();
    expect(egressProblem('2606:4700::1111', 'internet')).toBeNull();
  });

  it('accepts public addresses, and a name only when every address it resolves to passes', async () => {
    expect(await none.resolve('8.8.8.8', 443, 'internet', 'Microsoft Graph')).toEqual({ address: '8.8.8.8', family: 4 });
    expect(await none.resolve('[2606:4700::1111]', 443, 'internet', 'Microsoft Graph')).toEqual({ address: '2606:4700::1111', family: 6 });
    const answers: Record<string, { address: string; family: number }[]> = {
      'public.example': [{ address: '20.190.151.6', family: 4 }],
      'mixed.example': [
        { address: '20.190.151.6', family: 4 },
        { address: '10.0.0.5', family: 4 },
      ],
      'mixed6.example': [
        { address: '2603:1026::1', family: 6 },
        { address: '::1', family: 6 },
      ],
    };
    const policy = createEgressPolicy({ allow: [], lookup: async (h) => answers[h] ?? [] });
    expect(await policy.resolve('public.example', 443, 'internet', 'Microsoft Graph')).toEqual({ address: '20.190.151.6', family: 4 });
    expect(await refusal(policy, 'mixed.example', 443, 'internet')).toMatch(/mixed\.example \(10\.0\.0\.5\), a private network address/);
    expect(await refusal(policy, 'mixed6.example', 443, 'local')).toMatch(/\(::1\), a loopback address/);
    expect(await refusal(policy, 'nothing.example', 443, 'internet')).toMatch(/could not be resolved/);
    const failing = createEgressPolicy({
      allow: [],
      lookup: async () => {
        throw new Error('ENOTFOUND');
      },
    });
    expect(await refusal(failing, 'gone.example', 443, 'internet')).toMatch(/^The name gone\.example of the test service could not be resolved\.$/);
  });

  it('opens exactly what each KEYWARDEN_EGRESS_ALLOW entry names', async () => {
    const allow = parseEgressAllow(' relay.lab , smtp.lab:587, 10.0.0.5:25, 192.168.0.0/16, [fd00::1]:8443, 127.0.0.1, ::1 ');
    expect(allow).toHaveLength(7);
    const answers: Record<string, string> = { 'relay.lab': '10.0.0.9', 'other.lab': '10.0.0.9', 'smtp.lab': '10.0.0.7', 'loop.lab': '127.0.0.1' };
    const policy = createEgressPolicy({
      allow,
      lookup: async (h) => (answers[h] ? [{ address: answers[h]!, family: 4 }] : []),
    });
    const ok = async (host: string, port: number, kind: EgressKind = 'internet') => (await refusal(policy, host, port, kind)) === null;
    // A host name: that name on any port, whatever it resolves to; not another name with the same address.
    expect(await ok('relay.lab', 443)).toBe(true);
    expect(await ok('RELAY.LAB.', 8080)).toBe(true);
    expect(await ok('other.lab', 443)).toBe(false);
    // host:port: only that port.
    expect(await ok('smtp.lab', 587)).toBe(true);
    expect(await ok('smtp.lab', 25)).toBe(false);
    // address:port: only that address and port.
    expect(await ok('10.0.0.5', 25)).toBe(true);
    expect(await ok('10.0.0.5', 26)).toBe(false);
    expect(await ok('10.0.0.6', 25)).toBe(false);
    // CIDR: every address inside, any port; nothing outside.
    expect(await ok('192.168.44.5', 443)).toBe(true);
    expect(await ok('::ffff:192.168.44.5', 443)).toBe(true);
    expect(await ok('172.16.0.1', 443)).toBe(false);
    // [v6]:port.
    expect(await ok('[fd00::1]', 8443)).toBe(true);
    expect(await ok('fd00::1', 443)).toBe(false);
    expect(await ok('fd00::2', 8443)).toBe(false);
    // One loopback address opens that address, by address or by a name resolving to it; not its neighbours.
    expect(await ok('127.0.0.1', 9)).toBe(true);
    expect(await ok('loop.lab', 9)).toBe(true);
    expect(await ok('127.0.0.2', 9)).toBe(false);
    expect(await ok('::1', 9)).toBe(true);
    // Allowing something never opens the metadata address or name.
    expect(await ok('169.254.169.254', 80)).toBe(false);
    expect(await ok('metadata.google.internal', 80)).toBe(false);
    // Only an entry naming it opens a metadata name (on the port it names).
    const opened = createEgressPolicy({
      allow: parseEgressAllow('metadata.google.internal:80'),
      lookup: async () => [{ address: '169.254.169.254', family: 4 }],
    });
    expect(await refusal(opened, 'metadata.google.internal', 80, 'internet')).toBeNull();
    expect(await refusal(opened, 'metadata.google.internal', 443, 'internet')).toMatch(/cloud metadata name/);
    expect(await refusal(opened, '169.254.169.254', 80, 'internet')).toMatch(/link-local/);

    expect(parseEgressAllow('')).toEqual([]);
    expect(parseEgressAllow(undefined)).toEqual([]);
    for (const bad of ['relay.lab:smtp', '10.0.0.0/33', 'bad host', 'relay.lab:70000', 'relay.lab/24', '[fd00::1]:0']) {
      expect(() => parseEgressAllow(bad), bad).toThrow(/KEYWARDEN_EGRESS_ALLOW/);
    }
  });

  it('connects to the address it checked: a name that resolves elsewhere afterwards (DNS rebinding) does not reach it', async () => {
    // 127.0.0.2 stands in for a public address (allowed below); 127.0.0.1 is the internal target the
    // name points to from its second answer on.
    const outside = await lab((_q, r) => r.end('outside'), '127.0.0.2');
    const inside = await lab((_q, r) => r.end('INTERNAL'), '127.0.0.1');
    let lookups = 0;
    const policy = createEgressPolicy({
      allow: parseEgressAllow('127.0.0.2'),
      lookup: async () => [{ address: lookups++ === 0 ? '127.0.0.2' : '127.0.0.1', family: 4 }],
    });
    // Both listeners share one port number only by chance; the request names the outside one's port.
    const url = `http://rebind.test:${outside.port}/hello`;
    const res = await policy.fetch(url, {}, 'internet', 'the webhook');
    expect(await res.text()).toBe('outside');
    expect(lookups).toBe(1);
    expect(outside.hits).toEqual([expect.objectContaining({ url: '/hello', local: '127.0.0.2' })]);
    // The next request resolves again and is refused: the name now points inside.
    await expect(policy.fetch(url, {}, 'internet', 'the webhook')).rejects.toThrow(/rebind\.test \(127\.0\.0\.1\), a loopback address/);
    expect(lookups).toBe(2);
    expect(inside.hits).toEqual([]);
    expect(outside.hits).toHaveLength(1);
  });

  it('reuses connections to a checked address, and never follows a redirect', async () => {
    const second = await lab();
    const first = await lab((req, res) => {
      if (req.url === '/go') {
        res.writeHead(302, { location: `${second.url}/followed` });
        res.end();
      } else res.end(`ok ${req.socket.remotePort}`);
    });
    const policy = createEgressPolicy({ allow: parseEgressAllow('127.0.0.1') });
    const seen = new Set<string>();
    for (const path of ['/a', '/b', '/c', '/d', '/e']) seen.add(await (await policy.fetch(`${first.url}${path}`, {}, 'internet', 'the webhook')).text());
    // Kept-alive connections are reused (a connection is released just after its answer is read).
    expect(seen.size).toBeLessThanOrEqual(2);
    const res = await policy.fetch(`${first.url}/go`, { redirect: 'follow' }, 'internet', 'the webhook');
    expect(res.status).toBe(302);
    expect(res.headers.get('location')).toBe(`${second.url}/followed`);
    await res.body?.cancel();
    expect(second.hits).toEqual([]);
    // Without the allow-list entry, the same loopback listener is refused before any connection.
    await expect(createEgressPolicy({ allow: [] }).fetch(`${first.url}/f`, {}, 'local', 'the SMTP relay')).rejects.toThrow(/a loopback address/);
    await expect(policy.fetch(`ftp://127.0.0.1:${first.port}/`, {}, 'internet', 'the webhook')).rejects.toThrow(/must be an http\(s\) address/);
    expect(first.hits.map((h) => h.url)).toEqual(['/a', '/b', '/c', '/d', '/e', '/go']);
  });
});

// ------------------------------------------------------------------------------------ Graph over HTTP

const API = '/api/v1';
const admin = systemActor('test');
const SECRET = 'INTERNAL-SECRET';
let tenantSeq = 0;
const tenantId = () => `7e57${String(++tenantSeq).padStart(4, '0')}-1111-4222-8333-444444444444`;
const APP_ID = '5a5a5a5a-1111-4222-8333-444444444444';
const PUBLIC = { loginUrl: 'https://20.190.151.6', graphUrl: 'https://20.190.151.7' };

describe(`Microsoft Graph connections and the egress policy on ${ENGINE}`, () => {
  let t: TestApp;
  let owner: Session;
  let n = 0;

  const connectionBody = async (urls: { loginUrl?: string; graphUrl?: string }) => {
    const client = await t.container.clients.create(admin, { name: `Egress ${++n}` });
    return { client, body: { clientId: client.id, tenantId: tenantId(), appClientId: APP_ID, clientSecret: 'lab-secret', ...urls } };
  };
  const connect = async (urls: { loginUrl: string; graphUrl: string }) => {
    const { client, body } = await connectionBody(urls);
    const r = await t.app.inject({ method: 'POST', url: `${API}/graph/connections`, headers: owner.headers, payload: body });
    expect(r.statusCode, r.body).toBe(201);
    return { client, id: r.json().id as string };
  };
  /** A token endpoint and Graph on one lab listener; `graph` answers every Graph request. */
  const fakeGraph = (graph: (req: http.IncomingMessage, res: http.ServerResponse) => void) =>
    lab((req, res) => {
      if (req.url!.endsWith('/oauth2/v2.0/token')) json(res, 200, { token_type: 'Bearer', access_token: 'lab-bearer-token', expires_in: 3600 });
      else graph(req, res);
    });

  beforeAll(async () => {
    // The default test allow-list: the loopback lab listeners are reachable.
    t = await createTestApp();
    owner = await t.signIn((await t.addUser('owner', 'all', 'owner@example.test')).email);
  });
  afterAll(async () => {
    await t.close();
  });

  it('refuses loopback, metadata, link-local, private and ULA sign-in and Graph URLs when they are not allowed (400, audited)', async () => {
    const strict = await createTestApp({ KEYWARDEN_EGRESS_ALLOW: '' });
    try {
      const s = await strict.signIn((await strict.addUser('owner', 'all', 'owner@example.test')).email);
      const watched = await lab();
      const client = await strict.container.clients.create(admin, { name: 'Strict' });
      const cases: [Record<string, string>, RegExp][] = [
        [{ loginUrl: `http://127.0.0.1:${watched.port}` }, /loopback/],
        [{ loginUrl: `http://localhost:${watched.port}/login` }, /loopback/],
        [{ graphUrl: `http://[::1]:${watched.port}` }, /loopback/],
        [{ loginUrl: 'https://169.254.169.254' }, /link-local/],
        [{ graphUrl: 'https://169.254.169.254/latest/meta-data' }, /link-local/],
        [{ loginUrl: 'https://metadata.google.internal' }, /cloud metadata name/],
        [{ graphUrl: 'https://10.0.0.5:8443' }, /private network/],
        [{ graphUrl: 'https://192.168.1.10' }, /private network/],
        [{ loginUrl: 'https://[fd00::1]' }, /private network/],
        [{ loginUrl: 'https://[::ffff:127.0.0.1]' }, /loopback/],
        [{ graphUrl: 'https://100.64.0.1' }, /carrier-grade NAT/],
      ];
      for (const [urls, why] of cases) {
        const r = await strict.app.inject({
          method: 'POST',
          url: `${API}/graph/connections`,
          headers: s.headers,
          // Public addresses for the field a case leaves alone (no name to resolve in the test bed).
          payload: { clientId: client.id, tenantId: tenantId(), appClientId: APP_ID, clientSecret: 'lab-secret', ...PUBLIC, ...urls },
        });
        expect(r.statusCode, JSON.stringify(urls)).toBe(400);
        expect(r.json().message).toMatch(why);
        expect(r.json().message).toMatch(/KEYWARDEN_EGRESS_ALLOW/);
      }
      expect(watched.hits).toEqual([]);
      expect(await strict.container.graph.listConnections(admin)).toEqual([]);
      // Public addresses are accepted (nothing is contacted when a connection is created).
      const ok = await strict.app.inject({
        method: 'POST',
        url: `${API}/graph/connections`,
        headers: s.headers,
        payload: { clientId: client.id, tenantId: tenantId(), appClientId: APP_ID, clientSecret: 'lab-secret', ...PUBLIC },
      });
      expect(ok.statusCode).toBe(201);
      const audited = await strict.container.audit.list(admin, { action: 'graph.connect' });
      expect(audited.filter((a) => a.outcome === 'failure')).toHaveLength(cases.length);
      for (const a of audited.filter((a) => a.outcome === 'failure'))
        expect(a).toMatchObject({ clientId: client.id, details: expect.objectContaining({ why: expect.stringMatching(/^Keywarden does not connect to /) }) });
    } finally {
      await strict.close();
    }
  });

  it('a sign-in endpoint that redirects fails the sync; the redirect target receives nothing', async () => {
    const elsewhere = await lab();
    const login = await lab((_q, res) => {
      res.writeHead(302, { location: `${elsewhere.url}/followed-redirect` });
      res.end();
    });
    const graph = await fakeGraph((_q, res) => json(res, 200, { value: [] }));
    const { id } = await connect({ loginUrl: login.url, graphUrl: graph.url });
    const run = await t.app.inject({ method: 'POST', url: `${API}/graph/connections/${id}/sync`, headers: owner.headers });
    expect(run.statusCode).toBe(200);
    expect(run.json()).toMatchObject({ status: 'failed' });
    expect(run.json().errorText).toMatch(/^HTTP 302 redirect: The Microsoft sign-in endpoint answered with a redirect, which Keywarden does not follow/);
    const test = await t.app.inject({ method: 'POST', url: `${API}/graph/connections/${id}/test`, headers: owner.headers });
    expect(test.json().checks[0]).toMatchObject({ ok: false, detail: expect.stringMatching(/redirect, which Keywarden does not follow/) });
    expect(login.hits.length).toBeGreaterThan(0);
    expect(elsewhere.hits).toEqual([]);
    expect(graph.hits).toEqual([]);
  });

  it('Graph answering with a redirect fails the sync; the bearer token goes nowhere else', async () => {
    const elsewhere = await lab();
    const graph = await fakeGraph((_q, res) => {
      res.writeHead(307, { location: `${elsewhere.url}/steal` });
      res.end();
    });
    const { id } = await connect({ loginUrl: graph.url, graphUrl: graph.url });
    const run = (await t.app.inject({ method: 'POST', url: `${API}/graph/connections/${id}/sync`, headers: owner.headers })).json();
    expect(run).toMatchObject({ status: 'failed', errorText: expect.stringMatching(/^HTTP 307 redirect: Microsoft Graph answered with a redirect/) });
    expect(elsewhere.hits).toEqual([]);
  });

  it('an @odata.nextLink on another origin is not requested and fails the sync with product words', async () => {
    const elsewhere = await lab((_q, res) => json(res, 200, { value: [] }));
    const graph = await fakeGraph((req, res) =>
      json(res, 200, {
        value: [{ id: '11111111-2222-4333-8444-555555555555', createdDateTime: '2025-01-01T00:00:00Z', volumeType: 1, deviceId: null }],
        // The same machine, another port: allowed by the egress policy, but not the Graph origin.
        '@odata.nextLink': `${elsewhere.url}/internal-admin/api?via=nextLink`,
      }),
    );
    const { id } = await connect({ loginUrl: graph.url, graphUrl: `${graph.url}/` });
    const run = (await t.app.inject({ method: 'POST', url: `${API}/graph/connections/${id}/sync`, headers: owner.headers })).json();
    expect(run).toMatchObject({ status: 'failed', newKeys: 0 });
    expect(run.errorText).toBe(
      'foreign_link: Microsoft Graph pointed to a next page outside the Graph URL of this connection, which Keywarden does not follow.',
    );
    expect(elsewhere.hits).toEqual([]);
    expect(graph.hits.filter((h) => h.authorization).every((h) => h.authorization === 'Bearer lab-bearer-token')).toBe(true);

    // A next page on the same origin is followed.
    let page = 0;
    const paged = await fakeGraph((req, res) =>
      json(
        res,
        200,
        page++ === 0
          ? { value: [], '@odata.nextLink': `http://${req.headers.host}/v1.0/informationProtection/bitlocker/recoveryKeys?$skiptoken=2` }
          : { value: [] },
      ),
    );
    const other = await connect({ loginUrl: paged.url, graphUrl: paged.url });
    const ok = (await t.app.inject({ method: 'POST', url: `${API}/graph/connections/${other.id}/sync`, headers: owner.headers })).json();
    expect(ok).toMatchObject({ status: 'succeeded' });
    expect(paged.hits.some((h) => h.url.endsWith('$skiptoken=2'))).toBe(true);
  });

  it("the remote side's error text never reaches the sync run, the API, the audit log or the CLI", async () => {
    const graph = await fakeGraph((req, res) => {
      if (req.url!.includes('/recoveryKeys')) json(res, 500, { error: { code: `${SECRET}-code`, message: `${SECRET}: db_password=hunter2` } });
      else json(res, 403, { error: { code: 'Authorization_RequestDenied', message: `${SECRET} in a known code's message` } });
    });
    const login = await lab((_q, res) => json(res, 401, { error: SECRET, error_description: `${SECRET} via error_description`, error_codes: [7000215] }));
    const known = await lab((_q, res) => json(res, 401, { error: 'invalid_client', error_description: `AADSTS7000215: ${SECRET}` }));
    const failing = await connect({ loginUrl: graph.url, graphUrl: graph.url });
    const badLogin = await connect({ loginUrl: login.url, graphUrl: graph.url });
    const badSecret = await connect({ loginUrl: known.url, graphUrl: graph.url });

    const outputs: string[] = [];
    const call = async (method: 'GET' | 'POST', url: string) => {
      const r = await t.app.inject({ method, url: `${API}${url}`, headers: owner.headers });
      outputs.push(r.body);
      return r.json();
    };
    expect(await call('POST', `/graph/connections/${failing.id}/sync`)).toMatchObject({
      status: 'failed',
      errorText: 'HTTP 500 http_500: Microsoft Graph had a server error (HTTP 500).',
    });
    expect(await call('POST', `/graph/connections/${badLogin.id}/sync`)).toMatchObject({
      status: 'failed',
      // Only the AADSTS number Keywarden knows (from error_codes) is used, in Keywarden's words.
      errorText: expect.stringMatching(/^HTTP 401 http_401: The Microsoft sign-in endpoint refused the client secret: .*\(AADSTS7000215\)\.$/),
    });
    expect(await call('POST', `/graph/connections/${badSecret.id}/sync`)).toMatchObject({
      status: 'failed',
      errorText: expect.stringMatching(/^HTTP 401 invalid_client: The Microsoft sign-in endpoint refused the application ID or secret/),
    });
    const tested = await call('POST', `/graph/connections/${failing.id}/test`);
    expect(tested.checks).toContainEqual(
      expect.objectContaining({
        check: 'Device.Read.All: read devices',
        ok: false,
        detail: expect.stringMatching(/^403 Authorization_RequestDenied: Microsoft Graph denied access/),
      }),
    );
    await call('POST', `/graph/connections/${badLogin.id}/test`);
    for (const c of [failing, badLogin, badSecret]) await call('GET', `/graph/connections/${c.id}/runs`);
    await call('GET', '/graph/connections');
    await call('GET', '/audit?limit=500');
    for (const c of [failing, badLogin]) {
      const name = c.client.name;
      for (const args of [
        ['graph', 'sync', '--client', name],
        ['graph', 'test', '--client', name],
        ['graph', 'list'],
      ]) {
        const r = await t.cli(args);
        outputs.push(r.stdout, r.stderr);
      }
    }
    const runs = await t.container.database.db.selectFrom('sync_runs').select('error_text').execute();
    outputs.push(JSON.stringify(runs));
    const events = await t.container.audit.list(admin, { limit: 1000 });
    outputs.push(JSON.stringify(events));
    const all = outputs.join('\n');
    expect(all).toContain('Microsoft Graph had a server error');
    expect(all).not.toContain(SECRET);
    expect(all).not.toContain('hunter2');
    // An AADSTS number appears only as Keywarden names a number it knows ("… (AADSTS7000215)."), never in Microsoft's text.
    expect(all.match(/AADSTS7000215/g)?.length ?? 0).toBe(all.match(/\(AADSTS7000215\)\./g)?.length ?? 0);
  });
});

describe(`PSA connections and the egress policy on ${ENGINE}`, () => {
  it('a PSA address the egress policy does not allow is never contacted: the connection test and a ticket check say why', async () => {
    const strict = await createTestApp({ KEYWARDEN_EGRESS_ALLOW: '' });
    try {
      const owner = await strict.signIn((await strict.addUser('owner', 'all', 'psa-owner@example.test')).email);
      const watched = await lab();
      const put = await strict.app.inject({
        method: 'PUT',
        url: `${API}/settings/psa`,
        headers: owner.headers,
        payload: { kind: 'halopsa', url: watched.url, clientId: 'lab', clientSecret: 'lab-psa-secret' },
      });
      expect(put.statusCode, put.body).toBe(200);
      expect(put.json()).toMatchObject({ status: 'failing', lastError: expect.stringMatching(/loopback.*KEYWARDEN_EGRESS_ALLOW/s) });
      // Listing companies (to link a client) goes nowhere either, and says why.
      const companies = await strict.app.inject({ method: 'GET', url: `${API}/psa/companies`, headers: owner.headers });
      expect(companies.statusCode).toBe(503);
      expect(companies.json().message).toMatch(/egress|loopback/);

      // A client whose reveals require a ticket (linked while the PSA was allowed: set in the table here).
      const client = await strict.container.clients.create(admin, { name: 'Egress PSA' });
      await strict.container.database.db
        .insertInto('psa_client_settings')
        .values({
          client_id: client.id,
          company_id: '10',
          company_name: 'Lab Ltd',
          ticket_policy: 'required',
          require_assignee: 0,
          updated_at: new Date().toISOString(),
          updated_by_name: 'test',
        })
        .execute();
      const k = { device: 'FAKE-EGRESS', keyId: randomKeyId(), password: randomRecoveryPassword() };
      await strict.container.imports.importFile(admin, client.name, { fileName: 'k.csv', bytes: bytes(csvOf([k])) });
      const reveal = await strict.app.inject({
        method: 'POST',
        url: `${API}/keys/${k.keyId}/reveal`,
        headers: owner.headers,
        payload: { reason: 'lost-pin', ticket: '1234' },
      });
      // The PSA cannot be asked (the vault's own policy forbids its address): required refuses, naming why.
      expect(reveal.statusCode, reveal.body).toBe(503);
      expect(reveal.json().message).toMatch(/HaloPSA cannot be reached to check ticket 1234 \(.*loopback.*KEYWARDEN_EGRESS_ALLOW/s);
      expect(reveal.body).not.toContain(k.password);
      expect(watched.hits).toEqual([]);
      expect(JSON.stringify(await strict.container.audit.list(admin, { limit: 200 }))).not.toContain('lab-psa-secret');
    } finally {
      await strict.close();
    }
  });

  it('a PSA answering with a redirect is not followed: its target receives nothing, and no secret travels', async () => {
    const t = await createTestApp();
    try {
      const owner = await t.signIn((await t.addUser('owner', 'all', 'psa-owner@example.test')).email);
      const elsewhere = await lab();
      const redirecting = await lab((_q, res) => {
        res.writeHead(302, { location: `${elsewhere.url}/auth/token` });
        res.end();
      });
      const put = await t.app.inject({
        method: 'PUT',
        url: `${API}/settings/psa`,
        headers: owner.headers,
        payload: { kind: 'halopsa', url: redirecting.url, clientId: 'lab', clientSecret: 'lab-psa-secret' },
      });
      expect(put.statusCode, put.body).toBe(200);
      expect(put.json()).toMatchObject({ status: 'failing', lastError: expect.stringMatching(/redirect/) });
      expect(redirecting.hits.length).toBeGreaterThan(0);
      expect(elsewhere.hits).toEqual([]);
      expect(put.body).not.toContain('lab-psa-secret');
    } finally {
      await t.close();
    }
  });
});
