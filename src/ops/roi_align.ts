/**
 * RoI Align (He et al., "Mask R-CNN", ICCV 2017, https://arxiv.org/abs/1703.06870).
 *
 * ~480 lines in one file on purpose: the per-RoI float32 geometry, the per-axis sample tables and the
 * tap writers must follow ONNX Runtime's order of operations together (a discrete decision in one
 * changes the others), and torchvision keeps `roi_align` as one kernel the same way.
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
  resultArray,
} from './params.js';
import type { AlignMode, Boxes, FeatureMap, Layout, Pooled } from './types.js';
import { align16, Workspace } from './wasm/workspace.js';

export interface RoiAlignParams {
  /** Feature coordinates = image coordinates × `spatialScale` (= 1 / stride, e.g. 0.0625). Required. */
  spatialScale: number;
  /** Output bins `PH × PW`: a number for a square grid or `[PH, PW]`. Default 7. */
  outputSize?: number | readonly [number, number];
  /**
   * Sampling points per bin and axis. Default 2. `<= 0` = adaptive: `ceil(roiHeight / PH)` rows and
   * `ceil(roiWidth / PW)` columns per bin. Grids over 64 per axis are refused.
   */
  samplingRatio?: number;
  /**
   * Default true: shift by half a pixel (`x * spatialScale - 0.5`), so that the box edges fall on pixel
   * edges (ONNX `half_pixel`, detectron2 ROIAlignV2). false: no shift, RoIs smaller than one cell are
   * forced to one cell (ONNX `output_half_pixel`, torchvision's default, the original Mask R-CNN).
   */
  aligned?: boolean;
  /**
   * How a bin's samples are reduced. Default `'avg'` (their mean). `'max'`: the largest interpolated
   * sample (mmcv, Caffe2, OpenVINO). `'onnx_max'`: the largest single weighted tap `w_i * v_i` of any
   * sample (the ONNX spec / ONNX Runtime rule; only for parity with exported ONNX models).
   */
  mode?: AlignMode;
  /** Memory layout of the result. Default `'NCHW'`. */
  outputLayout?: Layout;
  /**
   * Called before each box; returning true stops the call with a `CancelledError` (the worker uses it
   * for clients that went away and tasks over their time limit). Default: never stop.
   */
  shouldStop?: () => boolean;
  /**
   * Write the result here instead of into a fresh array: exactly `K·C·PH·PW` floats, e.g. one range of
   * a larger output shared between threads (`src/runtime/split.ts`). Default: a fresh array.
   */
  into?: Float32Array;
}

/** `aligned`, `samplingRatio` and `mode` after defaults and checks. */
interface AlignSettings {
  PH: number;
  PW: number;
  scale: number;
  samplingRatio: number;
  aligned: boolean;
  mode: AlignMode;
  layout: Layout;
}

function resolveAlignParams(params: RoiAlignParams): AlignSettings {
  assertParamsObject(params, 'RoI Align');
  const [PH, PW] = resolveOutputSize(params.outputSize);
  const scale = resolveSpatialScale(params.spatialScale);
  const samplingRatio = resolveSamplingRatio(params.samplingRatio);
  const aligned = params.aligned ?? true;
  if (typeof aligned !== 'boolean') {
    throw new InvalidInputError(
      `aligned must be a boolean, got ${String(aligned)}`,
      'aligned',
      'true or false',
    );
  }
  const mode = params.mode ?? 'avg';
  if (mode !== 'avg' && mode !== 'max' && mode !== 'onnx_max') {
    throw new InvalidInputError(
      `mode must be 'avg', 'max' or 'onnx_max', got ${String(mode)}`,
      'mode',
      "'avg', 'max' or 'onnx_max'",
    );
  }
  return { PH, PW, scale, samplingRatio, aligned, mode, layout: resolveLayout(params.outputLayout) };
}

const fround = Math.fround;

/**
 * Per-RoI geometry in float32, in ONNX Runtime's order of operations, so that the discrete decisions
 * (a sample outside the map, `floor`, the edge clamp) agree with it bit for bit. Exported for the
 * pipeline's guard of the configured `MAX_SAMPLING_GRID` (`src/core/pipeline.ts`), so that the guard and
 * the kernel compute the adaptive grid with the same arithmetic.
 */
