/**
 * A real listening server (127.0.0.1, port 0) driven by a real HTTP client (fetch / FormData):
 * multipart uploads, .npy and safetensors round-trips compared with the ops module, and the proof
 * that /healthz answers while heavy requests occupy the workers.
 */
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { roiAlign, roiPool, roiWarp, toCanonicalBoxes, type FeatureMap } from '../src/ops/index.js';
import { buildApp } from '../src/server.js';
import { readNpy, writeNpy } from '../src/tensors/npy.js';
import { readSafetensors } from '../src/tensors/safetensors.js';
import { featuresField, randomMap, tensorData, testConfig, testPng } from './support/fixtures.js';
import { maxAbsDiff } from './support/compare.js';

let app: FastifyInstance;
let base: string;
const BODY_LIMIT = 3 * 1024 * 1024;

beforeAll(async () => {
  app = await buildApp(testConfig({ bodyLimitBytes: BODY_LIMIT }));
  const address = await app.listen({ host: '127.0.0.1', port: 0 });
  base = address;
  await app.readiness.settled;
});

afterAll(async () => {
  await app?.close();
});

function form(
  fields: Record<string, string | Blob>,
  files: Record<string, [Uint8Array, string]> = {},
): FormData {
  const fd = new FormData();
  for (const [name, value] of Object.entries(fields)) fd.append(name, value);
  for (const [name, [bytes, filename]] of Object.entries(files))
    fd.append(name, new Blob([bytes as Uint8Array<ArrayBuffer>]), filename);
  return fd;
}

describe('multipart/form-data', () => {
  it('image upload, format=npy: equals the ops module on the /v1/features map', async () => {
    const png = await testPng(80, 48);
    const feat = await fetch(`${base}/v1/features`, {
      method: 'POST',
      body: form({ format: 'npy' }, { image: [png, 'x.png'] }),
    });
    expect(feat.status).toBe(200);
    expect(feat.headers.get('content-type')).toBe('application/x-npy');
    const npyMap = readNpy(new Uint8Array(await feat.arrayBuffer()));
    expect(npyMap.shape).toEqual([1, 256, 3, 5]);

    const boxes = [
      [4, 4, 60, 40],
      [0, 0, 80, 48],
    ];
    const r = await fetch(`${base}/v1/roi`, {
      method: 'POST',
      body: form(
        {
          boxes: JSON.stringify(boxes),
          ops: '["warp"]',
          outputSize: '4',
          samplingRatio: '0',
          aligned: 'false',
          format: 'npy',
        },
        { image: [png, 'x.png'] },
      ),
    });
    expect(r.status).toBe(200);
    expect(r.headers.get('server-timing')).toMatch(
      /^total;dur=[\d.]+, parse;dur=[\d.]+, queue;dur=[\d.]+, decode;dur=[\d.]+, backbone;dur=[\d.]+, warp;dur=[\d.]+, encode;dur=[\d.]+$/,
    );
    const out = readNpy(new Uint8Array(await r.arrayBuffer()));
    expect(out.shape).toEqual([2, 256, 4, 4]);
    const map: FeatureMap = { data: npyMap.data, shape: [1, 256, 3, 5], layout: 'NCHW' };
    const expected = roiWarp(map, toCanonicalBoxes(boxes, { format: 'xyxy', batchSize: 1 }), {
      spatialScale: 1 / 16,
      outputSize: 4,
      samplingRatio: 0,
      aligned: false,
    });
    expect(maxAbsDiff(out.data, expected.data)).toBeLessThan(1e-6);
  });

  it('features as a .npy part, format=safetensors: every op equals the ops module exactly', async () => {
    const fm = randomMap([2, 4, 9, 11], 5);
    const boxes = [
      [0, 0.5, 1, 17.5, 12],
      [1, 3, 3, 9, 15.75],
    ];
    const r = await fetch(`${base}/v1/roi`, {
      method: 'POST',
      body: form(
        {
          boxes: JSON.stringify(boxes),
          spatialScale: '0.5',
          mode: 'max',
          imageSize: '[22, 18]',
          format: 'safetensors',
        },
        { features: [writeNpy(fm.data, fm.shape), 'map.npy'] },
      ),
    });
    expect(r.status).toBe(200);
    const { tensors, metadata } = readSafetensors(new Uint8Array(await r.arrayBuffer()));
    const canonical = toCanonicalBoxes(boxes, { format: 'xyxy', batchSize: 2 });
    const params = { spatialScale: 0.5, mode: 'max' } as const;
    expect(tensors.pool.data).toEqual(roiPool(fm, canonical, { spatialScale: 0.5 }).data);
    expect(tensors.align.data).toEqual(roiAlign(fm, canonical, params).data);
    expect(tensors.warp.data).toEqual(roiWarp(fm, canonical, params).data);
    expect(tensors.align.shape).toEqual([2, 4, 7, 7]);
    expect(JSON.parse(metadata.params)).toMatchObject({
      mode: 'max',
      imageSize: [22, 18],
      format: 'safetensors',
    });
    expect(JSON.parse(metadata.featureMap)).toMatchObject({ shape: [2, 4, 9, 11], source: 'input' });
  });

  it('multipart mistakes are 400s that name the field', async () => {
    const fm = randomMap([1, 1, 2, 2]);
    const npy = writeNpy(fm.data, fm.shape);
    const twice = form({ boxes: '[]', spatialScale: '1' }, { features: [npy, 'a.npy'] });
    twice.append('boxes', '[]');
    const cases: Array<[FormData, string]> = [
      [twice, 'boxes'],
      [form({ boxes: '[[0,0,1]]', spatialScale: '1' }, { features: [npy, 'a.npy'] }), 'boxes[0]'],
      [
        form({ boxes: '[]', spatialScale: '1' }, { features: [writeNpy(fm.data, [4]), 'a.npy'] }),
        'features.shape',
      ],
      [form({ boxes: '[]', spatialScale: '1' }, { features: [Buffer.from('not npy'), 'a.npy'] }), 'features'],
      [form({ boxes: '[]', spatialScale: 'wide' }, { features: [npy, 'a.npy'] }), 'spatialScale'],
      [form({ boxes: '[]', spatialScale: '1', extra: 'x' }, { features: [npy, 'a.npy'] }), 'extra'],
    ];
    for (const [body, field] of cases) {
      const r = await fetch(`${base}/v1/roi`, { method: 'POST', body });
      expect(r.status, field).toBe(400);
      expect(r.headers.get('content-type')).toBe('application/problem+json; charset=utf-8');
      const problem = (await r.json()) as { errors: { field: string }[] };
      expect(problem.errors.map((e) => e.field)).toContain(field);
    }
  });

  it('a file part over BODY_LIMIT_BYTES is a 413 (the whole body is over it too)', async () => {
    const big = new Uint8Array(BODY_LIMIT + 1024);
    const r = await fetch(`${base}/v1/roi`, {
      method: 'POST',
      body: form({ boxes: '[]' }, { image: [big, 'big.png'] }),
    });
    expect(r.status).toBe(413);
    expect(await r.json()).toMatchObject({
      type: 'urn:roiserve:problem:too-large',
      status: 413,
      detail: `the request body is larger than ${BODY_LIMIT} bytes`,
      errors: [{ field: 'body' }],
    });
  });
});

