import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { createTestApp, type Session, type TestApp } from './helpers/app.js';
import { ENGINE } from './helpers/engine.js';
import { bytes, csvOf, randomKeyId, randomRecoveryPassword } from './helpers/keys.js';
import { auditEvents, expectNoLeak, freshTotp, minutesAgo, updateSession } from './helpers/http.js';
import { owner as cliOwner } from './helpers/vault.js';
import { generateIdentity, openBundle } from '../src/crypto/bundle.js';
import { parseBundle } from '../src/domain/export-bundle.js';

/**
 * POST /api/v1/clients/:clientId/export from the console: owner only, with a fresh second factor,
 * never an API token; the answer is the age file; the export is audited with who, from where and
 * the scope, never the passphrase.
 */
const API = '/api/v1';
const PASSPHRASE = 'copper violin harbor tundra 77';

describe(`export over HTTP on ${ENGINE}`, () => {
  let t: TestApp;
  let s: Session;
  let ownerId: string;
  let secret: string;
  let clientId: string;
  const keys = Array.from({ length: 3 }, (_, i) => ({ device: `FAKE-HTTP-EXP-${i}`, keyId: randomKeyId(), password: randomRecoveryPassword() }));
  const exportReq = (headers: Record<string, string>, body: Record<string, unknown>, id = clientId) =>
    t.app.inject({ method: 'POST', url: `${API}/clients/${id}/export`, headers, payload: body });

  beforeAll(async () => {
    t = await createTestApp();
    const o = await t.addUser('owner', 'all', 'export.owner@example.test');
    ownerId = o.id;
    s = await t.signIn(o.email);
    secret = (await t.app.inject({ method: 'POST', url: `${API}/me/mfa`, headers: s.headers })).json().secret;
    expect(
      (await t.app.inject({ method: 'POST', url: `${API}/me/mfa/confirm`, headers: s.headers, payload: { code: await freshTotp(t, secret) } })).statusCode,
    ).toBe(200);
    clientId = (await t.container.clients.create(cliOwner, { name: 'Contoso' })).id;
    await t.container.imports.importFile(cliOwner, 'Contoso', { fileName: 'k.csv', bytes: bytes(csvOf(keys)) });
  });
  afterAll(() => t.close());

  const sorted = (ks: { keyId: string | null; recoveryPassword?: string; password?: string }[]) =>
    ks.map((k) => `${k.keyId}|${k.recoveryPassword ?? k.password}`).sort();

  it("a stepped-up owner downloads a passphrase bundle that opens to the client's keys", async () => {
    const r = await exportReq(s.headers, { passphrase: PASSPHRASE });
    expect(r.statusCode, r.body).toBe(200);
    expect(r.headers['content-type']).toMatch(/application\/octet-stream/);
    expect(r.headers['content-disposition']).toMatch(/^attachment; filename="keywarden-export-contoso-\d{8}T\d{6}Z\.age"$/);
    expect(r.headers['cache-control']).toBe('no-store');
    expect(r.body.startsWith('-----BEGIN AGE ENCRYPTED FILE-----')).toBe(true);
    for (const k of keys) expect(r.body).not.toContain(k.password);
    const b = parseBundle(await openBundle(r.rawPayload, { kind: 'passphrase', passphrase: PASSPHRASE }))!;
    expect(sorted(b.keys)).toEqual(sorted(keys));
    expect(b.createdBy).toBe('export.owner@example.test');
  });

  it('and one for a recipient public key', async () => {
    const g = await generateIdentity(new Date().toISOString());
    const r = await exportReq(s.headers, { recipient: g.recipient });
    expect(r.statusCode).toBe(200);
    const b = parseBundle(await openBundle(r.rawPayload, { kind: 'identity', identity: g.identity }))!;
    expect(sorted(b.keys)).toEqual(sorted(keys));
  });

  it('bad bodies are 400 without echoing the passphrase', async () => {
    for (const body of [
      {},
      { passphrase: PASSPHRASE, recipient: 'age1x' },
      { passphrase: 'tooweak' },
      { recipient: 'ssh-ed25519 AAAA' },
      { passphrase: PASSPHRASE, extra: 1 },
    ]) {
      const r = await exportReq(s.headers, body);
      expect(r.statusCode, JSON.stringify(body)).toBe(400);
      expectNoLeak(r, ['tooweak', PASSPHRASE, ...keys.map((k) => k.password)]);
    }
    expect((await exportReq(s.headers, { passphrase: PASSPHRASE }, randomUUID())).statusCode).toBe(404);
  });

  it('needs a fresh step-up: an old second factor is 403 step_up_required until POST /auth/step-up', async () => {
    await updateSession(t, s.cookie, { mfa_at: minutesAgo(60) });
    const stale = await exportReq(s.headers, { passphrase: PASSPHRASE });
    expect(stale.statusCode).toBe(403);
    expect(stale.json().error).toBe('step_up_required');
    const up = await t.app.inject({ method: 'POST', url: `${API}/auth/step-up`, headers: s.headers, payload: { code: await freshTotp(t, secret) } });
    expect(up.statusCode).toBe(200);
    expect((await exportReq(s.headers, { passphrase: PASSPHRASE })).statusCode).toBe(200);
  });

  it('other roles, owners without a second factor and API tokens are refused (403), and the refusals are audited', async () => {
    const plainOwner = await t.signIn((await t.addUser('owner', 'all')).email);
    const admin = await t.signIn((await t.addUser('admin', 'all')).email);
    const tech = await t.signIn((await t.addUser('technician', [clientId])).email);
    const tok = await t.app.inject({
      method: 'POST',
      url: `${API}/tokens`,
      headers: s.headers,
      payload: { name: 'automation', role: 'owner', clients: 'all' },
    });
    expect(tok.statusCode).toBe(201);
    const bearer = { authorization: `Bearer ${tok.json().token}` };
    for (const [who, headers] of [
      ['owner without authenticator', plainOwner.headers],
      ['admin', admin.headers],
      ['technician', tech.headers],
      ['owner API token', bearer],
    ] as const) {
      const r = await exportReq(headers, { passphrase: PASSPHRASE });
      expect(r.statusCode, who).toBe(403);
      expectNoLeak(r, [PASSPHRASE, ...keys.map((k) => k.password)]);
    }
    expect((await auditEvents(t, { action: 'export.bundle', outcome: 'denied' })).length).toBeGreaterThanOrEqual(5);
  });

  it('each download is audited: who, from where, scope; never the passphrase', async () => {
    const ok = await auditEvents(t, { action: 'export.bundle', outcome: 'success', actorId: ownerId });
    expect(ok.length).toBe(3);
    for (const e of ok) {
      expect(e).toMatchObject({ actorType: 'user', clientId, ip: '127.0.0.1', details: { client: 'Contoso', keys: 3, devices: 3 } });
    }
    expect(ok.map((e) => e.details?.protection).sort()).toEqual(['passphrase', 'passphrase', 'recipient']);
    const all = JSON.stringify(await auditEvents(t));
    expect(all).not.toContain(PASSPHRASE);
    for (const k of keys) expect(all).not.toContain(k.password);
  });
});
