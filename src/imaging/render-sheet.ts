/**
 * The visual diff sheet: what RoI Pool, RoI Align and RoI Warp keep, lose and gain, per box.
 *
 * Parts (each also returned on its own, for the JSON form of `/v1/diff`):
 * 1. overlay strip (image input only): the image twice, for RoI Pool and RoI Warp, with per box the exact
 *    box (= what RoI Align reads), the feature grid around it, the area the op reads, and the lost / gained
 *    areas as translucent fills; plus a legend;
 * 2. feature heatmap: the feature map (one channel or a reduction) with the boxes drawn on it;
 * 3. one row per box: pooled outputs of the three ops as heatmaps on one shared scale, the differences
 *    |align − pool| and |align − warp| on their own scale, colour bars, and the coverage numbers.
 *
 * Sizes are fixed in display pixels (panels, fonts) and the image is scaled to fit a bounded box, so a
 * 4000 px photo and a 200 px icon give sheets of the same legible size. Text is drawn as glyph outlines
 * (see `text.ts`), never with system fonts.
 *
 * One file of ~1000 lines on purpose: the parts share the layout constants (margins, panel and label
 * widths, fonts) and the colour scale of a row, and place themselves against each other; split up, every
 * part would import the same dozen constants and the sheet's geometry would be read across files. The
 * pieces that stand alone live elsewhere: colour maps (`colormap.ts`), heatmaps and statistics
 * (`render.ts`), text (`text.ts`).
 */
import sharp from 'sharp';
import { FILL_OPACITY, PALETTE, hex, type ColormapName, type Rgb } from './colormap.js';
import {
  colorbarImage,
  formatNumber,
  heatmapImage,
  pairStats,
  reduceDifference,
  reduceFeatureMap,
  reducePooled,
  toRgb,
  valueRange,
  type ChannelSelect,
  type PairStats,
  type Raster,
} from './render.js';
import { drawTextRuns, measureText, takeTextRuns, textToken as svgText, wrapText } from './text.js';
import { levelTag, levelTagSvg, rotatedBoxSvg } from './overlay-shapes.js';
import { boxAt } from '../ops/boxes.js';
import type { BoxCoverage, OpCoverage } from '../ops/coverage.js';
import {
  CELL_OPS,
  COVERAGE_ORDER,
  COMPARE_ORDER,
  DIFF_PAIRS,
  COMPARED_OPS,
  COMPARED_OPERATORS,
  type CellOp,
  type ComparedOp,
} from '../ops/registry.js';
import type { RotatedBoxCoverage } from '../ops/coverage-rotated.js';
import type { Point } from '../ops/polygon.js';
import type { Boxes, FeatureMap, Pooled, Rect } from '../ops/types.js';

/** A half-open rectangle `[x1, x2) × [y1, y2)` in input-image pixels. */
export type Region = Rect;
export type { BoxCoverage, OpCoverage };

/** A decoded image, 8-bit interleaved, `channels` 3 (RGB) or 4 (RGBA). */
export interface RawImage {
  data: Uint8Array;
  width: number;
  height: number;
  channels: 3 | 4;
}

/** An operator the diff compares (the registry's `ComparedOp`: pool, align, warp). */
export type OpName = ComparedOp;

/** Everything the sheet shows. */
export interface DiffRenderInput {
  /** The input image, when the request had one. Drawn over the `imageSize` frame (it may be resized). */
  image?: RawImage;
  /** `[width, height]` of the frame box coordinates live in; required with `image`. */
  imageSize?: readonly [number, number];
  /** The feature map the ops read, `[N, C, H, W]`; gives the feature heatmap when present. */
  features?: FeatureMap;
  /** Feature coordinates = image coordinates × `spatialScale`. */
  spatialScale: number;
  /** Canonical boxes `[K, 5]` (b, x1, y1, x2, y2). */
  boxes: Boxes;
  /**
   * Per box, from `coverage()` of `src/ops`; for a rotated box `rotatedCoverage()` (its `polygon` is drawn,
   * `box` is its upright bounding box, the rectangle Pool, Align and Warp were run on).
   */
  coverage: readonly (BoxCoverage | RotatedBoxCoverage)[];
  /**
   * Multi-level requests: per box, the pyramid level it was pooled from and that level's stride (image
   * px), drawn on the sheet; grids and regions use the box's stride. Default: every box at `spatialScale`.
   */
  levels?: readonly { level: number; stride: number }[];
  /** One `[K, C, PH, PW]` output per op. */
  pooled: Readonly<Record<OpName, Pooled>>;
  /** Echoed in the header. */
  params: { outputSize: readonly [number, number]; samplingRatio: number; aligned: boolean; mode: string };
  /** Channel shown by heatmaps. Default `'meanabs'`. */
  channel?: ChannelSelect;
  /** How many boxes get panels (the first ones). Default 8. */
  maxBoxes?: number;
  /** Extra header lines (e.g. that the image was resized). Default none. */
  notes?: readonly string[];
  /**
   * Whether to render the feature heatmap when the sheet does not show it (image input: the sheet shows
   * the overlay; only the JSON has the heatmap). Default true; the PNG sheet passes false to save its cost.
   */
  featureHeatmap?: boolean;
}

/** Difference statistics of one box (or all boxes) for each pair of ops. */
export interface PairDiff extends PairStats {
  /** Reference op (`relL2` is relative to its norm). */
  a: OpName;
  b: OpName;
}

export interface DiffRender {
  /** The whole sheet. */
  sheet: Raster;
  /** Overlay strip (both overlays and the legend); absent without an image. */
  overlay?: Raster;
  /** Feature heatmap with boxes; absent without a feature map, or when not asked for (`featureHeatmap`). */
  featureHeatmap?: Raster;
  /** One panel row per shown box. */
  rows: Raster[];
  /** The summary over all boxes (coverage spreads, IoU histograms, differences); absent without boxes. */
  summary?: Raster;
  /** Number of boxes with panels, `min(K, maxBoxes)`. */
  boxesShown: number;
}

/** The pairs of ops compared, reference first (the registry's `DIFF_PAIRS`). */
export const OP_PAIRS: readonly (readonly [OpName, OpName])[] = DIFF_PAIRS;

const OP_TITLE = (op: OpName): string => COMPARED_OPERATORS[op].title;

/** The op the others are compared with: the one reading the exact box (RoI Align). */
const REFERENCE: OpName = COMPARE_ORDER[0];

