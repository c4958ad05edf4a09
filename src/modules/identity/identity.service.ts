import type { Db, Executor } from '../../db/database.js';
import type { UsersTable } from '../../db/schema.js';
import type { Policy } from '../../config.js';
import type { Keyring } from '../../crypto/keyring.js';
import { burnPasswordCheck, hashPassword, verifyPassword } from '../../crypto/passwords.js';
import { newRecoveryCode, newSecret, sameHash, sha256Hex } from '../../crypto/tokens.js';
import { checkTotp, newTotpSecret, totpUri } from '../../crypto/totp.js';
import type { Clock } from '../../lib/clock.js';
import { newId } from '../../lib/ids.js';
import { AppError, badRequest, conflict, forbidden, notFound, rateLimited, unauthenticated } from '../../lib/errors.js';
import { ROLE_RANK, ROLES, requirePermission, type Actor, type Role } from '../authz/authz.js';
import type { AuditService } from '../audit/audit.service.js';
import type { IdentityRepo } from './identity.repo.js';
import type { LoginResult, Settings, TokenView, UserView } from './identity.types.js';

type Deps = {
  db: Db;
  repo: IdentityRepo;
  keyring: Pick<Keyring<Executor>, 'secretCipher'>;
  audit: Pick<AuditService, 'record' | 'recordNow'>;
  clock: Clock;
  policy: Policy;
};

const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
const MIN_PASSWORD = 12;
const MAX_PASSWORD = 256;
const MAX_LOCKOUT_MINUTES = 24 * 60;
const RECOVERY_CODES = 10;
export const API_TOKEN_PREFIX = 'kw_';

const addMinutes = (iso: string, minutes: number) => new Date(Date.parse(iso) + minutes * 60_000).toISOString();
const normalizeEmail = (e: string) => e.trim().toLowerCase();

export function validatePassword(password: string): void {
  if (password.length < MIN_PASSWORD) throw badRequest(`A password needs at least ${MIN_PASSWORD} characters.`, { field: 'password' });
  if (password.length > MAX_PASSWORD) throw badRequest(`A password can be at most ${MAX_PASSWORD} characters.`, { field: 'password' });
}

function validateRole(role: string): Role {
  if (!(ROLES as readonly string[]).includes(role)) throw badRequest(`Unknown role "${role}". Roles: ${ROLES.join(', ')}.`, { field: 'role' });
  return role as Role;
}

