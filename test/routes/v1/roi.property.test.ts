/**
 * Property tests: random and mutated bodies thrown at POST /v1/roi get a 200 or a 4xx problem,
 * never a 5xx. Bounded runs so the file stays quick on two cores.
 */
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { buildApp } from '../../../src/server.js';
import { featuresField, randomMap, testConfig } from '../../support/fixtures.js';

let app: FastifyInstance;

beforeAll(async () => {
  app = await buildApp(testConfig({ maxOutputValues: 2_000_000 }));
  await app.readiness.settled;
});

afterAll(async () => {
  await app?.close();
});

const fm = randomMap([2, 3, 6, 7], 3);
const valid = {
  features: featuresField(fm),
  spatialScale: 0.5,
  boxes: [
    [0, 1, 1, 9, 9],
    [1, 0, 0, 13, 11],
  ],
  ops: ['pool', 'align', 'warp'],
  outputSize: 3,
  samplingRatio: 2,
  aligned: true,
  mode: 'avg',
  boxFormat: 'xyxy',
  format: 'json',
  encoding: 'base64',
  dtype: 'float32',
};

/** Answers by status code since the current test began (each test checks its own mix). */
const statuses = new Map<number, number>();
beforeEach(() => statuses.clear());

async function expectNo5xx(payload: unknown, headers: Record<string, string> = {}): Promise<void> {
  const r = await app.inject({
    method: 'POST',
    url: '/v1/roi',
    headers: { 'content-type': 'application/json', ...headers },
    payload: typeof payload === 'string' ? payload : JSON.stringify(payload),
  });
  statuses.set(r.statusCode, (statuses.get(r.statusCode) ?? 0) + 1);
  if (r.statusCode !== 200 && (r.statusCode < 400 || r.statusCode >= 500)) {
    throw new Error(
      `status ${r.statusCode} for ${JSON.stringify(payload).slice(0, 500)}: ${r.body.slice(0, 500)}`,
    );
  }
  if (r.statusCode >= 400) {
    expect(r.headers['content-type']).toBe('application/problem+json; charset=utf-8');
    expect(r.json()).toMatchObject({ status: r.statusCode });
  }
}

/** Numbers that tend to break things: extremes, signs, fractions, exponents. */
const nastyNumber = fc.oneof(
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.integer({ min: -5, max: 100 }),
  fc.constantFrom(0, -0, 0.5, -1, 1e-30, 1e30, 3.4e38, 3.5e38, 1e300, Number.MAX_SAFE_INTEGER, 65, 64, 1024),
);
const nastyValue = fc.oneof(
  { depthSize: 'small' },
  fc.jsonValue(),
  nastyNumber,
  fc.array(nastyNumber, { maxLength: 6 }),
  fc.array(fc.array(nastyNumber, { minLength: 3, maxLength: 6 }), { maxLength: 5 }),
  fc.constantFrom(
    '',
    'npy',
    'safetensors',
    'array',
    'NHWC',
    'max',
    'onnx_max',
    'cxcywh',
    'AAAA',
    'true',
    'float16',
    'bfloat16',
  ),
);
/** `plausible` four times out of five, else `nasty`. */
function mostly<T, U>(plausible: fc.Arbitrary<T>, nasty: fc.Arbitrary<U>): fc.Arbitrary<T | U> {
  return fc.oneof({ arbitrary: plausible, weight: 4 }, { arbitrary: nasty, weight: 1 });
}
const fieldName = fc.constantFrom(...Object.keys(valid), 'image', 'imageSize', 'unknown');
const featureField = fc.constantFrom('shape', 'layout', 'data', 'extra');

