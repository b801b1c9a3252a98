/**
 * The work budget: a cost model that says, before any work is done, roughly how much CPU a request
 * will take, so that a 7 KB request asking for an hour of kernels is refused (413) instead of queued.
 *
 * Pure (no fastify, sharp or tfjs): the HTTP thread runs it for `features` input as soon as the shapes
 * are known, the worker runs it for `image` input right after decoding (once the map size is known),
 * before the backbone and the kernels.
 *
 * **Work units.** One unit is one multiply-add, or one channel of one tap a kernel reads; they were
 * calibrated to cost about the same (`npm run bench -- budget`: 0.1 to 1.3 ns each, mostly 0.2 to 0.6,
 * on one core of the shared development machine, for the backbone's multiply-adds and the kernels'
 * taps alike). Fixed per-tap, per-sample and per-output costs are written in channels' worth of units
 * (the constants below). So the default `MAX_WORK` of 5e10 is roughly 10 to 30 seconds of one core. The model is an upper bound
 * for the kernels as implemented (`src/ops`), exact for `max` RoI Align and RoI Pool, and within a
 * small factor for `avg`.
 *
 * Per op, with `K` boxes, `C` channels (`Cp` = C rounded up to 4, the kernels' padded cell), `PH×PW`
 * bins, a sampling grid `gh×gw` per bin (fixed `samplingRatio`, or adaptive `ceil(bin size in cells)`,
 * at most `MAX_SAMPLING_GRID`):
 * ```
 * copy in   N·H·W·Cp                                     (every op copies the map into its workspace)
 * align/warp, max:  Σ_boxes PH·PW · gh·gw · 4 taps · (Cp + TAP_OVERHEAD)
 * align/warp, avg:  Σ_boxes PH·PW · rows·cols · (Cp + TAP_OVERHEAD)       (merged taps, see below)
 *                   rows = min(2·gh, floor(bin height in cells) + 3, H), cols likewise
 *                   + Σ_boxes (PH·gh + PW·gw) · AXIS_SAMPLE_COST         (the per-axis sample tables)
 *                   + K·PH·PW · ALIGN_BIN_COST                          (per-bin tables and set-up)
 * pool:             Σ_boxes cells read · (Cp + TAP_OVERHEAD_POOL) + K·PH·PW · POOL_BIN_COST
 *                   cells read = Σ_bins rows·cols of the quantized bins, clipped to the map (exact)
 * every op:         K·C·PH·PW · OUTPUT_COST                               (transpose + copy out)
 * ps_align:         Σ_boxes PH·PW · gh·gw · 4 taps · (C_out·PS_TAP_COST + TAP_OVERHEAD)  (no merging,
 *                   no copy-in; C_out = C / (PH·PW)) + the sample tables and bins as align
 * ps_pool:          Σ_boxes cells read (torchvision's bins) · (C_out·PS_TAP_COST + TAP_OVERHEAD_POOL) + bins
 * pyramid:          each box on its level (the level mapping), each level with boxes as one map
 * backbone:         multiply-adds per pixel · width · height              (image input only)
 * ```
 * Warp is align on the boxes snapped to whole cells (`warpCells`), so its grids are computed on those.
 */
import { TooLargeError } from '../errors.js';
import { denormalizeBoxes } from '../ops/boxes.js';
import { poolBinEdges, poolCells } from '../ops/roi_pool.js';
import { warpCells } from '../ops/roi_warp.js';
import { mapLevels, mapRotatedLevels, type LevelMapping } from '../ops/multiscale.js';
import { V1_OPERATORS, type RoiOp } from '../ops/registry.js';
import type { RotatedBoxes } from '../ops/rotated_roi_align.js';
import type { AlignMode, Boxes } from '../ops/types.js';

