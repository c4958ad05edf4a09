import { lockKey } from '../../db/locks.js';
import type { Executor } from '../../db/database.js';
import type { GraphConnectionsTable, SyncRunsTable } from '../../db/schema.js';
import type { Transactions } from '../../db/transactions.js';
import type { Keyring } from '../../crypto/keyring.js';
import type { Clock } from '../../lib/clock.js';
import { newId } from '../../lib/ids.js';
import { AppError, badRequest, conflict, notFound } from '../../lib/errors.js';
import { parseKeyId } from '../../domain/key-id.js';
import { parseRecoveryPassword } from '../../domain/recovery-password.js';
import { parseVolumeType } from '../../domain/volume.js';
import { type EgressPolicy, isUnresolved } from '../../integrations/egress.js';
import { myDeviceIds } from './graph.owners.js';
import {
  createGraphClient,
  GraphError,
  type GraphClient,
  type GraphCredentials,
  type GraphDevice,
  type GraphKey,
  type GraphKeyReadAudit,
} from '../../integrations/graph-client.js';
import { clientScope, requirePermission, type Actor } from '../authz/authz.js';
import type { AuditService } from '../audit/audit.service.js';
import type { AgentRepo } from '../agent/agent.repo.js';
import { JOB_MAX_ATTEMPTS, jobExpiresAt } from '../agent/jobs.js';
import type { ClientsRepo } from '../clients/clients.repo.js';
import { requireVisibleClient } from '../clients/visible-client.js';
import type { DevicesRepo } from '../devices/devices.repo.js';
import type { KeyIngest } from '../keys/keys.ingest.js';
import type { KeysRepo } from '../keys/keys.repo.js';
import type { KeyReport } from '../keys/keys.types.js';
import type { Scheduler } from '../jobs/scheduler.js';
import { notifySyncFailed } from '../jobs/sync-failed.js';
import type { Notifier } from '../notifications/notifier.js';
import type { GraphRepo } from './graph.repo.js';
import { readTenantPosture, type TenantPostureStore } from './posture.js';
import type { MspAppRepo } from './msp-app.repo.js';
import { certificateView, consentLost, mspCredentials, newCredential, type CertificateView, type CredentialInput } from './graph.credentials.js';
import { certificateFacts } from '../../crypto/certificate.js';

export const DEFAULT_LOGIN_URL = 'https://login.microsoftonline.com';
export const DEFAULT_GRAPH_URL = 'https://graph.microsoft.com';
/** Key reads ($select=key) in flight per tenant: fast, and gentle on Graph's throttling. */
const READ_CONCURRENCY = 4;

export type ConnectionView = {
  id: string;
  clientId: string;
  tenantId: string;
  appClientId: string;
  loginUrl: string;
  graphUrl: string;
  syncIntervalMinutes: number;
  enabled: boolean;
  lastSyncAt: string | null;
  lastStatus: string | null;
  lastError: string | null;
  /** How it signs in: its own app's secret or certificate, or the MSP's one app (admin consent). */
  credentialKind: 'secret' | 'certificate' | 'msp_app';
  /** A per-client app's certificate (public facts only); null for a secret or the MSP app. */
  certificate: CertificateView | null;
  /** When a sync found admin consent withdrawn in the tenant (null when fine). */
  consentLostAt: string | null;
};

export type SyncRunView = {
  id: string;
  clientId: string;
  status: string;
  startedAt: string;
  finishedAt: string | null;
  keysListed: number;
  newKeys: number;
  newDevices: number;
  unchanged: number;
  removed: number;
  keyReads: number;
  errors: number;
  errorText: string | null;
  /** Set when every key was stored but an optional step (portal key reads) failed: which one. */
  warnings: string | null;
  durationMs: number | null;
};

type Deps = {
  tx: Transactions;
  repo: GraphRepo;
  /** The MSP's one app (its sign-in is used by connections in MSP-app mode). */
  msp: Pick<MspAppRepo, 'find'>;
  keyring: Pick<Keyring<Executor>, 'clientCipher' | 'secretCipher'>;
  ingest: KeyIngest;
  keys: Pick<KeysRepo, 'findForIngest' | 'upsertSources' | 'setState' | 'markSourcePresence'>;
  devices: Pick<DevicesRepo, 'find' | 'findByEntraIds'>;
  /** Intune rotations are device jobs: the agent module owns them. */
  jobs: Pick<AgentRepo, 'insertJob' | 'findJobById' | 'jobsOfKind' | 'updateJob' | 'hasActiveCredential'>;
  clients: Pick<ClientsRepo, 'rotatesAfterDisclosure'>;
  audit: Pick<AuditService, 'record' | 'recordNow'>;
  clock: Clock;
  scheduler: () => Scheduler;
  /** After a sync: compliance re-evaluates the client's devices (new keys, last seen, keys gone at source). */
  onSynced?: (clientId: string) => Promise<void>;
  /** sync.failed and Intune key.rotated / key.rotation_failed notifications. */
  notifier?: Notifier;
  /** Every request to Graph and its sign-in endpoint goes through it. */
  egress: EgressPolicy;
  /** Injected waits (tests use real time; the production default is setTimeout). */
  graphOptions?: { sleep?: (ms: number) => Promise<void> };
  /** Tenant posture, read after the keys at every sync (posture.ts). */
  posture?: Pick<TenantPostureStore, 'record' | 'remove'>;
};

