import { describe, expect, it } from 'vitest';
import { InvalidInputError } from '../../src/errors.js';
import {
  boxAt,
  boxesFromPerImage,
  cRound,
  denormalizeBoxes,
  scaleBoxes,
  toCanonicalBoxes,
} from '../../src/ops/index.js';
import { fieldOf } from '../support/errors.js';

describe('cRound', () => {
  it('rounds half away from zero, unlike Math.round', () => {
    expect([2.5, -2.5, 0.5, -0.5, 1.4999, -1.5, 15.5, 0].map(cRound)).toEqual([3, -3, 1, -1, 1, -2, 16, 0]);
    expect(Math.round(-2.5)).toBe(-2);
  });
});

describe('toCanonicalBoxes', () => {
  it('converts the three formats to the same xyxy rows', () => {
    const xyxy = toCanonicalBoxes([[10, 20, 30, 60]], { batchSize: 1 });
    const xywh = toCanonicalBoxes([[10, 20, 20, 40]], { format: 'xywh', batchSize: 1 });
    const cxcywh = toCanonicalBoxes([[20, 40, 20, 40]], { format: 'cxcywh', batchSize: 1 });
    const expected = { b: 0, x1: 10, y1: 20, x2: 30, y2: 60 };
    expect(boxAt(xyxy, 0)).toEqual(expected);
    expect(boxAt(xywh, 0)).toEqual(expected);
    expect(boxAt(cxcywh, 0)).toEqual(expected);
  });

  it('takes the batch index from 5-number rows and defaults to 0 for 4', () => {
    const boxes = toCanonicalBoxes(
      [
        [1, 0, 0, 5, 5],
        [0, 0, 2, 2],
      ],
      { batchSize: 2 },
    );
    expect(boxes.count).toBe(2);
    expect(Array.from(boxes.data)).toEqual([1, 0, 0, 5, 5, 0, 0, 0, 2, 2]);
  });

  it('accepts an empty list and zero-size boxes', () => {
    expect(toCanonicalBoxes([], { batchSize: 1 }).count).toBe(0);
    expect(toCanonicalBoxes([[3, 3, 3, 3]], { batchSize: 1 }).count).toBe(1);
  });

  it('names the row and the value it refuses', () => {
    const o = { batchSize: 2 };
    expect(
      fieldOf(() =>
        toCanonicalBoxes(
          [
            [0, 0, 1, 1],
            [0, 0, 1],
          ],
          o,
        ),
      ),
    ).toBe('boxes[1]');
    expect(
      fieldOf(() =>
        toCanonicalBoxes(
          [
            [0, 0, 1, 1],
            [0, 0, NaN, 1],
          ],
          o,
        ),
      ),
    ).toBe('boxes[1][2]');
    expect(fieldOf(() => toCanonicalBoxes([[0, Infinity, 1, 1]], o))).toBe('boxes[0][1]');
    expect(fieldOf(() => toCanonicalBoxes([[0, 0, 1e39, 1]], o))).toBe('boxes[0][2]');
    expect(fieldOf(() => toCanonicalBoxes([[5, 0, 1, 1]], o))).toBe('boxes[0][2]'); // x2 < x1
    expect(fieldOf(() => toCanonicalBoxes([[0, 5, 1, 1]], o))).toBe('boxes[0][3]'); // y2 < y1
    expect(fieldOf(() => toCanonicalBoxes([[2, 0, 0, 1, 1]], o))).toBe('boxes[0][0]'); // b >= N
    expect(fieldOf(() => toCanonicalBoxes([[-1, 0, 0, 1, 1]], o))).toBe('boxes[0][0]');
    expect(fieldOf(() => toCanonicalBoxes([[0.5, 0, 0, 1, 1]], o))).toBe('boxes[0][0]');
    expect(fieldOf(() => toCanonicalBoxes([[0, 0, -1, 1]], { ...o, format: 'xywh' }))).toBe('boxes[0][2]');
    expect(fieldOf(() => toCanonicalBoxes([[0, 0, 1, -1]], { ...o, format: 'cxcywh', field: 'rois' }))).toBe(
      'rois[0][3]',
    );
    expect(fieldOf(() => toCanonicalBoxes([[0, 0, 1, '2' as unknown as number]], o))).toBe('boxes[0][3]');
  });

  it('says what was expected', () => {
    let caught: unknown;
    try {
      toCanonicalBoxes([[3, 0, 0, 1, 1]], { batchSize: 2 });
    } catch (e) {
      caught = e;
    }
    // Outside the catch: a call that throws nothing must fail here, not pass with no assertion.
    expect(caught).toBeInstanceOf(InvalidInputError);
    expect((caught as InvalidInputError).expected).toMatch(/0 <= b < 2/);
    expect((caught as InvalidInputError).status).toBe(400);
  });
});

