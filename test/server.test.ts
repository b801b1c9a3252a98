/**
 * Every route through `inject`: defaults, parameters, encodings, and each error status with its
 * problem body pinned. One default app and one "strict" app (API key, tiny limits) for the file.
 */
import { Validator } from '@seriousme/openapi-schema-validator';
import type { FastifyInstance } from 'fastify';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { roiAlign, roiPool, roiWarp, toCanonicalBoxes, toLayout, type FeatureMap } from '../src/ops/index.js';
import { buildApp } from '../src/server.js';
import { featuresResponseSchema, roiResponseSchema } from '../routes/v1/schemas/responses.js';
import { encodeFloat32Base64 } from '../src/tensors/base64.js';
import { readNpy } from '../src/tensors/npy.js';
import { readSafetensors } from '../src/tensors/safetensors.js';
import { featuresField, randomMap, tensorData, testConfig, testPng } from './support/fixtures.js';
import { maxAbsDiff } from './support/compare.js';
import { autoBackend, autoEngine } from './support/tf.js';

const PROBLEM_TYPE = 'application/problem+json; charset=utf-8';
const API_KEY = 'test-key-0123456789';

let app: FastifyInstance;
let strict: FastifyInstance;
let readyzWhileStarting: { status: number; body: unknown };

beforeAll(async () => {
  app = await buildApp(testConfig());
  strict = await buildApp(
    testConfig({
      apiKey: API_KEY,
      queueLimit: 0,
      maxBoxes: 3,
      maxOutputValues: 1000,
      bodyLimitBytes: 4096,
      maxImagePixels: 5000,
      maxImageSide: 32,
    }),
  );
  const r = await app.inject({ method: 'GET', url: '/readyz' });
  readyzWhileStarting = { status: r.statusCode, body: r.json() };
  await Promise.all([app.readiness.settled, strict.readiness.settled]);
});

afterAll(async () => {
  await Promise.all([app?.close(), strict?.close()]);
});

const fm = randomMap([2, 3, 10, 12], 7);
const boxes = [
  [0, 1.5, 2.25, 13.75, 15],
  [1, 0, 0, 20, 18],
  [0, 4, 4, 4, 9],
];

function roi(payload: Record<string, unknown>, target = app, headers: Record<string, string> = {}) {
  return target.inject({ method: 'POST', url: '/v1/roi', headers, payload });
}

