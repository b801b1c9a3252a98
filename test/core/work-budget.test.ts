/**
 * The work budget's cost model (src/core/work-budget.ts): its tap and cell counts against a direct count
 * of what the reference implementations read, its defaults against the README's normal requests and
 * the hostile ones of issue 11, and the image path's check before the backbone runs.
 */
import { describe, expect, it, vi } from 'vitest';
import type { Backbone } from '../../src/backbone/index.js';
import { parseConfig } from '../../src/config.js';
import { TooLargeError } from '../../src/errors.js';
import {
  psRoiAlign,
  psRoiPool,
  toCanonicalBoxes,
  type AlignMode,
  type Boxes,
  type FeatureMap,
} from '../../src/ops/index.js';
import { executeRoi } from '../../src/core/pipeline.js';
import { type PipelineContext } from '../../src/core/results.js';
import { limitsFrom } from '../../src/core/task.js';
import { prepareRoi } from '../../src/core/prepare.js';
import { roiBodySchema, roiInputOf } from '../../routes/v1/schemas/request.js';
import { decodeRoiTask } from '../../src/core/decode-task.js';
import type { InferenceRequest } from '../../src/oip/codec.js';
import { MODELS, psTask, type PsModel } from '../../src/oip/models.js';
import {
  alignWork,
  estimateWork,
  poolWork,
  psAlignWork,
  psPoolWork,
  ALIGN_BIN_COST,
  AXIS_SAMPLE_COST,
  checkRoiWork,
  OUTPUT_COST,
  POOL_BIN_COST,
  PS_TAP_COST,
  TAP_OVERHEAD,
  TAP_OVERHEAD_POOL,
  type OpsWorkInput,
} from '../../src/core/work-budget.js';
import { refBoxes, refRoiAlign, refRoiPool, refRoiWarp, type RefMap } from '../reference/roi_reference.js';
import { testPng } from '../support/fixtures.js';

const f = Math.fround;
const defaults = limitsFrom(parseConfig({}));

/** A reference map whose `data` counts the values read. */
function countingMap(C: number, H: number, W: number): { map: RefMap; reads: () => number } {
  let reads = 0;
  const data = new Proxy(new Float32Array(C * H * W).fill(1), {
    get(target, key) {
      if (typeof key === 'string' && /^\d+$/.test(key)) reads++;
      return Reflect.get(target, key) as unknown;
    },
  });
  return { map: { data, N: 1, C, H, W }, reads: () => reads };
}

function boxesOf(rows: number[][]): Boxes {
  return toCanonicalBoxes(rows, { format: 'xyxy', batchSize: 1, field: 'boxes' });
}

function input(boxes: Boxes, over: Partial<OpsWorkInput> = {}): OpsWorkInput {
  return {
    boxes,
    mapShape: [1, 3, 12, 10],
    spatialScale: 0.5,
    ops: ['align'],
    outputSize: [3, 2],
    samplingRatio: 2,
    aligned: true,
    mode: 'max',
    maxSamplingGrid: 64,
    ...over,
  };
}

/** Boxes inside a 10×12 map at spatialScale 0.5 (image 20×24), small, large, odd-sized. */
const inside = boxesOf([
  [2, 2, 18, 22],
  [1.25, 3.5, 7.75, 9],
  [0, 0, 20, 24],
  [6, 6, 7, 7],
]);
/** Partly and wholly off the map. */
const outside = boxesOf([
  [-10, -6, 8, 30],
  [30, 30, 50, 40],
]);

/**
 * The merged taps of RoI Align `avg` for one box, by replaying the sample positions (float32, like
 * the reference) and counting the distinct cells each bin reads along each axis.
 */
