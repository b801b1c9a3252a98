/**
 * The diff sheet on generated images: the lost / gained fills land where the semantics say, far pixels
 * are the untouched image, and the sheet's size follows the boxes (bounded whatever the image size).
 */
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { FILL_OPACITY, hex, PALETTE, type Rgb } from '../../src/imaging/colormap.js';
import {
  compose,
  coverageSummary,
  diffStats,
  panelCaption,
  spread,
  rectDifference,
  renderDiff,
  renderOverlay,
  type DiffRenderInput,
  type RawImage,
} from '../../src/imaging/render-sheet.js';
import { formatNumber, reduceDifference, toRgb, type Raster } from '../../src/imaging/render.js';
import { svgText } from '../../src/imaging/text.js';
import {
  coverage,
  roiAlign,
  roiPool,
  roiWarp,
  toCanonicalBoxes,
  type FeatureMap,
} from '../../src/ops/index.js';

/** A `width × height` RGB image in four flat quadrants (top-left, top-right, bottom-left, bottom-right). */
function quadrants(width: number, height: number, colors: [Rgb, Rgb, Rgb, Rgb]): RawImage {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const q = (y < height / 2 ? 0 : 2) + (x < width / 2 ? 0 : 1);
      data.set(colors[q], (y * width + x) * 3);
    }
  }
  return { data, width, height, channels: 3 };
}

const GREY: Rgb = [128, 128, 128];
const FAR: Rgb = [30, 160, 90];

function pixel(img: Raster, x: number, y: number): number[] {
  const o = (Math.floor(y) * img.width + Math.floor(x)) * 3;
  return [img.data[o], img.data[o + 1], img.data[o + 2]];
}

/** `base` under `fill` at the overlay opacity, as the compositor should produce it. */
function blend(base: Rgb, fill: Rgb): number[] {
  return base.map((v, i) => v * (1 - FILL_OPACITY) + fill[i] * FILL_OPACITY);
}

function expectColor(actual: number[], expected: readonly number[], tolerance = 3): void {
  actual.forEach((v, i) =>
    expect(Math.abs(v - expected[i]), `channel ${i}: ${actual} vs ${expected}`).toBeLessThanOrEqual(
      tolerance,
    ),
  );
}

/** A small random feature map `[N, C, H, W]` (deterministic). */
function featureMap(N: number, C: number, H: number, W: number): FeatureMap {
  const data = new Float32Array(N * C * H * W);
  let seed = 12345;
  for (let i = 0; i < data.length; i++) {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    data[i] = seed / 2147483648 - 0.3;
  }
  return { data, shape: [N, C, H, W], layout: 'NCHW' };
}

/** The renderer's input from the ops module itself, as `/v1/diff` builds it. */
function inputFor(
  fm: FeatureMap,
  rows: number[][],
  spatialScale: number,
  imageSize: [number, number],
  image?: RawImage,
  extra: Partial<DiffRenderInput> = {},
): DiffRenderInput {
  const boxes = toCanonicalBoxes(rows, { batchSize: fm.shape[0] });
  const params = {
    spatialScale,
    outputSize: [3, 3] as [number, number],
    samplingRatio: 2,
    aligned: true,
    mode: 'avg' as const,
  };
  return {
    image,
    imageSize,
    features: fm,
    spatialScale,
    boxes,
    coverage: rows.map(([x1, y1, x2, y2]) => coverage({ x1, y1, x2, y2 }, { spatialScale, imageSize })),
    pooled: {
      pool: roiPool(fm, boxes, params),
      align: roiAlign(fm, boxes, params),
      warp: roiWarp(fm, boxes, params),
    },
    params,
    ...extra,
  };
}

