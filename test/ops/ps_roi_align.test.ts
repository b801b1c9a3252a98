import { describe, expect, it } from 'vitest';
import { InvalidInputError } from '../../src/errors.js';
import { psRoiAlign, roiAlign, toLayout } from '../../src/ops/index.js';
import type { Boxes, FeatureMap } from '../../src/ops/index.js';
import { mulberry32, randInt, randomBoxes, randomMap } from '../support/random.js';
import { refPsRoiAlign } from '../reference/ps_roi_reference.js';
import { refBoxes } from '../reference/roi_reference.js';
import { maxAbsDiff } from '../support/compare.js';
import { fieldOf } from '../support/errors.js';
import { randomPsProblem } from '../support/ops-problems.js';

/** Boxes from `(b, x1, y1, x2, y2)` rows. */
const rows = (...r: number[][]): Boxes => ({ data: Float32Array.from(r.flat()), count: r.length });

/** The worked example's map: 4×4, channel 0 the ramp 4y + x, channels 1..3 the constants 10, 20, 30. */
function exampleMap(): FeatureMap {
  const data = new Float32Array(4 * 16);
  for (let i = 0; i < 16; i++) data[i] = i;
  for (let c = 1; c < 4; c++) data.fill(10 * c, 16 * c, 16 * (c + 1));
  return { data, shape: [1, 4, 4, 4], layout: 'NCHW' };
}