/** Channels' worth of work per tap besides the channel loop (its table entry, address, weight). */
export const TAP_OVERHEAD = 16;
/** Channels' worth of work per cell RoI Pool reads besides the channel loop (row/column stepping). */
export const TAP_OVERHEAD_POOL = 12;
/** Units per sample position along one axis (float32 geometry, merging; avg and max alike). */
export const AXIS_SAMPLE_COST = 32;
/** Units per output bin and box of RoI Align / Warp (the bin's table, its kernel call set-up). */
export const ALIGN_BIN_COST = 512;
/** Units per output bin and box of RoI Pool (its rectangle entry, the kernel's per-bin set-up). */
export const POOL_BIN_COST = 64;
/** Units per output value (the NCHW transpose and the copy out of the kernels' memory). */
export const OUTPUT_COST = 4;

/**
 * Units per channel of one tap (PS Align) or one cell (PS Pool) of the position-sensitive kernels.
 * They run as plain JavaScript on the map where it lies (no copy into the WebAssembly workspace), and
 * each output channel reads its own input channel `PH·PW` planes further on, so a channel-tap costs
 * more than the WebAssembly kernels' one unit: `npm run bench -- budget` (best of 3, NCHW maps of 49
 * to 4900 channels, 64×64, 300 boxes, 7×7) gave 1 to 4 ns a channel-tap; 16 units puts them at 0.1 to
 * 0.25 ns a unit, where the other kernels are.
 */
export const PS_TAP_COST = 16;

/** The kernels' padded channel count: `C` rounded up to a multiple of 4. */
export const paddedChannels = (C: number): number => Math.ceil(C / 4) * 4;

/** What the ops part of the estimate needs: shapes and parameters, never the data. */
export interface OpsWorkInput {
  boxes: Boxes;
  /** Logical `[N, C, H, W]` of the feature map the ops read. */
  mapShape: readonly [number, number, number, number];
  /** Feature cells per box pixel (as the ops are given it). */
  spatialScale: number;
  ops: readonly RoiOp[];
  outputSize: readonly [number, number];
  samplingRatio: number;
  aligned: boolean;
  mode: AlignMode;
  /** The largest adaptive grid per axis (larger ones are refused elsewhere). */
  maxSamplingGrid: number;
  /**
   * A pyramid (several maps, finest first): each box is costed on the level the level mapping gives it
   * (`mapShape` and `spatialScale` are then the finest level's). Absent: one map.
   */
  pyramid?: PyramidWorkInput;
  /** The rotated boxes behind `boxes` (their upright boxes), for `rotated_align`'s level mapping. */
  rotated?: RotatedBoxes;
}

/** A pyramid's maps for the estimate: each level's logical shape and scale, and the level rule. */
export interface PyramidWorkInput {
  /** `[N, C, H, W]` of each level, finest first. */
  shapes: readonly (readonly [number, number, number, number])[];
  /** `2^-k` of each level, finest first. */
  scales: readonly number[];
  levelMapping?: LevelMapping;
}

/** One op's share of the estimate. */
export interface OpWork {
  /** Taps (align/warp: bilinear taps read per channel; pool: cells read per channel), all boxes. */
  taps: number;
  /** Sample positions (align/warp: Σ PH·PW·gh·gw; pool: 0). */
  samples: number;
  /** Work units of this op, copy-in and output included. */
  units: number;
}

/** The whole estimate, by part; `total` is what {@link checkWork} compares with `MAX_WORK`. */
export interface WorkEstimate {
  total: number;
  backbone: number;
  ops: Partial<Record<RoiOp, OpWork>>;
}

const fround = Math.fround;

/**
 * One box's RoI Align geometry in cells, as `roiAlign` computes it (float32, same order), so that the
 * adaptive grid is the kernel's own.
 */
