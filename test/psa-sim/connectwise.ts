/**
 * ConnectWise PSA (Manage) simulator: API-member key authentication (Basic companyId+public:private
 * plus the `clientId` header) on `/v4_6_release/apis/3.0/`, service tickets (get, list, create,
 * JSON-Patch update), ticket notes, and companies with `conditions` and `Link`-header paging.
 *
 * Written from ConnectWise's public developer documentation (see README.md: sources and *(sim choice)*).
 */
import { randomBytes } from 'node:crypto';
import { FAKE_COMPANY_NAMES, HttpError, PsaSimBase, intParam, isoSeconds, type IncomingRequest, type PsaSimOptions, type Reply } from './common.js';

export type CwRef = { id: number; name: string };
export type CwCompany = { id: number; identifier: string; name: string; deletedFlag: boolean; status: CwRef };
export type CwMember = { id: number; identifier: string; name: string };
export type CwStatus = { id: number; name: string; closedStatus: boolean };
export type CwBoard = { id: number; name: string; statuses: CwStatus[] };
export type CwTicket = {
  id: number;
  summary: string;
  recordType: 'ServiceTicket';
  board: CwRef;
  status: CwRef;
  company: { id: number; identifier: string; name: string };
  priority: CwRef;
  owner?: { id: number; identifier: string; name: string };
  /** Comma-separated member identifiers, as the API returns them. */
  resources?: string;
  closedFlag: boolean;
  initialDescription?: string;
  _info: { lastUpdated: string; updatedBy: string; dateEntered: string; enteredBy: string };
};
export type CwNote = {
  id: number;
  ticketId: number;
  text: string;
  detailDescriptionFlag: boolean;
  internalAnalysisFlag: boolean;
  resolutionFlag: boolean;
  issueFlag: boolean;
  internalFlag: boolean;
  externalFlag: boolean;
  dateCreated: string;
  createdBy: string;
};

export const CW_BASE_PATH = '/v4_6_release/apis/3.0';

const PRIORITIES: CwRef[] = [
  { id: 1, name: 'Priority 1 - Emergency Response' },
  { id: 2, name: 'Priority 2 - Quick Response' },
  { id: 3, name: 'Priority 3 - Normal Response' },
  { id: 4, name: 'Priority 4 - Schedule Maintenance' },
];

export class ConnectWiseSimulator extends PsaSimBase {
  companyId = 'kwsim';
  publicKey = `pub${randomBytes(6).toString('hex')}`;
  privateKey = `priv${randomBytes(10).toString('hex')}`;
  /** Accepted `clientId` header values (the developer-program id of the integration). */
  clientIds = new Set<string>([`00000000-0000-4000-8000-${randomBytes(6).toString('hex')}`]);
  /** Member the API keys belong to (shown as `createdBy`/`updatedBy`). */
  apiMember = 'keywarden-api';
  companies: CwCompany[] = [];
  members: CwMember[] = [
    { id: 170, identifier: 'atech', name: 'Ada Tech' },
    { id: 171, identifier: 'btech', name: 'Bob Tech' },
  ];
  boards: CwBoard[] = [
    {
      id: 1,
      name: 'Service Desk',
      statuses: [
        { id: 16, name: 'New', closedStatus: false },
        { id: 17, name: 'In Progress', closedStatus: false },
        { id: 18, name: 'Waiting Customer', closedStatus: false },
        { id: 20, name: '>Closed', closedStatus: true },
      ],
    },
    {
      id: 2,
      name: 'Security Findings',
      statuses: [
        { id: 31, name: 'New', closedStatus: false },
        { id: 32, name: 'Assigned', closedStatus: false },
        { id: 39, name: 'Closed', closedStatus: true },
      ],
    },
  ];
  ticketList: CwTicket[] = [];
  noteList: CwNote[] = [];
  private nextTicketId = 5000;
  private nextNoteId = 1;

  constructor(opts: PsaSimOptions = {}) {
    super(opts);
  }

  /** `http://127.0.0.1:PORT/v4_6_release/apis/3.0` */
  get apiUrl(): string {
    return `${this.url}${CW_BASE_PATH}`;
  }

  /** `Authorization` header value for the configured keys. */
  basicAuth(): string {
    return `Basic ${Buffer.from(`${this.companyId}+${this.publicKey}:${this.privateKey}`).toString('base64')}`;
  }

  get clientId(): string {
    return [...this.clientIds][0]!;
  }

