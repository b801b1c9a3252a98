/** `GET /readyz` (503 while the workers load the backbone, then 200) and `GET /healthz`, through `inject`. */
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/server.js';
import { testConfig } from '../support/fixtures.js';
import { autoBackend, autoEngine } from '../support/tf.js';

const server = {} as { app: FastifyInstance };
let readyzWhileStarting: { status: number; body: unknown };

beforeAll(async () => {
  server.app = await buildApp(testConfig());
  // Asked at once, before the workers have loaded the backbone.
  const r = await server.app.inject({ method: 'GET', url: '/readyz' });
  readyzWhileStarting = { status: r.statusCode, body: r.json() };
  await server.app.readiness.settled;
});

afterAll(async () => {
  await server.app?.close();
});

describe('health and readiness', () => {
  it('GET /readyz is 503 while the workers load the backbone, 200 once ready', async () => {
    expect(readyzWhileStarting).toEqual({
      status: 503,
      body: {
        status: 'starting',
        backbone: null,
        backend: null,
        backendReason: null,
        tfjsNodeError: null,
        engine: null,
        engineReason: null,
        workers: 1,
        readyWorkers: 0,
      },
    });
    const r = await server.app.inject({ method: 'GET', url: '/readyz' });
    expect(r.statusCode).toBe(200);
    // TF_BACKEND auto: tfjs-node where it loads, else wasm and why (test/support/tf.ts).
    expect(r.json()).toEqual({
      status: 'ready',
      backbone: 'builtin-inception-s16',
      ...(await autoBackend()),
      // BACKBONE_ENGINE auto: ONNX Runtime unless tfjs-node runs (tfjs checked ORT at start-up).
      engine: (await autoEngine()).engine,
      engineReason: (await autoEngine()).engineReason,
      workers: 1,
      readyWorkers: 1,
    });
  });

  it('GET /healthz answers ok', async () => {
    const r = await server.app.inject({ method: 'GET', url: '/healthz' });
    expect(r.statusCode).toBe(200);
    expect(r.json()).toEqual({ status: 'ok' });
  });
});
