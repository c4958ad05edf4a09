import type { Executor, Tx } from '../../db/database.js';
import type { InvitationsTable, UsersTable } from '../../db/schema.js';
import type { Transactions } from '../../db/transactions.js';
import type { Policy } from '../../config.js';
import { hashPassword } from '../../crypto/passwords.js';
import { newSecret, sha256Hex } from '../../crypto/tokens.js';
import type { Clock } from '../../lib/clock.js';
import { newId } from '../../lib/ids.js';
import { AppError, badRequest, conflict, forbidden, notFound, rateLimited } from '../../lib/errors.js';
import { can, grantsVaultControl, mayManagePrincipal, requireFreshSecondFactor, requirePermission, type Actor, type Role } from '../authz/authz.js';
import type { AuditService } from '../audit/audit.service.js';
import type { DirectMail } from '../notifications/direct-mail.js';
import { validatePassword, type ApprovalsPort, type IdentityService } from './identity.service.js';
import type { InvitationsRepo } from './invitations.repo.js';
import type { LoginResult } from './identity.types.js';

/**
 * Invitations by e-mail (issue 19). An owner or admin who manages users invites someone with the
 * role and clients fixed in the invitation, under the same rules as creating the user (identity's
 * checkInvitationGrant). The one-time link carries a 256-bit token in its fragment
 * (`/#/invitation/<token>`: never sent to a server in a URL, never logged); only its SHA-256 is
 * stored. Accepting re-checks the grant against the inviter's role and clients of NOW, creates the
 * person and signs them in through identity's openSession. Expired, revoked, used and unknown
 * links answer the same words.
 */

export const APPROVAL_INVITE = 'invitation.grant';
export const INVITATION_TOKEN_PREFIX = 'kwi_';
export const DEFAULT_INVITATION_HOURS = 72;
export const MAX_INVITATION_HOURS = 14 * 24;
const GENERIC = 'This invitation link is not valid (it may have expired, been used, or been withdrawn). Ask the person who invited you for a new one.';

export type InvitationView = {
  id: string;
  email: string;
  role: Role;
  clients: 'all' | string[];
  invitedBy: string;
  createdAt: string;
  expiresAt: string;
  status: 'pending' | 'expired' | 'awaiting-approval';
  /** Whether the e-mail went out: 'sent', or the reason it did not. */
  mail: string | null;
};

export type InvitationIssued = {
  invitation: InvitationView;
  /** The one-time token, shown once: the console builds the link with it. */
  token: string;
  /** Where the link points, when KEYWARDEN_PUBLIC_URL is set; else null (the console uses its own address). */
  link: string | null;
  mail: { sent: boolean; reason: string | null };
  pendingApprovalId?: string;
};

export type InvitationPreview = {
  email: string;
  role: Role;
  clients: 'all' | { id: string; name: string }[];
  invitedBy: string;
  expiresAt: string;
  awaitingApproval: boolean;
};

type Deps = {
  tx: Transactions;
  repo: InvitationsRepo;
  identity: Pick<IdentityService, 'checkInvitationGrant' | 'userActor' | 'createInvitedUser' | 'sessionFor' | 'reserveAttempt' | 'refundAttempt'>;
  approvals: () => ApprovalsPort | undefined;
  mail: DirectMail;
  audit: Pick<AuditService, 'record' | 'recordNow'>;
  clock: Clock;
  policy: Policy;
  publicUrl: string | null;
};

const addHours = (iso: string, h: number) => new Date(Date.parse(iso) + h * 3_600_000).toISOString();
const clientsOf = (r: InvitationsTable): 'all' | string[] => (r.all_clients ? 'all' : (JSON.parse(r.client_ids) as string[]));