  seedCompanies(n: number): CwCompany[] {
    const out: CwCompany[] = [];
    for (let i = 0; i < n; i++) {
      const k = this.companies.length;
      const name = FAKE_COMPANY_NAMES[k] ?? `Company ${k + 1}`;
      const identifier = name.replace(/[^A-Za-z0-9]/g, '').slice(0, 20);
      const c: CwCompany = { id: 250 + k, identifier, name, deletedFlag: false, status: { id: 1, name: 'Active' } };
      this.companies.push(c);
      out.push(c);
    }
    return out;
  }

  addTicket(t: { companyId: number; summary?: string; boardId?: number; statusName?: string; owner?: string; resources?: string; id?: number }): CwTicket {
    const company = this.companies.find((c) => c.id === t.companyId);
    if (!company) throw new Error(`unknown company ${t.companyId}`);
    const board = this.boards.find((b) => b.id === (t.boardId ?? 1))!;
    const status = board.statuses.find((s) => s.name === (t.statusName ?? board.statuses[0]!.name));
    if (!status) throw new Error(`unknown status ${t.statusName}`);
    const owner = t.owner ? this.members.find((m) => m.identifier === t.owner) : undefined;
    const at = isoSeconds(this.now());
    const ticket: CwTicket = {
      id: t.id ?? this.nextTicketId++,
      summary: t.summary ?? 'Simulated ticket',
      recordType: 'ServiceTicket',
      board: { id: board.id, name: board.name },
      status: { id: status.id, name: status.name },
      company: { id: company.id, identifier: company.identifier, name: company.name },
      priority: { ...PRIORITIES[2]! },
      closedFlag: status.closedStatus,
      _info: { lastUpdated: at, updatedBy: this.apiMember, dateEntered: at, enteredBy: this.apiMember },
    };
    if (owner) ticket.owner = { ...owner };
    if (t.resources ?? owner) ticket.resources = t.resources ?? owner!.identifier;
    if (ticket.id >= this.nextTicketId) this.nextTicketId = ticket.id + 1;
    this.ticketList.push(ticket);
    return ticket;
  }

  seed(opts: { companies?: number } = {}): { open: CwTicket; openUnassigned: CwTicket; closed: CwTicket; otherCompanyOpen: CwTicket } {
    this.seedCompanies(opts.companies ?? 12);
    const [a, b] = this.companies;
    return {
      open: this.addTicket({ companyId: a!.id, summary: 'Laptop at BitLocker recovery screen', statusName: 'In Progress', owner: 'atech' }),
      openUnassigned: this.addTicket({ companyId: a!.id, summary: 'New starter laptop', statusName: 'New' }),
      closed: this.addTicket({ companyId: a!.id, summary: 'Old ticket', statusName: '>Closed', owner: 'atech' }),
      otherCompanyOpen: this.addTicket({ companyId: b!.id, summary: 'Printer offline', statusName: 'In Progress', owner: 'btech' }),
    };
  }

  tickets(): CwTicket[] {
    return this.ticketList.map((t) => structuredClone(t));
  }

  ticket(id: number): CwTicket | undefined {
    return this.ticketList.find((t) => t.id === id);
  }

  notes(ticketId: number): CwNote[] {
    return this.noteList.filter((n) => n.ticketId === ticketId).map((n) => ({ ...n }));
  }

  // --- HTTP ------------------------------------------------------------------------------------

  protected isApiCall(path: string): boolean {
    return path.startsWith(`${CW_BASE_PATH}/`);
  }

  protected throttleReply(): Reply {
    // (sim choice) 429 with Retry-After in ConnectWise's error object shape.
    return {
      status: 429,
      body: { code: 'TooManyRequests', message: 'Too many requests. Please slow down and retry later.' },
      headers: { 'retry-after': String(this.retryAfterSeconds) },
    };
  }

  protected badRequestReply(message: string): Reply {
    return { status: 400, body: { code: 'InvalidObject', message, errors: [] } };
  }

