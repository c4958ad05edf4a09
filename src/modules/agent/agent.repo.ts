import { PostgresAdapter, sql } from 'kysely';
import { jsonArrayFrom, jsonObjectFrom } from 'kysely/helpers/postgres';
import type { Executor } from '../../db/database.js';
import { prepared } from '../../db/prepared.js';
import type {
  AgentCredentialsTable,
  DeviceEventsTable,
  DevicesTable,
  EnrollmentTokensTable,
  FindingsTable,
  JobsTable,
  RecoveryKeysTable,
  VolumesTable,
  VolumeStatesTable,
} from '../../db/schema.js';
import { inClientScope, type ClientScope } from '../../db/scope.js';

/** Jobs a device still has to act on (or report on). */
const ACTIVE_JOB_STATES = ['pending', 'sent', 'awaiting_removal'] as const;

type DeviceRef = { clientId: string; deviceId: string };
type Claim = { credentialId: string; seq: number; now: string };
export type SnapshotKey = Pick<RecoveryKeysTable, 'id' | 'key_id' | 'state' | 'volume_id' | 'device_id'>;
/** What a check-in compares the agent's report with. */
export type CheckinSnapshot = {
  device: DevicesTable | undefined;
  /** The existing device this credential waits to be linked to (null: linked, the usual case). */
  link: string | null;
  volumes: VolumesTable[];
  keys: SnapshotKey[];
  fingerprints: { recovery_key_id: string; fingerprint: string }[];
  findings: FindingsTable[];
  jobs: JobsTable[];
};

// The check-in's statements, compiled once (src/db/prepared.ts). Client id is in every WHERE clause.
const q = {
  credentialByHash: prepared<{ hash: string }, Pick<AgentCredentialsTable, 'id' | 'client_id' | 'device_id' | 'fingerprint_salt' | 'revoked_at'> & {
    device_name: string;
    device_retired_at: string | null;
    client_archived_at: string | null;
  }>((db, p) =>
    db
      .selectFrom('agent_credentials as a')
      .innerJoin('devices as d', (j) => j.onRef('d.id', '=', 'a.device_id').onRef('d.client_id', '=', 'a.client_id'))
      .innerJoin('clients as c', 'c.id', 'a.client_id')
      .select(['a.id', 'a.client_id', 'a.device_id', 'a.fingerprint_salt', 'a.revoked_at', 'd.name as device_name', 'd.retired_at as device_retired_at', 'c.archived_at as client_archived_at'])
      .where('a.credential_hash', '=', p('hash')),
  ),
  /** Moves the sequence forward (no row: a replay), and says whether the credential waits for a link. */
  claimSeq: prepared<Claim, { link_device_id: string | null }>((db, p) =>
    db
      .updateTable('agent_credentials')
      .set({ last_seq: p('seq'), last_used_at: p('now') })
      .where('id', '=', p('credentialId'))
      .where('last_seq', '<', p('seq'))
      .where('revoked_at', 'is', null)
      .returning('link_device_id'),
  ),
  device: prepared<DeviceRef, DevicesTable>((db, p) => db.selectFrom('devices').selectAll().where('client_id', '=', p('clientId')).where('id', '=', p('deviceId'))),
  volumes: prepared<DeviceRef, VolumesTable>((db, p) =>
    db.selectFrom('volumes').selectAll().where('client_id', '=', p('clientId')).where('device_id', '=', p('deviceId')).orderBy('mount_point'),
  ),
  keys: prepared<DeviceRef, SnapshotKey>((db, p) =>
    db.selectFrom('recovery_keys').select(['id', 'key_id', 'state', 'volume_id', 'device_id']).where('client_id', '=', p('clientId')).where('device_id', '=', p('deviceId')),
  ),
  fingerprints: prepared<DeviceRef, { recovery_key_id: string; fingerprint: string }>((db, p) =>
    db.selectFrom('key_agent_fingerprints').select(['recovery_key_id', 'fingerprint']).where('client_id', '=', p('clientId')).where('device_id', '=', p('deviceId')),
  ),
  openFindings: prepared<DeviceRef, FindingsTable>((db, p) =>
    db.selectFrom('findings').selectAll().where('client_id', '=', p('clientId')).where('device_id', '=', p('deviceId')).where('resolved_at', 'is', null),
  ),
  activeJobs: prepared<DeviceRef, JobsTable>((db, p) =>
    db
      .selectFrom('jobs')
      .selectAll()
      .where('client_id', '=', p('clientId'))
      .where('device_id', '=', p('deviceId'))
      .where('state', 'in', [...ACTIVE_JOB_STATES])
      .orderBy('created_at'),
  ),
  insertFinding: prepared<FindingsTable, never>((db, p) =>
    db.insertInto('findings').values({
      id: p('id'),
      client_id: p('client_id'),
      device_id: p('device_id'),
      volume_id: p('volume_id'),
      recovery_key_id: p('recovery_key_id'),
      kind: p('kind'),
      protector_id: p('protector_id'),
      detail: p('detail'),
      opened_at: p('opened_at'),
      resolved_at: p('resolved_at'),
    }),
  ),
  resolveFinding: prepared<{ clientId: string; id: string; now: string }, never>((db, p) =>
    db.updateTable('findings').set({ resolved_at: p('now') }).where('client_id', '=', p('clientId')).where('id', '=', p('id')),
  ),
  insertVolumeState: prepared<VolumeStatesTable, never>((db, p) =>
    db.insertInto('volume_states').values({
      id: p('id'),
      client_id: p('client_id'),
      volume_id: p('volume_id'),
      recorded_at: p('recorded_at'),
      volume_status: p('volume_status'),
      protection_status: p('protection_status'),
      lock_status: p('lock_status'),
      encryption_method: p('encryption_method'),
      encryption_percentage: p('encryption_percentage'),
      protectors: p('protectors'),
    }),
  ),
  /**
   * PostgreSQL: the sequence claim and every read of a check-in in one statement (one round trip
   * instead of eight), on its own (autocommit), committed without waiting for the WAL flush (see
   * claimRoutine). Every column is text or integer: JSON carries them unchanged.
   */
  pgClaimAndSnapshotRelaxed: pgSnapshot('claim-relaxed'),
  /** Inside a transaction, for a check-in whose claim was already committed: the credential row locked, and the reads. */
  pgLockAndSnapshot: pgSnapshot('lock'),
};

