import type { FastifyInstance } from 'fastify';
import { sameHash, sha256Hex } from '../../crypto/tokens.js';
import { notFound, unauthenticated } from '../../lib/errors.js';
import type { Metrics } from '../../modules/metrics/metrics.js';

/**
 * GET /metrics (Prometheus text format) and the request counters behind it.
 *
 * A vault's metrics are not public: request rates per route, the number of check-ins and sync
 * failures tell an outsider a lot about an MSP's estate and activity. So /metrics is off (404)
 * until KEYWARDEN_METRICS_TOKEN is set, and then answers only `Authorization: Bearer <that token>`
 * (compared in constant time). It is a separate secret from user sessions and API tokens: a
 * Prometheus server gets no access to keys, and no user session opens /metrics.
 */
export function registerMetrics(app: FastifyInstance, metrics: Metrics, token: string | null): void {
  app.addHook('onResponse', async (request, reply) => {
    // The route pattern, never the raw URL (which may carry ids); unmatched requests share one label.
    const route = request.routeOptions.url ?? 'unmatched';
    if (route === '/metrics') return;
    metrics.observeRequest(request.method, route, reply.statusCode, reply.elapsedTime / 1000);
  });

  const expected = token ? sha256Hex(token) : null;
  app.get('/metrics', { config: { auth: 'public' }, schema: { hide: true } }, async (request, reply) => {
    if (!expected) throw notFound('Metrics are not enabled: set KEYWARDEN_METRICS_TOKEN to expose /metrics to Prometheus.');
    const m = /^Bearer\s+(\S+)$/i.exec(request.headers.authorization ?? '');
    if (!m || !sameHash(sha256Hex(m[1]!), expected)) {
      reply.header('www-authenticate', 'Bearer realm="keywarden-metrics"');
      throw unauthenticated('Send the metrics token (KEYWARDEN_METRICS_TOKEN) as "Authorization: Bearer …".');
    }
    const { contentType, body } = await metrics.text();
    reply.header('cache-control', 'no-store');
    return reply.type(contentType).send(body);
  });
}
