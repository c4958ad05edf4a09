import type { Executor, Tx } from '../../db/database.js';
import type { Transactions } from '../../db/transactions.js';
import { lockKey } from '../../db/locks.js';
import { isId } from '../../db/scope.js';
import type { Keyring } from '../../crypto/keyring.js';
import type { Clock } from '../../lib/clock.js';
import { badRequest, conflict, forbidden, notFound, vaultError, isAppError, rateLimited, type AppError } from '../../lib/errors.js';
import { parseKeyIdQuery, parseSpokenKeyIdQuery, type KeyIdQuery } from '../../domain/key-id.js';
import { containsRecoveryPasswordLike } from '../../domain/recovery-password.js';
import { parseRevealReason } from '../../domain/reason-codes.js';
import { can, clientScope, mayListCandidates, requireFreshSecondFactor, requirePermission, revealScope, type Actor } from '../authz/authz.js';
import type { AuditService } from '../audit/audit.service.js';
import type { Notifier } from '../notifications/notifier.js';
import { formatKeyIdForDisplay } from '../../domain/key-id.js';
import type { KeySummaryRow, KeysRepo } from './keys.repo.js';
import type { KeySummary, RevealedKey } from './keys.types.js';
import { rankCandidates, summariesOf, summarizeKeys } from './keys.summary.js';
import type { PsaTickets } from '../psa/psa.tickets.js';

type Deps = {
  tx: Transactions;
  repo: KeysRepo;
  /** The agent's device jobs: whether a rotation now waits for a disclosed key. */
  rotations: { pendingRotationKind(exec: Executor, clientId: string, recoveryKeyId: string): Promise<'rotate' | 'intune-rotate' | null> };
  keyring: Pick<Keyring<Executor>, 'clientCipher'>;
  audit: Pick<AuditService, 'record' | 'recordNow'>;
  clock: Clock;
  /** Reveal guards; the CLI (which holds the master key) runs without them. */
  guard?: {
    stepUpMinutes: number;
    revealLimitPerHour: number;
    /** Reveal attempts an actor made since a time (the audit log), read in the reveal's transaction. */
    revealsSince(exec: Executor, actorId: string, since: string): Promise<number>;
  };
  /** Runs in the reveal's transaction after a key became disclosed (the agent queues a rotation). */
  onDisclosed?: (tx: Executor, actor: Actor, key: { id: string; client_id: string; device_id: string | null; key_id: string | null }) => Promise<void>;
  /**
   * Self-service recovery (end users): attempts an end user made since a time, from the audit log
   * (`key.self_service_reveal`), all attempts or successes only; read under the user's lock.
   */
  selfServiceCounts?: (exec: Executor, actorId: string, since: string, successOnly: boolean) => Promise<number>;
  /**
   * Ticket-bound reveal (src/modules/psa/psa.tickets.ts): the client's ticket policy. `check` calls
   * the PSA before the reveal's transaction; the transaction makes sure it reveals the key that was
   * checked, audits the result and queues the internal note, delivered after commit.
   */
  ticketGate?: Pick<PsaTickets, 'applies' | 'rulesOf' | 'check' | 'queueNote' | 'deliverSoon'>;
  /** key.revealed notifications, written in the reveal's transaction. */
  notifier?: Notifier;
  /**
   * Two-person reveal (src/modules/reveal-approvals): asked in the reveal's transaction once the one
   * key is known. A refusal is audited as a denied reveal; `claim` runs after a successful
   * decryption (an approval is spent only by a reveal that worked; false: someone else spent it);
   * `after` runs once the reveal is audited (break-glass: its own audit event and notification).
   */
  approvalGate?: (
    tx: Tx,
    actor: Actor,
    key: { id: string; client_id: string; device_id: string | null; key_id: string | null; device_name: string | null },
    input: { approvalRequestId?: string | null; breakGlassReason?: string | null; query: string; psaBreakGlass?: string | null },
  ) => Promise<
    | { ok: true; details: Record<string, unknown>; claim?: (tx: Tx) => Promise<boolean>; after?: (tx: Tx) => Promise<void> }
    | { ok: false; error: AppError; problem: string }
  >;
};