describe('health, readiness, metrics', () => {
  it('GET /readyz is 503 while the workers load the backbone, 200 once ready', async () => {
    expect(readyzWhileStarting).toEqual({
      status: 503,
      body: {
        status: 'starting',
        backbone: null,
        backend: null,
        backendReason: null,
        tfjsNodeError: null,
        engine: null,
        engineReason: null,
        workers: 1,
        readyWorkers: 0,
      },
    });
    const r = await app.inject({ method: 'GET', url: '/readyz' });
    expect(r.statusCode).toBe(200);
    // TF_BACKEND auto: tfjs-node where it loads, else wasm and why (test/support/tf.ts).
    expect(r.json()).toEqual({
      status: 'ready',
      backbone: 'builtin-inception-s16',
      ...(await autoBackend()),
      // BACKBONE_ENGINE auto: ONNX Runtime unless tfjs-node runs (tfjs checked ORT at start-up).
      engine: (await autoEngine()).engine,
      engineReason: (await autoEngine()).engineReason,
      workers: 1,
      readyWorkers: 1,
    });
  });

  it('GET /healthz answers ok', async () => {
    const r = await app.inject({ method: 'GET', url: '/healthz' });
    expect(r.statusCode).toBe(200);
    expect(r.json()).toEqual({ status: 'ok' });
  });

  it('GET /metrics exposes request, stage, box, tensor and event-loop metrics', async () => {
    await roi({ features: featuresField(fm), spatialScale: 0.5, boxes });
    const r = await app.inject({ method: 'GET', url: '/metrics' });
    expect(r.statusCode).toBe(200);
    expect(r.headers['content-type']).toMatch(/^text\/plain/);
    const text = r.body;
    expect(text).toMatch(/roiserve_http_requests_total\{method="POST",route="\/v1\/roi",status="200"\} \d+/);
    expect(text).toMatch(
      /roiserve_http_request_duration_seconds_bucket\{le="0.1",method="POST",route="\/v1\/roi"/,
    );
    expect(text).toMatch(/roiserve_stage_duration_seconds_count\{stage="align",route="\/v1\/roi"\} \d+/);
    expect(text).toMatch(/roiserve_boxes_processed_total\{op="warp"\} \d+/);
    // 0 here: ONNX Runtime runs the backbone, and the tfjs model of the start-up check is disposed.
    expect(text).toMatch(/roiserve_tfjs_tensors \d+/);
    expect(text).toMatch(/nodejs_eventloop_lag_seconds \d/);
  });
});

describe('GET /v1/backbone', () => {
  it('describes the built-in backbone', async () => {
    const r = await app.inject({ method: 'GET', url: '/v1/backbone' });
    expect(r.statusCode).toBe(200);
    const d = r.json();
    expect(d).toMatchObject({
      name: 'builtin-inception-s16',
      ...(await autoBackend()),
      stride: 16,
      outputChannels: 256,
    });
    expect(d.layers.length).toBeGreaterThan(5);
    expect(d.totalParams).toBe(d.layers.reduce((s: number, l: { params: number }) => s + l.params, 0));
  });
});

describe('OpenAPI', () => {
  it('GET /openapi.json is a valid OpenAPI 3 document covering every route', async () => {
    const r = await app.inject({ method: 'GET', url: '/openapi.json' });
    expect(r.statusCode).toBe(200);
    const doc = r.json();
    const validator = new Validator();
    const result = await validator.validate(doc);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(doc.openapi).toMatch(/^3\./);
    for (const path of [
      '/v1/roi',
      '/v1/diff',
      '/v1/features',
      '/v1/backbone',
      '/healthz',
      '/readyz',
      '/metrics',
    ]) {
      expect(Object.keys(doc.paths)).toContain(path);
    }
    const body = doc.paths['/v1/roi'].post.requestBody.content;
    expect(Object.keys(body).sort()).toEqual(['application/json', 'multipart/form-data']);
    const jsonBody = doc.components.schemas[body['application/json'].schema.$ref.split('/').pop()];
    expect(jsonBody.properties.samplingRatio.default).toBe(2);
    expect(Object.keys(doc.paths['/v1/roi'].post.responses).sort()).toEqual([
      '200',
      '400',
      '401',
      '413',
      '415',
      '503',
      '504',
    ]);
  });

  it('GET /docs serves the interactive documentation', async () => {
    const r = await app.inject({ method: 'GET', url: '/docs/' });
    expect(r.statusCode).toBe(200);
    expect(r.body).toContain('swagger');
  });
});

describe('POST /v1/roi with features', () => {
  it('fills in every default and equals the ops module on the same data', async () => {
    const r = await roi({ features: featuresField(fm), spatialScale: 0.5, boxes });
    expect(r.statusCode).toBe(200);
    expect(r.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(r.headers['server-timing']).toMatch(
      /^total;dur=[\d.]+, parse;dur=[\d.]+, queue;dur=[\d.]+, pool;dur=[\d.]+, align;dur=[\d.]+, warp;dur=[\d.]+, encode;dur=[\d.]+$/,
    );
    const body = r.json();
    // The worker encodes the body without the serializer: check it against the documented schema.
    expect(roiResponseSchema.safeParse(body).error).toBeUndefined();
    expect(body.params).toEqual({
      ops: ['pool', 'align', 'warp'],
      boxFormat: 'xyxy',
      normalized: false,
      outputSize: [7, 7],
      samplingRatio: 2,
      aligned: true,
      mode: 'avg',
      spatialScale: 0.5,
      imageSize: null,
      maxSide: null,
      format: 'json',
      encoding: 'base64',
      dtype: 'float32',
    });
    expect(body.image).toBeNull();
    expect(body.featureMap).toEqual({
      shape: [2, 3, 10, 12],
      stride: 2,
      spatialScale: 0.5,
      source: 'input',
      backbone: null,
      backend: null,
    });
    expect(body.boxes).toEqual(boxes);
    const canonical = toCanonicalBoxes(boxes, { format: 'xyxy', batchSize: 2 });
    const params = {
      spatialScale: 0.5,
      outputSize: 7,
      samplingRatio: 2,
      aligned: true,
      mode: 'avg',
    } as const;
    const expected = {
      pool: roiPool(fm, canonical, { spatialScale: 0.5, outputSize: 7 }),
      align: roiAlign(fm, canonical, params),
      warp: roiWarp(fm, canonical, params),
    };
    for (const op of ['pool', 'align', 'warp'] as const) {
      expect(body.outputs[op].shape).toEqual([3, 3, 7, 7]);
      expect(body.outputs[op].dtype).toBe('float32');
      // Same kernels, same float32 inputs: bit-identical.
      expect(tensorData(body.outputs[op])).toEqual(expected[op].data);
    }
    expect(body.coverage).toHaveLength(3);
    expect(body.coverage[1].align).toMatchObject({ lost: 0, gained: 0, iou: 1 });
    // Without imageSize, coverage is clipped to the map's extent: 12 / 0.5 = 24 by 10 / 0.5 = 20.
    expect(body.coverage[1].pool.region).toEqual({ x1: 0, y1: 0, x2: 22, y2: 20 });
    expect(Object.keys(body.timings).sort()).toEqual([
      'align',
      'backbone',
      'decode',
      'encode',
      'pool',
      'total',
      'warp',
    ]);
  });

  it('passes every parameter through: outputSize pair, samplingRatio, aligned, mode, ops order', async () => {
    const r = await roi({
      features: featuresField(fm),
      spatialScale: 0.5,
      boxes,
      ops: ['warp', 'align', 'warp'],
      outputSize: [3, 5],
      samplingRatio: 0,
      aligned: false,
      mode: 'onnx_max',
      imageSize: [20, 16],
    });
    expect(r.statusCode).toBe(200);
    const body = r.json();
    expect(body.params).toMatchObject({
      ops: ['align', 'warp'],
      outputSize: [3, 5],
      samplingRatio: 0,
      aligned: false,
      mode: 'onnx_max',
      imageSize: [20, 16],
    });
    expect(Object.keys(body.outputs)).toEqual(['align', 'warp']);
    const canonical = toCanonicalBoxes(boxes, { format: 'xyxy', batchSize: 2 });
    const params = {
      spatialScale: 0.5,
      outputSize: [3, 5],
      samplingRatio: 0,
      aligned: false,
      mode: 'onnx_max',
    } as const;
    expect(tensorData(body.outputs.align)).toEqual(roiAlign(fm, canonical, params).data);
    expect(tensorData(body.outputs.warp)).toEqual(roiWarp(fm, canonical, params).data);
    expect(body.coverage[1].pool.region).toEqual({ x1: 0, y1: 0, x2: 20, y2: 16 });
  });

  it('accepts NHWC features with the same results as NCHW', async () => {
    const nhwc = toLayout(fm, 'NHWC');
    const [a, b] = await Promise.all([
      roi({ features: featuresField(fm), spatialScale: 0.5, boxes, ops: ['align'] }),
      roi({ features: featuresField(nhwc), spatialScale: 0.5, boxes, ops: ['align'] }),
    ]);
    expect(maxAbsDiff(tensorData(a.json().outputs.align), tensorData(b.json().outputs.align))).toBeLessThan(
      1e-6,
    );
  });

  it('converts xywh and cxcywh boxes to canonical xyxy', async () => {
    const xywh = await roi({
      features: featuresField(fm),
      spatialScale: 0.5,
      boxes: [[1, 2, 3, 4]],
      boxFormat: 'xywh',
    });
    expect(xywh.json().boxes).toEqual([[0, 1, 2, 4, 6]]);
    const cxcywh = await roi({
      features: featuresField(fm),
      spatialScale: 0.5,
      boxes: [[1, 5, 6, 4, 2]],
      boxFormat: 'cxcywh',
    });
    expect(cxcywh.json().boxes).toEqual([[1, 3, 5, 7, 7]]);
  });

  it('accepts an empty box list: outputs [0, C, PH, PW]', async () => {
    const r = await roi({ features: featuresField(fm), spatialScale: 0.5, boxes: [] });
    expect(r.statusCode).toBe(200);
    expect(r.json().outputs.align).toEqual({ shape: [0, 3, 7, 7], dtype: 'float32', data: '' });
    expect(r.json().coverage).toEqual([]);
  });

  it('encoding "array" returns flat number arrays', async () => {
    const r = await roi({
      features: featuresField(fm),
      spatialScale: 0.5,
      boxes,
      ops: ['pool'],
      encoding: 'array',
    });
    const pool = r.json().outputs.pool;
    expect(Array.isArray(pool.data)).toBe(true);
    expect(pool.data).toHaveLength(3 * 3 * 49);
    const canonical = toCanonicalBoxes(boxes, { format: 'xyxy', batchSize: 2 });
    expect(Float32Array.from(pool.data)).toEqual(
      roiPool(fm, canonical, { spatialScale: 0.5, outputSize: 7 }).data,
    );
  });

  it('encoding "array" keeps the sign of -0 (JSON.stringify wrote 0)', async () => {
    const negZero: FeatureMap = { data: new Float32Array(16).fill(-0), shape: [1, 1, 4, 4], layout: 'NCHW' };
    const r = await roi({
      features: featuresField(negZero),
      spatialScale: 1,
      boxes: [[0, 0, 2, 2]],
      ops: ['pool', 'align'],
      outputSize: 1,
      mode: 'max',
      encoding: 'array',
    });
    expect(r.statusCode).toBe(200);
    // RoI Pool's max of -0 cells is -0, and so is RoI Align's max of interpolated -0 samples.
    expect(r.body).toContain('"pool":{"shape":[1,1,1,1],"dtype":"float32","data":[-0]}');
    expect(r.body).toContain('"align":{"shape":[1,1,1,1],"dtype":"float32","data":[-0]}');
    expect(Object.is(r.json().outputs.pool.data[0], -0)).toBe(true);
  });

  it('encoding "array" refuses an output JSON cannot write (±Infinity), naming encoding; base64 carries it', async () => {
    // Finite inputs at the float32 limit: the average's rounding passes it (was written as null).
    const huge: FeatureMap = {
      data: new Float32Array(36).fill(3.4028234663852886e38),
      shape: [1, 1, 6, 6],
      layout: 'NCHW',
    };
    const payload = {
      features: featuresField(huge),
      spatialScale: 1,
      boxes: [[0.1, -0.1, 2.5, 2.8]],
      ops: ['align'],
      outputSize: 3,
      samplingRatio: 3,
    };
    const r = await roi({ ...payload, encoding: 'array' });
    expect(r.statusCode).toBe(400);
    const [e] = r.json().errors;
    expect(e.field).toBe('encoding');
    expect(e.message).toMatch(/^outputs\.align\.data\[\d+\] is Infinity, which JSON has no number for/);
    expect(e.message).toContain('use encoding "base64"');
    const b64 = await roi(payload);
    expect(b64.statusCode).toBe(200);
    expect(tensorData(b64.json().outputs.align)).toContain(Infinity);
  });

  it('format "npy" returns one .npy of [K, C, PH, PW]', async () => {
    const r = await roi({
      features: featuresField(fm),
      spatialScale: 0.5,
      boxes,
      ops: ['align'],
      format: 'npy',
    });
    expect(r.statusCode).toBe(200);
    expect(r.headers['content-type']).toBe('application/x-npy');
    expect(r.headers['content-disposition']).toBe('attachment; filename="align.npy"');
    expect(r.headers['server-timing']).toContain('encode;dur=');
    const npy = readNpy(r.rawPayload);
    expect(npy.shape).toEqual([3, 3, 7, 7]);
    const canonical = toCanonicalBoxes(boxes, { format: 'xyxy', batchSize: 2 });
    expect(npy.data).toEqual(roiAlign(fm, canonical, { spatialScale: 0.5 }).data);
  });

  it('format "safetensors" returns a tensor per op and the parameters in the metadata', async () => {
    const r = await roi({ features: featuresField(fm), spatialScale: 0.5, boxes, format: 'safetensors' });
    expect(r.statusCode).toBe(200);
    expect(r.headers['content-type']).toBe('application/octet-stream');
    const { tensors, metadata } = readSafetensors(r.rawPayload);
    expect(Object.keys(tensors)).toEqual(['pool', 'align', 'warp']);
    const canonical = toCanonicalBoxes(boxes, { format: 'xyxy', batchSize: 2 });
    expect(tensors.warp.data).toEqual(roiWarp(fm, canonical, { spatialScale: 0.5 }).data);
    expect(JSON.parse(metadata.params)).toMatchObject({ ops: ['pool', 'align', 'warp'], spatialScale: 0.5 });
    expect(JSON.parse(metadata.boxes)).toEqual(boxes);
  });
});

describe('POST /v1/roi and /v1/features with an image', () => {
  let png: Buffer;
  beforeAll(async () => {
    png = await testPng(96, 64);
  });

  it('runs the backbone; /v1/roi equals the ops module applied to /v1/features output', async () => {
    const f = await app.inject({
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
    const r = await app.inject({
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

describe('errors: 400 with the field and what was expected', () => {
  const base = () => ({ features: featuresField(fm), spatialScale: 0.5, boxes });

  it('neither image nor features', async () => {
    const r = await roi({ boxes });
    expect(r.statusCode).toBe(400);
    expect(r.headers['content-type']).toBe(PROBLEM_TYPE);
    // No work ran: only the request's own total and its parsing (stages that did not run are left out).
    expect(r.headers['server-timing']).toMatch(/^total;dur=[\d.]+, parse;dur=[\d.]+$/);
    expect(r.json()).toEqual({
      type: 'urn:roiserve:problem:invalid-input',
      title: 'Invalid input',
      status: 400,
      detail: 'missing input: give image or features',
      instance: '/v1/roi',
      errors: [
        {
          field: 'image',
          expected: 'exactly one of `image` (an encoded image) or `features` (a feature map)',
          message: 'missing input: give image or features',
        },
      ],
    });
  });

  it('schema violations name every offending field (path, expected, message)', async () => {
    const r = await roi({ ...base(), boxes: [[0, 0, 'a', 1]], ops: ['crop'], outputSize: 0, colour: 'red' });
    expect(r.statusCode).toBe(400);
    expect(r.json()).toEqual({
      type: 'urn:roiserve:problem:invalid-input',
      title: 'Invalid input',
      status: 400,
      detail: 'boxes[0][2]: Invalid input: expected number, received string (and 3 more)',
      instance: '/v1/roi',
      errors: [
        {
          field: 'boxes[0][2]',
          expected: 'number',
          message: 'Invalid input: expected number, received string',
        },
        {
          field: 'ops[0]',
          expected: 'one of "pool", "align", "warp"',
          message: 'Invalid option: expected one of "pool"|"align"|"warp"',
        },
        {
          field: 'outputSize',
          expected: 'a number > 0',
          message: 'Too small: expected number to be >0',
        },
        {
          field: 'colour',
          expected: 'no such field (see the API documentation for the accepted fields)',
          message: 'unknown field colour',
        },
      ],
    });
  });

  const cases: Array<[string, Record<string, unknown>, number, string, RegExp]> = [
    ['both inputs', { image: 'AAAA' }, 400, 'features', /not both/],
    [
      'features without spatialScale',
      { spatialScale: undefined },
      400,
      'spatialScale',
      /required with features/,
    ],
    ['a bad box (x2 < x1)', { boxes: [[5, 0, 1, 1]] }, 400, 'boxes[0][2]', /x2/],
    ['a batch index out of range', { boxes: [[2, 0, 0, 1, 1]] }, 400, 'boxes[0][0]', /N = 2/],
    ['a box row of 3 numbers', { boxes: [[1, 2, 3]] }, 400, 'boxes[0]', /.+/],
    ['outputSize over 64', { outputSize: 65 }, 400, 'outputSize', /exceeds the limit 64/],
    ['outputSize pair over 64', { outputSize: [2, 100] }, 400, 'outputSize[1]', /exceeds the limit 64/],
    ['samplingRatio over 64', { samplingRatio: 65 }, 400, 'samplingRatio', /exceeds the limit 64/],
    ['npy with three ops', { format: 'npy' }, 400, 'ops', /one tensor/],
    [
      'features data of the wrong length',
      { features: { shape: [1, 1, 2, 2], data: 'AAAAAA==' } },
      400,
      'features.data',
      /needs 4/,
    ],
    [
      'features data that is not base64',
      { features: { shape: [1, 1, 1, 1], data: '@@@@' } },
      400,
      'features.data',
      /base64/,
    ],
    [
      'NaN in the feature map',
      { features: { shape: [1, 1, 1, 2], data: encodeFloat32Base64(Float32Array.from([1, NaN])) } },
      400,
      'features.data[1]',
      /NaN/,
    ],
    [
      'an unknown layout',
      { features: { shape: [1, 1, 1, 1], layout: 'CHW', data: 'AAAAAA==' } },
      400,
      'features.layout',
      /.+/,
    ],
    ['a negative spatialScale', { spatialScale: -1 }, 400, 'spatialScale', /.+/],
    ['imageSize of one number', { imageSize: [5] }, 400, 'imageSize', /.+/],
    [
      'an image that is not base64',
      { features: undefined, spatialScale: undefined, image: '###', boxes: [] },
      400,
      'image',
      /base64/,
    ],
  ];
  it.each(cases)('%s', async (_name, patch, status, field, message) => {
    const r = await roi({ ...base(), ...patch });
    expect(r.statusCode).toBe(status);
    expect(r.headers['content-type']).toBe(PROBLEM_TYPE);
    const problem = r.json();
    expect(problem).toMatchObject({ status, instance: '/v1/roi' });
    expect(problem.errors.map((e: { field: string }) => e.field)).toContain(field);
    const entry = problem.errors.find((e: { field: string }) => e.field === field);
    expect(entry.message).toMatch(message);
    expect(entry.expected.length).toBeGreaterThan(0);
  });

  it('a finite box × a large spatialScale that overflows float32 names the coordinate and spatialScale', async () => {
    // Was "boxes[0][3] is Infinity": the box is finite, its product with spatialScale is not.
    const r = await roi({ features: featuresField(fm), spatialScale: 1e36, boxes: [[0, 0, 1000, 10]] });
    expect(r.statusCode).toBe(400);
    const [e] = r.json().errors;
    expect(e.field).toBe('boxes[0]');
    expect(e.message).toMatch(/^boxes\[0\]: x2 × spatialScale = 1000 × 1e\+36 = 1e\+39 overflows float32/);
    expect(e.message).toContain('3.402823e+38');
    expect(e.message).not.toContain('Infinity');
  });

  it('spatialScale or imageSize with an image', async () => {
    const r = await roi({ image: (await testPng(16, 16)).toString('base64'), boxes: [], spatialScale: 0.5 });
    expect(r.statusCode).toBe(400);
    expect(r.json().errors[0]).toEqual({
      field: 'spatialScale',
      expected: 'no spatialScale with `image` (only with `features`)',
      message: 'spatialScale is set by the backbone (1/stride) when the input is an image',
    });
  });

  it('malformed JSON and an empty body', async () => {
    const bad = await app.inject({
      method: 'POST',
      url: '/v1/roi',
      headers: { 'content-type': 'application/json' },
      payload: '{"boxes": [',
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toMatchObject({ type: 'urn:roiserve:problem:invalid-input', status: 400 });
    const empty = await app.inject({
      method: 'POST',
      url: '/v1/roi',
      headers: { 'content-type': 'application/json' },
    });
    expect(empty.statusCode).toBe(400);
  });
});

describe('errors: 404, 413, 415', () => {
  it('an unknown route is a problem 404 (outside /v2, which answers the protocol {"error"})', async () => {
    const r = await app.inject({ method: 'GET', url: '/v9/nothing?x=1' });
    expect(r.statusCode).toBe(404);
    expect(r.headers['content-type']).toBe(PROBLEM_TYPE);
    expect(r.json()).toEqual({
      type: 'urn:roiserve:problem:not-found',
      title: 'Not found',
      status: 404,
      detail: 'no route GET /v9/nothing',
      instance: '/v9/nothing',
    });
  });

  it('415 for a content type other than JSON or multipart', async () => {
    const r = await app.inject({
      method: 'POST',
      url: '/v1/roi',
      headers: { 'content-type': 'text/plain' },
      payload: 'x',
    });
    expect(r.statusCode).toBe(415);
    expect(r.json()).toEqual({
      type: 'urn:roiserve:problem:unsupported-media-type',
      title: 'Unsupported media type',
      status: 415,
      detail: 'content type text/plain is not accepted here',
      instance: '/v1/roi',
      errors: [
        {
          field: 'Content-Type',
          expected: 'application/json or multipart/form-data',
          message: 'content type text/plain is not accepted here',
        },
      ],
    });
  });

  it('415 for bytes that are not a supported image, naming the field', async () => {
    const bmp = Buffer.concat([Buffer.from('BM'), Buffer.alloc(64)]);
    const r = await roi({ image: bmp.toString('base64'), boxes: [] });
    expect(r.statusCode).toBe(415);
    expect(r.json()).toMatchObject({ status: 415, errors: [{ field: 'image' }] });
    expect(r.json().detail).toContain('bmp');
  });

  it('413 for a body over BODY_LIMIT_BYTES', async () => {
    const r = await roi(
      { features: featuresField(randomMap([1, 4, 16, 16])), spatialScale: 0.5, boxes: [] },
      strict,
      { authorization: `Bearer ${API_KEY}` },
    );
    expect(r.statusCode).toBe(413);
    expect(r.json()).toEqual({
      type: 'urn:roiserve:problem:too-large',
      title: 'Too large',
      status: 413,
      detail: 'the request body is larger than 4096 bytes',
      instance: '/v1/roi',
      errors: [
        {
          field: 'body',
          expected: 'at most 4096 bytes (BODY_LIMIT_BYTES)',
          message: 'the request body is larger than 4096 bytes',
        },
      ],
    });
  });

  it('413 for more boxes than MAX_BOXES', async () => {
    const small = randomMap([1, 1, 2, 2]);
    const r = await roi(
      {
        features: featuresField(small),
        spatialScale: 1,
        boxes: [
          [0, 0, 1, 1],
          [0, 0, 1, 1],
          [0, 0, 1, 1],
          [0, 0, 1, 1],
        ],
      },
      strict,
      { authorization: `Bearer ${API_KEY}` },
    );
    expect(r.statusCode).toBe(413);
    expect(r.json()).toEqual({
      type: 'urn:roiserve:problem:too-large',
      title: 'Too large',
      status: 413,
      detail: '4 boxes exceed the limit of 3 per request',
      instance: '/v1/roi',
      errors: [
        { field: 'boxes', expected: 'at most 3 boxes', message: '4 boxes exceed the limit of 3 per request' },
      ],
    });
  });

  it('413 for outputs over MAX_OUTPUT_VALUES', async () => {
    const small = randomMap([1, 2, 2, 2]);
    const r = await roi(
      { features: featuresField(small), spatialScale: 1, boxes: [[0, 0, 1, 1]], outputSize: 16 },
      strict,
      { 'x-api-key': API_KEY },
    );
    expect(r.statusCode).toBe(413);
    expect(r.json().errors[0].field).toBe('boxes');
    expect(r.json().detail).toContain('over the limit of 1000');
  });

  it('413 for encoding "array" over 1 M values', async () => {
    const one = randomMap([1, 1, 4, 4]);
    const many = Array.from({ length: 250 }, () => [0, 0, 3, 3]);
    const r = await roi({
      features: featuresField(one),
      spatialScale: 1,
      boxes: many,
      ops: ['pool'],
      outputSize: 64,
      encoding: 'array',
    });
    expect(r.statusCode).toBe(413);
    expect(r.json().errors[0]).toMatchObject({
      field: 'encoding',
      expected: '"base64", or at most 1000000 values with "array"',
    });
  });
});

describe('image limits: MAX_IMAGE_PIXELS and MAX_IMAGE_SIDE', () => {
  const auth = { authorization: `Bearer ${API_KEY}` };

  it('413 for an image over MAX_IMAGE_PIXELS, before decoding', async () => {
    const png = await sharp({ create: { width: 100, height: 100, channels: 3, background: '#000' } })
      .png()
      .toBuffer();
    const r = await strict.inject({
      method: 'POST',
      url: '/v1/features',
      headers: auth,
      payload: { image: png.toString('base64') },
    });
    expect(r.statusCode).toBe(413);
    expect(r.json()).toMatchObject({ type: 'urn:roiserve:problem:too-large', errors: [{ field: 'image' }] });
  });

  it('shrinks to MAX_IMAGE_SIDE: boxes stay in input pixels, operators and coverage work in the resized frame', async () => {
    // Solid colour: a small file, under the strict app's 4 kB body limit.
    const png = await sharp({ create: { width: 64, height: 48, channels: 3, background: '#3a6' } })
      .png()
      .toBuffer();
    const r = await roi(
      { image: png.toString('base64'), boxes: [[0, 0, 64, 48]], outputSize: 1, ops: ['align'] },
      strict,
      auth,
    );
    expect(r.statusCode).toBe(200);
    const body = r.json();
    expect(body.image).toEqual({
      width: 32,
      height: 24,
      originalWidth: 64,
      originalHeight: 48,
      scale: 0.5,
      scaleX: 0.5,
      scaleY: 0.5,
      format: 'png',
    });
    expect(body.featureMap.shape).toEqual([1, 256, 2, 2]);
    expect(body.boxes).toEqual([[0, 0, 0, 64, 48]]);
    expect(body.coverage[0].box).toEqual({ x1: 0, y1: 0, x2: 32, y2: 24 });
  });

  it('a request maxSide over MAX_IMAGE_SIDE is served at the cap, with a max-side-capped warning', async () => {
    const png = await sharp({ create: { width: 64, height: 48, channels: 3, background: '#3a6' } })
      .png()
      .toBuffer();
    const image = png.toString('base64');
    const r = await roi(
      { image, boxes: [[0, 0, 64, 48]], outputSize: 1, ops: ['align'], maxSide: 48 },
      strict,
      auth,
    );
    expect(r.statusCode).toBe(200);
    expect(r.json().image).toMatchObject({ width: 32, height: 24 });
    expect(r.json().params.maxSide).toBe(32);
    expect(r.json().warnings).toEqual([
      expect.objectContaining({ code: 'max-side-capped', field: 'maxSide' }),
    ]);
    expect(JSON.parse(r.headers['x-roiserve-warnings'] as string)).toEqual(r.json().warnings);
    const smaller = await roi(
      { image, boxes: [[0, 0, 64, 48]], outputSize: 1, ops: ['align'], maxSide: 16 },
      strict,
      auth,
    );
    expect(smaller.json().image).toMatchObject({ width: 16, height: 12 });
    expect(smaller.json().warnings).toEqual([]);
  });

  it('scales box x by width / originalWidth and y by height / originalHeight (they differ after rounding)', async () => {
    // 64×27 → 32×14 (13.5 rounds up): x factor 0.5, y factor 14/27. Boxes were scaled by 0.5 on both
    // axes, so the full-image box ended at y 13.5 in a 14-pixel-high image.
    const png = await sharp({ create: { width: 64, height: 27, channels: 3, background: '#3a6' } })
      .png()
      .toBuffer();
    const r = await roi(
      {
        image: png.toString('base64'),
        boxes: [
          [0, 0, 64, 27],
          [10, 9, 30, 18],
        ],
        outputSize: 1,
        ops: ['align'],
      },
      strict,
      auth,
    );
    expect(r.statusCode).toBe(200);
    const body = r.json();
    expect(body.image).toMatchObject({ width: 32, height: 14, scaleX: 0.5, scaleY: 14 / 27 });
    expect(body.coverage[0].box).toEqual({ x1: 0, y1: 0, x2: 32, y2: 14 });
    expect(body.coverage[0].align.iou).toBe(1);
    const f = Math.fround;
    expect(body.coverage[1].box).toEqual({ x1: 5, y1: f(9 * (14 / 27)), x2: 15, y2: f(18 * (14 / 27)) });
  });
});

describe('POST /v1/features errors', () => {
  it('400 without an image, 415 for a non-image, 400 for an unknown format', async () => {
    const missing = await app.inject({ method: 'POST', url: '/v1/features', payload: {} });
    expect(missing.statusCode).toBe(400);
    expect(missing.json().errors).toEqual([
      { field: 'image', expected: 'string (required)', message: 'required' },
    ]);
    const pdf = await app.inject({
      method: 'POST',
      url: '/v1/features',
      payload: { image: Buffer.from('%PDF-1.7 hello').toString('base64') },
    });
    expect(pdf.statusCode).toBe(415);
    expect(pdf.json().detail).toContain('pdf');
    const format = await app.inject({
      method: 'POST',
      url: '/v1/features',
      payload: { image: 'AAAA', format: 'safetensors' },
    });
    expect(format.statusCode).toBe(400);
    expect(format.json().errors[0].field).toBe('format');
  });
});

describe('401 with API_KEY', () => {
  const small = randomMap([1, 1, 2, 2]);
  const payload = { features: featuresField(small), spatialScale: 1, boxes: [[0, 0, 1, 1]] };

  it('refuses /v1/* without or with a wrong key', async () => {
    const missing = await strict.inject({ method: 'POST', url: '/v1/roi', payload });
    expect(missing.statusCode).toBe(401);
    expect(missing.headers['www-authenticate']).toBe('Bearer');
    expect(missing.json()).toEqual({
      type: 'urn:roiserve:problem:unauthorized',
      title: 'Unauthorized',
      status: 401,
      detail: 'this route needs an API key',
      instance: '/v1/roi',
      errors: [
        {
          field: 'Authorization',
          expected: 'Authorization: Bearer <key> or X-API-Key: <key>',
          message: 'missing key',
        },
      ],
    });
    const wrong = await strict.inject({
      method: 'GET',
      url: '/v1/backbone',
      headers: { authorization: 'Bearer nope' },
    });
    expect(wrong.statusCode).toBe(401);
    expect(wrong.json().detail).toBe('the API key is not valid');
  });

  it('accepts Authorization: Bearer and X-API-Key; health, readiness and the docs stay open', async () => {
    const bearer = await roi(payload, strict, { authorization: `Bearer ${API_KEY}` });
    expect(bearer.statusCode).toBe(200);
    const header = await strict.inject({
      method: 'GET',
      url: '/v1/backbone',
      headers: { 'x-api-key': API_KEY },
    });
    expect(header.statusCode).toBe(200);
    for (const url of ['/healthz', '/readyz', '/openapi.json']) {
      expect((await strict.inject({ method: 'GET', url })).statusCode).toBe(200);
    }
    // /metrics needs the key too (unless METRICS_PORT moves it: test/http/metrics.test.ts).
    expect((await strict.inject({ method: 'GET', url: '/metrics' })).statusCode).toBe(401);
  });
});

describe('503 when the queue is full', () => {
  it('refuses work beyond WORKERS + QUEUE_LIMIT with Retry-After', async () => {
    const heavy = randomMap([1, 32, 64, 64], 3);
    const payload = {
      features: featuresField(heavy),
      spatialScale: 1,
      boxes: Array.from({ length: 3 }, (_, i) => [i, i, 60, 60]),
      outputSize: 16,
      samplingRatio: 8,
      ops: ['align'],
    };
    const bigStrict = await buildApp(testConfig({ queueLimit: 0 }));
    try {
      await bigStrict.readiness.settled;
      const [a, b] = await Promise.all([
        bigStrict.inject({ method: 'POST', url: '/v1/roi', payload }),
        bigStrict.inject({ method: 'POST', url: '/v1/roi', payload }),
      ]);
      const statuses = [a.statusCode, b.statusCode].sort();
      expect(statuses).toEqual([200, 503]);
      const busy = a.statusCode === 503 ? a : b;
      expect(busy.headers['retry-after']).toBe('1');
      expect(busy.json()).toEqual({
        type: 'urn:roiserve:problem:unavailable',
        title: 'Service unavailable',
        status: 503,
        detail: 'all 1 workers are busy and 0 requests are already waiting; retry shortly',
        instance: '/v1/roi',
      });
    } finally {
      await bigStrict.close();
    }
  });
});
