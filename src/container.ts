import type { Config } from './config.js';
import { describeDatabase } from './config.js';
import { openDatabase, type Database, type Executor } from './db/database.js';
import { migrateToLatest } from './db/migrate.js';
import { transactions } from './db/transactions.js';
import { createEgressPolicy, type EgressPolicy } from './integrations/egress.js';
import type { PsaClientDeps } from './integrations/psa/index.js';
import { createPsaRepo } from './modules/psa/psa.repo.js';
import { createPsaService } from './modules/psa/psa.service.js';
import { openKeyring, type Keyring } from './crypto/keyring.js';
import { loadMasterKeys } from './crypto/master-key.js';
import { systemClock, type Clock } from './lib/clock.js';
import { newId } from './lib/ids.js';
import { vaultError } from './lib/errors.js';
import { createVaultRepo } from './modules/vault/vault.repo.js';
import { createAuditRepo } from './modules/audit/audit.repo.js';
import { createAuditService } from './modules/audit/audit.service.js';
import { createClientsRepo } from './modules/clients/clients.repo.js';
import { createClientsService } from './modules/clients/clients.service.js';
import { createDevicesRepo } from './modules/devices/devices.repo.js';
import { createKeysRepo } from './modules/keys/keys.repo.js';
import { createKeyIngest } from './modules/keys/keys.ingest.js';
import { createKeysService } from './modules/keys/keys.service.js';
import { createImportsService } from './modules/imports/imports.service.js';
import { createIdentityRepo } from './modules/identity/identity.repo.js';
import { APPROVAL_GRANT_USER, createIdentityService } from './modules/identity/identity.service.js';
import { createPasskeysRepo } from './modules/identity/passkeys.repo.js';
import { createPasskeysService } from './modules/identity/passkeys.service.js';
import { requireMfa } from './modules/settings/settings.repo.js';
import { createDevicesService } from './modules/devices/devices.service.js';
import { createAgentRepo } from './modules/agent/agent.repo.js';
import { createAgentService } from './modules/agent/agent.service.js';
import { createSeenBuffer } from './modules/agent/seen-buffer.js';
import { createAgentFiles } from './modules/agent/agent-files.js';
import { createAgentHealthRepo } from './modules/agent/agent-health.repo.js';
import { createAgentHealthService } from './modules/agent/agent-health.service.js';
import { createGraphRepo } from './modules/graph/graph.repo.js';
import { createGraphService } from './modules/graph/graph.service.js';
import { createPostureRepo } from './modules/graph/posture.repo.js';
import { createTenantPosture } from './modules/graph/posture.js';
import { createMspAppRepo } from './modules/graph/msp-app.repo.js';
import { createMspAppService } from './modules/graph/msp-app.service.js';
import { createDirectoryRepo } from './modules/directory/directory.repo.js';
import { createDirectoryService } from './modules/directory/directory.service.js';
import { createScheduler, type Scheduler } from './modules/jobs/scheduler.js';
import { createLifecycleService, RETENTION_TASK_KIND } from './modules/lifecycle/lifecycle.service.js';
import { createKeyHistory } from './modules/lifecycle/key-history.js';
import { createLifecycleRepo } from './modules/lifecycle/lifecycle.repo.js';
import { createApprovals } from './modules/lifecycle/approvals.js';
import { createSchedulerRepo } from './modules/jobs/scheduler.repo.js';
import type { Notifier } from './modules/notifications/notifier.js';
import { createOutboxNotifier } from './modules/notifications/outbox.js';
import { systemActor, type Actor } from './modules/authz/authz.js';
import { createNotificationsService, type NotificationOptions } from './modules/notifications/notifications.service.js';
import { createChannelsService } from './modules/notifications/channels.service.js';
import { createRulesService } from './modules/notifications/rules.service.js';
import { createDeliveryService } from './modules/notifications/delivery.service.js';
import { createSchedulesService } from './modules/notifications/schedules.service.js';
import { createChannelsRepo } from './modules/notifications/channels.repo.js';
import { createRulesRepo } from './modules/notifications/rules.repo.js';
import { createDeliveryRepo } from './modules/notifications/delivery.repo.js';
import { createOutboxRepo } from './modules/notifications/outbox.repo.js';
import { createSchedulesRepo } from './modules/notifications/schedules.repo.js';
import { createExportsRepo } from './modules/exports/exports.repo.js';
import { createExportsService, SCHEDULE_TASK_KIND } from './modules/exports/exports.service.js';
import { createMetrics } from './modules/metrics/metrics.js';
import { createMetricsRepo } from './modules/metrics/metrics.repo.js';
import { createComplianceRepo } from './modules/compliance/compliance.repo.js';
import { createComplianceService } from './modules/compliance/compliance.service.js';
import { createReportsRepo } from './modules/reports/reports.repo.js';
import { createReportsService } from './modules/reports/reports.service.js';
import { createSettingsRepo } from './modules/settings/settings.repo.js';
import { createSettingsService } from './modules/settings/settings.service.js';
import { createSetupService } from './modules/identity/setup.service.js';
import { APPROVAL_INVITE, createInvitationsService } from './modules/identity/invitations.service.js';
import { createInvitationsRepo } from './modules/identity/invitations.repo.js';
import { createDirectMail } from './modules/notifications/direct-mail.js';
import { createKeyLookup } from './modules/keys/keys.lookup.js';
import { createUnlockOutcome } from './modules/keys/keys.outcome.js';
import { createDeviceTableRepo } from './modules/devices/device-table.repo.js';
import { createDeviceTableService } from './modules/devices/device-table.service.js';
import { createClientOverview } from './modules/clients/clients.overview.js';
import { createSsoRepo } from './modules/sso/sso.repo.js';
import { createSsoService, SSO_REVALIDATE_TASK, type InviteePort } from './modules/sso/sso.service.js';
import { createOidc } from './modules/sso/sso.oidc.js';
import { createSelfServiceRepo } from './modules/self-service/self-service.repo.js';
import { createSelfServiceService } from './modules/self-service/self-service.service.js';
import { createRevealApprovals } from './modules/reveal-approvals/reveal-approvals.service.js';
import { createRevealApprovalsRepo } from './modules/reveal-approvals/reveal-approvals.repo.js';
import { createPsaTickets, PSA_NOTES_TASK } from './modules/psa/psa.tickets.js';
import { createPsaNotesRepo } from './modules/psa/psa-notes.repo.js';
import { createDeviceTagsRepo } from './modules/devices/device-tags.repo.js';
import { createDeviceTagsService } from './modules/devices/device-tags.service.js';
import { createPsaFindingsRepo } from './modules/psa/psa-findings.repo.js';
import { createPsaFindings } from './modules/psa/psa-findings.service.js';
import os from 'node:os';
import { randomBytes } from 'node:crypto';

