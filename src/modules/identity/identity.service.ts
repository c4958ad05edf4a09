import type { Executor, Tx } from '../../db/database.js';
import type { Transactions } from '../../db/transactions.js';
import type { UsersTable } from '../../db/schema.js';
import type { Policy } from '../../config.js';
import { normalizeName } from '../../domain/names.js';
import type { Keyring } from '../../crypto/keyring.js';
import { newUserRow } from './user-row.js';
import { burnPasswordCheck, hashPassword, verifyPassword } from '../../crypto/passwords.js';
import { newRecoveryCode, newSecret, sameHash, sha256Hex } from '../../crypto/tokens.js';
import { checkTotp, newTotpSecret, totpUri } from '../../crypto/totp.js';
import type { Clock } from '../../lib/clock.js';
import { newId } from '../../lib/ids.js';
import { AppError, badRequest, conflict, forbidden, notFound, rateLimited, unauthenticated } from '../../lib/errors.js';
import {
  ROLES,
  ROLE_PERMISSIONS,
  grantsVaultControl,
  mayManagePrincipal,
  revealScope,
  permissionsOf,
  requireFreshSecondFactor,
  requirePermission,
  tokenGrant,
  can,
  type Actor,
  type Permission,
  type Role,
  type SensitiveAction,
} from '../authz/authz.js';
import type { AuditService } from '../audit/audit.service.js';
import type { IdentityRepo } from './identity.repo.js';
import type { PasskeysRepo } from './passkeys.repo.js';
import type { LoginResult, Settings, TokenView, UserView } from './identity.types.js';

/**
 * Two-owner approval, provided by the lifecycle module (bound late: it is built after identity).
 * While it is on, making someone an owner or giving them every client waits for a second owner.
 */
export type ApprovalsPort = {
  twoOwnerRequired(exec: Executor): Promise<boolean>;
  request(
    tx: Tx,
    actor: Actor,
    input: { action: string; clientId: string | null; targetType: string; targetId: string | null; reason?: string | null; params: Record<string, unknown> },
  ): Promise<{ id: string }>;
};

/** The approval actions identity registers with the lifecycle module. */
export const APPROVAL_GRANT_USER = 'user.grant';

type Deps = {
  tx: Transactions;
  repo: IdentityRepo;
  /** Whether the owner requires every person to have a second factor (settings module). */
  requireMfa: (exec: Executor) => Promise<boolean>;
  approvals?: () => ApprovalsPort | undefined;
  keyring: Pick<Keyring<Executor>, 'secretCipher'>;
  /** A person's passkeys count as a second factor (hasSecondFactor). */
  passkeys?: Pick<PasskeysRepo, 'countForUser'>;
  audit: Pick<AuditService, 'record' | 'recordNow'>;
  clock: Clock;
  policy: Policy;
  /**
   * Single sign-on (sso module, bound late): whether this person's second factor is proven at their
   * identity provider (an SSO-only person whose provider's MFA satisfies step-up).
   */
  idpSecondFactor?: () => ((exec: Executor, user: UsersTable) => Promise<boolean>) | undefined;
};

const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
const MIN_PASSWORD = 12;
const MAX_PASSWORD = 256;
const MAX_LOCKOUT_MINUTES = 24 * 60;
const RECOVERY_CODES = 10;
export const API_TOKEN_PREFIX = 'kw_';

const addMinutes = (iso: string, minutes: number) => new Date(Date.parse(iso) + minutes * 60_000).toISOString();
const normalizeEmail = (e: string) => e.trim().toLowerCase();
/** Sign-in starts an address may make per lockout window, as a multiple of its allowed failed sign-ins. */
const START_FACTOR = 4;

/** A person's display name: NFKC, no invisible or text-direction characters (they make one name look like another). */
function displayName(raw: string | undefined): string {
  const r = normalizeName(raw ?? '', 'A name');
  if (!r.ok) throw badRequest(r.reason, { field: 'name' });
  return r.value.slice(0, 200);
}

export function validatePassword(password: string): void {
  if (password.length < MIN_PASSWORD) throw badRequest(`A password needs at least ${MIN_PASSWORD} characters.`, { field: 'password' });
  if (password.length > MAX_PASSWORD) throw badRequest(`A password can be at most ${MAX_PASSWORD} characters.`, { field: 'password' });
}

function validateRole(role: string): Role {
  if (!(ROLES as readonly string[]).includes(role)) throw badRequest(`Unknown role "${role}". Roles: ${ROLES.join(', ')}.`, { field: 'role' });
  return role as Role;
}

