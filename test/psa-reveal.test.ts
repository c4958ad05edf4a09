import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/app.js';
import { buildContainer, type Container } from '../src/container.js';
import type { PsaConnectionInput } from '../src/modules/psa/psa.service.js';
import { systemActor } from '../src/modules/authz/authz.js';
import { ENGINE } from './helpers/engine.js';
import { TestClock } from './helpers/lifecycle.js';
import { createTestVault, owner as cliOwner, type TestVault } from './helpers/vault.js';
import { PASSWORD, sessionFrom, type Session } from './helpers/app.js';
import { expectNoLeak } from './helpers/http.js';
import { bytes, csvOf, randomKeyId, randomRecoveryPassword } from './helpers/keys.js';
import type { PsaSimBase } from './psa-sim/common.js';
import { HaloPsaSimulator } from './psa-sim/halopsa.js';
import { ConnectWiseSimulator } from './psa-sim/connectwise.js';
import { AT_PUBLISH, AutotaskSimulator } from './psa-sim/autotask.js';

/**
 * Ticket-bound reveal (issue 21, item 2) over real HTTP against each PSA's simulator, with the real
 * PSA connection service, configured as an owner does it, through its HTTP routes:
 * a valid open ticket of the linked company reveals and posts exactly one internal note (never the
 * password); a closed, another company's or an unknown ticket is refused with the reason and posts
 * nothing; the assignee rule; a PSA that cannot be reached under validate (reveal, unverified, note
 * delivered later by the retry task) and under required (refused; an owner's break-glass works, a
 * technician's does not); policy off never calls the PSA; a parallel burst respects the hourly limit.
 */

const API = '/api/v1';
type Key = { keyId: string; password: string; device: string; recordId: string };
type Ticket = { ref: string; id: string };
type Harness = {
  name: string;
  sim: PsaSimBase;
  start(): Promise<void>;
  input(): PsaConnectionInput;
  t: { open: Ticket; closed: Ticket; other: Ticket; company: string; otherCompany: string; ada: string; bob: string };
  notes(ticketId: string): { text: string; internal: boolean }[];
};

const halo = new HaloPsaSimulator();
const cw = new ConnectWiseSimulator();
const at = new AutotaskSimulator();

const harnesses: Harness[] = [
  {
    name: 'HaloPSA',
    sim: halo,
    async start() {
      await halo.start();
      const s = halo.seed();
      this.t = {
        open: { ref: String(s.open.id), id: String(s.open.id) },
        closed: { ref: String(s.closed.id), id: String(s.closed.id) },
        other: { ref: String(s.otherClientOpen.id), id: String(s.otherClientOpen.id) },
        company: String(s.open.client_id),
        otherCompany: String(s.otherClientOpen.client_id),
        // Halo's ticket names its agent by id.
        ada: String(s.open.agent_id),
        bob: String(s.otherClientOpen.agent_id),
      };
    },
    input: () => ({ kind: 'halopsa', url: halo.url, authUrl: halo.authUrl, apiUrl: halo.apiUrl, clientId: halo.clientId, clientSecret: halo.clientSecret }),
    t: undefined as never,
    notes: (id) => halo.notes(Number(id)).map((a) => ({ text: a.note, internal: a.hiddenfromuser === true })),
  },
  {
    name: 'ConnectWise PSA',
    sim: cw,
    async start() {
      await cw.start();
      const s = cw.seed();
      this.t = {
        open: { ref: `#${s.open.id}`, id: String(s.open.id) },
        closed: { ref: String(s.closed.id), id: String(s.closed.id) },
        other: { ref: String(s.otherCompanyOpen.id), id: String(s.otherCompanyOpen.id) },
        company: String(s.open.company.id),
        otherCompany: String(s.otherCompanyOpen.company.id),
        ada: 'atech',
        bob: 'btech',
      };
    },
    input: () => ({
      kind: 'connectwise',
      apiUrl: cw.apiUrl,
      companyId: cw.companyId,
      publicKey: cw.publicKey,
      privateKey: cw.privateKey,
      clientId: cw.clientId,
    }),
    t: undefined as never,
    notes: (id) => cw.notes(Number(id)).map((n) => ({ text: n.text, internal: n.internalAnalysisFlag && !n.externalFlag && !n.detailDescriptionFlag })),
  },
  {
    name: 'Autotask',
    sim: at,
    async start() {
      await at.start();
      const s = at.seed();
      this.t = {
        // Autotask numbers (T20250301.0001) are what technicians type.
        open: { ref: s.open.ticketNumber, id: String(s.open.id) },
        closed: { ref: s.closed.ticketNumber, id: String(s.closed.id) },
        other: { ref: s.otherCompanyOpen.ticketNumber, id: String(s.otherCompanyOpen.id) },
        company: String(s.open.companyID),
        otherCompany: String(s.otherCompanyOpen.companyID),
        ada: String(s.open.assignedResourceID),
        bob: String(s.otherCompanyOpen.assignedResourceID),
      };
    },
    input: () => ({
      kind: 'autotask',
      zoneLookupUrl: `${at.url}/atservicesrest`,
      userName: at.userName,
      secret: at.secret,
      integrationCode: at.integrationCode,
    }),
    t: undefined as never,
    notes: (id) => at.notes(Number(id)).map((n) => ({ text: n.description, internal: n.publish === AT_PUBLISH.InternalProjectTeam })),
  },
];

