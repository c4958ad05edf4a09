import { createTransport, guardText, idOf, numericId, obj, optionalNumber, str, validPsaUrl, type PsaHttpRequest } from './http.js';
import { PsaError, type ConnectWiseConfig, type PsaClient, type PsaClientDeps, type PsaCompany, type PsaTicket } from './types.js';

/**
 * ConnectWise PSA (Manage): API member keys as `Basic base64(companyId+publicKey:privateKey)` plus
 * the integration's `clientId` header on every call, REST under the site's API URL (codebase
 * included, e.g. …/v4_6_release/apis/3.0). Lists page with `page`/`pageSize` until no `next` Link;
 * Keywarden builds the next address itself, so the keys never follow a link elsewhere. An internal
 * note is a ticket note with `internalAnalysisFlag` (Internal Analysis, never shown to the contact).
 */
const NAME = 'ConnectWise PSA';
const PAGE_SIZE = 1000;

export function createConnectWiseClient(cfg: ConnectWiseConfig, deps: PsaClientDeps): PsaClient {
  const apiUrl = validPsaUrl(cfg.apiUrl, NAME, 'API URL');
  const http = createTransport(NAME, deps);
  const maxPages = deps.maxPages ?? 50;
  const authorization = `Basic ${Buffer.from(`${cfg.companyId}+${cfg.publicKey}:${cfg.privateKey}`).toString('base64')}`;

  async function api(req: Omit<PsaHttpRequest, 'url'> & { path: string }) {
    const { path, ...rest } = req;
    return http.send({ ...rest, url: `${apiUrl}${path}`, headers: { authorization, clientId: cfg.clientId } });
  }

  function ticketOf(j: Record<string, unknown>): PsaTicket {
    const id = idOf(j.id);
    const company = (j.company && typeof j.company === 'object' ? j.company : {}) as Record<string, unknown>;
    const companyId = idOf(company.id);
    if (!id || !companyId) throw new PsaError(200, 'bad_answer', 'ConnectWise PSA answered the ticket in a form Keywarden does not understand.');
    const status = (j.status && typeof j.status === 'object' ? j.status : {}) as Record<string, unknown>;
    const owner = (j.owner && typeof j.owner === 'object' ? j.owner : null) as Record<string, unknown> | null;
    const logins = new Set<string>();
    if (owner && str(owner.identifier)) logins.add(str(owner.identifier));
    for (const r of str(j.resources).split(',')) if (r.trim()) logins.add(r.trim());
    const ownerId = owner ? idOf(owner.id) : null;
    return {
      id,
      number: id,
      summary: str(j.summary),
      open: j.closedFlag !== true,
      statusName: str(status.name),
      companyId,
      companyName: str(company.name) || null,
      assigneeIds: ownerId ? [ownerId] : [],
      assigneeNames: owner && str(owner.name) ? [str(owner.name)] : [],
      assigneeLogins: [...logins],
    };
  }

  const client: PsaClient = {
    kind: 'connectwise',

    async testConnection() {
      await api({ method: 'GET', path: '/system/info' });
    },

    async getTicket(id) {
      const n = numericId(NAME, id);
      const res = await api({ method: 'GET', path: `/service/tickets/${n}`, accept: [404] });
      if (res.status === 404) return null;
      return ticketOf(obj(NAME, res.json, 'the ticket'));
    },

    async listCompanies() {
      const out: PsaCompany[] = [];
      const conditions = encodeURIComponent('deletedFlag=false');
      for (let page = 1; ; page++) {
        if (page > maxPages)
          throw new PsaError(200, 'too_many', `ConnectWise PSA has more companies than Keywarden reads (${maxPages} pages of ${PAGE_SIZE}).`);
        const res = await api({ method: 'GET', path: `/company/companies?conditions=${conditions}&orderBy=id%20asc&pageSize=${PAGE_SIZE}&page=${page}` });
        if (!Array.isArray(res.json))
          throw new PsaError(200, 'bad_answer', 'ConnectWise PSA answered the company list in a form Keywarden does not understand.');
        for (const r of res.json as unknown[]) {
          const c = obj(NAME, r, 'a company');
          const cid = idOf(c.id);
          if (cid) out.push({ id: cid, name: str(c.name), ...(str(c.identifier) ? { identifier: str(c.identifier) } : {}) });
        }
        const link = res.headers.get('link') ?? '';
        if (!/rel="?next"?/i.test(link) || (res.json as unknown[]).length === 0) return out;
      }
    },

    async addInternalNote(ticketId, text) {
      guardText(NAME, text);
      const n = numericId(NAME, ticketId);
      await api({
        method: 'POST',
        path: `/service/tickets/${n}/notes`,
        json: { text, detailDescriptionFlag: false, internalAnalysisFlag: true, resolutionFlag: false, internalFlag: true, externalFlag: false },
      });
    },

    async createTicket(t) {
      guardText(NAME, t.title, t.description);
      const companyId = numericId(NAME, t.companyId, 'company');
      const body: Record<string, unknown> = { summary: t.title.slice(0, 100), company: { id: companyId }, initialDescription: t.description };
      const prio = optionalNumber(NAME, t.priority, 'priority');
      if (prio !== undefined) body.priority = { id: prio };
      if (t.queue) body.board = /^\d+$/.test(t.queue) ? { id: Number(t.queue) } : { name: t.queue };
      const res = await api({ method: 'POST', path: '/service/tickets', json: body });
      const id = idOf(obj(NAME, res.json, 'the new ticket').id);
      if (!id) throw new PsaError(res.status, 'bad_answer', 'ConnectWise PSA answered the new ticket without its id.');
      return id;
    },

    async updateTicket(id, change) {
      guardText(NAME, change.title, change.description);
      const n = numericId(NAME, id);
      const ops: { op: 'replace'; path: string; value: unknown }[] = [];
      if (change.title !== undefined) ops.push({ op: 'replace', path: 'summary', value: change.title.slice(0, 100) });
      if (change.description !== undefined) ops.push({ op: 'replace', path: 'initialDescription', value: change.description });
      const prio = optionalNumber(NAME, change.priority, 'priority');
      if (prio !== undefined) ops.push({ op: 'replace', path: 'priority/id', value: prio });
      if (!ops.length) return;
      await api({ method: 'PATCH', path: `/service/tickets/${n}`, json: ops });
    },

    async closeTicket(id, note) {
      guardText(NAME, note);
      const n = numericId(NAME, id);
      if (note) await client.addInternalNote(id, note);
      const op = cfg.closeStatusName ? { op: 'replace', path: 'status/name', value: cfg.closeStatusName } : { op: 'replace', path: 'closedFlag', value: true };
      await api({ method: 'PATCH', path: `/service/tickets/${n}`, json: [op] });
    },
  };
  return client;
}
