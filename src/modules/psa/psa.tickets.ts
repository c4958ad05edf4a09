import type { Executor, Tx } from '../../db/database.js';
import type { Transactions } from '../../db/transactions.js';
import type { Clock } from '../../lib/clock.js';
import { newId } from '../../lib/ids.js';
import { AppError, badRequest, unavailable } from '../../lib/errors.js';
import { checkTicket, normaliseTicketText, type TicketProblem } from '../../domain/psa/ticket-check.js';
import { REASON_CODES } from '../../domain/reason-codes.js';
import { inertPsaText, psaLine } from '../../domain/psa/psa-text.js';
import { containsRecoveryPasswordLike, redactRecoveryPasswordLike } from '../../domain/recovery-password.js';
import { PSA_NAMES, PsaError, type PsaKind } from '../../integrations/psa/index.js';
import { can, systemActor, type Actor } from '../authz/authz.js';
import type { AuditService } from '../audit/audit.service.js';
import type { Notifier } from '../notifications/notifier.js';
import type { ClientPsaSettings, PsaAccess } from './psa.access.js';
import type { PsaNotesRepo } from './psa-notes.repo.js';

/**
 * Ticket-bound reveal (issue 21, item 2). Per client (PsaAccess.clientSettings):
 * - off: the ticket is free text, nothing is checked, nothing is posted;
 * - validate: a ticket given is checked and gets an internal note; none given, the reveal goes on as before;
 * - required: no valid ticket, no reveal.
 *
 * `check` runs BEFORE the reveal's transaction (it calls the PSA: a network call never runs inside
 * a transaction). The keys service then makes sure, in its transaction, that the key it reveals is
 * the one checked, audits the outcome with `audit` details and queues the note (`queueNote`) in the
 * same transaction; `deliverSoon` posts it after commit and the `psa-notes` task retries it with
 * back-off while the PSA is down. A note never blocks or undoes a reveal.
 *
 * Only people and their API tokens are subject to the policy. The local CLI holds the master key
 * anyway, system jobs reveal nothing, and self-service end users (keys.service revealOwnKey) have no
 * PSA ticket: none of them is checked.
 *
 * Naming another company: when a ticket belongs to another PSA company, its name is given only if
 * that company is linked to a Keywarden client the technician may see; otherwise the answer says
 * "another company", so a technician limited to some clients learns nothing about the others.
 */

/**
 * PSA failures that mean "cannot be asked now" (the policy decides), not "the ticket is wrong". The PSA
 * clients turn an egress policy refusal into `refused`: the PSA cannot be asked then either.
 */
const DOWN = new Set(['unreachable', 'timeout', 'throttled', 'auth_failed', 'refused']);
const isDown = (e: PsaError) => DOWN.has(e.code) || /^http_5\d\d$/.test(e.code);

/** Whether the PSA answers a harmless read (its connection test) now. */
async function answersNow(client: { testConnection(): Promise<void> }): Promise<boolean> {
  try {
    await client.testConnection();
    return true;
  } catch (e) {
    if (e instanceof PsaError) return false;
    throw e;
  }
}

/** The scheduler task that retries notes not posted right after their reveal. */
export const PSA_NOTES_TASK = 'psa-notes';

/** Attempts before a note is given up (psa.note_failed), and the back-off between them. */
export const NOTE_MAX_ATTEMPTS = 6;
const backoffMinutes = (attempts: number) => Math.min(2 ** (attempts - 1), 60);
const NOTE_LEASE_MINUTES = 5;
const addMinutes = (iso: string, m: number) => new Date(Date.parse(iso) + m * 60_000).toISOString();

/** What the note is posted about, for the outbox row. */
export type NotePlan = { psaKind: PsaKind; ticketRef: string; ticketId: string | null; companyId: string; validated: boolean };

/** What the audit event's details record about the ticket (`ticket`): never a secret. */
export type TicketAudit = {
  number: string;
  psa: PsaKind | null;
  validated: boolean;
  id?: string;
  company?: string | null;
  problem?: string;
};