type PgSnapshotRow = { claimed: number; link: string | null } & Omit<CheckinSnapshot, 'link' | 'device'> & { device: DevicesTable | null };

function pgSnapshot(mode: 'claim-relaxed' | 'lock') {
  return prepared<DeviceRef & Partial<Claim> & { credentialId: string }, PgSnapshotRow>((db, p) => {
    const base =
      mode === 'lock'
        ? db.with('claim', (w) => w.selectFrom('agent_credentials').select('link_device_id').where('id', '=', p('credentialId')).forUpdate())
        : db.with('claim', (w) =>
            w
              .updateTable('agent_credentials')
              .set({ last_seq: p('seq') as number, last_used_at: p('now') as string })
              .where('id', '=', p('credentialId'))
              .where('last_seq', '<', p('seq') as number)
              .where('revoked_at', 'is', null)
              .returning(['link_device_id']),
          );
    return base.selectNoFrom((eb) => [
      eb.selectFrom('claim').select((e) => e.fn.countAll<number>().as('n')).as('claimed'),
      eb.selectFrom('claim').select('link_device_id').as('link'),
      // A statement of its own is its own transaction: this lets its commit skip the WAL flush.
      ...(mode === 'lock' ? [] : [sql<string>`set_config('synchronous_commit', 'off', true)`.as('relaxed')]),
      jsonObjectFrom(eb.selectFrom('devices').selectAll().where('client_id', '=', p('clientId')).where('id', '=', p('deviceId'))).as('device'),
      jsonArrayFrom(eb.selectFrom('volumes').selectAll().where('client_id', '=', p('clientId')).where('device_id', '=', p('deviceId')).orderBy('mount_point')).as(
        'volumes',
      ),
      jsonArrayFrom(
        eb
          .selectFrom('recovery_keys')
          .select(['id', 'key_id', 'state', 'volume_id', 'device_id'])
          .where('client_id', '=', p('clientId'))
          .where('device_id', '=', p('deviceId')),
      ).as('keys'),
      jsonArrayFrom(
        eb.selectFrom('key_agent_fingerprints').select(['recovery_key_id', 'fingerprint']).where('client_id', '=', p('clientId')).where('device_id', '=', p('deviceId')),
      ).as('fingerprints'),
      jsonArrayFrom(
        eb.selectFrom('findings').selectAll().where('client_id', '=', p('clientId')).where('device_id', '=', p('deviceId')).where('resolved_at', 'is', null),
      ).as('findings'),
      jsonArrayFrom(
        eb
          .selectFrom('jobs')
          .selectAll()
          .where('client_id', '=', p('clientId'))
          .where('device_id', '=', p('deviceId'))
          .where('state', 'in', [...ACTIVE_JOB_STATES])
          .orderBy('created_at'),
      ).as('jobs'),
    ]) as never;
  });
}

