/**
 * HaloPSA simulator: OAuth2 client-credentials token endpoint (`/auth/token`) and the parts of
 * the HaloPSA REST API (`/api/...`) a ticket-bound reveal and findings → tickets need: ticket get,
 * client list (paged), actions (private notes), ticket create/update/close.
 *
 * Written from HaloPSA's public API documentation (see README.md: sources and *(sim choice)*).
 */
import { randomBytes } from 'node:crypto';
import { FAKE_COMPANY_NAMES, HttpError, PsaSimBase, intParam, type IncomingRequest, type PsaSimOptions, type Reply } from './common.js';

export type HaloClient = { id: number; name: string; inactive: boolean; toplevel_id: number };
export type HaloAgent = { id: number; name: string; email: string };
export type HaloStatus = { id: number; name: string; closed: boolean };
export type HaloTicket = {
  id: number;
  summary: string;
  details: string;
  client_id: number;
  client_name: string;
  site_id: number;
  status_id: number;
  agent_id: number | null;
  team: string;
  priority_id: number;
  tickettype_id: number;
  dateoccurred: string;
  lastactiondate: string;
  /** Extra fields a client sent on create/update are kept as sent. */
  [extra: string]: unknown;
};
export type HaloAction = {
  id: number;
  ticket_id: number;
  outcome: string;
  note: string;
  hiddenfromuser: boolean;
  who: string;
  datetime: string;
  [extra: string]: unknown;
};

/** Status ids of a default HaloPSA instance *(sim choice: ids as seen in the default status list)*. */
export const HALO_STATUSES: HaloStatus[] = [
  { id: 1, name: 'New', closed: false },
  { id: 2, name: 'In Progress', closed: false },
  { id: 3, name: 'Action Required', closed: false },
  { id: 4, name: 'Waiting on User', closed: false },
  { id: 9, name: 'Closed', closed: true },
  { id: 10, name: 'Resolved', closed: true },
];

type TokenRec = { expiresAt: number };

export class HaloPsaSimulator extends PsaSimBase {
  clientId = `halo-sim-${randomBytes(4).toString('hex')}`;
  clientSecret = `halo-sim-secret-${randomBytes(12).toString('hex')}`;
  /** When set, `/auth/token` needs `tenant=<value>` (query string or form), as hosted Halo instances do. */
  tenant: string | undefined;
  /** Access token lifetime (default 3600 s). */
  tokenLifetimeSeconds = 3600;
  clients: HaloClient[] = [];
  agents: HaloAgent[] = [
    { id: 1, name: 'API Application', email: 'api@halo.example' },
    { id: 7, name: 'Ada Tech', email: 'ada.tech@msp.example' },
    { id: 8, name: 'Bob Tech', email: 'bob.tech@msp.example' },
  ];
  statuses: HaloStatus[] = HALO_STATUSES.map((s) => ({ ...s }));
  ticketList: HaloTicket[] = [];
  actions: HaloAction[] = [];
  private readonly tokens = new Map<string, TokenRec>();
  private nextTicketId = 1000;
  private nextActionId = 1;

  constructor(opts: PsaSimOptions = {}) {
    super(opts);
  }

  /** `{url}/auth` and `{url}/api` as the connector is configured. */
  get authUrl(): string {
    return `${this.url}/auth`;
  }
  get apiUrl(): string {
    return `${this.url}/api`;
  }

  /** Adds clients (named from a fake list, then `Client <n>`). */
  seedClients(n: number): HaloClient[] {
    const out: HaloClient[] = [];
    for (let i = 0; i < n; i++) {
      const id = this.clients.length + 10;
      const name = FAKE_COMPANY_NAMES[this.clients.length] ?? `Client ${this.clients.length + 1}`;
      const c = { id, name, inactive: false, toplevel_id: 1 };
      this.clients.push(c);
      out.push(c);
    }
    return out;
  }

