/**
 * Position-sensitive RoI Align (the RoI Align flavour of R-FCN's position-sensitive pooling:
 * Dai, Li, He, Sun, "R-FCN: Object Detection via Region-based Fully Convolutional Networks",
 * NIPS 2016, https://arxiv.org/abs/1605.06409), as torchvision's `ps_roi_align`.
 */
import { CancelledError, InvalidInputError } from '../errors.js';
import { assertBoxes, assertScaledBoxes } from './boxes.js';
import { assertFeatureShape } from './features.js';
import {
  assertParamsObject,
  MAX_SAMPLING_GRID,
  resolveLayout,
  resolveOutputSize,
  resolveSamplingRatio,
  resolveSpatialScale,
} from './params.js';
import type { Boxes, FeatureMap, Layout, Pooled } from './types.js';

export interface PsRoiAlignParams {
  /** Feature coordinates = image coordinates × `spatialScale` (= 1 / stride, e.g. 0.0625). Required. */
  spatialScale: number;
  /** Output bins `PH × PW`: a number for a square grid or `[PH, PW]`. Default 7. `C` must be a multiple of `PH·PW`. */
  outputSize?: number | readonly [number, number];
  /**
   * Sampling points per bin and axis. Default 2 (like `roiAlign`; torchvision's default is -1 =
   * adaptive, pass 0 or -1 for it). `<= 0` = adaptive: `ceil(roiHeight / PH)` rows and
   * `ceil(roiWidth / PW)` columns per bin. Grids over 64 per axis are refused.
   */
  samplingRatio?: number;
  /** Memory layout of the result. Default `'NCHW'`. */
  outputLayout?: Layout;
  /**
   * Called before each box; returning true stops the call with a `CancelledError` (the worker uses it
   * for clients that went away and tasks over their time limit), as in `roiAlign`. Default: never stop.
   */
  shouldStop?: () => boolean;
}

/**
 * Checks that the map's `C` splits into `C_out` groups of `PH·PW` position-sensitive channels and
 * returns `C_out = C / (PH·PW)`. Shared by `psRoiAlign` and `psRoiPool`.
 * @throws InvalidInputError naming `features.shape` (its channel count) and `outputSize` (`PH·PW`).
 */
export function psChannelsOut(C: number, PH: number, PW: number, field = 'features'): number {
  const bins = PH * PW;
  if (C % bins !== 0) {
    throw new InvalidInputError(
      `${field} has C = ${C} channels, not a multiple of outputSize PH·PW = ${PH}·${PW} = ${bins}: ` +
        `position-sensitive pooling reads one channel per output channel and bin (C = C_out·PH·PW)`,
      `${field}.shape`,
      `C (${field}.shape[1]) a multiple of PH·PW = ${bins}`,
    );
  }
  return C / bins;
}

/** Element strides of a logical `[N, C, H, W]` map (or `[K, C, PH, PW]` output) in `layout`. */
export interface Strides {
  n: number;
  c: number;
  y: number;
  x: number;
}

/** Strides of `[N, C, H, W]` stored as `layout` (NHWC keeps the channels of one cell contiguous). */
export function stridesOf(shape: readonly [number, number, number, number], layout: Layout): Strides {
  const [, C, H, W] = shape;
  return layout === 'NCHW' ? { n: C * H * W, c: H * W, y: W, x: 1 } : { n: H * W * C, c: 1, y: W * C, x: C };
}

const fround = Math.fround;

/** Per-RoI float32 geometry, in torchvision's order of operations (see `psRoiAlign`). */
interface PsGeometry {
  startY: number;
  startX: number;
  binH: number;
  binW: number;
  gridH: number;
  gridW: number;
}

