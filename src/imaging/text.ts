/**
 * Text for the diff sheets as SVG outlines, independent of system fonts.
 *
 * sharp rasterises SVG with librsvg, whose `<text>` goes through fontconfig: on a bare container with no
 * fonts it draws nothing (or boxes). So we never emit `<text>`: glyph outlines come from DejaVu Sans,
 * shipped inside the `@fontsource/dejavu-sans` npm package (WOFF), parsed with opentype.js, and emitted as
 * `<path>` elements. The same bytes render the same pixels on every machine.
 *
 * The diff sheets draw most text faster still (`textToken` → `drawTextRuns`): each glyph is rasterised once
 * per size and 1/4 px phase by librsvg into a coverage mask, and text is blended from the cached masks.
 *
 * Layout is deliberately simple (left-to-right, one glyph per code point, pair kerning): opentype.js's
 * shaper trips over DejaVu's `ccmp` lookups, and labels here are short Latin strings and numbers.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import opentype, { type Font, type Glyph, type PathCommand } from 'opentype.js';
import sharp from 'sharp';
import type { Raster } from './render.js';

export type FontWeight = 'normal' | 'bold';
export type TextAnchor = 'start' | 'middle' | 'end';

export interface TextOptions {
  /** Font size in px (the em square). Default 13. */
  size?: number;
  /** Default `'normal'`. */
  weight?: FontWeight;
  /** Any SVG paint. Default `'#1a1a1a'`. */
  fill?: string;
  /** Horizontal alignment at `x`. Default `'start'`. */
  anchor?: TextAnchor;
  /**
   * A halo (outline stroke drawn under the glyphs) to keep labels readable on photos, e.g. `'#fff'`.
   * Default none.
   */
  halo?: string;
}

const FONT_FILES: Record<FontWeight, string> = {
  normal: '@fontsource/dejavu-sans/files/dejavu-sans-latin-400-normal.woff',
  bold: '@fontsource/dejavu-sans/files/dejavu-sans-latin-700-normal.woff',
};

const fonts = new Map<FontWeight, Font>();