function mergedTaps(box: number[], s: number, PH: number, PW: number, sr: number, H: number, W: number) {
  const off = 0.5;
  const axis = (a: number, b: number, bins: number, size: number) => {
    const start = f(f(f(a) * s) - off);
    const bin = f(f(f(f(b) * s) - off) - start) / bins;
    const bf = f(bin);
    const grid = sr > 0 ? sr : Math.ceil(bf);
    const counts: number[] = [];
    for (let p = 0; p < bins; p++) {
      const cells = new Set<number>();
      for (let i = 0; i < grid; i++) {
        let v = f(f(start + f(p * bf)) + f(f((i + 0.5) * bf) / grid));
        if (v < -1 || v > size) continue;
        v = Math.max(v, 0);
        const lo = Math.floor(v);
        if (lo >= size - 1) cells.add(size - 1);
        else cells.add(lo).add(lo + 1);
      }
      counts.push(cells.size);
    }
    return counts;
  };
  const perColumnBin = axis(box[1], box[3], PW, W);
  const perRowBin = axis(box[2], box[4], PH, H);
  let taps = 0;
  for (const rows of perRowBin) for (const cols of perColumnBin) taps += rows * cols;
  return taps;
}

describe('cost model against a direct count', () => {
  const C = 3;
  const H = 12;
  const W = 10;
  const p = { s: 0.5, PH: 3, PW: 2, samplingRatio: 2, aligned: true, mode: 'max' as AlignMode };

  it('RoI Align max: taps = every sample × 4 taps, what the reference reads per channel', () => {
    for (const sr of [1, 2, 3, 0]) {
      const { map, reads } = countingMap(C, H, W);
      refRoiAlign(map, refBoxes(inside.data, inside.count), { ...p, samplingRatio: sr });
      const work = alignWork(input(inside, { samplingRatio: sr }), false);
      expect(work.taps * C).toBe(reads());
      expect(work.taps).toBe(work.samples * 4);
    }
  });

  it('RoI Align max: boxes off the map are estimated at least at what is read', () => {
    const { map, reads } = countingMap(C, H, W);
    refRoiAlign(map, refBoxes(outside.data, outside.count), p);
    const work = alignWork(input(outside), false);
    // The kernel reads a zero block for samples off the map: they cost, the reference skips them.
    expect(work.taps * C).toBeGreaterThanOrEqual(reads());
    expect(work.taps).toBe(2 * 3 * 2 * 2 * 2 * 4);
  });

  it('RoI Warp max: the grids of the snapped boxes, as the reference reads them', () => {
    const { map, reads } = countingMap(C, H, W);
    refRoiWarp(map, refBoxes(inside.data, inside.count), { ...p, samplingRatio: 0 });
    const work = alignWork(input(inside, { samplingRatio: 0, ops: ['warp'] }), true);
    expect(work.taps * C).toBe(reads());
  });

  it('RoI Pool: cells read = the reference reads per channel, exactly, boxes off the map included', () => {
    for (const outputSize of [1, 2, 3] as const) {
      for (const boxes of [inside, outside]) {
        const { map, reads } = countingMap(C, H, W);
        refRoiPool(map, refBoxes(boxes.data, boxes.count), { s: 0.5, PH: outputSize, PW: outputSize });
        const work = poolWork(input(boxes, { outputSize: [outputSize, outputSize], ops: ['pool'] }));
        expect(work.taps * C).toBe(reads());
      }
    }
  });

  it('RoI Align avg: an upper bound of the merged taps, far below the unmerged samples for big grids', () => {
    const rows = [
      [2, 2, 18, 22],
      [1.25, 3.5, 7.75, 9],
      [0, 0, 20, 24],
    ];
    for (const [sr, PH, PW] of [
      [2, 3, 2],
      [8, 3, 2],
      [0, 2, 2],
      [16, 7, 7],
    ]) {
      const boxes = boxesOf(rows);
      const work = alignWork(input(boxes, { mode: 'avg', samplingRatio: sr, outputSize: [PH, PW] }), false);
      let merged = 0;
      for (let k = 0; k < boxes.count; k++) {
        merged += mergedTaps([...boxes.data.subarray(5 * k, 5 * k + 5)], 0.5, PH, PW, sr, H, W);
      }
      expect(work.taps).toBeGreaterThanOrEqual(merged);
      // "Exact enough": within a small factor of the true count, unlike 4 taps per sample.
      expect(work.taps).toBeLessThanOrEqual(4 * merged);
    }
    const big = alignWork(input(inside, { mode: 'avg', samplingRatio: 64 }), false);
    expect(big.taps).toBeLessThan(big.samples * 4);
  });
});