function psGeometry(
  d: Float32Array,
  k: number,
  s: number,
  PH: number,
  PW: number,
  samplingRatio: number,
  g: PsGeometry,
): void {
  const o = 5 * k;
  // The half-pixel offset is fixed in torchvision's ps_roi_align (there is no `aligned` flag).
  g.startX = fround(fround(d[o + 1] * s) - 0.5);
  g.startY = fround(fround(d[o + 2] * s) - 0.5);
  const endX = fround(fround(d[o + 3] * s) - 0.5);
  const endY = fround(fround(d[o + 4] * s) - 0.5);
  // No max(roi, 1) here (unlike roi_align with aligned=false): a zero-size box has an empty adaptive grid.
  g.binW = fround(fround(endX - g.startX) / PW);
  g.binH = fround(fround(endY - g.startY) / PH);
  g.gridH = samplingRatio > 0 ? samplingRatio : Math.ceil(g.binH);
  g.gridW = samplingRatio > 0 ? samplingRatio : Math.ceil(g.binW);
}

/**
 * One axis of the sample grid of one RoI, for sample `i` of bin `p` (index `p * grid + i`): whether it
 * is on the map, its two cells (`lo`, `hi`, already multiplied by the axis stride) and their float32
 * weights `wLo = 1 - l`, `wHi = l`. The Caffe2 rule: outside `[-1, size]` (or NaN) is off the map;
 * otherwise clamp to `>= 0`, and at the last cell `lo = hi = size - 1` with `l = 0`.
 */
interface Axis {
  valid: Uint8Array;
  lo: Int32Array;
  hi: Int32Array;
  wLo: Float32Array;
  wHi: Float32Array;
}

function newAxis(n: number): Axis {
  return {
    valid: new Uint8Array(n),
    lo: new Int32Array(n),
    hi: new Int32Array(n),
    wLo: new Float32Array(n),
    wHi: new Float32Array(n),
  };
}

function fillAxis(
  ax: Axis,
  bins: number,
  grid: number,
  start: number,
  bin: number,
  size: number,
  stride: number,
): void {
  for (let p = 0, idx = 0; p < bins; p++) {
    const binStart = fround(fround(p * bin) + start);
    for (let i = 0; i < grid; i++, idx++) {
      let v = fround(binStart + fround(fround((i + 0.5) * bin) / grid));
      if (!(v >= -1 && v <= size)) {
        ax.valid[idx] = 0;
        continue;
      }
      if (v <= 0) v = 0;
      let lo = Math.floor(v);
      let hi: number;
      if (lo >= size - 1) {
        lo = hi = size - 1;
        v = lo;
      } else {
        hi = lo + 1;
      }
      const l = fround(v - lo);
      ax.valid[idx] = 1;
      ax.lo[idx] = lo * stride;
      ax.hi[idx] = hi * stride;
      ax.wLo[idx] = 1 - l; // exact in float32 for l in [0, 1)
      ax.wHi[idx] = l;
    }
  }
}

