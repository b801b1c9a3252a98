/**
 * RoI Pool (Girshick, "Fast R-CNN", ICCV 2015, https://arxiv.org/abs/1504.08083).
 */
import { InvalidInputError } from '../errors.js';
import { assertBoxes, cRound } from './boxes.js';
import { assertFeatureShape, toLayout } from './features.js';
import { resolveLayout, resolveOutputSize, resolveSpatialScale } from './params.js';
import type { Boxes, FeatureMap, Layout, Pooled } from './types.js';

export interface RoiPoolParams {
  /** Feature coordinates = image coordinates × `spatialScale` (= 1 / stride, e.g. 0.0625). Required. */
  spatialScale: number;
  /** Output bins `PH × PW`: a number for a square grid or `[PH, PW]`. Default 7. */
  outputSize?: number | readonly [number, number];
  /** Memory layout of the result. Default `'NCHW'`. */
  outputLayout?: Layout;
}

const fround = Math.fround;

/**
 * The quantized feature-cell box of RoI Pool: `cRound(v * s)` on each coordinate, computed in float32
 * like Caffe and ONNX Runtime so that `.5` ties round the same way. The end cell is inclusive.
 */
export function poolCells(
  x1: number,
  y1: number,
  x2: number,
  y2: number,
  spatialScale: number,
): { sx: number; sy: number; ex: number; ey: number } {
  const s = fround(spatialScale);
  return {
    sx: cRound(fround(fround(x1) * s)),
    sy: cRound(fround(fround(y1) * s)),
    ex: cRound(fround(fround(x2) * s)),
    ey: cRound(fround(fround(y2) * s)),
  };
}

/**
 * Bin edges along one axis: bin `p` covers cells `[start[p], end[p])`, already offset by the RoI start
 * and clipped to `[0, size)`. Float32 like the peers: `floor(p * bin)`, `ceil((p + 1) * bin)`.
 */
function binEdges(
  bins: number,
  roiStart: number,
  roiSize: number,
  size: number,
  start: Int32Array,
  end: Int32Array,
): void {
  const bin = fround(roiSize / bins);
  for (let p = 0; p < bins; p++) {
    const a = Math.floor(fround(p * bin)) + roiStart;
    const b = Math.ceil(fround((p + 1) * bin)) + roiStart;
    start[p] = Math.min(Math.max(a, 0), size);
    end[p] = Math.min(Math.max(b, 0), size);
  }
}

interface BinEdges {
  rowStart: Int32Array;
  rowEnd: Int32Array;
  colStart: Int32Array;
  colEnd: Int32Array;
}

/**
 * The bins of one RoI. Channels are contiguous (NHWC), so each pass over `acc` folds in up to 4 cells
 * of a bin row.
 *
 * Why the odd-looking max: in V8 both `Math.max` and `a > b ? a : b` compile to branches, and on
 * feature values the branch is a coin flip (a mispredict costs more than the rest of the work). The
 * select `s * b + (1 - s) * a` with `s = +(b > a)` is branch-free and exact for finite values (one
 * product is the value times 1, the other times 0; adding ±0 changes nothing but the sign of a zero).
 */
