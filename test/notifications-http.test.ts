import { randomBytes } from 'node:crypto';
import net, { type AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENGINE } from './helpers/engine.js';
import { owner } from './helpers/vault.js';
import type { Session } from './helpers/app.js';
import { createNotifyVault, startReceiver, startSmtp, type NotifyVault, type SmtpSink } from './helpers/notify.js';
import { STATE_FILE, SimMachine, TestAgent, injectTransport } from './agent/test-agent.js';
import { verifyWebhook } from '../src/crypto/webhook-signature.js';

/**
 * The notification API: who may manage and read what, and that the sealed settings (SMTP password,
 * webhook signing secret, Teams and Slack URLs) never come back in a response, the audit log, the
 * delivery log or a log line. Also the producers outside compliance: a reveal, a recovery boot,
 * a rotation and a failed sync each leave their event in the outbox of their own transaction.
 */
const API = '/api/v1/notifications';
const hex = (n = 8) => randomBytes(n).toString('hex');
const SMTP_PASSWORD = `smtp-${hex()}`;
const TEAMS_PATH = `/teams/webhookb2/${hex(16)}`;
const SLACK_PATH = `/slack/services/T0/B0/${hex(16)}`;
const CHOSEN_SECRET = `chosen-signing-secret-${hex()}`;

