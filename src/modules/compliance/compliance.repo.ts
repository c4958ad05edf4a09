import { PostgresAdapter } from 'kysely';
import * as pgJson from 'kysely/helpers/postgres';
import * as sqliteJson from 'kysely/helpers/sqlite';
import type { Executor } from '../../db/database.js';
import type { ComplianceExemptionsTable, ComplianceHistoryTable, CompliancePoliciesTable, DeviceComplianceTable } from '../../db/schema.js';
import { inClientScope, isId, type ClientScope } from '../../db/scope.js';
import { bulkInsert } from '../../db/bulk.js';

const upsertStatusRows = bulkInsert<DeviceComplianceTable>(
  'device_compliance',
  ['device_id', 'client_id', 'status', 'findings', 'signature', 'status_since', 'changed_at', 'evaluated_at'],
  {
    onConflict:
      'on conflict (device_id) do update set status = excluded.status, findings = excluded.findings, signature = excluded.signature, ' +
      'status_since = excluded.status_since, changed_at = excluded.changed_at, evaluated_at = excluded.evaluated_at',
  },
);
const insertHistoryRows = bulkInsert<ComplianceHistoryTable>('compliance_history', [
  'id',
  'client_id',
  'device_id',
  'recorded_at',
  'status',
  'previous_status',
  'codes',
]);

/**
 * Policies, exemptions, each device's current status and its history. Evaluation also reads what
 * the vault knows about devices (devices, volumes, keys, their sources, findings, volume history):
 * those tables belong to other modules and are only read here (TABLE_READS in src/db/owners.ts).
 */
