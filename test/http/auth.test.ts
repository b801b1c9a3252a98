/**
 * The API key is decided by the route that matched, never by the URL text (issue 10): every protected
 * route, listed from the app itself, refuses every spelling of its path (percent-encoded, absolute-form,
 * doubled slash, other case, trailing slash, query) with every method unless the key comes along.
 * Requests go over a real socket: `inject` normalises absolute-form targets before the router sees them.
 */
import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/server.js';
import { useApp } from '../support/app.js';
import { featuresField, randomMap, testConfig } from '../support/fixtures.js';
import { strictConfig } from '../support/v1.js';

const API_KEY = 'test-key-0123456789';
const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS'];
/** Routes that stay open with API_KEY set; anything else the app registers must need the key. */
const OPEN = [
  /^\/healthz$/,
  /^\/readyz$/,
  /^\/openapi\.json$/,
  /^\/docs/,
  /^\/$/,
  /^\/index\.html$/,
  /^\/playground\//,
  // The Open Inference Protocol's probes, open like /healthz and /readyz.
  /^\/v2\/health\/(live|ready)$/,
];

/** A route's URL with its parameters filled in with values that exist (`/v2/models/:model` → `roi_align`). */
function concrete(url: string): string {
  return url.replace(':model', 'roi_align').replace(':version', '1');
}

/** The 401's message: `detail` of a problem (/v1), `error` of an Open Inference Protocol error (/v2). */
function message401(url: string, body: string): string {
  const parsed = JSON.parse(body) as { detail?: string; error?: string };
  return (url.startsWith('/v2') ? parsed.error : parsed.detail) ?? '';
}

let app: FastifyInstance;
let port: number;

beforeAll(async () => {
  app = await buildApp(testConfig({ apiKey: API_KEY }));
  await app.listen({ host: '127.0.0.1', port: 0 });
  port = (app.server.address() as AddressInfo).port;
});

afterAll(async () => {
  await app?.close();
});

