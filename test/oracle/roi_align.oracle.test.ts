/**
 * RoI Align against ONNX Runtime (onnxruntime-node, CPU, one thread): `RoiAlign` opset 16 with
 * `half_pixel` (our aligned=true) and `output_half_pixel` (aligned=false), sampling ratio fixed and 0,
 * modes `avg` (ours `avg`) and `max` (ours `onnx_max`). Tolerance: max abs error ≤ 1e-5 on values in
 * [-2, 2] (both accumulate in float32, ours over each bin's merged cells, ORT sample by sample, so the
 * roundings differ; the geometry is float32 in both).
 * RoI Warp is RoI Align on the integer cell boxes at spatial scale 1 (the contract), so it is checked
 * against ORT `RoiAlign` with `spatial_scale = 1` on cell boxes snapped here, independently of src.
 * Scales include 0.3 and 1/7, which float32 does not hold exactly (a `q/s·s` round trip is inexact).
 */
import type { InferenceSession } from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { roiAlign, roiWarp } from '../../src/ops/index.js';
import type { AlignMode, FeatureMap } from '../../src/ops/index.js';
import { maxAbsDiff } from '../support/compare.js';
import { createSession, roiAlignModel, runRoiAlign } from './ort.js';
import { mulberry32, randInt, randomBoxes, randomMap } from '../support/random.js';

const sessions = new Map<string, InferenceSession>();
async function session(
  PH: number,
  PW: number,
  sr: number,
  scale: number,
  mode: 'avg' | 'max',
  halfPixel: boolean,
) {
  const key = [PH, PW, sr, scale, mode, halfPixel].join();
  let s = sessions.get(key);
  if (!s) {
    s = await createSession(
      roiAlignModel({
        outputHeight: PH,
        outputWidth: PW,
        samplingRatio: sr,
        spatialScale: scale,
        mode,
        halfPixel,
      }),
    );
    sessions.set(key, s);
  }
  return s;
}

afterAll(async () => {
  for (const s of sessions.values()) await s.release();
});

/** Adaptive grids over 64 per axis are refused by us (cost guard): keep such boxes out of the comparison. */
function clampForAdaptive(boxes: Float32Array, count: number, stride: number, PH: number, PW: number): void {
  const lim = 30 * stride * Math.min(PH, PW);
  for (let k = 0; k < count; k++) {
    for (let j = 1; j < 5; j++) boxes[5 * k + j] = Math.max(-lim / 2, Math.min(lim / 2, boxes[5 * k + j]));
  }
}

/** C's round (half away from zero), written here so that the oracle does not reuse src's `cRound`. */
function cRoundHalfAway(v: number): number {
  const r = Math.floor(Math.abs(v) + 0.5);
  return v < 0 ? -r : r;
}

/**
 * RoI Warp's cell boxes per the contract, computed independently of src: `cRound(fround(v · s))` on
 * float32 products, at least one cell per axis. Rows `(b, qx1, qy1, qx2, qy2)` in feature cells.
 */
function warpCellsIndependent(boxes: Float32Array, count: number, scale: number): Float32Array {
  const s = Math.fround(scale);
  const out = new Float32Array(count * 5);
  for (let k = 0; k < count; k++) {
    const q = [1, 2, 3, 4].map((j) => cRoundHalfAway(Math.fround(boxes[5 * k + j] * s)));
    if (q[2] <= q[0]) q[2] = q[0] + 1;
    if (q[3] <= q[1]) q[3] = q[1] + 1;
    out.set([boxes[5 * k], ...q], 5 * k);
  }
  return out;
}

interface Case {
  N: number;
  C: number;
  H: number;
  W: number;
  K: number;
  PH: number;
  PW: number;
  sr: number;
  stride: number;
}

