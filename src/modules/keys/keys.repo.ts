import { PostgresAdapter, type ExpressionBuilder } from 'kysely';
import * as pgJson from 'kysely/helpers/postgres';
import * as sqliteJson from 'kysely/helpers/sqlite';
import type { Executor } from '../../db/database.js';
import type { DB, KeySourcesTable, RecoveryKeysTable } from '../../db/schema.js';
import type { KeyIdQuery } from '../../domain/key-id.js';
import { keyIdPrefixBounds } from '../../domain/key-id.js';
import { inClientScope, type ClientScope } from '../../db/scope.js';
import { MAX_LOOKUP_LIST, bulkInsert } from '../../db/bulk.js';
import { deviceTextMatch } from '../devices/devices.repo.js';

const CHUNK = 500;

/**
 * Open findings that mark a key "may not unlock": the agent reported another password for it
 * (mismatch), or someone who revealed it said it did not unlock the drive (did_not_unlock).
 */
export const MAY_NOT_UNLOCK_KINDS = ['mismatch', 'did_not_unlock'] as const;
const chunks = <T>(xs: T[], n = CHUNK): T[][] => {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += n) out.push(xs.slice(i, i + n));
  return out;
};

type SourceRow = Pick<KeySourcesTable, 'recovery_key_id' | 'source_type' | 'source_ref' | 'first_seen_at' | 'last_seen_at' | 'removed_at'>;

// PostgreSQL hands back parsed JSON, SQLite the JSON text.
const parseJson = <T>(v: T[] | string): T[] => (typeof v === 'string' ? (JSON.parse(v) as T[]) : v);
const isPostgres = (exec: Executor) => exec.getExecutor().adapter instanceof PostgresAdapter;
const jsonHelpers = (exec: Executor) => (isPostgres(exec) ? pgJson : sqliteJson);

/**
 * What a key summary shows beyond the row, as columns of a query over `recovery_keys as k`: its
 * sources (oldest first) and whether an open finding says it may not unlock.
 */
const summaryExtraColumns = (exec: Executor, eb: ExpressionBuilder<DB & { k: Pick<RecoveryKeysTable, 'id' | 'client_id'> }, 'k'>) => [
  jsonHelpers(exec)
    .jsonArrayFrom(
      eb
        .selectFrom('key_sources as s')
        .select(['s.recovery_key_id', 's.source_type', 's.source_ref', 's.first_seen_at', 's.last_seen_at', 's.removed_at'])
        .whereRef('s.recovery_key_id', '=', 'k.id')
        .orderBy('s.first_seen_at'),
    )
    .as('sources'),
  eb
    .exists(
      eb
        .selectFrom('findings as f')
        .select('f.id')
        // The client first: findings has no index on recovery_key_id, one on (client_id, resolved_at).
        .whereRef('f.client_id', '=', 'k.client_id')
        .whereRef('f.recovery_key_id', '=', 'k.id')
        .where('f.kind', 'in', MAY_NOT_UNLOCK_KINDS)
        .where('f.resolved_at', 'is', null),
    )
    .as('may_not_unlock'),
];
const withParsedExtras = <R extends { sources: SourceRow[] | string; may_not_unlock: unknown }>(r: R) => ({
  ...r,
  sources: parseJson(r.sources),
  may_not_unlock: Boolean(r.may_not_unlock),
});

export type IngestKeyRow = Pick<RecoveryKeysTable, 'id' | 'key_id' | 'fingerprint' | 'state' | 'device_id' | 'volume_id' | 'source_created_at'>;

/** Columns a search or list returns: metadata joined with client, device and volume names. */
const SUMMARY_COLUMNS = [
  'k.id',
  'k.key_id',
  'k.state',
  'k.source_created_at',
  'k.first_seen_at',
  'k.last_seen_at',
  'k.client_id',
  'c.name as client_name',
  'k.device_id',
  'd.name as device_name',
  'v.mount_point',
  'v.volume_type',
] as const;