// Layout, in display pixels. Fixed, so the sheet is legible whatever the input size.
const MARGIN = 16;
const OVERLAY_MAX_W = 440;
const OVERLAY_MAX_H = 400;
/** Tiny images are upscaled at most this much (nearest), so a 16 px icon does not become pixel soup. */
const OVERLAY_MAX_UPSCALE = 16;
const LEGEND_W = 290;
const PANEL = 128;
const LABEL_W = 320;
const GAP = 14;
const BAR_W = 12;
const BAR_LABEL_W = 62;
const TITLE_H = 30;
/** Grid lines closer than this (display px) are not drawn: they would just grey the box out. */
const MIN_GRID_SPACING = 4;
const INK = '#1a1a1a';
const MUTED = '#555555';

/** Parts of `a` not in `b` (`a \ b`), as up to 4 disjoint rectangles. */
export function rectDifference(a: Region, b: Region): Region[] {
  if (a.x2 <= a.x1 || a.y2 <= a.y1) return [];
  const ix1 = Math.max(a.x1, b.x1);
  const iy1 = Math.max(a.y1, b.y1);
  const ix2 = Math.min(a.x2, b.x2);
  const iy2 = Math.min(a.y2, b.y2);
  if (ix2 <= ix1 || iy2 <= iy1) return [a];
  const parts: Region[] = [];
  if (iy1 > a.y1) parts.push({ x1: a.x1, y1: a.y1, x2: a.x2, y2: iy1 });
  if (a.y2 > iy2) parts.push({ x1: a.x1, y1: iy2, x2: a.x2, y2: a.y2 });
  if (ix1 > a.x1) parts.push({ x1: a.x1, y1: iy1, x2: ix1, y2: iy2 });
  if (a.x2 > ix2) parts.push({ x1: ix2, y1: iy1, x2: a.x2, y2: iy2 });
  return parts;
}

/** Display scale for a `width × height` frame to fit `maxW × maxH` (upscaling at most `maxUpscale`). */
function displayScale(width: number, height: number, maxW: number, maxH: number, maxUpscale: number): number {
  return Math.min(maxW / width, maxH / height, maxUpscale);
}

/** One box as the overlay painter needs it. */
export interface OverlayBox {
  label: string;
  /** The box, or a rotated box's upright bounding box. */
  box: Region;
  /** What the op reads; absent = draw only the box outline. */
  read?: Region;
  /** A rotated box's corners: drawn instead of `box`, and lost / gained are measured against it. */
  polygon?: readonly Point[];
  /** The box's feature stride (image px), for its grid; default the overlay's. */
  stride?: number;
  /** A second line under the label (the box's pyramid level). */
  tag?: string;
}

/** A box's rotated polygon, when its coverage is a rotated box's. */
function polygonOf(cov: BoxCoverage | RotatedBoxCoverage | undefined): readonly Point[] | undefined {
  return cov && 'polygon' in cov ? cov.polygon : undefined;
}

/** SVG and image coordinates: exact up to 2 decimals (never rounded to 3 significant digits). */
const coord = (v: number): string => (Math.round(v * 100) / 100).toString();

function rectSvg(r: Region, sx: number, sy: number, attrs: string): string {
  const w = (r.x2 - r.x1) * sx;
  const h = (r.y2 - r.y1) * sy;
  if (!(w > 0 && h > 0)) return '';
  return `<rect x="${coord(r.x1 * sx)}" y="${coord(r.y1 * sy)}" width="${coord(w)}" height="${coord(h)}" ${attrs}/>`;
}

/** Lost / gained areas thinner than this (display px) are hidden by the 4 px outline halos around them. */
const THIN_REGION = 5;
/** Thin lost / gained areas are redrawn over the outlines at least this wide (display px). */
const MIN_REGION_PX = 2;

/**
 * SVG of a thin lost / gained area redrawn over the outlines, opaque and at least `MIN_REGION_PX` wide and
 * tall (centred on the area), or `''` when the area is wide enough to show beneath them. Without it a strip
 * of a few pixels, between the box outline and the read outline, vanished under their halos.
 */
function thinRegionSvg(r: Region, sx: number, sy: number, fill: string): string {
  const w = (r.x2 - r.x1) * sx;
  const h = (r.y2 - r.y1) * sy;
  if (!(w > 0 && h > 0) || Math.min(w, h) >= THIN_REGION) return '';
  const dw = Math.max(w, MIN_REGION_PX);
  const dh = Math.max(h, MIN_REGION_PX);
  const x = r.x1 * sx - (dw - w) / 2;
  const y = r.y1 * sy - (dh - h) / 2;
  return `<rect x="${coord(x)}" y="${coord(y)}" width="${coord(dw)}" height="${coord(dh)}" fill="${fill}"/>`;
}

/** SVG of feature-grid lines (cell edges at multiples of `stride` image px) around `area`, one cell beyond. */
function gridSvg(
  area: Region,
  stride: number,
  sx: number,
  sy: number,
  frameW: number,
  frameH: number,
): string {
  const cx0 = Math.max(0, Math.floor(area.x1 / stride) - 1);
  const cx1 = Math.min(Math.ceil(frameW / stride), Math.ceil(area.x2 / stride) + 1);
  const cy0 = Math.max(0, Math.floor(area.y1 / stride) - 1);
  const cy1 = Math.min(Math.ceil(frameH / stride), Math.ceil(area.y2 / stride) + 1);
  const top = cy0 * stride * sy;
  const bottom = Math.min(cy1 * stride, frameH) * sy;
  const left = cx0 * stride * sx;
  const right = Math.min(cx1 * stride, frameW) * sx;
  let d = '';
  // Lines at pixel centres so they stay 1 px sharp.
  for (let c = cx0; c <= cx1; c++) {
    const x = Math.round(c * stride * sx) + 0.5;
    if (x < frameW * sx) d += `M${x} ${coord(top)}V${coord(bottom)}`;
  }
  for (let c = cy0; c <= cy1; c++) {
    const y = Math.round(c * stride * sy) + 0.5;
    if (y < frameH * sy) d += `M${coord(left)} ${y}H${coord(right)}`;
  }
  return d
    ? `<path d="${d}" stroke="${hex(PALETTE.grid)}" stroke-opacity="0.4" stroke-width="1" fill="none"/>`
    : '';
}

/**
 * Paints boxes over an image: feature grid (when `drawGrid` and its lines are at least 4 px apart), lost
 * (box minus `read`) and gained (`read` minus box) translucent fills, read-area outline (dashed), exact box
 * outline (solid), lost / gained areas thinner than 5 px again over the outlines (opaque, at least 2 px),
 * and a label; the image scaled to fit 440 × 400 px (upscaled at most 16×, nearest). `frame` is `[width, height]` of the boxes' coordinate frame (image px); `base` is stretched over it.
 *
 * @returns the painted raster, and whether the grid was drawn; display px = image px × `width / frame[0]`
 */
