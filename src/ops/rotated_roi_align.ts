/**
 * Rotated RoI Align (detectron2 `ROIAlignRotated`, from the Caffe2 op of the same name; mmcv
 * `roi_align_rotated`). Oriented detectors (aerial images, scene text: Ma et al., "Arbitrary-Oriented
 * Scene Text Detection via Rotation Proposals", https://arxiv.org/abs/1703.01086) pool each rotated
 * box as RoI Align pools an upright one, on a sample grid turned with the box.
 *
 * Source followed line by line: detectron2/layers/csrc/ROIAlignRotated/ROIAlignRotated_cpu.cpp
 * (facebookresearch/detectron2); mmcv's ops/csrc/pytorch/cpu/roi_align_rotated.cpp for `aligned = false`
 * and `clockwise`.
 *
 * ~520 lines in one file on purpose: box parsing (`cxcywha`, `clockwise`), the turned geometry and the
 * tap tables follow detectron2's one kernel step by step, and reading them side by side is the check.
 */
import { CancelledError, InvalidInputError } from '../errors.js';
import { checkBatchIndex, FLOAT32_MAX } from './boxes.js';
import { assertFeatureShape } from './features.js';
import {
  assertParamsObject,
  MAX_SAMPLING_GRID,
  resolveLayout,
  resolveOutputSize,
  resolveSamplingRatio,
  resolveSpatialScale,
} from './params.js';
import type { FeatureMap, Layout, Pooled } from './types.js';
import { align16, Workspace } from './wasm/workspace.js';

/**
 * Rotated boxes: `count` rows of `(b, cx, cy, w, h, angle)`, row-major `[K, 6]`, float32 (like the
 * peers' RoI tensors). `(cx, cy)` the centre and `w × h` the size in input-image pixels, `angle` in
 * degrees, counter-clockwise as seen in the image (y pointing down), `0 <= b < N`, `w, h >= 0`.
 */
export interface RotatedBoxes {
  data: Float32Array;
  count: number;
}

const ROTATED_NAMES = ['b', 'cx', 'cy', 'w', 'h', 'angle'] as const;

export interface RotatedBoxOptions {
  /** `N` of the feature map: batch indices must satisfy `0 <= b < batchSize`. */
  batchSize: number;
  /** Field name used in error messages. Default `'boxes'`. */
  field?: string;
}

/**
 * Converts rows of 5 numbers `(cx, cy, w, h, angle)` (batch index 0) or 6 `(b, cx, cy, w, h, angle)`
 * to `RotatedBoxes`. Checks: finite numbers within float32 range, `w >= 0`, `h >= 0`, integer
 * `0 <= b < batchSize`. Errors name the value, e.g. `boxes[2][3]` for the width of row 2 written with
 * a batch index. An empty list is valid.
 *
 * @example toRotatedBoxes([[20, 20, 20, 10, 30]], { batchSize: 1 }) // → (0, 20, 20, 20, 10, 30)
 */
export function toRotatedBoxes(rows: readonly (readonly number[])[], opts: RotatedBoxOptions): RotatedBoxes {
  const field = opts.field ?? 'boxes';
  if (!Array.isArray(rows)) {
    throw new InvalidInputError(
      `${field} must be an array of rotated box rows`,
      field,
      'an array of [5] (cx, cy, w, h, angle) or [6] (b, cx, cy, w, h, angle) number rows',
    );
  }
  const data = new Float32Array(rows.length * 6);
  for (let k = 0; k < rows.length; k++) {
    const row = rows[k];
    const rowField = `${field}[${k}]`;
    if (!Array.isArray(row) || (row.length !== 5 && row.length !== 6)) {
      throw new InvalidInputError(
        `${rowField} must have 5 numbers (cx, cy, w, h, angle) or 6 (b, cx, cy, w, h, angle)`,
        rowField,
        '5 or 6 numbers',
      );
    }
    const start = row.length - 5;
    const b = start === 1 ? checkBatchIndex(row[0], opts.batchSize, `${rowField}[0]`) : 0;
    if (start === 0) checkBatchIndex(0, opts.batchSize, rowField);
    data[6 * k] = b;
    for (let j = 0; j < 5; j++) {
      const v: unknown = row[start + j];
      const at = `${rowField}[${start + j}]`;
      if (typeof v !== 'number' || !Number.isFinite(v) || !Number.isFinite(Math.fround(v))) {
        throw new InvalidInputError(
          `${at} (${ROTATED_NAMES[j + 1]}) must be a finite number that fits float32, got ${String(v)}`,
          at,
          'a finite number within float32 range (|v| < 3.4e38)',
        );
      }
      if ((j === 2 || j === 3) && v < 0) {
        throw new InvalidInputError(
          `${rowField}: ${j === 2 ? 'width' : 'height'} ${v} is negative`,
          at,
          `a ${j === 2 ? 'width' : 'height'} >= 0`,
        );
      }
      data[6 * k + 1 + j] = v;
    }
  }
  return { data, count: rows.length };
}

