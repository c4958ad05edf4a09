import type { Executor } from '../../db/database.js';
import { atCommit, type Transactions } from '../../db/transactions.js';
import type { AuditEventsTable } from '../../db/schema.js';
import type { Clock } from '../../lib/clock.js';
import { newId } from '../../lib/ids.js';
import type { AuditMac, Keyring } from '../../crypto/keyring.js';
import { badRequest, forbidden } from '../../lib/errors.js';
import { parseKeyIdQuery } from '../../domain/key-id.js';
import { ok, type Result } from '../../domain/result.js';
import { requirePermission, type Actor, clientScope } from '../authz/authz.js';
import { GENESIS_HASH, type AuditFilter, type AuditListFilter, type AuditMatch, type AuditRepo } from './audit.repo.js';
import type { AuditEvent, AuditEventInput, VerifyResult } from './audit.types.js';
import type { Notifier } from '../notifications/notifier.js';
import { AUDIT_ACTIONS, actionLabel, actorLabel, detailFields, deviceOf, keyIdOf, reasonLabel } from './audit.labels.js';

/**
 * The audit log is append-only and hash-chained: each row stores the previous row's hash and
 * its own, an HMAC (keyed by the vault's audit data key) over the previous hash and the row's
 * fields. Changing, deleting or reordering a row breaks the chain at that row; deleting the
 * newest rows is caught by the audit_head row, which records the tip.
 */

/** An event as recorded, before the chain gives it its sequence number and hashes. */
type PendingRow = Omit<AuditEventsTable, 'seq' | 'prev_hash' | 'hash'>;

/** The exact bytes the MAC covers. Field order is fixed forever; add new fields at the end. */
export function canonicalPayload(r: Omit<AuditEventsTable, 'prev_hash' | 'hash'>): string {
  return JSON.stringify([
    r.seq,
    r.id,
    r.occurred_at,
    r.actor_type,
    r.actor_id,
    r.actor_name,
    r.action,
    r.client_id,
    r.target_type,
    r.target_id,
    r.reason_code,
    r.ticket,
    r.outcome,
    r.ip,
    r.user_agent,
    r.details,
  ]);
}

export function toAuditEvent(r: AuditEventsTable): AuditEvent {
  let details: Record<string, unknown> | null = null;
  if (r.details) {
    try {
      details = JSON.parse(r.details) as Record<string, unknown>;
    } catch {
      details = { unparseable: true };
    }
  }
  return {
    seq: r.seq,
    id: r.id,
    occurredAt: r.occurred_at,
    actorType: r.actor_type,
    actorId: r.actor_id,
    actorName: r.actor_name,
    action: r.action,
    clientId: r.client_id,
    targetType: r.target_type,
    targetId: r.target_id,
    reasonCode: r.reason_code,
    ticket: r.ticket,
    outcome: r.outcome,
    ip: r.ip,
    userAgent: r.user_agent,
    details,
    actor: actorLabel(r.actor_type, r.actor_id, r.actor_name),
    actionLabel: actionLabel(r.action),
    reasonLabel: reasonLabel(r.reason_code),
    device: deviceOf(details),
    keyId: keyIdOf(details),
    detailFields: detailFields(details, r.target_id),
  };
}

/** A key ID as typed or read out on the phone: spaces are dropped, braces and case do not matter. */
function keyIdTerm(typed: string): Result<string> {
  const q = parseKeyIdQuery(typed.replace(/\s+/g, ''));
  if (!q.ok) return q;
  if (q.value.kind === 'full') return ok(q.value.keyId);
  const p = q.value.prefix;
  // Canonical IDs are hyphenated after digits 8, 12, 16 and 20; a prefix is spelled the same way.
  return ok([p.slice(0, 8), p.slice(8, 12), p.slice(12, 16), p.slice(16, 20), p.slice(20)].filter((x) => x !== '').join('-'));
}

const TERM_MAX = 200;

/**
 * The filter as the repository reads it: times as stored (UTC ISO text; bounds given with another
 * offset are turned into the same form) and the search terms parsed. A key ID that cannot be one is
 * refused with the reason; in the one search box such text is simply not treated as a key ID.
 */
