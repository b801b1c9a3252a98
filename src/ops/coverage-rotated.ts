/**
 * Coverage of a rotated box: what RoI Align Rotated reads of it (the rotated rectangle, clipped to the
 * image), and what the upright operators read when given the box's axis-aligned bounding box (what an
 * upright detector would pool for that object), each against the rotated box itself.
 */
import { InvalidInputError } from '../errors.js';
import { coverage, type BoxCoverage, type CoverageOptions, type OpCoverage } from './coverage.js';
import {
  boundingRect,
  clipConvex,
  intersectionArea,
  polygonArea,
  rectPolygon,
  rotatedCorners,
  type Point,
} from './polygon.js';
import { COVERAGE_ORDER } from './registry.js';
import type { Rect } from './types.js';

/** A rotated box `(cx, cy, w, h, angle)`: centre and size in image pixels, angle in degrees. */
export interface RotatedBox {
  cx: number;
  cy: number;
  w: number;
  h: number;
  /** Degrees, counter-clockwise as seen in the image (y down), unless `clockwise`. */
  angle: number;
}

/** An operator's coverage whose region is a polygon (`region` is then its bounding rectangle). */
export interface PolygonCoverage extends OpCoverage {
  /** The region read, clipped to the image: a convex polygon (no points when nothing is read). */
  polygon: Point[];
}

/**
 * Coverage of a rotated box. `box` is the box's axis-aligned bounding rectangle and `pool`, `warp`,
 * `align` (the registry's `COVERAGE_ORDER`) are the upright operators on that rectangle; their lost / gained / IoU, like `rotated`'s, are
 * measured against the rotated box (`polygon`, area `boxArea = w·h`).
 */
export type RotatedBoxCoverage = BoxCoverage & {
  /** The rotated box's corners, unclipped, from its own top-left corner (see `rotatedCorners`). */
  polygon: Point[];
  /** What RoI Align Rotated reads: the rotated rectangle, clipped to the image. */
  rotated: PolygonCoverage;
};

export interface RotatedCoverageOptions extends CoverageOptions {
  /**
   * Default true. false (mmcv's rule): a side under one feature cell is read as one cell (`stride` px),
   * about the centre, as the kernel enlarges it.
   */
  aligned?: boolean;
  /** Default false; true negates the angle (mmcv's flag). */
  clockwise?: boolean;
}

function polygonCoverage(read: Point[], box: readonly Point[], boxArea: number): PolygonCoverage {
  const area = read.length >= 3 ? polygonArea(read) : 0;
  const inter = boxArea > 0 && area > 0 ? intersectionArea(read, box) : 0;
  return {
    ...againstBox(boundingRect(read), area, inter, boxArea),
    polygon: read,
  };
}

function againstBox(region: Rect, area: number, inter: number, boxArea: number): OpCoverage {
  // Clipping rounds: keep lost and gained at least 0 and the intersection within both areas.
  const i = Math.min(inter, area, boxArea);
  const union = area + boxArea - i;
  const lost = boxArea - i;
  const gained = area - i;
  return {
    region,
    area,
    lost,
    gained,
    lostFraction: boxArea > 0 ? lost / boxArea : 0,
    gainedFraction: boxArea > 0 ? gained / boxArea : 0,
    iou: union > 0 ? i / union : 1,
  };
}

/** An upright op's coverage (a rectangle, from `coverage()`) re-measured against the rotated box. */
function uprightAgainst(op: OpCoverage, box: readonly Point[], boxArea: number): OpCoverage {
  const inter = boxArea > 0 && op.area > 0 ? intersectionArea(rectPolygon(op.region), box) : 0;
  return { ...againstBox(op.region, op.area, inter, boxArea), ...(op.cells ? { cells: op.cells } : {}) };
}

/**
 * The coverage of a rotated box (see {@link RotatedBoxCoverage}). RoI Align Rotated reads exactly the
 * rotated rectangle, so for a box inside the image lost = gained = 0 and IoU = 1; the part outside the
 * image is lost. Areas by the shoelace formula on the corners and convex clipping.
 *
 * Worked examples (by hand): a 20×20 box at 45° about (50, 50) has corners 14.14 px from the centre on
 * the axes; its upright bounding box is 28.28² = 800 px², so Align on it gains 400 (100 %), IoU 0.5.
 * The same box centred at (0, 50) in a 100×100 image is half outside: rotated reads 200 px², lost 200
 * (50 %), IoU 0.5.
 *
 * @throws InvalidInputError (field `box.<name>`) for a non-finite value or a negative size
 */
export function rotatedCoverage(box: RotatedBox, opts: RotatedCoverageOptions): RotatedBoxCoverage {
  for (const key of ['cx', 'cy', 'w', 'h', 'angle'] as const) {
    if (typeof box?.[key] !== 'number' || !Number.isFinite(box[key])) {
      throw new InvalidInputError(`box.${key} must be a finite number`, `box.${key}`, 'a finite number');
    }
  }
  if (box.w < 0 || box.h < 0) {
    throw new InvalidInputError('box must have w >= 0 and h >= 0', 'box', 'w >= 0 and h >= 0');
  }
  const clockwise = opts.clockwise ?? false;
  const polygon = rotatedCorners(box.cx, box.cy, box.w, box.h, box.angle, clockwise);
  const boxArea = box.w * box.h;
  const upright = coverage(boundingRect(polygon), opts);
  // What the kernel samples: the same rectangle, or (aligned false) sides raised to one cell.
  const stride = 1 / opts.spatialScale;
  const aligned = opts.aligned ?? true;
  const read = aligned
    ? polygon
    : rotatedCorners(box.cx, box.cy, Math.max(box.w, stride), Math.max(box.h, stride), box.angle, clockwise);
  const image = opts.imageSize;
  const clipped = image ? clipConvex(read, rectPolygon({ x1: 0, y1: 0, x2: image[0], y2: image[1] })) : read;
  const result = {
    box: upright.box,
    boxArea,
    polygon,
    rotated: polygonCoverage(clipped, polygon, boxArea),
  } as RotatedBoxCoverage;
  for (const op of COVERAGE_ORDER) result[op] = uprightAgainst(upright[op], polygon, boxArea);
  return result;
}