export interface RoiGeometry {
  startY: number;
  startX: number;
  binH: number;
  binW: number;
  gridH: number;
  gridW: number;
}

export function roiGeometry(
  data: Float32Array,
  k: number,
  s: number,
  PH: number,
  PW: number,
  samplingRatio: number,
  aligned: boolean,
  out: RoiGeometry,
): void {
  const o = 5 * k;
  const offset = aligned ? 0.5 : 0;
  const startX = fround(fround(data[o + 1] * s) - offset);
  const startY = fround(fround(data[o + 2] * s) - offset);
  const endX = fround(fround(data[o + 3] * s) - offset);
  const endY = fround(fround(data[o + 4] * s) - offset);
  let roiW = fround(endX - startX);
  let roiH = fround(endY - startY);
  if (!aligned) {
    // Tiny RoIs are forced to one cell (the original Mask R-CNN / output_half_pixel rule).
    roiW = Math.max(roiW, 1);
    roiH = Math.max(roiH, 1);
  }
  out.startY = startY;
  out.startX = startX;
  out.binH = fround(roiH / PH);
  out.binW = fround(roiW / PW);
  out.gridH = samplingRatio > 0 ? samplingRatio : Math.ceil(out.binH);
  out.gridW = samplingRatio > 0 ? samplingRatio : Math.ceil(out.binW);
}

/**
 * One axis of the bilinear sample grid of one RoI: for sample `i` of bin `p` (index `p * grid + i`),
 * whether it lies on the map, its two cells `lo`/`hi` and their weights `wLo`/`wHi` (float32, as ONNX
 * Runtime computes them).
 */
interface AxisSamples {
  valid: Uint8Array;
  lo: Int32Array;
  hi: Int32Array;
  wLo: Float64Array;
  wHi: Float64Array;
}

function newAxisSamples(n: number): AxisSamples {
  return {
    valid: new Uint8Array(n),
    lo: new Int32Array(n),
    hi: new Int32Array(n),
    wLo: new Float64Array(n),
    wHi: new Float64Array(n),
  };
}

/**
 * The Caffe2 rule along one axis: a coordinate outside `[-1, size]` is invalid (sample = 0); otherwise
 * clamp to `>= 0`, `lo = floor`, and at the last cell `lo = hi = size - 1`.
 */