/**
 * Checks `boxes` against a map with `batchSize` images and the scale (the kernel calls this:
 * `RotatedBoxes` can be built by hand): `count * 6` values, integer `0 <= b < N`, finite values,
 * `w, h >= 0`, and `cx, cy, w, h` × `spatialScale` finite in float32. Names the first bad value.
 */
export function assertRotatedBoxes(
  boxes: RotatedBoxes,
  batchSize: number,
  spatialScale: number,
  field = 'boxes',
): void {
  if (!Number.isInteger(boxes.count) || boxes.count < 0 || boxes.data.length < boxes.count * 6) {
    throw new InvalidInputError(
      `${field} has count ${boxes.count} but ${boxes.data.length} values`,
      field,
      'count * 6 values (b, cx, cy, w, h, angle)',
    );
  }
  const d = boxes.data;
  const s = Math.fround(spatialScale);
  for (let k = 0; k < boxes.count; k++) {
    const o = 6 * k;
    checkBatchIndex(d[o], batchSize, `${field}[${k}][0]`);
    for (let j = 1; j < 6; j++) {
      if (!Number.isFinite(d[o + j])) {
        throw new InvalidInputError(
          `${field}[${k}][${j}] (${ROTATED_NAMES[j]}) is ${d[o + j]}`,
          `${field}[${k}][${j}]`,
          'a finite number',
        );
      }
    }
    for (const j of [3, 4]) {
      if (d[o + j] < 0) {
        throw new InvalidInputError(
          `${field}[${k}][${j}] (${ROTATED_NAMES[j]}) is ${d[o + j]}, a negative size`,
          `${field}[${k}][${j}]`,
          `${ROTATED_NAMES[j]} >= 0`,
        );
      }
    }
    for (let j = 1; j < 5; j++) {
      if (!Number.isFinite(Math.fround(d[o + j] * s))) {
        throw new InvalidInputError(
          `${field}[${k}]: ${ROTATED_NAMES[j]} × spatialScale = ${d[o + j]} × ${s} overflows float32; ` +
            'use a smaller spatialScale',
          `${field}[${k}]`,
          `box values × spatialScale within ±${FLOAT32_MAX.toPrecision(7)} (float32)`,
        );
      }
    }
  }
}

export interface RotatedRoiAlignParams {
  /** Feature coordinates = image coordinates × `spatialScale` (= 1 / stride, e.g. 0.0625). Required. */
  spatialScale: number;
  /** Output bins `PH × PW`: a number for a square grid or `[PH, PW]`. Default 7. */
  outputSize?: number | readonly [number, number];
  /**
   * Sampling points per bin and axis. Default 2 (as roiAlign here; detectron2's configs use 0).
   * `<= 0` = adaptive: `ceil(h·s / PH)` rows and `ceil(w·s / PW)` columns per bin (in the box's own
   * frame). Grids over 64 per axis are refused.
   */
  samplingRatio?: number;
  /**
   * Default true (detectron2, whose op always does this): the centre is shifted by half a pixel,
   * `(cx, cy)·s − 0.5`, and any size is kept (a zero-size box gives 0). false (mmcv's
   * `aligned=False`): no shift, and `w·s`, `h·s` are raised to at least 1 cell.
   */
  aligned?: boolean;
  /**
   * Default false: `angle` turns the box counter-clockwise as seen in the image. true: clockwise
   * (the angle is negated; mmcv's `clockwise` flag).
   */
  clockwise?: boolean;
  /** Memory layout of the result. Default `'NCHW'`. */
  outputLayout?: Layout;
  /**
   * Called before each box; returning true stops the call with a `CancelledError` (the worker uses it
   * for clients that went away and tasks over their time limit), as in `roiAlign`. Default: never stop.
   */
  shouldStop?: () => boolean;
}

