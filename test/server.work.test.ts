/**
 * Work that must not run: requests over the work budget (`MAX_WORK`) are refused with 413 before any
 * work is queued.
 */
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { buildApp } from '../src/server.js';
import { featuresField, randomMap, testConfig } from './routes/helpers.js';

let app: FastifyInstance;

beforeAll(async () => {
  app = await buildApp(testConfig());
  await app.readiness.settled;
});

afterAll(async () => {
  await app?.close();
});

/** The hostile requests of issue 11, item 3 (inside MAX_BOXES and MAX_OUTPUT_VALUES). */
const hostile = {
  align: {
    features: featuresField(randomMap([1, 1, 16, 16])),
    spatialScale: 1,
    boxes: Array.from({ length: 5000 }, (_, k) => [k % 4, k % 3, 16, 16]),
    ops: ['align'],
    mode: 'max',
    outputSize: 64,
    samplingRatio: 64,
    format: 'npy',
  },
  pool: {
    // (the map was 2828², sent as .npy; 1400² keeps the JSON body under BODY_LIMIT_BYTES)
    features: featuresField(randomMap([1, 1, 1400, 1400])),
    spatialScale: 1,
    boxes: Array.from({ length: 10_000 }, () => [0, 0, 1400, 1400]),
    ops: ['pool'],
    outputSize: 1,
    format: 'npy',
  },
};

describe('the work budget (MAX_WORK)', () => {
  it.each(Object.entries(hostile))(
    'refuses the hostile %s request with 413 and the estimate; no work reaches the pool',
    async (_name, payload) => {
      const roiEncoded = vi.spyOn(app.work, 'roiEncoded');
      const diff = vi.spyOn(app.work, 'roi');
      try {
        for (const url of ['/v1/roi', '/v1/diff']) {
          const body = url === '/v1/diff' ? { ...payload, format: 'json' } : payload;
          const r = await app.inject({ method: 'POST', url, payload: body });
          expect(r.statusCode).toBe(413);
          const problem = r.json<{
            type: string;
            detail: string;
            errors: { field: string; expected: string }[];
          }>();
          expect(problem.type).toBe('urn:roiserve:problem:too-large');
          expect(problem.detail).toMatch(
            /^this request would cost ~\d\.\de\+\d+ work units \(.+\), over MAX_WORK=5\.0e\+10$/,
          );
          expect(problem.errors[0].field).toBe('boxes');
          expect(problem.errors[0].expected).toMatch(/fewer boxes, a smaller outputSize or samplingRatio/);
        }
        expect(roiEncoded).not.toHaveBeenCalled();
        expect(diff).not.toHaveBeenCalled();
      } finally {
        roiEncoded.mockRestore();
        diff.mockRestore();
      }
    },
  );

  it('lets a normal request through: 1000 boxes × 64 channels × 7×7, all three ops', async () => {
    const r = await app.inject({
      method: 'POST',
      url: '/v1/roi',
      payload: {
        features: featuresField(randomMap([1, 64, 30, 40])),
        spatialScale: 1 / 16,
        boxes: Array.from({ length: 1000 }, (_, k) => [k % 300, k % 200, 300 + (k % 300), 200 + (k % 280)]),
        format: 'safetensors',
      },
    });
    expect(r.statusCode).toBe(200);
  });
});