export function createIdentityService({ tx: transactions, repo, requireMfa, approvals, keyring, passkeys, audit, clock, policy, idpSecondFactor }: Deps) {
  const db = transactions.reader;
  const view = async (exec: Executor, u: UsersTable): Promise<UserView> => ({
    id: u.id,
    email: u.email,
    name: u.name,
    role: u.role as Role,
    clients: u.all_clients ? 'all' : await repo.userClients(exec, u.id),
    status: u.status as UserView['status'],
    mfaEnabled: await hasSecondFactor(exec, u),
    totpEnabled: !!u.totp_confirmed_at,
    ssoOnly: !!u.sso_only,
    lastLoginAt: u.last_login_at,
    createdAt: u.created_at,
  });

  const settingsOf = async (exec: Executor): Promise<Settings> => ({ requireMfa: await requireMfa(exec) });

  const grantOf = async (exec: Executor, u: UsersTable) => ({
    role: u.role as Role,
    clients: u.all_clients ? ('all' as const) : await repo.userClients(exec, u.id),
  });

  /** A user outside the actor's reach answers exactly like a user that does not exist. */
  const manageableUser = async (exec: Executor, actor: Actor, id: string): Promise<UsersTable> => {
    const u = await repo.findUser(exec, id);
    if (!u || !mayManagePrincipal(actor, await grantOf(exec, u))) throw notFound(`No user with id ${id.slice(0, 60)}.`);
    return u;
  };

  /** Outside any transaction (the denial must be kept even though the request fails): refuses a user out of reach. */
  const checkUserReach = async (actor: Actor, id: string): Promise<void> => {
    const u = await repo.findUser(db, id);
    if (u && !mayManagePrincipal(actor, await grantOf(db, u))) {
      await deniedOutOfReach(actor, 'user', u.id);
      throw notFound(`No user with id ${id.slice(0, 60)}.`);
    }
  };

  /**
   * Someone reached for a person or token outside their reach. They are told "not found", as for
   * one that does not exist; the audit log keeps the attempt as a denial.
   */
  const deniedOutOfReach = (actor: Actor, targetType: 'user' | 'api_token', targetId: string) =>
    audit.recordNow(actor, {
      action: 'auth.denied',
      outcome: 'denied',
      targetType,
      targetId,
      details: { problem: `the ${targetType === 'user' ? 'user' : 'token'} is outside your reach` },
    });

  const sensitive = (actor: Actor, action: SensitiveAction) => requireFreshSecondFactor(actor, action, clock.now(), policy.stepUpMinutes);

  /** People and integrations wait for a second owner; the local CLI (which holds the master key) and system jobs do not. */
  const secondOwnerNeeded = async (exec: Executor, actor: Actor) =>
    (actor.type === 'user' || actor.type === 'token') && !!approvals?.() && (await approvals!()!.twoOwnerRequired(exec));

  /** Clients must exist, and an actor can only grant clients it can see itself. */
  const checkClients = async (exec: Executor, actor: Actor, clients: 'all' | readonly string[]) => {
    if (clients === 'all') {
      if (actor.clients !== 'all') throw forbidden('You can only grant access to clients you can see yourself.');
      return;
    }
    const unique = [...new Set(clients)];
    const existing = await repo.existingClientIds(exec, unique);
    const missing = unique.filter((c) => !existing.includes(c) || (actor.clients !== 'all' && !actor.clients.includes(c)));
    if (missing.length) throw badRequest(`No such client: ${missing.join(', ')}.`, { field: 'clients' });
  };

  /** Nobody hands out more than they hold: every permission of the role, every client. */
  const checkGrant = (actor: Actor, role: Role, clients: 'all' | readonly string[]) => {
    if (clients === 'all' && actor.clients !== 'all') throw forbidden('You can only grant access to clients you can see yourself.');
    // The role against the actor's own clients; the listed clients are checked by checkClients
    // (a client outside the actor's reach is "no such client", as for one that does not exist).
    if (!mayManagePrincipal(actor, { role, clients: actor.clients })) throw forbidden(`You cannot grant the ${role} role: it holds powers you do not have.`);
  };

  // Attempt throttling (sign-in, step-up, second-factor checks), per account and per address, shared
  // through the database. An attempt is reserved before the slow password or code check, under the
  // throttle row's lock, so a burst of parallel guesses is counted in full: once the limit is
  // reached, the rest are refused without being evaluated.
  type Reservation = { key: string; max: number };
  const reserve = async (keys: Reservation[]): Promise<{ ok: true } | { ok: false; wait: number }> =>
    transactions.run(async (t) => {
      const now = clock.now();
      const nowMs = Date.parse(now);
      let wait = 0;
      const rows = [];
      for (const k of keys) {
        const row = await repo.lockThrottle(t, k.key, now);
        rows.push({ k, row });
        if (row.locked_until && Date.parse(row.locked_until) > nowMs) wait = Math.max(wait, Math.ceil((Date.parse(row.locked_until) - nowMs) / 1000));
      }
      if (wait > 0) return { ok: false as const, wait };
      for (const { k, row } of rows) {
        const windowExpired =
          Date.parse(row.window_started_at) < nowMs - policy.loginLockoutMinutes * 60_000 ||
          (row.locked_until !== null && Date.parse(row.locked_until) <= nowMs);
        const failures = windowExpired ? 0 : row.failures;
        if (failures >= k.max) {
          // Back off: each lockout in a row lasts twice as long as the last, up to a day.
          const lockouts = row.lockouts + 1;
          const minutes = Math.min(policy.loginLockoutMinutes * 2 ** (lockouts - 1), MAX_LOCKOUT_MINUTES);
          await repo.saveThrottle(t, { key: k.key, failures: 0, window_started_at: now, lockouts, locked_until: addMinutes(now, minutes) });
          wait = Math.max(wait, minutes * 60);
        }
      }
      if (wait > 0) return { ok: false as const, wait };
      for (const { k, row } of rows) {
        const windowExpired =
          Date.parse(row.window_started_at) < nowMs - policy.loginLockoutMinutes * 60_000 ||
          (row.locked_until !== null && Date.parse(row.locked_until) <= nowMs);
        await repo.saveThrottle(t, {
          key: k.key,
          failures: (windowExpired ? 0 : row.failures) + 1,
          window_started_at: windowExpired ? now : row.window_started_at,
          lockouts: row.lockouts,
          locked_until: null,
        });
      }
      return { ok: true as const };
    });
  /**
   * Public sign-in starts (passkey options, single sign-on redirects) each store a short-lived row
   * before anyone is known: an address may start only START_FACTOR times its failed sign-ins per
   * lockout window, so nobody can fill those tables from one address.
   */
  const reserveStart = async (ip: string | null): Promise<{ ok: true } | { ok: false; wait: number; message: string }> => {
    if (!ip) return { ok: true };
    const r = await reserve([{ key: `start:${ip}`, max: policy.loginMaxFailuresPerIp * START_FACTOR }]);
    return r.ok ? r : { ...r, message: `Too many sign-ins were started from your address. Try again in ${Math.ceil(r.wait / 60)} minutes.` };
  };
  /** Gives back a reserved attempt that turned out not to be a failure. */
  const refund = (exec: Executor, key: string) => repo.refundThrottle(exec, key);
  const lockedMessage = (what: string, wait: number) => `Too many failed ${what}. Try again in ${Math.ceil(wait / 60)} minute${wait > 60 ? 's' : ''}.`;
  const stepUpKeys = (userId: string, ip: string | null | undefined): Reservation[] => [
    { key: `mfa:${userId}`, max: policy.loginMaxFailures },
    ...(ip ? [{ key: `ip:${ip}`, max: policy.loginMaxFailuresPerIp }] : []),
  ];

  /** A login attempt's own audit actor: who they claimed to be, from where. */
  const claimant = (email: string, ip: string | null, userAgent: string | null, userId?: string): Actor => ({
    type: 'user',
    id: userId ?? `login:${email.slice(0, 200)}`,
    name: email.slice(0, 200),
    role: 'client-viewer',
    clients: [],
    ip,
    userAgent,
  });

  /**
   * Whether this person has a second factor of their own: a confirmed authenticator app or a passkey.
   * Every check of "is this person enrolled" goes through here, so a new kind of factor is added once.
   */
  const hasSecondFactor = async (exec: Executor, user: UsersTable): Promise<boolean> =>
    !!user.totp_confirmed_at || (!!passkeys && (await passkeys.countForUser(exec, user.id)) > 0) || !!(await idpSecondFactor?.()?.(exec, user));

  /**
   * Opens a console session for a person who has just proved who they are (by whatever method),
   * in one transaction with the caller's audit record: the cookie and CSRF secrets are returned
   * once and only their hashes are stored. `mfa` says whether a second factor was proven now.
   */
  const openSession = async (
    user: UsersTable,
    how: {
      mfa: boolean;
      method: string;
      ip: string | null;
      userAgent: string | null;
      audit: (tx: Tx) => Promise<unknown>;
      /** Runs in the session's transaction, after its row: the new session's id (e.g. for single sign-on's own record). */
      afterInsert?: (tx: Tx, sessionId: string) => Promise<void>;
    },
  ): Promise<{ sessionToken: string; csrfToken: string }> => {
    const sessionToken = newSecret();
    const csrfToken = newSecret();
    const now = clock.now();
    const sessionId = newId();
    await transactions.run(async (tx) => {
      await repo.insertSession(tx, {
        id: sessionId,
        token_hash: sha256Hex(sessionToken),
        csrf_hash: sha256Hex(csrfToken),
        user_id: user.id,
        created_at: now,
        last_seen_at: now,
        expires_at: addMinutes(now, policy.sessionMaxHours * 60),
        mfa_at: how.mfa ? now : null,
        revoked_at: null,
        ip: how.ip,
        user_agent: how.userAgent?.slice(0, 500) ?? null,
      });
      await repo.updateUser(tx, user.id, { last_login_at: now, failed_logins: 0 });
      if (how.afterInsert) await how.afterInsert(tx, sessionId);
      await how.audit(tx);
    });
    return { sessionToken, csrfToken };
  };

  const checkSecondFactor = async (exec: Executor, user: UsersTable, code: string | undefined): Promise<boolean> => {
    if (!code || !user.totp_secret || !user.totp_confirmed_at) return false;
    const secret = (await keyring.secretCipher(exec)).open(`totp=${user.id}`, user.totp_secret);
    const step = checkTotp(secret, code, Date.parse(clock.now()));
    if (step !== null) {
      // Each code works once, also when the same code arrives twice at the same moment: the step is
      // taken by a conditional update, and only the request whose update changed the row wins.
      if (!(await repo.takeTotpStep(exec, user.id, step))) return false;
      user.totp_last_step = step;
      return true;
    }
    // Not a TOTP code: maybe one of the one-time recovery codes.
    const normalized = code.trim().toLowerCase();
    if (!/^[a-z0-9]{5}-?[a-z0-9]{5}$/.test(normalized)) return false;
    const canonical = normalized.includes('-') ? normalized : `${normalized.slice(0, 5)}-${normalized.slice(5)}`;
    for (const rc of await repo.unusedRecoveryCodes(exec, user.id)) {
      if (await verifyPassword(rc.code_hash, canonical)) return repo.useRecoveryCode(exec, rc.id, clock.now());
    }
    return false;
  };

  const tokenView = async (exec: Executor, t: Awaited<ReturnType<IdentityRepo['findToken']>> & object): Promise<TokenView> => ({
    id: t.id,
    name: t.name,
    prefix: t.token_prefix,
    role: t.role as Role,
    clients: t.all_clients ? 'all' : await repo.tokenClients(exec, t.id),
    createdBy: t.created_by,
    createdAt: t.created_at,
    expiresAt: t.expires_at,
    lastUsedAt: t.last_used_at,
    revokedAt: t.revoked_at,
  });

  /** A token is visible to its creator, and to people who manage users for the users they may manage. */
  const tokenVisible = async (exec: Executor, actor: Actor, createdBy: string): Promise<boolean> => {
    if (createdBy === actor.id) return true;
    if (!can(actor, 'user:manage')) return false;
    const creator = await repo.findUser(exec, createdBy);
    return !!creator && mayManagePrincipal(actor, await grantOf(exec, creator));
  };

  /** Applies a role/clients/status change to a user, inside a transaction (also run by an approval). */
  const applyGrant = async (tx: Tx, actor: Actor, u: UsersTable, next: { role: Role; clients: 'all' | readonly string[]; status: string }) => {
    const now = clock.now();
    const before = await grantOf(tx, u);
    const changes: Partial<UsersTable> = { updated_at: now };
    const grantChanged = next.role !== before.role || JSON.stringify(next.clients) !== JSON.stringify(before.clients);
    if (grantChanged) {
      changes.role = next.role;
      changes.all_clients = next.clients === 'all' ? 1 : 0;
      await repo.setUserClients(tx, u.id, next.clients === 'all' ? [] : [...new Set(next.clients)]);
      await audit.record(tx, actor, {
        action: 'user.role',
        outcome: 'success',
        targetType: 'user',
        targetId: u.id,
        details: { email: u.email, role: next.role, clients: next.clients },
      });
    }
    if (next.status !== u.status) changes.status = next.status;
    // The last active owner of every client cannot be demoted, narrowed or disabled: someone must be able to manage the whole vault.
    const managesVault = (g: { role: Role; clients: 'all' | readonly string[] }) => g.clients === 'all' && ROLE_PERMISSIONS[g.role].includes('user:manage');
    const wasManager = u.status === 'active' && managesVault(before);
    const staysManager = (changes.status ?? u.status) === 'active' && managesVault(next);
    if (wasManager && !staysManager && (await repo.countOwners(tx)) <= 1)
      throw badRequest('This is the last active owner of all clients; make someone else owner of all clients first.');
    await repo.updateUser(tx, u.id, changes);
    if (changes.status === 'disabled') await repo.revokeUserSessions(tx, u.id, now);
    if (changes.status !== undefined) {
      await audit.record(tx, actor, {
        action: 'user.update',
        outcome: 'success',
        targetType: 'user',
        targetId: u.id,
        details: { email: u.email, status: changes.status },
      });
    }
    return { ...u, ...changes };
  };

  /**
   * While two-owner approval is on, a change that gives someone control of the vault (owner powers,
   * or every client) is filed for a second owner instead of being made.
   */
  const needsApproval = async (
    tx: Tx,
    actor: Actor,
    u: { status: string; role: Role; clients: 'all' | readonly string[] } | null,
    next: { status: string; role: Role; clients: 'all' | readonly string[] },
  ) => {
    const before = !!u && u.status === 'active' && grantsVaultControl(u);
    const after = next.status === 'active' && grantsVaultControl(next);
    return after && !before && (await secondOwnerNeeded(tx, actor));
  };

  /**
   * What other sign-in methods in this module (passkeys) build on, so that every method opens its
   * session, counts its attempts and tests for a second factor the same way.
   */
  const signInParts = { openSession, hasSecondFactor, reserve, reserveStart, refund, lockedMessage, claimant, stepUpKeys, view, settingsOf };

  const service = {
    /** For other sign-in methods of the identity module (passkeys): see signInParts. */
    signInParts,
    /** The one session opener, for sign-in methods outside this module (single sign-on, passkeys). */
    openSession,
    /** Whether this person has a second factor of their own (every method counted). */
    hasSecondFactor,
    // ---------------------------------------------------------------- users
    async createUser(actor: Actor, input: { email: string; name?: string; password: string; role: string; clients: 'all' | string[] }): Promise<UserView> {
      requirePermission(actor, 'user:manage');
      sensitive(actor, 'manage users');
      const email = normalizeEmail(input.email);
      if (!EMAIL.test(email) || email.length > 254) throw badRequest(`"${input.email.slice(0, 100)}" is not an e-mail address.`, { field: 'email' });
      validatePassword(input.password);
      const role = validateRole(input.role);
      checkGrant(actor, role, input.clients);
      const passwordHash = await hashPassword(input.password);
      return transactions.run(async (tx) => {
        await checkClients(tx, actor, input.clients);
        if (await repo.findUserByEmail(tx, email)) throw conflict(`A user with the e-mail ${email} already exists.`);
        const now = clock.now();
        const pending = await needsApproval(tx, actor, null, { status: 'active', role, clients: input.clients });
        const row = await newUserRow(
          {
            email,
            name: displayName(input.name) || email,
            passwordHash,
            role: pending ? 'client-viewer' : role,
            allClients: !pending && input.clients === 'all',
            status: pending ? 'disabled' : 'active',
          },
          now,
        );
        await repo.insertUser(tx, row);
        if (!pending && input.clients !== 'all') await repo.setUserClients(tx, row.id, [...new Set(input.clients)]);
        await audit.record(tx, actor, {
          action: 'user.create',
          outcome: 'success',
          targetType: 'user',
          targetId: row.id,
          details: { email, role, clients: input.clients, ...(pending ? { pendingApproval: true } : {}) },
        });
        if (!pending) return view(tx, row);
        // The account exists, disabled and without access, until a second owner approves the grant.
        const approval = await approvals!()!.request(tx, actor, {
          action: APPROVAL_GRANT_USER,
          clientId: null,
          targetType: 'user',
          targetId: row.id,
          reason: `New user ${email} as ${role}${input.clients === 'all' ? ' of all clients' : ''}`,
          params: { userId: row.id, role, clients: input.clients, status: 'active' },
        });
        return { ...(await view(tx, row)), pendingApprovalId: approval.id };
      });
    },

    /** The users this actor may manage: every client of theirs inside the actor's, no power beyond the actor's. */
    async listUsers(actor: Actor): Promise<UserView[]> {
      requirePermission(actor, 'user:manage');
      const rows = await repo.listUsers(db);
      const views = await Promise.all(rows.map((u) => view(db, u)));
      return views.filter((v) => mayManagePrincipal(actor, v));
    },

    async getUser(actor: Actor, id: string): Promise<UserView> {
      requirePermission(actor, 'user:manage');
      await checkUserReach(actor, id);
      return view(db, await manageableUser(db, actor, id));
    },

    async getUserByEmail(actor: Actor, email: string): Promise<UserView> {
      requirePermission(actor, 'user:manage');
      const u = await repo.findUserByEmail(db, normalizeEmail(email));
      if (u && !mayManagePrincipal(actor, await grantOf(db, u))) await deniedOutOfReach(actor, 'user', u.id);
      if (!u || !mayManagePrincipal(actor, await grantOf(db, u))) throw notFound(`No user with the e-mail ${normalizeEmail(email)}.`);
      return view(db, u);
    },

    /** Name, status (disable / enable) and role with its clients. Disabling ends every session. */
    async updateUser(
      actor: Actor,
      id: string,
      patch: { name?: string; status?: 'active' | 'disabled'; role?: string; clients?: 'all' | string[] },
    ): Promise<UserView> {
      requirePermission(actor, 'user:manage');
      sensitive(actor, 'manage users');
      await checkUserReach(actor, id);
      return transactions.run(async (tx) => {
        const u = await manageableUser(tx, actor, id);
        const before = await grantOf(tx, u);
        if (patch.status === 'disabled' && patch.status !== u.status && u.id === actor.id) throw badRequest('You cannot disable your own account.');
        const next = {
          role: patch.role !== undefined ? validateRole(patch.role) : before.role,
          clients: patch.clients ?? before.clients,
          status: patch.status ?? u.status,
        };
        if (patch.role !== undefined || patch.clients !== undefined) {
          checkGrant(actor, next.role, next.clients);
          await checkClients(tx, actor, next.clients);
        }
        let row = u;
        if (patch.name !== undefined) {
          const name = displayName(patch.name) || u.email;
          await repo.updateUser(tx, u.id, { name, updated_at: clock.now() });
          await audit.record(tx, actor, { action: 'user.update', outcome: 'success', targetType: 'user', targetId: u.id, details: { email: u.email, name } });
          row = { ...row, name };
        }
        if (await needsApproval(tx, actor, { status: u.status, ...before }, next)) {
          const approval = await approvals!()!.request(tx, actor, {
            action: APPROVAL_GRANT_USER,
            clientId: null,
            targetType: 'user',
            targetId: u.id,
            reason: `${u.email} as ${next.role}${next.clients === 'all' ? ' of all clients' : ''}`,
            params: { userId: u.id, role: next.role, clients: next.clients, status: next.status },
          });
          return { ...(await view(tx, row)), pendingApprovalId: approval.id };
        }
        return view(tx, await applyGrant(tx, actor, row, next));
      });
    },

    /** Carries out an approved grant (registered with the lifecycle module's approvals). */
    async applyApprovedGrant(tx: Tx, approver: Actor, params: Record<string, unknown>): Promise<{ userId: string }> {
      const userId = String(params.userId ?? '');
      const u = await manageableUser(tx, approver, userId);
      const role = validateRole(String(params.role));
      const clients = params.clients === 'all' ? ('all' as const) : Array.isArray(params.clients) ? params.clients.map(String) : [];
      checkGrant(approver, role, clients);
      await checkClients(tx, approver, clients);
      await applyGrant(tx, approver, u, { role, clients, status: params.status === 'disabled' ? 'disabled' : 'active' });
      return { userId };
    },

    /** An operator sets a new password: every session of that user ends, the lockout is lifted. */
    async resetPassword(actor: Actor, id: string, password: string): Promise<void> {
      requirePermission(actor, 'user:manage');
      sensitive(actor, 'manage users');
      validatePassword(password);
      await checkUserReach(actor, id);
      const hashValue = await hashPassword(password);
      await transactions.run(async (tx) => {
        const u = await manageableUser(tx, actor, id);
        const now = clock.now();
        await repo.updateUser(tx, id, { password_hash: hashValue, password_changed_at: now, updated_at: now, failed_logins: 0, locked_until: null });
        await repo.clearThrottle(tx, `acct:${u.email}`);
        await repo.revokeUserSessions(tx, id, now);
        await audit.record(tx, actor, {
          action: 'user.password',
          outcome: 'success',
          targetType: 'user',
          targetId: id,
          details: { email: u.email, by: 'operator' },
        });
      });
    },

    /** A signed-in user changes their own password, proving the current one. */
    async changeOwnPassword(actor: Actor, current: string, next: string): Promise<void> {
      if (actor.type !== 'user' || !actor.session) throw forbidden('Only a signed-in person can change their password.');
      validatePassword(next);
      const u = await repo.findUser(db, actor.id);
      if (!u) throw badRequest('The current password is not right.', { field: 'currentPassword' });
      const reserved = await reserve([
        { key: `acct:${u.email}`, max: policy.loginMaxFailures },
        ...(actor.ip ? [{ key: `ip:${actor.ip}`, max: policy.loginMaxFailuresPerIp }] : []),
      ]);
      if (!reserved.ok) throw rateLimited(lockedMessage('password checks', reserved.wait), reserved.wait);
      if (!(await verifyPassword(u.password_hash, current))) throw badRequest('The current password is not right.', { field: 'currentPassword' });
      const hashValue = await hashPassword(next);
      await transactions.run(async (tx) => {
        const now = clock.now();
        await repo.updateUser(tx, u.id, { password_hash: hashValue, password_changed_at: now, updated_at: now });
        await repo.clearThrottle(tx, `acct:${u.email}`);
        if (actor.ip) await refund(tx, `ip:${actor.ip}`);
        await repo.revokeUserSessions(tx, u.id, now);
        await audit.record(tx, actor, {
          action: 'user.password',
          outcome: 'success',
          targetType: 'user',
          targetId: u.id,
          details: { email: u.email, by: 'self' },
        });
      });
    },

    // ---------------------------------------------------------------- sign-in
    async login(input: { email: string; password: string; code?: string; ip: string | null; userAgent: string | null }): Promise<LoginResult> {
      const email = normalizeEmail(input.email).slice(0, 254);
      const who = claimant(email, input.ip, input.userAgent);
      const acctKey = `acct:${email}`;
      const ipKey = input.ip ? `ip:${input.ip}` : null;
      const reserved = await reserve([{ key: acctKey, max: policy.loginMaxFailures }, ...(ipKey ? [{ key: ipKey, max: policy.loginMaxFailuresPerIp }] : [])]);
      if (!reserved.ok) {
        await audit.recordNow(who, { action: 'auth.login', outcome: 'locked', details: { email } });
        throw rateLimited(lockedMessage('sign-ins', reserved.wait), reserved.wait);
      }
      const user = await repo.findUserByEmail(db, email);
      const passwordOk = user ? await verifyPassword(user.password_hash, input.password) : (await burnPasswordCheck(input.password), false);
      const fail = async (reason: string, message = 'The e-mail address or password is not right.') => {
        // The attempt was already counted when it was reserved.
        await audit.recordNow(claimant(email, input.ip, input.userAgent, user?.id), { action: 'auth.login', outcome: 'failure', details: { email, reason } });
        throw unauthenticated(message);
      };
      if (!user || !passwordOk) return fail(user ? 'wrong password' : 'unknown account');
      if (user.status !== 'active') return fail('account disabled');
      // Told only to someone who knew the password: it says nothing about which accounts exist.
      if (user.sso_only)
        return fail('single sign-on only', 'This account signs in with single sign-on only: use the "Sign in with …" button of your organisation.');
      const mfaEnrolled = await hasSecondFactor(db, user);
      if (mfaEnrolled) {
        if (!input.code) {
          // Right password, second factor still to come: not a failure, so the attempt is given back
          // (only this one: the count of earlier failures stays).
          await transactions.run(async (tx) => {
            await refund(tx, acctKey);
            if (ipKey) await refund(tx, ipKey);
          });
          const passkey = !!passkeys && (await passkeys.countForUser(db, user.id)) > 0;
          throw new AppError(
            'unauthenticated',
            user.totp_confirmed_at
              ? 'Enter the code from your authenticator app (or a recovery code).'
              : 'Confirm with your passkey: this account has a passkey as its second factor.',
            { mfaRequired: true, passkey, totp: !!user.totp_confirmed_at },
          );
        }
        if (!(await checkSecondFactor(db, user, input.code))) return fail('wrong second factor', 'The authenticator code is not right.');
      }
      const settings = await settingsOf(db);
      const { sessionToken, csrfToken } = await openSession(user, {
        mfa: mfaEnrolled,
        method: 'password',
        ip: input.ip,
        userAgent: input.userAgent,
        audit: (tx) =>
          audit.record(tx, claimant(email, input.ip, input.userAgent, user.id), {
            action: 'auth.login',
            outcome: 'success',
            details: { email, mfa: mfaEnrolled },
          }),
        afterInsert: async (tx) => {
          await repo.clearThrottle(tx, acctKey);
          if (ipKey) await refund(tx, ipKey);
        },
      });
      return { sessionToken, csrfToken, user: await view(db, user), mfaEnrolmentRequired: settings.requireMfa && !mfaEnrolled };
    },

    async logout(actor: Actor): Promise<void> {
      if (!actor.session) return;
      await transactions.run(async (tx) => {
        await repo.updateSession(tx, actor.session!.id, { revoked_at: clock.now() });
        await audit.record(tx, actor, { action: 'auth.logout', outcome: 'success' });
      });
    },

    /**
     * Resolves a session cookie to an actor, or null when it is unknown, revoked, expired (idle or
     * absolute) or its user is disabled. Activity moves the idle clock at most once a minute.
     */
    async authenticateSession(sessionToken: string, ctx: { ip: string | null; userAgent: string | null }): Promise<Actor | null> {
      if (!sessionToken || sessionToken.length > 200) return null;
      const s = await repo.findSessionByHash(db, sha256Hex(sessionToken));
      if (!s || s.revoked_at) return null;
      const now = clock.now();
      const nowMs = Date.parse(now);
      if (Date.parse(s.expires_at) <= nowMs) return null;
      if (Date.parse(s.last_seen_at) + policy.sessionIdleMinutes * 60_000 <= nowMs) return null;
      const u = await repo.findUser(db, s.user_id);
      if (!u || u.status !== 'active') return null;
      if (nowMs - Date.parse(s.last_seen_at) > 60_000) await repo.updateSession(db, s.id, { last_seen_at: now });
      const clients = u.all_clients ? ('all' as const) : await repo.userClients(db, u.id);
      const settings = await settingsOf(db);
      const secondFactor = await hasSecondFactor(db, u);
      return {
        type: 'user',
        id: u.id,
        name: u.email,
        role: u.role as Role,
        clients,
        revealClients: clients !== 'all' ? await repo.revealableClients(db, clients) : undefined,
        session: {
          id: s.id,
          mfaAt: s.mfa_at,
          mfaEnrolled: secondFactor,
          mfaEnrolmentRequired: settings.requireMfa && !secondFactor,
        },
        ip: ctx.ip,
        userAgent: ctx.userAgent,
      };
    },

    /** True when the CSRF token belongs to this session. */
    async checkCsrf(sessionToken: string, csrfToken: string): Promise<boolean> {
      if (!csrfToken || csrfToken.length > 200) return false;
      const s = await repo.findSessionByHash(db, sha256Hex(sessionToken));
      return !!s && sameHash(s.csrf_hash, sha256Hex(csrfToken));
    },

    /**
     * Proves the second factor again inside a session (before a reveal, for example). Throttled and
     * locked per account and per address like sign-in, the attempt reserved before the check.
     */
    async stepUp(actor: Actor, code: string): Promise<{ mfaAt: string }> {
      if (!actor.session) throw forbidden('Step-up is for signed-in people; API tokens do not have a second factor.');
      const u = await repo.findUser(db, actor.id);
      if (!u?.totp_confirmed_at) throw badRequest('Set up an authenticator app first (POST /api/v1/me/mfa).');
      const keys = stepUpKeys(u.id, actor.ip);
      const reserved = await reserve(keys);
      if (!reserved.ok) {
        await audit.recordNow(actor, { action: 'auth.step_up', outcome: 'locked' });
        throw rateLimited(lockedMessage('authenticator codes', reserved.wait), reserved.wait);
      }
      const good = await checkSecondFactor(db, u, code);
      await transactions.run(async (tx) => {
        await audit.record(tx, actor, { action: 'auth.step_up', outcome: good ? 'success' : 'failure' });
        if (good) {
          await repo.updateSession(tx, actor.session!.id, { mfa_at: clock.now() });
          await repo.clearThrottle(tx, keys[0]!.key);
          if (keys[1]) await refund(tx, keys[1].key);
        }
      });
      if (!good) throw badRequest('The authenticator code is not right.', { field: 'code' });
      actor.session.mfaAt = clock.now();
      return { mfaAt: actor.session.mfaAt };
    },

    // ---------------------------------------------------------------- second factor
    /** Starts TOTP enrolment: a new secret, not active until confirmed with a code. */
    async beginMfa(actor: Actor): Promise<{ secret: string; otpauthUri: string }> {
      if (!actor.session) throw forbidden('Only a signed-in person can set up an authenticator app.');
      const u = await repo.findUser(db, actor.id);
      if (!u) throw notFound('No such user.');
      if (u.totp_confirmed_at) throw conflict('An authenticator app is already set up; remove it first to set up another.');
      const secret = newTotpSecret();
      await transactions.run(async (tx) => {
        const sealed = (await keyring.secretCipher(tx)).seal(`totp=${u.id}`, secret);
        await repo.updateUser(tx, u.id, { totp_secret: sealed, updated_at: clock.now() });
      });
      return { secret, otpauthUri: totpUri(secret, u.email) };
    },

    /** Confirms enrolment with a first code; returns the one-time recovery codes, shown only now. */
    async confirmMfa(actor: Actor, code: string): Promise<{ recoveryCodes: string[] }> {
      if (!actor.session) throw forbidden('Only a signed-in person can set up an authenticator app.');
      const u = await repo.findUser(db, actor.id);
      if (!u?.totp_secret) throw badRequest('Start the set-up first (POST /api/v1/me/mfa).');
      if (u.totp_confirmed_at) throw conflict('The authenticator app is already confirmed.');
      const keys = stepUpKeys(u.id, actor.ip);
      const reserved = await reserve(keys);
      if (!reserved.ok) throw rateLimited(lockedMessage('authenticator codes', reserved.wait), reserved.wait);
      const secret = (await keyring.secretCipher(db)).open(`totp=${u.id}`, u.totp_secret);
      const step = checkTotp(secret, code, Date.parse(clock.now()));
      if (step === null) throw badRequest('The authenticator code is not right.', { field: 'code' });
      const codes = Array.from({ length: RECOVERY_CODES }, newRecoveryCode);
      const hashes = await Promise.all(codes.map((c) => hashPassword(c)));
      const now = clock.now();
      await transactions.run(async (tx) => {
        await repo.updateUser(tx, u.id, { totp_confirmed_at: now, totp_last_step: step, updated_at: now });
        await repo.replaceRecoveryCodes(
          tx,
          u.id,
          hashes.map((h) => ({ id: newId(), code_hash: h, created_at: now })),
        );
        await repo.updateSession(tx, actor.session!.id, { mfa_at: now });
        await repo.clearThrottle(tx, keys[0]!.key);
        if (keys[1]) await refund(tx, keys[1].key);
        await audit.record(tx, actor, { action: 'mfa.enrol', outcome: 'success', targetType: 'user', targetId: u.id });
      });
      actor.session.mfaAt = now;
      actor.session.mfaEnrolled = true;
      actor.session.mfaEnrolmentRequired = false;
      return { recoveryCodes: codes };
    },

    /** Removes the authenticator app, proving a current code (throttled like step-up); refused while the owner requires one. */
    async disableMfa(actor: Actor, code: string): Promise<void> {
      if (!actor.session) throw forbidden('Only a signed-in person can remove their authenticator app.');
      if ((await settingsOf(db)).requireMfa) throw badRequest('A second factor is required for everyone; it cannot be removed.');
      const u = await repo.findUser(db, actor.id);
      if (!u?.totp_confirmed_at) throw badRequest('No authenticator app is set up.');
      const keys = stepUpKeys(u.id, actor.ip);
      const reserved = await reserve(keys);
      if (!reserved.ok) {
        await audit.recordNow(actor, { action: 'mfa.disable', outcome: 'locked', targetType: 'user', targetId: u.id });
        throw rateLimited(lockedMessage('authenticator codes', reserved.wait), reserved.wait);
      }
      if (!(await checkSecondFactor(db, u, code))) {
        await audit.recordNow(actor, { action: 'mfa.disable', outcome: 'failure', targetType: 'user', targetId: u.id });
        throw badRequest('The authenticator code is not right.', { field: 'code' });
      }
      await transactions.run(async (tx) => {
        await repo.updateUser(tx, u.id, { totp_secret: null, totp_confirmed_at: null, totp_last_step: null, updated_at: clock.now() });
        await repo.replaceRecoveryCodes(tx, u.id, []);
        await repo.clearThrottle(tx, keys[0]!.key);
        if (keys[1]) await refund(tx, keys[1].key);
        await audit.record(tx, actor, { action: 'mfa.disable', outcome: 'success', targetType: 'user', targetId: u.id });
      });
    },

    // ---------------------------------------------------------------- API tokens
    async createToken(
      actor: Actor,
      input: { name: string; role: string; clients: 'all' | string[]; expiresInDays?: number | null },
    ): Promise<{ token: string; view: TokenView }> {
      requirePermission(actor, 'token:manage');
      sensitive(actor, 'mint an API token');
      const name = input.name.trim();
      if (!name || name.length > 100) throw badRequest('A token needs a name of 1 to 100 characters.', { field: 'name' });
      const role = validateRole(input.role);
      checkGrant(actor, role, input.clients);
      const days = input.expiresInDays ?? 90;
      if (!Number.isInteger(days) || days < 1 || days > 3650)
        throw badRequest('expiresInDays must be a whole number from 1 to 3650.', { field: 'expiresInDays' });
      const token = newSecret(API_TOKEN_PREFIX);
      const now = clock.now();
      return transactions.run(async (tx) => {
        await checkClients(tx, actor, input.clients);
        const row = {
          id: newId(),
          name,
          token_hash: sha256Hex(token),
          token_prefix: token.slice(0, API_TOKEN_PREFIX.length + 6),
          role,
          all_clients: input.clients === 'all' ? 1 : 0,
          created_by: actor.id,
          created_at: now,
          expires_at: addMinutes(now, days * 24 * 60),
          last_used_at: null,
          revoked_at: null,
        };
        await repo.insertToken(tx, row, input.clients === 'all' ? [] : [...new Set(input.clients)]);
        await audit.record(tx, actor, {
          action: 'token.create',
          outcome: 'success',
          targetType: 'api_token',
          targetId: row.id,
          details: { name, role, clients: input.clients, expiresAt: row.expires_at },
        });
        return { token, view: await tokenView(tx, row) };
      });
    },

    /** Your own tokens; people who manage users also see the tokens of the users they may manage. */
    async listTokens(actor: Actor): Promise<TokenView[]> {
      requirePermission(actor, 'token:manage');
      const rows = await repo.listTokens(db, null);
      const visible = [];
      for (const t of rows) if (await tokenVisible(db, actor, t.created_by)) visible.push(t);
      return Promise.all(visible.map((t) => tokenView(db, t)));
    },

    async revokeToken(actor: Actor, id: string): Promise<void> {
      requirePermission(actor, 'token:manage');
      const existing = await repo.findToken(db, id);
      if (existing && !(await tokenVisible(db, actor, existing.created_by))) {
        await deniedOutOfReach(actor, 'api_token', existing.id);
        throw notFound(`No API token with id ${id.slice(0, 60)}.`);
      }
      await transactions.run(async (tx) => {
        const t = await repo.findToken(tx, id);
        if (!t || !(await tokenVisible(tx, actor, t.created_by))) throw notFound(`No API token with id ${id.slice(0, 60)}.`);
        if (t.revoked_at) return;
        await repo.updateToken(tx, id, { revoked_at: clock.now() });
        await audit.record(tx, actor, { action: 'token.revoke', outcome: 'success', targetType: 'api_token', targetId: id, details: { name: t.name } });
      });
    },

    /**
     * Resolves a bearer token, or null when it is unknown, revoked or expired, or its creator is
     * disabled or gone. A token is never worth more than its creator is now: at every request its
     * permissions and clients are what it was granted intersected with what the creator holds today.
     */
    async authenticateToken(token: string, ctx: { ip: string | null; userAgent: string | null }): Promise<Actor | null> {
      if (!token.startsWith(API_TOKEN_PREFIX) || token.length > 200) return null;
      const t = await repo.findTokenByHash(db, sha256Hex(token));
      const now = clock.now();
      if (!t || t.revoked_at || (t.expires_at && Date.parse(t.expires_at) <= Date.parse(now))) return null;
      const creator = await repo.findUser(db, t.created_by);
      if (!creator || creator.status !== 'active') return null;
      const grant = tokenGrant(
        { role: t.role as Role, clients: t.all_clients ? 'all' : await repo.tokenClients(db, t.id) },
        { ...(await grantOf(db, creator)), active: true },
      );
      if (!t.last_used_at || Date.parse(now) - Date.parse(t.last_used_at) > 60_000) await repo.updateToken(db, t.id, { last_used_at: now });
      return {
        type: 'token',
        id: `token:${t.id}`,
        name: `token ${t.name} (${t.token_prefix}…)`,
        role: t.role as Role,
        clients: grant.clients,
        permissions: grant.permissions,
        revealClients: grant.clients !== 'all' ? await repo.revealableClients(db, grant.clients) : undefined,
        ip: ctx.ip,
        userAgent: ctx.userAgent,
      };
    },

    // ---------------------------------------------------------------- me
    async me(actor: Actor): Promise<{
      actor: { type: string; id: string; name: string; role: Role; clients: 'all' | string[] };
      permissions: Permission[];
      revealClients: 'all' | string[];
      user: UserView | null;
      mfaEnrolmentRequired: boolean;
      stepUpValidUntil: string | null;
      secondFactorMissing: boolean;
    }> {
      const u = actor.type === 'user' ? await repo.findUser(db, actor.id) : undefined;
      const mfaAt = actor.session?.mfaAt;
      const permissions = [...permissionsOf(actor)].filter((p) => can(actor, p));
      const reveal = revealScope(actor);
      return {
        actor: { type: actor.type, id: actor.id, name: actor.name, role: actor.role, clients: actor.clients === 'all' ? 'all' : [...actor.clients] },
        permissions,
        revealClients: !can(actor, 'key:reveal') ? [] : reveal === null ? 'all' : [...reveal],
        user: u ? await view(db, u) : null,
        mfaEnrolmentRequired: actor.session?.mfaEnrolmentRequired ?? false,
        stepUpValidUntil: mfaAt ? addMinutes(mfaAt, policy.stepUpMinutes) : null,
        // The console nags people who manage others (owners) until they have a second factor.
        secondFactorMissing: !!u && can(actor, 'user:manage') && !(await hasSecondFactor(db, u)),
      };
    },

    // ---------------------------------------------------------------- invitations (issue 19, item 3)
    // The invitations service (invitations.service.ts) owns the flow; these are the identity rules it
    // must not re-implement: the grant checks of createUser, one session opener, attempt throttling.

    /**
     * The checks createUser makes, for an invitation to this e-mail with this role and clients: the
     * actor manages users with a fresh second factor, grants nothing beyond their own, only clients
     * they see, and nobody has the e-mail yet. `secondOwnerNeeded`: the grant gives control of the
     * vault while two-owner approval is on.
     */
    async checkInvitationGrant(
      exec: Executor,
      actor: Actor,
      input: { email: string; role: string; clients: 'all' | readonly string[] },
    ): Promise<{ email: string; role: Role; clients: 'all' | string[]; secondOwnerNeeded: boolean }> {
      requirePermission(actor, 'user:invite');
      sensitive(actor, 'manage users');
      const email = normalizeEmail(input.email);
      if (!EMAIL.test(email) || email.length > 254) throw badRequest(`"${input.email.slice(0, 100)}" is not an e-mail address.`, { field: 'email' });
      const role = validateRole(input.role);
      checkGrant(actor, role, input.clients);
      await checkClients(exec, actor, input.clients);
      if (await repo.findUserByEmail(exec, email)) throw conflict(`A user with the e-mail ${email} already exists.`);
      const clients = input.clients === 'all' ? ('all' as const) : [...new Set(input.clients)];
      return { email, role, clients, secondOwnerNeeded: grantsVaultControl({ role, clients }) && (await secondOwnerNeeded(exec, actor)) };
    },

    /** The person as an actor with their role and clients of now (no session), or null when disabled or gone. */
    async userActor(exec: Executor, userId: string): Promise<Actor | null> {
      const u = await repo.findUser(exec, userId);
      if (!u || u.status !== 'active') return null;
      const clients = u.all_clients ? ('all' as const) : await repo.userClients(exec, u.id);
      return { type: 'user', id: u.id, name: u.email, role: u.role as Role, clients };
    },

    /**
     * Creates the invited person inside the caller's transaction, the grant checked against the
     * inviter's CURRENT role and clients (a demoted, narrowed or disabled inviter grants nothing).
     * `approved`: a second owner approved the grant (needed while two-owner approval is on and the
     * grant gives control of the vault). `passwordHash` null: no password (single sign-on).
     */
    async createInvitedUser(
      tx: Tx,
      inviter: Actor,
      input: { email: string; name?: string; passwordHash: string | null; role: Role; clients: 'all' | readonly string[]; approved: boolean },
    ): Promise<UsersTable> {
      requirePermission(inviter, 'user:invite');
      checkGrant(inviter, input.role, input.clients);
      await checkClients(tx, inviter, input.clients);
      if (!input.approved && grantsVaultControl(input) && (await secondOwnerNeeded(tx, inviter)))
        throw forbidden("This grant needs a second owner's approval.");
      const email = normalizeEmail(input.email);
      if (await repo.findUserByEmail(tx, email)) throw conflict(`A user with the e-mail ${email} already exists.`);
      const now = clock.now();
      const row = await newUserRow(
        { email, name: displayName(input.name) || email, passwordHash: input.passwordHash, role: input.role, allClients: input.clients === 'all' },
        now,
      );
      await repo.insertUser(tx, row);
      if (input.clients !== 'all') await repo.setUserClients(tx, row.id, [...new Set(input.clients)]);
      return row;
    },

    /** Opens a session for a person who just proved who they are (through openSession), as login answers. */
    async sessionFor(
      user: UsersTable,
      how: { mfa: boolean; method: string; ip: string | null; userAgent: string | null; audit: (tx: Tx) => Promise<unknown> },
    ): Promise<LoginResult> {
      const { sessionToken, csrfToken } = await openSession(user, how);
      const mfaEnrolled = await hasSecondFactor(db, user);
      return { sessionToken, csrfToken, user: await view(db, user), mfaEnrolmentRequired: (await settingsOf(db)).requireMfa && !mfaEnrolled };
    },

    /** Reserves one attempt under these throttle keys (see `reserve`); false with the wait when locked. */
    async reserveAttempt(keys: { key: string; max: number }[]): Promise<{ ok: true } | { ok: false; wait: number; message: string }> {
      const r = await reserve(keys);
      return r.ok ? r : { ...r, message: lockedMessage('attempts', r.wait) };
    },
    refundAttempt: (key: string) => refund(db, key),

    /** First owner, created by `keywarden init` (or `user add` on the command line). */
    async bootstrapUser(actor: Actor, input: { email: string; password: string; role?: Role; name?: string }): Promise<UserView> {
      return service.createUser(actor, { email: input.email, password: input.password, role: input.role ?? 'owner', clients: 'all', name: input.name });
    },

    async hasUsers(): Promise<boolean> {
      return (await repo.listUsers(db)).length > 0;
    },
  };
  return service;
}
export type IdentityService = ReturnType<typeof createIdentityService>;
