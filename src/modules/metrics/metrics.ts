import { createRequire } from 'node:module';
import type { Registry } from 'prom-client';
import type { ScheduledTasksTable } from '../../db/schema.js';
import type { Transactions } from '../../db/transactions.js';
import type { MetricsRepo } from './metrics.repo.js';

/**
 * Prometheus metrics of one Keywarden process (GET /metrics). Each process has its own registry
 * (not prom-client's global one), so several containers in one test process do not collide.
 *
 * Counters are per process: scrape every process and sum. The queue gauges are read from the
 * database at scrape time, so every process reports the same figure: alert on max(), not sum().
 * No label ever carries a key id, device name, user or client name: labels are route patterns,
 * status codes and task kinds only (bounded cardinality, nothing sensitive).
 */
export type PoolStats = () => { total: number; idle: number; waiting: number } | null;
type MetricsDeps = { tx: Pick<Transactions, 'reader'>; repo: MetricsRepo; poolStats?: PoolStats; role?: string };

/**
 * The registry and its metrics are built on first use (`serve` touches them at start, the
 * scheduler after its first task): the CLI's one-shot commands build a container but never load
 * prom-client. prom-client is CommonJS, so it is required synchronously at that moment.
 */
export function createMetrics(deps: MetricsDeps) {
  let built: ReturnType<typeof buildMetrics> | undefined;
  const m = () => (built ??= buildMetrics(deps));
  return {
    get registry(): Registry {
      return m().registry;
    },
    /** One answered HTTP request (route = the pattern, e.g. /api/v1/keys/:id, never the URL). */
    observeRequest(method: string, route: string, status: number, seconds: number) {
      m().observeRequest(method, route, status, seconds);
    },
    /** A background task finished in this process (the scheduler's onRun). */
    observeTask(task: Pick<ScheduledTasksTable, 'kind'>, status: string, ms: number) {
      m().observeTask(task, status, ms);
    },
    leaseLost() {
      m().leaseLost();
    },
    async text(): Promise<{ contentType: string; body: string }> {
      return m().text();
    },
  };
}

function buildMetrics({ tx, repo, poolStats, role = 'all' }: MetricsDeps) {
  const { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } = createRequire(import.meta.url)('prom-client') as typeof import('prom-client');
  const reader = tx.reader;
  const registry = new Registry();
  registry.setDefaultLabels({ role });
  collectDefaultMetrics({ register: registry, prefix: 'keywarden_' });

  const httpRequests = new Counter({
    name: 'keywarden_http_requests_total',
    help: 'HTTP requests answered, by route pattern, method and status code',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [registry],
  });
  const httpDuration = new Histogram({
    name: 'keywarden_http_request_duration_seconds',
    help: 'Time to answer an HTTP request, by route pattern and method',
    labelNames: ['method', 'route'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const checkins = new Counter({
    name: 'keywarden_agent_checkins_total',
    help: 'Agent check-ins answered, by outcome (ok, refused: 4xx, error: 5xx)',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  const tasks = new Counter({
    name: 'keywarden_tasks_total',
    help: 'Background tasks (syncs, rotations, schedules) run by this process, by kind and outcome',
    labelNames: ['kind', 'outcome'] as const,
    registers: [registry],
  });
  const taskDuration = new Histogram({
    name: 'keywarden_task_duration_seconds',
    help: 'Run time of background tasks, by kind',
    labelNames: ['kind'] as const,
    buckets: [0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600],
    registers: [registry],
  });
  const syncs = new Counter({
    name: 'keywarden_sync_runs_total',
    help: 'Entra ID and Active Directory sync runs finished by this process, by source and outcome',
    labelNames: ['source', 'outcome'] as const,
    registers: [registry],
  });
  const leaseLost = new Counter({
    name: 'keywarden_task_leases_lost_total',
    help: 'Task leases this process found taken by another process while it still ran the task (the process was stalled longer than the lease)',
    registers: [registry],
  });

  // Queue depths, read from the database when Prometheus scrapes (one small query each).
  const safe = async (q: () => Promise<number>): Promise<number> => {
    try {
      return await q();
    } catch {
      return -1; // database unreachable (or table missing): /readyz says which
    }
  };
  new Gauge({
    name: 'keywarden_tasks_due',
    help: 'Background tasks that are due and not held by any process (should stay near 0)',
    registers: [registry],
    async collect() {
      const now = new Date().toISOString();
      this.set(await safe(() => repo.tasksDue(reader, now)));
    },
  });
  new Gauge({
    name: 'keywarden_tasks_running',
    help: 'Background tasks currently leased by some process',
    registers: [registry],
    async collect() {
      const now = new Date().toISOString();
      this.set(await safe(() => repo.tasksRunning(reader, now)));
    },
  });
  new Gauge({
    name: 'keywarden_tasks_oldest_due_seconds',
    help: 'How long the oldest due, unleased task has waited (workers falling behind)',
    registers: [registry],
    async collect() {
      const now = new Date().toISOString();
      this.set(
        await safe(async () => {
          const t = await repo.oldestDueAt(reader, now);
          return t ? Math.max(0, (Date.parse(now) - Date.parse(t)) / 1000) : 0;
        }),
      );
    },
  });
  new Gauge({
    name: 'keywarden_agent_jobs_pending',
    help: 'Agent jobs (rotate, backup) waiting for their device to check in',
    registers: [registry],
    async collect() {
      this.set(await safe(() => repo.agentJobsPending(reader)));
    },
  });
  const outbox = new Gauge({
    name: 'keywarden_notifications_outbox_depth',
    help: 'Notifications not yet out: stage unrouted = events in the outbox not yet matched to rules; undelivered = messages waiting to be sent or retried (-1: no such table in this version)',
    labelNames: ['stage'] as const,
    registers: [registry],
    async collect() {
      outbox.set({ stage: 'unrouted' }, await safe(() => repo.outboxUnrouted(reader)));
      outbox.set({ stage: 'undelivered' }, await safe(() => repo.deliveriesPending(reader)));
    },
  });
  if (poolStats) {
    const pool = new Gauge({
      name: 'keywarden_db_pool_connections',
      help: 'PostgreSQL pool connections of this process, by state (waiting = queries queued for a connection)',
      labelNames: ['state'] as const,
      registers: [registry],
      collect() {
        const s = poolStats();
        if (!s) return;
        pool.set({ state: 'total' }, s.total);
        pool.set({ state: 'idle' }, s.idle);
        pool.set({ state: 'waiting' }, s.waiting);
      },
    });
  }

  return {
    registry,
    observeRequest(method: string, route: string, status: number, seconds: number) {
      httpRequests.inc({ method, route, status: String(status) });
      httpDuration.observe({ method, route }, seconds);
      if (route === '/api/v1/agent/checkin') checkins.inc({ outcome: status < 400 ? 'ok' : status < 500 ? 'refused' : 'error' });
    },
    observeTask(task: Pick<ScheduledTasksTable, 'kind'>, status: string, ms: number) {
      const outcome = /^(failed|no handler)/.test(status) ? 'failed' : 'succeeded';
      tasks.inc({ kind: task.kind, outcome });
      taskDuration.observe({ kind: task.kind }, ms / 1000);
      if (task.kind === 'graph-sync' || task.kind === 'ad-sync') syncs.inc({ source: task.kind === 'graph-sync' ? 'entra' : 'ad', outcome });
    },
    leaseLost() {
      leaseLost.inc();
    },
    async text(): Promise<{ contentType: string; body: string }> {
      return { contentType: registry.contentType, body: await registry.metrics() };
    },
  };
}
export type Metrics = ReturnType<typeof createMetrics>;
