import * as oidc from 'openid-client';
import type { Executor } from '../../db/database.js';
import type { Transactions } from '../../db/transactions.js';
import type { SelfServiceAppTable } from '../../db/schema.js';
import type { Policy } from '../../config.js';
import type { Keyring } from '../../crypto/keyring.js';
import { newSecret, sameHash, sha256Hex } from '../../crypto/tokens.js';
import type { Clock } from '../../lib/clock.js';
import { newId } from '../../lib/ids.js';
import { badRequest, forbidden } from '../../lib/errors.js';
import { clientScope, requireFreshSecondFactor, requirePermission, type Actor } from '../authz/authz.js';
import type { AuditService } from '../audit/audit.service.js';
import { requireVisibleClient } from '../clients/visible-client.js';
import type { KeysService } from '../keys/keys.service.js';
import type { RevealedKey } from '../keys/keys.types.js';
import { SsoRefusal, type Oidc, type ProviderConnection } from '../sso/sso.oidc.js';
import { APP_ROW, type SelfServiceRepo, type SelfServiceSession } from './self-service.repo.js';

/** How long a started sign-in may take at Microsoft. */
const STATE_MINUTES = 10;
/** An end user's session: long enough to read a key off a phone, no longer. */
export const SESSION_MINUTES = 15;
/** Per end user: key IDs tried per hour, keys revealed per day. */
export const LIMITS = { attemptsPerHour: 5, revealsPerDay: 3 } as const;
/**
 * `User.Read` is the delegated Graph permission for `/me/ownedDevices` and `/me/registeredDevices`
 * (Graph supports no application permission for them): Entra issues a Graph access token in the
 * same code exchange. It is used once at the callback and dropped.
 */
const SCOPES = 'openid profile User.Read';
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/**
 * The `amr` values with which Microsoft Entra ID says a sign-in used more than one factor: `mfa`
 * (and `ngcmfa`, its equivalent when Windows Hello or a passkey is set up; `fido`, a FIDO2 key,
 * which Entra always asks to verify its user). A single factor is not enough for a recovery key,
 * whatever it is: `otp` alone is a passcode sent by email or text (a guest's email one-time
 * passcode); `pwd`, `rsa`, `wia` and `wiaormfa` do not prove a second factor either. `amr` is an array (OpenID Connect Core); anything else is no proof.
 */
const ENTRA_MFA_AMR: readonly string[] = ['mfa', 'ngcmfa', 'fido'];
export const entraShowsMfa = (claims: Record<string, unknown>): boolean =>
  Array.isArray(claims.amr) && claims.amr.some((a) => typeof a === 'string' && ENTRA_MFA_AMR.includes(a));

export type SelfServiceAppView = {
  issuer: string;
  clientId: string;
  /** The client secret is write-only. */
  hasSecret: boolean;
  /** 'secret' today; the MSP app's certificate credential may be used later (credential_kind). */
  credential: 'secret' | 'certificate';
  enabled: boolean;
  updatedAt: string;
} | null;

export type SelfServicePrincipal = { actor: Actor; session: SelfServiceSession };
export type SelfServiceDevice = { id: string; name: string; why: 'owner' | 'primary user' };

/** The Entra device ids kept with a session; null when Graph could not be read at sign-in. */
export const entraIdsOf = (s: SelfServiceSession): string[] | null => {
  if (s.entra_device_ids === null) return null;
  try {
    const v = JSON.parse(s.entra_device_ids) as unknown;
    return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : null;
  } catch {
    return null;
  }
};

/**
 * The issuer an ID token of tenant `tid` must carry. Entra's multi-tenant discovery document
 * (`/organizations/v2.0`) names a template, `https://login.microsoftonline.com/{tenantid}/v2.0`:
 * the token's `iss` must be that template with its own `tid`. A plain issuer is compared as is.
 */
export function expectedIssuer(discovered: string, tid: string): string {
  return discovered.includes('{tenantid}') ? discovered.replace('{tenantid}', tid) : discovered;
}

type Deps = {
  tx: Transactions;
  repo: SelfServiceRepo;
  keyring: Pick<Keyring<Executor>, 'secretCipher'>;
  audit: Pick<AuditService, 'record' | 'recordNow'>;
  clock: Clock;
  policy: Policy;
  oidc: Oidc;
  /** graph module: which client a tenant is linked to; the Entra device ids of a user's devices (live). */
  graph: {
    clientOfTenant(exec: Executor, tenantId: string): Promise<string | null>;
    myDeviceIds(clientId: string, accessToken: string): Promise<string[]>;
  };
  /** identity module: public sign-in starts are throttled per address (reserveStart). */
  reserveStart: (ip: string | null) => Promise<{ ok: true } | { ok: false; wait: number; message: string }>;
  keys: () => Pick<KeysService, 'revealOwnKey'>;
  log?: (problem: string) => void;
};