  addTicket(t: Partial<HaloTicket> & { client_id: number }): HaloTicket {
    const client = this.clients.find((c) => c.id === t.client_id);
    const at = new Date(this.now()).toISOString();
    const ticket: HaloTicket = {
      summary: 'Simulated ticket',
      details: '',
      site_id: 1,
      status_id: 1,
      agent_id: null,
      team: 'Service Desk',
      priority_id: 3,
      tickettype_id: 1,
      dateoccurred: at,
      lastactiondate: at,
      ...t,
      id: t.id ?? this.nextTicketId++,
      client_name: t.client_name ?? client?.name ?? '',
    };
    if (ticket.id >= this.nextTicketId) this.nextTicketId = ticket.id + 1;
    this.ticketList.push(ticket);
    return ticket;
  }

  /**
   * A typical instance: `clients` clients (default 12); for the first two, an open ticket assigned
   * to agent 7, an open unassigned ticket and a closed ticket. Returns them by role.
   */
  seed(opts: { clients?: number } = {}): { open: HaloTicket; openUnassigned: HaloTicket; closed: HaloTicket; otherClientOpen: HaloTicket } {
    this.seedClients(opts.clients ?? 12);
    const [a, b] = this.clients;
    const open = this.addTicket({ client_id: a!.id, summary: 'Laptop will not boot (BitLocker recovery screen)', agent_id: 7, status_id: 2 });
    const openUnassigned = this.addTicket({ client_id: a!.id, summary: 'New starter laptop', status_id: 1 });
    const closed = this.addTicket({ client_id: a!.id, summary: 'Old ticket', agent_id: 7, status_id: 9 });
    const otherClientOpen = this.addTicket({ client_id: b!.id, summary: 'Printer offline', agent_id: 8, status_id: 2 });
    return { open, openUnassigned, closed, otherClientOpen };
  }

  /** Copy of the tickets. */
  tickets(): HaloTicket[] {
    return this.ticketList.map((t) => ({ ...t }));
  }

  ticket(id: number): HaloTicket | undefined {
    return this.ticketList.find((t) => t.id === id);
  }

  /** Actions (notes) on a ticket, oldest first. */
  notes(ticketId: number): HaloAction[] {
    return this.actions.filter((a) => a.ticket_id === ticketId).map((a) => ({ ...a }));
  }

  isClosedStatus(statusId: number): boolean {
    return this.statuses.some((s) => s.id === statusId && s.closed);
  }

  /** Invalidates every issued token (next API call answers 401). */
  expireTokens(): void {
    for (const t of this.tokens.values()) t.expiresAt = Number.NEGATIVE_INFINITY;
  }

  // --- HTTP ------------------------------------------------------------------------------------

  protected isApiCall(path: string): boolean {
    return path.toLowerCase().startsWith('/api/');
  }

  protected throttleReply(): Reply {
    // (sim choice) HaloPSA documents a per-instance request budget; the simulator answers a plain 429 with Retry-After.
    return { status: 429, text: 'Too many requests. Please retry later.', headers: { 'retry-after': String(this.retryAfterSeconds) } };
  }

  protected badRequestReply(message: string): Reply {
    return { status: 400, body: [message] };
  }

  protected override redact(path: string, body: unknown): unknown {
    if (path.toLowerCase().startsWith('/auth/') && body && typeof body === 'object') {
      const b = { ...(body as Record<string, unknown>) };
      if ('client_secret' in b) b.client_secret = '***';
      return b;
    }
    return body;
  }

  protected route(r: IncomingRequest): Reply {
    const p = r.path.replace(/\/+$/, '');
    const lower = p.toLowerCase();
    if (lower === '/auth/token') return this.token(r);
    if (!lower.startsWith('/api/')) return { status: 404, text: 'Not Found' };
    this.requireBearer(r);
    const segs = p.split('/').slice(2); // after /api
    const res = segs[0]!.toLowerCase();
    if (res === 'tickets' && segs.length === 2 && r.method === 'GET') return this.getTicket(segs[1]!);
    if (res === 'tickets' && segs.length === 1 && r.method === 'POST') return this.postTickets(r);
    if (res === 'tickets' && segs.length === 1 && r.method === 'GET') return this.listTickets(r);
    if (res === 'client' && segs.length === 1 && r.method === 'GET') return this.listClients(r);
    if (res === 'client' && segs.length === 2 && r.method === 'GET') return this.getClient(segs[1]!);
    if (res === 'actions' && segs.length === 1 && r.method === 'POST') return this.postActions(r);
    if (res === 'actions' && segs.length === 1 && r.method === 'GET') return this.listActions(r);
    if (res === 'agent' && segs.length === 2 && segs[1]!.toLowerCase() === 'me' && r.method === 'GET') return { status: 200, body: this.agents[0] };
    if (res === 'agent' && segs.length === 1 && r.method === 'GET') return { status: 200, body: this.agents };
    if (res === 'status' && segs.length === 1 && r.method === 'GET') return { status: 200, body: this.statuses.map(({ id, name }) => ({ id, name })) };
    return { status: 404, text: 'Not Found' };
  }

