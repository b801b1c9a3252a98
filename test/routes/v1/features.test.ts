/** `POST /v1/features` and `POST /v1/roi` with an image through `inject`: the backbone's map, the ops on it, no tensor leaks, and /v1/features' refusals. */
import { beforeAll, describe, expect, it } from 'vitest';
import { roiAlign, toCanonicalBoxes, type FeatureMap } from '../../../src/ops/index.js';
import { buildApp } from '../../../src/server.js';
import { featuresResponseSchema, roiResponseSchema } from '../../../routes/v1/schemas/responses.js';
import { readNpy } from '../../../src/tensors/npy.js';
import { useApp } from '../../support/app.js';
import { tensorData, testConfig, testPng } from '../../support/fixtures.js';
import { maxAbsDiff } from '../../support/compare.js';
import { autoEngine } from '../../support/tf.js';
import { roiPoster } from '../../support/v1.js';

const server = useApp();
const roi = roiPoster(server);

describe('POST /v1/roi and /v1/features with an image', () => {
  let png: Buffer;
  beforeAll(async () => {
    png = await testPng(96, 64);
  });

  it('runs the backbone; /v1/roi equals the ops module applied to /v1/features output', async () => {
    const f = await server.app.inject({
      method: 'POST',
      url: '/v1/features',
      payload: { image: png.toString('base64') },
    });
    expect(f.statusCode).toBe(200);
    const features = f.json();
    expect(featuresResponseSchema.safeParse(features).error).toBeUndefined();
    expect(features.features).toMatchObject({ shape: [1, 256, 4, 6], layout: 'NCHW', dtype: 'float32' });
    expect(features.image).toEqual({
      width: 96,
      height: 64,
      originalWidth: 96,
      originalHeight: 64,
      scale: 1,
      scaleX: 1,
      scaleY: 1,
      format: 'png',
    });
    expect(features.featureMap).toMatchObject({
      stride: 16,
      spatialScale: 0.0625,
      source: 'backbone',
      backend: (await autoEngine()).featureBackend,
    });
    expect(f.headers['server-timing']).toMatch(/backbone;dur=[\d.]+/);

    const imageBoxes = [
      [8, 4, 70, 50],
      [30.5, 10.25, 95, 63],
    ];
    const r = await roi({ image: png.toString('base64'), boxes: imageBoxes, outputSize: 3 });
    expect(r.statusCode).toBe(200);
    const body = r.json();
    expect(roiResponseSchema.safeParse(body).error).toBeUndefined();
    expect(body.image).toEqual(features.image);
    expect(body.featureMap).toEqual(features.featureMap);
    expect(body.params.spatialScale).toBe(0.0625);
    const map: FeatureMap = { data: tensorData(features.features), shape: [1, 256, 4, 6], layout: 'NCHW' };
    const canonical = toCanonicalBoxes(imageBoxes, { format: 'xyxy', batchSize: 1 });
    const align = roiAlign(map, canonical, { spatialScale: 0.0625, outputSize: 3 });
    // Same backbone on the same pixels in the same worker: the map is deterministic.
    expect(maxAbsDiff(tensorData(body.outputs.align), align.data)).toBeLessThan(1e-6);
    // cRound(8 / 16) = 1 (half away from zero), cRound(70 / 16) = 4, cRound(50 / 16) = 3: cells [1, 5) × [0, 4).
    expect(body.coverage[0].pool.region).toEqual({ x1: 16, y1: 0, x2: 80, y2: 64 });
  });

  it('POST /v1/features format "npy" gives [1, C, H, W]', async () => {
    const r = await server.app.inject({
      method: 'POST',
      url: '/v1/features',
      payload: { image: png.toString('base64'), format: 'npy' },
    });
    expect(r.statusCode).toBe(200);
    expect(readNpy(r.rawPayload).shape).toEqual([1, 256, 4, 6]);
  });

  for (const engine of ['tfjs', 'onnx'] as const) {
    it(`leaks no tfjs tensors, on success or on error (BACKBONE_ENGINE=${engine})`, async () => {
      const own = await buildApp(testConfig({ backboneEngine: engine }));
      try {
        await own.readiness.settled;
        const run = (body: Record<string, unknown>) => roi(body, own);
        await run({ image: png.toString('base64'), boxes: [[0, 0, 10, 10]] });
        const before = own.work.tensorCount();
        // tfjs: the backbone's weights; onnx: none (the check's tfjs model is disposed after start-up).
        if (engine === 'tfjs') expect(before).toBeGreaterThan(0);
        else expect(before).toBe(0);
        const results = await Promise.all([
          run({ image: png.toString('base64'), boxes: [[0, 0, 10, 10]], ops: ['align'] }),
          run({ image: Buffer.from('GIF89a garbage').toString('base64'), boxes: [] }),
          run({ image: png.toString('base64'), boxes: [[0, 0, 10, 10]], outputSize: 64, samplingRatio: 64 }),
          own.inject({ method: 'POST', url: '/v1/features', payload: { image: png.toString('base64') } }),
        ]);
        expect(results.map((r) => r.statusCode)).toEqual([200, 400, 200, 200]);
        await own.work.describe(); // one more reply refreshes the count
        expect(own.work.tensorCount()).toBe(before);
      } finally {
        await own.close();
      }
    });
  }
});

describe('POST /v1/features errors', () => {
  it('400 without an image, 415 for a non-image, 400 for an unknown format', async () => {
    const missing = await server.app.inject({ method: 'POST', url: '/v1/features', payload: {} });
    expect(missing.statusCode).toBe(400);
    expect(missing.json().errors).toEqual([
      { field: 'image', expected: 'string (required)', message: 'required' },
    ]);
    const pdf = await server.app.inject({
      method: 'POST',
      url: '/v1/features',
      payload: { image: Buffer.from('%PDF-1.7 hello').toString('base64') },
    });
    expect(pdf.statusCode).toBe(415);
    expect(pdf.json().detail).toContain('pdf');
    const format = await server.app.inject({
      method: 'POST',
      url: '/v1/features',
      payload: { image: 'AAAA', format: 'safetensors' },
    });
    expect(format.statusCode).toBe(400);
    expect(format.json().errors[0].field).toBe('format');
  });
});
