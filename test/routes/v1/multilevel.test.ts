/**
 * `/v1/roi` over a pyramid (issue 13): `features` as a list of maps with a list of `spatialScale`s, each
 * box pooled on its level and its `level` in the JSON; the position-sensitive and rotated operators.
 * Checked against the kernels (`multiScaleRoi`, …) and torchvision 0.14's `MultiScaleRoIAlign`
 * (aligned=false) on seeded random cases, through Debian's /usr/bin/python3.
 */
import { describe, expect, it } from 'vitest';
import {
  multiScaleRoi,
  multiScaleRotatedRoiAlign,
  psRoiAlign,
  psRoiPool,
  rotatedRoiAlign,
  toCanonicalBoxes,
  toRotatedBoxes,
  type FeatureMap,
} from '../../../src/ops/index.js';
import { loadBackbone } from '../../../src/backbone/index.js';
import { decodeImage } from '../../../src/imaging/decode.js';
import { writeNpy } from '../../../src/tensors/npy.js';
import { readSafetensors } from '../../../src/tensors/safetensors.js';
import { b64, fromB64, runOracleScript } from '../../oracle/script.js';
import { useApp } from '../../support/app.js';
import { debianPython } from '../../support/python.js';
import { maxAbsDiff } from '../../support/compare.js';
import { featuresField, randomMap, tensorData, testPng } from '../../support/fixtures.js';
import { postForm } from '../../support/v1.js';

const server = useApp();
const haveTorchvision = debianPython({
  modules: ['torchvision.ops'],
  packages: ['python3-torchvision'],
  what: '/v1 multi-level vs torchvision',
});

const SCALES = [1 / 4, 1 / 8, 1 / 16, 1 / 32];
/** P2..P5 of an `h × w` image, `N` images, `C` channels (sizes `ceil(side · scale)`, as a backbone gives). */
function pyramid(N: number, C: number, h: number, w: number, seed: number): FeatureMap[] {
  return SCALES.map((s, i) => randomMap([N, C, Math.ceil(h * s), Math.ceil(w * s)], seed + i));
}

async function roi(body: Record<string, unknown>) {
  return server.app.inject({ method: 'POST', url: '/v1/roi', payload: body });
}

const boxes5 = [
  [0, 10, 20, 234, 244], // 224² → level 4
  [1, 0, 0, 112, 112], // level 3
  [0, 30, 40, 478, 488], // 448² → level 5
  [1, 5, 5, 37, 37], // 32² → level 1, clamped to 2
  [0, 100, 50, 223.9999 + 100, 50 + 223.9999], // the boundary: 4 by torchvision, 3 by detectron2
];

