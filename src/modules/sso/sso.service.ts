import * as oidc from 'openid-client';
import type { Executor, Tx } from '../../db/database.js';
import type { Transactions } from '../../db/transactions.js';
import type { SsoProvidersTable, UsersTable } from '../../db/schema.js';
import type { Policy } from '../../config.js';
import type { Keyring } from '../../crypto/keyring.js';
import { newSecret, sameHash, sha256Hex } from '../../crypto/tokens.js';
import { normalizeName } from '../../domain/names.js';
import type { Clock } from '../../lib/clock.js';
import { newId } from '../../lib/ids.js';
import { badRequest, notFound } from '../../lib/errors.js';
import {
  ROLES,
  ROLE_PERMISSIONS,
  mayManagePrincipal,
  requireFreshSecondFactor,
  requirePermission,
  systemActor,
  type Actor,
  type Role,
} from '../authz/authz.js';
import type { AuditService } from '../audit/audit.service.js';
import type { IdentityRepo } from '../identity/identity.repo.js';
import type { IdentityService } from '../identity/identity.service.js';
import { newUserRow } from '../identity/user-row.js';
import type { SsoRepo } from './sso.repo.js';
import { evaluateMapping, idTokenShowsMfa, type Grant, type MappingMode, type MappingRule } from './sso.mapping.js';
import { SsoRefusal, type Oidc, type ProviderConnection } from './sso.oidc.js';

export const SSO_KINDS = ['entra', 'google', 'okta', 'oidc'] as const;
export type SsoKind = (typeof SSO_KINDS)[number];
export const SSO_REVALIDATE_TASK = 'sso-revalidate';

/** How long a started sign-in may take at the provider. */
const STATE_MINUTES = 10;
/** A step-up at the provider must be a sign-in made now (max_age), not an old one. */
const STEP_UP_MAX_AGE_SECONDS = 300;
/** Without any confirmation for this many re-validation periods (the provider unreachable), a session ends. */
const UNCONFIRMED_PERIODS = 4;

export type ProviderView = {
  id: string;
  kind: SsoKind;
  name: string;
  issuer: string;
  allowedTenants: string[] | null;
  clientId: string;
  /** The client secret is write-only: only whether one is stored. */
  hasClientSecret: boolean;
  scopes: string[];
  enabled: boolean;
  jit: boolean;
  idpMfa: boolean;
  mfaAcr: string[];
  mappingMode: MappingMode;
  mappings: MappingRule[];
  revalidateMinutes: number;
  createdAt: string;
  updatedAt: string;
};

export type ProviderInput = {
  kind?: SsoKind;
  name?: string;
  issuer?: string;
  allowedTenants?: string[] | null;
  clientId?: string;
  clientSecret?: string | null;
  scopes?: string[];
  enabled?: boolean;
  jit?: boolean;
  idpMfa?: boolean;
  mfaAcr?: string[];
  mappingMode?: MappingMode;
  mappings?: MappingRule[];
  revalidateMinutes?: number;
};

/**
 * Invitations (bound late, another module): a person with a pending invitation for this verified
 * e-mail may accept it by signing in through a provider. Returns the user it created, or null.
 */
export type InviteePort = {
  acceptBySso(tx: Tx, input: { email: string; name: string | null; providerId: string; subject: string }): Promise<UsersTable | null>;
};

type Deps = {
  tx: Transactions;
  repo: SsoRepo;
  users: IdentityRepo;
  identity: () => Pick<IdentityService, 'openSession' | 'getUser' | 'signInParts'>;
  invitee?: () => InviteePort | undefined;
  keyring: Pick<Keyring<Executor>, 'secretCipher'>;
  audit: Pick<AuditService, 'record' | 'recordNow'>;
  clock: Clock;
  policy: Policy;
  oidc: Oidc;
};

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const SCOPE = /^[\x21\x23-\x5b\x5d-\x7e]{1,100}$/;
const DEFAULT_SCOPES: Record<SsoKind, string[]> = {
  entra: ['openid', 'profile', 'email', 'offline_access'],
  google: ['openid', 'profile', 'email'],
  okta: ['openid', 'profile', 'email', 'groups', 'offline_access'],
  oidc: ['openid', 'profile', 'email'],
};
const addMinutes = (iso: string, minutes: number) => new Date(Date.parse(iso) + minutes * 60_000).toISOString();
const json = <T>(text: string | null, fallback: T): T => {
  if (!text) return fallback;
  try {
    return JSON.parse(text) as T;
  } catch {
    return fallback;
  }
};
const secretContext = (id: string) => `sso-provider=${id}`;
const stateContext = (id: string) => `sso-state=${id}`;
const refreshContext = (sessionId: string) => `sso-session=${sessionId}`;
/** Vault control, by permission: managing people with every client. */
const managesVault = (u: UsersTable) => u.status === 'active' && u.all_clients === 1 && ROLE_PERMISSIONS[u.role as Role]?.includes('user:manage');

