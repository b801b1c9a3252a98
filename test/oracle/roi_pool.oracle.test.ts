/**
 * RoI Pool against ONNX Runtime's `MaxRoiPool` (opset 1, CPU, one thread): exactly equal (a max of
 * stored float32 values; the box rounding is float32 C rounding in both), at power-of-two scales and
 * at 1/7 and 0.3.
 */
import type { InferenceSession } from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { roiPool } from '../../src/ops/index.js';
import { firstMismatch } from '../support/compare.js';
import { createSession, maxRoiPoolModel, runMaxRoiPool } from './ort.js';
import { mulberry32, randInt, randomBoxes, randomMap } from '../support/random.js';

const sessions = new Map<string, InferenceSession>();
async function session(PH: number, PW: number, scale: number) {
  const key = [PH, PW, scale].join();
  let s = sessions.get(key);
  if (!s) {
    s = await createSession(maxRoiPoolModel(PH, PW, scale));
    sessions.set(key, s);
  }
  return s;
}
afterAll(async () => {
  for (const s of sessions.values()) await s.release();
});

async function check(
  rand: () => number,
  c: { N: number; C: number; H: number; W: number; K: number; PH: number; PW: number; stride: number },
  lo = -2,
  hi = 2,
): Promise<void> {
  const x = randomMap(rand, c.N * c.C * c.H * c.W, lo, hi);
  const boxes = randomBoxes(rand, c.K, c.N, c.H, c.W, c.stride);
  const shape = [c.N, c.C, c.H, c.W] as [number, number, number, number];
  const expected = await runMaxRoiPool(await session(c.PH, c.PW, 1 / c.stride), x, shape, boxes, c.K);
  const ours = roiPool(
    { data: x, shape, layout: 'NCHW' },
    { data: boxes, count: c.K },
    { spatialScale: 1 / c.stride, outputSize: [c.PH, c.PW] },
  );
  const i = firstMismatch(ours.data, expected);
  if (i >= 0) {
    throw new Error(`${JSON.stringify(c)}: value ${i} is ${ours.data[i]}, ORT ${expected[i]}`);
  }
}

describe('RoI Pool vs ONNX Runtime MaxRoiPool', () => {
  it('thousands of small random cases, exactly equal (incl. .5 ties, outside, zero-size, huge)', async () => {
    const rand = mulberry32(0xb001);
    let boxes = 0;
    for (let t = 0; t < 600; t++) {
      const c = {
        N: randInt(rand, 1, 2),
        C: randInt(rand, 1, 4),
        H: randInt(rand, 1, 14),
        W: randInt(rand, 1, 14),
        K: randInt(rand, 0, 14),
        PH: randInt(rand, 1, 5),
        PW: randInt(rand, 1, 5),
        // 7 and 1/0.3: scales 1/7 and 0.3 are inexact in float32, so a float64 product would round
        // some .5 ties the other way.
        stride: [1, 2, 16, 32, 7, 1 / 0.3][randInt(rand, 0, 5)],
      };
      await check(rand, c);
      boxes += c.K;
    }
    expect(boxes).toBeGreaterThan(3500);
  });

  it('an all-negative map (the max starts below every value)', async () => {
    const rand = mulberry32(12);
    for (let t = 0; t < 20; t++) {
      await check(rand, { N: 1, C: 2, H: 6, W: 7, K: 10, PH: 3, PW: 2, stride: 4 }, -5, -1);
    }
  });

  it('big cases: C = 256, 7×7, stride 16, N = 2', async () => {
    const rand = mulberry32(8);
    await check(rand, { N: 2, C: 256, H: 25, W: 34, K: 60, PH: 7, PW: 7, stride: 16 });
  });
});
