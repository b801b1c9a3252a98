/**
 * Rotated RoI Align (src/ops/rotated_roi_align.ts): detectron2's published vectors, the slow reference
 * written from detectron2's formula on seeded random inputs, and the invariants of the contract
 * (angle 0 = roiAlign, a 90° turn of map and box, 360° = 0°), plus argument errors.
 */
import { describe, expect, it } from 'vitest';
import {
  roiAlign,
  rotatedRoiAlign,
  toCanonicalBoxes,
  toLayout,
  toRotatedBoxes,
} from '../../src/ops/index.js';
import type { FeatureMap, Layout, Pooled, RotatedBoxes } from '../../src/ops/index.js';
import { mulberry32, randInt, randomMap } from '../support/random.js';
import { refRotatedBoxes, refRotatedRoiAlign } from '../reference/rotated_reference.js';
import { maxAbsDiff } from '../support/compare.js';
import { fieldOf } from '../support/errors.js';
import { expectClose, publishedVectors, type PublishedVector } from '../support/vectors.js';

type RotatedVector = PublishedVector<{
  output_height: number;
  output_width: number;
  spatial_scale: number;
  sampling_ratio: number;
  aligned: boolean;
  mode: string;
}>;

const vectors = publishedVectors<RotatedVector['params']>(['roi_align_rotated']);

/** The 5×5 map X[y][x] = 5y + x of detectron2's test (one channel). */
const ramp5: FeatureMap = {
  data: Float32Array.from({ length: 25 }, (_, i) => i),
  shape: [1, 1, 5, 5],
  layout: 'NCHW',
};

/** A seeded random rotated box, in image pixels, for a map of `H × W` cells at `stride`. */
function randomRotatedRow(rand: () => number, N: number, H: number, W: number, stride: number): number[] {
  const kind = randInt(rand, 0, 7);
  const cx = (rand() * 1.6 - 0.3) * W * stride;
  const cy = (rand() * 1.6 - 0.3) * H * stride;
  let w = rand() * W * stride;
  let h = rand() * H * stride;
  if (kind === 0) w = h = 0; // zero-size
  if (kind === 1) {
    w *= 0.1; // sub-cell
    h *= 0.1;
  }
  // Right angles (where cos/sin round to 0 and ±1), then any angle, also beyond ±360.
  const angle = kind === 2 ? 90 * randInt(rand, -4, 4) : (rand() * 2 - 1) * 400;
  return [randInt(rand, 0, N - 1), cx, cy, w, h, angle];
}

/** Output `[K, C, PH, PW]` NCHW of a result in either layout. */
const nchw = (p: Pooled): Float32Array =>
  toLayout({ data: p.data, shape: p.shape, layout: p.layout }, 'NCHW').data;

/**
 * Every plane of an NCHW tensor turned 90° counter-clockwise as seen (numpy's `rot90`):
 * `out[i][j] = in[j][W - 1 - i]`, shape `[N, C, W, H]`.
 */
function rot90(data: Float32Array, shape: readonly [number, number, number, number]): Float32Array {
  const [N, C, H, W] = shape;
  const out = new Float32Array(data.length);
  for (let p = 0; p < N * C; p++) {
    for (let i = 0; i < W; i++) {
      for (let j = 0; j < H; j++) out[p * H * W + i * H + j] = data[p * H * W + j * W + (W - 1 - i)];
    }
  }
  return out;
}

