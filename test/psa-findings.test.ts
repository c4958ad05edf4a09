/**
 * Findings become PSA tickets (issue 21, item 3), end to end per PSA against its simulator: the
 * client's rules set over HTTP, devices given findings by the agent protocol (a key never uploaded,
 * a failed rotation), runs through POST …/finding-tickets/run and the service, tickets read back
 * from the simulator. The PSA
 * connection is set up over HTTP (Settings › PSA) and the client linked to its company.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type Session, type TestApp } from './helpers/app.js';
import { owner as cliOwner } from './helpers/vault.js';
import { ENGINE } from './helpers/engine.js';
import { WireDevice, listen, request, volume } from './helpers/agent-wire.js';
import { PSA_NAMES, type PsaConfig, type PsaKind } from '../src/integrations/psa/index.js';
import type { PsaSimBase } from './psa-sim/common.js';
import { HaloPsaSimulator } from './psa-sim/halopsa.js';
import { ConnectWiseSimulator } from './psa-sim/connectwise.js';
import { AT_STATUS, AutotaskSimulator } from './psa-sim/autotask.js';
import { GraphSimulator } from './graph-sim/simulator.js';
import { createGraphRepo } from '../src/modules/graph/graph.repo.js';
import { systemActor } from '../src/modules/authz/authz.js';

const clock = { offsetMs: 0, now: () => new Date(Date.now() + clock.offsetMs).toISOString() };
const HOUR = 3600_000;
const PASSWORD_LIKE = /\d{6}(-\d{6}){7}/;

/** A ticket as the test reads it back from a simulator. */
type SimTicket = { id: string; company: string; title: string; body: string; closed: boolean; priority: string; queue: string };

type Harness = {
  kind: PsaKind;
  sim: PsaSimBase;
  start(): Promise<void>;
  config(): PsaConfig;
  company(): string;
  /** A second company, for the client whose tenant has client-level findings. */
  company2(): string;
  /** The queue value the rules set, and how the simulator shows it. */
  queue: string;
  shownQueue: string;
  tickets(): SimTicket[];
  notes(id: string): string[];
  /** Someone closes the ticket in the PSA. */
  closeInPsa(id: string): void;
};

const halo = new HaloPsaSimulator();
const cw = new ConnectWiseSimulator();
const at = new AutotaskSimulator();

const harnesses: Harness[] = [
  {
    kind: 'halopsa',
    sim: halo,
    async start() {
      await halo.start();
      halo.seed();
    },
    config: () => ({ kind: 'halopsa', authUrl: halo.authUrl, apiUrl: halo.apiUrl, clientId: halo.clientId, clientSecret: halo.clientSecret }),
    company: () => String(halo.clients[0]!.id),
    company2: () => String(halo.clients[1]!.id),
    queue: 'Security',
    shownQueue: 'Security',
    tickets: () =>
      halo.tickets().map((t) => ({
        id: String(t.id),
        company: String(t.client_id),
        title: t.summary,
        body: t.details,
        closed: halo.isClosedStatus(t.status_id),
        priority: String(t.priority_id),
        queue: t.team,
      })),
    notes: (id) => halo.notes(Number(id)).map((a) => a.note),
    closeInPsa: (id) => void (halo.ticket(Number(id))!.status_id = 9),
  },
  {
    kind: 'connectwise',
    sim: cw,
    async start() {
      await cw.start();
      cw.seed();
    },
    config: () => ({
      kind: 'connectwise',
      apiUrl: cw.apiUrl,
      companyId: cw.companyId,
      publicKey: cw.publicKey,
      privateKey: cw.privateKey,
      clientId: [...cw.clientIds][0]!,
    }),
    company: () => String(cw.companies[0]!.id),
    company2: () => String(cw.companies[1]!.id),
    queue: '2',
    shownQueue: 'Security Findings',
    tickets: () =>
      cw.tickets().map((t) => ({
        id: String(t.id),
        company: String(t.company.id),
        title: t.summary,
        body: t.initialDescription ?? '',
        closed: t.closedFlag,
        priority: String(t.priority.id),
        queue: t.board.name,
      })),
    notes: (id) => cw.notes(Number(id)).map((n) => n.text),
    closeInPsa: (id) => {
      const t = cw.ticket(Number(id))!;
      const closed = cw.boards.find((b) => b.id === t.board.id)!.statuses.find((s) => s.closedStatus)!;
      t.status = { id: closed.id, name: closed.name };
      t.closedFlag = true;
    },
  },
  {
    kind: 'autotask',
    sim: at,
    async start() {
      await at.start();
      at.seed();
    },
    config: () => ({
      kind: 'autotask',
      zoneLookupUrl: `${at.url}/atservicesrest`,
      userName: at.userName,
      secret: at.secret,
      integrationCode: at.integrationCode,
    }),
    company: () => String(at.companies[0]!.id),
    company2: () => String(at.companies[1]!.id),
    queue: '29683355',
    shownQueue: '29683355',
    tickets: () =>
      at.tickets().map((t) => ({
        id: String(t.id),
        company: String(t.companyID),
        title: t.title,
        body: t.description,
        closed: t.status === AT_STATUS.Complete,
        priority: String(t.priority),
        queue: String(t.queueID),
      })),
    notes: (id) => at.notes(Number(id)).map((n) => n.description),
    closeInPsa: (id) => void (at.ticket(Number(id))!.status = AT_STATUS.Complete),
  },
];