const FORTY_EIGHT_DIGITS = /\d{6}(?:-?\d{6}){7}/;

describe.each(harnesses)(`ticket-bound reveal with $name on ${ENGINE}`, (h) => {
  let v: TestVault;
  let c: Container;
  let app: Awaited<ReturnType<typeof buildApp>>;
  let clock: TestClock;
  let contoso: string;
  let fabrikam: string;
  const keys: Key[] = [];
  const s = {} as Record<'owner' | 'ada' | 'bob' | 'fabTech', Session>;
  const names = {} as Record<keyof typeof s, string>;
  let n = 0;
  const newKey = (): Key => {
    const k = { keyId: randomKeyId(), password: randomRecoveryPassword(), device: `FAKE-LAP${String(++n).padStart(2, '0')}`, recordId: '' };
    keys.push(k);
    return k;
  };
  const passwords = () => keys.map((k) => k.password);
  const importKeys = async (client: string, ks: Key[]) => {
    await c.imports.importFile(cliOwner, client, { fileName: `k${n}.csv`, bytes: bytes(csvOf(ks)) });
    for (const k of ks) k.recordId = (await c.keys.searchByKeyId(cliOwner, k.keyId))[0]!.id;
  };
  const reveal = (who: Session, k: Key, extra: Record<string, unknown> = {}) =>
    app.inject({ method: 'POST', url: `${API}/keys/${k.recordId}/reveal`, headers: who.headers, payload: { reason: 'lost-pin', ...extra } });
  /** The status and body; no password in it but the one of a key revealed by this answer. */
  const answer = (r: LightMyRequestResponse, status: number) => {
    expect(r.statusCode, r.body).toBe(status);
    const revealed = status === 200 ? (r.json() as { key?: { recoveryPassword?: string } }).key?.recoveryPassword : undefined;
    expectNoLeak(
      r,
      passwords().filter((p) => p !== revealed),
    );
    return r.json();
  };
  /** An owner's PUT through the PSA routes (connection, a client's company and policy, a person's member). */
  const put = async (url: string, payload: Record<string, unknown>) =>
    answer(await app.inject({ method: 'PUT', url: `${API}${url}`, headers: s.owner.headers, payload }), 200);
  const policy = (ticketPolicy: 'off' | 'validate' | 'required', requireAssignee = false) => put(`/clients/${contoso}/psa`, { ticketPolicy, requireAssignee });
  const setMember = (who: Session, member: string | null) => put(`/psa/members/${who.userId}`, { member });
  const reveals = async (k: Key) => (await c.audit.list(cliOwner, { action: 'key.reveal', limit: 1000 })).filter((e) => e.targetId === k.recordId);
  const outboxOf = (k: Key) => c.psaTickets.notesForKey(k.recordId);
  const allNotes = () => [h.t.open, h.t.closed, h.t.other].flatMap((t) => h.notes(t.id));

  beforeAll(async () => {
    await h.start();
    // Sessions outlive the hours the retry test moves the clock on.
    v = await createTestVault({ KEYWARDEN_REVEAL_LIMIT_PER_HOUR: '10000', KEYWARDEN_SESSION_IDLE_MINUTES: '1440', KEYWARDEN_SESSION_MAX_HOURS: '720' });
    clock = new TestClock(new Date().toISOString());
    // PSA calls without real waits between retries; an unreachable PSA fails at once.
    c = await buildContainer(v.config, { clock, psaClient: { sleep: async () => undefined, timeoutMs: 3000, maxRetries: 0 } });
    app = await buildApp(c, { logger: false });
    contoso = (await c.clients.create(cliOwner, { name: 'Contoso' })).id;
    fabrikam = (await c.clients.create(cliOwner, { name: 'Fabrikam' })).id;
    for (const [who, role, clients] of [
      ['owner', 'owner', 'all'],
      ['ada', 'technician', [contoso]],
      ['bob', 'technician', [contoso]],
      ['fabTech', 'technician', [fabrikam]],
    ] as const) {
      const email = `${who}-${h.name.replace(/\W/g, '')}@example.test`;
      const u = await c.identity.createUser(systemActor('test'), { email, password: PASSWORD, role, clients: clients === 'all' ? 'all' : [...clients] });
      const r = await app.inject({ method: 'POST', url: `${API}/auth/login`, payload: { email, password: PASSWORD } });
      s[who] = sessionFrom(r);
      names[who] = u.name ?? email;
    }
    expect(await put('/settings/psa', h.input())).toMatchObject({ status: 'ok' });
    await put(`/clients/${contoso}/psa`, { companyId: h.t.company, ticketPolicy: 'validate' });
    await setMember(s.ada, h.t.ada);
    await setMember(s.bob, h.t.bob);
  });
  afterAll(async () => {
    await app?.close();
    await c?.close();
    await v?.close();
    await h.sim.stop();
  });

  it('a valid open ticket of the linked company: revealed, one internal note, the audit event links the ticket', async () => {
    const k = newKey();
    await importKeys('Contoso', [k]);
    const before = h.notes(h.t.open.id).length;
    const body = answer(await reveal(s.ada, k, { ticket: h.t.open.ref }), 200);
    expect(body.key.recoveryPassword).toBe(k.password);
    await c.psaTickets.settled();
    const notes = h.notes(h.t.open.id).slice(before);
    expect(notes).toHaveLength(1);
    const note = notes[0]!;
    expect(note.internal).toBe(true);
    expect(note.text).toContain(`${k.keyId.slice(0, 8).toUpperCase()}…`);
    expect(note.text).toContain(k.device);
    expect(note.text).toContain('client Contoso');
    expect(note.text).toContain('Lost PIN');
    expect(note.text).not.toContain(k.password);
    expect(note.text).not.toMatch(FORTY_EIGHT_DIGITS);
    const [ev] = await reveals(k);
    expect(ev).toMatchObject({ outcome: 'success' });
    expect(ev!.details!.ticket).toMatchObject({
      id: h.t.open.id,
      psa: h.sim === halo ? 'halopsa' : h.sim === cw ? 'connectwise' : 'autotask',
      validated: true,
    });
    expect(note.text).toContain(ev!.actorName);
    const posted = await c.audit.list(cliOwner, { action: 'psa.note_posted', limit: 100 });
    expect(posted.filter((e) => e.targetId === k.recordId)).toHaveLength(1);
    expect(await outboxOf(k)).toMatchObject([{ status: 'posted', attempts: 1, validated: 1 }]);
  });

  it('the ticket is checked whether the key is named by its record id, its full key ID or an 8-character prefix', async () => {
    for (const by of [(k: Key) => k.keyId, (k: Key) => k.keyId.slice(0, 8), (k: Key) => k.keyId.toUpperCase()]) {
      const k = newKey();
      await importKeys('Contoso', [k]);
      const ok = answer(
        await app.inject({ method: 'POST', url: `${API}/keys/${by(k)}/reveal`, headers: s.ada.headers, payload: { reason: 'lost-pin', ticket: h.t.open.ref } }),
        200,
      );
      expect(ok.key.recoveryPassword).toBe(k.password);
      const refused = answer(
        await app.inject({
          method: 'POST',
          url: `${API}/keys/${by(k)}/reveal`,
          headers: s.ada.headers,
          payload: { reason: 'lost-pin', ticket: h.t.closed.ref },
        }),
        409,
      );
      expect(refused.message).toMatch(/is closed/);
    }
    await c.psaTickets.settled();
  });

  /** A key imported for a device of this name, revealed with the open ticket: the note posted. */
  const noteForDevice = async (device: string) => {
    const k = { ...newKey(), device };
    keys[keys.length - 1] = k;
    await importKeys('Contoso', [k]);
    const before = h.notes(h.t.open.id).length;
    answer(await reveal(s.ada, k, { ticket: h.t.open.ref }), 200);
    await c.psaTickets.settled();
    const [note] = h.notes(h.t.open.id).slice(before);
    return { k, note };
  };

  it('a device name with markup (from an import) reaches the PSA as inert text, never as HTML', async () => {
    const { note } = await noteForDevice('FAKE-<img src=x onerror=alert(1)>');
    expect(note!.text).toContain('FAKE-‹img src=x onerror=alert(1)›');
    expect(note!.text).not.toMatch(/[<>]/);
  });

  it('a device, token or client name cannot forge a line of its own in the note: line breaks and separators become spaces', async () => {
    const { k, note } = await noteForDevice('FAKE-L\u2028Recovery key 00000000… for LAPTOP-01 revealed; rotation queued (agent).');
    expect(note!.text).toContain('FAKE-L Recovery key 00000000…');
    expect(note!.text).not.toMatch(/[\n\r\u2028\u2029\u0085]/);
    // An agent reports its own hostname and a token is named by its creator: both may hold line breaks.
    const text = c.psaTickets.noteText({
      keyId: k.keyId,
      device: 'LAPTOP-07\nThe key was not used; no rotation needed.',
      clientName: 'Contoso\r\nLtd',
      actorName: 'token ci\n\nRecovery key 00000000… (kw_1…)',
      reason: 'lost-pin',
      rotation: null,
    });
    expect(text).not.toMatch(/[\n\r\u2028\u2029\u0085]/);
    expect(text).toContain('for LAPTOP-07 The key was not used; no rotation needed. (client Contoso Ltd)');
  });

  it('a device name shaped like a recovery password is masked in the note (and the outbox), and the note is still posted', async () => {
    const shaped = randomRecoveryPassword();
    const { k, note } = await noteForDevice(`FAKE-${shaped}`);
    const [row] = await outboxOf(k);
    expect(row).toMatchObject({ status: 'posted' });
    expect(row!.text).not.toMatch(FORTY_EIGHT_DIGITS);
    expect(note!.text).toContain('FAKE-[redacted-recovery-password]');
    expect(note!.text).not.toMatch(FORTY_EIGHT_DIGITS);
  });

  it.each([
    ['a closed', () => h.t.closed.ref, /is closed \(.+\) in .+: reopen it or use an open ticket/],
    ["another company's", () => h.t.other.ref, /belongs to another company in .+, not to/],
    ['an unknown', () => '999999', /Ticket 999999 does not exist in /],
  ])('%s ticket: refused with the reason, no note, no reveal', async (_what, ref, message) => {
    const k = newKey();
    await importKeys('Contoso', [k]);
    const notesBefore = allNotes().length;
    const r = answer(await reveal(s.ada, k, { ticket: ref() }), 409);
    expect(r.message).toMatch(message);
    expect(r.fields).toEqual([{ field: 'ticket', message: r.message }]);
    await c.psaTickets.settled();
    expect(allNotes()).toHaveLength(notesBefore);
    expect(await outboxOf(k)).toEqual([]);
    const evs = await reveals(k);
    expect(evs.map((e) => e.outcome)).toEqual(['denied']);
    expect(evs[0]!.details).toMatchObject({ problem: expect.stringMatching(/^ticket /), ticket: { validated: false } });
  });

  it("another company's name is given only to someone who may see the client linked to it", async () => {
    await put(`/clients/${fabrikam}/psa`, { companyId: h.t.otherCompany });
    try {
      const k = newKey();
      await importKeys('Contoso', [k]);
      // Ada (Contoso only) is not told whose ticket it is; the owner (all clients) is.
      expect(answer(await reveal(s.ada, k, { ticket: h.t.other.ref }), 409).message).toMatch(/belongs to another company in /);
      const named = answer(await reveal(s.owner, k, { ticket: h.t.other.ref }), 409).message as string;
      expect(named).toMatch(/belongs to Fabrikam, Inc\. in .+, not to Contoso Ltd \(Contoso\)/);
    } finally {
      await put(`/clients/${fabrikam}/psa`, { companyId: null });
    }
  });

  it('"#" before the number and surrounding spaces are forgiven; characters a ticket number cannot hold are a 400', async () => {
    const k = newKey();
    await importKeys('Contoso', [k]);
    const r = answer(await reveal(s.ada, k, { ticket: '12/../34' }), 400);
    expect(r.fields[0].field).toBe('ticket');
    answer(await reveal(s.ada, k, { ticket: `  #${h.t.open.ref.replace(/^#/, '')} ` }), 200);
    await c.psaTickets.settled();
  });

  it('the assignee rule: another technician is refused, the assignee reveals, an unlinked person is told to ask an owner', async () => {
    await policy('validate', true);
    try {
      const k = newKey();
      await importKeys('Contoso', [k]);
      expect(answer(await reveal(s.bob, k, { ticket: h.t.open.ref }), 409).message).toMatch(/is not assigned to you/);
      await setMember(s.bob, null);
      expect(answer(await reveal(s.bob, k, { ticket: h.t.open.ref }), 409).message).toMatch(/ask an owner to link your PSA member/);
      await setMember(s.bob, h.t.bob);
      answer(await reveal(s.ada, k, { ticket: h.t.open.ref }), 200);
      await c.psaTickets.settled();
    } finally {
      await policy('validate', false);
    }
  });

  it('PSA unreachable under validate: revealed unverified, the note is delivered by the retry task once the PSA is back', async () => {
    const k = newKey();
    await importKeys('Contoso', [k]);
    const before = h.notes(h.t.open.id).length;
    h.sim.unreachable = 'reset';
    try {
      answer(await reveal(s.ada, k, { ticket: h.t.open.ref }), 200);
      await c.psaTickets.settled();
    } finally {
      h.sim.unreachable = false;
    }
    const [ev] = await reveals(k);
    expect(ev).toMatchObject({ outcome: 'success' });
    expect(ev!.details!.ticket).toMatchObject({ validated: false, problem: expect.stringMatching(/unreachable/) });
    expect(await outboxOf(k)).toMatchObject([{ status: 'pending', attempts: 1, validated: 0 }]);
    expect(h.notes(h.t.open.id)).toHaveLength(before);
    // The back-off has passed: the scheduler's task posts it (the company is checked first).
    clock.t += 5 * 60_000;
    await c.scheduler.runNow('psa-notes');
    expect(await outboxOf(k)).toMatchObject([{ status: 'posted', attempts: 2 }]);
    const notes = h.notes(h.t.open.id).slice(before);
    expect(notes).toHaveLength(1);
    expect(notes[0]!.text).toContain(k.device);
    expect(notes[0]!.text).not.toContain(k.password);
  });

  it('a note the PSA never takes is given up after its attempts, audited psa.note_failed; the reveal stands', async () => {
    const k = newKey();
    await importKeys('Contoso', [k]);
    h.sim.unreachable = 'reset';
    try {
      answer(await reveal(s.ada, k, { ticket: h.t.open.ref }), 200);
      await c.psaTickets.settled();
      for (let i = 0; i < 10; i++) {
        clock.t += 61 * 60_000;
        await c.scheduler.runNow('psa-notes');
      }
    } finally {
      h.sim.unreachable = false;
    }
    expect(await outboxOf(k)).toMatchObject([{ status: 'failed', attempts: 6 }]);
    const failed = (await c.audit.list(cliOwner, { action: 'psa.note_failed', limit: 100 })).filter((e) => e.targetId === k.recordId);
    expect(failed).toHaveLength(1);
    expect(failed[0]!.details).toMatchObject({ problem: expect.stringMatching(/gave up after 6 attempts/) });
    expect((await reveals(k)).map((e) => e.outcome)).toEqual(['success']);
    // The MSP is told once that the ticket lacks the record of this reveal (never the password).
    const told = (await c.database.db.selectFrom('notification_outbox').selectAll().where('event_type', '=', 'psa.note_failed').execute()).filter((o) =>
      o.details.includes(`${k.keyId.slice(0, 8).toUpperCase()}…`),
    );
    expect(told).toHaveLength(1);
    expect(told[0]!.subject).toMatch(new RegExp(`^The note about a key reveal could not be posted on ticket ${h.t.open.ref.replace('#', '')} in `));
    expect(told[0]!.details + told[0]!.subject).not.toContain(k.password);
  });

  it('PSA unreachable under required: refused (503); an owner breaks the glass, audited and notified; a technician cannot', async () => {
    await policy('required');
    const k = newKey();
    await importKeys('Contoso', [k]);
    // The reveal dialog learns the policy with the key's approval state.
    const dialog = answer(await app.inject({ method: 'GET', url: `${API}/keys/${k.recordId}/approval`, headers: s.ada.headers }), 200);
    expect(dialog.ticket).toEqual({ policy: 'required', psa: h.name });
    h.sim.unreachable = 'reset';
    try {
      const refused = answer(await reveal(s.ada, k, { ticket: h.t.open.ref }), 503);
      expect(refused.message).toMatch(/cannot be reached to check ticket .+; Contoso requires a valid ticket\. An owner can reveal with break-glass/);
      expect(refused.details).toMatchObject({ breakGlass: false });
      expect(answer(await reveal(s.ada, k, { ticket: h.t.open.ref, breakGlassReason: 'the PSA is down and the user waits' }), 403).message).toMatch(
        /Only an owner/,
      );
      expect(answer(await reveal(s.owner, k, { ticket: h.t.open.ref }), 503).details).toMatchObject({ breakGlass: true });
      const ok = answer(await reveal(s.owner, k, { ticket: h.t.open.ref, breakGlassReason: 'the PSA is down and the CEO waits' }), 200);
      expect(ok.key.recoveryPassword).toBe(k.password);
      await c.psaTickets.settled();
    } finally {
      h.sim.unreachable = false;
    }
    const bg = (await c.audit.list(cliOwner, { action: 'key.break_glass', limit: 100 })).filter((e) => e.targetId === k.recordId);
    expect(bg).toHaveLength(1);
    expect(bg[0]!.details).toMatchObject({ breakGlassReason: 'the PSA is down and the CEO waits', psaProblem: expect.stringMatching(/unreachable/) });
    const notified = await c.database.db.selectFrom('notification_outbox').selectAll().where('event_type', '=', 'key.break_glass').execute();
    expect(notified.filter((o) => o.details.includes('the PSA is down and the CEO waits'))).toHaveLength(1);
    expect((await reveals(k)).map((e) => e.outcome).sort()).toEqual(['denied', 'denied', 'denied', 'success']);
    // Break-glass never passes a ticket the PSA says is wrong, nor a missing one.
    const k2 = newKey();
    await importKeys('Contoso', [k2]);
    expect(answer(await reveal(s.owner, k2, { ticket: h.t.closed.ref, breakGlassReason: 'the PSA is down and the CEO waits' }), 409).message).toMatch(
      /is closed/,
    );
    expect(answer(await reveal(s.owner, k2, { breakGlassReason: 'the PSA is down and the CEO waits' }), 409).fields[0].field).toBe('ticket');
    await policy('validate');
  });

  it.each([500, 504])(
    'a ticket the PSA fails on (HTTP %i) while it answers other requests: refused under validate and required, never revealed "unverified", no break-glass',
    async (status) => {
      // The attack: a made-up number the PSA chokes on would look like "the PSA is down".
      const bogus = '424242';
      h.sim.faultFor = ({ path }) => (path.toLowerCase().endsWith(`/tickets/${bogus}`) ? { status, body: { message: 'Internal error' } } : undefined);
      const k = newKey();
      await importKeys('Contoso', [k]);
      try {
        const r = answer(await reveal(s.ada, k, { ticket: bogus }), 409);
        expect(r.message).toMatch(/^Ticket 424242 could not be checked: .+ answers other requests but failed on this ticket/);
        await policy('required');
        const r2 = answer(await reveal(s.owner, k, { ticket: bogus }), 409);
        expect(r2.details?.breakGlass).toBeUndefined();
        expect(answer(await reveal(s.owner, k, { ticket: bogus, breakGlassReason: 'the PSA is down and the CEO waits' }), 409).message).toMatch(
          /could not be checked/,
        );
      } finally {
        h.sim.faultFor = null;
        await policy('validate');
      }
      const evs = await reveals(k);
      expect(evs.map((e) => e.outcome)).toEqual(['denied', 'denied', 'denied']);
      expect(evs[0]!.details).toMatchObject({ ticket: { validated: false, problem: expect.stringMatching(/^PSA error /) } });
      await c.psaTickets.settled();
      expect(await outboxOf(k)).toEqual([]);
      expect((await c.audit.list(cliOwner, { action: 'key.break_glass', limit: 100 })).filter((e) => e.targetId === k.recordId)).toEqual([]);
    },
  );

  it('a ticket policy switched on or tightened while a reveal is on its way (after its check) refuses that reveal', async () => {
    await policy('off');
    const k = newKey();
    await importKeys('Contoso', [k]);
    const check = c.psaTickets.check;
    try {
      // The race, made certain: the policy is checked (off), then an admin requires tickets before the reveal's transaction.
      c.psaTickets.check = async (...args) => {
        const r = await check(...args);
        await c.database.db.updateTable('psa_client_settings').set({ ticket_policy: 'required' }).where('client_id', '=', contoso).execute();
        return r;
      };
      const r = answer(await reveal(s.ada, k, {}), 409);
      expect(r.message).toMatch(/ticket policy changed while this reveal was on its way/);
      expect((await reveals(k)).map((e) => e.outcome)).toEqual(['denied']);
      // Validate (no ticket given: nothing to check) tightened to required on the way: refused too.
      await policy('validate');
      const r2 = answer(await reveal(s.ada, k, {}), 409);
      expect(r2.message).toMatch(/ticket policy changed while this reveal was on its way/);
      expect((await reveals(k)).map((e) => e.outcome)).toEqual(['denied', 'denied']);
    } finally {
      c.psaTickets.check = check;
      await policy('validate');
    }
  });

  it('policy off: the ticket is free text and the PSA is never called', async () => {
    await policy('off');
    try {
      const k = newKey();
      await importKeys('Contoso', [k]);
      expect(answer(await app.inject({ method: 'GET', url: `${API}/keys/${k.recordId}/approval`, headers: s.ada.headers }), 200).ticket).toEqual({
        policy: 'off',
        psa: null,
      });
      h.sim.resetLog();
      answer(await reveal(s.ada, k, { ticket: 'anything at all, even spaces' }), 200);
      answer(await reveal(s.ada, k, {}), 200);
      await c.psaTickets.settled();
      expect(h.sim.requests()).toEqual([]);
      expect(await outboxOf(k)).toEqual([]);
    } finally {
      await policy('validate');
    }
  });

  it('validate without a ticket reveals as before; a technician of another client never reaches the key', async () => {
    const k = newKey();
    await importKeys('Contoso', [k]);
    h.sim.resetLog();
    answer(await reveal(s.ada, k), 200);
    expect(h.sim.requests()).toEqual([]);
    answer(await reveal(s.fabTech, k, { ticket: h.t.open.ref }), 404);
    expect(h.sim.requests()).toEqual([]);
    expect(h.sim.errors()).toEqual([]);
  });
});

