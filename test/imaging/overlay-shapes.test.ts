/**
 * Rotated boxes and pyramid levels on the diff sheet: the lost / gained fills of an upright region
 * against a rotated box land where the geometry says, each box's grid is at its own level's stride, and
 * the level is written on the sheet.
 */
import { describe, expect, it } from 'vitest';
import { FILL_OPACITY, PALETTE, type Rgb } from '../../src/imaging/colormap.js';
import { levelTag, polygonPath } from '../../src/imaging/overlay-shapes.js';
import { renderDiff, renderOverlay, type RawImage } from '../../src/imaging/render-sheet.js';
import type { Raster } from '../../src/imaging/render.js';
import {
  coverage,
  roiAlign,
  roiPool,
  roiWarp,
  rotatedCorners,
  rotatedCoverage,
  toCanonicalBoxes,
  type FeatureMap,
} from '../../src/ops/index.js';

const GREY: Rgb = [128, 128, 128];

function flat(width: number, height: number, color: Rgb): RawImage {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) data.set(color, i * 3);
  return { data, width, height, channels: 3 };
}

function pixel(img: Raster, x: number, y: number): number[] {
  const o = (Math.floor(y) * img.width + Math.floor(x)) * 3;
  return [img.data[o], img.data[o + 1], img.data[o + 2]];
}

const blend = (base: Rgb, fill: Rgb) => base.map((v, i) => v * (1 - FILL_OPACITY) + fill[i] * FILL_OPACITY);

function expectColor(actual: number[], expected: readonly number[], tolerance = 3): void {
  actual.forEach((v, i) =>
    expect(Math.abs(v - expected[i]), `channel ${i}: ${actual} vs ${expected}`).toBeLessThanOrEqual(
      tolerance,
    ),
  );
}

describe('rotated boxes on the overlay', () => {
  // A 200×200 box at 45° about (256, 256): a diamond with tips 141.4 px from the centre on the axes;
  // inside it |x − 256| + |y − 256| < 141.4.
  const polygon = rotatedCorners(256, 256, 200, 200, 45);
  const image = flat(512, 512, GREY);

  it('fills box minus region (lost) and region minus box (gained) for a rectangle against the diamond', async () => {
    const read = { x1: 256, y1: 150, x2: 450, y2: 362 };
    const { image: out } = await renderOverlay(
      image,
      [512, 512],
      [{ label: '1', box: { x1: 114.6, y1: 114.6, x2: 397.4, y2: 397.4 }, read, polygon }],
      64,
      false,
    );
    const s = out.width / 512;
    const at = (x: number, y: number) => pixel(out, x * s, y * s);
    expectColor(at(200, 256), blend(GREY, PALETTE.lost)); // |−56| + 0 < 141: in the box, left of the region
    expectColor(at(180, 300), blend(GREY, PALETTE.lost));
    expectColor(at(420, 170), blend(GREY, PALETTE.gained)); // 164 + 86 > 141: in the region only
    expect(at(300, 340)).toEqual([...GREY]); // 44 + 84 < 141 and in the region: the image itself
    expect(at(60, 60)).toEqual([...GREY]); // far from both
  });

  it('draws the polygon outline, not its upright box', async () => {
    const { image: out } = await renderOverlay(
      image,
      [512, 512],
      [{ label: '1', box: { x1: 114.6, y1: 114.6, x2: 397.4, y2: 397.4 }, polygon }],
      64,
      false,
    );
    const s = out.width / 512;
    const at = (x: number, y: number) => pixel(out, x * s, y * s);
    // On the diamond's edge from the top tip (256, 114.6) to the right tip (397.4, 256): (326.7, 185.3).
    expectColor(at(326.7, 185.3), [255, 255, 255], 40);
    // The upright box's corner region stays the image.
    expect(at(125, 380)).toEqual([...GREY]);
    expect(polygonPath(polygon, 1, 1).startsWith('M')).toBe(true);
  });
});