export type TicketGateResult = {
  /** The key record that was checked; the reveal's transaction refuses another one. */
  keyRecordId: string;
  /** False: the client's policy is off (or the actor is not subject to it): nothing was checked. */
  applies: boolean;
  /** The rules the check followed (see `rulesOf`): the reveal's transaction refuses when they changed since. */
  rules: string;
  audit: TicketAudit | null;
  note: NotePlan | null;
  /** Set: the reveal must not go ahead (audited as a denied reveal with `problem`). */
  refusal: { error: AppError; problem: string } | null;
  /**
   * Set when the refusal is only "the PSA cannot be asked and the client requires a ticket": an
   * owner's break-glass (key:break-glass, reason, fresh step-up) lets the reveal go ahead then, and
   * never for a ticket the PSA said is wrong.
   */
  breakGlassProblem: string | null;
};

type Deps = {
  tx: Transactions;
  access: PsaAccess;
  notes: PsaNotesRepo;
  audit: Pick<AuditService, 'record'>;
  clock: Clock;
  /** The person behind an actor (an API token's creator), whose PSA member must be the ticket's assignee. */
  personOf(exec: Executor, actor: Actor): Promise<string>;
  onDeliveryError?: (e: unknown) => void;
  /** psa.note_failed notifications, written with the give-up's audit event. */
  notifier?: Notifier;
};

/** A refused check: 409 (400 for a ticket that cannot be a ticket number), field `ticket`, the problem named. */
function refusedTicket(message: string, problem: string, extra: Record<string, unknown> = {}): AppError {
  return new AppError('conflict', message, { field: 'ticket', ticketProblem: problem, ...extra });
}

