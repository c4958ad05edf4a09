/**
 * Autotask PSA simulator: REST zone lookup (`/atservicesrest/v1.0/zoneInformation`), header
 * authentication (ApiIntegrationCode / UserName / Secret), Tickets (get, query, create, update),
 * TicketNotes (root and child URL), Companies (query), query paging with `pageDetails`, and the
 * documented thread limit (3 concurrent requests per integration code and entity).
 *
 * Written from Datto's public Autotask REST API documentation (see README.md: sources and *(sim choice)*).
 */
import { randomBytes } from 'node:crypto';
import { FAKE_COMPANY_NAMES, HttpError, PsaSimBase, intParam, type IncomingRequest, type PsaSimOptions, type Reply } from './common.js';

export type AtCompany = { id: number; companyName: string; companyType: number; isActive: boolean };
export type AtResource = { id: number; firstName: string; lastName: string; email: string; userName: string };
export type AtTicket = {
  id: number;
  ticketNumber: string;
  title: string;
  description: string;
  companyID: number;
  status: number;
  priority: number;
  queueID: number | null;
  assignedResourceID: number | null;
  assignedResourceRoleID: number | null;
  ticketType: number;
  source: number;
  createDate: string;
  lastActivityDate: string;
  completedDate: string | null;
  [extra: string]: unknown;
};
export type AtNote = {
  id: number;
  ticketID: number;
  title: string;
  description: string;
  noteType: number;
  publish: number;
  createDateTime: string;
  creatorResourceID: number | null;
};

/** Ticket status picklist values of a default instance; 5 is "Complete" (the closed state). */
export const AT_STATUS = { New: 1, Complete: 5, WaitingCustomer: 7, InProgress: 8 } as const;
/** TicketNote `publish`: 1 = All Autotask Users (internal), 2 = Internal Project Team... *(sim choice: values of the default picklist)* */
export const AT_PUBLISH = { AllAutotaskUsers: 1, InternalProjectTeam: 2 } as const;

const MAX_RECORDS = 500;
const ENTITIES = ['tickets', 'ticketnotes', 'companies', 'resources'] as const;
type Entity = (typeof ENTITIES)[number];

export class AutotaskSimulator extends PsaSimBase {
  userName = 'keywarden-api@msp.example';
  secret = `at-sim-${randomBytes(10).toString('hex')}`;
  integrationCode = randomBytes(14).toString('hex').toUpperCase().slice(0, 27);
  /** Concurrent requests allowed per integration code and entity (documented: 3 for new integrations). */
  threadLimit = 3;
  /** Status values that count as closed (default: Complete). */
  closedStatuses = new Set<number>([AT_STATUS.Complete]);
  companies: AtCompany[] = [{ id: 0, companyName: 'MSP (owner company)', companyType: 5, isActive: true }];
  resources: AtResource[] = [
    { id: 29682885, firstName: 'Ada', lastName: 'Tech', email: 'ada.tech@msp.example', userName: 'atech' },
    { id: 29682886, firstName: 'Bob', lastName: 'Tech', email: 'bob.tech@msp.example', userName: 'btech' },
  ];
  ticketList: AtTicket[] = [];
  noteList: AtNote[] = [];
  private readonly inFlight = new Map<string, number>();
  private nextTicketId = 7000;
  private nextNoteId = 1;
  private readonly pagingSecret = randomBytes(16).toString('hex');

  constructor(opts: PsaSimOptions = {}) {
    super(opts);
  }

  /** What `zoneInformation` answers in `url`: the simulator itself. */
  get zoneUrl(): string {
    return `${this.url}/atservicesrest/`;
  }

  /** Request headers for the configured API user. */
  authHeaders(): Record<string, string> {
    return { ApiIntegrationCode: this.integrationCode, UserName: this.userName, Secret: this.secret };
  }