/** The README's normal request, scaled up: 1000 boxes × 256 channels × 7×7 × sr 2 on a 30×40 map. */
function readmeNormal(): OpsWorkInput {
  const rows = Array.from({ length: 1000 }, (_, k) => [
    (k * 7) % 400,
    (k * 11) % 300,
    ((k * 7) % 400) + 40 + (k % 200),
    ((k * 11) % 300) + 30 + (k % 150),
  ]);
  return input(boxesOf(rows), {
    mapShape: [1, 256, 30, 40],
    spatialScale: 1 / 16,
    ops: ['pool', 'align', 'warp'],
    outputSize: [7, 7],
    samplingRatio: 2,
    mode: 'avg',
  });
}

describe('the default MAX_WORK', () => {
  it('passes normal requests: the README example at 1000 boxes, all three ops, avg and max', () => {
    for (const mode of ['avg', 'max'] as const) {
      const work = estimateWork({ ...readmeNormal(), mode });
      expect(work.total).toBeLessThan(defaults.maxWork / 10);
    }
    // and the largest image the backbone takes, with that request on its map
    const huge = estimateWork(
      { ...readmeNormal(), mapShape: [1, 256, 256, 256] },
      {
        multiplyAddsPerPixel: 1255,
        width: 4096,
        height: 4096,
      },
    );
    expect(huge.total).toBeLessThan(defaults.maxWork);
  });

  it('refuses the hostile requests of issue 11: max sr64 outputSize 64, and pool on a 2828² map', () => {
    const hostileAlign = input(boxesOf(Array.from({ length: 10_000 }, () => [0, 0, 16, 16])), {
      mapShape: [1, 1, 16, 16],
      spatialScale: 1,
      outputSize: [64, 64],
      samplingRatio: 64,
      mode: 'max',
    });
    expect(() => checkRoiWork(hostileAlign.boxes, hostileAlign.mapShape, 1, hostileAlign, defaults)).toThrow(
      /would cost ~\S+ work units \(align .*samples\/bin · 4 taps × C=1\)\), over MAX_WORK=5\.0e\+10/,
    );
    const hostilePool = input(boxesOf(Array.from({ length: 10_000 }, () => [0, 0, 2828, 2828])), {
      mapShape: [1, 1, 2828, 2828],
      spatialScale: 1,
      ops: ['pool'],
      outputSize: [1, 1],
    });
    expect(() => checkRoiWork(hostilePool.boxes, hostilePool.mapShape, 1, hostilePool, defaults)).toThrow(
      TooLargeError,
    );
  });

  it('normalized boxes are costed in pixels of their frame (a 0..1 box is not one pixel wide)', () => {
    // RoI Pool reads every cell of its boxes: 10000 whole-map boxes on a 1400² map, sent as fractions.
    const body = (normalized: boolean, box: number[]) =>
      roiBodySchema.parse({
        features: { shape: [1, 1, 1400, 1400], data: Buffer.alloc(4 * 1400 * 1400).toString('base64') },
        spatialScale: 1,
        boxes: Array.from({ length: 10_000 }, () => box),
        ops: ['pool'],
        outputSize: 1,
        normalized,
      });
    expect(() => prepareRoi(roiInputOf(body(false, [0, 0, 1400, 1400])), defaults)).toThrow(/MAX_WORK/);
    expect(() => prepareRoi(roiInputOf(body(true, [0, 0, 1, 1])), defaults)).toThrow(/MAX_WORK/);
    // and with imageSize, fractions of it
    const withSize = { ...body(true, [0, 0, 1, 1]), imageSize: [1400, 1400] as [number, number] };
    expect(() => prepareRoi(roiInputOf(withSize), defaults)).toThrow(/MAX_WORK/);
  });

  it('prepareRoi refuses an over-budget features request with 413', () => {
    const body = roiBodySchema.parse({
      features: { shape: [1, 1, 16, 16], data: Buffer.alloc(4 * 256).toString('base64') },
      spatialScale: 1,
      boxes: Array.from({ length: 10_000 }, () => [0, 0, 16, 16]),
      ops: ['align'],
      mode: 'max',
      outputSize: 64,
      samplingRatio: 64,
    });
    let error: unknown;
    try {
      prepareRoi(roiInputOf(body), defaults);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(TooLargeError);
    expect((error as TooLargeError).field).toBe('boxes');
    expect((error as TooLargeError).expected).toMatch(/fewer boxes, a smaller outputSize or samplingRatio/);
  });
});