/**
 * Composition root: config -> database -> keyring -> repos -> services, wired by hand.
 * Each service gets only the dependencies it names.
 */
export async function buildContainer(
  config: Config,
  opts: {
    clock?: Clock;
    database?: Database;
    graphSleep?: (ms: number) => Promise<void>;
    notifications?: Partial<NotificationOptions>;
    notifier?: Notifier;
    /** Tests may resolve names their own way (e.g. a fake DNS answer for a rebinding test). */
    egress?: EgressPolicy;
    /** Tests: PSA calls without real waiting between retries, shorter timeouts. */
    psaClient?: Partial<PsaClientDeps>;
  } = {},
) {
  const clock = opts.clock ?? systemClock;
  const database = opts.database ?? openDatabase(config.database);
  try {
    await migrateToLatest(database.db);
    const vaultRepo = createVaultRepo();
    if (!(await vaultRepo.isInitialized(database.db))) {
      throw vaultError(`No Keywarden vault in ${describeDatabase(config.database)}. Run "npx keywarden init" first.`);
    }
    const keyring: Keyring<Executor> = await openKeyring(vaultRepo, database.db, () => loadMasterKeys(config.masterKey), newId);
    const db = database.db;
    // Vaults created before a global data key existed get it now, outside any request.
    await db.transaction().execute((tx) => keyring.ensureGlobalKey(tx, 'secrets', clock.now()));

    // Producers write notifications into the outbox inside their own transaction.
    // Tests may pass a recording notifier (e.g. test/compliance.test.ts) to see exactly what producers emit.
    const notifier: Notifier = opts.notifier ?? createOutboxNotifier({ clock });
    // Every outbound connection (Graph, webhooks, Teams, Slack, SMTP, LDAP) goes through this one policy.
    const egress = opts.egress ?? createEgressPolicy({ allow: config.egress.allow });
    const auditRepo = createAuditRepo();
    const audit = createAuditService({ tx: transactions(db), repo: auditRepo, keyring, clock, notifier });
    const notifyRepos = {
      channels: createChannelsRepo(),
      rules: createRulesRepo(),
      deliveries: createDeliveryRepo(),
      outbox: createOutboxRepo(),
      schedules: createSchedulesRepo(),
    };
    const notifyDelivery = createDeliveryService({
      tx: transactions(db),
      repos: notifyRepos,
      keyring,
      clock,
      owner: `${os.hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`,
      options: opts.notifications,
      egress,
    });
    const notifyChannels = createChannelsService({
      tx: transactions(db),
      repo: notifyRepos.channels,
      deliveries: notifyRepos.deliveries,
      delivery: notifyDelivery,
      keyring,
      audit,
      clock,
      egress,
    });
    const notifications = createNotificationsService({
      channels: notifyChannels,
      rules: createRulesService({ tx: transactions(db), repo: notifyRepos.rules, deliveries: notifyRepos.deliveries, channels: notifyChannels, audit, clock }),
      delivery: notifyDelivery,
      schedules: createSchedulesService({
        tx: transactions(db),
        repo: notifyRepos.schedules,
        channels: notifyChannels,
        delivery: notifyDelivery,
        audit,
        clock,
      }),
      notifier,
    });
    const clientsRepo = createClientsRepo();
    const clients = createClientsService({ tx: transactions(db), repo: clientsRepo, keyring, audit, clock });
    const keysRepo = createKeysRepo();
    const devicesRepo = createDevicesRepo();
    const ingest = createKeyIngest({ keys: keysRepo, devices: devicesRepo, keyring, audit, clock });
    // Tenant posture: written by the Entra sync, shown by compliance and the compliance report.
    const tenantPosture = createTenantPosture({ repo: createPostureRepo(), audit, clock });
    // Compliance: re-evaluated by the producers' hooks below, and hourly by the scheduler.
    const compliance = createComplianceService({
      tx: transactions(db),
      posture: tenantPosture,
      repo: createComplianceRepo(),
      clients: clientsRepo,
      audit,
      clock,
      notifier,
      // The policy's enforce fields queue agent jobs; the agent service is built below and called only later.
      enforce: (tx, clientId, policy, evaluated) => agent.enforcePolicy(tx, clientId, policy, evaluated),
    });
    // A sync that succeeded has already committed: a compliance problem must not turn it into a failure.
    const afterSync = (clientId: string) =>
      compliance.afterSync(clientId).catch((e) => process.emitWarning(`compliance evaluation after a sync failed: ${(e as Error).message}`));
    // Two-owner approval lives in the lifecycle module, built further down.
    // Two-owner approval: identity and lifecycle register the actions a second owner approves.
    const lifecycleRepo = createLifecycleRepo();
    const approvals = createApprovals({
      tx: transactions(db),
      repo: lifecycleRepo,
      settings: createSettingsRepo(),
      audit,
      clock,
      stepUpMinutes: config.policy.stepUpMinutes,
    });
    const passkeysRepo = createPasskeysRepo();
    const identity = createIdentityService({
      tx: transactions(db),
      repo: createIdentityRepo(),
      requireMfa,
      approvals: () => approvals,
      keyring,
      passkeys: passkeysRepo,
      audit,
      clock,
      policy: config.policy,
      // Single sign-on, built just below: an SSO-only person's second factor may be proven at their provider.
      idpSecondFactor: () => (exec, user) => sso.idpSecondFactor(exec, user),
    });
    // Single sign-on (OpenID Connect): providers, links, sign-in through identity's openSession.
    // Invitations may accept an invitee signing in through a provider (bound later: ssoInvitee).
    let ssoInvitee: InviteePort | undefined;
    const sso = createSsoService({
      tx: transactions(db),
      repo: createSsoRepo(),
      users: createIdentityRepo(),
      identity: () => identity,
      invitee: () => ssoInvitee,
      keyring,
      audit,
      clock,
      policy: config.policy,
      oidc: createOidc({ egress, clock }),
    });
    // Making someone an owner or giving them every client waits for a second owner while two-owner approval is on.
    approvals.register(APPROVAL_GRANT_USER, (tx, approver, params) => identity.applyApprovedGrant(tx, approver, params));
    // Invitations by e-mail (issue 19): the link goes out through the vault-wide e-mail channel, sent at once (never queued: it carries a secret).
    const invitations = createInvitationsService({
      tx: transactions(db),
      repo: createInvitationsRepo(),
      identity,
      approvals: () => approvals,
      mail: createDirectMail({ tx: transactions(db), repo: notifyRepos.channels, keyring, egress }),
      audit,
      clock,
      policy: config.policy,
      publicUrl: config.server.publicUrl,
    });
    // Passkeys (WebAuthn): registration, sign-in (password-less or second factor) and step-up.
    const passkeys = createPasskeysService({
      tx: transactions(db),
      repo: passkeysRepo,
      users: createIdentityRepo(),
      identity,
      requireMfa,
      audit,
      clock,
      policy: config.policy,
      publicUrl: config.server.publicUrl,
    });
    approvals.register(APPROVAL_INVITE, (tx, approver, params) => invitations.applyApproval(tx, approver, params));
    // A person with a pending invitation may accept it by signing in through a provider.
    ssoInvitee = { acceptBySso: (tx, input) => invitations.acceptBySso(tx, input) };
    // "Last seen" of unchanged check-ins, written every 100 ms in one transaction.
    const seen = createSeenBuffer({ db, engine: database.engine });
    const agent = createAgentService({
      tx: transactions(db),
      repo: createAgentRepo(),
      devices: devicesRepo,
      keys: keysRepo,
      clients: clientsRepo,
      ingest,
      audit,
      clock,
      notifier,
      seen,
      onChanged: (tx, clientId, ids) => compliance.evaluateDevicesIn(tx, clientId, ids),
      policy: (tx, clientId) => compliance.policyIn(tx, clientId),
      devicesWithFinding: (tx, clientId, code) => compliance.devicesWithFinding(tx, clientId, code),
    });
    // The scheduler and the Graph service need each other (tasks run syncs; connections create tasks).
    // eslint-disable-next-line prefer-const -- assigned once below; the services built first read it only when a task runs
    let scheduler: Scheduler | undefined;
    const mspAppRepo = createMspAppRepo();
    const graph = createGraphService({
      tx: transactions(db),
      repo: createGraphRepo(),
      msp: mspAppRepo,
      keyring,
      ingest,
      keys: keysRepo,
      devices: devicesRepo,
      jobs: createAgentRepo(),
      clients: clientsRepo,
      audit,
      clock,
      notifier,
      scheduler: () => scheduler!,
      egress,
      graphOptions: { sleep: opts.graphSleep },
      onSynced: afterSync,
      posture: tenantPosture,
    });
    // The MSP's one multi-tenant app and the per-client admin-consent links.
    const mspApp = createMspAppService({
      tx: transactions(db),
      repo: mspAppRepo,
      connections: createGraphRepo(),
      clients: clientsRepo,
      keyring,
      audit,
      clock,
      scheduler: () => scheduler!,
      egress,
      stepUpMinutes: config.policy.stepUpMinutes,
      notifier,
    });
    const directory = createDirectoryService({
      egress,
      tx: transactions(db),
      repo: createDirectoryRepo(),
      keyring,
      ingest,
      keys: keysRepo,
      devices: devicesRepo,
      audit,
      clock,
      notifier,
      scheduler: () => scheduler!,
      onSynced: afterSync,
    });
    // Offline break-glass bundles, recovery sheets and scheduled exports.
    const exports = createExportsService({
      tx: transactions(db),
      repo: createExportsRepo(),
      tasks: createSchedulerRepo(),
      keyring,
      audit,
      clock,
      stepUpMinutes: config.policy.stepUpMinutes,
      scheduler: () => scheduler!,
    });
    // The PSA connection, clients' PSA companies and ticket policies (issue 21).
    const psa = createPsaService({
      tx: transactions(db),
      repo: createPsaRepo(),
      keyring,
      audit,
      clock,
      egress,
      stepUpMinutes: config.policy.stepUpMinutes,
      clientDeps: opts.psaClient,
    });
    const processOwner = `${os.hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
    const psaFindings = createPsaFindings({
      tx: transactions(db),
      repo: createPsaFindingsRepo(),
      psa: psa.access,
      // Client-level findings about the client's tenant come from the graph module's posture.
      posture: tenantPosture,
      audit,
      notifier,
      clock,
      publicUrl: config.server.publicUrl,
      owner: processOwner,
    });
    // Prometheus metrics of this process (GET /metrics).
    const metrics = createMetrics({ tx: transactions(db), repo: createMetricsRepo(), poolStats: database.poolStats });
    scheduler = createScheduler({
      tx: transactions(db),
      clock,
      owner: processOwner,
      leaseSeconds: config.scale.taskLeaseSeconds,
      events: { onRun: (task, status, ms) => metrics.observeTask(task, status, ms), onLeaseLost: () => metrics.leaseLost() },
      handlers: {
        'graph-sync': async (task) => {
          const r = await graph.runSync(task.target_id!);
          if (r.status !== 'succeeded') return `failed: ${r.errorText}`;
          return `ok: ${r.newKeys} new keys, ${r.unchanged} unchanged${r.warnings ? `; warning: ${r.warnings}` : ''}`;
        },
        'intune-rotate': (task) => graph.runIntuneRotation(task.target_id!),
        // Destroys key material whose retention has passed (lifecycle): daily.
        [RETENTION_TASK_KIND]: () => lifecycle.runScheduledRetention(),
        'ad-sync': async (task) => {
          const r = await directory.runSync(task.target_id!);
          return r.status === 'succeeded' ? `ok (${r.mode}): ${r.objectsRead} objects, ${r.newKeys} new keys` : `failed: ${r.errorText}`;
        },
        [SCHEDULE_TASK_KIND]: (task) => exports.runSchedule(task.target_id!),
        // Time alone changes compliance (grace periods, exemptions expiring, stale devices): hourly.
        'compliance-evaluate': async () => {
          const r = await compliance.evaluateAll();
          // Fresh findings go to the PSA right away; a PSA problem is the ticket run's own (recorded per client).
          const tickets = await psaFindings.runAll().catch(() => []);
          return `ok: ${r.evaluated} devices in ${r.clients} clients, ${r.changed} changed, ${r.events} events; ${tickets.length} clients' PSA tickets run`;
        },
        // Findings → PSA tickets for every linked client with rules: every 15 minutes.
        'psa-finding-tickets': async () => {
          const r = await psaFindings.runAll();
          const sum = (k: 'opened' | 'updated' | 'closed') => r.reduce((n, x) => n + x[k], 0);
          const failed = r.filter((x) => x.status === 'failed').length;
          return `${failed ? 'failed' : 'ok'}: ${r.length} clients, ${sum('opened')} opened, ${sum('updated')} updated, ${sum('closed')} closed${failed ? `, ${failed} clients failed (PSA)` : ''}`;
        },
        // Notification delivery: scheduled reports, outbox routing, digests, sending with retries.
        notifications: async () => {
          const r = await notifications.runOnce();
          return `ok: ${r.routed} events routed, ${r.sent} sent, ${r.retrying} to retry, ${r.failed} failed, ${r.reports} reports queued`;
        },
        // SSO sessions are confirmed again at their provider (refresh token) or end: every 5 minutes.
        [SSO_REVALIDATE_TASK]: async () => {
          const r = await sso.revalidate();
          return `ok: ${r.checked} sessions due, ${r.confirmed} confirmed, ${r.ended} ended`;
        },
        // Internal notes of ticket-bound reveals that could not be posted right after the reveal: every minute.
        [PSA_NOTES_TASK]: async () => {
          const r = await psaTickets.deliverDue();
          return `ok: ${r.posted} notes posted, ${r.retrying} to retry, ${r.failed} given up`;
        },
        // Certificates Entra ID connections sign in with: warned 30 and 7 days ahead and once expired (daily).
        'graph-certificates': async () => `ok: ${(await mspApp.checkCertificates()).warned} warnings`,
        // The audit chain is checked daily; a break is notified (audit.chain_broken) by the audit service.
        'audit-verify': async () => {
          const r = await audit.verify(systemActor('audit-verify'));
          return r.intact ? `intact: ${r.events} events` : `broken at event ${r.firstBrokenSeq}: ${r.problem}`;
        },
      },
    });
    // Both are recurring, vault-wide tasks; a second process starting at the same moment may lose the insert race.
    for (const t of [
      { id: 'notifications', kind: 'notifications', intervalMinutes: 1, firstRunAt: clock.now() },
      { id: 'compliance-evaluate', kind: 'compliance-evaluate', intervalMinutes: 60, firstRunAt: clock.now() },
      { id: 'psa-finding-tickets', kind: 'psa-finding-tickets', intervalMinutes: 15, firstRunAt: clock.now() },
      { id: SSO_REVALIDATE_TASK, kind: SSO_REVALIDATE_TASK, intervalMinutes: 5, firstRunAt: clock.now() },
      { id: PSA_NOTES_TASK, kind: PSA_NOTES_TASK, intervalMinutes: 1, firstRunAt: clock.now() },
      { id: 'graph-certificates', kind: 'graph-certificates', intervalMinutes: 24 * 60, firstRunAt: clock.now() },
      { id: 'audit-verify', kind: 'audit-verify', intervalMinutes: 24 * 60, firstRunAt: new Date(Date.parse(clock.now()) + 3600_000).toISOString() },
    ]) {
      await db
        .transaction()
        .execute((tx) => scheduler!.ensureTask(tx, { ...t, clientId: null, targetId: null }))
        .catch(() => undefined);
    }
    // Two-person reveal: the client's policy, reveal requests, approvals; asked by the reveal path (approvalGate).
    const peopleRepo = createIdentityRepo();
    // The person behind an API token is its creator: their token is never the "second person", and
    // their PSA member is the one a ticket's assignee is compared with.
    const personOf = async (exec: Executor, actor: Actor) =>
      actor.type === 'token' ? ((await peopleRepo.findToken(exec, actor.id.replace(/^token:/, '')))?.created_by ?? actor.id) : actor.id;
    const revealApprovals = createRevealApprovals({
      tx: transactions(db),
      repo: createRevealApprovalsRepo(),
      keys: keysRepo,
      people: {
        personOf,
        accountCreatedAt: async (exec, userId) => (await peopleRepo.findUser(exec, userId))?.created_at ?? null,
      },
      audit,
      clock,
      notifier,
      stepUpMinutes: config.policy.stepUpMinutes,
      publicUrl: config.server.publicUrl,
      ticketPolicy: async (exec, clientId) => {
        const policy = (await psa.access.clientSettings(exec, clientId)).ticketPolicy;
        return { policy, psa: policy === 'off' ? null : ((await psa.connection(systemActor('reveal-dialog')))?.name ?? null) };
      },
    });
    // Ticket-bound reveal (issue 21): the client's ticket policy, checked before the reveal's
    // transaction; the internal note on the ticket goes through an outbox (psa_note_outbox).
    const psaTickets = createPsaTickets({
      tx: transactions(db),
      access: psa.access,
      notes: createPsaNotesRepo(),
      audit,
      clock,
      personOf,
      notifier,
    });
    const deviceTags = createDeviceTagsService({ tx: transactions(db), repo: createDeviceTagsRepo(), devices: devicesRepo, audit, clock });
    const keys = createKeysService({
      tx: transactions(db),
      repo: keysRepo,
      rotations: createAgentRepo(),
      keyring,
      audit,
      clock,
      guard: {
        stepUpMinutes: config.policy.stepUpMinutes,
        revealLimitPerHour: config.policy.revealLimitPerHour,
        revealsSince: (exec, actorId, since) => auditRepo.revealsSince(exec, actorId, since),
      },
      selfServiceCounts: (exec, actorId, since, successOnly) => auditRepo.selfServiceAttemptsSince(exec, actorId, since, successOnly),
      notifier,
      approvalGate: (tx, actor, key, input) => revealApprovals.gate(tx, actor, key, input),
      ticketGate: psaTickets,
      onDisclosed: async (tx, actor, key) => {
        await agent.onKeyDisclosed(tx, actor, key);
        await graph.onKeyDisclosed(tx, actor, key);
        // A revealed key is due for rotation (finding key_rotation_due) until it is replaced.
        if (key.device_id) await compliance.evaluateDevicesIn(tx, key.client_id, [key.device_id]);
      },
    });
    // Self-service recovery for end users (issue 20): the vault-wide sign-in app, each client's switch,
    // end-user sessions; a tenant maps to its client through the graph module, keys are revealed by keys.
    const graphRepoForSelfService = createGraphRepo();
    const selfService = createSelfServiceService({
      tx: transactions(db),
      repo: createSelfServiceRepo(),
      keyring,
      audit,
      clock,
      policy: config.policy,
      oidc: createOidc({ egress, clock }),
      graph: {
        clientOfTenant: (exec, tenantId) => graphRepoForSelfService.clientOfTenant(exec, tenantId),
        myDeviceIds: (clientId, accessToken) => graph.myDeviceIds(clientId, accessToken),
      },
      reserveStart: (ip) => identity.signInParts.reserveStart(ip),
      keys: () => keys,
    });
    // An import's keys change the compliance of their devices: evaluated in the import's transaction.
    const importIngest: typeof ingest = async (tx, actor, clientId, source, reports, onProgress) => {
      const r = await ingest(tx, actor, clientId, source, reports, onProgress);
      await compliance.evaluateDevicesIn(tx, clientId, r.deviceIds);
      return r;
    };
    const imports = createImportsService({ tx: transactions(db), ingest: importIngest, clients, audit });
    const reports = createReportsService({
      tx: transactions(db),
      repo: createReportsRepo(),
      clients: clientsRepo,
      clock,
      audit,
      compliance,
      posture: tenantPosture,
    });
    // Scheduled report e-mails render through the reports module.
    notifications.useReportRenderer(reports);
    // Vault-wide settings (MFA, reveal display, rotate after disclosure, branding) and first-run setup.
    const settings = createSettingsService({ tx: transactions(db), repo: createSettingsRepo(), clients: clientsRepo, audit, clock, policy: config.policy });
    const setup = createSetupService({ tx: transactions(db), settings: createSettingsRepo(), identity, audit, clock });
    const keyLookup = createKeyLookup({ tx: transactions(db), repo: keysRepo, keys });
    // "Did it unlock?" after a reveal: findings through the agent's repo, the reveal read from the audit log.
    const unlockOutcome = createUnlockOutcome({
      tx: transactions(db),
      repo: keysRepo,
      findings: createAgentRepo(),
      revealedSince: async (exec, actorId, clientId, keyRowId, since) =>
        (await auditRepo.aboutTargets(exec, clientId, [keyRowId], 500)).some(
          (e) => e.action === 'key.reveal' && e.outcome === 'success' && e.actor_id === actorId && e.occurred_at >= since,
        ),
      audit,
      clock,
      onChanged: async (tx, clientId, deviceIds) => {
        await compliance.evaluateDevicesIn(tx, clientId, deviceIds);
      },
    });
    // A client's devices with their encryption and escrow state: the clients overview and the devices table.
    const deviceTableRepo = createDeviceTableRepo();
    const deviceTable = createDeviceTableService({
      tx: transactions(db),
      repo: deviceTableRepo,
      devices: devicesRepo,
      keys: keysRepo,
      audit: createAuditRepo(),
      clock,
    });
    const clientOverview = createClientOverview({ tx: transactions(db), table: deviceTableRepo, clients: clientsRepo, clock });
    const devices = createDevicesService({ tx: transactions(db), repo: devicesRepo, keys });
    // Retention, legal hold, crypto-shred and key history.
    const lifecycle = createLifecycleService({
      tx: transactions(db),
      repo: lifecycleRepo,
      approvals,
      clients: clientsRepo,
      devices: devicesRepo,
      keys: keysRepo,
      agent: createAgentRepo(),
      graph: createGraphRepo(),
      directory: createDirectoryRepo(),
      tasks: createSchedulerRepo(),
      settings: createSettingsRepo(),
      keyring,
      audit,
      clock,
      stepUpMinutes: config.policy.stepUpMinutes,
      scheduler: () => scheduler!,
    });
    const keyHistory = createKeyHistory({ tx: transactions(db), repo: lifecycleRepo });
    // The rollout kit (agent/ and agent/examples/, served at /agent/<file>) and the agents' health.
    const agentFiles = createAgentFiles();
    const agentHealth = createAgentHealthService({
      tx: transactions(db),
      repo: createAgentHealthRepo(),
      files: agentFiles,
      policyFor: (clientId) => compliance.policyFor(clientId),
      clock,
    });

    return {
      config,
      database,
      egress,
      // Getters: a master-key rotation changes both while the process runs.
      keyring: {
        get masterKeyId() {
          return keyring.masterKeyId;
        },
        get kekVersion() {
          return keyring.kekVersion;
        },
      },
      audit,
      clients,
      keys,
      imports,
      identity,
      invitations,
      passkeys,
      sso,
      selfService,
      /** Invitations bind here to accept an invitee who signs in through a provider. */
      useSsoInvitee: (port: InviteePort) => {
        ssoInvitee = port;
      },
      devices,
      lifecycle,
      /** Two-owner approval (the same object as lifecycle.approvals). */
      approvals,
      keyHistory,
      agent,
      graph,
      mspApp,
      directory,
      exports,
      notifier,
      notifications,
      compliance,
      reports,
      settings,
      setup,
      keyLookup,
      unlockOutcome,
      deviceTable,
      clientOverview,
      agentFiles,
      agentHealth,
      revealApprovals,
      psaTickets,
      deviceTags,
      psa,
      psaFindings,
      scheduler: scheduler!,
      metrics,
      clock,
      close: async () => {
        await scheduler!.stop();
        // Notes being posted in the background finish (or fail) before the database closes.
        await psaTickets.settled();
        await seen.close();
        await database.close();
      },
    };
  } catch (e) {
    if (!opts.database) await database.close();
    throw e;
  }
}
export type Container = Awaited<ReturnType<typeof buildContainer>>;