const view = (c: GraphConnectionsTable, now: string): ConnectionView => ({
  id: c.id,
  clientId: c.client_id,
  tenantId: c.tenant_id,
  appClientId: c.app_client_id,
  loginUrl: c.login_url,
  graphUrl: c.graph_url,
  syncIntervalMinutes: c.sync_interval_minutes,
  enabled: !!c.enabled,
  lastSyncAt: c.last_sync_at,
  lastStatus: c.last_status,
  lastError: c.last_error,
  credentialKind: c.credential_kind,
  certificate: certificateView(c.certificate_pem, now),
  consentLostAt: c.consent_lost_at,
});
const runView = (r: SyncRunsTable): SyncRunView => ({
  id: r.id,
  clientId: r.client_id,
  status: r.status,
  startedAt: r.started_at,
  finishedAt: r.finished_at,
  keysListed: r.keys_listed,
  newKeys: r.new_keys,
  newDevices: r.new_devices,
  unchanged: r.unchanged,
  removed: r.removed,
  keyReads: r.key_reads,
  errors: r.errors,
  errorText: r.error_text,
  warnings: r.warnings ?? null,
  durationMs: r.duration_ms,
});
export const syncTaskId = (connectionId: string) => `graph-sync:${connectionId}`;
export const secretContext = (connectionId: string) => `graph=${connectionId}`;

export function validUrl(u: string, field: string): string {
  try {
    const url = new URL(u);
    if (url.protocol !== 'https:' && !(url.protocol === 'http:' && ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname))) throw new Error();
    return u.replace(/\/+$/, '');
  } catch {
    throw badRequest(`${field} must be an https:// URL (http:// only for localhost).`, { field });
  }
}

/** Runs fn over items with at most n in flight. */
async function pool<T>(items: T[], n: number, fn: (item: T) => Promise<void>) {
  let i = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      while (i < items.length) await fn(items[i++]!);
    }),
  );
}

/**
 * Microsoft Entra ID, one connection per client: a local, encrypted copy of the tenant's
 * BitLocker keys. A key is read with $select=key only when the vault does not hold its ID yet
 * (each read is an audited event in the tenant); keys that vanish from Entra are kept.
 */
