import { describe, expect, it } from 'vitest';
import { InvalidInputError } from '../../src/errors.js';
import {
  mapLevels,
  mapRotatedLevels,
  multiScaleRoi,
  multiScaleRotatedRoiAlign,
  psRoiAlign,
  psRoiPool,
  roiAlign,
  roiPool,
  roiWarp,
  rotatedRoiAlign,
  toCanonicalBoxes,
  toRotatedBoxes,
  toLayout,
} from '../../src/ops/index.js';
import type { Boxes, FeatureMap, LevelMapping, MultiScaleOp } from '../../src/ops/index.js';
import { mulberry32, randInt, randomMap } from '../support/random.js';
import { fieldOf } from '../support/errors.js';

/** Square boxes of side `s` at the origin, image 0. */
const squares = (...sides: number[]): Boxes =>
  toCanonicalBoxes(
    sides.map((s) => [0, 0, s, s]),
    { batchSize: 1 },
  );

const levelsOf = (boxes: Boxes, mapping?: LevelMapping, kMin = 2, kMax = 5): number[] =>
  Array.from(mapLevels(boxes, mapping, kMin, kMax));

describe('mapLevels (FPN Eq. 1)', () => {
  it('worked examples: 224 → 4, 112 → 3, 448 → 5, under both rules', () => {
    const b = squares(224, 112, 448);
    expect(levelsOf(b)).toEqual([4, 3, 5]);
    expect(levelsOf(b, { rule: 'detectron2' })).toEqual([4, 3, 5]);
  });

  it('s = 223.9999 is level 4 by torchvision (eps after the log) and 3 by detectron2 (eps inside)', () => {
    const b = squares(223.9999);
    expect(levelsOf(b, { rule: 'torchvision' })).toEqual([4]);
    expect(levelsOf(b)).toEqual([4]); // torchvision is the default
    expect(levelsOf(b, { rule: 'detectron2' })).toEqual([3]);
  });

  it('other boundaries, as torch 1.13 / torchvision 0.14 give them on float32 boxes', () => {
    // float32 rounding of 4 + log2(...) decides these: near 448 and 896 both rules already land on
    // the level above; near 112 and 56 neither eps is enough; 223.9998 is too far below for 1e-6.
    const b = squares(111.9999, 447.9999, 55.9999, 895.9999, 111.99999, 223.9998);
    expect(levelsOf(b, undefined, 0, 9)).toEqual([2, 5, 1, 6, 3, 3]);
    expect(levelsOf(b, { rule: 'detectron2' }, 0, 9)).toEqual([2, 5, 1, 6, 3, 3]);
  });

  it('s is sqrt of the area in image pixels, no +1: a 112×448 box has s = 224', () => {
    const b = toCanonicalBoxes([[10, 20, 122, 468]], { batchSize: 1 });
    expect(levelsOf(b)).toEqual([4]);
    // with a +1 (legacy Detectron) s would be sqrt(113·449) > 224: still 4; one pixel smaller shows it
    const smaller = toCanonicalBoxes([[10, 20, 121, 468]], { batchSize: 1 });
    expect(levelsOf(smaller)).toEqual([3]);
  });

  it('clamps to [kMin, kMax]', () => {
    const b = squares(8, 32, 5000, 1e4);
    expect(levelsOf(b)).toEqual([2, 2, 5, 5]);
    expect(levelsOf(b, undefined, 0, 9)).toEqual([0, 1, 8, 9]);
    expect(levelsOf(squares(224), undefined, 3, 3)).toEqual([3]);
  });

  it('a zero-area box goes to kMin under both rules', () => {
    const b = toCanonicalBoxes(
      [
        [5, 5, 5, 9],
        [5, 5, 300, 5],
        [7, 7, 7, 7],
      ],
      { batchSize: 1 },
    );
    expect(levelsOf(b)).toEqual([2, 2, 2]);
    expect(levelsOf(b, { rule: 'detectron2' })).toEqual([2, 2, 2]);
  });

  it('canonicalBoxSize and canonicalLevel move the levels', () => {
    const b = squares(224, 112);
    expect(levelsOf(b, { canonicalBoxSize: 112, canonicalLevel: 3 })).toEqual([4, 3]);
    expect(levelsOf(b, { canonicalBoxSize: 224, canonicalLevel: 3 })).toEqual([3, 2]);
  });

  it('refuses a bad mapping, naming the field', () => {
    const b = squares(224);
    expect(fieldOf(() => mapLevels(b, { rule: 'mmdet' as never }, 2, 5))).toBe('levelMapping.rule');
    expect(fieldOf(() => mapLevels(b, { canonicalBoxSize: 0 }, 2, 5))).toBe('levelMapping.canonicalBoxSize');
    expect(fieldOf(() => mapLevels(b, { canonicalBoxSize: NaN }, 2, 5))).toBe(
      'levelMapping.canonicalBoxSize',
    );
    expect(fieldOf(() => mapLevels(b, { canonicalLevel: 4.5 }, 2, 5))).toBe('levelMapping.canonicalLevel');
  });
});