describe('psRoiAlign', () => {
  it('the worked example: bin (ph, pw) reads channel (c·PH + ph)·PW + pw, half-pixel offset on', () => {
    const out = psRoiAlign(exampleMap(), rows([0, 0, 0, 4, 4]), {
      spatialScale: 1,
      outputSize: 2,
      samplingRatio: 1,
    });
    expect(out.shape).toEqual([1, 1, 2, 2]);
    // Samples at the bin centres (0.5, 0.5), ...: ramp 4·0.5 + 0.5 = 2.5 (without the -0.5 offset it would be 5).
    expect(Array.from(out.data)).toEqual([2.5, 10, 20, 30]);
  });

  it('equals roiAlign (aligned, avg) read at channel (c·PH + ph)·PW + pw', () => {
    const rand = mulberry32(1313);
    for (let t = 0; t < 40; t++) {
      const [PH, PW] = [randInt(rand, 1, 4), randInt(rand, 1, 4)];
      const [N, Cout, H, W] = [
        randInt(rand, 1, 2),
        randInt(rand, 1, 3),
        randInt(rand, 1, 10),
        randInt(rand, 1, 10),
      ];
      const C = Cout * PH * PW;
      const input: FeatureMap = { data: randomMap(rand, N * C * H * W), shape: [N, C, H, W], layout: 'NCHW' };
      const K = randInt(rand, 1, 6);
      const boxes = { data: randomBoxes(rand, K, N, H, W, 2), count: K };
      const samplingRatio = randInt(rand, 1, 3);
      const p = { spatialScale: 0.5, outputSize: [PH, PW] as [number, number], samplingRatio };
      const ps = psRoiAlign(input, boxes, p);
      const full = roiAlign(input, boxes, { ...p, aligned: true, mode: 'avg' });
      for (let k = 0; k < K; k++) {
        for (let c = 0; c < Cout; c++) {
          for (let ph = 0; ph < PH; ph++) {
            for (let pw = 0; pw < PW; pw++) {
              const cin = (c * PH + ph) * PW + pw;
              const a = ps.data[((k * Cout + c) * PH + ph) * PW + pw];
              const b = full.data[((k * C + cin) * PH + ph) * PW + pw];
              expect(Math.abs(a - b)).toBeLessThanOrEqual(1e-5);
            }
          }
        }
      }
    }
  });

  it('matches the slow reference on random inputs, NCHW and NHWC in and out', () => {
    const rand = mulberry32(77);
    let values = 0;
    for (let t = 0; t < 150; t++) {
      const { PH, PW, N, Cout, C, H, W, x, stride, K, data } = randomPsProblem(rand, [1, 2, 16, 7]);
      // Adaptive only where the grid stays small (huge random boxes would pass the cost guard).
      const small = [...refBoxes(data, K)].every(
        (b) => Math.max((b.x2 - b.x1) / PW, (b.y2 - b.y1) / PH) / stride < 60,
      );
      const samplingRatio = small ? randInt(rand, -1, 3) : randInt(rand, 1, 3);
      const nchw: FeatureMap = { data: x, shape: [N, C, H, W], layout: 'NCHW' };
      const p = { spatialScale: 1 / stride, outputSize: [PH, PW] as [number, number], samplingRatio };
      const ref = refPsRoiAlign({ data: x, N, C, H, W }, refBoxes(data, K), {
        s: 1 / stride,
        PH,
        PW,
        samplingRatio,
      });
      const boxes = { data, count: K };
      const a = psRoiAlign(nchw, boxes, p);
      expect(a.shape).toEqual([K, Cout, PH, PW]);
      expect(maxAbsDiff(a.data, ref)).toBeLessThanOrEqual(1e-5);
      const b = psRoiAlign(toLayout(nchw, 'NHWC'), boxes, { ...p, outputLayout: 'NHWC' });
      expect(b.layout).toBe('NHWC');
      expect(toLayout({ data: b.data, shape: b.shape, layout: 'NHWC' }, 'NCHW').data).toEqual(a.data);
      values += ref.length;
    }
    expect(values).toBeGreaterThan(1000);
  });

  it('an empty adaptive grid (zero-size box) gives 0, where torchvision gives NaN; K = 0 gives [0, C_out, PH, PW]', () => {
    const out = psRoiAlign(exampleMap(), rows([0, 1, 1, 1, 3], [0, 1, 1, 3, 3]), {
      spatialScale: 1,
      outputSize: 2,
      samplingRatio: 0,
    });
    expect(Array.from(out.data.subarray(0, 4))).toEqual([0, 0, 0, 0]);
    expect(out.data.subarray(4).every((v) => v !== 0)).toBe(true);
    const empty = psRoiAlign(exampleMap(), rows(), { spatialScale: 1, outputSize: 2 });
    expect(empty.shape).toEqual([0, 1, 2, 2]);
    expect(empty.data.length).toBe(0);
  });

  it('samples outside the map are 0 and count in the average', () => {
    const input: FeatureMap = { data: new Float32Array(4).fill(8), shape: [1, 4, 1, 1], layout: 'NCHW' };
    // Box (-2, 0, 2, 1) at scale 1, one bin column pair: x samples at -1.5 (off the map) and 0.5 (on it).
    const out = psRoiAlign(input, rows([0, -2, 0, 2, 1]), {
      spatialScale: 1,
      outputSize: [1, 2],
      samplingRatio: 1,
    });
    // Channels 0, 1 of a [1, 4, 1, 1] map with PH·PW = 2: C_out = 2.
    expect(out.shape).toEqual([1, 2, 1, 2]);
    expect(Array.from(out.data)).toEqual([0, 8, 0, 8]);
  });

  it('refuses C not a multiple of PH·PW and bad parameters, naming the field', () => {
    const input: FeatureMap = { data: new Float32Array(10 * 16), shape: [1, 10, 4, 4], layout: 'NCHW' };
    let err: unknown;
    try {
      psRoiAlign(input, rows([0, 0, 0, 2, 2]), { spatialScale: 1, outputSize: 3 });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InvalidInputError);
    expect((err as InvalidInputError).field).toBe('features.shape');
    expect((err as Error).message).toMatch(/C = 10 .*PH·PW = 3·3 = 9/);
    const ok: FeatureMap = { data: new Float32Array(4 * 16), shape: [1, 4, 4, 4], layout: 'NCHW' };
    const box = rows([0, 0, 0, 2, 2]);
    for (const [params, field] of [
      [{ spatialScale: 0, outputSize: 2 }, 'spatialScale'],
      [{ spatialScale: 1, outputSize: 0 }, 'outputSize'],
      [{ spatialScale: 1, outputSize: 2, samplingRatio: 65 }, 'samplingRatio'],
      [{ spatialScale: 1, outputSize: 2, samplingRatio: 1.5 }, 'samplingRatio'],
      [{ spatialScale: 1, outputSize: 2, outputLayout: 'CHW' }, 'outputLayout'],
    ] as const) {
      expect(fieldOf(() => psRoiAlign(ok, box, params as never))).toBe(field);
    }
    expect(fieldOf(() => psRoiAlign(ok, box, null as never))).toBe('params');
    expect(fieldOf(() => psRoiAlign(ok, rows([1, 0, 0, 2, 2]), { spatialScale: 1, outputSize: 2 }))).toBe(
      'boxes[0][0]',
    );
    // The adaptive grid's cost guard: 2·130 / 2 = 130 samples per bin and axis.
    expect(
      fieldOf(() =>
        psRoiAlign(ok, rows([0, 0, 0, 260, 2]), { spatialScale: 1, outputSize: 2, samplingRatio: 0 }),
      ),
    ).toBe('samplingRatio');
  });
});