export type RevealInput = {
  /** A key ID, the first 8+ characters of one, or the id of one key record. */
  query: string;
  reason: string;
  ticket?: string | null;
  note?: string | null;
  /** Two-person reveal: the id of this actor's approved request for this key. */
  approvalRequestId?: string | null;
  /** Two-person reveal: an owner reveals without approval, saying why (break-glass). */
  breakGlassReason?: string | null;
};
export type RevealResult =
  /** rotation: how the disclosed key will be replaced (the agent at its next check-in, Intune), or null when nothing is queued. */
  | { status: 'revealed'; key: RevealedKey; rotation: 'agent' | 'intune' | null }
  /** candidates ranked (see rankCandidates); tryFirst: the record id to read out first, or null. */
  | { status: 'ambiguous'; matches: number; candidates: KeySummary[]; tryFirst: string | null }
  /** Only the count: a prefix, for a role that may not browse keys. */
  | { status: 'ambiguous'; matches: number; candidates: null }
  | { status: 'not_found' };

/** More matches than this for one prefix are not listed; the caller must type more of the ID. */
const MAX_CANDIDATES = 50;

/**
 * Parses what a technician typed as a key ID. A pasted recovery password is refused without
 * being echoed: error messages never carry one, not even back to the person who typed it.
 */
function parseQuery(input: string) {
  if (containsRecoveryPasswordLike(input)) {
    throw badRequest('That looks like a recovery password, not a key ID. Type the key ID shown on the recovery screen.');
  }
  // Spaces, O for 0 and I / l for 1 are forgiven here, so API, console and CLI agree.
  const q = parseSpokenKeyIdQuery(input);
  if (!q.ok) throw badRequest(`Key ID "${input.trim().slice(0, 60)}": ${q.reason}.`);
  return q.value;
}
const queryText = (q: KeyIdQuery) => (q.kind === 'full' ? q.keyId : q.prefix);
const NOTE_MAX = 1000;

/** What a reveal of a destroyed key answers (409), with the date and why. */
async function destroyedKeyError(repo: KeysRepo, exec: Executor, clientId: string, id: string) {
  const r = await repo.destroyedDetails(exec, clientId, id);
  const on = r?.destroyed_at ? r.destroyed_at.slice(0, 10) : 'an earlier date';
  const why = r?.destroyed_reason?.startsWith('client offboarded')
    ? 'when its client was offboarded (crypto-shred)'
    : r?.destroyed_reason?.startsWith('retention')
      ? 'after the retention period'
      : "on an owner's request";
  return conflict(`This key was destroyed on ${on} ${why}; its recovery password no longer exists in the vault.`);
}