export async function renderOverlay(
  base: RawImage,
  frame: readonly [number, number],
  boxes: readonly OverlayBox[],
  stride: number,
  drawGrid: boolean,
): Promise<{ image: Raster; gridDrawn: boolean }> {
  const [fw, fh] = frame;
  const scale = displayScale(fw, fh, OVERLAY_MAX_W, OVERLAY_MAX_H, OVERLAY_MAX_UPSCALE);
  const dw = Math.max(1, Math.round(fw * scale));
  const dh = Math.max(1, Math.round(fh * scale));
  const sx = dw / fw;
  const sy = dh / fh;
  const gridFits = (t: number) => drawGrid && t * Math.min(sx, sy) >= MIN_GRID_SPACING;
  let gridDrawn = gridFits(stride);
  const halo = hex(PALETTE.halo);
  const layers = { defs: '', grid: '', fills: '', read: '', box: '', thin: '', labels: '' };
  for (const [i, { label, box, read, polygon, tag, stride: own }] of boxes.entries()) {
    const boxStride = own ?? stride;
    const rotated = polygon ? rotatedBoxSvg(`rb${i}`, polygon, read, sx, sy) : undefined;
    if (read) {
      gridDrawn &&= gridFits(boxStride);
      if (gridFits(boxStride)) {
        const around = {
          x1: Math.min(box.x1, read.x1),
          y1: Math.min(box.y1, read.y1),
          x2: Math.max(box.x2, read.x2),
          y2: Math.max(box.y2, read.y2),
        };
        layers.grid += gridSvg(around, boxStride, sx, sy, fw, fh);
      }
      const lostAttrs = `fill="${hex(PALETTE.lost)}" fill-opacity="${FILL_OPACITY}"`;
      const gainedAttrs = `fill="${hex(PALETTE.gained)}" fill-opacity="${FILL_OPACITY}"`;
      if (rotated) {
        layers.defs += rotated.defs;
        layers.fills += rotated.fills;
      } else {
        for (const r of rectDifference(box, read)) {
          layers.fills += rectSvg(r, sx, sy, lostAttrs);
          layers.thin += thinRegionSvg(r, sx, sy, hex(PALETTE.lost));
        }
        for (const r of rectDifference(read, box)) {
          layers.fills += rectSvg(r, sx, sy, gainedAttrs);
          layers.thin += thinRegionSvg(r, sx, sy, hex(PALETTE.gained));
        }
      }
      const dashed = `fill="none" stroke-width="2" stroke-dasharray="7 4"`;
      layers.read += rectSvg(
        read,
        sx,
        sy,
        `fill="none" stroke="${halo}" stroke-opacity="0.7" stroke-width="4"`,
      );
      layers.read += rectSvg(read, sx, sy, `stroke="${hex(PALETTE.read)}" ${dashed}`);
    }
    if (rotated) {
      layers.box += rotated.outline;
    } else {
      layers.box += rectSvg(
        box,
        sx,
        sy,
        `fill="none" stroke="${halo}" stroke-opacity="0.7" stroke-width="4"`,
      );
      layers.box += rectSvg(box, sx, sy, `fill="none" stroke="${hex(PALETTE.box)}" stroke-width="2"`);
    }
    const lx = Math.min(Math.max(box.x1 * sx + 4, 2), dw - 20);
    const ly = Math.min(Math.max(box.y1 * sy + 17, 15), dh - (tag ? 18 : 4));
    layers.labels += svgText(label, lx, ly, { size: 14, weight: 'bold', fill: '#ffffff', halo });
    if (tag) layers.labels += levelTagSvg(tag, Math.min(lx, Math.max(2, dw - 70)), ly);
  }
  const svg =
    (layers.defs ? `<defs>${layers.defs}</defs>` : '') +
    layers.grid +
    layers.fills +
    layers.read +
    layers.box +
    layers.thin +
    layers.labels;
  // The strip hands a base already at display size (resized once for both overlays); anything else is
  // resized here. Upscaling stays nearest (pixels and feature cells stay crisp); downscaling filters.
  const sized: Raster =
    base.width === dw && base.height === dh && base.channels === 3
      ? {
          data: Buffer.from(base.data.buffer, base.data.byteOffset, base.data.byteLength),
          width: dw,
          height: dh,
        }
      : await toRgb(
          sharp(Buffer.from(base.data.buffer, base.data.byteOffset, base.data.byteLength), {
            raw: { width: base.width, height: base.height, channels: base.channels },
          }).resize(dw, dh, {
            fit: 'fill',
            kernel: dw >= base.width && dh >= base.height ? 'nearest' : 'lanczos3',
          }),
        );
  const image = await compose(dw, dh, [{ image: sized, left: 0, top: 0 }], svg);
  return { image, gridDrawn };
}

/**
 * "Reading the rows": what the panels and numbers mean, wrapped to `width`, as SVG at `(x, y)`, and its
 * height. `first` paragraphs go before the standard ones.
 */
function howToReadSvg(
  x: number,
  y: number,
  width: number,
  first: readonly string[] = [],
): { svg: string; height: number } {
  const paragraphs = [
    ...first,
    'Per box: the three pooled outputs on one shared colour scale (viridis), then |Align − Pool| and ' +
      '|Align − Warp| on their own scale from 0 (cividis); the mean and max under them are of the panel ' +
      'as drawn, on that scale.',
    'lost / gained: box area the op does not read / reads outside the box, in px² and % of the box area; ' +
      'IoU: read area vs box.',
    'RoI Align samples the exact box, RoI Warp the box snapped to the grid, RoI Pool whole cells (end cell ' +
      'included).',
  ];
  let svg = svgText('Reading the sheet', x, y + 14, { size: 13, weight: 'bold', fill: INK });
  let cy = y + 34;
  for (const paragraph of paragraphs) {
    for (const line of wrapText(paragraph, width, 11.5)) {
      svg += svgText(line, x, cy, { size: 11.5, fill: MUTED });
      cy += 15;
    }
    cy += 6;
  }
  return { svg, height: cy - y };
}

