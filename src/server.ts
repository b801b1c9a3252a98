/**
 * The app factory: `buildApp(config)` registers the schemas, the error handler, auth, metrics, docs
 * and the routes, and starts the worker pool. It never listens (`src/main.ts` does), so tests drive
 * it with `inject` or listen on port 0 themselves.
 */
import type { Socket } from 'node:net';
import { createHash, timingSafeEqual } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import fastifyMultipart from '@fastify/multipart';
import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import Fastify, { type FastifyInstance } from 'fastify';
import {
  jsonSchemaTransform,
  serializerCompiler,
  validatorCompiler,
  type ZodTypeProvider,
} from 'fastify-type-provider-zod';
import type { Config } from './config.js';
import { BusyError } from './errors.js';
import { createMetrics, type Metrics } from './metrics.js';
import { type BackboneInfo, WorkPool } from './pool.js';
import { PROBLEM_CONTENT_TYPE, problem, problemFromError } from './problem.js';
import backboneRoutes from '../routes/backbone.js';
import diffRoutes from '../routes/diff.js';
import featuresRoutes from '../routes/features.js';
import healthRoutes from '../routes/health.js';
import playgroundRoutes from '../routes/playground.js';
import roiRoutes from '../routes/roi.js';

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
    metrics: Metrics;
    readiness: Readiness;
  }
}

/** Routes that stay open when `API_KEY` is set: only `/v1/*` requires it. */
function needsKey(url: string): boolean {
  return url.startsWith('/v1/') || url === '/v1';
}

/** The path of a request URL, without its query string (a problem's `instance`). */
function pathOf(url: string): string {
  return url.split('?')[0];
}

/** Constant-time comparison of digests, so neither the key's content nor its length leaks through timing. */
function keyMatches(given: string | undefined, expected: string): boolean {
  if (given === undefined) return false;
  const digest = (text: string) => createHash('sha256').update(text).digest();
  return timingSafeEqual(digest(given), digest(expected));
}

function presentedKey(headers: Record<string, string | string[] | undefined>): string | undefined {
  const auth = headers.authorization;
  if (typeof auth === 'string') {
    const match = /^Bearer\s+(.+)$/i.exec(auth.trim());
    if (match) return match[1];
  }
  const key = headers['x-api-key'];
  return typeof key === 'string' ? key : undefined;
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
  }).withTypeProvider<ZodTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  // Only JSON and multipart bodies are accepted: anything else is a 415, not a 400 about a string.
  app.removeContentTypeParser('text/plain');

  const work = new WorkPool(config);
  const metrics = createMetrics(work);
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
      app.log.info({ backbone: backbone.name, backend: backbone.backend }, 'backbone ready');
    },
    (err: unknown) => {
      readiness.state = 'failed';
      readiness.error = err instanceof Error ? err.message : String(err);
      app.log.error({ err }, 'backbone failed to load');
    },
  );
  app.decorate('config', config);
  app.decorate('work', work);
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
    const { problem: body, internal } = problemFromError(err, pathOf(request.url), {
      contentType: request.headers['content-type'],
      bodyLimitBytes: config.bodyLimitBytes,
    });
    if (internal) request.log.error({ err }, 'request failed');
    if (err instanceof BusyError) reply.header('Retry-After', String(err.retryAfterSeconds));
    void reply.code(body.status).type(PROBLEM_CONTENT_TYPE).send(JSON.stringify(body));
  });
  app.setNotFoundHandler((request, reply) => {
    const path = pathOf(request.url);
    const body = problem(404, `no route ${request.method} ${path}`, undefined, path);
    void reply.code(404).type(PROBLEM_CONTENT_TYPE).send(JSON.stringify(body));
  });

  if (config.apiKey !== undefined) {
    const apiKey = config.apiKey;
    app.addHook('onRequest', async (request, reply) => {
      if (!needsKey(request.url)) return;
      const presented = presentedKey(request.headers);
      if (keyMatches(presented, apiKey)) return;
      const given = presented !== undefined;
      const body = problem(
        401,
        given ? 'the API key is not valid' : 'this route needs an API key',
        [
          {
            field: 'Authorization',
            expected: 'Authorization: Bearer <key> or X-API-Key: <key>',
            message: given ? 'invalid key' : 'missing key',
          },
        ],
        pathOf(request.url),
      );
      return reply
        .code(401)
        .header('WWW-Authenticate', 'Bearer')
        .type(PROBLEM_CONTENT_TYPE)
        .send(JSON.stringify(body));
    });
  }

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
      files: 2,
      fields: 24,
      parts: 32,
    },
  });

  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'roiserve',
        description:
          'RoI Pool, RoI Align and RoI Warp over a built-in TensorFlow.js backbone or your own feature maps. ' +
          'Errors are RFC 9457 problem details (application/problem+json).',
        version: await packageVersion(),
      },
      components: {
        securitySchemes: {
          bearer: { type: 'http', scheme: 'bearer', description: 'API_KEY, when the server has one' },
          apiKey: {
            type: 'apiKey',
            in: 'header',
            name: 'X-API-Key',
            description: 'API_KEY, when the server has one',
          },
        },
      },
      tags: [
        { name: 'roi', description: 'RoI operators' },
        { name: 'backbone', description: 'The built-in feature extractor' },
        { name: 'ops', description: 'Health, readiness and metrics' },
      ],
    },
    transform: jsonSchemaTransform,
  });
  if (config.docs) {
    await app.register(fastifySwaggerUi, { routePrefix: '/docs' });
  }
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  await app.register(healthRoutes);
  await app.register(roiRoutes);
  await app.register(featuresRoutes);
  await app.register(backboneRoutes);
  await app.register(diffRoutes);
  await app.register(playgroundRoutes);

  return app;
}