export function createPsaTickets({ tx, access, notes, audit, clock, personOf, onDeliveryError, notifier }: Deps) {
  const db = tx.reader;
  const inFlight = new Set<Promise<unknown>>();
  const subject = (actor: Actor) => actor.type === 'user' || actor.type === 'token';

  /** Whether a reveal of this client's keys by this actor is checked against a ticket. */
  async function applies(exec: Executor, actor: Actor, clientId: string): Promise<boolean> {
    if (!subject(actor)) return false;
    return (await access.clientSettings(exec, clientId)).ticketPolicy !== 'off';
  }

  const rulesText = (s: ClientPsaSettings) =>
    s.ticketPolicy === 'off' ? 'off' : `${s.ticketPolicy}|${s.companyId ?? ''}|${s.requireAssignee ? 'assignee' : ''}`;

  /** The ticket rules this actor's reveal of this client's keys follows now (policy, company, assignee), as one text. */
  async function rulesOf(exec: Executor, actor: Actor, clientId: string): Promise<string> {
    return subject(actor) ? rulesText(await access.clientSettings(exec, clientId)) : 'off';
  }

  async function check(actor: Actor, key: { id: string; client_id: string; client_name: string }, typed: string | null): Promise<TicketGateResult> {
    const off: TicketGateResult = { keyRecordId: key.id, applies: false, rules: 'off', audit: null, note: null, refusal: null, breakGlassProblem: null };
    if (!subject(actor)) return off;
    const settings = await access.clientSettings(db, key.client_id);
    const none = { ...off, rules: rulesText(settings) };
    const policy = settings.ticketPolicy;
    if (policy === 'off') return none;
    const result = (r: Partial<TicketGateResult>): TicketGateResult => ({ ...none, applies: true, ...r });
    const refuse = (error: AppError, problem: string, a: TicketAudit | null = null) => result({ refusal: { error, problem }, audit: a });

    if (!typed) {
      if (policy === 'validate') return result({});
      return refuse(
        refusedTicket(`${key.client_name} requires a PSA ticket for every reveal: enter the number of an open ticket of this client.`, 'ticket missing'),
        'ticket missing',
      );
    }
    const n = normaliseTicketText(typed);
    if (!n.ok)
      return refuse(
        badRequest(`Ticket "${typed.trim().slice(0, 40)}": ${n.reason}.`, { field: 'ticket', ticketProblem: 'ticket not valid' }),
        'ticket not valid',
      );
    const number = n.value;
    if (!settings.companyId) {
      return refuse(
        refusedTicket(
          `${key.client_name} checks reveal tickets but is not linked to a PSA company: an owner or admin must link the client to its PSA company first.`,
          'client not linked',
        ),
        'client not linked',
        { number, psa: null, validated: false, problem: 'client not linked' },
      );
    }
    // 'interactive': a person waits, so throttling is not waited out for long.
    const psa = await access.active('interactive');
    if (!psa) {
      const a: TicketAudit = { number, psa: null, validated: false, problem: 'no PSA connection' };
      // Validate-when-given cannot validate without a PSA: the reveal goes on, marked unverified.
      if (policy === 'validate') return result({ audit: a });
      return refuse(
        refusedTicket(
          `${key.client_name} requires a valid PSA ticket, but no PSA is connected: an owner must connect the PSA (Settings → PSA).`,
          'no PSA connection',
        ),
        'no PSA connection',
        a,
      );
    }
    const psaName = PSA_NAMES[psa.kind];
    const plan: NotePlan = { psaKind: psa.kind, ticketRef: number, ticketId: null, companyId: settings.companyId, validated: false };

    // The assignee rule needs the technician's linked PSA member (read before the network call).
    const assignee = settings.requireAssignee ? { member: await access.memberOf(db, await personOf(db, actor)), who: actor.name } : undefined;

    let ticket;
    try {
      ticket = await psa.client.getTicket(number);
    } catch (e) {
      if (!(e instanceof PsaError)) throw e;
      // "Cannot be asked" only when the PSA fails a harmless read too: a PSA that answers but fails on
      // this one ticket (an internal error, a gateway timeout for an odd number) says nothing about
      // the ticket being valid, so it must not reveal "unverified" nor open the owner's break-glass.
      if (isDown(e) && !(await answersNow(psa.client))) {
        const problem = `${psaName} unreachable`;
        const a: TicketAudit = { number, psa: psa.kind, validated: false, problem };
        if (policy === 'validate') return result({ audit: a, note: plan });
        return result({
          audit: a,
          note: plan,
          breakGlassProblem: problem,
          refusal: {
            problem,
            // 503: nothing is wrong with the ticket as far as anyone knows; the PSA cannot say.
            error: unavailable(
              `${psaName} cannot be reached to check ticket ${number} (${e.message.replace(/\.$/, '')}); ${key.client_name} requires a valid ticket. An owner can reveal with break-glass (reason recorded, owners notified).`,
              { field: 'ticket', ticketProblem: problem, breakGlass: can(actor, 'key:break-glass', key.client_id) },
            ),
          },
        });
      }
      // The PSA answered, but not with a ticket (the connection's rights, a malformed answer, a failure
      // on this ticket only): e.message is Keywarden's words.
      const why = isDown(e)
        ? `${psaName} answers other requests but failed on this ticket (${e.message.replace(/\.$/, '')}): check the number, or use another open ticket of ${key.client_name}.`
        : e.message;
      return refuse(refusedTicket(`Ticket ${number} could not be checked: ${why}`, `PSA error ${e.code}`), `PSA error ${e.code}`, {
        number,
        psa: psa.kind,
        validated: false,
        problem: `PSA error ${e.code}`,
      });
    }

    let otherCompanyName: string | null = null;
    if (ticket && ticket.companyId !== settings.companyId) {
      const linked = (await access.linkedClients(db)).find((c) => c.companyId === ticket.companyId);
      if (linked && can(actor, 'client:read', linked.clientId)) otherCompanyName = ticket.companyName ?? linked.companyName;
    }
    const verdict = checkTicket({
      ticketText: number,
      ticket,
      psaName,
      companyId: settings.companyId,
      companyLabel: settings.companyName ? `${settings.companyName} (${key.client_name})` : `${key.client_name}'s company`,
      otherCompanyName,
      assignee,
    });
    if (!verdict.ok) {
      return refuse(refusedTicket(verdict.message, verdict.problem), verdict.problem satisfies TicketProblem, {
        number,
        psa: psa.kind,
        validated: false,
        ...(ticket ? { id: ticket.id } : {}),
        problem: verdict.problem,
      });
    }
    return result({
      audit: { id: ticket!.id, number: ticket!.number || number, psa: psa.kind, company: ticket!.companyName ?? settings.companyName, validated: true },
      note: { ...plan, ticketId: ticket!.id, validated: true },
    });
  }

  /**
   * The note's text: key ID prefix, device, client, who, the reason code's label and what happens
   * next. Never the password, never the reveal's free-text note (it could hold anything).
   */
  function noteText(f: {
    keyId: string | null;
    device: string | null;
    clientName: string;
    actorName: string;
    reason: string;
    rotation: 'agent' | 'intune' | null;
  }) {
    const key = f.keyId ? `${f.keyId.replace(/[{}]/g, '').slice(0, 8).toUpperCase()}…` : 'without a key ID';
    const reason = psaLine(REASON_CODES.find((r) => r.code === f.reason)?.label ?? f.reason);
    const next = f.rotation === 'agent' ? 'rotation queued (agent)' : f.rotation === 'intune' ? 'rotation queued (Intune)' : 'no rotation queued';
    // One line: a device name (an agent reports its own), a token or client name cannot forge a line of its own.
    const text = `Recovery key ${key} for ${f.device ? psaLine(f.device) : 'an unknown device'} (client ${psaLine(f.clientName)}) revealed in Keywarden by ${psaLine(f.actorName)}, reason: ${reason}; ${next}.`;
    // A name shaped like a recovery password is masked: the outbox never holds one, and the note is still posted.
    return inertPsaText(containsRecoveryPasswordLike(text) ? redactRecoveryPasswordLike(text) : text);
  }

  /** In the reveal's transaction: the note waits in the outbox until it is posted. Returns its id. */
  async function queueNote(t: Tx, plan: NotePlan, facts: Parameters<typeof noteText>[0] & { clientId: string; keyRecordId: string }): Promise<string> {
    const now = clock.now();
    const id = newId();
    await notes.insert(t, {
      id,
      client_id: facts.clientId,
      recovery_key_id: facts.keyRecordId,
      psa_kind: plan.psaKind,
      ticket_ref: plan.ticketRef,
      ticket_id: plan.ticketId,
      company_id: plan.companyId,
      validated: plan.validated ? 1 : 0,
      text: noteText(facts),
      status: 'pending',
      attempts: 0,
      next_attempt_at: now,
      last_problem: null,
      created_at: now,
      done_at: null,
    });
    return id;
  }

  const actorOfNotes = systemActor('psa-notes');

  /** One delivery attempt of a note this process has claimed. Never throws for a PSA problem. */
  async function attempt(row: Awaited<ReturnType<PsaNotesRepo['get']>> & object): Promise<'posted' | 'retry' | 'failed'> {
    const attempts = row.attempts + 1;
    const auditBase = { clientId: row.client_id, targetType: 'recovery_key', targetId: row.recovery_key_id };
    const details = { ticket: row.ticket_ref, psa: row.psa_kind, attempts };
    const giveUp = async (problem: string) => {
      await tx.run(async (t) => {
        await notes.finish(t, row.id, { status: 'failed', attempts, next_attempt_at: clock.now(), last_problem: problem, done_at: clock.now() });
        await audit.record(t, actorOfNotes, { action: 'psa.note_failed', outcome: 'failure', ...auditBase, details: { ...details, problem } });
        // The ticket now lacks the record of a reveal: someone should add it by hand.
        await notifier?.emit(t, {
          type: 'psa.note_failed',
          clientId: row.client_id,
          subject: `The note about a key reveal could not be posted on ticket ${row.ticket_ref} in ${PSA_NAMES[row.psa_kind as PsaKind] ?? 'the PSA'}: ${problem}`,
          details: { ticket: row.ticket_ref, psa: row.psa_kind, problem, note: row.text },
          dedupKey: `psa.note_failed:${row.id}`,
          occurredAt: clock.now(),
        });
      });
      return 'failed' as const;
    };
    const retry = async (problem: string) => {
      if (attempts >= NOTE_MAX_ATTEMPTS) return giveUp(`${problem}; gave up after ${attempts} attempts`);
      await tx.run((t) =>
        notes.finish(t, row.id, {
          status: 'pending',
          attempts,
          next_attempt_at: addMinutes(clock.now(), backoffMinutes(attempts)),
          last_problem: problem,
          done_at: null,
        }),
      );
      return 'retry' as const;
    };
    const psa = await access.active('background');
    if (!psa) return retry('no PSA connection');
    if (psa.kind !== row.psa_kind) return giveUp(`the PSA connection is now ${PSA_NAMES[psa.kind]}, not ${PSA_NAMES[row.psa_kind as PsaKind] ?? row.psa_kind}`);
    try {
      let ticketId = row.validated ? row.ticket_id : null;
      if (!ticketId) {
        // Unverified at reveal time: a note about this client's key goes only on a ticket of its company.
        const t = await psa.client.getTicket(row.ticket_ref);
        if (!t) return giveUp('ticket unknown');
        if (t.companyId !== row.company_id) return giveUp('ticket of another company');
        ticketId = t.id;
      }
      await psa.client.addInternalNote(ticketId, row.text);
      await tx.run(async (t) => {
        await notes.finish(t, row.id, {
          status: 'posted',
          attempts,
          next_attempt_at: clock.now(),
          last_problem: null,
          done_at: clock.now(),
          ticket_id: ticketId,
        });
        await audit.record(t, actorOfNotes, { action: 'psa.note_posted', outcome: 'success', ...auditBase, details: { ...details, ticketId } });
      });
      return 'posted';
    } catch (e) {
      if (!(e instanceof PsaError)) throw e;
      return isDown(e) ? retry(e.message) : giveUp(e.message);
    }
  }

  async function claimAndAttempt(id: string): Promise<'posted' | 'retry' | 'failed' | 'skipped'> {
    const row = await notes.get(db, id);
    if (!row || row.status !== 'pending') return 'skipped';
    const claimed = await tx.run((t) => notes.claim(t, row.id, row.next_attempt_at, addMinutes(clock.now(), NOTE_LEASE_MINUTES)));
    return claimed ? attempt(row) : 'skipped';
  }

  return {
    applies,
    rulesOf,
    check,
    queueNote,
    noteText,

    /** After the reveal committed: post the note now, in the background (the retry task catches up). */
    deliverSoon(id: string): void {
      const p = claimAndAttempt(id)
        .catch((e) => onDeliveryError?.(e))
        .finally(() => inFlight.delete(p));
      inFlight.add(p);
    },

    /** Resolves once every note posted in the background has been tried (tests, shutdown). */
    async settled(): Promise<void> {
      while (inFlight.size) await Promise.allSettled([...inFlight]);
    },

    /** The `psa-notes` task: every due note, one attempt each. */
    async deliverDue(limit = 50): Promise<{ posted: number; retrying: number; failed: number }> {
      const r = { posted: 0, retrying: 0, failed: 0 };
      for (const row of await notes.due(db, clock.now(), limit)) {
        const o = await claimAndAttempt(row.id);
        if (o === 'posted') r.posted++;
        else if (o === 'retry') r.retrying++;
        else if (o === 'failed') r.failed++;
      }
      return r;
    },

    /** The notes about one key record (tests, support): never a secret in them. */
    notesForKey: (recoveryKeyId: string) => notes.forKey(db, recoveryKeyId),
  };
}
export type PsaTickets = ReturnType<typeof createPsaTickets>;
