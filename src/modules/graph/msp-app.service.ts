import type { Executor } from '../../db/database.js';
import type { GraphConnectionsTable, GraphMspAppTable } from '../../db/schema.js';
import type { Transactions } from '../../db/transactions.js';
import type { Keyring } from '../../crypto/keyring.js';
import { newSecret, sha256Hex } from '../../crypto/tokens.js';
import { certificateFacts } from '../../crypto/certificate.js';
import type { Clock } from '../../lib/clock.js';
import { newId } from '../../lib/ids.js';
import { AppError, badRequest, notFound } from '../../lib/errors.js';
import { parseKeyId } from '../../domain/key-id.js';
import { type EgressPolicy, isUnresolved } from '../../integrations/egress.js';
import { createGraphClient, GraphError } from '../../integrations/graph-client.js';
import { requireFreshSecondFactor, requirePermission, systemActor, type Actor } from '../authz/authz.js';
import type { AuditService } from '../audit/audit.service.js';
import { lockKey } from '../../db/locks.js';
import type { Notifier } from '../notifications/notifier.js';
import { daysLeft, stageToWarn, type ExpiryStage } from '../../domain/certificate-expiry.js';
import type { ClientsRepo } from '../clients/clients.repo.js';
import { requireVisibleClient } from '../clients/visible-client.js';
import type { Scheduler } from '../jobs/scheduler.js';
import type { GraphRepo } from './graph.repo.js';
import { MSP_APP_ID, type MspAppRepo } from './msp-app.repo.js';
import { certificateView, MSP_SECRET_CONTEXT, mspCredentials, newCredential, type CertificateView, type CredentialInput } from './graph.credentials.js';
import { DEFAULT_GRAPH_URL, DEFAULT_LOGIN_URL, syncTaskId, validUrl } from './graph.service.js';

/** How long an admin-consent link works. */
export const CONSENT_LINK_DAYS = 7;
/** The path of the public callback (the redirect URI registered on the MSP app). */
export { CONSENT_CALLBACK_PATH } from './consent-path.js';

export type MspAppView = {
  appClientId: string;
  credentialKind: 'secret' | 'certificate';
  /** Write-only: the secret or private key itself is never answered. */
  hasSecret: boolean;
  hasCertificate: boolean;
  certificate: CertificateView | null;
  loginUrl: string;
  graphUrl: string;
  updatedAt: string;
  updatedBy: string;
};

export type ConsentLinkView = {
  id: string;
  clientId: string;
  expectedTenantId: string | null;
  createdBy: string;
  createdAt: string;
  expiresAt: string;
  usedAt: string | null;
  usedTenantId: string | null;
};

const MOVE_REFUSED =
  'This consent link cannot link another Microsoft 365 tenant to your organisation in Keywarden. Sign in as an administrator of your own tenant, or ask your IT provider for a consent link that names your tenant.';

/** What the public callback page says (product words, never a secret or Microsoft's text). */
export type ConsentOutcome = { ok: true; clientName: string; tenantId: string } | { ok: false; message: string };

type Deps = {
  tx: Transactions;
  repo: MspAppRepo;
  connections: Pick<GraphRepo, 'findByClient' | 'findByTenant' | 'insert' | 'update' | 'withCertificates' | 'countMspApp'>;
  clients: Pick<ClientsRepo, 'findById'>;
  keyring: Pick<Keyring<Executor>, 'secretCipher'>;
  audit: Pick<AuditService, 'record' | 'recordNow'>;
  clock: Clock;
  scheduler: () => Scheduler;
  egress: EgressPolicy;
  stepUpMinutes: number;
  /** graph.certificate_expiring notifications, written with the warning's audit event. */
  notifier?: Notifier;
};

const view = (a: GraphMspAppTable, now: string): MspAppView => ({
  appClientId: a.app_client_id,
  credentialKind: a.credential_kind,
  hasSecret: a.credential_kind === 'secret',
  hasCertificate: a.credential_kind === 'certificate',
  certificate: certificateView(a.certificate_pem, now),
  loginUrl: a.login_url,
  graphUrl: a.graph_url,
  updatedAt: a.updated_at,
  updatedBy: a.updated_by_name,
});

