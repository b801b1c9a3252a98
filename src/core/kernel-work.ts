/**
 * The work budget's cost model of each kernel (`src/core/work-budget.ts` adds the backbone, pyramids,
 * several images and the checks): what one op reads on one map, in work units, from the shapes and
 * parameters alone (never the data). Split from `work-budget.ts` to keep each file about one thing.
 *
 * **Work units.** One unit is one multiply-add, or one channel of one tap a kernel reads; they were
 * calibrated to cost about the same (`npm run bench -- budget`: 0.1 to 1.3 ns each, mostly 0.2 to 0.6,
 * on one core of the shared development machine, for the backbone's multiply-adds and the kernels'
 * taps alike). Fixed per-tap, per-sample and per-output costs are written in channels' worth of units
 * (the constants below). The model is an upper bound for the kernels as implemented (`src/ops`), exact
 * for `max` RoI Align, RoI Pool and the ps ops on the map, and within a small factor for `avg`.
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
 * ```
 * Warp is align on the boxes snapped to whole cells (`warpCells`), so its grids are computed on those.
 */
import { roiGeometry, type RoiGeometry } from '../ops/roi_align.js';
import { poolBinEdges, poolCells } from '../ops/roi_pool.js';
import { warpCells } from '../ops/roi_warp.js';
import { V1_OPERATORS, type RoiOp } from '../ops/registry.js';
import type { LevelMapping } from '../ops/multiscale.js';
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

const fround = Math.fround;

/** Scratch for {@link alignGrid}: one box row and the kernel's geometry of it. */
const gridBox = new Float32Array(5);
const gridGeometry: RoiGeometry = { startY: 0, startX: 0, binH: 0, binW: 0, gridH: 0, gridW: 0 };

/**
 * One box's RoI Align geometry in cells: the kernel's own (`roiGeometry`, float32, same order), the
 * adaptive grid capped at `maxGrid` as the pipeline's guard caps it. The coordinates are float32 values
 * (box data, or warp's float32 snapped edges), so the scratch row holds them exactly.
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
  gridBox[1] = x1;
  gridBox[2] = y1;
  gridBox[3] = x2;
  gridBox[4] = y2;
  roiGeometry(gridBox, 0, s, PH, PW, samplingRatio, aligned, gridGeometry);
  const { gridH, gridW, binH, binW } = gridGeometry;
  const adaptive = !(samplingRatio > 0);
  return {
    gh: adaptive ? Math.min(gridH, maxGrid) : gridH,
    gw: adaptive ? Math.min(gridW, maxGrid) : gridW,
    binH,
    binW,
  };
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
 * The sample grids of all boxes, as RoI Align lays them out (of the box, or of its snapped cells with
 * `snap`): samples Σ PH·PW·gh·gw, axis positions Σ PH·gh + PW·gw, and taps: the cells read, merged
 * per bin (`merge`, RoI Align's averaging) or 4 per sample.
 */
function alignSamples(
  input: OpsWorkInput,
  snap: boolean,
  aligned: boolean,
  merge: boolean,
): { samples: number; axis: number; taps: number } {
  const { boxes, mapShape, outputSize, samplingRatio, maxSamplingGrid } = input;
  const [, , H, W] = mapShape;
  const [PH, PW] = outputSize;
  const s = fround(input.spatialScale);
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
    taps += merge
      ? PH * PW * mergedCells(g.gh, g.binH, H) * mergedCells(g.gw, g.binW, W)
      : PH * PW * g.gh * g.gw * 4;
  }
  return { samples, axis, taps };
}

/**
 * The cells all boxes' quantized bins read (exact, clipped to the map; bins that share a cell read it
 * twice, as the kernels do): RoI Pool's bins (end inclusive), or with `positionSensitive` torchvision's
 * PS RoI Pool bins (end exclusive, every edge clipped to `size - 1`).
 */
function poolCellReads(input: OpsWorkInput, positionSensitive: boolean): number {
  const { boxes, mapShape, outputSize } = input;
  const [, , H, W] = mapShape;
  const [PH, PW] = outputSize;
  const end = positionSensitive ? 0 : 1;
  const rowStart = new Int32Array(PH);
  const rowEnd = new Int32Array(PH);
  const colStart = new Int32Array(PW);
  const colEnd = new Int32Array(PW);
  const d = boxes.data;
  let taps = 0;
  for (let k = 0; k < boxes.count; k++) {
    const o = 5 * k;
    const { sx, sy, ex, ey } = poolCells(d[o + 1], d[o + 2], d[o + 3], d[o + 4], input.spatialScale);
    poolBinEdges(PH, sy, Math.max(ey - sy + end, 1), H - 1 + end, rowStart, rowEnd);
    poolBinEdges(PW, sx, Math.max(ex - sx + end, 1), W - 1 + end, colStart, colEnd);
    // Σ_bins rows·cols = (Σ rows)·(Σ cols); a bin with no columns reads nothing, and vice versa.
    let rows = 0;
    let cols = 0;
    for (let p = 0; p < PH; p++) rows += Math.max(rowEnd[p] - rowStart[p], 0);
    for (let p = 0; p < PW; p++) cols += Math.max(colEnd[p] - colStart[p], 0);
    taps += rows * cols;
  }
  return taps;
}