describe('rectDifference', () => {
  it('splits a \\ b into disjoint rectangles of the right total area', () => {
    const area = (rs: { x1: number; y1: number; x2: number; y2: number }[]) =>
      rs.reduce((s, r) => s + (r.x2 - r.x1) * (r.y2 - r.y1), 0);
    // Worked example: pool region minus box = gained 14008.
    const box = { x1: 296, y1: 192, x2: 496, y2: 337 };
    const pool = { x1: 288, y1: 192, x2: 512, y2: 384 };
    expect(area(rectDifference(pool, box))).toBe(14008);
    expect(rectDifference(box, pool)).toEqual([]);
    expect(rectDifference(box, { x1: 0, y1: 0, x2: 10, y2: 10 })).toEqual([box]);
    expect(rectDifference({ x1: 0, y1: 0, x2: 10, y2: 10 }, { x1: 2, y1: 3, x2: 5, y2: 6 })).toEqual([
      { x1: 0, y1: 0, x2: 10, y2: 3 },
      { x1: 0, y1: 6, x2: 10, y2: 10 },
      { x1: 0, y1: 3, x2: 2, y2: 6 },
      { x1: 5, y1: 3, x2: 10, y2: 6 },
    ]);
  });
});

describe('overlay', () => {
  // 512×512, stride 64 (s = 1/64). Box (40, 40, 220, 150) scales to (0.625, 0.625, 3.44, 2.34):
  // RoI Pool reads cells x 1..3, y 1..2 (C round, end inclusive) = pixels [64, 256) × [64, 192).
  // Lost (box, not read): [40, 220) × [40, 64) and [40, 64) × [64, 150).
  // Gained (read, not box): [64, 256) × [150, 192) and [220, 256) × [64, 150).
  const box = { x1: 40, y1: 40, x2: 220, y2: 150 };
  const image = quadrants(512, 512, [GREY, GREY, GREY, FAR]);

  it('fills the lost and gained areas of RoI Pool with their colours and leaves far pixels alone', async () => {
    const cov = coverage(box, { spatialScale: 1 / 64, imageSize: [512, 512] });
    expect(cov.pool.region).toEqual({ x1: 64, y1: 64, x2: 256, y2: 192 });
    const { image: out } = await renderOverlay(
      image,
      [512, 512],
      [{ label: '1', box, read: cov.pool.region }],
      64,
      true,
    );
    const s = out.width / 512;
    expect(out.height / 512).toBeCloseTo(s, 10);
    const at = (x: number, y: number) => pixel(out, x * s, y * s);
    // Inside the lost area (clear of outlines and grid lines).
    expectColor(at(52, 110), blend(GREY, PALETTE.lost));
    expectColor(at(150, 52), blend(GREY, PALETTE.lost));
    // Inside the gained area.
    expectColor(at(150, 172), blend(GREY, PALETTE.gained));
    expectColor(at(238, 110), blend(GREY, PALETTE.gained));
    // Inside box ∩ read area: the image itself.
    expectColor(at(150, 110), GREY, 0);
    // Far away: the untouched image (exact).
    expect(at(420, 420)).toEqual([...FAR]);
    expect(at(470, 30)).toEqual([...GREY]);
    // The exact box outline is white on its edge.
    expectColor(at(box.x1, 100), [255, 255, 255], 12);
  });

  it('RoI Warp snaps the box to whole cells: here it only loses', async () => {
    // Warp: cells round(0.625)=1 .. round(3.44)=3 (exclusive) → x [64, 192); y 1 .. round(2.34)=2 → [64, 128).
    const cov = coverage(box, { spatialScale: 1 / 64, imageSize: [512, 512] });
    expect(cov.warp.region).toEqual({ x1: 64, y1: 64, x2: 192, y2: 128 });
    const { image: out } = await renderOverlay(
      image,
      [512, 512],
      [{ label: '1', box, read: cov.warp.region }],
      64,
      true,
    );
    const s = out.width / 512;
    const at = (x: number, y: number) => pixel(out, x * s, y * s);
    expectColor(at(52, 110), blend(GREY, PALETTE.lost)); // left strip
    expectColor(at(205, 100), blend(GREY, PALETTE.lost)); // right strip [192, 220)
    expectColor(at(150, 140), blend(GREY, PALETTE.lost)); // bottom strip [128, 150)
    expectColor(at(150, 100), GREY, 0);
    expect(at(420, 420)).toEqual([...FAR]);
  });

  it('scales any image to a bounded display size', async () => {
    for (const [w, h] of [
      [4000, 3000],
      [200, 200],
      [12, 30],
    ]) {
      const img = quadrants(w, h, [GREY, GREY, GREY, FAR]);
      const { image: out } = await renderOverlay(img, [w, h], [], 8, true);
      expect(out.width).toBeLessThanOrEqual(440);
      expect(out.height).toBeLessThanOrEqual(400);
      expect(Math.max(out.width / 440, out.height / 400)).toBeGreaterThan(w < 20 ? 0.3 : 0.99);
    }
  });
});

