/**
 * The operator registry: the one list of RoI operators. Everything that names an operator derives
 * from it: the request enums (`ops` of `/v1/roi`), the `RoiTimings` and `Server-Timing` stages, the
 * metrics labels, the pipeline's dispatch, the response schemas (`outputs`, `coverage`, `timings`),
 * the coverage regions, the work budget's cost model, the diff pairs and the `/v2` model names.
 *
 * Adding an operator is one kernel file, one entry here, and tests. Every entry today has `v1: true`:
 * served by `/v1/roi` (and compared by `/v1/diff` when `compared`); `v1: false` would keep a new operator
 * on `/v2` only (`src/oip/models.ts`) until `/v1` can take its inputs. `/v2` builds the tasks of the
 * position-sensitive and rotated ops itself, because their inputs differ (position-sensitive maps
 * change the channel count, rotated boxes are 6-number rows).
 *
 * Pure like the kernels: no fastify, zod, sharp or tfjs. Entries are `as const` so that names stay
 * literal types (`RoiOp` is the union of the six names, not `string`).
 */
import { psRoiAlign } from './ps_roi_align.js';
import { psRoiPool } from './ps_roi_pool.js';
import { roiAlign, type RoiAlignParams } from './roi_align.js';
import { poolCells, roiPool } from './roi_pool.js';
import { roiWarp, warpCells } from './roi_warp.js';
import { rotatedRoiAlign, type RotatedBoxes, type RotatedRoiAlignParams } from './rotated_roi_align.js';
import type { Boxes, FeatureMap, Pooled, Rect } from './types.js';

/**
 * What an operator reads of a box, which decides its coverage region, its cost model and its place in
 * the diff: `exact` samples the box as given (RoI Align), `snapped` samples the box snapped to whole
 * feature cells (RoI Warp), `cells` max-pools whole C-rounded cells, end cell included (RoI Pool).
 */
export type ReadKind = 'exact' | 'snapped' | 'cells';

/** The parameters every upright-box kernel accepts (each reads the ones its entry lists in `params`). */
export type OpRunParams = RoiAlignParams;

/** Request parameters an operator reads, besides `spatialScale`, `outputSize` and `outputLayout`. */
export type OpParam = 'samplingRatio' | 'aligned' | 'mode' | 'clockwise';

/** One operator. `B` is its box type: canonical `[K, 5]` boxes, or rotated `[K, 6]` ones. */
export interface OperatorEntry<B = Boxes, P = OpRunParams> {
  /** Wire name: `ops` value, `outputs` / `timings` / `coverage` key, stage and metrics label, tensor name. */
  readonly name: string;
  /** For people: headings, the diff sheet, error messages. */
  readonly title: string;
  /** The title without "RoI", for tight spots (the diff sheet's `|Align − Pool|`). */
  readonly shortTitle: string;
  /** torchvision's function name, also the `/v2` model name (`roi_align`). */
  readonly model: string;
  /** Served by `/v1/roi` (through the pipeline); false: `/v2` only. */
  readonly v1: boolean;
  /**
   * One of the upright operators `/v1/diff` compares and every box's `coverage` lists (RoI Pool, Align,
   * Warp). The others (position-sensitive, rotated) run on `/v1/roi` only when asked for.
   */
  readonly compared: boolean;
  /** What it reads of a box: see {@link ReadKind}. */
  readonly reads: ReadKind;
  /** Numbers per box row: 5 `(b, x1, y1, x2, y2)`, or 6 `(b, cx, cy, w, h, angle)` for rotated boxes. */
  readonly boxColumns: 5 | 6;
  /** Position-sensitive: the map's `C` splits into `C_out·PH·PW` channels and the output has `C_out`. */
  readonly positionSensitive: boolean;
  /** The parameters it reads besides `spatialScale`, `outputSize` and `outputLayout`. */
  readonly params: readonly OpParam[];
  /** The kernel: `input` `[N, C, H, W]`, boxes `[K, 5 or 6]` → `[K, C or C_out, PH, PW]`. */
  readonly run: (input: FeatureMap, boxes: B, params: P) => Pooled;
  /**
   * The feature cells (half-open, before clipping) behind the region it reads of `box` at scale `s`;
   * absent for `exact` readers (the region is the box itself) and for rotated boxes (no upright region).
   */
  readonly readCells?: (box: Rect, s: number) => Rect;
}

