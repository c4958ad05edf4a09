/**
 * Tests of the Graph / identity-platform simulator itself (test/graph-sim), with plain fetch.
 * The simulator's clock is injected so token expiry and Retry-After need no sleeping.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { GraphSimulator, isValidRecoveryPassword, type SimKey, type SimTenant } from './graph-sim/simulator.js';

const T0 = Date.parse('2025-03-01T08:00:00Z');
let clock = T0;
const sim = new GraphSimulator({ now: () => clock });
let loginUrl = '';
let graphUrl = '';

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

type Json = Record<string, any>;

async function tokenRequest(tenantId: string, form: Record<string, string>): Promise<{ status: number; body: Json }> {
  const res = await fetch(`${loginUrl}/${tenantId}/oauth2/v2.0/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(form).toString(),
  });
  return { status: res.status, body: (await res.json()) as Json };
}

async function tokenFor(t: SimTenant): Promise<string> {
  const r = await tokenRequest(t.tenantId, {
    grant_type: 'client_credentials',
    client_id: t.clientId,
    client_secret: t.clientSecret,
    scope: 'https://graph.microsoft.com/.default',
  });
  expect(r.status).toBe(200);
  return r.body.access_token as string;
}

async function graph(token: string | null, pathOrUrl: string, init: RequestInit = {}): Promise<{ status: number; body: Json; headers: Headers }> {
  const url = pathOrUrl.startsWith('http') ? pathOrUrl : `${graphUrl}${pathOrUrl}`;
  const headers: Record<string, string> = { 'user-agent': 'keywarden-test/1.0' };
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(url, { ...init, headers });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as Json) : {}, headers: res.headers };
}

const KEYS = '/v1.0/informationProtection/bitlocker/recoveryKeys';

async function listAll(token: string, first: string): Promise<{ items: Json[]; pages: number }> {
  const items: Json[] = [];
  let next: string | undefined = first;
  let pages = 0;
  while (next) {
    const r = await graph(token, next);
    expect(r.status).toBe(200);
    items.push(...(r.body.value as Json[]));
    next = r.body['@odata.nextLink'] as string | undefined;
    pages++;
  }
  return { items, pages };
}

beforeAll(async () => {
  ({ loginUrl, graphUrl } = await sim.start());
});
afterAll(async () => {
  expect(sim.errors()).toEqual([]);
  await sim.stop();
});
beforeEach(() => {
  clock = T0;
});

describe('graph simulator: token endpoint', () => {
  it('issues a bearer token for the client-credentials grant and logs the request', async () => {
    const t = sim.addTenant({ tenantId: '11111111-1111-4111-8111-111111111111' });
    expect(t.clientId).toMatch(GUID);
    expect(t.permissions.has('BitlockerKey.Read.All')).toBe(true);
    const r = await tokenRequest(t.tenantId, {
      grant_type: 'client_credentials',
      client_id: t.clientId,
      client_secret: t.clientSecret,
      scope: 'https://graph.microsoft.com/.default',
    });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ token_type: 'Bearer', expires_in: 3600 });
    expect(typeof r.body.access_token).toBe('string');
    expect(sim.requests(t.tenantId)).toMatchObject([{ method: 'POST', kind: 'token', status: 200 }]);
  });

  it('rejects a wrong secret (401 invalid_client, AADSTS7000215), an unknown tenant (400 AADSTS90002) and bad grants/scopes', async () => {
    const t = sim.addTenant({ tenantId: '22222222-2222-4222-8222-222222222222' });
    const base = { grant_type: 'client_credentials', client_id: t.clientId, client_secret: t.clientSecret, scope: 'https://graph.microsoft.com/.default' };

    const wrong = await tokenRequest(t.tenantId, { ...base, client_secret: 'nope' });
    expect(wrong.status).toBe(401);
    expect(wrong.body.error).toBe('invalid_client');
    expect(wrong.body.error_description).toMatch(/^AADSTS7000215: Invalid client secret provided\./);
    expect(wrong.body.error_codes).toEqual([7000215]);

    const unknown = await tokenRequest('99999999-9999-4999-8999-999999999999', base);
    expect(unknown.status).toBe(400);
    expect(unknown.body.error).toBe('invalid_request');
    expect(unknown.body.error_description).toMatch(/^AADSTS90002: Tenant '99999999-9999-4999-8999-999999999999' not found\./);

    expect((await tokenRequest(t.tenantId, { ...base, grant_type: 'password' })).body.error).toBe('unsupported_grant_type');
    expect((await tokenRequest(t.tenantId, { ...base, scope: 'BitlockerKey.Read.All' })).body.error).toBe('invalid_scope');
    expect((await tokenRequest(t.tenantId, { ...base, client_id: '00000000-0000-4000-8000-000000000000' })).body.error).toBe('unauthorized_client');
    const get = await fetch(`${loginUrl}/${t.tenantId}/oauth2/v2.0/token`);
    expect(get.status).toBe(400);
  });
});

describe('graph simulator: authentication and isolation', () => {
  it('answers 401 InvalidAuthenticationToken for missing, unknown and expired tokens (injected clock)', async () => {
    const t = sim.seedTenant('33333333-3333-4333-8333-333333333333', { keys: 3, devices: 3 });
    t.tokenLifetimeSeconds = 60;
    const token = await tokenFor(t);
    expect((await graph(token, KEYS)).status).toBe(200);

    const missing = await graph(null, KEYS);
    expect(missing.status).toBe(401);
    expect(missing.body.error.code).toBe('InvalidAuthenticationToken');
    expect(missing.headers.get('www-authenticate')).toMatch(/^Bearer /);

    const garbage = await graph('not-a-token', KEYS);
    expect(garbage.status).toBe(401);
    expect(garbage.body.error.code).toBe('InvalidAuthenticationToken');

    clock = T0 + 61_000;
    const expired = await graph(token, KEYS);
    expect(expired.status).toBe(401);
    expect(expired.body.error).toMatchObject({ code: 'InvalidAuthenticationToken', message: 'Access token has expired or is not yet valid.' });
    expect(expired.body.error.innerError['request-id']).toMatch(GUID);
    expect(sim.requests(t.tenantId).at(-1)).toMatchObject({ status: 401 });

    const fresh = await tokenFor(t);
    expect((await graph(fresh, KEYS)).status).toBe(200);
    sim.expireTokens(t.tenantId);
    expect((await graph(fresh, KEYS)).status).toBe(401);
  });

  it('a token only ever reads its own tenant', async () => {
    const a = sim.seedTenant('44444444-4444-4444-8444-44444444444a', { keys: 2, devices: 2 });
    const b = sim.seedTenant('44444444-4444-4444-8444-44444444444b', { keys: 2, devices: 2 });
    const tokenA = await tokenFor(a);
    const list = await graph(tokenA, KEYS);
    expect((list.body.value as Json[]).map((k) => k.id).sort()).toEqual(a.keys.map((k) => k.id).sort());
    const other = await graph(tokenA, `${KEYS}/${b.keys[0]!.id}?$select=key`);
    expect(other.status).toBe(404);
    expect(other.body.error.code).toBe('Request_ResourceNotFound');
    expect(sim.keyReads(b.tenantId).size).toBe(0);
    expect(sim.requests(b.tenantId)).toEqual([]);
  });
});

describe('graph simulator: recoveryKeys', () => {
  it('seeds valid recovery passwords, half number / half name volume types, FAKE-<n> devices', () => {
    const t = sim.seedTenant('55555555-5555-4555-8555-555555555555', { keys: 100, devices: 40, seed: 'fixed' });
    expect(t.keys).toHaveLength(100);
    expect(t.devices).toHaveLength(40);
    for (const k of t.keys) {
      expect(k.id).toMatch(GUID);
      expect(isValidRecoveryPassword(k.key)).toBe(true);
      expect(Number.isNaN(Date.parse(k.createdDateTime))).toBe(false);
    }
    expect(t.keys.filter((k) => typeof k.volumeType === 'number')).toHaveLength(50);
    expect(t.keys.filter((k) => typeof k.volumeType === 'string').every((k) => /^[a-zA-Z]+Volume$/.test(String(k.volumeType)))).toBe(true);
    expect(t.devices.map((d) => d.displayName).slice(0, 3)).toEqual(['FAKE-1', 'FAKE-2', 'FAKE-3']);
    const deviceIds = new Set(t.devices.map((d) => d.deviceId));
    expect(t.keys.every((k) => deviceIds.has(k.deviceId))).toBe(true);
    expect(t.managedDevices.length).toBe(36); // every tenth device is not in Intune
    // Same seed, same tenant → same data.
    const sim2 = new GraphSimulator({ now: () => clock });
    expect(sim2.seedTenant('55555555-5555-4555-8555-555555555555', { keys: 100, devices: 40, seed: 'fixed' }).keys).toEqual(t.keys);
  });

  it('pages with @odata.nextLink (no $top): every key exactly once, never the password', async () => {
    const t = sim.seedTenant('66666666-6666-4666-8666-666666666666', { keys: 1050, devices: 400, pageSize: 200 });
    const token = await tokenFor(t);
    const first = await graph(token, KEYS);
    expect(first.headers.get('content-type')).toMatch(/^application\/json; odata\.metadata=minimal/);
    expect(first.body['@odata.context']).toContain('$metadata#informationProtection/bitlocker/recoveryKeys');
    expect(first.body['@odata.nextLink']).toMatch(new RegExp(`^${graphUrl}/v1\\.0/informationProtection/bitlocker/recoveryKeys\\?\\$skiptoken=`));
    const { items, pages } = await listAll(token, KEYS);
    expect(pages).toBe(6);
    expect(items).toHaveLength(1050);
    expect(new Set(items.map((k) => k.id)).size).toBe(1050);
    expect(items.every((k) => !('key' in k))).toBe(true);
    expect(items[0]).toEqual({
      id: t.keys[0]!.id,
      createdDateTime: t.keys[0]!.createdDateTime,
      volumeType: t.keys[0]!.volumeType,
      deviceId: t.keys[0]!.deviceId,
    });
    expect(sim.keyReads(t.tenantId).size).toBe(0);
  });

  it('rejects $top and tampered or re-targeted skiptokens with 400', async () => {
    const t = sim.seedTenant('77777777-7777-4777-8777-777777777777', { keys: 30, devices: 10, pageSize: 5 });
    const token = await tokenFor(t);
    expect((await graph(token, `${KEYS}?$top=10`)).status).toBe(400);
    const next = (await graph(token, KEYS)).body['@odata.nextLink'] as string;
    const u = new URL(next);
    const tok = u.searchParams.get('$skiptoken')!;
    const flipped = tok.slice(0, -1) + (tok.endsWith('A') ? 'B' : 'A');
    expect((await graph(token, `${KEYS}?$skiptoken=${flipped}`)).status).toBe(400);
    // Same token with a different query (a filter added) is not "unchanged".
    expect((await graph(token, `${KEYS}?$filter=deviceId eq '${t.devices[0]!.deviceId}'&$skiptoken=${tok}`)).status).toBe(400);
    // Another tenant cannot use it either.
    const other = sim.seedTenant('77777777-7777-4777-8777-77777777777b', { keys: 30, devices: 10, pageSize: 5 });
    expect((await graph(await tokenFor(other), next)).status).toBe(400);
    expect((await graph(token, next)).status).toBe(200);
  });

  it("filters by deviceId eq '…' (and pages the filtered result)", async () => {
    const t = sim.seedTenant('88888888-8888-4888-8888-888888888888', { keys: 40, devices: 4, pageSize: 3 });
    const token = await tokenFor(t);
    const dev = t.devices[1]!.deviceId;
    const { items, pages } = await listAll(token, `${KEYS}?$filter=deviceId eq '${dev}'`);
    expect(items.map((k) => k.id)).toEqual(t.keys.filter((k) => k.deviceId === dev).map((k) => k.id));
    expect(pages).toBe(4);
    expect((await graph(token, `${KEYS}?$filter=deviceId eq '00000000-0000-4000-8000-000000000000'`)).body.value).toEqual([]);
    expect((await graph(token, `${KEYS}?$filter=volumeType eq '1'`)).status).toBe(400);
  });

  it('$select=key returns the password, counts the read and writes a "Read BitLocker key" audit entry', async () => {
    const t = sim.seedTenant('99999999-9999-4999-8999-99999999999a', { keys: 5, devices: 5 });
    const token = await tokenFor(t);
    const [k0, k1] = t.keys as [SimKey, SimKey];
    const meta = await graph(token, `${KEYS}/${k0.id}`);
    expect(meta.status).toBe(200);
    expect(meta.body.key).toBeUndefined();
    expect(meta.body.id).toBe(k0.id);

    const read = await graph(token, `${KEYS}/${k0.id}?$select=key`);
    expect(read.status).toBe(200);
    expect(read.body).toMatchObject({ id: k0.id, key: k0.key, deviceId: k0.deviceId });
    await graph(token, `${KEYS}/${k0.id}?$select=key`);
    await graph(token, `${KEYS}/${k1.id.toUpperCase()}?$select=key`);
    expect(sim.keyReads(t.tenantId)).toEqual(
      new Map([
        [k0.id, 2],
        [k1.id, 1],
      ]),
    );
    expect(t.audits).toHaveLength(3);
    expect(t.audits[0]).toMatchObject({
      activityDisplayName: 'Read BitLocker key',
      category: 'KeyManagement',
      result: 'success',
      targetResources: [{ displayName: k0.id }],
      initiatedBy: { user: { ipAddress: '127.0.0.1' } },
    });

    const missing = await graph(token, `${KEYS}/00000000-0000-4000-8000-000000000000?$select=key`);
    expect(missing.status).toBe(404);
    expect(missing.body.error.code).toBe('Request_ResourceNotFound');
    expect((await graph(token, `${KEYS}/${k0.id}?$select=nope`)).status).toBe(400);
  });

  it('403 Authorization_RequestDenied without the permission; ReadBasic lists but cannot read the key', async () => {
    const t = sim.seedTenant('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', { keys: 3, devices: 3 });
    t.permissions = new Set(['BitlockerKey.ReadBasic.All']);
    const token = await tokenFor(t);
    expect((await graph(token, KEYS)).status).toBe(200);
    expect((await graph(token, `${KEYS}/${t.keys[0]!.id}`)).status).toBe(200);
    const denied = await graph(token, `${KEYS}/${t.keys[0]!.id}?$select=key`);
    expect(denied.status).toBe(403);
    expect(denied.body.error).toMatchObject({ code: 'Authorization_RequestDenied', message: 'Insufficient privileges to complete the operation.' });
    expect(sim.keyReads(t.tenantId).size).toBe(0);
    expect(t.audits).toEqual([]);

    expect((await graph(token, `/v1.0/devices?$filter=deviceId eq '${t.devices[0]!.deviceId}'`)).status).toBe(403);
    expect((await graph(token, `/v1.0/auditLogs/directoryAudits`)).status).toBe(403);
    expect((await graph(token, `/beta/deviceManagement/managedDevices`)).status).toBe(403);
    t.permissions = new Set();
    expect((await graph(token, KEYS)).status).toBe(403);
  });
});

describe('graph simulator: devices, Intune rotation, audit log', () => {
  it('looks a device up by deviceId with $select, {value: []} when unknown', async () => {
    const t = sim.seedTenant('bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb', { keys: 10, devices: 10 });
    const token = await tokenFor(t);
    const d = t.devices[3]!;
    const r = await graph(token, `/v1.0/devices?$filter=deviceId eq '${d.deviceId}'&$select=id,deviceId,displayName,operatingSystem,trustType,isManaged`);
    expect(r.status).toBe(200);
    expect(r.body.value).toEqual([
      { id: d.id, deviceId: d.deviceId, displayName: 'FAKE-4', operatingSystem: 'Windows', trustType: d.trustType, isManaged: d.isManaged },
    ]);
    expect((await graph(token, `/v1.0/devices?$filter=deviceId eq '00000000-0000-4000-8000-000000000000'`)).body).toMatchObject({ value: [] });
    expect((await graph(token, `/v1.0/devices?$select=bogus`)).status).toBe(400);
  });

  it('rotateBitLockerKeys (beta) adds a new valid key for the device, visible in the next list', async () => {
    const t = sim.seedTenant('cccccccc-cccc-4ccc-8ccc-cccccccccccc', { keys: 6, devices: 3 });
    const token = await tokenFor(t);
    const dev = t.devices[0]!;
    const newestBefore = t.keys.filter((k) => k.deviceId === dev.deviceId).at(-1)!;
    const md = await graph(token, `/beta/deviceManagement/managedDevices?$filter=azureADDeviceId eq '${dev.deviceId}'`);
    expect(md.body.value).toHaveLength(1);
    expect(md.body.value[0]).toMatchObject({ azureADDeviceId: dev.deviceId, deviceName: dev.displayName });
    const id = md.body.value[0].id as string;

    clock = T0 + 60_000;
    const rot = await graph(token, `/beta/deviceManagement/managedDevices/${id}/rotateBitLockerKeys`, { method: 'POST' });
    expect(rot.status).toBe(204);
    const after = (await listAll(token, `${KEYS}?$filter=deviceId eq '${dev.deviceId}'`)).items;
    expect(after).toHaveLength(3);
    const added = after.find((k) => !t.keys.slice(0, 6).some((o) => o.id === k.id))!;
    expect(added).toMatchObject({ deviceId: dev.deviceId, volumeType: newestBefore.volumeType });
    expect(added.id).toMatch(GUID);
    expect(Date.parse(added.createdDateTime as string)).toBeGreaterThan(Date.parse(newestBefore.createdDateTime));
    const pw = await graph(token, `${KEYS}/${added.id}?$select=key`);
    expect(isValidRecoveryPassword(pw.body.key)).toBe(true);

    expect((await graph(token, `/v1.0/deviceManagement/managedDevices/${id}/rotateBitLockerKeys`, { method: 'POST' })).status).toBe(400);
    expect(
      (await graph(token, `/beta/deviceManagement/managedDevices/00000000-0000-4000-8000-000000000000/rotateBitLockerKeys`, { method: 'POST' })).status,
    ).toBe(404);
    t.onRotate = 'replace';
    await graph(token, `/beta/deviceManagement/managedDevices/${id}/rotateBitLockerKeys`, { method: 'POST' });
    const replaced = (await listAll(token, `${KEYS}?$filter=deviceId eq '${dev.deviceId}'`)).items;
    expect(replaced).toHaveLength(2); // both OS-volume keys replaced by one, the data-volume key stays
    t.permissions.delete('DeviceManagementManagedDevices.ReadWrite.All');
    expect((await graph(token, `/beta/deviceManagement/managedDevices/${id}/rotateBitLockerKeys`, { method: 'POST' })).status).toBe(403);
  });

  it("lists directoryAudits filtered by activityDisplayName eq 'Read BitLocker key', newest first, with nextLink", async () => {
    const t = sim.seedTenant('dddddddd-dddd-4ddd-8ddd-dddddddddddd', { keys: 7, devices: 2 });
    t.auditPageSize = 3;
    const token = await tokenFor(t);
    for (const [i, k] of t.keys.entries()) {
      clock = T0 + i * 1000;
      expect((await graph(token, `${KEYS}/${k.id}?$select=key`)).status).toBe(200);
    }
    sim.portalRead(t.tenantId, t.keys[0]!.id, { userPrincipalName: 'helpdesk@contoso.example', at: T0 + 10_000 });
    const { items, pages } = await listAll(token, `/v1.0/auditLogs/directoryAudits?$filter=activityDisplayName eq 'Read BitLocker key'`);
    expect(pages).toBe(3);
    expect(items).toHaveLength(8);
    expect(items[0]!.initiatedBy.user.userPrincipalName).toBe('helpdesk@contoso.example');
    expect(items.slice(1).map((a) => a.targetResources[0].displayName)).toEqual(t.keys.map((k) => k.id).reverse());
    const since = await graph(
      token,
      `/v1.0/auditLogs/directoryAudits?$filter=activityDisplayName eq 'Read BitLocker key' and activityDateTime ge ${new Date(T0 + 5000).toISOString()}`,
    );
    expect(since.body.value).toHaveLength(3);
    expect((await graph(token, `/v1.0/auditLogs/directoryAudits?$filter=foo eq 'x'`)).status).toBe(400);
  });
});

describe('graph simulator: throttling', () => {
  it('429 with Retry-After seconds every Nth request, and records a violation when the client comes back early', async () => {
    const t = sim.seedTenant('eeeeeeee-eeee-4eee-8eee-eeeeeeeeeee1', { keys: 3, devices: 1 });
    t.throttleEvery = 3;
    t.retryAfter = { seconds: 2 };
    const token = await tokenFor(t); // token requests are not counted
    expect((await graph(token, KEYS)).status).toBe(200);
    expect((await graph(token, KEYS)).status).toBe(200);
    const throttled = await graph(token, KEYS);
    expect(throttled.status).toBe(429);
    expect(throttled.headers.get('retry-after')).toBe('2');
    expect(throttled.body.error).toMatchObject({ code: 'TooManyRequests', message: 'Too many requests.' });
    expect(sim.throttledAt(t.tenantId)).toMatchObject([{ at: T0, retryAfterSeconds: 2, status: 429 }]);

    clock = T0 + 1000; // too early
    expect((await graph(token, KEYS)).status).toBe(200);
    expect(sim.violations(t.tenantId)).toMatchObject([{ at: T0 + 1000, earlyByMs: 1000, status: 429 }]);

    clock = T0 + 2000 - 40; // within the 50 ms slack
    expect((await graph(token, KEYS)).status).toBe(200);
    expect(sim.violations(t.tenantId)).toHaveLength(1);

    sim.reset(t.tenantId);
    expect(sim.violations(t.tenantId)).toEqual([]);
    expect(sim.requests(t.tenantId)).toEqual([]);
    expect(sim.throttledAt(t.tenantId)).toEqual([]);
  });

  it('a different request arriving right after the 429 counts as in flight; with inFlightGraceMs: 0 it is a violation', async () => {
    const t = sim.seedTenant('eeeeeeee-eeee-4eee-8eee-eeeeeeeeeee4', { keys: 3, devices: 1 });
    t.throttleEvery = 1;
    t.retryAfter = { seconds: 2 };
    const token = await tokenFor(t);
    expect((await graph(token, KEYS)).status).toBe(429);
    t.throttleEvery = undefined;
    expect((await graph(token, `${KEYS}/${t.keys[0]!.id}`)).status).toBe(200); // other worker, within the grace
    expect(sim.violations(t.tenantId)).toEqual([]);
    expect(sim.throttledAt(t.tenantId)[0]!.excusedInFlight).toBe(1);

    const strict = new GraphSimulator({ now: () => clock, inFlightGraceMs: 0 });
    const urls = await strict.start();
    try {
      const s = strict.seedTenant(t.tenantId, { keys: 3, devices: 1 });
      s.throttleEvery = 1;
      s.retryAfter = { seconds: 2 };
      const tok = await fetch(`${urls.loginUrl}/${s.tenantId}/oauth2/v2.0/token`, {
        method: 'POST',
        body: new URLSearchParams({
          grant_type: 'client_credentials',
          client_id: s.clientId,
          client_secret: s.clientSecret,
          scope: 'https://graph.microsoft.com/.default',
        }),
      }).then(async (r) => ((await r.json()) as Json).access_token as string);
      const h = { authorization: `Bearer ${tok}` };
      expect((await fetch(`${urls.graphUrl}${KEYS}`, { headers: h })).status).toBe(429);
      s.throttleEvery = undefined;
      expect((await fetch(`${urls.graphUrl}${KEYS}/${s.keys[0]!.id}`, { headers: h })).status).toBe(200);
      expect(strict.violations(s.tenantId)).toMatchObject([{ path: `/graph${KEYS}/${s.keys[0]!.id}`, earlyByMs: 2000 }]);
    } finally {
      await strict.stop();
    }
  });

  it('429 with Retry-After as an HTTP-date; waiting until that date is not a violation', async () => {
    const t = sim.seedTenant('eeeeeeee-eeee-4eee-8eee-eeeeeeeeeee2', { keys: 3, devices: 1 });
    t.throttleEvery = 2;
    t.retryAfter = { httpDate: true, seconds: 5 };
    clock = T0 + 300; // not on a whole second: the date is rounded up
    const token = await tokenFor(t);
    expect((await graph(token, KEYS)).status).toBe(200);
    const throttled = await graph(token, KEYS);
    expect(throttled.status).toBe(429);
    const header = throttled.headers.get('retry-after')!;
    expect(header).toMatch(/^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$/);
    const until = Date.parse(header);
    expect(until - clock).toBeGreaterThanOrEqual(5000);
    expect(until - clock).toBeLessThan(6000);
    clock = until;
    expect((await graph(token, KEYS)).status).toBe(200);
    expect(sim.violations(t.tenantId)).toEqual([]);
    expect(sim.throttledAt(t.tenantId)).toMatchObject([{ retryAfterSeconds: 5, until }]);
  });

  it('503 with Retry-After: 1 every Nth request', async () => {
    const t = sim.seedTenant('eeeeeeee-eeee-4eee-8eee-eeeeeeeeeee3', { keys: 3, devices: 1 });
    t.fail503Every = 2;
    const token = await tokenFor(t);
    expect((await graph(token, KEYS)).status).toBe(200);
    const r = await graph(token, KEYS);
    expect(r.status).toBe(503);
    expect(r.headers.get('retry-after')).toBe('1');
    clock = T0 + 500;
    await graph(token, KEYS);
    expect(sim.violations(t.tenantId)).toMatchObject([{ status: 503, earlyByMs: 500 }]);
  });
});

describe('graph simulator: scale', () => {
  it('50 tenants × 10,000 keys / 4,000 devices: seeding, paging every tenant, device and key lookups stay fast', async () => {
    const started = performance.now();
    const tenants: SimTenant[] = [];
    for (let i = 0; i < 50; i++) {
      tenants.push(sim.seedTenant(`f0000000-0000-4000-8000-${String(i).padStart(12, '0')}`, { keys: 10_000, devices: 4_000 }));
    }
    const seeded = performance.now();
    const tokens = await Promise.all(tenants.map((t) => tokenFor(t)));
    const counts = await Promise.all(tenants.map(async (t, i) => (await listAll(tokens[i]!, KEYS)).items.length));
    expect(counts.every((n) => n === 10_000)).toBe(true);
    // Indexed lookups on the last tenant: 500 device lookups, key filters and key reads.
    const t = tenants.at(-1)!;
    const token = tokens.at(-1)!;
    for (let i = 0; i < 500; i++) {
      const d = t.devices[i * 8]!;
      const [dev, keys] = await Promise.all([
        graph(token, `/v1.0/devices?$filter=deviceId eq '${d.deviceId}'&$select=id,displayName`),
        graph(token, `${KEYS}?$filter=deviceId eq '${d.deviceId}'`),
      ]);
      expect(dev.body.value[0].displayName).toBe(d.displayName);
      const k = (keys.body.value as Json[])[0]!;
      expect((await graph(token, `${KEYS}/${k.id}?$select=key`)).status).toBe(200);
    }
    expect(sim.keyReads(t.tenantId).size).toBe(500);
    const done = performance.now();
    // Generous bounds: they only catch accidental O(n²) behaviour.
    expect(seeded - started).toBeLessThan(20_000);
    expect(done - seeded).toBeLessThan(40_000);
  });
});
