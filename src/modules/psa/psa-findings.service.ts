import type { Executor } from '../../db/database.js';
import { lockKey } from '../../db/locks.js';
import type { PsaFindingTicketsTable, PsaTicketRulesTable } from '../../db/schema.js';
import type { Transactions } from '../../db/transactions.js';
import type { Finding } from '../../domain/compliance/evaluate.js';
import {
  DEFAULT_TICKET_CODES,
  TICKET_CODES,
  clearedNote,
  clientFindingTicketText,
  digestTicketText,
  findingTicketText,
  isClientTicketCode,
  ticketCodeTitle,
  type ClearedWhy,
  type DeviceTicketCode,
  type TicketCode,
  type TicketItem,
} from '../../domain/compliance/finding-tickets.js';
import type { PostureNote } from '../../domain/compliance/tenant-posture.js';
import { PsaError, type PsaClient } from '../../integrations/psa/index.js';
import type { Clock } from '../../lib/clock.js';
import { badRequest, conflict } from '../../lib/errors.js';
import { newId } from '../../lib/ids.js';
import { systemActor, type Actor } from '../authz/authz.js';
import type { AuditService } from '../audit/audit.service.js';
import type { TenantPostureStore } from '../graph/posture.js';
import { requireVisibleClient } from '../clients/visible-client.js';
import type { Notifier } from '../notifications/notifier.js';
import type { ActivePsa, PsaAccess } from './psa.access.js';
import type { PsaFindingsRepo } from './psa-findings.repo.js';

/** How long a run holds the client's lease without renewing it (renewed after every ticket written). */
const LEASE_MINUTES = 10;
/** A ticket someone closed in the PSA while its finding persists holds back a new one this long. */
export const REOPEN_AFTER_DAYS = 7;
/** How often an open ticket is read back from the PSA to notice that someone closed it there. */
export const CHECK_EVERY_HOURS = 24;
/** Rotate jobs older than this are not looked at (a failure that old has had its ticket long ago). */
const ROTATION_WINDOW_DAYS = 30;
/** Default of "switch to one digest ticket when more than N tickets would open in one run". */
export const DEFAULT_DIGEST_THRESHOLD = 10;
const LIST_LIMIT = 500;

type Deps = {
  tx: Transactions;
  repo: PsaFindingsRepo;
  psa: PsaAccess;
  /** The client's tenant posture and its client-level notes (owned by the graph module). */
  posture: Pick<TenantPostureStore, 'list'>;
  audit: Pick<AuditService, 'record'>;
  notifier: Notifier;
  clock: Clock;
  /** KEYWARDEN_PUBLIC_URL: tickets link to the device page when it is set. */
  publicUrl: string | null;
  /** This process (host:pid:random); each run adds its own id to it for the lease. */
  owner: string;
};

export type TicketRulesView = {
  clientId: string;
  enabled: boolean;
  codes: TicketCode[];
  priority: string | null;
  queue: string | null;
  digest: boolean;
  digestThreshold: number;
  updatedAt: string | null;
  updatedBy: string | null;
  lastRunAt: string | null;
  /** Since when runs fail (the PSA unreachable, credentials revoked…); null when the last run worked. */
  failingSince: string | null;
  lastError: string | null;
};

export type TicketRulesInput = {
  enabled: boolean;
  codes: TicketCode[];
  priority?: string | null;
  queue?: string | null;
  digest?: boolean;
  digestThreshold?: number;
};

export type FindingTicketView = {
  id: string;
  ticketId: string;
  ticketNumber: string;
  digest: boolean;
  /** null: a client-level finding (about the client's Microsoft 365 tenant). */
  device: { id: string; name: string } | null;
  code: TicketCode;
  finding: string;
  state: 'open' | 'closed' | 'closed_in_psa';
  openedAt: string;
  updatedAt: string;
  closedAt: string | null;
  closedReason: string | null;
};