export function createGraphService({
  tx,
  repo,
  keyring,
  ingest,
  keys,
  devices,
  jobs,
  clients,
  audit,
  clock,
  scheduler,
  egress,
  graphOptions,
  onSynced,
  notifier,
  posture,
  msp,
}: Deps) {
  const load = async (exec: Executor, actor: Actor, id: string) => {
    const c = await repo.findVisible(exec, id, clientScope(actor));
    if (!c) throw notFound(`No Graph connection with id ${id.slice(0, 60)}.`);
    return c;
  };

  /**
   * A Graph client for this connection: its own app's secret or certificate (opened from the
   * client's data key), or the MSP app's credential (the vault's `secrets` key) in its tenant.
   */
  const clientFor = async (conn: GraphConnectionsTable, onWait?: (ms: number) => void): Promise<GraphClient> => {
    let creds: GraphCredentials;
    if (conn.credential_kind === 'msp_app') {
      creds = await mspCredentials(tx.reader, keyring, await msp.find(tx.reader), conn.tenant_id);
    } else {
      const cipher = await keyring.clientCipher(tx.reader, conn.client_id);
      const opened = cipher.openSecret(secretContext(conn.id), { ciphertext: conn.secret_ciphertext, dataKeyVersion: conn.secret_data_key_version });
      creds = {
        tenantId: conn.tenant_id,
        clientId: conn.app_client_id,
        credential:
          conn.credential_kind === 'certificate'
            ? { kind: 'certificate', privateKeyPem: opened, x5tS256: certificateFacts(conn.certificate_pem!).x5tS256 }
            : { kind: 'secret', clientSecret: opened },
        loginUrl: conn.login_url,
        graphUrl: conn.graph_url,
      };
    }
    return createGraphClient(creds, { egress, userAgent: 'Keywarden/1 (BitLocker key escrow)', onWait: (ms) => onWait?.(ms), sleep: graphOptions?.sleep });
  };

  const checkEgress = async (url: string, what: string) => {
    const u = new URL(url);
    try {
      await egress.resolve(u.hostname, u.port ? Number(u.port) : u.protocol === 'https:' ? 443 : 80, 'internet', what);
    } catch (e) {
      // A name that does not resolve now (no DNS on this host yet) is checked again at every sync;
      // only an address the policy refuses stops the connection from being saved.
      if (!isUnresolved(e)) throw e;
    }
  };

  const service = {
    /**
     * Self-service recovery, at the end user's sign-in: the Entra device ids of the devices they own
     * or use, read with their own delegated token on the Graph URL of their client's connection
     * (through the egress policy). The token is used for these requests only. Empty without a connection.
     */
    async myDeviceIds(clientId: string, accessToken: string): Promise<string[]> {
      const conn = await repo.findByClient(tx.reader, clientId);
      if (!conn || !conn.enabled) return [];
      const client = createGraphClient(
        // No app credential: every request carries the person's own token.
        {
          tenantId: conn.tenant_id,
          clientId: conn.app_client_id,
          credential: { kind: 'secret', clientSecret: '' },
          loginUrl: conn.login_url,
          graphUrl: conn.graph_url,
        },
        { egress, userAgent: 'Keywarden/1 (BitLocker key escrow)', accessToken, maxRetries: 1, sleep: graphOptions?.sleep },
      );
      return myDeviceIds(client);
    },

    async createConnection(
      actor: Actor,
      input: {
        clientId: string;
        tenantId: string;
        appClientId: string;
        loginUrl?: string;
        graphUrl?: string;
        syncIntervalMinutes?: number;
      } & CredentialInput,
    ): Promise<ConnectionView & { certificatePem: string | null }> {
      // Without the client id: a client outside the actor's list is then "not found" (checked below).
      requirePermission(actor, 'integration:manage');
      const tenant = parseKeyId(input.tenantId);
      const app = parseKeyId(input.appClientId);
      if (!tenant.ok) throw badRequest('tenantId must be the tenant GUID (Entra admin centre > Overview).', { field: 'tenantId' });
      if (!app.ok) throw badRequest("appClientId must be the app registration's Application (client) ID GUID.", { field: 'appClientId' });
      // The secret, or a certificate (uploaded, or generated here: its public part is answered once
      // for upload to the app registration, the private key is sealed below).
      const credential = newCredential(input, { now: new Date(clock.now()), commonName: `Keywarden ${tenant.value}`, required: true })!;
      const interval = input.syncIntervalMinutes ?? 60;
      if (!Number.isInteger(interval) || interval < 5 || interval > 7 * 24 * 60)
        throw badRequest('syncIntervalMinutes must be from 5 to 10080.', { field: 'syncIntervalMinutes' });
      const loginUrl = validUrl(input.loginUrl ?? DEFAULT_LOGIN_URL, 'loginUrl');
      const graphUrl = validUrl(input.graphUrl ?? DEFAULT_GRAPH_URL, 'graphUrl');
      // A target the egress policy refuses (loopback, metadata, private networks) is refused now, not
      // at the first sync; the attempt is audited. Outside the transaction: it resolves names.
      const client = await requireVisibleClient(tx.reader, actor, input.clientId, 'integration:manage');
      for (const [field, url, what] of [
        ['loginUrl', loginUrl, 'the Microsoft sign-in endpoint'],
        ['graphUrl', graphUrl, 'Microsoft Graph'],
      ] as const) {
        try {
          await checkEgress(url, what);
        } catch (e) {
          if (!(e instanceof AppError)) throw e;
          await audit.recordNow(actor, {
            action: 'graph.connect',
            outcome: 'failure',
            clientId: client.id,
            targetType: 'graph_connection',
            details: { field, url, why: e.message },
          });
          throw badRequest(e.message, { field });
        }
      }
      return tx.run(async (t) => {
        const client = await requireVisibleClient(t, actor, input.clientId, 'integration:manage');
        if (await repo.findByClient(t, client.id)) {
          throw conflict(`${client.name} already has a Graph connection; change or remove it instead.`);
        }
        // One tenant belongs to one client (as for admin consent): otherwise one tenant's keys would
        // land in two clients. The per-tenant lock makes two connects at once take turns.
        await lockKey(t, 'tenant', tenant.value);
        if (await repo.findByTenant(t, tenant.value)) {
          throw conflict(`Tenant ${tenant.value} is already connected to another client: a tenant's keys belong to one client.`);
        }
        const id = newId();
        const sealed = (await keyring.clientCipher(t, client.id)).sealSecret(
          secretContext(id),
          credential.kind === 'secret' ? credential.secret : credential.cert.privateKeyPem,
        );
        const now = clock.now();
        const cert = credential.kind === 'certificate' ? credential.cert : null;
        const row: GraphConnectionsTable = {
          id,
          client_id: client.id,
          tenant_id: tenant.value,
          app_client_id: app.value,
          secret_ciphertext: sealed.ciphertext,
          secret_data_key_version: sealed.dataKeyVersion,
          login_url: loginUrl,
          graph_url: graphUrl,
          sync_interval_minutes: interval,
          enabled: 1,
          created_at: now,
          updated_at: now,
          last_sync_at: null,
          last_status: null,
          last_error: null,
          audit_cursor: null,
          credential_kind: credential.kind,
          certificate_pem: cert?.certificatePem ?? null,
          certificate_thumbprint: cert?.thumbprint ?? null,
          certificate_expires_at: cert?.notAfter ?? null,
          consent_lost_at: null,
        };
        await repo.insert(t, row);
        await scheduler().ensureTask(t, { id: syncTaskId(id), kind: 'graph-sync', clientId: client.id, targetId: id, intervalMinutes: interval });
        await audit.record(t, actor, {
          action: 'graph.connect',
          outcome: 'success',
          clientId: client.id,
          targetType: 'graph_connection',
          targetId: id,
          details: { tenantId: tenant.value, appClientId: app.value, graphUrl, credential: credential.kind, thumbprint: cert?.thumbprint ?? null },
        });
        return { ...view(row, now), certificatePem: cert?.certificatePem ?? null };
      });
    },

    async listConnections(actor: Actor): Promise<ConnectionView[]> {
      requirePermission(actor, 'device:read');
      const now = clock.now();
      return (await repo.list(tx.reader, clientScope(actor))).map((c) => view(c, now));
    },

    /** A per-client app's public certificate, to upload to its app registration (never the private key). */
    async connectionCertificate(actor: Actor, id: string): Promise<{ certificatePem: string; thumbprint: string; notAfter: string }> {
      requirePermission(actor, 'integration:manage');
      const c = await load(tx.reader, actor, id);
      if (!c.certificate_pem) throw notFound('This connection signs in with a client secret or the MSP app: it has no certificate of its own.');
      const f = certificateFacts(c.certificate_pem);
      return { certificatePem: f.certificatePem, thumbprint: f.thumbprint, notAfter: f.notAfter };
    },

    async deleteConnection(actor: Actor, id: string): Promise<void> {
      requirePermission(actor, 'integration:manage');
      await tx.run(async (t) => {
        const c = await load(t, actor, id);
        await scheduler().removeTask(t, syncTaskId(id));
        await repo.remove(t, id);
        await posture?.remove(t, c.client_id);
        await audit.record(t, actor, { action: 'graph.disconnect', outcome: 'success', clientId: c.client_id, targetType: 'graph_connection', targetId: id });
      });
    },

    async runs(actor: Actor, id: string, limit = 20): Promise<SyncRunView[]> {
      requirePermission(actor, 'device:read');
      const c = await load(tx.reader, actor, id);
      return (await repo.runsOf(tx.reader, c.id, limit)).map(runView);
    },

    /** "Test connection": which of the permissions Keywarden uses does this app have? */
    async testConnection(actor: Actor, id: string): Promise<{ ok: boolean; checks: { check: string; ok: boolean; detail: string }[] }> {
      requirePermission(actor, 'integration:manage');
      const c = await load(tx.reader, actor, id);
      const graph = await clientFor(c);
      const checks: { check: string; ok: boolean; detail: string }[] = [];
      const probe = async (check: string, fn: () => Promise<string>) => {
        try {
          checks.push({ check, ok: true, detail: await fn() });
        } catch (e) {
          const g = e as GraphError;
          checks.push({ check, ok: false, detail: g instanceof GraphError ? `${g.status} ${g.code}: ${g.message}` : 'an unexpected error stopped this check' });
        }
      };
      await probe('sign-in (client credentials)', async () => (await graph.getToken(), 'token issued'));
      let first: GraphKey | undefined;
      await probe('BitlockerKey.ReadBasic.All: list recovery keys', async () => {
        for await (const page of graph.listRecoveryKeys()) {
          first = page[0];
          break;
        }
        return first ? 'keys listed' : 'no keys in the tenant (yet)';
      });
      if (first)
        await probe(
          'BitlockerKey.Read.All: read a recovery password',
          async () => (await graph.getRecoveryKey(first!.id), 'recovery password readable (this read is audited in the tenant)'),
        );
      await probe('Device.Read.All: read devices', async () => (await graph.findDevice('00000000-0000-0000-0000-000000000000'), 'devices readable'));
      await probe(
        'DeviceManagementManagedDevices.ReadWrite.All (optional: Intune rotation)',
        async () => (await graph.findManagedDevice('00000000-0000-0000-0000-000000000000'), 'managed devices readable'),
      );
      await probe(
        'Policy.Read.All (optional: tenant posture, may end users read their keys)',
        async () => (await graph.getObject('/v1.0/policies/authorizationPolicy'), 'authorization policy readable'),
      );
      await probe('DeviceManagementConfiguration.Read.All (optional: tenant posture, Intune BitLocker policies)', async () => {
        for await (const page of graph.listPages('/v1.0/deviceManagement/deviceConfigurations'))
          return `Intune device configuration readable (${page.length} on the first page)`;
        return 'Intune device configuration readable';
      });
      return { ok: checks.filter((x) => !x.check.includes('optional')).every((x) => x.ok), checks };
    },

    /** On demand (API, CLI): runs this connection's sync now, unless it is running elsewhere. */
    async syncNow(actor: Actor, id: string): Promise<SyncRunView> {
      requirePermission(actor, 'integration:manage');
      const c = await load(tx.reader, actor, id);
      await scheduler().runNow(syncTaskId(c.id));
      const [last] = await repo.runsOf(tx.reader, c.id, 1);
      return runView(last!);
    },

    /** The scheduler's handler: one full sync of one connection. Never throws for a Graph failure. */
    async runSync(connectionId: string, onProgress?: (done: number, total: number) => void): Promise<SyncRunView> {
      const conn = await repo.find(tx.reader, connectionId);
      if (!conn) throw notFound(`No Graph connection ${connectionId}.`);
      const actor: Actor = {
        type: 'system',
        id: `system:graph:${conn.tenant_id}`,
        name: `Entra sync (${conn.tenant_id})`,
        role: 'owner',
        clients: [conn.client_id],
      };
      const started = Date.now();
      let auditImport = 'not run';
      let failure: unknown = null;
      const run: SyncRunsTable = {
        id: newId(),
        client_id: conn.client_id,
        connection_id: conn.id,
        started_at: clock.now(),
        finished_at: null,
        status: 'running',
        keys_listed: 0,
        new_keys: 0,
        new_devices: 0,
        unchanged: 0,
        removed: 0,
        key_reads: 0,
        errors: 0,
        error_text: null,
        warnings: null,
        duration_ms: null,
      };
      // Only the holder of this connection's task lease runs a sync, so a run still marked running is
      // one whose process died mid-sync (its lease ran out and this process took the task over).
      await tx.run(async (t) => {
        await repo.failRunning(t, conn.id, run.started_at, 'interrupted: the Keywarden process running this sync stopped; the next run took over');
        await repo.insertRun(t, run);
      });
      try {
        const graph = await clientFor(conn);
        // 1. Every key's metadata.
        const listed: GraphKey[] = [];
        for await (const page of graph.listRecoveryKeys()) listed.push(...page);
        run.keys_listed = listed.length;
        const byId = new Map<string, GraphKey>();
        for (const k of listed) {
          const id = parseKeyId(k.id);
          if (id.ok) byId.set(id.value, k);
          else run.errors++;
        }
        // 2. What the vault already holds (from any source): those keys are never read again.
        const ids = [...byId.keys()];
        const held = new Map<string, string>();
        for (const r of await keys.findForIngest(tx.reader, conn.client_id, ids, [])) if (r.key_id && !held.has(r.key_id)) held.set(r.key_id, r.id);
        const toRead = ids.filter((id) => !held.has(id));
        // 3. Devices the vault does not know by Entra deviceId yet.
        const entraIds = [
          ...new Set(
            toRead
              .map((id) => byId.get(id)!.deviceId)
              .filter((d): d is string => !!d)
              .map((d) => d.toLowerCase()),
          ),
        ];
        const known = new Set<string>();
        for (let i = 0; i < entraIds.length; i += 500) {
          const rows = await devices.findByEntraIds(tx.reader, conn.client_id, entraIds.slice(i, i + 500));
          rows.forEach((r) => r.entra_device_id && known.add(r.entra_device_id));
        }
        const entraDevices = new Map<string, GraphDevice | null>();
        await pool(
          entraIds.filter((d) => !known.has(d)),
          READ_CONCURRENCY,
          async (d) => {
            entraDevices.set(d, await graph.findDevice(d));
          },
        );
        // 4. Read the passwords of keys the vault does not hold (each read is audited in the tenant).
        const reports: KeyReport[] = [];
        let done = 0;
        await pool(toRead, READ_CONCURRENCY, async (id) => {
          const meta = byId.get(id)!;
          const full = await graph.getRecoveryKey(meta.id);
          run.key_reads++;
          const pw = parseRecoveryPassword(full.key ?? '');
          if (!pw.ok) {
            run.errors++;
          } else {
            const entraDevice = meta.deviceId?.toLowerCase();
            const d = entraDevice ? entraDevices.get(entraDevice) : null;
            reports.push({
              keyId: id,
              recoveryPassword: pw.value,
              device: entraDevice ? { name: d?.displayName, entraDeviceId: entraDevice } : undefined,
              volume: { volumeType: parseVolumeType(meta.volumeType) },
              createdAt: meta.createdDateTime ? new Date(meta.createdDateTime).toISOString() : null,
            });
          }
          onProgress?.(++done, toRead.length);
        });
        run.new_devices = [...entraDevices.values()].filter(Boolean).length;
        // 5. One transaction: new keys in, the Entra source on held keys, vanished keys marked.
        await tx.run(async (t) => {
          const now = clock.now();
          if (reports.length) {
            const r = await ingest(t, actor, conn.client_id, { type: 'entra', ref: conn.tenant_id }, reports);
            run.new_keys = r.imported + r.conflicts;
          }
          const heldRows = [...held.entries()];
          await keys.upsertSources(
            t,
            heldRows.map(([keyId, rowId]) => ({
              id: newId(),
              client_id: conn.client_id,
              recovery_key_id: rowId,
              source_type: 'entra',
              source_ref: conn.tenant_id,
              source_created_at: byId.get(keyId)!.createdDateTime ? new Date(byId.get(keyId)!.createdDateTime).toISOString() : null,
              first_seen_at: now,
              last_seen_at: now,
            })),
          );
          run.unchanged = heldRows.length;
          // Back in Entra: no longer removed. Gone from Entra: removed at source, key kept.
          run.removed = await keys.markSourcePresence(t, conn.client_id, { type: 'entra', ref: conn.tenant_id }, new Set(byId.keys()), now);
          await confirmRotations(t, actor, conn, reports, now);
        });
        // 6. Key reads people made in the Entra or Intune portal (with AuditLog.Read.All). Optional:
        // every key is already stored, so a failure here is a warning on a succeeded sync.
        try {
          auditImport = await importKeyReads(graph, conn);
        } catch (e) {
          auditImport = 'failed';
          run.warnings =
            e instanceof GraphError
              ? `Portal key reads were not imported: ${e.status ? `Microsoft Graph answered HTTP ${e.status} to` : 'Microsoft Graph could not be reached for'} the directory audit log (auditLogs/directoryAudits). Every key was synced.`
              : 'Portal key reads were not imported: an unexpected error stopped that step. Every key was synced.';
        }
        // 7. Tenant posture (optional): a permission not granted is "unknown" and a warning, never a failure.
        if (posture) {
          const read = await readTenantPosture(graph);
          if (read.warnings.length) run.warnings = [run.warnings, ...read.warnings].filter(Boolean).join(' ');
          await tx.run((t) => posture.record(t, actor, conn, read.posture, read.gaps));
        }
        run.status = 'succeeded';
      } catch (e) {
        failure = e;
        run.status = 'failed';
        run.errors++;
        run.error_text =
          e instanceof GraphError ? `${e.status ? `HTTP ${e.status} ` : ''}${e.code}: ${e.message}`.slice(0, 1000) : 'an unexpected error stopped the sync';
      }
      run.finished_at = clock.now();
      run.duration_ms = Date.now() - started;
      // Consent withdrawn (or the app deleted) in the tenant: the connection says so, keys stay,
      // and people are told once (not at every sync) until a sync works again.
      const lost = run.status === 'failed' && consentLost(failure, conn.credential_kind === 'msp_app');
      const lostText = `Admin consent for the Keywarden app was withdrawn in tenant ${conn.tenant_id} (or the app was deleted there); send the client a new consent link. Every key already synced stays in the vault.`;
      await tx.run(async (t) => {
        await repo.updateRun(t, run);
        if (lost) {
          if (await repo.markConsentLost(t, conn.id, run.finished_at!)) {
            await audit.record(t, actor, {
              action: 'graph.consent_lost',
              outcome: 'failure',
              clientId: conn.client_id,
              targetType: 'graph_connection',
              targetId: conn.id,
              details: { tenantId: conn.tenant_id, error: run.error_text },
            });
            await notifier?.emit(t, {
              type: 'graph.consent_lost',
              clientId: conn.client_id,
              subject: `Admin consent for the Keywarden app was withdrawn in Entra tenant ${conn.tenant_id}`,
              details: { tenantId: conn.tenant_id, error: run.error_text, action: 'Send the client a new consent link (Connections > Consent link).' },
              dedupKey: `graph.consent_lost:${conn.id}`,
              occurredAt: run.finished_at!,
            });
          }
        } else if (run.status === 'succeeded' && conn.consent_lost_at) {
          await repo.update(t, conn.id, { consent_lost_at: null, updated_at: run.finished_at! });
        }
        if (run.status === 'failed' && !lost && notifier) {
          await notifySyncFailed(t, notifier, {
            source: 'Entra ID',
            dedupKind: 'graph',
            clientId: conn.client_id,
            connectionId: conn.id,
            occurredAt: run.finished_at!,
            details: { tenantId: conn.tenant_id, error: run.error_text },
          });
        }
      });
      await tx.run((t) =>
        repo.update(t, conn.id, {
          last_sync_at: run.finished_at,
          // The connection's one-line state: a warning shows there until the next sync.
          last_status: lost ? 'consent_revoked' : run.warnings ? 'succeeded with warnings' : run.status,
          last_error: lost ? `${lostText} (${run.error_text})`.slice(0, 1000) : (run.error_text ?? run.warnings),
          updated_at: run.finished_at!,
        }),
      );
      await audit.recordNow(actor, {
        action: 'graph.sync',
        outcome: run.status === 'succeeded' ? 'success' : 'failure',
        clientId: conn.client_id,
        targetType: 'graph_connection',
        targetId: conn.id,
        details: {
          newKeys: run.new_keys,
          newDevices: run.new_devices,
          unchanged: run.unchanged,
          removed: run.removed,
          keyReads: run.key_reads,
          errors: run.errors,
          error: run.error_text,
          warnings: run.warnings,
          portalKeyReads: auditImport,
        },
      });
      if (run.status === 'succeeded') await onSynced?.(conn.client_id);
      return runView(run);
    },

    /**
     * In the reveal's transaction: a disclosed key from Entra, on a device without a Keywarden
     * agent, is rotated through Intune when the client rotates after disclosure. The Graph call
     * itself runs later, outside any transaction (the intune-rotate task).
     */
    async onKeyDisclosed(exec: Executor, actor: Actor, key: { id: string; client_id: string; device_id: string | null; key_id: string | null }): Promise<void> {
      if (!key.device_id || !key.key_id) return;
      // Most clients have no Entra connection: that answer comes first, so their reveals ask nothing else.
      const conn = await repo.findByClient(exec, key.client_id);
      if (!conn || conn.enabled !== 1) return;
      if (!(await clients.rotatesAfterDisclosure(exec, key.client_id))) return;
      if (await jobs.hasActiveCredential(exec, key.client_id, key.device_id)) return; // the agent rotates it
      const device = await devices.find(exec, key.client_id, key.device_id);
      if (!device?.entra_device_id) return;
      const now = clock.now();
      const jobId = newId();
      await jobs.insertJob(exec, {
        id: jobId,
        client_id: key.client_id,
        device_id: key.device_id,
        kind: 'intune-rotate',
        mount_point: null,
        protector_id: key.key_id,
        recovery_key_id: key.id,
        state: 'pending',
        attempts: 0,
        max_attempts: JOB_MAX_ATTEMPTS,
        new_key_id: null,
        detail: null,
        created_by: actor.id,
        created_at: now,
        expires_at: jobExpiresAt(now),
        sent_at: null,
        finished_at: null,
      });
      await scheduler().ensureTask(exec, {
        id: `intune-rotate:${jobId}`,
        kind: 'intune-rotate',
        clientId: key.client_id,
        targetId: jobId,
        intervalMinutes: null,
      });
      await audit.record(exec, actor, {
        action: 'job.create',
        outcome: 'success',
        clientId: key.client_id,
        targetType: 'job',
        targetId: jobId,
        details: { kind: 'intune-rotate', keyId: key.key_id },
      });
    },

    /** The intune-rotate task: ask Intune to rotate the device's keys; the next sync confirms it. */
    async runIntuneRotation(jobId: string): Promise<string> {
      const job = await jobs.findJobById(tx.reader, jobId);
      if (!job || job.state !== 'pending') return 'nothing to do';
      const conn = await repo.findByClient(tx.reader, job.client_id);
      const device = await devices.find(tx.reader, job.client_id, job.device_id);
      const actor: Actor = { type: 'system', id: 'system:intune', name: 'Intune rotation', role: 'owner', clients: [job.client_id] };
      const fail = async (detail: string) => {
        await tx.run(async (t) => {
          await jobs.updateJob(t, job.client_id, jobId, { state: 'failed', detail, finished_at: clock.now(), attempts: job.attempts + 1 });
          await audit.record(t, actor, {
            action: 'job.update',
            outcome: 'failure',
            clientId: job.client_id,
            targetType: 'job',
            targetId: jobId,
            details: { kind: 'intune-rotate', to: 'failed', why: detail },
          });
          await notifier?.emit(t, {
            type: 'key.rotation_failed',
            clientId: job.client_id,
            deviceId: job.device_id,
            subject: `Rotating the recovery password of ${device?.name ?? 'a device'} through Intune failed`,
            details: { device: device?.name ?? null, by: 'intune', why: detail },
            dedupKey: `key.rotation_failed:${job.id}`,
            occurredAt: clock.now(),
          });
        });
        return `failed: ${detail}`;
      };
      if (!conn || !device?.entra_device_id) return fail('no Graph connection or no Entra device id');
      try {
        const graph = await clientFor(conn);
        const managed = await graph.findManagedDevice(device.entra_device_id);
        if (!managed) return fail(`${device.name} is not an Intune-managed device`);
        await graph.rotateBitLockerKeys(managed.id);
      } catch (e) {
        return fail(e instanceof GraphError ? `${e.status} ${e.code}: ${e.message}` : 'unexpected error');
      }
      await tx.run((t) => jobs.updateJob(t, job.client_id, jobId, { state: 'sent', sent_at: clock.now(), attempts: job.attempts + 1 }));
      await audit.recordNow(actor, {
        action: 'job.update',
        outcome: 'success',
        clientId: job.client_id,
        targetType: 'job',
        targetId: jobId,
        details: { kind: 'intune-rotate', to: 'sent' },
      });
      return 'rotation requested from Intune';
    },
  };

  /**
   * Copies the tenant's "Read BitLocker key" audit events into Keywarden's audit log, so who read
   * which key directly in Entra or Intune shows next to reveals made here. Our own sync's reads
   * (made by this app) are left out. Without AuditLog.Read.All the step is skipped, not failed.
   */
  async function importKeyReads(graph: GraphClient, conn: GraphConnectionsTable): Promise<string> {
    const events: GraphKeyReadAudit[] = [];
    try {
      for await (const page of graph.listKeyReadAudits(conn.audit_cursor)) events.push(...page);
    } catch (e) {
      if (e instanceof GraphError && e.status === 403) return 'skipped: AuditLog.Read.All is not granted';
      throw e;
    }
    const fresh = events
      .filter((a) => !conn.audit_cursor || a.activityDateTime > conn.audit_cursor)
      .filter((a) => a.initiatedBy?.app?.appId?.toLowerCase() !== conn.app_client_id)
      .sort((a, b) => a.activityDateTime.localeCompare(b.activityDateTime));
    if (!fresh.length) return 'no new portal reads';
    await tx.run(async (t) => {
      for (const a of fresh) {
        const who = a.initiatedBy?.user?.userPrincipalName || a.initiatedBy?.app?.displayName || 'unknown';
        const id = parseKeyId(a.targetResources?.[0]?.displayName ?? '');
        const [key] = id.ok ? await keys.findForIngest(t, conn.client_id, [id.value], []) : [];
        const actor: Actor = {
          type: 'system',
          id: `entra:${who}`.slice(0, 200),
          name: `${who} (in Entra)`.slice(0, 200),
          role: 'auditor',
          clients: [conn.client_id],
          ip: a.initiatedBy?.user?.ipAddress ?? null,
        };
        await audit.record(t, actor, {
          action: 'entra.key_read',
          outcome: a.result === 'success' || !a.result ? 'success' : 'failure',
          clientId: conn.client_id,
          targetType: 'recovery_key',
          targetId: key?.id ?? null,
          details: { keyId: id.ok ? id.value : null, tenantId: conn.tenant_id, entraEventId: a.id, at: a.activityDateTime },
        });
      }
      const newest = fresh[fresh.length - 1]!.activityDateTime;
      await repo.update(t, conn.id, { audit_cursor: newest });
    });
    conn.audit_cursor = fresh[fresh.length - 1]!.activityDateTime;
    return `${fresh.length} portal reads imported`;
  }

  /** A sent Intune rotation is done when a sync brings a new key for the same device. */
  async function confirmRotations(exec: Executor, actor: Actor, conn: GraphConnectionsTable, reports: KeyReport[], now: string) {
    for (const job of await jobs.jobsOfKind(exec, conn.client_id, 'intune-rotate', 'sent')) {
      const device = await devices.find(exec, conn.client_id, job.device_id);
      const fresh = reports.find((r) => r.device?.entraDeviceId && r.device.entraDeviceId === device?.entra_device_id && r.keyId !== job.protector_id);
      if (!fresh) continue;
      if (job.recovery_key_id) {
        await keys.setState(exec, conn.client_id, job.recovery_key_id, 'rotated', now);
        await audit.record(exec, actor, {
          action: 'key.rotated',
          outcome: 'success',
          clientId: conn.client_id,
          targetType: 'recovery_key',
          targetId: job.recovery_key_id,
          details: { keyId: job.protector_id, by: 'intune', newKeyId: fresh.keyId },
        });
        if (notifier) {
          const name = device?.name ?? 'a device';
          await notifier.emit(exec, {
            type: 'key.rotated',
            clientId: conn.client_id,
            deviceId: job.device_id,
            subject: `The recovery password of ${name} was rotated through Intune`,
            details: { device: name, keyId: job.protector_id, newKeyId: fresh.keyId, by: 'intune' },
            occurredAt: now,
          });
        }
      }
      await jobs.updateJob(exec, conn.client_id, job.id, { state: 'succeeded', finished_at: now, new_key_id: fresh.keyId });
      await audit.record(exec, actor, {
        action: 'job.update',
        outcome: 'success',
        clientId: conn.client_id,
        targetType: 'job',
        targetId: job.id,
        details: { kind: 'intune-rotate', to: 'succeeded' },
      });
    }
  }

  return service;
}
export type GraphService = ReturnType<typeof createGraphService>;