/** What an owner types in Settings › PSA for this simulator (PUT /settings/psa). */
function connectionInput(c: PsaConfig): Record<string, unknown> {
  switch (c.kind) {
    case 'halopsa':
      return {
        kind: c.kind,
        url: c.apiUrl.replace(/\/api$/, ''),
        authUrl: c.authUrl,
        apiUrl: c.apiUrl,
        clientId: c.clientId,
        clientSecret: c.clientSecret,
        tenant: c.tenant ?? null,
      };
    case 'connectwise':
      return { kind: c.kind, apiUrl: c.apiUrl, companyId: c.companyId, publicKey: c.publicKey, privateKey: c.privateKey, clientId: c.clientId };
    case 'autotask':
      return { kind: c.kind, zoneLookupUrl: c.zoneLookupUrl, userName: c.userName, secret: c.secret, integrationCode: c.integrationCode };
  }
}

/** One Entra ID tenant per PSA (each suite's vault links its own), all in one Graph simulator. */
const graph = new GraphSimulator({ inFlightGraceMs: 0 });
let graphUrls: Promise<{ loginUrl: string; graphUrl: string }> | null = null;
const tenantIds: Record<PsaKind, string> = {
  halopsa: '5a5a5a5a-1111-4222-8333-444444444444',
  connectwise: '6b6b6b6b-1111-4222-8333-444444444444',
  autotask: '7c7c7c7c-1111-4222-8333-444444444444',
};
afterAll(async () => {
  if (graphUrls) await graph.stop();
});