function alignGrid(
  x1: number,
  y1: number,
  x2: number,
  y2: number,
  s: number,
  PH: number,
  PW: number,
  samplingRatio: number,
  aligned: boolean,
  maxGrid: number,
): { gh: number; gw: number; binH: number; binW: number } {
  const off = aligned ? 0.5 : 0;
  let roiW = fround(fround(fround(x2 * s) - off) - fround(fround(x1 * s) - off));
  let roiH = fround(fround(fround(y2 * s) - off) - fround(fround(y1 * s) - off));
  if (!aligned) {
    roiW = Math.max(roiW, 1);
    roiH = Math.max(roiH, 1);
  }
  const binH = fround(roiH / PH);
  const binW = fround(roiW / PW);
  const gh = samplingRatio > 0 ? samplingRatio : Math.min(Math.ceil(binH), maxGrid);
  const gw = samplingRatio > 0 ? samplingRatio : Math.min(Math.ceil(binW), maxGrid);
  return { gh, gw, binH, binW };
}

/**
 * Distinct cells one bin's samples read along an axis, an upper bound: each sample reads 2 cells
 * (`floor(v)` and the next), and the samples of a bin `bin` cells long lie in `[a, a + bin]`, which
 * spans `floor(a + bin) - floor(a) + 1 <= floor(bin) + 2` floors, so at most `floor(bin) + 3` cells.
 */
function mergedCells(grid: number, bin: number, size: number): number {
  if (grid === 0) return 0;
  // 1e-6: float32 rounding of the kernel's sample positions never adds a cell past this.
  return Math.min(2 * grid, Math.floor(bin * (1 + 1e-6)) + 3, size);
}

/**
 * RoI Align (or Warp, `snap = true`) work over all boxes. See the module comment for the formula.
 */
export function alignWork(input: OpsWorkInput, snap: boolean): OpWork {
  const { boxes, mapShape, outputSize, samplingRatio, aligned, mode, maxSamplingGrid } = input;
  const [N, C, H, W] = mapShape;
  const [PH, PW] = outputSize;
  const s = fround(input.spatialScale);
  const Cp = paddedChannels(C);
  const d = boxes.data;
  let taps = 0;
  let samples = 0;
  let axis = 0;
  for (let k = 0; k < boxes.count; k++) {
    const o = 5 * k;
    let [x1, y1, x2, y2] = [d[o + 1], d[o + 2], d[o + 3], d[o + 4]];
    if (snap) {
      const q = warpCells(x1, y1, x2, y2, s);
      [x1, y1, x2, y2] = [fround(q.qx1 / s), fround(q.qy1 / s), fround(q.qx2 / s), fround(q.qy2 / s)];
    }
    const g = alignGrid(x1, y1, x2, y2, s, PH, PW, samplingRatio, aligned, maxSamplingGrid);
    samples += PH * PW * g.gh * g.gw;
    axis += PH * g.gh + PW * g.gw;
    taps +=
      mode === 'avg'
        ? PH * PW * mergedCells(g.gh, g.binH, H) * mergedCells(g.gw, g.binW, W)
        : PH * PW * g.gh * g.gw * 4;
  }
  const units =
    N * H * W * Cp +
    taps * (Cp + TAP_OVERHEAD) +
    axis * AXIS_SAMPLE_COST +
    boxes.count * PH * PW * ALIGN_BIN_COST +
    boxes.count * C * PH * PW * OUTPUT_COST;
  return { taps, samples, units };
}

/**
 * RoI Pool work over all boxes: the cells its quantized bins read (exact, clipped to the map; bins
 * that share a cell read it twice, as the kernel does). See the module comment for the formula.
 */
