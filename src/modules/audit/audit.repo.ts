import { PostgresAdapter, sql, type Expression, type ExpressionBuilder, type SqlBool } from 'kysely';
import type { Executor } from '../../db/database.js';
import type { AuditEventsTable, DB } from '../../db/schema.js';
import { inClientScope, type ClientScope } from '../../db/scope.js';

export const GENESIS_HASH = '0'.repeat(64);

export type AuditFilter = {
  action?: string;
  outcome?: string;
  clientId?: string;
  actorId?: string;
  targetId?: string;
  /** ISO-8601 bounds on occurred_at: from inclusive, to exclusive. */
  from?: string;
  to?: string;
  beforeSeq?: number;
  afterSeq?: number;
  /** As typed: a key ID (full or a prefix of 8+ digits), the start of a device name, part of a ticket. */
  keyId?: string;
  device?: string;
  ticket?: string;
  /** One box for all three: an event matches when any of them does. */
  search?: string;
};

/**
 * Parsed search terms. `keyId` is a canonical (lower-case, hyphenated) key ID or the start of one.
 * Both sides are lower()ed in SQL, so case is ignored the same way on each engine's terms: ASCII
 * on SQLite, all of Unicode on PostgreSQL.
 */
export type AuditMatch = { keyId?: string; device?: string; ticket?: string };
export type AuditListFilter = Omit<AuditFilter, 'keyId' | 'device' | 'ticket' | 'search'> & { all?: AuditMatch; any?: AuditMatch };

/** A LIKE pattern for literal text (\ escapes), matched with ESCAPE '\'. */
const likeLiteral = (s: string) => s.replace(/[\\%_]/g, (c) => `\\${c}`);
/** How text appears inside a JSON string (the details column is JSON.stringify output). */
const inJson = (s: string) => JSON.stringify(s).slice(1, -1);

type Eb = ExpressionBuilder<DB, 'audit_events'>;
const detailsLike = (pattern: string) => sql<SqlBool>`lower(details) like lower(cast(${pattern} as text)) escape '\\'`;

/**
 * The conditions for one match. Key IDs and devices live in the details JSON, so they are matched
 * as JSON text: `"keyId":"<id>` (stored lower-case, or braced upper-case for agent protector IDs,
 * hence lower()), the key that replaced it, and what someone searched for; `"device":"<name>` (or a
 * directory computer). Both are anchored at the value's start, so a term cannot match across fields.
 */
function matchConditions(eb: Eb, m: AuditMatch): Expression<SqlBool>[] {
  const out: Expression<SqlBool>[] = [];
  if (m.keyId) {
    const id = likeLiteral(m.keyId);
    const compact = likeLiteral(m.keyId.replace(/-/g, ''));
    const parts = ['keyid', 'protectorid', 'newkeyid', 'query'].flatMap((k) => [`%"${k}":"${id}%`, `%"${k}":"{${id}%`]);
    parts.push(`%"query":"${compact}%`);
    // One cheap test first (the first 8 digits anywhere), so the anchored patterns run only on
    // the few rows that pass it: a miss costs one LIKE per row, not nine.
    out.push(eb.and([detailsLike(`%${compact.slice(0, 8)}%`), eb.or(parts.map(detailsLike))]));
  }
  if (m.device) {
    const d = likeLiteral(inJson(m.device));
    out.push(eb.and([detailsLike(`%${d}%`), eb.or([detailsLike(`%"device":"${d}%`), detailsLike(`%"computer":"${d}%`)])]));
  }
  if (m.ticket) out.push(sql<SqlBool>`lower(ticket) like lower(cast(${`%${likeLiteral(m.ticket)}%`} as text)) escape '\\'`);
  return out;
}