/**
 * The MSP's one multi-tenant Entra ID app: configured once by an owner (vault-wide, step-up), then
 * each client's administrator consents to it through a one-time link. The link's state is 32
 * random bytes, stored as its SHA-256, bound to the client that asked (and to a tenant when the MSP
 * typed one), valid for CONSENT_LINK_DAYS and spent once. The callback is public (the client's
 * admin has no Keywarden account): it links the consenting tenant to that client in MSP-app mode,
 * never a tenant another client already has.
 */
export function createMspAppService({ tx, repo, connections, clients, keyring, audit, clock, scheduler, egress, stepUpMinutes, notifier }: Deps) {
  const checkEgress = async (url: string, what: string, field: string, actor: Actor) => {
    const u = new URL(url);
    try {
      await egress.resolve(u.hostname, u.port ? Number(u.port) : u.protocol === 'https:' ? 443 : 80, 'internet', what);
    } catch (e) {
      if (isUnresolved(e)) return;
      if (!(e instanceof AppError)) throw e;
      await audit.recordNow(actor, { action: 'graph.msp_app', outcome: 'failure', targetType: 'graph_msp_app', details: { field, url, why: e.message } });
      throw badRequest(e.message, { field });
    }
  };
  const consentActor = (tenantId: string | null): Actor => ({
    ...systemActor('entra-consent'),
    name: tenantId ? `Entra admin consent (tenant ${tenantId})` : 'Entra admin consent',
  });

  const certificateActor = systemActor('certificate-check');
  const whenWords = (stage: ExpiryStage, expiresAt: string, now: string) =>
    stage === 'expired' ? `expired on ${expiresAt.slice(0, 10)}` : `expires on ${expiresAt.slice(0, 10)} (${daysLeft(expiresAt, now)} days left)`;

  return {
    /**
     * The daily certificate check: the MSP app's certificate and each client app's certificate are
     * warned about 30 and 7 days before they expire and once expired (one notification per stage and
     * certificate, audited). An expired certificate stops every sync that signs in with it.
     */
    async checkCertificates(): Promise<{ warned: number }> {
      const now = clock.now();
      let warned = 0;
      const app = await repo.find(tx.reader);
      if (app?.certificate_thumbprint && app.certificate_expires_at) {
        const stage = stageToWarn(app.certificate_thumbprint, app.certificate_expires_at, now, app.certificate_warned);
        if (stage) {
          const users = await connections.countMspApp(tx.reader);
          const when = whenWords(stage, app.certificate_expires_at, now);
          await tx.run(async (t) => {
            await repo.setCertificateWarned(t, `${app.certificate_thumbprint}:${stage}`);
            const details = { certificate: 'MSP app', thumbprint: app.certificate_thumbprint, expiresAt: app.certificate_expires_at, stage, clients: users };
            await audit.record(t, certificateActor, {
              action: 'graph.certificate_expiring',
              outcome: 'success',
              targetType: 'graph_msp_app',
              targetId: MSP_APP_ID,
              details,
            });
            await notifier?.emit(t, {
              type: 'graph.certificate_expiring',
              clientId: null,
              subject: `The certificate of the MSP's Entra ID app ${when}: ${users} client${users === 1 ? '' : 's'} sign in with it. Renew it in Settings › Connections › Entra ID app for all clients.`,
              details,
              dedupKey: `graph.certificate_expiring:${app.certificate_thumbprint}:${stage}`,
              occurredAt: now,
            });
          });
          warned += 1;
        }
      }
      for (const c of await connections.withCertificates(tx.reader)) {
        const stage = stageToWarn(c.certificate_thumbprint ?? '', c.certificate_expires_at!, now, c.certificate_warned);
        if (!stage || !c.certificate_thumbprint) continue;
        const client = await clients.findById(tx.reader, c.client_id, null);
        const when = whenWords(stage, c.certificate_expires_at!, now);
        await tx.run(async (t) => {
          await connections.update(t, c.id, { certificate_warned: `${c.certificate_thumbprint}:${stage}` });
          const details = {
            certificate: 'client app',
            tenantId: c.tenant_id,
            thumbprint: c.certificate_thumbprint,
            expiresAt: c.certificate_expires_at,
            stage,
          };
          await audit.record(t, certificateActor, {
            action: 'graph.certificate_expiring',
            outcome: 'success',
            clientId: c.client_id,
            targetType: 'graph_connection',
            targetId: c.id,
            details,
          });
          await notifier?.emit(t, {
            type: 'graph.certificate_expiring',
            clientId: c.client_id,
            subject: `The certificate ${client?.name ?? 'a client'}'s Entra ID connection signs in with ${when}. Generate or upload a new one on the client's connection.`,
            details,
            dedupKey: `graph.certificate_expiring:${c.certificate_thumbprint}:${stage}`,
            occurredAt: now,
          });
        });
        warned += 1;
      }
      return { warned };
    },

    async get(actor: Actor): Promise<MspAppView | null> {
      requirePermission(actor, 'integration:manage');
      const a = await repo.find(tx.reader);
      return a ? view(a, clock.now()) : null;
    },

    /**
     * Sets the MSP app (owners with "all clients", fresh second factor). The credential is required
     * the first time; later it is replaced only when one is sent. A generated certificate's public
     * part is answered once (and can be downloaded again); its private key is sealed at once.
     */
    async set(
      actor: Actor,
      input: { appClientId: string; loginUrl?: string; graphUrl?: string } & CredentialInput,
    ): Promise<MspAppView & { certificatePem: string | null }> {
      requirePermission(actor, 'settings:manage');
      requireFreshSecondFactor(actor, 'change security settings', clock.now(), stepUpMinutes);
      const app = parseKeyId(input.appClientId);
      if (!app.ok) throw badRequest("appClientId must be the MSP app registration's Application (client) ID GUID.", { field: 'appClientId' });
      const existing = await repo.find(tx.reader);
      const loginUrl = validUrl(input.loginUrl ?? existing?.login_url ?? DEFAULT_LOGIN_URL, 'loginUrl');
      const graphUrl = validUrl(input.graphUrl ?? existing?.graph_url ?? DEFAULT_GRAPH_URL, 'graphUrl');
      await checkEgress(loginUrl, 'the Microsoft sign-in endpoint', 'loginUrl', actor);
      await checkEgress(graphUrl, 'Microsoft Graph', 'graphUrl', actor);
      const credential = newCredential(input, { now: new Date(clock.now()), commonName: 'Keywarden MSP app', required: !existing });
      return tx.run(async (t) => {
        const now = clock.now();
        const cert = credential?.kind === 'certificate' ? credential.cert : null;
        const row: GraphMspAppTable = {
          id: MSP_APP_ID,
          app_client_id: app.value,
          credential_kind: credential?.kind ?? existing!.credential_kind,
          secret_ciphertext: credential
            ? (await keyring.secretCipher(t)).seal(MSP_SECRET_CONTEXT, credential.kind === 'secret' ? credential.secret : credential.cert.privateKeyPem)
            : existing!.secret_ciphertext,
          certificate_pem: credential ? (cert?.certificatePem ?? null) : existing!.certificate_pem,
          certificate_thumbprint: credential ? (cert?.thumbprint ?? null) : existing!.certificate_thumbprint,
          certificate_expires_at: credential ? (cert?.notAfter ?? null) : existing!.certificate_expires_at,
          login_url: loginUrl,
          graph_url: graphUrl,
          created_at: existing?.created_at ?? now,
          updated_at: now,
          updated_by_name: actor.name.slice(0, 200),
        };
        await repo.upsert(t, row);
        await audit.record(t, actor, {
          action: 'graph.msp_app',
          outcome: 'success',
          targetType: 'graph_msp_app',
          targetId: MSP_APP_ID,
          details: {
            appClientId: app.value,
            credential: row.credential_kind,
            credentialChanged: !!credential,
            thumbprint: row.certificate_thumbprint,
            loginUrl,
            graphUrl,
          },
        });
        return { ...view(row, now), certificatePem: cert?.certificatePem ?? null };
      });
    },

    /** The MSP app's public certificate, to upload to the app registration (never the private key). */
    async certificate(actor: Actor): Promise<{ certificatePem: string; thumbprint: string; notAfter: string }> {
      requirePermission(actor, 'integration:manage');
      const a = await repo.find(tx.reader);
      if (!a?.certificate_pem) throw notFound('The MSP app has no certificate (it is not configured, or it signs in with a client secret).');
      const f = certificateFacts(a.certificate_pem);
      return { certificatePem: f.certificatePem, thumbprint: f.thumbprint, notAfter: f.notAfter };
    },

    /**
     * A one-time admin-consent link for one client, to send to that client's administrator.
     * `redirectUri` is Keywarden's public callback (registered on the MSP app).
     */
    async createConsentLink(
      actor: Actor,
      input: { clientId: string; tenantId?: string | null },
      redirectUri: string,
    ): Promise<{ url: string; expiresAt: string; link: ConsentLinkView }> {
      requirePermission(actor, 'integration:manage');
      let expected: string | null = null;
      if (input.tenantId) {
        const t = parseKeyId(input.tenantId);
        if (!t.ok) throw badRequest("tenantId must be the client's tenant GUID (Entra admin centre > Overview), or left out.", { field: 'tenantId' });
        expected = t.value;
      }
      return tx.run(async (t) => {
        const client = await requireVisibleClient(t, actor, input.clientId, 'integration:manage');
        const app = await repo.find(t);
        if (!app)
          throw badRequest('Set up the MSP app first (Settings › Connections › Entra ID app for all clients): its application ID and credential.', {
            field: 'clientId',
          });
        if (expected) {
          const other = await connections.findByTenant(t, expected);
          if (other && other.client_id !== client.id) throw badRequest(`Tenant ${expected} is already linked to another client.`, { field: 'tenantId' });
        }
        // A client already linked to a tenant: its link is for that tenant (re-consent) unless the
        // MSP names another one (the callback refuses any other tenant for it).
        expected ??= (await connections.findByClient(t, client.id))?.tenant_id ?? null;
        const state = newSecret();
        const now = clock.now();
        const row = {
          id: newId(),
          client_id: client.id,
          state_hash: sha256Hex(state),
          expected_tenant_id: expected,
          created_by_name: actor.name.slice(0, 200),
          created_at: now,
          expires_at: new Date(Date.parse(now) + CONSENT_LINK_DAYS * 86_400_000).toISOString(),
          used_at: null,
          used_tenant_id: null,
        };
        await repo.insertState(t, row);
        await audit.record(t, actor, {
          action: 'graph.consent_link',
          outcome: 'success',
          clientId: client.id,
          targetType: 'graph_consent_link',
          targetId: row.id,
          details: { expectedTenantId: expected, expiresAt: row.expires_at },
        });
        const graphOrigin = new URL(app.graph_url).origin;
        const url = new URL(`${app.login_url}/${expected ?? 'organizations'}/v2.0/adminconsent`);
        url.searchParams.set('client_id', app.app_client_id);
        url.searchParams.set('scope', `${graphOrigin.startsWith('https://') ? graphOrigin : DEFAULT_GRAPH_URL}/.default`);
        url.searchParams.set('redirect_uri', redirectUri);
        url.searchParams.set('state', state);
        return { url: url.href, expiresAt: row.expires_at, link: linkView(row) };
      });
    },

    async consentLinks(actor: Actor, clientId: string): Promise<ConsentLinkView[]> {
      requirePermission(actor, 'integration:manage');
      const client = await requireVisibleClient(tx.reader, actor, clientId, 'integration:manage');
      return (await repo.statesOf(tx.reader, client.id, 20)).map(linkView);
    },

    /**
     * The admin-consent redirect (public). Checks the state (known, unused, unexpired), what Entra
     * answered, the tenant (as expected, not another client's), that the app can sign in there
     * now, then links the tenant to the client. Every refusal is audited; nothing is linked.
     */
    async consentCallback(query: Record<string, string | undefined>, ctx: { ip: string | null; userAgent: string | null }): Promise<ConsentOutcome> {
      const refuse = async (why: string, message: string, extra: { clientId?: string | null; tenantId?: string | null } = {}): Promise<ConsentOutcome> => {
        await audit.recordNow(
          { ...consentActor(extra.tenantId ?? null), ip: ctx.ip, userAgent: ctx.userAgent },
          {
            action: 'graph.consent',
            outcome: 'failure',
            clientId: extra.clientId ?? null,
            targetType: 'graph_connection',
            details: { why, tenantId: extra.tenantId ?? null },
          },
        );
        return { ok: false, message };
      };
      const state = query.state ?? '';
      if (!/^[A-Za-z0-9_-]{20,100}$/.test(state))
        return refuse('no or malformed state', 'This consent link is not valid. Ask your IT provider for a new consent link.');
      const link = await repo.findState(tx.reader, sha256Hex(state));
      if (!link) return refuse('unknown state', 'This consent link is not valid. Ask your IT provider for a new consent link.');
      const at = { clientId: link.client_id };
      if (link.used_at) return refuse('state already used', 'This consent link was already used. Ask your IT provider for a new consent link.', at);
      if (link.expires_at <= clock.now()) return refuse('state expired', 'This consent link has expired. Ask your IT provider for a new consent link.', at);
      if (query.error) {
        const declined = query.error === 'access_denied' || query.error === 'consent_required';
        return refuse(
          `Entra answered ${query.error.slice(0, 60)}`,
          declined
            ? 'Consent was not given, so nothing was linked. You can open the same link again to consent.'
            : 'Microsoft did not complete the consent, so nothing was linked. You can open the same link again.',
          at,
        );
      }
      const tenant = parseKeyId(query.tenant ?? '');
      if (query.admin_consent?.toLowerCase() !== 'true' || !tenant.ok)
        return refuse('no admin consent or tenant in the answer', 'Microsoft did not confirm an administrator consent, so nothing was linked.', at);
      const tenantId = tenant.value;
      const scoped = { ...at, tenantId };
      if (link.expected_tenant_id && link.expected_tenant_id !== tenantId)
        return refuse(
          `consent from tenant ${tenantId}, link is for ${link.expected_tenant_id}`,
          'This consent link is for another Microsoft 365 tenant: sign in as an administrator of the tenant your IT provider named.',
          scoped,
        );
      const taken = await connections.findByTenant(tx.reader, tenantId);
      if (taken && taken.client_id !== link.client_id)
        return refuse('tenant already linked to another client', 'This Microsoft 365 tenant is already linked in Keywarden. Contact your IT provider.', scoped);
      // A client already linked to a tenant keeps it: a link that names no tenant cannot move the
      // client to whichever tenant answers (a forwarded or leaked link, any admin of any tenant).
      // Moving a client to another tenant takes a link that names the new one.
      const current = await connections.findByClient(tx.reader, link.client_id);
      if (current && current.tenant_id !== tenantId && !link.expected_tenant_id)
        return refuse(`consent from tenant ${tenantId}, the client is linked to ${current.tenant_id} and the link names no tenant`, MOVE_REFUSED, scoped);
      const app = await repo.find(tx.reader);
      if (!app) return refuse('MSP app not configured', 'Keywarden is not ready for this consent yet. Contact your IT provider.', scoped);
      // Proof that the consent exists: the app signs in to that tenant now (no Graph data read).
      try {
        const creds = await mspCredentials(tx.reader, keyring, app, tenantId);
        await createGraphClient(creds, { egress, userAgent: 'Keywarden/1 (BitLocker key escrow)', maxRetries: 0 }).getToken();
      } catch (e) {
        const why = e instanceof GraphError ? `${e.status} ${e.code}${e.aadsts ? ` AADSTS${e.aadsts}` : ''}` : 'unexpected error';
        return refuse(
          `sign-in to the tenant failed after consent: ${why}`,
          'Keywarden could not sign in to your tenant with the consented app yet. Wait a minute and open the same link again.',
          scoped,
        );
      }
      return tx.run(async (t): Promise<ConsentOutcome> => {
        // One tenant, one client: consents of the same tenant (for two clients' links) take turns.
        await lockKey(t, 'tenant', tenantId);
        const now = clock.now();
        // Checked again inside the transaction: two callbacks at once link once.
        const again = await connections.findByTenant(t, tenantId);
        if (again && again.client_id !== link.client_id)
          return { ok: false, message: 'This Microsoft 365 tenant is already linked in Keywarden. Contact your IT provider.' };
        const existing = await connections.findByClient(t, link.client_id);
        if (existing && existing.tenant_id !== tenantId && !link.expected_tenant_id) return { ok: false, message: MOVE_REFUSED };
        if (!(await repo.useState(t, link.id, now, tenantId)))
          return { ok: false, message: 'This consent link was already used. Ask your IT provider for a new consent link.' };
        const client = await clients.findById(t, link.client_id, null);
        if (!client) return { ok: false, message: 'The client this link was made for no longer exists in Keywarden.' };
        const actor = { ...consentActor(tenantId), ip: ctx.ip, userAgent: ctx.userAgent };
        let connectionId: string;
        const msp = {
          tenant_id: tenantId,
          app_client_id: app.app_client_id,
          credential_kind: 'msp_app' as const,
          secret_ciphertext: '',
          secret_data_key_version: 0,
          certificate_pem: null,
          certificate_thumbprint: null,
          certificate_expires_at: null,
          login_url: app.login_url,
          graph_url: app.graph_url,
          consent_lost_at: null,
          enabled: 1,
          last_status: 'consented',
          last_error: null,
          updated_at: now,
        };
        if (existing) {
          connectionId = existing.id;
          // A different tenant means a fresh start for the audit import; the same tenant keeps its cursor.
          await connections.update(t, existing.id, { ...msp, ...(existing.tenant_id !== tenantId ? { audit_cursor: null } : {}) });
        } else {
          connectionId = newId();
          const row: GraphConnectionsTable = {
            id: connectionId,
            client_id: link.client_id,
            sync_interval_minutes: 60,
            created_at: now,
            last_sync_at: null,
            audit_cursor: null,
            ...msp,
          };
          await connections.insert(t, row);
          await scheduler().ensureTask(t, {
            id: syncTaskId(connectionId),
            kind: 'graph-sync',
            clientId: link.client_id,
            targetId: connectionId,
            intervalMinutes: 60,
          });
        }
        await audit.record(t, actor, {
          action: 'graph.consent',
          outcome: 'success',
          clientId: link.client_id,
          targetType: 'graph_connection',
          targetId: connectionId,
          details: { tenantId, appClientId: app.app_client_id, linkId: link.id, replaced: existing ? existing.credential_kind : null },
        });
        return { ok: true, clientName: client.name, tenantId };
      });
    },
  };
}
export type MspAppService = ReturnType<typeof createMspAppService>;

const linkView = (r: {
  id: string;
  client_id: string;
  expected_tenant_id: string | null;
  created_by_name: string;
  created_at: string;
  expires_at: string;
  used_at: string | null;
  used_tenant_id: string | null;
}): ConsentLinkView => ({
  id: r.id,
  clientId: r.client_id,
  expectedTenantId: r.expected_tenant_id,
  createdBy: r.created_by_name,
  createdAt: r.created_at,
  expiresAt: r.expires_at,
  usedAt: r.used_at,
  usedTenantId: r.used_tenant_id,
});
