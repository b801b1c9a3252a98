/**
 * Property tests: random boxes, scales, channels and mutated bodies thrown at POST /v1/diff get a 200
 * (a PNG that decodes, or JSON) or a 4xx problem, never a 5xx. Each 200 renders a sheet, so the runs are
 * few; `test/routes/v1/roi.property.test.ts` covers the shared input parsing at length.
 */
import fc from 'fast-check';
import sharp from 'sharp';
import { beforeEach, describe, expect, it } from 'vitest';
import { featuresField, randomMap } from '../../support/fixtures.js';
import { useApp } from '../../support/app.js';

const server = useApp();

const fm = randomMap([2, 3, 6, 7], 4);
const valid = {
  features: featuresField(fm),
  spatialScale: 0.5,
  imageSize: [14, 12],
  boxes: [
    [0, 1, 1, 9, 9],
    [1, 0, 0, 13, 11],
  ],
  outputSize: 3,
};

/** Answers by status code since the current test began (each test checks that some runs succeeded). */
const statuses = new Map<number, number>();
beforeEach(() => statuses.clear());

async function expectNo5xx(payload: Record<string, unknown>): Promise<void> {
  const r = await server.app.inject({ method: 'POST', url: '/v1/diff', payload });
  statuses.set(r.statusCode, (statuses.get(r.statusCode) ?? 0) + 1);
  if (r.statusCode === 200) {
    if (payload.format === 'json') {
      expect(r.json()).toHaveProperty('images');
    } else {
      expect((await sharp(r.rawPayload).metadata()).format).toBe('png');
    }
    return;
  }
  if (!(r.statusCode >= 400 && r.statusCode < 500)) {
    throw new Error(
      `status ${r.statusCode} for ${JSON.stringify(payload).slice(0, 500)}: ${r.body.slice(0, 500)}`,
    );
  }
  expect(r.headers['content-type']).toBe('application/problem+json; charset=utf-8');
}

const nastyNumber = fc.oneof(
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.integer({ min: -20, max: 40 }),
  fc.constantFrom(0, -0, 0.5, -1, 1e-30, 1e30, 3.4e38, 1e300, 64, 1024),
);

/** `plausible` four times out of five, else `nasty`: most runs should reach the renderer. */
function mostly<T, U>(plausible: fc.Arbitrary<T>, nasty: fc.Arbitrary<U>): fc.Arbitrary<T | U> {
  return fc.oneof({ arbitrary: plausible, weight: 4 }, { arbitrary: nasty, weight: 1 });
}

describe('POST /v1/diff never answers 5xx', () => {
  it('random boxes, scales, image sizes, channels and maxBoxes', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.oneof(
            { arbitrary: fc.array(nastyNumber, { minLength: 4, maxLength: 5 }), weight: 1 },
            // Mostly plausible boxes (some outside the map, some empty), so that many runs reach the renderer.
            {
              arbitrary: fc
                .tuple(
                  fc.integer({ min: -4, max: 20 }),
                  fc.integer({ min: -4, max: 20 }),
                  fc.nat(16),
                  fc.nat(16),
                )
                .map(([x, y, w, h]) => [x, y, x + w, y + h]),
              weight: 8,
            },
          ),
          { maxLength: 4 },
        ),
        mostly(fc.constantFrom(0.5, 0.25, 1, 2, 1 / 3), nastyNumber),
        fc.option(
          mostly(
            fc.tuple(fc.integer({ min: 1, max: 64 }), fc.integer({ min: 1, max: 64 })),
            fc.tuple(nastyNumber, nastyNumber),
          ),
          {
            nil: undefined,
          },
        ),
        mostly(
          fc.oneof(fc.integer({ min: 0, max: 2 }), fc.constantFrom('mean', 'meanabs', 'max')),
          fc.oneof(fc.integer({ min: -1, max: 4 }), fc.constant('sum')),
        ),
        mostly(fc.integer({ min: 0, max: 32 }), fc.integer({ min: -1, max: 40 })),
        fc.constantFrom('png', 'json'),
        async (boxes, spatialScale, imageSize, channel, maxBoxes, format) =>
          expectNo5xx({ ...valid, boxes, spatialScale, imageSize, channel, maxBoxes, format }),
      ),
      { numRuns: 40 },
    );
    // Some runs reached the renderer (about half do): a generator that only made refused bodies, or a
    // route refusing everything, would pass the property above.
    expect(statuses.get(200) ?? 0).toBeGreaterThan(2);
  });

  it('valid bodies with one field replaced by junk', async () => {
    const field = fc.constantFrom(
      'features',
      'spatialScale',
      'imageSize',
      'boxes',
      'outputSize',
      'channel',
      'maxBoxes',
      'format',
      'ops',
    );
    // The body the junk goes into is itself accepted, so the refusals below come from the junk.
    await expectNo5xx(valid);
    expect(statuses.get(200)).toBe(1);
    await fc.assert(
      fc.asyncProperty(field, fc.jsonValue({ maxDepth: 2 }), async (name, value) =>
        expectNo5xx({ ...valid, [name]: value }),
      ),
      { numRuns: 40 },
    );
  });
});