function poolRoi(
  X: Float32Array,
  C: number,
  W: number,
  batchOff: number,
  PH: number,
  PW: number,
  bins: BinEdges,
  acc: Float64Array,
  out: Float32Array,
  outBase: number,
  binStride: number,
  os: number,
): void {
  const { rowStart, rowEnd, colStart, colEnd } = bins;
  for (let ph = 0; ph < PH; ph++) {
    const y0 = rowStart[ph];
    const y1 = rowEnd[ph];
    for (let pw = 0; pw < PW; pw++) {
      const x0 = colStart[pw];
      const x1 = colEnd[pw];
      const o = outBase + (ph * PW + pw) * binStride;
      if (y1 <= y0 || x1 <= x0) {
        for (let c = 0, oi = o; c < C; c++, oi += os) out[oi] = 0;
        continue;
      }
      const seed = (batchOff + y0 * W + x0) * C;
      for (let c = 0; c < C; c++) acc[c] = X[seed + c];
      for (let y = y0; y < y1; y++) {
        const row = (batchOff + y * W) * C;
        let x = y === y0 ? x0 + 1 : x0;
        for (; x + 4 <= x1; x += 4) {
          const p0 = row + x * C;
          const p1 = p0 + C;
          const p2 = p1 + C;
          const p3 = p2 + C;
          for (let c = 0; c < C; c++) {
            const v0 = X[p0 + c];
            const v1 = X[p1 + c];
            const v2 = X[p2 + c];
            const v3 = X[p3 + c];
            let s = +(v1 > v0);
            const m01 = s * v1 + (1 - s) * v0;
            s = +(v3 > v2);
            const m23 = s * v3 + (1 - s) * v2;
            s = +(m23 > m01);
            const m = s * m23 + (1 - s) * m01;
            const a = acc[c];
            s = +(m > a);
            acc[c] = s * m + (1 - s) * a;
          }
        }
        for (; x + 2 <= x1; x += 2) {
          const p0 = row + x * C;
          const p1 = p0 + C;
          for (let c = 0; c < C; c++) {
            const v0 = X[p0 + c];
            const v1 = X[p1 + c];
            let s = +(v1 > v0);
            const m = s * v1 + (1 - s) * v0;
            const a = acc[c];
            s = +(m > a);
            acc[c] = s * m + (1 - s) * a;
          }
        }
        if (x < x1) {
          const p0 = row + x * C;
          for (let c = 0; c < C; c++) {
            const v = X[p0 + c];
            const a = acc[c];
            const s = +(v > a);
            acc[c] = s * v + (1 - s) * a;
          }
        }
      }
      for (let c = 0, oi = o; c < C; c++, oi += os) out[oi] = acc[c];
    }
  }
}

/**
 * RoI Pool (Fast R-CNN): quantize each box to the feature grid, split it into `PH × PW` bins of whole
 * cells, and take the maximum of each bin.
 *
 * Shapes: `input` `[N, C, H, W]` (NCHW or NHWC), `boxes` `[K, 5]` rows `(b, x1, y1, x2, y2)` in image
 * pixels with `0 <= b < N`, result `[K, C, PH, PW]` (float32, `outputLayout`, default NCHW).
 *
 * ```
 * sx = cRound(x1*s), sy = cRound(y1*s), ex = cRound(x2*s), ey = cRound(y2*s)     (float32 products)
 * rw = max(ex - sx + 1, 1), rh = max(ey - sy + 1, 1)                           (end cell inclusive)
 * bw = rw / PW, bh = rh / PH                                                    (float32)
 * bin (ph, pw): rows [floor(ph*bh) + sy, ceil((ph+1)*bh) + sy), cols [floor(pw*bw) + sx, ceil((pw+1)*bw) + sx)
 *               clipped to [0, H) × [0, W); neighbouring bins may share a cell; an empty bin gives 0
 * ```
 * `cRound` is C's `round`, half away from zero. Worked example: stride 32 (`s = 1/32`), `x2 = 496`:
 * `496 / 32 = 15.5` → cell 16 (not 15), so the box reaches pixel 544; `x1 = -48`: `-1.5` → `-2`.
 *
 * Equals ONNX Runtime's `MaxRoiPool` bit for bit (checked on random inputs in test/oracle).
 *
 * @param input feature map `[N, C, H, W]`; must be finite (see `assertFiniteFeatures`).
 * @param boxes `[K, 5]` canonical boxes in image pixels.
 * @param params `spatialScale` (required), `outputSize` = 7, `outputLayout` = `'NCHW'`.
 * @returns pooled `[K, C, PH, PW]`.
 */
export function roiPool(input: FeatureMap, boxes: Boxes, params: RoiPoolParams): Pooled {
  return roiPoolWith(input, boxes, params, 'auto');
}

/**
 * `roiPool` with the strategy forced (for tests and the bench; both give identical results):
 * `'direct'` scans every cell of every bin; `'tables'` first builds max tables over 2^a × 2^b blocks
 * (a, b <= 2) and answers each bin with a few overlapping block lookups; `'auto'` picks the cheaper.
 */