describe('sheet', () => {
  const fm = featureMap(1, 4, 16, 16);
  const rows = [
    [296, 192, 496, 337],
    [52, 124, 246, 344],
    [10, 10, 100, 80],
    [300, 356, 474, 454],
  ];
  const image = quadrants(512, 512, [GREY, GREY, GREY, FAR]);

  it('grows by one equal row per box and is capped by maxBoxes', async () => {
    const heights: number[] = [];
    const widths: number[] = [];
    for (const k of [1, 2, 4]) {
      const r = await renderDiff(inputFor(fm, rows.slice(0, k), 1 / 32, [512, 512], image));
      expect(r.boxesShown).toBe(k);
      expect(r.rows).toHaveLength(k);
      heights.push(r.sheet.height);
      widths.push(r.sheet.width);
    }
    const row = heights[1] - heights[0];
    expect(row).toBeGreaterThan(100);
    expect(heights[2] - heights[1]).toBe(2 * row);
    expect(new Set(widths).size).toBe(1);
    const capped = await renderDiff(inputFor(fm, rows, 1 / 32, [512, 512], image, { maxBoxes: 2 }));
    expect(capped.boxesShown).toBe(2);
    expect(capped.sheet.height).toBe(heights[1]);
  });

  it('a 4000 px photo and a 200 px icon give sheets of the same bounded size', async () => {
    const big = await renderDiff(
      inputFor(
        featureMap(1, 2, 94, 125),
        [[1000, 800, 2600, 2100]],
        1 / 32,
        [4000, 3000],
        quadrants(4000, 3000, [GREY, GREY, GREY, FAR]),
      ),
    );
    const small = await renderDiff(
      inputFor(
        featureMap(1, 2, 25, 25),
        [[40, 40, 150, 120]],
        1 / 8,
        [200, 200],
        quadrants(200, 200, [GREY, GREY, GREY, FAR]),
      ),
    );
    for (const r of [big, small]) {
      expect(r.sheet.width).toBeLessThanOrEqual(1400);
      expect(r.sheet.height).toBeLessThanOrEqual(900);
      expect(r.sheet.width).toBeGreaterThanOrEqual(1000);
    }
    expect(Math.abs(big.sheet.width - small.sheet.width)).toBeLessThanOrEqual(100);
  });

  it('features input: no overlay, a feature heatmap instead', async () => {
    const r = await renderDiff(inputFor(fm, rows.slice(0, 2), 1 / 32, [512, 512]));
    expect(r.overlay).toBeUndefined();
    expect(r.featureHeatmap).toBeDefined();
    expect(r.rows).toHaveLength(2);
  });

  it('shows the notes as extra header lines (one 18 px line each)', async () => {
    const plain = await renderDiff(inputFor(fm, [], 1 / 32, [512, 512]));
    const noted = await renderDiff(
      inputFor(fm, [], 1 / 32, [512, 512], undefined, { notes: ['resized for the backbone'] }),
    );
    expect(noted.sheet.height - plain.sheet.height).toBe(18);
  });

  it('empty box list: a sheet that says so', async () => {
    const r = await renderDiff(inputFor(fm, [], 1 / 32, [512, 512], image));
    expect(r.boxesShown).toBe(0);
    expect(r.sheet.height).toBeGreaterThan(100);
  });

  it('statistics per box equal the direct pair computation', () => {
    const input = inputFor(fm, rows, 1 / 32, [512, 512]);
    const stats = diffStats(input.pooled);
    expect(stats.perBox).toHaveLength(rows.length);
    const [, C, PH, PW] = input.pooled.align.shape;
    const n = C * PH * PW;
    // Direct: |align − pool| over box 1's values (mean, max, ‖d‖ / ‖align‖).
    let sum = 0;
    let max = 0;
    let d2 = 0;
    let a2 = 0;
    for (let i = n; i < 2 * n; i++) {
      const d = input.pooled.align.data[i] - input.pooled.pool.data[i];
      sum += Math.abs(d);
      max = Math.max(max, Math.abs(d));
      d2 += d * d;
      a2 += input.pooled.align.data[i] ** 2;
    }
    const alignPool = stats.perBox[1][0];
    expect([alignPool.a, alignPool.b]).toEqual(['align', 'pool']);
    expect(alignPool.meanAbs).toBeCloseTo(sum / n, 10);
    expect(alignPool.maxAbs).toBeCloseTo(max, 10);
    expect(alignPool.relL2).toBeCloseTo(Math.sqrt(d2 / a2), 10);
    // Direct: mean |align − warp| over box 2's values.
    sum = 0;
    for (let i = 2 * n; i < 3 * n; i++)
      sum += Math.abs(input.pooled.align.data[i] - input.pooled.warp.data[i]);
    expect(stats.perBox[2][1].meanAbs).toBeCloseTo(sum / n, 10);
    expect(stats.total.map((p) => `${p.a}-${p.b}`)).toEqual(['align-pool', 'align-warp', 'pool-warp']);
  });
});

