import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseCsv } from 'csv-parse/sync';
import type { Actor } from '../src/modules/authz/authz.js';
import { createTestApp, PASSWORD, type Session, type TestApp } from './helpers/app.js';
import { ENGINE } from './helpers/engine.js';
import { csvOf, randomRecoveryPassword } from './helpers/keys.js';
import { expectNoLeak, multipart } from './helpers/http.js';

/**
 * The audit log as an auditor reads it (issue 17, item 5): device, key ID, ticket and reason label as
 * columns, actors by name, searchable by key ID (full or prefix, braces/case/spaces forgiven), device
 * and ticket, within the reader's clients only; the CSV export carries the same columns.
 */

const API = '/api/v1';
/** Two clients hold keys whose IDs share the first 8 digits, so a prefix search crosses clients. */
const K1 = { keyId: '35d132dc-e86a-4c1b-9f00-000000000001', device: 'CD-LT-0002', password: randomRecoveryPassword() };
const K2 = { keyId: '35d132dc-1111-4222-8333-000000000002', device: 'FAB-PC-01', password: randomRecoveryPassword() };
const K3 = { keyId: 'a1b2c3d4-0000-4000-8000-000000000003', device: 'Ünïcødé-Ωmega-日本', password: randomRecoveryPassword() };
const secrets = [PASSWORD, K1.password, K2.password, K3.password];

type Row = {
  seq: number;
  id: string;
  action: string;
  actionLabel: string;
  actor: string;
  actorType: string;
  outcome: string;
  clientId: string | null;
  targetId: string | null;
  reasonCode: string | null;
  reasonLabel: string | null;
  ticket: string | null;
  device: string | null;
  keyId: string | null;
  details: Record<string, unknown> | null;
  detailFields: { label: string; value: string; internal: boolean }[];
};