describe('POST /v1/roi never answers 5xx', () => {
  it('arbitrary JSON bodies', async () => {
    await fc.assert(
      fc.asyncProperty(fc.jsonValue(), async (body) => expectNo5xx(body)),
      { numRuns: 150 },
    );
  });

  it('arbitrary bytes as JSON', async () => {
    await fc.assert(
      fc.asyncProperty(fc.string({ maxLength: 200 }), async (text) => expectNo5xx(text)),
      { numRuns: 100 },
    );
  });

  it('valid bodies with fields replaced, removed or added', async () => {
    const mutation = fc.array(
      fc.oneof(
        fc.record({ kind: fc.constant('set' as const), field: fieldName, value: nastyValue }),
        fc.record({ kind: fc.constant('delete' as const), field: fieldName }),
        fc.record({ kind: fc.constant('feature' as const), field: featureField, value: nastyValue }),
      ),
      { minLength: 1, maxLength: 3 },
    );
    await fc.assert(
      fc.asyncProperty(mutation, async (mutations) => {
        const body: Record<string, unknown> = structuredClone(valid);
        for (const m of mutations) {
          if (m.kind === 'set') body[m.field] = m.value;
          else if (m.kind === 'delete') delete body[m.field];
          else body.features = { ...(body.features as object), [m.field]: m.value };
        }
        await expectNo5xx(body);
      }),
      { numRuns: 300 },
    );
    // Guards against a generator that only ever produces trivially rejected bodies (checked here, in
    // the test that makes them, so that it holds when this test runs alone).
    expect(statuses.get(200) ?? 0).toBeGreaterThan(20);
    expect(statuses.get(400) ?? 0).toBeGreaterThan(20);
  });

  it('random boxes, scales and sizes around the valid body', async () => {
    // Mostly plausible values (boxes in and around the map, some empty; usual scales, sizes and ratios)
    // with nasty ones mixed in, so that many runs reach the kernels, not only the validation.
    const plausibleBox = fc
      .tuple(
        fc.integer({ min: 0, max: 1 }),
        fc.integer({ min: -4, max: 20 }),
        fc.integer({ min: -4, max: 20 }),
        fc.nat(16),
        fc.nat(16),
      )
      .map(([b, x, y, w, h]) => [b, x, y, x + w, y + h]);
    const box = mostly(plausibleBox, fc.array(nastyNumber, { minLength: 4, maxLength: 5 }));
    await fc.assert(
      fc.asyncProperty(
        fc.array(box, { maxLength: 6 }),
        mostly(fc.constantFrom(0.5, 0.25, 1, 1 / 7, 0.3), nastyNumber),
        mostly(
          fc.oneof(
            fc.integer({ min: 1, max: 8 }),
            fc.tuple(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 8 })),
          ),
          fc.oneof(nastyNumber, fc.tuple(nastyNumber, nastyNumber)),
        ),
        mostly(fc.integer({ min: -1, max: 4 }), nastyNumber),
        fc.constantFrom('xyxy', 'xywh', 'cxcywh'),
        fc.constantFrom('avg', 'max', 'onnx_max'),
        fc.boolean(),
        async (boxes, spatialScale, outputSize, samplingRatio, boxFormat, mode, aligned) =>
          expectNo5xx({ ...valid, boxes, spatialScale, outputSize, samplingRatio, boxFormat, mode, aligned }),
      ),
      { numRuns: 300 },
    );
    // Both outcomes, in this test alone (the nasty values alone gave about 4 successes in 300).
    expect(statuses.get(200) ?? 0).toBeGreaterThan(20);
    expect(statuses.get(400) ?? 0).toBeGreaterThan(20);
  });

  it('malformed multipart bodies', async () => {
    const boundary = 'XBOUNDARY';
    const part = fc.oneof(
      fc.constant(`--${boundary}\r\nContent-Disposition: form-data; name="boxes"\r\n\r\n[[0,0,1,1]]\r\n`),
      fc.constant(
        `--${boundary}\r\nContent-Disposition: form-data; name="features"; filename="a.npy"\r\n\r\n`,
      ),
      fc.constant(`--${boundary}\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n`),
      fc.constant(`--${boundary}--\r\n`),
      fc.string({ maxLength: 40 }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(part, { maxLength: 6 }), async (parts) => {
        const r = await app.inject({
          method: 'POST',
          url: '/v1/roi',
          headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
          payload: parts.join(''),
        });
        statuses.set(r.statusCode, (statuses.get(r.statusCode) ?? 0) + 1);
        expect(r.statusCode, r.body).toBeGreaterThanOrEqual(400);
        expect(r.statusCode, r.body).toBeLessThan(500);
      }),
      { numRuns: 150 },
    );
  });
});