export type TicketRunResult = {
  clientId: string;
  /** done: the run went through; skipped: nothing to do (no rules, not linked, no PSA); busy: another run holds the client; failed: the PSA failed, the rest waits for the next run. */
  status: 'done' | 'skipped' | 'busy' | 'failed';
  message: string;
  opened: number;
  updated: number;
  closed: number;
  /** A digest ticket was opened (digest mode, or more new findings than the threshold). */
  digest: boolean;
};

const keyOf = (deviceId: string, code: string) => `${deviceId}|${code}`;
/** The open_key of a client-level finding: one per client and code. */
const clientKeyOf = (code: string) => `client|${code}`;
const rowKey = (r: Pick<PsaFindingTicketsTable, 'device_id' | 'code'>) => (r.device_id === null ? clientKeyOf(r.code) : keyOf(r.device_id, r.code));
/** Audit details: the devices a ticket is about, or that it is about the client's tenant. */
const devicesOf = (rows: Pick<PsaFindingTicketsTable, 'device_name'>[]) =>
  rows.some((r) => r.device_name === null) ? { about: "the client's Microsoft 365 tenant" } : { devices: [...new Set(rows.map((r) => r.device_name))] };
const plus = (iso: string, ms: number) => new Date(Date.parse(iso) + ms).toISOString();
const HOUR = 3600_000;
const DAY = 24 * HOUR;

function parseCodes(json: string): TicketCode[] {
  const known = new Set<string>(TICKET_CODES);
  const list = JSON.parse(json) as unknown;
  return Array.isArray(list) ? (list.filter((c) => typeof c === 'string' && known.has(c)) as TicketCode[]) : [];
}

/** A PSA answer that says the ticket no longer exists (deleted there): treated like a ticket closed in the PSA. */
const ticketGone = (e: unknown) => e instanceof PsaError && e.code === 'not_found';

/**
 * Findings → PSA tickets (issue 21, item 3). Per client: rules say which findings open tickets;
 * a run turns the client's current findings into tickets (one per device and finding code, or one
 * digest), updates them when what they say changed, and closes them with a note when the finding
 * clears. Invariants and the decisions behind them: README.md in this folder.
 *
 * Network calls happen outside transactions: each PSA call is followed by a short transaction that
 * records its result (row, audit event, lease renewal), so a run stopped by a PSA failure keeps
 * everything done so far and the next run continues from there.
 */