/** Sends `method target` verbatim in the request line (Node writes `path` as given). */
function send(
  method: string,
  target: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const body = method === 'GET' || method === 'HEAD' || method === 'OPTIONS' ? undefined : '{}';
    const req = httpRequest(
      {
        host: '127.0.0.1',
        port,
        method,
        path: target,
        headers: {
          ...(body ? { 'content-type': 'application/json', 'content-length': String(body.length) } : {}),
          ...headers,
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** Every character of every segment percent-encoded: `/v1/roi` → `/%76%31/%72%6F%69`. */
function encodeAll(path: string): string {
  return path
    .split('/')
    .map((seg) =>
      [...seg].map((c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`).join(''),
    )
    .join('/');
}

/** The spellings of `path` a client could try; the router maps some of them to the route. */
function variants(path: string): Record<string, string> {
  const [, first, ...rest] = path.split('/');
  return {
    plain: path,
    encoded: encodeAll(path),
    'encoded prefix': `/${encodeAll(`/${first}`).slice(1)}/${rest.join('/')}`,
    'absolute-form': `http://x${path}`,
    'absolute-form encoded': `http://example.com:80${encodeAll(path)}`,
    'doubled leading slash': `/${path}`,
    'doubled inner slash': `/${first}//${rest.join('/')}`,
    'upper case': path.toUpperCase(),
    'upper-case prefix': `/${first.toUpperCase()}/${rest.join('/')}`,
    'trailing slash': `${path}/`,
    query: `${path}?x=1`,
  };
}

function protectedRoutes() {
  return app.routeIndex.routes.filter((r) => r.auth);
}

describe('API_KEY: which routes need it', () => {
  it('every route except health, readiness, docs and the playground needs the key (/metrics included)', () => {
    const open = app.routeIndex.routes.filter((r) => !r.auth).map((r) => r.url);
    for (const url of open)
      expect(
        OPEN.some((re) => re.test(url)),
        `${url} is open`,
      ).toBe(true);
    const urls = new Set(protectedRoutes().map((r) => `${r.method} ${r.url}`));
    for (const expected of [
      'POST /v1/roi',
      'POST /v1/features',
      'POST /v1/diff',
      'GET /v1/backbone',
      'HEAD /v1/backbone',
      'GET /metrics',
    ]) {
      expect(urls).toContain(expected);
    }
    // Every /v1 route is protected, whatever a future route is called.
    for (const r of app.routeIndex.routes) if (r.url.startsWith('/v1')) expect(r.auth, r.url).toBe(true);
  });

  it('every protected route refuses a missing key, a wrong bearer and a wrong X-API-Key with 401', async () => {
    for (const route of protectedRoutes()) {
      const { method } = route;
      const url = concrete(route.url);
      const attempts: Array<Record<string, string>> = [
        {},
        { authorization: 'Bearer wrong-key-0123' },
        { 'x-api-key': 'wrong-key-0123' },
      ];
      for (const headers of attempts) {
        const r = await send(method, url, headers);
        expect(r.status, `${method} ${url} ${JSON.stringify(headers)}`).toBe(401);
        if (method !== 'HEAD') {
          const detail =
            Object.keys(headers).length === 0 ? 'this route needs an API key' : 'the API key is not valid';
          expect(message401(url, r.body)).toContain(detail);
        }
      }
      // The right key passes the check (whatever the handler then says about the empty body).
      const ok = await send(method, url, { 'x-api-key': API_KEY });
      expect(ok.status, `${method} ${url} with the key`).not.toBe(401);
    }
  });
});

describe('API_KEY: no spelling of a protected path reaches a handler without the key', () => {
  it('encoded, absolute-form, doubled-slash, case, trailing-slash and query variants, every method', async () => {
    const paths = [...new Set(protectedRoutes().map((r) => concrete(r.url)))];
    expect(paths.length).toBeGreaterThanOrEqual(5);
    let routed = 0;
    for (const path of paths) {
      for (const [name, target] of Object.entries(variants(path))) {
        for (const method of METHODS) {
          const anonymous = await send(method, target);
          const where = `${method} ${target} (${name})`;
          // 401: the route matched and its hook refused; 404/405: no route matched, nothing ran.
          expect([401, 404, 405], where).toContain(anonymous.status);
          const keyed = await send(method, target, { authorization: `Bearer ${API_KEY}` });
          if (keyed.status !== 404 && keyed.status !== 405) {
            // With the key this spelling reaches a route: without it, it must have been a 401.
            expect(anonymous.status, where).toBe(401);
            routed++;
          } else {
            // Unmatched spellings answer the same with or without the key: nothing to learn.
            expect(anonymous.status, where).toBe(keyed.status);
          }
        }
      }
    }
    // The router does decode and strip these, so the loop above did test real bypass attempts.
    expect(routed).toBeGreaterThan(paths.length * 3);
  });

  it('the two reported bypasses are 401 (they were served with 200 and no key)', async () => {
    for (const target of ['/%76%31/roi', 'http://x/v1/roi']) {
      const r = await send('POST', target);
      expect(r.status, target).toBe(401);
      expect(JSON.parse(r.body)).toMatchObject({ status: 401, detail: 'this route needs an API key' });
    }
  });

  it("an absolute-form target's problems name the path, not the host the client wrote", async () => {
    const unauthorized = await send('POST', 'http://evil.example:8080/v1/roi?x=1');
    expect(unauthorized.status).toBe(401);
    expect(JSON.parse(unauthorized.body)).toMatchObject({ instance: '/v1/roi' });
    const notAllowed = await send('GET', 'http://evil.example/v1/roi', {
      authorization: `Bearer ${API_KEY}`,
    });
    expect(notAllowed.status).toBe(405);
    expect(JSON.parse(notAllowed.body)).toMatchObject({
      detail: 'GET is not allowed on /v1/roi; it accepts POST',
      instance: '/v1/roi',
    });
  });
});

const strictServer = useApp(strictConfig());

describe('401 with API_KEY', () => {
  const small = randomMap([1, 1, 2, 2]);
  const payload = { features: featuresField(small), spatialScale: 1, boxes: [[0, 0, 1, 1]] };

  it('refuses /v1/* without or with a wrong key', async () => {
    const missing = await strictServer.app.inject({ method: 'POST', url: '/v1/roi', payload });
    expect(missing.statusCode).toBe(401);
    expect(missing.headers['www-authenticate']).toBe('Bearer');
    expect(missing.json()).toEqual({
      type: 'urn:roiserve:problem:unauthorized',
      title: 'Unauthorized',
      status: 401,
      detail: 'this route needs an API key',
      instance: '/v1/roi',
      errors: [
        {
          field: 'Authorization',
          expected: 'Authorization: Bearer <key> or X-API-Key: <key>',
          message: 'missing key',
        },
      ],
    });
    const wrong = await strictServer.app.inject({
      method: 'GET',
      url: '/v1/backbone',
      headers: { authorization: 'Bearer nope' },
    });
    expect(wrong.statusCode).toBe(401);
    expect(wrong.json().detail).toBe('the API key is not valid');
  });

  it('accepts Authorization: Bearer and X-API-Key; health, readiness and the docs stay open', async () => {
    const bearer = await strictServer.app.inject({
      method: 'POST',
      url: '/v1/roi',
      payload,
      headers: { authorization: `Bearer ${API_KEY}` },
    });
    expect(bearer.statusCode).toBe(200);
    const header = await strictServer.app.inject({
      method: 'GET',
      url: '/v1/backbone',
      headers: { 'x-api-key': API_KEY },
    });
    expect(header.statusCode).toBe(200);
    for (const url of ['/healthz', '/readyz', '/openapi.json']) {
      expect((await strictServer.app.inject({ method: 'GET', url })).statusCode).toBe(200);
    }
    // /metrics needs the key too (unless METRICS_PORT moves it: test/http/metrics.test.ts).
    expect((await strictServer.app.inject({ method: 'GET', url: '/metrics' })).statusCode).toBe(401);
  });
});
