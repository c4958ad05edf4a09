import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import net, { type AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENGINE } from './helpers/engine.js';
import { owner } from './helpers/vault.js';
import { createNotifyVault, selfSignedCert, startReceiver, startSmtp, type Hit, type NotifyVault, type SmtpSink } from './helpers/notify.js';
import { SimMachine, TestAgent, injectTransport } from './agent/test-agent.js';
import type { NotificationEvent } from '../src/modules/notifications/notifier.js';

/**
 * Notifications end to end, on a real SMTP server and a real HTTP receiver in this process. The
 * delivery worker is run step by step (runOnce) with the vault's clock moved forward: gathering
 * windows, backoff and digest hours pass without real waiting.
 */
const SMTP_USER = 'keywarden';
const SMTP_PASSWORD = `smtp-pass-${randomBytes(8).toString('hex')}`;
const WEBHOOK_SECRET = `whsec-${randomBytes(16).toString('hex')}`;
const hex = () => randomBytes(3).toString('hex');

/**
 * The receiver's side, written out as docs/notifications.md tells integrators (not with src's own
 * signer): HMAC-SHA256 over "timestamp.rawBody", hex, "v1=" prefix, constant-time comparison. The
 * vault's clock is moved forward in these tests, so the timestamp is checked for shape, not age.
 */
function verifiedBody(hit: Hit, secret = WEBHOOK_SECRET): any {
  const ts = String(hit.headers['x-keywarden-timestamp']);
  const sig = String(hit.headers['x-keywarden-signature']);
  const expected = Buffer.from('v1=' + createHmac('sha256', secret).update(`${ts}.${hit.body}`).digest('hex'));
  const given = Buffer.from(sig);
  if (!/^\d{10}$/.test(ts) || given.length !== expected.length || !timingSafeEqual(given, expected)) throw new Error(`bad signature on ${hit.path}`);
  return JSON.parse(hit.body);
}