describe('/v1/roi with a feature pyramid', () => {
  const maps = pyramid(2, 8, 512, 640, 11);

  it('pools each box on its level (JSON levels) and equals multiScaleRoi for pool, align, warp', async () => {
    const r = await roi({
      features: maps.map(featuresField),
      spatialScale: SCALES,
      boxes: boxes5,
      ops: ['pool', 'align', 'warp'],
      outputSize: [3, 2],
      aligned: false,
    });
    expect(r.statusCode, r.body).toBe(200);
    const json = r.json();
    expect(json.levels).toEqual([4, 3, 5, 2, 4]);
    const boxes = toCanonicalBoxes(boxes5, { batchSize: 2 });
    for (const op of ['pool', 'align', 'warp'] as const) {
      const expected = multiScaleRoi(op, maps, SCALES, boxes, { outputSize: [3, 2], aligned: false });
      expect(json.outputs[op].shape).toEqual([5, 8, 3, 2]);
      expect(maxAbsDiff(tensorData(json.outputs[op]), expected.output.data)).toBe(0);
    }
    // Coverage at each box's own stride: box 2 [30, 40, 478, 488] on level 5 (stride 32) reads cells
    // cRound(30/32) = 1 … cRound(478/32) = 15 (+1 end), 32 px each: y1 = 32 (48 on P4, 40 on P2/P3).
    expect(json.coverage[2].pool.cells).toEqual({ x1: 1, y1: 1, x2: 16, y2: 16 });
    expect(json.coverage[2].pool.region).toEqual({ x1: 32, y1: 32, x2: 512, y2: 512 });
    // safetensors carries the levels in its metadata, like the JSON.
    const st = await roi({
      features: maps.map(featuresField),
      spatialScale: SCALES,
      boxes: boxes5,
      ops: ['align'],
      outputSize: [3, 2],
      aligned: false,
      format: 'safetensors',
    });
    expect(st.statusCode).toBe(200);
    const { tensors, metadata } = readSafetensors(st.rawPayload);
    expect(JSON.parse(metadata.levels)).toEqual([4, 3, 5, 2, 4]);
    expect(maxAbsDiff(tensors.align.data, tensorData(json.outputs.align))).toBe(0);
  });

  it('levelMapping: rule detectron2 puts s = 223.9999 on level 3; canonicalBoxSize and canonicalLevel move the levels', async () => {
    const ask = async (levelMapping: Record<string, unknown>) =>
      (
        await roi({
          features: maps.map(featuresField),
          spatialScale: SCALES,
          boxes: boxes5,
          ops: ['align'],
          outputSize: 1,
          levelMapping,
        })
      ).json().levels;
    expect(await ask({ rule: 'torchvision' })).toEqual([4, 3, 5, 2, 4]);
    expect(await ask({ rule: 'detectron2' })).toEqual([4, 3, 5, 2, 3]);
    expect(await ask({ canonicalBoxSize: 112 })).toEqual([5, 4, 5, 2, 5]);
    expect(await ask({ canonicalLevel: 3 })).toEqual([3, 2, 4, 2, 3]);
  });

  it('K = 0: empty outputs and no levels; one map: levels null (as before)', async () => {
    const empty = await roi({
      features: maps.map(featuresField),
      spatialScale: SCALES,
      boxes: [],
      ops: ['align'],
    });
    expect(empty.statusCode, empty.body).toBe(200);
    expect(empty.json().outputs.align.shape).toEqual([0, 8, 7, 7]);
    expect(empty.json().levels).toEqual([]);
    const one = await roi({ features: featuresField(maps[0]), spatialScale: 0.25, boxes: [[0, 0, 10, 10]] });
    expect(one.json().levels).toBeNull();
  });

  it('multipart: repeated features parts (.npy) in order, spatialScale as a JSON list', async () => {
    const form = new FormData();
    for (const m of maps)
      form.append('features', new Blob([new Uint8Array(writeNpy(m.data, m.shape))]), 'level.npy');
    form.append('spatialScale', JSON.stringify(SCALES));
    form.append('boxes', JSON.stringify(boxes5));
    form.append('ops', JSON.stringify(['align']));
    form.append('outputSize', '2');
    const r = await postForm(server.app, '/v1/roi', form);
    expect(r.statusCode, r.body).toBe(200);
    const expected = multiScaleRoi('align', maps, SCALES, toCanonicalBoxes(boxes5, { batchSize: 2 }), {
      outputSize: 2,
    });
    expect(maxAbsDiff(tensorData(r.json().outputs.align), expected.output.data)).toBe(0);
    expect(r.json().levels).toEqual([4, 3, 5, 2, 4]);
  });

  it('refuses bad pyramids with a 400 naming the field', async () => {
    const bad = async (body: Record<string, unknown>, field: string | RegExp) => {
      const r = await roi({ boxes: [[0, 0, 0, 50, 50]], ops: ['align'], ...body });
      expect(r.statusCode, r.body).toBe(400);
      expect(r.json().errors.map((e: { field: string }) => e.field)).toContainEqual(
        typeof field === 'string' ? field : expect.stringMatching(field),
      );
    };
    const features = maps.map(featuresField);
    await bad({ features, spatialScale: SCALES.slice(0, 3) }, 'spatialScale');
    await bad({ features, spatialScale: [0.25, 0.12, 1 / 16, 1 / 32] }, 'spatialScale[1]');
    await bad({ features, spatialScale: 0.25 }, 'spatialScale');
    const otherC = [...features];
    otherC[2] = featuresField(randomMap([2, 4, 32, 40], 3));
    await bad({ features: otherC, spatialScale: SCALES }, 'features[2].shape');
    const otherN = [...features];
    otherN[1] = featuresField(randomMap([1, 8, 64, 80], 3));
    await bad({ features: otherN, spatialScale: SCALES }, 'features[1].shape');
  });
});

