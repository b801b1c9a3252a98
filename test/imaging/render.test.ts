/**
 * Rendering primitives: colormaps, channel reductions, difference statistics, heatmaps, text.
 * Expected values are literal (hand-computed) or published (matplotlib's viridis/cividis endpoints).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { colorOf, colormapLut, PALETTE } from '../../src/imaging/colormap.js';
import {
  colorbarImage,
  formatNumber,
  heatmapImage,
  pairStats,
  reduceDifference,
  reduceFeatureMap,
  reducePooled,
  toRgb,
} from '../../src/imaging/render.js';
import { drawTextRuns, measureText, svgText, takeTextRuns, textToken } from '../../src/imaging/text.js';
import type { Pooled } from '../../src/ops/types.js';

/** `[K, C, PH, PW]` NCHW → the same logical tensor stored NHWC. */
function toNhwc(p: Pooled): Pooled {
  const [K, C, PH, PW] = p.shape;
  const data = new Float32Array(p.data.length);
  for (let k = 0; k < K; k++)
    for (let c = 0; c < C; c++)
      for (let y = 0; y < PH; y++)
        for (let x = 0; x < PW; x++)
          data[((k * PH + y) * PW + x) * C + c] = p.data[((k * C + c) * PH + y) * PW + x];
  return { data, shape: p.shape, layout: 'NHWC' };
}

// K = 2 boxes, C = 2 channels, 1×2 cells. Box 1 channel 0 = [1, -3], channel 1 = [5, 2].
const A: Pooled = {
  data: new Float32Array([0, 0, 0, 0, 1, -3, 5, 2]),
  shape: [2, 2, 1, 2],
  layout: 'NCHW',
};
// Box 1 channel 0 = [2, -1], channel 1 = [5, -2].
const B: Pooled = {
  data: new Float32Array([0, 0, 0, 0, 2, -1, 5, -2]),
  shape: [2, 2, 1, 2],
  layout: 'NCHW',
};