function toListFilter(f: AuditFilter): AuditListFilter {
  const { keyId, device, ticket, search, ...rest } = f;
  const at = (v?: string) => (v === undefined ? undefined : Number.isNaN(Date.parse(v)) ? v : new Date(v).toISOString());
  const text = (v: string | undefined, what: string) => {
    const t = v?.trim() ?? '';
    if ([...t].length > TERM_MAX) throw badRequest(`The ${what} to search for is longer than ${TERM_MAX} characters.`);
    return t || undefined;
  };
  const all: AuditMatch = {};
  const k = text(keyId, 'key ID');
  if (k) {
    const id = keyIdTerm(k);
    if (!id.ok) throw badRequest(`Key ID "${k.slice(0, 60)}": ${id.reason}.`, { field: 'keyId' });
    all.keyId = id.value;
  }
  all.device = text(device, 'device name');
  all.ticket = text(ticket, 'ticket');
  const s = text(search, 'text');
  let any: AuditMatch | undefined;
  if (s) {
    const id = keyIdTerm(s);
    any = { device: s, ticket: s, ...(id.ok ? { keyId: id.value } : {}) };
  }
  return { ...rest, from: at(f.from), to: at(f.to), ...(all.keyId || all.device || all.ticket ? { all } : {}), ...(any ? { any } : {}) };
}

type Deps = { tx: Transactions; repo: AuditRepo; keyring: Pick<Keyring<Executor>, 'auditMac'>; clock: Clock; notifier?: Notifier };

