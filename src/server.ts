/**
 * The app factory: `buildApp(config)` registers the schemas, the error handler, auth, metrics, docs
 * and the routes, and starts the worker pool. It never listens (`src/main.ts` does), so tests drive
 * it with `inject` or listen on port 0 themselves.
 */
import type { Socket } from 'node:net';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import fastifyMultipart from '@fastify/multipart';
import Fastify, { type FastifyInstance } from 'fastify';
import { serializerCompiler, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import type { Config } from './config.js';
import { BusyError } from './errors.js';
import { registerOpenApi } from './http/openapi.js';
import { createMetrics, type Metrics } from './metrics.js';
import { type BackboneInfo, WorkPool } from './runtime/pool.js';
import { requireApiKey } from './http/auth.js';
import { buildMetricsListener } from './http/metrics-listener.js';
import { useJsonBodyParser } from './http/json-body.js';
import { collectRoutes } from './http/route-index.js';
import { BodyBytes } from './admission.js';
import { AnswerBytes } from './http/answers.js';
import { timeoutOptions } from './http/timeouts.js';
import { serverTiming } from './http/timing.js';
import { PROBLEM_CONTENT_TYPE, problem, problemFromError, requestPath } from './problem.js';
import backboneRoutes from '../routes/backbone.js';
import diffRoutes from '../routes/diff.js';
import featuresRoutes from '../routes/features.js';
import healthRoutes from '../routes/health.js';
import metricsRoutes from '../routes/metrics.js';
import playgroundRoutes from '../routes/playground.js';
import roiRoutes from '../routes/roi.js';
import v2Routes from '../routes/v2/index.js';

/** Backbone readiness, as `/readyz` reports it. */
export interface Readiness {
  state: 'starting' | 'ready' | 'failed';
  /** Set once ready. */
  backbone: BackboneInfo | undefined;
  /** Why loading failed (server-side detail, logged; `/readyz` says only that it failed). */
  error: string | undefined;
  /** Settles when the workers have loaded their backbones (never rejects). */
  settled: Promise<void>;
}

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
  const readiness: Readiness = {
    state: 'starting',
    backbone: undefined,
    error: undefined,
    settled: Promise.resolve(),
  };
  readiness.settled = work.warmup().then(
    (backbone) => {
      readiness.state = 'ready';
      readiness.backbone = backbone;
      app.log.info(
        {
          backbone: backbone.name,
          engine: backbone.engine,
          engineReason: backbone.engineReason,
          backend: backbone.backend,
          backendReason: backbone.backendReason,
        },
        'backbone ready',
      );
      if (backbone.tfjsNodeError !== null) {
        // Said at start-up, not only in /readyz: the native backend is several times faster.
        const runner = backbone.engine === 'onnx' ? 'ONNX Runtime' : `the ${backbone.backend} backend`;
        app.log.info(
          { tfjsNodeError: backbone.tfjsNodeError },
          `@tensorflow/tfjs-node is not in use (${backbone.tfjsNodeError}); ${runner} runs the backbone`,
        );
      }
    },
    (err: unknown) => {
      readiness.state = 'failed';
      readiness.error = err instanceof Error ? err.message : String(err);
      app.log.error({ err }, 'backbone failed to load');
    },
  );
  app.decorate('config', config);
  app.decorate('work', work);
  app.decorate('answers', answers);
  app.decorate('bodies', new BodyBytes(config.maxBodyBytesInFlight));
  app.decorate('metrics', metrics);
  app.decorate('readiness', readiness);
  app.addHook('onClose', async () => {
    await work.close();
  });
  // close() sweeps idle keep-alive sockets once, when it starts. A socket whose request is in flight
  // then would stay open after its answer (for keepAliveTimeout, 72 s) and hold the shutdown past
  // SIGKILL (fastify/fastify#7044): answers sent while closing carry `Connection: close`, so Node ends
  // each such socket once its response is flushed.
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  app.addHook('onSend', async (_request, reply, payload) => {
    if (closing) reply.header('Connection', 'close');
    return payload;
  });
  // That sweep (Node's `closeIdleConnections`, run by fastify's close and again by `server.close()`)
  // destroys every socket with no request in flight, including one whose last response has ended but
  // whose bytes still sit in the socket's buffer because the client reads slowly: the answer would be
  // truncated. Such sockets are ended instead (half-closed); the server's close, and so the process
  // exit, waits for the client to close them. A socket with a request in flight is handled the
  // same way as soon as its answer is out.
  const server = app.server;
  const openSockets = new Set<Socket>();
  const socketsInFlight = new Set<Socket>();
  let sweeping = false;
  const closeIfIdle = (socket: Socket): void => {
    if (socketsInFlight.has(socket)) return;
    // Never answered anything: nothing to lose.
    if (socket.bytesWritten === 0) socket.destroy();
    // FIN goes out after the buffered bytes; the socket closes when the client, having read them all,
    // closes its side. Destroying earlier loses what sits in kernel buffers once a container's network
    // goes away. A client that never closes is cut by the shutdown grace period.
    else socket.end();
  };
  server.on('connection', (socket: Socket) => {
    openSockets.add(socket);
    socket.once('close', () => openSockets.delete(socket));
  });
  server.on('request', (req, res) => {
    socketsInFlight.add(req.socket);
    res.once('close', () => {
      socketsInFlight.delete(req.socket);
      // An answer that began before the close keeps its socket alive: end it once the answer is out.
      if (sweeping) closeIfIdle(req.socket);
    });
  });
  server.closeIdleConnections = () => {
    sweeping = true;
    for (const socket of openSockets) closeIfIdle(socket);
  };

  app.setErrorHandler((err, request, reply) => {
    const { problem: body, internal } = problemFromError(err, requestPath(request.url), {
      contentType: request.headers['content-type'],
      bodyLimitBytes: config.bodyLimitBytes,
      // For hints that quote the value sent and suggest the right field name.
      body: request.body,
      bodySchema: request.routeOptions.schema?.body,
    });
    if (internal) request.log.error({ err }, 'request failed');
    if (err instanceof BusyError) reply.header('Retry-After', String(err.retryAfterSeconds));
    void reply.code(body.status).type(PROBLEM_CONTENT_TYPE).send(JSON.stringify(body));
  });
  app.setNotFoundHandler((request, reply) => {
    const path = requestPath(request.url);
    // The path exists with other methods: 405 and `Allow` (RFC 9110 §15.5.6), not a misleading 404.
    // It reveals no more than /openapi.json does; the key is checked by the route that matches.
    const allowed = app.routeIndex.allowedMethods(request.url);
    if (allowed.length > 0) {
      const list = allowed.join(', ');
      const message = `${request.method} is not allowed on ${path}; it accepts ${list}`;
      const body = problem(405, message, [{ field: 'method', expected: list, message }], path);
      void reply.code(405).header('Allow', list).type(PROBLEM_CONTENT_TYPE).send(JSON.stringify(body));
      return;
    }
    const body = problem(404, `no route ${request.method} ${path}`, undefined, path);
    void reply.code(404).type(PROBLEM_CONTENT_TYPE).send(JSON.stringify(body));
  });

  // Server-Timing (total, parse, queue, the stages that ran) on every response, errors included.
  serverTiming(app);

  app.addHook('onResponse', async (request, reply) => {
    const labels = {
      method: request.method,
      route: request.routeOptions.url ?? 'unmatched',
      status: String(reply.statusCode),
    };
    metrics.requests.inc(labels);
    metrics.requestDuration.observe(labels, reply.elapsedTime / 1000);
  });

  await app.register(fastifyMultipart, {
    limits: {
      fileSize: config.bodyLimitBytes,
      fieldSize: config.bodyLimitBytes,
      // An image, or up to 8 `features` parts (a pyramid's levels, routes/v1/schemas/request.ts).
      files: 8,
      fields: 24,
      parts: 32,
    },
  });

  const version = await packageVersion();
  await registerOpenApi(app, { docs: config.docs, version });

  await app.register(healthRoutes);
  // /metrics: behind the key on this port, or (METRICS_PORT) only on its own listener, without one.
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
  // The /v1 API: one encapsulated scope whose routes all need the key (decided by the matched route).
  await app.register(async (v1) => {
    requireApiKey(v1, config.apiKey);
    await v1.register(roiRoutes);
    await v1.register(featuresRoutes);
    await v1.register(backboneRoutes);
    await v1.register(diffRoutes);
  });
  // The Open Inference Protocol v2 (KServe / Triton): its own scope, error format, body parsers and key
  // hook (the health probes open, the rest keyed as /v1); the same pool, queue and limits.
  await app.register(v2Routes, { prefix: '/v2', version });
  await app.register(playgroundRoutes);

  return app;
}
