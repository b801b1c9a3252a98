/**
 * Operational routes, open even when `API_KEY` is set: `GET /healthz` (the process answers) and
 * `GET /readyz` (the backbone is loaded and warmed in every worker at start-up, and in at least one
 * worker later, while failed or overgrown workers are replaced). `GET /metrics` is in
 * `routes/metrics.ts` (it needs the key, or lives on `METRICS_PORT`).
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';

/** `/readyz`'s body (module level: a schema with an id is registered once per process). */
const readySchema = z
  .object({
    status: z
      .enum(['ready', 'starting', 'replacing', 'failed'])
      .describe('`replacing`: every worker is being replaced (after a failure or over its memory bound)'),
    backbone: z.string().nullable(),
    backend: z.string().nullable(),
    backendReason: z.string().nullable().describe('why that tfjs backend, in words; null until ready'),
    tfjsNodeError: z
      .string()
      .nullable()
      .describe('why @tensorflow/tfjs-node is not in use, when it was tried and failed: its load error'),
    engine: z
      .enum(['tfjs', 'onnx'])
      .nullable()
      .describe('what runs the backbone: tfjs or onnx (ONNX Runtime); null until ready'),
    engineReason: z
      .string()
      .nullable()
      .describe('why that engine (BACKBONE_ENGINE and what loaded), in words'),
    workers: z.number().int(),
    readyWorkers: z.number().int().describe('workers whose backbone is loaded and warmed'),
  })
  .meta({ id: 'Readiness', description: 'whether the workers have loaded and warmed the backbone' });

const healthRoutes: FastifyPluginAsyncZod = async (app) => {
  app.get(
    '/healthz',
    {
      schema: {
        operationId: 'healthz',
        summary: 'Liveness: the HTTP thread answers (CPU-heavy work runs in worker threads)',
        tags: ['ops'],
        response: { 200: z.object({ status: z.literal('ok') }) },
      },
    },
    async () => ({ status: 'ok' as const }),
  );

  app.get(
    '/readyz',
    {
      schema: {
        operationId: 'readyz',
        summary:
          'Readiness: 200 once every worker has loaded and warmed the backbone, and while at least one of them is ready; else 503',
        tags: ['ops'],
        response: { 200: readySchema, 503: readySchema },
      },
    },
    async (_request, reply) => {
      const { state, backbone } = app.readiness;
      const readyWorkers = app.work.readyWorkers;
      // A worker being replaced does not take the others out of service; all of them being replaced does.
      const status: typeof state | 'replacing' =
        state === 'ready' && readyWorkers === 0 ? 'replacing' : state;
      const body = {
        status,
        backbone: backbone?.name ?? null,
        backend: backbone?.backend ?? null,
        backendReason: backbone?.backendReason ?? null,
        tfjsNodeError: backbone?.tfjsNodeError ?? null,
        engine: backbone?.engine ?? null,
        engineReason: backbone?.engineReason ?? null,
        workers: app.work.size,
        readyWorkers,
      };
      return reply.code(status === 'ready' ? 200 : 503).send(body);
    },
  );
};

export default healthRoutes;