/**
 * A backbone whose pass must not run (the budget refuses before it), priced like the built-in one
 * (1255 multiply-adds per pixel); with `pyramid`, the built-in pyramid's P3–P5 (2483 per pixel).
 */
function fakeBackbone(pyramid = false): Backbone & { extract: ReturnType<typeof vi.fn> } {
  const extract = vi.fn(() => Promise.reject(new Error('the backbone must not run')));
  return {
    name: pyramid ? 'fake-fpn' : 'fake',
    stride: 16,
    channels: 256,
    limits: { maxPixels: 4096 * 4096, maxSide: 8192, maxAspect: 32 },
    engine: 'tfjs',
    extract,
    ...(pyramid ? { pyramid: { strides: [8, 16, 32], channels: 64, extract } } : {}),
    onnxModel: () => null,
    describe: () =>
      ({
        totalMultiplyAdds: 1255 * 224 * 224,
        referenceInput: [224, 224],
        ...(pyramid ? { pyramid: { totalMultiplyAdds: 2483 * 224 * 224 } } : {}),
      }) as never,
    warmup: async () => undefined,
    dispose: () => undefined,
  };
}

describe('image input: the budget is checked after decoding, before the backbone', () => {
  async function run(body: Record<string, unknown>, maxWork: number) {
    const backbone = fakeBackbone();
    const limits = { ...defaults, maxWork };
    const ctx: PipelineContext = { backbone: async () => backbone, backend: () => null, limits };
    const png = (await testPng(96, 64)).toString('base64');
    const task = prepareRoi(
      roiInputOf(roiBodySchema.parse({ image: png, boxes: [[0, 0, 96, 64]], ...body })),
      limits,
    );
    const error = await executeRoi(decodeRoiTask(task, limits), ctx).catch((err: unknown) => err);
    return { error, backbone };
  }

  it('refuses (413) from the image header a request whose ops would exceed the budget; the backbone never runs', async () => {
    const { error, backbone } = await run({ mode: 'max', outputSize: 64, samplingRatio: 64 }, 1e9);
    expect(error).toBeInstanceOf(TooLargeError);
    expect((error as Error).message).toMatch(/backbone 7\.7e\+6 multiply-adds; .*align/);
    expect(backbone.extract).not.toHaveBeenCalled();
  });

  it('lets a normal request through to the backbone', async () => {
    const { error, backbone } = await run({}, defaults.maxWork);
    expect((error as Error).message).toBe('the backbone must not run');
    expect(backbone.extract).toHaveBeenCalledOnce();
  });
});

describe('features map size', () => {
  it('the copy-in of a large map counts even with one tiny box', () => {
    const small = estimateWork(input(boxesOf([[0, 0, 1, 1]]), { mapShape: [1, 1, 4, 4] }));
    const big = estimateWork(input(boxesOf([[0, 0, 1, 1]]), { mapShape: [1, 256, 2048, 2048] }));
    expect(big.total).toBeGreaterThan(1e9);
    expect(small.total).toBeLessThan(1e5);
  });
});

