/**
 * A body that starts and then goes silent is cut (issue 11 item 9): 408 problem+json and the socket
 * closed once REQUEST_TIMEOUT_SECONDS has passed (a small value here; no assertion on how long it took).
 */
import { connect, type AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config.js';
import { timeoutOptions } from '../../src/http/timeouts.js';
import { buildApp } from '../../src/server.js';
import { featuresField, randomMap, testConfig } from '../support/fixtures.js';

let app: FastifyInstance;
let port: number;

beforeAll(async () => {
  app = await buildApp(testConfig({ requestTimeoutSeconds: 0.5 }));
  await app.listen({ host: '127.0.0.1', port: 0 });
  port = (app.server.address() as AddressInfo).port;
});

afterAll(async () => {
  // fetch's idle keep-alive socket would hold close() until undici drops it (tens of seconds): nothing is
  // in flight here, so cut every connection first.
  app?.server.closeAllConnections();
  await app?.close();
});

/** Writes `text` on a new socket and never more; resolves with everything received once it closes. */
function stall(text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(text));
    let received = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (received += chunk));
    socket.on('error', reject);
    socket.on('close', () => resolve(received));
  });
}

describe('REQUEST_TIMEOUT_SECONDS', () => {
  it('a stalled partial body gets 408 problem+json and its socket closed', async () => {
    const body = '{"boxes": [[0, 0, 10, 10]], "features": {"shape": [1, 1, 4, 4], "data": "AAAA';
    const received = await stall(
      `POST /v1/roi HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 4000\r\n\r\n${body}`,
    );
    const [head, json] = received.split('\r\n\r\n');
    expect(head).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
    expect(head).toMatch(/\r\nConnection: close\r\n/i);
    expect(head).toMatch(/\r\nContent-Type: application\/problem\+json; charset=utf-8\r\n/);
    expect(JSON.parse(json)).toEqual({
      type: 'urn:roiserve:problem:timeout',
      title: 'Request timeout',
      status: 408,
      detail:
        'the request (headers and body) did not arrive within REQUEST_TIMEOUT_SECONDS; the connection is closed',
    });
  });

  it('stalled headers and many stalled sockets at once are all closed', async () => {
    const all = await Promise.all([
      stall('POST /v1/roi HTTP/1.1\r\nHost: x\r\nContent-Le'),
      ...Array.from({ length: 20 }, () =>
        stall(
          'POST /v1/roi HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{',
        ),
      ),
    ]);
    for (const received of all) expect(received).toMatch(/^HTTP\/1\.1 408 /);
  });

  it('the server still answers afterwards, and work longer than the timeout is not cut', async () => {
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
    // The timeout covers the request's arrival only: a (here probably) slower-than-0.5 s job still answers.
    const heavy = randomMap([1, 32, 64, 64], 3);
    const r = await fetch(`http://127.0.0.1:${port}/v1/roi`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        features: featuresField(heavy),
        spatialScale: 1,
        boxes: Array.from({ length: 6 }, (_, i) => [i, i, 60, 60]),
        outputSize: 16,
        samplingRatio: 8,
        ops: ['align'],
      }),
    });
    expect(r.status).toBe(200);
  });

  it('defaults: 60 s for a request, 60 s for headers, 72 s keep-alive; checked every 6 s', () => {
    const config = parseConfig({});
    expect([config.requestTimeoutSeconds, config.keepAliveTimeoutSeconds]).toEqual([60, 72]);
    expect(timeoutOptions(config)).toMatchObject({
      requestTimeout: 60_000,
      keepAliveTimeout: 72_000,
      http: { requestTimeout: 60_000, headersTimeout: 60_000, connectionsCheckingInterval: 6_000 },
    });
    const env = parseConfig({ REQUEST_TIMEOUT_SECONDS: '5', KEEP_ALIVE_TIMEOUT_SECONDS: '10' });
    expect(timeoutOptions(env)).toMatchObject({
      requestTimeout: 5_000,
      keepAliveTimeout: 10_000,
      http: { requestTimeout: 5_000, headersTimeout: 5_000, connectionsCheckingInterval: 500 },
    });
    expect(app.server.requestTimeout).toBe(500);
  });
});