interface RotatedSettings {
  PH: number;
  PW: number;
  scale: number;
  samplingRatio: number;
  aligned: boolean;
  clockwise: boolean;
  layout: Layout;
}

function resolveBoolean(v: unknown, field: string, fallback: boolean): boolean {
  const b = v ?? fallback;
  if (typeof b !== 'boolean') {
    throw new InvalidInputError(`${field} must be a boolean, got ${String(v)}`, field, 'true or false');
  }
  return b;
}

function resolveRotatedParams(params: RotatedRoiAlignParams): RotatedSettings {
  assertParamsObject(params, 'Rotated RoI Align');
  const [PH, PW] = resolveOutputSize(params.outputSize);
  const scale = resolveSpatialScale(params.spatialScale);
  const samplingRatio = resolveSamplingRatio(params.samplingRatio);
  return {
    PH,
    PW,
    scale,
    samplingRatio,
    aligned: resolveBoolean(params.aligned, 'aligned', true),
    clockwise: resolveBoolean(params.clockwise, 'clockwise', false),
    layout: resolveLayout(params.outputLayout),
  };
}

const fround = Math.fround;

/** One RoI's float32 geometry, computed in the C++ kernel's order of operations (T = float). */
interface RotatedGeometry {
  centerY: number;
  centerX: number;
  cos: number;
  sin: number;
  startY: number;
  startX: number;
  binH: number;
  binW: number;
  gridH: number;
  gridW: number;
}

function rotatedGeometry(d: Float32Array, k: number, cfg: RotatedSettings, g: RotatedGeometry): void {
  const o = 6 * k;
  const s = cfg.scale;
  const offset = cfg.aligned ? 0.5 : 0;
  g.centerX = fround(fround(d[o + 1] * s) - offset);
  g.centerY = fround(fround(d[o + 2] * s) - offset);
  let roiW = fround(d[o + 3] * s);
  let roiH = fround(d[o + 4] * s);
  if (!cfg.aligned) {
    // mmcv's backward-compatibility rule: RoIs below one cell are enlarged to one (about the centre).
    roiW = Math.max(roiW, 1);
    roiH = Math.max(roiH, 1);
  }
  // `roi[5] * M_PI / 180.0` is a double expression stored in a float; cos/sin of that float.
  const angle = cfg.clockwise ? -d[o + 5] : d[o + 5];
  const theta = fround((angle * Math.PI) / 180);
  g.cos = fround(Math.cos(theta));
  g.sin = fround(Math.sin(theta));
  g.binH = fround(roiH / cfg.PH);
  g.binW = fround(roiW / cfg.PW);
  g.gridH = cfg.samplingRatio > 0 ? cfg.samplingRatio : Math.ceil(g.binH);
  g.gridW = cfg.samplingRatio > 0 ? cfg.samplingRatio : Math.ceil(g.binW);
  // The grid starts at the box's top-left corner relative to its centre.
  g.startY = fround(-roiH / 2);
  g.startX = fround(-roiW / 2);
}

/**
 * Sample offsets along one box axis, relative to the centre: entry `p * grid + i` is
 * `start + p·bin + (i + 0.5)·bin / grid`, rounded at each step like the C++.
 */
function fillOffsets(out: Float64Array, bins: number, grid: number, start: number, bin: number): void {
  let idx = 0;
  for (let p = 0; p < bins; p++) {
    const binStart = fround(start + fround(p * bin));
    for (let i = 0; i < grid; i++, idx++) {
      out[idx] = fround(binStart + fround(fround((i + 0.5) * bin) / grid));
    }
  }
}

/**
 * Reusable buffers of one call: sample offsets, and a small open-addressing hash table (cell index ->
 * summed weight) that merges the taps of one bin. Its size follows the samples per bin, not the map:
 * a per-cell array would cost 12 bytes per cell of a large map on every call.
 */