/**
 * RoI Align (or Warp, `snap = true`) work over all boxes. See the module comment for the formula.
 */
export function alignWork(input: OpsWorkInput, snap: boolean): OpWork {
  const { boxes, mapShape, outputSize } = input;
  const [N, C, H, W] = mapShape;
  const [PH, PW] = outputSize;
  const Cp = paddedChannels(C);
  const { samples, axis, taps } = alignSamples(input, snap, input.aligned, input.mode === 'avg');
  const units =
    N * H * W * Cp +
    taps * (Cp + TAP_OVERHEAD) +
    axis * AXIS_SAMPLE_COST +
    boxes.count * PH * PW * ALIGN_BIN_COST +
    boxes.count * C * PH * PW * OUTPUT_COST;
  return { taps, samples, units };
}

/** RoI Pool work over all boxes: the cells its bins read. See the module comment for the formula. */
export function poolWork(input: OpsWorkInput): OpWork {
  const { boxes, mapShape, outputSize } = input;
  const [N, C, H, W] = mapShape;
  const [PH, PW] = outputSize;
  const Cp = paddedChannels(C);
  const taps = poolCellReads(input, false);
  const units =
    N * H * W * Cp +
    taps * (Cp + TAP_OVERHEAD_POOL) +
    boxes.count * PH * PW * POOL_BIN_COST +
    boxes.count * C * PH * PW * OUTPUT_COST;
  return { taps, samples: 0, units };
}

/**
 * The channels op `op` outputs from a map of `channels`: `C`, or for the position-sensitive ops
 * `C / (PH·PW)` (each output channel reads `PH·PW` input ones). A `C` they cannot split counts whole:
 * that request is refused (400) before it runs.
 */
export function opOutputChannels(op: RoiOp, channels: number, outputSize: readonly [number, number]): number {
  const bins = outputSize[0] * outputSize[1];
  return V1_OPERATORS[op].positionSensitive && channels % bins === 0 ? channels / bins : channels;
}

/**
 * PS RoI Align work (`psRoiAlign`): every sample of every bin reads its 4 taps on the bin's own input
 * channels only, `C_out = C / (PH·PW)` of them, and nothing is merged (whatever `mode`); it reads the
 * map where it lies (no copy-in). The grid is `roiAlign`'s with the half-pixel offset always on.
 */
export function psAlignWork(input: OpsWorkInput): OpWork {
  const { boxes, mapShape, outputSize } = input;
  const [PH, PW] = outputSize;
  const Cout = opOutputChannels('ps_align', mapShape[1], outputSize);
  const { samples, axis, taps } = alignSamples(input, false, true, false);
  const units =
    taps * (Cout * PS_TAP_COST + TAP_OVERHEAD) +
    axis * AXIS_SAMPLE_COST +
    boxes.count * PH * PW * ALIGN_BIN_COST +
    boxes.count * Cout * PH * PW * OUTPUT_COST;
  return { taps, samples, units };
}

/**
 * PS RoI Pool work (`psRoiPool`): the cells of each bin, exact, each read on `C_out = C / (PH·PW)`
 * channels; no copy-in.
 */
export function psPoolWork(input: OpsWorkInput): OpWork {
  const { boxes, mapShape, outputSize } = input;
  const [PH, PW] = outputSize;
  const Cout = opOutputChannels('ps_pool', mapShape[1], outputSize);
  const taps = poolCellReads(input, true);
  const units =
    taps * (Cout * PS_TAP_COST + TAP_OVERHEAD_POOL) +
    boxes.count * PH * PW * POOL_BIN_COST +
    boxes.count * Cout * PH * PW * OUTPUT_COST;
  return { taps, samples: 0, units };
}

/** One op on one map: the cost model of what its kernel reads. */
export function opWork(op: RoiOp, input: OpsWorkInput): OpWork {
  if (op === 'ps_align') return psAlignWork(input);
  if (op === 'ps_pool') return psPoolWork(input);
  // The others follow what they read (the registry's `reads`): whole cells, or samples of the exact
  // or the snapped box (`rotated_align`: its upright box, which holds every sample).
  const reads = V1_OPERATORS[op].reads;
  return reads === 'cells' ? poolWork(input) : alignWork(input, reads === 'snapped');
}