describe('/v1/roi: position-sensitive and rotated operators', () => {
  const fm = randomMap([2, 18, 20, 24], 5); // C = 18 = 2 · 3 · 3

  it('ps_align and ps_pool equal the kernels ([K, C / (PH·PW), PH, PW]); a C that does not split is a 400', async () => {
    const rows = [
      [0, 1, 2, 30, 40],
      [1, 10, 0, 70, 60],
    ];
    const r = await roi({
      features: featuresField(fm),
      spatialScale: 0.5,
      boxes: rows,
      ops: ['ps_align', 'ps_pool'],
      outputSize: 3,
      samplingRatio: 0,
    });
    expect(r.statusCode, r.body).toBe(200);
    const boxes = toCanonicalBoxes(rows, { batchSize: 2 });
    const json = r.json();
    expect(json.outputs.ps_align.shape).toEqual([2, 2, 3, 3]);
    const p = { spatialScale: 0.5, outputSize: 3, samplingRatio: 0 };
    expect(maxAbsDiff(tensorData(json.outputs.ps_align), psRoiAlign(fm, boxes, p).data)).toBe(0);
    expect(maxAbsDiff(tensorData(json.outputs.ps_pool), psRoiPool(fm, boxes, p).data)).toBe(0);
    const refused = await roi({
      features: featuresField(fm),
      spatialScale: 0.5,
      boxes: rows,
      ops: ['ps_pool'],
      outputSize: 4,
    });
    expect(refused.statusCode).toBe(400);
    expect(refused.json().detail).toMatch(/C = 18 .*not a multiple of .*16/);
    expect(refused.json().errors[0].field).toBe('features.shape');
  });

  it('rotated_align on boxFormat cxcywha (clockwise too) equals the kernel, on one map and on a pyramid', async () => {
    const rows = [
      [0, 20, 16, 24, 10, 30],
      [1, 12, 14, 8, 12, -75],
    ];
    const r = await roi({
      features: featuresField(fm),
      spatialScale: 0.5,
      boxes: rows,
      boxFormat: 'cxcywha',
      ops: ['rotated_align'],
      outputSize: 2,
      clockwise: true,
    });
    expect(r.statusCode, r.body).toBe(200);
    const rotated = toRotatedBoxes(rows, { batchSize: 2 });
    const expected = rotatedRoiAlign(fm, rotated, { spatialScale: 0.5, outputSize: 2, clockwise: true });
    expect(maxAbsDiff(tensorData(r.json().outputs.rotated_align), expected.data)).toBe(0);
    expect(r.json().coverage[0].rotated.iou).toBeCloseTo(1, 12);

    const maps = pyramid(2, 4, 256, 320, 21);
    const big = [
      [0, 120, 100, 224, 224, 30],
      [1, 60, 60, 40, 30, 90],
    ];
    const p = await roi({
      features: maps.map(featuresField),
      spatialScale: SCALES,
      boxes: big,
      boxFormat: 'cxcywha',
      ops: ['rotated_align'],
      outputSize: 2,
    });
    expect(p.statusCode, p.body).toBe(200);
    const multi = multiScaleRotatedRoiAlign(maps, SCALES, toRotatedBoxes(big, { batchSize: 2 }), {
      outputSize: 2,
    });
    expect(maxAbsDiff(tensorData(p.json().outputs.rotated_align), multi.output.data)).toBe(0);
    expect(p.json().levels).toEqual(Array.from(multi.levels));
  });

  it('other ops refuse rotated boxes (400 naming boxFormat); rotated_align refuses upright ones', async () => {
    const rotatedOnPool = await roi({
      features: featuresField(fm),
      spatialScale: 0.5,
      boxes: [[0, 20, 16, 24, 10, 30]],
      boxFormat: 'cxcywha',
      ops: ['pool'],
    });
    expect(rotatedOnPool.statusCode).toBe(400);
    expect(rotatedOnPool.json().errors[0].field).toBe('boxFormat');
    const uprightOnRotated = await roi({
      features: featuresField(fm),
      spatialScale: 0.5,
      boxes: [[0, 2, 2, 20, 20]],
      ops: ['rotated_align'],
    });
    expect(uprightOnRotated.statusCode).toBe(400);
    expect(uprightOnRotated.json().errors[0].field).toBe('boxFormat');
  });
});

