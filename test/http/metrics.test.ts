/**
 * Where `/metrics` is served (issue 11 item 12): behind the API key on the main port when `API_KEY` is
 * set; with `METRICS_PORT`, only on that separate listener and without a key.
 */
import { get as httpGet } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/server.js';
import { testConfig } from '../support/fixtures.js';
import { startMain } from '../support/main-process.js';

const API_KEY = 'test-key-0123456789';
const apps: FastifyInstance[] = [];

afterAll(async () => {
  await Promise.all(apps.map((a) => a.close()));
});

describe('/metrics with API_KEY', () => {
  it('on the main port it needs the key', async () => {
    const app = await buildApp(testConfig({ apiKey: API_KEY }));
    apps.push(app);
    expect(app.metricsListener).toBeNull();
    const anonymous = await app.inject({ method: 'GET', url: '/metrics' });
    expect(anonymous.statusCode).toBe(401);
    expect(anonymous.json()).toMatchObject({ status: 401, detail: 'this route needs an API key' });
    const wrong = await app.inject({
      method: 'GET',
      url: '/metrics',
      headers: { 'x-api-key': 'wrong-key-0123' },
    });
    expect(wrong.statusCode).toBe(401);
    const keyed = await app.inject({ method: 'GET', url: '/metrics', headers: { 'x-api-key': API_KEY } });
    expect(keyed.statusCode).toBe(200);
    expect(keyed.body).toMatch(/roiserve_http_requests_total/);
  });

  it('with METRICS_PORT it is served there without a key, and not on the main port', async () => {
    const app = await buildApp(testConfig({ apiKey: API_KEY, metricsPort: 0 }));
    apps.push(app);
    const main = await app.inject({ method: 'GET', url: '/metrics', headers: { 'x-api-key': API_KEY } });
    expect(main.statusCode).toBe(404);
    const listener = app.metricsListener;
    expect(listener).not.toBeNull();
    await listener?.listen({ host: '127.0.0.1', port: 0 });
    const { port } = listener?.server.address() as AddressInfo;
    const r = await fetch(`http://127.0.0.1:${port}/metrics`);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(await r.text()).toMatch(/roiserve_work_in_flight \d/);
    // Only /metrics lives there: the API is not reachable through the key-less port.
    const api = await fetch(`http://127.0.0.1:${port}/v1/backbone`);
    expect(api.status).toBe(404);
    // Closing the app closes the listener too.
    await app.close();
    apps.pop();
    await expect(fetch(`http://127.0.0.1:${port}/metrics`)).rejects.toThrow();
  });

  it('without API_KEY it stays open on the main port', async () => {
    const app = await buildApp(testConfig());
    apps.push(app);
    expect((await app.inject({ method: 'GET', url: '/metrics' })).statusCode).toBe(200);
  });
});

describe('main.ts with METRICS_PORT', () => {
  it('listens on both ports: /metrics without a key on METRICS_PORT, not on PORT', async () => {
    const { child, output, exit } = startMain({ METRICS_PORT: '0', API_KEY });
    try {
      let urls: { main?: string; metrics?: string } = {};
      for (let i = 0; i < 1200 && !(urls.main && urls.metrics); i++) {
        urls = {
          main: /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(output())?.[1],
          metrics: /metrics listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(output())?.[1],
        };
        await new Promise((r) => setTimeout(r, 25));
      }
      expect(urls.main, output()).toBeDefined();
      expect(urls.metrics, output()).toBeDefined();
      expect(urls.metrics).not.toBe(urls.main);
      // One connection per request (no keep-alive socket left for the shutdown to wait on).
      const get = (url: string, headers: Record<string, string> = {}) =>
        new Promise<{ status: number; body: string }>((resolve, reject) => {
          httpGet(url, { agent: false, headers }, (res) => {
            let body = '';
            res.setEncoding('utf8');
            res.on('data', (c: string) => (body += c));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
          }).on('error', reject);
        });
      const scraped = await get(`${urls.metrics}/metrics`);
      expect(scraped.status).toBe(200);
      expect(scraped.body).toMatch(/roiserve_workers 1/);
      const onMain = await get(`${urls.main}/metrics`, { 'x-api-key': API_KEY });
      expect(onMain.status).toBe(404);
      // Stop once ready (a SIGTERM while the backbone still loads is a failed start, exit 1).
      for (let i = 0; i < 1200 && (await get(`${urls.main}/readyz`)).status !== 200; i++) {
        await new Promise((r) => setTimeout(r, 25));
      }
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exit, output()).toBe(0);
  });
});
