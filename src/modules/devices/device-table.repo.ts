import { sql } from 'kysely';
import type { Executor } from '../../db/database.js';
import { COMPLIANCE_STATUSES, type ComplianceStatus } from '../../domain/compliance/evaluate.js';
import { CURRENT_KEY_STATES, NOT_ENCRYPTED_STATUSES, type Encryption } from '../../domain/device-status.js';
import { deviceTextMatch } from './devices.repo.js';

/**
 * A client's devices as one table with their encryption and key-escrow state, aggregated by the
 * database so the console can filter, sort and page thousands of devices. The encryption and
 * escrowed columns compute the predicates of src/domain/device-status.ts (deviceEncryption,
 * isDeviceEscrowed) from the same constants; test/device-status.test.ts checks that both agree.
 */

export type DeviceTableFilter = {
  q?: string;
  encryption?: Encryption;
  escrowed?: boolean;
  compliance?: ComplianceStatus;
  /** last_seen_at bounds (lastSeenBounds): at or after `from`, before `before`. */
  seen?: { from?: string; before?: string };
};
export type DeviceTableSort = 'name' | 'lastSeenAt' | 'keys' | 'encryption' | 'escrowed' | 'openFindings' | 'compliance';

/** Statuses stored by the evaluation; anything else (or none: not evaluated yet) is 'unknown' (complianceStatusOf). */
const JUDGED = COMPLIANCE_STATUSES.filter((s) => s !== 'unknown');

const SORT_COLUMN = {
  name: 'x.name_key',
  lastSeenAt: 'x.last_seen_at',
  keys: 'x.keys',
  encryption: 'x.encryption',
  escrowed: 'x.escrowed',
  openFindings: 'x.open_findings',
  compliance: 'x.compliance',
} as const;