  seedCompanies(n: number): AtCompany[] {
    const out: AtCompany[] = [];
    for (let i = 0; i < n; i++) {
      const k = this.companies.length - 1;
      const c: AtCompany = { id: 174 + k, companyName: FAKE_COMPANY_NAMES[k] ?? `Company ${k + 1}`, companyType: 1, isActive: true };
      this.companies.push(c);
      out.push(c);
    }
    return out;
  }

  addTicket(t: Partial<AtTicket> & { companyID: number }): AtTicket {
    const at = new Date(this.now()).toISOString();
    const id = t.id ?? this.nextTicketId++;
    if (id >= this.nextTicketId) this.nextTicketId = id + 1;
    const day = at.slice(0, 10).replace(/-/g, '');
    const ticket: AtTicket = {
      title: 'Simulated ticket',
      description: '',
      status: AT_STATUS.New,
      priority: 2,
      queueID: 29683354,
      assignedResourceID: null,
      assignedResourceRoleID: null,
      ticketType: 1,
      source: 4,
      createDate: at,
      lastActivityDate: at,
      completedDate: null,
      ...t,
      id,
      ticketNumber: t.ticketNumber ?? `T${day}.${String(id % 10000).padStart(4, '0')}`,
    };
    this.ticketList.push(ticket);
    return ticket;
  }

  seed(opts: { companies?: number } = {}): { open: AtTicket; openUnassigned: AtTicket; closed: AtTicket; otherCompanyOpen: AtTicket } {
    this.seedCompanies(opts.companies ?? 12);
    const [a, b] = this.companies.slice(1);
    const [ada, bob] = this.resources;
    return {
      open: this.addTicket({
        companyID: a!.id,
        title: 'Laptop at BitLocker recovery screen',
        status: AT_STATUS.InProgress,
        assignedResourceID: ada!.id,
        assignedResourceRoleID: 29683461,
      }),
      openUnassigned: this.addTicket({ companyID: a!.id, title: 'New starter laptop' }),
      closed: this.addTicket({
        companyID: a!.id,
        title: 'Old ticket',
        status: AT_STATUS.Complete,
        assignedResourceID: ada!.id,
        completedDate: new Date(this.now()).toISOString(),
      }),
      otherCompanyOpen: this.addTicket({ companyID: b!.id, title: 'Printer offline', status: AT_STATUS.InProgress, assignedResourceID: bob!.id }),
    };
  }

  tickets(): AtTicket[] {
    return this.ticketList.map((t) => ({ ...t }));
  }

  ticket(id: number): AtTicket | undefined {
    return this.ticketList.find((t) => t.id === id);
  }

  notes(ticketId: number): AtNote[] {
    return this.noteList.filter((n) => n.ticketID === ticketId).map((n) => ({ ...n }));
  }

  // --- HTTP ------------------------------------------------------------------------------------

  protected isApiCall(path: string): boolean {
    const p = path.toLowerCase();
    return p.startsWith('/atservicesrest/v1.0/') && !p.startsWith('/atservicesrest/v1.0/zoneinformation');
  }

  protected throttleReply(): Reply {
    // (sim choice) The docs describe the limits but not the wire answer; the simulator uses 429, the
    // REST error shape {errors:[...]} and Retry-After.
    return {
      status: 429,
      body: { errors: ['Request rate limit exceeded for this integration. Please retry later.'] },
      headers: { 'retry-after': String(this.retryAfterSeconds) },
    };
  }

  protected badRequestReply(message: string): Reply {
    return { status: 400, body: { errors: [message] } };
  }

  /** Thread slot held by each request in flight (released in afterRoute). */
  private readonly held = new WeakMap<IncomingRequest, string>();