/**
 * Position-sensitive RoI Align (R-FCN's position-sensitive pooling with RoI Align's bilinear
 * sampling), exactly as torchvision 0.14's `ps_roi_align`, except that an empty sampling grid gives 0
 * where torchvision gives NaN. Bin `(ph, pw)` of output channel `c` averages bilinear samples of input
 * channel `(c·PH + ph)·PW + pw` only, so each of the `PH·PW` bins of a box is scored by its own group
 * of channels (R-FCN's "top-left part of a person", "centre part", ...).
 *
 * Shapes: `input` `[N, C, H, W]` (NCHW or NHWC) with `C = C_out·PH·PW`, `boxes` `[K, 5]` rows
 * `(b, x1, y1, x2, y2)` in image pixels with `0 <= b < N`, result `[K, C_out, PH, PW]` (float32,
 * `outputLayout`, default NCHW). `K = 0` gives `[0, C_out, PH, PW]`. Boxes partly or wholly off the
 * map are valid: samples outside contribute 0 (and still count in the average).
 *
 * Per box, in float32 like torchvision (`s = spatialScale`):
 * ```
 * sx = x1*s - 0.5, sy = y1*s - 0.5, rw = (x2*s - 0.5) - sx, rh = (y2*s - 0.5) - sy   (no rounding, no max(·, 1))
 * bw = rw / PW, bh = rh / PH; gh = samplingRatio > 0 ? samplingRatio : ceil(bh) (gw likewise)
 * sample (iy, ix) of bin (ph, pw): y = (ph*bh + sy) + (iy + 0.5)*bh/gh,  x = (pw*bw + sx) + (ix + 0.5)*bw/gw
 * Y[k][c][ph][pw] = (Σ samples of channel (c·PH + ph)·PW + pw) / (gh·gw);   gh·gw = 0 → 0 (torchvision: NaN)
 * ```
 * The half-pixel offset is always on (torchvision's ps_roi_align has no `aligned` flag). A sample
 * follows the Caffe2 rule of `roiAlign`; each sample is `w1·v1 + w2·v2 + w3·v3 + w4·v4` and the sum
 * runs in float32 in torchvision's order, so results agree with it to the last bit or so.
 *
 * Worked example: a 2×2 output (`PH·PW = 4`) on a 4×4 map with `C = 4` (`C_out = 1`): channel 0 the
 * ramp `4y + x`, channels 1..3 the constants 10, 20, 30; `spatialScale = 1`, `samplingRatio = 1`, box
 * `(0, 0, 4, 4)`: `sx = sy = -0.5`, bins of 2×2 cells, one sample per bin at its centre, `(0.5, 0.5)`,
 * `(0.5, 2.5)`, `(2.5, 0.5)`, `(2.5, 2.5)`. Bin (0, 0) reads channel 0: `4·0.5 + 0.5 = 2.5`; bin (0, 1)
 * reads channel 1: 10; bin (1, 0) channel 2: 20; bin (1, 1) channel 3: 30. Output `[[2.5, 10], [20, 30]]`.
 *
 * How it runs: plain loops (each output value reads one channel, so the work is `K·C·gh·gw` samples,
 * small next to `roiAlign`'s `K·C·PH·PW·gh·gw`); the sample geometry of each bin is computed once per
 * box and shared by its `C_out` channels.
 *
 * @param input feature map `[N, C, H, W]`, `C` a multiple of `PH·PW`; must be finite (see `assertFiniteFeatures`).
 * @param boxes `[K, 5]` canonical boxes in image pixels (see `toCanonicalBoxes`).
 * @param params `spatialScale` (required), `outputSize` = 7, `samplingRatio` = 2 (`<= 0` adaptive, at
 *   most 64 per axis), `outputLayout` = `'NCHW'`, `shouldStop` (checked before each box).
 * @returns pooled `[K, C / (PH·PW), PH, PW]`.
 * @throws InvalidInputError naming the field (`features.shape` when `C` is not a multiple of `PH·PW`,
 *   `boxes[3][0]`, `samplingRatio`, ...); CancelledError when `shouldStop` returns true.
 */