describe(`notifications API on ${ENGINE}`, () => {
  let v: NotifyVault;
  let smtp: SmtpSink;
  let rx: Awaited<ReturnType<typeof startReceiver>>;
  let ownerS: Session;
  let clientA: { id: string; name: string };
  let clientB: { id: string; name: string };
  const secrets: string[] = [SMTP_PASSWORD, TEAMS_PATH, SLACK_PATH, CHOSEN_SECRET];

  beforeAll(async () => {
    v = await createNotifyVault({ timeoutMs: 5000, gatherSeconds: 0 });
    smtp = await startSmtp({ user: 'kw', pass: SMTP_PASSWORD });
    rx = await startReceiver();
    ownerS = await v.signInAs('owner', 'all');
    clientA = await v.container.clients.create(owner, { name: `Contoso ${hex(2)}` });
    clientB = await v.container.clients.create(owner, { name: `Fabrikam ${hex(2)}` });
  });
  afterAll(async () => {
    await v?.close();
    await smtp?.close();
    await rx?.close();
  });

  const call = (s: Session, method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, payload?: object) =>
    v.app.inject({ method, url, headers: s.headers, ...(payload ? { payload } : {}) });
  const emailBody = (clientId: string | null) => ({
    clientId,
    name: `Mail ${hex(2)}`,
    kind: 'email',
    host: '127.0.0.1',
    port: smtp.port,
    starttls: 'ignore',
    username: 'kw',
    password: SMTP_PASSWORD,
    from: 'keywarden@msp.example',
    to: ['it@client.example'],
  });
  const noSecrets = (text: string, where: string) => {
    for (const s of secrets) expect(text.includes(s), `${where} contains a secret (${s.slice(0, 8)}…)`).toBe(false);
  };

  it('owners manage channels of every kind; secrets are sealed, masked in answers, and never in the audit or server log', async () => {
    const email = await call(ownerS, 'POST', `${API}/channels`, emailBody(clientA.id));
    expect(email.statusCode).toBe(201);
    expect(email.json().channel).toMatchObject({
      kind: 'email',
      clientId: clientA.id,
      masked: { password: '••••••••' },
      settings: { host: '127.0.0.1', username: 'kw' },
    });
    const generated = await call(ownerS, 'POST', `${API}/channels`, { clientId: clientA.id, name: 'PSA', kind: 'webhook', url: rx.url('/psa') });
    expect(generated.statusCode).toBe(201);
    // A generated signing secret is shown once, at creation, and never again.
    const signingSecret = generated.json().signingSecret as string;
    expect(signingSecret).toMatch(/^kwwh_/);
    secrets.push(signingSecret);
    const chosen = await call(ownerS, 'POST', `${API}/channels`, {
      clientId: clientA.id,
      name: 'SIEM',
      kind: 'webhook',
      url: rx.url('/siem'),
      signingSecret: CHOSEN_SECRET,
    });
    expect(chosen.json().signingSecret).toBeUndefined();
    const teams = await call(ownerS, 'POST', `${API}/channels`, { clientId: null, name: 'MSP Teams', kind: 'teams', url: rx.url(TEAMS_PATH) });
    const slack = await call(ownerS, 'POST', `${API}/channels`, { clientId: null, name: 'MSP Slack', kind: 'slack', url: rx.url(SLACK_PATH) });
    expect(teams.statusCode).toBe(201);
    expect(slack.json().channel.masked.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/…$/);
    noSecrets(email.body + chosen.body + teams.body + slack.body, 'a create answer');

    const list = await call(ownerS, 'GET', `${API}/channels`);
    expect(list.statusCode).toBe(200);
    expect(list.json().length).toBeGreaterThanOrEqual(5);
    noSecrets(list.body, 'the channel list');

    // Changing the name keeps the sealed settings: the test message still authenticates and signs.
    const renamed = await call(ownerS, 'PATCH', `${API}/channels/${email.json().channel.id}`, { name: 'Contoso IT' });
    expect(renamed.json()).toMatchObject({ name: 'Contoso IT', masked: { password: '••••••••' } });
    const test = await call(ownerS, 'POST', `${API}/channels/${email.json().channel.id}/test`);
    expect(test.json()).toMatchObject({ ok: true, responseCode: '250' });
    const signed = await call(ownerS, 'POST', `${API}/channels/${generated.json().channel.id}/test`);
    expect(signed.json().ok).toBe(true);
    const hit = rx.hits.find((h) => h.path === '/psa')!;
    const ts = String(hit.headers['x-keywarden-timestamp']);
    expect(verifyWebhook(signingSecret, ts, hit.body, String(hit.headers['x-keywarden-signature']), Number(ts))).toBe(true);
    for (const id of [teams.json().channel.id, slack.json().channel.id])
      expect((await call(ownerS, 'POST', `${API}/channels/${id}/test`)).json().ok).toBe(true);

    const deliveries = await call(ownerS, 'GET', `${API}/deliveries`);
    expect(deliveries.json().length).toBeGreaterThanOrEqual(4);
    noSecrets(deliveries.body, 'the delivery log');
    for (const d of deliveries.json()) noSecrets((await call(ownerS, 'GET', `${API}/deliveries/${d.id}`)).body, 'a delivery');

    const audit = await v.container.audit.list(owner, { limit: 1000 });
    const mine = audit.filter((e) => e.action.startsWith('notification.'));
    expect(mine.map((e) => e.action)).toEqual(
      expect.arrayContaining(['notification.channel.create', 'notification.channel.update', 'notification.channel.test']),
    );
    noSecrets(JSON.stringify(audit), 'the audit log');
    noSecrets(v.logs.join('\n'), 'the server log');
    expect(v.logs.length).toBeGreaterThan(0);
    const stored = await v.container.database.db.selectFrom('notification_channels').selectAll().execute();
    noSecrets(JSON.stringify(stored), 'the channels table');
  });

  it('a client-limited admin manages only its client; MSP-wide is for global roles; auditors read; technicians see nothing', async () => {
    const admin = await v.signInAs('admin', [clientA.id]);
    const auditor = await v.signInAs('auditor', [clientA.id]);
    const tech = await v.signInAs('technician', 'all');

    const mine = await call(admin, 'POST', `${API}/channels`, emailBody(clientA.id));
    expect(mine.statusCode).toBe(201);
    expect((await call(admin, 'POST', `${API}/channels`, emailBody(clientB.id))).statusCode).toBe(404);
    expect((await call(admin, 'POST', `${API}/channels`, emailBody(null))).statusCode).toBe(403);
    const otherChannel = await call(ownerS, 'POST', `${API}/channels`, emailBody(clientB.id));
    const bId = otherChannel.json().channel.id;
    expect((await call(admin, 'PATCH', `${API}/channels/${bId}`, { name: 'x' })).statusCode).toBe(404);
    expect((await call(admin, 'DELETE', `${API}/channels/${bId}`)).statusCode).toBe(404);
    expect((await call(admin, 'POST', `${API}/channels/${bId}/test`)).statusCode).toBe(404);

    const seen = (await call(admin, 'GET', `${API}/channels`)).json() as { clientId: string | null }[];
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.every((c) => c.clientId === clientA.id)).toBe(true);
    expect((await call(admin, 'GET', `${API}/channels?clientId=${clientB.id}`)).statusCode).toBe(403);

    // A rule of client A may use A's channels, never B's (B's is "not found" to this admin).
    const rule = await call(admin, 'POST', `${API}/rules`, {
      clientId: clientA.id,
      name: 'A alerts',
      eventTypes: ['device.noncompliant', 'key.revealed'],
      channelIds: [mine.json().channel.id],
    });
    expect(rule.statusCode).toBe(201);
    expect((await call(admin, 'POST', `${API}/rules`, { clientId: clientA.id, name: 'x', eventTypes: ['key.revealed'], channelIds: [bId] })).statusCode).toBe(
      404,
    );
    expect(
      (await call(admin, 'POST', `${API}/rules`, { clientId: clientA.id, name: 'x', eventTypes: ['not.a.type'], channelIds: [mine.json().channel.id] }))
        .statusCode,
    ).toBe(400);
    expect((await call(admin, 'PATCH', `${API}/rules/${rule.json().id}`, { digest: 'daily' })).json().digest).toBe('daily');

    expect((await call(auditor, 'GET', `${API}/channels`)).statusCode).toBe(200);
    expect((await call(auditor, 'GET', `${API}/rules`)).statusCode).toBe(200);
    const log = await call(auditor, 'GET', `${API}/deliveries`);
    expect(log.statusCode).toBe(200);
    expect((log.json() as { clientId: string | null }[]).every((d) => d.clientId === clientA.id)).toBe(true);
    noSecrets(log.body, "the auditor's delivery log");
    expect((await call(auditor, 'POST', `${API}/channels`, emailBody(clientA.id))).statusCode).toBe(403);
    expect((await call(auditor, 'POST', `${API}/channels/${mine.json().channel.id}/test`)).statusCode).toBe(403);

    for (const url of [`${API}/channels`, `${API}/rules`, `${API}/deliveries`, `${API}/report-schedules`])
      expect((await call(tech, 'GET', url)).statusCode, url).toBe(403);
    expect((await call(admin, 'DELETE', `${API}/rules/${rule.json().id}`)).statusCode).toBe(200);
    expect((await call(admin, 'DELETE', `${API}/channels/${mine.json().channel.id}`)).statusCode).toBe(200);
  });

  it('report schedules: created with the monthly default, refused for a non-email channel, and sent on demand', async () => {
    const email = (await call(ownerS, 'POST', `${API}/channels`, emailBody(clientA.id))).json().channel;
    const hook = (await call(ownerS, 'POST', `${API}/channels`, { clientId: clientA.id, name: 'Hook', kind: 'webhook', url: rx.url('/h') })).json().channel;
    expect(
      (await call(ownerS, 'POST', `${API}/report-schedules`, { clientId: clientA.id, name: 'Monthly', channelId: hook.id, recipients: ['ceo@client.example'] }))
        .statusCode,
    ).toBe(400);
    expect(
      (
        await call(ownerS, 'POST', `${API}/report-schedules`, {
          clientId: clientA.id,
          name: 'Bad',
          channelId: email.id,
          recipients: ['ceo@client.example'],
          reports: [{ report: 'devices', format: 'pdf' }],
        })
      ).statusCode,
    ).toBe(400);
    const s = await call(ownerS, 'POST', `${API}/report-schedules`, {
      clientId: clientA.id,
      name: 'Monthly',
      channelId: email.id,
      recipients: ['ceo@client.example'],
    });
    expect(s.statusCode).toBe(201);
    expect(s.json()).toMatchObject({
      frequency: 'monthly',
      day: 1,
      hour: 7,
      reports: [
        { report: 'compliance-summary', format: 'pdf' },
        { report: 'recovery-audit', format: 'pdf' },
      ],
    });
    const weekly = await call(ownerS, 'PATCH', `${API}/report-schedules/${s.json().id}`, { frequency: 'weekly', day: 1 });
    expect(weekly.json()).toMatchObject({ frequency: 'weekly', day: 1 });
    const run = await call(ownerS, 'POST', `${API}/report-schedules/${s.json().id}/run`);
    expect(run.statusCode).toBe(200);
    expect(run.json()).toMatchObject({ kind: 'report', status: 'pending' });
    await v.container.notifications.runOnce();
    const mail = smtp.mails.find((m) => m.to.includes('ceo@client.example'));
    expect(mail?.attachments.map((a) => a.contentType)).toEqual(['application/pdf', 'application/pdf']);
    expect((await call(ownerS, 'GET', `${API}/deliveries/${run.json().id}`)).json()).toMatchObject({ status: 'sent', attempts: 1 });
  });

  it('producers write their events in their own transaction: reveal, recovery boot, rotation, failed sync', async () => {
    const db = v.container.database.db;
    const outbox = async (type: string) => db.selectFrom('notification_outbox').selectAll().where('event_type', '=', type).execute();
    const client = await v.container.clients.create(owner, { name: `Producers ${hex(2)}` });
    const tok = await v.container.agent.createEnrollmentToken(owner, { clientId: client.id, expiresInDays: 7, maxUses: 5 });
    const agent = new TestAgent(injectTransport(v.app), new SimMachine(`PRD-${hex(2).toUpperCase()}`));
    expect((await agent.enroll(tok.token)).status).toBe(200);
    await agent.run();
    await agent.run();
    const [key] = await v.container.keys.list(owner, { clientId: client.id });

    // A reveal: key.revealed, naming who and why (never the password).
    const revealed = await v.container.keys.revealByKeyId(owner, { query: key!.keyId!, reason: 'lost-pin' });
    expect(revealed.status).toBe('revealed');
    const [rev] = (await outbox('key.revealed')).filter((e) => e.client_id === client.id);
    expect(rev!.subject).toContain(agent.machine.hostname);
    expect(rev!.subject).toContain(owner.name);
    const password = revealed.status === 'revealed' ? revealed.key.recoveryPassword : '';
    expect(JSON.stringify(rev)).not.toContain(password);

    // The disclosed key is rotated by the agent at its next runs: key.rotated.
    await agent.run();
    await agent.run();
    const rotated = (await outbox('key.rotated')).filter((e) => e.client_id === client.id);
    expect(rotated.length).toBe(1);
    expect(rotated[0]!.device_id).toBe(agent.deviceId);

    // The machine was started with a recovery password (event 24652), reported once even if sent twice.
    const pid = agent.machine.recoveryPasswords('C:')[0]!.id;
    agent.machine.logEvent(24652, { protectorId: pid, volume: 'C:' });
    await agent.run();
    // agent.json restored from a backup: the event cursor is back, the event goes out again.
    agent.machine.files.set(STATE_FILE, JSON.stringify({ ...agent.savedState, lastEventTime: null }));
    await agent.run();
    const boots = (await outbox('device.recovery_boot')).filter((e) => e.client_id === client.id);
    expect(boots).toHaveLength(1);
    expect(boots[0]!.subject).toBe(`${agent.machine.hostname} was started with a recovery password (C:)`);

    // A check-in that changed nothing writes no notification.
    const count = async () => (await db.selectFrom('notification_outbox').select('id').where('client_id', '=', client.id).execute()).length;
    const before = await count();
    expect((await agent.post('/api/v1/agent/checkin', agent.checkinBody())).status).toBe(200);
    expect(await count()).toBe(before);

    // An Entra ID sync that cannot sign in: sync.failed.
    const conn = await v.container.graph.createConnection(owner, {
      clientId: client.id,
      tenantId: crypto.randomUUID(),
      appClientId: crypto.randomUUID(),
      clientSecret: `graph-${hex()}`,
      loginUrl: 'http://127.0.0.1:9/login',
      graphUrl: 'http://127.0.0.1:9/graph',
    });
    const run = await v.container.graph.syncNow(owner, conn.id);
    expect(run.status).toBe('failed');
    const failed = (await outbox('sync.failed')).filter((e) => e.client_id === client.id);
    expect(failed).toHaveLength(1);
    expect(failed[0]!.subject).toBe(`The Entra ID sync of ${client.name} failed`);

    // An Active Directory sync with no domain controller listening: sync.failed as well.
    const free = net.createServer();
    await new Promise<void>((resolve) => free.listen(0, '127.0.0.1', resolve));
    const port = (free.address() as AddressInfo).port;
    await new Promise<void>((resolve) => free.close(() => resolve()));
    const ad = await v.container.directory.createConnection(owner, {
      clientId: client.id,
      hosts: ['127.0.0.1'],
      port,
      tlsMode: 'ldaps',
      allowUntrusted: true,
      bindDn: 'CN=svc,DC=corp,DC=example',
      password: `ad-${hex()}`,
      baseDns: ['DC=corp,DC=example'],
    });
    const adRun = await v.container.directory.runSync(ad.id);
    expect(adRun.status).toBe('failed');
    const adFailed = (await outbox('sync.failed')).filter((e) => e.client_id === client.id && e.subject.includes('Active Directory'));
    expect(adFailed).toHaveLength(1);
    expect(JSON.parse(adFailed[0]!.details)).toMatchObject({ source: 'Active Directory' });
  });
});