  protected route(r: IncomingRequest): Reply {
    const p = r.path.replace(/\/+$/, '');
    const lower = p.toLowerCase();
    if (!lower.startsWith('/atservicesrest/v1.0/')) return { status: 404, body: { errors: ['Not found.'] } };
    const segs = p.split('/').slice(3); // after /atservicesrest/v1.0
    const first = segs[0]!.toLowerCase();
    if (first === 'zoneinformation') return this.zone(r);
    this.authenticate(r);
    const entity = first as Entity;
    if (!ENTITIES.includes(entity)) return { status: 404, body: { errors: [`Entity ${segs[0]} is not simulated.`] } };
    this.acquireThread(r, entity);
    const m = r.method;
    const second = segs[1]?.toLowerCase();
    if (second === 'query') {
      if (segs.length === 2 && (m === 'GET' || m === 'POST')) return this.query(r, entity, segs[0]!);
      if (segs.length === 3 && segs[2]!.toLowerCase() === 'next' && m === 'GET') return this.queryNext(r, entity, segs[0]!);
      if (segs.length === 3 && segs[2]!.toLowerCase() === 'count' && (m === 'GET' || m === 'POST')) return this.count(r, entity);
    }
    if (entity === 'tickets') {
      if (segs.length === 1 && m === 'POST') return this.createTicket(r);
      if (segs.length === 1 && (m === 'PATCH' || m === 'PUT')) return this.updateTicket(r, m === 'PUT');
      const id = intParam(segs[1]);
      if (segs.length === 2 && m === 'GET') return { status: 200, body: { item: id === null ? null : (this.ticket(id) ?? null) } };
      if (segs.length === 3 && segs[2]!.toLowerCase() === 'notes' && m === 'POST') return this.createNote(r, id);
    }
    if (entity === 'ticketnotes' && segs.length === 1 && m === 'POST') {
      const b = this.bodyObject(r);
      return this.createNote(r, typeof b.ticketID === 'number' ? b.ticketID : null);
    }
    if (segs.length === 2 && m === 'GET') {
      const id = intParam(segs[1]);
      const rows = this.rows(entity) as { id: number }[];
      return { status: 200, body: { item: rows.find((x) => x.id === id) ?? null } };
    }
    return { status: 405, body: { errors: [`${m} is not supported on ${p}.`] } };
  }

  protected override afterRoute(r: IncomingRequest): void {
    const key = this.held.get(r);
    if (key !== undefined) {
      this.inFlight.set(key, (this.inFlight.get(key) ?? 1) - 1);
      this.held.delete(r);
    }
  }

  private zone(r: IncomingRequest): Reply {
    const user = r.query.get('user') ?? r.query.get('User');
    // (sim choice) An unknown user answers 404 with the REST error shape.
    if (!user || user.toLowerCase() !== this.userName.toLowerCase())
      return { status: 404, body: { errors: ['Zone information could not be determined for this user.'] } };
    return { status: 200, body: { zoneName: 'Simulator Zone', url: this.zoneUrl, webUrl: `${this.url}/`, ci: 1234567 } };
  }

  private authenticate(r: IncomingRequest): void {
    const h = r.headers;
    const ok =
      h.apiintegrationcode === this.integrationCode &&
      typeof h.username === 'string' &&
      h.username.toLowerCase() === this.userName.toLowerCase() &&
      h.secret === this.secret;
    // (sim choice) 401 with an empty-ish REST error body.
    if (this.authFailure || !ok)
      throw new HttpError({ status: 401, body: { errors: ['Authentication failed: check ApiIntegrationCode, UserName and Secret.'] } });
  }

  /**
   * Thread limit: at most `threadLimit` requests in flight per (integration code, entity). The
   * slot is held until the answer is written (after `latencyMs`).
   */
  private acquireThread(r: IncomingRequest, entity: Entity): void {
    const key = `${String(r.headers.apiintegrationcode)}:${entity}`;
    const n = this.inFlight.get(key) ?? 0;
    if (n >= this.threadLimit)
      throw new HttpError({ ...this.throttleReply(), body: { errors: [`Thread limit of ${this.threadLimit} exceeded for ${entity}.`] } });
    this.inFlight.set(key, n + 1);
    this.held.set(r, key);
  }

  private rows(entity: Entity): Record<string, unknown>[] {
    switch (entity) {
      case 'tickets':
        return this.ticketList;
      case 'ticketnotes':
        return this.noteList as unknown as Record<string, unknown>[];
      case 'companies':
        return this.companies as unknown as Record<string, unknown>[];
      case 'resources':
        return this.resources as unknown as Record<string, unknown>[];
    }
  }

