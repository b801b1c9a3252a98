/**
 * RoI Warp (Dai et al., "Instance-aware Semantic Segmentation via Multi-task Network Cascades",
 * CVPR 2016, https://arxiv.org/abs/1512.04412, the "RoI warping layer").
 */
import { assertBoxes, assertScaledBoxes } from './boxes.js';
import { assertFeatureShape } from './features.js';
import { resolveSpatialScale } from './params.js';
import { roiAlign, type RoiAlignParams } from './roi_align.js';
import { poolCells } from './roi_pool.js';
import type { Boxes, FeatureMap, Pooled } from './types.js';

/**
 * The snapped feature-cell box of RoI Warp, `[qx1, qx2) × [qy1, qy2)` in cells: `cRound(v * s)` per
 * coordinate (float32, like RoI Pool), then at least one cell on each axis.
 */
export function warpCells(
  x1: number,
  y1: number,
  x2: number,
  y2: number,
  spatialScale: number,
): { qx1: number; qy1: number; qx2: number; qy2: number } {
  const { sx, sy, ex, ey } = poolCells(x1, y1, x2, y2, spatialScale);
  return { qx1: sx, qy1: sy, qx2: ex <= sx ? sx + 1 : ex, qy2: ey <= sy ? sy + 1 : ey };
}

/**
 * The boxes RoI Warp samples, in **feature cells** (not image pixels): rows `(b, qx1, qy1, qx2, qy2)`
 * of integers (see `warpCells`), to be read by RoI Align with `spatialScale = 1`.
 *
 * Why cells and not pixels: the identity `roiWarp(box) = roiAlign(q / s)` holds in real numbers, but in
 * float32 the round trip `q / s · s` is not exact for scales such as 1/7 (`3 / (1/7) · (1/7) =
 * 3.0000002`), and an adaptive grid `ceil(roi / output)` then takes one more sample per bin (values
 * off by up to 0.4). The integer box read at scale 1 is exact.
 *
 * Worked example (stride 32, `s = 1/32`): box `(296, 192, 496, 337)` scales to `(9.25, 6, 15.5, 10.53)`;
 * C rounding (half away from zero) gives cells `(9, 6, 16, 11)`, i.e. pixels `(288, 192, 512, 352)`.
 *
 * @param boxes `[K, 5]` canonical boxes in image pixels.
 * @param spatialScale 1 / stride.
 * @returns `[K, 5]` integer cell boxes, batch indices kept.
 * @throws InvalidInputError when a coordinate × `spatialScale` overflows float32.
 */
export function warpCellBoxes(boxes: Boxes, spatialScale: number): Boxes {
  const s = resolveSpatialScale(spatialScale);
  assertScaledBoxes(boxes, s);
  const d = boxes.data;
  const data = new Float32Array(boxes.count * 5);
  for (let k = 0; k < boxes.count; k++) {
    const o = 5 * k;
    const { qx1, qy1, qx2, qy2 } = warpCells(d[o + 1], d[o + 2], d[o + 3], d[o + 4], s);
    data[o] = d[o];
    data[o + 1] = qx1;
    data[o + 2] = qy1;
    data[o + 3] = qx2;
    data[o + 4] = qy2;
  }
  return { data, count: boxes.count };
}

/**
 * RoI Warp: quantize the box to the feature grid like RoI Pool, then sample it like RoI Align.
 *
 * ```
 * qx1 = cRound(x1*s), qy1 = cRound(y1*s), qx2 = cRound(x2*s), qy2 = cRound(y2*s)    (float32 products)
 * if qx2 <= qx1: qx2 = qx1 + 1;  if qy2 <= qy1: qy2 = qy1 + 1                      (at least one cell)
 * roiWarp(box) = roiAlign(X, (qx1, qy1, qx2, qy2), spatialScale = 1)   (same aligned, samplingRatio, mode)
 * ```
 * The cell box is read at scale 1, not as `q/s` at scale `s`: see `warpCellBoxes` for why. With
 * `aligned = true` (the default) the only difference from RoI Align is the quantization of the box,
 * which is what the visual diffs show. It runs RoI Align's kernel (JS geometry, WebAssembly SIMD
 * channel loops).
 *
 * Shapes: `input` `[N, C, H, W]`, `boxes` `[K, 5]`, result `[K, C, PH, PW]`.
 *
 * @param input feature map `[N, C, H, W]`; must be finite.
 * @param boxes `[K, 5]` canonical boxes in image pixels.
 * @param params as `roiAlign`: `spatialScale` (required), `outputSize` = 7, `samplingRatio` = 2,
 *   `aligned` = true, `mode` = `'avg'`, `outputLayout` = `'NCHW'`, `shouldStop` (checked per box).
 * @returns pooled `[K, C, PH, PW]`.
 */
export function roiWarp(input: FeatureMap, boxes: Boxes, params: RoiAlignParams): Pooled {
  assertFeatureShape(input);
  assertBoxes(boxes, input.shape[0]);
  const cells = warpCellBoxes(boxes, params?.spatialScale);
  return roiAlign(input, cells, { ...params, spatialScale: 1 });
}