describe.each(harnesses)(`findings → $kind tickets (${ENGINE})`, (h) => {
  let t: TestApp;
  let base: string;
  let owner: Session;
  let clientId: string;
  let token: string;
  let n = 0;
  const passwords: string[] = [];
  const api = (method: string, url: string, body?: unknown) => request(base, method, `/api/v1${url}`, { headers: owner.headers, body });
  // Check-ins that only asked for passwords leave evaluation to the upload: evaluate first, as the hourly task does before its ticket run.
  const evaluate = async () => expect((await api('POST', '/compliance/evaluate', { clientId })).status).toBe(200);
  const run = async () => {
    await evaluate();
    const r = await api('POST', `/clients/${clientId}/psa/finding-tickets/run`);
    expect(r.status, r.body).toBe(200);
    return r.json as { status: string; message: string; opened: number; updated: number; closed: number; digest: boolean };
  };
  const ours = () => h.tickets().filter((x) => x.title.startsWith('BitLocker:'));
  const rows = async () =>
    (await api('GET', `/clients/${clientId}/psa/finding-tickets`)).json as {
      ticketId: string;
      state: string;
      device: { name: string };
      code: string;
      digest: boolean;
    }[];
  const setRules = async (over: Record<string, unknown> = {}) => {
    const r = await api('PUT', `/clients/${clientId}/psa/ticket-rules`, {
      enabled: true,
      codes: ['recovery_key_not_escrowed', 'rotation_failed'],
      priority: '1',
      queue: h.queue,
      digest: false,
      digestThreshold: 10,
      ...over,
    });
    expect(r.status, r.body).toBe(200);
    return r.json;
  };
  /** A device whose C: key was never uploaded: finding recovery_key_not_escrowed. */
  const unescrowed = async (volumes = [volume('C:')]) => {
    const d = new WireDevice(base, `FAKE-PSA-${String(++n).padStart(2, '0')}`, volumes);
    expect((await d.enroll(token)).status).toBe(200);
    expect((await d.checkin()).status).toBe(200);
    for (const v of volumes) for (const p of d.recoveryPasswords(v.mountPoint)) passwords.push(p.password!);
    return d;
  };
  const uploadAll = async (d: WireDevice) => {
    for (const v of d.volumes) {
      const keys = d.recoveryPasswords(v.mountPoint).map((p) => ({ mountPoint: v.mountPoint, id: p.id, password: p.password! }));
      expect((await d.upload(keys)).status).toBe(200);
    }
  };

  beforeAll(async () => {
    await h.start();
    // The PSA connection as an owner sets it up; no real waiting between retries of a PSA that is down.
    t = await createTestApp({}, { container: { clock, psaClient: { sleep: async () => {}, maxRetries: 1, timeoutMs: 2000 } } });
    base = await listen(t.app);
    owner = await t.signIn((await t.addUser('owner', 'all', 'owner@example.test')).email);
    clientId = (await api('POST', '/clients', { name: 'Contoso' })).json.id;
    const conn = await api('PUT', '/settings/psa', connectionInput(h.config()));
    expect(conn.status, conn.body).toBe(200);
    expect(conn.json.status).toBe('ok');
    const link = await api('PUT', `/clients/${clientId}/psa`, { companyId: h.company() });
    expect(link.status, link.body).toBe(200);
    token = (await api('POST', '/agent/enrollment-tokens', { clientId, maxUses: 50 })).json.token;
  });
  afterAll(async () => {
    // Never a recovery password in any ticket or note Keywarden wrote.
    for (const x of ours()) {
      expect(x.title + x.body).not.toMatch(PASSWORD_LIKE);
      for (const note of h.notes(x.id)) for (const p of passwords) expect(note).not.toContain(p);
      for (const p of passwords) expect(x.body).not.toContain(p);
    }
    expect(h.sim.errors()).toEqual([]);
    await t?.close();
    await h.sim.stop();
  });

  it('without rules nothing runs; the rules are set and read back over HTTP', async () => {
    expect(await run()).toMatchObject({ status: 'skipped', opened: 0 });
    const off = (await api('GET', `/clients/${clientId}/psa/ticket-rules`)).json;
    expect(off).toMatchObject({ enabled: false, digestThreshold: 10, failingSince: null });
    expect(await setRules()).toMatchObject({ enabled: true, codes: ['recovery_key_not_escrowed', 'rotation_failed'], priority: '1', queue: h.queue });
    const bad = await api('PUT', `/clients/${clientId}/psa/ticket-rules`, { enabled: true, codes: [] });
    expect(bad.status).toBe(400);
    expect(bad.json.message).toMatch(/at least one finding/);

    // The CLI sets the same rules (and shows them) and runs them through the same PSA connection.
    // A code the vault does not know is refused by name (never silently dropped), and nothing changes.
    const typo = await t.cli(['psa', 'rules', 'Contoso', '--codes', 'rotation_failed,os_volume_unprotect']);
    expect(typo.code).toBe(2);
    expect(typo.stderr).toContain('Unknown finding code: os_volume_unprotect.');
    expect((await api('GET', `/clients/${clientId}/psa/ticket-rules`)).json).toMatchObject({ codes: ['recovery_key_not_escrowed', 'rotation_failed'] });
    const cli = await t.cli(['psa', 'rules', 'Contoso', '--codes', 'rotation_failed,stale', '--priority', '2', '--threshold', '5']);
    expect(cli.code, cli.stderr).toBe(0);
    expect(cli.stdout).toContain('Contoso: on; findings: stale, rotation_failed');
    expect((await api('GET', `/clients/${clientId}/psa/ticket-rules`)).json).toMatchObject({
      priority: '2',
      digestThreshold: 5,
      codes: ['stale', 'rotation_failed'],
    });
    const runCli = await t.cli(['psa', 'run-tickets', 'Contoso']);
    expect(runCli.code, runCli.stderr).toBe(0);
    expect(runCli.stdout).toBe(`Contoso: done: Tickets in ${PSA_NAMES[h.kind]}: 0 opened, 0 updated, 0 closed.\n`);
    await setRules();
  });

  let first: WireDevice;
  let ticketId: string;
  it('a device with a finding opens one ticket in the linked company with the rule’s priority and queue; a second run does not duplicate it', async () => {
    first = await unescrowed();
    expect(await run()).toMatchObject({ status: 'done', opened: 1, updated: 0, closed: 0 });
    const mine = ours();
    expect(mine).toHaveLength(1);
    ticketId = mine[0]!.id;
    expect(mine[0]).toMatchObject({ company: h.company(), priority: '1', queue: h.shownQueue, closed: false });
    expect(mine[0]!.title).toBe(`BitLocker: Recovery password not escrowed on ${first.hostname}`);
    expect(mine[0]!.body).toContain('client Contoso');
    expect(mine[0]!.body).toContain('How to fix it:');

    h.sim.resetLog();
    expect(await run()).toMatchObject({ status: 'done', opened: 0, updated: 0, closed: 0 });
    expect(ours()).toHaveLength(1);
    // Nothing written to the PSA when nothing changed.
    expect(h.sim.requests().filter((r) => r.method !== 'GET' && !/token|query$/i.test(r.path))).toEqual([]);
    const listed = await rows();
    expect(listed).toEqual([expect.objectContaining({ ticketId, state: 'open', code: 'recovery_key_not_escrowed', digest: false })]);
  });

  it('a changed finding updates the ticket; clearing it closes the ticket with a note', async () => {
    first.volumes.push(volume('D:'));
    for (const p of first.recoveryPasswords('D:')) passwords.push(p.password!);
    expect((await first.checkin()).status).toBe(200);
    expect(await run()).toMatchObject({ opened: 0, updated: 1, closed: 0 });
    expect(ours().find((x) => x.id === ticketId)!.body).toContain('D:');

    await uploadAll(first);
    expect(await run()).toMatchObject({ opened: 0, updated: 0, closed: 1 });
    const closed = ours().find((x) => x.id === ticketId)!;
    expect(closed.closed).toBe(true);
    expect(h.notes(ticketId).some((note) => /^Cleared in Keywarden on \d{4}-\d{2}-\d{2}/.test(note))).toBe(true);
    expect((await rows()).find((r) => r.ticketId === ticketId)).toMatchObject({ state: 'closed' });
    expect(await run()).toMatchObject({ opened: 0, updated: 0, closed: 0 });
  });

  it('more new findings than the threshold open one digest ticket listing every device', async () => {
    await setRules({ digestThreshold: 2 });
    const ds = [await unescrowed(), await unescrowed(), await unescrowed()];
    const before = ours().length;
    expect(await run()).toMatchObject({ opened: 1, digest: true });
    const digest = ours().slice(before);
    expect(digest).toHaveLength(1);
    for (const d of ds) expect(digest[0]!.body).toContain(d.hostname);
    // One device fixed: the digest is rewritten without it; all fixed: closed.
    await uploadAll(ds[0]!);
    expect(await run()).toMatchObject({ opened: 0, updated: 1, closed: 0 });
    expect(ours().find((x) => x.id === digest[0]!.id)!.body).not.toContain(ds[0]!.hostname);
    await uploadAll(ds[1]!);
    await uploadAll(ds[2]!);
    expect(await run()).toMatchObject({ opened: 0, closed: 1 });
    expect(ours().find((x) => x.id === digest[0]!.id)!.closed).toBe(true);
    await setRules({ digestThreshold: 10 });
  });

  it('a failed key rotation opens a ticket', async () => {
    const d = await unescrowed();
    await uploadAll(d);
    const job = await api('POST', `/devices/${d.deviceId}/jobs`, { kind: 'rotate', mountPoint: 'C:' });
    expect(job.status, job.body).toBe(201);
    for (let i = 0; i < 3; i++) {
      await d.checkin();
      await d.checkin({ jobResults: [{ jobId: job.json.id, status: 'failed', detail: 'FAKE failure' }] });
    }
    const r = await run();
    expect(r).toMatchObject({ opened: 1 });
    const ticket = ours().find((x) => x.title === `BitLocker: Recovery password rotation failed on ${d.hostname}`);
    expect(ticket).toBeDefined();
    expect(ticket!.body).toMatch(/C:: the rotation failed/);
  });

  it('PSA unreachable: the run stops, is told once, and the next run catches up', async () => {
    const d = await unescrowed();
    const before = ours().length;
    h.sim.unreachable = 'reset';
    try {
      const r1 = await run();
      expect(r1.status).toBe('failed');
      expect(r1.message).toContain(PSA_NAMES[h.kind]);
      expect(await run()).toMatchObject({ status: 'failed' });
    } finally {
      h.sim.unreachable = false;
    }
    const rules = (await api('GET', `/clients/${clientId}/psa/ticket-rules`)).json;
    expect(rules.failingSince).not.toBeNull();
    const audit = (await api('GET', `/audit?action=psa.ticket_sync_failed&limit=50`)).json as { items?: unknown[] } | unknown[];
    const events = Array.isArray(audit) ? audit : (audit.items ?? []);
    expect(events).toHaveLength(1);

    expect(await run()).toMatchObject({ status: 'done', opened: 1 });
    expect(ours().length).toBe(before + 1);
    expect(ours().at(-1)!.title).toContain(d.hostname);
    expect((await api('GET', `/clients/${clientId}/psa/ticket-rules`)).json).toMatchObject({ failingSince: null, lastError: null });
  });

  it('two runs at once open one ticket', async () => {
    const d = await unescrowed();
    const before = ours().length;
    await evaluate();
    // Truly concurrent: whichever claims first works; the other is refused or, if it claims after
    // the first finished, finds nothing left to open. Never two tickets.
    const rs = await Promise.all([t.container.psaFindings.runClient(clientId), t.container.psaFindings.runClient(clientId)]);
    expect(rs.reduce((s, r) => s + r.opened, 0)).toBe(1);
    for (const r of rs) expect(['busy', 'done']).toContain(r.status);
    expect(ours().length).toBe(before + 1);
    expect(ours().at(-1)!.title).toContain(d.hostname);
    expect(await run()).toMatchObject({ status: 'done', opened: 0 });
  });

  it('a run started while another holds the client is refused as busy, and the route says 409', async () => {
    const d = await unescrowed();
    const before = ours().length;
    await evaluate();
    const gate = h.sim.holdAnswers();
    let first: Promise<Awaited<ReturnType<typeof t.container.psaFindings.runClient>>> | undefined;
    try {
      first = t.container.psaFindings.runClient(clientId);
      await gate.arrived; // the first run holds the lease and waits on the PSA
      expect(await t.container.psaFindings.runClient(clientId)).toMatchObject({ status: 'busy', opened: 0 });
      const viaRoute = await api('POST', `/clients/${clientId}/psa/finding-tickets/run`);
      expect(viaRoute.status).toBe(409);
    } finally {
      gate.release();
    }
    expect(await first).toMatchObject({ status: 'done', opened: 1 });
    expect(ours().length).toBe(before + 1);
    expect(ours().at(-1)!.title).toContain(d.hostname);
    // Once it is done, a new run is free.
    expect(await run()).toMatchObject({ status: 'done', opened: 0 });
  });

  it('a ticket closed in the PSA while the finding persists is left closed for a week, then a new one opens', async () => {
    const d = await unescrowed();
    expect(await run()).toMatchObject({ opened: 1 });
    const ticket = ours().at(-1)!;
    expect(ticket.title).toContain(d.hostname);
    h.closeInPsa(ticket.id);
    try {
      clock.offsetMs = 25 * HOUR;
      const before = ours().length;
      expect(await t.container.psaFindings.runClient(clientId)).toMatchObject({ status: 'done', opened: 0 });
      expect(ours().length).toBe(before);
      // Through the service: the session would have expired on the moved clock.
      const row = (await t.container.psaFindings.listTickets(cliOwner, clientId)).find((r) => r.ticketId === ticket.id);
      expect(row).toMatchObject({ state: 'closed_in_psa' });

      clock.offsetMs = 9 * 24 * HOUR;
      expect(await t.container.psaFindings.runClient(clientId)).toMatchObject({ status: 'done', opened: 1 });
      expect(ours().length).toBe(before + 1);
      expect(ours().at(-1)!.title).toContain(d.hostname);
    } finally {
      clock.offsetMs = 0;
    }
  });

  describe("client-level findings about the client's Microsoft 365 tenant", () => {
    let fabrikam: string;
    let connId: string;
    const tenant = () => graph.tenant(tenantIds[h.kind]);
    const theirs = () => ours().filter((x) => x.company === h.company2());
    const fabApi = (method: string, url: string, body?: unknown) => api(method, url.replace(':id', fabrikam), body);
    const runFab = async () => {
      const r = await fabApi('POST', '/clients/:id/psa/finding-tickets/run');
      expect(r.status, r.body).toBe(200);
      return r.json as { status: string; opened: number; updated: number; closed: number; digest: boolean };
    };
    const fabRows = async () =>
      (await fabApi('GET', '/clients/:id/psa/finding-tickets')).json as { ticketId: string; state: string; device: unknown; code: string; finding: string }[];
    const sync = async () => expect((await t.container.graph.runSync(connId)).status).toBe('succeeded');
    const writes = () => h.sim.requests().filter((r) => r.method !== 'GET' && !/token|query$/i.test(r.path));

    beforeAll(async () => {
      graphUrls ??= graph.start();
      const urls = await graphUrls;
      // The tenant: users may not read their own keys, no Intune BitLocker policy: no client-level finding yet.
      const seeded = graph.seedTenant(tenantIds[h.kind], { keys: 2, devices: 1 });
      seeded.posture.usersCanReadOwnKeys = false;
      fabrikam = (await api('POST', '/clients', { name: 'Fabrikam' })).json.id;
      const link = await fabApi('PUT', '/clients/:id/psa', { companyId: h.company2() });
      expect(link.status, link.body).toBe(200);
      const conn = await t.container.graph.createConnection(systemActor('test'), {
        clientId: fabrikam,
        tenantId: seeded.tenantId,
        appClientId: seeded.clientId,
        clientSecret: seeded.clientSecret,
        ...urls,
      });
      connId = conn.id;
      await sync();
      const rules = await fabApi('PUT', '/clients/:id/psa/ticket-rules', {
        enabled: true,
        // A device finding too: the Entra devices' keys are all escrowed, so it stays quiet.
        codes: ['entra_consent_lost', 'entra_users_read_own_keys', 'recovery_key_not_escrowed'],
        priority: '1',
        digest: true,
      });
      expect(rules.status, rules.body).toBe(200);
    });

    it('consent lost opens one ticket with no device; a second run does not duplicate it', async () => {
      expect(await runFab()).toMatchObject({ status: 'done', opened: 0 });
      expect(theirs()).toEqual([]);

      // The Entra sync notes a withdrawn consent on the connection (as it does on AADSTS7000229).
      await createGraphRepo().markConsentLost(t.container.database.db, connId, clock.now());
      // Digest mode is on: a client-level finding still gets a ticket of its own.
      expect(await runFab()).toMatchObject({ status: 'done', opened: 1, digest: false });
      const [ticket] = theirs();
      expect(theirs()).toHaveLength(1);
      expect(ticket).toMatchObject({ company: h.company2(), priority: '1', closed: false });
      expect(ticket!.title).toBe("BitLocker: Keywarden's access to this Entra ID tenant was withdrawn (Fabrikam)");
      expect(ticket!.body).toContain('Microsoft 365 tenant of client Fabrikam');
      expect(ticket!.body).toContain('How to fix it: Send an administrator');
      expect(await fabRows()).toEqual([
        expect.objectContaining({ ticketId: ticket!.id, state: 'open', device: null, code: 'entra_consent_lost', finding: expect.stringMatching(/withdrawn/) }),
      ]);

      h.sim.resetLog();
      expect(await runFab()).toMatchObject({ status: 'done', opened: 0, updated: 0, closed: 0 });
      expect(theirs()).toHaveLength(1);
      expect(writes()).toEqual([]);
    });

    it('consent back closes the ticket with a note; a new tenant finding opens its own ticket', async () => {
      const consentTicket = theirs()[0]!;
      // A sync that works again clears consent_lost_at; meanwhile the tenant let users read their own keys.
      tenant().posture.usersCanReadOwnKeys = true;
      await sync();
      expect(await runFab()).toMatchObject({ status: 'done', opened: 1, closed: 1 });
      const closed = theirs().find((x) => x.id === consentTicket.id)!;
      expect(closed.closed).toBe(true);
      expect(h.notes(consentTicket.id)).toContainEqual(
        expect.stringMatching(/^Cleared in Keywarden on \d{4}-\d{2}-\d{2}: the Microsoft 365 tenant of Fabrikam no longer has this finding/),
      );
      const open = theirs().filter((x) => !x.closed);
      expect(open.map((x) => x.title)).toEqual(['BitLocker: End users can read their own BitLocker keys in Entra ID (Fabrikam)']);
      expect((await fabRows()).map((r) => `${r.code}:${r.state}`).sort()).toEqual(['entra_consent_lost:closed', 'entra_users_read_own_keys:open']);
      expect(await runFab()).toMatchObject({ opened: 0, updated: 0, closed: 0 });
    });

    it("a rule's new priority reaches the open tickets once", async () => {
      const r = await fabApi('PUT', '/clients/:id/psa/ticket-rules', {
        enabled: true,
        codes: ['entra_consent_lost', 'entra_users_read_own_keys', 'recovery_key_not_escrowed'],
        priority: '2',
        digest: true,
      });
      expect(r.status, r.body).toBe(200);
      h.sim.resetLog();
      expect(await runFab()).toMatchObject({ status: 'done', opened: 0, updated: 1, closed: 0 });
      expect(
        theirs()
          .filter((x) => !x.closed)
          .map((x) => x.priority),
      ).toEqual(['2']);
      // The closed ticket was left alone.
      expect(
        theirs()
          .filter((x) => x.closed)
          .map((x) => x.priority),
      ).toEqual(['1']);
      expect(writes()).toHaveLength(1);

      h.sim.resetLog();
      expect(await runFab()).toMatchObject({ status: 'done', opened: 0, updated: 0, closed: 0 });
      expect(writes()).toEqual([]);
      const audits = (await api('GET', `/audit?action=psa.ticket_updated&limit=50`)).json as { items?: { details?: unknown }[] } | { details?: unknown }[];
      const events = Array.isArray(audits) ? audits : (audits.items ?? []);
      expect(events.filter((e) => /\bpriority\b/.test(JSON.stringify(e)))).toHaveLength(1);
    });

    it('the Entra ID connection removed: the tenant ticket closes saying so (not that the setting was fixed)', async () => {
      const open = theirs().filter((x) => !x.closed);
      expect(open).toHaveLength(1);
      await t.container.graph.deleteConnection(systemActor('test'), connId);
      expect(await runFab()).toMatchObject({ status: 'done', opened: 0, closed: 1 });
      expect(theirs().find((x) => x.id === open[0]!.id)!.closed).toBe(true);
      expect(h.notes(open[0]!.id)).toContainEqual(expect.stringMatching(/the Entra ID connection of Fabrikam was removed/));
    });
  });
});