  private readSearch(r: IncomingRequest): { filter: unknown; max: number; includeFields?: string[] } {
    let body: Record<string, unknown>;
    if (r.method === 'GET') {
      const s = r.query.get('search');
      if (!s) throw new HttpError(this.badRequestReply('A search parameter with a filter is required.'));
      try {
        body = JSON.parse(s) as Record<string, unknown>;
      } catch {
        throw new HttpError(this.badRequestReply('The search parameter is not valid JSON.'));
      }
    } else body = this.bodyObject(r);
    const maxRaw = body.MaxRecords ?? body.maxRecords;
    const max = maxRaw === undefined ? MAX_RECORDS : Number(maxRaw);
    if (!Number.isInteger(max) || max < 1 || max > MAX_RECORDS) throw new HttpError(this.badRequestReply(`MaxRecords must be between 1 and ${MAX_RECORDS}.`));
    const inc = body.IncludeFields ?? body.includeFields;
    return { filter: body.filter, max, includeFields: Array.isArray(inc) ? (inc as string[]) : undefined };
  }

  private query(r: IncomingRequest, entity: Entity, entityName: string): Reply {
    const s = this.readSearch(r);
    const pred = compileFilter(s.filter);
    const rows = this.rows(entity)
      .filter(pred)
      .sort((a, b) => (a.id as number) - (b.id as number));
    return this.page(rows, 0, s, entityName);
  }

  private queryNext(r: IncomingRequest, entity: Entity, entityName: string): Reply {
    const paging = r.query.get('paging');
    const parsed = paging ? this.readPaging(paging) : null;
    if (!parsed) throw new HttpError(this.badRequestReply('The paging token is invalid.'));
    const s = { filter: parsed.f, max: parsed.m, includeFields: parsed.i };
    const rows = this.rows(entity)
      .filter(compileFilter(s.filter))
      .sort((a, b) => (a.id as number) - (b.id as number));
    return this.page(rows, parsed.o, s, entityName);
  }

  private count(r: IncomingRequest, entity: Entity): Reply {
    const s = this.readSearch(r);
    return { status: 200, body: { queryCount: this.rows(entity).filter(compileFilter(s.filter)).length } };
  }

  private page(rows: Record<string, unknown>[], offset: number, s: { filter: unknown; max: number; includeFields?: string[] }, entityName: string): Reply {
    const slice = rows.slice(offset, offset + s.max);
    const items = slice.map((x) => project(x, s.includeFields));
    const end = offset + slice.length;
    const mk = (o: number) =>
      `${this.zoneUrl}V1.0/${entityName}/query/next?paging=${encodeURIComponent(this.signPaging({ o, f: s.filter, m: s.max, i: s.includeFields }))}`;
    return {
      status: 200,
      body: {
        items,
        pageDetails: {
          count: items.length,
          requestCount: s.max,
          prevPageUrl: offset > 0 ? mk(Math.max(0, offset - s.max)) : null,
          nextPageUrl: end < rows.length ? mk(end) : null,
        },
      },
    };
  }

  private signPaging(p: { o: number; f: unknown; m: number; i?: string[] }): string {
    const body = Buffer.from(JSON.stringify(p)).toString('base64url');
    return `${body}.${Buffer.from(this.pagingSecret + body)
      .toString('base64url')
      .slice(-8)}`;
  }

  private readPaging(tok: string): { o: number; f: unknown; m: number; i?: string[] } | null {
    const [body, mac] = tok.split('.');
    if (!body || !mac) return null;
    const want = Buffer.from(this.pagingSecret + body)
      .toString('base64url')
      .slice(-8);
    if (want !== mac) return null;
    try {
      return JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as { o: number; f: unknown; m: number; i?: string[] };
    } catch {
      return null;
    }
  }