describe('compose', () => {
  it("gives libvips' composite pixels to within one level: rasters under translucent fills, strokes, text", async () => {
    const width = 300;
    const height = 120;
    const under = quadrants(90, 60, [GREY, FAR, [250, 10, 120], [0, 0, 0]]);
    const raster = { data: Buffer.from(under.data), width: 90, height: 60 };
    const svg =
      `<rect x="20" y="10" width="150" height="80" fill="${hex(PALETTE.lost)}" fill-opacity="${FILL_OPACITY}"/>` +
      `<rect x="40.5" y="30.25" width="70" height="50" fill="none" stroke="#56b4e9" stroke-width="2" stroke-dasharray="7 4"/>` +
      svgText('RoI Warp 0.809', 120, 60, { size: 13, weight: 'bold', fill: '#1a1a1a', halo: '#141414' }) +
      svgText('lost 12.5%', 150, 100, { size: 11.5, fill: '#555555' });
    const ours = await compose(width, height, [{ image: raster, left: 10, top: 20 }], svg);
    const theirs = await toRgb(
      sharp({ create: { width, height, channels: 3, background: '#ffffff' } }).composite([
        { input: raster.data, raw: { width: 90, height: 60, channels: 3 }, left: 10, top: 20 },
        {
          input: Buffer.from(
            `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">${svg}</svg>`,
          ),
          left: 0,
          top: 0,
        },
      ]),
    );
    expect([ours.width, ours.height]).toEqual([theirs.width, theirs.height]);
    // libvips' vectorised float path rounds a few anti-aliased edge values the other way.
    let differing = 0;
    ours.data.forEach((v, i) => {
      expect(Math.abs(v - theirs.data[i])).toBeLessThanOrEqual(1);
      if (v !== theirs.data[i]) differing++;
    });
    expect(differing).toBeLessThan(ours.data.length / 1000);
    // A raster past the canvas edge is clipped, not wrapped onto the next row.
    const clipped = await compose(40, 20, [{ image: raster, left: 20, top: 5 }], '');
    expect(pixel(clipped, 19, 10)).toEqual([255, 255, 255]);
    expect(pixel(clipped, 39, 10)).toEqual([...GREY]);
    expect(pixel(clipped, 25, 2)).toEqual([255, 255, 255]);
  });
});

describe('thin lost and gained strips', () => {
  it('stay visible over the outlines: a 3 px lost strip and a 2 px gained strip', async () => {
    // 512×512 shown at 440 px (0.86 display px per image px): the strips are 2.6 and 1.7 display px,
    // narrower than the outline halos (4 px) on both of their edges.
    const image = quadrants(512, 512, [GREY, GREY, GREY, GREY]);
    const box = { x1: 100, y1: 100, x2: 300, y2: 300 };
    const read = { x1: 103, y1: 100, x2: 302, y2: 300 };
    const { image: out } = await renderOverlay(image, [512, 512], [{ label: '1', box, read }], 64, false);
    const s = out.width / 512;
    const near = (rgb: Rgb, x: number, y: number) => {
      const p = pixel(out, Math.round(x * s - 0.5), y * s);
      return Math.max(...p.map((v, i) => Math.abs(v - rgb[i])));
    };
    expect(near(PALETTE.lost, 101.5, 200)).toBeLessThanOrEqual(40);
    expect(near(PALETTE.gained, 301, 200)).toBeLessThanOrEqual(40);
  });
});