interface Scratch {
  yy: Float64Array;
  xx: Float64Array;
  /** Summed weight of each cell of one plane in the current bin. */
  /** Hash slots: the cell index, or -1 when free (every slot is freed again after each bin). */
  keys: Int32Array;
  /** Summed weight of the cell in the same slot. */
  sums: Float64Array;
  /** The slots used in the current bin, in first-touch order. */
  touched: Int32Array;
}

/**
 * Writes the `weightedSum` tables of one RoI (like roiAlign's `avg`): `PH * PW + 1` tap indices at
 * byte `firstAt`, then per bin its distinct cells with weight `Σ w / count` (8-byte taps: cell
 * address, f32 weight) at byte `tapsAt`. A rotated grid is not separable, so each sample's 4 taps
 * are listed and merged per bin through the hash table: neighbouring samples share cells, and merging
 * halves the channel work at sampling 2.
 */
function writeRotatedTaps(
  g: RotatedGeometry,
  sc: Scratch,
  PH: number,
  PW: number,
  H: number,
  W: number,
  batchAt: number,
  rowBytes: number,
  cellBytes: number,
  i32: Int32Array,
  f32: Float32Array,
  firstAt: number,
  tapsAt: number,
): void {
  const { gridH, gridW, cos, sin, centerY, centerX } = g;
  const { yy, xx, keys, sums, touched } = sc;
  const mask = keys.length - 1;
  fillOffsets(yy, PH, gridH, g.startY, g.binH);
  fillOffsets(xx, PW, gridW, g.startX, g.binW);
  const invCount = 1 / Math.max(gridH * gridW, 1);
  const first = firstAt >> 2;
  let t = tapsAt >> 2;
  const t0 = t;
  const add = (cell: number, w: number, n: number): number => {
    if (w === 0) return n;
    // Fibonacci hashing, linear probing; the table is at least twice the cells a bin can touch.
    let h = (Math.imul(cell, 0x9e3779b1) >>> 16) & mask;
    while (keys[h] !== cell) {
      if (keys[h] === -1) {
        keys[h] = cell;
        sums[h] = w;
        touched[n++] = h;
        return n;
      }
      h = (h + 1) & mask;
    }
    sums[h] += w;
    return n;
  };
  for (let ph = 0; ph < PH; ph++) {
    for (let pw = 0; pw < PW; pw++) {
      i32[first + ph * PW + pw] = (t - t0) >> 1;
      let n = 0;
      for (let iy = 0; iy < gridH; iy++) {
        const vy = yy[ph * gridH + iy];
        const yc = fround(vy * cos);
        const ys = fround(vy * sin);
        for (let ix = 0; ix < gridW; ix++) {
          const vx = xx[pw * gridW + ix];
          // Turn (yy, xx) by theta about the centre: counter-clockwise as seen with y down.
          let y = fround(fround(yc - fround(vx * sin)) + centerY);
          let x = fround(fround(ys + fround(vx * cos)) + centerX);
          // The Caffe2 cut-off: a sample outside [-1, H] × [-1, W] reads 0 (it still counts).
          if (y < -1 || y > H || x < -1 || x > W) continue;
          if (y < 0) y = 0;
          if (x < 0) x = 0;
          let yLo = Math.floor(y);
          let xLo = Math.floor(x);
          let yHi: number, xHi: number;
          if (yLo >= H - 1) {
            yLo = yHi = H - 1;
            y = yLo;
          } else {
            yHi = yLo + 1;
          }
          if (xLo >= W - 1) {
            xLo = xHi = W - 1;
            x = xLo;
          } else {
            xHi = xLo + 1;
          }
          const ly = fround(y - yLo);
          const lx = fround(x - xLo);
          const hy = fround(1 - ly);
          const hx = fround(1 - lx);
          n = add(yLo * W + xLo, fround(hy * hx), n);
          n = add(yLo * W + xHi, fround(hy * lx), n);
          n = add(yHi * W + xLo, fround(ly * hx), n);
          n = add(yHi * W + xHi, fround(ly * lx), n);
        }
      }
      for (let j = 0; j < n; j++, t += 2) {
        const slot = touched[j];
        const cell = keys[slot];
        keys[slot] = -1;
        const cy = Math.floor(cell / W);
        i32[t] = batchAt + cy * rowBytes + (cell - cy * W) * cellBytes;
        f32[t + 1] = sums[slot] * invCount;
      }
    }
  }
  i32[first + PH * PW] = (t - t0) >> 1;
}