export function poolWork(input: OpsWorkInput): OpWork {
  const { boxes, mapShape, outputSize } = input;
  const [N, C, H, W] = mapShape;
  const [PH, PW] = outputSize;
  const Cp = paddedChannels(C);
  const rowStart = new Int32Array(PH);
  const rowEnd = new Int32Array(PH);
  const colStart = new Int32Array(PW);
  const colEnd = new Int32Array(PW);
  const d = boxes.data;
  let taps = 0;
  for (let k = 0; k < boxes.count; k++) {
    const o = 5 * k;
    const { sx, sy, ex, ey } = poolCells(d[o + 1], d[o + 2], d[o + 3], d[o + 4], input.spatialScale);
    poolBinEdges(PH, sy, Math.max(ey - sy + 1, 1), H, rowStart, rowEnd);
    poolBinEdges(PW, sx, Math.max(ex - sx + 1, 1), W, colStart, colEnd);
    // Σ_bins rows·cols = (Σ rows)·(Σ cols); a bin with no columns reads nothing, and vice versa.
    let rows = 0;
    let cols = 0;
    for (let p = 0; p < PH; p++) rows += Math.max(rowEnd[p] - rowStart[p], 0);
    for (let p = 0; p < PW; p++) cols += Math.max(colEnd[p] - colStart[p], 0);
    taps += rows * cols;
  }
  const units =
    N * H * W * Cp +
    taps * (Cp + TAP_OVERHEAD_POOL) +
    boxes.count * PH * PW * POOL_BIN_COST +
    boxes.count * C * PH * PW * OUTPUT_COST;
  return { taps, samples: 0, units };
}

/** The output channels of a position-sensitive op: `C / (PH·PW)` (a `C` that does not split is refused, 400). */
const psChannels = (C: number, PH: number, PW: number): number => (C % (PH * PW) === 0 ? C / (PH * PW) : C);

/**
 * PS RoI Align work (`psRoiAlign`): every sample of every bin reads its 4 taps on the bin's own input
 * channels only, `C_out = C / (PH·PW)` of them, and nothing is merged (whatever `mode`); it reads the
 * map where it lies (no copy-in). The grid is `roiAlign`'s with the half-pixel offset always on.
 */
export function psAlignWork(input: OpsWorkInput): OpWork {
  const { boxes, mapShape, outputSize, samplingRatio, maxSamplingGrid } = input;
  const [PH, PW] = outputSize;
  const Cout = psChannels(mapShape[1], PH, PW);
  const s = fround(input.spatialScale);
  const d = boxes.data;
  let samples = 0;
  let axis = 0;
  for (let k = 0; k < boxes.count; k++) {
    const o = 5 * k;
    const g = alignGrid(
      d[o + 1],
      d[o + 2],
      d[o + 3],
      d[o + 4],
      s,
      PH,
      PW,
      samplingRatio,
      true,
      maxSamplingGrid,
    );
    samples += PH * PW * g.gh * g.gw;
    axis += PH * g.gh + PW * g.gw;
  }
  const taps = 4 * samples;
  const units =
    taps * (Cout * PS_TAP_COST + TAP_OVERHEAD) +
    axis * AXIS_SAMPLE_COST +
    boxes.count * PH * PW * ALIGN_BIN_COST +
    boxes.count * Cout * PH * PW * OUTPUT_COST;
  return { taps, samples, units };
}

/**
 * PS RoI Pool work (`psRoiPool`): the cells of each bin (torchvision's: end exclusive, every edge
 * clipped to `size - 1`), exact, each read on `C_out = C / (PH·PW)` channels; no copy-in.
 */
export function psPoolWork(input: OpsWorkInput): OpWork {
  const { boxes, mapShape, outputSize } = input;
  const [, C, H, W] = mapShape;
  const [PH, PW] = outputSize;
  const Cout = psChannels(C, PH, PW);
  const rowStart = new Int32Array(PH);
  const rowEnd = new Int32Array(PH);
  const colStart = new Int32Array(PW);
  const colEnd = new Int32Array(PW);
  const d = boxes.data;
  let taps = 0;
  for (let k = 0; k < boxes.count; k++) {
    const o = 5 * k;
    const { sx, sy, ex, ey } = poolCells(d[o + 1], d[o + 2], d[o + 3], d[o + 4], input.spatialScale);
    poolBinEdges(PH, sy, Math.max(ey - sy, 1), H - 1, rowStart, rowEnd);
    poolBinEdges(PW, sx, Math.max(ex - sx, 1), W - 1, colStart, colEnd);
    let rows = 0;
    let cols = 0;
    for (let p = 0; p < PH; p++) rows += Math.max(rowEnd[p] - rowStart[p], 0);
    for (let p = 0; p < PW; p++) cols += Math.max(colEnd[p] - colStart[p], 0);
    taps += rows * cols;
  }
  const units =
    taps * (Cout * PS_TAP_COST + TAP_OVERHEAD_POOL) +
    boxes.count * PH * PW * POOL_BIN_COST +
    boxes.count * Cout * PH * PW * OUTPUT_COST;
  return { taps, samples: 0, units };
}