describe('summary over all boxes', () => {
  const fm = featureMap(1, 4, 16, 16);
  const rows = [
    [296, 192, 496, 337],
    [52, 124, 246, 344],
    [10, 10, 100, 80],
    [300, 356, 474, 454],
    [5, 400, 37, 470],
  ];

  it('spreads IoU, gained and lost of Pool and Warp over every box, not only the shown ones', () => {
    const input = inputFor(fm, rows, 1 / 32, [512, 512]);
    const summary = coverageSummary(input.coverage);
    expect(summary.boxes).toBe(5);
    for (const op of ['pool', 'warp'] as const) {
      const ious = input.coverage.map((c) => c[op].iou).sort((a, b) => a - b);
      expect(summary[op].iou).toEqual({ min: ious[0], median: ious[2], max: ious[4] });
      const gained = input.coverage.map((c) => c[op].gainedFraction).sort((a, b) => a - b);
      expect(summary[op].gainedFraction).toEqual({ min: gained[0], median: gained[2], max: gained[4] });
      const lost = input.coverage.map((c) => c[op].lostFraction);
      expect(summary[op].lostFraction.max).toBe(Math.max(...lost));
      expect(summary[op].iouHistogram.reduce((a, b) => a + b, 0)).toBe(5);
      ious.forEach((iou) =>
        expect(summary[op].iouHistogram[Math.min(9, Math.floor(iou * 10))]).toBeGreaterThan(0),
      );
    }
    expect(spread([4, 1, 3, 2])).toEqual({ min: 1, median: 2.5, max: 4 });
    expect(spread([])).toEqual({ min: 0, median: 0, max: 0 });
  });

  it('is a part of the sheet, of the same height whether 1 or 5 boxes have rows', async () => {
    const image = quadrants(512, 512, [GREY, GREY, GREY, FAR]);
    const one = await renderDiff(inputFor(fm, rows, 1 / 32, [512, 512], image, { maxBoxes: 1 }));
    const all = await renderDiff(inputFor(fm, rows, 1 / 32, [512, 512], image));
    expect(one.summary).toBeDefined();
    expect(one.summary?.height).toBe(all.summary?.height);
    expect(all.sheet.height - one.sheet.height).toBe(4 * one.rows[0].height);
    const none = await renderDiff(inputFor(fm, [], 1 / 32, [512, 512], image));
    expect(none.summary).toBeUndefined();
    // maxBoxes 0: no rows, the summary, and no "No boxes in the request" block (36 px) under the header.
    const zero = await renderDiff(inputFor(fm, rows, 1 / 32, [512, 512], image, { maxBoxes: 0 }));
    expect(zero.rows).toHaveLength(0);
    expect(zero.sheet.height - (zero.summary?.height ?? 0)).toBe(none.sheet.height - 36);
  });
});

describe('numbers under a difference panel', () => {
  it('are the mean and max of the panel as drawn (on its colour bar), not of all channels', () => {
    const fm = featureMap(1, 6, 16, 16);
    const input = inputFor(fm, [[40, 40, 300, 260]], 1 / 32, [512, 512]);
    const { align, pool } = input.pooled;
    const shown = reduceDifference(align, pool, 0, 'meanabs');
    const [mean, max] = panelCaption(shown);
    const all = diffStats(input.pooled).perBox[0][0];
    const shownMax = Math.max(...shown);
    expect(max).toBe(`max ${formatNumber(shownMax)}`);
    expect(mean).toBe(`mean ${formatNumber(shown.reduce((a, b) => a + b, 0) / shown.length)}`);
    // The per-channel max is above the panel's colour bar (its top is the larger panel max of the row).
    expect(all.maxAbs).toBeGreaterThan(shownMax);
  });
});
