import type { Executor } from '../../db/database.js';
import type { PsaClientSettingsTable, PsaConnectionTable } from '../../db/schema.js';
import type { Transactions } from '../../db/transactions.js';
import type { Keyring } from '../../crypto/keyring.js';
import type { Clock } from '../../lib/clock.js';
import { badRequest, conflict, forbidden, isAppError, notFound, unavailable } from '../../lib/errors.js';
import { isEgressError, type EgressPolicy } from '../../integrations/egress.js';
import {
  createPsaClient,
  PSA_NAMES,
  PsaError,
  validPsaUrl,
  type PsaClient,
  type PsaClientDeps,
  type PsaCompany,
  type PsaConfig,
  type PsaKind,
} from '../../integrations/psa/index.js';
import { suggestCompany, type CompanySuggestion } from '../../domain/psa/company-match.js';
import { clientScope, requireFreshSecondFactor, requirePermission, type Actor } from '../authz/authz.js';
import type { AuditService } from '../audit/audit.service.js';
import { requireVisibleClient } from '../clients/visible-client.js';
import type { PsaRepo } from './psa.repo.js';
import { PSA_CONNECTION_ID } from './psa.repo.js';
import { TICKET_POLICIES, type ActivePsa, type ClientPsaSettings, type PsaAccess, type TicketPolicy } from './psa.access.js';

/**
 * The vault's one PSA connection (HaloPSA, ConnectWise PSA or Autotask), each client's PSA company
 * and ticket policy, and each person's PSA member. Owners set the connection (vault-wide, fresh
 * second factor); the secrets are sealed with the vault's `secrets` key, never answered, and only
 * sent to the addresses they were entered for. Admins of all clients link clients to PSA companies
 * (a suggestion by name, their choice); admins set their clients' ticket policy for reveals (fresh
 * second factor: it loosens or tightens a security control).
 */

/** What an owner types per PSA. Secrets are write-only: required the first time and when the PSA changes. */
export type PsaConnectionInput =
  | {
      kind: 'halopsa';
      url: string;
      authUrl?: string;
      apiUrl?: string;
      clientId: string;
      clientSecret?: string;
      tenant?: string | null;
      closedStatusIds?: number[];
      closeStatusId?: number;
    }
  | { kind: 'connectwise'; apiUrl: string; companyId: string; publicKey: string; privateKey?: string; clientId: string; closeStatusName?: string | null }
  | {
      kind: 'autotask';
      zoneLookupUrl?: string | null;
      userName: string;
      secret?: string;
      integrationCode?: string;
      closedStatusIds?: number[];
      closeStatusId?: number;
      newStatusId?: number;
      defaultPriority?: number;
      noteType?: number;
      notePublish?: number;
    };

type Settings = Record<string, unknown>;
type Secrets = Record<string, string>;

/** The connection as the console and CLI see it: every setting but the secrets, which are only "set". */
export type PsaConnectionView = {
  kind: PsaKind;
  name: string;
  settings: Record<string, string | number | number[] | null>;
  secretsSet: string[];
  status: 'untested' | 'ok' | 'failing';
  lastCheckedAt: string | null;
  lastError: string | null;
  updatedAt: string;
  updatedBy: string;
};

export type ClientPsaView = ClientPsaSettings & { clientName: string; updatedAt: string | null; updatedBy: string | null };

export type CompaniesView = {
  psa: string;
  companies: PsaCompany[];
  /** Per client the actor may manage: its link (when set) and the best company by name (when not). */
  clients: { clientId: string; clientName: string; companyId: string | null; companyName: string | null; suggestion: CompanySuggestion | null }[];
};

export type MemberView = {
  userId: string;
  email: string;
  name: string;
  role: string;
  active: boolean;
  member: string | null;
  updatedAt: string | null;
  updatedBy: string | null;
};

const SECRET_CONTEXT = 'psa-connection';
/** The addresses a PSA's secrets are sent to (directly, or via the zone Autotask's lookup names). */
const ADDRESS_FIELDS: Record<PsaKind, string[]> = { halopsa: ['authUrl', 'apiUrl'], connectwise: ['apiUrl'], autotask: ['zoneLookupUrl'] };
const SECRET_FIELDS: Record<PsaKind, string[]> = { halopsa: ['clientSecret'], connectwise: ['privateKey'], autotask: ['secret', 'integrationCode'] };
const FIELD_WORDS: Record<string, string> = {
  clientSecret: 'the client secret',
  privateKey: 'the private key',
  secret: 'the API user secret',
  integrationCode: 'the API tracking identifier (integration code)',
};