const insertKeyRows = bulkInsert<RecoveryKeysTable>(
  'recovery_keys',
  [
    'id',
    'client_id',
    'device_id',
    'volume_id',
    'key_id',
    'ciphertext',
    'data_key_version',
    'fingerprint',
    'state',
    'source_created_at',
    'first_seen_at',
    'last_seen_at',
    'state_changed_at',
    'created_at',
    'destroyed_at',
    'destroyed_reason',
  ],
  { types: { data_key_version: 'integer' } },
);
/** A source already recorded for that key only gets its last-seen time moved. */
const upsertSourceRows = bulkInsert<KeySourcesTable>(
  'key_sources',
  ['id', 'client_id', 'recovery_key_id', 'source_type', 'source_ref', 'source_created_at', 'first_seen_at', 'last_seen_at', 'removed_at'],
  { onConflict: 'on conflict (recovery_key_id, source_type, source_ref) do update set last_seen_at = excluded.last_seen_at' },
);

/**
 * Recovery-key rows. Every read filters by client: either one client id or the actor's list of
 * visible clients (null = all), so "not yours" and "does not exist" look the same.
 */
export function createKeysRepo() {
  const summaryQuery = (exec: Executor, scope: ClientScope) =>
    inClientScope(
      exec
        .selectFrom('recovery_keys as k')
        .innerJoin('clients as c', 'c.id', 'k.client_id')
        .leftJoin('devices as d', 'd.id', 'k.device_id')
        .leftJoin('volumes as v', 'v.id', 'k.volume_id')
        .select(SUMMARY_COLUMNS),
      'k.client_id',
      scope,
    );

  // The matching keys first (an index range on key_id, at most `limit` of them), then their
  // client, device and volume names (the console's search box). Joined the other way
  // round, PostgreSQL right after a bulk load (no statistics yet) hashed the whole volumes table
  // for every search: 180 ms at 100,000 keys instead of 3 ms. bench/console-search.ts measures it.
  const keyIdMatches = (exec: Executor, clients: ClientScope, query: KeyIdQuery, limit: number) => {
    let matches = exec
      .selectFrom('recovery_keys')
      .select([
        'id',
        'key_id',
        'state',
        'source_created_at',
        'first_seen_at',
        'last_seen_at',
        'client_id',
        'device_id',
        'volume_id',
        'ciphertext',
        'data_key_version',
      ]);
    if (query.kind === 'full') matches = matches.where('key_id', '=', query.keyId);
    else {
      const { low, high } = keyIdPrefixBounds(query.prefix);
      matches = matches.where('key_id', '>=', low).where('key_id', '<=', high);
    }
    matches = inClientScope(matches, 'client_id', clients);
    return exec
      .selectFrom(matches.orderBy('first_seen_at', 'desc').limit(limit).as('k'))
      .innerJoin('clients as c', 'c.id', 'k.client_id')
      .leftJoin('devices as d', 'd.id', 'k.device_id')
      .leftJoin('volumes as v', 'v.id', 'k.volume_id');
  };

  /**
   * What a key summary shows beyond the row: its sources (oldest first) and which keys may not
   * unlock (an open finding of MAY_NOT_UNLOCK_KINDS), one statement per 500 keys.
   */
  const summaryExtras = async (exec: Executor, keyRowIds: string[]) => {
    const sources: SourceRow[] = [];
    const mayNotUnlock = new Set<string>();
    const { jsonArrayFrom } = jsonHelpers(exec);
    for (const part of chunks(keyRowIds)) {
      // SQLite: two plain statements (no round trips to save; its JSON building costs more).
      if (!isPostgres(exec)) {
        sources.push(
          ...(await exec
            .selectFrom('key_sources')
            .select(['recovery_key_id', 'source_type', 'source_ref', 'first_seen_at', 'last_seen_at', 'removed_at'])
            .where('recovery_key_id', 'in', part)
            .orderBy('first_seen_at')
            .execute()),
        );
        const open = await exec
          .selectFrom('findings')
          .select('recovery_key_id')
          .where('recovery_key_id', 'in', part)
          .where('kind', 'in', MAY_NOT_UNLOCK_KINDS)
          .where('resolved_at', 'is', null)
          .execute();
        for (const f of open) if (f.recovery_key_id) mayNotUnlock.add(f.recovery_key_id);
        continue;
      }
      const row = await exec
        .selectNoFrom((eb) => [
          jsonArrayFrom(
            eb
              .selectFrom('key_sources')
              .select(['recovery_key_id', 'source_type', 'source_ref', 'first_seen_at', 'last_seen_at', 'removed_at'])
              .where('recovery_key_id', 'in', part)
              .orderBy('first_seen_at'),
          ).as('sources'),
          jsonArrayFrom(
            eb
              .selectFrom('findings')
              .select('recovery_key_id')
              .where('recovery_key_id', 'in', part)
              .where('kind', 'in', MAY_NOT_UNLOCK_KINDS)
              .where('resolved_at', 'is', null),
          ).as('findings'),
        ])
        .executeTakeFirstOrThrow();
      sources.push(...parseJson(row.sources));
      for (const f of parseJson(row.findings)) if (f.recovery_key_id) mayNotUnlock.add(f.recovery_key_id);
    }
    return { sources, mayNotUnlock };
  };

  return {
    /** Existing keys of one client that share a key ID or a fingerprint with incoming reports. */
    async findForIngest(exec: Executor, clientId: string, keyIds: string[], fingerprints: string[]): Promise<IngestKeyRow[]> {
      const out: IngestKeyRow[] = [];
      const cols = ['id', 'key_id', 'fingerprint', 'state', 'device_id', 'volume_id', 'source_created_at'] as const;
      for (const part of chunks(keyIds, MAX_LOOKUP_LIST)) {
        out.push(...(await exec.selectFrom('recovery_keys').select(cols).where('client_id', '=', clientId).where('key_id', 'in', part).execute()));
      }
      for (const part of chunks(fingerprints, MAX_LOOKUP_LIST)) {
        out.push(...(await exec.selectFrom('recovery_keys').select(cols).where('client_id', '=', clientId).where('fingerprint', 'in', part).execute()));
      }
      return out;
    },

    insertKeys: (exec: Executor, rows: RecoveryKeysTable[]): Promise<void> => insertKeyRows(exec, rows),

    /** Adds sources; a source already recorded for that key only gets its last-seen time moved. */
    upsertSources: (exec: Executor, rows: KeySourcesTable[]): Promise<void> => upsertSourceRows(exec, rows),

    /**
     * After a full listing from a directory (Entra tenant, AD connection): sources whose key is no
     * longer there get removed_at (the key itself stays); sources whose key came back lose it.
     * Returns how many were newly marked removed.
     */
    async markSourcePresence(
      exec: Executor,
      clientId: string,
      source: { type: string; ref: string },
      present: ReadonlySet<string>,
      now: string,
    ): Promise<number> {
      const rows = await exec
        .selectFrom('key_sources as s')
        .innerJoin('recovery_keys as k', 'k.id', 's.recovery_key_id')
        .select(['s.id', 'k.key_id', 's.removed_at'])
        .where('s.client_id', '=', clientId)
        .where('s.source_type', '=', source.type)
        .where('s.source_ref', '=', source.ref)
        .execute();
      const gone = rows.filter((x) => x.key_id && !present.has(x.key_id) && !x.removed_at).map((x) => x.id);
      const back = rows.filter((x) => x.key_id && present.has(x.key_id) && x.removed_at).map((x) => x.id);
      for (const part of chunks(gone)) await exec.updateTable('key_sources').set({ removed_at: now }).where('id', 'in', part).execute();
      for (const part of chunks(back)) await exec.updateTable('key_sources').set({ removed_at: null }).where('id', 'in', part).execute();
      return gone.length;
    },

    async touch(exec: Executor, clientId: string, ids: string[], now: string): Promise<void> {
      for (const part of chunks(ids, MAX_LOOKUP_LIST)) {
        await exec.updateTable('recovery_keys').set({ last_seen_at: now }).where('client_id', '=', clientId).where('id', 'in', part).execute();
      }
    },

    /** Flags active keys as being in conflict; keys already disclosed, rotated etc. keep their state. */
    async flagConflicts(exec: Executor, clientId: string, ids: string[], now: string): Promise<void> {
      for (const part of chunks(ids, MAX_LOOKUP_LIST)) {
        await exec
          .updateTable('recovery_keys')
          .set({ state: 'conflict', state_changed_at: now })
          .where('client_id', '=', clientId)
          .where('id', 'in', part)
          .where('state', '=', 'active')
          .execute();
      }
    },

    async patch(
      exec: Executor,
      clientId: string,
      id: string,
      patch: Partial<Pick<RecoveryKeysTable, 'key_id' | 'device_id' | 'volume_id' | 'source_created_at'>>,
    ): Promise<void> {
      await exec.updateTable('recovery_keys').set(patch).where('client_id', '=', clientId).where('id', '=', id).execute();
    },

    async setState(exec: Executor, clientId: string, id: string, state: string, now: string): Promise<void> {
      await exec.updateTable('recovery_keys').set({ state, state_changed_at: now }).where('client_id', '=', clientId).where('id', '=', id).execute();
    },

    /**
     * Keys whose ID equals a full key ID or starts with a prefix. The prefix becomes a range
     * (BETWEEN ...0000 AND ...ffff) so both engines use the key_id index.
     */
    searchByKeyId(exec: Executor, clients: ClientScope, query: KeyIdQuery, limit: number) {
      return keyIdMatches(exec, clients, query, limit).select(SUMMARY_COLUMNS).orderBy('k.first_seen_at', 'desc').execute();
    },

    /**
     * The same search for a reveal: each match with its sealed password, so revealing a single
     * match needs no second query.
     */
    async revealCandidates(exec: Executor, clients: ClientScope, query: KeyIdQuery, limit: number) {
      const matches = keyIdMatches(exec, clients, query, limit)
        .select([...SUMMARY_COLUMNS, 'k.ciphertext', 'k.data_key_version'])
        .orderBy('k.first_seen_at', 'desc');
      if (isPostgres(exec)) return (await matches.select((eb) => summaryExtraColumns(exec, eb)).execute()).map(withParsedExtras);
      // SQLite: two statements in process cost less than the correlated JSON columns (measured).
      const rows = await matches.execute();
      const { sources, mayNotUnlock } = await summaryExtras(
        exec,
        rows.map((r) => r.id),
      );
      return rows.map((r) => ({ ...r, sources: sources.filter((x) => x.recovery_key_id === r.id), may_not_unlock: mayNotUnlock.has(r.id) }));
    },

    summaryById(exec: Executor, clients: ClientScope, id: string) {
      return summaryQuery(exec, clients).where('k.id', '=', id).executeTakeFirst();
    },

    /** Keys whose device name, serial number or primary user matches (metadata search). */
    searchByDevice(exec: Executor, clients: ClientScope, text: string, limit: number) {
      return summaryQuery(exec, clients).where(deviceTextMatch('d', text)).orderBy('d.name_key').limit(limit).execute();
    },

    list(exec: Executor, clients: ClientScope, filter: { clientId?: string; deviceId?: string; limit: number; offset: number }) {
      let q = summaryQuery(exec, clients);
      if (filter.clientId) q = q.where('k.client_id', '=', filter.clientId);
      if (filter.deviceId) q = q.where('k.device_id', '=', filter.deviceId);
      return q.orderBy('c.name_key').orderBy('d.name_key').orderBy('k.first_seen_at').limit(filter.limit).offset(filter.offset).execute();
    },

    /** One key record for a reveal, with its sealed password. */
    async revealById(exec: Executor, clients: ClientScope, id: string) {
      const row = await summaryQuery(exec, clients)
        .select(['k.ciphertext', 'k.data_key_version'])
        .select((eb) => summaryExtraColumns(exec, eb))
        .where('k.id', '=', id)
        .executeTakeFirst();
      return row && withParsedExtras(row);
    },

    async sourcesOf(exec: Executor, keyRowIds: string[]) {
      const out: Pick<KeySourcesTable, 'recovery_key_id' | 'source_type' | 'source_ref' | 'first_seen_at' | 'last_seen_at' | 'removed_at'>[] = [];
      for (const part of chunks(keyRowIds)) {
        out.push(
          ...(await exec
            .selectFrom('key_sources')
            .select(['recovery_key_id', 'source_type', 'source_ref', 'first_seen_at', 'last_seen_at', 'removed_at'])
            .where('recovery_key_id', 'in', part)
            .orderBy('first_seen_at')
            .execute()),
        );
      }
      return out;
    },

    summaryExtras,

    /**
     * Open findings about one key ID of one client (the unlock outcome settles them): those filed on
     * any of its records, and key_conflict findings naming the key ID (filed on the reporting device).
     */
    openFindingsAboutKey: (exec: Executor, clientId: string, keyId: string | null, keyRowIds: string[]) =>
      exec
        .selectFrom('findings')
        .select(['id', 'kind', 'device_id', 'recovery_key_id', 'protector_id'])
        .where('client_id', '=', clientId)
        .where('resolved_at', 'is', null)
        .where((eb) =>
          eb.or([
            ...(keyRowIds.length ? [eb('recovery_key_id', 'in', keyRowIds)] : []),
            ...(keyId ? [eb.and([eb('kind', '=', 'key_conflict'), eb('protector_id', '=', keyId)])] : []),
          ]),
        )
        .execute(),

    // ---------------------------------------------------------------- for the agent
    /** The keys of one device, as the agent's check-in compares them with what the device reports. */
    ofDevice: (exec: Executor, clientId: string, deviceId: string) =>
      exec
        .selectFrom('recovery_keys')
        .select(['id', 'key_id', 'state', 'volume_id', 'device_id'])
        .where('client_id', '=', clientId)
        .where('device_id', '=', deviceId)
        .execute(),
    /** One client's keys with these key IDs (whatever device they were filed under). */
    byKeyIds: (exec: Executor, clientId: string, keyIds: string[]) =>
      keyIds.length === 0
        ? Promise.resolve([])
        : exec
            .selectFrom('recovery_keys')
            .select(['id', 'key_id', 'state', 'volume_id', 'device_id'])
            .where('client_id', '=', clientId)
            .where('key_id', 'in', keyIds)
            .execute(),
    /** The key ID and state of one key. */
    stateOf: (exec: Executor, clientId: string, id: string) =>
      exec.selectFrom('recovery_keys').select(['id', 'key_id', 'state']).where('client_id', '=', clientId).where('id', '=', id).executeTakeFirst(),
    /** The device a key belongs to (id and name), when it has one. */
    deviceOf: (exec: Executor, clientId: string, id: string) =>
      exec
        .selectFrom('recovery_keys as k')
        .innerJoin('devices as d', 'd.id', 'k.device_id')
        .select(['d.id', 'd.name'])
        .where('k.client_id', '=', clientId)
        .where('k.id', '=', id)
        .executeTakeFirst(),
    /** The mount point of the volume a key protects, or null when its volume is not known. */
    mountPointOf: async (exec: Executor, clientId: string, id: string) =>
      (
        await exec
          .selectFrom('recovery_keys as k')
          .leftJoin('volumes as v', 'v.id', 'k.volume_id')
          .select('v.mount_point')
          .where('k.client_id', '=', clientId)
          .where('k.id', '=', id)
          .executeTakeFirst()
      )?.mount_point ?? null,

    /** When and why a key was destroyed (what a reveal of a destroyed key answers). */
    destroyedDetails: (exec: Executor, clientId: string, id: string) =>
      exec.selectFrom('recovery_keys').select(['destroyed_at', 'destroyed_reason']).where('client_id', '=', clientId).where('id', '=', id).executeTakeFirst(),

    /**
     * Wipes one key's recovery-password ciphertext and marks it destroyed. The row (key ID, dates,
     * sources, fingerprint) stays, so a source reporting the key again finds it destroyed.
     */
    async destroyMaterial(exec: Executor, clientId: string, id: string, now: string, why: string): Promise<void> {
      await exec
        .updateTable('recovery_keys')
        .set({ ciphertext: '', state: 'destroyed', state_changed_at: now, destroyed_at: now, destroyed_reason: why })
        .where('client_id', '=', clientId)
        .where('id', '=', id)
        .execute();
    },

    /** Marks every not yet destroyed key of a client destroyed (its data key is gone); returns how many. */
    async markClientKeysDestroyed(exec: Executor, clientId: string, now: string, why: string): Promise<number> {
      const r = await exec
        .updateTable('recovery_keys')
        .set({ state: 'destroyed', state_changed_at: now, destroyed_at: now, destroyed_reason: why })
        .where('client_id', '=', clientId)
        .where('destroyed_at', 'is', null)
        .executeTakeFirst();
      return Number(r.numUpdatedRows);
    },
  };
}
export type KeysRepo = ReturnType<typeof createKeysRepo>;
export type KeySummaryRow = Awaited<ReturnType<KeysRepo['list']>>[number];