/** The legend of the overlays as SVG at `(x, y)`, and its height. */
function legendSvg(
  x: number,
  y: number,
  stride: number,
  gridDrawn: boolean,
): { svg: string; height: number } {
  const halo = hex(PALETTE.halo);
  const sw = 34; // swatch width
  const rows: { swatch: string; lines: string[] }[] = [
    {
      swatch: `<rect x="0" y="0" width="${sw}" height="18" fill="#8a8a8a"/><rect x="5" y="4" width="${sw - 10}" height="10" fill="none" stroke="${halo}" stroke-opacity="0.7" stroke-width="4"/><rect x="5" y="4" width="${sw - 10}" height="10" fill="none" stroke="#ffffff" stroke-width="2"/>`,
      lines: ['exact box', '= what RoI Align reads'],
    },
    {
      swatch: `<rect x="0" y="0" width="${sw}" height="18" fill="#8a8a8a"/><path d="M2 9H${sw - 2}" stroke="${halo}" stroke-opacity="0.7" stroke-width="4"/><path d="M2 9H${sw - 2}" stroke="${hex(PALETTE.read)}" stroke-width="2" stroke-dasharray="7 4"/>`,
      lines: ['area the op reads', 'Pool: rounded cells; Warp: snapped box'],
    },
    {
      swatch: `<rect x="0" y="0" width="${sw}" height="18" fill="#8a8a8a"/><rect x="0" y="0" width="${sw}" height="18" fill="${hex(PALETTE.lost)}" fill-opacity="${FILL_OPACITY}"/>`,
      lines: ['lost: in the box, not read'],
    },
    {
      swatch: `<rect x="0" y="0" width="${sw}" height="18" fill="#8a8a8a"/><rect x="0" y="0" width="${sw}" height="18" fill="${hex(PALETTE.gained)}" fill-opacity="${FILL_OPACITY}"/>`,
      lines: ['gained: read, outside the box'],
    },
    {
      swatch: `<rect x="0" y="0" width="${sw}" height="18" fill="#8a8a8a"/><path d="M11.5 0V18M22.5 0V18M0 9.5H${sw}" stroke="#ffffff" stroke-opacity="0.4"/>`,
      lines: gridDrawn
        ? [`feature grid (stride ${formatNumber(stride)} px)`]
        : [`feature grid (stride ${formatNumber(stride)} px)`, 'too fine to draw at this scale'],
    },
  ];
  let svg = svgText('Legend', x, y + 14, { size: 14, weight: 'bold', fill: INK });
  let cy = y + 28;
  for (const row of rows) {
    svg += `<g transform="translate(${x} ${cy})">${row.swatch}</g>`;
    row.lines.forEach((line, i) => {
      svg += svgText(line, x + sw + 10, cy + 13 + i * 16, {
        size: i === 0 ? 13 : 11.5,
        fill: i === 0 ? INK : MUTED,
      });
    });
    cy += Math.max(26, row.lines.length * 16 + 10);
  }
  const help = howToReadSvg(x, cy + 8, LEGEND_W - 10);
  return { svg: svg + help.svg, height: cy + 8 + help.height - y };
}

/** A `width × height` raster of one colour. */
function solid(width: number, height: number, [r, g, b]: Rgb): Raster {
  const data = Buffer.alloc(width * height * 3);
  for (let i = 0; i < width * height; i++) data.set([r, g, b], i * 3);
  return { data, width, height };
}

/**
 * Copies `image` into `canvas` with its top-left corner at `(left, top)` (rounded), clipped to the canvas.
 * Row copies in JS: libvips' composite of raw layers cost ~150 ms for one sheet, this ~1 ms.
 */
function blit(canvas: Raster, image: Raster, left: number, top: number): void {
  const x0 = Math.round(left);
  const y0 = Math.round(top);
  const from = Math.max(0, -x0);
  const to = Math.min(image.width, canvas.width - x0);
  if (to <= from) return;
  for (let y = Math.max(0, -y0); y < image.height && y0 + y < canvas.height; y++) {
    const src = (y * image.width + from) * 3;
    image.data.copy(canvas.data, ((y0 + y) * canvas.width + x0 + from) * 3, src, src + (to - from) * 3);
  }
}

/**
 * Renders an SVG body (the markup inside `<svg>`) of size `width × height` over a white canvas with raw
 * rasters placed under it. The rasters are copied in JS and the SVG, rasterised alone by librsvg, is
 * blended here with the arithmetic of libvips' `over` for 8-bit images (float32, truncated), so the pixels
 * are those of `sharp().composite()` (a rare edge value one level apart) at about half the cost: the
 * composites were the sheet's largest cost (`npm run bench -- render`).
 */
export async function compose(
  width: number,
  height: number,
  rasters: readonly { image: Raster; left: number; top: number }[],
  markup: string,
): Promise<Raster> {
  const canvas: Raster = { data: Buffer.alloc(width * height * 3, 255), width, height };
  for (const { image, left, top } of rasters) blit(canvas, image, left, top);
  if (!markup) return canvas;
  // Text comes out of the SVG and is drawn last from cached glyph masks (see `drawTextRuns`).
  const { svg, runs } = takeTextRuns(markup);
  if (svg) await blendSvg(canvas, svg);
  await drawTextRuns(canvas, runs);
  return canvas;
}

/** Rasterises an SVG body of the canvas's size alone and blends it over the canvas. */
async function blendSvg(canvas: Raster, svg: string): Promise<void> {
  const { width, height } = canvas;
  const { data: layer } = await sharp(
    Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">${svg}</svg>`),
  )
    .ensureAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  const out = canvas.data;
  for (let i = 0, o = 0; o < out.length; i += 4, o += 3) {
    const a = layer[i + 3];
    if (a === 0) continue;
    if (a === 255) {
      out[o] = layer[i];
      out[o + 1] = layer[i + 1];
      out[o + 2] = layer[i + 2];
    } else {
      // out = src·α + dst·(1 − α) in float32, truncated, as libvips computes it (tested).
      const fr = Math.fround;
      const f = fr(a / 255);
      const g = fr(1 - f);
      out[o] = fr(fr(layer[i] * f) + fr(out[o] * g)) | 0;
      out[o + 1] = fr(fr(layer[i + 1] * f) + fr(out[o + 1] * g)) | 0;
      out[o + 2] = fr(fr(layer[i + 2] * f) + fr(out[o + 2] * g)) | 0;
    }
  }
}

function channelLabel(channel: ChannelSelect, channels: number): string {
  if (typeof channel === 'number') return `channel ${channel} of ${channels}`;
  const what = { mean: 'mean', meanabs: 'mean |x|', max: 'max' }[channel];
  return `${what} over ${channels} channels`;
}