export function roiPoolWith(
  input: FeatureMap,
  boxes: Boxes,
  params: RoiPoolParams,
  strategy: 'auto' | 'direct' | 'tables',
): Pooled {
  if (params === null || typeof params !== 'object') {
    throw new InvalidInputError('RoI Pool parameters are missing', 'params', 'an object with spatialScale');
  }
  const [PH, PW] = resolveOutputSize(params.outputSize);
  const scale = resolveSpatialScale(params.spatialScale);
  const layout = resolveLayout(params.outputLayout);
  assertFeatureShape(input);
  const [N, C, H, W] = input.shape;
  assertBoxes(boxes, N);
  const K = boxes.count;
  const out = new Float32Array(K * C * PH * PW);
  const shape: [number, number, number, number] = [K, C, PH, PW];
  if (K === 0) return { data: out, shape, layout };

  // Pass 1: the bin edges of every RoI, the cells a direct scan would visit, the largest bin.
  const rowStart = new Int32Array(K * PH);
  const rowEnd = new Int32Array(K * PH);
  const colStart = new Int32Array(K * PW);
  const colEnd = new Int32Array(K * PW);
  const d = boxes.data;
  let directCells = 0;
  let maxBinH = 1;
  let maxBinW = 1;
  for (let k = 0; k < K; k++) {
    const { sx, sy, ex, ey } = poolCells(d[5 * k + 1], d[5 * k + 2], d[5 * k + 3], d[5 * k + 4], scale);
    binEdges(PH, sy, Math.max(ey - sy + 1, 1), H, rowStart.subarray(k * PH), rowEnd.subarray(k * PH));
    binEdges(PW, sx, Math.max(ex - sx + 1, 1), W, colStart.subarray(k * PW), colEnd.subarray(k * PW));
    let rows = 0;
    let cols = 0;
    for (let p = k * PH; p < (k + 1) * PH; p++) {
      const h = Math.max(rowEnd[p] - rowStart[p], 0);
      rows += h;
      if (h > maxBinH) maxBinH = h;
    }
    for (let p = k * PW; p < (k + 1) * PW; p++) {
      const w = Math.max(colEnd[p] - colStart[p], 0);
      cols += w;
      if (w > maxBinW) maxBinW = w;
    }
    directCells += rows * cols;
  }

  const X = toLayout(input, 'NHWC').data;
  const os = layout === 'NCHW' ? PH * PW : 1;
  const binStride = layout === 'NCHW' ? 1 : C;
  const acc = new Float64Array(C);
  const levelX = Math.min(Math.floor(Math.log2(maxBinW)), MAX_TABLE_LEVEL);
  const levelY = Math.min(Math.floor(Math.log2(maxBinH)), MAX_TABLE_LEVEL);
  const tableCount = (levelX + 1) * (levelY + 1) - 1;
  const mapSize = N * H * W;
  const useTables =
    strategy === 'tables' ||
    (strategy === 'auto' &&
      tableCount > 0 &&
      tableCount * mapSize * C * 4 <= MAX_TABLE_BYTES &&
      // Building costs one max per table value; a lookup bin costs ~4 instead of all its cells.
      tableCount * mapSize + 4 * K * PH * PW < 0.6 * directCells);

  if (!useTables) {
    for (let k = 0; k < K; k++) {
      const bins = {
        rowStart: rowStart.subarray(k * PH),
        rowEnd: rowEnd.subarray(k * PH),
        colStart: colStart.subarray(k * PW),
        colEnd: colEnd.subarray(k * PW),
      };
      poolRoi(X, C, W, d[5 * k] * H * W, PH, PW, bins, acc, out, k * C * PH * PW, binStride, os);
    }
    return { data: out, shape, layout };
  }

  const tables = buildMaxTables(X, N, H, W, C, levelX, levelY);
  let offsCap = 16;
  let offsList = new Int32Array(offsCap);
  for (let k = 0; k < K; k++) {
    const batchOff = d[5 * k] * H * W;
    const outBase = k * C * PH * PW;
    for (let ph = 0; ph < PH; ph++) {
      const y0 = rowStart[k * PH + ph];
      const y1 = rowEnd[k * PH + ph];
      for (let pw = 0; pw < PW; pw++) {
        const x0 = colStart[k * PW + pw];
        const x1 = colEnd[k * PW + pw];
        const o = outBase + (ph * PW + pw) * binStride;
        if (y1 <= y0 || x1 <= x0) {
          for (let c = 0, oi = o; c < C; c++, oi += os) out[oi] = 0;
          continue;
        }
        const ly = Math.min(Math.floor(Math.log2(y1 - y0)), levelY);
        const lx = Math.min(Math.floor(Math.log2(x1 - x0)), levelX);
        const bh = 1 << ly;
        const bw = 1 << lx;
        const ny = Math.ceil((y1 - y0) / bh);
        const nx = Math.ceil((x1 - x0) / bw);
        let n = ((ny * nx + 3) >> 2) << 2;
        if (n > offsCap) {
          offsCap = n;
          offsList = new Int32Array(n);
        }
        // Overlapping blocks: starts y0, y0 + bh, ..., the last one flush with the bin's end.
        let t = 0;
        for (let iy = 0; iy < ny; iy++) {
          const by = iy === ny - 1 ? y1 - bh : y0 + iy * bh;
          for (let ix = 0; ix < nx; ix++) {
            const bx = ix === nx - 1 ? x1 - bw : x0 + ix * bw;
            offsList[t++] = (batchOff + by * W + bx) * C;
          }
        }
        // Pad with a repeat of the first block: max is idempotent.
        for (; t < n; t++) offsList[t] = offsList[0];
        n = t;
        maxOverBlocks(tables[ly][lx], C, offsList, n, acc, out, o, os);
      }
    }
  }
  return { data: out, shape, layout };
}

