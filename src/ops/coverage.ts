/**
 * What each operator actually reads of a box, in image pixels: the data behind the visual diffs.
 */
import { InvalidInputError } from '../errors.js';
import { resolveSpatialScale } from './params.js';
import { COMPARED_OPERATORS, COVERAGE_ORDER, type ComparedOp } from './registry.js';
import type { Rect } from './types.js';

/** Coverage of one operator for one box. Areas in square image pixels. */
export interface OpCoverage {
  /** The image-pixel region the operator reads, half-open `[x1, x2) × [y1, y2)`. */
  region: Rect;
  /**
   * For RoI Pool and RoI Warp: the feature cells behind `region`, half-open, before clipping to the
   * image (so `region = cells × stride` clipped). Absent for RoI Align (it is not cell-aligned).
   */
  cells?: Rect;
  /** Area of `region`. */
  area: number;
  /** Area of the box that the region misses (box minus region). */
  lost: number;
  /** Area of the region outside the box (region minus box). */
  gained: number;
  /** `lost / boxArea` (0 for a zero-area box). */
  lostFraction: number;
  /** `gained / boxArea` (0 for a zero-area box: see `gained` for the absolute area). */
  gainedFraction: number;
  /** Intersection over union of region and box; 1 when both are empty, 0 when only one is. */
  iou: number;
}

/** Coverage of one box by each `/v1` operator (`pool`, `warp`, `align`: see `COVERAGE_ORDER`). */
export type BoxCoverage = {
  /** The exact box, as given. */
  box: Rect;
  /** `(x2 - x1) * (y2 - y1)`. */
  boxArea: number;
} & Record<ComparedOp, OpCoverage>;

export interface CoverageOptions {
  /** 1 / stride of the feature map (e.g. 1/32). Required. */
  spatialScale: number;
  /** Image size `[width, height]`; when given, every region (Align's too) is clipped to it. */
  imageSize?: readonly [number, number];
}

function area(r: Rect): number {
  return Math.max(r.x2 - r.x1, 0) * Math.max(r.y2 - r.y1, 0);
}

function intersection(a: Rect, b: Rect): number {
  const w = Math.min(a.x2, b.x2) - Math.max(a.x1, b.x1);
  const h = Math.min(a.y2, b.y2) - Math.max(a.y1, b.y1);
  return w > 0 && h > 0 ? w * h : 0;
}

function clip(r: Rect, imageSize: readonly [number, number] | undefined): Rect {
  if (!imageSize) return r;
  const [w, h] = imageSize;
  const x1 = Math.min(Math.max(r.x1, 0), w);
  const y1 = Math.min(Math.max(r.y1, 0), h);
  return {
    x1,
    y1,
    x2: Math.max(Math.min(Math.max(r.x2, 0), w), x1),
    y2: Math.max(Math.min(Math.max(r.y2, 0), h), y1),
  };
}

function opCoverage(region: Rect, box: Rect, boxArea: number, cells?: Rect): OpCoverage {
  const a = area(region);
  const inter = intersection(region, box);
  const union = a + boxArea - inter;
  const lost = boxArea - inter;
  const gained = a - inter;
  return {
    region,
    ...(cells ? { cells } : {}),
    area: a,
    lost,
    gained,
    lostFraction: boxArea > 0 ? lost / boxArea : 0,
    gainedFraction: boxArea > 0 ? gained / boxArea : 0,
    iou: union > 0 ? inter / union : 1,
  };
}

/**
 * The image-pixel regions that RoI Pool, RoI Warp and RoI Align read for `box`, what each loses and
 * gains against the exact box, as areas, fractions of the box area, and IoU. Stride `t = 1 / spatialScale`:
 * - Align: the exact box, clipped to the image (lost 0, gained 0, IoU 1 for a box inside it; the
 *   part outside the image is lost: there is no image there, only zero or repeated edge samples).
 * - Warp (aligned = true): `[qx1*t, qx2*t) × [qy1*t, qy2*t)` (see `warpCells`).
 * - Pool: `[sx*t, (ex+1)*t) × [sy*t, (ey+1)*t)` (C-rounded cells, end cell inclusive).
 * All three regions are clipped to `imageSize` when it is given.
 *
 * Worked example: 512×512 image, stride 32, box `(296, 192, 496, 337)` (area 29000):
 * Pool reads `[288, 512) × [192, 384)`: area 43008, lost 0, gained 14008 (0.483), IoU 0.674;
 * Warp reads `[288, 512) × [192, 352)`: area 35840, lost 0, gained 6840 (0.236), IoU 0.809.
 *
 * Zero-area boxes (`x1 = x2` or `y1 = y2`) are valid: `boxArea = 0`, both fractions are 0 (there is
 * nothing to be a fraction of; `gained` still holds the absolute area), and `iou` is 0 for a region
 * with area, 1 for an empty one (Align's). No NaN anywhere.
 */
export function coverage(box: Rect, opts: CoverageOptions): BoxCoverage {
  const s = resolveSpatialScale(opts.spatialScale);
  for (const key of ['x1', 'y1', 'x2', 'y2'] as const) {
    if (typeof box?.[key] !== 'number' || !Number.isFinite(box[key])) {
      throw new InvalidInputError(`box.${key} must be a finite number`, `box.${key}`, 'a finite number');
    }
  }
  if (box.x2 < box.x1 || box.y2 < box.y1) {
    throw new InvalidInputError('box must have x2 >= x1 and y2 >= y1', 'box', 'x2 >= x1 and y2 >= y1');
  }
  const imageSize = opts.imageSize;
  if (
    imageSize !== undefined &&
    !(imageSize.length === 2 && imageSize.every((v) => Number.isFinite(v) && v > 0))
  ) {
    throw new InvalidInputError(
      'imageSize must be [width, height], positive',
      'imageSize',
      '[width, height] > 0',
    );
  }
  // The stride from the scale as given, not its float32 rounding: 1 / fround(1/7) = 6.9999997 would put a
  // box that sits exactly on cells (21..42 at stride 7) 1e-6 px off its region (lost/gained > 0, IoU < 1).
  // The cells themselves come from float32 products, like the operators'.
  const t = 1 / opts.spatialScale;
  const exact: Rect = { x1: box.x1, y1: box.y1, x2: box.x2, y2: box.y2 };
  const boxArea = area(exact);

  const toPixels = (c: Rect): Rect =>
    clip({ x1: c.x1 * t, y1: c.y1 * t, x2: c.x2 * t, y2: c.y2 * t }, imageSize);

  const result = { box: exact, boxArea } as BoxCoverage;
  for (const op of COVERAGE_ORDER) {
    const entry = COMPARED_OPERATORS[op];
    if (entry.reads === 'exact') {
      // Clipped like the others: a box wholly outside the image reads nothing (lost = the whole box).
      result[op] = opCoverage(clip(exact, imageSize), exact, boxArea);
    } else {
      // The cells from float32 products, like the operators' (`readCells` of the registry).
      const cells = (entry as { readCells: (box: Rect, s: number) => Rect }).readCells(box, s);
      result[op] = opCoverage(toPixels(cells), exact, boxArea, cells);
    }
  }
  return result;
}