describe(`audit log for auditors on ${ENGINE}`, () => {
  let t: TestApp;
  let o: Session;
  let scoped: Session;
  let contoso: string;
  let fabrikam: string;

  const get = (url: string, s: Session = o) => t.app.inject({ method: 'GET', url, headers: s.headers });
  const post = (url: string, payload: Record<string, unknown>, s: Session = o) => t.app.inject({ method: 'POST', url, headers: s.headers, payload });
  const list = async (query: string, s: Session = o): Promise<Row[]> => {
    const r = await get(`${API}/audit?limit=1000&${query}`, s);
    expect(r.statusCode, r.body).toBe(200);
    expectNoLeak(r, secrets);
    return r.json();
  };
  const reveals = (rows: Row[]) => rows.filter((e) => e.action === 'key.reveal');

  beforeAll(async () => {
    t = await createTestApp();
    const u = await t.addUser('owner', 'all', 'owner@example.test');
    o = await t.signIn(u.email);
    contoso = (await post(`${API}/clients`, { name: 'Contoso' })).json().id;
    fabrikam = (await post(`${API}/clients`, { name: 'Fabrikam' })).json().id;
    for (const [client, keys] of [
      [contoso, [K1, K3]],
      [fabrikam, [K2]],
    ] as const) {
      const body = await multipart({ client }, [{ name: 'keys.csv', content: csvOf([...keys]) }]);
      const r = await t.app.inject({ method: 'POST', url: `${API}/imports`, headers: { ...o.headers, ...body.headers }, payload: body.payload });
      expect(r.json().imported, r.body).toBe(keys.length);
    }
    // Revealed the ways people do it: the full ID in braces, a full ID, an 8-digit prefix, and a miss.
    expect(
      (await post(`${API}/keys/${encodeURIComponent(`{${K1.keyId.toUpperCase()}}`)}/reveal`, { reason: 'bios-changed', ticket: 'INC-4711' })).statusCode,
    ).toBe(200);
    expect((await post(`${API}/keys/${K2.keyId}/reveal`, { reason: 'lost-pin', ticket: 'FAB-99' })).statusCode).toBe(200);
    expect((await post(`${API}/keys/${K3.keyId.slice(0, 8)}/reveal`, { reason: 'tpm-reset' })).statusCode).toBe(200);
    expect((await post(`${API}/keys/35d132dcffff/reveal`, { reason: 'lost-pin' })).statusCode).toBe(404);
    const a = await t.addUser('auditor', [contoso], 'auditor@example.test');
    scoped = await t.signIn(a.email);
  });
  afterAll(async () => {
    await t?.close();
  });

  it('rows carry device, key ID, ticket, reason label, action label and the actor by name', async () => {
    const [r1] = reveals(await list(`keyId=${K1.keyId}`));
    expect(r1).toMatchObject({
      actor: 'owner@example.test',
      actionLabel: 'Key revealed',
      reasonCode: 'bios-changed',
      reasonLabel: 'BIOS Changed',
      ticket: 'INC-4711',
      device: K1.device,
      keyId: `{${K1.keyId.toUpperCase()}}`,
      outcome: 'success',
      clientId: contoso,
    });
    // Labelled fields, without the columns again and without our record id (the console's search by record).
    const labels = r1!.detailFields.map((f) => f.label);
    expect(labels).not.toContain('Key ID');
    expect(labels).not.toContain('Device');
    expect(r1!.detailFields.some((f) => f.value === r1!.targetId)).toBe(false);
    const [r3] = reveals(await list(`device=${encodeURIComponent(K3.device)}`));
    expect(r3).toMatchObject({ device: K3.device, reasonLabel: 'TPM Reset', ticket: null });
    // A miss keeps what was typed, labelled.
    const [miss] = (await list('outcome=not_found')).filter((e) => e.action === 'key.reveal');
    expect(miss!.detailFields).toContainEqual({ label: 'Searched for', value: '35d132dcffff', internal: false });
  });

  it('names system actors by what they are, not by an internal id', async () => {
    const tenant = '0680d789-1234-4abc-8def-0123456789ab';
    const entra: Actor = { type: 'system', id: `system:graph:${tenant}`, name: `Entra sync (${tenant})`, role: 'owner', clients: [contoso] };
    const agent: Actor = {
      type: 'agent',
      id: 'agent:1e0c5b3a-0000-4000-8000-00000000abcd',
      name: 'agent on CD-LT-0002',
      role: 'client-viewer',
      clients: [contoso],
    };
    await t.container.audit.recordNow(entra, { action: 'graph.sync', outcome: 'success', clientId: contoso, details: { tenantId: tenant, newKeys: 0 } });
    await t.container.audit.recordNow(agent, {
      action: 'key.used',
      outcome: 'success',
      clientId: contoso,
      details: { device: 'CD-LT-0002', keyId: K1.keyId, by: 'agent' },
    });
    const rows = await list(`clientId=${contoso}`);
    expect(rows.find((e) => e.action === 'graph.sync')).toMatchObject({ actor: 'Entra sync', actionLabel: 'Entra ID sync' });
    expect(rows.find((e) => e.action === 'key.used')).toMatchObject({
      actor: 'Agent on CD-LT-0002',
      device: 'CD-LT-0002',
      keyId: `{${K1.keyId.toUpperCase()}}`,
    });
  });

  it('finds events by key ID: full, 8-digit prefix, braces, any case, spaces', async () => {
    const byFull = reveals(await list(`keyId=${encodeURIComponent(`{${K1.keyId.toUpperCase()}}`)}`));
    expect(byFull.map((e) => e.device)).toEqual([K1.device]);
    // The prefix crosses clients for an owner, and finds the miss that was typed with it.
    const byPrefix = reveals(await list('keyId=35D132DC'));
    expect(byPrefix.map((e) => e.outcome).sort()).toEqual(['not_found', 'success', 'success']);
    expect(new Set(byPrefix.map((e) => e.device))).toEqual(new Set([K1.device, K2.device, undefined].map((d) => d ?? null)));
    expect(reveals(await list(`keyId=${encodeURIComponent('35d132dc e86a')}`)).map((e) => e.device)).toEqual([K1.device]);
    expect(reveals(await list(`keyId=${encodeURIComponent('{35D132DC-E86A')}`)).map((e) => e.device)).toEqual([K1.device]);
    // The agent's event about the key is found too (it names the key, not the record).
    expect((await list(`keyId=${K1.keyId.slice(0, 8)}`)).some((e) => e.action === 'key.used')).toBe(true);
    expect(await list('keyId=ffffffff')).toEqual([]);
  });

  it('finds events by device (its beginning, any case) and by ticket (any part), and in one search box', async () => {
    expect(reveals(await list('device=cd-lt')).map((e) => e.keyId)).toEqual([`{${K1.keyId.toUpperCase()}}`]);
    expect(reveals(await list(`device=${encodeURIComponent('Ünïcødé')}`)).map((e) => e.device)).toEqual([K3.device]);
    // LIKE wildcards are taken literally.
    expect(await list('device=%25')).toEqual([]);
    expect(await list('device=_')).toEqual([]);
    expect(await list('ticket=_')).toEqual([]);
    expect((await list('ticket=inc-47')).map((e) => e.ticket)).toEqual(['INC-4711']);
    expect((await list('search=INC-4711')).map((e) => e.device)).toEqual([K1.device]);
    expect(reveals(await list('search=fab-pc')).map((e) => e.ticket)).toEqual(['FAB-99']);
    expect(reveals(await list(`search=${encodeURIComponent('35D132DC-E86A')}`)).map((e) => e.ticket)).toEqual(['INC-4711']);
    // Terms combine: the device and the ticket must both match.
    expect(await list('device=cd-lt&ticket=FAB')).toEqual([]);
  });

  it('refuses a key ID that cannot be one, in words', async () => {
    for (const [q, words] of [
      ['35d1', 'at least the first 8'],
      ['zzzzzzzz', 'hex digits'],
    ]) {
      const r = await get(`${API}/audit?keyId=${q}`);
      expect(r.statusCode).toBe(400);
      expect(r.json().message).toContain('Key ID');
      expect(r.json().message).toContain(words);
    }
    // In the one search box, text that is no key ID is just text.
    expect((await get(`${API}/audit?search=zz`)).statusCode).toBe(200);
  });

  it("a scoped auditor does not find another client's events by key ID, device or ticket", async () => {
    const mine = reveals(await list('keyId=35d132dc', scoped));
    expect(mine.map((e) => e.device)).toEqual([K1.device]);
    expect(mine.every((e) => e.clientId === contoso)).toBe(true);
    expect(await list(`keyId=${K2.keyId}`, scoped)).toEqual([]);
    expect(await list('device=FAB-PC-01', scoped)).toEqual([]);
    expect(await list('search=FAB-99', scoped)).toEqual([]);
    // Naming the other client outright is refused, not answered empty.
    expect((await get(`${API}/audit?clientId=${fabrikam}&keyId=${K2.keyId}`, scoped)).statusCode).toBe(403);
  });

  it('an auditor never sees a key: no reveal, and no password anywhere in the log or its export', async () => {
    const r = await post(`${API}/keys/${K1.keyId}/reveal`, { reason: 'bios-changed', ticket: 'INC-1' }, scoped);
    expect(r.statusCode).toBe(403);
    expectNoLeak(r, secrets);
    for (const url of [`${API}/audit?limit=1000`, `${API}/audit/export?format=csv`, `${API}/audit/export?format=jsonl`]) {
      const res = await get(url, scoped);
      expect(res.statusCode).toBe(200);
      expectNoLeak(res, secrets, url);
    }
  });

  it('the CSV export carries the same columns and honours the search and the scope', async () => {
    const csv = await get(`${API}/audit/export?format=csv&keyId=35d132dc`, scoped);
    expect(csv.statusCode).toBe(200);
    const rows = parseCsv(csv.body, { columns: true }) as Record<string, string>[];
    const header = csv.body.split(/\r?\n/)[0]!.split(',');
    expect(header.slice(-5)).toEqual(['actor', 'actionLabel', 'device', 'keyId', 'reasonLabel']);
    const reveal = rows.find((e) => e.action === 'key.reveal')!;
    expect(reveal).toMatchObject({
      actor: 'owner@example.test',
      actionLabel: 'Key revealed',
      device: K1.device,
      keyId: `{${K1.keyId.toUpperCase()}}`,
      ticket: 'INC-4711',
      reasonLabel: 'BIOS Changed',
    });
    expect(rows.every((e) => e.clientId === contoso)).toBe(true);
    expect(rows.some((e) => e.device === K2.device)).toBe(false);
    expect((await get(`${API}/audit/export?format=csv&keyId=xyz`, scoped)).statusCode).toBe(400);
  });
});