/** One printable line: identifiers and names go into PSA requests and audit details. */
function text(v: unknown, field: string, words: string, max = 200, required = true): string | null {
  const s = typeof v === 'string' ? v.trim() : '';
  if (!s) {
    if (required) throw badRequest(`${words} is required.`, { field });
    return null;
  }
  // eslint-disable-next-line no-control-regex
  if (s.length > max || /[\u0000-\u001f\u007f]/.test(s)) throw badRequest(`${words} must be one line of at most ${max} characters.`, { field });
  return s;
}

function url(v: unknown, name: string, field: string, words: string): string {
  const s = text(v, field, words, 500)!;
  try {
    return validPsaUrl(s, name, words);
  } catch (e) {
    if (e instanceof PsaError) throw badRequest(e.message, { field });
    throw e;
  }
}

function ids(v: unknown, field: string): number[] | undefined {
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || v.length === 0 || v.length > 20 || !v.every((n) => Number.isInteger(n) && n >= 0 && n < 1_000_000)) {
    throw badRequest(`${field} must be a list of the PSA's status numbers.`, { field });
  }
  return v as number[];
}

function int(v: unknown, field: string): number | undefined {
  if (v === undefined) return undefined;
  if (!Number.isInteger(v) || (v as number) < 0 || (v as number) >= 1_000_000) throw badRequest(`${field} must be a number the PSA uses.`, { field });
  return v as number;
}

/** The settings (not secret) and the secrets of an input, checked; secrets left out are absent. */
function parseInput(input: PsaConnectionInput): { kind: PsaKind; settings: Settings; secrets: Partial<Secrets> } {
  const name = PSA_NAMES[input.kind];
  const secret = (v: unknown, field: string) => text(v, field, FIELD_WORDS[field]!, 4000, false) ?? undefined;
  switch (input.kind) {
    case 'halopsa': {
      const base = url(input.url, name, 'url', 'the HaloPSA address');
      return {
        kind: 'halopsa',
        settings: {
          url: base,
          authUrl: url(input.authUrl ?? `${base}/auth`, name, 'authUrl', 'the authorisation server address'),
          apiUrl: url(input.apiUrl ?? `${base}/api`, name, 'apiUrl', 'the resource server (API) address'),
          clientId: text(input.clientId, 'clientId', 'The client ID of the HaloPSA API application'),
          tenant: text(input.tenant, 'tenant', 'The tenant', 100, false),
          closedStatusIds: ids(input.closedStatusIds, 'closedStatusIds') ?? null,
          closeStatusId: int(input.closeStatusId, 'closeStatusId') ?? null,
        },
        secrets: { clientSecret: secret(input.clientSecret, 'clientSecret') },
      };
    }
    case 'connectwise':
      return {
        kind: 'connectwise',
        settings: {
          apiUrl: url(input.apiUrl, name, 'apiUrl', 'the ConnectWise API address (site and codebase)'),
          companyId: text(input.companyId, 'companyId', 'The ConnectWise company ID (the one you sign in with)', 100),
          publicKey: text(input.publicKey, 'publicKey', "The API member's public key", 200),
          clientId: text(input.clientId, 'clientId', "The integration's clientId (from the ConnectWise developer portal)", 100),
          closeStatusName: text(input.closeStatusName, 'closeStatusName', 'The closing status', 100, false),
        },
        secrets: { privateKey: secret(input.privateKey, 'privateKey') },
      };
    case 'autotask':
      return {
        kind: 'autotask',
        settings: {
          zoneLookupUrl: input.zoneLookupUrl ? url(input.zoneLookupUrl, name, 'zoneLookupUrl', 'the zone lookup address') : null,
          userName: text(input.userName, 'userName', "The API user's user name", 200),
          closedStatusIds: ids(input.closedStatusIds, 'closedStatusIds') ?? null,
          closeStatusId: int(input.closeStatusId, 'closeStatusId') ?? null,
          newStatusId: int(input.newStatusId, 'newStatusId') ?? null,
          defaultPriority: int(input.defaultPriority, 'defaultPriority') ?? null,
          noteType: int(input.noteType, 'noteType') ?? null,
          notePublish: int(input.notePublish, 'notePublish') ?? null,
        },
        secrets: { secret: secret(input.secret, 'secret'), integrationCode: secret(input.integrationCode, 'integrationCode') },
      };
    default:
      throw badRequest('kind must be halopsa, connectwise or autotask.', { field: 'kind' });
  }
}