const pool = {
  name: 'pool',
  title: 'RoI Pool',
  shortTitle: 'Pool',
  model: 'roi_pool',
  v1: true,
  compared: true,
  reads: 'cells',
  boxColumns: 5,
  positionSensitive: false,
  params: [],
  run: (input: FeatureMap, boxes: Boxes, p: OpRunParams) =>
    roiPool(input, boxes, {
      spatialScale: p.spatialScale,
      outputSize: p.outputSize,
      outputLayout: p.outputLayout,
      shouldStop: p.shouldStop,
      into: p.into,
    }),
  readCells: (box: Rect, s: number): Rect => {
    // End cell inclusive, and at least one cell (`roiPool` forces empty boxes to one cell).
    const { sx, sy, ex, ey } = poolCells(box.x1, box.y1, box.x2, box.y2, s);
    return { x1: sx, y1: sy, x2: sx + Math.max(ex - sx + 1, 1), y2: sy + Math.max(ey - sy + 1, 1) };
  },
} as const satisfies OperatorEntry;

const align = {
  name: 'align',
  title: 'RoI Align',
  shortTitle: 'Align',
  model: 'roi_align',
  v1: true,
  compared: true,
  reads: 'exact',
  boxColumns: 5,
  positionSensitive: false,
  params: ['samplingRatio', 'aligned', 'mode'],
  run: roiAlign,
} as const satisfies OperatorEntry;

const warp = {
  name: 'warp',
  title: 'RoI Warp',
  shortTitle: 'Warp',
  model: 'roi_warp',
  v1: true,
  compared: true,
  reads: 'snapped',
  boxColumns: 5,
  positionSensitive: false,
  params: ['samplingRatio', 'aligned', 'mode'],
  run: roiWarp,
  readCells: (box: Rect, s: number): Rect => {
    const { qx1, qy1, qx2, qy2 } = warpCells(box.x1, box.y1, box.x2, box.y2, s);
    return { x1: qx1, y1: qy1, x2: qx2, y2: qy2 };
  },
} as const satisfies OperatorEntry;

const psAlign = {
  name: 'ps_align',
  title: 'PS RoI Align',
  shortTitle: 'PS Align',
  model: 'ps_roi_align',
  v1: true,
  compared: false,
  reads: 'exact',
  boxColumns: 5,
  positionSensitive: true,
  params: ['samplingRatio'],
  run: psRoiAlign,
} as const satisfies OperatorEntry;

const psPool = {
  name: 'ps_pool',
  title: 'PS RoI Pool',
  shortTitle: 'PS Pool',
  model: 'ps_roi_pool',
  v1: true,
  compared: false,
  reads: 'cells',
  boxColumns: 5,
  positionSensitive: true,
  params: [],
  run: psRoiPool,
} as const satisfies OperatorEntry;

const rotatedAlign = {
  name: 'rotated_align',
  title: 'Rotated RoI Align',
  shortTitle: 'Rotated Align',
  model: 'rotated_roi_align',
  v1: true,
  compared: false,
  reads: 'exact',
  boxColumns: 6,
  positionSensitive: false,
  params: ['samplingRatio', 'aligned', 'clockwise'],
  run: rotatedRoiAlign,
} as const satisfies OperatorEntry<RotatedBoxes, RotatedRoiAlignParams>;

/** Every operator, `/v1` ones first in their canonical order (pool, align, warp: the order of results). */
export const OPERATORS = [pool, align, warp, psAlign, psPool, rotatedAlign] as const;

export type Operator = (typeof OPERATORS)[number];
export type OperatorName = Operator['name'];

/** The operators `/v1/roi` runs. */
export type V1Operator = Extract<Operator, { v1: true }>;
/** Their names: `'pool' | 'align' | 'warp' | 'ps_align' | 'ps_pool' | 'rotated_align'`. */
export type RoiOp = V1Operator['name'];

