/**
 * The configured `MAX_SAMPLING_GRID` guard of the pipeline (`checkAdaptiveGrid`, src/core/pipeline.ts)
 * computes the adaptive grid as the kernel does (`roiGeometry`: float32, half-pixel offset), so it
 * refuses exactly the boxes RoI Align would sample with more points than allowed. It used to compute it
 * in float64 without the offset: box rows (0.3, 8.3) at scale 1 are 8.00000018 cells apart in float64
 * (grid ceil(4.00000009) = 5 for 2 bins) but 8 in the kernel's float32 (grid 4), and were refused.
 */
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config.js';
import { decodeRoiTask } from '../../src/core/decode-task.js';
import { executeRoi } from '../../src/core/pipeline.js';
import { prepareRoi } from '../../src/core/prepare.js';
import type { PipelineContext } from '../../src/core/results.js';
import { limitsFrom } from '../../src/core/task.js';
import { InvalidInputError } from '../../src/errors.js';
import { roiAlign } from '../../src/ops/roi_align.js';
import { roiBodySchema, roiInputOf } from '../../routes/v1/schemas/request.js';
import { featuresField, randomMap } from '../support/fixtures.js';

const limits = { ...limitsFrom(parseConfig({})), maxSamplingGrid: 4 };
const ctx: PipelineContext = {
  backbone: () => Promise.reject(new Error('no backbone in this test')),
  backend: () => null,
  limits,
};
const map = randomMap([1, 2, 12, 12], 7);

async function run(box: number[]) {
  const body = roiBodySchema.parse({
    features: featuresField(map),
    spatialScale: 1,
    boxes: [box],
    ops: ['align'],
    outputSize: 2,
    samplingRatio: 0,
  });
  const task = prepareRoi(roiInputOf(body), limits);
  return executeRoi(decodeRoiTask(task, limits), ctx);
}

describe('the configured adaptive-grid guard', () => {
  it("accepts a box whose grid is the limit in the kernel's arithmetic (float64 said one more)", async () => {
    // Sanity of the premise, outside the guard: float64 puts this box over 4 points per bin and axis.
    expect(Math.ceil((Math.fround(8.3) - Math.fround(0.3)) / 2)).toBe(5);
    const result = await run([0, 0.3, 4, 8.3]);
    // What the kernel computes at the limit itself (samplingRatio 0 = adaptive, at most 4 here).
    const boxes = result.opBoxes;
    const direct = roiAlign(map, boxes, { spatialScale: 1, outputSize: 2, samplingRatio: 0 });
    expect(result.outputs.align?.data).toEqual(direct.data);
  });

  it('refuses a box over the limit, naming samplingRatio', async () => {
    // 10 cells over 2 bins: 5 points per bin and axis in any arithmetic.
    const error = await run([0, 0, 4, 10]).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(InvalidInputError);
    expect((error as InvalidInputError).field).toBe('samplingRatio');
    expect((error as Error).message).toMatch(
      /adaptive sampling grid of boxes\[0\] would be 5 points per axis, over the limit of 4/,
    );
  });

  it('with a pyramid, judges each box on its own level (it judged every box at the finest scale)', async () => {
    // Levels 2 and 3 (strides 4 and 8), S0 = 32: the 64 px box maps to floor(4 + log2(64 / 32)) = 5,
    // clamped to 3. On P3 it is 8 cells over 2 bins: 4 points per axis, the limit; at P2's scale it
    // would be 16 cells, 8 points, over it.
    const p2 = randomMap([1, 2, 24, 24], 8);
    const p3 = randomMap([1, 2, 12, 12], 9);
    const body = roiBodySchema.parse({
      features: [featuresField(p2), featuresField(p3)],
      spatialScale: [0.25, 0.125],
      levelMapping: { canonicalBoxSize: 32 },
      boxes: [[0, 0, 0, 64, 64]],
      ops: ['align'],
      outputSize: 2,
      samplingRatio: 0,
    });
    const result = await executeRoi(decodeRoiTask(prepareRoi(roiInputOf(body), limits), limits), ctx);
    expect([...(result.levels ?? [])]).toEqual([3]);
    const direct = roiAlign(p3, result.opBoxes, { spatialScale: 0.125, outputSize: 2, samplingRatio: 0 });
    expect(result.outputs.align?.data).toEqual(direct.data);
  });
});
