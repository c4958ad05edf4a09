import type { Executor } from '../../db/database.js';
import type { PsaFindingTicketsTable, PsaTicketRulesTable } from '../../db/schema.js';

/** Rows still "covering" a finding: open tickets, and tickets closed in the PSA not long ago (see README). */
export type CoveringRow = PsaFindingTicketsTable;

/**
 * Findings → PSA tickets: the per-client rules (with the run lease and the last failure) and one
 * row per (client, device, finding code) that has a ticket (device NULL for a client-level finding
 * about the client's tenant). Reads each device's stored compliance evaluation and its rotate jobs
 * (TABLE_READS in src/db/owners.ts), never writes them; the tenant posture comes from the graph
 * module's service, not from here.
 */
export function createPsaFindingsRepo() {
  return {
    // ------------------------------------------------------------------ rules
    findRules(exec: Executor, clientId: string) {
      return exec.selectFrom('psa_ticket_rules').selectAll().where('client_id', '=', clientId).executeTakeFirst();
    },
    async upsertRules(
      exec: Executor,
      row: Pick<
        PsaTicketRulesTable,
        'client_id' | 'enabled' | 'codes' | 'priority' | 'queue' | 'digest' | 'digest_threshold' | 'updated_at' | 'updated_by_name'
      >,
    ): Promise<void> {
      const { client_id: _c, ...set } = row;
      await exec
        .insertInto('psa_ticket_rules')
        .values({ ...row, run_owner: null, run_until: null, last_run_at: null, failing_since: null, last_error: null })
        .onConflict((oc) => oc.column('client_id').doUpdateSet(set))
        .execute();
    },
    /**
     * Takes the client's run lease when it is free (or expired, or already ours): a conditional
     * UPDATE, so of two runs at once exactly one gets it on either engine.
     */
    async claimRun(exec: Executor, clientId: string, owner: string, now: string, until: string): Promise<boolean> {
      const r = await exec
        .updateTable('psa_ticket_rules')
        .set({ run_owner: owner, run_until: until })
        .where('client_id', '=', clientId)
        .where((eb) => eb.or([eb('run_until', 'is', null), eb('run_until', '<', now), eb('run_owner', '=', owner)]))
        .executeTakeFirst();
      return Number(r.numUpdatedRows) === 1;
    },
    async renewRun(exec: Executor, clientId: string, owner: string, until: string): Promise<void> {
      await exec.updateTable('psa_ticket_rules').set({ run_until: until }).where('client_id', '=', clientId).where('run_owner', '=', owner).execute();
    },
    async finishRun(
      exec: Executor,
      clientId: string,
      owner: string,
      patch: Pick<PsaTicketRulesTable, 'last_run_at' | 'failing_since' | 'last_error'>,
    ): Promise<void> {
      await exec
        .updateTable('psa_ticket_rules')
        .set({ ...patch, run_owner: null, run_until: null })
        .where('client_id', '=', clientId)
        .where('run_owner', '=', owner)
        .execute();
    },

    // ------------------------------------------------------------------ what the tickets are about
    async clientName(exec: Executor, clientId: string): Promise<string | undefined> {
      return (await exec.selectFrom('clients').select('name').where('id', '=', clientId).executeTakeFirst())?.name;
    },
    /** The client's devices that are not retired, with their stored evaluation. */
    currentEvaluations(exec: Executor, clientId: string) {
      return exec
        .selectFrom('device_compliance as s')
        .innerJoin('devices as d', 'd.id', 's.device_id')
        .select(['s.device_id', 'd.name', 's.status', 's.findings'])
        .where('s.client_id', '=', clientId)
        .where('d.client_id', '=', clientId)
        .where('d.retired_at', 'is', null)
        .orderBy('s.device_id')
        .execute();
    },
    /** The client's finished rotate jobs since `since`, oldest first, with their device's name (not retired). */
    finishedRotations(exec: Executor, clientId: string, since: string) {
      return exec
        .selectFrom('jobs as j')
        .innerJoin('devices as d', 'd.id', 'j.device_id')
        .select(['j.device_id', 'd.name', 'j.mount_point', 'j.state', 'j.created_at', 'j.finished_at'])
        .where('j.client_id', '=', clientId)
        .where('j.kind', '=', 'rotate')
        .where('j.state', 'in', ['succeeded', 'failed', 'expired', 'cancelled'])
        .where('j.created_at', '>=', since)
        .where('d.retired_at', 'is', null)
        .orderBy('j.created_at')
        .orderBy('j.id')
        .execute();
    },

    // ------------------------------------------------------------------ ticket rows
    /** Open rows, and rows closed in the PSA since `closedSince` (they hold back a new ticket for a while). */
    coveringRows(exec: Executor, clientId: string, closedSince: string): Promise<CoveringRow[]> {
      return exec
        .selectFrom('psa_finding_tickets')
        .selectAll()
        .where('client_id', '=', clientId)
        .where((eb) => eb.or([eb('state', '=', 'open'), eb.and([eb('state', '=', 'closed_in_psa'), eb('closed_at', '>=', closedSince)])]))
        .orderBy('opened_at')
        .orderBy('id')
        .execute();
    },
    async insertRows(exec: Executor, rows: PsaFindingTicketsTable[]): Promise<void> {
      if (rows.length) await exec.insertInto('psa_finding_tickets').values(rows).execute();
    },
    async updateRows(
      exec: Executor,
      clientId: string,
      ids: readonly string[],
      patch: Partial<
        Pick<PsaFindingTicketsTable, 'state' | 'open_key' | 'title' | 'body' | 'priority' | 'updated_at' | 'checked_at' | 'closed_at' | 'closed_reason'>
      >,
    ): Promise<void> {
      if (ids.length === 0) return;
      await exec
        .updateTable('psa_finding_tickets')
        .set(patch)
        .where('client_id', '=', clientId)
        .where('id', 'in', [...ids])
        .execute();
    },
    /** The client's rows, newest first (open ones first), bounded. */
    listRows(exec: Executor, clientId: string, limit: number) {
      return exec
        .selectFrom('psa_finding_tickets')
        .selectAll()
        .where('client_id', '=', clientId)
        .orderBy('opened_at', 'desc')
        .orderBy('id')
        .limit(limit)
        .execute();
    },
  };
}
export type PsaFindingsRepo = ReturnType<typeof createPsaFindingsRepo>;