  private bodyObject(r: IncomingRequest): Record<string, unknown> {
    const b = r.json;
    if (!b || typeof b !== 'object' || Array.isArray(b)) throw new HttpError(this.badRequestReply('The request body must be a JSON object.'));
    return b as Record<string, unknown>;
  }

  private checkTicketFields(b: Record<string, unknown>, creating: boolean): string[] {
    const errs: string[] = [];
    if (creating || b.companyID !== undefined)
      if (typeof b.companyID !== 'number' || !this.companies.some((c) => c.id === b.companyID)) errs.push('companyID: Value does not exist.');
    if (creating || b.title !== undefined)
      if (typeof b.title !== 'string' || !b.title.trim() || b.title.length > 255) errs.push('title: Value is required (1-255 characters).');
    if (creating || b.status !== undefined) if (typeof b.status !== 'number') errs.push('status: Value is required.');
    if (creating || b.priority !== undefined) if (typeof b.priority !== 'number') errs.push('priority: Value is required.');
    if (b.assignedResourceID !== undefined && b.assignedResourceID !== null) {
      if (!this.resources.some((x) => x.id === b.assignedResourceID)) errs.push('assignedResourceID: Value does not exist.');
      else if (b.assignedResourceRoleID === undefined || b.assignedResourceRoleID === null)
        errs.push('assignedResourceRoleID: Value is required when assignedResourceID is set.');
    }
    return errs;
  }

  private createTicket(r: IncomingRequest): Reply {
    const b = this.bodyObject(r);
    const errs = this.checkTicketFields(b, true);
    if (errs.length) return { status: 500, body: { errors: errs } };
    const { id: _ignored, ticketNumber: _tn, ...rest } = b;
    const t = this.addTicket({ ...(rest as Partial<AtTicket>), companyID: b.companyID as number });
    if (this.closedStatuses.has(t.status)) t.completedDate = new Date(this.now()).toISOString();
    return { status: 200, body: { itemId: t.id } };
  }

  private updateTicket(r: IncomingRequest, replace: boolean): Reply {
    const b = this.bodyObject(r);
    const id = typeof b.id === 'number' ? b.id : null;
    const t = id === null ? undefined : this.ticket(id);
    if (!t) return { status: 404, body: { errors: [`Ticket ${String(b.id)} does not exist.`] } };
    const errs = this.checkTicketFields(b, replace);
    if (errs.length) return { status: 500, body: { errors: errs } };
    const { id: _ignored, ticketNumber: _tn, ...rest } = b;
    const wasClosed = this.closedStatuses.has(t.status);
    Object.assign(t, rest);
    const at = new Date(this.now()).toISOString();
    t.lastActivityDate = at;
    if (!wasClosed && this.closedStatuses.has(t.status)) t.completedDate = at;
    if (wasClosed && !this.closedStatuses.has(t.status)) t.completedDate = null;
    return { status: 200, body: { itemId: t.id } };
  }

  private createNote(r: IncomingRequest, ticketId: number | null): Reply {
    const b = this.bodyObject(r);
    const t = ticketId === null ? undefined : this.ticket(ticketId);
    if (!t) return { status: 500, body: { errors: [`ticketID: Ticket ${String(ticketId)} does not exist.`] } };
    const errs: string[] = [];
    if (typeof b.description !== 'string' || !b.description.trim()) errs.push('description: Value is required.');
    else if (b.description.length > 32000) errs.push('description: Value exceeds 32000 characters.');
    if (typeof b.title !== 'string' || !b.title.trim()) errs.push('title: Value is required.');
    if (typeof b.noteType !== 'number') errs.push('noteType: Value is required.');
    if (typeof b.publish !== 'number') errs.push('publish: Value is required.');
    if (errs.length) return { status: 500, body: { errors: errs } };
    const at = new Date(this.now()).toISOString();
    const note: AtNote = {
      id: this.nextNoteId++,
      ticketID: t.id,
      title: b.title as string,
      description: b.description as string,
      noteType: b.noteType as number,
      publish: b.publish as number,
      createDateTime: at,
      creatorResourceID: null,
    };
    this.noteList.push(note);
    t.lastActivityDate = at;
    return { status: 200, body: { itemId: note.id } };
  }
}