export function createInvitationsService({ tx: transactions, repo, identity, approvals, mail, audit, clock, policy, publicUrl }: Deps) {
  const db = transactions.reader;
  const linkOf = (token: string) => (publicUrl ? `${publicUrl.replace(/\/+$/, '')}/#/invitation/${token}` : null);

  const view = (r: InvitationsTable): InvitationView => ({
    id: r.id,
    email: r.email,
    role: r.role as Role,
    clients: clientsOf(r),
    invitedBy: r.invited_by_name,
    createdAt: r.created_at,
    expiresAt: r.expires_at,
    status: Date.parse(r.expires_at) <= Date.parse(clock.now()) ? 'expired' : r.approval_id && !r.approved_at ? 'awaiting-approval' : 'pending',
    mail: r.mail_status,
  });

  const hoursOf = (h: number | undefined) => {
    const hours = h ?? DEFAULT_INVITATION_HOURS;
    if (!Number.isInteger(hours) || hours < 1 || hours > MAX_INVITATION_HOURS)
      throw badRequest(`An invitation is valid for 1 to ${MAX_INVITATION_HOURS} hours.`, { field: 'expiresInHours' });
    return hours;
  };

  /** An invitation inside the actor's reach (its grant is one the actor could give), else "not found". */
  const reachable = async (exec: Executor, actor: Actor, id: string): Promise<InvitationsTable> => {
    const r = await repo.find(exec, id);
    if (!r || !mayManagePrincipal(actor, { role: r.role as Role, clients: clientsOf(r) })) throw notFound(`No invitation with id ${id.slice(0, 60)}.`);
    return r;
  };

  /** Sends the link (outside any transaction: SMTP may take seconds) and records whether it went out. */
  const send = async (r: InvitationsTable, token: string): Promise<{ sent: boolean; reason: string | null }> => {
    const link = linkOf(token);
    const result = link
      ? await mail({
          to: r.email,
          subject: `${r.invited_by_name} invited you to Keywarden`,
          text: [
            `${r.invited_by_name} invited you to Keywarden, the BitLocker recovery-key vault, as ${r.role}.`,
            '',
            'Open this link to choose your name and password (it works once):',
            link,
            '',
            `The link expires at ${r.expires_at} (UTC). If you did not expect this, ignore this e-mail.`,
          ].join('\n'),
        })
      : ({ sent: false, reason: 'KEYWARDEN_PUBLIC_URL is not set, so an e-mail cannot carry a link' } as const);
    const status = result.sent ? 'sent' : `not sent: ${result.reason}`.slice(0, 300);
    await repo.setMailStatus(db, r.id, r.token_hash, { sent_at: result.sent ? clock.now() : null, mail_status: status });
    r.mail_status = status;
    return result.sent ? { sent: true, reason: null } : { sent: false, reason: result.reason };
  };

  const claimant = (ctx: { ip: string | null; userAgent: string | null }, email?: string): Actor => ({
    type: 'user',
    id: `invitation:${(email ?? 'unknown').slice(0, 200)}`,
    name: (email ?? 'unknown invitee').slice(0, 200),
    role: 'client-viewer',
    clients: [],
    ip: ctx.ip,
    userAgent: ctx.userAgent,
  });

  /** One attempt per address, counted before the token is looked at: guessing links is throttled. */
  const throttle = async (ctx: { ip: string | null }) => {
    if (!ctx.ip) return null;
    const key = `invite-ip:${ctx.ip}`;
    const r = await identity.reserveAttempt([{ key, max: policy.loginMaxFailuresPerIp }]);
    if (!r.ok) throw rateLimited(r.message, r.wait);
    return key;
  };

  /** The open invitation this token names, or the generic refusal. */
  const usable = async (token: string): Promise<InvitationsTable> => {
    if (typeof token !== 'string' || !token.startsWith(INVITATION_TOKEN_PREFIX) || token.length > 200) throw badRequest(GENERIC);
    const r = await repo.findByHash(db, sha256Hex(token));
    if (!r || r.accepted_at || r.revoked_at || Date.parse(r.expires_at) <= Date.parse(clock.now())) throw badRequest(GENERIC);
    return r;
  };

  /** The inviter as they are now; null (the invitation is void) when they are disabled or no longer manage users. */
  const inviterNow = async (r: InvitationsTable, exec: Executor = db): Promise<Actor | null> => {
    const a = await identity.userActor(exec, r.invited_by);
    return a && can(a, 'user:invite') && mayManagePrincipal(a, { role: r.role as Role, clients: clientsOf(r) }) ? a : null;
  };

  /**
   * Uses the invitation up and creates the person in one transaction (the claim is a conditional
   * update: of two parallel acceptances, one wins), then opens their session.
   */
  const complete = async (
    r: InvitationsTable,
    input: { name?: string; passwordHash: string | null; method: string; ip: string | null; userAgent: string | null },
  ): Promise<LoginResult> => {
    const who = claimant(input, r.email);
    const inviter = await inviterNow(r);
    if (!inviter) {
      await audit.recordNow(who, {
        action: 'invitation.accepted',
        outcome: 'failure',
        targetType: 'invitation',
        targetId: r.id,
        details: { email: r.email, reason: 'the inviter can no longer grant this' },
      });
      throw badRequest(GENERIC);
    }
    if (r.approval_id && !r.approved_at) throw conflict("This invitation is waiting for a second owner's approval. Try again once it is approved.");
    let user;
    try {
      user = await transactions.run(async (tx) => {
        const now = clock.now();
        if (!(await repo.claim(tx, r.id, r.token_hash, now))) throw badRequest(GENERIC);
        const u = await identity.createInvitedUser(tx, inviter, {
          email: r.email,
          name: input.name,
          passwordHash: input.passwordHash,
          role: r.role as Role,
          clients: clientsOf(r),
          approved: !!r.approved_at,
        });
        await repo.setAcceptedUser(tx, r.id, u.id);
        const person: Actor = { type: 'user', id: u.id, name: u.email, role: u.role as Role, clients: clientsOf(r), ip: input.ip, userAgent: input.userAgent };
        await audit.record(tx, person, {
          action: 'user.create',
          outcome: 'success',
          targetType: 'user',
          targetId: u.id,
          details: { email: u.email, role: u.role, clients: clientsOf(r), via: 'invitation', invitedBy: r.invited_by_name },
        });
        await audit.record(tx, person, {
          action: 'invitation.accepted',
          outcome: 'success',
          targetType: 'invitation',
          targetId: r.id,
          details: { email: u.email, role: u.role, clients: clientsOf(r), invitedBy: r.invited_by_name, method: input.method },
        });
        return u;
      });
    } catch (e) {
      if (e instanceof AppError && e.message !== GENERIC) {
        // The grant no longer holds (the inviter was narrowed, a client went away, the e-mail was taken).
        await audit.recordNow(who, {
          action: 'invitation.accepted',
          outcome: 'failure',
          targetType: 'invitation',
          targetId: r.id,
          details: { email: r.email, reason: e.message.slice(0, 200) },
        });
        throw badRequest(GENERIC);
      }
      throw e;
    }
    return identity.sessionFor(user, {
      mfa: false,
      method: input.method,
      ip: input.ip,
      userAgent: input.userAgent,
      audit: (tx: Tx) =>
        audit.record(
          tx,
          { ...who, id: user.id, name: user.email },
          { action: 'auth.login', outcome: 'success', details: { email: user.email, mfa: false, method: input.method } },
        ),
    });
  };

  const issue = async (actor: Actor, r: InvitationsTable, token: string, pendingApprovalId?: string): Promise<InvitationIssued> => {
    const m = await send(r, token);
    return { invitation: view(r), token, link: linkOf(token), mail: m, ...(pendingApprovalId ? { pendingApprovalId } : {}) };
  };

  return {
    /** Invites someone: the grant checked like creating the user; the link shown once and e-mailed. */
    async create(actor: Actor, input: { email: string; role: string; clients: 'all' | string[]; expiresInHours?: number }): Promise<InvitationIssued> {
      const hours = hoursOf(input.expiresInHours);
      await identity.checkInvitationGrant(db, actor, input);
      // The invitation is re-checked against its inviter when it is used: only a person can invite.
      if (actor.type !== 'user') throw forbidden('Only a signed-in person can invite someone; on the server, use "keywarden user add".');
      const token = newSecret(INVITATION_TOKEN_PREFIX);
      const { row, approvalId } = await transactions.run(async (tx) => {
        const g = await identity.checkInvitationGrant(tx, actor, input);
        if ((await repo.openFor(tx, g.email, clock.now())).length)
          throw conflict(`${g.email} already has a pending invitation; send it again or withdraw it instead.`);
        const now = clock.now();
        const row: InvitationsTable = {
          id: newId(),
          email: g.email,
          role: g.role,
          all_clients: g.clients === 'all' ? 1 : 0,
          client_ids: JSON.stringify(g.clients === 'all' ? [] : g.clients),
          token_hash: sha256Hex(token),
          invited_by: actor.id,
          invited_by_name: actor.name.slice(0, 200),
          created_at: now,
          expires_at: addHours(now, hours),
          sent_at: null,
          mail_status: null,
          approval_id: null,
          approved_at: null,
          accepted_at: null,
          accepted_user_id: null,
          revoked_at: null,
        };
        let approvalId: string | undefined;
        if (g.secondOwnerNeeded) {
          // Owner powers or every client: usable once a second owner approves (two-owner approval).
          approvalId = (
            await approvals()!.request(tx, actor, {
              action: APPROVAL_INVITE,
              clientId: null,
              targetType: 'invitation',
              targetId: row.id,
              reason: `Invitation of ${g.email} as ${g.role}${g.clients === 'all' ? ' of all clients' : ''}`,
              params: { invitationId: row.id, email: g.email, role: g.role, clients: g.clients },
            })
          ).id;
          row.approval_id = approvalId;
        }
        await repo.insert(tx, row);
        await audit.record(tx, actor, {
          action: 'user.invited',
          outcome: 'success',
          targetType: 'invitation',
          targetId: row.id,
          details: { email: g.email, role: g.role, clients: g.clients, expiresAt: row.expires_at, ...(approvalId ? { pendingApproval: true } : {}) },
        });
        return { row, approvalId };
      });
      return issue(actor, row, token, approvalId);
    },

    /** Open invitations (expired ones marked) whose grant is inside the actor's reach; never a token. */
    async list(actor: Actor): Promise<InvitationView[]> {
      requirePermission(actor, 'user:invite');
      const rows = await repo.listOpen(db);
      return rows.filter((r) => mayManagePrincipal(actor, { role: r.role as Role, clients: clientsOf(r) })).map(view);
    },

    /** A new link (the old one stops working) with a new expiry, e-mailed again. */
    async resend(actor: Actor, id: string, input: { expiresInHours?: number } = {}): Promise<InvitationIssued> {
      requirePermission(actor, 'user:invite');
      requireFreshSecondFactor(actor, 'manage users', clock.now(), policy.stepUpMinutes);
      const hours = hoursOf(input.expiresInHours);
      const token = newSecret(INVITATION_TOKEN_PREFIX);
      const row = await transactions.run(async (tx) => {
        const r = await reachable(tx, actor, id);
        if (r.accepted_at || r.revoked_at) throw conflict(`That invitation was already ${r.accepted_at ? 'accepted' : 'withdrawn'}.`);
        // The grant is checked again as if it were new (the actor's reach, the e-mail still free).
        await identity.checkInvitationGrant(tx, actor, { email: r.email, role: r.role, clients: clientsOf(r) });
        const next = { token_hash: sha256Hex(token), expires_at: addHours(clock.now(), hours) };
        if (!(await repo.replaceToken(tx, r.id, r.token_hash, next))) throw conflict('That invitation changed meanwhile; reload and try again.');
        await audit.record(tx, actor, {
          action: 'invitation.resent',
          outcome: 'success',
          targetType: 'invitation',
          targetId: r.id,
          details: { email: r.email, expiresAt: next.expires_at },
        });
        return { ...r, ...next, sent_at: null, mail_status: null };
      });
      return issue(actor, row, token);
    },

    async revoke(actor: Actor, id: string): Promise<void> {
      requirePermission(actor, 'user:invite');
      await transactions.run(async (tx) => {
        const r = await reachable(tx, actor, id);
        if (!(await repo.revoke(tx, r.id, clock.now()))) throw conflict(`That invitation was already ${r.accepted_at ? 'accepted' : 'withdrawn'}.`);
        await audit.record(tx, actor, {
          action: 'invitation.revoked',
          outcome: 'success',
          targetType: 'invitation',
          targetId: r.id,
          details: { email: r.email },
        });
      });
    },

    /** What the invitee is shown before accepting: who invited them, the role and clients. */
    async preview(token: string, ctx: { ip: string | null; userAgent: string | null }): Promise<InvitationPreview> {
      const key = await throttle(ctx);
      const r = await usable(token);
      if (key) await identity.refundAttempt(key);
      if (!(await inviterNow(r))) throw badRequest(GENERIC);
      const clients = clientsOf(r);
      return {
        email: r.email,
        role: r.role as Role,
        clients: clients === 'all' ? 'all' : await repo.clientNames(db, clients),
        invitedBy: r.invited_by_name,
        expiresAt: r.expires_at,
        awaitingApproval: !!r.approval_id && !r.approved_at,
      };
    },

    /** The invitee chooses a name and password; signed in at once (enrolment next when the vault requires a second factor). */
    async accept(token: string, input: { name?: string; password: string; ip: string | null; userAgent: string | null }): Promise<LoginResult> {
      const key = await throttle(input);
      const r = await usable(token);
      // Only guesses count against the address: a real link's attempt is given back.
      if (key) await identity.refundAttempt(key);
      validatePassword(input.password);
      return complete(r, {
        name: input.name,
        passwordHash: await hashPassword(input.password),
        method: 'invitation',
        ip: input.ip,
        userAgent: input.userAgent,
      });
    },

    /**
     * The seam for single sign-on: accepts the open invitation for an e-mail address that an
     * identity provider has just verified, without a password (the person signs in through the
     * provider). With `token`, only that invitation, and only when it is for this e-mail.
     * The caller (the OIDC sign-in) is responsible for the e-mail being verified.
     */
    async acceptWithVerifiedEmail(input: {
      email: string;
      token?: string;
      name?: string;
      method: string;
      ip: string | null;
      userAgent: string | null;
    }): Promise<LoginResult> {
      const email = input.email.trim().toLowerCase();
      const r = input.token ? await usable(input.token) : (await repo.openFor(db, email, clock.now()))[0];
      if (!r || r.email !== email) throw badRequest(GENERIC);
      return complete(r, { name: input.name, passwordHash: null, method: input.method, ip: input.ip, userAgent: input.userAgent });
    },

    /**
     * Single sign-on's way in (bound to the sso module as its InviteePort): inside the sign-in's
     * transaction, uses up the open invitation for an e-mail the identity provider has verified and
     * creates the person without a password (SSO only), under the same checks as a link accepted by
     * hand. Null when there is no usable invitation; the caller then refuses the sign-in.
     */
    async acceptBySso(tx: Tx, input: { email: string; name: string | null; providerId: string; subject: string }): Promise<UsersTable | null> {
      const email = input.email.trim().toLowerCase();
      const r = (await repo.openFor(tx, email, clock.now()))[0];
      if (!r || r.email !== email) return null;
      // Read in the sign-in's transaction: on SQLite another read would wait for it to finish.
      const inviter = await inviterNow(r, tx);
      if (!inviter || (r.approval_id && !r.approved_at)) return null;
      if (!(await repo.claim(tx, r.id, r.token_hash, clock.now()))) return null;
      const u = await identity.createInvitedUser(tx, inviter, {
        email: r.email,
        name: input.name ?? undefined,
        passwordHash: null,
        role: r.role as Role,
        clients: clientsOf(r),
        approved: !!r.approved_at,
      });
      await repo.setAcceptedUser(tx, r.id, u.id);
      const person: Actor = { type: 'user', id: u.id, name: u.email, role: u.role as Role, clients: clientsOf(r) };
      await audit.record(tx, person, {
        action: 'user.create',
        outcome: 'success',
        targetType: 'user',
        targetId: u.id,
        details: { email: u.email, role: u.role, clients: clientsOf(r), via: 'invitation', invitedBy: r.invited_by_name },
      });
      await audit.record(tx, person, {
        action: 'invitation.accepted',
        outcome: 'success',
        targetType: 'invitation',
        targetId: r.id,
        details: { email: u.email, role: u.role, clients: clientsOf(r), invitedBy: r.invited_by_name, method: 'sso', provider: input.providerId },
      });
      return u;
    },

    /** Carries out a second owner's approval of an invitation (registered with the lifecycle approvals). */
    async applyApproval(tx: Tx, approver: Actor, params: Record<string, unknown>): Promise<{ invitationId: string }> {
      const id = String(params.invitationId ?? '');
      const r = await reachable(tx, approver, id);
      await identity.checkInvitationGrant(tx, approver, { email: r.email, role: r.role, clients: clientsOf(r) });
      if (!grantsVaultControl({ role: r.role as Role, clients: clientsOf(r) }) || !(await repo.approve(tx, r.id, clock.now())))
        throw conflict('That invitation is no longer waiting for approval.');
      await audit.record(tx, approver, {
        action: 'invitation.approved',
        outcome: 'success',
        targetType: 'invitation',
        targetId: r.id,
        details: { email: r.email },
      });
      return { invitationId: r.id };
    },
  };
}
export type InvitationsService = ReturnType<typeof createInvitationsService>;
