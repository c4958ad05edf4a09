import type { Executor, Tx } from '../../db/database.js';
import type { Transactions } from '../../db/transactions.js';
import { isId } from '../../db/scope.js';
import type { Clock } from '../../lib/clock.js';
import { newId } from '../../lib/ids.js';
import { AppError, approvalRequired, badRequest, conflict, forbidden, isAppError, notFound, rateLimited } from '../../lib/errors.js';
import { formatKeyIdForDisplay } from '../../domain/key-id.js';
import { containsRecoveryPasswordLike } from '../../domain/recovery-password.js';
import { parseRevealReason } from '../../domain/reason-codes.js';
import { can, requireFreshSecondFactor, requirePermission, revealScope, type Actor } from '../authz/authz.js';
import type { AuditService } from '../audit/audit.service.js';
import { requireVisibleClient } from '../clients/visible-client.js';
import type { KeysRepo } from '../keys/keys.repo.js';
import type { Notifier } from '../notifications/notifier.js';
import { parseTags } from '../devices/device-tags.service.js';
import type { RequestFilter, RequestRow, RevealApprovalsRepo } from './reveal-approvals.repo.js';

/**
 * Two-person reveal. A client's policy says whether revealing its keys needs a second person:
 * never (off, the default), always (required), or for devices carrying one of the policy's tags.
 * Then the person who needs the key asks (a request: key record, reason, ticket), a second person
 * who may reveal in that client approves or denies it with a fresh step-up, and the requester
 * reveals that key once, within the approval window. An owner may break the glass (fresh step-up and
 * a reason), loudly audited and notified. Nothing secret is ever stored in a request or policy.
 */

export type RevealPolicyMode = 'off' | 'required' | 'tagged';
export type RevealPolicyView = {
  clientId: string;
  mode: RevealPolicyMode;
  tags: string[];
  approvalMinutes: number;
  requestHours: number;
  updatedAt: string | null;
  updatedBy: string | null;
};
export type RevealRequestStatus = 'pending' | 'approved' | 'denied' | 'cancelled' | 'used' | 'expired';
export type RevealRequestView = {
  id: string;
  status: RevealRequestStatus;
  client: { id: string; name: string };
  device: { id: string; name: string } | null;
  keyRecordId: string;
  keyId: string | null;
  reason: string;
  ticket: string | null;
  note: string | null;
  requestedBy: string;
  requestedByToken: boolean;
  requestedAt: string;
  expiresAt: string;
  decidedBy: string | null;
  decidedAt: string | null;
  decisionNote: string | null;
  approvalExpiresAt: string | null;
  usedAt: string | null;
  /** The actor asked for it (it or the person behind its token). */
  mine: boolean;
  /** The actor could approve or deny it now (pending, not theirs, may reveal in the client). */
  mayDecide: boolean;
  /** The console page of this request (relative to the console's address). */
  path: string;
};

export const DEFAULT_APPROVAL_MINUTES = 15;
export const DEFAULT_REQUEST_HOURS = 4;
/** Open requests one person may have at once: a bound on notifications, not a policy. */
export const MAX_OPEN_REQUESTS = 10;
const NOTE_MAX = 1000;

/** What the reveal path receives from the gate (keys.service `approvalGate`). */
export type GateKey = { id: string; client_id: string; device_id: string | null; key_id: string | null; device_name: string | null };
export type GateInput = {
  approvalRequestId?: string | null;
  breakGlassReason?: string | null;
  query: string;
  /** The reveal's ticket: with an approved request, it must be the ticket the approver saw. */
  ticket?: string | null;
  /**
   * Ticket-bound reveal: the PSA cannot be asked about the ticket (the problem, e.g. "HaloPSA
   * unreachable") and the client requires a valid ticket. An owner's break-glass then lets the
   * reveal go ahead, even when no approval is needed; when approval is needed too, the one
   * break-glass (one reason, one key.break_glass event) covers both.
   */
  psaBreakGlass?: string | null;
};
/** A ticket as typed, compared: case, spaces and a leading "#" do not make another ticket. */
const ticketText = (t: string | null | undefined) => (t ?? '').replace(/\s+/g, '').replace(/^#/, '').toLowerCase();

export type GateDecision =
  | { ok: true; details: Record<string, unknown>; claim?: (tx: Tx) => Promise<boolean>; after?: (tx: Tx) => Promise<void> }
  | { ok: false; error: AppError; problem: string };

type Deps = {
  tx: Transactions;
  repo: RevealApprovalsRepo;
  keys: Pick<KeysRepo, 'summaryById'>;
  /** The person behind an actor (a token's creator), and when a user account was created. */
  people: { personOf(exec: Executor, actor: Actor): Promise<string>; accountCreatedAt(exec: Executor, userId: string): Promise<string | null> };
  audit: Pick<AuditService, 'record' | 'recordNow'>;
  clock: Clock;
  notifier?: Notifier;
  stepUpMinutes: number;
  /** KEYWARDEN_PUBLIC_URL: notification links open the console there. */
  publicUrl: string | null;
  /** Ticket-bound reveal (src/modules/psa): the client's ticket policy and its PSA's name, for the reveal dialog. */
  ticketPolicy?: (exec: Executor, clientId: string) => Promise<{ policy: 'off' | 'validate' | 'required'; psa: string | null }>;
};

const addMinutes = (iso: string, m: number) => new Date(Date.parse(iso) + m * 60_000).toISOString();
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f\u202a-\u202e\u2066-\u2069]/;

