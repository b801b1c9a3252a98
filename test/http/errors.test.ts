/**
 * Errors with the fix in them (issue 10) and the JSON body errors (issue 11 item 13): the wrong method,
 * malformed JSON, prototype keys, and the common mistakes in a body's fields.
 */
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/server.js';
import { testConfig } from '../routes/helpers.js';

const PROBLEM_TYPE = 'application/problem+json; charset=utf-8';

let app: FastifyInstance;

beforeAll(async () => {
  app = await buildApp(testConfig());
});

afterAll(async () => {
  await app?.close();
});

describe('405 with Allow', () => {
  it('a path that exists with other methods answers 405, Allow and a problem naming them', async () => {
    const r = await app.inject({ method: 'GET', url: '/v1/roi?x=1' });
    expect(r.statusCode).toBe(405);
    expect(r.headers.allow).toBe('POST');
    expect(r.headers['content-type']).toBe(PROBLEM_TYPE);
    expect(r.json()).toEqual({
      type: 'urn:roiserve:problem:method-not-allowed',
      title: 'Method not allowed',
      status: 405,
      detail: 'GET is not allowed on /v1/roi; it accepts POST',
      instance: '/v1/roi',
      errors: [
        { field: 'method', expected: 'POST', message: 'GET is not allowed on /v1/roi; it accepts POST' },
      ],
    });
  });

  it.each([
    ['DELETE', '/v1/backbone', 'GET, HEAD'],
    ['POST', '/healthz', 'GET, HEAD'],
    ['PUT', '/v1/diff', 'POST'],
    ['OPTIONS', '/v1/features', 'POST'],
    ['GET', '/%76%31/roi', 'POST'],
  ])('%s %s → 405, Allow: %s', async (method, url, allow) => {
    const r = await app.inject({ method: method as 'GET', url });
    expect(r.statusCode).toBe(405);
    expect(r.headers.allow).toBe(allow);
  });

  it('a path with no route at all stays a 404', async () => {
    for (const url of ['/v1/nothing', '/V1/roi', '/v1/roi/']) {
      const r = await app.inject({ method: 'GET', url });
      expect(r.statusCode, url).toBe(404);
      expect(r.headers.allow, url).toBeUndefined();
    }
  });
});