  private token(r: IncomingRequest): Reply {
    if (r.method !== 'POST') return { status: 405, text: 'Method Not Allowed' };
    const form = new URLSearchParams(r.raw);
    const err = (status: number, error: string, error_description?: string): Reply => ({
      status,
      body: error_description ? { error, error_description } : { error },
      headers: { 'cache-control': 'no-store' },
    });
    const tenant = r.query.get('tenant') ?? form.get('tenant');
    if (this.tenant !== undefined && tenant !== this.tenant) return err(400, 'invalid_request', 'Unknown tenant.');
    if (form.get('grant_type') !== 'client_credentials') return err(400, 'unsupported_grant_type');
    if (this.authFailure || form.get('client_id') !== this.clientId || form.get('client_secret') !== this.clientSecret) return err(400, 'invalid_client');
    const scope = form.get('scope') ?? 'all';
    if (!scope.split(/\s+/).every((s) => /^(all|[a-z]+(:[a-z]+)?)$/.test(s))) return err(400, 'invalid_scope');
    const token = randomBytes(24).toString('base64url');
    this.tokens.set(token, { expiresAt: this.now() + this.tokenLifetimeSeconds * 1000 });
    return {
      status: 200,
      body: { token_type: 'Bearer', access_token: token, expires_in: this.tokenLifetimeSeconds, scope },
      headers: { 'cache-control': 'no-store' },
    };
  }

  private requireBearer(r: IncomingRequest): void {
    const m = /^Bearer\s+(\S+)$/i.exec(r.headers.authorization ?? '');
    const rec = m ? this.tokens.get(m[1]!) : undefined;
    if (this.authFailure || !rec || rec.expiresAt <= this.now())
      throw new HttpError({ status: 401, text: '', headers: { 'www-authenticate': 'Bearer error="invalid_token"' } });
  }

  private getTicket(idRaw: string): Reply {
    const id = intParam(idRaw);
    const t = id === null ? undefined : this.ticket(id);
    // (sim choice) HaloPSA answers an unknown ticket id with 404 and a short text body.
    if (!t) return { status: 404, body: 'Ticket not found.' };
    return { status: 200, body: { ...t, status_name: this.statuses.find((s) => s.id === t.status_id)?.name ?? '' } };
  }

  private listTickets(r: IncomingRequest): Reply {
    let rows = this.ticketList;
    const clientId = intParam(r.query.get('client_id'));
    if (clientId !== null) rows = rows.filter((t) => t.client_id === clientId);
    const open = r.query.get('open_only');
    if (open === 'true') rows = rows.filter((t) => !this.isClosedStatus(t.status_id));
    const search = r.query.get('search');
    if (search) rows = rows.filter((t) => t.summary.toLowerCase().includes(search.toLowerCase()));
    return { status: 200, body: { record_count: rows.length, tickets: rows.map((t) => ({ ...t })) } };
  }

  private listClients(r: IncomingRequest): Reply {
    let rows = this.clients;
    if (r.query.get('includeinactive') !== 'true') rows = rows.filter((c) => !c.inactive);
    const search = r.query.get('search');
    if (search) rows = rows.filter((c) => c.name.toLowerCase().includes(search.toLowerCase()));
    const view = (c: HaloClient) => ({ id: c.id, name: c.name, inactive: c.inactive, toplevel_id: c.toplevel_id });
    if (r.query.get('pageinate') === 'true') {
      const size = intParam(r.query.get('page_size')) ?? 50;
      const page = intParam(r.query.get('page_no')) ?? 1;
      if (size < 1 || page < 1) return this.badRequestReply('page_size and page_no must be positive.');
      const slice = rows.slice((page - 1) * size, page * size);
      return { status: 200, body: { page_no: page, page_size: size, record_count: rows.length, clients: slice.map(view) } };
    }
    const count = intParam(r.query.get('count'));
    return { status: 200, body: { record_count: rows.length, clients: (count === null ? rows : rows.slice(0, count)).map(view) } };
  }