describe('boxesFromPerImage', () => {
  it('gives list i the batch index i', () => {
    const boxes = boxesFromPerImage([
      [[0, 0, 1, 1]],
      [],
      [
        [1, 1, 2, 2],
        [2, 2, 3, 3],
      ],
    ]);
    expect(boxes.count).toBe(3);
    expect([0, 1, 2].map((k) => boxAt(boxes, k).b)).toEqual([0, 2, 2]);
  });

  it('converts formats and names the image and row', () => {
    const boxes = boxesFromPerImage([[[10, 10, 5, 5]]], { format: 'xywh' });
    expect(boxAt(boxes, 0)).toEqual({ b: 0, x1: 10, y1: 10, x2: 15, y2: 15 });
    expect(fieldOf(() => boxesFromPerImage([[[0, 0, 1, 1]], [[0, 0, 1]]]))).toBe('boxes[1][0]');
    expect(fieldOf(() => boxesFromPerImage([[[0, 0, 1, 1]], [[0, 0, 1, NaN]]]))).toBe('boxes[1][0][3]');
  });
});

describe('scaleBoxes', () => {
  it('multiplies x by factorX, y by factorY (default factorX) and keeps batch indices', () => {
    const boxes = toCanonicalBoxes([[1, 10, 20, 30, 40]], { batchSize: 2 });
    expect(boxAt(scaleBoxes(boxes, 0.5), 0)).toEqual({ b: 1, x1: 5, y1: 10, x2: 15, y2: 20 });
    expect(() => scaleBoxes(boxes, 0)).toThrow(InvalidInputError);
    expect(boxAt(scaleBoxes(boxes, 0.5, 0.25), 0)).toEqual({ b: 1, x1: 5, y1: 5, x2: 15, y2: 10 });
    expect(() => scaleBoxes(boxes, 1, Number.NaN)).toThrow(/scaleY/);
  });
});

describe('yxyx (TensorFlow crop_and_resize order)', () => {
  it('reads (y1, x1, y2, x2), with or without a batch index', () => {
    const boxes = toCanonicalBoxes(
      [
        [20, 10, 60, 30],
        [1, 20, 10, 60, 30],
      ],
      { format: 'yxyx', batchSize: 2 },
    );
    expect(boxAt(boxes, 0)).toEqual({ b: 0, x1: 10, y1: 20, x2: 30, y2: 60 });
    expect(boxAt(boxes, 1)).toEqual({ b: 1, x1: 10, y1: 20, x2: 30, y2: 60 });
  });

  it('names the value the user wrote when a corner is out of order', () => {
    const o = { batchSize: 1, format: 'yxyx' as const };
    expect(fieldOf(() => toCanonicalBoxes([[0, 5, 1, 1]], o))).toBe('boxes[0][3]'); // x2 < x1
    expect(fieldOf(() => toCanonicalBoxes([[5, 0, 1, 1]], o))).toBe('boxes[0][2]'); // y2 < y1
    expect(fieldOf(() => toCanonicalBoxes([[0, 0, 5, 1, 1]], o))).toBe('boxes[0][4]'); // x2 < x1, after b
  });
});

describe('denormalizeBoxes', () => {
  it('multiplies x by the width and y by the height, keeping the batch index', () => {
    const fractions = toCanonicalBoxes([[1, 0.25, 0.5, 0.75, 1]], { batchSize: 2 });
    expect(Array.from(denormalizeBoxes(fractions, 640, 480).data)).toEqual([1, 160, 240, 480, 480]);
  });

  it('rounds like a float32 boxes * [W, H, W, H]', () => {
    const fractions = toCanonicalBoxes([[0.1, 0.2, 0.3, 0.7]], { batchSize: 1 });
    const px = denormalizeBoxes(fractions, 333, 777).data;
    expect(px[1]).toBe(Math.fround(Math.fround(0.1) * 333));
    expect(px[4]).toBe(Math.fround(Math.fround(0.7) * 777));
  });
});
