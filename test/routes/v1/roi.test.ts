/** `POST /v1/roi` with features through `inject`: defaults, every parameter, box formats, encodings and formats, against the ops module. */
import { describe, expect, it } from 'vitest';
import {
  roiAlign,
  roiPool,
  roiWarp,
  toCanonicalBoxes,
  toLayout,
  type FeatureMap,
} from '../../../src/ops/index.js';
import { roiResponseSchema } from '../../../routes/v1/schemas/responses.js';
import { readNpy } from '../../../src/tensors/npy.js';
import { readSafetensors } from '../../../src/tensors/safetensors.js';
import { useApp } from '../../support/app.js';
import { featuresField, tensorData } from '../../support/fixtures.js';
import { maxAbsDiff } from '../../support/compare.js';
import { roiPoster, sampleBoxes as boxes, sampleMap as fm } from '../../support/v1.js';

const server = useApp();
const roi = roiPoster(server);

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
      clockwise: false,
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
