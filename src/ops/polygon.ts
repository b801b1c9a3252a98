/**
 * Convex polygons in image pixels, for the coverage of rotated boxes: the corners of a rotated box,
 * areas (shoelace) and intersections of convex polygons (Sutherland–Hodgman clipping). Pure and exact up
 * to float64 rounding; every shape here (rectangles, rotated rectangles, their intersections) is convex.
 */
import type { Rect } from './types.js';

/** A point `[x, y]` in image pixels (y down). */
export type Point = [number, number];

/**
 * The corners of a rotated box `(cx, cy, w, h, angle)` in image pixels, with detectron2's
 * `ROIAlignRotated` mapping of a box-frame point `(xx, yy)` (centre origin, `xx` along the box's width):
 * `x = yy·sinθ + xx·cosθ + cx`, `y = yy·cosθ − xx·sinθ + cy`, θ in degrees, counter-clockwise as seen in
 * the image (y down); `clockwise` negates θ (mmcv's flag). Order: the box's top-left `(−w/2, −h/2)`,
 * top-right, bottom-right, bottom-left, so the first corner is where bin (0, 0) lies.
 */
export function rotatedCorners(
  cx: number,
  cy: number,
  w: number,
  h: number,
  angleDegrees: number,
  clockwise = false,
): Point[] {
  const theta = ((clockwise ? -angleDegrees : angleDegrees) * Math.PI) / 180;
  const cos = Math.cos(theta);
  const sin = Math.sin(theta);
  const at = (xx: number, yy: number): Point => [yy * sin + xx * cos + cx, yy * cos - xx * sin + cy];
  return [at(-w / 2, -h / 2), at(w / 2, -h / 2), at(w / 2, h / 2), at(-w / 2, h / 2)];
}

/** The four corners of an axis-aligned rectangle, clockwise as seen in the image (y down). */
export function rectPolygon(r: Rect): Point[] {
  return [
    [r.x1, r.y1],
    [r.x2, r.y1],
    [r.x2, r.y2],
    [r.x1, r.y2],
  ];
}

/** Area of a simple polygon (shoelace formula), whatever its orientation. */
export function polygonArea(points: readonly Point[]): number {
  let twice = 0;
  for (let i = 0; i < points.length; i++) {
    const [x1, y1] = points[i];
    const [x2, y2] = points[(i + 1) % points.length];
    twice += x1 * y2 - x2 * y1;
  }
  return Math.abs(twice) / 2;
}

/** The axis-aligned bounding rectangle of some points (a zero rectangle at the origin for none). */
export function boundingRect(points: readonly Point[]): Rect {
  if (points.length === 0) return { x1: 0, y1: 0, x2: 0, y2: 0 };
  const xs = points.map((p) => p[0]);
  const ys = points.map((p) => p[1]);
  return { x1: Math.min(...xs), y1: Math.min(...ys), x2: Math.max(...xs), y2: Math.max(...ys) };
}

/** Twice the signed area: > 0 when the points turn one way, < 0 the other, 0 when degenerate. */
function signedArea2(points: readonly Point[]): number {
  let twice = 0;
  for (let i = 0; i < points.length; i++) {
    const [x1, y1] = points[i];
    const [x2, y2] = points[(i + 1) % points.length];
    twice += x1 * y2 - x2 * y1;
  }
  return twice;
}

/**
 * `subject ∩ clip` for a convex `clip` (Sutherland–Hodgman: `subject` is cut by each edge's half-plane).
 * Either orientation; a degenerate `clip` (zero area) gives an empty polygon.
 */
export function clipConvex(subject: readonly Point[], clip: readonly Point[]): Point[] {
  const orientation = Math.sign(signedArea2(clip));
  if (orientation === 0) return [];
  let output: Point[] = [...subject];
  for (let i = 0; i < clip.length && output.length > 0; i++) {
    const a = clip[i];
    const b = clip[(i + 1) % clip.length];
    // Inside = on the polygon's side of edge a→b (the side its orientation turns to), or on the edge.
    const side = (p: Point) => orientation * ((b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0]));
    const input = output;
    output = [];
    for (let j = 0; j < input.length; j++) {
      const p = input[j];
      const q = input[(j + 1) % input.length];
      const sp = side(p);
      const sq = side(q);
      if (sp >= 0) output.push(p);
      if (sp >= 0 !== sq >= 0) {
        const t = sp / (sp - sq);
        output.push([p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1])]);
      }
    }
  }
  return output;
}

/** Area of `a ∩ b` for convex `a`, `b`. */
export function intersectionArea(a: readonly Point[], b: readonly Point[]): number {
  const inter = clipConvex(a, b);
  return inter.length >= 3 ? polygonArea(inter) : 0;
}