describe('JSON over HTTP', () => {
  it('a features-input request returns exactly the ops module outputs', async () => {
    const fm = randomMap([1, 8, 16, 16], 9);
    const boxes = [
      [0, 0, 30, 30],
      [5.5, 7.25, 19, 28],
    ];
    const r = await fetch(`${base}/v1/roi`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ features: featuresField(fm), spatialScale: 0.5, boxes, outputSize: [2, 3] }),
    });
    expect(r.status).toBe(200);
    const body = (await r.json()) as { outputs: Record<string, { data: string }> };
    const canonical = toCanonicalBoxes(boxes, { format: 'xyxy', batchSize: 1 });
    const params = { spatialScale: 0.5, outputSize: [2, 3] as [number, number] };
    expect(tensorData(body.outputs.pool)).toEqual(roiPool(fm, canonical, params).data);
    expect(tensorData(body.outputs.align)).toEqual(roiAlign(fm, canonical, params).data);
    expect(tensorData(body.outputs.warp)).toEqual(roiWarp(fm, canonical, params).data);
  });
});

describe('the HTTP thread stays responsive', () => {
  it('/healthz answers while heavy requests occupy the worker', async () => {
    // The first request must stay in the worker far longer than a /healthz round trip takes on a
    // loaded machine (the client runs on the HTTP thread too, and CI runs test files in parallel on
    // 2 cores: up to ~150 ms there). Average mode is no good for that: its cost does not grow with
    // the sampling grid (~60-200 ms whatever samplingRatio), so healthz and the first answer raced
    // and healthz lost now and then. Max mode reads every sample: 40 boxes × 64 channels × 32² cells
    // × 24² samples, ~1 s alone, several times healthz's worst round trip under load. The two
    // queued ones only show that waiting work does not hold the thread either; they stay light.
    // If the HTTP thread were blocked while the worker works (a synchronous wait, copy or parse),
    // /healthz would answer after the first heavy request and the order below would fail.
    const fm = randomMap([1, 64, 96, 96], 11);
    const npy = writeNpy(fm.data, fm.shape);
    const boxes = JSON.stringify(Array.from({ length: 40 }, (_, i) => [i, i, 95, 95]));
    const order: string[] = [];
    const heavy = Array.from({ length: 3 }, (_, i) =>
      fetch(`${base}/v1/roi`, {
        method: 'POST',
        body: form(
          {
            boxes,
            spatialScale: '1',
            ops: '["align"]',
            mode: 'max',
            outputSize: '32',
            samplingRatio: i === 0 ? '24' : '8',
            format: 'npy',
          },
          { features: [npy, 'map.npy'] },
        ),
      }).then(async (r) => {
        order.push(`heavy${i}:${r.status}`);
        await r.arrayBuffer();
      }),
    );
    // Wait until the work is really running in the worker, then ask for /healthz.
    for (let i = 0; i < 200 && app.work.inFlight === 0; i++) await new Promise((res) => setTimeout(res, 10));
    expect(app.work.inFlight).toBeGreaterThan(0);
    const health = await fetch(`${base}/healthz`);
    order.push(`healthz:${health.status}`);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/roiserve_work_in_flight [1-9]/);
    await Promise.all(heavy);
    expect(order[0]).toBe('healthz:200');
    expect(order.slice(1).sort()).toEqual(['heavy0:200', 'heavy1:200', 'heavy2:200']);
  });
});
