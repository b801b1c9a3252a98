/**
 * The HTTP side of the metrics (`src/metrics.ts`): every answer counted and timed by route pattern, and
 * where `GET /metrics` is served: behind the API key on the main port, or (`METRICS_PORT`) only on its
 * own listener, without one (`./metrics-listener.ts`).
 */
import type { FastifyInstance } from 'fastify';
import type { Config } from '../config.js';
import type { Metrics } from '../metrics.js';
import metricsRoutes from '../../routes/metrics.js';
import { requireApiKey } from './auth.js';
import { buildMetricsListener } from './metrics-listener.js';

/** Counts and times every answer (`roiserve_http_requests_total`, `…_request_duration_seconds`). */
export function countRequests(app: FastifyInstance, metrics: Metrics): void {
  app.addHook('onResponse', async (request, reply) => {
    const labels = {
      method: request.method,
      route: request.routeOptions.url ?? 'unmatched',
      status: String(reply.statusCode),
    };
    metrics.requests.inc(labels);
    metrics.requestDuration.observe(labels, reply.elapsedTime / 1000);
  });
}

/**
 * Serves `/metrics`: on this app behind the key, or on the separate listener (decorated as
 * `app.metricsListener`, closed with the app) when `METRICS_PORT` is set.
 */
export async function mountMetrics(app: FastifyInstance, config: Config, metrics: Metrics): Promise<void> {
  if (config.metricsPort === undefined) {
    app.decorate('metricsListener', null);
    await app.register(async (scope) => {
      requireApiKey(scope, config.apiKey);
      await scope.register(metricsRoutes, { metrics });
    });
  } else {
    const listener = await buildMetricsListener(metrics);
    app.decorate('metricsListener', listener);
    app.addHook('onClose', async () => {
      await listener.close();
    });
  }
}