export function createComplianceRepo() {
  return {
    // ------------------------------------------------------------------ policies
    findPolicy(exec: Executor, scope: string) {
      return exec.selectFrom('compliance_policies').selectAll().where('scope', '=', scope).executeTakeFirst();
    },
    /**
     * What evaluating a client's devices needs besides the devices, in one query: the client's
     * name (for notifications) and the policies stored for it and for the MSP default. Undefined
     * when the client does not exist.
     */
    async evaluationContext(exec: Executor, clientId: string, defaultScope: string) {
      const { jsonArrayFrom } = exec.getExecutor().adapter instanceof PostgresAdapter ? pgJson : sqliteJson;
      const row = await exec
        .selectFrom('clients')
        .select((eb) => [
          'name',
          jsonArrayFrom(
            eb
              .selectFrom('compliance_policies')
              .select(['scope', 'settings', 'updated_at', 'updated_by', 'client_id'])
              .where('scope', 'in', [defaultScope, clientId]),
          ).as('policies'),
        ])
        .where('id', '=', clientId)
        .executeTakeFirst();
      if (!row) return undefined;
      const policies = typeof row.policies === 'string' ? (JSON.parse(row.policies) as CompliancePoliciesTable[]) : row.policies;
      return { name: row.name, policies };
    },
    async upsertPolicy(exec: Executor, row: CompliancePoliciesTable): Promise<void> {
      await exec
        .insertInto('compliance_policies')
        .values(row)
        .onConflict((oc) => oc.column('scope').doUpdateSet({ settings: row.settings, updated_at: row.updated_at, updated_by: row.updated_by }))
        .execute();
    },

    // ------------------------------------------------------------------ exemptions
    async insertExemption(exec: Executor, row: ComplianceExemptionsTable): Promise<void> {
      await exec.insertInto('compliance_exemptions').values(row).execute();
    },
    /** An exemption inside the scope; undefined for an id of another shape, another client's, or none. */
    findExemption(exec: Executor, id: string, scope: ClientScope) {
      if (!isId(id)) return Promise.resolve(undefined);
      return inClientScope(exec.selectFrom('compliance_exemptions').selectAll().where('id', '=', id.toLowerCase()), 'client_id', scope).executeTakeFirst();
    },
    async revokeExemption(exec: Executor, id: string, revokedAt: string, revokedBy: string): Promise<void> {
      await exec.updateTable('compliance_exemptions').set({ revoked_at: revokedAt, revoked_by: revokedBy }).where('id', '=', id).execute();
    },
    listExemptions(exec: Executor, scope: ClientScope, filter: { clientId?: string; deviceId?: string }, limit: number) {
      let q = exec
        .selectFrom('compliance_exemptions as e')
        .innerJoin('devices as d', 'd.id', 'e.device_id')
        .select(['e.id', 'e.client_id', 'e.device_id', 'd.name as device_name', 'e.reason', 'e.expires_at', 'e.created_by', 'e.created_at', 'e.revoked_at']);
      q = inClientScope(q, 'e.client_id', scope);
      if (filter.clientId) q = q.where('e.client_id', '=', filter.clientId);
      if (filter.deviceId) q = q.where('e.device_id', '=', filter.deviceId);
      return q.orderBy('e.created_at', 'desc').limit(limit).execute();
    },

    // ------------------------------------------------------------------ current status and history
    findStatus(exec: Executor, clientId: string, deviceId: string) {
      return exec.selectFrom('device_compliance').selectAll().where('client_id', '=', clientId).where('device_id', '=', deviceId).executeTakeFirst();
    },
    upsertStatuses: (exec: Executor, rows: DeviceComplianceTable[]): Promise<void> => upsertStatusRows(exec, rows),
    async deleteStatuses(exec: Executor, clientId: string, deviceIds: readonly string[]): Promise<void> {
      if (deviceIds.length === 0) return;
      await exec
        .deleteFrom('device_compliance')
        .where('client_id', '=', clientId)
        .where('device_id', 'in', [...deviceIds])
        .execute();
    },
    insertHistory: (exec: Executor, rows: ComplianceHistoryTable[]): Promise<void> => insertHistoryRows(exec, rows),
    history(exec: Executor, clientId: string, deviceId: string, limit: number) {
      return exec
        .selectFrom('compliance_history')
        .select(['recorded_at', 'status', 'previous_status', 'codes'])
        .where('client_id', '=', clientId)
        .where('device_id', '=', deviceId)
        .orderBy('recorded_at', 'desc')
        .orderBy('id')
        .limit(limit)
        .execute();
    },
    /** A client's stored evaluations whose findings may hold this code (the caller parses to be sure). */
    statusesWithFinding(exec: Executor, clientId: string, code: string) {
      return exec
        .selectFrom('device_compliance')
        .select(['device_id', 'findings'])
        .where('client_id', '=', clientId)
        .where('findings', 'like', `%"code":"${code.replace(/[^a-z_]/g, '')}"%`)
        .orderBy('device_id')
        .execute();
    },
    /** Current statuses with device and client names, a page at a time (keyset on device id). */
    listStatuses(exec: Executor, scope: ClientScope, filter: { clientId?: string; status?: string; after?: string }, limit: number) {
      let q = exec
        .selectFrom('device_compliance as s')
        .innerJoin('devices as d', 'd.id', 's.device_id')
        .innerJoin('clients as c', 'c.id', 's.client_id')
        .select(['s.device_id', 'd.name', 's.client_id', 'c.name as client_name', 's.status', 's.status_since', 's.findings', 'd.last_seen_at']);
      q = inClientScope(q, 's.client_id', scope);
      if (filter.clientId) q = q.where('s.client_id', '=', filter.clientId);
      if (filter.status) q = q.where('s.status', '=', filter.status);
      if (filter.after) q = q.where('s.device_id', '>', filter.after);
      return q.orderBy('s.device_id').limit(limit).execute();
    },

    // ------------------------------------------------------------------ what evaluation reads
    /** A device inside the scope whose client is not archived, with its client's name. */
    findVisibleDevice(exec: Executor, id: string, scope: ClientScope) {
      if (!isId(id)) return Promise.resolve(undefined);
      const q = exec
        .selectFrom('devices as d')
        .innerJoin('clients as c', 'c.id', 'd.client_id')
        .select(['d.id', 'd.name', 'd.client_id', 'c.name as client_name'])
        .where('d.id', '=', id.toLowerCase())
        .where('c.archived_at', 'is', null);
      return inClientScope(q, 'd.client_id', scope).executeTakeFirst();
    },
    /** Device ids of a client in id order, a page at a time. */
    async deviceIds(exec: Executor, clientId: string, after: string | null, limit: number): Promise<string[]> {
      let q = exec.selectFrom('devices').select('id').where('client_id', '=', clientId);
      if (after) q = q.where('id', '>', after);
      return (await q.orderBy('id').limit(limit).execute()).map((r) => r.id);
    },
    /** One batch of devices (at most a few hundred ids) and what the vault knows about them. */
    /**
     * What the evaluation reads about a batch of devices (the devices, their volumes, keys, the
     * keys' sources, open mismatch findings, exemptions and current statuses), in one statement:
     * each list a JSON array. A device's evaluation runs inside reveals and check-ins, where every
     * statement is a round trip on PostgreSQL.
     */
    async deviceFacts(exec: Executor, clientId: string, ids: readonly string[]) {
      const list = [...ids];
      // SQLite has no round trips to save, and building and parsing the JSON costs more there than
      // seven plain statements of the same process.
      if (!(exec.getExecutor().adapter instanceof PostgresAdapter)) return deviceFactsPlain(exec, clientId, list);
      const { jsonArrayFrom } = pgJson;
      const row = await exec
        .selectNoFrom((eb) => [
          jsonArrayFrom(
            eb
              .selectFrom('devices')
              .select(['id', 'name', 'last_seen_at', 'last_checkin_at', 'retired_at'])
              .where('client_id', '=', clientId)
              .where('id', 'in', list),
          ).as('devices'),
          jsonArrayFrom(
            eb
              .selectFrom('volumes')
              .select(['id', 'device_id', 'mount_point', 'volume_type', 'volume_status', 'protection_status', 'lock_status', 'encryption_method', 'protectors'])
              .where('client_id', '=', clientId)
              .where('device_id', 'in', list),
          ).as('volumes'),
          jsonArrayFrom(
            eb
              .selectFrom('recovery_keys')
              .select(['id', 'device_id', 'key_id', 'volume_id', 'state', 'source_created_at', 'first_seen_at'])
              .where('client_id', '=', clientId)
              .where('device_id', 'in', list),
          ).as('keys'),
          // The sources still holding those keys.
          jsonArrayFrom(
            eb
              .selectFrom('key_sources as s')
              .innerJoin('recovery_keys as k', 'k.id', 's.recovery_key_id')
              .select(['s.recovery_key_id', 's.source_type'])
              .where('s.client_id', '=', clientId)
              .where('k.client_id', '=', clientId)
              .where('k.device_id', 'in', list)
              .where('s.removed_at', 'is', null),
          ).as('sources'),
          jsonArrayFrom(
            eb
              .selectFrom('findings')
              .select(['device_id', 'volume_id', 'protector_id'])
              .where('client_id', '=', clientId)
              .where('device_id', 'in', list)
              .where('kind', '=', 'mismatch')
              .where('resolved_at', 'is', null),
          ).as('mismatches'),
          jsonArrayFrom(
            eb
              .selectFrom('compliance_exemptions')
              .select(['id', 'device_id', 'reason', 'expires_at'])
              .where('client_id', '=', clientId)
              .where('device_id', 'in', list)
              .where('revoked_at', 'is', null),
          ).as('exemptions'),
          jsonArrayFrom(
            eb
              .selectFrom('device_compliance')
              .select(['device_id', 'client_id', 'status', 'findings', 'signature', 'status_since', 'changed_at', 'evaluated_at'])
              .where('client_id', '=', clientId)
              .where('device_id', 'in', list),
          ).as('statuses'),
        ])
        .executeTakeFirstOrThrow();
      // PostgreSQL hands back parsed JSON, SQLite the JSON text.
      const parse = <T>(v: T[] | string): T[] => (typeof v === 'string' ? (JSON.parse(v) as T[]) : v);
      return {
        devices: parse(row.devices),
        volumes: parse(row.volumes),
        keys: parse(row.keys),
        sources: parse(row.sources),
        mismatches: parse(row.mismatches),
        exemptions: parse(row.exemptions),
        statuses: parse(row.statuses) as DeviceComplianceTable[],
      };
    },
    /** Protection history of these volumes, newest first per volume. */
    volumeStates(exec: Executor, clientId: string, volumeIds: readonly string[]) {
      return exec
        .selectFrom('volume_states')
        .select(['volume_id', 'recorded_at', 'protection_status'])
        .where('client_id', '=', clientId)
        .where('volume_id', 'in', [...volumeIds])
        .orderBy('volume_id')
        .orderBy('recorded_at', 'desc')
        .execute();
    },
  };
}
export type ComplianceRepo = ReturnType<typeof createComplianceRepo>;

