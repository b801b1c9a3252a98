/**
 * SVG for the diff sheet's overlays beyond upright boxes on one grid: rotated boxes (polygons, with the
 * lost / gained areas of an upright read region against them) and the pyramid level of each box of a
 * multi-level request. `render-sheet.ts` places these in its overlay layers; kept apart so the sheet's
 * file does not grow and so the geometry can be tested on its own.
 */
import { FILL_OPACITY, PALETTE, hex } from './colormap.js';
import { textToken as svgText } from './text.js';
import type { Point } from '../ops/polygon.js';
import type { Rect } from '../ops/types.js';

/** SVG and image coordinates: exact up to 2 decimals. */
const coord = (v: number): string => (Math.round(v * 100) / 100).toString();

/** SVG path data (`M … L … Z`) of a polygon in display px (image px × `sx`, `sy`); `''` for under 3 points. */
export function polygonPath(points: readonly Point[], sx: number, sy: number): string {
  if (points.length < 3) return '';
  return `M${points.map(([x, y]) => `${coord(x * sx)} ${coord(y * sy)}`).join('L')}Z`;
}

const rectPath = (r: Rect, sx: number, sy: number): string =>
  `M${coord(r.x1 * sx)} ${coord(r.y1 * sy)}H${coord(r.x2 * sx)}V${coord(r.y2 * sy)}H${coord(r.x1 * sx)}Z`;

/** The SVG layers of one rotated box against the upright region an op reads (see {@link rotatedBoxSvg}). */
export interface RotatedBoxLayers {
  /** `<clipPath>` definitions the fills use. */
  defs: string;
  /** Lost (in the box, not read: orange) and gained (read, outside the box: blue) translucent fills. */
  fills: string;
  /** The box's outline (halo + white) and a tick on its first edge: the box's own top, bin row 0. */
  outline: string;
}

/**
 * A rotated box drawn over an image: its polygon, and when `read` (the upright region an op reads) is
 * given, what that region loses (box minus region) and gains (region minus box). The two differences of a
 * rectangle and a polygon are not rectangles: both are the even-odd fill of the two outlines (their
 * symmetric difference) clipped to the box (lost) or to the region (gained). `id` must be unique in the SVG.
 */
export function rotatedBoxSvg(
  id: string,
  polygon: readonly Point[],
  read: Rect | undefined,
  sx: number,
  sy: number,
): RotatedBoxLayers {
  const box = polygonPath(polygon, sx, sy);
  if (!box) return { defs: '', fills: '', outline: '' };
  let defs = '';
  let fills = '';
  if (read && read.x2 > read.x1 && read.y2 > read.y1) {
    const region = rectPath(read, sx, sy);
    const both = `<path d="${region}${box}" fill-rule="evenodd"`;
    defs +=
      `<clipPath id="${id}-box"><path d="${box}"/></clipPath>` +
      `<clipPath id="${id}-read"><path d="${region}"/></clipPath>`;
    fills +=
      `${both} clip-path="url(#${id}-box)" fill="${hex(PALETTE.lost)}" fill-opacity="${FILL_OPACITY}"/>` +
      `${both} clip-path="url(#${id}-read)" fill="${hex(PALETTE.gained)}" fill-opacity="${FILL_OPACITY}"/>`;
  }
  const halo = hex(PALETTE.halo);
  // The tick: from the middle of the first edge (top-left → top-right corner) a few px towards the centre.
  const [a, b] = polygon;
  const cx = polygon.reduce((s, p) => s + p[0], 0) / polygon.length;
  const cy = polygon.reduce((s, p) => s + p[1], 0) / polygon.length;
  const mx = ((a[0] + b[0]) / 2) * sx;
  const my = ((a[1] + b[1]) / 2) * sy;
  const dx = cx * sx - mx;
  const dy = cy * sy - my;
  const len = Math.hypot(dx, dy);
  const tick =
    len > 0
      ? `M${coord(mx)} ${coord(my)}L${coord(mx + (dx / len) * Math.min(8, len))} ${coord(my + (dy / len) * Math.min(8, len))}`
      : '';
  const outline =
    `<path d="${box}${tick}" fill="none" stroke="${halo}" stroke-opacity="0.7" stroke-width="4" stroke-linejoin="round"/>` +
    `<path d="${box}${tick}" fill="none" stroke="${hex(PALETTE.box)}" stroke-width="2" stroke-linejoin="round"/>`;
  return { defs, fills, outline };
}

/** The words for a box's pyramid level: `P4 · 16 px` (level `k`, stride `2^k` image px). */
export function levelTag(level: number, stride: number): string {
  return `P${level} · ${+stride.toPrecision(6)} px`;
}

/**
 * A level tag drawn under a box's number label at `(x, y)` (display px, the label's baseline): small
 * bold white text on a dark halo, readable over any image.
 */
export function levelTagSvg(text: string, x: number, y: number): string {
  return svgText(text, x, y + 14, { size: 11, weight: 'bold', fill: '#ffffff', halo: hex(PALETTE.halo) });
}