describe('/v1/roi with pyramid: true (the built-in backbone pyramid)', () => {
  it("pools each box from P3, P4 or P5 of the image's pyramid, as multiScaleRoi on the backbone's levels", async () => {
    // 97 × 71: odd sizes, the levels are 13×9, 7×5, 4×3.
    const png = await testPng(97, 71);
    const rows = [
      [2, 3, 30, 20],
      [0, 0, 96, 70],
      [10, 5, 90, 60],
    ];
    const r = await roi({
      image: png.toString('base64'),
      pyramid: true,
      boxes: rows,
      ops: ['align', 'pool'],
      outputSize: 2,
      levelMapping: { canonicalBoxSize: 40, canonicalLevel: 4 },
    });
    expect(r.statusCode, r.body).toBe(200);
    const json = r.json();
    expect(
      json.featureMap.levels.map((l: { level: number; stride: number; shape: number[] }) => [
        l.level,
        l.stride,
        l.shape,
      ]),
    ).toEqual([
      [3, 8, [1, 64, 9, 13]],
      [4, 16, [1, 64, 5, 7]],
      [5, 32, [1, 64, 3, 4]],
    ]);
    // By hand: s = sqrt(28·17) = 21.8 → floor(4 + log2(21.8/40)) = 3; sqrt(96·70) = 82 → 5; sqrt(80·55) = 66.3 → 4.
    expect(json.levels).toEqual([3, 5, 4]);
    const backbone = await loadBackbone();
    const maps = await backbone.pyramid!.extract(await decodeImage(png));
    backbone.dispose();
    const boxes = toCanonicalBoxes(rows, { batchSize: 1 });
    for (const op of ['align', 'pool'] as const) {
      const expected = multiScaleRoi(
        op,
        maps,
        [1 / 8, 1 / 16, 1 / 32],
        boxes,
        { outputSize: 2 },
        {
          canonicalBoxSize: 40,
        },
      );
      expect(maxAbsDiff(tensorData(json.outputs[op]), expected.output.data)).toBe(0);
    }
    // Without pyramid nothing changes: one map, stride 16, no levels.
    const plain = await roi({ image: png.toString('base64'), boxes: rows, ops: ['align'], outputSize: 2 });
    expect(plain.json().levels).toBeNull();
    expect(plain.json().featureMap.stride).toBe(16);
    expect(plain.json().featureMap.levels).toBeUndefined();
  });

  it("a small image's own pyramid is accepted: 16×16 gives levels of 2×2, 1×1, 1×1 (was a 400 naming features[2].shape)", async () => {
    const png = await testPng(16, 16);
    const r = await roi({
      image: png.toString('base64'),
      pyramid: true,
      boxes: [[0, 0, 16, 16]],
      ops: ['align'],
    });
    expect(r.statusCode, r.body).toBe(200);
    expect(r.json().featureMap.levels.map((l: { shape: number[] }) => l.shape)).toEqual([
      [1, 64, 2, 2],
      [1, 64, 1, 1],
      [1, 64, 1, 1],
    ]);
  });

  it('pyramid with features is a 400 naming pyramid', async () => {
    const r = await roi({
      features: featuresField(randomMap([1, 4, 8, 8], 1)),
      spatialScale: 0.5,
      pyramid: true,
      boxes: [],
    });
    expect(r.statusCode).toBe(400);
    expect(r.json().errors[0].field).toBe('pyramid');
  });
});