/**
 * Rotated RoI Align (detectron2 `ROIAlignRotated`): RoI Align on a sample grid that is turned with
 * the box about its centre. No quantization of the box.
 *
 * Shapes: `input` `[N, C, H, W]` (NCHW or NHWC), `boxes` `[K, 6]` rows `(b, cx, cy, w, h, angle)` in
 * image pixels and degrees (see `RotatedBoxes`, `toRotatedBoxes`), result `[K, C, PH, PW]` (float32,
 * `outputLayout`, default NCHW). `K = 0` gives `[0, C, PH, PW]`. Boxes partly or wholly off the map
 * are valid: samples outside contribute 0.
 *
 * Per box, in float32 like the C++ (`s = spatialScale`, `off = aligned ? 0.5 : 0`, θ = angle·π/180,
 * negated when `clockwise`):
 * ```
 * cx' = cx*s - off, cy' = cy*s - off, rw = w*s, rh = h*s   (aligned=false: rw, rh at least 1)
 * bw = rw / PW, bh = rh / PH; gh = samplingRatio > 0 ? samplingRatio : ceil(bh) (gw likewise)
 * sample (iy, ix) of bin (ph, pw), relative to the centre:
 *   yy = -rh/2 + ph*bh + (iy + 0.5)*bh/gh,   xx = -rw/2 + pw*bw + (ix + 0.5)*bw/gw
 * turned: y = yy*cosθ - xx*sinθ + cy',  x = yy*sinθ + xx*cosθ + cx'
 * value: mean of the gh*gw bilinear samples (divisor max(gh*gw, 1)); a zero-size box gives 0
 * ```
 * A sample follows the Caffe2 rule of RoI Align: 0 if `y < -1 || y > H || x < -1 || x > W`;
 * otherwise clamp to `>= 0` and interpolate the 4 neighbouring cells, the last row/column repeating.
 * Bin `(0, 0)` is at the box's own top-left corner (`-w/2, -h/2` in its frame), which moves with the
 * turn: at 90° it is the bottom-left corner in the image, so the output of a box turned by +90° is the
 * upright output turned by −90° (detectron2's test `test_forward_output_0_90_180_270`). At angle 0 the
 * result equals `roiAlign` on the box `(cx ± w/2, cy ± h/2)` with the same `aligned` and
 * `samplingRatio` (to float32 rounding; with `aligned = false` only for boxes of at least one cell,
 * since roiAlign enlarges a smaller box from its corner and this op about its centre).
 *
 * mmcv: its `roi_align_rotated` takes the angle in radians; convert with `θ·180/π`.
 *
 * Worked example (detectron2's test): the 5×5 map `X[y][x] = 5y + x`, `spatialScale = 1`,
 * `outputSize = 4`, `samplingRatio = 0`, box `(cx, cy, w, h) = (2, 2, 2, 2)` (pixels 1..2 on both
 * axes). Aligned, the centre is at 1.5; bins are 0.5 wide; the adaptive grid is `ceil(0.5) = 1`, so
 * bin (0, 0) samples `(1.5 - 1 + 0.25) = 0.75` on both axes: `5·0.75 + 0.75 = 4.5`. Angle 0 gives
 * rows `[4.5, 5, 5.5, 6], [7, 7.5, 8, 8.5], [9.5, 10, 10.5, 11], [12, 12.5, 13, 13.5]`; angle 90 gives
 * that matrix turned clockwise: first row `[12, 9.5, 7, 4.5]`.
 *
 * How it runs: JS computes each RoI's float32 geometry, turns every sample and merges the 4 taps of
 * a bin's samples into distinct cells (the grid is not separable, unlike roiAlign's); the
 * multiply-adds over channels run in the WebAssembly SIMD `weightedSum` kernel that roiAlign's `avg`
 * uses, summing `(Σ w / count) · x` per cell in float32 (the C++ sums `w · x` per sample and divides
 * at the end: the two agree to float32 rounding, about 1e-7 relative, not bit for bit).
 *
 * @param input feature map `[N, C, H, W]`; must be finite (see `assertFiniteFeatures`).
 * @param boxes `[K, 6]` rotated boxes (see `toRotatedBoxes`).
 * @param params `spatialScale` (required), `outputSize` = 7, `samplingRatio` = 2 (`<= 0` adaptive, at
 *   most 64 per axis), `aligned` = true, `clockwise` = false, `outputLayout` = `'NCHW'`, `shouldStop`
 *   (checked before each box).
 * @returns pooled `[K, C, PH, PW]`.
 * @throws InvalidInputError naming the field (`features.shape`, `boxes[3][0]`, `boxes[1][3]`,
 *   `samplingRatio`, `clockwise`, ...); CancelledError when `shouldStop` returns true.
 */