export function createAuditRepo() {
  return {
    async initHead(exec: Executor): Promise<void> {
      await exec.insertInto('audit_head').values({ id: 1, seq: 0, hash: GENESIS_HASH }).execute();
    },

    /**
     * Claims the next `n` sequence numbers and returns the first with the previous event's hash, in
     * one statement. The UPDATE write-locks the head row (PostgreSQL) or the database (SQLite)
     * before the hash is read, so two writers can never chain from the same tip.
     */
    async claimNext(exec: Executor, n = 1): Promise<{ seq: number; prevHash: string }> {
      const head = await exec
        .updateTable('audit_head')
        .set((eb) => ({ seq: eb('seq', '+', n) }))
        .where('id', '=', 1)
        .returning(['seq', 'hash'])
        .executeTakeFirstOrThrow();
      return { seq: head.seq - n + 1, prevHash: head.hash };
    },

    /**
     * Writes the claimed events (in sequence order) and moves the head's hash to the last. PostgreSQL
     * does both in one statement (a round trip saved on every audited transaction); SQLite, which
     * has no writes inside WITH, in two (in process, no round trips).
     */
    async append(exec: Executor, rows: AuditEventsTable[]): Promise<void> {
      const last = rows[rows.length - 1]!;
      // A transaction that records thousands of events (a large sync) stays under the engines'
      // limits on bound parameters: all but the last chunk first, the last with the head.
      const CHUNK = 1000;
      for (let i = 0; i + CHUNK < rows.length; i += CHUNK)
        await exec
          .insertInto('audit_events')
          .values(rows.slice(i, i + CHUNK))
          .execute();
      const tail = rows.slice(Math.floor((rows.length - 1) / CHUNK) * CHUNK);
      if (exec.getExecutor().adapter instanceof PostgresAdapter) {
        await exec
          .with('event', (db) => db.insertInto('audit_events').values(tail))
          .updateTable('audit_head')
          .set({ hash: last.hash })
          .where('id', '=', 1)
          .execute();
        return;
      }
      await exec.insertInto('audit_events').values(tail).execute();
      await exec.updateTable('audit_head').set({ hash: last.hash }).where('id', '=', 1).execute();
    },

    async head(exec: Executor): Promise<{ seq: number; hash: string } | undefined> {
      return exec.selectFrom('audit_head').select(['seq', 'hash']).where('id', '=', 1).executeTakeFirst();
    },

    /** Rows in sequence order, a page at a time, so verifying a large log stays in bounded memory. */
    async page(exec: Executor, afterSeq: number, limit: number): Promise<AuditEventsTable[]> {
      return exec.selectFrom('audit_events').selectAll().where('seq', '>', afterSeq).orderBy('seq', 'asc').limit(limit).execute();
    },

    /**
     * A page of events, newest first by default. A search by key ID, device or ticket reads the
     * details text of the rows in scope (and inside the other filters) from the newest down and
     * stops at the page limit; no index covers text inside JSON on both engines, so a search that
     * matches little reads every row in scope (measured on SQLite: about half a second per million
     * events for a key ID that matches nothing). A time range or client narrows it.
     */
    async list(exec: Executor, filter: AuditListFilter & { clients: ClientScope; limit: number; order?: 'asc' | 'desc' }): Promise<AuditEventsTable[]> {
      // A client-limited actor sees only its clients' events, never vault-wide ones (client_id null).
      let q = inClientScope(exec.selectFrom('audit_events').selectAll(), 'client_id', filter.clients);
      if (filter.action) q = q.where('action', '=', filter.action);
      if (filter.outcome) q = q.where('outcome', '=', filter.outcome);
      if (filter.clientId) q = q.where('client_id', '=', filter.clientId);
      if (filter.actorId) q = q.where('actor_id', '=', filter.actorId);
      if (filter.targetId) q = q.where('target_id', '=', filter.targetId);
      if (filter.from) q = q.where('occurred_at', '>=', filter.from);
      if (filter.to) q = q.where('occurred_at', '<', filter.to);
      if (filter.beforeSeq !== undefined) q = q.where('seq', '<', filter.beforeSeq);
      if (filter.afterSeq !== undefined) q = q.where('seq', '>', filter.afterSeq);
      const { all, any } = filter;
      if (all) q = q.where((eb) => eb.and(matchConditions(eb, all)));
      if (any) q = q.where((eb) => eb.or(matchConditions(eb, any)));
      return q
        .orderBy('seq', filter.order ?? 'desc')
        .limit(filter.limit)
        .execute();
    },

    /** One client's events about any of these targets (a device and its keys), newest first. */
    async aboutTargets(exec: Executor, clientId: string, targetIds: readonly string[], limit: number): Promise<AuditEventsTable[]> {
      if (targetIds.length === 0) return [];
      return exec
        .selectFrom('audit_events')
        .selectAll()
        .where('client_id', '=', clientId)
        .where((eb) => {
          const parts = [];
          for (let i = 0; i < targetIds.length; i += 500) parts.push(eb('target_id', 'in', targetIds.slice(i, i + 500)));
          return eb.or(parts);
        })
        .orderBy('seq', 'desc')
        .limit(limit)
        .execute();
    },

    /**
     * Reveal attempts by one actor since a time: successes, and misses and ambiguous prefixes too,
     * so probing key IDs is limited as well, and refusals about one key (a ticket the PSA refused, an
     * approval missing: each told the actor something about that key, and a ticket check costs a PSA
     * call). A refusal before any key was looked at (step-up, no permission) has no target and does
     * not count. The keys service counts them under the actor's reveal lock, in the transaction that
     * writes the next attempt.
     */
    async revealsSince(exec: Executor, actorId: string, since: string): Promise<number> {
      const row = await exec
        .selectFrom('audit_events')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('actor_id', '=', actorId)
        .where('action', '=', 'key.reveal')
        .where((eb) =>
          eb.or([eb('outcome', 'in', ['success', 'not_found', 'ambiguous']), eb.and([eb('outcome', '=', 'denied'), eb('target_type', '=', 'recovery_key')])]),
        )
        .where('occurred_at', '>=', since)
        .executeTakeFirstOrThrow();
      return Number(row.n);
    },
    /** Self-service attempts of one end user since a time: every looked-up key ID, or only the keys revealed. */
    async selfServiceAttemptsSince(exec: Executor, actorId: string, since: string, successOnly: boolean): Promise<number> {
      const row = await exec
        .selectFrom('audit_events')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('actor_id', '=', actorId)
        .where('action', '=', 'key.self_service_reveal')
        .where('outcome', 'in', successOnly ? ['success'] : ['success', 'not_found', 'denied'])
        .where('occurred_at', '>=', since)
        .executeTakeFirstOrThrow();
      return Number(row.n);
    },
  };
}
export type AuditRepo = ReturnType<typeof createAuditRepo>;
