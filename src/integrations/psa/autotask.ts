import { createTransport, guardText, idOf, numericId, obj, optionalNumber, str, validPsaUrl, type PsaHttpRequest } from './http.js';
import { PsaError, type AutotaskConfig, type PsaClient, type PsaClientDeps, type PsaCompany, type PsaTicket } from './types.js';

/**
 * Autotask PSA: the API user's zone is looked up once (`zoneInformation?user=`, no credentials
 * sent) and cached; every later call goes to that zone's URL with the three headers
 * ApiIntegrationCode, UserName and Secret. Queries page with `pageDetails.nextPageUrl`, followed
 * only when it stays on the zone's origin (the headers carry the secret). Autotask limits each
 * integration to a few requests in flight per entity and answers 429 beyond; the retry hint is
 * honoured. An internal note is a TicketNote published to the internal project team.
 */
const NAME = 'Autotask';
const DEFAULT_ZONE_LOOKUP = 'https://webservices.autotask.net/atservicesrest';
const TICKET_NUMBER = /^T\d{8}\.\d{4,}$/i;

/** Status picklist of a default Autotask instance; other values are shown by number. */
const STATUS_NAMES: Record<number, string> = { 1: 'New', 5: 'Complete', 7: 'Waiting Customer', 8: 'In Progress' };