export function rotatedRoiAlign(
  input: FeatureMap,
  boxes: RotatedBoxes,
  params: RotatedRoiAlignParams,
): Pooled {
  const cfg = resolveRotatedParams(params);
  assertFeatureShape(input);
  const [N, C, H, W] = input.shape;
  assertRotatedBoxes(boxes, N, cfg.scale);
  const { PH, PW, layout } = cfg;
  const K = boxes.count;

  // Pass 1: grid sizes (the cost guard refuses before any work is done).
  const geo: RotatedGeometry = {
    centerY: 0,
    centerX: 0,
    cos: 1,
    sin: 0,
    startY: 0,
    startX: 0,
    binH: 0,
    binW: 0,
    gridH: 0,
    gridW: 0,
  };
  let maxGridH = 1;
  let maxGridW = 1;
  let maxSamples = 1;
  for (let k = 0; k < K; k++) {
    rotatedGeometry(boxes.data, k, cfg, geo);
    const g = Math.max(geo.gridH, geo.gridW);
    if (g > MAX_SAMPLING_GRID) {
      throw new InvalidInputError(
        `boxes[${k}] needs an adaptive sampling grid of ${g} per axis, over the limit of ${MAX_SAMPLING_GRID}; ` +
          `use a fixed samplingRatio (1..${MAX_SAMPLING_GRID}) or a smaller box`,
        'samplingRatio',
        `an adaptive grid of at most ${MAX_SAMPLING_GRID} per axis, or a fixed samplingRatio`,
      );
    }
    maxGridH = Math.max(maxGridH, geo.gridH);
    maxGridW = Math.max(maxGridW, geo.gridW);
    maxSamples = Math.max(maxSamples, geo.gridH * geo.gridW);
  }

  const out = new Float32Array(K * C * PH * PW);
  const shape: [number, number, number, number] = [K, C, PH, PW];
  if (K === 0) return { data: out, shape, layout };

  // Distinct cells of one bin: 4 per sample, and never more than the plane holds.
  const cellsPerBin = Math.min(4 * maxSamples, H * W);
  const hashSize = 2 ** Math.ceil(Math.log2(2 * cellsPerBin));
  const sc: Scratch = {
    yy: new Float64Array(PH * maxGridH),
    xx: new Float64Array(PW * maxGridW),
    keys: new Int32Array(hashSize).fill(-1),
    sums: new Float64Array(hashSize),
    touched: new Int32Array(cellsPerBin),
  };
  const bins = PH * PW;
  const firstBytes = align16(4 * (bins + 1));
  const ws = new Workspace(input, firstBytes + 8 * bins * cellsPerBin, bins, K, layout);
  const { kernels, f32, i32, cellBytes, rowBytes } = ws;
  const tapsAt = ws.tables + firstBytes;

  for (let k0 = 0; k0 < K; k0 += ws.roisPerChunk) {
    const k1 = Math.min(K, k0 + ws.roisPerChunk);
    for (let k = k0; k < k1; k++) {
      if (params.shouldStop?.()) throw new CancelledError();
      rotatedGeometry(boxes.data, k, cfg, geo);
      const batchAt = ws.imageAt(boxes.data[6 * k]);
      writeRotatedTaps(geo, sc, PH, PW, H, W, batchAt, rowBytes, cellBytes, i32, f32, ws.tables, tapsAt);
      kernels.weightedSum(bins, ws.tables, tapsAt, ws.target(k - k0), 4 * C, C);
      ws.finish(k - k0);
    }
    ws.copyOut(out, k0, k1);
  }
  return { data: out, shape, layout };
}