/** The operators taking canonical `[K, 5]` boxes (all but rotated ones), e.g. for multi-level pooling. */
export type UprightOperator = Extract<Operator, { boxColumns: 5 }>;
export type UprightOp = UprightOperator['name'];

const isV1 = (op: Operator): op is V1Operator => op.v1;

/** The `/v1` operators in their canonical order, as a non-empty tuple (zod's `z.enum` wants one). */
export const ROI_OPS = OPERATORS.filter(isV1).map((op) => op.name) as unknown as readonly [RoiOp, ...RoiOp[]];

/** The `/v1` entries by name. */
export const V1_OPERATORS: Readonly<Record<RoiOp, V1Operator>> = Object.fromEntries(
  OPERATORS.filter(isV1).map((op) => [op.name, op]),
) as Record<RoiOp, V1Operator>;

/** Every entry by name. */
export function operator<N extends OperatorName>(name: N): Extract<Operator, { name: N }> {
  return OPERATORS.find((op) => op.name === name) as Extract<Operator, { name: N }>;
}

/** The upright-box entries (canonical `[K, 5]` boxes), in registry order. */
export const UPRIGHT_OPERATORS = OPERATORS.filter((op): op is UprightOperator => op.boxColumns === 5);

/** The operators `/v1/diff` compares and `coverage` lists: RoI Pool, Align, Warp. */
export type ComparedOperator = Extract<Operator, { compared: true }>;
/** Their names: `'pool' | 'align' | 'warp'`. */
export type ComparedOp = ComparedOperator['name'];

/** The compared operators in canonical order (`pool, align, warp`), as a non-empty tuple. */
export const COMPARED_OPS = OPERATORS.filter((op): op is ComparedOperator => op.compared).map(
  (op) => op.name,
) as unknown as readonly [ComparedOp, ...ComparedOp[]];

/** The compared entries by name. */
export const COMPARED_OPERATORS: Readonly<Record<ComparedOp, ComparedOperator>> = Object.fromEntries(
  OPERATORS.filter((op): op is ComparedOperator => op.compared).map((op) => [op.name, op]),
) as Record<ComparedOp, ComparedOperator>;

/**
 * The compared operators in the order of comparison: exact readers first (the reference: RoI Align
 * reads the box as given), then the others in canonical order: `align, pool, warp`.
 */
export const COMPARE_ORDER: readonly ComparedOp[] = [
  ...COMPARED_OPS.filter((op) => COMPARED_OPERATORS[op].reads === 'exact'),
  ...COMPARED_OPS.filter((op) => COMPARED_OPERATORS[op].reads !== 'exact'),
];

/** The pairs `/v1/diff` compares, reference first: every pair of {@link COMPARE_ORDER}, in order. */
export const DIFF_PAIRS: readonly (readonly [ComparedOp, ComparedOp])[] = COMPARE_ORDER.flatMap((a, i) =>
  COMPARE_ORDER.slice(i + 1).map((b) => [a, b] as const),
);

/** A pair's key in responses: `"align-pool"`. */
export const pairKey = (a: ComparedOp, b: ComparedOp): string => `${a}-${b}`;

/**
 * The compared operators whose region is whole feature cells (RoI Pool, RoI Warp), in canonical order:
 * the ones the diff's overlays draw and its summary spreads (the exact reader has nothing to show).
 */
export const CELL_OPS = COMPARED_OPS.filter(
  (op): op is CellOp => COMPARED_OPERATORS[op].reads !== 'exact',
) as readonly CellOp[];

/** The compared operators that read whole cells or a snapped box: `'pool' | 'warp'`. */
export type CellOp = Extract<ComparedOperator, { reads: 'cells' | 'snapped' }>['name'];

/**
 * The compared operators in the order of a box's coverage entries: cell-aligned regions first, then
 * exact ones (`pool, warp, align`, the order the JSON has always had).
 */
export const COVERAGE_ORDER: readonly ComparedOp[] = [
  ...CELL_OPS,
  ...COMPARED_OPS.filter((op) => COMPARED_OPERATORS[op].reads === 'exact'),
];