/** The parsed font for `weight`, loaded once per process. */
export function loadFont(weight: FontWeight = 'normal'): Font {
  let font = fonts.get(weight);
  if (!font) {
    const file = createRequire(import.meta.url).resolve(FONT_FILES[weight]);
    const bytes = readFileSync(file);
    font = opentype.parse(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
    fonts.set(weight, font);
  }
  return font;
}

interface PlacedGlyph {
  glyph: Glyph;
  x: number;
}

function layout(text: string, size: number, weight: FontWeight): { glyphs: PlacedGlyph[]; width: number } {
  const font = loadFont(weight);
  const scale = size / font.unitsPerEm;
  const glyphs: PlacedGlyph[] = [];
  let x = 0;
  let previous: Glyph | undefined;
  for (const char of text) {
    const glyph = font.charToGlyph(char);
    if (previous) x += font.getKerningValue(previous, glyph) * scale;
    glyphs.push({ glyph, x });
    x += (glyph.advanceWidth ?? 0) * scale;
    previous = glyph;
  }
  return { glyphs, width: x };
}

/** A glyph outline at one size: its first point, then the rest as relative SVG commands. */
interface GlyphOutline {
  mx: number;
  my: number;
  rest: string;
  /** Bounds of all its points (control points included, so the ink is inside), px from the origin. */
  x1: number;
  y1: number;
  x2: number;
  y2: number;
}

const outlines = new Map<string, GlyphOutline | null>();
const r2 = (v: number): number => Math.round(v * 100) / 100;

/**
 * The outline of `glyph` at `size` px as SVG path data relative to its origin (baseline), cached per
 * weight, size and glyph: opentype.js's `getPath` rebuilds the outline on every call, which made a sheet's
 * few hundred labels take seconds. Relative commands (deltas between rounded absolute points, so rounding
 * never drifts) let one cached string be placed anywhere by its first `M` alone. `null` for blank glyphs.
 */
function glyphOutline(weight: FontWeight, glyph: Glyph, size: number): GlyphOutline | null {
  const key = `${weight}:${size}:${glyph.index}`;
  const cached = outlines.get(key);
  if (cached !== undefined) return cached;
  const scale = size / loadFont(weight).unitsPerEm;
  const commands: readonly PathCommand[] = glyph.path.commands;
  let result: GlyphOutline | null = null;
  let rest = '';
  let cx = 0;
  let cy = 0;
  let sx = 0;
  let sy = 0;
  const bounds = { x1: Infinity, y1: Infinity, x2: -Infinity, y2: -Infinity };
  const point = (x: number | undefined, y: number | undefined): [number, number] => {
    const p: [number, number] = [r2((x ?? 0) * scale), r2(-(y ?? 0) * scale)];
    bounds.x1 = Math.min(bounds.x1, p[0]);
    bounds.x2 = Math.max(bounds.x2, p[0]);
    bounds.y1 = Math.min(bounds.y1, p[1]);
    bounds.y2 = Math.max(bounds.y2, p[1]);
    return p;
  };
  const rel = ([x, y]: [number, number]) => `${r2(x - cx)} ${r2(y - cy)}`;
  for (const c of commands) {
    if (c.type === 'Z') {
      rest += 'z';
      [cx, cy] = [sx, sy];
      continue;
    }
    const end = point(c.x, c.y);
    if (c.type === 'M') {
      if (result === null) result = { mx: end[0], my: end[1], rest: '', x1: 0, y1: 0, x2: 0, y2: 0 };
      else rest += `m${rel(end)}`;
      [sx, sy] = end;
    } else if (c.type === 'L') {
      rest += `l${rel(end)}`;
    } else if (c.type === 'Q') {
      rest += `q${rel(point(c.x1, c.y1))} ${rel(end)}`;
    } else {
      rest += `c${rel(point(c.x1, c.y1))} ${rel(point(c.x2, c.y2))} ${rel(end)}`;
    }
    [cx, cy] = end;
  }
  if (result) Object.assign(result, { rest }, bounds);
  outlines.set(key, result);
  return result;
}

/** Advance width of `text` in px at `size` (default 13) and `weight` (default `'normal'`). */
export function measureText(text: string, size = 13, weight: FontWeight = 'normal'): number {
  return layout(text, size, weight).width;
}

/**
 * SVG markup drawing `text` with its baseline at `(x, y)`, as `<path>` outlines (no `<text>`, no fonts
 * needed by the rasteriser). Returns `''` for empty text.
 */
export function svgText(text: string, x: number, y: number, options: TextOptions = {}): string {
  const { size = 13, weight = 'normal', fill = '#1a1a1a', anchor = 'start', halo } = options;
  if (text.length === 0) return '';
  const { glyphs, width } = layout(text, size, weight);
  const x0 = anchor === 'start' ? x : anchor === 'middle' ? x - width / 2 : x - width;
  let d = '';
  for (const { glyph, x: gx } of glyphs) {
    const o = glyphOutline(weight, glyph, size);
    if (o) d += `M${r2(x0 + gx + o.mx)} ${r2(y + o.my)}${o.rest}`;
  }
  if (d.length === 0) return '';
  const under = halo
    ? `<path d="${d}" fill="none" stroke="${halo}" stroke-width="${Math.max(2, size / 5)}" stroke-linejoin="round"/>`
    : '';
  return `${under}<path d="${d}" fill="${fill}"/>`;
}

/**
 * Greedy word wrap of `text` into lines no wider than `maxWidth` px at `size` (default 13) and `weight`
 * (default `'normal'`). A single word wider than `maxWidth` gets a line of its own.
 */
export function wrapText(text: string, maxWidth: number, size = 13, weight: FontWeight = 'normal'): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/).filter(Boolean)) {
    const candidate = line ? `${line} ${word}` : word;
    if (line && measureText(candidate, size, weight) > maxWidth) {
      lines.push(line);
      line = word;
    } else {
      line = candidate;
    }
  }
  if (line) lines.push(line);
  return lines;
}

/** One piece of text to draw into a raster with {@link drawTextRuns}: `svgText`'s arguments, no halo. */
export interface TextRun {
  text: string;
  x: number;
  y: number;
  size: number;
  weight: FontWeight;
  fill: string;
  anchor: TextAnchor;
}

const TOKEN = /<!--text ([^>]*?)-->/g;

/**
 * Like {@link svgText}, but for `compose` in `render-sheet.ts`: a placeholder that it takes out of the SVG
 * and draws with {@link drawTextRuns} from cached glyph masks, since rasterising glyph outlines was most
 * of a sheet's cost. With a `halo` (labels over photos, a stroke) it is `svgText`'s SVG itself.
 */
export function textToken(text: string, x: number, y: number, options: TextOptions = {}): string {
  if (options.halo) return svgText(text, x, y, options);
  const { size = 13, weight = 'normal', fill = '#1a1a1a', anchor = 'start' } = options;
  if (text.length === 0) return '';
  const run: TextRun = { text, x, y, size, weight, fill, anchor };
  return `<!--text ${encodeURIComponent(JSON.stringify(run))}-->`;
}

/** Splits `textToken` placeholders out of SVG markup: the rest of the markup, and the runs in order. */
export function takeTextRuns(svg: string): { svg: string; runs: TextRun[] } {
  const runs: TextRun[] = [];
  const rest = svg.replace(TOKEN, (_, json: string) => {
    runs.push(JSON.parse(decodeURIComponent(json)) as TextRun);
    return '';
  });
  return { svg: rest, runs };
}

/** A glyph's coverage at one size and horizontal sub-pixel phase, placed relative to its integer origin. */
interface GlyphMask {
  left: number;
  top: number;
  width: number;
  height: number;
  alpha: Uint8Array;
}