describe('rotatedRoiAlign: published vectors (detectron2)', () => {
  it('has the 4 detectron2 vectors (0, 90, 180, 270 degrees), each with a source', () => {
    expect(vectors.map((v) => v.name)).toEqual([
      'detectron2_roialign_rotated_0deg',
      'detectron2_roialign_rotated_90deg',
      'detectron2_roialign_rotated_180deg',
      'detectron2_roialign_rotated_270deg',
    ]);
    for (const v of vectors) expect(v.source.repo && v.source.path && v.source.commit).toBeTruthy();
  });

  for (const v of vectors) {
    it(`${v.name} (${v.source.repo})`, () => {
      const p = v.params;
      expect(p.mode).toBe('avg');
      const input: FeatureMap = {
        data: new Float32Array(v.input.data),
        shape: v.input.shape,
        layout: 'NCHW',
      };
      const boxes = toRotatedBoxes(
        v.rois.map((r, i) => [v.batch_indices[i], ...r]),
        { batchSize: v.input.shape[0] },
      );
      const params = {
        spatialScale: p.spatial_scale,
        outputSize: [p.output_height, p.output_width] as [number, number],
        samplingRatio: p.sampling_ratio,
        aligned: p.aligned,
      };
      const out = rotatedRoiAlign(input, boxes, params);
      expect(out.shape).toEqual(v.expected.shape);
      expectClose(out.data, v);
      // NHWC in and out give the same numbers.
      const nhwc = rotatedRoiAlign(toLayout(input, 'NHWC'), boxes, { ...params, outputLayout: 'NHWC' });
      expectClose(nchw(nhwc), v);
      const [N, C, H, W] = v.input.shape;
      const ref = refRotatedRoiAlign(
        { data: input.data, N, C, H, W },
        refRotatedBoxes(boxes.data, boxes.count),
        {
          s: p.spatial_scale,
          PH: p.output_height,
          PW: p.output_width,
          samplingRatio: p.sampling_ratio,
          aligned: p.aligned,
          clockwise: false,
        },
      );
      expectClose(ref, v);
    });
  }
});

