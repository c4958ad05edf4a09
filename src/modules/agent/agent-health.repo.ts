import type { Executor } from '../../db/database.js';
import { inClientScope, type ClientScope } from '../../db/scope.js';

/** Job states that end a job without success. */
export const FAILING_JOB_STATES = ['failed', 'expired'] as const;
/** Jobs in the jobs table that no agent runs (the graph module's Intune rotations). */
const NOT_AGENT_JOB_KINDS = ['intune-rotate'];

type Filter = { scope: ClientScope; clientId?: string };

/**
 * Reads for the agent-health view: devices whose agent holds a live credential, and the jobs their
 * agents failed lately. Devices of archived clients and retired devices are left out (their agents
 * can no longer check in).
 */
export function createAgentHealthRepo() {
  return {
    /** Devices with a live agent credential, with the facts their agent last reported. */
    agentDevices: (exec: Executor, f: Filter) => {
      let q = exec
        .selectFrom('devices as d')
        .innerJoin('clients as c', 'c.id', 'd.client_id')
        .select(['d.id', 'd.name', 'd.client_id', 'c.name as client_name', 'd.facts', 'd.last_checkin_at'])
        // When its newest live credential was issued: the clock for an agent that never checked in.
        .select((eb) =>
          eb
            .selectFrom('agent_credentials as a')
            .select((e) => e.fn.max('a.created_at').as('enrolled_at'))
            .whereRef('a.device_id', '=', 'd.id')
            .whereRef('a.client_id', '=', 'd.client_id')
            .where('a.revoked_at', 'is', null)
            .as('enrolled_at'),
        )
        .where((eb) =>
          eb.exists(
            eb
              .selectFrom('agent_credentials as a')
              .select('a.id')
              .whereRef('a.device_id', '=', 'd.id')
              .whereRef('a.client_id', '=', 'd.client_id')
              .where('a.revoked_at', 'is', null),
          ),
        )
        .where('d.retired_at', 'is', null)
        .where('c.archived_at', 'is', null);
      q = inClientScope(q, 'd.client_id', f.scope);
      if (f.clientId) q = q.where('d.client_id', '=', f.clientId);
      return q.execute();
    },

    /** How many agent jobs of each such device failed or expired since `since`. */
    failingJobCounts: (exec: Executor, f: Filter & { since: string }) => {
      let q = exec
        .selectFrom('jobs as j')
        .select(['j.device_id'])
        .select((eb) => eb.fn.countAll<number | string>().as('n'))
        .where('j.state', 'in', [...FAILING_JOB_STATES])
        .where('j.kind', 'not in', NOT_AGENT_JOB_KINDS)
        .where('j.finished_at', '>=', f.since)
        .groupBy('j.device_id');
      q = inClientScope(q, 'j.client_id', f.scope);
      if (f.clientId) q = q.where('j.client_id', '=', f.clientId);
      return q.execute();
    },

    /** The newest agent jobs that failed or expired since `since`, of devices whose agent is live. */
    failingJobs: (exec: Executor, f: Filter & { since: string; limit: number }) => {
      let q = exec
        .selectFrom('jobs as j')
        .innerJoin('devices as d', (j) => j.onRef('d.id', '=', 'j.device_id').onRef('d.client_id', '=', 'j.client_id'))
        .innerJoin('clients as c', 'c.id', 'j.client_id')
        .select(['j.id', 'j.kind', 'j.state', 'j.detail', 'j.finished_at', 'j.device_id', 'd.name as device_name'])
        .where('j.state', 'in', [...FAILING_JOB_STATES])
        .where('j.kind', 'not in', NOT_AGENT_JOB_KINDS)
        .where('j.finished_at', '>=', f.since)
        .where('d.retired_at', 'is', null)
        .where('c.archived_at', 'is', null)
        .where((eb) =>
          eb.exists(
            eb
              .selectFrom('agent_credentials as a')
              .select('a.id')
              .whereRef('a.device_id', '=', 'd.id')
              .whereRef('a.client_id', '=', 'd.client_id')
              .where('a.revoked_at', 'is', null),
          ),
        )
        .orderBy('j.finished_at', 'desc')
        .orderBy('j.id')
        .limit(f.limit);
      q = inClientScope(q, 'j.client_id', f.scope);
      if (f.clientId) q = q.where('j.client_id', '=', f.clientId);
      return q.execute();
    },
  };
}
export type AgentHealthRepo = ReturnType<typeof createAgentHealthRepo>;