/** One op on one map: the cost model of what its kernel reads. */
function opWork(op: RoiOp, input: OpsWorkInput): OpWork {
  if (op === 'ps_align') return psAlignWork(input);
  if (op === 'ps_pool') return psPoolWork(input);
  // The others follow what they read (the registry's `reads`): whole cells, or samples of the exact
  // or the snapped box (`rotated_align`: its upright box, which holds every sample).
  const reads = V1_OPERATORS[op].reads;
  return reads === 'cells' ? poolWork(input) : alignWork(input, reads === 'snapped');
}

/**
 * One op on a pyramid: the boxes grouped by the level the level mapping gives them (`mapLevels`, or
 * `mapRotatedLevels` for `rotated_align`: what `multiScaleRoi` runs), each group costed on its level's
 * map at its scale, copy-in included, and only levels that have boxes (the kernels skip the others;
 * with no box, the finest once). A pyramid the kernels will refuse (scales not consecutive powers of
 * two) is costed on its finest map: an upper bound of the grids and cells.
 */
function pyramidWork(op: RoiOp, input: OpsWorkInput, pyramid: PyramidWorkInput): OpWork {
  const { shapes, scales, levelMapping } = pyramid;
  const L = scales.length;
  const kMin = -Math.log2(scales[0]);
  const consecutive =
    L === shapes.length && Number.isInteger(kMin) && scales.every((x, i) => x === 2 ** -(kMin + i));
  const single: OpsWorkInput = { ...input, pyramid: undefined };
  if (!consecutive) return opWork(op, single);
  const levels =
    op === 'rotated_align' && input.rotated
      ? mapRotatedLevels(input.rotated, levelMapping, kMin, kMin + L - 1)
      : mapLevels(input.boxes, levelMapping, kMin, kMin + L - 1);
  const total: OpWork = { taps: 0, samples: 0, units: 0 };
  const K = input.boxes.count;
  for (let i = 0; i < L; i++) {
    const rows: number[] = [];
    for (let k = 0; k < K; k++) if (levels[k] === kMin + i) rows.push(k);
    if (rows.length === 0 && !(K === 0 && i === 0)) continue;
    const data = new Float32Array(5 * rows.length);
    rows.forEach((k, j) => data.set(input.boxes.data.subarray(5 * k, 5 * k + 5), 5 * j));
    const w = opWork(op, {
      ...single,
      boxes: { data, count: rows.length },
      mapShape: shapes[i],
      spatialScale: scales[i],
    });
    total.taps += w.taps;
    total.samples += w.samples;
    total.units += w.units;
  }
  return total;
}

/**
 * The backbone's multiply-adds per input pixel, from its description (multiply-adds at a reference
 * size). Convolutions cost in proportion to the pixels, so this scales to any size.
 */
export function multiplyAddsPerPixel(description: {
  totalMultiplyAdds: number;
  referenceInput: readonly [number, number];
}): number {
  const [h, w] = description.referenceInput;
  return description.totalMultiplyAdds / (h * w);
}

/**
 * The estimate of a request: the requested ops on the map, plus the backbone on `image` pixels when
 * the input is an image.
 *
 * @param input - the ops' shapes and parameters
 * @param backbone - image input only: the backbone's multiply-adds per pixel and the (resized) image size
 */
