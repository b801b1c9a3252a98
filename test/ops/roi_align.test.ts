import { describe, expect, it } from 'vitest';
import { roiAlign, toCanonicalBoxes, toLayout } from '../../src/ops/index.js';
import type { AlignMode, FeatureMap } from '../../src/ops/index.js';
import { mulberry32, randInt, randomBoxes, randomMap } from '../support/random.js';
import { refBoxes, refRoiAlign } from '../reference/roi_reference.js';
import { randomProblem, refAlignParams } from '../support/ops-problems.js';
import { maxAbsDiff } from '../support/compare.js';
import { fieldOf } from '../support/errors.js';

/** 4×4 map with X[y][x] = 4y + x (one channel). */
const ramp: FeatureMap = {
  data: Float32Array.from({ length: 16 }, (_, i) => i),
  shape: [1, 1, 4, 4],
  layout: 'NCHW',
};

describe('roiAlign', () => {
  it('worked example of the TSDoc: the half-pixel offset', () => {
    const boxes = toCanonicalBoxes([[1, 1, 3, 3]], { batchSize: 1 });
    const p = { spatialScale: 1, outputSize: 1, samplingRatio: 1 };
    expect(Array.from(roiAlign(ramp, boxes, { ...p, aligned: true }).data)).toEqual([7.5]);
    expect(Array.from(roiAlign(ramp, boxes, { ...p, aligned: false }).data)).toEqual([10]);
  });

  it('defaults: 7×7, NCHW, aligned, avg, samplingRatio 2', () => {
    const boxes = toCanonicalBoxes([[0, 0, 4, 4]], { batchSize: 1 });
    const out = roiAlign(ramp, boxes, { spatialScale: 1 });
    expect(out.shape).toEqual([1, 1, 7, 7]);
    expect(out.layout).toBe('NCHW');
    const explicit = roiAlign(ramp, boxes, {
      spatialScale: 1,
      outputSize: [7, 7],
      samplingRatio: 2,
      aligned: true,
      mode: 'avg',
      outputLayout: 'NCHW',
    });
    expect(out.data).toEqual(explicit.data);
  });

  it('K = 0 gives [0, C, PH, PW]', () => {
    const out = roiAlign(
      { data: new Float32Array(2 * 3 * 4 * 4), shape: [2, 3, 4, 4], layout: 'NCHW' },
      { data: new Float32Array(0), count: 0 },
      { spatialScale: 1, outputSize: [2, 3] },
    );
    expect(out.shape).toEqual([0, 3, 2, 3]);
    expect(out.data.length).toBe(0);
  });

  it('a box wholly outside the map gives zeros', () => {
    const boxes = toCanonicalBoxes([[-50, -50, -20, -20]], { batchSize: 1 });
    for (const mode of ['avg', 'max', 'onnx_max'] as const) {
      expect(Array.from(roiAlign(ramp, boxes, { spatialScale: 1, outputSize: 2, mode }).data)).toEqual([
        0, 0, 0, 0,
      ]);
    }
  });

  it('zero-size box with adaptive sampling (empty grid) gives 0, never NaN', () => {
    const boxes = toCanonicalBoxes([[2, 2, 2, 2]], { batchSize: 1 });
    for (const mode of ['avg', 'max', 'onnx_max'] as const) {
      const out = roiAlign(ramp, boxes, { spatialScale: 1, outputSize: 2, samplingRatio: 0, mode });
      expect(Array.from(out.data)).toEqual([0, 0, 0, 0]);
    }
  });

  it('max is interpolate-then-max; onnx_max is the largest weighted tap', () => {
    // One sample at (1.5, 1.5) of the ramp: interpolated 7.5; taps 0.25 * (5, 6, 9, 10) → 2.5.
    const boxes = toCanonicalBoxes([[1, 1, 3, 3]], { batchSize: 1 });
    const p = { spatialScale: 1, outputSize: 1, samplingRatio: 1 };
    expect(roiAlign(ramp, boxes, { ...p, mode: 'max' }).data[0]).toBe(7.5);
    expect(roiAlign(ramp, boxes, { ...p, mode: 'onnx_max' }).data[0]).toBe(2.5);
  });

  it('equals the slow reference on random inputs (all modes, both alignments, fixed and adaptive)', () => {
    const rand = mulberry32(20261129);
    let cases = 0;
    for (let t = 0; t < 120; t++) {
      const { input, refMap, boxes, stride } = randomProblem(rand, {
        maxC: 5,
        maxHW: 12,
        strides: [1, 4, 16],
      });
      const samplingRatio = randInt(rand, -1, 3);
      if (samplingRatio <= 0) {
        // Keep the adaptive grid under the cost guard (huge boxes are tested separately).
        const lim = 20 * stride;
        const d = boxes.data;
        for (let k = 0; k < boxes.count; k++) {
          for (let j = 1; j < 5; j++) d[5 * k + j] = Math.max(-lim, Math.min(lim, d[5 * k + j]));
        }
      }
      const params = {
        spatialScale: 1 / stride,
        outputSize: [randInt(rand, 1, 4), randInt(rand, 1, 4)] as [number, number],
        samplingRatio,
        aligned: rand() < 0.5,
        mode: (['avg', 'max', 'onnx_max'] as AlignMode[])[randInt(rand, 0, 2)],
      };
      const out = roiAlign(input, boxes, params);
      const ref = refRoiAlign(refMap, refBoxes(boxes.data, boxes.count), refAlignParams(params));
      expect(maxAbsDiff(out.data, ref)).toBeLessThanOrEqual(1e-5);
      cases++;
    }
    expect(cases).toBe(120);
  });

  it('max and onnx_max equal the slow reference at scales float32 cannot hold (1/7, 0.3), NCHW and NHWC', () => {
    // The contract's max (interpolate, then max) and onnx_max (largest weighted tap), read from the
    // reference, on both input layouts, both alignments, fixed and adaptive grids.
    const rand = mulberry32(0x7a11);
    const seen = { max: 0, onnx_max: 0, scale7: 0, scale03: 0, adaptive: 0, aligned: 0, unaligned: 0 };
    for (let t = 0; t < 80; t++) {
      const { input, refMap, boxes, stride } = randomProblem(rand, {
        maxC: 4,
        maxHW: 10,
        strides: [7, 1 / 0.3],
      });
      const samplingRatio = randInt(rand, -1, 3);
      if (samplingRatio <= 0) {
        const lim = 20 * stride;
        const d = boxes.data;
        for (let k = 0; k < boxes.count; k++) {
          for (let j = 1; j < 5; j++) d[5 * k + j] = Math.max(-lim, Math.min(lim, d[5 * k + j]));
        }
      }
      const mode: AlignMode = t % 2 === 0 ? 'max' : 'onnx_max';
      const params = {
        spatialScale: 1 / stride,
        outputSize: [randInt(rand, 1, 4), randInt(rand, 1, 4)] as [number, number],
        samplingRatio,
        aligned: rand() < 0.5,
        mode,
      };
      const ref = refRoiAlign(refMap, refBoxes(boxes.data, boxes.count), refAlignParams(params));
      expect(maxAbsDiff(roiAlign(input, boxes, params).data, ref)).toBeLessThanOrEqual(1e-5);
      expect(maxAbsDiff(roiAlign(toLayout(input, 'NHWC'), boxes, params).data, ref)).toBeLessThanOrEqual(
        1e-5,
      );
      seen[mode]++;
      seen[stride === 7 ? 'scale7' : 'scale03']++;
      if (samplingRatio <= 0) seen.adaptive++;
      seen[params.aligned ? 'aligned' : 'unaligned']++;
    }
    for (const [what, n] of Object.entries(seen)) expect([what, n > 10]).toEqual([what, true]);
  });

  it('NHWC input and NHWC output give the same numbers as NCHW', () => {
    const rand = mulberry32(7);
    const [N, C, H, W] = [2, 6, 9, 7];
    const input: FeatureMap = { data: randomMap(rand, N * C * H * W), shape: [N, C, H, W], layout: 'NCHW' };
    const boxes = { data: randomBoxes(rand, 20, N, H, W, 8), count: 20 };
    for (const mode of ['avg', 'max', 'onnx_max'] as const) {
      const p = { spatialScale: 1 / 8, outputSize: [3, 2] as [number, number], mode };
      const a = roiAlign(input, boxes, p);
      const b = roiAlign(toLayout(input, 'NHWC'), boxes, p);
      expect(b.data).toEqual(a.data);
      const c = roiAlign(input, boxes, { ...p, outputLayout: 'NHWC' });
      expect(c.layout).toBe('NHWC');
      expect(toLayout({ data: c.data, shape: c.shape, layout: 'NHWC' }, 'NCHW').data).toEqual(a.data);
    }
  });

  it('detectron2 property: a map downsampled by 2 with the stride doubled gives the same output', () => {
    // A map that is linear in x and y is reproduced exactly by bilinear sampling at any scale.
    const [H, W] = [16, 16];
    const fine = Float32Array.from({ length: H * W }, (_, i) => 3 * Math.floor(i / W) + 2 * (i % W));
    const coarse = Float32Array.from({ length: (H / 2) * (W / 2) }, (_, i) => {
      const y = Math.floor(i / (W / 2));
      const x = i % (W / 2);
      return 3 * (2 * y + 0.5) + 2 * (2 * x + 0.5);
    });
    const boxes = toCanonicalBoxes([[2, 3, 11, 12]], { batchSize: 1 });
    const a = roiAlign({ data: fine, shape: [1, 1, H, W], layout: 'NCHW' }, boxes, {
      spatialScale: 1,
      outputSize: 3,
    });
    const b = roiAlign({ data: coarse, shape: [1, 1, H / 2, W / 2], layout: 'NCHW' }, boxes, {
      spatialScale: 0.5,
      outputSize: 3,
    });
    expect(maxAbsDiff(a.data, b.data)).toBeLessThan(1e-4);
  });

  describe('refuses bad parameters with a typed error naming the field', () => {
    const boxes = toCanonicalBoxes([[0, 0, 4, 4]], { batchSize: 1 });
    const cases: [string, object, string][] = [
      ['samplingRatio above 64', { spatialScale: 1, samplingRatio: 65 }, 'samplingRatio'],
      ['fractional samplingRatio', { spatialScale: 1, samplingRatio: 1.5 }, 'samplingRatio'],
      ['outputSize 0', { spatialScale: 1, outputSize: 0 }, 'outputSize'],
      ['outputSize fractional', { spatialScale: 1, outputSize: [2, 2.5] }, 'outputSize'],
      ['spatialScale 0', { spatialScale: 0 }, 'spatialScale'],
      ['spatialScale NaN', { spatialScale: NaN }, 'spatialScale'],
      ['unknown mode', { spatialScale: 1, mode: 'sum' }, 'mode'],
    ];
    for (const [name, params, field] of cases) {
      it(name, () => {
        expect(fieldOf(() => roiAlign(ramp, boxes, params as never))).toBe(field);
      });
    }

    it('an adaptive grid over 64 per axis (says the limit)', () => {
      const huge = toCanonicalBoxes([[0, 0, 2000, 10]], { batchSize: 1 });
      expect(() => roiAlign(ramp, huge, { spatialScale: 1, outputSize: 2, samplingRatio: 0 })).toThrow(/64/);
      expect(fieldOf(() => roiAlign(ramp, huge, { spatialScale: 1, outputSize: 2, samplingRatio: 0 }))).toBe(
        'samplingRatio',
      );
      // A fixed ratio on the same box is fine (samples off the map are 0).
      expect(roiAlign(ramp, huge, { spatialScale: 1, outputSize: 2, samplingRatio: 2 }).shape).toEqual([
        1, 1, 2, 2,
      ]);
    });

    it('a batch index outside [0, N)', () => {
      const bad = { data: Float32Array.from([1, 0, 0, 2, 2]), count: 1 };
      expect(fieldOf(() => roiAlign(ramp, bad, { spatialScale: 1 }))).toBe('boxes[0][0]');
    });

    it('a feature map whose data does not match its shape', () => {
      const bad: FeatureMap = { data: new Float32Array(15), shape: [1, 1, 4, 4], layout: 'NCHW' };
      expect(() => roiAlign(bad, boxes, { spatialScale: 1 })).toThrow(/features\.data/);
    });
  });
});
