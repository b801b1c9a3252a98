/**
 * The app factory, shaped like fastify's demo app: `buildApp(config)` starts the worker pool, registers
 * small one-concern plugins (`src/http/`: problem errors, auth, metrics, Server-Timing, graceful close,
 * OpenAPI, multipart), the open routes (health, metrics, playground) and one encapsulated plugin per
 * protocol (`routes/v1/`, `routes/v2/`). It never listens (`src/main.ts` does), so tests drive
 * it with `inject` or listen on port 0 themselves.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import Fastify, { type FastifyInstance } from 'fastify';
import { serializerCompiler, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import { BodyBytes } from './admission.js';
import type { Config } from './config.js';
import { AnswerBytes } from './http/answers.js';
import { gracefulClose } from './http/graceful-close.js';
import { useJsonBodyParser } from './http/json-body.js';
import { registerMultipart } from './http/multipart.js';
import { registerOpenApi } from './http/openapi.js';
import { useProblemErrors, useProblemNotFound } from './http/problem-errors.js';
import { trackReadiness, type Readiness } from './http/readiness.js';
import { countRequests, mountMetrics } from './http/request-metrics.js';
import { collectRoutes } from './http/route-index.js';
import { timeoutOptions } from './http/timeouts.js';
import { serverTiming } from './http/timing.js';
import { createMetrics, type Metrics } from './metrics.js';
import { WorkPool } from './runtime/pool.js';
import healthRoutes from '../routes/health.js';
import playgroundRoutes from '../routes/playground.js';
import v1Routes from '../routes/v1/index.js';
import v2Routes from '../routes/v2/index.js';

export type { Readiness };

declare module 'fastify' {
  interface FastifyInstance {
    /** The parsed configuration the app was built with. */
    config: Config;
    /** The worker pool running the pipeline: `app.work.roi(task)`. */
    work: WorkPool;
    /** Bytes of work answers being written (`MAX_RESPONSE_BYTES_IN_FLIGHT`, `src/http/answers.ts`). */
    answers: AnswerBytes;
    /** Bytes of work-request bodies admitted (`MAX_BODY_BYTES_IN_FLIGHT`, `src/admission.ts`). */
    bodies: BodyBytes;
    metrics: Metrics;
    readiness: Readiness;
    /**
     * The separate `/metrics` listener when `METRICS_PORT` is set (not listening: `src/main.ts` starts
     * it on HOST:METRICS_PORT, closing the app closes it); null when metrics are on the main port.
     */
    metricsListener: FastifyInstance | null;
  }
}

/** The version in package.json: `../` from `src/`, `../../` from the compiled `dist/src/`. */
async function packageVersion(): Promise<string> {
  for (const relative of ['../package.json', '../../package.json']) {
    const path = fileURLToPath(new URL(relative, import.meta.url));
    if (existsSync(path)) return (JSON.parse(await readFile(path, 'utf8')) as { version: string }).version;
  }
  return '0.0.0';
}

/**
 * Builds the app (not listening). Starts `config.workers` worker threads that load the backbone in
 * the background; `app.readiness.settled` resolves when they are done. Close the app to stop them.
 *
 * @param config - from `parseConfig`/`loadConfig` (tests pass overrides)
 */
export async function buildApp(config: Config): Promise<FastifyInstance> {
  const app = Fastify({
    logger: { level: config.logLevel },
    bodyLimit: config.bodyLimitBytes,
    // Requests arriving while the server closes get a 503 (fastify's default); in-flight ones finish.
    return503OnClosing: true,
    // A body that starts and goes silent is cut (408) after REQUEST_TIMEOUT_SECONDS (src/http/timeouts.ts).
    ...timeoutOptions(config),
  }).withTypeProvider<ZodTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  // Only JSON and multipart bodies are accepted: anything else is a 415, not a 400 about a string.
  app.removeContentTypeParser('text/plain');
  // JSON errors that say where the text breaks, and prototype keys named as such (not "not valid JSON").
  useJsonBodyParser(app);
  // Before any route: the index sees them all (the 405 answer and the auth tests use it).
  collectRoutes(app);

  const work = new WorkPool(config);
  const answers = new AnswerBytes(config.maxResponseBytesInFlight);
  const metrics = createMetrics(work, answers);
  app.decorate('config', config);
  app.decorate('work', work);
  app.decorate('answers', answers);
  app.decorate('bodies', new BodyBytes(config.maxBodyBytesInFlight));
  app.decorate('metrics', metrics);
  app.decorate('readiness', trackReadiness(app, work));
  app.addHook('onClose', async () => {
    await work.close();
  });

  // One concern each (src/http/): closing without cutting answers, problem+json errors and 404/405 by
  // default, Server-Timing (total, parse, queue, the stages that ran) on every response, request metrics.
  gracefulClose(app);
  useProblemErrors(app, config.bodyLimitBytes);
  useProblemNotFound(app);
  serverTiming(app);
  countRequests(app, metrics);
  await registerMultipart(app, config);
  const version = await packageVersion();
  await registerOpenApi(app, { docs: config.docs, version });

  // Open routes, then one encapsulated plugin per protocol, each owning its prefix, key hook and error
  // format: /v1 (problem+json) and the Open Inference Protocol v2 (KServe / Triton, `{"error": …}`; its
  // health probes open), on the same pool, queue and limits.
  await app.register(healthRoutes);
  await mountMetrics(app, config, metrics);
  await app.register(v1Routes, { prefix: '/v1' });
  await app.register(v2Routes, { prefix: '/v2', version });
  await app.register(playgroundRoutes);

  return app;
}