const addMinutes = (iso: string, minutes: number) => new Date(Date.parse(iso) + minutes * 60_000).toISOString();
const secretContext = () => 'self-service-app';
const stateContext = (id: string) => `self-service-state=${id}`;
const isLoopback = (u: URL) => ['127.0.0.1', 'localhost', '[::1]'].includes(u.hostname);

export function createSelfServiceService(deps: Deps) {
  const { tx: transactions, repo, keyring, audit, clock, policy } = deps;
  const db = transactions.reader;

  const view = (a: SelfServiceAppTable | undefined): SelfServiceAppView =>
    a
      ? {
          issuer: a.issuer,
          clientId: a.client_id,
          hasSecret: !!a.client_secret,
          credential: a.credential_kind === 'certificate' ? 'certificate' : 'secret',
          enabled: !!a.enabled,
          updatedAt: a.updated_at,
        }
      : null;

  /**
   * The app as an OpenID connection. The seam for the MSP app's certificate: today the secret is
   * opened here; a certificate credential (credential_kind 'certificate') would sign a client
   * assertion instead, and openid-client takes either as its client authentication.
   */
  const connection = async (exec: Executor, a: SelfServiceAppTable): Promise<ProviderConnection> => ({
    id: 'self-service',
    name: 'Microsoft (self-service sign-in)',
    issuer: a.issuer,
    clientId: a.client_id,
    clientSecret: a.client_secret ? (await keyring.secretCipher(exec)).open(secretContext(), a.client_secret) : null,
    version: a.updated_at,
  });

  function validateIssuer(raw: string): string {
    let u: URL;
    try {
      u = new URL(raw.trim());
    } catch {
      throw badRequest(`"${raw.slice(0, 100)}" is not a URL.`, { field: 'issuer' });
    }
    const text = u.href.replace(/\/$/, '');
    if (/^https:\/\/login\.microsoftonline\.com\/(organizations|common)\/v2\.0$/i.test(text)) return text.replace(/\/common\//i, '/organizations/');
    // A lab provider on this machine (tests, a demo); the egress policy still has to allow it.
    if (u.protocol === 'http:' && isLoopback(u) && !u.search && !u.hash && !u.username) return text;
    throw badRequest('The self-service sign-in app is a multi-tenant Entra ID app: its issuer is https://login.microsoftonline.com/organizations/v2.0.', {
      field: 'issuer',
    });
  }

  const endUser = (s: SelfServiceSession, ctx: { ip: string | null; userAgent: string | null }): Actor => ({
    type: 'end-user',
    id: `end-user:${s.tenant_id}:${s.object_id}`,
    name: s.upn,
    role: 'client-viewer',
    clients: [s.client_id],
    // No console permission at all: an end user reaches only the self-service routes.
    permissions: [],
    revealClients: [],
    ip: ctx.ip,
    userAgent: ctx.userAgent,
  });

  /**
   * The devices of a client that this end user owns or primarily uses: the Entra device ids Graph
   * named at sign-in (kept with the 15-minute session), then Keywarden's primary user.
   */
  async function devicesOf(s: SelfServiceSession): Promise<SelfServiceDevice[]> {
    const entra = entraIdsOf(s) ?? [];
    const rows = await repo.userDevices(db, s.client_id, entra, s.upn);
    const set = new Set(entra);
    return rows.map((r) => ({ id: r.id, name: r.name, why: r.entra_device_id && set.has(r.entra_device_id.toLowerCase()) ? 'owner' : 'primary user' }));
  }

  return {
    // ---------------------------------------------------------------- the owner's app settings
    async getApp(actor: Actor): Promise<SelfServiceAppView> {
      requirePermission(actor, 'settings:manage');
      return view(await repo.findApp(db));
    },

    async saveApp(actor: Actor, input: { issuer?: string; clientId?: string; clientSecret?: string | null; enabled?: boolean }): Promise<SelfServiceAppView> {
      requirePermission(actor, 'settings:manage');
      requireFreshSecondFactor(actor, 'change security settings', clock.now(), policy.stepUpMinutes);
      return transactions.run(async (tx) => {
        const old = await repo.findApp(tx);
        const issuer = input.issuer !== undefined ? validateIssuer(input.issuer) : old?.issuer;
        const clientId = input.clientId?.trim() ?? old?.client_id;
        if (!issuer) throw badRequest('The self-service sign-in app needs its issuer.', { field: 'issuer' });
        if (!clientId || (!GUID.test(clientId) && !issuer.startsWith('http://')))
          throw badRequest('The application (client) id of the Entra ID app is a GUID.', { field: 'clientId' });
        let secret = old?.client_secret ?? null;
        let secretChange: 'replaced' | 'removed' | null = null;
        if (input.clientSecret !== undefined) {
          secret = input.clientSecret ? (await keyring.secretCipher(tx)).seal(secretContext(), input.clientSecret) : null;
          secretChange = input.clientSecret ? 'replaced' : 'removed';
        }
        const row: SelfServiceAppTable = {
          id: APP_ROW,
          issuer,
          client_id: clientId,
          client_secret: secret,
          credential_kind: old?.credential_kind ?? 'secret',
          enabled: (input.enabled ?? !!old?.enabled) ? 1 : 0,
          updated_at: clock.now(),
        };
        await repo.saveApp(tx, row);
        deps.oidc.forget('self-service');
        await audit.record(tx, actor, {
          action: 'self_service.app',
          outcome: 'success',
          details: { issuer, clientId, enabled: !!row.enabled, ...(secretChange ? { secret: secretChange } : {}) },
        });
        return view(row);
      });
    },

    // ---------------------------------------------------------------- a client's switch
    /** Which of the actor's clients have self-service on (the settings page's list). */
    async enabledClients(actor: Actor): Promise<{ clients: string[] }> {
      requirePermission(actor, 'settings:manage');
      return { clients: await repo.enabledClients(db, clientScope(actor)) };
    },

    async clientSetting(actor: Actor, clientId: string): Promise<{ enabled: boolean }> {
      const c = await requireVisibleClient(db, actor, clientId, 'client:read');
      return { enabled: await repo.clientEnabled(db, c.id) };
    },

    async setClient(actor: Actor, clientId: string, enabled: boolean): Promise<{ enabled: boolean }> {
      return transactions.run(async (tx) => {
        const c = await requireVisibleClient(tx, actor, clientId, 'client:manage');
        const was = await repo.clientEnabled(tx, c.id);
        await repo.setClient(tx, c.id, enabled, clock.now(), actor.name);
        await audit.record(tx, actor, {
          action: 'self_service.client',
          outcome: 'success',
          clientId: c.id,
          targetType: 'client',
          targetId: c.id,
          details: { client: c.name, enabled, was },
        });
        return { enabled };
      });
    },

    // ---------------------------------------------------------------- the end user's sign-in
    /** Starts an end user's sign-in at Microsoft: a single-use state bound to this browser. */
    async start(ctx: { redirectUri: string; ip: string | null }): Promise<{ url: string; browserToken: string }> {
      const a = await repo.findApp(db);
      if (!a || !a.enabled) throw new SsoRefusal('not configured', 'Self-service recovery is not set up on this Keywarden.');
      // Anyone may start: each start stores a row, so an address may start only so many (like console sign-ins).
      const started = await deps.reserveStart(ctx.ip);
      if (!started.ok) throw new SsoRefusal('too many starts', started.message);
      const config = await deps.oidc.configFor(await connection(db, a));
      const state = oidc.randomState();
      const nonce = oidc.randomNonce();
      const verifier = oidc.randomPKCECodeVerifier();
      const browserToken = newSecret();
      const id = newId();
      const now = clock.now();
      await transactions.run(async (tx) => {
        await repo.deleteStatesBefore(tx, now);
        await repo.insertState(tx, {
          id,
          state_hash: sha256Hex(state),
          browser_hash: sha256Hex(browserToken),
          sealed: (await keyring.secretCipher(tx)).seal(stateContext(id), JSON.stringify({ nonce, verifier, redirectUri: ctx.redirectUri })),
          created_at: now,
          expires_at: addMinutes(now, STATE_MINUTES),
          used_at: null,
        });
      });
      const url = deps.oidc.buildAuthorizationUrl(config, {
        redirect_uri: ctx.redirectUri,
        scope: SCOPES,
        state,
        nonce,
        code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
      });
      return { url: url.href, browserToken };
    },

    /**
     * Microsoft's answer: the state taken once, in the browser that started it; openid-client checks
     * the code exchange, signature, audience, nonce, times and the issuer (for the multi-tenant
     * app, the template with the token's tid); then here: the issuer rule again, tid a tenant linked
     * to a client with self-service on, a multi-factor sign-in (amr), oid and UPN present.
     */
    async callback(
      query: Record<string, string>,
      browserToken: string | undefined,
      ctx: { ip: string | null; userAgent: string | null },
    ): Promise<{ sessionToken: string; csrfToken: string }> {
      const now = clock.now();
      const anon: Actor = {
        type: 'end-user',
        id: 'end-user:unknown',
        name: 'end user (self-service)',
        role: 'client-viewer',
        clients: [],
        permissions: [],
        ...ctx,
      };
      const refuse = async (reason: string, message: string, who?: { upn?: string; tenantId?: string; clientId?: string | null }): Promise<never> => {
        const actor: Actor = who?.upn ? { ...anon, id: `end-user:${who.tenantId}:${who.upn}`.slice(0, 300), name: who.upn.slice(0, 200) } : anon;
        await audit.recordNow(actor, {
          action: 'self_service.sign_in',
          outcome: 'failure',
          clientId: who?.clientId ?? null,
          details: { reason, ...(who?.upn ? { upn: who.upn } : {}), ...(who?.tenantId ? { tenantId: who.tenantId } : {}) },
        });
        throw new SsoRefusal(reason, message);
      };
      const state = typeof query.state === 'string' ? query.state.slice(0, 500) : '';
      if (!state) return refuse('no state', 'The sign-in answer is incomplete: start again.');
      const row = await repo.takeState(db, sha256Hex(state), now);
      if (!row) return refuse('state unknown or used', 'This sign-in answer was already used or is unknown: start again.');
      if (Date.parse(row.expires_at) <= Date.parse(now)) return refuse('state expired', 'The sign-in took too long: start again.');
      if (!browserToken || !sameHash(row.browser_hash, sha256Hex(browserToken)))
        return refuse('other browser', 'This sign-in was started in another browser: start again here.');
      const a = await repo.findApp(db);
      if (!a || !a.enabled) return refuse('not configured', 'Self-service recovery is not set up on this Keywarden.');
      const sealed = JSON.parse((await keyring.secretCipher(db)).open(stateContext(row.id), row.sealed)) as {
        nonce: string;
        verifier: string;
        redirectUri: string;
      };
      const callbackUrl = new URL(sealed.redirectUri);
      for (const [k, v] of Object.entries(query)) if (typeof v === 'string') callbackUrl.searchParams.set(k, v.slice(0, 4000));
      let claims: Record<string, unknown>;
      let discovered: string;
      // The person's delegated Graph token (User.Read): used below for /me's devices, then dropped.
      let accessToken: string | null | undefined;
      try {
        const config = await deps.oidc.configFor(await connection(db, a));
        discovered = config.serverMetadata().issuer;
        ({ claims, accessToken } = await deps.oidc.exchange(
          config,
          callbackUrl,
          { state, nonce: sealed.nonce, verifier: sealed.verifier },
          { accessToken: true },
        ));
      } catch (e) {
        const r = e instanceof SsoRefusal ? e : new SsoRefusal('provider unreachable', 'Microsoft could not be reached to finish the sign-in.');
        return refuse(r.reason, r.message);
      }
      const tid = typeof claims.tid === 'string' ? claims.tid.toLowerCase() : '';
      const oid = typeof claims.oid === 'string' ? claims.oid.toLowerCase() : '';
      const upn = typeof claims.preferred_username === 'string' ? claims.preferred_username.trim().slice(0, 254) : '';
      if (!GUID.test(tid) || !GUID.test(oid) || !upn) return refuse('not a work account', 'Sign in with your work account (Microsoft Entra ID).');
      const who = { upn, tenantId: tid };
      // The token's issuer must be its own tenant's (openid-client checks this too for Entra's template).
      if (claims.iss !== expectedIssuer(discovered, tid)) return refuse('wrong issuer', 'The sign-in answer comes from another issuer than your tenant.', who);
      const clientId = await deps.graph.clientOfTenant(db, tid);
      if (!clientId || !(await repo.clientEnabled(db, clientId)))
        return refuse('tenant not enabled', 'Self-service recovery is not available for your organisation. Call your IT provider.', { ...who, clientId });
      if (!entraShowsMfa(claims))
        return refuse('no mfa', 'Your sign-in did not use multi-factor authentication. Sign in again with your authenticator app, or call your IT provider.', {
          ...who,
          clientId,
        });
      // Their devices, read once with their own token (Graph has no application permission for
      // this). Graph down or the permission missing: only the primary user counts, and the page says so.
      // The token goes no further than this call: not stored, not logged, not audited.
      let entra: string[] | null = null;
      if (accessToken) {
        try {
          entra = await deps.graph.myDeviceIds(clientId, accessToken);
        } catch (e) {
          deps.log?.(`self-service: Microsoft Graph could not list the user's devices: ${(e as Error).message}`);
        }
      }
      const sessionToken = newSecret('kws_');
      const csrfToken = newSecret();
      const name = typeof claims.name === 'string' ? claims.name.slice(0, 200) : null;
      const session: SelfServiceSession = {
        id: newId(),
        token_hash: sha256Hex(sessionToken),
        csrf_hash: sha256Hex(csrfToken),
        client_id: clientId,
        tenant_id: tid,
        object_id: oid,
        upn,
        name,
        created_at: now,
        expires_at: addMinutes(now, SESSION_MINUTES),
        ended_at: null,
        entra_device_ids: entra ? JSON.stringify(entra.slice(0, 500)) : null,
      };
      await transactions.run(async (tx) => {
        // Old sessions (with the person's UPN and device ids) are not kept: gone a day after they ended.
        await repo.deleteSessionsBefore(tx, new Date(Date.parse(session.created_at) - 86_400_000).toISOString());
        await repo.insertSession(tx, session);
        await audit.record(tx, endUser(session, ctx), {
          action: 'self_service.sign_in',
          outcome: 'success',
          clientId,
          details: { upn, tenantId: tid, mfa: true, entraDevices: entra ? entra.length : 'not read' },
        });
      });
      return { sessionToken, csrfToken };
    },

    /**
     * An end user's session cookie: the session open and not expired, the client's self-service
     * still on and its tenant still linked to it. Never a console session.
     */
    async authenticate(token: string, ctx: { ip: string | null; userAgent: string | null }): Promise<SelfServicePrincipal | null> {
      if (!token.startsWith('kws_') || token.length > 200) return null;
      const s = await repo.openSession(db, sha256Hex(token), clock.now());
      if (!s) return null;
      // The vault-wide switch too: an owner who turns self-service off stops every open session.
      const a = await repo.findApp(db);
      if (!a?.enabled) return null;
      if (!(await repo.clientEnabled(db, s.client_id)) || (await deps.graph.clientOfTenant(db, s.tenant_id)) !== s.client_id) return null;
      return { actor: endUser(s, ctx), session: s };
    },

    checkCsrf(p: SelfServicePrincipal, token: string): boolean {
      return sameHash(p.session.csrf_hash, sha256Hex(token));
    },

    async me(
      p: SelfServicePrincipal,
    ): Promise<{ upn: string; name: string | null; expiresAt: string; devices: SelfServiceDevice[]; entraRead: boolean; limits: typeof LIMITS }> {
      return {
        upn: p.session.upn,
        name: p.session.name,
        expiresAt: p.session.expires_at,
        devices: await devicesOf(p.session),
        entraRead: entraIdsOf(p.session) !== null,
        limits: LIMITS,
      };
    },

    async reveal(
      p: SelfServicePrincipal,
      input: { keyId: string; reason: string },
    ): Promise<{ status: 'revealed'; key: RevealedKey; rotation: 'agent' | 'intune' | null } | { status: 'not_found' }> {
      if (typeof input.keyId !== 'string' || typeof input.reason !== 'string') throw badRequest('Type the key ID and a reason.');
      const devices = await devicesOf(p.session);
      return deps.keys().revealOwnKey(p.actor, {
        clientId: p.session.client_id,
        deviceIds: devices.map((d) => d.id),
        prefix: input.keyId,
        reason: input.reason,
        who: { upn: p.session.upn, tenantId: p.session.tenant_id },
        limits: LIMITS,
      });
    },

    async signOut(p: SelfServicePrincipal): Promise<void> {
      await transactions.run((tx) => repo.endSession(tx, p.session.id, clock.now()));
    },

    /** For the routes: a principal that is not an end user never gets here. */
    requireEndUser(p: SelfServicePrincipal | undefined): SelfServicePrincipal {
      if (!p || p.actor.type !== 'end-user') throw forbidden('Sign in with your work account first.');
      return p;
    },
  };
}
export type SelfServiceService = ReturnType<typeof createSelfServiceService>;