export function createIdentityService({ db, repo, keyring, audit, clock, policy }: Deps) {
  const view = async (exec: Executor, u: UsersTable): Promise<UserView> => ({
    id: u.id,
    email: u.email,
    name: u.name,
    role: u.role as Role,
    clients: u.all_clients ? 'all' : await repo.userClients(exec, u.id),
    status: u.status as UserView['status'],
    mfaEnabled: !!u.totp_confirmed_at,
    lastLoginAt: u.last_login_at,
    createdAt: u.created_at,
  });

  const settingsOf = async (exec: Executor): Promise<Settings> => {
    const s = await repo.settings(exec);
    return { requireMfa: s.require_mfa === 'true' };
  };

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

  const checkGrant = (actor: Actor, role: Role) => {
    if (ROLE_RANK[role] > ROLE_RANK[actor.role]) throw forbidden(`You cannot grant the ${role} role: it is above your own.`);
  };

  // Failed-login throttling, per account name and per address, shared through the database.
  const throttleKeys = (email: string, ip: string | null) => [`acct:${email}`, ...(ip ? [`ip:${ip}`] : [])];
  const lockedFor = async (exec: Executor, keys: string[]): Promise<number> => {
    const now = Date.parse(clock.now());
    let wait = 0;
    for (const key of keys) {
      const row = await repo.throttle(exec, key);
      if (row?.locked_until) wait = Math.max(wait, Math.ceil((Date.parse(row.locked_until) - now) / 1000));
    }
    return wait;
  };
  const recordFailure = async (exec: Executor, key: string, max: number) => {
    const now = clock.now();
    const row = await repo.throttle(exec, key);
    const windowExpired = !row || Date.parse(row.window_started_at) < Date.parse(now) - policy.loginLockoutMinutes * 60_000;
    let failures = (windowExpired ? 0 : row!.failures) + 1;
    let lockouts = row?.lockouts ?? 0;
    let lockedUntil: string | null = null;
    if (failures >= max) {
      // Back off: each lockout in a row lasts twice as long as the last, up to a day.
      lockouts += 1;
      lockedUntil = addMinutes(now, Math.min(policy.loginLockoutMinutes * 2 ** (lockouts - 1), MAX_LOCKOUT_MINUTES));
      failures = 0;
    }
    await repo.saveThrottle(exec, {
      key,
      failures,
      window_started_at: windowExpired ? now : row!.window_started_at,
      lockouts,
      locked_until: lockedUntil,
    });
  };

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

  const checkSecondFactor = async (exec: Executor, user: UsersTable, code: string | undefined): Promise<boolean> => {
    if (!code || !user.totp_secret || !user.totp_confirmed_at) return false;
    const secret = (await keyring.secretCipher(exec)).open(`totp=${user.id}`, user.totp_secret);
    const step = checkTotp(secret, code, Date.parse(clock.now()));
    if (step !== null) {
      // Each code works once: a code seen over someone's shoulder is spent.
      if (user.totp_last_step !== null && step <= user.totp_last_step) return false;
      await repo.updateUser(exec, user.id, { totp_last_step: step });
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

  const service = {
    // ---------------------------------------------------------------- users
    async createUser(
      actor: Actor,
      input: { email: string; name?: string; password: string; role: string; clients: 'all' | string[] },
    ): Promise<UserView> {
      requirePermission(actor, 'user:manage');
      const email = normalizeEmail(input.email);
      if (!EMAIL.test(email) || email.length > 254) throw badRequest(`"${input.email.slice(0, 100)}" is not an e-mail address.`, { field: 'email' });
      validatePassword(input.password);
      const role = validateRole(input.role);
      checkGrant(actor, role);
      const passwordHash = await hashPassword(input.password);
      return db.transaction().execute(async (tx) => {
        await checkClients(tx, actor, input.clients);
        if (await repo.findUserByEmail(tx, email)) throw conflict(`A user with the e-mail ${email} already exists.`);
        const now = clock.now();
        const row: UsersTable = {
          id: newId(),
          email,
          name: (input.name ?? '').trim().slice(0, 200) || email,
          password_hash: passwordHash,
          role,
          all_clients: input.clients === 'all' ? 1 : 0,
          status: 'active',
          totp_secret: null,
          totp_confirmed_at: null,
          totp_last_step: null,
          failed_logins: 0,
          lockouts: 0,
          locked_until: null,
          last_login_at: null,
          password_changed_at: now,
          created_at: now,
          updated_at: now,
        };
        await repo.insertUser(tx, row);
        if (input.clients !== 'all') await repo.setUserClients(tx, row.id, [...new Set(input.clients)]);
        await audit.record(tx, actor, { action: 'user.create', outcome: 'success', targetType: 'user', targetId: row.id, details: { email, role, clients: input.clients } });
        return view(tx, row);
      });
    },

    async listUsers(actor: Actor): Promise<UserView[]> {
      requirePermission(actor, 'user:manage');
      const rows = await repo.listUsers(db);
      return Promise.all(rows.map((u) => view(db, u)));
    },

    async getUser(actor: Actor, id: string): Promise<UserView> {
      requirePermission(actor, 'user:manage');
      const u = await repo.findUser(db, id);
      if (!u) throw notFound(`No user with id ${id}.`);
      return view(db, u);
    },

    async getUserByEmail(actor: Actor, email: string): Promise<UserView> {
      requirePermission(actor, 'user:manage');
      const u = await repo.findUserByEmail(db, normalizeEmail(email));
      if (!u) throw notFound(`No user with the e-mail ${normalizeEmail(email)}.`);
      return view(db, u);
    },

    /** Name, status (disable / enable) and role with its clients. Disabling ends every session. */
    async updateUser(
      actor: Actor,
      id: string,
      patch: { name?: string; status?: 'active' | 'disabled'; role?: string; clients?: 'all' | string[] },
    ): Promise<UserView> {
      requirePermission(actor, 'user:manage');
      return db.transaction().execute(async (tx) => {
        const u = await repo.findUser(tx, id);
        if (!u) throw notFound(`No user with id ${id}.`);
        const now = clock.now();
        const changes: Partial<UsersTable> = { updated_at: now };
        if (patch.name !== undefined) changes.name = patch.name.trim().slice(0, 200) || u.email;
        if (patch.status && patch.status !== u.status) {
          if (u.id === actor.id && patch.status === 'disabled') throw badRequest('You cannot disable your own account.');
          changes.status = patch.status;
        }
        if (patch.role !== undefined || patch.clients !== undefined) {
          const role = patch.role !== undefined ? validateRole(patch.role) : (u.role as Role);
          checkGrant(actor, role);
          const clients = patch.clients ?? (u.all_clients ? 'all' : await repo.userClients(tx, u.id));
          await checkClients(tx, actor, clients);
          changes.role = role;
          changes.all_clients = clients === 'all' ? 1 : 0;
          await repo.setUserClients(tx, u.id, clients === 'all' ? [] : [...new Set(clients)]);
          await audit.record(tx, actor, { action: 'user.role', outcome: 'success', targetType: 'user', targetId: u.id, details: { email: u.email, role, clients } });
        }
        // The last active owner cannot be demoted or disabled: someone must be able to manage the vault.
        const losesOwner = u.role === 'owner' && u.status === 'active' && ((changes.role && changes.role !== 'owner') || changes.status === 'disabled');
        if (losesOwner && (await repo.countOwners(tx)) <= 1) throw badRequest('This is the last active owner; make someone else owner first.');
        await repo.updateUser(tx, u.id, changes);
        if (changes.status === 'disabled') await repo.revokeUserSessions(tx, u.id, now);
        if (changes.name !== undefined || changes.status !== undefined) {
          await audit.record(tx, actor, {
            action: 'user.update',
            outcome: 'success',
            targetType: 'user',
            targetId: u.id,
            details: { email: u.email, ...(changes.status ? { status: changes.status } : {}), ...(changes.name ? { name: changes.name } : {}) },
          });
        }
        return view(tx, { ...u, ...changes });
      });
    },

    /** An operator sets a new password: every session of that user ends, the lockout is lifted. */
    async resetPassword(actor: Actor, id: string, password: string): Promise<void> {
      requirePermission(actor, 'user:manage');
      validatePassword(password);
      const hashValue = await hashPassword(password);
      await db.transaction().execute(async (tx) => {
        const u = await repo.findUser(tx, id);
        if (!u) throw notFound(`No user with id ${id}.`);
        const now = clock.now();
        await repo.updateUser(tx, id, { password_hash: hashValue, password_changed_at: now, updated_at: now, failed_logins: 0, locked_until: null });
        await repo.clearThrottle(tx, `acct:${u.email}`);
        await repo.revokeUserSessions(tx, id, now);
        await audit.record(tx, actor, { action: 'user.password', outcome: 'success', targetType: 'user', targetId: id, details: { email: u.email, by: 'operator' } });
      });
    },

    /** A signed-in user changes their own password, proving the current one. */
    async changeOwnPassword(actor: Actor, current: string, next: string): Promise<void> {
      if (actor.type !== 'user' || !actor.session) throw forbidden('Only a signed-in person can change their password.');
      validatePassword(next);
      const u = await repo.findUser(db, actor.id);
      if (!u || !(await verifyPassword(u.password_hash, current))) throw badRequest('The current password is not right.', { field: 'currentPassword' });
      const hashValue = await hashPassword(next);
      await db.transaction().execute(async (tx) => {
        const now = clock.now();
        await repo.updateUser(tx, u.id, { password_hash: hashValue, password_changed_at: now, updated_at: now });
        await repo.revokeUserSessions(tx, u.id, now);
        await audit.record(tx, actor, { action: 'user.password', outcome: 'success', targetType: 'user', targetId: u.id, details: { email: u.email, by: 'self' } });
      });
    },

    // ---------------------------------------------------------------- sign-in
    async login(input: { email: string; password: string; code?: string; ip: string | null; userAgent: string | null }): Promise<LoginResult> {
      const email = normalizeEmail(input.email).slice(0, 254);
      const who = claimant(email, input.ip, input.userAgent);
      const keys = throttleKeys(email, input.ip);
      const wait = await lockedFor(db, keys);
      if (wait > 0) {
        await audit.recordNow(who, { action: 'auth.login', outcome: 'locked', details: { email } });
        throw rateLimited(`Too many failed sign-ins. Try again in ${Math.ceil(wait / 60)} minute${wait > 60 ? 's' : ''}.`, wait);
      }
      const user = await repo.findUserByEmail(db, email);
      const passwordOk = user ? await verifyPassword(user.password_hash, input.password) : (await burnPasswordCheck(input.password), false);
      const fail = async (reason: string, message = 'The e-mail address or password is not right.') => {
        await db.transaction().execute(async (tx) => {
          await recordFailure(tx, `acct:${email}`, policy.loginMaxFailures);
          if (input.ip) await recordFailure(tx, `ip:${input.ip}`, policy.loginMaxFailuresPerIp);
          await audit.record(tx, claimant(email, input.ip, input.userAgent, user?.id), { action: 'auth.login', outcome: 'failure', details: { email, reason } });
        });
        throw unauthenticated(message);
      };
      if (!user || !passwordOk) return fail(user ? 'wrong password' : 'unknown account');
      if (user.status !== 'active') return fail('account disabled');
      const mfaEnrolled = !!user.totp_confirmed_at;
      if (mfaEnrolled) {
        if (!input.code) {
          // Right password, second factor still to come: not a failure, and nothing is created yet.
          throw new AppError('unauthenticated', 'Enter the code from your authenticator app (or a recovery code).', { mfaRequired: true });
        }
        if (!(await checkSecondFactor(db, user, input.code))) return fail('wrong second factor', 'The authenticator code is not right.');
      }
      const settings = await settingsOf(db);
      const sessionToken = newSecret();
      const csrfToken = newSecret();
      const now = clock.now();
      await db.transaction().execute(async (tx) => {
        await repo.insertSession(tx, {
          id: newId(),
          token_hash: sha256Hex(sessionToken),
          csrf_hash: sha256Hex(csrfToken),
          user_id: user.id,
          created_at: now,
          last_seen_at: now,
          expires_at: addMinutes(now, policy.sessionMaxHours * 60),
          mfa_at: mfaEnrolled ? now : null,
          revoked_at: null,
          ip: input.ip,
          user_agent: input.userAgent?.slice(0, 500) ?? null,
        });
        await repo.updateUser(tx, user.id, { last_login_at: now, failed_logins: 0 });
        await repo.clearThrottle(tx, `acct:${email}`);
        await audit.record(tx, claimant(email, input.ip, input.userAgent, user.id), { action: 'auth.login', outcome: 'success', details: { email, mfa: mfaEnrolled } });
      });
      return { sessionToken, csrfToken, user: await view(db, user), mfaEnrolmentRequired: settings.requireMfa && !mfaEnrolled };
    },

    async logout(actor: Actor): Promise<void> {
      if (!actor.session) return;
      await db.transaction().execute(async (tx) => {
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
      return {
        type: 'user',
        id: u.id,
        name: u.email,
        role: u.role as Role,
        clients,
        revealClients: u.role === 'client-viewer' && clients !== 'all' ? await repo.revealableClients(db, clients) : undefined,
        session: {
          id: s.id,
          mfaAt: s.mfa_at,
          mfaEnrolled: !!u.totp_confirmed_at,
          mfaEnrolmentRequired: settings.requireMfa && !u.totp_confirmed_at,
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

    /** Proves the second factor again inside a session (before a reveal, for example). */
    async stepUp(actor: Actor, code: string): Promise<{ mfaAt: string }> {
      if (!actor.session) throw forbidden('Step-up is for signed-in people; API tokens do not have a second factor.');
      const u = await repo.findUser(db, actor.id);
      if (!u?.totp_confirmed_at) throw badRequest('Set up an authenticator app first (POST /api/v1/me/mfa).');
      const ok = await db.transaction().execute(async (tx) => {
        const good = await checkSecondFactor(tx, u, code);
        await audit.record(tx, actor, { action: 'auth.step_up', outcome: good ? 'success' : 'failure' });
        if (good) await repo.updateSession(tx, actor.session!.id, { mfa_at: clock.now() });
        return good;
      });
      if (!ok) throw badRequest('The authenticator code is not right.', { field: 'code' });
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
      await db.transaction().execute(async (tx) => {
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
      const secret = (await keyring.secretCipher(db)).open(`totp=${u.id}`, u.totp_secret);
      const step = checkTotp(secret, code, Date.parse(clock.now()));
      if (step === null) throw badRequest('The authenticator code is not right.', { field: 'code' });
      const codes = Array.from({ length: RECOVERY_CODES }, newRecoveryCode);
      const hashes = await Promise.all(codes.map((c) => hashPassword(c)));
      const now = clock.now();
      await db.transaction().execute(async (tx) => {
        await repo.updateUser(tx, u.id, { totp_confirmed_at: now, totp_last_step: step, updated_at: now });
        await repo.replaceRecoveryCodes(tx, u.id, hashes.map((h) => ({ id: newId(), code_hash: h, created_at: now })));
        await repo.updateSession(tx, actor.session!.id, { mfa_at: now });
        await audit.record(tx, actor, { action: 'mfa.enrol', outcome: 'success', targetType: 'user', targetId: u.id });
      });
      actor.session.mfaAt = now;
      actor.session.mfaEnrolled = true;
      actor.session.mfaEnrolmentRequired = false;
      return { recoveryCodes: codes };
    },

    /** Removes the authenticator app, proving a current code; refused while the owner requires one. */
    async disableMfa(actor: Actor, code: string): Promise<void> {
      if (!actor.session) throw forbidden('Only a signed-in person can remove their authenticator app.');
      if ((await settingsOf(db)).requireMfa) throw badRequest('A second factor is required for everyone; it cannot be removed.');
      const u = await repo.findUser(db, actor.id);
      if (!u?.totp_confirmed_at) throw badRequest('No authenticator app is set up.');
      if (!(await checkSecondFactor(db, u, code))) throw badRequest('The authenticator code is not right.', { field: 'code' });
      await db.transaction().execute(async (tx) => {
        await repo.updateUser(tx, u.id, { totp_secret: null, totp_confirmed_at: null, totp_last_step: null, updated_at: clock.now() });
        await repo.replaceRecoveryCodes(tx, u.id, []);
        await audit.record(tx, actor, { action: 'mfa.disable', outcome: 'success', targetType: 'user', targetId: u.id });
      });
    },

    // ---------------------------------------------------------------- API tokens
    async createToken(
      actor: Actor,
      input: { name: string; role: string; clients: 'all' | string[]; expiresInDays?: number | null },
    ): Promise<{ token: string; view: TokenView }> {
      requirePermission(actor, 'token:manage');
      if (actor.type !== 'user') throw forbidden('API tokens are created by people, not by other tokens.');
      const name = input.name.trim();
      if (!name || name.length > 100) throw badRequest('A token needs a name of 1 to 100 characters.', { field: 'name' });
      const role = validateRole(input.role);
      checkGrant(actor, role);
      const days = input.expiresInDays ?? 90;
      if (!Number.isInteger(days) || days < 1 || days > 3650) throw badRequest('expiresInDays must be a whole number from 1 to 3650.', { field: 'expiresInDays' });
      const token = newSecret(API_TOKEN_PREFIX);
      const now = clock.now();
      return db.transaction().execute(async (tx) => {
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
        await audit.record(tx, actor, { action: 'token.create', outcome: 'success', targetType: 'api_token', targetId: row.id, details: { name, role, clients: input.clients, expiresAt: row.expires_at } });
        return { token, view: await tokenView(tx, row) };
      });
    },

    /** Owners see every token; others see the ones they created. */
    async listTokens(actor: Actor): Promise<TokenView[]> {
      requirePermission(actor, 'token:manage');
      const rows = await repo.listTokens(db, actor.role === 'owner' ? null : actor.id);
      return Promise.all(rows.map((t) => tokenView(db, t)));
    },

    async revokeToken(actor: Actor, id: string): Promise<void> {
      requirePermission(actor, 'token:manage');
      await db.transaction().execute(async (tx) => {
        const t = await repo.findToken(tx, id);
        if (!t || (actor.role !== 'owner' && t.created_by !== actor.id)) throw notFound(`No API token with id ${id}.`);
        if (t.revoked_at) return;
        await repo.updateToken(tx, id, { revoked_at: clock.now() });
        await audit.record(tx, actor, { action: 'token.revoke', outcome: 'success', targetType: 'api_token', targetId: id, details: { name: t.name } });
      });
    },

    /** Resolves a bearer token, or null when it is unknown, revoked or expired. */
    async authenticateToken(token: string, ctx: { ip: string | null; userAgent: string | null }): Promise<Actor | null> {
      if (!token.startsWith(API_TOKEN_PREFIX) || token.length > 200) return null;
      const t = await repo.findTokenByHash(db, sha256Hex(token));
      const now = clock.now();
      if (!t || t.revoked_at || (t.expires_at && Date.parse(t.expires_at) <= Date.parse(now))) return null;
      const creator = await repo.findUser(db, t.created_by);
      if (!creator || creator.status !== 'active') return null;
      // A token is never worth more than its creator is now: demote the person, the token stops.
      if (ROLE_RANK[t.role as Role] > ROLE_RANK[creator.role as Role]) return null;
      if (!t.last_used_at || Date.parse(now) - Date.parse(t.last_used_at) > 60_000) await repo.updateToken(db, t.id, { last_used_at: now });
      const clients = t.all_clients ? ('all' as const) : await repo.tokenClients(db, t.id);
      return {
        type: 'token',
        id: `token:${t.id}`,
        name: `token ${t.name} (${t.token_prefix}…)`,
        role: t.role as Role,
        clients,
        revealClients: t.role === 'client-viewer' && clients !== 'all' ? await repo.revealableClients(db, clients) : undefined,
        ip: ctx.ip,
        userAgent: ctx.userAgent,
      };
    },

    // ---------------------------------------------------------------- settings and me
    async getSettings(actor: Actor): Promise<Settings> {
      requirePermission(actor, 'settings:manage');
      return settingsOf(db);
    },

    async updateSettings(actor: Actor, patch: Partial<Settings>): Promise<Settings> {
      requirePermission(actor, 'settings:manage');
      return db.transaction().execute(async (tx) => {
        if (patch.requireMfa !== undefined) await repo.setSetting(tx, 'require_mfa', String(patch.requireMfa), clock.now());
        await audit.record(tx, actor, { action: 'settings.update', outcome: 'success', details: patch });
        return settingsOf(tx);
      });
    },

    async me(actor: Actor): Promise<{ actor: { type: string; id: string; name: string; role: Role; clients: 'all' | string[] }; user: UserView | null; mfaEnrolmentRequired: boolean; stepUpValidUntil: string | null }> {
      const u = actor.type === 'user' ? await repo.findUser(db, actor.id) : undefined;
      const mfaAt = actor.session?.mfaAt;
      return {
        actor: { type: actor.type, id: actor.id, name: actor.name, role: actor.role, clients: actor.clients === 'all' ? 'all' : [...actor.clients] },
        user: u ? await view(db, u) : null,
        mfaEnrolmentRequired: actor.session?.mfaEnrolmentRequired ?? false,
        stepUpValidUntil: mfaAt ? addMinutes(mfaAt, policy.stepUpMinutes) : null,
      };
    },

    /** First owner, created by `keywarden init` (or `user add` on the command line). */
    async bootstrapUser(actor: Actor, input: { email: string; password: string; role?: Role; name?: string }): Promise<UserView> {
      return service.createUser(actor, { email: input.email, password: input.password, role: input.role ?? 'owner', clients: 'all', name: input.name });
    },

    async hasUsers(): Promise<boolean> {
      return (await repo.listUsers(db)).length > 0;
    },

    /** How many reveals this actor may still make this hour; the keys service asks before revealing. */
    async revealsLeft(actor: Actor): Promise<number> {
      const since = new Date(Date.parse(clock.now()) - 3600_000).toISOString();
      return policy.revealLimitPerHour - (await repo.revealsSince(db, actor.id, since));
    },
  };
  return service;
}
export type IdentityService = ReturnType<typeof createIdentityService>;
