/** The app a test file shares: built (and warmed) before its tests, closed after them. */
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll } from 'vitest';
import type { Config } from '../../src/config.js';
import { buildApp } from '../../src/server.js';
import { testConfig } from './fixtures.js';

/**
 * Registers a `beforeAll` that builds the app with `config` and waits for its readiness (backbone
 * warmed, or given up), and an `afterAll` that closes it. `server.app` is that app once the file's
 * tests run (undefined while the file is being collected).
 */
export function useApp(config: Config = testConfig()): { readonly app: FastifyInstance } {
  const server = {} as { app: FastifyInstance };
  beforeAll(async () => {
    server.app = await buildApp(config);
    await server.app.readiness.settled;
  });
  afterAll(async () => {
    await server.app?.close();
  });
  return server;
}

/**
 * {@link useApp}, listening on 127.0.0.1 at a free port: `server.port` and `server.base`
 * (`http://127.0.0.1:<port>`) are set once the file's tests run.
 */
export function useListeningApp(config: Config = testConfig()): {
  readonly app: FastifyInstance;
  readonly port: number;
  readonly base: string;
} {
  const server = {} as { app: FastifyInstance; port: number; base: string };
  beforeAll(async () => {
    server.app = await buildApp(config);
    await server.app.listen({ host: '127.0.0.1', port: 0 });
    server.port = (server.app.server.address() as AddressInfo).port;
    server.base = `http://127.0.0.1:${server.port}`;
    await server.app.readiness.settled;
  });
  afterAll(async () => {
    await server.app?.close();
  });
  return server;
}
