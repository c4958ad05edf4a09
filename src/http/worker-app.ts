import Fastify, { type FastifyInstance } from 'fastify';
import { sql } from 'kysely';
import type { Container } from '../container.js';
import { migrationStatus } from '../db/migrate.js';
import { registerErrorHandler } from './plugins/errors.js';
import { registerMetrics } from './plugins/metrics.js';

/**
 * The HTTP side of `keywarden serve --role worker`: a worker runs background tasks only, so it
 * answers health checks and /metrics and nothing else (no API, no console, no sign-in). Keep it
 * on a private address; the load balancer sends users and agents to the api processes.
 */
export async function buildWorkerApp(container: Container, opts: { logger?: boolean | object } = {}): Promise<FastifyInstance> {
  const app = Fastify({
    logger: opts.logger === false ? false : { level: container.config.server.logLevel, ...(typeof opts.logger === 'object' ? opts.logger : {}) },
    trustProxy: container.config.server.trustProxy,
    requestIdHeader: false,
    return503OnClosing: true,
  });
  registerErrorHandler(app, container.audit);
  registerMetrics(app, container.metrics, container.config.scale.metricsToken);
  app.get('/healthz', async () => ({ status: 'ok', role: 'worker' }));
  app.get('/readyz', async (_req, reply) => {
    try {
      await sql`select 1`.execute(container.database.db);
      const pending = (await migrationStatus(container.database.db)).filter((m) => !m.executedAt).map((m) => m.name);
      if (pending.length) return reply.status(503).send({ status: 'migrations pending', pending });
      return { status: 'ready', role: 'worker' };
    } catch {
      return reply.status(503).send({ status: 'database unreachable' });
    }
  });
  await app.ready();
  return app;
}