/** The client configuration of a stored connection (settings + opened secrets). */
function configOf(kind: PsaKind, s: Settings, secrets: Secrets): PsaConfig {
  const opt = <T>(v: unknown) => (v === null || v === undefined ? undefined : (v as T));
  switch (kind) {
    case 'halopsa':
      return {
        kind,
        authUrl: s.authUrl as string,
        apiUrl: s.apiUrl as string,
        clientId: s.clientId as string,
        clientSecret: secrets.clientSecret!,
        tenant: opt(s.tenant),
        closedStatusIds: opt(s.closedStatusIds),
        closeStatusId: opt(s.closeStatusId),
      };
    case 'connectwise':
      return {
        kind,
        apiUrl: s.apiUrl as string,
        companyId: s.companyId as string,
        publicKey: s.publicKey as string,
        privateKey: secrets.privateKey!,
        clientId: s.clientId as string,
        closeStatusName: opt(s.closeStatusName),
      };
    case 'autotask':
      return {
        kind,
        zoneLookupUrl: opt(s.zoneLookupUrl),
        userName: s.userName as string,
        secret: secrets.secret!,
        integrationCode: secrets.integrationCode!,
        closedStatusIds: opt(s.closedStatusIds),
        closeStatusId: opt(s.closeStatusId),
        newStatusId: opt(s.newStatusId),
        defaultPriority: opt(s.defaultPriority),
        noteType: opt(s.noteType),
        notePublish: opt(s.notePublish),
      };
  }
}

const parseJson = (s: string): Record<string, unknown> => {
  try {
    const v = JSON.parse(s) as unknown;
    return v && typeof v === 'object' ? (v as Record<string, unknown>) : {};
  } catch {
    return {};
  }
};

function connectionView(r: PsaConnectionTable): PsaConnectionView {
  const settings = parseJson(r.settings) as PsaConnectionView['settings'];
  return {
    kind: r.kind,
    name: PSA_NAMES[r.kind],
    settings,
    secretsSet: SECRET_FIELDS[r.kind],
    status: r.status,
    lastCheckedAt: r.last_checked_at,
    lastError: r.last_error,
    updatedAt: r.updated_at,
    updatedBy: r.updated_by_name,
  };
}

const settingsOf = (clientId: string, r: PsaClientSettingsTable | undefined): ClientPsaSettings => ({
  clientId,
  companyId: r?.company_id ?? null,
  companyName: r?.company_name ?? null,
  ticketPolicy: r?.ticket_policy ?? 'off',
  requireAssignee: !!r?.require_assignee,
});

/** A PSA failure (or an egress refusal) in Keywarden's words, never the PSA's own text. */
function psaProblem(e: unknown, name: string): string {
  if (e instanceof PsaError) return e.message;
  if (isEgressError(e)) return `${name} is not allowed by the egress policy: ${e.message}`;
  if (isAppError(e)) return e.message;
  return `${name} could not be reached.`;
}

/** Vault-wide PSA facts (the connection, every company, every person) are for principals with all clients. */
function requireAllClients(actor: Actor, message: string): void {
  if (clientScope(actor) !== null) throw forbidden(message);
}

type Deps = {
  tx: Transactions;
  repo: PsaRepo;
  keyring: Pick<Keyring<Executor>, 'secretCipher'>;
  audit: Pick<AuditService, 'record' | 'recordNow'>;
  clock: Clock;
  egress: EgressPolicy;
  stepUpMinutes: number;
  /** Tests: shorter timeouts and no real waiting between retries. */
  clientDeps?: Partial<PsaClientDeps>;
};