export function psRoiAlign(input: FeatureMap, boxes: Boxes, params: PsRoiAlignParams): Pooled {
  assertParamsObject(params, 'PS RoI Align');
  const [PH, PW] = resolveOutputSize(params.outputSize);
  const scale = resolveSpatialScale(params.spatialScale);
  const samplingRatio = resolveSamplingRatio(params.samplingRatio);
  const layout = resolveLayout(params.outputLayout);
  assertFeatureShape(input);
  const [N, C, H, W] = input.shape;
  const Cout = psChannelsOut(C, PH, PW);
  assertBoxes(boxes, N);
  assertScaledBoxes(boxes, scale);
  const K = boxes.count;
  const d = boxes.data;

  // Pass 1: grid sizes (the cost guard refuses before any work is done).
  const geo: PsGeometry = { startY: 0, startX: 0, binH: 0, binW: 0, gridH: 0, gridW: 0 };
  let maxGrid = 1;
  for (let k = 0; k < K; k++) {
    psGeometry(d, k, scale, PH, PW, samplingRatio, geo);
    const g = Math.max(geo.gridH, geo.gridW);
    if (g > MAX_SAMPLING_GRID) {
      throw new InvalidInputError(
        `boxes[${k}] needs an adaptive sampling grid of ${g} per axis, over the limit of ${MAX_SAMPLING_GRID}; ` +
          `use a fixed samplingRatio (1..${MAX_SAMPLING_GRID}) or a smaller box`,
        'samplingRatio',
        `an adaptive grid of at most ${MAX_SAMPLING_GRID} per axis, or a fixed samplingRatio`,
      );
    }
    if (g > maxGrid) maxGrid = g;
  }

  const shape: [number, number, number, number] = [K, Cout, PH, PW];
  const out = new Float32Array(K * Cout * PH * PW);
  if (K === 0) return { data: out, shape, layout };

  const src = input.data;
  const is = stridesOf(input.shape, input.layout);
  const os = stridesOf(shape, layout);
  const ys = newAxis(PH * maxGrid);
  const xs = newAxis(PW * maxGrid);
  // The taps of one bin's on-map samples: 4 element offsets and 4 float32 weights per sample.
  const tapAt = new Int32Array(4 * maxGrid * maxGrid);
  const tapW = new Float32Array(4 * maxGrid * maxGrid);
  const chanStep = PH * PW * is.c; // input channel (c + 1)·PH·PW + ... is this far from c·PH·PW + ...

  for (let k = 0; k < K; k++) {
    if (params.shouldStop?.()) throw new CancelledError();
    psGeometry(d, k, scale, PH, PW, samplingRatio, geo);
    const { gridH, gridW } = geo;
    const count = gridH * gridW;
    // torchvision divides by the count as is: 0/0 = NaN for an empty grid. We leave the zeros.
    if (count === 0) continue;
    fillAxis(ys, PH, gridH, geo.startY, geo.binH, H, is.y);
    fillAxis(xs, PW, gridW, geo.startX, geo.binW, W, is.x);
    const batchAt = d[5 * k] * is.n;
    for (let ph = 0; ph < PH; ph++) {
      for (let pw = 0; pw < PW; pw++) {
        // The taps of bin (ph, pw), in torchvision's sample order; off-map samples add exactly 0.
        let nt = 0;
        for (let iy = 0; iy < gridH; iy++) {
          const yi = ph * gridH + iy;
          if (ys.valid[yi] === 0) continue;
          const hy = ys.wLo[yi];
          const ly = ys.wHi[yi];
          for (let ix = 0; ix < gridW; ix++) {
            const xi = pw * gridW + ix;
            if (xs.valid[xi] === 0) continue;
            const hx = xs.wLo[xi];
            const lx = xs.wHi[xi];
            tapAt[nt] = ys.lo[yi] + xs.lo[xi];
            tapAt[nt + 1] = ys.lo[yi] + xs.hi[xi];
            tapAt[nt + 2] = ys.hi[yi] + xs.lo[xi];
            tapAt[nt + 3] = ys.hi[yi] + xs.hi[xi];
            tapW[nt] = hy * hx; // the Float32Array store rounds like C's float product
            tapW[nt + 1] = hy * lx;
            tapW[nt + 2] = ly * hx;
            tapW[nt + 3] = ly * lx;
            nt += 4;
          }
        }
        let inAt = batchAt + (ph * PW + pw) * is.c;
        let outAt = k * os.n + ph * os.y + pw * os.x;
        for (let c = 0; c < Cout; c++, inAt += chanStep, outAt += os.c) {
          let sum = 0;
          for (let t = 0; t < nt; t += 4) {
            // val = w1·v1 + w2·v2 + w3·v3 + w4·v4, each step rounded to float32 as in C.
            let v = fround(
              fround(tapW[t] * src[inAt + tapAt[t]]) + fround(tapW[t + 1] * src[inAt + tapAt[t + 1]]),
            );
            v = fround(v + fround(tapW[t + 2] * src[inAt + tapAt[t + 2]]));
            v = fround(v + fround(tapW[t + 3] * src[inAt + tapAt[t + 3]]));
            sum = fround(sum + v);
          }
          out[outAt] = sum / count;
        }
      }
    }
  }
  return { data: out, shape, layout };
}