/** `1/32` for reciprocals of integers (the usual strides), else the number. */
function formatScale(s: number): string {
  const stride = 1 / s;
  return Math.abs(stride - Math.round(stride)) < 1e-6 ? `1/${Math.round(stride)}` : formatNumber(s);
}

const percent = (f: number): string => (f === 0 ? '0%' : `${(f * 100).toFixed(1)}%`);

/** Areas in px²: exact integers below 100 000 (1 decimal below 100), then k / M. */
function formatArea(a: number): string {
  if (a >= 1e6) return `${(a / 1e6).toFixed(2)}M`;
  if (a >= 1e5) return `${(a / 1e3).toFixed(0)}k`;
  if (a >= 100) return String(Math.round(a));
  return String(Math.round(a * 10) / 10);
}

/** A vertical colour bar with min / mid / max tick labels, as raster + SVG. */
function colorbar(
  x: number,
  y: number,
  height: number,
  min: number,
  max: number,
  colormap: ColormapName,
): { raster: { image: Raster; left: number; top: number }; svg: string } {
  const image = colorbarImage(BAR_W, height, colormap);
  let svg = `<rect x="${x - 0.5}" y="${y - 0.5}" width="${BAR_W + 1}" height="${height + 1}" fill="none" stroke="#999"/>`;
  const ticks: [number, number][] = [
    [max, y],
    [(min + max) / 2, y + height / 2],
    [min, y + height],
  ];
  for (const [v, ty] of ticks) {
    svg += `<path d="M${x + BAR_W} ${coord(ty)}h4" stroke="${MUTED}"/>`;
    svg += svgText(formatNumber(v), x + BAR_W + 7, ty + 4, { size: 11, fill: MUTED });
  }
  return { raster: { image, left: x, top: y }, svg };
}

/**
 * The two lines under a difference panel: the mean and max of the panel's values as drawn (the channel
 * reduction of |a − b|), so both are read on the colour bar beside it. They used to be the mean and max
 * over all channels, a max that could lie above the bar's top.
 */
export function panelCaption(map: Float32Array): [string, string] {
  let sum = 0;
  for (const v of map) sum += v;
  return [
    `mean ${formatNumber(map.length ? sum / map.length : 0)}`,
    `max ${formatNumber(valueRange(map)[1])}`,
  ];
}

/** One row of panels for box `k`. */
async function renderRow(input: DiffRenderInput, k: number, channel: ChannelSelect): Promise<Raster> {
  const { pooled, coverage } = input;
  const [, C, PH, PW] = pooled[REFERENCE].shape;
  const cell = Math.max(1, Math.floor(PANEL / Math.max(PH, PW)));
  const pw = cell * PW;
  const ph = cell * PH;
  const values = Object.fromEntries(
    COMPARED_OPS.map((op) => [op, reducePooled(pooled[op], k, channel)]),
  ) as Record<OpName, Float32Array>;
  const [vmin, vmax] = valueRange(...COMPARED_OPS.map((op) => values[op]));
  // The reference against each other op: |Align − Pool|, |Align − Warp|.
  const diffs = OP_PAIRS.filter(([a]) => a === REFERENCE).map(([a, b]) => ({
    title: `|${COMPARED_OPERATORS[a].shortTitle} − ${COMPARED_OPERATORS[b].shortTitle}|`,
    map: reduceDifference(pooled[a], pooled[b], k, channel),
  }));
  const dmax = valueRange(...diffs.map((d) => d.map))[1];

  const rasters: { image: Raster; left: number; top: number }[] = [];
  let svg = '';
  const top = TITLE_H + 8;

  // Left column: which box, then the coverage table.
  const box = boxAt(input.boxes, k);
  const b = box.b;
  const cov = coverage[k];
  let ty = 22;
  svg += svgText(`Box ${k + 1}`, MARGIN, ty, { size: 15, weight: 'bold', fill: INK });
  svg += svgText(
    `(${coord(box.x1)}, ${coord(box.y1)})–(${coord(box.x2)}, ${coord(box.y2)})`,
    MARGIN + 58,
    ty,
    {
      size: 12,
      fill: MUTED,
    },
  );
  ty += 18;
  svg += svgText(
    `${coord(box.x2 - box.x1)} × ${coord(box.y2 - box.y1)} px, area ${formatArea(cov.boxArea)}${b !== 0 ? `, batch ${b}` : ''}`,
    MARGIN,
    ty,
    { size: 12, fill: MUTED },
  );
  // Multi-level and rotated boxes: one more line, the box's level and what the size above is.
  const level = input.levels?.[k];
  const more = [
    ...(level ? [`level ${levelTag(level.level, level.stride)}`] : []),
    ...(polygonOf(cov) ? ['rotated: size of its upright box, area of the box'] : []),
  ];
  if (more.length > 0) {
    ty += 16;
    svg += svgText(more.join(' · '), MARGIN, ty, { size: 12, fill: MUTED });
  }
  const cols = [MARGIN, MARGIN + 74, MARGIN + 174, MARGIN + 274];
  ty += 24;
  ['', 'lost', 'gained', 'IoU'].forEach((h, i) => {
    svg += svgText(h, cols[i], ty, { size: 12, weight: 'bold', fill: INK });
  });
  svg += `<path d="M${MARGIN} ${ty + 5.5}H${MARGIN + LABEL_W - 20}" stroke="#ccc"/>`;
  const tableRows: [string, OpCoverage][] = COVERAGE_ORDER.map((op) => [OP_TITLE(op), cov[op]]);
  // A rotated box: the three ops read its upright box; RoI Align Rotated reads the box itself.
  if ('rotated' in cov) tableRows.push(['Rotated', cov.rotated]);
  for (const [title, c] of tableRows) {
    ty += 18;
    const cells = [
      title,
      `${formatArea(c.lost)} (${percent(c.lostFraction)})`,
      `${formatArea(c.gained)} (${percent(c.gainedFraction)})`,
      c.iou.toFixed(3),
    ];
    cells.forEach((text, i) => {
      // Shrink a cell that would run into the next column (huge areas, fractions over 1000 %).
      const room = (i + 1 < cols.length ? cols[i + 1] - 6 : MARGIN + LABEL_W - 4) - cols[i];
      const size = Math.min(i === 0 ? 12 : 11.5, (11.5 * room) / Math.max(1, measureText(text, 11.5)));
      svg += svgText(text, cols[i], ty, { size, fill: i === 0 ? INK : MUTED });
    });
  }
  const leftHeight = ty + 12;

  // Value panels on one shared scale.
  let x = MARGIN + LABEL_W;
  for (const op of COMPARED_OPS) {
    const image = heatmapImage(values[op], PH, PW, { min: vmin, max: vmax, cell, colormap: 'viridis' });
    rasters.push({ image, left: x, top });
    svg += `<rect x="${x - 0.5}" y="${top - 0.5}" width="${pw + 1}" height="${ph + 1}" fill="none" stroke="#999"/>`;
    svg += svgText(OP_TITLE(op), x + pw / 2, TITLE_H, {
      size: 13,
      weight: 'bold',
      fill: INK,
      anchor: 'middle',
    });
    x += pw + (op === COMPARED_OPS[COMPARED_OPS.length - 1] ? 8 : GAP / 2);
  }
  const bar1 = colorbar(x, top, ph, vmin, vmax, 'viridis');
  rasters.push(bar1.raster);
  svg += bar1.svg;
  x += BAR_W + BAR_LABEL_W + GAP;

  // Difference panels on their own scale, from 0.
  for (const d of diffs) {
    const image = heatmapImage(d.map, PH, PW, { min: 0, max: dmax, cell, colormap: 'cividis' });
    rasters.push({ image, left: x, top });
    svg += `<rect x="${x - 0.5}" y="${top - 0.5}" width="${pw + 1}" height="${ph + 1}" fill="none" stroke="#999"/>`;
    svg += svgText(d.title, x + pw / 2, TITLE_H, { size: 13, weight: 'bold', fill: INK, anchor: 'middle' });
    const caption = panelCaption(d.map);
    svg += svgText(caption[0], x + pw / 2, top + ph + 15, {
      size: 11,
      fill: MUTED,
      anchor: 'middle',
    });
    svg += svgText(caption[1], x + pw / 2, top + ph + 29, {
      size: 11,
      fill: MUTED,
      anchor: 'middle',
    });
    x += pw + (d === diffs[diffs.length - 1] ? 8 : GAP / 2);
  }
  const bar2 = colorbar(x, top, ph, 0, dmax, 'cividis');
  rasters.push(bar2.raster);
  svg += bar2.svg;
  x += BAR_W + BAR_LABEL_W;

  const valuesNote = `${channelLabel(channel, C)}, ${PH}×${PW} cells`;
  svg += svgText(valuesNote, MARGIN + LABEL_W, top + ph + 15, { size: 11, fill: MUTED });
  const width = x + MARGIN;
  const height = Math.max(leftHeight, top + ph + 36) + 6;
  return compose(width, height, rasters, svg);
}

