/**
 * Where `/metrics` is served (issue 11 item 12): behind the API key on the main port when `API_KEY` is
 * set; with `METRICS_PORT`, only on that separate listener and without a key.
 */
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/server.js';
import { testConfig } from '../routes/helpers.js';

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
