/** Seeded random problems for the operator tests' comparisons with the slow references. */
import type { AlignMode, Boxes, FeatureMap } from '../../src/ops/index.js';
import { randInt, randomBoxes, randomMap } from './random.js';
import type { RefAlignParams, RefMap } from '../reference/roi_reference.js';

/**
 * A seeded random problem for the comparisons with the slow references: an NCHW map `[N, C, H, W]`
 * (`N` 1..2, `C` 1..maxC, `H`, `W` 1..maxHW, values in [-2, 2)) and `K` 0..6 random boxes at a stride
 * drawn from `strides`. `refMap` is the same map as the slow references take it.
 */
export function randomProblem(
  rand: () => number,
  opts: { maxC: number; maxHW: number; strides: readonly number[] },
): { input: FeatureMap; refMap: RefMap; boxes: Boxes; stride: number } {
  const N = randInt(rand, 1, 2);
  const C = randInt(rand, 1, opts.maxC);
  const H = randInt(rand, 1, opts.maxHW);
  const W = randInt(rand, 1, opts.maxHW);
  const stride = opts.strides[randInt(rand, 0, opts.strides.length - 1)];
  const K = randInt(rand, 0, 6);
  const x = randomMap(rand, N * C * H * W);
  const boxes = { data: randomBoxes(rand, K, N, H, W, stride), count: K };
  return {
    input: { data: x, shape: [N, C, H, W], layout: 'NCHW' },
    refMap: { data: x, N, C, H, W },
    boxes,
    stride,
  };
}

/** Fully spelled-out `roiAlign` / `roiWarp` parameters in the slow references' notation. */
export function refAlignParams(p: {
  spatialScale: number;
  outputSize: readonly [number, number];
  samplingRatio: number;
  aligned: boolean;
  mode: AlignMode;
}): RefAlignParams {
  const [PH, PW] = p.outputSize;
  return { s: p.spatialScale, PH, PW, samplingRatio: p.samplingRatio, aligned: p.aligned, mode: p.mode };
}

/**
 * A seeded random position-sensitive problem for the ps_align / ps_pool references: bins `PH × PW`
 * (1..4 each), an NCHW map `[N, C_out·PH·PW, H, W]` (`N` 1..2, `C_out` 1..3, `H`, `W` 1..12, values in
 * [-2, 2)) and `K` 0..6 random boxes at a stride drawn from `strides`. Draws in that order.
 */
export function randomPsProblem(
  rand: () => number,
  strides: readonly number[],
): {
  PH: number;
  PW: number;
  N: number;
  Cout: number;
  C: number;
  H: number;
  W: number;
  x: Float32Array;
  stride: number;
  K: number;
  data: Float32Array;
} {
  const [PH, PW] = [randInt(rand, 1, 4), randInt(rand, 1, 4)];
  const [N, Cout, H, W] = [
    randInt(rand, 1, 2),
    randInt(rand, 1, 3),
    randInt(rand, 1, 12),
    randInt(rand, 1, 12),
  ];
  const C = Cout * PH * PW;
  const x = randomMap(rand, N * C * H * W);
  const stride = strides[randInt(rand, 0, strides.length - 1)];
  const K = randInt(rand, 0, 6);
  const data = randomBoxes(rand, K, N, H, W, stride);
  return { PH, PW, N, Cout, C, H, W, x, stride, K, data };
}