/**
 * The feature map of the first shown box's batch item as a heatmap, with the boxes of that item drawn on
 * it (feature cell `j` covers image px `[j*stride, (j+1)*stride)`).
 */
async function renderFeaturePanel(
  input: DiffRenderInput,
  channel: ChannelSelect,
  shown: number,
): Promise<{ image: Raster; batch: number }> {
  const features = input.features as FeatureMap;
  const [N, C, H, W] = features.shape;
  const batch = shown > 0 ? Math.min(N - 1, input.boxes.data[0]) : 0;
  const values = reduceFeatureMap(features, batch, channel);
  const [min, max] = valueRange(values);
  const heat = heatmapImage(values, H, W, { min, max, colormap: 'viridis' });
  const stride = 1 / input.spatialScale;
  const boxes: OverlayBox[] = [];
  for (let k = 0; k < shown; k++) {
    if (input.boxes.data[k * 5] === batch) {
      const box = polygonOf(input.coverage[k]) ? input.coverage[k].box : boxAt(input.boxes, k);
      boxes.push({ label: String(k + 1), box, ...boxExtras(input, k) });
    }
  }
  const painted = await renderOverlay(
    { ...heat, channels: 3 },
    [W * stride, H * stride],
    boxes,
    stride,
    false,
  );
  const title = `Feature map, batch ${batch}: ${channelLabel(channel, C)}`;
  const sub = `${H}×${W} cells, stride ${formatNumber(stride)} px; boxes outlined`;
  const helpX = MARGIN + painted.image.width + 10 + BAR_W + BAR_LABEL_W + 24;
  // With an image this panel is only the JSON's feature heatmap (the sheet shows the image overlay).
  const outlines = 'the white outlines are the exact boxes on the feature map, numbered like the rows below.';
  const help = howToReadSvg(helpX, TITLE_H + 16, 340, [
    input.image
      ? `The backbone's feature map of the image: ${outlines}`
      : `No image was sent (features input), so there is no image overlay: ${outlines}`,
  ]);
  const width = Math.max(helpX + 340, measureText(title, 14, 'bold')) + MARGIN;
  const bar = colorbar(
    MARGIN + painted.image.width + 10,
    TITLE_H + 22,
    painted.image.height,
    min,
    max,
    'viridis',
  );
  const svg =
    svgText(title, MARGIN, 20, { size: 14, weight: 'bold', fill: INK }) +
    svgText(sub, MARGIN, 38, { size: 12, fill: MUTED }) +
    bar.svg +
    help.svg;
  const image = await compose(
    Math.ceil(width),
    Math.max(TITLE_H + 22 + painted.image.height, TITLE_H + 16 + help.height) + 12,
    [{ image: painted.image, left: MARGIN, top: TITLE_H + 22 }, bar.raster],
    svg,
  );
  return { image, batch };
}

/** A box's polygon (rotated), stride and level tag (multi-level), as the overlays draw them. */
function boxExtras(input: DiffRenderInput, k: number): Pick<OverlayBox, 'polygon' | 'stride' | 'tag'> {
  const level = input.levels?.[k];
  const polygon = polygonOf(input.coverage[k]);
  return {
    ...(polygon ? { polygon } : {}),
    ...(level ? { stride: level.stride, tag: levelTag(level.level, level.stride) } : {}),
  };
}