  protected route(r: IncomingRequest): Reply {
    if (!r.path.startsWith(`${CW_BASE_PATH}/`)) return { status: 404, body: { code: 'NotFound', message: 'Not found.' } };
    this.authenticate(r);
    const segs = r.path
      .slice(CW_BASE_PATH.length + 1)
      .replace(/\/+$/, '')
      .split('/')
      .map((s) => s.toLowerCase());
    const m = r.method;
    if (segs[0] === 'service' && segs[1] === 'tickets') {
      if (segs.length === 2 && m === 'GET') return this.list(r, this.ticketList, 'service/tickets');
      if (segs.length === 2 && m === 'POST') return this.createTicket(r);
      const id = intParam(segs[2]);
      if (id === null) return notFound('Ticket', segs[2] ?? '');
      if (segs.length === 3 && m === 'GET') return this.getTicket(id);
      if (segs.length === 3 && m === 'PATCH') return this.patchTicket(r, id);
      if (segs.length === 4 && segs[3] === 'notes' && m === 'POST') return this.createNote(r, id);
      if (segs.length === 4 && segs[3] === 'notes' && m === 'GET') {
        if (!this.ticket(id)) return notFound('Ticket', String(id));
        return this.list(
          r,
          this.noteList.filter((n) => n.ticketId === id),
          `service/tickets/${id}/notes`,
        );
      }
    }
    if (segs[0] === 'company' && segs[1] === 'companies') {
      if (segs.length === 2 && m === 'GET') return this.list(r, this.companies, 'company/companies');
      const id = intParam(segs[2]);
      if (segs.length === 3 && m === 'GET') {
        const c = id === null ? undefined : this.companies.find((x) => x.id === id);
        return c ? { status: 200, body: { ...c } } : notFound('Company', segs[2] ?? '');
      }
    }
    if (segs[0] === 'system' && segs[1] === 'info' && m === 'GET')
      return { status: 200, body: { version: 'v2025.1 (sim)', isCloud: true, cloudRegion: 'SIM' } };
    return { status: 404, body: { code: 'NotFound', message: `The resource ${r.path} was not found.` } };
  }

  private authenticate(r: IncomingRequest): void {
    const clientId = r.headers.clientid;
    // (sim choice) A missing or unknown clientId is refused before the keys are checked.
    if (typeof clientId !== 'string' || !this.clientIds.has(clientId))
      throw new HttpError({
        status: 401,
        body: { code: 'Unauthorized', message: 'A valid clientId header is required. See developer.connectwise.com/ClientID.' },
      });
    const m = /^Basic\s+(\S+)$/i.exec(r.headers.authorization ?? '');
    const decoded = m ? Buffer.from(m[1]!, 'base64').toString('utf8') : '';
    if (this.authFailure || decoded !== `${this.companyId}+${this.publicKey}:${this.privateKey}`)
      throw new HttpError({ status: 401, body: { code: 'Unauthorized', message: 'Authentication failed.' } });
  }

  /** Conditions, orderBy, page/pageSize and the Link header, for any collection. */
  private list<T extends object>(r: IncomingRequest, rows: T[], resource: string): Reply {
    let out = rows;
    const conditions = r.query.get('conditions');
    if (conditions) {
      const pred = parseConditions(conditions);
      out = out.filter((x) => pred(x as Record<string, unknown>));
    }
    const orderBy = r.query.get('orderBy') ?? r.query.get('orderby');
    if (orderBy) {
      const om = /^\s*([A-Za-z/]+)\s*(asc|desc)?\s*$/i.exec(orderBy);
      if (!om) throw new HttpError(this.badRequestReply(`orderBy '${orderBy}' is not valid.`));
      const field = om[1]!;
      const dir = (om[2] ?? 'asc').toLowerCase() === 'desc' ? -1 : 1;
      out = [...out].sort((a, b) => {
        const x = getPath(a as Record<string, unknown>, field);
        const y = getPath(b as Record<string, unknown>, field);
        return (x! < y! ? -1 : x! > y! ? 1 : 0) * dir;
      });
    }
    const pageSize = r.query.has('pageSize') ? intParam(r.query.get('pageSize')) : 25;
    const page = r.query.has('page') ? intParam(r.query.get('page')) : 1;
    if (pageSize === null || pageSize < 1 || pageSize > 1000 || page === null || page < 1)
      throw new HttpError(this.badRequestReply('page must be 1 or more and pageSize between 1 and 1000.'));
    const last = Math.max(1, Math.ceil(out.length / pageSize));
    const slice = out.slice((page - 1) * pageSize, page * pageSize);
    const link = (p: number, rel: string) => {
      const q = new URLSearchParams(r.query);
      q.set('pageSize', String(pageSize));
      q.set('page', String(p));
      return `<${this.apiUrl}/${resource}?${q.toString()}>; rel="${rel}"`;
    };
    const links: string[] = [];
    if (page > 1) links.push(link(1, 'first'), link(page - 1, 'prev'));
    if (page < last) links.push(link(page + 1, 'next'), link(last, 'last'));
    const headers: Record<string, string> = {};
    if (links.length) headers.link = links.join(', ');
    return { status: 200, body: slice.map((x) => structuredClone(x)), headers };
  }