describe('rotatedRoiAlign', () => {
  it('worked example of the TSDoc (detectron2 test, 0° and 90°)', () => {
    const p = { spatialScale: 1, outputSize: 4, samplingRatio: 0 };
    const at = (angle: number) =>
      Array.from(rotatedRoiAlign(ramp5, toRotatedBoxes([[2, 2, 2, 2, angle]], { batchSize: 1 }), p).data);
    expect(at(0)).toEqual([4.5, 5, 5.5, 6, 7, 7.5, 8, 8.5, 9.5, 10, 10.5, 11, 12, 12.5, 13, 13.5]);
    expect(at(90).slice(0, 4)).toEqual([12, 9.5, 7, 4.5]);
  });

  it('defaults: 7×7, NCHW, aligned, counter-clockwise, samplingRatio 2', () => {
    const boxes = toRotatedBoxes([[2, 2, 3, 2, 30]], { batchSize: 1 });
    const out = rotatedRoiAlign(ramp5, boxes, { spatialScale: 1 });
    expect(out.shape).toEqual([1, 1, 7, 7]);
    expect(out.layout).toBe('NCHW');
    const explicit = rotatedRoiAlign(ramp5, boxes, {
      spatialScale: 1,
      outputSize: [7, 7],
      samplingRatio: 2,
      aligned: true,
      clockwise: false,
      outputLayout: 'NCHW',
    });
    expect(out.data).toEqual(explicit.data);
  });

  it('K = 0 gives [0, C, PH, PW]', () => {
    const out = rotatedRoiAlign(
      ramp5,
      { data: new Float32Array(0), count: 0 },
      {
        spatialScale: 1,
        outputSize: [2, 3],
      },
    );
    expect(out.shape).toEqual([0, 1, 2, 3]);
    expect(out.data.length).toBe(0);
  });

  it('a zero-size box gives 0 (detectron2 test_empty_box); off the map gives 0', () => {
    const boxes = toRotatedBoxes(
      [
        [2, 3, 0, 0, 0],
        [100, 100, 4, 4, 45],
      ],
      { batchSize: 1 },
    );
    const out = rotatedRoiAlign(ramp5, boxes, { spatialScale: 1, samplingRatio: 0 });
    expect(out.data.every((v) => v === 0)).toBe(true);
  });

  it('clockwise negates the angle; aligned=false drops the half-pixel shift', () => {
    const p = { spatialScale: 1, outputSize: 3 };
    const ccw = rotatedRoiAlign(ramp5, toRotatedBoxes([[2, 2, 3, 2, -30]], { batchSize: 1 }), p);
    const cw = rotatedRoiAlign(ramp5, toRotatedBoxes([[2, 2, 3, 2, 30]], { batchSize: 1 }), {
      ...p,
      clockwise: true,
    });
    expect(cw.data).toEqual(ccw.data);
    // Upright 2×2 box at (2, 2), one sample per bin: aligned samples the centre 1.5 -> 9,
    // aligned=false the centre 2 -> 12.
    const one = toRotatedBoxes([[2, 2, 2, 2, 0]], { batchSize: 1 });
    const q = { spatialScale: 1, outputSize: 1, samplingRatio: 1 };
    expect(Array.from(rotatedRoiAlign(ramp5, one, q).data)).toEqual([9]);
    expect(Array.from(rotatedRoiAlign(ramp5, one, { ...q, aligned: false }).data)).toEqual([12]);
  });

  it('equals the slow reference on seeded random inputs (layouts, aligned, clockwise, grids)', () => {
    const rand = mulberry32(1301);
    let cases = 0;
    let worst = 0;
    for (let t = 0; t < 80; t++) {
      const N = randInt(rand, 1, 2);
      const C = randInt(rand, 1, 6);
      const H = randInt(rand, 1, 9);
      const W = randInt(rand, 1, 9);
      const stride = [1, 2, 4, 8][randInt(rand, 0, 3)];
      const K = randInt(rand, 0, 5);
      const x = randomMap(rand, N * C * H * W);
      const rows = Array.from({ length: K }, () => randomRotatedRow(rand, N, H, W, stride));
      const boxes = toRotatedBoxes(rows, { batchSize: N });
      const PH = randInt(rand, 1, 4);
      const PW = randInt(rand, 1, 4);
      const samplingRatio = randInt(rand, -1, 3);
      const aligned = rand() < 0.5;
      const clockwise = rand() < 0.5;
      const inLayout: Layout = rand() < 0.5 ? 'NCHW' : 'NHWC';
      const outLayout: Layout = rand() < 0.5 ? 'NCHW' : 'NHWC';
      const input = toLayout({ data: x, shape: [N, C, H, W], layout: 'NCHW' }, inLayout);
      const out = rotatedRoiAlign(input, boxes, {
        spatialScale: 1 / stride,
        outputSize: [PH, PW],
        samplingRatio,
        aligned,
        clockwise,
        outputLayout: outLayout,
      });
      expect(out.shape).toEqual([K, C, PH, PW]);
      expect(out.layout).toBe(outLayout);
      const ref = refRotatedRoiAlign({ data: x, N, C, H, W }, refRotatedBoxes(boxes.data, K), {
        s: 1 / stride,
        PH,
        PW,
        samplingRatio,
        aligned,
        clockwise,
      });
      const d = maxAbsDiff(nchw(out), ref);
      worst = Math.max(worst, d);
      if (K > 0) cases++;
    }
    expect(cases).toBeGreaterThan(50);
    // float32 sums in another order than the reference's doubles: a few float32 steps of |x| <= 2.
    expect(worst).toBeLessThan(2e-6);
  });

  it('angle 0 equals roiAlign on the box (cx ± w/2, cy ± h/2), aligned and not', () => {
    const rand = mulberry32(1302);
    for (let t = 0; t < 60; t++) {
      const N = randInt(rand, 1, 2);
      const C = randInt(rand, 1, 4);
      const H = randInt(rand, 2, 12);
      const W = randInt(rand, 2, 12);
      const stride = [1, 4, 16][randInt(rand, 0, 2)];
      const aligned = rand() < 0.5;
      const samplingRatio = randInt(rand, 0, 3);
      const outputSize: [number, number] = [randInt(rand, 1, 5), randInt(rand, 1, 5)];
      const input: FeatureMap = {
        data: randomMap(rand, N * C * H * W),
        shape: [N, C, H, W],
        layout: 'NCHW',
      };
      const rows = Array.from({ length: 4 }, () => {
        const r = randomRotatedRow(rand, N, H, W, stride);
        // roiAlign (aligned=false) enlarges a box under one cell from its corner, this op about
        // its centre: the two agree only from one cell up.
        if (!aligned) {
          r[3] = Math.max(r[3], stride);
          r[4] = Math.max(r[4], stride);
        }
        r[5] = 0;
        return r;
      });
      const rotated = toRotatedBoxes(rows, { batchSize: N });
      const upright = toCanonicalBoxes(
        Array.from({ length: rotated.count }, (_, k) => {
          const [b, cx, cy, w, h] = rotated.data.subarray(6 * k, 6 * k + 5);
          return [b, cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2];
        }),
        { batchSize: N },
      );
      const p = { spatialScale: 1 / stride, outputSize, samplingRatio, aligned };
      const a = rotatedRoiAlign(input, rotated, p);
      const b = roiAlign(input, upright, p);
      expect(maxAbsDiff(a.data, b.data)).toBeLessThan(1e-4);
    }
  });

  it('a 90° turn of the map and the box gives the turned output; map and box turned alike give the same', () => {
    const rand = mulberry32(1303);
    for (let t = 0; t < 40; t++) {
      const C = randInt(rand, 1, 3);
      const H = randInt(rand, 2, 10);
      const W = randInt(rand, 2, 10);
      const stride = [1, 2, 4][randInt(rand, 0, 2)];
      const s = 1 / stride;
      const aligned = rand() < 0.5;
      const samplingRatio = randInt(rand, 0, 3);
      const [PH, PW] = [randInt(rand, 1, 5), randInt(rand, 1, 5)];
      const x = randomMap(rand, C * H * W);
      const input: FeatureMap = { data: x, shape: [1, C, H, W], layout: 'NCHW' };
      const turned: FeatureMap = { data: rot90(x, [1, C, H, W]), shape: [1, C, W, H], layout: 'NCHW' };
      const [, cx, cy, w, h, angle] = randomRotatedRow(rand, 1, H, W, stride);
      // The map turned counter-clockwise: feature point (u, v) -> (v, W - 1 - u) in cell indices,
      // where u = cx·s - off. So cx' = cy, and cy'·s - off = W - 1 - (cx·s - off).
      const off = aligned ? 0.5 : 0;
      const cx2 = cy;
      const cy2 = (W - 1 + 2 * off) / s - cx;
      const p = { spatialScale: s, samplingRatio, aligned };
      const base = rotatedRoiAlign(input, toRotatedBoxes([[cx, cy, w, h, angle]], { batchSize: 1 }), {
        ...p,
        outputSize: [PH, PW],
      });
      // The box turned with the map as a rectangle (sides swapped, same angle): output turned.
      const asRect = rotatedRoiAlign(turned, toRotatedBoxes([[cx2, cy2, h, w, angle]], { batchSize: 1 }), {
        ...p,
        outputSize: [PW, PH],
      });
      expect(maxAbsDiff(asRect.data, rot90(base.data, base.shape))).toBeLessThan(1e-4);
      // The box turned with the map by its angle (+90°): the same output.
      const byAngle = rotatedRoiAlign(
        turned,
        toRotatedBoxes([[cx2, cy2, w, h, angle + 90]], { batchSize: 1 }),
        { ...p, outputSize: [PH, PW] },
      );
      expect(maxAbsDiff(byAngle.data, base.data)).toBeLessThan(1e-4);
    }
  });

  it('360° changes nothing (to float tolerance)', () => {
    const rand = mulberry32(1304);
    const [N, C, H, W] = [2, 3, 9, 11];
    const input: FeatureMap = {
      data: randomMap(rand, N * C * H * W),
      shape: [N, C, H, W],
      layout: 'NCHW',
    };
    const rows = Array.from({ length: 12 }, () => randomRotatedRow(rand, N, H, W, 4));
    const turn = (deg: number): RotatedBoxes =>
      toRotatedBoxes(
        rows.map((r) => [r[0], r[1], r[2], r[3], r[4], r[5] + deg]),
        { batchSize: N },
      );
    for (const aligned of [true, false]) {
      const p = { spatialScale: 0.25, outputSize: 5, samplingRatio: 0, aligned };
      const base = rotatedRoiAlign(input, turn(0), p);
      expect(maxAbsDiff(rotatedRoiAlign(input, turn(360), p).data, base.data)).toBeLessThan(1e-4);
      expect(maxAbsDiff(rotatedRoiAlign(input, turn(-360), p).data, base.data)).toBeLessThan(1e-4);
    }
  });

  it('picks the image by batch index', () => {
    const input: FeatureMap = {
      data: Float32Array.from({ length: 2 * 25 }, (_, i) => (i < 25 ? 0 : 1)),
      shape: [2, 1, 5, 5],
      layout: 'NCHW',
    };
    const boxes = toRotatedBoxes(
      [
        [0, 2, 2, 2, 2, 10],
        [1, 2, 2, 2, 2, 10],
      ],
      { batchSize: 2 },
    );
    const out = rotatedRoiAlign(input, boxes, { spatialScale: 1, outputSize: 2 });
    // Merged weights Σw/count in float32: 1 to a float32 step.
    const expected = Float32Array.from([0, 0, 0, 0, 1, 1, 1, 1]);
    expect(maxAbsDiff(out.data, expected)).toBeLessThan(1e-6);
  });
});

