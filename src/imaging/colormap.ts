/**
 * Colours for the diff sheets.
 *
 * Heatmaps use perceptually uniform colormaps (equal steps in value look like equal steps in colour, and
 * lightness rises monotonically, so they survive greyscale printing and colour-vision deficiency):
 * viridis for pooled values, cividis (designed for deuteranopia/protanopia) for differences, so the two
 * kinds of panel are never confused. Region colours come from the Okabe–Ito palette: orange vs blue stay
 * distinct under all common colour-vision deficiencies (unlike red vs green).
 */
import { interpolateCividis, interpolateViridis } from 'd3-scale-chromatic';

export type Rgb = readonly [number, number, number];
export type ColormapName = 'viridis' | 'cividis';

/** Region colours (Okabe–Ito) and line colours used by overlays and legends. */
export const PALETTE = {
  /** In the box but not read by the op. Okabe–Ito orange. */
  lost: [230, 159, 0] as Rgb,
  /** Read by the op but outside the box. Okabe–Ito blue. */
  gained: [0, 114, 178] as Rgb,
  /** Outline of the area an op reads (dashed). Okabe–Ito sky blue. */
  read: [86, 180, 233] as Rgb,
  /** Outline of the exact box. */
  box: [255, 255, 255] as Rgb,
  /** Halo under lines and labels drawn on images. */
  halo: [20, 20, 20] as Rgb,
  /** Feature-grid lines. */
  grid: [255, 255, 255] as Rgb,
} as const;

/** Opacity of the lost/gained fills over the image. */
export const FILL_OPACITY = 0.55;

/** `#rrggbb` for an RGB triple. */
export function hex([r, g, b]: Rgb): string {
  return `#${[r, g, b].map((v) => v.toString(16).padStart(2, '0')).join('')}`;
}

function parseCss(color: string): Rgb {
  if (color.startsWith('#')) {
    const n = Number.parseInt(color.slice(1, 7), 16);
    return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
  }
  const m = /rgb\((\d+),\s*(\d+),\s*(\d+)\)/.exec(color);
  if (!m) throw new Error(`colormap: cannot parse colour ${color}`);
  return [Number(m[1]), Number(m[2]), Number(m[3])];
}

const luts = new Map<ColormapName, Uint8Array>();

/** The 256-entry lookup table of `name`, `[256, 3]` row-major RGB, index 0 = low end. */
export function colormapLut(name: ColormapName): Uint8Array {
  let lut = luts.get(name);
  if (!lut) {
    const interpolate = name === 'viridis' ? interpolateViridis : interpolateCividis;
    lut = new Uint8Array(256 * 3);
    for (let i = 0; i < 256; i++) lut.set(parseCss(interpolate(i / 255)), i * 3);
    luts.set(name, lut);
  }
  return lut;
}

/**
 * LUT index of `value` on the scale `[min, max]`: clamped to `0..255`; NaN and a flat scale (`max <= min`)
 * map to 0.
 */
export function colormapIndex(value: number, min: number, max: number): number {
  if (!(max > min) || Number.isNaN(value)) return 0;
  const t = (value - min) / (max - min);
  return Math.min(255, Math.max(0, Math.round(t * 255)));
}

/** Colour of `value` on the scale `[min, max]` in colormap `name`. */
export function colorOf(name: ColormapName, value: number, min: number, max: number): Rgb {
  const lut = colormapLut(name);
  const i = colormapIndex(value, min, max) * 3;
  return [lut[i], lut[i + 1], lut[i + 2]];
}
