/** Small helpers shared by the operator tests. */
import { expect } from 'vitest';
import { InvalidInputError } from '../../src/errors.js';
import type { AlignMode, Boxes, FeatureMap } from '../../src/ops/index.js';
import { randInt, randomBoxes, randomMap } from '../oracle/random.js';
import type { RefAlignParams, RefMap } from '../reference/roi_reference.js';

/** The `field` of the `InvalidInputError` that `fn` throws; fails when it throws nothing or another error. */
export function fieldOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(InvalidInputError);
    return (e as InvalidInputError).field;
  }
  throw new Error('expected an InvalidInputError');
}

/** Largest |a[i] - b[i]|; fails on a length mismatch. */
export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}

/** Index of the first value that differs (bitwise, -0 == 0), or -1. */
export function firstMismatch(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

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