describe('rotatedRoiAlign: errors name the field', () => {
  const ok = toRotatedBoxes([[2, 2, 2, 2, 0]], { batchSize: 1 });
  const run = (boxes: RotatedBoxes, params: Record<string, unknown>, input: FeatureMap = ramp5) =>
    fieldOf(() =>
      rotatedRoiAlign(input, boxes, { spatialScale: 1, ...params } as Parameters<typeof rotatedRoiAlign>[2]),
    );

  it('parameters', () => {
    expect(run(ok, { spatialScale: 0 })).toBe('spatialScale');
    expect(run(ok, { outputSize: 0 })).toBe('outputSize');
    expect(run(ok, { samplingRatio: 65 })).toBe('samplingRatio');
    expect(run(ok, { samplingRatio: 1.5 })).toBe('samplingRatio');
    expect(run(ok, { aligned: 'yes' })).toBe('aligned');
    expect(run(ok, { clockwise: 1 })).toBe('clockwise');
    expect(run(ok, { outputLayout: 'HWC' })).toBe('outputLayout');
    expect(fieldOf(() => rotatedRoiAlign(ramp5, ok, null as unknown as { spatialScale: number }))).toBe(
      'params',
    );
  });

  it('an adaptive grid over 64 per axis is refused before any work', () => {
    const big = toRotatedBoxes([[2, 2, 1000, 10, 45]], { batchSize: 1 });
    expect(run(big, { samplingRatio: 0, outputSize: 1 })).toBe('samplingRatio');
    expect(() => rotatedRoiAlign(ramp5, big, { spatialScale: 1, samplingRatio: 2 })).not.toThrow();
  });

  it('features', () => {
    const bad = { data: new Float32Array(3), shape: [1, 1, 2, 2], layout: 'NCHW' } as FeatureMap;
    expect(run(ok, {}, bad)).toMatch(/^features/);
  });

  it('boxes built by hand', () => {
    const row = (...v: number[]): RotatedBoxes => ({ data: Float32Array.from(v), count: 1 });
    expect(run({ data: new Float32Array(5), count: 1 }, {})).toBe('boxes');
    expect(run(row(1, 2, 2, 2, 2, 0), {})).toBe('boxes[0][0]');
    expect(run(row(0.5, 2, 2, 2, 2, 0), {})).toBe('boxes[0][0]');
    expect(run(row(0, 2, 2, -1, 2, 0), {})).toBe('boxes[0][3]');
    expect(run(row(0, 2, 2, 2, -1, 0), {})).toBe('boxes[0][4]');
    expect(run(row(0, 2, 2, 2, 2, NaN), {})).toBe('boxes[0][5]');
    expect(run(row(0, Infinity, 2, 2, 2, 0), {})).toBe('boxes[0][1]');
    // Finite box, but cx × spatialScale overflows float32.
    expect(run(row(0, 3e38, 2, 2, 2, 0), { spatialScale: 4 })).toBe('boxes[0]');
  });

  it('toRotatedBoxes', () => {
    const rows = (r: unknown) => fieldOf(() => toRotatedBoxes(r as number[][], { batchSize: 1 }));
    expect(rows('x')).toBe('boxes');
    expect(rows([[1, 2, 3, 4]])).toBe('boxes[0]');
    expect(
      rows([
        [0, 0, 1, 1, 0],
        [1, 2],
      ]),
    ).toBe('boxes[1]');
    expect(rows([[0, 1, 2, 3, 4, 5, 6]])).toBe('boxes[0]');
    expect(rows([[1, 1, 1, 1, 1, 0]])).toBe('boxes[0][0]');
    expect(rows([[1, 1, -1, 1, 0]])).toBe('boxes[0][2]');
    expect(rows([[0, 1, 1, 1, -1, 0]])).toBe('boxes[0][4]');
    expect(rows([[1, 1, 1, 1, '0']])).toBe('boxes[0][4]');
    expect(rows([[1, 1, 1, 1, 1e39]])).toBe('boxes[0][4]');
    expect(fieldOf(() => toRotatedBoxes([[1, 1, 1, 1, 0]], { batchSize: 0 }))).toBe('boxes[0]');
    expect(fieldOf(() => toRotatedBoxes([[1, 1, -1, 1, 0]], { batchSize: 1, field: 'rb' }))).toBe('rb[0][2]');
  });
});
