import { describe, expect, it } from 'vitest';
import { boxAt, roiAlign, roiWarp, snapBoxes, toCanonicalBoxes, warpCells } from '../../src/ops/index.js';
import type { AlignMode } from '../../src/ops/index.js';
import { mulberry32, randInt, randomMap } from '../oracle/random.js';
import { refBoxes, refRoiWarp } from '../reference/roi_reference.js';
import { maxAbsDiff, randomProblem, refAlignParams } from './helpers.js';

describe('roiWarp', () => {
  it('snaps the worked example box to cells (9, 6, 16, 11) = pixels (288, 192, 512, 352)', () => {
    const boxes = toCanonicalBoxes([[296, 192, 496, 337]], { batchSize: 1 });
    expect(boxAt(snapBoxes(boxes, 1 / 32), 0)).toEqual({ b: 0, x1: 288, y1: 192, x2: 512, y2: 352 });
    expect(warpCells(296, 192, 496, 337, 1 / 32)).toEqual({ qx1: 9, qy1: 6, qx2: 16, qy2: 11 });
  });

  it('a box smaller than a cell still covers one cell', () => {
    expect(warpCells(100, 100, 101, 100, 1 / 16)).toEqual({ qx1: 6, qy1: 6, qx2: 7, qy2: 7 });
  });

  it('equals RoI Align on the snapped boxes, and the slow reference, on random inputs', () => {
    const rand = mulberry32(4242);
    for (let t = 0; t < 80; t++) {
      const { input, refMap, boxes, stride } = randomProblem(rand, {
        maxC: 4,
        maxHW: 10,
        strides: [1, 8, 16],
      });
      const params = {
        spatialScale: 1 / stride,
        outputSize: [randInt(rand, 1, 4), randInt(rand, 1, 4)] as [number, number],
        samplingRatio: randInt(rand, 1, 3),
        aligned: rand() < 0.7,
        mode: (['avg', 'max', 'onnx_max'] as AlignMode[])[randInt(rand, 0, 2)],
      };
      const warp = roiWarp(input, boxes, params);
      expect(warp.data).toEqual(roiAlign(input, snapBoxes(boxes, params.spatialScale), params).data);
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
});