export function createSsoService(deps: Deps) {
  const { tx: transactions, repo, users, keyring, audit, clock, policy } = deps;
  const db = transactions.reader;

  const view = (p: SsoProvidersTable): ProviderView => ({
    id: p.id,
    kind: p.kind as SsoKind,
    name: p.name,
    issuer: p.issuer,
    allowedTenants: json<string[] | null>(p.allowed_tenants, null),
    clientId: p.client_id,
    hasClientSecret: !!p.client_secret,
    scopes: p.scopes.split(' ').filter(Boolean),
    enabled: !!p.enabled,
    jit: !!p.jit,
    idpMfa: !!p.idp_mfa,
    mfaAcr: json<string[]>(p.mfa_acr, []),
    mappingMode: p.mapping_mode === 'most' ? 'most' : 'first',
    mappings: json<MappingRule[]>(p.mappings, []),
    revalidateMinutes: p.revalidate_minutes,
    createdAt: p.created_at,
    updatedAt: p.updated_at,
  });

  const connection = async (exec: Executor, p: SsoProvidersTable): Promise<ProviderConnection> => ({
    id: p.id,
    name: p.name,
    issuer: p.issuer,
    clientId: p.client_id,
    clientSecret: p.client_secret ? (await keyring.secretCipher(exec)).open(secretContext(p.id), p.client_secret) : null,
    version: p.updated_at,
  });

  const ssoActor = (p: { name: string }): Actor => ({ ...systemActor('sso'), name: `Keywarden (single sign-on: ${p.name})` });
  const claimant = (
    p: { id: string },
    who: { id?: string; email?: string | null; sub: string },
    ctx: { ip: string | null; userAgent: string | null },
  ): Actor => ({
    type: 'user',
    id: who.id ?? `sso:${p.id}:${who.sub.slice(0, 200)}`,
    name: (who.email ?? who.sub).slice(0, 200),
    role: 'client-viewer',
    clients: [],
    ip: ctx.ip,
    userAgent: ctx.userAgent,
  });

  const manage = (actor: Actor) => {
    requirePermission(actor, 'settings:manage');
    requireFreshSecondFactor(actor, 'change security settings', clock.now(), policy.stepUpMinutes);
  };

  // ------------------------------------------------------------------ validation
  function validateIssuer(kind: SsoKind, issuer: string, allowedTenants: string[] | null): { issuer: string; allowedTenants: string[] | null } {
    let u: URL;
    try {
      u = new URL(issuer.trim());
    } catch {
      throw badRequest(`"${issuer.slice(0, 100)}" is not a URL.`, { field: 'issuer' });
    }
    const loopback = ['127.0.0.1', 'localhost', '[::1]'].includes(u.hostname);
    if (u.protocol !== 'https:' && !(u.protocol === 'http:' && loopback)) throw badRequest('The issuer URL must start with https://.', { field: 'issuer' });
    if (u.search || u.hash || u.username || u.password)
      throw badRequest('The issuer URL cannot carry a query, a fragment or credentials.', { field: 'issuer' });
    const text = u.href.replace(/\/$/, '') === u.origin ? u.origin : u.href;
    if (kind === 'entra') {
      const m = /^https:\/\/login\.microsoftonline\.com\/([^/]+)\/v2\.0\/?$/.exec(text);
      if (!m)
        throw badRequest('An Entra ID issuer is https://login.microsoftonline.com/<tenant id>/v2.0 (or /organizations/v2.0 for a multi-tenant app).', {
          field: 'issuer',
        });
      const tenant = m[1]!.toLowerCase();
      if (tenant === 'organizations' || tenant === 'common') {
        const list = [...new Set((allowedTenants ?? []).map((t) => t.trim().toLowerCase()))];
        if (!list.length) throw badRequest('A multi-tenant Entra ID app needs the list of allowed tenant ids.', { field: 'allowedTenants' });
        const bad = list.find((t) => !GUID.test(t));
        if (bad) throw badRequest(`"${bad.slice(0, 60)}" is not a tenant id (a GUID).`, { field: 'allowedTenants' });
        return { issuer: `https://login.microsoftonline.com/${tenant}/v2.0`, allowedTenants: list };
      }
      if (!GUID.test(tenant))
        throw badRequest('The Entra ID issuer must name the tenant by its id (a GUID), or /organizations/ for a multi-tenant app.', { field: 'issuer' });
      return { issuer: `https://login.microsoftonline.com/${tenant}/v2.0`, allowedTenants: null };
    }
    if (allowedTenants?.length) throw badRequest('Allowed tenants are only for a multi-tenant Entra ID app.', { field: 'allowedTenants' });
    if (kind === 'google' && text !== 'https://accounts.google.com') throw badRequest('The Google issuer is https://accounts.google.com.', { field: 'issuer' });
    return { issuer: text, allowedTenants: null };
  }

  async function validateMappings(exec: Executor, actor: Actor, rules: MappingRule[]): Promise<MappingRule[]> {
    if (rules.length > 100) throw badRequest('At most 100 mapping rules.', { field: 'mappings' });
    const out: MappingRule[] = [];
    for (const [i, r] of rules.entries()) {
      const claim = r.claim.trim();
      const value = r.value.trim();
      if (!claim || claim.length > 100) throw badRequest(`Rule ${i + 1}: the claim needs 1 to 100 characters.`, { field: 'mappings' });
      if (!value || value.length > 500) throw badRequest(`Rule ${i + 1}: the value needs 1 to 500 characters.`, { field: 'mappings' });
      if (!(ROLES as readonly string[]).includes(r.role))
        throw badRequest(`Rule ${i + 1}: unknown role "${String(r.role).slice(0, 40)}".`, { field: 'mappings' });
      // A rule grants no more than the person writing it could grant by hand.
      if (!mayManagePrincipal(actor, { role: r.role, clients: actor.clients }) || (r.clients === 'all' && actor.clients !== 'all'))
        throw badRequest(`Rule ${i + 1}: you cannot grant the ${r.role} role${r.clients === 'all' ? ' of all clients' : ''}.`, { field: 'mappings' });
      let clients: 'all' | string[] = 'all';
      if (r.clients !== 'all') {
        const unique = [...new Set(r.clients)];
        const existing = await users.existingClientIds(exec, unique);
        const missing = unique.filter((c) => !existing.includes(c) || (actor.clients !== 'all' && !actor.clients.includes(c)));
        if (missing.length) throw badRequest(`Rule ${i + 1}: no such client: ${missing.join(', ').slice(0, 300)}.`, { field: 'mappings' });
        clients = unique;
      }
      out.push({ claim, value, role: r.role, clients });
    }
    return out;
  }

  function validateScopes(kind: SsoKind, scopes: string[] | undefined): string {
    const list = [...new Set(scopes ?? DEFAULT_SCOPES[kind])];
    if (list.length > 20) throw badRequest('At most 20 scopes.', { field: 'scopes' });
    const bad = list.find((s) => !SCOPE.test(s));
    if (bad !== undefined) throw badRequest(`"${bad.slice(0, 60)}" is not a scope.`, { field: 'scopes' });
    if (!list.includes('openid')) list.unshift('openid');
    return list.join(' ');
  }

  const displayName = (raw: string) => {
    const r = normalizeName(raw, 'A name');
    if (!r.ok) throw badRequest(r.reason, { field: 'name' });
    if (!r.value || r.value.length > 100) throw badRequest('A sign-in provider needs a name of 1 to 100 characters.', { field: 'name' });
    return r.value;
  };

  // ------------------------------------------------------------------ sign-in helpers
  async function unsealState(exec: Executor, id: string, sealed: string) {
    return json<{ nonce: string; verifier: string; redirectUri: string; returnTo: string }>((await keyring.secretCipher(exec)).open(stateContext(id), sealed), {
      nonce: '',
      verifier: '',
      redirectUri: '',
      returnTo: '/',
    });
  }

  const grantOf = async (exec: Executor, u: UsersTable) => ({
    role: u.role as Role,
    clients: u.all_clients ? ('all' as const) : await users.userClients(exec, u.id),
  });
  const sameGrant = (a: { role: Role; clients: 'all' | readonly string[] }, b: { role: Role; clients: 'all' | readonly string[] }) =>
    a.role === b.role &&
    (a.clients === 'all' || b.clients === 'all' ? a.clients === b.clients : [...a.clients].sort().join(',') === [...b.clients].sort().join(','));

  /**
   * The mapping no longer grants this person access: every session of theirs ends, and the account
   * is disabled (the last active owner of all clients is kept enabled, so the vault stays manageable;
   * their sessions end all the same). Audited.
   */
  async function endAccess(tx: Tx, p: SsoProvidersTable, u: UsersTable, reason: string) {
    const now = clock.now();
    const actor = ssoActor(p);
    await users.revokeUserSessions(tx, u.id, now);
    await repo.endUserSsoSessions(tx, u.id, now);
    await audit.record(tx, actor, {
      action: 'auth.session_revoked',
      outcome: 'success',
      targetType: 'user',
      targetId: u.id,
      details: { email: u.email, reason, provider: p.name },
    });
    const lastOwner = managesVault(u) && (await users.countOwners(tx)) <= 1;
    if (u.status === 'active' && !lastOwner) {
      await users.updateUser(tx, u.id, { status: 'disabled', updated_at: now });
      await audit.record(tx, actor, {
        action: 'user.update',
        outcome: 'success',
        targetType: 'user',
        targetId: u.id,
        details: { email: u.email, status: 'disabled', reason },
      });
    }
  }

  /** Sets the grant the mapping gives (clients deleted since the rule was written are dropped). Never demotes the last owner. */
  async function applyGrant(tx: Tx, p: SsoProvidersTable, u: UsersTable, g: Grant): Promise<void> {
    const clients = g.clients === 'all' ? ('all' as const) : await users.existingClientIds(tx, g.clients);
    const before = await grantOf(tx, u);
    const next = { role: g.role, clients };
    if (sameGrant(before, next)) return;
    const wouldLoseVault = managesVault(u) && !(clients === 'all' && ROLE_PERMISSIONS[g.role].includes('user:manage'));
    if (wouldLoseVault && (await users.countOwners(tx)) <= 1) return;
    await users.updateUser(tx, u.id, { role: g.role, all_clients: clients === 'all' ? 1 : 0, updated_at: clock.now() });
    await users.setUserClients(tx, u.id, clients === 'all' ? [] : clients);
    await audit.record(tx, ssoActor(p), {
      action: 'user.role',
      outcome: 'success',
      targetType: 'user',
      targetId: u.id,
      details: { email: u.email, role: g.role, clients, by: 'single sign-on mapping', provider: p.name, rule: g.rule + 1 },
    });
  }

  const verifiedEmailOf = (p: SsoProvidersTable, claims: Record<string, unknown>): string | null => {
    if (typeof claims.email !== 'string') return null;
    const email = claims.email.trim().toLowerCase();
    if (!/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(email) || email.length > 254) return null;
    // Entra ID sends no email_verified: its optional claim xms_edov says the domain owner verified it.
    const verified = claims.email_verified === true || (p.kind === 'entra' && claims.xms_edov === true);
    return verified ? email : null;
  };

  const rulesOf = (p: SsoProvidersTable) => json<MappingRule[]>(p.mappings, []);

  /**
   * The Keywarden user for a verified sign-in at a provider: by its link (provider, subject); else,
   * the first time, by verified e-mail (then linked); else an invitation for that e-mail (another
   * module, through InviteePort); else just-in-time, when the provider allows it and a rule grants
   * access. Null: nobody (the caller refuses). Runs in the caller's transaction; links it makes are audited.
   */
  async function findOrLinkUserByVerifiedEmail(
    tx: Tx,
    p: SsoProvidersTable,
    claims: Record<string, unknown>,
    grant: Grant | null,
  ): Promise<{ user: UsersTable; linkId: string } | { refusal: SsoRefusal }> {
    const sub = String(claims.sub);
    const link = await repo.findLink(tx, p.id, sub);
    const now = clock.now();
    if (link) {
      const u = await users.findUser(tx, link.user_id);
      if (!u) return { refusal: new SsoRefusal('account removed', 'Your Keywarden account no longer exists. Ask an owner.') };
      return { user: u, linkId: link.id };
    }
    const email = verifiedEmailOf(p, claims);
    if (!email)
      return {
        refusal: new SsoRefusal(
          'no verified e-mail',
          `${p.name} did not send a verified e-mail address, so Keywarden cannot tell which account is yours. Ask an owner.`,
        ),
      };
    const rules = rulesOf(p);
    let user = await users.findUserByEmail(tx, email);
    let created = false;
    // An invitation is used only when this sign-in may go through: with mapping rules, a rule must grant.
    if (!user && !(rules.length && !grant))
      user =
        (await deps.invitee?.()?.acceptBySso(tx, { email, name: typeof claims.name === 'string' ? claims.name : null, providerId: p.id, subject: sub })) ??
        undefined;
    if (!user) {
      if (!p.jit) return { refusal: new SsoRefusal('no account', `There is no Keywarden account for ${email}. Ask an owner to add you.`) };
      if (!grant) return { refusal: new SsoRefusal('no mapping', `Your account at ${p.name} is not in a group that has access to Keywarden.`) };
      const named = normalizeName(typeof claims.name === 'string' ? claims.name : '', 'A name');
      // Nobody knows this account's password: the person signs in through the provider only.
      user = await newUserRow(
        { email, name: (named.ok && named.value.slice(0, 200)) || email, passwordHash: null, role: 'client-viewer', allClients: false },
        now,
      );
      await users.insertUser(tx, user);
      created = true;
      await audit.record(tx, ssoActor(p), {
        action: 'user.create',
        outcome: 'success',
        targetType: 'user',
        targetId: user.id,
        details: { email, by: 'single sign-on (just in time)', provider: p.name },
      });
    } else if (rules.length && !grant) {
      // Not linked before, and no rule lets this person in: nothing is linked.
      return { refusal: new SsoRefusal('no mapping', `Your account at ${p.name} is not in a group that has access to Keywarden.`) };
    }
    const linkId = newId();
    await repo.insertLink(tx, { id: linkId, provider_id: p.id, subject: sub.slice(0, 500), user_id: user.id, email, created_at: now, last_login_at: null });
    await audit.record(tx, ssoActor(p), {
      action: 'sso.link',
      outcome: 'success',
      targetType: 'user',
      targetId: user.id,
      details: { email, provider: p.name, by: created ? 'just in time' : 'verified e-mail' },
    });
    return { user, linkId };
  }

  // ------------------------------------------------------------------ the service
  const service = {
    findOrLinkUserByVerifiedEmail,

    async listProviders(actor: Actor): Promise<ProviderView[]> {
      requirePermission(actor, 'settings:manage');
      return (await repo.listProviders(db)).map(view);
    },

    /** Public: the enabled providers' names and ids, for the sign-in page's buttons. */
    async signInOptions(): Promise<{ id: string; name: string }[]> {
      return (await repo.listProviders(db)).filter((p) => p.enabled).map((p) => ({ id: p.id, name: p.name }));
    },

    async createProvider(actor: Actor, input: ProviderInput): Promise<ProviderView> {
      manage(actor);
      const kind = input.kind ?? 'oidc';
      if (!SSO_KINDS.includes(kind)) throw badRequest(`Unknown kind "${String(kind).slice(0, 20)}". Kinds: ${SSO_KINDS.join(', ')}.`, { field: 'kind' });
      if (!input.issuer) throw badRequest('A sign-in provider needs its issuer URL.', { field: 'issuer' });
      if (!input.clientId?.trim()) throw badRequest('A sign-in provider needs the client id of the application registered there.', { field: 'clientId' });
      const iss = validateIssuer(kind, input.issuer, input.allowedTenants ?? null);
      const now = clock.now();
      const id = newId();
      return transactions.run(async (tx) => {
        const row: SsoProvidersTable = {
          id,
          kind,
          name: displayName(input.name ?? ''),
          issuer: iss.issuer,
          allowed_tenants: iss.allowedTenants ? JSON.stringify(iss.allowedTenants) : null,
          client_id: input.clientId!.trim().slice(0, 300),
          client_secret: input.clientSecret ? (await keyring.secretCipher(tx)).seal(secretContext(id), input.clientSecret) : null,
          scopes: validateScopes(kind, input.scopes),
          enabled: input.enabled === false ? 0 : 1,
          jit: input.jit ? 1 : 0,
          idp_mfa: input.idpMfa ? 1 : 0,
          mfa_acr: input.mfaAcr?.length ? JSON.stringify(input.mfaAcr.map((a) => a.trim()).filter(Boolean)) : null,
          mapping_mode: input.mappingMode === 'most' ? 'most' : 'first',
          mappings: JSON.stringify(await validateMappings(tx, actor, input.mappings ?? [])),
          revalidate_minutes: input.revalidateMinutes ?? 60,
          created_at: now,
          updated_at: now,
        };
        await repo.insertProvider(tx, row);
        const v = view(row);
        await audit.record(tx, actor, {
          action: 'sso.provider.create',
          outcome: 'success',
          targetType: 'sso_provider',
          targetId: id,
          details: auditDetails(v),
        });
        return v;
      });
    },

    async updateProvider(actor: Actor, id: string, input: ProviderInput): Promise<ProviderView> {
      manage(actor);
      return transactions.run(async (tx) => {
        const p = await repo.findProvider(tx, id);
        if (!p) throw notFound(`No sign-in provider with id ${id.slice(0, 60)}.`);
        const kind = p.kind as SsoKind;
        if (input.kind !== undefined && input.kind !== kind)
          throw badRequest('The kind of a provider cannot change; add a new provider instead.', { field: 'kind' });
        const patch: Partial<SsoProvidersTable> = { updated_at: clock.now() };
        if (input.name !== undefined) patch.name = displayName(input.name);
        if (input.issuer !== undefined || input.allowedTenants !== undefined) {
          const iss = validateIssuer(
            kind,
            input.issuer ?? p.issuer,
            input.allowedTenants !== undefined ? input.allowedTenants : json<string[] | null>(p.allowed_tenants, null),
          );
          patch.issuer = iss.issuer;
          patch.allowed_tenants = iss.allowedTenants ? JSON.stringify(iss.allowedTenants) : null;
        }
        if (input.clientId !== undefined) {
          if (!input.clientId.trim()) throw badRequest('The client id cannot be empty.', { field: 'clientId' });
          patch.client_id = input.clientId.trim().slice(0, 300);
        }
        if (input.clientSecret !== undefined)
          patch.client_secret = input.clientSecret ? (await keyring.secretCipher(tx)).seal(secretContext(id), input.clientSecret) : null;
        if (input.scopes !== undefined) patch.scopes = validateScopes(kind, input.scopes);
        if (input.enabled !== undefined) patch.enabled = input.enabled ? 1 : 0;
        if (input.jit !== undefined) patch.jit = input.jit ? 1 : 0;
        if (input.idpMfa !== undefined) patch.idp_mfa = input.idpMfa ? 1 : 0;
        if (input.mfaAcr !== undefined) patch.mfa_acr = input.mfaAcr.length ? JSON.stringify(input.mfaAcr.map((a) => a.trim()).filter(Boolean)) : null;
        if (input.mappingMode !== undefined) patch.mapping_mode = input.mappingMode === 'most' ? 'most' : 'first';
        if (input.mappings !== undefined) patch.mappings = JSON.stringify(await validateMappings(tx, actor, input.mappings));
        if (input.revalidateMinutes !== undefined) patch.revalidate_minutes = input.revalidateMinutes;
        await repo.updateProvider(tx, id, patch);
        deps.oidc.forget(id);
        const v = view({ ...p, ...patch });
        await audit.record(tx, actor, {
          action: 'sso.provider.update',
          outcome: 'success',
          targetType: 'sso_provider',
          targetId: id,
          details: { ...auditDetails(v), ...(input.clientSecret !== undefined ? { clientSecret: input.clientSecret ? 'replaced' : 'removed' } : {}) },
        });
        return v;
      });
    },

    /** Removes a provider: its links go, and every session opened through it ends. */
    async deleteProvider(actor: Actor, id: string): Promise<void> {
      manage(actor);
      await transactions.run(async (tx) => {
        const p = await repo.findProvider(tx, id);
        if (!p) throw notFound(`No sign-in provider with id ${id.slice(0, 60)}.`);
        const now = clock.now();
        for (const s of await repo.openSsoSessions(tx, now, 100_000))
          if (s.provider_id === id) await users.updateSession(tx, s.session_id, { revoked_at: now });
        await repo.deleteProvider(tx, id);
        deps.oidc.forget(id);
        await audit.record(tx, actor, {
          action: 'sso.provider.delete',
          outcome: 'success',
          targetType: 'sso_provider',
          targetId: id,
          details: { name: p.name },
        });
      });
    },

    /** Reads the provider's discovery document (through the egress policy) and says what it found. */
    async testProvider(actor: Actor, id: string): Promise<{ ok: boolean; issuer: string | null; message: string }> {
      requirePermission(actor, 'settings:manage');
      const p = await repo.findProvider(db, id);
      if (!p) throw notFound(`No sign-in provider with id ${id.slice(0, 60)}.`);
      try {
        const config = await deps.oidc.configFor(await connection(db, p));
        const meta = config.serverMetadata();
        const pkce = meta.code_challenge_methods_supported?.includes('S256') ?? true;
        return { ok: true, issuer: meta.issuer, message: `Discovery works: issuer ${meta.issuer}${pkce ? '' : ' (it does not list PKCE S256 support)'}.` };
      } catch (e) {
        return { ok: false, issuer: null, message: (e as Error).message };
      }
    },

    /** Marks a person "SSO only" (password sign-in refused) or lifts it. Same rules as managing users. */
    async setSsoOnly(actor: Actor, userId: string, on: boolean): Promise<void> {
      const v = await deps.identity().getUser(actor, userId);
      requireFreshSecondFactor(actor, 'manage users', clock.now(), policy.stepUpMinutes);
      if (on && !(await repo.listProviders(db)).some((p) => p.enabled))
        throw badRequest('Add and enable a sign-in provider first: an SSO-only person could not sign in at all.', { field: 'ssoOnly' });
      await transactions.run(async (tx) => {
        await users.updateUser(tx, v.id, { sso_only: on ? 1 : 0, updated_at: clock.now() });
        await audit.record(tx, actor, {
          action: 'user.update',
          outcome: 'success',
          targetType: 'user',
          targetId: v.id,
          details: { email: v.email, ssoOnly: on },
        });
      });
    },

    /**
     * An SSO-only person whose provider's multi-factor sign-in counts (idp_mfa): their second factor
     * lives at the provider (identity's hasSecondFactor asks this).
     */
    async idpSecondFactor(exec: Executor, user: UsersTable): Promise<boolean> {
      return !!user.sso_only && (await repo.hasIdpMfaLink(exec, user.id));
    },

    /**
     * Starts a sign-in (or a step-up) at a provider: a single-use state row (state looked up by its
     * hash, nonce and PKCE verifier sealed, bound to this browser by a cookie), and the provider's URL.
     */
    async start(
      providerId: string,
      ctx: { redirectUri: string; purpose: 'login' | 'step-up'; sessionId?: string; returnTo?: string; ip?: string | null },
    ): Promise<{ url: string; browserToken: string }> {
      const p = await repo.findProvider(db, providerId);
      if (!p || !p.enabled) throw new SsoRefusal('provider unavailable', 'This sign-in provider is not available.');
      // Anyone may start a sign-in (a step-up has a session already): an address may start only so many.
      if (ctx.purpose === 'login') {
        const started = await deps.identity().signInParts.reserveStart(ctx.ip ?? null);
        if (!started.ok) throw new SsoRefusal('too many starts', started.message);
      }
      const config = await deps.oidc.configFor(await connection(db, p));
      const state = oidc.randomState();
      const nonce = oidc.randomNonce();
      const verifier = oidc.randomPKCECodeVerifier();
      const browserToken = newSecret();
      const id = newId();
      const now = clock.now();
      const returnTo = ctx.returnTo && /^\/(?![/\\])[\x21-\x7e]{0,300}$/.test(ctx.returnTo) ? ctx.returnTo : '/';
      await transactions.run(async (tx) => {
        await repo.insertState(tx, {
          id,
          state_hash: sha256Hex(state),
          browser_hash: sha256Hex(browserToken),
          provider_id: p.id,
          purpose: ctx.purpose,
          session_id: ctx.sessionId ?? null,
          sealed: (await keyring.secretCipher(tx)).seal(stateContext(id), JSON.stringify({ nonce, verifier, redirectUri: ctx.redirectUri, returnTo })),
          created_at: now,
          expires_at: addMinutes(now, STATE_MINUTES),
          used_at: null,
        });
      });
      const params: Record<string, string> = {
        redirect_uri: ctx.redirectUri,
        scope: p.scopes,
        state,
        nonce,
        code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
      };
      if (p.scopes.split(' ').includes('offline_access')) params.prompt = 'consent';
      if (ctx.purpose === 'step-up') {
        params.prompt = 'login';
        params.max_age = '0';
      }
      return { url: deps.oidc.buildAuthorizationUrl(config, params).href, browserToken };
    },

    /**
     * The provider's answer. The state is taken once (a replay or a parallel second request finds
     * nothing), must not have expired and must come back to the browser that started it; then
     * openid-client checks the code exchange (PKCE), issuer, audience, nonce, signature, exp and nbf,
     * and iat is checked here, all with a small clock allowance. Failures are audited with their reason.
     */
    async callback(
      query: Record<string, string>,
      browserToken: string | undefined,
      ctx: { ip: string | null; userAgent: string | null },
    ): Promise<{ kind: 'login'; sessionToken: string; csrfToken: string; returnTo: string } | { kind: 'step-up'; returnTo: string }> {
      const now = clock.now();
      const state = typeof query.state === 'string' ? query.state.slice(0, 500) : '';
      const anon = { id: 'sso:unknown', name: 'single sign-on', ip: ctx.ip, userAgent: ctx.userAgent };
      const refuse = async (actor: Actor, reason: string, e: SsoRefusal, providerName?: string): Promise<never> => {
        await audit.recordNow(actor, {
          action: 'auth.login',
          outcome: 'failure',
          details: { method: 'sso', reason, ...(providerName ? { provider: providerName } : {}) },
        });
        throw e;
      };
      const unknownActor: Actor = { type: 'user', role: 'client-viewer', clients: [], ...anon };
      if (!state) return refuse(unknownActor, 'no state', new SsoRefusal('no state', 'The sign-in answer is incomplete: start again.'));
      const row = await repo.takeState(db, sha256Hex(state), now);
      if (!row)
        return refuse(unknownActor, 'state unknown or used', new SsoRefusal('state used', 'This sign-in answer was already used or is unknown: start again.'));
      const p = await repo.findProvider(db, row.provider_id);
      const pName = p?.name;
      if (Date.parse(row.expires_at) <= Date.parse(now))
        return refuse(unknownActor, 'state expired', new SsoRefusal('state expired', 'The sign-in took too long: start again.'), pName);
      if (!browserToken || !sameHash(row.browser_hash, sha256Hex(browserToken)))
        return refuse(unknownActor, 'other browser', new SsoRefusal('other browser', 'This sign-in was started in another browser: start again here.'), pName);
      if (!p || !p.enabled)
        return refuse(unknownActor, 'provider unavailable', new SsoRefusal('provider unavailable', 'This sign-in provider is not available.'), pName);
      const sealed = await unsealState(db, row.id, row.sealed);
      const callbackUrl = new URL(sealed.redirectUri);
      for (const [k, v] of Object.entries(query)) if (typeof v === 'string') callbackUrl.searchParams.set(k, v.slice(0, 4000));
      let claims: Record<string, unknown>;
      let refreshToken: string | null;
      try {
        const config = await deps.oidc.configFor(await connection(db, p));
        ({ claims, refreshToken } = await deps.oidc.exchange(config, callbackUrl, {
          state,
          nonce: sealed.nonce,
          verifier: sealed.verifier,
          ...(row.purpose === 'step-up' ? { maxAge: STEP_UP_MAX_AGE_SECONDS } : {}),
        }));
      } catch (e) {
        const r = e instanceof SsoRefusal ? e : new SsoRefusal('provider unreachable', `${p.name} could not be reached to finish the sign-in.`);
        return refuse(unknownActor, r.reason, r, p.name);
      }
      const sub = String(claims.sub);
      const who = { sub, email: typeof claims.email === 'string' ? claims.email : null };
      const allowed = json<string[] | null>(p.allowed_tenants, null);
      if (allowed && !(typeof claims.tid === 'string' && allowed.includes(claims.tid.toLowerCase())))
        return refuse(
          claimant(p, who, ctx),
          'tenant not allowed',
          new SsoRefusal('tenant not allowed', `Your organisation's Entra ID tenant is not allowed to sign in to this Keywarden.`),
          p.name,
        );
      const mfa = !!p.idp_mfa && idTokenShowsMfa(claims, json<string[]>(p.mfa_acr, []));

      if (row.purpose === 'step-up') {
        const s = row.session_id ? await repo.openSession(db, row.session_id, now) : undefined;
        const link = await repo.findLink(db, p.id, sub);
        if (!s || !link || link.user_id !== s.user_id)
          return refuse(
            claimant(p, who, ctx),
            'step-up by another person',
            new SsoRefusal('another person', 'You signed in at the provider as someone else.'),
            p.name,
          );
        const u = await users.findUser(db, s.user_id);
        const actor: Actor = {
          type: 'user',
          id: s.user_id,
          name: u?.email ?? sub,
          role: (u?.role as Role) ?? 'client-viewer',
          clients: [],
          ip: ctx.ip,
          userAgent: ctx.userAgent,
        };
        if (!mfa) {
          await audit.recordNow(actor, {
            action: 'auth.step_up',
            outcome: 'failure',
            details: { method: 'sso', provider: p.name, reason: 'no multi-factor sign-in at the provider' },
          });
          throw new SsoRefusal('no mfa', `${p.name} did not confirm a multi-factor sign-in.`);
        }
        await transactions.run(async (tx) => {
          await users.updateSession(tx, s.id, { mfa_at: clock.now() });
          await audit.record(tx, actor, { action: 'auth.step_up', outcome: 'success', details: { method: 'sso', provider: p.name } });
        });
        return { kind: 'step-up', returnTo: sealed.returnTo };
      }

      const rules = rulesOf(p);
      const grant = rules.length ? evaluateMapping(rules, p.mapping_mode === 'most' ? 'most' : 'first', claims) : null;
      // Resolve (and maybe link or create) the person; a mapping that no longer grants ends their access.
      type Resolved = { refusal: SsoRefusal; user?: UsersTable } | { refusal?: undefined; user: UsersTable; linkId: string };
      const resolved = await transactions.run(async (tx): Promise<Resolved> => {
        const r = await findOrLinkUserByVerifiedEmail(tx, p, claims, grant);
        if ('refusal' in r) return r;
        if (r.user.status !== 'active')
          return { refusal: new SsoRefusal('account disabled', 'Your Keywarden account is disabled. Ask an owner.'), user: r.user };
        if (rules.length && !grant) {
          await endAccess(tx, p, r.user, 'the sign-in provider no longer grants access');
          return {
            refusal: new SsoRefusal('mapping no longer grants access', `Your account at ${p.name} is no longer in a group that has access to Keywarden.`),
            user: r.user,
          };
        }
        if (grant) await applyGrant(tx, p, r.user, grant);
        return { user: (await users.findUser(tx, r.user.id))!, linkId: r.linkId };
      });
      if (resolved.refusal) {
        const u = resolved.user;
        return refuse(claimant(p, { ...who, id: u?.id, email: u?.email ?? who.email }, ctx), resolved.refusal.reason, resolved.refusal, p.name);
      }
      const { user, linkId } = resolved;
      const opened = await deps.identity().openSession(user, {
        mfa,
        method: 'sso',
        ip: ctx.ip,
        userAgent: ctx.userAgent,
        audit: (tx) =>
          audit.record(tx, claimant(p, { sub, id: user.id, email: user.email }, ctx), {
            action: 'auth.login',
            outcome: 'success',
            details: { email: user.email, method: 'sso', provider: p.name, mfa },
          }),
        afterInsert: async (tx, sessionId) => {
          await repo.touchLink(tx, linkId, { last_login_at: clock.now(), email: who.email?.slice(0, 254) ?? null });
          await repo.insertSsoSession(tx, {
            session_id: sessionId,
            provider_id: p.id,
            link_id: linkId,
            user_id: user.id,
            refresh_token: refreshToken ? (await keyring.secretCipher(tx)).seal(refreshContext(sessionId), refreshToken) : null,
            idp_mfa: mfa ? 1 : 0,
            validated_at: clock.now(),
            ended_at: null,
          });
        },
      });
      return { kind: 'login', sessionToken: opened.sessionToken, csrfToken: opened.csrfToken, returnTo: sealed.returnTo };
    },

    /** Whether this signed-in person can step up at a provider: the provider of their SSO session, when its MFA counts. */
    async stepUpProvider(actor: Actor): Promise<{ id: string; name: string } | null> {
      if (!actor.session) return null;
      const s = await repo.findSsoSession(db, actor.session.id);
      const p = s ? await repo.findProvider(db, s.provider_id) : undefined;
      return p && p.enabled && p.idp_mfa ? { id: p.id, name: p.name } : null;
    },

    /**
     * The scheduled re-validation: every open SSO session whose last confirmation is older than its
     * provider's period is confirmed again with the refresh token (new claims, the mapping evaluated
     * again); a session without one, refused by the provider, whose provider is gone or disabled, or
     * that could not be confirmed for several periods, ends. A mapping that no longer grants ends all
     * of the person's sessions and disables the account (see endAccess).
     */
    async revalidate(): Promise<{ checked: number; confirmed: number; ended: number }> {
      const now = clock.now();
      await transactions.run(async (tx) => {
        await repo.closeEndedSsoSessions(tx, now);
        await repo.deleteStatesBefore(tx, addMinutes(now, -24 * 60));
      });
      const open = await repo.openSsoSessions(db, now, 500);
      let checked = 0;
      let confirmed = 0;
      let ended = 0;
      const endOne = async (p: { name: string } | undefined, s: (typeof open)[number], reason: string) => {
        ended++;
        await transactions.run(async (tx) => {
          await users.updateSession(tx, s.session_id, { revoked_at: clock.now() });
          await repo.updateSsoSession(tx, s.session_id, { ended_at: clock.now(), refresh_token: null });
          await audit.record(tx, ssoActor(p ?? { name: 'removed provider' }), {
            action: 'auth.session_revoked',
            outcome: 'success',
            targetType: 'user',
            targetId: s.user_id,
            details: { reason, sessions: 1 },
          });
        });
      };
      for (const s of open) {
        const p = await repo.findProvider(db, s.provider_id);
        if (!p || !p.enabled) {
          await endOne(p, s, 'the sign-in provider was removed or disabled');
          continue;
        }
        if (Date.parse(s.validated_at) + p.revalidate_minutes * 60_000 > Date.parse(now)) continue;
        checked++;
        if (!s.refresh_token) {
          await endOne(p, s, 'the sign-in must be confirmed at the provider again');
          continue;
        }
        const link = await repo.findLinkById(db, s.link_id);
        const u = link ? await users.findUser(db, link.user_id) : undefined;
        if (!link || !u) {
          await endOne(p, s, 'the account is no longer linked');
          continue;
        }
        try {
          const config = await deps.oidc.configFor(await connection(db, p));
          const refreshed = await deps.oidc.refresh(config, (await keyring.secretCipher(db)).open(refreshContext(s.session_id), s.refresh_token), link.subject);
          const rules = rulesOf(p);
          const grant = rules.length ? evaluateMapping(rules, p.mapping_mode === 'most' ? 'most' : 'first', refreshed.claims) : null;
          await transactions.run(async (tx) => {
            if (rules.length && !grant) {
              ended++;
              await endAccess(tx, p, u, 'the sign-in provider no longer grants access');
              return;
            }
            if (grant) await applyGrant(tx, p, u, grant);
            confirmed++;
            await repo.updateSsoSession(tx, s.session_id, {
              validated_at: clock.now(),
              refresh_token: (await keyring.secretCipher(tx)).seal(refreshContext(s.session_id), refreshed.refreshToken),
            });
          });
        } catch (e) {
          if (e instanceof SsoRefusal && e.reason !== 'provider unreachable' && e.reason !== 'provider error') {
            await endOne(p, s, `the sign-in provider refused to confirm the session (${e.reason})`);
          } else if (Date.parse(s.validated_at) + UNCONFIRMED_PERIODS * p.revalidate_minutes * 60_000 <= Date.parse(now)) {
            await endOne(p, s, 'the sign-in provider could not be reached to confirm the session');
          }
        }
      }
      return { checked, confirmed, ended };
    },
  };
  return service;
}
export type SsoService = ReturnType<typeof createSsoService>;

/** What the audit log keeps of a provider's settings: never the client secret. */
function auditDetails(v: ProviderView) {
  return {
    kind: v.kind,
    name: v.name,
    issuer: v.issuer,
    allowedTenants: v.allowedTenants,
    clientId: v.clientId,
    scopes: v.scopes,
    enabled: v.enabled,
    jit: v.jit,
    idpMfa: v.idpMfa,
    mappingMode: v.mappingMode,
    mappings: v.mappings.length,
  };
}
