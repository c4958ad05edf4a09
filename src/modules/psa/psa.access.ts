import type { Executor } from '../../db/database.js';
import type { PsaClient, PsaKind } from '../../integrations/psa/index.js';

/**
 * What the rest of Keywarden asks of the PSA connection (src/modules/psa/psa.service.ts owns it):
 * the ticket-bound reveal (psa.tickets.ts) and findings → tickets (psa.findings.ts) use only this.
 */

/** Per client: off (the ticket is free text), validate (a ticket given is checked), required (a valid ticket or no reveal). */
export type TicketPolicy = 'off' | 'validate' | 'required';
export const TICKET_POLICIES: readonly TicketPolicy[] = ['off', 'validate', 'required'];

export type ClientPsaSettings = {
  clientId: string;
  /** The PSA company this client is linked to; null when not linked. */
  companyId: string | null;
  companyName: string | null;
  ticketPolicy: TicketPolicy;
  /** The ticket must also be assigned to the revealing technician (their linked PSA member). */
  requireAssignee: boolean;
};

export type ActivePsa = { kind: PsaKind; name: string; client: PsaClient };

export type PsaAccess = {
  /**
   * The vault's one PSA connection as a client (calls go through the egress policy); null when none
   * is configured. 'interactive' (a person waits: a reveal) gives up sooner than 'background' (the
   * default: findings → tickets, note delivery), which retries and waits out throttling longer.
   */
  active(purpose?: 'interactive' | 'background'): Promise<ActivePsa | null>;
  /** A client's PSA link and ticket policy (policy off, no company, when never set). */
  clientSettings(exec: Executor, clientId: string): Promise<ClientPsaSettings>;
  /** Every client linked to a PSA company. */
  linkedClients(exec: Executor): Promise<ClientPsaSettings[]>;
  /**
   * The PSA identity an owner linked to a Keywarden user (an agent/member/resource id, login or
   * name, compared with a ticket's assignee ids, logins and names); null when not linked.
   */
  memberOf(exec: Executor, userId: string): Promise<string | null>;
};