export function createKeysService({
  tx: transactions,
  repo,
  rotations,
  keyring,
  audit,
  clock,
  guard,
  onDisclosed,
  notifier,
  approvalGate,
  selfServiceCounts,
  ticketGate,
}: Deps) {
  const db = transactions.reader;
  const summarize = (exec: Executor, rows: KeySummaryRow[]): Promise<KeySummary[]> => summarizeKeys(repo, exec, rows);

  // People and integrations are rate-limited; the local CLI (which holds the master key) is not.
  const limitOf = (actor: Actor) => (guard && (actor.type === 'user' || actor.type === 'token') ? guard : undefined);
  /** Per actor, the reveal running now (and those queued behind it) in this process. */
  const queues = new Map<string, Promise<unknown>>();
  async function oneAtATime<T>(key: string, f: () => Promise<T>): Promise<T> {
    const run = (queues.get(key) ?? Promise.resolve()).then(f, f);
    const tail = run.then(
      () => undefined,
      () => undefined,
    );
    queues.set(key, tail);
    try {
      return await run;
    } finally {
      if (queues.get(key) === tail) queues.delete(key);
    }
  }

  /**
   * One reveal (see revealByKeyId). The audit event, successful or not, is committed before the
   * password leaves this function.
   */
  async function revealOne(actor: Actor, input: RevealInput): Promise<RevealResult> {
    if (!can(actor, 'key:reveal')) {
      // A denied reveal is a fact worth keeping: record it before refusing.
      const q = parseKeyIdQuery(input.query);
      await audit.recordNow(actor, { action: 'key.reveal', outcome: 'denied', details: { query: q.ok ? queryText(q.value) : null } });
      requirePermission(actor, 'key:reveal');
    }
    const reason = parseRevealReason({ reason: input.reason, ticket: input.ticket ?? undefined });
    if (!reason.ok) throw badRequest(reason.reason);
    const parsed = parseQuery(input.query);
    const note = input.note?.trim() || null;
    if (note && note.length > NOTE_MAX) throw badRequest(`A note can be at most ${NOTE_MAX} characters.`, { field: 'note' });
    // The note goes into the audit log: never a recovery password, never control characters.
    if (note && containsRecoveryPasswordLike(note)) {
      throw badRequest('The note looks like it contains a recovery password; leave it out (the audit log must never hold one).', { field: 'note' });
    }
    // eslint-disable-next-line no-control-regex
    if (note && /[\u0000-\u0008\u000b-\u001f\u007f\u202a-\u202e\u2066-\u2069]/.test(note)) {
      throw badRequest('The note contains control characters.', { field: 'note' });
    }
    const query = queryText(parsed);
    const base = { action: 'key.reveal' as const, reasonCode: reason.value.reason, ticket: reason.value.ticket };

    if (guard && actor.session) {
      // A fresh second factor: a session signed in hours ago does not reveal keys on its own.
      // (API tokens have no second factor; they are limited by their grant and the hourly limit.)
      try {
        requireFreshSecondFactor(actor, 'reveal a recovery key', clock.now(), guard.stepUpMinutes);
      } catch (e) {
        await audit.recordNow(actor, { ...base, outcome: 'denied', details: { query, problem: 'step-up required' } });
        throw e;
      }
    }
    const limit = limitOf(actor);
    const hourAgo = () => new Date(Date.parse(clock.now()) - 3600_000).toISOString();
    const byRecordId = isId(input.query.trim()) ? input.query.trim().toLowerCase() : null;

    // Ticket-bound reveal: the PSA is asked here, before the transaction (no network call inside
    // one), about the one key the query names now. Someone already over the hourly limit is not
    // worth a PSA call: the transaction refuses them first anyway. Ambiguous or unknown queries
    // fall through to the transaction's answer as before.
    let ticketCheck: Awaited<ReturnType<PsaTickets['check']>> | undefined;
    if (ticketGate && !(limit && (await limit.revealsSince(db, actor.id, hourAgo())) >= limit.revealLimitPerHour)) {
      // The same lookup as the transaction's: a record id first, else key-ID matches (a full key
      // ID is a GUID too, so it is tried as a record id and then as a key ID).
      const byRecord = byRecordId ? await repo.revealById(db, revealScope(actor), byRecordId) : undefined;
      const pre = byRecord ? [byRecord] : await repo.revealCandidates(db, revealScope(actor), parsed, 2);
      if (pre.length === 1 && pre[0]!.state !== 'destroyed') ticketCheck = await ticketGate.check(actor, pre[0]!, reason.value.ticket);
    }
    const breakGlassGiven = input.breakGlassReason !== undefined && input.breakGlassReason !== null;
    let noteId: string | null = null;

    let plaintext: string | undefined;
    let failure: unknown;
    let refusal: AppError | undefined;
    const outcome = await transactions.run(async (tx): Promise<RevealResult | { status: 'rate_limited' } | { status: 'refused' }> => {
      if (limit) {
        // Count and record under one lock per actor: parallel reveals by one person queue here,
        // each sees the attempts committed before it, so the limit holds exactly.
        await lockKey(tx, 'reveal', actor.id);
        if ((await limit.revealsSince(tx, actor.id, hourAgo())) >= limit.revealLimitPerHour) {
          // Committed with this transaction; the refusal is thrown once it has been.
          await audit.record(tx, actor, { ...base, outcome: 'rate_limited', details: { query } });
          return { status: 'rate_limited' };
        }
      }
      // The id of one key record (what the console links to) names exactly that key.
      const byRecord = byRecordId ? await repo.revealById(tx, revealScope(actor), byRecordId) : undefined;
      const rows = byRecord ? [byRecord] : await repo.revealCandidates(tx, revealScope(actor), parsed, MAX_CANDIDATES + 1);
      if (rows.length === 0) {
        await audit.record(tx, actor, { ...base, outcome: 'not_found', details: { query } });
        return { status: 'not_found' };
      }
      if (rows.length > 1) {
        await audit.record(tx, actor, { ...base, outcome: 'ambiguous', details: { query, matches: rows.length } });
        // Seeing the list of candidates for a prefix is browsing: only roles that may list keys get
        // it. A full key ID is no browsing: every record of it (one per client, a conflict) is a
        // key the actor may reveal, shown with its client so the right one is revealed by record id.
        const mayList = mayListCandidates(actor) || parsed.kind === 'full';
        if (!mayList) return { status: 'ambiguous', matches: rows.length, candidates: null };
        const ranked = rankCandidates(summariesOf(rows.slice(0, MAX_CANDIDATES)));
        return { status: 'ambiguous', matches: rows.length, candidates: ranked.keys, tryFirst: ranked.tryFirst };
      }
      const { ciphertext, data_key_version: dataKeyVersion, ...row } = rows[0]!;
      // A destroyed key (retention ended, or its client was offboarded) answers in plain words.
      const destroyed = row.state === 'destroyed' ? await destroyedKeyError(repo, tx, row.client_id, row.id) : undefined;
      const target = { clientId: row.client_id, targetType: 'recovery_key', targetId: row.id };
      const ticketDetails = ticketCheck?.keyRecordId === row.id && ticketCheck.audit ? { ticket: ticketCheck.audit } : {};
      const refuse = async (error: AppError, problem: string) => {
        plaintext = undefined;
        refusal = error;
        await audit.record(tx, actor, {
          ...base,
          ...target,
          outcome: 'denied',
          details: { keyId: row.key_id, query, device: row.device_name ?? null, problem, ...ticketDetails },
        });
        return { status: 'refused' as const };
      };
      // Ticket-bound reveal: the key revealed must be the key whose ticket was checked.
      let psaBreakGlass: string | null = null;
      if (ticketGate && !destroyed) {
        if (!ticketCheck || ticketCheck.keyRecordId !== row.id) {
          if (await ticketGate.applies(tx, actor, row.client_id)) {
            return refuse(conflict('The key changed while its ticket was being checked: reveal it again.'), 'key changed during the ticket check');
          }
        } else if ((await ticketGate.rulesOf(tx, actor, row.client_id)) !== ticketCheck.rules) {
          // The client's ticket policy, company or assignee rule changed while this reveal was on its way: check again.
          return refuse(conflict("The client's ticket policy changed while this reveal was on its way: reveal it again."), 'ticket policy changed');
        } else if (ticketCheck.refusal) {
          // Only "the PSA cannot be asked" yields to an owner's break-glass (checked by the approval gate).
          if (!(ticketCheck.breakGlassProblem && breakGlassGiven && approvalGate)) return refuse(ticketCheck.refusal.error, ticketCheck.refusal.problem);
          psaBreakGlass = ticketCheck.breakGlassProblem;
        }
      }
      // Two-person reveal: may this actor reveal this key now (policy, an approved request, break-glass)?
      const gate = destroyed || !approvalGate ? undefined : await approvalGate(tx, actor, row, { ...input, query, psaBreakGlass });
      if (gate && !gate.ok) return refuse(gate.error, gate.problem);
      try {
        if (destroyed) throw destroyed;
        const cipher = await keyring.clientCipher(tx, row.client_id);
        plaintext = cipher.openRecoveryPassword(row.id, { ciphertext, dataKeyVersion });
      } catch (e) {
        failure = e;
      }
      // An approval is single use: spent here, in the reveal's transaction, only by a reveal that worked.
      if (!failure && gate?.ok && gate.claim && !(await gate.claim(tx))) {
        return refuse(conflict('That approval has already been used: an approval reveals the key once.'), 'approval already used');
      }
      await audit.record(tx, actor, {
        ...base,
        outcome: destroyed ? 'failure' : failure ? 'error' : 'success',
        clientId: row.client_id,
        targetType: 'recovery_key',
        targetId: row.id,
        details: {
          keyId: row.key_id,
          query,
          device: row.device_name ?? null,
          ...(note ? { note } : {}),
          ...(destroyed ? { problem: 'the key was destroyed' } : {}),
          ...(gate?.ok ? gate.details : {}),
          ...ticketDetails,
        },
      });
      if (!failure && gate?.ok && gate.after) await gate.after(tx);
      // A disclosed key should be rotated; the state says so until a new key arrives.
      if (!failure && row.state === 'active') {
        await repo.setState(tx, row.client_id, row.id, 'disclosed', clock.now());
        row.state = 'disclosed';
      }
      if (!failure && row.state === 'disclosed') await onDisclosed?.(tx, actor, row);
      if (!failure && notifier) {
        await notifier.emit(tx, {
          type: 'key.revealed',
          clientId: row.client_id,
          deviceId: row.device_id,
          subject: `Recovery key ${row.key_id ? formatKeyIdForDisplay(row.key_id) : row.id} of ${row.device_name ?? 'an unknown device'} was revealed by ${actor.name}`,
          details: {
            keyId: row.key_id,
            device: row.device_name ?? null,
            revealedBy: actor.name,
            reason: reason.value.reason,
            ticket: reason.value.ticket ?? null,
          },
          occurredAt: clock.now(),
        });
      }
      // What happens next, in plain words for the console: a rotation now waiting for this key.
      const kind = failure ? null : await rotations.pendingRotationKind(tx, row.client_id, row.id);
      const rotation = kind ? (kind === 'rotate' ? 'agent' : 'intune') : null;
      // The internal note on the ticket waits in the outbox, committed with the reveal.
      if (!failure && ticketGate && ticketCheck?.keyRecordId === row.id && ticketCheck.note) {
        noteId = await ticketGate.queueNote(tx, ticketCheck.note, {
          clientId: row.client_id,
          keyRecordId: row.id,
          keyId: row.key_id,
          device: row.device_name,
          clientName: row.client_name,
          actorName: actor.name,
          reason: reason.value.reason,
          rotation,
        });
      }
      const [summary] = summariesOf([row]);
      return { status: 'revealed', key: { ...summary!, recoveryPassword: '' }, rotation };
    });
    if (noteId && outcome.status === 'revealed') ticketGate!.deliverSoon(noteId);
    if (outcome.status === 'refused') throw refusal!;
    if (outcome.status === 'rate_limited') {
      throw rateLimited('You have revealed as many keys as allowed in an hour. Ask an owner if this is an emergency.', 3600);
    }
    if (failure) throw isAppError(failure) ? failure : vaultError('The recovery password could not be decrypted.');
    if (outcome.status === 'revealed') outcome.key.recoveryPassword = plaintext!;
    return outcome;
  }

  return {
    /** Metadata of keys the actor may see. Never a password. */
    async list(actor: Actor, filter: { clientId?: string; deviceId?: string; limit?: number; offset?: number } = {}): Promise<KeySummary[]> {
      requirePermission(actor, 'key:list', filter.clientId);
      const rows = await repo.list(db, clientScope(actor), {
        clientId: filter.clientId,
        deviceId: filter.deviceId,
        limit: Math.min(Math.max(filter.limit ?? 1000, 1), 100_000),
        offset: Math.max(filter.offset ?? 0, 0),
      });
      return summarize(db, rows);
    },

    /**
     * The search box: a key ID or 8+ character prefix finds keys by ID; anything else (2+
     * characters) matches device name, serial number or user. Metadata only.
     */
    async search(actor: Actor, text: string, limit = 50): Promise<KeySummary[]> {
      requirePermission(actor, 'key:list');
      const t = text.trim();
      if (containsRecoveryPasswordLike(t)) throw badRequest('That looks like a recovery password; search by key ID, device name, serial or user.');
      const asKeyId = parseSpokenKeyIdQuery(t);
      if (asKeyId.ok && !asKeyId.value.forgiven) return summarize(db, await repo.searchByKeyId(db, clientScope(actor), asKeyId.value, limit));
      if (t.length < 2) throw badRequest('Type at least 2 characters of a device name, serial number or user, or 8 of a key ID.', { field: 'q' });
      const byDevice = await repo.searchByDevice(db, clientScope(actor), t.slice(0, 100), limit);
      if (!asKeyId.ok) return summarize(db, byDevice);
      // Only a forgiving reading makes it a key ID (`4290B6CO`, `35D132DC E86A`, but also a name
      // like OFFICE01): key matches first, and the device matches the strict search always gave.
      const byKey = await repo.searchByKeyId(db, clientScope(actor), asKeyId.value, limit);
      const seen = new Set(byKey.map((r) => r.id));
      return summarize(db, [...byKey, ...byDevice.filter((r) => !seen.has(r.id))].slice(0, limit));
    },

    /** One key's metadata by its record id; another client's key is "not found". */
    async get(actor: Actor, id: string): Promise<KeySummary> {
      requirePermission(actor, 'key:list');
      const row = isId(id) ? await repo.summaryById(db, clientScope(actor), id.toLowerCase()) : undefined;
      if (!row) throw notFound(`No key record with id ${id.slice(0, 60)}.`);
      return (await summarize(db, [row]))[0]!;
    },

    /** Search by key-ID prefix or full ID (metadata only). */
    async searchByKeyId(actor: Actor, query: string): Promise<KeySummary[]> {
      requirePermission(actor, 'key:list');
      return summarize(db, await repo.searchByKeyId(db, clientScope(actor), parseQuery(query), MAX_CANDIDATES));
    },

    /**
     * The helpdesk call: find the one key matching a key ID (or 8+ digit prefix) and reveal it.
     * The audit event, successful or not, is committed before the password leaves this function.
     */
    async revealByKeyId(actor: Actor, input: RevealInput): Promise<RevealResult> {
      // With a ticket to check, one person's (or token's) reveals run one at a time in this process: the
      // hourly limit is read before the PSA is asked, so a parallel burst would otherwise ask the PSA
      // once per request however far over the limit it is (the MSP's PSA API quota is shared by all
      // its integrations). One at a time, every attempt after the limit is refused without a PSA call.
      const checked = ticketGate && limitOf(actor) && !!input.ticket?.trim();
      return checked ? oneAtATime(actor.id, () => revealOne(actor, input)) : revealOne(actor, input);
    },

    /**
     * Self-service recovery: an end user (actor type end-user, no console permission) types the
     * first 8 characters of a key ID and a reason; only a key of one of `deviceIds` (the devices of
     * `clientId` they own or use, decided by the self-service module) is revealed. Anything else —
     * a key of another device, of another client, or no key — is the same "not_found", so the
     * answer tells nothing about other devices. Attempts are counted per user under a lock (hourly
     * attempts, daily reveals), audited as `key.self_service_reveal` with the user's UPN and tenant;
     * a reveal queues the rotation after disclosure and notifies the MSP, like a console reveal.
     */
    async revealOwnKey(
      actor: Actor,
      input: {
        clientId: string;
        deviceIds: readonly string[];
        prefix: string;
        reason: string;
        who: { upn: string; tenantId: string };
        limits: { attemptsPerHour: number; revealsPerDay: number };
      },
    ): Promise<{ status: 'revealed'; key: RevealedKey; rotation: 'agent' | 'intune' | null } | { status: 'not_found' }> {
      if (actor.type !== 'end-user') throw badRequest('Only an end user signed in for self-service recovery can use this.');
      const compact = input.prefix.replace(/[\s-]/g, '');
      if (containsRecoveryPasswordLike(input.prefix))
        throw badRequest('That looks like a recovery password, not a key ID. Type the first 8 characters of the key ID shown on the blue screen.');
      if (!/^[0-9a-f]{8}$/i.test(compact))
        throw badRequest('Type the first 8 characters of the key ID (0-9 and A-F) shown on the recovery screen.', { field: 'keyId' });
      const reason = input.reason.trim();
      if (reason.length < 3 || reason.length > 300) throw badRequest('Say in a few words why you need the key (3 to 300 characters).', { field: 'reason' });
      if (containsRecoveryPasswordLike(reason)) throw badRequest('The reason looks like it contains a recovery password; leave it out.', { field: 'reason' });
      // eslint-disable-next-line no-control-regex
      if (/[\u0000-\u001f\u007f\u202a-\u202e\u2066-\u2069]/.test(reason)) throw badRequest('The reason contains control characters.', { field: 'reason' });
      const prefix = compact.toLowerCase();
      const parsed = parseKeyIdQuery(prefix);
      if (!parsed.ok) throw badRequest('Type the first 8 characters of the key ID shown on the recovery screen.', { field: 'keyId' });
      const whoDetails = { upn: input.who.upn, tenantId: input.who.tenantId, query: prefix, reason };
      const base = { action: 'key.self_service_reveal' as const, clientId: input.clientId };
      const devices = new Set(input.deviceIds);

      let plaintext: string | undefined;
      let failure: unknown;
      let limited: AppError | undefined;
      const outcome = await transactions.run(async (tx) => {
        // Count and record under one lock per end user: a parallel burst queues here and sees the
        // attempts committed before it, so the limits hold exactly (PostgreSQL advisory lock).
        await lockKey(tx, 'self-service', actor.id);
        const now = Date.parse(clock.now());
        const hour = new Date(now - 3600_000).toISOString();
        const day = new Date(now - 86_400_000).toISOString();
        const count = selfServiceCounts ?? (async () => 0);
        if ((await count(tx, actor.id, hour, false)) >= input.limits.attemptsPerHour) {
          await audit.record(tx, actor, { ...base, outcome: 'rate_limited', details: { ...whoDetails, limit: 'attempts per hour' } });
          limited = rateLimited(`You can try ${input.limits.attemptsPerHour} key IDs an hour. Try again later, or call your IT provider.`, 3600);
          return { status: 'limited' as const };
        }
        if ((await count(tx, actor.id, day, true)) >= input.limits.revealsPerDay) {
          await audit.record(tx, actor, { ...base, outcome: 'rate_limited', details: { ...whoDetails, limit: 'reveals per day' } });
          limited = rateLimited(`You can get ${input.limits.revealsPerDay} keys a day. Call your IT provider.`, 86_400);
          return { status: 'limited' as const };
        }
        const rows = devices.size
          ? (await repo.revealCandidates(tx, [input.clientId], parsed.value, 200)).filter((r) => r.device_id && devices.has(r.device_id))
          : [];
        // Only working keys; the newest first (revealCandidates orders by first seen).
        const usable = rows.filter((r) => r.state === 'active' || r.state === 'disclosed');
        const row = usable[0];
        if (!row) {
          await audit.record(tx, actor, { ...base, outcome: 'not_found', details: { ...whoDetails, devices: devices.size } });
          return { status: 'not_found' as const };
        }
        const { ciphertext, data_key_version: dataKeyVersion, ...key } = row;
        // A client's two-person rule holds for its users too: no approval, no key.
        const gate = approvalGate ? await approvalGate(tx, actor, key, { query: prefix }) : undefined;
        if (gate && !gate.ok) {
          await audit.record(tx, actor, {
            ...base,
            targetType: 'recovery_key',
            targetId: key.id,
            outcome: 'denied',
            details: { ...whoDetails, keyId: key.key_id, device: key.device_name ?? null, problem: gate.problem },
          });
          limited = forbidden('Your IT provider must approve every reveal for your organisation: call them.');
          return { status: 'limited' as const };
        }
        try {
          plaintext = (await keyring.clientCipher(tx, key.client_id)).openRecoveryPassword(key.id, { ciphertext, dataKeyVersion });
        } catch (e) {
          failure = e;
        }
        await audit.record(tx, actor, {
          ...base,
          targetType: 'recovery_key',
          targetId: key.id,
          outcome: failure ? 'error' : 'success',
          details: { ...whoDetails, keyId: key.key_id, device: key.device_name ?? null, selfService: true },
        });
        if (failure) return { status: 'not_found' as const };
        if (key.state === 'active') {
          await repo.setState(tx, key.client_id, key.id, 'disclosed', clock.now());
          key.state = 'disclosed';
        }
        await onDisclosed?.(tx, actor, key);
        await notifier?.emit(tx, {
          type: 'key.self_service_reveal',
          clientId: key.client_id,
          deviceId: key.device_id,
          subject: `${input.who.upn} revealed recovery key ${key.key_id ? formatKeyIdForDisplay(key.key_id) : key.id} of ${key.device_name ?? 'their device'} (self-service)`,
          details: { keyId: key.key_id, device: key.device_name ?? null, revealedBy: input.who.upn, tenantId: input.who.tenantId, reason },
          occurredAt: clock.now(),
        });
        const kind = await rotations.pendingRotationKind(tx, key.client_id, key.id);
        const [summary] = summariesOf([key]);
        return {
          status: 'revealed' as const,
          key: { ...summary!, recoveryPassword: '' },
          rotation: kind ? (kind === 'rotate' ? ('agent' as const) : ('intune' as const)) : null,
        };
      });
      if (outcome.status === 'limited') throw limited!;
      if (failure) throw isAppError(failure) ? failure : vaultError('The recovery password could not be decrypted.');
      if (outcome.status === 'revealed') outcome.key.recoveryPassword = plaintext!;
      return outcome;
    },
  };
}
export type KeysService = ReturnType<typeof createKeysService>;
