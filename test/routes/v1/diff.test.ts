/**
 * `POST /v1/diff` through `inject`: the semantics doc's worked example, JSON statistics against the ops
 * module and a direct computation, the PNG sheet, image / features / multipart input, and errors.
 */
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { diffResponseSchema } from '../../../routes/v1/schemas/diff.js';
import {
  coverage,
  roiAlign,
  roiPool,
  roiWarp,
  toCanonicalBoxes,
  type Pooled,
} from '../../../src/ops/index.js';
import { featuresField, randomMap, tensorData, testPng } from '../../support/fixtures.js';
import { useApp } from '../../support/app.js';
import { formPayload, postForm } from '../../support/v1.js';

const server = useApp();

function diff(payload: Record<string, unknown>) {
  return server.app.inject({ method: 'POST', url: '/v1/diff', payload });
}

/** Mean / max |a − b| and ‖a − b‖ / ‖a‖ over box k, written out directly (NCHW). */
function direct(a: Pooled, b: Pooled, k: number) {
  const [, C, PH, PW] = a.shape;
  const n = C * PH * PW;
  let sum = 0;
  let max = 0;
  let d2 = 0;
  let a2 = 0;
  for (let i = k * n; i < (k + 1) * n; i++) {
    const d = a.data[i] - b.data[i];
    sum += Math.abs(d);
    max = Math.max(max, Math.abs(d));
    d2 += d * d;
    a2 += a.data[i] * a.data[i];
  }
  return { meanAbs: sum / n, maxAbs: max, relL2: Math.sqrt(d2 / a2) };
}

interface DiffJson {
  params: Record<string, unknown>;
  image: unknown;
  coverage: ReturnType<typeof coverage>[];
  differences: {
    box: number;
    pairs: Record<string, { meanAbs: number; maxAbs: number; relL2: number | null }>;
  }[];
  differencesAll: { pairs: Record<string, { meanAbs: number; maxAbs: number; relL2: number | null }> };
  boxesShown: number;
  images: { sheet: string; overlay: string | null; rows: string[]; featureHeatmap: string };
  notes: string[];
  timings: Record<string, number>;
}

