/**
 * The app factory (`buildApp`, src/server.ts) through `inject`: the problem 404 for an unknown route, 415
 * for a content type it does not parse, 413 at BODY_LIMIT_BYTES, and 503 with Retry-After when every
 * worker and queue place is taken. Each route's own tests are in test/routes/ (one file per route).
 */
import { describe, expect, it } from 'vitest';
import { buildApp } from '../src/server.js';
import { useApp } from './support/app.js';
import { featuresField, randomMap, testConfig } from './support/fixtures.js';
import { PROBLEM_TYPE, STRICT_API_KEY as API_KEY, roiPoster, strictConfig } from './support/v1.js';

const server = useApp();
const strictServer = useApp(strictConfig());
const roi = roiPoster(server);

describe('errors: 404, 413, 415', () => {
  it('an unknown route is a problem 404 (outside /v2, which answers the protocol {"error"})', async () => {
    const r = await server.app.inject({ method: 'GET', url: '/v9/nothing?x=1' });
    expect(r.statusCode).toBe(404);
    expect(r.headers['content-type']).toBe(PROBLEM_TYPE);
    expect(r.json()).toEqual({
      type: 'urn:roiserve:problem:not-found',
      title: 'Not found',
      status: 404,
      detail: 'no route GET /v9/nothing',
      instance: '/v9/nothing',
    });
  });

  it('415 for a content type other than JSON or multipart', async () => {
    const r = await server.app.inject({
      method: 'POST',
      url: '/v1/roi',
      headers: { 'content-type': 'text/plain' },
      payload: 'x',
    });
    expect(r.statusCode).toBe(415);
    expect(r.json()).toEqual({
      type: 'urn:roiserve:problem:unsupported-media-type',
      title: 'Unsupported media type',
      status: 415,
      detail: 'content type text/plain is not accepted here',
      instance: '/v1/roi',
      errors: [
        {
          field: 'Content-Type',
          expected: 'application/json or multipart/form-data',
          message: 'content type text/plain is not accepted here',
        },
      ],
    });
  });

  it('413 for a body over BODY_LIMIT_BYTES', async () => {
    const r = await roi(
      { features: featuresField(randomMap([1, 4, 16, 16])), spatialScale: 0.5, boxes: [] },
      strictServer.app,
      { authorization: `Bearer ${API_KEY}` },
    );
    expect(r.statusCode).toBe(413);
    expect(r.json()).toEqual({
      type: 'urn:roiserve:problem:too-large',
      title: 'Too large',
      status: 413,
      detail: 'the request body is larger than 4096 bytes',
      instance: '/v1/roi',
      errors: [
        {
          field: 'body',
          expected: 'at most 4096 bytes (BODY_LIMIT_BYTES)',
          message: 'the request body is larger than 4096 bytes',
        },
      ],
    });
  });
});

describe('503 when the queue is full', () => {
  it('refuses work beyond WORKERS + QUEUE_LIMIT with Retry-After', async () => {
    const heavy = randomMap([1, 32, 64, 64], 3);
    const payload = {
      features: featuresField(heavy),
      spatialScale: 1,
      boxes: Array.from({ length: 3 }, (_, i) => [i, i, 60, 60]),
      outputSize: 16,
      samplingRatio: 8,
      ops: ['align'],
    };
    const bigStrict = await buildApp(testConfig({ queueLimit: 0 }));
    try {
      await bigStrict.readiness.settled;
      const [a, b] = await Promise.all([
        bigStrict.inject({ method: 'POST', url: '/v1/roi', payload }),
        bigStrict.inject({ method: 'POST', url: '/v1/roi', payload }),
      ]);
      const statuses = [a.statusCode, b.statusCode].sort();
      expect(statuses).toEqual([200, 503]);
      const busy = a.statusCode === 503 ? a : b;
      expect(busy.headers['retry-after']).toBe('1');
      expect(busy.json()).toEqual({
        type: 'urn:roiserve:problem:unavailable',
        title: 'Service unavailable',
        status: 503,
        detail: 'all 1 workers are busy and 0 requests are already waiting; retry shortly',
        instance: '/v1/roi',
      });
    } finally {
      await bigStrict.close();
    }
  });
});
