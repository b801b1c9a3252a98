import { describe, expect, it } from 'vitest';
import { InvalidInputError } from '../../src/errors.js';
import { psRoiPool, toLayout } from '../../src/ops/index.js';
import type { Boxes, FeatureMap } from '../../src/ops/index.js';
import { mulberry32 } from '../support/random.js';
import { refPsRoiPool } from '../reference/ps_roi_reference.js';
import { refBoxes } from '../reference/roi_reference.js';
import { fieldOf } from '../support/errors.js';
import { randomPsProblem } from '../support/ops-problems.js';

/** Boxes from `(b, x1, y1, x2, y2)` rows. */
const rows = (...r: number[][]): Boxes => ({ data: Float32Array.from(r.flat()), count: r.length });

/** A map whose channel `c` is `fill(c, y, x)`. */
function mapOf(
  C: number,
  H: number,
  W: number,
  fill: (c: number, y: number, x: number) => number,
): FeatureMap {
  const data = new Float32Array(C * H * W);
  for (let c = 0; c < C; c++)
    for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) data[(c * H + y) * W + x] = fill(c, y, x);
  return { data, shape: [1, C, H, W], layout: 'NCHW' };
}

/** Largest |a - b| / max(|b|, 1). */
function maxRelDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]) / Math.max(Math.abs(b[i]), 1));
  return m;
}