describe('POST /v1/diff, features input', () => {
  // The worked example of docs/semantics.md: 512×512 image, stride 32, 3×3 output.
  const fm = randomMap([1, 3, 16, 16], 5);
  const example = {
    features: featuresField(fm),
    spatialScale: 1 / 32,
    imageSize: [512, 512],
    boxes: [[296, 192, 496, 337]],
    outputSize: 3,
    format: 'json',
  };

  it("gives the semantics doc's published coverage for the worked example", async () => {
    const r = await diff(example);
    expect(r.statusCode).toBe(200);
    const body = r.json<DiffJson>();
    const c = body.coverage[0];
    expect(c.boxArea).toBe(29000);
    // Pool: pixels [288, 512) × [192, 384): area 43008, lost 0, gained 14008 (0.483), IoU 0.674.
    expect(c.pool.region).toEqual({ x1: 288, y1: 192, x2: 512, y2: 384 });
    expect([c.pool.area, c.pool.lost, c.pool.gained]).toEqual([43008, 0, 14008]);
    expect(c.pool.gainedFraction).toBeCloseTo(0.483, 3);
    expect(c.pool.iou).toBeCloseTo(0.674, 3);
    // Warp: pixels [288, 512) × [192, 352): area 35840, lost 0, gained 6840 (0.236), IoU 0.809.
    expect(c.warp.region).toEqual({ x1: 288, y1: 192, x2: 512, y2: 352 });
    expect([c.warp.area, c.warp.lost, c.warp.gained]).toEqual([35840, 0, 6840]);
    expect(c.warp.gainedFraction).toBeCloseTo(0.236, 3);
    expect(c.warp.iou).toBeCloseTo(0.809, 3);
    // Align: the exact box.
    expect([c.align.lost, c.align.gained, c.align.iou]).toEqual([0, 0, 1]);
    // No image: no overlay, and the response says so.
    expect(body.images.overlay).toBeNull();
    expect(body.notes.join(' ')).toMatch(/no image overlay/);
    const heat = await sharp(Buffer.from(body.images.featureHeatmap, 'base64')).metadata();
    expect(heat.format).toBe('png');
    expect(body.images.rows).toHaveLength(1);
    // The worker encodes the JSON (no serializer on the way out): it is exactly the documented schema.
    expect(diffResponseSchema.parse(body)).toEqual(body);
  });

  it('JSON statistics equal the ops module: coverage, and the differences computed directly', async () => {
    const fm2 = randomMap([2, 4, 12, 14], 9);
    const rows = [
      [0, 3.5, 2.25, 40.75, 30],
      [1, 10, 8, 52, 44],
      [0, 20, 20, 21, 23],
    ];
    const r = await diff({
      features: featuresField(fm2),
      spatialScale: 0.25,
      boxes: rows,
      outputSize: [3, 4],
      format: 'json',
    });
    expect(r.statusCode).toBe(200);
    const body = r.json<DiffJson>();
    // The direct computation runs on the tensors the same server returns from /v1/roi for the same input.
    const roi = await server.app.inject({
      method: 'POST',
      url: '/v1/roi',
      payload: { features: featuresField(fm2), spatialScale: 0.25, boxes: rows, outputSize: [3, 4] },
    });
    const outputs = roi.json<{
      outputs: Record<'pool' | 'align' | 'warp', { shape: number[]; data: string }>;
    }>().outputs;
    const tensor = (op: 'pool' | 'align' | 'warp'): Pooled => ({
      data: tensorData(outputs[op]),
      shape: outputs[op].shape as [number, number, number, number],
      layout: 'NCHW',
    });
    const pooled = { pool: tensor('pool'), align: tensor('align'), warp: tensor('warp') };
    // …and those are the ops module's outputs (float32 tolerance; exactness is /v1/roi's own test).
    const boxes = toCanonicalBoxes(rows, { batchSize: 2 });
    const params = {
      spatialScale: 0.25,
      outputSize: [3, 4] as [number, number],
      samplingRatio: 2,
      aligned: true,
    };
    const local = {
      pool: roiPool(fm2, boxes, params),
      align: roiAlign(fm2, boxes, params),
      warp: roiWarp(fm2, boxes, params),
    };
    for (const op of ['pool', 'align', 'warp'] as const) {
      local[op].data.forEach((v, i) => expect(Math.abs(v - pooled[op].data[i])).toBeLessThanOrEqual(1e-6));
    }
    // Without imageSize the frame is the feature map's extent: 14 / 0.25 × 12 / 0.25.
    rows.forEach(([, x1, y1, x2, y2], k) => {
      expect(body.coverage[k]).toEqual(
        coverage({ x1, y1, x2, y2 }, { spatialScale: 0.25, imageSize: [56, 48] }),
      );
    });
    expect(body.differences).toHaveLength(3);
    for (let k = 0; k < 3; k++) {
      for (const [a, b] of [
        ['align', 'pool'],
        ['align', 'warp'],
        ['pool', 'warp'],
      ] as const) {
        const got = body.differences[k].pairs[`${a}-${b}`];
        const want = direct(pooled[a], pooled[b], k);
        expect(body.differences[k].box).toBe(k);
        expect(got.meanAbs).toBeCloseTo(want.meanAbs, 12);
        expect(got.maxAbs).toBeCloseTo(want.maxAbs, 12);
        expect(got.relL2).toBeCloseTo(want.relL2, 12);
      }
    }
    expect(body.differencesAll.pairs['align-pool'].maxAbs).toBeCloseTo(
      Math.max(...[0, 1, 2].map((k) => direct(pooled.align, pooled.pool, k).maxAbs)),
      12,
    );
    expect(body.params).toMatchObject({
      maxBoxes: 8,
      channel: 'meanabs',
      outputSize: [3, 4],
      ops: ['pool', 'align', 'warp'],
    });
  });

  it('answers a PNG sheet by default whose height follows the number of boxes', async () => {
    const heights: number[] = [];
    for (const boxes of [
      [[296, 192, 496, 337]],
      [
        [296, 192, 496, 337],
        [10, 10, 200, 120],
        [0, 300, 90, 500],
      ],
    ]) {
      const r = await diff({ ...example, format: undefined, boxes });
      expect(r.statusCode).toBe(200);
      expect(r.headers['content-type']).toBe('image/png');
      // Shown, not saved: `inline`, where /v1/roi's and /v1/features' files are `attachment`.
      expect(r.headers['content-disposition']).toBe('inline; filename="roi-diff.png"');
      expect(r.headers['x-diff-overlay']).toMatch(/^none/);
      expect(r.headers['server-timing']).toMatch(/encode;dur=/);
      const meta = await sharp(r.rawPayload).metadata();
      expect(meta.format).toBe('png');
      expect(meta.width).toBeLessThanOrEqual(1400);
      heights.push(meta.height as number);
    }
    expect(heights[1]).toBeGreaterThan(heights[0] + 2 * 100);
  });

  it('maxBoxes limits the panels, not the statistics; a channel index is accepted', async () => {
    const boxes = [
      [296, 192, 496, 337],
      [10, 10, 200, 120],
      [0, 300, 90, 500],
    ];
    const r = await diff({ ...example, boxes, maxBoxes: 1, channel: 2 });
    const body = r.json<DiffJson>();
    expect(r.statusCode).toBe(200);
    expect(body.boxesShown).toBe(1);
    expect(body.images.rows).toHaveLength(1);
    expect(body.coverage).toHaveLength(3);
    expect(body.differences).toHaveLength(3);
    expect(body.params.channel).toBe(2);
    expect(body.notes.join(' ')).toMatch(/first 1 have panels/);
    // The summary covers all three boxes, not only the shown one.
    const summary = r.json<{ summary: { boxes: number; pool: { iou: { min: number; max: number } } } }>()
      .summary;
    expect(summary.boxes).toBe(3);
    expect(summary.pool.iou.min).toBe(Math.min(...body.coverage.map((c) => c.pool.iou)));
    expect(summary.pool.iou.max).toBe(Math.max(...body.coverage.map((c) => c.pool.iou)));
  });

  it('refuses a channel the feature map does not have, and bad diff parameters, naming the field', async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ channel: 3 }, 'channel'],
      [{ channel: 'median' }, 'channel'],
      [{ maxBoxes: 33 }, 'maxBoxes'],
      [{ format: 'npy' }, 'format'],
    ];
    for (const [extra, field] of cases) {
      const r = await diff({ ...example, ...extra });
      expect(r.statusCode, JSON.stringify(extra)).toBe(400);
      expect(r.headers['content-type']).toMatch(/^application\/problem\+json/);
      const problem = r.json<{ errors: { field: string }[] }>();
      expect(problem.errors.map((e) => e.field)).toContain(field);
    }
    const none = await diff({ boxes: [[0, 0, 1, 1]] });
    expect(none.statusCode).toBe(400);
  });
});