/** Horizontal sub-pixel phases per pixel: positions are rounded to 1/4 px (the baseline to whole px). */
const PHASES = 4;
const masks = new Map<string, GlyphMask>();
/** Masks kept at most (a few MB); sheets need a few hundred, odd sizes (shrunk table cells) add more. */
const MAX_MASKS = 20_000;

function maskKey(weight: FontWeight, size: number, glyph: number, phase: number): string {
  return `${weight}:${size}:${glyph}:${phase}`;
}

/**
 * Renders the missing masks in one SVG (one librsvg call for any number of glyphs): each in its own
 * cell of a vertical strip, 2 px apart, so that no cell's pixels depend on another's.
 */
async function renderMasks(missing: Map<string, { outline: GlyphOutline; phase: number }>): Promise<void> {
  const pad = 2;
  const cells: { key: string; mask: Omit<GlyphMask, 'alpha'>; y: number }[] = [];
  let width = 1;
  let y = 0;
  let svg = '';
  for (const [key, { outline: o, phase }] of missing) {
    const left = Math.floor(o.x1 + phase) - pad;
    const top = Math.floor(o.y1) - pad;
    const mask = {
      left,
      top,
      width: Math.ceil(o.x2 + phase) + pad - left,
      height: Math.ceil(o.y2) + pad - top,
    };
    // The glyph's origin in the strip: (phase − left, y − top).
    svg += `<path d="M${r2(phase - left + o.mx)} ${r2(y - top + o.my)}${o.rest}" fill="#000"/>`;
    cells.push({ key, mask, y });
    width = Math.max(width, mask.width);
    y += mask.height;
  }
  const { data } = await sharp(
    Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y}">${svg}</svg>`),
  )
    .ensureAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  for (const { key, mask, y: cy } of cells) {
    const alpha = new Uint8Array(mask.width * mask.height);
    for (let row = 0; row < mask.height; row++) {
      for (let col = 0; col < mask.width; col++)
        alpha[row * mask.width + col] = data[((cy + row) * width + col) * 4 + 3];
    }
    masks.set(key, { ...mask, alpha });
  }
}

function parseFill(fill: string): [number, number, number] {
  const n = Number.parseInt(fill.slice(1, 7), 16);
  if (!/^#[0-9a-fA-F]{6}$/.test(fill)) throw new Error(`drawTextRuns: fill must be #rrggbb, got ${fill}`);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

/**
 * Draws text runs into an RGB raster from glyph coverage masks, cached per weight, size, glyph and 1/4 px
 * phase and rasterised by librsvg (so the glyphs look as in an SVG; a position moves by at most 1/8 px
 * across and 1/2 px down). A sheet's few hundred glyphs are a few dozen distinct masks: after the first
 * sheet, text costs a blend per pixel of ink instead of librsvg filling every outline again.
 */
export async function drawTextRuns(canvas: Raster, runs: readonly TextRun[]): Promise<void> {
  if (masks.size > MAX_MASKS) masks.clear();
  const placed: { key: string; x: number; y: number; fill: [number, number, number] }[] = [];
  const missing = new Map<string, { outline: GlyphOutline; phase: number }>();
  for (const run of runs) {
    const { glyphs, width } = layout(run.text, run.size, run.weight);
    const x0 = run.anchor === 'start' ? run.x : run.anchor === 'middle' ? run.x - width / 2 : run.x - width;
    const y = Math.round(run.y);
    const fill = parseFill(run.fill);
    for (const { glyph, x: gx } of glyphs) {
      const outline = glyphOutline(run.weight, glyph, run.size);
      if (!outline) continue;
      const px = r2(x0 + gx);
      let ix = Math.floor(px);
      let q = Math.round((px - ix) * PHASES);
      if (q === PHASES) {
        ix += 1;
        q = 0;
      }
      const key = maskKey(run.weight, run.size, glyph.index, q);
      if (!masks.has(key)) missing.set(key, { outline, phase: q / PHASES });
      placed.push({ key, x: ix, y, fill });
    }
  }
  if (missing.size > 0) await renderMasks(missing);
  const out = canvas.data;
  for (const { key, x, y, fill } of placed) {
    const m = masks.get(key) as GlyphMask;
    for (let row = 0; row < m.height; row++) {
      const cy = y + m.top + row;
      if (cy < 0 || cy >= canvas.height) continue;
      for (let col = 0; col < m.width; col++) {
        const a = m.alpha[row * m.width + col];
        const cx = x + m.left + col;
        if (a === 0 || cx < 0 || cx >= canvas.width) continue;
        const o = (cy * canvas.width + cx) * 3;
        const f = a / 255;
        out[o] = Math.round(fill[0] * f + out[o] * (1 - f));
        out[o + 1] = Math.round(fill[1] * f + out[o + 1] * (1 - f));
        out[o + 2] = Math.round(fill[2] * f + out[o + 2] * (1 - f));
      }
    }
  }
}