describe('several images (images): the whole request counts against MAX_WORK', () => {
  // Each 96×64 image costs its backbone pass, 1255 · 96 · 64 = 7.7e6 multiply-adds, plus a few
  // thousand units of ops (one 8×8 box, one bin, one sample: the copy-in of a 6×4×256 map is 6144).
  // MAX_WORK = 2e7 takes two such images (1.55e7) and not three (2.3e7), though each is 0.4 of it.
  async function run(count: number, images?: Buffer[]) {
    const backbone = fakeBackbone();
    const limits = { ...defaults, maxWork: 2e7 };
    const ctx: PipelineContext = { backbone: async () => backbone, backend: () => null, limits };
    const png = await testPng(96, 64);
    const list = (images ?? Array.from({ length: count }, () => png)).map((b) => b.toString('base64'));
    const task = prepareRoi(
      roiInputOf(
        roiBodySchema.parse({
          images: list,
          boxes: list.map((_, i) => [i, 0, 0, 8, 8]),
          ops: ['align'],
          outputSize: 1,
          samplingRatio: 1,
        }),
      ),
      limits,
    );
    const error = await executeRoi(decodeRoiTask(task, limits), ctx).catch((err: unknown) => err);
    return { error, backbone };
  }

  it('refuses (413, field images) three images whose sum is over MAX_WORK, before any backbone pass', async () => {
    const { error, backbone } = await run(3);
    expect(error).toBeInstanceOf(TooLargeError);
    expect((error as TooLargeError).field).toBe('images');
    expect((error as Error).message).toMatch(
      /^this request would cost ~2\.3e\+7 work units over its 3 images \(images\[0\] ~7\.7e\+6: backbone 7\.7e\+6 multiply-adds; align .*\), over MAX_WORK=2\.0e\+7$/,
    );
    expect((error as TooLargeError).expected).toMatch(/fewer or smaller images/);
    expect(backbone.extract).not.toHaveBeenCalled();
  });

  it('lets two through (1.5e7): the backbone runs', async () => {
    const { error, backbone } = await run(2);
    expect((error as Error).message).toBe('the backbone must not run');
    expect(backbone.extract).toHaveBeenCalledOnce();
  });

  it("reads every image's header before any backbone pass: a corrupt second image is a 400 naming images[1]", async () => {
    const png = await testPng(96, 64);
    const { error, backbone } = await run(2, [png, Buffer.from('not an image at all')]);
    expect((error as TooLargeError).status).toBe(415);
    expect((error as TooLargeError).field).toBe('images[1]');
    expect((error as Error).message).toMatch(/^images\[1\]: /);
    expect(backbone.extract).not.toHaveBeenCalled();
  });
});