/** Largest block side of the max tables, as a power of 2 (blocks up to 4 × 4 cells). */
const MAX_TABLE_LEVEL = 2;
/** Memory cap for the max tables of one call; above it RoI Pool scans cells directly. */
const MAX_TABLE_BYTES = 96 * 1024 * 1024;

/**
 * `tables[ly][lx]` (NHWC like `X`): the max over the block of `2^ly × 2^lx` cells starting at each
 * cell, clipped at the map's far edges. `tables[0][0]` is `X` itself.
 */
function buildMaxTables(
  X: Float32Array,
  N: number,
  H: number,
  W: number,
  C: number,
  levelX: number,
  levelY: number,
): Float32Array[][] {
  const tables: Float32Array[][] = [];
  for (let ly = 0; ly <= levelY; ly++) {
    tables.push([]);
    for (let lx = 0; lx <= levelX; lx++) {
      if (ly === 0 && lx === 0) {
        tables[0].push(X);
      } else if (ly === 0) {
        tables[0].push(shiftMax(tables[0][lx - 1], N, H, W, C, 0, 1 << (lx - 1)));
      } else {
        tables[ly].push(shiftMax(tables[ly - 1][lx], N, H, W, C, 1 << (ly - 1), 0));
      }
    }
  }
  return tables;
}

/** `dst[n][y][x] = max(src[n][y][x], src[n][y + dy][x + dx])` where that cell exists, else `src[n][y][x]`. */
function shiftMax(
  src: Float32Array,
  N: number,
  H: number,
  W: number,
  C: number,
  dy: number,
  dx: number,
): Float32Array {
  const dst = new Float32Array(src.length);
  const shift = (dy * W + dx) * C;
  for (let n = 0; n < N; n++) {
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        const p = ((n * H + y) * W + x) * C;
        if (y + dy >= H || x + dx >= W) {
          for (let c = 0; c < C; c++) dst[p + c] = src[p + c];
          continue;
        }
        const q = p + shift;
        for (let c = 0; c < C; c++) {
          const a = src[p + c];
          const b = src[q + c];
          const s = +(b > a);
          dst[p + c] = s * b + (1 - s) * a;
        }
      }
    }
  }
  return dst;
}

/** `out[o + c * os] = max over blocks t of T[offs[t] + c]`; `n` is a multiple of 4. Branch-free max. */
function maxOverBlocks(
  T: Float32Array,
  C: number,
  offs: Int32Array,
  n: number,
  acc: Float64Array,
  out: Float32Array,
  o: number,
  os: number,
): void {
  for (let t = 0; t < n; t += 4) {
    const p0 = offs[t];
    const p1 = offs[t + 1];
    const p2 = offs[t + 2];
    const p3 = offs[t + 3];
    const first = t === 0;
    const last = t + 4 === n;
    for (let c = 0, oi = o; c < C; c++, oi += os) {
      const v0 = T[p0 + c];
      const v1 = T[p1 + c];
      const v2 = T[p2 + c];
      const v3 = T[p3 + c];
      let s = +(v1 > v0);
      const m01 = s * v1 + (1 - s) * v0;
      s = +(v3 > v2);
      const m23 = s * v3 + (1 - s) * v2;
      s = +(m23 > m01);
      let m = s * m23 + (1 - s) * m01;
      if (!first) {
        const a = acc[c];
        s = +(a > m);
        m = s * a + (1 - s) * m;
      }
      if (last) out[oi] = m;
      else acc[c] = m;
    }
  }
}
