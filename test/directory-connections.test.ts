import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemActor } from '../src/modules/authz/authz.js';
import { createTestApp, type Session, type TestApp } from './helpers/app.js';
import { ENGINE } from './helpers/engine.js';
import { auditEvents, expectNoLeak } from './helpers/http.js';

/**
 * Active Directory connections managed over the API (the console's Settings → Connections):
 * create, edit, enable/disable, delete, test and sync, with the bind password sealed, never
 * returned, the egress policy applied and every change audited. The DC here is a local port that
 * is closed: every test and sync fails, in words (a real DC is test/ad-sync.test.ts, with Samba).
 */
const API = '/api/v1';
const system = systemActor('test');

describe(`directory connections over the API on ${ENGINE}`, () => {
  let t: TestApp;
  let admin: Session;
  let tech: Session;
  let scoped: Session;
  let clientId: string;
  let closedPort: number;
  const PASSWORD_1 = 'Bind-Password-One-7f3a9c';
  const PASSWORD_2 = 'Bind-Password-Two-1e8d44';

  const req = (s: Session, method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, payload?: object) =>
    t.app.inject({ method, url: `${API}${url}`, headers: s.headers, ...(payload ? { payload } : {}) });
  const task = (id: string) => t.container.database.db.selectFrom('scheduled_tasks').selectAll().where('id', '=', `ad-sync:${id}`).executeTakeFirst();
  const row = (id: string) => t.container.database.db.selectFrom('directory_connections').selectAll().where('id', '=', id).executeTakeFirst();

  beforeAll(async () => {
    // A port that was just free and is now closed: "unreachable", quickly.
    const srv = net.createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    closedPort = (srv.address() as AddressInfo).port;
    await new Promise<void>((r) => srv.close(() => r()));
    t = await createTestApp({ KEYWARDEN_EGRESS_ALLOW: '127.0.0.1' });
    clientId = (await t.container.clients.create(system, { name: 'Contoso' })).id;
    const other = (await t.container.clients.create(system, { name: 'Fabrikam' })).id;
    admin = await t.signIn((await t.addUser('admin', 'all')).email);
    tech = await t.signIn((await t.addUser('technician', 'all')).email);
    scoped = await t.signIn((await t.addUser('admin', [other])).email);
  });
  afterAll(async () => {
    await t?.close();
  });

  const body = () => ({
    clientId,
    hosts: ['127.0.0.1'],
    port: closedPort,
    tlsMode: 'ldaps' as const,
    allowUntrusted: true,
    bindDn: 'CN=keywarden,OU=Service,DC=corp,DC=example',
    password: PASSWORD_1,
    baseDns: ['OU=Contoso,DC=corp,DC=example'],
    syncIntervalMinutes: 30,
  });

  it('refuses bad settings in words, and whoever may not manage integrations', async () => {
    const noCert = await req(admin, 'POST', '/directory/connections', { ...body(), allowUntrusted: false });
    expect(noCert.statusCode).toBe(400);
    expect(noCert.json().message).toMatch(/domain CA certificate \(caCert\).*pinnedSha256.*allowUntrusted/);
    const badBase = await req(admin, 'POST', '/directory/connections', { ...body(), baseDns: ['Contoso'] });
    expect(badBase.statusCode).toBe(400);
    expect(badBase.json().message).toMatch(/baseDns must list the DNs to search/);
    const badPem = await req(admin, 'POST', '/directory/connections', { ...body(), allowUntrusted: false, caCert: 'not a certificate' });
    expect(badPem.statusCode).toBe(400);
    expect(badPem.json().message).toMatch(/caCert must be a PEM certificate/);
    // The egress policy: a metadata address is never a domain controller.
    const meta = await req(admin, 'POST', '/directory/connections', { ...body(), hosts: ['169.254.169.254'] });
    expect(meta.statusCode).toBe(400);
    expect(meta.json().message).toMatch(/link-local/);
    for (const r of [noCert, badBase, badPem, meta]) expectNoLeak(r, [PASSWORD_1]);
    expect((await req(tech, 'POST', '/directory/connections', body())).statusCode).toBe(403);
    // Another client's id is "not found" for an admin limited to one client.
    expect((await req(scoped, 'POST', '/directory/connections', body())).statusCode).toBe(404);
    expect(await t.container.database.db.selectFrom('directory_connections').selectAll().execute()).toEqual([]);
  });

  let id: string;

  it('creates a connection with the password sealed and never returned; a second one for the client is a conflict', async () => {
    const r = await req(admin, 'POST', '/directory/connections', body());
    expect(r.statusCode).toBe(201);
    expectNoLeak(r, [PASSWORD_1]);
    id = r.json().id;
    expect(r.json()).toMatchObject({
      clientId,
      hosts: ['127.0.0.1'],
      port: closedPort,
      tlsMode: 'ldaps',
      allowUntrusted: true,
      hasCaCert: false,
      enabled: true,
      syncIntervalMinutes: 30,
      lastSyncAt: null,
    });
    expect(Object.keys(r.json())).not.toContain('password');
    const stored = (await row(id))!;
    expect(stored.password_ciphertext).not.toContain(PASSWORD_1);
    expect(Buffer.from(stored.password_ciphertext, 'base64').toString('latin1')).not.toContain(PASSWORD_1);
    expect(await task(id)).toMatchObject({ kind: 'ad-sync', interval_minutes: 30 });

    const list = await req(admin, 'GET', '/directory/connections');
    expect(list.json()).toHaveLength(1);
    expectNoLeak(list, [PASSWORD_1]);
    const again = await req(admin, 'POST', '/directory/connections', { ...body(), password: 'other' });
    expect(again.statusCode).toBe(409);
    expect(again.json().message).toBe('Contoso already has a directory connection.');

    const audit = await auditEvents(t, { action: 'ad.connect', targetId: id });
    expect(audit).toHaveLength(1);
    expect(JSON.stringify(audit)).not.toContain(PASSWORD_1);
    expect(audit[0]!.details).toMatchObject({ certificate: 'ANY (allowUntrusted)', hosts: ['127.0.0.1'] });
  });

  it('"Test" answers each check: an unreachable DC fails at the first, in words', async () => {
    const r = await req(admin, 'POST', `/directory/connections/${id}/test`);
    expect(r.statusCode).toBe(200);
    const j = r.json();
    expect(j.ok).toBe(false);
    expect(j.checks).toHaveLength(1);
    expect(j.checks[0]).toMatchObject({ check: 'Connect and sign in', ok: false });
    expect(j.checks[0].detail).toMatch(/^unreachable: /);
    expect(j.detail).toBe(j.checks[0].detail);
    expectNoLeak(r, [PASSWORD_1]);
    expect((await req(tech, 'POST', `/directory/connections/${id}/test`)).statusCode).toBe(403);
  });

  it('"Sync now" records a failed run; the runs show it with its error', async () => {
    const s = await req(admin, 'POST', `/directory/connections/${id}/sync`);
    expect(s.statusCode).toBe(200);
    expect(s.json()).toMatchObject({ status: 'failed' });
    expect(s.json().errorText).toMatch(/^unreachable: /);
    const runs = await req(admin, 'GET', `/directory/connections/${id}/runs`);
    expect(runs.statusCode).toBe(200);
    expect(runs.json()).toHaveLength(1);
    expect(runs.json()[0]).toMatchObject({ id: s.json().id, status: 'failed', mode: 'full' });
    expect(runs.json()[0].finishedAt).toBeTruthy();
    // Technicians see connections and their health (device:read) but change nothing.
    expect((await req(tech, 'GET', `/directory/connections/${id}/runs`)).statusCode).toBe(200);
    expect((await req(tech, 'POST', `/directory/connections/${id}/sync`)).statusCode).toBe(403);
    const list = (await req(admin, 'GET', '/directory/connections')).json();
    expect(list[0]).toMatchObject({ lastStatus: 'failed' });
    expect(list[0].lastError).toMatch(/^unreachable: /);
  });

  it('edits: fields left out stay, an empty password keeps the sealed one, a new one replaces it', async () => {
    const before = (await row(id))!;
    const r = await req(admin, 'PATCH', `/directory/connections/${id}`, {
      bindDn: 'CN=kw-reader,OU=Service,DC=corp,DC=example',
      password: '',
      syncIntervalMinutes: 120,
    });
    expect(r.statusCode).toBe(200);
    expect(r.json()).toMatchObject({ bindDn: 'CN=kw-reader,OU=Service,DC=corp,DC=example', syncIntervalMinutes: 120, hosts: ['127.0.0.1'], enabled: true });
    const kept = (await row(id))!;
    expect(kept.password_ciphertext).toBe(before.password_ciphertext);
    expect((await task(id))!.interval_minutes).toBe(120);

    const r2 = await req(admin, 'PATCH', `/directory/connections/${id}`, { password: PASSWORD_2 });
    expect(r2.statusCode).toBe(200);
    expectNoLeak(r2, [PASSWORD_1, PASSWORD_2]);
    const changed = (await row(id))!;
    expect(changed.password_ciphertext).not.toBe(before.password_ciphertext);
    expect(changed.password_ciphertext).not.toContain(PASSWORD_2);

    const bad = await req(admin, 'PATCH', `/directory/connections/${id}`, { allowUntrusted: false });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().message).toMatch(/caCert/);
    // An edit cannot re-point the connection at an address the egress policy refuses either.
    const meta = await req(admin, 'PATCH', `/directory/connections/${id}`, { hosts: ['127.0.0.1', '169.254.169.254'] });
    expect(meta.statusCode).toBe(400);
    expect(meta.json().message).toMatch(/link-local/);
    expect(JSON.parse((await row(id))!.hosts)).toEqual(['127.0.0.1']);
    expect((await req(scoped, 'PATCH', `/directory/connections/${id}`, { enabled: false })).statusCode).toBe(404);
    expect((await req(tech, 'PATCH', `/directory/connections/${id}`, { enabled: false })).statusCode).toBe(403);

    const audit = await auditEvents(t, { action: 'ad.update', targetId: id });
    expect(audit).toHaveLength(2);
    expect(JSON.stringify(audit)).not.toMatch(/Bind-Password/);
    expect(audit.map((a) => (a.details as { changed: string[] }).changed)).toEqual(expect.arrayContaining([['password']]));
  });

  it('disable stops its schedule and "Sync now"; enable brings them back', async () => {
    const off = await req(admin, 'PATCH', `/directory/connections/${id}`, { enabled: false });
    expect(off.json()).toMatchObject({ enabled: false });
    expect(await task(id)).toBeUndefined();
    const s = await req(admin, 'POST', `/directory/connections/${id}/sync`);
    expect(s.statusCode).toBe(409);
    expect(s.json().message).toBe('This directory connection is disabled: enable it before syncing.');
    const on = await req(admin, 'PATCH', `/directory/connections/${id}`, { enabled: true });
    expect(on.json()).toMatchObject({ enabled: true });
    expect(await task(id)).toMatchObject({ interval_minutes: 120 });
  });

  it('deletes the connection, its runs and its schedule; audited', async () => {
    expect((await req(tech, 'DELETE', `/directory/connections/${id}`)).statusCode).toBe(403);
    expect((await req(scoped, 'DELETE', `/directory/connections/${id}`)).statusCode).toBe(404);
    const r = await req(admin, 'DELETE', `/directory/connections/${id}`);
    expect(r.statusCode).toBe(200);
    expect(r.json()).toEqual({ ok: true });
    expect(await row(id)).toBeUndefined();
    expect(await task(id)).toBeUndefined();
    expect(await t.container.database.db.selectFrom('directory_sync_runs').selectAll().where('connection_id', '=', id).execute()).toEqual([]);
    expect((await req(admin, 'GET', '/directory/connections')).json()).toEqual([]);
    expect((await req(admin, 'DELETE', `/directory/connections/${id}`)).statusCode).toBe(404);
    expect(await auditEvents(t, { action: 'ad.disconnect', targetId: id })).toHaveLength(1);
    // The client may be connected again.
    expect((await req(admin, 'POST', '/directory/connections', body())).statusCode).toBe(201);
  });
});