/** A 4-level pyramid P2..P5 for an image of `imgH × imgW` (sizes ceil(img / stride), like a ResNet). */
function pyramid(
  rand: () => number,
  N: number,
  C: number,
  imgH: number,
  imgW: number,
  layouts: readonly ('NCHW' | 'NHWC')[] = ['NCHW', 'NCHW', 'NCHW', 'NCHW'],
): { features: FeatureMap[]; scales: number[] } {
  const scales = [1 / 4, 1 / 8, 1 / 16, 1 / 32];
  const features = scales.map((s, i): FeatureMap => {
    const H = Math.ceil(imgH * s);
    const W = Math.ceil(imgW * s);
    const fm: FeatureMap = { data: randomMap(rand, N * C * H * W), shape: [N, C, H, W], layout: 'NCHW' };
    return toLayout(fm, layouts[i]);
  });
  return { features, scales };
}

/** Boxes of every size class (so every level gets some), some across the map edges. */
function mixedBoxes(rand: () => number, K: number, N: number, imgH: number, imgW: number): Boxes {
  const rows: number[][] = [];
  for (let k = 0; k < K; k++) {
    const side = [0, 20, 80, 150, 223.9999, 224, 300, 500, 900][randInt(rand, 0, 8)] * (0.8 + 0.4 * rand());
    const x1 = (rand() * 1.2 - 0.1) * imgW;
    const y1 = (rand() * 1.2 - 0.1) * imgH;
    rows.push([randInt(rand, 0, N - 1), x1, y1, x1 + side * (0.5 + rand()), y1 + side * (0.5 + rand())]);
  }
  return toCanonicalBoxes(rows, { batchSize: N });
}

const single = {
  align: roiAlign,
  pool: roiPool,
  warp: roiWarp,
  ps_align: psRoiAlign,
  ps_pool: psRoiPool,
} as const;

