import type { EgressPolicy } from '../egress.js';

/**
 * The one interface Keywarden uses to talk to a PSA (HaloPSA, ConnectWise PSA, Autotask PSA).
 * Thin clients: they translate to each vendor's REST API and back and decide nothing. Identifiers
 * are strings whatever the PSA uses, so mappings store them the same way for every PSA.
 */
export type PsaKind = 'halopsa' | 'connectwise' | 'autotask';

export const PSA_NAMES: Record<PsaKind, string> = { halopsa: 'HaloPSA', connectwise: 'ConnectWise PSA', autotask: 'Autotask' };

/** A ticket as every PSA is reduced to it. Assignees are given as the PSA gives them (ids, names or logins). */
export type PsaTicket = {
  id: string;
  /** What a technician types or sees: the id (Halo, ConnectWise) or the ticket number (Autotask, T20250301.0001). */
  number: string;
  summary: string;
  open: boolean;
  statusName: string;
  companyId: string;
  /** Null when the PSA does not include it in the ticket (Autotask). */
  companyName: string | null;
  assigneeIds: string[];
  assigneeNames: string[];
  /** Login-style identifiers (ConnectWise member identifiers); empty where the PSA gives none. */
  assigneeLogins: string[];
};

export type PsaCompany = { id: string; name: string; identifier?: string };

export type PsaNewTicket = {
  companyId: string;
  title: string;
  description: string;
  /** The PSA's own priority id (Halo priority_id, ConnectWise priority id, Autotask priority picklist value). */
  priority?: string;
  /** Halo team name, ConnectWise board id or name, Autotask queue id. */
  queue?: string;
};

export type PsaTicketChange = { title?: string; description?: string; priority?: string };

export type PsaClient = {
  readonly kind: PsaKind;
  /** Signs in and makes one harmless read; throws a PsaError saying what is wrong. */
  testConnection(): Promise<void>;
  /** The ticket, or null when the PSA has no ticket with this id (or number). */
  getTicket(id: string): Promise<PsaTicket | null>;
  /** Every active company, all pages, up to a hard cap (PsaError too_many beyond it). */
  listCompanies(): Promise<PsaCompany[]>;
  /** A note only the MSP's staff see (never the end customer). */
  addInternalNote(ticketId: string, text: string): Promise<void>;
  createTicket(t: PsaNewTicket): Promise<string>;
  updateTicket(id: string, change: PsaTicketChange): Promise<void>;
  /** Closes the ticket, with an internal note first when one is given. */
  closeTicket(id: string, note?: string): Promise<void>;
};

/**
 * A PSA failure: the HTTP status (0 when no answer came), a code Keywarden knows (unreachable,
 * refused, timeout, auth_failed, forbidden, not_found, throttled, bad_request, redirect, too_many,
 * too_large, foreign_link, bad_answer, http_NNN) and a message in Keywarden's words naming the PSA.
 * Never the remote answer's text, never a secret.
 */
export class PsaError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'PsaError';
  }
}

export type PsaClientDeps = {
  /** Every connection goes through it (PSAs are internet services). */
  egress: EgressPolicy;
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
  /** Per request, including reading the answer (default 15 s). */
  timeoutMs?: number;
  /** Retries of a throttled or unavailable answer (default 3). */
  maxRetries?: number;
  /** A retry hint longer than this is not waited for: the call fails as throttled (default 30 s). */
  maxWaitMs?: number;
  /** Hard cap on pages read by listCompanies (default 50). */
  maxPages?: number;
  userAgent?: string;
  onWait?: (ms: number, reason: string) => void;
};

export type HaloPsaConfig = {
  kind: 'halopsa';
  /** e.g. https://msp.halopsa.com/auth */
  authUrl: string;
  /** e.g. https://msp.halopsa.com/api */
  apiUrl: string;
  clientId: string;
  clientSecret: string;
  /** Hosted instances need it on the token request. */
  tenant?: string;
  scope?: string;
  /** Statuses that count as closed (default 9 Closed, 10 Resolved of a default instance). */
  closedStatusIds?: number[];
  /** Status closeTicket sets (default 9). */
  closeStatusId?: number;
};

export type ConnectWiseConfig = {
  kind: 'connectwise';
  /** e.g. https://api-na.myconnectwise.net/v4_6_release/apis/3.0 (site + codebase) */
  apiUrl: string;
  companyId: string;
  publicKey: string;
  privateKey: string;
  /** The integration's developer clientId (a GUID). */
  clientId: string;
  /** Status closeTicket sets; by default the ticket's board's closed status (closedFlag). */
  closeStatusName?: string;
};

export type AutotaskConfig = {
  kind: 'autotask';
  /** Zone lookup root, default https://webservices.autotask.net/atservicesrest */
  zoneLookupUrl?: string;
  userName: string;
  secret: string;
  integrationCode: string;
  /** Status values that count as closed (default 5 Complete). */
  closedStatusIds?: number[];
  /** Status closeTicket sets (default 5 Complete). */
  closeStatusId?: number;
  /** Status and priority of new tickets (defaults 1 New, 2 Medium). */
  newStatusId?: number;
  defaultPriority?: number;
  /** TicketNote noteType and publish used for internal notes (defaults 1 and 2 Internal Project Team). */
  noteType?: number;
  notePublish?: number;
};

export type PsaConfig = HaloPsaConfig | ConnectWiseConfig | AutotaskConfig;