describe('the position-sensitive ops: costed on the C/(PH·PW) channels they read', () => {
  const PH = 3;
  const PW = 2;
  const Cout = 4;
  const C = Cout * PH * PW; // 24
  const H = 12;
  const W = 10;

  /** A map whose data counts the values the kernel reads (the ps kernels read the map where it lies). */
  function countingFeatures(): { map: FeatureMap; reads: () => number } {
    let reads = 0;
    const data = new Proxy(new Float32Array(C * H * W).fill(1), {
      get(target, key) {
        if (typeof key === 'string' && /^\d+$/.test(key)) reads++;
        const value = Reflect.get(target, key, target) as unknown;
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
    return { map: { data, shape: [1, C, H, W], layout: 'NCHW' }, reads: () => reads };
  }
  const psInput = (boxes: Boxes, over: Partial<OpsWorkInput> = {}) =>
    input(boxes, { mapShape: [1, C, H, W], outputSize: [PH, PW], mode: 'avg', ...over });

  it('PS RoI Pool: cells read × C_out = what psRoiPool reads, exactly (boxes off the map included)', () => {
    for (const boxes of [inside, outside]) {
      const { map, reads } = countingFeatures();
      psRoiPool(map, boxes, { spatialScale: 0.5, outputSize: [PH, PW] });
      const work = psPoolWork(psInput(boxes));
      expect(work.taps * Cout).toBe(reads());
      expect(reads()).toBeGreaterThan(0);
    }
  });

  it('PS RoI Align: 4 taps × every sample × C_out = what psRoiAlign reads for boxes on the map; at least it off the map', () => {
    for (const sr of [1, 2, 0]) {
      const { map, reads } = countingFeatures();
      psRoiAlign(map, inside, { spatialScale: 0.5, outputSize: [PH, PW], samplingRatio: sr });
      const work = psAlignWork(psInput(inside, { samplingRatio: sr }));
      expect(work.taps * Cout).toBe(reads());
    }
    const { map, reads } = countingFeatures();
    psRoiAlign(map, outside, { spatialScale: 0.5, outputSize: [PH, PW], samplingRatio: 2 });
    expect(psAlignWork(psInput(outside)).taps * Cout).toBeGreaterThanOrEqual(reads());
  });

  it('a ps request just under MAX_WORK passes and just over is refused: the estimate is the count of what psRoiPool reads, at PS_TAP_COST a channel-cell', () => {
    // 200 boxes of the whole 20×24 image: PS Pool reads the quantized bins, clipped to H-1 × W-1.
    const rows = Array.from({ length: 200 }, () => [0, 0, 20, 24]);
    const boxes = boxesOf(rows);
    const { map, reads } = countingFeatures();
    psRoiPool(map, boxes, { spatialScale: 0.5, outputSize: [PH, PW] });
    // README: Σ cells · (C_out · PS_TAP_COST + TAP_OVERHEAD_POOL) + K·PH·PW·POOL_BIN_COST + K·C_out·PH·PW·OUTPUT_COST.
    const cells = reads() / Cout;
    const expected =
      cells * (Cout * PS_TAP_COST + TAP_OVERHEAD_POOL) +
      200 * PH * PW * POOL_BIN_COST +
      200 * Cout * PH * PW * OUTPUT_COST;
    expect(estimateWork(psInput(boxes, { ops: ['ps_pool'] })).total).toBe(expected);
    const body = (maxWork: number) => {
      const request = roiBodySchema.parse({
        features: { shape: [1, C, H, W], data: Buffer.alloc(4 * C * H * W).toString('base64') },
        spatialScale: 0.5,
        boxes: rows,
        ops: ['ps_pool'],
        outputSize: [PH, PW],
      });
      return () => prepareRoi(roiInputOf(request), { ...defaults, maxWork });
    };
    expect(body(expected)).not.toThrow();
    expect(body(expected - 1)).toThrow(/ps_pool .*cells read × C\/\(PH·PW\)=4\)/);
  });
});

describe('a pyramid: each box costed on its level', () => {
  // P2..P5 of a 512×512 image; a 448² box is level 5 (torchvision's rule), a 56² one level 2.
  const scales = [1 / 4, 1 / 8, 1 / 16, 1 / 32];
  const shapes = scales.map((s) => [1, 8, 512 * s, 512 * s] as const);
  const rows = [
    [0, 10, 20, 458, 468],
    [0, 100, 100, 156, 156],
  ];
  const common = { outputSize: [7, 7] as [number, number], mode: 'avg' as AlignMode, samplingRatio: 2 };

  it('equals the sum of each box on its own level (the coarser levels without boxes cost nothing)', () => {
    for (const op of ['pool', 'align', 'ps_pool'] as const) {
      const C = op === 'ps_pool' ? 49 : 8;
      const sh = shapes.map(([n, , h, w]) => [n, C, h, w] as const);
      const on = (row: number[], level: number) =>
        estimateWork(
          input(boxesOf([row]), { ...common, ops: [op], mapShape: sh[level], spatialScale: scales[level] }),
        ).total;
      const pyramid = estimateWork(
        input(boxesOf(rows), {
          ...common,
          ops: [op],
          mapShape: sh[0],
          spatialScale: scales[0],
          pyramid: { shapes: sh, scales },
        }),
      );
      expect(pyramid.total).toBe(on(rows[0], 3) + on(rows[1], 0));
    }
  });

  it('a pyramid request just under MAX_WORK passes, just over is refused (it was costed on the finest map)', () => {
    const maps = shapes.map((shape) => ({
      shape: [...shape],
      data: Buffer.alloc(4 * shape[1] * shape[2] * shape[3]).toString('base64'),
    }));
    // The 448² box on P5 (14² cells of 32 px, + the end cell) and the 56² box on P2, RoI Pool:
    const onLevel = (row: number[], level: number) =>
      estimateWork(
        input(boxesOf([row]), {
          ...common,
          ops: ['pool'],
          mapShape: shapes[level],
          spatialScale: scales[level],
        }),
      ).total;
    const expected = onLevel(rows[0], 3) + onLevel(rows[1], 0);
    const onFinest = onLevel(rows[0], 0) + onLevel(rows[1], 0);
    expect(onFinest).toBeGreaterThan(2 * expected);
    const run = (maxWork: number) => () =>
      prepareRoi(
        roiInputOf(
          roiBodySchema.parse({
            features: maps,
            spatialScale: scales,
            boxes: rows,
            ops: ['pool'],
            outputSize: 7,
          }),
        ),
        { ...defaults, maxWork },
      );
    expect(run(expected)).not.toThrow();
    expect(run(expected - 1)).toThrow(/MAX_WORK/);
  });
});

describe('pyramid: true: the budget costs each box on its level, before the backbone runs', () => {
  it('a 512² image with a 500² box (level 5, stride 32) and a 100² box (level 3): just under passes, just over is refused', async () => {
    const rows = [
      [0, 0, 500, 500],
      [10, 10, 110, 110],
    ];
    // torchvision's rule: floor(4 + log2(500 / 224)) = 5, floor(4 + log2(100 / 224)) = 2 → clamped to 3.
    const onLevel = (row: number[], stride: number) =>
      estimateWork(
        input(boxesOf([row]), {
          ops: ['pool'],
          outputSize: [7, 7],
          mapShape: [1, 64, 512 / stride, 512 / stride],
          spatialScale: 1 / stride,
        }),
      ).total;
    const expected = 2483 * 512 * 512 + onLevel(rows[0], 32) + onLevel(rows[1], 8);
    // On the finest map the 500² box costs about 9 times as much (16 times the cells; 16 times the copy-in).
    expect(onLevel(rows[0], 8)).toBeGreaterThan(5 * onLevel(rows[0], 32));
    const png = (await testPng(512, 512)).toString('base64');
    const run = async (maxWork: number) => {
      const backbone = fakeBackbone(true);
      const { extract } = backbone;
      const limits = { ...defaults, maxWork };
      const ctx: PipelineContext = { backbone: async () => backbone, backend: () => null, limits };
      const body = roiBodySchema.parse({
        image: png,
        pyramid: true,
        boxes: rows,
        ops: ['pool'],
        outputSize: 7,
      });
      const task = prepareRoi(roiInputOf(body), limits);
      const error = await executeRoi(decodeRoiTask(task, limits), ctx).catch((err: unknown) => err);
      return { error, extract };
    };
    const under = await run(expected);
    expect((under.error as Error).message).toBe('the backbone must not run');
    const over = await run(expected - 1);
    expect(over.error).toBeInstanceOf(TooLargeError);
    expect(over.extract).not.toHaveBeenCalled();
  });
});

describe('/v2 ps_roi_align: costed with the ps model (every sample read, nothing merged)', () => {
  // One 2×2 box, output 1×1, sampling_ratio 64: 4096 samples × 4 taps on C_out = 4 channels. Costed as
  // RoI Align avg (merged taps: 5 × 5 cells) it was ~5e3 units, 250 times less than what runs.
  const request = (): InferenceRequest => ({
    id: undefined,
    parameters: { spatial_scale: 1, output_size: 1, sampling_ratio: 64 },
    inputs: [
      {
        name: 'features',
        shape: [1, 4, 8, 8],
        datatype: 'FP32',
        parameters: {},
        data: new Array(256).fill(1),
        binary: undefined,
      },
      {
        name: 'rois',
        shape: [1, 5],
        datatype: 'FP32',
        parameters: {},
        data: [0, 0, 0, 2, 2],
        binary: undefined,
      },
    ],
    outputs: undefined,
  });
  const model = MODELS.get('ps_roi_align') as PsModel;
  // README: Σ PH·PW·gh·gw · 4 taps · (C_out · PS_TAP_COST + TAP_OVERHEAD) + (PH·gh + PW·gw) · AXIS_SAMPLE_COST
  // + K·PH·PW · ALIGN_BIN_COST + K·C_out·PH·PW · OUTPUT_COST.
  const expected =
    64 * 64 * 4 * (4 * PS_TAP_COST + TAP_OVERHEAD) +
    128 * AXIS_SAMPLE_COST +
    ALIGN_BIN_COST +
    4 * OUTPUT_COST;

  it('passes at exactly its cost, is refused (413) one unit under', () => {
    expect(() => psTask(request(), model, { ...defaults, maxWork: expected })).not.toThrow();
    expect(() => psTask(request(), model, { ...defaults, maxWork: expected - 1 })).toThrow(TooLargeError);
  });
});
