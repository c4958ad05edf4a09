import { sql } from 'kysely';
import type { Executor } from '../../db/database.js';

/**
 * What the reports read. Reports own no table: every query here only reads tables of other
 * modules (listed for 'reports' in TABLE_READS, src/db/owners.ts), a page at a time.
 */
export function createReportsRepo() {
  return {
    /** Evaluated statuses per client (devices still in service only). */
    statusCounts(exec: Executor, clientIds: string[]) {
      return exec
        .selectFrom('device_compliance as s')
        .innerJoin('devices as d', 'd.id', 's.device_id')
        .select(['s.client_id', 's.status', (eb) => eb.fn.countAll<number>().as('n')])
        .where('s.client_id', 'in', clientIds)
        .where('d.retired_at', 'is', null)
        .groupBy(['s.client_id', 's.status'])
        .execute();
    },
    /** Devices in service per client. */
    deviceCounts(exec: Executor, clientIds: string[]) {
      return exec
        .selectFrom('devices')
        .select(['client_id', (eb) => eb.fn.countAll<number>().as('n')])
        .where('client_id', 'in', clientIds)
        .where('retired_at', 'is', null)
        .groupBy('client_id')
        .execute();
    },
    /** Status transitions per day, status and previous status. */
    historyByDay(exec: Executor, clientIds: string[]) {
      return exec
        .selectFrom('compliance_history')
        .select([sql<string>`substr(recorded_at, 1, 10)`.as('day'), 'status', 'previous_status', (eb) => eb.fn.countAll<number>().as('n')])
        .where('client_id', 'in', clientIds)
        .groupBy([sql`substr(recorded_at, 1, 10)`, 'status', 'previous_status'])
        .orderBy(sql`substr(recorded_at, 1, 10)`)
        .execute();
    },
    /** One page of (device + its current status) rows of a client in device-name order. */
    devicePage(exec: Executor, clientId: string, filter: { statuses?: string[] }, after: [string, string] | null, limit: number) {
      let q = exec
        .selectFrom('devices as d')
        .leftJoin('device_compliance as s', 's.device_id', 'd.id')
        .select([
          'd.id',
          'd.name',
          'd.name_key',
          'd.serial',
          'd.primary_user',
          'd.last_seen_at',
          'd.last_checkin_at',
          's.status',
          's.status_since',
          's.findings',
        ])
        .where('d.client_id', '=', clientId)
        .where('d.retired_at', 'is', null);
      if (filter.statuses) q = q.where('s.status', 'in', filter.statuses);
      if (after) {
        const [k, id] = after;
        // A row-value comparison, so the (client_id, name_key, id) index serves the page directly.
        q = q.where((eb) => eb(eb.refTuple('d.name_key', 'd.id'), '>', eb.tuple(k, id)));
      }
      return q.orderBy('d.name_key').orderBy('d.id').limit(limit).execute();
    },
    /** One page of the findings of a client's devices in service that have any (keyset on device id). */
    findingsPage(exec: Executor, clientId: string, after: string | null, limit: number) {
      let q = exec
        .selectFrom('device_compliance as s')
        .innerJoin('devices as d', 'd.id', 's.device_id')
        .select(['s.device_id', 's.findings'])
        .where('s.client_id', '=', clientId)
        .where('d.retired_at', 'is', null)
        .where('s.findings', '!=', '[]');
      if (after) q = q.where('s.device_id', '>', after);
      return q.orderBy('s.device_id').limit(limit).execute();
    },
    /** One page of reveal events (Keywarden and Entra) of these clients, and optionally those of no client. */
    async revealEventsPage(
      exec: Executor,
      clientIds: string[],
      withoutClient: boolean,
      period: { from: string; to: string } | null,
      afterSeq: number,
      limit: number,
    ) {
      let q = exec
        .selectFrom('audit_events')
        .select(['seq', 'occurred_at', 'actor_type', 'actor_name', 'action', 'client_id', 'reason_code', 'ticket', 'outcome', 'ip', 'details'])
        .where('action', 'in', ['key.reveal', 'entra.key_read'])
        .where('seq', '>', afterSeq);
      if (period) q = q.where('occurred_at', '>=', period.from).where('occurred_at', '<', period.to);
      // No client and no client-less events asked for: nothing to read.
      if (clientIds.length === 0 && !withoutClient) return [] as Awaited<ReturnType<typeof q.execute>>;
      return q
        .where((eb) => eb.or([...(clientIds.length ? [eb('client_id', 'in', clientIds)] : []), ...(withoutClient ? [eb('client_id', 'is', null)] : [])]))
        .orderBy('seq')
        .limit(limit)
        .execute();
    },
    /** Escrow coverage of a client: devices in service, devices with a usable key, and the same per source. */
    async escrowCoverage(exec: Executor, clientId: string) {
      const [total, any, bySource] = await Promise.all([
        exec
          .selectFrom('devices')
          .select((eb) => eb.fn.countAll<number>().as('n'))
          .where('client_id', '=', clientId)
          .where('retired_at', 'is', null)
          .executeTakeFirstOrThrow(),
        exec
          .selectFrom('recovery_keys as k')
          .innerJoin('devices as d', 'd.id', 'k.device_id')
          .select([sql<number>`count(distinct k.device_id)`.as('devices'), sql<number>`count(distinct k.id)`.as('keys')])
          .where('k.client_id', '=', clientId)
          .where('d.retired_at', 'is', null)
          .where('k.state', 'in', ['active', 'disclosed', 'conflict'])
          .executeTakeFirstOrThrow(),
        exec
          .selectFrom('recovery_keys as k')
          .innerJoin('devices as d', 'd.id', 'k.device_id')
          .innerJoin('key_sources as s', 's.recovery_key_id', 'k.id')
          .select(['s.source_type', sql<number>`count(distinct k.device_id)`.as('devices'), sql<number>`count(distinct k.id)`.as('keys')])
          .where('k.client_id', '=', clientId)
          .where('d.retired_at', 'is', null)
          .where('k.state', 'in', ['active', 'disclosed', 'conflict'])
          .where('s.removed_at', 'is', null)
          .groupBy('s.source_type')
          .execute(),
      ]);
      return { total, any, bySource };
    },
    /** One page of the boots with a recovery password (event 24652) of a client, with the key's state now. */
    recoveryBootsPage(exec: Executor, clientId: string, period: { from: string; to: string } | null, after: [string, string] | null, limit: number) {
      let q = exec
        .selectFrom('device_events as e')
        .innerJoin('devices as d', 'd.id', 'e.device_id')
        .select((eb) => [
          'e.id',
          'e.occurred_at',
          'e.protector_id',
          'e.mount_point',
          'd.name',
          eb
            .selectFrom('recovery_keys as k')
            .select('k.state')
            .whereRef('k.client_id', '=', 'e.client_id')
            .whereRef('k.key_id', '=', 'e.protector_id')
            .orderBy('k.state_changed_at', 'desc')
            .limit(1)
            .as('key_state'),
        ])
        .where('e.client_id', '=', clientId)
        .where('e.event_id', '=', 24652);
      if (period) q = q.where('e.occurred_at', '>=', period.from).where('e.occurred_at', '<', period.to);
      if (after) {
        const [t, id] = after;
        q = q.where((eb) => eb(eb.refTuple('e.occurred_at', 'e.id'), '>', eb.tuple(t, id)));
      }
      return q.orderBy('e.occurred_at').orderBy('e.id').limit(limit).execute();
    },
  };
}
export type ReportsRepo = ReturnType<typeof createReportsRepo>;
