import { createTransport, guardText, idOf, numericId, obj, optionalNumber, str, validPsaUrl, type PsaHttpRequest } from './http.js';
import { PsaError, type HaloPsaConfig, type PsaClient, type PsaClientDeps, type PsaCompany, type PsaTicket } from './types.js';

/**
 * HaloPSA: OAuth 2 client credentials against `{authUrl}/token` (with `tenant` for hosted
 * instances), the token cached until shortly before it expires and fetched again once on a 401;
 * REST under `{apiUrl}`. Write endpoints take arrays. A private note is an action with
 * `hiddenfromuser: true`.
 */
const NAME = 'HaloPSA';
const PAGE_SIZE = 100;

/** The OAuth error codes of Halo's token endpoint, in Keywarden's words. */
const TOKEN_CODES: Record<string, string> = {
  invalid_client: 'refused the client ID or secret: check the API application in HaloPSA (Configuration › Integrations › HaloPSA API)',
  unauthorized_client: 'does not let this API application use client credentials',
  invalid_request: 'refused the sign-in request: check the tenant and the authorisation server URL',
  invalid_scope: 'refused the requested scope: check the scope of the API application',
  unsupported_grant_type: 'does not accept client credentials at this address: check the authorisation server URL',
};

export function createHaloPsaClient(cfg: HaloPsaConfig, deps: PsaClientDeps): PsaClient {
  const authUrl = validPsaUrl(cfg.authUrl, NAME, 'authorisation server URL');
  const apiUrl = validPsaUrl(cfg.apiUrl, NAME, 'API URL');
  const closed = new Set(cfg.closedStatusIds ?? [9, 10]);
  const closeStatus = cfg.closeStatusId ?? 9;
  const http = createTransport(NAME, deps);
  const now = deps.now ?? Date.now;
  const maxPages = deps.maxPages ?? 50;
  let token: { value: string; expiresAt: number } | null = null;

  async function getToken(force = false): Promise<string> {
    if (!force && token && token.expiresAt - 60_000 > now()) return token.value;
    token = null;
    const url = new URL(`${authUrl}/token`);
    if (cfg.tenant) url.searchParams.set('tenant', cfg.tenant);
    const form = new URLSearchParams({ grant_type: 'client_credentials', client_id: cfg.clientId, client_secret: cfg.clientSecret, scope: cfg.scope ?? 'all' });
    const res = await http.send({ method: 'POST', url: url.toString(), form, accept: [400, 401], retryNetwork: true });
    const body = (res.json && typeof res.json === 'object' ? res.json : {}) as { access_token?: unknown; expires_in?: unknown; error?: unknown };
    if (res.status !== 200 || typeof body.access_token !== 'string' || !body.access_token) {
      const code = typeof body.error === 'string' && Object.hasOwn(TOKEN_CODES, body.error) ? body.error : null;
      if (code) throw new PsaError(res.status, 'auth_failed', `The HaloPSA authorisation server ${TOKEN_CODES[code]}.`);
      if (res.status === 200) throw new PsaError(200, 'bad_answer', 'The HaloPSA authorisation server answered without an access token.');
      throw new PsaError(res.status, 'auth_failed', `The HaloPSA authorisation server refused the sign-in (HTTP ${res.status}).`);
    }
    const expiresIn = Number(body.expires_in) > 0 ? Number(body.expires_in) : 3600;
    token = { value: body.access_token, expiresAt: now() + expiresIn * 1000 };
    return token.value;
  }

  async function api(req: Omit<PsaHttpRequest, 'url'> & { path: string }) {
    const { path, ...rest } = req;
    for (let refreshed = false; ; refreshed = true) {
      const bearer = await getToken(refreshed);
      const accept = [...(rest.accept ?? []), 401];
      const res = await http.send({ ...rest, url: `${apiUrl}${path}`, headers: { authorization: `Bearer ${bearer}` }, accept });
      if (res.status === 401 && !rest.accept?.includes(401)) {
        // A token revoked or expired early: one fresh token, then the credentials are at fault.
        if (!refreshed) continue;
        throw new PsaError(401, 'auth_failed', 'HaloPSA did not accept the access token of this API application.');
      }
      return res;
    }
  }

  function ticketOf(j: Record<string, unknown>): PsaTicket {
    const id = idOf(j.id);
    const companyId = idOf(j.client_id);
    if (!id || !companyId) throw new PsaError(200, 'bad_answer', 'HaloPSA answered the ticket in a form Keywarden does not understand.');
    const statusId = typeof j.status_id === 'number' ? j.status_id : Number(j.status_id);
    const agent = idOf(j.agent_id);
    return {
      id,
      number: id,
      summary: str(j.summary),
      open: !closed.has(statusId),
      statusName: str(j.status_name) || `Status ${str(j.status_id)}`,
      companyId,
      companyName: str(j.client_name) || null,
      assigneeIds: agent && agent !== '0' ? [agent] : [],
      assigneeNames: str(j.agent_name) ? [str(j.agent_name)] : [],
      assigneeLogins: [],
    };
  }

  const client: PsaClient = {
    kind: 'halopsa',

    async testConnection() {
      await api({ method: 'GET', path: '/Status' });
    },

    async getTicket(id) {
      const n = numericId(NAME, id);
      const res = await api({ method: 'GET', path: `/Tickets/${n}`, accept: [404] });
      if (res.status === 404) return null;
      return ticketOf(obj(NAME, res.json, 'the ticket'));
    },

    async listCompanies() {
      const out: PsaCompany[] = [];
      for (let page = 1; ; page++) {
        if (page > maxPages) throw new PsaError(200, 'too_many', `HaloPSA has more clients than Keywarden reads (${maxPages} pages of ${PAGE_SIZE}).`);
        const res = await api({ method: 'GET', path: `/Client?pageinate=true&page_size=${PAGE_SIZE}&page_no=${page}` });
        const j = obj(NAME, res.json, 'the client list');
        const rows = Array.isArray(j.clients) ? (j.clients as unknown[]) : null;
        if (!rows) throw new PsaError(200, 'bad_answer', 'HaloPSA answered the client list in a form Keywarden does not understand.');
        for (const r of rows) {
          const c = obj(NAME, r, 'a client');
          const cid = idOf(c.id);
          if (cid && c.inactive !== true) out.push({ id: cid, name: str(c.name) });
        }
        const total = typeof j.record_count === 'number' ? j.record_count : null;
        if (rows.length < PAGE_SIZE || (total !== null && page * PAGE_SIZE >= total)) return out;
      }
    },

    async addInternalNote(ticketId, text) {
      guardText(NAME, text);
      const n = numericId(NAME, ticketId);
      await api({ method: 'POST', path: '/Actions', json: [{ ticket_id: n, note: text, outcome: 'Private Note', hiddenfromuser: true }] });
    },

    async createTicket(t) {
      guardText(NAME, t.title, t.description);
      const clientId = numericId(NAME, t.companyId, 'client');
      const row: Record<string, unknown> = { summary: t.title, details: t.description, client_id: clientId };
      const prio = optionalNumber(NAME, t.priority, 'priority');
      if (prio !== undefined) row.priority_id = prio;
      if (t.queue) row.team = t.queue;
      const res = await api({ method: 'POST', path: '/Tickets', json: [row] });
      const created = Array.isArray(res.json) ? (res.json as unknown[])[0] : res.json;
      const id = idOf(obj(NAME, created, 'the new ticket').id);
      if (!id) throw new PsaError(res.status, 'bad_answer', 'HaloPSA answered the new ticket without its id.');
      return id;
    },

    async updateTicket(id, change) {
      guardText(NAME, change.title, change.description);
      const row: Record<string, unknown> = { id: numericId(NAME, id) };
      if (change.title !== undefined) row.summary = change.title;
      if (change.description !== undefined) row.details = change.description;
      const prio = optionalNumber(NAME, change.priority, 'priority');
      if (prio !== undefined) row.priority_id = prio;
      await api({ method: 'POST', path: '/Tickets', json: [row] });
    },

    async closeTicket(id, note) {
      guardText(NAME, note);
      const n = numericId(NAME, id);
      if (note) await client.addInternalNote(id, note);
      await api({ method: 'POST', path: '/Tickets', json: [{ id: n, status_id: closeStatus }] });
    },
  };
  return client;
}