export function createAuditService({ tx: transactions, repo, keyring, clock, notifier }: Deps) {
  const reader = transactions.reader;
  let macCache: AuditMac | undefined;
  const mac = async (exec: Executor) => (macCache ??= await keyring.auditMac(exec));

  /** Events recorded in a PostgreSQL transaction and not yet written (see `record`). */
  const pending = new WeakMap<Executor, PendingRow[]>();

  /** Chains and writes events in the order they were recorded: one head claim for all of them. */
  const appendRows = async (exec: Executor, rows: PendingRow[]): Promise<void> => {
    if (rows.length === 0) return;
    const m = await mac(exec);
    const batch = rows.splice(0, rows.length);
    const { seq: first, prevHash } = await repo.claimNext(exec, batch.length);
    let prev = prevHash;
    const chained = batch.map((r, i) => {
      const fields = { seq: first + i, ...r };
      const hash = m.mac(prev, canonicalPayload(fields));
      const row = { ...fields, prev_hash: prev, hash };
      prev = hash;
      return row;
    });
    await repo.append(exec, chained);
  };

  return {
    /**
     * Appends one event inside the caller's transaction, so the event commits or rolls back
     * with the change it describes.
     *
     * On PostgreSQL the event is written at the end of the transaction, just before COMMIT, with
     * the transaction's other events in one claim of the chain head: the head row is locked from
     * that claim until COMMIT, so claimed last it serialises only the commits of audited
     * transactions, not their work (the profile showed most check-in backends waiting on it).
     * It is still inside the transaction: it commits or rolls back with the change, and no answer
     * goes out before it is durable.
     */
    async record(exec: Executor, actor: Actor, input: AuditEventInput): Promise<{ id: string }> {
      const row: PendingRow = {
        id: newId(),
        occurred_at: clock.now(),
        actor_type: actor.type,
        actor_id: actor.id,
        actor_name: actor.name,
        action: input.action,
        client_id: input.clientId ?? null,
        target_type: input.targetType ?? null,
        target_id: input.targetId ?? null,
        reason_code: input.reasonCode ?? null,
        ticket: input.ticket ?? null,
        outcome: input.outcome,
        ip: actor.ip ?? null,
        user_agent: actor.userAgent ?? null,
        details: input.details ? JSON.stringify(input.details) : null,
      };
      let queue = pending.get(exec);
      if (!queue) {
        queue = [];
        const rows = queue;
        if (atCommit(exec, rows, (tx) => appendRows(tx, rows))) pending.set(exec, rows);
        else queue = undefined;
      }
      if (queue) queue.push(row);
      else await appendRows(exec, [row]);
      return { id: row.id };
    },

    /** Records an event in a transaction of its own (denials and failures outside any change). */
    async recordNow(actor: Actor, input: AuditEventInput): Promise<{ id: string }> {
      return transactions.run((tx) => this.record(tx, actor, input));
    },

    /** The actions and their labels, for a reader's filter. */
    actions(actor: Actor): readonly { action: string; label: string }[] {
      requirePermission(actor, 'audit:read');
      return AUDIT_ACTIONS;
    },

    /** Newest first. Client-scoped actors see only their clients' events (not vault-wide ones). */
    async list(actor: Actor, filter: AuditFilter & { limit?: number } = {}): Promise<AuditEvent[]> {
      requirePermission(actor, 'audit:read', filter.clientId);
      const rows = await repo.list(reader, { ...toListFilter(filter), clients: clientScope(actor), limit: Math.min(Math.max(filter.limit ?? 100, 1), 1000) });
      return rows.map(toAuditEvent);
    },

    /**
     * Every matching event, oldest first, a page at a time (for CSV / JSON-lines export). The
     * export itself is audited, since it shows who saw which key.
     */
    async *export(actor: Actor, filter: AuditFilter = {}): AsyncGenerator<AuditEvent> {
      requirePermission(actor, 'audit:read', filter.clientId);
      const parsed = toListFilter(filter);
      await this.recordNow(actor, { action: 'audit.export', outcome: 'success', clientId: filter.clientId ?? null, details: { filter } });
      let after = 0;
      for (;;) {
        const rows = await repo.list(reader, { ...parsed, afterSeq: after, clients: clientScope(actor), limit: 1000, order: 'asc' });
        for (const r of rows) yield toAuditEvent(r);
        if (rows.length < 1000) return;
        after = rows[rows.length - 1]!.seq;
      }
    },

    /** Walks the whole chain from the first row. Reports the first sequence number that is wrong. */
    /** Checks the chain; a break is notified (audit.chain_broken), whether found by a person or the daily check. */
    async verify(actor: Actor): Promise<VerifyResult> {
      const r = await this.verifyChain(actor);
      if (!r.intact && notifier) {
        // The answer matters more than the notification: a read-only copy (doctor) still gets it.
        await transactions
          .run((tx) =>
            notifier.emit(tx, {
              type: 'audit.chain_broken',
              clientId: null,
              subject: `The audit log's hash chain is broken at event ${r.firstBrokenSeq}`,
              details: { firstBrokenEvent: r.firstBrokenSeq, problem: r.problem, eventsVerified: r.events, checkedBy: actor.name },
              dedupKey: `audit.chain_broken:${r.firstBrokenSeq}`,
              occurredAt: clock.now(),
            }),
          )
          .catch(() => undefined);
      }
      return r;
    },

    async verifyChain(actor: Actor): Promise<VerifyResult> {
      requirePermission(actor, 'audit:read');
      // The chain spans every client, so only someone with a global role can check it whole.
      if (actor.clients !== 'all') throw forbidden('Only a global auditor or owner can verify the whole audit chain.');
      const m = await mac(reader);
      let expectedSeq = 1;
      let prevHash = GENESIS_HASH;
      let count = 0;
      const PAGE = 1000;
      for (let after = 0; ;) {
        const rows = await repo.page(reader, after, PAGE);
        for (const r of rows) {
          if (r.seq !== expectedSeq) {
            return { intact: false, events: count, firstBrokenSeq: expectedSeq, problem: `event ${expectedSeq} is missing` };
          }
          if (r.prev_hash !== prevHash) {
            return { intact: false, events: count, firstBrokenSeq: r.seq, problem: `event ${r.seq} does not follow event ${r.seq - 1}` };
          }
          const { prev_hash: _p, hash: _h, ...fields } = r;
          if (!m.verify(r.prev_hash, canonicalPayload(fields), r.hash)) {
            return { intact: false, events: count, firstBrokenSeq: r.seq, problem: `event ${r.seq} was changed` };
          }
          prevHash = r.hash;
          expectedSeq++;
          count++;
        }
        if (rows.length < PAGE) break;
        after = rows[rows.length - 1]!.seq;
      }
      const head = await repo.head(reader);
      if (!head) return { intact: false, events: count, firstBrokenSeq: expectedSeq, problem: 'the audit chain head is missing' };
      if (head.seq !== count || head.hash !== prevHash) {
        const first = Math.min(head.seq, count + 1);
        return {
          intact: false,
          events: count,
          firstBrokenSeq: first < 1 ? 1 : first,
          problem: head.seq > count ? `events ${count + 1} to ${head.seq} are missing` : 'the audit chain head does not match the last event',
        };
      }
      return { intact: true, events: count, headSeq: head.seq };
    },
  };
}
export type AuditService = ReturnType<typeof createAuditService>;
