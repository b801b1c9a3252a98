/** Coverage of rotated boxes and the polygon geometry behind it; expected values computed by hand. */
import { describe, expect, it } from 'vitest';
import { InvalidInputError } from '../../src/errors.js';
import { coverage } from '../../src/ops/coverage.js';
import { rotatedCoverage } from '../../src/ops/coverage-rotated.js';
import {
  clipConvex,
  intersectionArea,
  polygonArea,
  rectPolygon,
  rotatedCorners,
  type Point,
} from '../../src/ops/polygon.js';

const close = (a: number, b: number, eps = 1e-9) => expect(Math.abs(a - b)).toBeLessThanOrEqual(eps);
const closePoints = (a: readonly Point[], b: readonly Point[]) => {
  expect(a.length).toBe(b.length);
  a.forEach((p, i) => {
    close(p[0], b[i][0]);
    close(p[1], b[i][1]);
  });
};

describe('polygon geometry', () => {
  it('puts the corners where detectron2 samples: 90° turns the box counter-clockwise as seen (y down)', () => {
    // Angle 0: top-left, top-right, bottom-right, bottom-left of the upright box.
    closePoints(rotatedCorners(10, 20, 8, 4, 0), [
      [6, 18],
      [14, 18],
      [14, 22],
      [6, 22],
    ]);
    // 90°: the box's top-left corner (−w/2, −h/2) goes to (cx − h/2, cy + w/2), the bottom left
    // (x = yy·sin + xx·cos + cx = −2 + 10, y = yy·cos − xx·sin + cy = 4 + 20).
    closePoints(rotatedCorners(10, 20, 8, 4, 90), [
      [8, 24],
      [8, 16],
      [12, 16],
      [12, 24],
    ]);
    // clockwise negates the angle.
    closePoints(rotatedCorners(10, 20, 8, 4, 30, true), rotatedCorners(10, 20, 8, 4, -30));
  });

  it('computes areas and convex intersections in either orientation', () => {
    const square = rectPolygon({ x1: 0, y1: 0, x2: 4, y2: 4 });
    expect(polygonArea(square)).toBe(16);
    expect(polygonArea([...square].reverse())).toBe(16);
    const shifted = rectPolygon({ x1: 2, y1: 1, x2: 6, y2: 3 });
    expect(intersectionArea(square, shifted)).toBe(4); // [2, 4) × [1, 3)
    expect(intersectionArea(square, [...shifted].reverse())).toBe(4);
    // A diamond inscribed in the square: half its area.
    const diamond: Point[] = [
      [2, 0],
      [4, 2],
      [2, 4],
      [0, 2],
    ];
    expect(intersectionArea(square, diamond)).toBe(8);
    expect(clipConvex(square, rectPolygon({ x1: 10, y1: 10, x2: 12, y2: 12 }))).toEqual([]);
    expect(clipConvex(square, rectPolygon({ x1: 1, y1: 1, x2: 1, y2: 3 }))).toEqual([]); // zero area
  });
});

