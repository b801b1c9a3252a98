/** runOps: one map runs each kernel as is; a pyramid runs multiScaleRoi (each box on its level). */
import { describe, expect, it } from 'vitest';
import { runOps, boxCoverage, uprightBoxes } from '../../src/core/run-ops.js';
import {
  multiScaleRoi,
  multiScaleRotatedRoiAlign,
  psRoiPool,
  roiAlign,
  rotatedRoiAlign,
  toCanonicalBoxes,
  toRotatedBoxes,
  type FeatureMap,
} from '../../src/ops/index.js';
import { mulberry32, randomMap } from '../support/random.js';

const rand = mulberry32(7);
const map = (h: number, w: number): FeatureMap => ({
  data: randomMap(rand, 8 * h * w),
  shape: [1, 8, h, w],
  layout: 'NCHW',
});
const pyramid = [map(32, 32), map(16, 16), map(8, 8)];
const scales = [1 / 4, 1 / 8, 1 / 16];
const boxes = toCanonicalBoxes(
  [
    [0, 4, 4, 40, 30],
    [0, 10, 10, 120, 120],
    [0, 0, 0, 60, 100],
  ],
  { batchSize: 1 },
);
const params = {
  outputSize: [2, 2] as [number, number],
  samplingRatio: 2,
  aligned: false,
  mode: 'avg' as const,
};

describe('runOps', () => {
  it('one map: each kernel at its scale, no levels', () => {
    const r = runOps({ maps: [pyramid[0]], scales: [0.3] }, { ops: ['align', 'ps_pool'], boxes, params });
    expect(r.levels).toBeUndefined();
    expect(r.outputs.align.data).toEqual(roiAlign(pyramid[0], boxes, { ...params, spatialScale: 0.3 }).data);
    expect(r.outputs.ps_pool.data).toEqual(
      psRoiPool(pyramid[0], boxes, { ...params, spatialScale: 0.3 }).data,
    );
  });

  it('a pyramid: multiScaleRoi, levels per box, coverage at each level stride', () => {
    const mapping = { rule: 'detectron2' as const, canonicalBoxSize: 64, canonicalLevel: 3 };
    const r = runOps({ maps: pyramid, scales }, { ops: ['align'], boxes, params, levelMapping: mapping });
    const expected = multiScaleRoi('align', pyramid, scales, boxes, params, mapping);
    expect(r.outputs.align.data).toEqual(expected.output.data);
    expect(Array.from(r.levels!)).toEqual(Array.from(expected.levels));
    const cov = boxCoverage({ maps: pyramid, scales }, r.levels, boxes, undefined, [128, 128], {
      aligned: true,
      clockwise: false,
    });
    // Pool's region starts on a cell edge of the box's own level.
    const stride = 2 ** r.levels![1];
    expect(cov[1].pool.region.x1 % stride).toBe(0);
    // With no op at all the levels still come back.
    expect(
      Array.from(
        runOps({ maps: pyramid, scales }, { ops: [], boxes, params, levelMapping: mapping }).levels!,
      ),
    ).toEqual(Array.from(expected.levels));
  });

  it('rotated boxes: rotated_align on one map or the pyramid; other ops are for upright boxes', () => {
    const rotated = toRotatedBoxes(
      [
        [0, 30, 30, 40, 20, 30],
        [0, 60, 60, 100, 90, -45],
      ],
      { batchSize: 1 },
    );
    const upright = uprightBoxes(rotated, false);
    const one = runOps(
      { maps: [pyramid[0]], scales: [0.25] },
      { ops: ['rotated_align'], boxes: upright, rotated, params },
    );
    expect(one.outputs.rotated_align.data).toEqual(
      rotatedRoiAlign(pyramid[0], rotated, { ...params, spatialScale: 0.25 }).data,
    );
    const many = runOps(
      { maps: pyramid, scales },
      { ops: ['rotated_align'], boxes: upright, rotated, params },
    );
    const expected = multiScaleRotatedRoiAlign(pyramid, scales, rotated, params);
    expect(many.outputs.rotated_align.data).toEqual(expected.output.data);
    expect(() =>
      runOps({ maps: [pyramid[0]], scales: [0.25] }, { ops: ['rotated_align'], boxes, params }),
    ).toThrow(/boxFormat/);
    // The upright box of a 40×20 box at 30°: half sides (40·cos30 + 20·sin30)/2 = 22.32 and (40·sin30 + 20·cos30)/2 = 18.66.
    expect(upright.data[1]).toBeCloseTo(30 - 22.3205, 3);
    expect(upright.data[2]).toBeCloseTo(30 - 18.6603, 3);
  });
});
