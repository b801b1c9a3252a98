import { describe, expect, it } from 'vitest';
import { InvalidInputError } from '../../src/errors.js';
import { coverage } from '../../src/ops/index.js';

describe('coverage', () => {
  it('reproduces the worked example of the semantics doc', () => {
    const c = coverage(
      { x1: 296, y1: 192, x2: 496, y2: 337 },
      { spatialScale: 1 / 32, imageSize: [512, 512] },
    );
    expect(c.boxArea).toBe(29000);
    expect(c.pool.region).toEqual({ x1: 288, y1: 192, x2: 512, y2: 384 });
    expect(c.pool.cells).toEqual({ x1: 9, y1: 6, x2: 17, y2: 12 });
    expect([c.pool.area, c.pool.lost, c.pool.gained]).toEqual([43008, 0, 14008]);
    expect(c.pool.gainedFraction.toFixed(3)).toBe('0.483');
    expect(c.pool.iou.toFixed(3)).toBe('0.674');
    expect(c.warp.region).toEqual({ x1: 288, y1: 192, x2: 512, y2: 352 });
    expect(c.warp.cells).toEqual({ x1: 9, y1: 6, x2: 16, y2: 11 });
    expect([c.warp.area, c.warp.lost, c.warp.gained]).toEqual([35840, 0, 6840]);
    expect(c.warp.gainedFraction.toFixed(3)).toBe('0.236');
    expect(c.warp.iou.toFixed(3)).toBe('0.809');
    expect([c.align.lost, c.align.gained, c.align.iou]).toEqual([0, 0, 1]);
  });

  it('without imageSize the pool region is not clipped', () => {
    const c = coverage({ x1: 296, y1: 192, x2: 496, y2: 337 }, { spatialScale: 1 / 32 });
    expect(c.pool.region).toEqual({ x1: 288, y1: 192, x2: 544, y2: 384 });
  });

  it('counts lost area when quantization cuts into the box', () => {
    // x: 20/16 = 1.25 → cell 1 (pixel 16), 40/16 = 2.5 → cell 3 (pixel 48): warp grows the box.
    const c = coverage({ x1: 20, y1: 0, x2: 40, y2: 16 }, { spatialScale: 1 / 16 });
    expect(c.warp.region).toEqual({ x1: 16, y1: 0, x2: 48, y2: 16 });
    expect(c.warp.lost).toBe(0);
    const d = coverage({ x1: 26, y1: 0, x2: 38, y2: 16 }, { spatialScale: 1 / 16 });
    // 26/16 = 1.625 → 2 (pixel 32), 38/16 = 2.375 → 2 → forced to one cell [32, 48).
    expect(d.warp.region).toEqual({ x1: 32, y1: 0, x2: 48, y2: 16 });
    expect(d.warp.lost).toBe(6 * 16);
    expect(d.warp.lostFraction).toBeCloseTo(0.5, 10);
  });

  it('zero-area boxes give finite numbers (no NaN)', () => {
    const c = coverage(
      { x1: 100, y1: 100, x2: 100, y2: 130 },
      { spatialScale: 1 / 16, imageSize: [512, 512] },
    );
    expect(c.boxArea).toBe(0);
    for (const op of [c.pool, c.warp, c.align]) {
      for (const v of [op.area, op.lost, op.gained, op.lostFraction, op.gainedFraction, op.iou]) {
        expect(Number.isFinite(v)).toBe(true);
      }
      expect(op.lostFraction).toBe(0);
      expect(op.gainedFraction).toBe(0);
    }
    expect(c.pool.gained).toBeGreaterThan(0);
    expect(c.pool.iou).toBe(0);
    expect(c.align.iou).toBe(1);
  });

  it('a box outside the image: pool and warp regions are clipped to nothing', () => {
    const c = coverage(
      { x1: 600, y1: 600, x2: 700, y2: 700 },
      { spatialScale: 1 / 32, imageSize: [512, 512] },
    );
    expect(c.pool.area).toBe(0);
    expect(c.pool.lost).toBe(10000);
    expect(c.pool.iou).toBe(0);
  });

  it('Align reads the exact box clipped to the image: wholly outside loses it all, partly outside the rest', () => {
    // Was lost 0, IoU 1 while Align's outputs for this box are all zeros.
    const out = coverage(
      { x1: 600, y1: 600, x2: 700, y2: 700 },
      { spatialScale: 1 / 32, imageSize: [512, 512] },
    );
    expect(out.align.region).toEqual({ x1: 512, y1: 512, x2: 512, y2: 512 });
    expect([out.align.area, out.align.lost, out.align.gained]).toEqual([0, 10000, 0]);
    expect([out.align.lostFraction, out.align.iou]).toEqual([1, 0]);
    // Half of it left of the image: half lost, IoU 0.5.
    const part = coverage(
      { x1: -50, y1: 0, x2: 50, y2: 100 },
      { spatialScale: 1 / 32, imageSize: [512, 512] },
    );
    expect(part.align.region).toEqual({ x1: 0, y1: 0, x2: 50, y2: 100 });
    expect([part.align.lost, part.align.gained, part.align.lostFraction, part.align.iou]).toEqual([
      5000, 0, 0.5, 0.5,
    ]);
    // Without an image size nothing is clipped: the exact box.
    const free = coverage({ x1: 600, y1: 600, x2: 700, y2: 700 }, { spatialScale: 1 / 32 });
    expect([free.align.lost, free.align.iou]).toEqual([0, 1]);
  });

  it('a box on cell edges at scale 1/7 or 0.3 is covered exactly (the stride is 1 / the scale given, not its float32)', () => {
    const c = coverage({ x1: 21, y1: 0, x2: 42, y2: 7 }, { spatialScale: 1 / 7 });
    expect(c.warp.cells).toEqual({ x1: 3, y1: 0, x2: 6, y2: 1 });
    expect(c.warp.region).toEqual({ x1: 21, y1: 0, x2: 42, y2: 7 });
    expect([c.warp.lost, c.warp.gained, c.warp.iou]).toEqual([0, 0, 1]);
    const d = coverage({ x1: 10, y1: 0, x2: 20, y2: 10 / 3 }, { spatialScale: 0.3 });
    expect(d.warp.cells).toEqual({ x1: 3, y1: 0, x2: 6, y2: 1 });
    expect([d.warp.lost, d.warp.gained, d.warp.iou]).toEqual([0, 0, 1]);
  });

  it('refuses bad input naming the field', () => {
    expect(() => coverage({ x1: 5, y1: 0, x2: 1, y2: 1 }, { spatialScale: 1 })).toThrow(InvalidInputError);
    expect(() => coverage({ x1: NaN, y1: 0, x2: 1, y2: 1 }, { spatialScale: 1 })).toThrow(/box\.x1/);
    expect(() => coverage({ x1: 0, y1: 0, x2: 1, y2: 1 }, { spatialScale: 0 })).toThrow(/spatialScale/);
  });
});
