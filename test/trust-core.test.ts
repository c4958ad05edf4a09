import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LightMyRequestResponse } from 'fastify';
import { randomUUID } from 'node:crypto';
import { createTestApp, PASSWORD, sessionFrom, type Session, type TestApp } from './helpers/app.js';
import { ENGINE } from './helpers/engine.js';
import { bytes, csvOf, randomKeyId, randomRecoveryPassword } from './helpers/keys.js';
import { auditEvents, freshTotp, minutesAgo, updateSession, wrongTotp } from './helpers/http.js';
import { owner as cliOwner } from './helpers/vault.js';
import type { AuditEvent } from '../src/modules/audit/audit.types.js';

/**
 * The attacks of the security review against the trust core, each through HTTP as an attacker
 * would send it: a client-scoped owner against global users and vault-wide settings, API tokens
 * whose creator was narrowed, demoted or disabled, step-up brute force and stale step-up, one TOTP
 * code sent six times at once, a burst of wrong passwords, and the owner who asked for a
 * destructive action switching two-owner approval off. Every attack is checked three ways: the
 * refusal status, an audit event recording the refusal, and that nothing changed.
 */

const API = '/api/v1';
type Key = { keyId: string; password: string; device: string };
const newKey = (device: string): Key => ({ keyId: randomKeyId(), password: randomRecoveryPassword(), device });
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

async function seedKeys(t: TestApp, clientName: string, keys: Key[]): Promise<void> {
  const r = await t.container.imports.importFile(cliOwner, clientName, {
    fileName: `${clientName}-${keys[0]!.keyId.slice(0, 8)}.csv`,
    bytes: bytes(csvOf(keys.map((k) => ({ device: k.device, keyId: k.keyId, password: k.password })))),
  });
  expect(r.rejected).toEqual([]);
}

function call(
  t: TestApp,
  method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE',
  url: string,
  headers: Record<string, string>,
  payload?: unknown,
  ip = '127.0.0.1',
) {
  return t.app.inject({
    method,
    url: `${API}${url}`,
    headers,
    remoteAddress: ip,
    ...(payload !== undefined ? { payload: payload as Record<string, unknown> } : {}),
  });
}

function login(t: TestApp, email: string, password: string, opts: { ip?: string; code?: string } = {}) {
  return t.app.inject({
    method: 'POST',
    url: `${API}/auth/login`,
    remoteAddress: opts.ip ?? '127.0.0.1',
    payload: { email, password, ...(opts.code !== undefined ? { code: opts.code } : {}) },
  });
}

const reveal = (t: TestApp, headers: Record<string, string>, id: string) =>
  call(t, 'POST', `/keys/${encodeURIComponent(id)}/reveal`, headers, { reason: 'lost-pin' });

/** The newest audit sequence number: events after it were caused by what follows. */
async function auditMark(t: TestApp): Promise<number> {
  return (await auditEvents(t))[0]?.seq ?? 0;
}

/** Refusals (any outcome but success) recorded for this actor since the mark. */
async function refusalsSince(t: TestApp, mark: number, actorId: string): Promise<AuditEvent[]> {
  return (await auditEvents(t, { actorId })).filter((e) => e.seq > mark && e.outcome !== 'success');
}

/** Sends one attack and checks its status and that a refusal by this actor was audited. */
async function expectRefused(
  t: TestApp,
  actorId: string,
  status: number,
  send: () => Promise<LightMyRequestResponse>,
  label: string,
): Promise<LightMyRequestResponse> {
  const mark = await auditMark(t);
  const res = await send();
  expect(res.statusCode, `${label}: ${res.body.slice(0, 200)}`).toBe(status);
  expect((await refusalsSince(t, mark, actorId)).length, `${label}: the refusal is in the audit log`).toBeGreaterThanOrEqual(1);
  return res;
}

/** Starts and confirms an authenticator app for the signed-in person; returns the secret. */
async function enrolMfa(t: TestApp, s: Session): Promise<string> {
  const begin = await call(t, 'POST', '/me/mfa', s.headers);
  expect(begin.statusCode).toBe(200);
  const secret = begin.json().secret as string;
  const ok = await call(t, 'POST', '/me/mfa/confirm', s.headers, { code: await freshTotp(t, secret) });
  expect(ok.statusCode).toBe(200);
  return secret;
}

/** Lets a lockout run out (moved into the past instead of waiting), for every throttle key naming this account or address. */
async function endLockouts(t: TestApp, ...parts: string[]): Promise<void> {
  for (const part of parts) {
    await t.container.database.db
      .updateTable('login_throttle')
      .set({ locked_until: minutesAgo(1), failures: 0 })
      .where('key', 'like', `%${part}%`)
      .execute();
  }
}