describe('rotatedCoverage', () => {
  it('a 20×20 box at 45°: rotated reads it exactly; Align on its upright bounding box gains 400 px² (IoU 0.5)', () => {
    const c = rotatedCoverage(
      { cx: 50, cy: 50, w: 20, h: 20, angle: 45 },
      { spatialScale: 1, imageSize: [100, 100] },
    );
    const r = 10 * Math.SQRT2; // centre to corner
    close(c.box.x1, 50 - r);
    close(c.box.x2, 50 + r);
    expect(c.boxArea).toBe(400);
    close(c.rotated.area, 400);
    close(c.rotated.lost, 0);
    close(c.rotated.gained, 0);
    close(c.rotated.iou, 1);
    close(c.align.area, 800);
    close(c.align.lost, 0);
    close(c.align.gained, 400);
    close(c.align.gainedFraction, 1);
    close(c.align.iou, 0.5);
    // Pool at stride 1 reads whole cells, cRound(35.86) = 36 to cRound(64.14) = 64 inclusive: [36, 65)²,
    // area 841. The box's left and top tips (at 35.86) stick out of it, each a right triangle of height
    // 36 − 35.86 with 45° sides (area height²); its right and bottom tips (64.14) are inside.
    const tip = (36 - (50 - r)) ** 2; // a corner triangle of height h has area h² (45° sides)
    close(c.pool.area, 29 * 29);
    close(c.pool.lost, 2 * tip, 1e-9);
    close(c.pool.gained, 841 - (400 - 2 * tip), 1e-9);
  });

  it('the part outside the image is lost: the same box centred on the left edge reads half of it', () => {
    const c = rotatedCoverage(
      { cx: 0, cy: 50, w: 20, h: 20, angle: 45 },
      { spatialScale: 1, imageSize: [100, 100] },
    );
    close(c.rotated.area, 200);
    close(c.rotated.lost, 200);
    close(c.rotated.lostFraction, 0.5);
    close(c.rotated.gained, 0);
    close(c.rotated.iou, 0.5);
    expect(c.rotated.polygon.every(([x]) => x >= 0)).toBe(true);
  });

  it('at 0° equals the upright coverage of the same box (and at 90° of the turned box)', () => {
    const opts = { spatialScale: 1 / 16, imageSize: [200, 150] as const };
    const c = rotatedCoverage({ cx: 60, cy: 50, w: 70, h: 30, angle: 0 }, opts);
    const upright = coverage({ x1: 25, y1: 35, x2: 95, y2: 65 }, opts);
    for (const op of ['pool', 'warp', 'align'] as const) {
      expect(c[op].region).toEqual(upright[op].region);
      close(c[op].lost, upright[op].lost, 1e-9);
      close(c[op].gained, upright[op].gained, 1e-9);
      close(c[op].iou, upright[op].iou, 1e-12);
    }
    expect(c.rotated.region).toEqual(upright.align.region);
    const turned = rotatedCoverage({ cx: 60, cy: 50, w: 30, h: 70, angle: 90 }, opts);
    close(turned.align.iou, 1, 1e-12);
    close(turned.box.x1, 25, 1e-12);
    close(turned.box.y2, 65, 1e-12);
  });

  it('aligned false reads a side under one cell as one cell, about the centre (mmcv)', () => {
    // 0.5 × 0.5 box at stride 4: the kernel samples a 4 × 4 px square.
    const c = rotatedCoverage(
      { cx: 10, cy: 10, w: 0.5, h: 0.5, angle: 30 },
      { spatialScale: 0.25, aligned: false },
    );
    close(c.rotated.area, 16, 1e-9);
    close(c.rotated.gained, 15.75, 1e-9);
    close(c.rotated.iou, 0.25 / 16, 1e-12);
    const exact = rotatedCoverage({ cx: 10, cy: 10, w: 0.5, h: 0.5, angle: 30 }, { spatialScale: 0.25 });
    close(exact.rotated.area, 0.25, 1e-12);
  });

  it('a zero-area box gives fractions 0 and no NaN; bad values name the field', () => {
    const c = rotatedCoverage({ cx: 5, cy: 5, w: 0, h: 8, angle: 20 }, { spatialScale: 1 });
    for (const op of ['pool', 'warp', 'align', 'rotated'] as const) {
      for (const v of Object.values(c[op])) if (typeof v === 'number') expect(Number.isNaN(v)).toBe(false);
      expect(c[op].lostFraction).toBe(0);
    }
    expect(c.rotated.iou).toBe(1); // both empty
    expect(() => rotatedCoverage({ cx: 5, cy: 5, w: -1, h: 8, angle: 0 }, { spatialScale: 1 })).toThrow(
      InvalidInputError,
    );
    try {
      rotatedCoverage({ cx: 5, cy: 5, w: 1, h: 8, angle: Number.NaN }, { spatialScale: 1 });
    } catch (err) {
      expect((err as InvalidInputError).field).toBe('box.angle');
    }
  });
});