function project(x: Record<string, unknown>, fields?: string[]): Record<string, unknown> {
  const copy = { ...x };
  if (!fields || fields.length === 0) return copy;
  const out: Record<string, unknown> = { id: copy.id };
  for (const f of fields) {
    const k = Object.keys(copy).find((key) => key.toLowerCase() === f.toLowerCase());
    if (k) out[k] = copy[k];
  }
  return out;
}

type Pred = (x: Record<string, unknown>) => boolean;

/**
 * Autotask filter expressions: `{op, field, value}` with op eq, noteq, gt, gte, lt, lte,
 * beginsWith, endsWith, contains, exist, notExist, in, notIn; and `{op:'and'|'or', items:[...]}`.
 * The top-level `filter` array is an implicit `and`. Field names are case-insensitive.
 */
export function compileFilter(filter: unknown): Pred {
  if (!Array.isArray(filter) || filter.length === 0) throw queryError('A filter with at least one expression is required.');
  const preds = filter.map(compileExpr);
  return (x) => preds.every((p) => p(x));
}

function compileExpr(e: unknown): Pred {
  if (!e || typeof e !== 'object') throw queryError('Invalid filter expression.');
  const { op, field, value, items } = e as { op?: unknown; field?: unknown; value?: unknown; items?: unknown };
  const o = typeof op === 'string' ? op.toLowerCase() : '';
  if (o === 'and' || o === 'or') {
    if (!Array.isArray(items) || items.length === 0) throw queryError(`'${o}' needs items.`);
    const ps = items.map(compileExpr);
    return o === 'and' ? (x) => ps.every((p) => p(x)) : (x) => ps.some((p) => p(x));
  }
  if (typeof field !== 'string' || !field) throw queryError('A filter expression needs a field.');
  const get = (x: Record<string, unknown>) => {
    const k = Object.keys(x).find((key) => key.toLowerCase() === field.toLowerCase());
    return k === undefined ? undefined : x[k];
  };
  const norm = (v: unknown) => (typeof v === 'string' ? v.toLowerCase() : v);
  switch (o) {
    case 'eq':
      return (x) => norm(get(x)) === norm(value);
    case 'noteq':
      return (x) => norm(get(x)) !== norm(value);
    case 'gt':
      return (x) => (get(x) as number) > (value as number);
    case 'gte':
      return (x) => (get(x) as number) >= (value as number);
    case 'lt':
      return (x) => (get(x) as number) < (value as number);
    case 'lte':
      return (x) => (get(x) as number) <= (value as number);
    case 'beginswith':
      return (x) =>
        String(get(x) ?? '')
          .toLowerCase()
          .startsWith(String(value).toLowerCase());
    case 'endswith':
      return (x) =>
        String(get(x) ?? '')
          .toLowerCase()
          .endsWith(String(value).toLowerCase());
    case 'contains':
      return (x) =>
        String(get(x) ?? '')
          .toLowerCase()
          .includes(String(value).toLowerCase());
    case 'exist':
      return (x) => get(x) !== undefined && get(x) !== null;
    case 'notexist':
      return (x) => get(x) === undefined || get(x) === null;
    case 'in':
    case 'notin': {
      if (!Array.isArray(value)) throw queryError(`'${o}' needs an array value.`);
      if (value.length > 500) throw queryError("Queries are limited to 500 or fewer 'in' values.");
      const vs = value.map(norm);
      return (x) => vs.includes(norm(get(x))) === (o === 'in');
    }
    default:
      throw queryError(`Unknown filter operator '${String(op)}'.`);
  }
}

function queryError(msg: string): HttpError {
  // (sim choice) Autotask reports query errors with 500 and the {errors:[...]} shape.
  return new HttpError({ status: 500, body: { errors: [msg] } });
}
