/**
 * The separate metrics listener (`METRICS_PORT`): a bare fastify instance serving only `GET /metrics`,
 * without the API key, so a Prometheus scraper on a private network needs no secret and the public
 * port does not expose the metrics at all.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import { serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import type { Metrics } from '../metrics.js';
import { PROBLEM_CONTENT_TYPE, problem } from '../problem.js';
import metricsRoutes from '../../routes/metrics.js';

/** Builds (does not listen) the metrics-only app; `src/main.ts` listens on HOST:METRICS_PORT. */
export async function buildMetricsListener(metrics: Metrics): Promise<FastifyInstance> {
  const app = Fastify({ logger: false });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0];
    const body = problem(
      404,
      `no route ${request.method} ${path} (this port serves only GET /metrics)`,
      undefined,
      path,
    );
    void reply.code(404).type(PROBLEM_CONTENT_TYPE).send(JSON.stringify(body));
  });
  await app.register(metricsRoutes, { metrics });
  return app;
}
