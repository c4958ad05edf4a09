import Fastify, { type FastifyInstance } from 'fastify';
import type { Container } from '../container.js';
import { fastifyTrustProxy } from '../config.js';
import { databaseReadiness } from '../db/health.js';
import { registerErrorHandler } from './plugins/errors.js';
import { registerMetrics } from './plugins/metrics.js';
import { RequestLogController, requestLogSerializers } from './request-log.js';

/**
 * The HTTP side of `keywarden serve --role worker`: a worker runs background tasks only, so it
 * answers health checks and /metrics and nothing else (no API, no console, no sign-in). Keep it
 * on a private address; the load balancer sends users and agents to the api processes.
 */
export async function buildWorkerApp(container: Container, opts: { logger?: boolean | object } = {}): Promise<FastifyInstance> {
  const app = Fastify({
    logger:
      opts.logger === false
        ? false
        : { level: container.config.server.logLevel, serializers: requestLogSerializers, ...(typeof opts.logger === 'object' ? opts.logger : {}) },
    trustProxy: fastifyTrustProxy(container.config.server.trustProxy),
    requestIdHeader: false,
    // One line per request instead of two (RequestLogController).
    logController: new RequestLogController(),
    return503OnClosing: true,
  });
  registerErrorHandler(app, container.audit);
  registerMetrics(app, container.metrics, container.config.scale.metricsToken);
  app.get('/healthz', async () => ({ status: 'ok', role: 'worker' }));
  app.get('/readyz', async (_req, reply) => {
    const r = await databaseReadiness(container.database.db);
    if (r.status !== 'ready') return reply.status(503).send(r);
    return { status: 'ready', role: 'worker' as const };
  });
  await app.ready();
  return app;
}