describe(`notifications on ${ENGINE}`, () => {
  let v: NotifyVault;
  let smtp: SmtpSink;
  let rx: Awaited<ReturnType<typeof startReceiver>>;

  beforeAll(async () => {
    v = await createNotifyVault({
      timeoutMs: 2000,
      maxAttempts: 4,
      backoffBaseMs: 60_000,
      backoffCapMs: 3600_000,
      gatherSeconds: 30,
      digestThreshold: 10,
      dedupWindowMinutes: 60,
    });
    smtp = await startSmtp({ user: SMTP_USER, pass: SMTP_PASSWORD });
    rx = await startReceiver();
  });
  afterAll(async () => {
    await v?.close();
    await smtp?.close();
    await rx?.close();
  });

  const n = () => v.container.notifications;
  /** One worker pass after the gathering window. */
  const pump = async (ms = 31_000) => {
    v.clock.advance(ms);
    return n().runOnce();
  };
  const mailsTo = (addr: string) => smtp.mails.filter((m) => m.to.includes(addr));
  const hitsAt = (path: string) => rx.hits.filter((h) => h.path === path);

  /** A client with an e-mail channel and a signed webhook, and a rule sending `types` to both. */
  async function clientWithChannels(
    name: string,
    types: NotificationEvent['type'][],
    digest: 'none' | 'hourly' | 'daily' = 'none',
    existing?: { id: string; name: string },
  ) {
    const client = existing ?? (await v.container.clients.create(owner, { name: `${name} ${hex()}` }));
    const to = `it-${hex()}@client.example`;
    const hookPath = `/hook/${hex()}`;
    const email = await n().createChannel(owner, {
      clientId: client.id,
      name: `${name} IT mail`,
      kind: 'email',
      host: '127.0.0.1',
      port: smtp.port,
      secure: false,
      starttls: 'ignore',
      username: SMTP_USER,
      password: SMTP_PASSWORD,
      from: 'Keywarden <keywarden@msp.example>',
      to: [to],
    });
    const hook = await n().createChannel(owner, {
      clientId: client.id,
      name: `${name} PSA`,
      kind: 'webhook',
      url: rx.url(hookPath),
      signingSecret: WEBHOOK_SECRET,
    });
    const rule = await n().createRule(owner, {
      clientId: client.id,
      name: `${name} alerts`,
      eventTypes: types,
      channelIds: [email.channel.id, hook.channel.id],
      digest,
    });
    return { client, to, hookPath, email: email.channel, hook: hook.channel, rule };
  }
  async function emitAll(events: NotificationEvent[]) {
    await v.container.database.db.transaction().execute(async (tx) => {
      for (const e of events) await v.container.notifier.emit(tx, e);
    });
  }
  const event = (clientId: string, i: number, extra: Partial<NotificationEvent> = {}): NotificationEvent => ({
    type: 'device.noncompliant',
    clientId,
    deviceId: null,
    subject: `LAPTOP-${String(i).padStart(3, '0')} is not compliant`,
    details: { finding: 'os_volume_unprotected' },
    dedupKey: `device.noncompliant:test-${clientId}-${i}`,
    occurredAt: v.clock.now(),
    ...extra,
  });

  it('a device whose encryption is turned off at a check-in: a non-compliance e-mail naming device, client and finding, and a signed webhook', async () => {
    const client = await v.container.clients.create(owner, { name: `Contoso ${hex()}` });
    const tok = await v.container.agent.createEnrollmentToken(owner, { clientId: client.id, expiresInDays: 7, maxUses: 5 });
    const agent = new TestAgent(injectTransport(v.app), new SimMachine(`CON-LAPTOP-${hex().toUpperCase()}`));
    expect((await agent.enroll(tok.token)).status).toBe(200);
    // First runs: the key is escrowed on request, the device settles as compliant.
    expect((await agent.run()).exitCode).toBe(0);
    expect((await agent.run()).exitCode).toBe(0);
    await pump();
    // The MSP sets up notifications for the client once its devices report (what happened before is not replayed).
    const f = await clientWithChannels('Contoso', ['device.noncompliant', 'device.encryption_off'], 'none', client);
    const before = { mails: mailsTo(f.to).length, hooks: hitsAt(f.hookPath).length };

    // BitLocker is turned off on C: (decrypted): the next check-in reports it.
    const c = agent.machine.volume('C:');
    Object.assign(c, { status: 'FullyDecrypted', protection: 'Off', method: 'None', percentage: 0 });
    expect((await agent.run()).exitCode).toBe(0);
    // Nothing is sent before the gathering window has passed.
    expect((await n().runOnce()).sent).toBe(0);
    const r = await pump();
    expect(r.sent).toBeGreaterThan(0);

    const mails = mailsTo(f.to).slice(before.mails);
    const noncompliance = mails.find((m) => /is not compliant/.test(m.subject));
    expect(noncompliance, `mails: ${mails.map((m) => m.subject).join(' | ')}`).toBeDefined();
    expect(noncompliance!.subject).toContain(agent.machine.hostname);
    expect(noncompliance!.text).toContain(agent.machine.hostname);
    expect(noncompliance!.text).toContain(f.client.name);
    expect(noncompliance!.text).toContain('os_volume_unprotected');
    expect(noncompliance!.from).toBe('keywarden@msp.example');
    expect(smtp.logins).toContain(SMTP_USER);

    const hooks = hitsAt(f.hookPath).slice(before.hooks);
    expect(hooks.length).toBeGreaterThan(0);
    const bodies = hooks.map((h) => verifiedBody(h));
    const events = bodies.flatMap((b) => b.events);
    const nc = events.find((e: any) => e.type === 'device.noncompliant');
    expect(nc).toMatchObject({ clientId: f.client.id, clientName: f.client.name, deviceId: agent.deviceId, deviceName: agent.machine.hostname });
    expect(nc.details.findingCodes).toContain('os_volume_unprotected');
    expect(events.some((e: any) => e.type === 'device.encryption_off')).toBe(true);
    // A tampered body does not verify.
    expect(() => verifiedBody({ ...hooks[0]!, body: hooks[0]!.body.replace(f.client.name, 'Someone Else') })).toThrow(/bad signature/);

    // The delivery log shows each message as sent, with the SMTP and HTTP answers.
    const log = await n().listDeliveries(owner, { clientId: f.client.id });
    expect(log.filter((d) => d.status === 'sent').length).toBe(mails.length + hooks.length);
    const one = await n().getDelivery(owner, log.find((d) => d.channel.kind === 'email')!.id);
    expect(one.attemptLog[0]).toMatchObject({ outcome: 'sent', responseCode: '250' });
  });

  it('protection suspended for an update is quiet; suspended past the grace period is notified by the scheduled evaluation', async () => {
    const client = await v.container.clients.create(owner, { name: `Wingtip ${hex()}` });
    const tok = await v.container.agent.createEnrollmentToken(owner, { clientId: client.id, expiresInDays: 7, maxUses: 5 });
    const agent = new TestAgent(injectTransport(v.app), new SimMachine(`WT-${hex().toUpperCase()}`));
    expect((await agent.enroll(tok.token)).status).toBe(200);
    await agent.run();
    await agent.run();
    await pump();
    const f = await clientWithChannels('Wingtip', ['device.noncompliant', 'device.protection_suspended'], 'none', client);
    // Suspend-BitLocker before a reboot: encrypted, protection off.
    agent.machine.volume('C:').protection = 'Off';
    expect((await agent.run()).exitCode).toBe(0);
    await pump();
    expect(mailsTo(f.to)).toHaveLength(0);
    // Still suspended a day later (the default grace is 24 hours): the hourly evaluation finds it.
    v.clock.advance(25 * 3600_000);
    await v.container.compliance.evaluate(owner, { clientId: client.id });
    await pump();
    const subjects = mailsTo(f.to).map((m) => m.subject);
    expect(
      subjects.some((x) => x.includes(`${agent.machine.hostname}`) && /not compliant/.test(x)),
      subjects.join(' | '),
    ).toBe(true);
    expect(
      subjects.some((x) => /protection suspended too long/.test(x)),
      subjects.join(' | '),
    ).toBe(true);
  });

  it('500 devices going non-compliant in one batch: one digest per channel, not 500 messages', async () => {
    const f = await clientWithChannels('Fabrikam', ['device.noncompliant']);
    await emitAll(Array.from({ length: 500 }, (_, i) => event(f.client.id, i)));
    const r = await pump();
    expect(r.routed).toBe(500);
    const mails = mailsTo(f.to);
    expect(mails).toHaveLength(1);
    expect(mails[0]!.subject).toContain('500 events');
    expect(mails[0]!.subject).toContain(f.client.name);
    expect(mails[0]!.text).toContain('LAPTOP-000 is not compliant');
    expect(mails[0]!.text).toContain('LAPTOP-499 is not compliant');
    const hooks = hitsAt(f.hookPath);
    expect(hooks).toHaveLength(1);
    const body = verifiedBody(hooks[0]!);
    expect(body.kind).toBe('digest');
    expect(body.events).toHaveLength(500);
    const log = await n().listDeliveries(owner, { clientId: f.client.id });
    expect(log.map((d) => [d.kind, d.eventCount, d.status])).toEqual([
      ['digest', 500, 'sent'],
      ['digest', 500, 'sent'],
    ]);

    // A handful (at most the threshold) still arrive one by one.
    await emitAll(Array.from({ length: 3 }, (_, i) => event(f.client.id, 1000 + i)));
    await pump();
    expect(mailsTo(f.to)).toHaveLength(4);
  });

  it('hourly and daily rules wait for their hour and send one digest', async () => {
    // Start just after the top of an hour, so the first pump cannot cross into the next one by chance.
    const now = Date.parse(v.clock.now());
    v.clock.advance(3600_000 - (now % 3600_000) + 5_000);
    const f = await clientWithChannels('Northwind', ['key.revealed'], 'hourly');
    await emitAll([0, 1].map((i) => event(f.client.id, i, { type: 'key.revealed', subject: `Key ${i} revealed`, dedupKey: undefined })));
    await pump();
    expect(mailsTo(f.to)).toHaveLength(0);
    await pump(3600_000);
    const mails = mailsTo(f.to);
    expect(mails).toHaveLength(1);
    expect(mails[0]!.subject).toContain('Recovery key revealed: 2 events');
  });

  it('a failing webhook (500s, then timeouts) is retried with backoff and finally failed, while e-mail goes through', async () => {
    const f = await clientWithChannels('Tailspin', ['device.noncompliant']);
    rx.mode.set(f.hookPath, 500);
    await emitAll([event(f.client.id, 1)]);
    const t0 = Date.parse(v.clock.now());
    await pump();
    expect(mailsTo(f.to)).toHaveLength(1);
    const hookDelivery = async () => (await n().listDeliveries(owner, { clientId: f.client.id })).find((d) => d.channel.kind === 'webhook')!;
    let d = await hookDelivery();
    expect(d).toMatchObject({ status: 'pending', attempts: 1 });
    expect(d.lastError).toMatch(/HTTP 500/);
    // First retry 30-60 s after the attempt (equal jitter on a 60 s base).
    const wait1 = Date.parse(d.nextAttemptAt!) - (t0 + 31_000);
    expect(wait1).toBeGreaterThanOrEqual(30_000);
    expect(wait1).toBeLessThanOrEqual(61_000);

    // Not due yet: nothing is attempted.
    expect((await n().runOnce()).retrying).toBe(0);
    await pump(61_000);
    d = await hookDelivery();
    expect(d).toMatchObject({ status: 'pending', attempts: 2 });
    const wait2 = Date.parse(d.nextAttemptAt!) - Date.parse(v.clock.now());
    expect(wait2).toBeGreaterThanOrEqual(60_000);
    expect(wait2).toBeLessThanOrEqual(121_000);

    // The endpoint now hangs: the attempt times out (2 s here; a loaded CI machine still greets within it), and e-mail sent meanwhile is not held up.
    rx.mode.set(f.hookPath, 'hang');
    await emitAll([event(f.client.id, 2)]);
    const r = await pump(121_000);
    // The new event's e-mail went out; its webhook waits behind the hanging retry of the same endpoint.
    expect(r.sent).toBe(1);
    expect(mailsTo(f.to)).toHaveLength(2);
    const waiting = (await n().listDeliveries(owner, { clientId: f.client.id })).filter((x) => x.channel.kind === 'webhook' && x.id !== d.id);
    expect(waiting).toMatchObject([{ status: 'pending', attempts: 0 }]);
    await pump(3600_000);
    await pump(3600_000);
    const all = (await n().listDeliveries(owner, { clientId: f.client.id })).filter((x) => x.channel.kind === 'webhook');
    const first = all.find((x) => x.id === d.id)!;
    expect(first).toMatchObject({ status: 'failed', attempts: 4, nextAttemptAt: null });
    expect(first.lastError).toMatch(/timed out/);
    const attempts = (await n().getDelivery(owner, first.id)).attemptLog;
    expect(attempts.map((a) => a.responseCode)).toEqual(['500', '500', null, null]);
    expect(attempts.every((a) => a.outcome === 'failed')).toBe(true);
    // The hanging endpoint got its requests; the URL (a secret for Slack/Teams) is in no error text.
    for (const a of attempts) expect(`${a.summary} ${a.error}`).not.toContain('127.0.0.1');
    rx.mode.delete(f.hookPath);
  });

  it('a permanent refusal (HTTP 404) fails at once, without retries', async () => {
    const f = await clientWithChannels('Litware', ['device.noncompliant']);
    rx.mode.set(f.hookPath, 404);
    await emitAll([event(f.client.id, 1)]);
    await pump();
    const d = (await n().listDeliveries(owner, { clientId: f.client.id })).find((x) => x.channel.kind === 'webhook')!;
    expect(d).toMatchObject({ status: 'failed', attempts: 1 });
    expect(d.lastError).toMatch(/HTTP 404.*retrying will not help/);
  });

  it('deduplicates events with the same dedupKey within the window', async () => {
    const f = await clientWithChannels('Adatum', ['device.noncompliant']);
    const e = event(f.client.id, 7);
    await emitAll([e, e]);
    await emitAll([e]);
    await pump();
    expect(mailsTo(f.to)).toHaveLength(1);
    await emitAll([e]);
    await pump(30 * 60_000);
    expect(mailsTo(f.to)).toHaveLength(1);
    // After the window the same key notifies again.
    await emitAll([e]);
    await pump(61 * 60_000);
    expect(mailsTo(f.to)).toHaveLength(2);
    const states = await v.container.database.db.selectFrom('notification_outbox').select('state').where('client_id', '=', f.client.id).execute();
    expect(states.filter((s) => s.state === 'duplicate')).toHaveLength(3);
  });

  it('MSP-wide rules see every client; a client rule never reaches another client', async () => {
    const a = await clientWithChannels('Alpha', ['sync.failed']);
    const b = await clientWithChannels('Beta', ['sync.failed']);
    const soc = `soc-${hex()}@msp.example`;
    const msp = await n().createChannel(owner, {
      clientId: null,
      name: 'MSP SOC',
      kind: 'email',
      host: '127.0.0.1',
      port: smtp.port,
      starttls: 'ignore',
      from: 'keywarden@msp.example',
      to: [soc],
    });
    await expect(n().createRule(owner, { clientId: null, name: 'bad', eventTypes: ['sync.failed'], channelIds: [a.email.id] })).rejects.toThrow(
      /MSP-wide rule can only use MSP-wide channels/,
    );
    await expect(n().createRule(owner, { clientId: a.client.id, name: 'bad', eventTypes: ['sync.failed'], channelIds: [b.email.id] })).rejects.toThrow(
      /another client/,
    );
    await n().createRule(owner, { clientId: null, name: 'All sync failures', eventTypes: ['sync.failed', 'audit.chain_broken'], channelIds: [msp.channel.id] });
    await emitAll([
      event(a.client.id, 1, { type: 'sync.failed', subject: 'Alpha sync failed' }),
      event(b.client.id, 1, { type: 'sync.failed', subject: 'Beta sync failed' }),
    ]);
    await pump();
    expect(mailsTo(a.to).map((m) => m.subject)).toEqual(['[Keywarden] Alpha sync failed']);
    expect(mailsTo(b.to).map((m) => m.subject)).toEqual(['[Keywarden] Beta sync failed']);
    expect(
      mailsTo(soc)
        .map((m) => m.subject)
        .sort(),
    ).toEqual(['[Keywarden] Alpha sync failed', '[Keywarden] Beta sync failed']);
  });

  it('a broken audit chain is notified MSP-wide', async () => {
    const soc = `chain-${hex()}@msp.example`;
    const ch = await n().createChannel(owner, {
      clientId: null,
      name: 'Chain watch',
      kind: 'email',
      host: '127.0.0.1',
      port: smtp.port,
      starttls: 'ignore',
      from: 'keywarden@msp.example',
      to: [soc],
    });
    await n().createRule(owner, { clientId: null, name: 'Chain', eventTypes: ['audit.chain_broken'], channelIds: [ch.channel.id] });
    const db = v.container.database.db;
    const row = await db.selectFrom('audit_events').select(['seq', 'action']).orderBy('seq').limit(1).offset(3).executeTakeFirstOrThrow();
    await db.updateTable('audit_events').set({ action: 'tampered' }).where('seq', '=', row.seq).execute();
    try {
      const r = await v.container.audit.verify(owner);
      expect(r.intact).toBe(false);
      await pump();
      const mails = mailsTo(soc);
      expect(mails).toHaveLength(1);
      expect(mails[0]!.subject).toContain(`broken at event ${row.seq}`);
    } finally {
      await db.updateTable('audit_events').set({ action: row.action }).where('seq', '=', row.seq).execute();
    }
  });

  it('"send test" per channel: e-mail, signed webhook, Teams and Slack payloads, and a clear error for a dead endpoint', async () => {
    const f = await clientWithChannels('Woodgrove', ['device.noncompliant']);
    const mail = await n().testChannel(owner, f.email.id);
    expect(mail).toMatchObject({ ok: true, responseCode: '250', error: null });
    expect(mailsTo(f.to).map((m) => m.subject)).toEqual([`[Keywarden] Test message for channel "${f.email.name}"`]);
    const hook = await n().testChannel(owner, f.hook.id);
    expect(hook).toMatchObject({ ok: true, responseCode: '200' });
    expect(verifiedBody(hitsAt(f.hookPath)[0]!).kind).toBe('test');

    const teamsPath = `/teams/${hex()}`;
    const slackPath = `/slack/T000/B000/${hex()}`;
    const teams = await n().createChannel(owner, { clientId: f.client.id, name: 'Teams', kind: 'teams', url: rx.url(teamsPath) });
    const slack = await n().createChannel(owner, { clientId: f.client.id, name: 'Slack', kind: 'slack', url: rx.url(slackPath) });
    expect((await n().testChannel(owner, teams.channel.id)).ok).toBe(true);
    expect((await n().testChannel(owner, slack.channel.id)).ok).toBe(true);
    const card = hitsAt(teamsPath)[0]!.json;
    expect(card.type).toBe('message');
    expect(card.attachments[0].contentType).toBe('application/vnd.microsoft.card.adaptive');
    expect(card.attachments[0].content).toMatchObject({ type: 'AdaptiveCard', version: '1.4' });
    expect(card.attachments[0].content.body[0].text).toContain('Test message');
    const sl = hitsAt(slackPath)[0]!.json;
    expect(sl.text).toContain('Test message');
    expect(sl.blocks[0]).toMatchObject({ type: 'header' });

    // Nothing listens on a port that was just freed: refused, in words, and logged as a failed test delivery.
    const free = net.createServer();
    await new Promise<void>((resolve) => free.listen(0, '127.0.0.1', resolve));
    const port = (free.address() as AddressInfo).port;
    await new Promise<void>((resolve) => free.close(() => resolve()));
    const dead = await n().createChannel(owner, { clientId: f.client.id, name: 'Dead', kind: 'slack', url: `http://127.0.0.1:${port}/services/x` });
    const r = await n().testChannel(owner, dead.channel.id);
    expect(r).toMatchObject({ ok: false, responseCode: null });
    expect(r.error).toMatch(/connection refused/);
    expect((await n().getDelivery(owner, r.deliveryId)).status).toBe('failed');
    // A wrong SMTP password: refused, not retried.
    const wrong = await n().createChannel(owner, {
      clientId: f.client.id,
      name: 'Wrong pass',
      kind: 'email',
      host: '127.0.0.1',
      port: smtp.port,
      starttls: 'ignore',
      username: SMTP_USER,
      password: 'not-the-password',
      from: 'k@msp.example',
      to: ['x@client.example'],
    });
    const w = await n().testChannel(owner, wrong.channel.id);
    expect(w.ok).toBe(false);
    expect(w.error).toMatch(/refused the user name or password/);
  });

  it('SMTP over TLS and STARTTLS: a private CA is trusted, an unknown certificate is refused unless allowed', async () => {
    const pem = selfSignedCert(v.tdb.dir);
    const tls = await startSmtp({ user: SMTP_USER, pass: SMTP_PASSWORD }, { mode: 'secure', ...pem });
    const starttls = await startSmtp({ user: SMTP_USER, pass: SMTP_PASSWORD }, { mode: 'starttls', ...pem });
    try {
      const client = await v.container.clients.create(owner, { name: `TLS ${hex()}` });
      const base = {
        clientId: client.id,
        kind: 'email' as const,
        host: '127.0.0.1',
        username: SMTP_USER,
        password: SMTP_PASSWORD,
        from: 'keywarden@msp.example',
        to: ['tls@client.example'],
      };
      const test = async (name: string, extra: object) => n().testChannel(owner, (await n().createChannel(owner, { ...base, name, ...extra })).channel.id);
      expect(await test('implicit TLS, private CA', { port: tls.port, secure: true, caCert: pem.cert })).toMatchObject({ ok: true, responseCode: '250' });
      const refused = await test('implicit TLS, unknown CA', { port: tls.port, secure: true });
      expect(refused.ok).toBe(false);
      expect(refused.error).toMatch(/certificate is not trusted/);
      expect(await test('implicit TLS, self-signed allowed', { port: tls.port, secure: true, allowSelfSigned: true })).toMatchObject({ ok: true });
      expect(await test('STARTTLS required, private CA', { port: starttls.port, starttls: 'required', caCert: pem.cert })).toMatchObject({ ok: true });
      expect(tls.mails).toHaveLength(2);
      expect(starttls.mails).toHaveLength(1);
      // The plain server offers no STARTTLS: a channel that requires it refuses to send in clear.
      const clear = await test('STARTTLS required, not offered', { port: smtp.port, starttls: 'required' });
      expect(clear.ok).toBe(false);
      expect(clear.error).toMatch(/STARTTLS/);
    } finally {
      await tls.close();
      await starttls.close();
    }
  });

  it('the worker and the daily audit check are scheduler tasks of their own', async () => {
    const tasks = await v.container.database.db
      .selectFrom('scheduled_tasks')
      .select(['id', 'kind', 'interval_minutes'])
      .where('id', 'in', ['notifications', 'audit-verify'])
      .orderBy('id')
      .execute();
    expect(tasks).toEqual([
      { id: 'audit-verify', kind: 'audit-verify', interval_minutes: 1440 },
      { id: 'notifications', kind: 'notifications', interval_minutes: 1 },
    ]);
    expect(await v.container.scheduler.runNow('notifications')).toMatch(/^ok: \d+ events routed/);
    expect(await v.container.scheduler.runNow('audit-verify')).toMatch(/^intact: \d+ events/);
  });

  it('two processes on one database send each message exactly once', async () => {
    const f = await clientWithChannels('Proseware', ['device.noncompliant']);
    await emitAll(Array.from({ length: 8 }, (_, i) => event(f.client.id, i)));
    const second = await v.secondProcess();
    v.clock.advance(31_000);
    await Promise.all([n().runOnce(), second.notifications.runOnce(), n().runOnce()]);
    await n().runOnce();
    expect(mailsTo(f.to)).toHaveLength(8);
    expect(hitsAt(f.hookPath)).toHaveLength(8);
    const attempts = await v.container.database.db
      .selectFrom('notification_attempts as a')
      .innerJoin('notification_deliveries as d', 'd.id', 'a.delivery_id')
      .select('a.id')
      .where('d.client_id', '=', f.client.id)
      .execute();
    expect(attempts).toHaveLength(16);
  });

  it('a scheduled report e-mail carries the rendered PDFs to the client contacts', async () => {
    const f = await clientWithChannels('Relecloud', ['device.noncompliant']);
    const contact = `ceo-${hex()}@client.example`;
    const s = await n().createSchedule(owner, { clientId: f.client.id, name: 'Monthly BitLocker report', channelId: f.email.id, recipients: [contact] });
    expect(s).toMatchObject({ frequency: 'monthly', day: 1, hour: 7, minute: 0 });
    expect(s.nextRunAt.slice(8, 16)).toBe('01T07:00');
    // Move the clock to the run time: the worker queues, renders and sends it.
    v.clock.advance(Date.parse(s.nextRunAt) - Date.parse(v.clock.now()) + 1000);
    const r = await n().runOnce();
    expect(r.reports).toBe(1);
    const mails = mailsTo(contact);
    expect(mails, JSON.stringify(await n().listDeliveries(owner, { clientId: f.client.id, status: 'failed' }))).toHaveLength(1);
    expect(mails[0]!.subject).toContain('Monthly BitLocker report');
    expect(mails[0]!.attachments.map((a) => a.contentType)).toEqual(['application/pdf', 'application/pdf']);
    expect(mails[0]!.attachments.every((a) => a.size > 1000)).toBe(true);
    const after = (await n().listSchedules(owner, { clientId: f.client.id }))[0]!;
    expect(Date.parse(after.nextRunAt)).toBeGreaterThan(Date.parse(s.nextRunAt));
    expect(after.nextRunAt.slice(8, 16)).toBe('01T07:00');
  });
});