  private getClient(idRaw: string): Reply {
    const id = intParam(idRaw);
    const c = id === null ? undefined : this.clients.find((x) => x.id === id);
    if (!c) return { status: 404, body: 'Client not found.' };
    return { status: 200, body: { ...c } };
  }

  private listActions(r: IncomingRequest): Reply {
    const ticketId = intParam(r.query.get('ticket_id'));
    if (ticketId === null) return this.badRequestReply('ticket_id is required.');
    const rows = this.actions.filter((a) => a.ticket_id === ticketId);
    return { status: 200, body: { record_count: rows.length, actions: rows.map((a) => ({ ...a })) } };
  }

  private bodyArray(r: IncomingRequest): Record<string, unknown>[] {
    const b = r.json;
    if (!Array.isArray(b) || b.length === 0 || !b.every((x) => x && typeof x === 'object' && !Array.isArray(x)))
      throw new HttpError(this.badRequestReply('The request body must be a JSON array of objects.'));
    return b as Record<string, unknown>[];
  }

  private postActions(r: IncomingRequest): Reply {
    const items = this.bodyArray(r);
    const created: HaloAction[] = [];
    for (const it of items) {
      const ticketId = typeof it.ticket_id === 'number' ? it.ticket_id : intParam(String(it.ticket_id ?? ''));
      const ticket = ticketId === null ? undefined : this.ticket(ticketId);
      if (!ticket) throw new HttpError(this.badRequestReply(`Ticket ${String(it.ticket_id)} does not exist.`));
      if (typeof it.note !== 'string' || it.note.trim() === '') throw new HttpError(this.badRequestReply('An action needs a note.'));
      const at = new Date(this.now()).toISOString();
      const action: HaloAction = {
        ...it,
        id: this.nextActionId++,
        ticket_id: ticket.id,
        outcome: typeof it.outcome === 'string' ? it.outcome : 'Note',
        note: it.note,
        hiddenfromuser: it.hiddenfromuser === true,
        who: this.agents[0]!.name,
        datetime: at,
      };
      ticket.lastactiondate = at;
      // An action may also move the ticket (new_status), as the Halo UI does with an outcome.
      if (typeof it.new_status === 'number') ticket.status_id = it.new_status;
      this.actions.push(action);
      created.push(action);
    }
    return { status: 201, body: created.length === 1 ? created[0] : created };
  }

  private postTickets(r: IncomingRequest): Reply {
    const items = this.bodyArray(r);
    const out: HaloTicket[] = [];
    for (const it of items) {
      if (it.status_id !== undefined && !this.statuses.some((s) => s.id === it.status_id))
        throw new HttpError(this.badRequestReply(`Status ${String(it.status_id)} does not exist.`));
      if (it.id !== undefined && it.id !== 0 && it.id !== null) {
        const id = typeof it.id === 'number' ? it.id : -1;
        const t = this.ticket(id);
        if (!t) throw new HttpError(this.badRequestReply(`Ticket ${String(it.id)} does not exist.`));
        const { id: _ignored, ...rest } = it;
        Object.assign(t, rest);
        if (typeof rest.client_id === 'number') t.client_name = this.clients.find((c) => c.id === rest.client_id)?.name ?? '';
        t.lastactiondate = new Date(this.now()).toISOString();
        out.push({ ...t });
      } else {
        if (typeof it.summary !== 'string' || it.summary.trim() === '') throw new HttpError(this.badRequestReply('A ticket needs a summary.'));
        const clientId = it.client_id;
        if (typeof clientId !== 'number' || !this.clients.some((c) => c.id === clientId))
          throw new HttpError(this.badRequestReply(`Client ${String(clientId)} does not exist.`));
        const { id: _ignored, ...rest } = it;
        out.push({ ...this.addTicket({ ...rest, client_id: clientId }) });
      }
    }
    return { status: 201, body: out.length === 1 ? out[0] : out };
  }
}