/** deviceFacts as separate statements (SQLite). */
async function deviceFactsPlain(exec: Executor, clientId: string, list: string[]) {
  const devices = await exec
    .selectFrom('devices')
    .select(['id', 'name', 'last_seen_at', 'last_checkin_at', 'retired_at'])
    .where('client_id', '=', clientId)
    .where('id', 'in', list)
    .execute();
  const volumes = await exec
    .selectFrom('volumes')
    .select(['id', 'device_id', 'mount_point', 'volume_type', 'volume_status', 'protection_status', 'lock_status', 'encryption_method', 'protectors'])
    .where('client_id', '=', clientId)
    .where('device_id', 'in', list)
    .execute();
  const keys = await exec
    .selectFrom('recovery_keys')
    .select(['id', 'device_id', 'key_id', 'volume_id', 'state', 'source_created_at', 'first_seen_at'])
    .where('client_id', '=', clientId)
    .where('device_id', 'in', list)
    .execute();
  const sources = await exec
    .selectFrom('key_sources as s')
    .innerJoin('recovery_keys as k', 'k.id', 's.recovery_key_id')
    .select(['s.recovery_key_id', 's.source_type'])
    .where('s.client_id', '=', clientId)
    .where('k.client_id', '=', clientId)
    .where('k.device_id', 'in', list)
    .where('s.removed_at', 'is', null)
    .execute();
  const mismatches = await exec
    .selectFrom('findings')
    .select(['device_id', 'volume_id', 'protector_id'])
    .where('client_id', '=', clientId)
    .where('device_id', 'in', list)
    .where('kind', '=', 'mismatch')
    .where('resolved_at', 'is', null)
    .execute();
  const exemptions = await exec
    .selectFrom('compliance_exemptions')
    .select(['id', 'device_id', 'reason', 'expires_at'])
    .where('client_id', '=', clientId)
    .where('device_id', 'in', list)
    .where('revoked_at', 'is', null)
    .execute();
  const statuses = await exec.selectFrom('device_compliance').selectAll().where('client_id', '=', clientId).where('device_id', 'in', list).execute();
  return { devices, volumes, keys, sources, mismatches, exemptions, statuses };
}
