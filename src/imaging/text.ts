/**
 * Text for the diff sheets as SVG outlines, independent of system fonts.
 *
 * sharp rasterises SVG with librsvg, whose `<text>` goes through fontconfig: on a bare container with no
 * fonts it draws nothing (or boxes). So we never emit `<text>`: glyph outlines come from DejaVu Sans,
 * shipped inside the `@fontsource/dejavu-sans` npm package (WOFF), parsed with opentype.js, and emitted as
 * `<path>` elements. The same bytes render the same pixels on every machine.
 *
 * Layout is deliberately simple (left-to-right, one glyph per code point, pair kerning): opentype.js's
 * shaper trips over DejaVu's `ccmp` lookups, and labels here are short Latin strings and numbers.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import opentype, { type Font, type Glyph, type PathCommand } from 'opentype.js';

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
  const point = (x: number | undefined, y: number | undefined): [number, number] => [
    r2((x ?? 0) * scale),
    r2(-(y ?? 0) * scale),
  ];
  const rel = ([x, y]: [number, number]) => `${r2(x - cx)} ${r2(y - cy)}`;
  for (const c of commands) {
    if (c.type === 'Z') {
      rest += 'z';
      [cx, cy] = [sx, sy];
      continue;
    }
    const end = point(c.x, c.y);
    if (c.type === 'M') {
      if (result === null) result = { mx: end[0], my: end[1], rest: '' };
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
  if (result) result.rest = rest;
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