describe.runIf(haveTorchvision)('/v1/roi vs torchvision MultiScaleRoIAlign (aligned=false)', () => {
  it('seeded random pyramids, N = 2, boxes across the maps: ≤ 1e-5, same levels', async () => {
    for (const [seed, imgH, imgW, C, PH, PW, sr] of [
      [31, 200, 264, 3, 7, 7, 2],
      [32, 97, 131, 5, 3, 4, 0],
    ] as const) {
      const maps = pyramid(2, C, imgH, imgW, seed);
      let state = seed;
      const rand = () => (state = (Math.imul(state, 1103515245) + 12345) >>> 0) / 4294967296;
      const rows: number[][] = [];
      for (const b of [0, 1]) {
        // Grouped by image as torchvision takes them: sizes from 8 to 400 px, some past the image edges.
        for (let i = 0; i < 6; i++) {
          const s = 8 * 50 ** rand();
          const x1 = (rand() * 1.3 - 0.2) * imgW;
          const y1 = (rand() * 1.3 - 0.2) * imgH;
          rows.push([b, x1, y1, x1 + s * (0.6 + rand()), y1 + s * (0.6 + rand())]);
        }
      }
      const boxes = toCanonicalBoxes(rows, { batchSize: 2 });
      const oracle = runOracleScript('torchvision_multiscale.py', {
        cases: [
          {
            imageSize: [imgH, imgW],
            levels: maps.map((m) => ({ shape: m.shape, features: b64(m.data) })),
            boxes: b64(boxes.data),
            outputSize: [PH, PW],
            samplingRatio: sr,
            aligns: [],
          },
        ],
        sweep: b64(new Float32Array(0)),
      }) as { results: { multiscale: string; levels: number[] }[] };
      const r = await roi({
        features: maps.map(featuresField),
        spatialScale: SCALES,
        boxes: rows,
        ops: ['align'],
        outputSize: [PH, PW],
        samplingRatio: sr,
        aligned: false,
      });
      expect(r.statusCode, r.body).toBe(200);
      expect(r.json().levels).toEqual(oracle.results[0].levels);
      expect(
        maxAbsDiff(tensorData(r.json().outputs.align), fromB64(oracle.results[0].multiscale)),
      ).toBeLessThanOrEqual(1e-5);
    }
  });
});

describe('/v1/diff with a pyramid and with rotated boxes', () => {
  it('a pyramid: each box compared at its level (coverage at its stride), the levels on the sheet', async () => {
    const maps = pyramid(1, 4, 256, 320, 41);
    const rows = [
      [0, 10, 10, 40, 40], // 30 px: level 2
      [0, 20, 30, 270, 270], // sqrt(250 · 240) = 245 px: level 4
    ];
    const json = await server.app.inject({
      method: 'POST',
      url: '/v1/diff',
      payload: {
        features: maps.map(featuresField),
        spatialScale: SCALES,
        boxes: rows,
        format: 'json',
        outputSize: 2,
      },
    });
    expect(json.statusCode, json.body).toBe(200);
    const body = json.json();
    // Box 0 on P2 (stride 4): cRound(10 / 4) = 3 … cRound(40 / 4) = 10 (+1 end), 4 px cells.
    expect(body.coverage[0].pool.cells).toEqual({ x1: 3, y1: 3, x2: 11, y2: 11 });
    expect(body.coverage[1].pool.cells.x1).toBe(1); // cRound(20 / 16) on P4 (cRound(20 / 4) = 5 on P2)
    const png = await server.app.inject({
      method: 'POST',
      url: '/v1/diff',
      payload: { features: maps.map(featuresField), spatialScale: SCALES, boxes: rows, outputSize: 2 },
    });
    expect(png.statusCode).toBe(200);
    expect(png.headers['content-type']).toBe('image/png');
  });

  it("an image with pyramid: true: each box at its level's stride on the sheet", async () => {
    const png = await testPng(97, 71);
    const r = await server.app.inject({
      method: 'POST',
      url: '/v1/diff',
      payload: {
        image: png.toString('base64'),
        pyramid: true,
        boxes: [
          [2, 3, 30, 20],
          [0, 0, 96, 70],
        ],
        levelMapping: { canonicalBoxSize: 40 },
        format: 'json',
        outputSize: 2,
      },
    });
    expect(r.statusCode, r.body).toBe(200);
    // Levels 3 and 5 (as in the /v1/roi test above): Pool's cells are 8 and 32 px.
    const cov = r.json().coverage;
    // On P3: cRound(30 / 8) = 4 and cRound(20 / 8) = 3, end cells included (P4 would give x2 = 3).
    expect(cov[0].pool.cells).toEqual({ x1: 0, y1: 0, x2: 5, y2: 4 });
    // On P5: cRound(96 / 32) = 3 and cRound(70 / 32) = 2, end cells included.
    expect(cov[1].pool.cells).toEqual({ x1: 0, y1: 0, x2: 4, y2: 3 });
  });

  it('rotated boxes: drawn as polygons; Pool, Align and Warp read their upright boxes; rotated coverage per box', async () => {
    const fm = randomMap([1, 4, 32, 40], 9);
    const r = await server.app.inject({
      method: 'POST',
      url: '/v1/diff',
      payload: {
        features: featuresField(fm),
        spatialScale: 0.25,
        boxFormat: 'cxcywha',
        boxes: [[60, 50, 40, 20, 45]],
        format: 'json',
        outputSize: 2,
      },
    });
    expect(r.statusCode, r.body).toBe(200);
    const cov = r.json().coverage[0];
    expect(cov.polygon).toHaveLength(4);
    expect(cov.rotated.iou).toBeCloseTo(1, 9);
    // The upright box of a 40×20 box at 45°: (40 + 20)·cos 45° = 42.43 px a side; Align reads it all.
    expect(cov.box.x2 - cov.box.x1).toBeCloseTo(60 * Math.SQRT1_2, 3);
    expect(cov.align.gained).toBeCloseTo(42.4264 ** 2 - 800, 1);
  });
});

