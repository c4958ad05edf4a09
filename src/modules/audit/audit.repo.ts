import type { Executor } from '../../db/database.js';
import type { AuditEventsTable } from '../../db/schema.js';
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
};

export function createAuditRepo() {
  return {
    async initHead(exec: Executor): Promise<void> {
      await exec.insertInto('audit_head').values({ id: 1, seq: 0, hash: GENESIS_HASH }).execute();
    },

    /**
     * Claims the next sequence number. The UPDATE comes first so the row (PostgreSQL) or the
     * database (SQLite) is write-locked before we read the previous hash: two writers can never
     * chain from the same tip.
     */
    async claimNext(exec: Executor): Promise<{ seq: number; prevHash: string }> {
      await exec
        .updateTable('audit_head')
        .set((eb) => ({ seq: eb('seq', '+', 1) }))
        .where('id', '=', 1)
        .execute();
      const head = await exec.selectFrom('audit_head').select(['seq', 'hash']).where('id', '=', 1).executeTakeFirstOrThrow();
      return { seq: head.seq, prevHash: head.hash };
    },

    async append(exec: Executor, row: AuditEventsTable): Promise<void> {
      await exec.insertInto('audit_events').values(row).execute();
      await exec.updateTable('audit_head').set({ hash: row.hash }).where('id', '=', 1).execute();
    },

    async head(exec: Executor): Promise<{ seq: number; hash: string } | undefined> {
      return exec.selectFrom('audit_head').select(['seq', 'hash']).where('id', '=', 1).executeTakeFirst();
    },

    /** Rows in sequence order, a page at a time, so verifying a large log stays in bounded memory. */
    async page(exec: Executor, afterSeq: number, limit: number): Promise<AuditEventsTable[]> {
      return exec.selectFrom('audit_events').selectAll().where('seq', '>', afterSeq).orderBy('seq', 'asc').limit(limit).execute();
    },

    async list(exec: Executor, filter: AuditFilter & { clients: ClientScope; limit: number; order?: 'asc' | 'desc' }): Promise<AuditEventsTable[]> {
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
     * so probing key IDs is limited as well. The keys service counts them under the actor's reveal
     * lock, in the transaction that writes the next attempt.
     */
    async revealsSince(exec: Executor, actorId: string, since: string): Promise<number> {
      const row = await exec
        .selectFrom('audit_events')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('actor_id', '=', actorId)
        .where('action', '=', 'key.reveal')
        .where('outcome', 'in', ['success', 'not_found', 'ambiguous'])
        .where('occurred_at', '>=', since)
        .executeTakeFirstOrThrow();
      return Number(row.n);
    },
  };
}
export type AuditRepo = ReturnType<typeof createAuditRepo>;
