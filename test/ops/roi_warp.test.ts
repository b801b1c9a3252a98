import { describe, expect, it } from 'vitest';
import { InvalidInputError } from '../../src/errors.js';
import {
  boxAt,
  roiAlign,
  roiPool,
  roiWarp,
  toCanonicalBoxes,
  warpCellBoxes,
  warpCells,
} from '../../src/ops/index.js';
import type { AlignMode } from '../../src/ops/index.js';
import { mulberry32, randInt, randomMap } from '../support/random.js';
import { refBoxes, refRoiWarp } from '../reference/roi_reference.js';
import { randomProblem, refAlignParams } from '../support/ops-problems.js';
import { maxAbsDiff } from '../support/compare.js';

describe('roiWarp', () => {
  it('snaps the worked example box to cells (9, 6, 16, 11) = pixels (288, 192, 512, 352)', () => {
    const boxes = toCanonicalBoxes([[296, 192, 496, 337]], { batchSize: 1 });
    expect(boxAt(warpCellBoxes(boxes, 1 / 32), 0)).toEqual({ b: 0, x1: 9, y1: 6, x2: 16, y2: 11 });
    expect(warpCells(296, 192, 496, 337, 1 / 32)).toEqual({ qx1: 9, qy1: 6, qx2: 16, qy2: 11 });
  });

  it('a box smaller than a cell still covers one cell', () => {
    expect(warpCells(100, 100, 101, 100, 1 / 16)).toEqual({ qx1: 6, qy1: 6, qx2: 7, qy2: 7 });
  });

  it('equals RoI Align on the integer cell boxes at spatialScale 1, and the slow reference, on random inputs', () => {
    const rand = mulberry32(4242);
    for (let t = 0; t < 80; t++) {
      const { input, refMap, boxes, stride } = randomProblem(rand, {
        maxC: 4,
        maxHW: 10,
        strides: [1, 8, 16, 7, 1 / 0.3],
      });
      const params = {
        spatialScale: 1 / stride,
        outputSize: [randInt(rand, 1, 4), randInt(rand, 1, 4)] as [number, number],
        samplingRatio: randInt(rand, 1, 3),
        aligned: rand() < 0.7,
        mode: (['avg', 'max', 'onnx_max'] as AlignMode[])[randInt(rand, 0, 2)],
      };
      const warp = roiWarp(input, boxes, params);
      const cells = warpCellBoxes(boxes, params.spatialScale);
      expect(warp.data).toEqual(roiAlign(input, cells, { ...params, spatialScale: 1 }).data);
      const ref = refRoiWarp(refMap, refBoxes(boxes.data, boxes.count), refAlignParams(params));
      expect(maxAbsDiff(warp.data, ref)).toBeLessThanOrEqual(1e-5);
    }
  });

  it('with aligned = true on a cell-aligned box, warp and align agree', () => {
    const rand = mulberry32(1);
    const x = randomMap(rand, 3 * 8 * 8);
    const input = {
      data: x,
      shape: [1, 3, 8, 8] as [number, number, number, number],
      layout: 'NCHW' as const,
    };
    const boxes = toCanonicalBoxes([[32, 16, 96, 112]], { batchSize: 1 });
    const p = { spatialScale: 1 / 16, outputSize: 3 };
    expect(roiWarp(input, boxes, p).data).toEqual(roiAlign(input, boxes, p).data);
  });

  it('scale 1/7, adaptive: reads the integer cell box exactly (the q/s·s round trip took 4 samples, not 3)', () => {
    // x: -21 · fround(1/7) rounds to cell -3 and 21 · fround(1/7) to cell 3: 6 cells over 2 bins, an
    // adaptive grid of exactly 3 per bin. Through image pixels, -3 / s · s = -3.0000002 made it 6.0000005
    // cells wide and ceil(3.0000002) = 4 samples per bin: other sample positions, other values.
    const rand = mulberry32(17);
    const input = {
      data: randomMap(rand, 2 * 9 * 9),
      shape: [1, 2, 9, 9] as [number, number, number, number],
      layout: 'NCHW' as const,
    };
    const boxes = toCanonicalBoxes([[-21, 7, 21, 49]], { batchSize: 1 });
    const params = { spatialScale: 1 / 7, outputSize: 2, samplingRatio: 0 };
    expect(boxAt(warpCellBoxes(boxes, 1 / 7), 0)).toEqual({ b: 0, x1: -3, y1: 1, x2: 3, y2: 7 });
    const cellBox = toCanonicalBoxes([[-3, 1, 3, 7]], { batchSize: 1 });
    const expected = roiAlign(input, cellBox, { ...params, spatialScale: 1 }).data;
    expect(maxAbsDiff(roiWarp(input, boxes, params).data, expected)).toBe(0);
  });

  it('a box × spatialScale that overflows float32 is refused naming the coordinate and spatialScale', () => {
    const input = { data: new Float32Array(4), shape: [1, 1, 2, 2] as [number, number, number, number] };
    const boxes = toCanonicalBoxes([[0, 0, 10, 1e4]], { batchSize: 1 });
    for (const op of [roiWarp, roiAlign, roiPool]) {
      let err: unknown;
      try {
        op({ ...input, layout: 'NCHW' }, boxes, { spatialScale: 1e36 });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(InvalidInputError);
      expect((err as InvalidInputError).field).toBe('boxes[0]');
      expect((err as Error).message).toMatch(/y2 × spatialScale = 10000 × 1e\+36 = 1e\+40 overflows float32/);
      expect((err as Error).message).toMatch(/3\.402823e\+38/);
      expect((err as Error).message).not.toMatch(/is Infinity/);
    }
  });
});