// ==================================================================== scoped owner, token drift, API tokens, stale step-up
describe(`trust core: principals and tokens on ${ENGINE}`, () => {
  let t: TestApp;
  let g: Session; // the global owner
  let gId: string;
  let A: string;
  let B: string;
  const keyA = newKey('TC-A1');
  const keyB = newKey('TC-B1');

  beforeAll(async () => {
    t = await createTestApp({ KEYWARDEN_REVEAL_LIMIT_PER_HOUR: '1000', KEYWARDEN_STEP_UP_MINUTES: '15' });
    const o = await t.addUser('owner', 'all', 'global.owner@example.test');
    gId = o.id;
    g = await t.signIn(o.email);
    const mk = async (name: string) => {
      const r = await call(t, 'POST', '/clients', g.headers, { name });
      expect(r.statusCode).toBe(201);
      return r.json().id as string;
    };
    A = await mk('Contoso');
    B = await mk('Fabrikam');
    await seedKeys(t, 'Contoso', [keyA]);
    await seedKeys(t, 'Fabrikam', [keyB]);
  });
  afterAll(async () => {
    await t?.close();
  });

  const keyState = async (k: Key) => (await call(t, 'GET', `/keys?q=${k.keyId}`, g.headers)).json()[0]?.state as string;

  // ------------------------------------------------------------------ a client-scoped owner
  describe('an owner of one client (finding 1)', () => {
    let so: Session;
    let soId: string;
    const users = {} as Record<'globalTech' | 'techB' | 'techAB' | 'techA' | 'adminA', { id: string; email: string }>;

    beforeAll(async () => {
      const u = await t.addUser('owner', [A], 'scoped.owner@example.test');
      soId = u.id;
      so = await t.signIn(u.email);
      users.globalTech = await t.addUser('technician', 'all', 'global.tech@example.test');
      users.techB = await t.addUser('technician', [B], 'tech.b@example.test');
      users.techAB = await t.addUser('technician', [A, B], 'tech.ab@example.test');
      users.techA = await t.addUser('technician', [A], 'tech.a@example.test');
      users.adminA = await t.addUser('admin', [A], 'admin.a@example.test');
    });

    it('GET /users lists only users whose every client is one of its own: no global user, nobody with another client', async () => {
      const r = await call(t, 'GET', '/users', so.headers);
      expect(r.statusCode).toBe(200);
      const list = r.json() as { id: string; email: string; clients: 'all' | string[] }[];
      const ids = list.map((x) => x.id);
      expect(ids).toEqual(expect.arrayContaining([users.techA.id, users.adminA.id]));
      for (const x of [gId, users.globalTech.id, users.techB.id, users.techAB.id]) expect(ids).not.toContain(x);
      for (const x of list) {
        expect(x.clients, x.email).not.toBe('all');
        expect(
          (x.clients as string[]).every((c) => c === A),
          x.email,
        ).toBe(true);
      }
    });

    it('a global user or a user with another client is 404 to read, change or reset; audited; nothing changes', async () => {
      for (const victim of [{ id: gId, email: 'global.owner@example.test' }, users.globalTech, users.techB, users.techAB]) {
        await expectRefused(t, soId, 404, () => call(t, 'GET', `/users/${victim.id}`, so.headers), `GET ${victim.email}`);
        await expectRefused(t, soId, 404, () => call(t, 'PATCH', `/users/${victim.id}`, so.headers, { status: 'disabled' }), `PATCH ${victim.email}`);
        await expectRefused(t, soId, 404, () => call(t, 'PATCH', `/users/${victim.id}`, so.headers, { clients: [A] }), `narrow ${victim.email}`);
        await expectRefused(
          t,
          soId,
          404,
          () => call(t, 'POST', `/users/${victim.id}/password`, so.headers, { password: 'taken over by a scoped owner' }),
          `reset ${victim.email}`,
        );
      }
      // Nothing changed: every victim still signs in with their own password, and is still what it was.
      for (const victim of [{ email: 'global.owner@example.test' }, users.globalTech, users.techB, users.techAB]) {
        expect((await login(t, victim.email, PASSWORD, { ip: '10.50.0.1' })).statusCode, victim.email).toBe(200);
        expect((await login(t, victim.email, 'taken over by a scoped owner', { ip: '10.50.0.1' })).statusCode, victim.email).toBe(401);
      }
      const all = (await call(t, 'GET', '/users', g.headers)).json() as { id: string; status: string; clients: unknown }[];
      expect(all.find((x) => x.id === users.globalTech.id)).toMatchObject({ status: 'active', clients: 'all' });
      expect(all.find((x) => x.id === users.techAB.id)).toMatchObject({ status: 'active' });
      expect(new Set(all.find((x) => x.id === users.techAB.id)!.clients as string[])).toEqual(new Set([A, B]));
    });

    it("its own client's users it does manage (the control)", async () => {
      expect((await call(t, 'GET', `/users/${users.techA.id}`, so.headers)).statusCode).toBe(200);
      expect((await call(t, 'PATCH', `/users/${users.techA.id}`, so.headers, { name: 'Tech of Contoso' })).statusCode).toBe(200);
    });

    it('cannot create a user for all clients, nor give one all clients or another client: 403, audited, nobody created', async () => {
      await expectRefused(
        t,
        soId,
        403,
        () =>
          call(t, 'POST', '/users', so.headers, {
            email: 'sneaky.global@example.test',
            password: 'sneaky global password',
            role: 'technician',
            clients: 'all',
          }),
        'create global technician',
      );
      await expectRefused(
        t,
        soId,
        403,
        () => call(t, 'POST', '/users', so.headers, { email: 'sneaky.owner@example.test', password: 'sneaky owner password', role: 'owner', clients: 'all' }),
        'create global owner',
      );
      await expectRefused(
        t,
        soId,
        403,
        () => call(t, 'PATCH', `/users/${users.techA.id}`, so.headers, { clients: 'all' }),
        'widen a user of its own client to all',
      );
      const other = await call(t, 'POST', '/users', so.headers, {
        email: 'sneaky.b@example.test',
        password: 'sneaky b password',
        role: 'technician',
        clients: [B],
      });
      expect([400, 403, 404]).toContain(other.statusCode);
      const emails = ((await call(t, 'GET', '/users', g.headers)).json() as { email: string }[]).map((x) => x.email);
      for (const e of ['sneaky.global@example.test', 'sneaky.owner@example.test', 'sneaky.b@example.test']) expect(emails).not.toContain(e);
      const techA = (await call(t, 'GET', `/users/${users.techA.id}`, g.headers)).json();
      expect(techA.clients).toEqual([A]);
      expect((await login(t, 'sneaky.global@example.test', 'sneaky global password', { ip: '10.50.0.2' })).statusCode).toBe(401);
    });

    it("cannot change vault-wide settings nor another client's security settings: 403, audited, unchanged", async () => {
      const before = (await call(t, 'GET', '/settings/security', g.headers)).json();
      const rotateB = before.clients.find((c: { id: string }) => c.id === B).rotateAfterDisclosure as boolean;
      await expectRefused(
        t,
        soId,
        403,
        () => call(t, 'PATCH', '/settings/security', so.headers, { clients: [{ id: B, rotateAfterDisclosure: !rotateB }] }),
        "another client's rotate-after-disclosure",
      );
      await expectRefused(t, soId, 403, () => call(t, 'PATCH', '/settings/security', so.headers, { revealHideSeconds: 600 }), 'reveal hide time');
      await expectRefused(t, soId, 403, () => call(t, 'PATCH', '/settings/security', so.headers, { requireMfa: true }), 'require MFA (security)');
      await expectRefused(t, soId, 403, () => call(t, 'PATCH', '/settings', so.headers, { requireMfa: true }), 'require MFA (settings)');
      const after = (await call(t, 'GET', '/settings/security', g.headers)).json();
      expect(after).toEqual(before);
      expect((await call(t, 'GET', '/settings', g.headers)).json()).toEqual({ requireMfa: false });
    });

    it('GET /tokens shows only the tokens of people it may manage, and its own', async () => {
      const mint = async (s: Session, name: string, clients: 'all' | string[]) => {
        const r = await call(t, 'POST', '/tokens', s.headers, { name, role: 'auditor', clients });
        expect(r.statusCode, r.body).toBe(201);
        return r.json().apiToken.id as string;
      };
      const globalAdmin = await t.addUser('admin', 'all', 'global.admin.tokens@example.test');
      const ga = await mint(await t.signIn(globalAdmin.email), 'global admin bot', 'all');
      const go = await mint(g, 'global owner bot', [B]);
      const sa = await mint(await t.signIn(users.adminA.email), 'contoso admin bot', [A]);
      const mine = await mint(so, 'scoped owner bot', [A]);
      const r = await call(t, 'GET', '/tokens', so.headers);
      expect(r.statusCode).toBe(200);
      const ids = (r.json() as { id: string }[]).map((x) => x.id);
      expect(ids).toEqual(expect.arrayContaining([sa, mine]));
      expect(ids).not.toContain(ga);
      expect(ids).not.toContain(go);
      // Nor may it revoke them: a token it may not see is not there.
      await expectRefused(t, soId, 404, () => call(t, 'DELETE', `/tokens/${ga}`, so.headers), 'revoke a global admin token');
      const stillLive = (await call(t, 'GET', '/tokens', g.headers)).json().find((x: { id: string }) => x.id === ga);
      expect(stillLive.revokedAt).toBeNull();
    });

    it("GET /lifecycle/approvals shows only its own client's approvals", async () => {
      const insert = async (clientId: string) => {
        const id = randomUUID();
        const now = new Date().toISOString();
        await t.container.database.db
          .insertInto('lifecycle_approvals')
          .values({
            id,
            action: 'offboard-client',
            client_id: clientId,
            device_id: null,
            status: 'pending',
            reason: 'trust core',
            requested_by: `user:${randomUUID()}`,
            requested_by_name: 'another owner',
            requested_at: now,
            expires_at: new Date(Date.now() + 3_600_000).toISOString(),
            approved_by: null,
            approved_by_name: null,
            approved_at: null,
            closed_at: null,
            result: null,
          })
          .execute();
        return id;
      };
      const ofA = await insert(A);
      const ofB = await insert(B);
      const r = await call(t, 'GET', '/lifecycle/approvals', so.headers);
      expect(r.statusCode).toBe(200);
      const rows = r.json() as { id: string; client: { id: string } | null }[];
      expect(rows.map((x) => x.id)).toContain(ofA);
      expect(rows.map((x) => x.id)).not.toContain(ofB);
      expect(rows.every((x) => x.client?.id === A)).toBe(true);
      expect(r.body).not.toContain('Fabrikam');
      // The global owner sees both.
      const mine = ((await call(t, 'GET', '/lifecycle/approvals', g.headers)).json() as { id: string }[]).map((x) => x.id);
      expect(mine).toEqual(expect.arrayContaining([ofA, ofB]));
      // Clean up: the other tests do not expect pending requests.
      for (const id of [ofA, ofB]) expect((await call(t, 'POST', `/lifecycle/approvals/${id}/cancel`, g.headers)).statusCode).toBe(200);
    });
  });

  // ------------------------------------------------------------------ tokens never worth more than their creator now
  describe('a token is worth no more than its creator is now (finding 2)', () => {
    it('narrowing the creator to one client narrows the token; demoting stops listing; disabling stops it; re-enabling restores it', async () => {
      const admin = await t.addUser('admin', 'all', 'drift.admin@example.test');
      const s = await t.signIn(admin.email);
      const minted = await call(t, 'POST', '/tokens', s.headers, { name: 'psa', role: 'technician', clients: 'all', expiresInDays: 30 });
      expect(minted.statusCode).toBe(201);
      const tokenActor = `token:${minted.json().apiToken.id}`;
      const h = bearer(minted.json().token);
      // Before: the token reaches both clients.
      expect((await call(t, 'GET', '/keys', h)).statusCode).toBe(200);
      expect(new Set(((await call(t, 'GET', '/keys', h)).json() as { client: { id: string } }[]).map((k) => k.client.id))).toEqual(new Set([A, B]));

      // The owner narrows the admin to Contoso.
      expect((await call(t, 'PATCH', `/users/${admin.id}`, g.headers, { clients: [A] })).statusCode).toBe(200);
      const me = await call(t, 'GET', '/me', h);
      expect(me.statusCode).toBe(200);
      expect(me.json().actor.clients).toEqual([A]);
      const ownKey = await reveal(t, h, keyA.keyId);
      expect(ownKey.statusCode).toBe(200);
      expect(ownKey.json().key.recoveryPassword).toBe(keyA.password);
      const stateB = await keyState(keyB);
      const other = await expectRefused(t, tokenActor, 404, () => reveal(t, h, keyB.keyId), "reveal of the other client's key");
      expect(other.body).not.toContain(keyB.password);
      expect(await keyState(keyB)).toBe(stateB);
      const listed = (await call(t, 'GET', '/keys', h)).json() as { client: { id: string } }[];
      expect(listed.every((k) => k.client.id === A)).toBe(true);
      expect((await call(t, 'GET', `/clients/${B}`, h)).statusCode).toBe(404);

      // The owner demotes the admin to helpdesk: a technician token keeps no more than helpdesk.
      expect((await call(t, 'PATCH', `/users/${admin.id}`, g.headers, { role: 'helpdesk' })).statusCode).toBe(200);
      await expectRefused(t, tokenActor, 403, () => call(t, 'GET', '/keys', h), 'listing keys after the demotion');
      await expectRefused(t, tokenActor, 403, () => call(t, 'GET', '/devices', h), 'listing devices after the demotion');

      // Disabling the creator stops the token; enabling them again brings it back (decided at every request).
      expect((await call(t, 'PATCH', `/users/${admin.id}`, g.headers, { role: 'admin', status: 'disabled' })).statusCode).toBe(200);
      expect((await call(t, 'GET', '/me', h)).statusCode).toBe(401);
      expect((await reveal(t, h, keyA.keyId)).statusCode).toBe(401);
      expect((await call(t, 'PATCH', `/users/${admin.id}`, g.headers, { status: 'active' })).statusCode).toBe(200);
      expect((await call(t, 'GET', '/me', h)).statusCode).toBe(200);
      expect((await call(t, 'GET', '/keys', h)).statusCode).toBe(200);
      // Still narrowed to Contoso.
      expect((await call(t, 'GET', '/me', h)).json().actor.clients).toEqual([A]);
      expect((await reveal(t, h, keyB.keyId)).statusCode).toBe(404);
    });

    it('an admin demoted to helpdesk keeps no auditor powers through an auditor token', async () => {
      const admin = await t.addUser('admin', 'all', 'drift.auditor@example.test');
      const s = await t.signIn(admin.email);
      const minted = await call(t, 'POST', '/tokens', s.headers, { name: 'siem', role: 'auditor', clients: 'all' });
      expect(minted.statusCode).toBe(201);
      const tokenActor = `token:${minted.json().apiToken.id}`;
      const h = bearer(minted.json().token);
      expect((await call(t, 'GET', '/audit?limit=5', h)).statusCode).toBe(200);
      expect((await call(t, 'GET', '/keys', h)).statusCode).toBe(200);

      expect((await call(t, 'PATCH', `/users/${admin.id}`, g.headers, { role: 'helpdesk' })).statusCode).toBe(200);
      await expectRefused(t, tokenActor, 403, () => call(t, 'GET', '/audit?limit=5', h), 'audit log after the demotion');
      await expectRefused(t, tokenActor, 403, () => call(t, 'GET', '/audit/export?format=csv', h), 'audit export after the demotion');
      await expectRefused(t, tokenActor, 403, () => call(t, 'GET', '/keys', h), 'key list after the demotion');
      // Neither role of the pair reveals through an auditor token.
      expect((await reveal(t, h, keyA.keyId)).statusCode).toBe(403);
    });
  });

  // ------------------------------------------------------------------ what API tokens never do
  describe("an API token, even an owner's for all clients", () => {
    it('cannot create users, change settings or mint tokens: 403, audited, nothing made', async () => {
      const minted = await call(t, 'POST', '/tokens', g.headers, { name: 'owner bot', role: 'owner', clients: 'all' });
      expect(minted.statusCode).toBe(201);
      const actor = `token:${minted.json().apiToken.id}`;
      const h = bearer(minted.json().token);
      const victim = await t.addUser('technician', [A], 'token.victim@example.test');
      const securityBefore = (await call(t, 'GET', '/settings/security', g.headers)).json();
      const tokensBefore = (await call(t, 'GET', '/tokens', g.headers)).json().length as number;

      await expectRefused(
        t,
        actor,
        403,
        () => call(t, 'POST', '/users', h, { email: 'bot.made@example.test', password: 'bot made password', role: 'owner', clients: 'all' }),
        'create a user',
      );
      await expectRefused(t, actor, 403, () => call(t, 'PATCH', `/users/${victim.id}`, h, { role: 'admin' }), 'change a user');
      await expectRefused(t, actor, 403, () => call(t, 'POST', `/users/${victim.id}/password`, h, { password: 'bot set this password' }), 'reset a password');
      await expectRefused(t, actor, 403, () => call(t, 'GET', '/users', h), 'list users');
      await expectRefused(t, actor, 403, () => call(t, 'PATCH', '/settings', h, { requireMfa: true }), 'vault settings');
      await expectRefused(t, actor, 403, () => call(t, 'PATCH', '/settings/security', h, { revealHideSeconds: 600 }), 'security settings');
      await expectRefused(t, actor, 403, () => call(t, 'PATCH', '/lifecycle/settings', h, { twoOwnerApproval: false }), 'lifecycle settings');
      await expectRefused(t, actor, 403, () => call(t, 'POST', '/tokens', h, { name: 'child', role: 'auditor', clients: 'all' }), 'mint a token');
      await expectRefused(t, actor, 403, () => call(t, 'GET', '/tokens', h), 'list tokens');

      const emails = ((await call(t, 'GET', '/users', g.headers)).json() as { email: string }[]).map((x) => x.email);
      expect(emails).not.toContain('bot.made@example.test');
      expect((await call(t, 'GET', `/users/${victim.id}`, g.headers)).json().role).toBe('technician');
      expect((await login(t, victim.email, PASSWORD, { ip: '10.51.0.1' })).statusCode).toBe(200);
      expect((await call(t, 'GET', '/settings/security', g.headers)).json()).toEqual(securityBefore);
      expect((await call(t, 'GET', '/settings', g.headers)).json()).toEqual({ requireMfa: false });
      expect((await call(t, 'GET', '/tokens', g.headers)).json().length).toBe(tokensBefore);
    });
  });

  // ------------------------------------------------------------------ stale step-up
  describe('a session whose step-up is older than the window (finding 5b/c)', () => {
    it('cannot mint tokens, manage users, change security or lifecycle settings or offboard until a fresh step-up', async () => {
      const o = await t.addUser('owner', 'all', 'mfa.owner@example.test');
      const first = await t.signIn(o.email);
      const secret = await enrolMfa(t, first);
      const s = sessionFrom(await login(t, o.email, PASSWORD, { code: await freshTotp(t, secret) }));
      const target = await t.addUser('technician', [A], 'stale.target@example.test');
      const spare = await call(t, 'POST', '/clients', g.headers, { name: 'Stale Offboard Co' });
      expect(spare.statusCode).toBe(201);
      const spareId = spare.json().id as string;
      const lifecycleBefore = (await call(t, 'GET', '/lifecycle/settings', g.headers)).json();
      const securityBefore = (await call(t, 'GET', '/settings/security', g.headers)).json();

      // The thief's session: the second factor was proved 16 minutes ago (window 15).
      await updateSession(t, s.cookie, { mfa_at: minutesAgo(16) });
      const attacks: [string, () => Promise<LightMyRequestResponse>][] = [
        ['mint an admin token', () => call(t, 'POST', '/tokens', s.headers, { name: 'stale bypass', role: 'admin', clients: 'all', expiresInDays: 1 })],
        [
          'create an owner',
          () => call(t, 'POST', '/users', s.headers, { email: 'stale.owner@example.test', password: 'stale owner password', role: 'owner', clients: 'all' }),
        ],
        ['change a user', () => call(t, 'PATCH', `/users/${target.id}`, s.headers, { role: 'admin', clients: 'all' })],
        ['reset a password', () => call(t, 'POST', `/users/${target.id}/password`, s.headers, { password: 'stale reset password' })],
        ['change security settings', () => call(t, 'PATCH', '/settings/security', s.headers, { revealHideSeconds: 600 })],
        ['change lifecycle settings', () => call(t, 'PATCH', '/lifecycle/settings', s.headers, { twoOwnerApproval: !lifecycleBefore.twoOwnerApproval })],
        ['offboard a client', () => call(t, 'POST', `/clients/${spareId}/offboard`, s.headers, { confirm: 'Stale Offboard Co' })],
      ];
      for (const [label, send] of attacks) {
        const r = await expectRefused(t, o.id, 403, send, label);
        expect(r.json().error, label).toBe('step_up_required');
        expect(r.body).not.toMatch(/kw_[A-Za-z0-9_-]{20,}/);
      }
      // Nothing happened.
      const tokenNames = ((await call(t, 'GET', '/tokens', g.headers)).json() as { name: string }[]).map((x) => x.name);
      expect(tokenNames).not.toContain('stale bypass');
      expect(((await call(t, 'GET', '/users', g.headers)).json() as { email: string }[]).map((x) => x.email)).not.toContain('stale.owner@example.test');
      expect((await call(t, 'GET', `/users/${target.id}`, g.headers)).json()).toMatchObject({ role: 'technician', clients: [A] });
      expect((await login(t, target.email, PASSWORD, { ip: '10.52.0.1' })).statusCode).toBe(200);
      expect((await call(t, 'GET', '/settings/security', g.headers)).json()).toEqual(securityBefore);
      expect((await call(t, 'GET', '/lifecycle/settings', g.headers)).json()).toEqual(lifecycleBefore);
      expect((await call(t, 'GET', `/clients/${spareId}/lifecycle`, g.headers)).json().offboardedAt).toBeNull();

      // A fresh step-up, and the same requests go through.
      const up = await call(t, 'POST', '/auth/step-up', s.headers, { code: await freshTotp(t, secret) });
      expect(up.statusCode).toBe(200);
      expect((await call(t, 'POST', '/tokens', s.headers, { name: 'after step-up', role: 'auditor', clients: 'all', expiresInDays: 1 })).statusCode).toBe(201);
      expect(
        (await call(t, 'POST', '/users', s.headers, { email: 'fresh.user@example.test', password: 'fresh user password', role: 'technician', clients: [A] }))
          .statusCode,
      ).toBe(201);
      expect((await call(t, 'PATCH', `/users/${target.id}`, s.headers, { name: 'Renamed after step-up' })).statusCode).toBe(200);
      expect((await call(t, 'PATCH', '/settings/security', s.headers, { revealHideSeconds: securityBefore.revealHideSeconds })).statusCode).toBe(200);
      expect((await call(t, 'PATCH', '/lifecycle/settings', s.headers, { twoOwnerApproval: false })).statusCode).toBe(200);
      const off = await call(t, 'POST', `/clients/${spareId}/offboard`, s.headers, { confirm: 'Stale Offboard Co' });
      expect(off.statusCode, off.body).toBe(200);
      expect(off.json().status).toBe('executed');
    });
  });
});

