/**
 * Position-sensitive RoI Pool (Dai, Li, He, Sun, "R-FCN: Object Detection via Region-based Fully
 * Convolutional Networks", NIPS 2016, https://arxiv.org/abs/1605.06409), as torchvision's `ps_roi_pool`.
 */
import { CancelledError } from '../errors.js';
import { assertBoxes, assertScaledBoxes } from './boxes.js';
import { assertFeatureShape } from './features.js';
import { assertParamsObject, resolveLayout, resolveOutputSize, resolveSpatialScale } from './params.js';
import { psChannelsOut, stridesOf } from './ps_roi_align.js';
import { poolBinEdges, poolCells } from './roi_pool.js';
import type { Boxes, FeatureMap, Layout, Pooled } from './types.js';

export interface PsRoiPoolParams {
  /** Feature coordinates = image coordinates × `spatialScale` (= 1 / stride, e.g. 0.0625). Required. */
  spatialScale: number;
  /** Output bins `PH × PW`: a number for a square grid or `[PH, PW]`. Default 7. `C` must be a multiple of `PH·PW`. */
  outputSize?: number | readonly [number, number];
  /** Memory layout of the result. Default `'NCHW'`. */
  outputLayout?: Layout;
  /**
   * Called before each box; returning true stops the call with a `CancelledError` (the worker uses it
   * for clients that went away and tasks over their time limit), as in `roiAlign`. Default: never stop.
   */
  shouldStop?: () => boolean;
}

const fround = Math.fround;

/**
 * Position-sensitive RoI Pool (R-FCN): quantize each box to the feature grid, split it into `PH × PW`
 * bins of whole cells, and **average** each bin over its own input channel: bin `(ph, pw)` of output
 * channel `c` reads channel `(c·PH + ph)·PW + pw` only. Exactly torchvision 0.14's `ps_roi_pool`.
 *
 * Shapes: `input` `[N, C, H, W]` (NCHW or NHWC) with `C = C_out·PH·PW`, `boxes` `[K, 5]` rows
 * `(b, x1, y1, x2, y2)` in image pixels with `0 <= b < N`, result `[K, C_out, PH, PW]` (float32,
 * `outputLayout`, default NCHW). `K = 0` gives `[0, C_out, PH, PW]`.
 *
 * ```
 * sx = cRound(x1*s), sy = cRound(y1*s), ex = cRound(x2*s), ey = cRound(y2*s)    (float32 products)
 * rw = max(ex - sx, 1), rh = max(ey - sy, 1)                 (no +1: unlike roiPool, the end is exclusive)
 * bw = rw / PW, bh = rh / PH                                                   (float32)
 * bin (ph, pw): rows [floor(ph*bh) + sy, ceil((ph+1)*bh) + sy), cols [floor(pw*bw) + sx, ceil((pw+1)*bw) + sx)
 *               each end clipped to [0, H - 1] (rows) and [0, W - 1] (cols)
 * Y = the mean of the bin's cells (float32 sum in row-major order, / cell count); an empty bin gives 0
 * ```
 * `cRound` is C's `round`, half away from zero, on the float32 product (torchvision computes
 * `offset_rois[1] * spatial_scale` in float for float input). The clip to `H - 1` / `W - 1` means
 * **the last row and column of the map are never read**: torchvision does that, R-FCN models were
 * trained with it, so we match it (a box `(0, 0, 6, 6)` on a 6×6 map at scale 1 averages cells 0..4).
 *
 * Worked example: a 4×4 map with `C = 4` (`C_out = 1`), channel 0 the ramp `4y + x`, channels 1..3
 * the constants 10, 20, 30; `spatialScale = 1`, `outputSize = 2`, box `(0, 0, 4, 4)`: `rw = rh = 4`,
 * bins of 2 cells: rows/cols `[0, 2)` and `[2, 4)` → clipped to `[2, 3)`. Bin (0, 0) averages cells
 * (0..1, 0..1) of channel 0: `(0 + 1 + 4 + 5) / 4 = 2.5`; bin (0, 1) channel 1 over cells (0..1, 2): 10;
 * bin (1, 0): 20; bin (1, 1): 30. Output `[[2.5, 10], [20, 30]]`. The box `(3, 3, 4, 4)` (the last
 * cell): `rw = rh = 1`, every bin is `[3, 4)` clipped to `[3, 3)`, empty: output all 0.
 *
 * How it runs: plain loops; each output value reads one channel, so the work is `K·C·(cells per bin)`.
 *
 * @param input feature map `[N, C, H, W]`, `C` a multiple of `PH·PW`; must be finite (see `assertFiniteFeatures`).
 * @param boxes `[K, 5]` canonical boxes in image pixels.
 * @param params `spatialScale` (required), `outputSize` = 7, `outputLayout` = `'NCHW'`, `shouldStop`
 *   (checked before each box).
 * @returns pooled `[K, C / (PH·PW), PH, PW]`.
 * @throws InvalidInputError naming the field (`features.shape` when `C` is not a multiple of `PH·PW`,
 *   `boxes[3][0]`, `outputSize`, ...); CancelledError when `shouldStop` returns true.
 */