function fillAxis(
  ax: AxisSamples,
  bins: number,
  grid: number,
  start: number,
  bin: number,
  size: number,
): void {
  let idx = 0;
  for (let p = 0; p < bins; p++) {
    const binStart = fround(start + fround(p * bin));
    for (let i = 0; i < grid; i++, idx++) {
      let v = fround(binStart + fround(fround((i + 0.5) * bin) / grid));
      if (!(v >= -1 && v <= size)) {
        // Off the map: the readers (mergeAxis, writeSamples) skip it, so lo/hi/weights stay stale.
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
      ax.lo[idx] = lo;
      ax.hi[idx] = hi;
      ax.wLo[idx] = fround(1 - l);
      ax.wHi[idx] = l;
    }
  }
}

/**
 * Merges the samples of each bin along one axis into distinct cells with summed weights (the bilinear
 * weights are separable, so a bin's average is `Σ_rows Wy[r] Σ_cols Wx[c] P[r][c]`, and neighbouring
 * samples often share cells). Writes `cell`/`weight` entries for bin `p` at `[first[p], first[p + 1])`.
 * `cellScale` multiplies the cell index (the row or column stride of the NHWC map).
 */
function mergeAxis(
  ax: AxisSamples,
  bins: number,
  grid: number,
  cellScale: number,
  dense: Float64Array,
  first: Int32Array,
  cell: Int32Array,
  weight: Float64Array,
): void {
  let n = 0;
  let idx = 0;
  for (let p = 0; p < bins; p++) {
    first[p] = n;
    let min = 0x7fffffff;
    let max = -1;
    for (let i = 0; i < grid; i++, idx++) {
      if (ax.valid[idx] === 0) continue;
      const lo = ax.lo[idx];
      const hi = ax.hi[idx];
      dense[lo] += ax.wLo[idx];
      dense[hi] += ax.wHi[idx];
      if (lo < min) min = lo;
      if (hi > max) max = hi;
    }
    for (let c = min; c <= max; c++) {
      const w = dense[c];
      if (w !== 0) {
        cell[n] = c * cellScale;
        weight[n] = w;
        n++;
        dense[c] = 0;
      }
    }
  }
  first[bins] = n;
}

/** Reusable scratch buffers of one `roiAlign` call (no allocation per RoI or per bin). */
interface Scratch {
  ys: AxisSamples;
  xs: AxisSamples;
  denseY: Float64Array;
  denseX: Float64Array;
  rowFirst: Int32Array;
  rowCell: Int32Array;
  rowW: Float64Array;
  colFirst: Int32Array;
  colCell: Int32Array;
  colW: Float64Array;
}

/** Distinct cells of one bin along an axis: each sample reads 2 cells, all of them on the map. */
const cellsPerBin = (grid: number, size: number): number => Math.min(2 * grid, size);

function newScratch(PH: number, PW: number, H: number, W: number, maxGrid: number): Scratch {
  return {
    ys: newAxisSamples(PH * maxGrid),
    xs: newAxisSamples(PW * maxGrid),
    denseY: new Float64Array(H),
    denseX: new Float64Array(W),
    rowFirst: new Int32Array(PH + 1),
    rowCell: new Int32Array(PH * cellsPerBin(maxGrid, H)),
    rowW: new Float64Array(PH * cellsPerBin(maxGrid, H)),
    colFirst: new Int32Array(PW + 1),
    colCell: new Int32Array(PW * cellsPerBin(maxGrid, W)),
    colW: new Float64Array(PW * cellsPerBin(maxGrid, W)),
  };
}

/**
 * `avg` tables of one RoI for the `weightedSum` kernel: the taps of each bin are the products of its
 * merged rows and columns (see `mergeAxis`), weight `Wy[r] * Wx[c] / count`. Writes `PH * PW + 1` tap
 * indices at byte `firstAt` and 8-byte taps (cell address, f32 weight) at byte `tapsAt`.
 */
function writeAvgTaps(
  sc: Scratch,
  PH: number,
  PW: number,
  batchAt: number,
  invCount: number,
  i32: Int32Array,
  f32: Float32Array,
  firstAt: number,
  tapsAt: number,
): void {
  const { rowFirst, rowCell, rowW, colFirst, colCell, colW } = sc;
  const first = firstAt >> 2;
  let t = tapsAt >> 2;
  const t0 = t;
  for (let ph = 0; ph < PH; ph++) {
    const r0 = rowFirst[ph];
    const r1 = rowFirst[ph + 1];
    for (let pw = 0; pw < PW; pw++) {
      i32[first + ph * PW + pw] = (t - t0) >> 1;
      const c0 = colFirst[pw];
      const c1 = colFirst[pw + 1];
      for (let r = r0; r < r1; r++) {
        const rowAt = batchAt + rowCell[r];
        const wy = rowW[r] * invCount;
        for (let q = c0; q < c1; q++, t += 2) {
          i32[t] = rowAt + colCell[q];
          f32[t + 1] = wy * colW[q];
        }
      }
    }
  }
  i32[first + PH * PW] = (t - t0) >> 1;
}

/**
 * `max` / `onnx_max` tables of one RoI for the `sampleMax` kernel (a max does not factorise, so every
 * sample is listed): per sample the addresses of its 4 cells and their float32 weights, as ONNX
 * Runtime's pre-calculation has them. A sample off the map reads the zero block with weight 0.
 */
function writeSamples(
  sc: Scratch,
  PH: number,
  PW: number,
  gridH: number,
  gridW: number,
  batchAt: number,
  rowBytes: number,
  cellBytes: number,
  i32: Int32Array,
  f32: Float32Array,
  samplesAt: number,
): void {
  const { ys, xs } = sc;
  let s = samplesAt >> 2;
  for (let ph = 0; ph < PH; ph++) {
    for (let pw = 0; pw < PW; pw++) {
      for (let iy = 0; iy < gridH; iy++) {
        const yi = ph * gridH + iy;
        const rowLo = batchAt + ys.lo[yi] * rowBytes;
        const rowHi = batchAt + ys.hi[yi] * rowBytes;
        const hy = ys.wLo[yi];
        const ly = ys.wHi[yi];
        for (let ix = 0; ix < gridW; ix++, s += 8) {
          const xi = pw * gridW + ix;
          if (ys.valid[yi] === 0 || xs.valid[xi] === 0) {
            i32.fill(0, s, s + 4);
            f32.fill(0, s + 4, s + 8);
            continue;
          }
          const colLo = xs.lo[xi] * cellBytes;
          const colHi = xs.hi[xi] * cellBytes;
          const hx = xs.wLo[xi];
          const lx = xs.wHi[xi];
          i32[s] = rowLo + colLo;
          i32[s + 1] = rowLo + colHi;
          i32[s + 2] = rowHi + colLo;
          i32[s + 3] = rowHi + colHi;
          // Products of two float32 values are exact in float64; the store rounds them once, like fround.
          f32[s + 4] = hy * hx;
          f32[s + 5] = hy * lx;
          f32[s + 6] = ly * hx;
          f32[s + 7] = ly * lx;
        }
      }
    }
  }
}

/**
 * RoI Align (Mask R-CNN): bilinear samples on a regular grid in each of `PH × PW` bins of every box,
 * reduced per bin by `mode`. No quantization of the box.
 *
 * Shapes: `input` `[N, C, H, W]` (NCHW or NHWC), `boxes` `[K, 5]` rows `(b, x1, y1, x2, y2)` in image
 * pixels with `0 <= b < N`, result `[K, C, PH, PW]` (float32, `outputLayout`, default NCHW). `K = 0`
 * gives `[0, C, PH, PW]`. Boxes partly or wholly off the map are valid: samples outside contribute 0.
 *
 * Per box, in float32 like ONNX Runtime (`s = spatialScale`, `off = aligned ? 0.5 : 0`):
 * ```
 * sx = x1*s - off, sy = y1*s - off, rw = x2*s - off - sx, rh = y2*s - off - sy   (no rounding)
 * aligned=false: rw = max(rw, 1), rh = max(rh, 1)
 * bw = rw / PW, bh = rh / PH; gh = samplingRatio > 0 ? samplingRatio : ceil(bh) (gw likewise)
 * sample (iy, ix) of bin (ph, pw): y = sy + ph*bh + (iy + 0.5)*bh/gh,  x = sx + pw*bw + (ix + 0.5)*bw/gw
 * avg: mean of the gh*gw samples (divisor max(gh*gw, 1)); an empty adaptive grid gives 0
 * ```
 * A sample at `(y, x)` follows the Caffe2 rule: 0 if `y < -1 || y > H || x < -1 || x > W`; otherwise
 * clamp to `>= 0` and interpolate the 4 neighbouring cells, the last row/column repeating at the edge.
 *
 * Worked example (the half-pixel offset): a 4×4 map with `X[y][x] = 4y + x`, `spatialScale = 1`,
 * `outputSize = 1`, `samplingRatio = 1`, box `(1, 1, 3, 3)` covers pixels 1..2. With `aligned = true`
 * the single sample is at `(1 - 0.5) + 2 * 0.5 = 1.5` on both axes: the centre of cells 1..2, value
 * `4 * 1.5 + 1.5 = 7.5`, the exact mean of those 4 cells. With `aligned = false` it is at `1 + 1 = 2`:
 * value 10, half a pixel down-right of the box centre.
 *
 * How it runs: JS computes each RoI's float32 geometry and sample tables (the cheap, branchy part,
 * where bit-exact agreement with ONNX Runtime is decided); the channel loops (all the multiply-adds)
 * run in hand-written WebAssembly SIMD (`wasm/roi_kernels.wat`, `f32x4`, 16 channels per pass) over an
 * NHWC copy of the map, because plain JS spends ~9 instructions per multiply-add on bounds checks and
 * scalar code. `avg` merges each bin's samples into distinct cells first (bilinear weights are
 * separable, neighbouring samples share cells) and sums the weighted cells in float32, like ONNX
 * Runtime; `max` / `onnx_max` visit every sample. An NCHW result is transposed per RoI in 4×4 SIMD
 * blocks. The result is a fresh array (copied out of the WebAssembly memory).
 *
 * @param input feature map `[N, C, H, W]`; must be finite (see `assertFiniteFeatures`).
 * @param boxes `[K, 5]` canonical boxes in image pixels (see `toCanonicalBoxes`).
 * @param params `spatialScale` (required), `outputSize` = 7, `samplingRatio` = 2 (`<= 0` adaptive, at
 *   most 64 per axis), `aligned` = true, `mode` = `'avg'`, `outputLayout` = `'NCHW'`, `shouldStop`.
 * @returns pooled `[K, C, PH, PW]`.
 * @throws InvalidInputError naming the field (`features.shape`, `boxes[3][0]`, `samplingRatio`, ...);
 *   CancelledError when `shouldStop` returns true.
 */
export function roiAlign(input: FeatureMap, boxes: Boxes, params: RoiAlignParams): Pooled {
  const cfg = resolveAlignParams(params);
  assertFeatureShape(input);
  const [N, C, H, W] = input.shape;
  assertBoxes(boxes, N);
  assertScaledBoxes(boxes, cfg.scale);
  const { PH, PW, scale, samplingRatio, aligned, mode, layout } = cfg;
  const K = boxes.count;
  const shouldStop = params.shouldStop;

  // Pass 1: grid sizes (the cost guard refuses before any work is done).
  const geo: RoiGeometry = { startY: 0, startX: 0, binH: 0, binW: 0, gridH: 0, gridW: 0 };
  let maxGrid = 1;
  let maxSamples = 1;
  for (let k = 0; k < K; k++) {
    roiGeometry(boxes.data, k, scale, PH, PW, samplingRatio, aligned, geo);
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
    if (geo.gridH * geo.gridW > maxSamples) maxSamples = geo.gridH * geo.gridW;
  }

  const out = resultArray(params.into, K * C * PH * PW);
  const shape: [number, number, number, number] = [K, C, PH, PW];
  if (K === 0) return { data: out, shape, layout };

  const sc = newScratch(PH, PW, H, W, maxGrid);
  const bins = PH * PW;
  const firstBytes = align16(4 * (bins + 1));
  const tableBytes =
    mode === 'avg'
      ? firstBytes + 8 * PH * cellsPerBin(maxGrid, H) * PW * cellsPerBin(maxGrid, W)
      : 32 * bins * maxSamples;
  const ws = new Workspace(input, tableBytes, bins, K, layout);
  const { kernels, f32, i32, cellBytes, rowBytes } = ws;

  for (let k0 = 0; k0 < K; k0 += ws.roisPerChunk) {
    const k1 = Math.min(K, k0 + ws.roisPerChunk);
    for (let k = k0; k < k1; k++) {
      if (shouldStop?.()) throw new CancelledError();
      roiGeometry(boxes.data, k, scale, PH, PW, samplingRatio, aligned, geo);
      const { gridH, gridW } = geo;
      fillAxis(sc.ys, PH, gridH, geo.startY, geo.binH, H);
      fillAxis(sc.xs, PW, gridW, geo.startX, geo.binW, W);
      const batchAt = ws.imageAt(boxes.data[5 * k]);
      if (mode === 'avg') {
        mergeAxis(sc.ys, PH, gridH, rowBytes, sc.denseY, sc.rowFirst, sc.rowCell, sc.rowW);
        mergeAxis(sc.xs, PW, gridW, cellBytes, sc.denseX, sc.colFirst, sc.colCell, sc.colW);
        const invCount = 1 / Math.max(gridH * gridW, 1);
        const tapsAt = ws.tables + firstBytes;
        writeAvgTaps(sc, PH, PW, batchAt, invCount, i32, f32, ws.tables, tapsAt);
        kernels.weightedSum(bins, ws.tables, tapsAt, ws.target(k - k0), 4 * C, C);
      } else {
        writeSamples(sc, PH, PW, gridH, gridW, batchAt, rowBytes, cellBytes, i32, f32, ws.tables);
        const onnx = mode === 'onnx_max' ? 1 : 0;
        kernels.sampleMax(bins, gridH * gridW, ws.tables, ws.target(k - k0), 4 * C, C, onnx);
      }
      ws.finish(k - k0);
    }
    ws.copyOut(out, k0, k1);
  }
  return { data: out, shape, layout };
}