export function createPsaService({ tx, repo, keyring, audit, clock, egress, stepUpMinutes, clientDeps }: Deps) {
  const db = tx.reader;
  // One client per stored connection and purpose: its access token (Halo) and zone (Autotask) are reused.
  let cached: { key: string; active: ActivePsa } | null = null;
  let cachedInteractive: { key: string; active: ActivePsa } | null = null;

  async function openSecrets(exec: Executor, r: PsaConnectionTable): Promise<Secrets> {
    return parseJson((await keyring.secretCipher(exec)).open(SECRET_CONTEXT, r.secret_ciphertext)) as Secrets;
  }

  async function activeFrom(exec: Executor, r: PsaConnectionTable, purpose: 'interactive' | 'background' = 'background'): Promise<ActivePsa> {
    const key = `${r.kind}|${r.updated_at}`;
    const slot = purpose === 'interactive' ? cachedInteractive : cached;
    if (slot?.key === key) return slot.active;
    const config = configOf(r.kind, parseJson(r.settings), await openSecrets(exec, r));
    // A person on the phone waits for a ticket check: one retry, a short timeout, no long Retry-After waits.
    const tuning: Partial<PsaClientDeps> = purpose === 'interactive' ? { timeoutMs: 8000, maxRetries: 1, maxWaitMs: 3000 } : {};
    const client: PsaClient = createPsaClient(config, { egress, userAgent: 'Keywarden', ...tuning, ...clientDeps });
    const active = { kind: r.kind, name: PSA_NAMES[r.kind], client };
    if (purpose === 'interactive') cachedInteractive = { key, active };
    else cached = { key, active };
    return active;
  }

  async function requireActive(): Promise<ActivePsa> {
    const r = await repo.findConnection(db);
    if (!r) throw badRequest('No PSA is connected: an owner sets it up in Settings › PSA (or `keywarden psa set`).');
    return activeFrom(db, r, 'interactive');
  }

  /** Tests the connection and records the result; never throws for a PSA failure. */
  async function check(actor: Actor): Promise<PsaConnectionView> {
    const r = await repo.findConnection(db);
    if (!r) throw notFound('No PSA is connected.');
    const active = await activeFrom(db, r, 'interactive');
    let problem: string | null = null;
    try {
      await active.client.testConnection();
    } catch (e) {
      if (!(e instanceof PsaError) && !isEgressError(e)) throw e;
      problem = psaProblem(e, active.name);
    }
    const now = clock.now();
    await tx.run(async (t) => {
      await repo.setConnectionStatus(t, problem ? 'failing' : 'ok', now, problem);
      await audit.record(t, actor, {
        action: 'psa.test',
        outcome: problem ? 'failure' : 'success',
        targetType: 'psa_connection',
        targetId: PSA_CONNECTION_ID,
        details: { psa: active.name, ...(problem ? { problem } : {}) },
      });
    });
    return connectionView((await repo.findConnection(db))!);
  }

  /** The PSA's companies; a PSA that cannot answer is a 503 in plain words. */
  async function companiesOf(active: ActivePsa): Promise<PsaCompany[]> {
    try {
      return await active.client.listCompanies();
    } catch (e) {
      if (e instanceof PsaError && e.code === 'too_many') throw badRequest(e.message);
      if (e instanceof PsaError || isEgressError(e)) throw unavailable(`Could not read the companies from ${active.name}: ${psaProblem(e, active.name)}`);
      throw e;
    }
  }

  const access: PsaAccess = {
    async active(purpose) {
      const r = await repo.findConnection(db);
      return r ? activeFrom(db, r, purpose) : null;
    },
    clientSettings: async (exec, clientId) => settingsOf(clientId, await repo.clientSettings(exec, clientId)),
    linkedClients: async (exec) => (await repo.listClientSettings(exec)).filter((r) => r.company_id).map((r) => settingsOf(r.client_id, r)),
    memberOf: async (exec, userId) => (await repo.member(exec, userId))?.member ?? null,
  };

  return {
    access,

    async connection(actor: Actor): Promise<PsaConnectionView | null> {
      requirePermission(actor, 'integration:manage');
      requireAllClients(actor, 'The PSA connection serves every client: only someone with access to all clients can see it.');
      const r = await repo.findConnection(db);
      return r ? connectionView(r) : null;
    },

    /**
     * Sets the vault's PSA connection (owners, fresh second factor), then tests it. Secrets are
     * needed the first time and when the PSA changes; left out later, the stored ones are kept.
     * Changing to another PSA unlinks every client from its company (the ids belong to the old PSA).
     */
    async setConnection(actor: Actor, input: PsaConnectionInput): Promise<PsaConnectionView> {
      requirePermission(actor, 'settings:manage');
      requireFreshSecondFactor(actor, 'change security settings', clock.now(), stepUpMinutes);
      const parsed = parseInput(input);
      const existing = await repo.findConnection(db);
      const samePsa = existing?.kind === parsed.kind;
      // A stored secret goes only to the address it was entered for: pointing the connection elsewhere
      // without typing the secrets again would send them to a server of the editor's choosing.
      const oldSettings = samePsa ? parseJson(existing.settings) : {};
      const moved = samePsa && ADDRESS_FIELDS[parsed.kind].some((f) => (oldSettings[f] ?? null) !== (parsed.settings[f] ?? null));
      await tx.run(async (t) => {
        const before = samePsa && !moved ? await openSecrets(t, existing) : {};
        const secrets: Secrets = {};
        for (const f of SECRET_FIELDS[parsed.kind]) {
          const v = parsed.secrets[f] ?? before[f];
          if (!v && moved)
            throw badRequest(
              `${FIELD_WORDS[f]![0]!.toUpperCase()}${FIELD_WORDS[f]!.slice(1)} is required again when the ${PSA_NAMES[parsed.kind]} address changes: a stored secret is only sent to the address it was entered for.`,
              { field: f },
            );
          if (!v) throw badRequest(`${FIELD_WORDS[f]![0]!.toUpperCase()}${FIELD_WORDS[f]!.slice(1)} is required.`, { field: f });
          secrets[f] = v;
        }
        const now = clock.now();
        await repo.upsertConnection(t, {
          id: PSA_CONNECTION_ID,
          kind: parsed.kind,
          settings: JSON.stringify(parsed.settings),
          secret_ciphertext: (await keyring.secretCipher(t)).seal(SECRET_CONTEXT, JSON.stringify(secrets)),
          status: 'untested',
          last_checked_at: null,
          last_error: null,
          created_at: existing?.created_at ?? now,
          updated_at: now,
          updated_by_name: actor.name.slice(0, 200),
        });
        const changed = Object.keys(parsed.secrets).filter((f) => parsed.secrets[f]);
        if (existing && !samePsa) await repo.clearCompanies(t, now, actor.name.slice(0, 200));
        await audit.record(t, actor, {
          action: 'psa.connection',
          outcome: 'success',
          targetType: 'psa_connection',
          targetId: PSA_CONNECTION_ID,
          details: {
            psa: PSA_NAMES[parsed.kind],
            ...(existing && !samePsa ? { replaced: PSA_NAMES[existing.kind], companyLinksCleared: true } : {}),
            settings: parsed.settings,
            secretsChanged: changed,
          },
        });
      });
      return check(actor);
    },

    /** Tests the stored connection again (admins), recording the answer. */
    async test(actor: Actor): Promise<PsaConnectionView> {
      requirePermission(actor, 'integration:manage');
      requireAllClients(actor, 'The PSA connection serves every client: only someone with access to all clients can test it.');
      return check(actor);
    },

    /**
     * Removes the PSA connection (owners, fresh second factor): clients are unlinked from their
     * companies and their ticket policies go back to off, since no ticket can be checked any more.
     */
    async removeConnection(actor: Actor): Promise<{ removed: boolean; policiesTurnedOff: number }> {
      requirePermission(actor, 'settings:manage');
      requireFreshSecondFactor(actor, 'change security settings', clock.now(), stepUpMinutes);
      return tx.run(async (t) => {
        const existing = await repo.findConnection(t);
        if (!existing) return { removed: false, policiesTurnedOff: 0 };
        const now = clock.now();
        const off = (await repo.listClientSettings(t)).filter((r) => r.ticket_policy !== 'off').length;
        await repo.resetAllClients(t, now, actor.name.slice(0, 200));
        await repo.removeConnection(t);
        await audit.record(t, actor, {
          action: 'psa.connection',
          outcome: 'success',
          targetType: 'psa_connection',
          targetId: PSA_CONNECTION_ID,
          details: { removed: PSA_NAMES[existing.kind], ticketPoliciesTurnedOff: off },
        });
        cached = null;
        cachedInteractive = null;
        return { removed: true, policiesTurnedOff: off };
      });
    },

    /**
     * The PSA's companies and, for each client the actor manages, its link or the best match by name.
     * The company list spans every client of the MSP, so only a principal with all clients reads it.
     */
    async companies(actor: Actor): Promise<CompaniesView> {
      requirePermission(actor, 'integration:manage');
      requireAllClients(actor, "The PSA's company list covers every client: only someone with access to all clients can read it.");
      const active = await requireActive();
      const companies = await companiesOf(active);
      const settings = new Map((await repo.listClientSettings(db)).map((r) => [r.client_id, r]));
      const taken = new Set([...settings.values()].flatMap((r) => (r.company_id ? [r.company_id] : [])));
      const clients = await repo.clientNames(db);
      return {
        psa: active.name,
        companies,
        clients: clients.map((c) => {
          const s = settings.get(c.id);
          return {
            clientId: c.id,
            clientName: c.name,
            companyId: s?.company_id ?? null,
            companyName: s?.company_name ?? null,
            suggestion: s?.company_id ? null : suggestCompany(c.name, companies, taken),
          };
        }),
      };
    },

    /** A client's PSA company and ticket policy (anyone who may see the client). */
    async clientSettings(actor: Actor, clientId: string): Promise<ClientPsaView> {
      const client = await requireVisibleClient(db, actor, clientId);
      const r = await repo.clientSettings(db, client.id);
      return { ...settingsOf(client.id, r), clientName: client.name, updatedAt: r?.updated_at ?? null, updatedBy: r?.updated_by_name ?? null };
    },

    /**
     * Links a client to a PSA company and sets its ticket policy (integration:manage for the client,
     * fresh second factor). A company is checked against the PSA's list and may belong to one client
     * only; a policy other than off needs a linked company and a connected PSA.
     */
    async setClientSettings(
      actor: Actor,
      clientId: string,
      input: { companyId?: string | null; ticketPolicy?: TicketPolicy; requireAssignee?: boolean },
    ): Promise<ClientPsaView> {
      requirePermission(actor, 'integration:manage');
      requireFreshSecondFactor(actor, 'change security settings', clock.now(), stepUpMinutes);
      const client = await requireVisibleClient(db, actor, clientId, 'integration:manage');
      if (input.ticketPolicy !== undefined && !TICKET_POLICIES.includes(input.ticketPolicy)) {
        throw badRequest('ticketPolicy must be off, validate or required.', { field: 'ticketPolicy' });
      }
      const before = settingsOf(client.id, await repo.clientSettings(db, client.id));
      // Choosing a company means knowing the PSA's company list, which covers every client: a principal
      // limited to some clients would learn other customers' names (and could claim their company) by
      // trying ids. Unlinking, and the policy of a client already linked, stay theirs.
      if (typeof input.companyId === 'string' && input.companyId.trim() !== before.companyId) {
        requireAllClients(
          actor,
          "Linking a client to a PSA company takes the PSA's company list, which covers every client: ask someone with access to all clients to link it.",
        );
      }
      let companyId = before.companyId;
      let companyName = before.companyName;
      if (input.companyId !== undefined) {
        const wanted = input.companyId === null ? null : text(input.companyId, 'companyId', 'The PSA company', 100);
        if (wanted === null) {
          companyId = null;
          companyName = null;
        } else if (wanted !== before.companyId) {
          const active = await requireActive();
          const company = (await companiesOf(active)).find((c) => c.id === wanted);
          if (!company) throw badRequest(`${active.name} has no active company with id ${wanted}.`, { field: 'companyId' });
          companyId = company.id;
          companyName = company.name;
        }
      }
      const ticketPolicy = input.ticketPolicy ?? before.ticketPolicy;
      const requireAssignee = input.requireAssignee ?? before.requireAssignee;
      if (ticketPolicy !== 'off') {
        if (!companyId) throw badRequest('Link the client to its PSA company before its reveals need a ticket.', { field: 'companyId' });
        if (!(await repo.findConnection(db))) throw badRequest('No PSA is connected: an owner sets it up first.', { field: 'ticketPolicy' });
      }
      return tx.run(async (t) => {
        if (companyId && companyId !== before.companyId) {
          const holder = await repo.clientOfCompany(t, companyId);
          if (holder && holder.client_id !== client.id) {
            const other = (await repo.clientNames(t)).find((c) => c.id === holder.client_id);
            const visible = clientScope(actor) === null || clientScope(actor)!.includes(holder.client_id);
            throw conflict(
              `${companyName} is already linked to ${visible && other ? `client ${other.name}` : 'another client'}: a PSA company belongs to one client, so its tickets never unlock another client's keys.`,
            );
          }
        }
        const now = clock.now();
        await repo.upsertClientSettings(t, {
          client_id: client.id,
          company_id: companyId,
          company_name: companyName,
          ticket_policy: ticketPolicy,
          require_assignee: requireAssignee ? 1 : 0,
          updated_at: now,
          updated_by_name: actor.name.slice(0, 200),
        });
        await audit.record(t, actor, {
          action: 'psa.client',
          outcome: 'success',
          clientId: client.id,
          targetType: 'client',
          targetId: client.id,
          details: {
            company: companyId ? `${companyName} (${companyId})` : null,
            ...(companyId !== before.companyId ? { companyBefore: before.companyId ? `${before.companyName} (${before.companyId})` : null } : {}),
            ticketPolicy,
            ...(ticketPolicy !== before.ticketPolicy ? { ticketPolicyBefore: before.ticketPolicy } : {}),
            requireAssignee,
          },
        });
        const r = await repo.clientSettings(t, client.id);
        return { ...settingsOf(client.id, r), clientName: client.name, updatedAt: r?.updated_at ?? null, updatedBy: r?.updated_by_name ?? null };
      });
    },

    /** Every person and the PSA member linked to them (owners). */
    async members(actor: Actor): Promise<MemberView[]> {
      requirePermission(actor, 'user:manage');
      requireAllClients(actor, 'The list of PSA members covers everyone: only an owner of all clients can read it.');
      return (await repo.listMembers(db)).map((r) => ({
        userId: r.user_id,
        email: r.email,
        name: r.name,
        role: r.role,
        active: r.status === 'active',
        member: r.member ?? null,
        updatedAt: r.updated_at ?? null,
        updatedBy: r.updated_by_name ?? null,
      }));
    },

    /**
     * Links a person to their PSA identity (owners, fresh second factor): what "assigned to the
     * revealing technician" compares with a ticket's assignees. A person cannot set their own, or
     * they could claim any technician's tickets.
     */
    async setMember(actor: Actor, userId: string, member: string | null): Promise<MemberView> {
      requirePermission(actor, 'user:manage');
      requireAllClients(actor, 'Only an owner of all clients links people to PSA members.');
      requireFreshSecondFactor(actor, 'manage users', clock.now(), stepUpMinutes);
      const value = member === null ? null : text(member, 'member', 'The PSA member (agent id, member identifier, resource id or name)', 200);
      return tx.run(async (t) => {
        const row = (await repo.listMembers(t)).find((r) => r.user_id === userId);
        if (!row) throw notFound(`No user with id ${userId.slice(0, 60)}.`);
        const now = clock.now();
        if (value === null) await repo.removeMember(t, row.user_id);
        else await repo.upsertMember(t, { user_id: row.user_id, member: value, updated_at: now, updated_by_name: actor.name.slice(0, 200) });
        await audit.record(t, actor, {
          action: 'psa.member',
          outcome: 'success',
          targetType: 'user',
          targetId: row.user_id,
          details: { user: row.email, member: value, before: row.member ?? null },
        });
        return {
          userId: row.user_id,
          email: row.email,
          name: row.name,
          role: row.role,
          active: row.status === 'active',
          member: value,
          updatedAt: value === null ? null : now,
          updatedBy: value === null ? null : actor.name,
        };
      });
    },
  };
}
export type PsaService = ReturnType<typeof createPsaService>;