describe('POST /v1/diff, image input', () => {
  it('returns the overlay, rows and heatmap for an image, with coverage from the ops module', async () => {
    const png = await testPng(256, 192);
    const boxes = [
      [20, 30, 150, 120],
      [100, 60, 250, 180],
    ];
    const r = await diff({ image: png.toString('base64'), boxes, format: 'json' });
    expect(r.statusCode).toBe(200);
    const body = r.json<DiffJson & { featureMap: { stride: number; shape: number[] } }>();
    const s = 1 / body.featureMap.stride;
    boxes.forEach(([x1, y1, x2, y2], k) => {
      expect(body.coverage[k]).toEqual(
        coverage({ x1, y1, x2, y2 }, { spatialScale: s, imageSize: [256, 192] }),
      );
    });
    expect(body.images.overlay).not.toBeNull();
    const overlay = await sharp(Buffer.from(body.images.overlay as string, 'base64')).metadata();
    expect(overlay.width).toBeGreaterThan(800);
    expect(body.images.rows).toHaveLength(2);
    expect(body.notes).toEqual([]);
    expect(body.timings.backbone).toBeGreaterThan(0);
  });

  it('has the whole sheet in the JSON, the same PNG bytes as format "png" (one request gives both)', async () => {
    const png = await testPng(160, 120);
    const payload = { image: png.toString('base64'), boxes: [[12, 10, 120, 90]], outputSize: 4 };
    const [sheet, data] = await Promise.all([diff(payload), diff({ ...payload, format: 'json' })]);
    expect(sheet.statusCode).toBe(200);
    expect(data.statusCode).toBe(200);
    const fromJson = Buffer.from(data.json<DiffJson>().images.sheet, 'base64');
    expect(fromJson.equals(sheet.rawPayload)).toBe(true);
    // Features input (the sheet shows the feature panel then): the same.
    const features = {
      features: featuresField(randomMap([1, 3, 8, 8], 4)),
      spatialScale: 0.125,
      boxes: [[4, 4, 40, 50]],
    };
    const [fSheet, fData] = await Promise.all([diff(features), diff({ ...features, format: 'json' })]);
    expect(Buffer.from(fData.json<DiffJson>().images.sheet, 'base64').equals(fSheet.rawPayload)).toBe(true);
  });

  it('takes multipart like /v1/roi (fields as text, image as a file) and gives the same sheet twice', async () => {
    const png = await testPng(128, 96);
    const form = new FormData();
    form.append('image', new Blob([new Uint8Array(png)], { type: 'image/png' }), 'scene.png');
    form.append('boxes', '[[10,10,90,70]]');
    form.append('ops', '["align"]');
    form.append('outputSize', '5');
    form.append('channel', '0');
    form.append('maxBoxes', '1');
    const { payload, headers } = await formPayload(form);
    const first = await server.app.inject({ method: 'POST', url: '/v1/diff', payload, headers });
    expect(first.statusCode).toBe(200);
    expect(first.headers['content-type']).toBe('image/png');
    const second = await server.app.inject({ method: 'POST', url: '/v1/diff', payload, headers });
    expect(second.rawPayload.equals(first.rawPayload)).toBe(true);
  });
});

describe('POST /v1/diff refuses images (the sheet draws one image)', () => {
  it('as JSON and as repeated multipart parts: 400 naming images, before any work; the spec says so', async () => {
    const png = await testPng(16, 16);
    const expected = { field: 'images', message: expect.stringContaining('send it as `image`') };
    const json = await diff({ images: [png.toString('base64')], boxes: [[0, 0, 0, 8, 8]] });
    expect(json.statusCode, json.body).toBe(400);
    expect(json.json().errors[0]).toMatchObject(expected);

    const form = new FormData();
    for (let i = 0; i < 2; i++) form.append('images', new Blob([new Uint8Array(png)]), `p${i}.png`);
    form.append('boxes', '[[0, 0, 0, 8, 8]]');
    const parts = await postForm(server.app, '/v1/diff', form);
    expect(parts.statusCode, parts.body).toBe(400);
    expect(parts.json().errors[0]).toMatchObject(expected);

    const spec = (await server.app.inject({ method: 'GET', url: '/openapi.json' })).json();
    const description = JSON.stringify(spec.components.schemas.DiffRequest.properties.images);
    expect(description).toContain('not on /v1/diff');
  });
});