describe('multiScaleRoi', () => {
  it('worked example of the TSDoc: 224 → P4 at 1/16, 112 → P3 at 1/8, rows in the boxes’ order', () => {
    const rand = mulberry32(7);
    const { features, scales } = pyramid(rand, 1, 3, 256, 320);
    const boxes = toCanonicalBoxes(
      [
        [10, 20, 234, 244],
        [0, 0, 112, 112],
      ],
      { batchSize: 1 },
    );
    const p = { outputSize: 2, samplingRatio: 2, aligned: false };
    const { output, levels } = multiScaleRoi('align', features, scales, boxes, p);
    expect(Array.from(levels)).toEqual([4, 3]);
    expect(output.shape).toEqual([2, 3, 2, 2]);
    const row0 = roiAlign(
      features[2],
      { data: boxes.data.slice(0, 5), count: 1 },
      { ...p, spatialScale: 1 / 16 },
    );
    const row1 = roiAlign(
      features[1],
      { data: boxes.data.slice(5, 10), count: 1 },
      { ...p, spatialScale: 1 / 8 },
    );
    expect(output.data.slice(0, 12)).toEqual(row0.data);
    expect(output.data.slice(12, 24)).toEqual(row1.data);
  });

  for (const op of ['align', 'pool', 'warp', 'ps_align', 'ps_pool'] as const) {
    for (const outputLayout of ['NCHW', 'NHWC'] as const) {
      it(`${op}, ${outputLayout} out: each row equals the single-level op on the box's level (seeded)`, () => {
        const rand = mulberry32(op.length * 31 + outputLayout.length);
        for (let trial = 0; trial < 4; trial++) {
          const N = randInt(rand, 1, 2);
          const outputSize: [number, number] = [randInt(rand, 1, 4), randInt(rand, 1, 4)];
          // the ps ops need C = C_out·PH·PW
          const ps = op === 'ps_align' || op === 'ps_pool';
          const C = ps ? randInt(rand, 1, 2) * outputSize[0] * outputSize[1] : randInt(rand, 1, 5);
          const Cout = ps ? C / (outputSize[0] * outputSize[1]) : C;
          const imgH = randInt(rand, 100, 700);
          const imgW = randInt(rand, 100, 700);
          const layouts = [0, 1, 2, 3].map((): 'NCHW' | 'NHWC' => (rand() < 0.5 ? 'NCHW' : 'NHWC'));
          const { features, scales } = pyramid(rand, N, C, imgH, imgW, layouts);
          const K = randInt(rand, 0, 24);
          const boxes = mixedBoxes(rand, K, N, imgH, imgW);
          const rule = rand() < 0.5 ? 'torchvision' : 'detectron2';
          const p = {
            outputSize,
            samplingRatio: randInt(rand, 0, 3),
            aligned: rand() < 0.5,
            outputLayout,
          };
          const { output, levels } = multiScaleRoi(op, features, scales, boxes, p, { rule });
          const [PH, PW] = p.outputSize;
          expect(output.shape).toEqual([K, Cout, PH, PW]);
          expect(output.layout).toBe(outputLayout);
          expect(levels).toEqual(mapLevels(boxes, { rule }, 2, 5));
          const rowSize = Cout * PH * PW;
          for (let k = 0; k < K; k++) {
            const i = levels[k] - 2;
            const one = { data: boxes.data.slice(5 * k, 5 * k + 5), count: 1 };
            const want = single[op](features[i], one, { ...p, spatialScale: scales[i] });
            expect(output.data.slice(k * rowSize, (k + 1) * rowSize)).toEqual(want.data);
          }
        }
      });
    }
  }

  it('every level is used by the mixed boxes (the composition test covers all four maps)', () => {
    const rand = mulberry32(3);
    const boxes = mixedBoxes(rand, 200, 1, 600, 600);
    expect(new Set(mapLevels(boxes, undefined, 2, 5))).toEqual(new Set([2, 3, 4, 5]));
  });

  it('K = 0 gives [0, C, PH, PW] and no levels', () => {
    const { features, scales } = pyramid(mulberry32(1), 2, 3, 64, 64);
    const { output, levels } = multiScaleRoi(
      'align',
      features,
      scales,
      { data: new Float32Array(0), count: 0 },
      {
        outputSize: [2, 3],
      },
    );
    expect(output.shape).toEqual([0, 3, 2, 3]);
    expect(output.data.length).toBe(0);
    expect(levels.length).toBe(0);
  });

  it('one level behaves as the single-level op', () => {
    const rand = mulberry32(5);
    const fm: FeatureMap = { data: randomMap(rand, 2 * 8 * 8), shape: [1, 2, 8, 8], layout: 'NCHW' };
    const boxes = squares(30, 224, 900);
    const { output, levels } = multiScaleRoi('pool', [fm], [1 / 16], boxes, { outputSize: 2 });
    expect(Array.from(levels)).toEqual([4, 4, 4]);
    expect(output.data).toEqual(roiPool(fm, boxes, { spatialScale: 1 / 16, outputSize: 2 }).data);
  });

  describe('validation (typed errors naming the field)', () => {
    const rand = mulberry32(11);
    const { features, scales } = pyramid(rand, 2, 3, 128, 128);
    const boxes = squares(50, 224);
    const run = (
      f: readonly FeatureMap[] = features,
      s: readonly number[] = scales,
      b: Boxes = boxes,
      params: object = {},
      mapping?: LevelMapping,
      op: MultiScaleOp = 'align',
    ) => multiScaleRoi(op, f, s, b, params, mapping);

    it('features: non-empty, same N and C, sizes consistent with the scales (finest first)', () => {
      expect(fieldOf(() => run([], []))).toBe('features');
      const otherC = { ...features[2], data: new Float32Array(2 * 4 * 8 * 8), shape: [2, 4, 8, 8] as const };
      expect(fieldOf(() => run([features[0], features[1], otherC, features[3]]))).toBe('features[2].shape');
      const otherN = {
        ...features[1],
        data: new Float32Array(1 * 3 * 16 * 16),
        shape: [1, 3, 16, 16] as const,
      };
      expect(fieldOf(() => run([features[0], otherN, features[2], features[3]]))).toBe('features[1].shape');
      // coarsest first with finest-first scales: the sizes give it away
      expect(fieldOf(() => run([...features].reverse()))).toBe('features[1].shape');
      const bad = { ...features[3], data: new Float32Array(5) };
      expect(fieldOf(() => run([features[0], features[1], features[2], bad]))).toBe('features[3].data');
    });

    it('small maps: sides that bottom out at one cell, halved rounding up or down, are their levels', () => {
      const map = (h: number, w: number): FeatureMap => ({
        data: new Float32Array(h * w).fill(1),
        shape: [1, 1, h, w],
        layout: 'NCHW',
      });
      const tiny = squares(4);
      // A 16×32 image at strides 8, 16, 32 (ceil): 2×4, 1×2, 1×1; log2 rounding alone calls 1×1 level 1.
      const up = multiScaleRoi('align', [map(2, 4), map(1, 2), map(1, 1)], [1 / 8, 1 / 16, 1 / 32], tiny, {});
      expect(Array.from(up.output.data)).toEqual(new Array(49).fill(1));
      // Unpadded pooling rounds down: 5×5, 2×2, 1×1.
      const down = multiScaleRoi('pool', [map(5, 5), map(2, 2), map(1, 1)], [1, 0.5, 0.25], tiny, {});
      expect(down.output.shape).toEqual([1, 1, 7, 7]);
      // Still refused: a second level larger than the first.
      expect(fieldOf(() => multiScaleRoi('align', [map(2, 2), map(4, 4)], [1, 0.5], tiny, {}))).toBe(
        'features[1].shape',
      );
    });

    it('spatialScale: one per map, powers of two, consecutive', () => {
      expect(fieldOf(() => run(features, scales.slice(0, 3)))).toBe('spatialScale');
      expect(fieldOf(() => run(features, [0.25, 0.125, 0.0625, 0.03]))).toBe('spatialScale[3]');
      expect(fieldOf(() => run(features, [0.25, 0.2, 0.0625, 0.03125]))).toBe('spatialScale[1]');
      expect(fieldOf(() => run(features, [0.25, 0.125, 0.03125, 0.015625]))).toBe('spatialScale[2]');
      expect(fieldOf(() => run(features, [-0.25, 0.125, 0.0625, 0.03125]))).toBe('spatialScale[0]');
      expect(fieldOf(() => run(features, [NaN, 0.125, 0.0625, 0.03125]))).toBe('spatialScale[0]');
    });

    it('boxes, op, mapping and kernel parameters', () => {
      const badBatch = toCanonicalBoxes(
        [
          [0, 0, 0, 10, 10],
          [5, 0, 0, 10, 10],
        ],
        { batchSize: 9 },
      );
      expect(fieldOf(() => run(features, scales, badBatch))).toBe('boxes[1][0]');
      expect(fieldOf(() => run(features, scales, boxes, {}, { rule: 'x' as never }))).toBe(
        'levelMapping.rule',
      );
      expect(fieldOf(() => run(features, scales, boxes, {}, undefined, 'rotated_align' as never))).toBe('op');
      expect(fieldOf(() => run(features, scales, boxes, { outputSize: 0 }))).toBe('outputSize');
      expect(fieldOf(() => run(features, scales, boxes, { outputLayout: 'CHW' }))).toBe('outputLayout');
      expect(fieldOf(() => run(features, scales, boxes, { samplingRatio: 1.5 }))).toBe('samplingRatio');
      // ps ops: C = 3 does not split into 2×2 bins (refused before any level runs)
      const ps = (op: MultiScaleOp) => run(features, scales, boxes, { outputSize: 2 }, undefined, op);
      expect(fieldOf(() => ps('ps_align'))).toBe('features[0].shape');
      expect(fieldOf(() => ps('ps_pool'))).toBe('features[0].shape');
      // with no boxes at all the kernel's checks still run
      const none = { data: new Float32Array(0), count: 0 };
      expect(fieldOf(() => run(features, scales, none, { samplingRatio: 1.5 }))).toBe('samplingRatio');
    });

    it("a kernel's refusal names the request's row, not the row within its level", () => {
      // boxes 1 and 2 go to P5; the adaptive grid of box 2 (row 1 of P5's subset) is over the limit
      const b = squares(224, 500, 20000);
      try {
        run(features, scales, b, { samplingRatio: 0 });
        expect.unreachable();
      } catch (e) {
        expect(e).toBeInstanceOf(InvalidInputError);
        expect((e as InvalidInputError).field).toBe('samplingRatio');
        expect((e as Error).message).toMatch(/^boxes\[2\] \(on level 5\) needs an adaptive sampling grid/);
      }
    });
  });
});