describe('psRoiPool', () => {
  it('the worked example: averages, channel (c·PH + ph)·PW + pw, the far bin clipped to [2, 3)', () => {
    const input = mapOf(4, 4, 4, (c, y, x) => (c === 0 ? 4 * y + x : 10 * c));
    const out = psRoiPool(input, rows([0, 0, 0, 4, 4], [0, 3, 3, 4, 4]), { spatialScale: 1, outputSize: 2 });
    expect(out.shape).toEqual([2, 1, 2, 2]);
    // Box 0: bin (0, 0) = mean of cells (0..1, 0..1) of the ramp = (0 + 1 + 4 + 5) / 4.
    // Box 1 (the last cell): every bin is [3, 4) clipped to [3, 3): empty, 0.
    expect(Array.from(out.data)).toEqual([2.5, 10, 20, 30, 0, 0, 0, 0]);
  });

  it('never reads the last row and column (torchvision clips to H − 1, W − 1): (0, 0, 6, 6) on 6×6 averages cells 0..4', () => {
    const input = mapOf(1, 6, 6, (_c, y, x) => (y === 5 || x === 5 ? 1000 : 6 * y + x));
    const out = psRoiPool(input, rows([0, 0, 0, 6, 6]), { spatialScale: 1, outputSize: 1 });
    // Mean of 6y + x over y, x in 0..4 = 6·2 + 2 = 14; the 1000s of row/column 5 are not read.
    expect(Array.from(out.data)).toEqual([14]);
  });

  it('C rounding, half away from zero, and no +1 on the width', () => {
    // x1 = -1.5 → -2 (Math.round would give -1), x2 = 2.5 → 3: width 5, bins of 2.5 cells:
    // bin 1 = cols [floor(2.5) - 2, ceil(5) - 2) = [0, 3) of channel 1 (the ramp x): mean 1.
    // With Math.round: width 4, bin 1 = [1, 3), mean 1.5.
    const input = mapOf(2, 2, 6, (_c, _y, x) => x);
    const out = psRoiPool(input, rows([0, -1.5, 0, 2.5, 1]), { spatialScale: 1, outputSize: [1, 2] });
    expect(Array.from(out.data)).toEqual([0, 1]);
  });

  it('rounds the float32 product x·s, as torchvision does for float input (a tie a double product misses)', () => {
    // x1 = 14.999999046... (a float32) at s = 0.3: float32 x1·s = 4.5 → 5; in float64 it is 4.4999999 → 4.
    // x2 = 26.666666 → 8: columns [5, 8) clipped to [5, 7) of the ramp x: mean 5.5 (torchvision 0.14: 5.5;
    // a float64 product would give [4, 7): 5).
    const input = mapOf(1, 2, 8, (_c, _y, x) => x);
    const out = psRoiPool(input, rows([0, 14.999999046325684, 0, 26.666666, 3.3333333]), {
      spatialScale: 0.3,
      outputSize: 1,
    });
    expect(Array.from(out.data)).toEqual([5.5]);
  });

  it('equals the slow reference on random inputs (same cells; means to 1e-6 relative), NCHW and NHWC', () => {
    const rand = mulberry32(4242);
    let values = 0;
    for (let t = 0; t < 150; t++) {
      const { PH, PW, N, Cout, C, H, W, x, stride, K, data } = randomPsProblem(rand, [1, 2, 16, 7, 1 / 0.3]);
      const nchw: FeatureMap = { data: x, shape: [N, C, H, W], layout: 'NCHW' };
      const p = { spatialScale: 1 / stride, outputSize: [PH, PW] as [number, number] };
      const ref = refPsRoiPool({ data: x, N, C, H, W }, refBoxes(data, K), { s: 1 / stride, PH, PW });
      const boxes = { data, count: K };
      const a = psRoiPool(nchw, boxes, p);
      expect(a.shape).toEqual([K, Cout, PH, PW]);
      expect(maxRelDiff(a.data, ref)).toBeLessThanOrEqual(1e-6);
      const b = psRoiPool(toLayout(nchw, 'NHWC'), boxes, { ...p, outputLayout: 'NHWC' });
      expect(toLayout({ data: b.data, shape: b.shape, layout: 'NHWC' }, 'NCHW').data).toEqual(a.data);
      values += ref.length;
    }
    expect(values).toBeGreaterThan(1000);
  });

  it('a box outside the map gives 0; H = 1 gives 0 (no row below H − 1 = 0); K = 0 gives [0, C_out, PH, PW]', () => {
    const input = mapOf(4, 4, 4, () => 3);
    const out = psRoiPool(input, rows([0, 100, 100, 120, 120], [0, 0, 0, 3, 3]), {
      spatialScale: 1,
      outputSize: 2,
    });
    expect(Array.from(out.data)).toEqual([0, 0, 0, 0, 3, 3, 3, 3]);
    const flat = mapOf(1, 1, 5, () => 7);
    expect(
      Array.from(psRoiPool(flat, rows([0, 0, 0, 5, 1]), { spatialScale: 1, outputSize: 1 }).data),
    ).toEqual([0]);
    const empty = psRoiPool(input, rows(), { spatialScale: 1, outputSize: 2 });
    expect(empty.shape).toEqual([0, 1, 2, 2]);
  });

  it('refuses C not a multiple of PH·PW and bad parameters, naming the field', () => {
    const input = mapOf(10, 4, 4, () => 0);
    let err: unknown;
    try {
      psRoiPool(input, rows([0, 0, 0, 2, 2]), { spatialScale: 1 });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InvalidInputError);
    expect((err as InvalidInputError).field).toBe('features.shape');
    expect((err as Error).message).toMatch(/C = 10 .*PH·PW = 7·7 = 49/);
    const ok = mapOf(4, 4, 4, () => 0);
    const box = rows([0, 0, 0, 2, 2]);
    for (const [params, field] of [
      [{ spatialScale: -1, outputSize: 2 }, 'spatialScale'],
      [{ spatialScale: 1, outputSize: [2, 0] }, 'outputSize'],
      [{ spatialScale: 1, outputSize: 2, outputLayout: 'CHW' }, 'outputLayout'],
    ] as const) {
      expect(fieldOf(() => psRoiPool(ok, box, params as never))).toBe(field);
    }
    expect(fieldOf(() => psRoiPool(ok, rows([0, 2, 0, 1, 2]), { spatialScale: 1, outputSize: 2 }))).toBe(
      'boxes[0]',
    );
    expect(fieldOf(() => psRoiPool(ok, rows([-1, 0, 0, 2, 2]), { spatialScale: 1, outputSize: 2 }))).toBe(
      'boxes[0][0]',
    );
  });
});