describe('/v1/roi with several images', () => {
  it('one request with two images (different sizes) equals two requests with one; b picks the image', async () => {
    const a = await testPng(97, 71);
    const b = await testPng(64, 48);
    const rows = [
      [1, 2, 3, 40, 30],
      [0, 10, 5, 90, 60],
      [1, 0, 0, 64, 48],
      [0, 50, 40, 120, 90], // partly outside image 0: its coverage is clipped to 97×71
    ];
    const common = { ops: ['align', 'pool'], outputSize: 2 };
    const both = await roi({ images: [a.toString('base64'), b.toString('base64')], boxes: rows, ...common });
    expect(both.statusCode, both.body).toBe(200);
    const one = async (img: Buffer, picked: number[][]) =>
      (
        await roi({ image: img.toString('base64'), boxes: picked.map((r) => [0, ...r.slice(1)]), ...common })
      ).json();
    const first = await one(a, [rows[1], rows[3]]);
    const second = await one(b, [rows[0], rows[2]]);
    const body = both.json();
    expect(body.images.map((i: { width: number }) => i.width)).toEqual([97, 64]);
    for (const op of ['align', 'pool']) {
      const all = tensorData(body.outputs[op]);
      const row = all.length / 4;
      const f = tensorData(first.outputs[op]);
      const s = tensorData(second.outputs[op]);
      expect(Array.from(all.subarray(row, 2 * row))).toEqual(Array.from(f.subarray(0, row)));
      expect(Array.from(all.subarray(3 * row, 4 * row))).toEqual(Array.from(f.subarray(row)));
      expect(Array.from(all.subarray(0, row))).toEqual(Array.from(s.subarray(0, row)));
      expect(Array.from(all.subarray(2 * row, 3 * row))).toEqual(Array.from(s.subarray(row)));
    }
    expect(body.coverage[3]).toEqual(first.coverage[1]);
    expect(body.coverage[3].align.region.x2).toBe(97);
    expect(body.coverage[0]).toEqual(second.coverage[0]);
    expect(body.boxes.map((r: number[]) => r[0])).toEqual([1, 0, 1, 0]);
  });

  it('warnings as one image would give them: at most 10 box-outside name a box, one counts the rest; look-alikes once', async () => {
    const png = (await testPng(32, 24)).toString('base64');
    // 15 boxes outside each of 3 images, rows interleaved: 45 in all.
    const outside = await roi({
      images: [png, png, png],
      boxes: Array.from({ length: 45 }, (_, k) => [k % 3, 100, 100, 120, 120]),
      ops: ['align'],
      outputSize: 1,
    });
    expect(outside.statusCode, outside.body).toBe(200);
    const warnings = outside.json().warnings as { code: string; field: string; message: string }[];
    expect(warnings.map((w) => w.field)).toEqual([
      ...Array.from({ length: 10 }, (_, k) => `boxes[${k}]`),
      'boxes',
    ]);
    expect(warnings[10].message).toMatch(/^35 more boxes .*\(45 of 45 in all\)/);
    const small = await roi({
      images: [png, png],
      boxes: [
        [0, 0, 0, 1, 1],
        [1, 0, 0, 1, 1],
      ],
      ops: ['align'],
      outputSize: 1,
    });
    expect(small.json().warnings.map((w: { code: string }) => w.code)).toEqual(['boxes-look-normalized']);
  });

  it('with pyramid: true each image has its levels; multipart takes repeated images parts', async () => {
    const a = await testPng(97, 71);
    const b = await testPng(64, 48);
    const form = new FormData();
    form.append('images', new Blob([new Uint8Array(a)]), 'a.png');
    form.append('images', new Blob([new Uint8Array(b)]), 'b.png');
    form.append('pyramid', 'true');
    form.append(
      'boxes',
      JSON.stringify([
        [1, 0, 0, 64, 48],
        [0, 2, 3, 30, 20],
      ]),
    );
    form.append('ops', JSON.stringify(['align']));
    form.append('levelMapping', JSON.stringify({ canonicalBoxSize: 40 }));
    const r = await postForm(server.app, '/v1/roi', form);
    expect(r.statusCode, r.body).toBe(200);
    // s = sqrt(64·48) = 55.4 → floor(4 + log2(55.4 / 40)) = 4; sqrt(28·17) = 21.8 → 3.
    expect(r.json().levels).toEqual([4, 3]);
    expect(r.json().outputs.align.shape).toEqual([2, 64, 7, 7]);
  });

  it('refuses a batch index past the images (naming the box), image with images, and images on /v1/diff', async () => {
    const png = (await testPng(32, 32)).toString('base64');
    const past = await roi({ images: [png], boxes: [[1, 0, 0, 8, 8]] });
    expect(past.statusCode).toBe(400);
    expect(past.json().errors[0].field).toBe('boxes[0][0]');
    // one image: the message counts images too (it used to speak of a feature map the user never sent)
    expect(past.json().errors[0].message).toMatch(
      /N = 1 \(the feature map's N, or the number of images sent\): use 0 to 0/,
    );
    const both = await roi({ image: png, images: [png], boxes: [] });
    expect(both.statusCode).toBe(400);
    expect(both.json().errors[0].field).toBe('images');
    const diff = await server.app.inject({
      method: 'POST',
      url: '/v1/diff',
      payload: { images: [png], boxes: [] },
    });
    expect(diff.statusCode).toBe(400);
    expect(diff.json().errors[0].field).toBe('images');
  });
});

describe('encoding: "array" counts the channels of what runs (its 1 M value limit)', () => {
  const refused = (r: { statusCode: number; json: () => { errors: { field: string }[] } }) =>
    r.statusCode === 413 && r.json().errors[0].field === 'encoding';

  it("pyramid: true outputs the pyramid's 64 channels, not the net's 256: 300 boxes at 7×7 fit (940800 values), 319 do not", async () => {
    // The early refusal reads the loaded backbone: wait for it, so that the route (not the worker) decides.
    await server.app.readiness.settled;
    expect(server.app.readiness.backbone?.pyramid?.channels).toBe(64);
    const png = (await testPng(97, 71)).toString('base64');
    const body = (K: number) => ({
      image: png,
      pyramid: true,
      boxes: Array.from({ length: K }, (_, k) => [k % 40, 2, 60, 50]),
      ops: ['align'],
      outputSize: 7,
      encoding: 'array',
    });
    // 300 · 64 · 49 = 940800 <= 1e6 (with 256 channels it would be 3763200); 319 · 64 · 49 = 1000384.
    const fits = await roi(body(300));
    expect(fits.statusCode, fits.body).toBe(200);
    expect(fits.json().outputs.align.shape).toEqual([300, 64, 7, 7]);
    expect(fits.json().outputs.align.data).toHaveLength(940800);
    expect(refused(await roi(body(319)))).toBe(true);
  });

  it('ps_align outputs C/(PH·PW) channels: 680 boxes of 30 channels at 7×7 fit (999600 values), 681 do not', async () => {
    // C = 1470 = 30 · 49: counted on all C the outputs would be 49 times larger.
    const map = randomMap([1, 1470, 4, 4], 5);
    const body = (K: number) => ({
      features: featuresField(map),
      spatialScale: 1,
      boxes: Array.from({ length: K }, () => [0, 0, 3, 3]),
      ops: ['ps_align'],
      outputSize: 7,
      encoding: 'array',
    });
    const fits = await roi(body(680));
    expect(fits.statusCode, fits.body).toBe(200);
    expect(fits.json().outputs.ps_align.shape).toEqual([680, 30, 7, 7]);
    expect(refused(await roi(body(681)))).toBe(true);
  });
});