// ==================================================================== second factor and sign-in throttling
describe(`trust core: step-up and sign-in throttling on ${ENGINE}`, () => {
  const MAX = 5;
  const PER_IP = 12;
  let t: TestApp;

  beforeAll(async () => {
    t = await createTestApp({
      KEYWARDEN_LOGIN_MAX_FAILURES: String(MAX),
      KEYWARDEN_LOGIN_MAX_FAILURES_PER_IP: String(PER_IP),
      KEYWARDEN_LOGIN_LOCKOUT_MINUTES: '15',
    });
  });
  afterAll(async () => {
    await t?.close();
  });

  /** A user with an authenticator app and a session from this address. */
  async function mfaUser(email: string, ip: string): Promise<{ id: string; email: string; secret: string; s: Session }> {
    const u = await t.addUser('technician', 'all', email);
    const first = sessionFrom(await login(t, email, PASSWORD, { ip: '10.99.99.99' }));
    const secret = await enrolMfa(t, first);
    const s = sessionFrom(await login(t, email, PASSWORD, { ip, code: await freshTotp(t, secret) }));
    return { id: u.id, email, secret, s };
  }
  const stepUp = (s: Session, code: string, ip: string) => call(t, 'POST', '/auth/step-up', s.headers, { code }, ip);

  it(`step-up brute force: 40 wrong codes lock the account after ${MAX}; the right code is then 429 too, until the lockout ends`, async () => {
    const ip = '10.60.0.1';
    const u = await mfaUser('stepup.brute@example.test', ip);
    const mark = await (async () => (await auditEvents(t))[0]?.seq ?? 0)();
    const wrong = wrongTotp(u.secret);
    // 20 at once, then 20 one after another.
    const parallel = await Promise.all(Array.from({ length: 20 }, () => stepUp(u.s, wrong, ip)));
    const sequential: LightMyRequestResponse[] = [];
    for (let i = 0; i < 20; i++) sequential.push(await stepUp(u.s, wrong, ip));
    const statuses = [...parallel, ...sequential].map((r) => r.statusCode);
    const evaluated = statuses.filter((x) => x !== 429);
    expect(evaluated.length, JSON.stringify(statuses)).toBeLessThanOrEqual(MAX);
    expect(evaluated.every((x) => x === 400 || x === 401)).toBe(true);
    expect(statuses.filter((x) => x === 429).length).toBeGreaterThanOrEqual(40 - MAX);
    expect(sequential.every((r) => r.statusCode === 429)).toBe(true);
    expect(Number(sequential[0]!.headers['retry-after'])).toBeGreaterThan(0);

    const right = await stepUp(u.s, await freshTotp(t, u.secret), ip);
    expect(right.statusCode).toBe(429);
    expect(right.json().error).toBe('rate_limited');
    // From another address the account is still locked.
    expect((await stepUp(u.s, await freshTotp(t, u.secret), '10.60.0.2')).statusCode).toBe(429);

    const events = (await auditEvents(t, { action: 'auth.step_up', actorId: u.id })).filter((e) => e.seq > mark);
    expect(events.some((e) => e.outcome === 'success')).toBe(false);
    expect(events.filter((e) => e.outcome === 'failure').length).toBeLessThanOrEqual(MAX);
    expect(events.filter((e) => e.outcome === 'locked' || e.outcome === 'rate_limited').length).toBeGreaterThanOrEqual(1);

    // Once the lockout has run out, the right code works.
    await endLockouts(t, u.id, u.email, ip, '10.60.0.2');
    const after = await stepUp(u.s, await freshTotp(t, u.secret), ip);
    expect(after.statusCode, after.body).toBe(200);
  });

  it(`step-up per address: ${PER_IP} wrong codes from one address across accounts lock that address, not the accounts`, async () => {
    const ip = '10.61.0.1';
    const a = await mfaUser('stepup.ip.a@example.test', ip);
    const b = await mfaUser('stepup.ip.b@example.test', ip);
    const c = await mfaUser('stepup.ip.c@example.test', ip);
    const d = await mfaUser('stepup.ip.d@example.test', ip);
    // Below the account limit for each, together at the address limit.
    const perAccount = PER_IP / 3;
    expect(perAccount).toBeLessThan(MAX);
    for (const u of [a, b, c]) for (let i = 0; i < perAccount; i++) expect([400, 401]).toContain((await stepUp(u.s, wrongTotp(u.secret), ip)).statusCode);
    const mark = (await auditEvents(t))[0]?.seq ?? 0;
    const blocked = await stepUp(d.s, await freshTotp(t, d.secret), ip);
    expect(blocked.statusCode).toBe(429);
    const ev = (await auditEvents(t, { action: 'auth.step_up', actorId: d.id })).filter((e) => e.seq > mark);
    expect(ev.map((e) => e.outcome)).not.toContain('success');
    expect(ev.length).toBeGreaterThanOrEqual(1);
    // The account itself is fine from another address.
    expect((await stepUp(d.s, await freshTotp(t, d.secret), '10.61.0.2')).statusCode).toBe(200);
  });

  it('one TOTP code sent with the right password 6 times at once signs in exactly once', async () => {
    const u = await mfaUser('totp.replay@example.test', '10.62.0.1');
    const sessionsBefore = Number(
      (
        await t.container.database.db
          .selectFrom('sessions')
          .select((eb) => eb.fn.countAll().as('n'))
          .where('user_id', '=', u.id)
          .executeTakeFirstOrThrow()
      ).n,
    );
    const mark = (await auditEvents(t))[0]?.seq ?? 0;
    const code = await freshTotp(t, u.secret);
    const answers = await Promise.all(Array.from({ length: 6 }, (_, i) => login(t, u.email, PASSWORD, { code, ip: `10.62.1.${i + 1}` })));
    const statuses = answers.map((r) => r.statusCode);
    // Exactly one sign-in; the other five are refused as a spent code (401), or, once the account's
    // attempts in flight reach the limit, as locked (429).
    expect(
      statuses.filter((x) => x === 200),
      JSON.stringify(statuses),
    ).toHaveLength(1);
    expect(
      statuses.filter((x) => x === 401 || x === 429),
      JSON.stringify(statuses),
    ).toHaveLength(5);
    for (const r of answers.filter((x) => x.statusCode !== 200)) expect(r.cookies.find((k) => k.name === 'kw_session')).toBeUndefined();
    const sessionsAfter = Number(
      (
        await t.container.database.db
          .selectFrom('sessions')
          .select((eb) => eb.fn.countAll().as('n'))
          .where('user_id', '=', u.id)
          .executeTakeFirstOrThrow()
      ).n,
    );
    expect(sessionsAfter - sessionsBefore).toBe(1);
    const refusals = (await auditEvents(t, { action: 'auth.login' })).filter((e) => e.seq > mark && e.details?.email === u.email && e.outcome !== 'success');
    expect(refusals.filter((e) => e.outcome === 'failure').length).toBe(statuses.filter((x) => x === 401).length);
    expect(refusals.length).toBe(5);
  });

  it(`a burst of 40 wrong passwords against one account: at most ${MAX} are evaluated, the rest 429; then the right password is 429 while locked`, async () => {
    const u = await t.addUser('technician', 'all', 'burst.victim@example.test');
    const mark = (await auditEvents(t))[0]?.seq ?? 0;
    const answers = await Promise.all(
      Array.from({ length: 40 }, (_, i) => login(t, u.email, `wrong password ${i}`, { ip: `10.63.${Math.floor(i / 200)}.${(i % 200) + 1}` })),
    );
    const statuses = answers.map((r) => r.statusCode);
    const wrongPassword = statuses.filter((x) => x === 401).length;
    expect(wrongPassword, JSON.stringify(statuses)).toBeLessThanOrEqual(MAX);
    expect(wrongPassword).toBeGreaterThanOrEqual(1);
    expect(statuses.filter((x) => x === 429).length).toBe(40 - wrongPassword);
    const evaluated = (await auditEvents(t, { action: 'auth.login', outcome: 'failure' })).filter(
      (e) => e.seq > mark && e.details?.email === u.email && e.details?.reason === 'wrong password',
    );
    expect(evaluated.length).toBeLessThanOrEqual(MAX);
    expect(evaluated.length).toBe(wrongPassword);
    const locked = (await auditEvents(t, { action: 'auth.login', outcome: 'locked' })).filter((e) => e.seq > mark && e.details?.email === u.email);
    expect(locked.length).toBeGreaterThanOrEqual(1);

    const right = await login(t, u.email, PASSWORD, { ip: '10.63.9.9' });
    expect(right.statusCode).toBe(429);
    expect(right.cookies.find((k) => k.name === 'kw_session')).toBeUndefined();
    await endLockouts(t, u.email);
    expect((await login(t, u.email, PASSWORD, { ip: '10.63.9.9' })).statusCode).toBe(200);
  });
});