export function createAutotaskClient(cfg: AutotaskConfig, deps: PsaClientDeps): PsaClient {
  const lookupUrl = validPsaUrl(cfg.zoneLookupUrl ?? DEFAULT_ZONE_LOOKUP, NAME, 'zone lookup URL');
  const closed = new Set(cfg.closedStatusIds ?? [5]);
  const http = createTransport(NAME, deps);
  const maxPages = deps.maxPages ?? 50;
  const headers = { ApiIntegrationCode: cfg.integrationCode, UserName: cfg.userName, Secret: cfg.secret };
  // One lookup shared by concurrent calls; a failed lookup is asked again next time.
  let zone: Promise<string> | null = null;

  function zoneUrl(): Promise<string> {
    zone ??= lookupZone().catch((e: unknown) => {
      zone = null;
      throw e;
    });
    return zone;
  }

  async function lookupZone(): Promise<string> {
    const url = `${lookupUrl}/v1.0/zoneInformation?user=${encodeURIComponent(cfg.userName)}`;
    const res = await http.send({ method: 'GET', url, accept: [404] });
    if (res.status === 404)
      throw new PsaError(404, 'auth_failed', 'Autotask does not know the API user name of this connection: check it (the API user’s email-style user name).');
    const found = str(obj(NAME, res.json, 'the zone lookup').url);
    let z: string;
    try {
      z = validPsaUrl(found, NAME, 'zone URL');
    } catch {
      throw new PsaError(200, 'bad_answer', 'Autotask answered the zone lookup with an address Keywarden does not use (https:// only).');
    }
    // The zone receives the secret: from Datto's own lookup service it must be one of Datto's hosts.
    if (new URL(lookupUrl).hostname.endsWith('.autotask.net') && !new URL(z).hostname.endsWith('.autotask.net'))
      throw new PsaError(
        200,
        'foreign_link',
        'Autotask answered the zone lookup with a host outside autotask.net, which Keywarden does not send credentials to.',
      );
    return z;
  }

  async function api(req: Omit<PsaHttpRequest, 'url'> & { path: string }) {
    const { path, ...rest } = req;
    const base = await zoneUrl();
    return http.send({ ...rest, url: `${base}/V1.0${path}`, headers });
  }

  /** Every item of a query, following nextPageUrl on the zone's origin, up to the page cap. */
  async function queryAll(entity: string, filter: unknown[], includeFields?: string[]): Promise<Record<string, unknown>[]> {
    const out: Record<string, unknown>[] = [];
    const base = await zoneUrl();
    const origin = new URL(base).origin;
    let res = await api({ method: 'POST', path: `/${entity}/query`, json: { filter, ...(includeFields ? { IncludeFields: includeFields } : {}) } });
    for (let page = 1; ; page++) {
      const j = obj(NAME, res.json, 'a query');
      if (!Array.isArray(j.items)) throw new PsaError(200, 'bad_answer', 'Autotask answered a query in a form Keywarden does not understand.');
      for (const it of j.items as unknown[]) out.push(obj(NAME, it, 'a query item'));
      const details = (j.pageDetails && typeof j.pageDetails === 'object' ? j.pageDetails : {}) as Record<string, unknown>;
      const next = details.nextPageUrl;
      if (next === null || next === undefined || next === '') return out;
      if (typeof next !== 'string') throw new PsaError(200, 'bad_answer', 'Autotask answered a next page Keywarden cannot read.');
      let nextOrigin: string | null = null;
      try {
        nextOrigin = new URL(next).origin;
      } catch {
        // refused below
      }
      if (nextOrigin !== origin) throw new PsaError(200, 'foreign_link', 'Autotask pointed to a next page outside its zone, which Keywarden does not follow.');
      if (page >= maxPages) throw new PsaError(200, 'too_many', `Autotask has more ${entity.toLowerCase()} than Keywarden reads (${maxPages} pages).`);
      res = await http.send({ method: 'GET', url: next, headers });
    }
  }

  function ticketOf(j: Record<string, unknown>): PsaTicket {
    const id = idOf(j.id);
    const companyId = idOf(j.companyID);
    if (!id || !companyId) throw new PsaError(200, 'bad_answer', 'Autotask answered the ticket in a form Keywarden does not understand.');
    const status = typeof j.status === 'number' ? j.status : Number(j.status);
    const assignee = idOf(j.assignedResourceID);
    return {
      id,
      number: str(j.ticketNumber) || id,
      summary: str(j.title),
      open: !closed.has(status),
      statusName: STATUS_NAMES[status] ?? `Status ${str(j.status)}`,
      companyId,
      companyName: null,
      assigneeIds: assignee ? [assignee] : [],
      assigneeNames: [],
      assigneeLogins: [],
    };
  }

  const client: PsaClient = {
    kind: 'autotask',

    async testConnection() {
      // The MSP's own company always has id 0.
      await api({ method: 'GET', path: '/Companies/0' });
    },

    async getTicket(id) {
      const t = id.trim();
      if (TICKET_NUMBER.test(t)) {
        const res = await api({
          method: 'POST',
          path: '/Tickets/query',
          json: { filter: [{ op: 'eq', field: 'ticketNumber', value: t.toUpperCase() }], MaxRecords: 1 },
        });
        const items = obj(NAME, res.json, 'a query').items;
        const first = Array.isArray(items) ? (items as unknown[])[0] : undefined;
        return first === undefined ? null : ticketOf(obj(NAME, first, 'the ticket'));
      }
      const n = numericId(NAME, t);
      const res = await api({ method: 'GET', path: `/Tickets/${n}` });
      const item = obj(NAME, res.json, 'the ticket').item;
      return item === null || item === undefined ? null : ticketOf(obj(NAME, item, 'the ticket'));
    },

    async listCompanies() {
      const rows = await queryAll('Companies', [{ op: 'eq', field: 'isActive', value: true }], ['id', 'companyName', 'isActive']);
      const out: PsaCompany[] = [];
      for (const c of rows) {
        const cid = idOf(c.id);
        if (cid) out.push({ id: cid, name: str(c.companyName) });
      }
      return out;
    },

    async addInternalNote(ticketId, text) {
      guardText(NAME, text);
      const n = numericId(NAME, ticketId);
      await api({
        method: 'POST',
        path: `/Tickets/${n}/Notes`,
        json: { title: 'Keywarden', description: text.slice(0, 32000), noteType: cfg.noteType ?? 1, publish: cfg.notePublish ?? 2 },
      });
    },

    async createTicket(t) {
      guardText(NAME, t.title, t.description);
      const body: Record<string, unknown> = {
        companyID: numericId(NAME, t.companyId, 'company'),
        title: t.title.slice(0, 255),
        description: t.description.slice(0, 8000),
        status: cfg.newStatusId ?? 1,
        priority: optionalNumber(NAME, t.priority, 'priority') ?? cfg.defaultPriority ?? 2,
      };
      const queue = optionalNumber(NAME, t.queue, 'queue');
      if (queue !== undefined) body.queueID = queue;
      const res = await api({ method: 'POST', path: '/Tickets', json: body });
      const id = idOf(obj(NAME, res.json, 'the new ticket').itemId);
      if (!id) throw new PsaError(res.status, 'bad_answer', 'Autotask answered the new ticket without its id.');
      return id;
    },

    async updateTicket(id, change) {
      guardText(NAME, change.title, change.description);
      const body: Record<string, unknown> = { id: numericId(NAME, id) };
      if (change.title !== undefined) body.title = change.title.slice(0, 255);
      if (change.description !== undefined) body.description = change.description.slice(0, 8000);
      const prio = optionalNumber(NAME, change.priority, 'priority');
      if (prio !== undefined) body.priority = prio;
      await api({ method: 'PATCH', path: '/Tickets', json: body });
    },

    async closeTicket(id, note) {
      guardText(NAME, note);
      const n = numericId(NAME, id);
      if (note) await client.addInternalNote(id, note);
      await api({ method: 'PATCH', path: '/Tickets', json: { id: n, status: cfg.closeStatusId ?? 5 } });
    },
  };
  return client;
}