  private getTicket(id: number): Reply {
    const t = this.ticket(id);
    return t ? { status: 200, body: structuredClone(t) } : notFound('Ticket', String(id));
  }

  private resolveBoard(v: unknown): CwBoard | undefined {
    if (!v || typeof v !== 'object') return undefined;
    const o = v as { id?: unknown; name?: unknown };
    return this.boards.find((b) => (o.id !== undefined ? b.id === o.id : b.name === o.name));
  }

  private resolveStatus(board: CwBoard, v: unknown): CwStatus | undefined {
    if (!v || typeof v !== 'object') return undefined;
    const o = v as { id?: unknown; name?: unknown };
    return board.statuses.find((s) => (o.id !== undefined ? s.id === o.id : s.name === o.name));
  }

  private createTicket(r: IncomingRequest): Reply {
    const b = r.json as Record<string, unknown> | undefined;
    if (!b || typeof b !== 'object' || Array.isArray(b)) throw new HttpError(this.badRequestReply('The request body must be a ticket object.'));
    const errors: { code: string; message: string; resource: string; field: string }[] = [];
    if (typeof b.summary !== 'string' || b.summary.trim() === '')
      errors.push({ code: 'NullOrEmpty', message: 'The summary field is required.', resource: 'ticket', field: 'summary' });
    else if (b.summary.length > 100)
      errors.push({ code: 'InvalidField', message: 'The summary field has a max length of 100.', resource: 'ticket', field: 'summary' });
    const co = b.company as { id?: unknown; identifier?: unknown } | undefined;
    const company = co ? this.companies.find((c) => (co.id !== undefined ? c.id === co.id : c.identifier === co.identifier)) : undefined;
    if (!company) errors.push({ code: 'InvalidField', message: 'The company field is invalid.', resource: 'ticket', field: 'company' });
    const board = b.board === undefined ? this.boards[0] : this.resolveBoard(b.board);
    if (!board) errors.push({ code: 'InvalidField', message: 'The board field is invalid.', resource: 'ticket', field: 'board' });
    const status = board && b.status !== undefined ? this.resolveStatus(board, b.status) : board?.statuses[0];
    if (board && !status) errors.push({ code: 'InvalidField', message: 'The status field is invalid for this board.', resource: 'ticket', field: 'status' });
    if (errors.length) return { status: 400, body: { code: 'InvalidObject', message: 'ticket object is invalid', errors } };
    const t = this.addTicket({ companyId: company!.id, summary: b.summary as string, boardId: board!.id, statusName: status!.name });
    const pr = b.priority as { id?: unknown } | undefined;
    const prio = pr ? PRIORITIES.find((p) => p.id === pr.id) : undefined;
    if (prio) t.priority = { ...prio };
    if (typeof b.initialDescription === 'string') t.initialDescription = b.initialDescription;
    return { status: 201, body: structuredClone(t) };
  }