// ==================================================================== two-owner approval
describe(`trust core: two-owner approval protects itself on ${ENGINE} (finding 14)`, () => {
  let t: TestApp;
  let o1: Session;
  let o1Id: string;
  let o2: Session;
  let clientId: string;
  let keepId: string;
  const CLIENT = 'Offboard Me Ltd';
  const key = newKey('TWO-OWNER-1');

  beforeAll(async () => {
    t = await createTestApp();
    const a = await t.addUser('owner', 'all', 'owner.one@example.test');
    o1Id = a.id;
    o1 = await t.signIn(a.email);
    o2 = await t.signIn((await t.addUser('owner', 'all', 'owner.two@example.test')).email);
    const c = await call(t, 'POST', '/clients', o1.headers, { name: CLIENT });
    expect(c.statusCode).toBe(201);
    clientId = c.json().id;
    const keep = await call(t, 'POST', '/clients', o1.headers, { name: 'Keep Me Ltd' });
    expect(keep.statusCode).toBe(201);
    keepId = keep.json().id;
    await seedKeys(t, CLIENT, [key]);
  });
  afterAll(async () => {
    await t?.close();
  });

  const twoOwnerOn = async () => (await call(t, 'GET', '/lifecycle/settings', o2.headers)).json().twoOwnerApproval as boolean;
  const offboardedAt = async () => (await call(t, 'GET', `/clients/${clientId}/lifecycle`, o2.headers)).json().offboardedAt as string | null;

  it('the owner who asked for an offboard cannot switch the rule off alone, and the offboard stays pending', async () => {
    expect((await call(t, 'PATCH', '/lifecycle/settings', o1.headers, { twoOwnerApproval: true })).statusCode).toBe(200);
    expect(await twoOwnerOn()).toBe(true);
    const asked = await call(t, 'POST', `/clients/${clientId}/offboard`, o1.headers, { confirm: CLIENT, reason: 'contract ended' });
    expect(asked.statusCode).toBe(202);
    expect(asked.json().status).toBe('pending');

    const mark = (await auditEvents(t))[0]?.seq ?? 0;
    const off = await call(t, 'PATCH', '/lifecycle/settings', o1.headers, { twoOwnerApproval: false });
    expect([202, 403], off.body).toContain(off.statusCode);
    const ev = (await auditEvents(t, { actorId: o1Id })).filter((e) => e.seq > mark);
    // Either refused (audited as a denial) or turned into a request for the second owner (audited as one).
    expect(ev.some((e) => e.outcome === 'denied' || e.action === 'lifecycle.request')).toBe(true);
    expect(await twoOwnerOn()).toBe(true);

    const again = await call(t, 'POST', `/clients/${clientId}/offboard`, o1.headers, { confirm: CLIENT, reason: 'contract ended' });
    expect([202, 409]).toContain(again.statusCode);
    expect(again.json().status).not.toBe('executed');
    expect(await offboardedAt()).toBeNull();
    // The key is still there.
    const keys = (await call(t, 'GET', `/keys?q=${key.keyId}`, o2.headers)).json();
    expect(keys).toHaveLength(1);
  });

  it('an owner created after the request cannot approve it (403, audited); an owner from before can, and it runs', async () => {
    const pending = (
      (await call(t, 'GET', '/lifecycle/approvals', o2.headers)).json() as { id: string; action: string; status: string; client: { id: string } | null }[]
    ).filter((a) => a.action === 'offboard-client' && a.status === 'pending' && a.client?.id === clientId);
    expect(pending.length).toBeGreaterThanOrEqual(1);
    const approvalId = pending[pending.length - 1]!.id;

    const late = await t.addUser('owner', 'all', 'owner.late@example.test');
    const lateS = await t.signIn(late.email);
    await expectRefused(
      t,
      late.id,
      403,
      () => call(t, 'POST', `/lifecycle/approvals/${approvalId}/approve`, lateS.headers, { confirm: CLIENT }),
      'approval by an owner created after the request',
    );
    expect(await offboardedAt()).toBeNull();
    // Nor may the requester approve their own.
    await expectRefused(
      t,
      o1Id,
      403,
      () => call(t, 'POST', `/lifecycle/approvals/${approvalId}/approve`, o1.headers, { confirm: CLIENT }),
      'approval by the requester',
    );
    expect(await offboardedAt()).toBeNull();

    const ok = await call(t, 'POST', `/lifecycle/approvals/${approvalId}/approve`, o2.headers, { confirm: CLIENT });
    expect(ok.statusCode, ok.body).toBe(200);
    expect(ok.json().status).toBe('executed');
    expect(await offboardedAt()).toBeTruthy();
  });

  it('while it is on, creating an owner or granting all clients waits for the second owner', async () => {
    expect(await twoOwnerOn()).toBe(true);
    const pendingCount = async () => ((await call(t, 'GET', '/lifecycle/approvals?status=pending', o2.headers)).json() as unknown[]).length;
    // Each of these becomes a request for the second owner (or is refused): never an owner or a
    // grant of all clients at once.
    let before = await pendingCount();
    const created = await call(t, 'POST', '/users', o1.headers, {
      email: 'owner.three@example.test',
      password: 'third owner password',
      role: 'owner',
      clients: 'all',
    });
    expect(created.statusCode, created.body).toBeLessThan(500);
    if (created.statusCode < 300) expect(await pendingCount()).toBeGreaterThan(before);
    const users = (await call(t, 'GET', '/users', o2.headers)).json() as { email: string; role: string; status: string }[];
    expect(users.find((u) => u.email === 'owner.three@example.test' && u.role === 'owner' && u.status === 'active')).toBeUndefined();
    expect((await login(t, 'owner.three@example.test', 'third owner password', { ip: '10.70.0.1' })).statusCode).toBe(401);

    const admin = await t.addUser('admin', [keepId], 'admin.widen@example.test');
    before = await pendingCount();
    const widened = await call(t, 'PATCH', `/users/${admin.id}`, o1.headers, { clients: 'all' });
    expect(widened.statusCode, widened.body).toBeLessThan(500);
    if (widened.statusCode < 300) expect(await pendingCount()).toBeGreaterThan(before);
    expect((await call(t, 'GET', `/users/${admin.id}`, o2.headers)).json().clients).toEqual([keepId]);

    before = await pendingCount();
    const promoted = await call(t, 'PATCH', `/users/${admin.id}`, o1.headers, { role: 'owner' });
    expect(promoted.statusCode, promoted.body).toBeLessThan(500);
    if (promoted.statusCode < 300) expect(await pendingCount()).toBeGreaterThan(before);
    expect((await call(t, 'GET', `/users/${admin.id}`, o2.headers)).json().role).toBe('admin');
    expect((await login(t, admin.email, PASSWORD, { ip: '10.70.0.2' })).statusCode).toBe(200);
  });
});