export function estimateWork(
  input: OpsWorkInput,
  backbone?: { multiplyAddsPerPixel: number; width: number; height: number },
): WorkEstimate {
  const ops: WorkEstimate['ops'] = {};
  for (const op of input.ops) {
    ops[op] = input.pyramid ? pyramidWork(op, input, input.pyramid) : opWork(op, input);
  }
  const backboneUnits = backbone ? backbone.multiplyAddsPerPixel * backbone.width * backbone.height : 0;
  const total = backboneUnits + Object.values(ops).reduce((sum, w) => sum + w.units, 0);
  return { total, backbone: backboneUnits, ops };
}

/**
 * The estimate of a RoI request from its parameters, with the {@link OpsWorkInput} it was made from
 * (which {@link checkWork} and {@link describeWork} read for their messages).
 *
 * @param params - the request's op parameters (`RoiParams` from `src/core/task.ts`)
 * @param limits - `maxSamplingGrid`
 */
export function estimateRoiWork(
  boxes: Boxes,
  mapShape: readonly [number, number, number, number],
  spatialScale: number,
  params: Pick<OpsWorkInput, 'ops' | 'outputSize' | 'samplingRatio' | 'aligned' | 'mode'>,
  limits: { maxSamplingGrid: number },
  backbone?: { multiplyAddsPerPixel: number; width: number; height: number },
  extra: Pick<OpsWorkInput, 'pyramid' | 'rotated'> = {},
): { estimate: WorkEstimate; input: OpsWorkInput } {
  const input: OpsWorkInput = {
    ...extra,
    boxes,
    mapShape,
    spatialScale,
    ops: params.ops,
    outputSize: params.outputSize,
    samplingRatio: params.samplingRatio,
    aligned: params.aligned,
    mode: params.mode,
    maxSamplingGrid: limits.maxSamplingGrid,
  };
  return { estimate: estimateWork(input, backbone), input };
}

/**
 * Estimates and checks a RoI request in one call: {@link estimateRoiWork} then {@link checkWork}.
 *
 * @param params - the request's op parameters (`RoiParams` from `src/core/task.ts`)
 * @param limits - `maxWork` (`MAX_WORK`) and `maxSamplingGrid`
 * @returns the estimate (for logs and `Server-Timing`-like reporting)
 * @throws TooLargeError (413) over `maxWork`
 */
export function checkRoiWork(
  boxes: Boxes,
  mapShape: readonly [number, number, number, number],
  spatialScale: number,
  params: Pick<OpsWorkInput, 'ops' | 'outputSize' | 'samplingRatio' | 'aligned' | 'mode'>,
  limits: { maxWork: number; maxSamplingGrid: number },
  backbone?: { multiplyAddsPerPixel: number; width: number; height: number },
  extra: Pick<OpsWorkInput, 'pyramid' | 'rotated'> = {},
): WorkEstimate {
  const { estimate, input } = estimateRoiWork(boxes, mapShape, spatialScale, params, limits, backbone, extra);
  checkWork(estimate, input, limits.maxWork);
  return estimate;
}

/**
 * The boxes in pixels of their frame, which is what the model counts in: boxes sent `normalized` are
 * fractions of it (a 0..1 box would otherwise look one pixel wide, and its cost vanish).
 *
 * @param frame - `[width, height]` of the frame: the image as sent, or for a feature map its
 *   `imageSize` (default: the area the map covers, `[W / spatialScale, H / spatialScale]`)
 */
export function boxesInPixels(boxes: Boxes, normalized: boolean, frame: readonly [number, number]): Boxes {
  return normalized ? denormalizeBoxes(boxes, frame[0], frame[1]) : boxes;
}