async function check(rand: () => number, c: Case, op: 'align' | 'warp'): Promise<number> {
  const x = randomMap(rand, c.N * c.C * c.H * c.W);
  const boxes = randomBoxes(rand, c.K, c.N, c.H, c.W, c.stride);
  if (c.sr <= 0) clampForAdaptive(boxes, c.K, c.stride, c.PH, c.PW);
  const input: FeatureMap = { data: x, shape: [c.N, c.C, c.H, c.W], layout: 'NCHW' };
  const scale = 1 / c.stride;
  let worst = 0;
  for (const halfPixel of [true, false]) {
    for (const ortMode of ['avg', 'max'] as const) {
      const mode: AlignMode = ortMode === 'max' ? 'onnx_max' : 'avg';
      const params = {
        spatialScale: scale,
        outputSize: [c.PH, c.PW] as [number, number],
        samplingRatio: c.sr,
        aligned: halfPixel,
        mode,
      };
      // Warp: ORT reads the integer cell boxes at spatial_scale 1.
      const s = await session(c.PH, c.PW, c.sr, op === 'warp' ? 1 : scale, ortMode, halfPixel);
      const ortBoxes = op === 'warp' ? warpCellsIndependent(boxes, c.K, scale) : boxes;
      const expected = await runRoiAlign(s, x, input.shape, ortBoxes, c.K);
      const ours = (op === 'warp' ? roiWarp : roiAlign)(input, { data: boxes, count: c.K }, params);
      expect(ours.shape).toEqual([c.K, c.C, c.PH, c.PW]);
      const err = maxAbsDiff(ours.data, expected);
      if (err > 1e-5) {
        throw new Error(`${op} ${JSON.stringify({ ...c, halfPixel, mode })}: max abs error ${err}`);
      }
      worst = Math.max(worst, err);
    }
  }
  return worst;
}

describe('RoI Align vs ONNX Runtime RoiAlign (opset 16)', () => {
  it('thousands of small random cases: all box kinds, fixed and adaptive sampling, N = 1..2, C = 1..4', async () => {
    const rand = mulberry32(0x5eed);
    let boxesChecked = 0;
    let worst = 0;
    for (let t = 0; t < 400; t++) {
      const c: Case = {
        N: randInt(rand, 1, 2),
        C: randInt(rand, 1, 4),
        H: randInt(rand, 1, 14),
        W: randInt(rand, 1, 14),
        K: randInt(rand, 0, 12),
        PH: randInt(rand, 1, 4),
        PW: randInt(rand, 1, 4),
        sr: [0, 1, 2, 3][randInt(rand, 0, 3)],
        stride: [1, 4, 16, 7, 1 / 0.3][randInt(rand, 0, 4)],
      };
      worst = Math.max(worst, await check(rand, c, 'align'));
      boxesChecked += c.K * 4; // 2 alignments × 2 modes
    }
    expect(boxesChecked).toBeGreaterThan(8000);
    expect(worst).toBeLessThanOrEqual(1e-5);
  });

  it('a few big cases: C = 256, 7×7, stride 16, sampling 2 and adaptive, N = 2', async () => {
    const rand = mulberry32(77);
    for (const sr of [2, 0]) {
      const c: Case = { N: 2, C: 256, H: 25, W: 34, K: 40, PH: 7, PW: 7, sr, stride: 16 };
      expect(await check(rand, c, 'align')).toBeLessThanOrEqual(1e-5);
    }
  });

  it('K = 0', async () => {
    const rand = mulberry32(5);
    await check(rand, { N: 1, C: 3, H: 5, W: 5, K: 0, PH: 2, PW: 2, sr: 2, stride: 1 }, 'align');
  });

  it('RoI Warp vs ORT RoiAlign (spatial_scale 1) on independently snapped cell boxes, scales 1, 1/16, 1/7, 0.3', async () => {
    const rand = mulberry32(0xa11);
    for (let t = 0; t < 120; t++) {
      const c: Case = {
        N: randInt(rand, 1, 2),
        C: randInt(rand, 1, 4),
        H: randInt(rand, 1, 12),
        W: randInt(rand, 1, 12),
        K: randInt(rand, 1, 10),
        PH: randInt(rand, 1, 4),
        PW: randInt(rand, 1, 4),
        sr: [0, 1, 2][randInt(rand, 0, 2)],
        stride: [1, 16, 7, 1 / 0.3][randInt(rand, 0, 3)],
      };
      expect(await check(rand, c, 'warp')).toBeLessThanOrEqual(1e-5);
    }
  });

  it('RoI Warp at scale 1/7 with adaptive sampling (the q/s·s round trip flipped grids here)', async () => {
    const rand = mulberry32(0x717);
    for (let t = 0; t < 30; t++) {
      const c: Case = {
        N: 1,
        C: randInt(rand, 1, 3),
        H: randInt(rand, 4, 12),
        W: randInt(rand, 4, 12),
        K: randInt(rand, 4, 12),
        PH: randInt(rand, 1, 3),
        PW: randInt(rand, 1, 3),
        sr: 0,
        stride: 7,
      };
      expect(await check(rand, c, 'warp')).toBeLessThanOrEqual(1e-5);
    }
  });
});