export function createPsaFindings({ tx: transactions, repo, psa, posture, audit, clock, notifier, publicUrl, owner }: Deps) {
  const reader = transactions.reader;

  const view = (clientId: string, row: PsaTicketRulesTable | undefined): TicketRulesView => ({
    clientId,
    enabled: row ? row.enabled === 1 : false,
    codes: row ? parseCodes(row.codes) : [...DEFAULT_TICKET_CODES],
    priority: row?.priority ?? null,
    queue: row?.queue ?? null,
    digest: row ? row.digest === 1 : false,
    digestThreshold: row?.digest_threshold ?? DEFAULT_DIGEST_THRESHOLD,
    updatedAt: row?.updated_at ?? null,
    updatedBy: row?.updated_by_name ?? null,
    lastRunAt: row?.last_run_at ?? null,
    failingSince: row?.failing_since ?? null,
    lastError: row?.last_error ?? null,
  });

  /** Priority and queue as the connected PSA needs them; checked when a PSA is configured. */
  function checkForPsa(active: ActivePsa | null, priority: string | null, queue: string | null): void {
    if (!active) return;
    if (priority !== null && !/^\d+$/.test(priority))
      throw badRequest(
        `${active.name} needs the priority's id (a number, e.g. 2), not "${priority.slice(0, 40)}". Look it up in ${active.name}'s priority list.`,
      );
    if (queue !== null && active.kind === 'autotask' && !/^\d+$/.test(queue))
      throw badRequest(`Autotask needs the queue's id (a number, e.g. 29683354), not "${queue.slice(0, 40)}". Look it up under Admin → Queues.`);
  }

  /**
   * What should have a ticket now: every device finding and failed rotation the rules cover, and
   * the client-level notes about its tenant (keyed by rowKey). `tenantKnown`: Keywarden holds the
   * client's tenant posture (it has an Entra ID connection that synced).
   */
  async function currentItems(clientId: string, codes: ReadonlySet<TicketCode>, now: string) {
    const wanted = new Map<string, TicketItem>();
    const clientNotes = new Map<string, PostureNote>();
    let tenantKnown = false;
    if ([...codes].some(isClientTicketCode)) {
      // The system's own run: the client was chosen by the caller, so no actor scope narrows it here.
      const [view] = await posture.list(reader, [clientId], clientId);
      tenantKnown = !!view;
      for (const note of view?.notes ?? []) if (codes.has(note.code)) clientNotes.set(clientKeyOf(note.code), note);
    }
    const present = new Set<string>();
    const add = (deviceId: string, deviceName: string, code: DeviceTicketCode, detail: string) => {
      const k = keyOf(deviceId, code);
      const item: TicketItem = wanted.get(k) ?? { deviceId, deviceName, code, details: [] };
      if (!item.details.includes(detail)) item.details.push(detail);
      wanted.set(k, item);
    };
    for (const r of await repo.currentEvaluations(reader, clientId)) {
      present.add(r.device_id);
      // An exempt device is "known and fine" for tickets: its findings close theirs.
      if (r.status === 'exempt') continue;
      for (const f of JSON.parse(r.findings) as Finding[]) if (codes.has(f.code)) add(r.device_id, r.name, f.code, f.detail);
    }
    if (codes.has('rotation_failed')) {
      // The latest finished rotation of each drive decides: failed or expired opens (keeps) a ticket, a success clears it.
      const latest = new Map<
        string,
        { device_id: string; name: string; mount_point: string | null; state: string; finished_at: string | null; created_at: string }
      >();
      for (const j of await repo.finishedRotations(reader, clientId, plus(now, -ROTATION_WINDOW_DAYS * DAY))) {
        present.add(j.device_id);
        latest.set(`${j.device_id}|${j.mount_point ?? ''}`, j);
      }
      for (const j of latest.values())
        if (j.state === 'failed' || j.state === 'expired')
          add(
            j.device_id,
            j.name,
            'rotation_failed',
            `${j.mount_point ?? 'A drive'}: the rotation ${j.state === 'expired' ? 'was not done in time' : 'failed'} (${(j.finished_at ?? j.created_at).slice(0, 10)})`,
          );
    }
    return { wanted, clientNotes, tenantKnown, present };
  }

  /** One run for one client, holding its lease. Throws the PsaError that stopped it (after recording what was done). */
  async function work(clientId: string, rules: PsaTicketRulesTable, active: ActivePsa, companyId: string, runOwner: string, out: TicketRunResult) {
    const client: PsaClient = active.client;
    const now = clock.now();
    const clientName = (await repo.clientName(reader, clientId)) ?? 'this client';
    const codes = new Set<TicketCode>(rules.enabled === 1 ? parseCodes(rules.codes) : []);
    const { wanted, clientNotes, tenantKnown, present } = await currentItems(clientId, codes, now);
    const isWanted = (r: PsaFindingTicketsTable) => (r.device_id === null ? clientNotes.has(rowKey(r)) : wanted.has(rowKey(r)));
    const tenantOf = `the Microsoft 365 tenant of ${clientName}`;
    const covering = await repo.coveringRows(reader, clientId, plus(now, -REOPEN_AFTER_DAYS * DAY));
    const actor = systemActor('psa-tickets');
    const record = (work: (t: Executor) => Promise<void>) =>
      transactions.run(async (t) => {
        await work(t);
        await repo.renewRun(t, clientId, runOwner, plus(clock.now(), LEASE_MINUTES * 60_000));
      });

    // Open rows grouped by their PSA ticket (a digest ticket covers several).
    const groups = new Map<string, PsaFindingTicketsTable[]>();
    const covered = new Set<string>();
    for (const r of covering) {
      covered.add(rowKey(r));
      if (r.state !== 'open') continue;
      const g = groups.get(r.psa_ticket_id) ?? [];
      g.push(r);
      groups.set(r.psa_ticket_id, g);
    }

    const closedInPsa = async (rows: PsaFindingTicketsTable[], how: string) => {
      const at = clock.now();
      await record(async (t) => {
        await repo.updateRows(
          t,
          clientId,
          rows.map((r) => r.id),
          { state: 'closed_in_psa', open_key: null, closed_at: at, closed_reason: how, checked_at: at },
        );
        await audit.record(t, actor, {
          action: 'psa.ticket_closed',
          outcome: 'success',
          clientId,
          targetType: 'psa_ticket',
          targetId: rows[0]!.psa_ticket_id,
          details: {
            psa: active.name,
            ticket: rows[0]!.psa_ticket_number,
            closedIn: 'psa',
            how,
            ...devicesOf(rows),
            findings: rows.map((r) => r.code),
          },
        });
      });
    };

    for (const [ticketId, rows] of groups) {
      const first = rows[0]!;
      const still = rows.filter(isWanted);
      const gone = rows.filter((r) => !isWanted(r));
      const why = (r: PsaFindingTicketsTable): ClearedWhy =>
        !codes.has(r.code as TicketCode)
          ? 'rule_off'
          : r.device_id === null
            ? tenantKnown
              ? 'cleared'
              : 'tenant_gone'
            : present.has(r.device_id)
              ? 'cleared'
              : 'device_gone';
      /** Rows whose finding cleared (or that no rule covers any more): closed, their open key freed. */
      const closeRows = async (t: Executor, closing: PsaFindingTicketsTable[], at: string) => {
        for (const r of closing)
          await repo.updateRows(t, clientId, [r.id], { state: 'closed', open_key: null, closed_at: at, closed_reason: why(r), updated_at: at });
      };

      // Someone may have closed (or deleted) the ticket in the PSA: read it back now and then.
      if (still.length && rows.some((r) => r.checked_at < plus(now, -CHECK_EVERY_HOURS * HOUR))) {
        const t = await client.getTicket(ticketId);
        if (!t || !t.open) {
          await closedInPsa(rows, t ? `closed in ${active.name} (status ${t.statusName})` : `deleted in ${active.name}`);
          continue;
        }
        await record((x) =>
          repo.updateRows(
            x,
            clientId,
            rows.map((r) => r.id),
            { checked_at: clock.now() },
          ),
        );
      }

      if (still.length === 0) {
        const at = clock.now();
        const note =
          rows.length === 1
            ? clearedNote(why(first), at, first.device_name ?? (why(first) === 'tenant_gone' ? clientName : tenantOf))
            : `Cleared in Keywarden on ${at.slice(0, 10)}: all ${rows.length} findings of this ticket cleared. Closed automatically.`;
        try {
          await client.closeTicket(ticketId, note);
        } catch (e) {
          if (!ticketGone(e)) throw e;
        }
        await record(async (t) => {
          await closeRows(t, rows, at);
          await audit.record(t, actor, {
            action: 'psa.ticket_closed',
            outcome: 'success',
            clientId,
            targetType: 'psa_ticket',
            targetId: ticketId,
            details: {
              psa: active.name,
              ticket: first.psa_ticket_number,
              why: [...new Set(rows.map(why))],
              ...devicesOf(rows),
              findings: rows.map((r) => r.code),
            },
          });
        });
        out.closed++;
        continue;
      }

      const text =
        first.device_id === null
          ? clientFindingTicketText(clientNotes.get(rowKey(first))!, { id: clientId, name: clientName }, publicUrl)
          : first.digest === 1
            ? digestTicketText(
                still.map((r) => wanted.get(rowKey(r))!),
                clientName,
                publicUrl,
              )
            : findingTicketText(wanted.get(rowKey(first))!, clientName, publicUrl);
      const textChanged = text.title !== first.title || text.body !== first.body || gone.length > 0;
      // A rule's new priority reaches its open tickets once: each row stores the priority last
      // written. A rule set back to "the PSA's default" leaves them as they are (there is no
      // default to write back).
      const priority = rules.priority !== null && still.some((r) => r.priority !== rules.priority) ? rules.priority : null;
      if (!textChanged && priority === null) continue;
      try {
        await client.updateTicket(ticketId, {
          ...(textChanged ? { title: text.title, description: text.body } : {}),
          ...(priority !== null ? { priority } : {}),
        });
      } catch (e) {
        if (!ticketGone(e)) throw e;
        await closedInPsa(rows, `deleted in ${active.name}`);
        continue;
      }
      const at = clock.now();
      await record(async (t) => {
        await repo.updateRows(
          t,
          clientId,
          still.map((r) => r.id),
          { title: text.title, body: text.body, updated_at: at, ...(priority !== null ? { priority } : {}) },
        );
        await closeRows(t, gone, at);
        await audit.record(t, actor, {
          action: 'psa.ticket_updated',
          outcome: 'success',
          clientId,
          targetType: 'psa_ticket',
          targetId: ticketId,
          details: {
            psa: active.name,
            ticket: first.psa_ticket_number,
            findings: still.map((r) => r.code),
            ...(priority !== null ? { priority } : {}),
            ...(gone.length ? { cleared: gone.map((r) => `${r.device_name ?? tenantOf}: ${r.code}`) } : {}),
          },
        });
      });
      out.updated++;
    }

    // New findings: one ticket each, or one digest for all the device findings. A client-level
    // finding always gets a ticket of its own: a digest lists devices, and a tenant setting is no device's.
    type NewTicket = { items: TicketItem[]; digest: boolean; note: null } | { items: []; digest: false; note: PostureNote };
    const fresh = [...wanted.entries()].filter(([k]) => !covered.has(k)).map(([, v]) => v);
    const digest = fresh.length > 0 && (rules.digest === 1 || fresh.length > rules.digest_threshold);
    if (digest) out.digest = true;
    const batches: NewTicket[] = [
      ...(digest ? [{ items: fresh, digest: true as const, note: null }] : fresh.map((i) => ({ items: [i], digest: false as const, note: null }))),
      ...[...clientNotes.entries()].filter(([k]) => !covered.has(k)).map(([, note]) => ({ items: [] as [], digest: false as const, note })),
    ];
    for (const batch of batches) {
      const text = batch.note
        ? clientFindingTicketText(batch.note, { id: clientId, name: clientName }, publicUrl)
        : batch.digest
          ? digestTicketText(batch.items, clientName, publicUrl)
          : findingTicketText(batch.items[0]!, clientName, publicUrl);
      const ticketId = await client.createTicket({
        companyId,
        title: text.title,
        description: text.body,
        ...(rules.priority ? { priority: rules.priority } : {}),
        ...(rules.queue ? { queue: rules.queue } : {}),
      });
      // The number a technician sees (Autotask's T2025…); the id when the PSA cannot tell right away.
      const number = await client
        .getTicket(ticketId)
        .then((t) => t?.number ?? ticketId)
        .catch(() => ticketId);
      const at = clock.now();
      const row = (deviceId: string | null, deviceName: string | null, code: string): PsaFindingTicketsTable => ({
        id: newId(),
        client_id: clientId,
        device_id: deviceId,
        device_name: deviceName,
        code,
        open_key: deviceId === null ? clientKeyOf(code) : keyOf(deviceId, code),
        psa_kind: active.kind,
        psa_ticket_id: ticketId,
        psa_ticket_number: number,
        digest: batch.digest ? 1 : 0,
        state: 'open',
        title: text.title,
        body: text.body,
        opened_at: at,
        updated_at: at,
        checked_at: at,
        closed_at: null,
        closed_reason: null,
        priority: rules.priority,
      });
      const rows = batch.note ? [row(null, null, batch.note.code)] : batch.items.map((i) => row(i.deviceId, i.deviceName, i.code));
      await record(async (t) => {
        await repo.insertRows(t, rows);
        await audit.record(t, actor, {
          action: 'psa.ticket_opened',
          outcome: 'success',
          clientId,
          targetType: 'psa_ticket',
          targetId: ticketId,
          details: {
            psa: active.name,
            ticket: number,
            digest: batch.digest,
            ...devicesOf(rows),
            findings: rows.map((r) => r.code),
            ...(rules.priority ? { priority: rules.priority } : {}),
            ...(rules.queue ? { queue: rules.queue } : {}),
          },
        });
      });
      out.opened++;
    }
  }

  async function runClient(clientId: string): Promise<TicketRunResult> {
    const out: TicketRunResult = { clientId, status: 'skipped', message: '', opened: 0, updated: 0, closed: 0, digest: false };
    const rules = await repo.findRules(reader, clientId);
    if (!rules) return { ...out, message: 'This client has no ticket rules yet: set them first.' };
    const settings = await psa.clientSettings(reader, clientId);
    if (!settings.companyId) return { ...out, message: 'This client is not linked to a PSA company: link it in the client’s PSA settings first.' };
    const active = await psa.active();
    if (!active) return { ...out, message: 'No PSA connection is configured: set one up under Settings → PSA first.' };

    const runOwner = `${owner}:${newId()}`;
    const started = clock.now();
    const claimed = await transactions.run(async (t) => {
      // Serialises the claim per client on PostgreSQL; the conditional UPDATE decides on both engines.
      await lockKey(t, 'psa-tickets', clientId);
      return repo.claimRun(t, clientId, runOwner, started, plus(started, LEASE_MINUTES * 60_000));
    });
    if (!claimed) return { ...out, status: 'busy', message: 'Another ticket run for this client is in progress; try again when it is done.' };

    try {
      await work(clientId, rules, active, settings.companyId, runOwner, out);
    } catch (e) {
      const message = e instanceof PsaError ? e.message : `Keywarden could not finish the ticket run: ${(e as Error).message}`;
      const at = clock.now();
      await transactions.run(async (t) => {
        await repo.finishRun(t, clientId, runOwner, { last_run_at: at, failing_since: rules.failing_since ?? at, last_error: message.slice(0, 500) });
        // A PSA that stays down is told once (when runs start failing), not every 15 minutes.
        if (rules.failing_since) return;
        const clientName = (await repo.clientName(t, clientId)) ?? clientId;
        await audit.record(t, systemActor('psa-tickets'), {
          action: 'psa.ticket_sync_failed',
          outcome: 'failure',
          clientId,
          targetType: 'client',
          targetId: clientId,
          details: { psa: active.name, error: message, opened: out.opened, updated: out.updated, closed: out.closed },
        });
        await notifier.emit(t, {
          type: 'psa.ticket_sync_failed',
          clientId,
          subject: `Keywarden could not update ${active.name} tickets for ${clientName}`,
          details: { client: clientName, psa: active.name, error: message },
          dedupKey: `psa.ticket_sync_failed:${clientId}:${at}`,
          occurredAt: at,
        });
      });
      if (!(e instanceof PsaError)) throw e;
      return { ...out, status: 'failed', message: `${message} What was done so far is kept; the next run continues.` };
    }
    await transactions.run((t) => repo.finishRun(t, clientId, runOwner, { last_run_at: clock.now(), failing_since: null, last_error: null }));
    const parts = [`${out.opened} opened`, `${out.updated} updated`, `${out.closed} closed`];
    return { ...out, status: 'done', message: `Tickets in ${active.name}: ${parts.join(', ')}${out.digest ? ' (as one digest ticket)' : ''}.` };
  }

  return {
    async getRules(actor: Actor, clientId: string): Promise<TicketRulesView> {
      const c = await requireVisibleClient(reader, actor, clientId, 'integration:manage');
      return view(c.id, await repo.findRules(reader, c.id));
    },

    async setRules(actor: Actor, clientId: string, input: TicketRulesInput): Promise<TicketRulesView> {
      const c = await requireVisibleClient(reader, actor, clientId, 'integration:manage');
      const codes = [...new Set(input.codes)];
      // The HTTP route's schema knows the codes; the CLI passes what was typed: an unknown code is an error, never dropped.
      const unknown = codes.filter((k) => !TICKET_CODES.includes(k));
      if (unknown.length) {
        throw badRequest(
          `Unknown finding code${unknown.length === 1 ? '' : 's'}: ${unknown
            .slice(0, 5)
            .map((k) => String(k).slice(0, 60))
            .join(', ')}. Known: ${TICKET_CODES.join(', ')}.`,
          {
            field: 'codes',
          },
        );
      }
      if (input.enabled && codes.length === 0) throw badRequest('Choose at least one finding that opens a ticket, or switch the rules off.');
      const clean = (s: string | null | undefined) => (s == null || s.trim() === '' ? null : s.trim());
      const priority = clean(input.priority);
      const queue = clean(input.queue);
      checkForPsa(await psa.active(), priority, queue);
      const before = await repo.findRules(reader, c.id);
      const row = {
        client_id: c.id,
        enabled: input.enabled ? 1 : 0,
        codes: JSON.stringify(TICKET_CODES.filter((k) => codes.includes(k))),
        priority,
        queue,
        digest: (input.digest ?? before?.digest === 1) ? 1 : 0,
        digest_threshold: input.digestThreshold ?? before?.digest_threshold ?? DEFAULT_DIGEST_THRESHOLD,
        updated_at: clock.now(),
        updated_by_name: actor.name,
      };
      await transactions.run(async (t) => {
        await repo.upsertRules(t, row);
        await audit.record(t, actor, {
          action: 'psa.ticket_rules',
          outcome: 'success',
          clientId: c.id,
          targetType: 'client',
          targetId: c.id,
          details: {
            enabled: input.enabled,
            findings: JSON.parse(row.codes) as string[],
            priority,
            queue,
            digest: row.digest === 1,
            digestThreshold: row.digest_threshold,
          },
        });
      });
      return view(c.id, await repo.findRules(reader, c.id));
    },

    async listTickets(actor: Actor, clientId: string): Promise<FindingTicketView[]> {
      const c = await requireVisibleClient(reader, actor, clientId, 'client:read');
      const rows = await repo.listRows(reader, c.id, LIST_LIMIT);
      const order = { open: 0, closed_in_psa: 1, closed: 2 } as Record<string, number>;
      return rows
        .map((r) => ({
          id: r.id,
          ticketId: r.psa_ticket_id,
          ticketNumber: r.psa_ticket_number,
          digest: r.digest === 1,
          device: r.device_id === null ? null : { id: r.device_id, name: r.device_name ?? '' },
          code: r.code as TicketCode,
          finding: ticketCodeTitle(r.code as TicketCode),
          state: r.state as FindingTicketView['state'],
          openedAt: r.opened_at,
          updatedAt: r.updated_at,
          closedAt: r.closed_at,
          closedReason: r.closed_reason,
        }))
        .sort((a, b) => (order[a.state] ?? 3) - (order[b.state] ?? 3));
    },

    /** "Run now" (integration:manage): answers what happened; another run in progress is a conflict. */
    async runNow(actor: Actor, clientId: string): Promise<TicketRunResult> {
      const c = await requireVisibleClient(reader, actor, clientId, 'integration:manage');
      const r = await runClient(c.id);
      if (r.status === 'busy') throw conflict(r.message);
      return r;
    },

    /** Every linked client with rules, as the scheduler's system actor (every 15 minutes, and after the hourly evaluation). */
    async runAll(): Promise<TicketRunResult[]> {
      const results: TicketRunResult[] = [];
      for (const s of await psa.linkedClients(reader)) if (await repo.findRules(reader, s.clientId)) results.push(await runClient(s.clientId));
      return results;
    },

    runClient,
  };
}
export type PsaFindings = ReturnType<typeof createPsaFindings>;
