import { describe, expect, it } from 'vitest';
import { InvalidInputError } from '../../src/errors.js';
import { assertFeatureShape, assertFiniteFeatures, toLayout } from '../../src/ops/index.js';
import type { FeatureMap } from '../../src/ops/index.js';

const nchw: FeatureMap = {
  // [1, 2, 2, 3]: channel 0 = 0..5, channel 1 = 10..15
  data: Float32Array.from([0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15]),
  shape: [1, 2, 2, 3],
  layout: 'NCHW',
};

describe('toLayout', () => {
  it('transposes NCHW to NHWC (channels innermost) and back', () => {
    const nhwc = toLayout(nchw, 'NHWC');
    expect(Array.from(nhwc.data)).toEqual([0, 10, 1, 11, 2, 12, 3, 13, 4, 14, 5, 15]);
    expect(nhwc.shape).toEqual([1, 2, 2, 3]);
    expect(toLayout(nhwc, 'NCHW').data).toEqual(nchw.data);
    expect(toLayout(nchw, 'NCHW')).toBe(nchw);
  });
});

describe('assertFiniteFeatures', () => {
  it('accepts finite maps', () => {
    expect(() => assertFiniteFeatures(nchw)).not.toThrow();
  });

  it('names the first NaN or Infinity with its position', () => {
    const data = nchw.data.slice();
    data[7] = NaN;
    data[9] = Infinity;
    try {
      assertFiniteFeatures({ ...nchw, data }, 'features');
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(InvalidInputError);
      expect((e as InvalidInputError).field).toBe('features.data[7]');
      expect((e as Error).message).toMatch(/n=0, c=1, y=0, x=1/);
    }
    const nhwc = toLayout(nchw, 'NHWC');
    const d2 = nhwc.data.slice();
    d2[3] = -Infinity; // (y=0, x=1, c=1)
    expect(() => assertFiniteFeatures({ ...nhwc, data: d2 })).toThrow(/c=1, y=0, x=1/);
  });

  it('checks shape, layout and length', () => {
    const bad = (fm: Partial<FeatureMap>): string => {
      try {
        assertFeatureShape({ ...nchw, ...fm } as FeatureMap);
      } catch (e) {
        return (e as InvalidInputError).field;
      }
      return 'none';
    };
    expect(bad({ shape: [1, 2, 2] as never })).toBe('features.shape');
    expect(bad({ shape: [1, 2, 0, 3] })).toBe('features.shape');
    expect(bad({ layout: 'CHW' as never })).toBe('features.layout');
    expect(bad({ data: new Float32Array(11) })).toBe('features.data');
  });
});
