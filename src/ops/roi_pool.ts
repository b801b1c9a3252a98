/**
 * RoI Pool (Girshick, "Fast R-CNN", ICCV 2015, https://arxiv.org/abs/1504.08083).
 */
import { CancelledError } from '../errors.js';
import { assertBoxes, assertScaledBoxes, cRound } from './boxes.js';
import { assertFeatureShape } from './features.js';
import {
  assertParamsObject,
  resolveLayout,
  resolveOutputSize,
  resolveSpatialScale,
  resultArray,
} from './params.js';
import type { Boxes, FeatureMap, Layout, Pooled } from './types.js';
import { Workspace } from './wasm/workspace.js';

export interface RoiPoolParams {
  /** Feature coordinates = image coordinates × `spatialScale` (= 1 / stride, e.g. 0.0625). Required. */
  spatialScale: number;
  /** Output bins `PH × PW`: a number for a square grid or `[PH, PW]`. Default 7. */
  outputSize?: number | readonly [number, number];
  /** Memory layout of the result. Default `'NCHW'`. */
  outputLayout?: Layout;
  /** Called before each box; true stops the call with a `CancelledError`. Default: never stop. */
  shouldStop?: () => boolean;
  /**
   * Write the result here instead of into a fresh array: exactly `K·C·PH·PW` floats, e.g. one range of
   * a larger output shared between threads (`src/runtime/split.ts`). Default: a fresh array.
   */
  into?: Float32Array;
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
export function poolBinEdges(
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
 * How it runs: JS computes each RoI's bins (float32, as above) as rectangles of cells; the max over
 * each rectangle runs in hand-written WebAssembly SIMD (`wasm/roi_kernels.wat`, `f32x4.pmax`, 16
 * channels per pass, ties keep the earlier cell like the peers) over an NHWC copy of the map, because
 * a JS max is a mispredicted branch or several instructions per value. An NCHW result is transposed
 * per RoI in 4×4 SIMD blocks; the result is a fresh array.
 *
 * @param input feature map `[N, C, H, W]`; must be finite (see `assertFiniteFeatures`).
 * @param boxes `[K, 5]` canonical boxes in image pixels.
 * @param params `spatialScale` (required), `outputSize` = 7, `outputLayout` = `'NCHW'`, `shouldStop`.
 * @returns pooled `[K, C, PH, PW]`.
 * @throws CancelledError when `shouldStop` returns true.
 */
export function roiPool(input: FeatureMap, boxes: Boxes, params: RoiPoolParams): Pooled {
  assertParamsObject(params, 'RoI Pool');
  const [PH, PW] = resolveOutputSize(params.outputSize);
  const scale = resolveSpatialScale(params.spatialScale);
  const layout = resolveLayout(params.outputLayout);
  assertFeatureShape(input);
  const [N, C, H, W] = input.shape;
  assertBoxes(boxes, N);
  assertScaledBoxes(boxes, scale);
  const K = boxes.count;
  const out = resultArray(params.into, K * C * PH * PW);
  const shape: [number, number, number, number] = [K, C, PH, PW];
  if (K === 0) return { data: out, shape, layout };

  const bins = PH * PW;
  const ws = new Workspace(input, 12 * bins, bins, K, layout);
  const { kernels, i32, cellBytes, rowBytes } = ws;
  const rowStart = new Int32Array(PH);
  const rowEnd = new Int32Array(PH);
  const colStart = new Int32Array(PW);
  const colEnd = new Int32Array(PW);
  const d = boxes.data;
  const rects = ws.tables >> 2;

  for (let k0 = 0; k0 < K; k0 += ws.roisPerChunk) {
    const k1 = Math.min(K, k0 + ws.roisPerChunk);
    for (let k = k0; k < k1; k++) {
      if (params.shouldStop?.()) throw new CancelledError();
      const { sx, sy, ex, ey } = poolCells(d[5 * k + 1], d[5 * k + 2], d[5 * k + 3], d[5 * k + 4], scale);
      poolBinEdges(PH, sy, Math.max(ey - sy + 1, 1), H, rowStart, rowEnd);
      poolBinEdges(PW, sx, Math.max(ex - sx + 1, 1), W, colStart, colEnd);
      const batchAt = ws.imageAt(d[5 * k]);
      // One rectangle of cells per bin: top-left address, rows, columns (0 rows: empty bin → 0).
      for (let ph = 0, r = rects; ph < PH; ph++) {
        const rows = Math.max(rowEnd[ph] - rowStart[ph], 0);
        for (let pw = 0; pw < PW; pw++, r += 3) {
          const cols = Math.max(colEnd[pw] - colStart[pw], 0);
          i32[r] = batchAt + rowStart[ph] * rowBytes + colStart[pw] * cellBytes;
          i32[r + 1] = cols === 0 ? 0 : rows;
          i32[r + 2] = cols;
        }
      }
      kernels.rectMax(bins, ws.tables, rowBytes, cellBytes, ws.target(k - k0), 4 * C, C);
      ws.finish(k - k0);
    }
    ws.copyOut(out, k0, k1);
  }
  return { data: out, shape, layout };
}
