import { fail, ok, type Result } from '../result.js';

/**
 * The ticket-bound reveal's rules (issue 21), without I/O: what a technician may type as a ticket,
 * and whether the ticket the PSA returned lets this reveal go ahead. The service
 * (src/modules/psa/psa.tickets.ts) fetches the ticket and asks here.
 */

/** What every PSA is reduced to for the check (the shape of the PSA clients' PsaTicket). */
export type TicketFacts = {
  id: string;
  number: string;
  open: boolean;
  statusName: string;
  companyId: string;
  companyName: string | null;
  assigneeIds: readonly string[];
  assigneeNames: readonly string[];
  assigneeLogins: readonly string[];
};

const TICKET_TEXT = /^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$/;

/**
 * A ticket as typed, reduced to what the PSA is asked for: trimmed, a leading "#" dropped ("#1234"
 * → "1234"); Autotask numbers (T20250301.0001) stay as they are. Anything but letters, digits, dot,
 * dash and underscore (40 at most) is refused, so nothing odd reaches a PSA URL or query.
 */
export function normaliseTicketText(text: string): Result<string> {
  const t = text.trim().replace(/^#\s*/, '');
  if (!t) return fail('enter the ticket number');
  if (!TICKET_TEXT.test(t)) {
    return fail('a ticket number has only letters, digits, dots and dashes (e.g. 1234 or T20250301.0001), at most 40 characters');
  }
  return ok(t);
}

export type TicketProblem = 'ticket unknown' | 'ticket closed' | 'ticket of another company' | 'ticket not assigned' | 'PSA member not linked';

export type TicketCheckInput = {
  /** The ticket as the technician typed it (normalised). */
  ticketText: string;
  /** What the PSA returned; null: no such ticket. */
  ticket: TicketFacts | null;
  /** HaloPSA, ConnectWise PSA, Autotask. */
  psaName: string;
  /** The PSA company the client is linked to, and how to name it in a message. */
  companyId: string;
  companyLabel: string;
  /**
   * The other company's name when the ticket belongs to one, only if the technician may see the
   * Keywarden client linked to it; null: the message says "another company" (naming it would tell a
   * technician limited to some clients about a customer they cannot see).
   */
  otherCompanyName: string | null;
  /** Only when the client requires the ticket's assignee: the technician's linked PSA member (null: none linked). */
  assignee?: { member: string | null; who: string };
};

export type TicketCheck = { ok: true } | { ok: false; problem: TicketProblem; message: string };

/** Whether `member` (an id, login or name) is one of the ticket's assignees; case-insensitive. */
export function isAssignedTo(ticket: TicketFacts, member: string): boolean {
  const m = member.trim().toLowerCase();
  if (!m) return false;
  return [...ticket.assigneeIds, ...ticket.assigneeLogins, ...ticket.assigneeNames].some((a) => a.trim().toLowerCase() === m);
}

/** Exists, belongs to the linked company, is open, and (when asked) is assigned to the technician: the first that fails. */
export function checkTicket(i: TicketCheckInput): TicketCheck {
  const name = `Ticket ${i.ticketText}`;
  const t = i.ticket;
  if (!t) return { ok: false, problem: 'ticket unknown', message: `${name} does not exist in ${i.psaName}: check the number.` };
  // The company first: nothing more (its status) is told about another company's ticket.
  if (t.companyId !== i.companyId) {
    const other = i.otherCompanyName ?? 'another company';
    return {
      ok: false,
      problem: 'ticket of another company',
      message: `${name} belongs to ${other} in ${i.psaName}, not to ${i.companyLabel}: use a ticket of this client's company.`,
    };
  }
  if (!t.open) {
    return {
      ok: false,
      problem: 'ticket closed',
      message: `${name} is closed (${t.statusName || 'closed'}) in ${i.psaName}: reopen it or use an open ticket.`,
    };
  }
  if (i.assignee) {
    if (!i.assignee.member) {
      return {
        ok: false,
        problem: 'PSA member not linked',
        message: `This client requires the ticket to be assigned to you, but your Keywarden user is not linked to a ${i.psaName} member: ask an owner to link your PSA member.`,
      };
    }
    if (!isAssignedTo(t, i.assignee.member)) {
      return {
        ok: false,
        problem: 'ticket not assigned',
        message: `${name} is not assigned to you (${i.assignee.who}) in ${i.psaName}: this client requires the ticket's assignee to reveal. Assign it to yourself first.`,
      };
    }
  }
  return { ok: true };
}