/** Free text that goes into the audit log and notifications: never a recovery password, never control characters. */
function cleanText(v: string | null | undefined, field: string, what: string, max = NOTE_MAX): string | null {
  const t = v?.trim() || null;
  if (!t) return null;
  if (t.length > max) throw badRequest(`${what} can be at most ${max} characters.`, { field });
  if (containsRecoveryPasswordLike(t))
    throw badRequest(`${what} looks like it contains a recovery password; leave it out (the audit log must never hold one).`, { field });
  if (CONTROL.test(t)) throw badRequest(`${what} contains control characters.`, { field });
  return t;
}

function statusOf(r: RequestRow, now: string): RevealRequestStatus {
  if (r.status === 'pending' && r.expires_at <= now) return 'expired';
  if (r.status === 'approved' && (r.approval_expires_at ?? '') <= now) return 'expired';
  return r.status as RevealRequestStatus;
}

export function createRevealApprovals({ tx, repo, keys, people, audit, clock, notifier, stepUpMinutes, publicUrl, ticketPolicy }: Deps) {
  const db = tx.reader;
  const pathOf = (id: string) => `/requests/${id}`;
  const linkOf = (id: string) => (publicUrl ? `${publicUrl.replace(/\/+$/, '')}${pathOf(id)}` : pathOf(id));

  async function policyIn(exec: Executor, clientId: string): Promise<RevealPolicyView> {
    const p = await repo.policy(exec, clientId);
    if (!p)
      return {
        clientId,
        mode: 'off',
        tags: [],
        approvalMinutes: DEFAULT_APPROVAL_MINUTES,
        requestHours: DEFAULT_REQUEST_HOURS,
        updatedAt: null,
        updatedBy: null,
      };
    let tags: string[];
    try {
      tags = JSON.parse(p.tags) as string[];
    } catch {
      tags = [];
    }
    return {
      clientId,
      mode: p.mode as RevealPolicyMode,
      tags,
      approvalMinutes: p.approval_minutes,
      requestHours: p.request_hours,
      updatedAt: p.updated_at,
      updatedBy: p.updated_by_name,
    };
  }

  /** Whether revealing this key needs a second person now, and why (in words). */
  async function requirement(
    exec: Executor,
    key: { client_id: string; device_id: string | null },
  ): Promise<{ required: boolean; why: string | null; policy: RevealPolicyView }> {
    const policy = await policyIn(exec, key.client_id);
    if (policy.mode === 'required') return { required: true, why: "this client's policy requires a second person's approval for every reveal", policy };
    if (policy.mode === 'tagged' && key.device_id && (await repo.deviceHasTag(exec, key.client_id, key.device_id, policy.tags))) {
      return { required: true, why: `this client's policy requires a second person's approval for devices tagged ${policy.tags.join(', ')}`, policy };
    }
    return { required: false, why: null, policy };
  }

  const view = (r: RequestRow, actor: Actor, person: string, now: string): RevealRequestView => {
    const status = statusOf(r, now);
    return {
      id: r.id,
      status,
      client: { id: r.client_id, name: r.client_name },
      device: r.device_id && r.device_name !== null ? { id: r.device_id, name: r.device_name } : null,
      keyRecordId: r.recovery_key_id,
      keyId: r.key_id,
      reason: r.reason,
      ticket: r.ticket,
      note: r.note,
      requestedBy: r.requester_name,
      requestedByToken: r.requester_type === 'token',
      requestedAt: r.requested_at,
      expiresAt: r.expires_at,
      decidedBy: r.decided_by_name,
      decidedAt: r.decided_at,
      decisionNote: r.decision_note,
      approvalExpiresAt: r.approval_expires_at,
      usedAt: r.used_at,
      mine: r.requester_person_id === person,
      mayDecide: status === 'pending' && r.requester_person_id !== person && actor.type === 'user' && can(actor, 'key:reveal', r.client_id),
      path: pathOf(r.id),
    };
  };

  /** A request the actor may see: in a client where it may reveal; otherwise "not found". */
  async function visible(exec: Executor, actor: Actor, id: string): Promise<RequestRow> {
    const r = isId(id) ? await repo.get(exec, revealScope(actor), id.toLowerCase()) : undefined;
    if (!r || !can(actor, 'key:reveal', r.client_id)) throw notFound(`No reveal request with id ${id.slice(0, 60)}.`);
    return r;
  }

  async function decide(actor: Actor, id: string, input: { note?: string | null }, decision: 'approved' | 'denied') {
    requirePermission(actor, 'key:reveal');
    requireFreshSecondFactor(actor, 'approve or deny a reveal', clock.now(), stepUpMinutes);
    const note = cleanText(input.note, 'note', 'A note');
    return tx.run(async (t) => {
      const r = await visible(t, actor, id);
      const now = clock.now();
      const person = await people.personOf(t, actor);
      if (r.requester_person_id === person) {
        throw forbidden('You asked for this reveal: a second person must approve or deny it, not you (nor an API token of yours).');
      }
      // An account made after the request (perhaps by the requester) is not a second person.
      const created = await people.accountCreatedAt(t, actor.id);
      if (!created || created > r.requested_at) throw forbidden('An account created after the request cannot approve or deny it; ask someone else.');
      const status = statusOf(r, now);
      if (status !== 'pending') throw conflict(`That request is ${status}; only a pending request can be ${decision}.`);
      const policy = await policyIn(t, r.client_id);
      const approvalExpiresAt = decision === 'approved' ? addMinutes(now, policy.approvalMinutes) : null;
      const done = await repo.decide(t, r.id, now, {
        status: decision,
        decided_by_id: actor.id,
        decided_by_name: actor.name,
        decided_at: now,
        decision_note: note,
        approval_expires_at: approvalExpiresAt,
      });
      if (!done) throw conflict('That request was decided or expired meanwhile.');
      await audit.record(t, actor, {
        action: decision === 'approved' ? 'reveal_request.approve' : 'reveal_request.deny',
        outcome: 'success',
        clientId: r.client_id,
        targetType: 'reveal_request',
        targetId: r.id,
        reasonCode: r.reason,
        ticket: r.ticket,
        details: {
          keyId: r.key_id,
          device: r.device_name,
          keyRecordId: r.recovery_key_id,
          requestedBy: r.requester_name,
          ...(approvalExpiresAt ? { approvalExpiresAt } : {}),
          ...(note ? { note } : {}),
        },
      });
      const after = await repo.get(t, null, r.id);
      return view(after!, actor, person, now);
    });
  }

  return {
    requirement,

    async policy(actor: Actor, clientId: string): Promise<RevealPolicyView> {
      await requireVisibleClient(db, actor, clientId);
      return policyIn(db, clientId);
    },

    async setPolicy(
      actor: Actor,
      clientId: string,
      input: { mode: RevealPolicyMode; tags?: string[]; approvalMinutes?: number; requestHours?: number },
    ): Promise<RevealPolicyView> {
      requirePermission(actor, 'client:manage');
      requireFreshSecondFactor(actor, 'change the reveal approval policy', clock.now(), stepUpMinutes);
      const tags = parseTags(input.tags ?? []);
      if (input.mode === 'tagged' && tags.length === 0)
        throw badRequest('A policy for tagged devices needs at least one tag (e.g. server, executive).', { field: 'tags' });
      const client = await requireVisibleClient(db, actor, clientId, 'client:manage');
      return tx.run(async (t) => {
        const before = await policyIn(t, client.id);
        const now = clock.now();
        const next = {
          client_id: client.id,
          mode: input.mode,
          tags: JSON.stringify(tags),
          approval_minutes: input.approvalMinutes ?? before.approvalMinutes,
          request_hours: input.requestHours ?? before.requestHours,
          updated_at: now,
          updated_by_name: actor.name,
        };
        await repo.upsertPolicy(t, next);
        await audit.record(t, actor, {
          action: 'reveal_policy.update',
          outcome: 'success',
          clientId: client.id,
          targetType: 'client',
          targetId: client.id,
          details: {
            from: `${before.mode}${before.tags.length ? ` (${before.tags.join(', ')})` : ''}`,
            to: `${input.mode}${tags.length ? ` (${tags.join(', ')})` : ''}`,
            approvalMinutes: next.approval_minutes,
            requestHours: next.request_hours,
          },
        });
        return policyIn(t, client.id);
      });
    },

    /**
     * For the reveal dialog: does this key need approval, the actor's open requests for it, and the
     * client's ticket policy (required: the ticket field is required and checked in the PSA).
     */
    async forKey(
      actor: Actor,
      keyRecordId: string,
    ): Promise<{
      required: boolean;
      why: string | null;
      requests: RevealRequestView[];
      ticket: { policy: 'off' | 'validate' | 'required'; psa: string | null };
    }> {
      requirePermission(actor, 'key:reveal');
      const key = isId(keyRecordId) ? await keys.summaryById(db, revealScope(actor), keyRecordId.toLowerCase()) : undefined;
      if (!key) throw notFound(`No recovery key you can reach has record id ${keyRecordId.slice(0, 60)}.`);
      const { required, why } = await requirement(db, key);
      const now = clock.now();
      const person = await people.personOf(db, actor);
      const rows = await repo.list(db, revealScope(actor), now, { keyRecordId: key.id, requesterPersonId: person, status: 'open', limit: 20 });
      const ticket = ticketPolicy ? await ticketPolicy(db, key.client_id) : { policy: 'off' as const, psa: null };
      return { required, why, requests: rows.map((r) => view(r, actor, person, now)), ticket };
    },

    /** Asks a second person to approve revealing one key record. Audited and notified; nothing secret. */
    async create(actor: Actor, input: { keyRecordId: string; reason: string; ticket?: string | null; note?: string | null }): Promise<RevealRequestView> {
      requirePermission(actor, 'key:reveal');
      const reason = parseRevealReason({ reason: input.reason, ticket: input.ticket ?? undefined });
      if (!reason.ok) throw badRequest(reason.reason);
      const note = cleanText(input.note, 'note', 'A note');
      const key = isId(input.keyRecordId) ? await keys.summaryById(db, revealScope(actor), input.keyRecordId.toLowerCase()) : undefined;
      if (!key) throw notFound(`No recovery key you can reach has record id ${input.keyRecordId.slice(0, 60)}.`);
      if (key.state === 'destroyed') throw conflict('This key was destroyed; there is nothing to reveal.');
      const person = await people.personOf(db, actor);
      return tx.run(async (t) => {
        const { required, policy } = await requirement(t, key);
        if (!required) throw conflict(`Revealing this key needs no second person in ${key.client_name}: reveal it directly.`);
        const now = clock.now();
        if ((await repo.openCount(t, person, now)) >= MAX_OPEN_REQUESTS) {
          throw rateLimited(`You have ${MAX_OPEN_REQUESTS} reveal requests waiting; cancel one or wait until they are decided.`, 60);
        }
        const row = {
          id: newId(),
          client_id: key.client_id,
          recovery_key_id: key.id,
          device_id: key.device_id,
          reason: reason.value.reason,
          ticket: reason.value.ticket,
          note,
          requester_type: actor.type,
          requester_id: actor.id,
          requester_person_id: person,
          requester_name: actor.name,
          status: 'pending',
          requested_at: now,
          expires_at: addMinutes(now, policy.requestHours * 60),
          decided_by_id: null,
          decided_by_name: null,
          decided_at: null,
          decision_note: null,
          approval_expires_at: null,
          used_at: null,
        };
        await repo.insert(t, row);
        const keyText = key.key_id ? formatKeyIdForDisplay(key.key_id) : key.id;
        await audit.record(t, actor, {
          action: 'reveal_request.create',
          outcome: 'success',
          clientId: key.client_id,
          targetType: 'reveal_request',
          targetId: row.id,
          reasonCode: row.reason,
          ticket: row.ticket,
          details: { keyId: key.key_id, device: key.device_name, keyRecordId: key.id, expiresAt: row.expires_at, ...(note ? { note } : {}) },
        });
        await notifier?.emit(t, {
          type: 'key.reveal_requested',
          clientId: key.client_id,
          deviceId: key.device_id,
          subject: `${actor.name} asks a second person to approve revealing recovery key ${keyText} of ${key.device_name ?? 'an unknown device'}`,
          details: {
            keyId: key.key_id,
            device: key.device_name,
            requestedBy: actor.name,
            reason: row.reason,
            ticket: row.ticket,
            expiresAt: row.expires_at,
            // Opens the request in the console (sign-in and step-up there); never an approval by itself.
            open: linkOf(row.id),
          },
          occurredAt: now,
        });
        return view({ ...row, client_name: key.client_name, device_name: key.device_name, key_id: key.key_id }, actor, person, now);
      });
    },

    /** Requests in the clients where the actor may reveal (its own among them); others' clients never. */
    async list(actor: Actor, filter: { status?: RequestFilter['status']; clientId?: string; mine?: boolean } = {}): Promise<RevealRequestView[]> {
      requirePermission(actor, 'key:reveal', filter.clientId);
      const now = clock.now();
      const person = await people.personOf(db, actor);
      const rows = await repo.list(db, revealScope(actor), now, {
        status: filter.status,
        clientId: filter.clientId,
        requesterPersonId: filter.mine ? person : undefined,
        limit: 200,
      });
      return rows.filter((r) => can(actor, 'key:reveal', r.client_id)).map((r) => view(r, actor, person, now));
    },

    async get(actor: Actor, id: string): Promise<RevealRequestView> {
      requirePermission(actor, 'key:reveal');
      const r = await visible(db, actor, id);
      return view(r, actor, await people.personOf(db, actor), clock.now());
    },

    approve: (actor: Actor, id: string, input: { note?: string | null } = {}) => decide(actor, id, input, 'approved'),
    deny: (actor: Actor, id: string, input: { note?: string | null } = {}) => decide(actor, id, input, 'denied'),

    /** The requester withdraws a request (pending, or approved and not yet used). */
    async cancel(actor: Actor, id: string): Promise<RevealRequestView> {
      requirePermission(actor, 'key:reveal');
      return tx.run(async (t) => {
        const r = await visible(t, actor, id);
        const person = await people.personOf(t, actor);
        if (r.requester_person_id !== person) throw forbidden('Only the person who asked for this reveal can cancel it.');
        const now = clock.now();
        const status = statusOf(r, now);
        if ((status !== 'pending' && status !== 'approved') || !(await repo.cancel(t, r.id, now))) {
          throw conflict(`That request is ${status}; only a waiting or approved request can be cancelled.`);
        }
        await audit.record(t, actor, {
          action: 'reveal_request.cancel',
          outcome: 'success',
          clientId: r.client_id,
          targetType: 'reveal_request',
          targetId: r.id,
          details: { keyId: r.key_id, device: r.device_name },
        });
        return view((await repo.get(t, null, r.id))!, actor, person, now);
      });
    },

    /**
     * The reveal path's question, asked in the reveal's transaction once the one key is known:
     * may this actor reveal it now? Approval is needed by policy; an approved request of this actor
     * for this very key lets it through once (claimed after decryption, so a failed decryption
     * does not spend it); an owner may break the glass. The local CLI holds the master key and is
     * not asked.
     */
    async gate(t: Tx, actor: Actor, key: GateKey, input: GateInput): Promise<GateDecision> {
      if (actor.type === 'cli' || actor.type === 'system') return { ok: true, details: {} };
      const now = clock.now();
      const requestId = input.approvalRequestId?.trim() || null;
      const breakGlass = input.breakGlassReason !== undefined && input.breakGlassReason !== null;
      const refuse = (error: AppError, problem: string): GateDecision => ({ ok: false, error, problem });
      if (requestId && breakGlass)
        return refuse(badRequest('Reveal either with an approved request or by break-glass, not both.'), 'request and break-glass together');

      if (requestId) {
        const r = isId(requestId) ? await repo.get(t, null, requestId.toLowerCase()) : undefined;
        if (!r || r.client_id !== key.client_id || r.requester_id !== actor.id) {
          return refuse(
            forbidden(`Request ${requestId.slice(0, 60)} is not an approval of yours for this key; ask for approval of this key.`),
            'not an approval of this actor',
          );
        }
        if (r.recovery_key_id !== key.id) {
          return refuse(forbidden('That approval is for another key; it cannot reveal this one. Ask for approval of this key.'), 'approval of another key');
        }
        const status = statusOf(r, now);
        if (status === 'pending') {
          return refuse(
            approvalRequired('Your request waits for a second person to approve it.', { keyRecordId: key.id, requestId: r.id }),
            'approval pending',
          );
        }
        if (status === 'expired') {
          return refuse(approvalRequired('That approval has expired; ask for approval again.', { keyRecordId: key.id, requestId: r.id }), 'approval expired');
        }
        if (status === 'denied') return refuse(forbidden(`${r.decided_by_name ?? 'The approver'} denied that request.`), 'request denied');
        if (status === 'used') return refuse(conflict('That approval has already been used: an approval reveals the key once.'), 'approval already used');
        if (status !== 'approved') return refuse(conflict(`That request is ${status}.`), `request ${status}`);
        // The approver approved this work (its ticket): the reveal cannot name other work.
        if (r.ticket && ticketText(input.ticket) !== ticketText(r.ticket)) {
          return refuse(
            new AppError('conflict', `That approval was given for ticket ${r.ticket}: reveal with the same ticket, or ask for approval again.`, {
              field: 'ticket',
            }),
            'ticket differs from the approved request',
          );
        }
        return {
          ok: true,
          details: { approvalRequestId: r.id, requestedBy: r.requester_name, approvedBy: r.decided_by_name },
          // Claimed in the reveal's transaction: of two reveals at once, one wins.
          claim: (x) => repo.use(x, r.id, key.id, actor.id, clock.now()),
        };
      }

      const { required, why } = await requirement(t, key);
      if (breakGlass) {
        const psaDown = input.psaBreakGlass?.trim() || null;
        if (!required && !psaDown) return refuse(badRequest('This key needs no approval: reveal it without break-glass.'), 'break-glass not needed');
        if (!can(actor, 'key:break-glass', key.client_id)) {
          return refuse(
            forbidden(
              required
                ? 'Only an owner signed in as a person can reveal without approval (break-glass); ask a second person to approve instead.'
                : 'Only an owner signed in as a person can reveal without a checked ticket (break-glass); wait until the PSA can be reached, or ask an owner.',
            ),
            'break-glass not allowed',
          );
        }
        try {
          requireFreshSecondFactor(actor, 'reveal without approval (break-glass)', now, stepUpMinutes);
        } catch (e) {
          if (isAppError(e)) return refuse(e, 'step-up required for break-glass');
          throw e;
        }
        let why2: string | null;
        try {
          why2 = cleanText(input.breakGlassReason, 'breakGlassReason', 'The break-glass reason', 500);
        } catch (e) {
          if (isAppError(e)) return refuse(e, 'break-glass reason not valid');
          throw e;
        }
        if (!why2 || why2.length < 10) {
          return refuse(
            badRequest('Say why you break the glass (at least 10 characters): it is kept in the audit log and sent to the notification rules.', {
              field: 'breakGlassReason',
            }),
            'break-glass reason missing',
          );
        }
        const bgReason = why2;
        const without = [required ? "a second person's approval" : null, psaDown ? `a checked ticket (${psaDown})` : null].filter(Boolean).join(' and ');
        return {
          ok: true,
          details: { breakGlass: true, breakGlassReason: bgReason, ...(psaDown ? { psaProblem: psaDown } : {}) },
          after: async (x) => {
            const keyText = key.key_id ? formatKeyIdForDisplay(key.key_id) : key.id;
            await audit.record(x, actor, {
              action: 'key.break_glass',
              outcome: 'success',
              clientId: key.client_id,
              targetType: 'recovery_key',
              targetId: key.id,
              details: { keyId: key.key_id, device: key.device_name, breakGlassReason: bgReason, policy: why, ...(psaDown ? { psaProblem: psaDown } : {}) },
            });
            await notifier?.emit(x, {
              type: 'key.break_glass',
              clientId: key.client_id,
              deviceId: key.device_id,
              subject: `BREAK-GLASS: ${actor.name} revealed recovery key ${keyText} of ${key.device_name ?? 'an unknown device'} without ${without}`,
              details: {
                keyId: key.key_id,
                device: key.device_name,
                revealedBy: actor.name,
                breakGlassReason: bgReason,
                ...(psaDown ? { psaProblem: psaDown } : {}),
              },
              occurredAt: clock.now(),
            });
          },
        };
      }
      if (required) {
        return refuse(
          approvalRequired(
            `Revealing this key needs a second person's approval: ${why}. Ask for approval (POST /api/v1/reveal-requests), then reveal with the approved request.`,
            {
              keyRecordId: key.id,
            },
          ),
          'approval required',
        );
      }
      return { ok: true, details: {} };
    },
  };
}
export type RevealApprovals = ReturnType<typeof createRevealApprovals>;