describe('colormaps', () => {
  it('viridis and cividis have their published endpoints', () => {
    // matplotlib _cm_listed: viridis[0] = (0.267004, 0.004874, 0.329415), viridis[255] = (0.993248, 0.906157, 0.143936);
    // cividis[0] = (0.0, 0.135112, 0.304751), cividis[255] = (0.995737, 0.909344, 0.217772).
    // d3's viridis is the table itself (within rounding); its cividis is a polynomial fit of the table,
    // off by up to 14/255 in one channel at the top end.
    const close = (rgb: readonly number[], ref: number[], tolerance: number) =>
      rgb.forEach((v, i) => expect(Math.abs(v - ref[i] * 255)).toBeLessThanOrEqual(tolerance));
    close(colorOf('viridis', 0, 0, 1), [0.267004, 0.004874, 0.329415], 1);
    close(colorOf('viridis', 1, 0, 1), [0.993248, 0.906157, 0.143936], 1);
    close(colorOf('cividis', 0, 0, 1), [0.0, 0.135112, 0.304751], 4);
    close(colorOf('cividis', 1, 0, 1), [0.995737, 0.909344, 0.217772], 14);
  });

  it('lightness rises monotonically (perceptually ordered, greyscale-safe)', () => {
    for (const name of ['viridis', 'cividis'] as const) {
      const lut = colormapLut(name);
      let previous = -1;
      for (let i = 0; i < 256; i += 8) {
        const luma = 0.2126 * lut[i * 3] + 0.7152 * lut[i * 3 + 1] + 0.0722 * lut[i * 3 + 2];
        expect(luma).toBeGreaterThan(previous);
        previous = luma;
      }
    }
  });

  it('clamps out-of-range values and maps a flat scale to the low end', () => {
    expect(colorOf('viridis', -5, 0, 1)).toEqual(colorOf('viridis', 0, 0, 1));
    expect(colorOf('viridis', 7, 0, 1)).toEqual(colorOf('viridis', 1, 0, 1));
    expect(colorOf('viridis', 3, 3, 3)).toEqual(colorOf('viridis', 0, 0, 1));
  });

  it('lost and gained fills stay distinct under simulated colour-vision deficiencies', () => {
    // Machado, Oliveira & Fernandes (2009) simulation matrices, severity 1.0, applied in linear RGB.
    const deficiencies: Record<string, number[][]> = {
      normal: [
        [1, 0, 0],
        [0, 1, 0],
        [0, 0, 1],
      ],
      protanopia: [
        [0.152286, 1.052583, -0.204868],
        [0.114503, 0.786281, 0.097216],
        [-0.003882, -0.048116, 1.051998],
      ],
      deuteranopia: [
        [0.367322, 0.860646, -0.227968],
        [0.280085, 0.672501, 0.047413],
        [-0.01182, 0.04294, 0.968881],
      ],
      tritanopia: [
        [1.255528, -0.076749, -0.178779],
        [-0.078411, 0.930809, 0.147602],
        [0.004733, 0.691367, 0.3039],
      ],
    };
    const toLinear = (v: number) => ((v /= 255) <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
    const toSrgb = (v: number) =>
      255 * (v <= 0.0031308 ? 12.92 * v : 1.055 * Math.max(0, Math.min(1, v)) ** (1 / 2.4) - 0.055);
    const simulate = (rgb: readonly number[], m: number[][]) => {
      const lin = rgb.map(toLinear);
      return m.map((row) => toSrgb(row[0] * lin[0] + row[1] * lin[1] + row[2] * lin[2]));
    };
    const distance = (a: number[], b: number[]) => Math.hypot(a[0] - b[0], a[1] - b[1], a[2] - b[2]);
    // As drawn: translucent over a mid-grey and over a photo-like green.
    for (const base of [
      [128, 128, 128],
      [90, 140, 70],
    ]) {
      const over = (fill: readonly number[]) => base.map((v, i) => v * (1 - 0.55) + fill[i] * 0.55);
      for (const [name, m] of Object.entries(deficiencies)) {
        const d = distance(simulate(over(PALETTE.lost), m), simulate(over(PALETTE.gained), m));
        expect(d, `${name} over ${base}`).toBeGreaterThan(60);
      }
    }
  });
});

describe('channel reductions', () => {
  it('reduces one box over channels (index, mean, meanabs, max), NCHW and NHWC alike', () => {
    for (const p of [A, toNhwc(A)]) {
      expect([...reducePooled(p, 1, 0)]).toEqual([1, -3]);
      expect([...reducePooled(p, 1, 1)]).toEqual([5, 2]);
      expect([...reducePooled(p, 1, 'mean')]).toEqual([3, -0.5]);
      expect([...reducePooled(p, 1, 'meanabs')]).toEqual([3, 2.5]);
      expect([...reducePooled(p, 1, 'max')]).toEqual([5, 2]);
      expect([...reducePooled(p, 0, 'max')]).toEqual([0, 0]);
    }
  });

  it('reduces a feature map item the same way', () => {
    const fm = { data: A.data, shape: A.shape, layout: 'NCHW' as const };
    expect([...reduceFeatureMap(fm, 1, 'meanabs')]).toEqual([3, 2.5]);
  });

  it('difference maps reduce |a - b| per channel (so cancelling channels still show)', () => {
    // |A - B| box 1: channel 0 = [1, 2], channel 1 = [0, 4].
    for (const [a, b] of [
      [A, B],
      [toNhwc(A), B],
    ]) {
      expect([...reduceDifference(a, b, 1, 0)]).toEqual([1, 2]);
      expect([...reduceDifference(a, b, 1, 'mean')]).toEqual([0.5, 3]);
      expect([...reduceDifference(a, b, 1, 'meanabs')]).toEqual([0.5, 3]);
      expect([...reduceDifference(a, b, 1, 'max')]).toEqual([1, 4]);
    }
  });

  it('pair statistics equal a direct computation', () => {
    // Box 1: diffs 1, 2, 0, 4 → mean 7/4, max 4, ‖d‖ = √21, ‖A₁‖ = √(1+9+25+4) = √39.
    const s = pairStats(A, B, 1);
    expect(s.meanAbs).toBeCloseTo(7 / 4, 12);
    expect(s.maxAbs).toBe(4);
    expect(s.relL2).toBeCloseTo(Math.sqrt(21 / 39), 12);
    // All boxes: box 0 adds four zero differences.
    const all = pairStats(A, toNhwc(B));
    expect(all.meanAbs).toBeCloseTo(7 / 8, 12);
    expect(all.relL2).toBeCloseTo(Math.sqrt(21 / 39), 12);
    // Box 0 is all zeros on both sides: defined as 0; zero reference with a difference: null.
    expect(pairStats(A, B, 0)).toEqual({ meanAbs: 0, maxAbs: 0, relL2: 0 });
    const ones: Pooled = { data: new Float32Array(8).fill(1), shape: [2, 2, 1, 2], layout: 'NCHW' };
    expect(pairStats(A, ones, 0).relL2).toBeNull();
  });

  it('refuses pooled outputs of different shapes', () => {
    const other: Pooled = { data: new Float32Array(4), shape: [1, 2, 1, 2], layout: 'NCHW' };
    expect(() => pairStats(A, other)).toThrow(/shapes differ/);
  });
});

describe('heatmaps', () => {
  it('nearest-upscales each cell to a cell × cell block with the colormap colour', () => {
    const values = new Float32Array([0, 1, 2, 3, 4, 5]); // 2 rows × 3 cols
    const img = heatmapImage(values, 2, 3, { min: 0, max: 5, cell: 4 });
    expect([img.width, img.height]).toEqual([12, 8]);
    const px = (x: number, y: number) => [...img.data.subarray((y * 12 + x) * 3, (y * 12 + x) * 3 + 3)];
    expect(px(0, 0)).toEqual([...colorOf('viridis', 0, 0, 5)]);
    expect(px(3, 3)).toEqual([...colorOf('viridis', 0, 0, 5)]);
    expect(px(4, 0)).toEqual([...colorOf('viridis', 1, 0, 5)]);
    expect(px(11, 7)).toEqual([...colorOf('viridis', 5, 0, 5)]);
    expect(px(11, 7)).toEqual([...colormapLut('viridis').subarray(255 * 3)]);
    expect(px(5, 6)).toEqual([...colorOf('viridis', 4, 0, 5)]);
  });

  it('colour bars run from the high end at the top to the low end at the bottom', () => {
    const bar = colorbarImage(3, 100, 'cividis');
    expect([...bar.data.subarray(0, 3)]).toEqual([...colormapLut('cividis').subarray(255 * 3)]);
    expect([...bar.data.subarray(99 * 9, 99 * 9 + 3)]).toEqual([...colormapLut('cividis').subarray(0, 3)]);
  });

  it('formats numbers short', () => {
    expect(formatNumber(0)).toBe('0');
    expect(formatNumber(0.123456)).toBe('0.123');
    expect(formatNumber(14008)).toBe('1.40e+4');
    expect(formatNumber(32)).toBe('32');
    expect(formatNumber(0.0001234)).toBe('1.23e-4');
  });
});

describe('text', () => {
  it('is drawn as outlines (no <text>, no fonts needed) and is visible', async () => {
    const svgBody = svgText('RoI Align 0.674', 10, 30, { size: 20, fill: '#000' });
    expect(svgBody).not.toContain('<text');
    expect(svgBody).toMatch(/^<path d="M/);
    const width = measureText('RoI Align 0.674', 20);
    expect(width).toBeGreaterThan(100);
    expect(width).toBeLessThan(200);
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="220" height="40"><rect width="220" height="40" fill="#fff"/>${svgBody}</svg>`;
    const img = await toRgb(sharp(Buffer.from(svg)));
    let dark = 0;
    let darkMaxX = 0;
    for (let i = 0; i < img.width * img.height; i++) {
      if (img.data[i * 3] < 100) {
        dark++;
        darkMaxX = Math.max(darkMaxX, i % img.width);
      }
    }
    expect(dark).toBeGreaterThan(300);
    // Ink ends where the measured advance says it does (within a glyph's side bearing).
    expect(Math.abs(darkMaxX - (10 + width))).toBeLessThan(4);
  });

  it('renders the same pixels in a process that sees no system fonts', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'roiserve-fonts-'));
    // A fontconfig configuration with no font directories: `<text>` would render nothing here.
    writeFileSync(
      join(dir, 'fonts.conf'),
      '<?xml version="1.0"?><fontconfig><cachedir>' + dir + '</cachedir></fontconfig>',
    );
    const script = join(dir, 'render.mts');
    const textModule = new URL('../../src/imaging/text.ts', import.meta.url).href;
    const sharpModule = pathToFileURL(createRequire(import.meta.url).resolve('sharp')).href;
    writeFileSync(
      script,
      `import sharp from '${sharpModule}';
import { svgText } from '${textModule}';
const svg = '<svg xmlns="http://www.w3.org/2000/svg" width="200" height="40"><rect width="200" height="40" fill="#fff"/>' + svgText('Box 1 IoU 0.809', 8, 28, { size: 18 }) + '</svg>';
process.stdout.write((await sharp(Buffer.from(svg)).removeAlpha().raw().toBuffer()).toString('base64'));
`,
    );
    const tsx = new URL('../../node_modules/.bin/tsx', import.meta.url).pathname;
    const env = { ...process.env, FONTCONFIG_FILE: join(dir, 'fonts.conf'), FONTCONFIG_PATH: dir };
    const isolated = Buffer.from(
      execFileSync(tsx, [script], { env, cwd: process.cwd() }).toString(),
      'base64',
    );
    const here = Buffer.from(execFileSync(tsx, [script], { cwd: process.cwd() }).toString(), 'base64');
    expect(isolated.length).toBe(200 * 40 * 3);
    expect(isolated.equals(here)).toBe(true);
    expect([...isolated].some((v) => v < 100)).toBe(true);
  });
});

describe('text from cached glyph masks', () => {
  it('draws what librsvg draws for svgText: the same ink, in the same place', async () => {
    const [width, height] = [240, 44];
    const words = 'RoI Align 0.674 · |Δ| (12.5%)';
    const options = { size: 15, fill: '#1a1a1a' } as const;
    const reference = await toRgb(
      sharp(
        Buffer.from(
          `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}"><rect width="${width}" height="${height}" fill="#fff"/>${svgText(words, 8.3, 30, options)}</svg>`,
        ),
      ),
    );
    const canvas = { data: Buffer.alloc(width * height * 3, 255), width, height };
    const { svg, runs } = takeTextRuns(`<rect/>${textToken(words, 8.3, 30, options)}<rect/>`);
    expect(svg).toBe('<rect/><rect/>');
    expect(runs).toEqual([
      { text: words, x: 8.3, y: 30, size: 15, weight: 'normal', fill: '#1a1a1a', anchor: 'start' },
    ]);
    await drawTextRuns(canvas, runs);
    // Twice: the second time every mask comes from the cache, and the pixels are the same.
    const again = { data: Buffer.alloc(width * height * 3, 255), width, height };
    await drawTextRuns(again, runs);
    expect(again.data.equals(canvas.data)).toBe(true);
    let ink = 0;
    let refInk = 0;
    let diff = 0;
    for (let i = 0; i < canvas.data.length; i++) {
      ink += 255 - canvas.data[i];
      refInk += 255 - reference.data[i];
      diff += Math.abs(canvas.data[i] - reference.data[i]);
    }
    // Glyphs land within 1/8 px across and 1/2 px down of librsvg's: the same amount of ink, and most
    // pixels equal or close.
    expect(Math.abs(ink - refInk) / refInk).toBeLessThan(0.01);
    expect(diff / refInk).toBeLessThan(0.2);
    // Ink starts and ends where the measured text does.
    const columns = (img: { data: Buffer }) => {
      const xs: number[] = [];
      for (let x = 0; x < width; x++) {
        for (let y = 0; y < height; y++) if (img.data[(y * width + x) * 3] < 160) xs.push(x);
      }
      return [Math.min(...xs), Math.max(...xs)];
    };
    const [a, b] = columns(canvas);
    const [ra, rb] = columns(reference);
    expect(Math.abs(a - ra)).toBeLessThanOrEqual(1);
    expect(Math.abs(b - rb)).toBeLessThanOrEqual(1);
  });

  it('keeps labels with a halo as SVG (a stroke is not a fill mask)', () => {
    expect(textToken('1', 5, 5, { halo: '#141414' })).toBe(svgText('1', 5, 5, { halo: '#141414' }));
    expect(textToken('', 5, 5)).toBe('');
  });
});