function snapshotOf(r: PgSnapshotRow): CheckinSnapshot {
  const { device, link, volumes, keys, fingerprints, findings, jobs } = r;
  return { device: device ?? undefined, link, volumes, keys, fingerprints, findings, jobs };
}

/** IN lists of at most 500 ids (PostgreSQL and SQLite both cap bound parameters). */
function chunked<T>(xs: readonly T[], n = 500): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += n) out.push(xs.slice(i, i + n));
  return out;
}

/**
 * SQL for enrollment, check-ins, findings and jobs. Client id (or a client scope) is in every
 * WHERE clause. Devices, volumes and keys are written through their own modules' repos.
 */
export function createAgentRepo() {
  return {
    // enrollment tokens
    async insertEnrollmentToken(exec: Executor, row: EnrollmentTokensTable) {
      await exec.insertInto('enrollment_tokens').values(row).execute();
    },
    findEnrollmentTokenByHash: (exec: Executor, hash: string) =>
      exec.selectFrom('enrollment_tokens').selectAll().where('token_hash', '=', hash).executeTakeFirst(),
    findEnrollmentToken: (exec: Executor, id: string, clients: ClientScope) =>
      inClientScope(exec.selectFrom('enrollment_tokens').selectAll().where('id', '=', id), 'client_id', clients).executeTakeFirst(),
    listEnrollmentTokens: (exec: Executor, clients: ClientScope, clientId?: string) => {
      let q = inClientScope(exec.selectFrom('enrollment_tokens').selectAll().orderBy('created_at', 'desc'), 'client_id', clients);
      if (clientId) q = q.where('client_id', '=', clientId);
      return q.execute();
    },
    /** Takes one use of a token, atomically; false when it is used up, expired or revoked meanwhile. */
    async useEnrollmentToken(exec: Executor, id: string, now: string): Promise<boolean> {
      const r = await exec
        .updateTable('enrollment_tokens')
        .set((eb) => ({ uses: eb('uses', '+', 1) }))
        .where('id', '=', id)
        .where('revoked_at', 'is', null)
        .where('expires_at', '>', now)
        // An archived client takes no new devices.
        .where((eb) => eb.not(eb.exists(eb.selectFrom('clients').select('id').whereRef('clients.id', '=', 'enrollment_tokens.client_id').where('clients.archived_at', 'is not', null))))
        .where((eb) => eb.or([eb('max_uses', 'is', null), eb('uses', '<', eb.ref('max_uses'))]))
        .executeTakeFirst();
      return Number(r.numUpdatedRows) === 1;
    },
    async revokeEnrollmentToken(exec: Executor, id: string, now: string) {
      await exec.updateTable('enrollment_tokens').set({ revoked_at: now }).where('id', '=', id).execute();
    },

    // credentials
    async insertCredential(exec: Executor, row: AgentCredentialsTable) {
      await exec.insertInto('agent_credentials').values(row).execute();
    },
    async revokeDeviceCredentials(exec: Executor, clientId: string, deviceId: string, now: string): Promise<number> {
      const r = await exec
        .updateTable('agent_credentials')
        .set({ revoked_at: now })
        .where('client_id', '=', clientId)
        .where('device_id', '=', deviceId)
        .where('revoked_at', 'is', null)
        .executeTakeFirst();
      return Number(r.numUpdatedRows);
    },
    /** The credential with its device in one round trip (every agent request starts here). */
    findCredentialByHash: (exec: Executor, hash: string) => q.credentialByHash.first(exec, { hash }),
    hasActiveCredential: async (exec: Executor, clientId: string, deviceId: string) =>
      !!(await exec
        .selectFrom('agent_credentials')
        .select('id')
        .where('client_id', '=', clientId)
        .where('device_id', '=', deviceId)
        .where('revoked_at', 'is', null)
        .executeTakeFirst()),
    /** Moves the sequence forward; false when seq is not above the last one (a replay). */
    async claimSeq(exec: Executor, credentialId: string, seq: number, now: string): Promise<boolean> {
      return (await q.claimSeq.all(exec, { credentialId, seq, now })).length === 1;
    },
    /**
     * A check-in's start inside its transaction (SQLite): claims the sequence number (false: a
     * replay) and reads what the report is compared with, one prepared statement after another (no
     * round trips to save). PostgreSQL starts with claimRoutine instead.
     */
    async claimAndSnapshot(exec: Executor, ref: DeviceRef, claim: Claim): Promise<{ claimed: false } | { claimed: true; snapshot: CheckinSnapshot }> {
      const claimed = await q.claimSeq.all(exec, claim);
      if (claimed.length !== 1) return { claimed: false };
      return {
        claimed: true,
        snapshot: {
          device: await q.device.first(exec, ref),
          link: claimed[0]!.link_device_id,
          volumes: await q.volumes.all(exec, ref),
          keys: await q.keys.all(exec, ref),
          fingerprints: await q.fingerprints.all(exec, ref),
          findings: await q.openFindings.all(exec, ref),
          jobs: await q.activeJobs.all(exec, ref),
        },
      };
    },
    /**
     * PostgreSQL only (null on SQLite): claimAndSnapshot as a statement of its own, outside any
     * transaction, committed at once without waiting for the WAL flush. For a routine check-in
     * that is all the database work there is; one that has more to do runs again in a
     * transaction (lockAndSnapshot). A lost claim (a crash of PostgreSQL itself within a moment)
     * only lets the same sequence number be used once more, for a check-in that changed nothing.
     */
    async claimRoutine(exec: Executor, ref: DeviceRef, claim: Claim): Promise<null | { claimed: false } | { claimed: true; snapshot: CheckinSnapshot }> {
      if (!(exec.getExecutor().adapter instanceof PostgresAdapter)) return null;
      const r = (await q.pgClaimAndSnapshotRelaxed.first(exec, { ...ref, ...claim }))!;
      return Number(r.claimed) === 1 ? { claimed: true, snapshot: snapshotOf(r) } : { claimed: false };
    },
    /** PostgreSQL, in a transaction: the check-in's credential row locked (no claim: it was made) and the snapshot; undefined when the credential is gone. */
    async lockAndSnapshot(exec: Executor, ref: DeviceRef, credentialId: string): Promise<CheckinSnapshot | undefined> {
      const r = (await q.pgLockAndSnapshot.first(exec, { ...ref, credentialId }))!;
      return Number(r.claimed) === 1 ? snapshotOf(r) : undefined;
    },
    /** The live credential of a device that waits for an admin to link it to an existing device. */
    pendingLinkOf: (exec: Executor, clientId: string, deviceId: string) =>
      exec
        .selectFrom('agent_credentials')
        .select(['id', 'link_device_id', 'link_match'])
        .where('client_id', '=', clientId)
        .where('device_id', '=', deviceId)
        .where('revoked_at', 'is', null)
        .where('link_device_id', 'is not', null)
        .executeTakeFirst(),
    /** Agents waiting for a link, with the device they enrolled as and the device they claim to be. */
    listPendingLinks: (exec: Executor, clients: ClientScope, clientId?: string) => {
      let q = exec
        .selectFrom('agent_credentials as a')
        .innerJoin('devices as d', (j) => j.onRef('d.id', '=', 'a.device_id').onRef('d.client_id', '=', 'a.client_id'))
        .leftJoin('devices as t', (j) => j.onRef('t.id', '=', 'a.link_device_id').onRef('t.client_id', '=', 'a.client_id'))
        .innerJoin('clients as c', 'c.id', 'a.client_id')
        .select(['a.id', 'a.client_id', 'c.name as client_name', 'a.device_id', 'd.name as device_name', 'a.link_device_id', 't.name as link_device_name', 'a.link_match', 'a.created_at'])
        .where('a.revoked_at', 'is', null)
        .where('a.link_device_id', 'is not', null)
        .orderBy('a.created_at');
      q = inClientScope(q, 'a.client_id', clients);
      if (clientId) q = q.where('a.client_id', '=', clientId);
      return q.execute();
    },
    /** Approval: the credential now belongs to the existing device. */
    async linkCredential(exec: Executor, clientId: string, credentialId: string, deviceId: string): Promise<void> {
      await exec
        .updateTable('agent_credentials')
        .set({ device_id: deviceId, link_device_id: null, link_match: null })
        .where('client_id', '=', clientId)
        .where('id', '=', credentialId)
        .execute();
    },
    /** Approval: fingerprints the agent's uploads left under its own device record follow the keys. */
    async moveFingerprints(exec: Executor, clientId: string, fromDeviceId: string, toDeviceId: string): Promise<void> {
      await exec.deleteFrom('key_agent_fingerprints').where('client_id', '=', clientId).where('device_id', '=', toDeviceId).execute();
      await exec.updateTable('key_agent_fingerprints').set({ device_id: toDeviceId }).where('client_id', '=', clientId).where('device_id', '=', fromDeviceId).execute();
    },
    /** Approval: the jobs of the device record the agent waited in end with it. */
    async cancelJobsOf(exec: Executor, clientId: string, deviceId: string, now: string, detail: string): Promise<void> {
      await exec
        .updateTable('jobs')
        .set({ state: 'cancelled', finished_at: now, detail })
        .where('client_id', '=', clientId)
        .where('device_id', '=', deviceId)
        .where('state', 'in', ['pending', 'sent', 'awaiting_removal'])
        .execute();
    },
    lastSeq: async (exec: Executor, credentialId: string) =>
      (await exec.selectFrom('agent_credentials').select('last_seq').where('id', '=', credentialId).executeTakeFirst())?.last_seq ?? 0,

    // volumes
    async insertVolumeState(exec: Executor, row: VolumeStatesTable) {
      await q.insertVolumeState.run(exec, row);
    },

    /**
     * A routine check-in changes little but must still be durable enough: when it wrote no audit
     * event, PostgreSQL may acknowledge the commit before its WAL reaches disk (the next check-in
     * repeats the same facts anyway). SQLite: nothing to do.
     */
    async relaxDurability(exec: Executor): Promise<void> {
      if (exec.getExecutor().adapter instanceof PostgresAdapter) await sql`set local synchronous_commit to off`.execute(exec);
    },
    fingerprintsOf: (exec: Executor, clientId: string, deviceId: string) => q.fingerprints.all(exec, { clientId, deviceId }),
    async saveFingerprint(exec: Executor, row: { recovery_key_id: string; device_id: string; client_id: string; fingerprint: string; created_at: string }) {
      await exec
        .insertInto('key_agent_fingerprints')
        .values(row)
        .onConflict((oc) => oc.columns(['recovery_key_id', 'device_id']).doUpdateSet({ fingerprint: row.fingerprint, created_at: row.created_at }))
        .execute();
    },
    // events
    async insertEvent(exec: Executor, row: DeviceEventsTable): Promise<boolean> {
      const seen = await exec
        .selectFrom('device_events')
        .select('id')
        .where('client_id', '=', row.client_id)
        .where('device_id', '=', row.device_id)
        .where('event_id', '=', row.event_id)
        .where('occurred_at', '=', row.occurred_at)
        .executeTakeFirst();
      if (seen) return false;
      await exec.insertInto('device_events').values(row).execute();
      return true;
    },

    // findings
    openFindings: (exec: Executor, clientId: string, deviceId: string) => q.openFindings.all(exec, { clientId, deviceId }),
    async insertFinding(exec: Executor, row: FindingsTable) {
      await q.insertFinding.run(exec, row);
    },
    async resolveFinding(exec: Executor, clientId: string, id: string, now: string) {
      await q.resolveFinding.run(exec, { clientId, id, now });
    },
    listFindings: (
      exec: Executor,
      clients: ClientScope,
      f: { clientId?: string; deviceId?: string; open?: boolean; kinds?: readonly string[]; limit: number; offset?: number },
    ) => {
      let q = exec
        .selectFrom('findings as f')
        .innerJoin('devices as d', 'd.id', 'f.device_id')
        .innerJoin('clients as c', 'c.id', 'f.client_id')
        .leftJoin('volumes as v', 'v.id', 'f.volume_id')
        .select(['f.id', 'f.kind', 'f.detail', 'f.protector_id', 'f.opened_at', 'f.resolved_at', 'f.client_id', 'c.name as client_name', 'f.device_id', 'd.name as device_name', 'v.mount_point'])
        .orderBy('f.opened_at', 'desc')
        .orderBy('f.id')
        .limit(f.limit)
        .offset(f.offset ?? 0);
      q = inClientScope(q, 'f.client_id', clients);
      if (f.clientId) q = q.where('f.client_id', '=', f.clientId);
      if (f.deviceId) q = q.where('f.device_id', '=', f.deviceId);
      // The service asks for no kinds at all without calling (an empty IN list is not SQL).
      if (f.kinds?.length) q = q.where('f.kind', 'in', f.kinds);
      if (f.open !== undefined) q = f.open ? q.where('f.resolved_at', 'is', null) : q.where('f.resolved_at', 'is not', null);
      return q.execute();
    },

    // jobs
    async insertJob(exec: Executor, row: JobsTable) {
      await exec.insertInto('jobs').values(row).execute();
    },
    findJob: (exec: Executor, clientId: string, deviceId: string, id: string) =>
      exec.selectFrom('jobs').selectAll().where('client_id', '=', clientId).where('device_id', '=', deviceId).where('id', '=', id).executeTakeFirst(),
    activeJobs: (exec: Executor, clientId: string, deviceId: string) => q.activeJobs.all(exec, { clientId, deviceId }),
    jobsOf: (exec: Executor, clientId: string, deviceId: string) =>
      exec.selectFrom('jobs').selectAll().where('client_id', '=', clientId).where('device_id', '=', deviceId).orderBy('created_at', 'desc').limit(200).execute(),
    async updateJob(exec: Executor, clientId: string, id: string, patch: Partial<Omit<JobsTable, 'id' | 'client_id' | 'device_id'>>) {
      await exec.updateTable('jobs').set(patch).where('client_id', '=', clientId).where('id', '=', id).execute();
    },
    /** The kind of a rotation (rotate, intune-rotate) that is now waiting to replace this key, if any. */
    pendingRotationKind: async (exec: Executor, clientId: string, recoveryKeyId: string): Promise<'rotate' | 'intune-rotate' | null> => {
      const job = await exec
        .selectFrom('jobs')
        .select('kind')
        .where('client_id', '=', clientId)
        .where('recovery_key_id', '=', recoveryKeyId)
        .where('kind', 'in', ['rotate', 'intune-rotate'])
        .where('state', 'in', ['pending', 'sent'])
        .executeTakeFirst();
      return job ? (job.kind as 'rotate' | 'intune-rotate') : null;
    },
    /** A job by its id alone: for task handlers that were given only the job id. */
    findJobById: (exec: Executor, id: string) => exec.selectFrom('jobs').selectAll().where('id', '=', id).executeTakeFirst(),
    /** One client's jobs of one kind in one state (e.g. Intune rotations awaiting confirmation). */
    jobsOfKind: (exec: Executor, clientId: string, kind: string, state: string) =>
      exec.selectFrom('jobs').selectAll().where('client_id', '=', clientId).where('kind', '=', kind).where('state', '=', state).execute(),
    // jobs of many devices (bulk queueing, policy enforcement): a fixed number of queries per batch
    /**
     * What decides whether a device's agent may be given work: retired, on legal hold (device or
     * client), a live credential, waiting for an admin to link it. Only devices of the client.
     */
    async jobTargets(exec: Executor, clientId: string, deviceIds: readonly string[]) {
      const out = [];
      for (const ids of chunked(deviceIds)) {
        out.push(
          ...(await exec
            .selectFrom('devices as d')
            .innerJoin('clients as c', 'c.id', 'd.client_id')
            .select(['d.id', 'd.name', 'd.retired_at', 'd.legal_hold_at', 'c.legal_hold_at as client_legal_hold_at'])
            .select((eb) => [
              eb
                .exists(eb.selectFrom('agent_credentials as a').select('a.id').whereRef('a.device_id', '=', 'd.id').whereRef('a.client_id', '=', 'd.client_id').where('a.revoked_at', 'is', null))
                .as('has_agent'),
              eb
                .exists(
                  eb
                    .selectFrom('agent_credentials as a')
                    .select('a.id')
                    .whereRef('a.device_id', '=', 'd.id')
                    .whereRef('a.client_id', '=', 'd.client_id')
                    .where('a.revoked_at', 'is', null)
                    .where('a.link_device_id', 'is not', null),
                )
                .as('pending_link'),
            ])
            .where('d.client_id', '=', clientId)
            .where('d.id', 'in', ids)
            .execute()),
        );
      }
      // SQLite answers EXISTS with 0/1, PostgreSQL with a boolean.
      return out.map((r) => ({ ...r, has_agent: !!r.has_agent, pending_link: !!r.pending_link }));
    },
    /** Devices of a client (not retired) whose agent holds a live credential, in id order. */
    agentDeviceIds: async (exec: Executor, clientId: string): Promise<string[]> =>
      (
        await exec
          .selectFrom('devices as d')
          .select('d.id')
          .where('d.client_id', '=', clientId)
          .where('d.retired_at', 'is', null)
          .where((eb) =>
            eb.exists(eb.selectFrom('agent_credentials as a').select('a.id').whereRef('a.device_id', '=', 'd.id').whereRef('a.client_id', '=', 'd.client_id').where('a.revoked_at', 'is', null)),
          )
          .orderBy('d.id')
          .execute()
      ).map((r) => r.id),
    /** The volumes the agents of these devices last reported. */
    async volumesOfDevices(exec: Executor, clientId: string, deviceIds: readonly string[]) {
      const out = [];
      for (const ids of chunked(deviceIds)) {
        out.push(
          ...(await exec
            .selectFrom('volumes')
            .select(['id', 'device_id', 'mount_point', 'volume_type', 'volume_status', 'protectors'])
            .where('client_id', '=', clientId)
            .where('device_id', 'in', ids)
            .execute()),
        );
      }
      return out;
    },
    /** Jobs of these devices that are waiting or running. */
    async activeJobsOfDevices(exec: Executor, clientId: string, deviceIds: readonly string[]) {
      const out: JobsTable[] = [];
      for (const ids of chunked(deviceIds)) {
        out.push(
          ...(await exec
            .selectFrom('jobs')
            .selectAll()
            .where('client_id', '=', clientId)
            .where('device_id', 'in', ids)
            .where('state', 'in', ['pending', 'sent', 'awaiting_removal'])
            .execute()),
        );
      }
      return out;
    },
    /** Jobs of these devices that ended (done, failed or expired) at or after `since`. */
    async jobsEndedSince(exec: Executor, clientId: string, deviceIds: readonly string[], since: string) {
      const out: JobsTable[] = [];
      for (const ids of chunked(deviceIds)) {
        out.push(
          ...(await exec
            .selectFrom('jobs')
            .selectAll()
            .where('client_id', '=', clientId)
            .where('device_id', 'in', ids)
            .where('state', 'in', ['succeeded', 'failed', 'expired'])
            .where('finished_at', '>=', since)
            .execute()),
        );
      }
      return out;
    },
    /** A client's agent jobs with their device's name, newest first. */
    clientJobs: (exec: Executor, clientId: string, f: { kinds: readonly string[]; states?: readonly string[]; limit: number }) => {
      let q = exec
        .selectFrom('jobs as j')
        .innerJoin('devices as d', (j) => j.onRef('d.id', '=', 'j.device_id').onRef('d.client_id', '=', 'j.client_id'))
        .selectAll('j')
        .select('d.name as device_name')
        .where('j.client_id', '=', clientId)
        .where('j.kind', 'in', [...f.kinds]);
      if (f.states) q = q.where('j.state', 'in', [...f.states]);
      return q.orderBy('j.created_at', 'desc').orderBy('j.id').limit(f.limit).execute();
    },

    /** An offboarded client: its agents' credentials and enrollment tokens stop, its open jobs are cancelled. */
    async stopClient(exec: Executor, clientId: string, now: string, detail: string): Promise<void> {
      await exec.updateTable('agent_credentials').set({ revoked_at: now }).where('client_id', '=', clientId).where('revoked_at', 'is', null).execute();
      await exec.updateTable('enrollment_tokens').set({ revoked_at: now }).where('client_id', '=', clientId).where('revoked_at', 'is', null).execute();
      await exec
        .updateTable('jobs')
        .set({ state: 'cancelled', finished_at: now, detail })
        .where('client_id', '=', clientId)
        .where('state', 'in', ['pending', 'sent', 'awaiting_removal'])
        .execute();
    },
  };
}
export type AgentRepo = ReturnType<typeof createAgentRepo>;