describe('multi-level Rotated RoI Align', () => {
  it('mapRotatedLevels: s = sqrt(w·h) whatever the angle, the same rules, clamps and zero size as mapLevels', () => {
    const sides = [223.9999, 224, 112, 111.9999, 447.9999, 448, 32, 5000, 0];
    const upright = squares(...sides);
    for (const angle of [0, 30, -90, 179]) {
      const rotated = toRotatedBoxes(
        sides.map((s) => [s / 2, s / 2, s, s, angle]),
        { batchSize: 1 },
      );
      for (const rule of ['torchvision', 'detectron2'] as const) {
        expect(mapRotatedLevels(rotated, { rule }, 2, 5)).toEqual(mapLevels(upright, { rule }, 2, 5));
      }
      expect(Array.from(mapRotatedLevels(rotated, undefined, 2, 5))).toEqual([4, 4, 3, 2, 5, 5, 2, 5, 2]);
      expect(Array.from(mapRotatedLevels(rotated, { rule: 'detectron2' }, 2, 5))).toEqual([
        3, 4, 3, 2, 5, 5, 2, 5, 2,
      ]);
    }
  });

  for (const outputLayout of ['NCHW', 'NHWC'] as const) {
    it(`${outputLayout} out: each row equals rotatedRoiAlign on the box's level (seeded)`, () => {
      const rand = mulberry32(outputLayout === 'NCHW' ? 41 : 43);
      for (let trial = 0; trial < 4; trial++) {
        const N = randInt(rand, 1, 2);
        const C = randInt(rand, 1, 5);
        const imgH = randInt(rand, 100, 600);
        const imgW = randInt(rand, 100, 600);
        const layouts = [0, 1, 2, 3].map((): 'NCHW' | 'NHWC' => (rand() < 0.5 ? 'NCHW' : 'NHWC'));
        const { features, scales } = pyramid(rand, N, C, imgH, imgW, layouts);
        const K = randInt(rand, 0, 20);
        const rows: number[][] = [];
        for (let k = 0; k < K; k++) {
          const side = [0, 20, 80, 150, 223.9999, 224, 300, 500, 900][randInt(rand, 0, 8)];
          const a = 2 ** (rand() * 2 - 1);
          rows.push([
            randInt(rand, 0, N - 1),
            (rand() * 1.2 - 0.1) * imgW,
            (rand() * 1.2 - 0.1) * imgH,
            side * a,
            side / a,
            rand() * 360 - 180,
          ]);
        }
        const boxes = toRotatedBoxes(rows, { batchSize: N });
        const rule = rand() < 0.5 ? 'torchvision' : 'detectron2';
        const p = {
          outputSize: [randInt(rand, 1, 4), randInt(rand, 1, 4)] as [number, number],
          samplingRatio: randInt(rand, 0, 3),
          aligned: rand() < 0.5,
          clockwise: rand() < 0.5,
          outputLayout,
        };
        const { output, levels } = multiScaleRotatedRoiAlign(features, scales, boxes, p, { rule });
        const [PH, PW] = p.outputSize;
        expect(output.shape).toEqual([K, C, PH, PW]);
        expect(output.layout).toBe(outputLayout);
        expect(levels).toEqual(mapRotatedLevels(boxes, { rule }, 2, 5));
        const rowSize = C * PH * PW;
        for (let k = 0; k < K; k++) {
          const i = levels[k] - 2;
          const one = { data: boxes.data.slice(6 * k, 6 * k + 6), count: 1 };
          const want = rotatedRoiAlign(features[i], one, { ...p, spatialScale: scales[i] });
          expect(output.data.slice(k * rowSize, (k + 1) * rowSize)).toEqual(want.data);
        }
      }
    });
  }

  it('validation names the field: boxes, the pyramid, the kernel parameters', () => {
    const { features, scales } = pyramid(mulberry32(2), 1, 2, 128, 128);
    const good = toRotatedBoxes([[50, 50, 100, 40, 30]], { batchSize: 1 });
    const bad = { data: new Float32Array([0, 50, 50, 100, 40, 30, 0, 50, 50, -1, 40, 0]), count: 2 };
    expect(fieldOf(() => multiScaleRotatedRoiAlign(features, scales, bad, {}))).toBe('boxes[1][3]');
    expect(fieldOf(() => multiScaleRotatedRoiAlign(features, [0.25, 0.1, 0.0625, 0.03125], good, {}))).toBe(
      'spatialScale[1]',
    );
    expect(fieldOf(() => multiScaleRotatedRoiAlign(features, scales, good, { clockwise: 1 as never }))).toBe(
      'clockwise',
    );
    const none = { data: new Float32Array(0), count: 0 };
    const empty = multiScaleRotatedRoiAlign(features, scales, none, { outputSize: 3 });
    expect(empty.output.shape).toEqual([0, 2, 3, 3]);
  });
});
