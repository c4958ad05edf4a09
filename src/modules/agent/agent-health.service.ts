import { compareAgentVersions, isAgentOutdated } from '../../domain/agent-version.js';
import type { Transactions } from '../../db/transactions.js';
import type { Clock } from '../../lib/clock.js';
import { clientScope, requirePermission, type Actor } from '../authz/authz.js';
import { requireVisibleClient } from '../clients/visible-client.js';
import type { AgentFiles } from './agent-files.js';
import { FAILING_JOB_STATES, type AgentHealthRepo } from './agent-health.repo.js';

const DAY = 86_400_000;
/** Failed and expired jobs count as "failing" for this long after they ended. */
export const FAILING_JOB_DAYS = 7;
export const HEALTH_DEFAULT_LIMIT = 500;
export const HEALTH_MAX_LIMIT = 5000;

export type AgentHealthDevice = {
  id: string;
  name: string;
  client: { id: string; name: string };
  /** What the agent last reported; null when it never said. */
  agentVersion: string | null;
  lastCheckinAt: string | null;
  /** Not checked in for longer than the client's policy allows (staleAfterDays, as the compliance finding "stale"). */
  stale: boolean;
  /** Runs an older agent than the script this server serves, or one whose version is unknown. */
  outdated: boolean;
  /** Jobs of this device that failed or expired in the last 7 days. */
  failingJobs: number;
};
export type AgentHealth = {
  /** The version of the agent script this server serves (GET /agent/Keywarden-Agent.ps1). */
  current: string;
  /** Every device with a live agent, counted by the version it runs (null: not reported). */
  versions: { version: string | null; devices: number }[];
  /** Devices with a live agent, those with a problem first; at most `limit`. */
  devices: AgentHealthDevice[];
  /** Jobs that failed or expired in the last 7 days, newest first; at most `limit`. */
  failingJobs: { id: string; kind: string; state: (typeof FAILING_JOB_STATES)[number]; device: { id: string; name: string }; detail: string | null; finishedAt: string }[];
};

type Deps = {
  tx: Transactions;
  repo: AgentHealthRepo;
  files: Pick<AgentFiles, 'version'>;
  /** The client's policy in force (compliance): its staleAfterDays decides "stale", as for the compliance finding. */
  policyFor: (clientId: string) => Promise<{ staleAfterDays: number }>;
  clock: Clock;
};

/** The version an agent put in its last check-in (the device's facts), or null. */
function reportedVersion(facts: string | null): string | null {
  if (!facts) return null;
  try {
    const v = (JSON.parse(facts) as { agentVersion?: unknown }).agentVersion;
    return typeof v === 'string' && v.trim() ? v.trim().slice(0, 40) : null;
  } catch {
    return null;
  }
}

/** Newest version first; text that is not a version after them, and "not reported" last. */
function byVersionDesc(a: string | null, b: string | null): number {
  if (a === null || b === null) return a === b ? 0 : a === null ? 1 : -1;
  const c = compareAgentVersions(b, a);
  if (c !== null) return c;
  const aOk = compareAgentVersions(a, a) !== null;
  const bOk = compareAgentVersions(b, b) !== null;
  return aOk !== bOk ? (aOk ? -1 : 1) : a.localeCompare(b);
}

/**
 * Agent health: which agent versions run where, which agents stopped checking in, and which jobs
 * they failed lately. Read-only; device:read, within the actor's clients.
 */
export function createAgentHealthService({ tx, repo, files, policyFor, clock }: Deps) {
  return {
    async health(actor: Actor, filter: { clientId?: string; limit?: number } = {}): Promise<AgentHealth> {
      requirePermission(actor, 'device:read');
      // Another client's id answers like one that does not exist.
      if (filter.clientId) await requireVisibleClient(tx.reader, actor, filter.clientId, 'device:read');
      const limit = Math.min(Math.max(filter.limit ?? HEALTH_DEFAULT_LIMIT, 1), HEALTH_MAX_LIMIT);
      const current = files.version();
      const now = Date.parse(clock.now());
      const since = new Date(now - FAILING_JOB_DAYS * DAY).toISOString();
      const f = { scope: clientScope(actor), clientId: filter.clientId };

      const [rows, counts, jobs] = await Promise.all([
        repo.agentDevices(tx.reader, f),
        repo.failingJobCounts(tx.reader, { ...f, since }),
        repo.failingJobs(tx.reader, { ...f, since, limit }),
      ]);
      const failing = new Map(counts.map((c) => [c.device_id, Number(c.n)]));
      const staleDays = new Map<string, number>();
      for (const clientId of new Set(rows.map((r) => r.client_id))) staleDays.set(clientId, (await policyFor(clientId)).staleAfterDays);

      const devices: AgentHealthDevice[] = rows.map((r) => {
        const agentVersion = reportedVersion(r.facts);
        // An agent that enrolled but never checked in is judged from its enrollment.
        const last = r.last_checkin_at ?? r.enrolled_at;
        return {
          id: r.id,
          name: r.name,
          client: { id: r.client_id, name: r.client_name },
          agentVersion,
          lastCheckinAt: r.last_checkin_at,
          stale: last === null || now - Date.parse(last) > staleDays.get(r.client_id)! * DAY,
          outdated: isAgentOutdated(agentVersion, current),
          failingJobs: failing.get(r.id) ?? 0,
        };
      });

      const perVersion = new Map<string | null, number>();
      for (const d of devices) perVersion.set(d.agentVersion, (perVersion.get(d.agentVersion) ?? 0) + 1);
      const versions = [...perVersion].map(([version, n]) => ({ version, devices: n })).sort((a, b) => byVersionDesc(a.version, b.version));

      // Problems first (failing jobs, stale, outdated), so a limited list still shows them.
      const rank = (d: AgentHealthDevice) => (d.failingJobs > 0 ? 0 : 4) + (d.stale ? 0 : 2) + (d.outdated ? 0 : 1);
      devices.sort((a, b) => rank(a) - rank(b) || a.client.name.localeCompare(b.client.name) || a.name.localeCompare(b.name) || a.id.localeCompare(b.id));

      return {
        current,
        versions,
        devices: devices.slice(0, limit),
        failingJobs: jobs.map((j) => ({
          id: j.id,
          kind: j.kind,
          state: j.state as (typeof FAILING_JOB_STATES)[number],
          device: { id: j.device_id, name: j.device_name },
          detail: j.detail,
          finishedAt: j.finished_at!,
        })),
      };
    },
  };
}
export type AgentHealthService = ReturnType<typeof createAgentHealthService>;