/** The overlay strip: RoI Pool and RoI Warp over the image, and the legend. */
async function renderOverlayStrip(input: DiffRenderInput, shown: number): Promise<Raster> {
  const image = input.image as RawImage;
  const frame = input.imageSize ?? ([image.width, image.height] as const);
  const stride = 1 / input.spatialScale;
  const rasters: { image: Raster; left: number; top: number }[] = [];
  let svg = '';
  let x = MARGIN;
  let bottom = 0;
  let gridDrawn = true;
  const titles = { pool: 'RoI Pool reads', warp: 'RoI Warp reads (box snapped to the grid)' } as const;
  // Resize once for both overlays (a 4000 px photo is the expensive part).
  const scale = displayScale(frame[0], frame[1], OVERLAY_MAX_W, OVERLAY_MAX_H, OVERLAY_MAX_UPSCALE);
  const dw = Math.max(1, Math.round(frame[0] * scale));
  const dh = Math.max(1, Math.round(frame[1] * scale));
  const resized = await toRgb(
    sharp(image.data, { raw: { width: image.width, height: image.height, channels: image.channels } }).resize(
      dw,
      dh,
      {
        fit: 'fill',
        kernel: dw >= image.width && dh >= image.height ? 'nearest' : 'lanczos3',
      },
    ),
  );
  const base: RawImage = { ...resized, channels: 3 };
  for (const op of CELL_OPS) {
    const boxes: OverlayBox[] = [];
    for (let k = 0; k < shown; k++) {
      boxes.push({
        label: String(k + 1),
        box:
          input.coverage[k] && polygonOf(input.coverage[k]) ? input.coverage[k].box : boxAt(input.boxes, k),
        read: input.coverage[k][op].region,
        ...boxExtras(input, k),
      });
    }
    const painted = await renderOverlay(base, frame, boxes, stride, true);
    gridDrawn &&= painted.gridDrawn;
    rasters.push({ image: painted.image, left: x, top: TITLE_H });
    svg += svgText(titles[op], x, 20, { size: 14, weight: 'bold', fill: INK });
    x += Math.max(painted.image.width, measureText(titles[op], 14, 'bold')) + GAP + 6;
    bottom = Math.max(bottom, TITLE_H + painted.image.height);
  }
  const legend = legendSvg(x + 4, 6, stride, gridDrawn);
  svg += legend.svg;
  const width = x + LEGEND_W + MARGIN;
  return compose(width, Math.max(bottom, legend.height + 12) + 10, rasters, svg);
}

/** Min, median (mean of the middle two for an even count) and max of some values; zeros when none. */
export interface Spread {
  min: number;
  median: number;
  max: number;
}

export function spread(values: readonly number[]): Spread {
  if (values.length === 0) return { min: 0, median: 0, max: 0 };
  const sorted = [...values].sort((a, b) => a - b);
  const m = sorted.length >> 1;
  const median = sorted.length % 2 ? sorted[m] : (sorted[m - 1] + sorted[m]) / 2;
  return { min: sorted[0], median, max: sorted[sorted.length - 1] };
}

/** IoU histogram bins over [0, 1]: bin i holds IoU in [i/10, (i+1)/10) (the last also 1). */
export const IOU_BINS = 10;

/** How one op's read areas compare with the boxes, over all boxes. */
export interface OpSummary {
  iou: Spread;
  /** Gained area / box area. */
  gainedFraction: Spread;
  /** Lost area / box area. */
  lostFraction: Spread;
  /** Box counts per IoU bin ({@link IOU_BINS} bins over [0, 1]). */
  iouHistogram: number[];
}

/** The distribution over every box (shown in a row or not) of RoI Pool's and RoI Warp's coverage. */
export type CoverageSummary = { boxes: number } & Record<CellOp, OpSummary>;

/** Summarises per-box coverage (all boxes, not only the `maxBoxes` with rows). */
export function coverageSummary(coverage: readonly BoxCoverage[]): CoverageSummary {
  const op = (name: CellOp): OpSummary => {
    const histogram = new Array<number>(IOU_BINS).fill(0);
    for (const c of coverage) histogram[Math.min(IOU_BINS - 1, Math.floor(c[name].iou * IOU_BINS))]++;
    return {
      iou: spread(coverage.map((c) => c[name].iou)),
      gainedFraction: spread(coverage.map((c) => c[name].gainedFraction)),
      lostFraction: spread(coverage.map((c) => c[name].lostFraction)),
      iouHistogram: histogram,
    };
  };
  const summary = { boxes: coverage.length } as CoverageSummary;
  for (const name of CELL_OPS) summary[name] = op(name);
  return summary;
}

/**
 * The summary over all boxes: per op (Pool, Warp) IoU, gained and lost fractions as min · median · max,
 * an IoU histogram, and the differences between the outputs over all boxes and channels.
 */
async function renderSummary(input: DiffRenderInput, shown: number): Promise<Raster> {
  const summary = coverageSummary(input.coverage);
  const K = summary.boxes;
  const cols = [MARGIN, MARGIN + 84, MARGIN + 290, MARGIN + 420, MARGIN + 650];
  const spreadText = (sp: Spread, f: (v: number) => string) =>
    `${f(sp.min)} · ${f(sp.median)} · ${f(sp.max)}`;
  let svg = svgText(`All ${K} box${K === 1 ? '' : 'es'}`, MARGIN, 22, {
    size: 15,
    weight: 'bold',
    fill: INK,
  });
  svg += svgText(
    shown === 0
      ? 'statistics over every box; none has a row of panels (maxBoxes 0)'
      : shown < K
        ? `statistics over every box; the first ${shown} have a row of panels below`
        : 'statistics over every box',
    MARGIN + measureText(`All ${K} boxes`, 15, 'bold') + 12,
    22,
    { size: 12, fill: MUTED },
  );
  let y = 46;
  [
    '',
    'IoU  min · median · max',
    'histogram 0 – 1',
    'gained  min · median · max',
    'lost  min · median · max',
  ].forEach((h, i) => (svg += svgText(h, cols[i], y, { size: 12, weight: 'bold', fill: INK })));
  svg += `<path d="M${MARGIN} ${y + 5.5}H${cols[4] + 210}" stroke="#ccc"/>`;
  for (const op of CELL_OPS) {
    y += 20;
    const s = summary[op];
    svg += svgText(OP_TITLE(op), cols[0], y, { size: 12, fill: INK });
    svg += svgText(
      spreadText(s.iou, (v) => v.toFixed(3)),
      cols[1],
      y,
      { size: 11.5, fill: MUTED },
    );
    svg += svgText(spreadText(s.gainedFraction, percent), cols[3], y, { size: 11.5, fill: MUTED });
    svg += svgText(spreadText(s.lostFraction, percent), cols[4], y, { size: 11.5, fill: MUTED });
    // Histogram: 10 bars of 9 px, heights relative to the fullest bin, on a baseline.
    const most = Math.max(1, ...s.iouHistogram);
    svg += `<path d="M${cols[2]} ${y + 3.5}h${IOU_BINS * 10}" stroke="#bbb"/>`;
    s.iouHistogram.forEach((n, i) => {
      if (n === 0) return;
      const h = Math.max(1, Math.round((n / most) * 15));
      svg += `<rect x="${cols[2] + i * 10}" y="${y + 3 - h}" width="9" height="${h}" fill="#6b6b6b"/>`;
    });
  }
  y += 26;
  // The reference against each other op, as in the rows: |Align − Pool|, |Align − Warp|.
  const total = diffStats(input.pooled).total.filter((d) => d.a === REFERENCE);
  const short = (op: OpName) => COMPARED_OPERATORS[op].shortTitle;
  svg += svgText(
    'Outputs over all boxes and channels: ' +
      total
        .map(
          (d) =>
            `|${short(d.a)} − ${short(d.b)}| mean ${formatNumber(d.meanAbs)}, max ${formatNumber(d.maxAbs)}`,
        )
        .join(' · '),
    MARGIN,
    y,
    { size: 12, fill: MUTED },
  );
  return compose(cols[4] + 210 + MARGIN, y + 14, [], svg);
}

