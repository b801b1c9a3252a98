/**
 * `GET /metrics` (Prometheus text format). Where it is served is decided in `src/server.ts`: on the main
 * port behind the API key (when `API_KEY` is set), or, with `METRICS_PORT`, only on that separate
 * listener, without a key (keep that port off the public network).
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Metrics } from '../src/metrics.js';
import { problemResponse } from '../src/http/openapi.js';

const metricsRoutes: FastifyPluginAsyncZod<{ metrics: Metrics }> = async (app, { metrics }) => {
  app.get(
    '/metrics',
    {
      schema: {
        operationId: 'metrics',
        summary: 'Prometheus metrics (text exposition format)',
        description:
          'Needs the API key when `API_KEY` is set; with `METRICS_PORT` it is served only on that port, without a key.',
        tags: ['ops'],
        produces: ['text/plain'],
        security: [{ bearer: [] }, { apiKey: [] }],
        response: {
          200: { content: { 'text/plain': { schema: z.string() } } },
          401: problemResponse('missing or wrong API key (only when API_KEY is set)'),
        },
      },
    },
    async (_request, reply) => {
      const text = await metrics.registry.metrics();
      return reply.type(metrics.registry.contentType).send(text);
    },
  );
};

export default metricsRoutes;