export function createDeviceTableRepo() {
  /** One row per device of a client (not retired) with the counts its state is derived from. */
  const deviceRows = (exec: Executor, clientId: string) =>
    exec
      .selectFrom('devices as d')
      .where('d.client_id', '=', clientId)
      .where('d.retired_at', 'is', null)
      .select((eb) => [
        'd.id',
        'd.name',
        'd.name_key',
        'd.serial',
        'd.primary_user',
        'd.last_seen_at',
        'd.last_checkin_at',
        eb
          .selectFrom('recovery_keys as k')
          .whereRef('k.device_id', '=', 'd.id')
          .where('k.client_id', '=', clientId)
          .select(eb.fn.countAll<number>().as('n'))
          .as('keys'),
        eb
          .selectFrom('recovery_keys as k')
          .whereRef('k.device_id', '=', 'd.id')
          .where('k.client_id', '=', clientId)
          .where('k.state', 'in', [...CURRENT_KEY_STATES])
          .select(eb.fn.countAll<number>().as('n'))
          .as('current_keys'),
        eb
          .selectFrom('volumes as v')
          .whereRef('v.device_id', '=', 'd.id')
          .where('v.client_id', '=', clientId)
          .where('v.encryption_state', 'is not', null)
          .select(eb.fn.countAll<number>().as('n'))
          .as('known_volumes'),
        eb
          .selectFrom('volumes as v')
          .whereRef('v.device_id', '=', 'd.id')
          .where('v.client_id', '=', clientId)
          .where('v.encryption_state', 'in', [...NOT_ENCRYPTED_STATUSES])
          .select(eb.fn.countAll<number>().as('n'))
          .as('clear_volumes'),
        eb
          .selectFrom('findings as f')
          .whereRef('f.device_id', '=', 'd.id')
          .where('f.client_id', '=', clientId)
          .where('f.resolved_at', 'is', null)
          .select(eb.fn.countAll<number>().as('n'))
          .as('open_findings'),
        eb
          .selectFrom('device_compliance as dc')
          .whereRef('dc.device_id', '=', 'd.id')
          .where('dc.client_id', '=', clientId)
          .select('dc.status')
          .as('compliance_status'),
      ]);

  /** The same rows with the derived columns (deviceEncryption and isDeviceEscrowed in SQL), as a table to filter, sort and page. */
  const deviceTable = (exec: Executor, clientId: string) =>
    exec
      .selectFrom(deviceRows(exec, clientId).as('t'))
      .selectAll('t')
      .select([
        sql<Encryption>`case when t.clear_volumes > 0 then 'not-encrypted' when t.known_volumes > 0 then 'encrypted' else 'unknown' end`.as('encryption'),
        sql<number>`case when t.current_keys > 0 and t.open_findings = 0 then 1 else 0 end`.as('escrowed'),
        // complianceStatusOf (src/domain/compliance/summary.ts) in SQL: the same four statuses.
        sql<ComplianceStatus>`case when t.compliance_status in (${sql.join(JUDGED.map((x) => sql.lit(x)))}) then t.compliance_status else 'unknown' end`.as(
          'compliance',
        ),
      ]);

  const filtered = (exec: Executor, clientId: string, filter: DeviceTableFilter) => {
    let q = exec.selectFrom(deviceTable(exec, clientId).as('x'));
    const text = filter.q?.trim();
    if (text) q = q.where(deviceTextMatch('x', text));
    if (filter.encryption) q = q.where('x.encryption', '=', filter.encryption);
    if (filter.escrowed !== undefined) q = q.where('x.escrowed', '=', filter.escrowed ? 1 : 0);
    if (filter.compliance) q = q.where('x.compliance', '=', filter.compliance);
    if (filter.seen?.from) q = q.where('x.last_seen_at', '>=', filter.seen.from);
    if (filter.seen?.before) q = q.where('x.last_seen_at', '<', filter.seen.before);
    return q;
  };

  return {
    /** Every device of the client with its state (the overview counts them). */
    all: (exec: Executor, clientId: string) => deviceTable(exec, clientId).execute(),

    /** Device counts by encryption and escrow state, with their keys and open findings. */
    counts: (exec: Executor, clientId: string) =>
      exec
        .selectFrom(deviceTable(exec, clientId).as('x'))
        .select((eb) => [
          'x.encryption',
          'x.escrowed',
          eb.fn.countAll<number>().as('n'),
          eb.fn.sum<number>('x.keys').as('keys'),
          eb.fn.sum<number>('x.open_findings').as('findings'),
        ])
        .groupBy(['x.encryption', 'x.escrowed'])
        .execute(),

    async total(exec: Executor, clientId: string, filter: DeviceTableFilter): Promise<number> {
      const r = await filtered(exec, clientId, filter)
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .executeTakeFirstOrThrow();
      return Number(r.n);
    },

    /** Filtered and sorted (name, then id, breaks ties), one page. */
    page: (
      exec: Executor,
      clientId: string,
      filter: DeviceTableFilter,
      order: { sort?: DeviceTableSort; dir?: 'asc' | 'desc' },
      limit: number,
      offset: number,
    ) =>
      filtered(exec, clientId, filter)
        .selectAll('x')
        .orderBy(SORT_COLUMN[order.sort ?? 'name'], order.dir ?? 'asc')
        .orderBy('x.name_key', 'asc')
        .orderBy('x.id', 'asc')
        .limit(limit)
        .offset(offset)
        .execute(),

    /**
     * The client's (not retired) devices by compliance status, from the latest evaluation: the same
     * column the table filters on, so a count and its filtered list always agree.
     */
    complianceCounts: (exec: Executor, clientId: string) =>
      exec
        .selectFrom(deviceTable(exec, clientId).as('x'))
        .select((eb) => [eb.ref('x.compliance').as('status'), eb.fn.countAll<number>().as('n')])
        .groupBy('x.compliance')
        .execute(),

    /** Keys by source (import, agent, Entra, AD) where the source still reports them. */
    sourceCounts: (exec: Executor, clientId: string) =>
      exec
        .selectFrom('key_sources')
        .select((eb) => ['source_type', eb.fn.countAll<number>().as('n')])
        .where('client_id', '=', clientId)
        .where('removed_at', 'is', null)
        .groupBy('source_type')
        .execute(),

    /** Reported encryption states of the device's volumes, newest first. */
    volumeHistory: (exec: Executor, clientId: string, deviceId: string, limit: number) =>
      exec
        .selectFrom('volume_states as s')
        .innerJoin('volumes as v', 'v.id', 's.volume_id')
        .select(['s.id', 's.recorded_at', 'v.mount_point', 's.volume_status', 's.protection_status', 's.encryption_method', 's.encryption_percentage'])
        .where('s.client_id', '=', clientId)
        .where('v.client_id', '=', clientId)
        .where('v.device_id', '=', deviceId)
        .orderBy('s.recorded_at', 'desc')
        .limit(limit)
        .execute(),
  };
}
export type DeviceTableRepo = ReturnType<typeof createDeviceTableRepo>;
export type DeviceTableRow = Awaited<ReturnType<DeviceTableRepo['all']>>[number];