/**
 * Renders the visual diff of RoI Pool, RoI Align and RoI Warp: the whole sheet and its parts.
 * `input.pooled` must hold all three ops with equal shapes `[K, C, PH, PW]`; `coverage` one entry per box.
 */
export async function renderDiff(input: DiffRenderInput): Promise<DiffRender> {
  const channel = input.channel ?? 'meanabs';
  const maxBoxes = input.maxBoxes ?? 8;
  const K = input.boxes.count;
  const shown = Math.max(0, Math.min(K, maxBoxes));

  // One part after the other: this runs in a worker, next to other workers; rasterising the parts in
  // parallel only made them wait for each other's libvips threads (slower on 2 cores, not faster).
  const overlay = input.image ? await renderOverlayStrip(input, shown) : undefined;
  const feature =
    input.features && (!input.image || input.featureHeatmap !== false)
      ? await renderFeaturePanel(input, channel, shown)
      : undefined;
  const summary = K > 0 ? await renderSummary(input, shown) : undefined;
  const rows: Raster[] = [];
  for (let k = 0; k < shown; k++) rows.push(await renderRow(input, k, channel));

  // Header: what was computed, with which parameters.
  const [PH, PW] = input.params.outputSize;
  const stride = 1 / input.spatialScale;
  const lines: string[] = [];
  const size = input.imageSize
    ? `image ${input.imageSize[0]}×${input.imageSize[1]} px`
    : 'no image size given';
  const fm = input.features
    ? `feature map ${input.features.shape[2]}×${input.features.shape[3]}`
    : 'feature map';
  lines.push(
    `${size} · ${fm}, stride ${formatNumber(stride)} px (spatialScale ${formatScale(input.spatialScale)})`,
  );
  lines.push(
    `output ${PH}×${PW} · samplingRatio ${input.params.samplingRatio} · aligned ${input.params.aligned} · mode ${input.params.mode} · ${K} box${K === 1 ? '' : 'es'}${shown < K ? `, first ${shown} shown (maxBoxes)` : ''}`,
  );
  if (!input.image)
    lines.push('Features input without an image: no image overlay; the boxes are drawn on the feature map.');
  lines.push(...shapeNotes(input));
  lines.push(...(input.notes ?? []));
  const headerH = 34 + lines.length * 18 + 8;

  // Stack: header, overlay strip or feature panel (features input), then the box rows.
  const top = input.image ? overlay : feature?.image;
  const parts = [...(top ? [top] : []), ...(summary ? [summary] : []), ...rows];
  const width = Math.max(
    760,
    ...parts.map((p) => p.width),
    ...lines.map((l) => measureText(l, 12.5) + 2 * MARGIN),
  );
  let svg = svgText('RoI Pool vs RoI Align vs RoI Warp', MARGIN, 28, { size: 20, weight: 'bold', fill: INK });
  lines.forEach((line, i) => {
    svg += svgText(line, MARGIN, 52 + i * 18, { size: 12.5, fill: MUTED });
  });
  // Only without boxes at all: with maxBoxes 0 the summary below still covers every box.
  if (K === 0)
    svg += svgText('No boxes in the request: nothing to compare.', MARGIN, headerH + 24, {
      size: 13,
      fill: INK,
    });
  const sheetWidth = Math.ceil(width);
  // Text goes in an SVG as small as the header: rasterising a sheet-sized SVG costs more than the rest.
  const rasters = [
    { image: await compose(sheetWidth, headerH + (K === 0 ? 36 : 0), [], svg), left: 0, top: 0 },
  ];
  let y = rasters[0].image.height;
  const rule = solid(sheetWidth - 2 * MARGIN, 1, [221, 221, 221]);
  for (const [i, part] of parts.entries()) {
    rasters.push({ image: part, left: 0, top: y });
    if (i > 0 || top === undefined) rasters.push({ image: rule, left: MARGIN, top: y });
    y += part.height;
  }
  const sheet = await compose(sheetWidth, Math.ceil(y + 14), rasters, '');
  return { sheet, overlay, featureHeatmap: feature?.image, rows, summary, boxesShown: shown };
}

/** Header lines for multi-level requests (boxes per level) and rotated boxes (what is drawn). */
function shapeNotes(input: DiffRenderInput): string[] {
  const notes: string[] = [];
  if (input.levels && input.levels.length > 0) {
    const counts = new Map<string, number>();
    for (const l of input.levels) {
      const tag = levelTag(l.level, l.stride);
      counts.set(tag, (counts.get(tag) ?? 0) + 1);
    }
    const list = [...counts].map(([tag, n]) => `${tag} (${n} box${n === 1 ? '' : 'es'})`).join(', ');
    notes.push(`Pyramid levels: ${list}; each box's grid and regions at its own level's stride.`);
  }
  if (input.coverage.some((c) => polygonOf(c))) {
    notes.push(
      'Rotated boxes: the white polygons are the boxes (what RoI Align Rotated reads); Pool, Align and Warp read their upright boxes.',
    );
  }
  return notes;
}

/** Per-box and overall difference statistics for each pair in `OP_PAIRS`. */
export function diffStats(pooled: Readonly<Record<OpName, Pooled>>): {
  perBox: PairDiff[][];
  total: PairDiff[];
} {
  const K = pooled[REFERENCE].shape[0];
  const perBox: PairDiff[][] = [];
  for (let k = 0; k < K; k++)
    perBox.push(OP_PAIRS.map(([a, b]) => ({ a, b, ...pairStats(pooled[a], pooled[b], k) })));
  const total = OP_PAIRS.map(([a, b]) => ({ a, b, ...pairStats(pooled[a], pooled[b]) }));
  return { perBox, total };
}