  /** JSON Patch (`op`: replace/add; paths: summary, status, status/id, status/name, priority/id, owner/id, board/id, initialDescription). */
  private patchTicket(r: IncomingRequest, id: number): Reply {
    const t = this.ticket(id);
    if (!t) return notFound('Ticket', String(id));
    const ops = r.json;
    if (!Array.isArray(ops) || ops.length === 0) throw new HttpError(this.badRequestReply('The request body must be a JSON Patch array of operations.'));
    const draft = structuredClone(t);
    for (const raw of ops as Record<string, unknown>[]) {
      const op = typeof raw?.op === 'string' ? raw.op.toLowerCase() : '';
      const path = typeof raw?.path === 'string' ? raw.path.replace(/^\//, '').toLowerCase() : '';
      const value = raw?.value;
      if (op !== 'replace' && op !== 'add')
        throw new HttpError(this.badRequestReply(`Operation '${String(raw?.op)}' is not supported on ${path || 'this path'}.`));
      const board = this.boards.find((b) => b.id === draft.board.id)!;
      const bad = () => new HttpError(this.badRequestReply(`The value for '${path}' is invalid.`));
      if (path === 'summary') {
        if (typeof value !== 'string' || !value.trim() || value.length > 100) throw bad();
        draft.summary = value;
      } else if (path === 'initialdescription') {
        if (typeof value !== 'string') throw bad();
        draft.initialDescription = value;
      } else if (path === 'status' || path === 'status/id' || path === 'status/name') {
        const v = path === 'status' ? value : path === 'status/id' ? { id: value } : { name: value };
        const s = this.resolveStatus(board, v);
        if (!s) throw bad();
        draft.status = { id: s.id, name: s.name };
        draft.closedFlag = s.closedStatus;
      } else if (path === 'priority' || path === 'priority/id') {
        const pid = path === 'priority' ? (value as { id?: unknown } | null)?.id : value;
        const p = PRIORITIES.find((x) => x.id === pid);
        if (!p) throw bad();
        draft.priority = { ...p };
      } else if (path === 'owner' || path === 'owner/id') {
        const mid = path === 'owner' ? (value as { id?: unknown } | null)?.id : value;
        const mem = this.members.find((x) => x.id === mid);
        if (!mem) throw bad();
        draft.owner = { ...mem };
        draft.resources = mem.identifier;
      } else if (path === 'closedflag') {
        if (typeof value !== 'boolean') throw bad();
        const s = board.statuses.find((x) => x.closedStatus === value);
        if (!s) throw bad();
        draft.status = { id: s.id, name: s.name };
        draft.closedFlag = value;
      } else {
        throw new HttpError(this.badRequestReply(`The path '${path}' cannot be patched in this simulator.`));
      }
    }
    draft._info.lastUpdated = isoSeconds(this.now());
    draft._info.updatedBy = this.apiMember;
    Object.assign(t, draft);
    return { status: 200, body: structuredClone(t) };
  }

  private createNote(r: IncomingRequest, ticketId: number): Reply {
    const t = this.ticket(ticketId);
    if (!t) return notFound('Ticket', String(ticketId));
    const b = r.json as Record<string, unknown> | undefined;
    if (!b || typeof b !== 'object' || Array.isArray(b)) throw new HttpError(this.badRequestReply('The request body must be a note object.'));
    const errors: { code: string; message: string; resource: string; field: string }[] = [];
    if (typeof b.text !== 'string' || b.text.trim() === '')
      errors.push({ code: 'NullOrEmpty', message: 'The text field is required.', resource: 'ticketNote', field: 'text' });
    const flag = (k: string) => b[k] === true;
    // (sim choice) At least one of the three note kinds must be chosen, as the Manage UI requires.
    if (!flag('detailDescriptionFlag') && !flag('internalAnalysisFlag') && !flag('resolutionFlag'))
      errors.push({
        code: 'InvalidField',
        message: 'One of detailDescriptionFlag, internalAnalysisFlag or resolutionFlag must be true.',
        resource: 'ticketNote',
        field: 'detailDescriptionFlag',
      });
    if (errors.length) return { status: 400, body: { code: 'InvalidObject', message: 'ticketNote object is invalid', errors } };
    const note: CwNote = {
      id: this.nextNoteId++,
      ticketId,
      text: b.text as string,
      detailDescriptionFlag: flag('detailDescriptionFlag'),
      internalAnalysisFlag: flag('internalAnalysisFlag'),
      resolutionFlag: flag('resolutionFlag'),
      issueFlag: flag('issueFlag'),
      internalFlag: flag('internalFlag') || flag('internalAnalysisFlag'),
      externalFlag: flag('externalFlag'),
      dateCreated: isoSeconds(this.now()),
      createdBy: this.apiMember,
    };
    this.noteList.push(note);
    t._info.lastUpdated = note.dateCreated;
    return { status: 201, body: { ...note } };
  }
}

function notFound(kind: string, id: string): Reply {
  return { status: 404, body: { code: 'NotFound', message: `${kind} with id ${id} not found`, errors: null } };
}

function getPath(obj: Record<string, unknown>, path: string): unknown {
  let cur: unknown = obj;
  for (const part of path.split('/')) {
    if (!cur || typeof cur !== 'object') return undefined;
    const rec = cur as Record<string, unknown>;
    const key = Object.keys(rec).find((k) => k.toLowerCase() === part.toLowerCase());
    cur = key === undefined ? undefined : rec[key];
  }
  return cur;
}

type Pred = (o: Record<string, unknown>) => boolean;

/**
 * The subset of the `conditions` language the simulator understands: `field op value` clauses
 * joined by `and` / `or` (left to right, `and` binding tighter), with parentheses.
 * Fields are slash paths (`company/identifier`). Operators: `=`, `!=`, `<`, `<=`, `>`, `>=`,
 * `like` (`*` wildcard), `contains`, `in (..)`. Values: "strings" (\" escapes), numbers,
 * true/false, null, [dates].
 */
export function parseConditions(src: string): Pred {
  const toks: string[] = [];
  const re = /\s*("(?:[^"\\]|\\.)*"|\[[^\]]*\]|\(|\)|,|!=|<=|>=|=|<|>|[A-Za-z_][A-Za-z0-9_/]*|-?\d+(?:\.\d+)?)/y;
  let pos = 0;
  while (pos < src.length) {
    if (/^\s*$/.test(src.slice(pos))) break;
    re.lastIndex = pos;
    const m = re.exec(src);
    if (!m) throw condError(src);
    toks.push(m[1]!);
    pos = re.lastIndex;
  }
  let i = 0;
  const peek = () => toks[i];
  const next = () => toks[i++];
  const value = (): unknown => {
    const t = next();
    if (t === undefined) throw condError(src);
    if (t.startsWith('"')) return t.slice(1, -1).replace(/\\(.)/g, '$1');
    if (t.startsWith('[')) return t.slice(1, -1);
    if (/^-?\d/.test(t)) return Number(t);
    if (/^true$/i.test(t)) return true;
    if (/^false$/i.test(t)) return false;
    if (/^null$/i.test(t)) return null;
    throw condError(src);
  };
  const clause = (): Pred => {
    if (peek() === '(') {
      next();
      const p = orExpr();
      if (next() !== ')') throw condError(src);
      return p;
    }
    const field = next();
    if (!field || !/^[A-Za-z_]/.test(field)) throw condError(src);
    const op = next()?.toLowerCase();
    if (op === 'in' || op === 'not') {
      if (op === 'not' && next()?.toLowerCase() !== 'in') throw condError(src);
      if (next() !== '(') throw condError(src);
      const vals: unknown[] = [value()];
      while (peek() === ',') {
        next();
        vals.push(value());
      }
      if (next() !== ')') throw condError(src);
      const neg = op === 'not';
      return (o) => vals.some((v) => eq(getPath(o, field), v)) !== neg;
    }
    const v = value();
    switch (op) {
      case '=':
        return (o) => eq(getPath(o, field), v);
      case '!=':
        return (o) => !eq(getPath(o, field), v);
      case '<':
      case '<=':
      case '>':
      case '>=':
        return (o) => {
          const x = getPath(o, field) as number | string;
          const y = v as number | string;
          return op === '<' ? x < y : op === '<=' ? x <= y : op === '>' ? x > y : x >= y;
        };
      case 'like': {
        const rx = new RegExp(
          `^${String(v)
            .replace(/[.+?^${}()|[\]\\]/g, '\\$&')
            .replace(/\*/g, '.*')}$`,
          'i',
        );
        return (o) => rx.test(String(getPath(o, field) ?? ''));
      }
      case 'contains':
        return (o) =>
          String(getPath(o, field) ?? '')
            .toLowerCase()
            .includes(String(v).toLowerCase());
      default:
        throw condError(src);
    }
  };
  const andExpr = (): Pred => {
    let p = clause();
    while (peek()?.toLowerCase() === 'and') {
      next();
      const l = p;
      const r = clause();
      p = (o) => l(o) && r(o);
    }
    return p;
  };
  const orExpr = (): Pred => {
    let p = andExpr();
    while (peek()?.toLowerCase() === 'or') {
      next();
      const l = p;
      const r = andExpr();
      p = (o) => l(o) || r(o);
    }
    return p;
  };
  const pred = orExpr();
  if (i !== toks.length) throw condError(src);
  return pred;
}

function eq(x: unknown, v: unknown): boolean {
  if (typeof x === 'string' && typeof v === 'string') return x.toLowerCase() === v.toLowerCase();
  return x === v;
}

function condError(src: string): HttpError {
  return new HttpError({
    status: 400,
    body: {
      code: 'InvalidObject',
      message: 'conditions is invalid',
      errors: [{ code: 'InvalidField', message: `The conditions '${src}' could not be parsed.`, resource: 'conditions', field: 'conditions' }],
    },
  });
}