describe(`ticket-bound reveal under a burst on ${ENGINE}`, () => {
  it('parallel reveals with tickets (some refused) still respect the hourly limit, and ask the PSA no more often than it allows', async () => {
    const sim = new HaloPsaSimulator();
    await sim.start();
    const seeded = sim.seed();
    const v = await createTestVault({ KEYWARDEN_REVEAL_LIMIT_PER_HOUR: '5' });
    const c = await buildContainer(v.config, { psaClient: { sleep: async () => undefined, maxRetries: 0 } });
    const app = await buildApp(c, { logger: false });
    try {
      const contoso = (await c.clients.create(cliOwner, { name: 'Contoso' })).id;
      const ks = Array.from({ length: 12 }, (_, i) => ({ keyId: randomKeyId(), password: randomRecoveryPassword(), device: `FAKE-B${i}` }));
      await c.imports.importFile(cliOwner, 'Contoso', { fileName: 'b.csv', bytes: bytes(csvOf(ks)) });
      await c.psa.setConnection(cliOwner, {
        kind: 'halopsa',
        url: sim.url,
        authUrl: sim.authUrl,
        apiUrl: sim.apiUrl,
        clientId: sim.clientId,
        clientSecret: sim.clientSecret,
      });
      await c.psa.setClientSettings(cliOwner, contoso, { companyId: String(seeded.open.client_id), ticketPolicy: 'required' });
      const u = await c.identity.createUser(systemActor('test'), { email: 'burst@example.test', password: PASSWORD, role: 'technician', clients: [contoso] });
      const who = sessionFrom(await app.inject({ method: 'POST', url: `${API}/auth/login`, payload: { email: u.email, password: PASSWORD } }));
      const results = await Promise.all(
        ks.map((k, i) =>
          app.inject({
            method: 'POST',
            url: `${API}/keys/${k.keyId}/reveal`,
            headers: who.headers,
            // Every third ticket is closed: a refused check counts as an attempt too.
            payload: { reason: 'lost-pin', ticket: String(i % 3 === 2 ? seeded.closed.id : seeded.open.id) },
          }),
        ),
      );
      const codes = results.map((r) => r.statusCode);
      expect(codes.filter((x) => x === 200 || x === 409)).toHaveLength(5);
      expect(codes.filter((x) => x === 429)).toHaveLength(7);
      const attempts = (await c.audit.list(cliOwner, { action: 'key.reveal', limit: 1000 })).filter((e) => e.outcome !== 'rate_limited');
      expect(attempts).toHaveLength(5);
      // The PSA is asked about one ticket per allowed attempt, not once per request of the burst.
      expect(sim.requests().filter((r) => r.method === 'GET' && /\/tickets\/\d+$/i.test(r.path))).toHaveLength(5);
      await c.psaTickets.settled();
      expect(sim.notes(seeded.open.id)).toHaveLength(codes.filter((x) => x === 200).length);
    } finally {
      await app.close();
      await c.close();
      await v.close();
      await sim.stop();
    }
  });
});