export function psRoiPool(input: FeatureMap, boxes: Boxes, params: PsRoiPoolParams): Pooled {
  assertParamsObject(params, 'PS RoI Pool');
  const [PH, PW] = resolveOutputSize(params.outputSize);
  const scale = resolveSpatialScale(params.spatialScale);
  const layout = resolveLayout(params.outputLayout);
  assertFeatureShape(input);
  const [N, C, H, W] = input.shape;
  const Cout = psChannelsOut(C, PH, PW);
  assertBoxes(boxes, N);
  assertScaledBoxes(boxes, scale);
  const K = boxes.count;
  const shape: [number, number, number, number] = [K, Cout, PH, PW];
  const out = new Float32Array(K * Cout * PH * PW);
  if (K === 0) return { data: out, shape, layout };

  const src = input.data;
  const is = stridesOf(input.shape, input.layout);
  const os = stridesOf(shape, layout);
  const chanStep = PH * PW * is.c;
  const rowStart = new Int32Array(PH);
  const rowEnd = new Int32Array(PH);
  const colStart = new Int32Array(PW);
  const colEnd = new Int32Array(PW);
  const d = boxes.data;

  for (let k = 0; k < K; k++) {
    if (params.shouldStop?.()) throw new CancelledError();
    const { sx, sy, ex, ey } = poolCells(d[5 * k + 1], d[5 * k + 2], d[5 * k + 3], d[5 * k + 4], scale);
    // torchvision clips every bin edge to [0, size - 1]: hence `size - 1` as the clip bound.
    poolBinEdges(PH, sy, Math.max(ey - sy, 1), H - 1, rowStart, rowEnd);
    poolBinEdges(PW, sx, Math.max(ex - sx, 1), W - 1, colStart, colEnd);
    const batchAt = d[5 * k] * is.n;
    for (let ph = 0; ph < PH; ph++) {
      const r0 = rowStart[ph];
      const r1 = rowEnd[ph];
      for (let pw = 0; pw < PW; pw++) {
        const c0 = colStart[pw];
        const c1 = colEnd[pw];
        // An empty bin keeps the 0 the output starts with.
        if (r1 <= r0 || c1 <= c0) continue;
        const area = (r1 - r0) * (c1 - c0);
        let inAt = batchAt + (ph * PW + pw) * is.c;
        let outAt = k * os.n + ph * os.y + pw * os.x;
        for (let c = 0; c < Cout; c++, inAt += chanStep, outAt += os.c) {
          // A float32 sum in torchvision's order (rows, then columns), then one float32 division.
          let sum = 0;
          for (let y = r0; y < r1; y++) {
            const rowAt = inAt + y * is.y;
            for (let x = c0; x < c1; x++) sum = fround(sum + src[rowAt + x * is.x]);
          }
          out[outAt] = sum / area;
        }
      }
    }
  }
  return { data: out, shape, layout };
}
