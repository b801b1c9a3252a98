import { describe, expect, it } from 'vitest';
import { poolCells, roiPool, toCanonicalBoxes, toLayout } from '../../src/ops/index.js';
import type { FeatureMap } from '../../src/ops/index.js';
import { mulberry32, randInt, randomBoxes, randomMap } from '../support/random.js';
import { refBoxes, refRoiPool } from '../reference/roi_reference.js';
import { randomProblem } from '../support/ops-problems.js';
import { firstMismatch } from '../support/compare.js';
import { fieldOf } from '../support/errors.js';

describe('roiPool', () => {
  it('C rounding of the worked example: 15.5 → 16, -1.5 → -2 (not Math.round)', () => {
    expect(poolCells(296, 192, 496, 337, 1 / 32)).toEqual({ sx: 9, sy: 6, ex: 16, ey: 11 });
    expect(poolCells(-48, -16, 0, 0, 1 / 32).sx).toBe(-2);
    expect(poolCells(-48, -16, 0, 0, 1 / 32).sy).toBe(-1); // -0.5 → -1
  });

  it('bins of a 4×4 ramp: end cell inclusive, overlapping bins', () => {
    const ramp: FeatureMap = {
      data: Float32Array.from({ length: 16 }, (_, i) => i),
      shape: [1, 1, 4, 4],
      layout: 'NCHW',
    };
    // Box cells 0..2 (3 cells, end inclusive) into 2 bins: [0, 2) and [1, 3) (bin size 1.5).
    const out = roiPool(ramp, toCanonicalBoxes([[0, 0, 2, 2]], { batchSize: 1 }), {
      spatialScale: 1,
      outputSize: 2,
    });
    expect(Array.from(out.data)).toEqual([5, 6, 9, 10]);
  });

  it('equals the slow reference exactly on random inputs', () => {
    const rand = mulberry32(99);
    for (let t = 0; t < 150; t++) {
      const { input, refMap, boxes, stride } = randomProblem(rand, {
        maxC: 5,
        maxHW: 12,
        strides: [1, 2, 16],
      });
      const [PH, PW] = [randInt(rand, 1, 5), randInt(rand, 1, 5)];
      const out = roiPool(input, boxes, { spatialScale: 1 / stride, outputSize: [PH, PW] });
      const ref = refRoiPool(refMap, refBoxes(boxes.data, boxes.count), {
        s: 1 / stride,
        PH,
        PW,
      });
      expect(firstMismatch(out.data, ref)).toBe(-1);
    }
  });

  it('NHWC in and out agree with NCHW', () => {
    const rand = mulberry32(3);
    const [N, C, H, W] = [2, 5, 8, 9];
    const input: FeatureMap = { data: randomMap(rand, N * C * H * W), shape: [N, C, H, W], layout: 'NCHW' };
    const boxes = { data: randomBoxes(rand, 15, N, H, W, 4), count: 15 };
    const a = roiPool(input, boxes, { spatialScale: 0.25, outputSize: 3 });
    expect(roiPool(toLayout(input, 'NHWC'), boxes, { spatialScale: 0.25, outputSize: 3 }).data).toEqual(
      a.data,
    );
    const c = roiPool(input, boxes, { spatialScale: 0.25, outputSize: 3, outputLayout: 'NHWC' });
    expect(toLayout({ data: c.data, shape: c.shape, layout: 'NHWC' }, 'NCHW').data).toEqual(a.data);
  });

  it('an empty bin (box outside the map) gives 0; K = 0 gives [0, C, PH, PW]', () => {
    const input: FeatureMap = { data: new Float32Array(16).fill(-3), shape: [1, 1, 4, 4], layout: 'NCHW' };
    const out = roiPool(
      input,
      toCanonicalBoxes(
        [
          [100, 100, 120, 120],
          [0, 0, 3, 3],
        ],
        { batchSize: 1 },
      ),
      {
        spatialScale: 1,
        outputSize: 1,
      },
    );
    expect(Array.from(out.data)).toEqual([0, -3]);
    expect(roiPool(input, { data: new Float32Array(0), count: 0 }, { spatialScale: 1 }).shape).toEqual([
      0, 1, 7, 7,
    ]);
  });

  it('refuses bad parameters naming the field', () => {
    const input: FeatureMap = { data: new Float32Array(16), shape: [1, 1, 4, 4], layout: 'NCHW' };
    const boxes = toCanonicalBoxes([[0, 0, 1, 1]], { batchSize: 1 });
    for (const [params, field] of [
      [{ spatialScale: -1 }, 'spatialScale'],
      [{ spatialScale: 1, outputSize: -2 }, 'outputSize'],
      [{ spatialScale: 1, outputLayout: 'CHW' }, 'outputLayout'],
    ] as const) {
      expect(fieldOf(() => roiPool(input, boxes, params as never))).toBe(field);
    }
  });
});