describe('pyramid levels on the sheet', () => {
  it('draws each box grid at its own stride', async () => {
    const image = flat(512, 512, GREY);
    const box = { x1: 100, y1: 100, x2: 220, y2: 220 };
    const read = { x1: 96, y1: 96, x2: 224, y2: 224 };
    const paint = (stride?: number) =>
      renderOverlay(image, [512, 512], [{ label: '1', box, read, ...(stride ? { stride } : {}) }], 64, true);
    const plain = (await paint()).image;
    const fine = (await paint(32)).image;
    const s = plain.width / 512;
    // x = 160 is a cell edge at stride 32 but not at 64: a grid line only when the box's stride is 32.
    const line = (img: Raster) => pixel(img, Math.round(160 * s) + 0.5, 150 * s);
    expect(line(plain)).toEqual([...GREY]); // inside box and region: the image itself
    expect(line(fine)[0]).toBeGreaterThan(GREY[0] + 20); // a white line at 40 % opacity
  });

  it('writes the level and stride of each box: a header line and the tag', async () => {
    expect(levelTag(4, 16)).toBe('P4 · 16 px');
    const C = 2;
    const fm: FeatureMap = {
      data: Float32Array.from({ length: C * 32 * 32 }, (_, i) => Math.sin(i)),
      shape: [1, C, 32, 32],
      layout: 'NCHW',
    };
    const rows = [[0, 10, 10, 90, 90]];
    const boxes = toCanonicalBoxes(rows, { batchSize: 1 });
    const params = { spatialScale: 1 / 8, outputSize: [2, 2] as [number, number], samplingRatio: 2 };
    const input = {
      features: fm,
      spatialScale: 1 / 8,
      imageSize: [256, 256] as const,
      boxes,
      coverage: [
        coverage({ x1: 10, y1: 10, x2: 90, y2: 90 }, { spatialScale: 1 / 8, imageSize: [256, 256] }),
      ],
      pooled: {
        pool: roiPool(fm, boxes, params),
        align: roiAlign(fm, boxes, params),
        warp: roiWarp(fm, boxes, params),
      },
      params: { outputSize: [2, 2] as const, samplingRatio: 2, aligned: true, mode: 'avg' },
    };
    const plain = await renderDiff(input);
    const levelled = await renderDiff({ ...input, levels: [{ level: 3, stride: 8 }] });
    expect(levelled.sheet.height - plain.sheet.height).toBe(18); // one header line
  });
});

describe('rotated boxes on the sheet', () => {
  it('adds a header line and a Rotated row to the coverage table', async () => {
    const C = 2;
    const fm: FeatureMap = {
      data: Float32Array.from({ length: C * 16 * 16 }, (_, i) => Math.cos(i)),
      shape: [1, C, 16, 16],
      layout: 'NCHW',
    };
    const rc = rotatedCoverage(
      { cx: 64, cy: 64, w: 60, h: 30, angle: 30 },
      { spatialScale: 1 / 8, imageSize: [128, 128] },
    );
    const { x1, y1, x2, y2 } = rc.box;
    const boxes = toCanonicalBoxes([[0, x1, y1, x2, y2]], { batchSize: 1 });
    const params = { spatialScale: 1 / 8, outputSize: [2, 2] as [number, number], samplingRatio: 2 };
    const base = {
      features: fm,
      spatialScale: 1 / 8,
      imageSize: [128, 128] as const,
      boxes,
      pooled: {
        pool: roiPool(fm, boxes, params),
        align: roiAlign(fm, boxes, params),
        warp: roiWarp(fm, boxes, params),
      },
      params: { outputSize: [2, 2] as const, samplingRatio: 2, aligned: true, mode: 'avg' },
    };
    const upright = await renderDiff({
      ...base,
      coverage: [coverage(rc.box, { spatialScale: 1 / 8, imageSize: [128, 128] })],
    });
    const rotated = await renderDiff({ ...base, coverage: [rc] });
    expect(rotated.sheet.height - upright.sheet.height).toBe(18); // the header line
    // The table's fourth line (pool, warp, align, then Rotated; baseline 22 + 18 + 16 (the line saying the
    // box is rotated) + 24 + 4·18 = 152): text in the rotated box's row, blank in the upright one.
    const inked = (img: Raster) => {
      for (let y = 142; y < 156; y++)
        for (let x = 16; x < 80; x++) if (pixel(img, x, y)[0] < 160) return true;
      return false;
    };
    expect(inked(rotated.rows[0])).toBe(true);
    expect(inked(upright.rows[0])).toBe(false);
  });
});