/** A feature map's frame: `imageSize` when given, else the area the map covers at `spatialScale`. */
export function featureMapFrame(
  mapShape: readonly [number, number, number, number],
  spatialScale: number,
  imageSize: readonly [number, number] | undefined,
): readonly [number, number] {
  return imageSize ?? [mapShape[3] / spatialScale, mapShape[2] / spatialScale];
}

const sci = (n: number): string => n.toExponential(1);

/** The estimate by part, for messages: `backbone 7.7e+6 multiply-adds; align 1.2e+9 (…)`. */
export function describeWork(estimate: WorkEstimate, input: OpsWorkInput): string {
  const K = input.boxes.count;
  const [, C] = input.mapShape;
  const [PH, PW] = input.outputSize;
  const parts: string[] = [];
  if (estimate.backbone > 0) parts.push(`backbone ${sci(estimate.backbone)} multiply-adds`);
  for (const [op, w] of Object.entries(estimate.ops) as [RoiOp, OpWork][]) {
    const ps = V1_OPERATORS[op].positionSensitive;
    const channels = ps ? `C/(PH·PW)=${psChannels(C, PH, PW)}` : `C=${C}`;
    const what =
      V1_OPERATORS[op].reads === 'cells'
        ? `${sci(w.taps)} cells read × ${channels}`
        : input.mode === 'avg' && !ps
          ? `${sci(w.taps)} merged taps × ${channels}`
          : `K=${K} · PH·PW=${PH * PW} · ${sci(w.samples / Math.max(K * PH * PW, 1))} samples/bin · 4 taps × ${channels}`;
    parts.push(`${op} ${sci(w.units)} (${what})`);
  }
  return parts.join('; ');
}

/**
 * Refuses (413) a request whose estimate exceeds `maxWork`, with the estimate by part and what to
 * change. Nothing has run yet when this throws.
 *
 * @param estimate - from {@link estimateWork}
 * @param input - the same input (for the message's K, C, PH·PW and grid)
 * @param maxWork - `MAX_WORK`
 * @throws TooLargeError (field `boxes`)
 */
export function checkWork(estimate: WorkEstimate, input: OpsWorkInput, maxWork: number): void {
  if (estimate.total <= maxWork) return;
  throw new TooLargeError(
    `this request would cost ~${sci(estimate.total)} work units (${describeWork(estimate, input)}), over MAX_WORK=${sci(maxWork)}`,
    'boxes',
    `an estimated cost <= ${sci(maxWork)} work units: use fewer boxes, a smaller outputSize or samplingRatio, or a smaller feature map / image`,
  );
}

/**
 * Refuses (413) a request with several images (`images`) whose images together exceed `maxWork`:
 * the limit protects the service, so the whole request counts (every image's backbone pass and every
 * box's kernels), not each image on its own (8 images would otherwise do 8 × `MAX_WORK`). Nothing has
 * run yet when this throws: the pipeline calls it with the sizes from the images' headers.
 *
 * @param perImage - each image's estimate (its backbone and its boxes' ops) with its input, in order
 * @param maxWork - `MAX_WORK`
 * @returns the request's total
 * @throws TooLargeError (field `images`) naming each image's share
 */
export function checkImagesWork(
  perImage: readonly { estimate: WorkEstimate; input: OpsWorkInput }[],
  maxWork: number,
): number {
  const total = perImage.reduce((sum, p) => sum + p.estimate.total, 0);
  if (total <= maxWork) return total;
  const parts = perImage.map(
    (p, i) => `images[${i}] ~${sci(p.estimate.total)}: ${describeWork(p.estimate, p.input)}`,
  );
  throw new TooLargeError(
    `this request would cost ~${sci(total)} work units over its ${perImage.length} images (${parts.join('; ')}), over MAX_WORK=${sci(maxWork)}`,
    'images',
    `an estimated cost <= ${sci(maxWork)} work units for all images together: send fewer or smaller images (or a smaller maxSide) per request, fewer boxes, a smaller outputSize or samplingRatio`,
  );
}
