/**
 * The operator registry is the one list of operators: what derives from it must say the same thing
 * (names, order, pairs), and each entry's `run` must be its kernel.
 */
import { describe, expect, it } from 'vitest';
import {
  CELL_OPS,
  COMPARED_OPS,
  COMPARE_ORDER,
  COVERAGE_ORDER,
  DIFF_PAIRS,
  MULTI_SCALE_OPS,
  OPERATORS,
  ROI_OPS,
  V1_OPERATORS,
  coverage,
  psRoiAlign,
  psRoiPool,
  roiAlign,
  roiPool,
  roiWarp,
  type Boxes,
  type FeatureMap,
} from '../../src/ops/index.js';
import { STAGES } from '../../src/core/results.js';
import { boxCoverageSchema, roiResponseSchema, timingsSchema } from '../../routes/v1/schemas/responses.js';
import { MODELS } from '../../src/oip/models.js';

const map: FeatureMap = {
  data: Float32Array.from({ length: 1 * 8 * 6 * 6 }, (_, i) => Math.sin(i * 0.37) * 3),
  shape: [1, 8, 6, 6],
  layout: 'NCHW',
};
const boxes: Boxes = { data: Float32Array.from([0, 1.3, 0.7, 9.9, 8.2, 0, 3, 3, 11, 11]), count: 2 };

describe('operator registry', () => {
  it('lists the /v1 operators in their canonical order: the compared ones, then the others', () => {
    expect(ROI_OPS).toEqual(['pool', 'align', 'warp', 'ps_align', 'ps_pool', 'rotated_align']);
    expect(COMPARED_OPS).toEqual(['pool', 'align', 'warp']);
    expect(OPERATORS.map((op) => op.model)).toEqual([
      'roi_pool',
      'roi_align',
      'roi_warp',
      'ps_roi_align',
      'ps_roi_pool',
      'rotated_roi_align',
    ]);
    expect(new Set(OPERATORS.map((op) => op.name)).size).toBe(OPERATORS.length);
  });

  it('derives the diff pairs, the coverage order and the cell-reading ops', () => {
    expect(COMPARE_ORDER).toEqual(['align', 'pool', 'warp']);
    expect(DIFF_PAIRS).toEqual([
      ['align', 'pool'],
      ['align', 'warp'],
      ['pool', 'warp'],
    ]);
    expect(COVERAGE_ORDER).toEqual(['pool', 'warp', 'align']);
    expect(CELL_OPS).toEqual(['pool', 'warp']);
    expect(MULTI_SCALE_OPS).toEqual(['pool', 'align', 'warp', 'ps_align', 'ps_pool']);
  });

  it('gives the stages, the response keys and the /v2 models their names', () => {
    const others = ['ps_align', 'ps_pool', 'rotated_align'];
    expect(STAGES).toEqual(['decode', 'backbone', 'pool', 'align', 'warp', ...others, 'encode']);
    expect(Object.keys(timingsSchema.shape)).toEqual([
      'decode',
      'backbone',
      'pool',
      'align',
      'warp',
      ...others,
      'encode',
      'total',
    ]);
    expect(Object.keys(roiResponseSchema.shape.outputs.shape)).toEqual(['pool', 'align', 'warp', ...others]);
    // Rotated boxes add their polygon and what rotated_align reads.
    expect(Object.keys(boxCoverageSchema.shape)).toEqual([
      'box',
      'boxArea',
      'pool',
      'warp',
      'align',
      'polygon',
      'rotated',
    ]);
    for (const op of OPERATORS) expect(MODELS.has(op.model)).toBe(true);
  });

  it("runs each entry's own kernel", () => {
    const p = { spatialScale: 0.5, outputSize: 2, samplingRatio: 2, aligned: true, mode: 'avg' } as const;
    expect(V1_OPERATORS.pool.run(map, boxes, p)).toEqual(roiPool(map, boxes, p));
    expect(V1_OPERATORS.align.run(map, boxes, p)).toEqual(roiAlign(map, boxes, p));
    expect(V1_OPERATORS.warp.run(map, boxes, p)).toEqual(roiWarp(map, boxes, p));
    const ps = OPERATORS.filter((op) => op.positionSensitive);
    expect(ps.map((op) => op.name)).toEqual(['ps_align', 'ps_pool']);
    expect(ps[0].run(map, boxes, p)).toEqual(psRoiAlign(map, boxes, p));
    expect(ps[1].run(map, boxes, p)).toEqual(psRoiPool(map, boxes, p));
  });

  it('gives coverage one entry per compared operator, in COVERAGE_ORDER', () => {
    const c = coverage(
      { x1: 296, y1: 192, x2: 496, y2: 337 },
      { spatialScale: 1 / 32, imageSize: [512, 512] },
    );
    expect(Object.keys(c)).toEqual(['box', 'boxArea', 'pool', 'warp', 'align']);
    // The worked example of `coverage`'s TSDoc.
    expect(c.pool.region).toEqual({ x1: 288, y1: 192, x2: 512, y2: 384 });
    expect(c.warp.region).toEqual({ x1: 288, y1: 192, x2: 512, y2: 352 });
    expect(c.align.cells).toBeUndefined();
  });
});
