/**
 * `Server-Timing` (total, parse, queue and the stages that ran; nothing for stages that did not) and the
 * metric VALUES behind it (issue 10 "Timing"; issue 12's surviving mutations: boxes counted by the right
 * number, latency in seconds, stage durations for every op that ran, encode labelled by route).
 */
import { describe, expect, it } from 'vitest';
import { limitsFrom } from '../../src/core/task.js';
import { prepareRoi } from '../../src/core/prepare.js';
import { roiBodySchema, roiInputOf } from '../../routes/v1/schemas/request.js';
import { buildApp } from '../../src/server.js';
import { featuresField, randomMap, testConfig, testPng } from '../support/fixtures.js';
import { useApp } from '../support/app.js';

const server = useApp();

/** `total;dur=1.00, parse;dur=0.20` → [['total', 1], ['parse', 0.2]]. */
function timing(header: unknown): Array<[string, number]> {
  expect(typeof header).toBe('string');
  return (header as string).split(', ').map((entry) => {
    const m = /^([a-z]+);dur=(\d+\.\d\d)$/.exec(entry);
    expect(m, entry).not.toBeNull();
    return [m?.[1] as string, Number(m?.[2])];
  });
}

type Labels = Record<string, string>;
const matches = (have: Partial<Record<string, string | number>>, want: Labels) =>
  Object.entries(want).every(([k, v]) => have[k] === v);

/** The `_count` and `_sum` of a histogram series, or a counter's value, read from the registry. */
async function read(name: string, labels: Labels): Promise<{ count: number; sum: number; value: number }> {
  const metric = server.app.metrics.registry.getSingleMetric(name);
  if (!metric) throw new Error(`no metric ${name}`);
  const { values } = await metric.get();
  const pick = (suffix: string) =>
    values.find(
      (v) =>
        ((v as { metricName?: string }).metricName ?? name) === `${name}${suffix}` &&
        matches(v.labels, labels),
    )?.value ?? 0;
  return { count: pick('_count'), sum: pick('_sum'), value: pick('') };
}

const fm = randomMap([1, 4, 12, 12], 5);
const boxes = [
  [0, 0, 8, 8],
  [1, 1, 11, 6],
  [2, 3, 5, 9],
];

describe('Server-Timing', () => {
  it('features input, two ops: total, parse, queue, the two ops and encode; no decode, backbone or warp', async () => {
    const r = await server.app.inject({
      method: 'POST',
      url: '/v1/roi',
      payload: { features: featuresField(fm), spatialScale: 1, boxes, ops: ['align', 'pool'] },
    });
    expect(r.statusCode).toBe(200);
    const names = timing(r.headers['server-timing']).map(([n]) => n);
    expect(names).toEqual(['total', 'parse', 'queue', 'pool', 'align', 'encode']);
    const t = Object.fromEntries(timing(r.headers['server-timing']));
    expect(t.total).toBeGreaterThanOrEqual(t.parse);
  });

  it('queue is the wait for the one worker: of two tasks submitted together, the second waited for the first', async () => {
    const heavy = randomMap([1, 16, 48, 48], 4);
    const body = roiBodySchema.parse({
      features: featuresField(heavy),
      spatialScale: 1,
      boxes: Array.from({ length: 4 }, (_, i) => [i, i, 44, 44]),
      outputSize: 12,
      samplingRatio: 6,
      ops: ['align'],
    });
    // Through the pool directly, so both are submitted back to back (over HTTP the second request's
    // parsing would sit between them, and the first would already be running).
    const limits = limitsFrom(server.app.config);
    const tasks = [prepareRoi(roiInputOf(body), limits), prepareRoi(roiInputOf(body), limits)];
    const [a, b] = await Promise.all(tasks.map((task) => server.app.work.roiEncoded(task, 'json', 'base64')));
    const [first, second] = (a.timings.queue ?? 0) <= (b.timings.queue ?? 0) ? [a, b] : [b, a];
    const work = (t: typeof a.timings) => (t.align ?? 0) + (t.encode ?? 0);
    expect(work(first.timings)).toBeGreaterThan(0);
    // One worker: the second waited at least for the first one's align and encode. (Slack: the worker may
    // take the first task in the microseconds between the two submissions, if this thread is preempted.)
    expect(second.timings.queue).toBeGreaterThanOrEqual(work(first.timings) - 5);
  });

  it('an image: decode and backbone appear', async () => {
    const png = (await testPng(48, 32)).toString('base64');
    const r = await server.app.inject({
      method: 'POST',
      url: '/v1/roi',
      payload: { image: png, boxes: [[0, 0, 30, 20]], ops: ['warp'] },
    });
    expect(r.statusCode).toBe(200);
    expect(timing(r.headers['server-timing']).map(([n]) => n)).toEqual([
      'total',
      'parse',
      'queue',
      'decode',
      'backbone',
      'warp',
      'encode',
    ]);
  });

  it('errors carry only what ran: a 400 from validation, a 404, a 405', async () => {
    const invalid = await server.app.inject({ method: 'POST', url: '/v1/roi', payload: { boxes: 'x' } });
    expect(invalid.statusCode).toBe(400);
    expect(timing(invalid.headers['server-timing']).map(([n]) => n)).toEqual(['total', 'parse']);
    for (const [method, url] of [
      ['GET', '/nothing'],
      ['GET', '/v1/roi'],
    ] as const) {
      const r = await server.app.inject({ method, url });
      const names = timing(r.headers['server-timing']).map(([n]) => n);
      expect(names[0]).toBe('total');
      expect(names).not.toContain('queue');
      expect(names).not.toContain('encode');
    }
  });

  it('a 401 (key refused before the body is read) carries only total', async () => {
    const keyed = await buildApp(testConfig({ apiKey: 'test-key-0123456789' }));
    try {
      const r = await keyed.inject({ method: 'POST', url: '/v1/roi', payload: { boxes: [] } });
      expect(r.statusCode).toBe(401);
      expect(timing(r.headers['server-timing']).map(([n]) => n)).toEqual(['total']);
    } finally {
      await keyed.close();
    }
  });
});

describe('metric values', () => {
  it('boxes counted per op that ran, by the number of boxes; stage durations for every op that ran, equal to Server-Timing', async () => {
    const route = { route: '/v1/roi' };
    const before = {
      pool: await read('roiserve_boxes_processed_total', { op: 'pool' }),
      align: await read('roiserve_boxes_processed_total', { op: 'align' }),
      warp: await read('roiserve_boxes_processed_total', { op: 'warp' }),
      stage: Object.fromEntries(
        await Promise.all(
          ['decode', 'backbone', 'pool', 'align', 'warp', 'encode'].map(async (stage) => [
            stage,
            await read('roiserve_stage_duration_seconds', { stage, ...route }),
          ]),
        ),
      ),
    };
    const r = await server.app.inject({
      method: 'POST',
      url: '/v1/roi',
      payload: { features: featuresField(fm), spatialScale: 1, boxes, ops: ['pool', 'align'] },
    });
    expect(r.statusCode).toBe(200);
    const header = Object.fromEntries(timing(r.headers['server-timing']));

    expect((await read('roiserve_boxes_processed_total', { op: 'pool' })).value - before.pool.value).toBe(3);
    expect((await read('roiserve_boxes_processed_total', { op: 'align' })).value - before.align.value).toBe(
      3,
    );
    expect((await read('roiserve_boxes_processed_total', { op: 'warp' })).value - before.warp.value).toBe(0);

    for (const stage of ['pool', 'align', 'encode']) {
      const now = await read('roiserve_stage_duration_seconds', { stage, ...route });
      expect(now.count - before.stage[stage].count, stage).toBe(1);
      // Observed in seconds: the same duration the header gives in ms (to its 2 decimals).
      expect(Math.abs((now.sum - before.stage[stage].sum) * 1000 - header[stage]), stage).toBeLessThanOrEqual(
        0.006,
      );
    }
    for (const stage of ['decode', 'backbone', 'warp']) {
      const now = await read('roiserve_stage_duration_seconds', { stage, ...route });
      expect(now.count - before.stage[stage].count, stage).toBe(0);
    }
  });

  it('/v1/diff counts its boxes for each of the three ops, /v2 roi_align for align (both survived a count of 0)', async () => {
    const boxesOf = async (op: string) => (await read('roiserve_boxes_processed_total', { op })).value;
    const ops = ['pool', 'align', 'warp'];
    const before = await Promise.all(ops.map(boxesOf));
    const d = await server.app.inject({
      method: 'POST',
      url: '/v1/diff',
      payload: { features: featuresField(fm), spatialScale: 1, boxes, maxBoxes: 1 },
    });
    expect(d.statusCode).toBe(200);
    const afterDiff = await Promise.all(ops.map(boxesOf));
    expect(afterDiff.map((v, i) => v - before[i])).toEqual([3, 3, 3]);

    const infer = await server.app.inject({
      method: 'POST',
      url: '/v2/models/roi_align/infer',
      payload: {
        parameters: { spatial_scale: 1, output_size: 2 },
        inputs: [
          { name: 'features', shape: fm.shape, datatype: 'FP32', data: Array.from(fm.data) },
          { name: 'rois', shape: [2, 5], datatype: 'FP32', data: [0, 0, 0, 8, 8, 0, 1, 1, 11, 6] },
        ],
      },
    });
    expect(infer.statusCode, infer.body).toBe(200);
    const afterInfer = await Promise.all(ops.map(boxesOf));
    expect(afterInfer.map((v, i) => v - afterDiff[i])).toEqual([0, 2, 0]);
  });

  it('request latency is observed in seconds (inside the client-side wall time, at least the header total)', async () => {
    const labels = { method: 'POST', route: '/v1/roi', status: '200' };
    const before = await read('roiserve_http_request_duration_seconds', labels);
    const counted = await read('roiserve_http_requests_total', labels);
    const started = performance.now();
    const r = await server.app.inject({
      method: 'POST',
      url: '/v1/roi',
      payload: { features: featuresField(fm), spatialScale: 1, boxes, ops: ['align'] },
    });
    const wallMs = performance.now() - started;
    expect(r.statusCode).toBe(200);
    const after = await read('roiserve_http_request_duration_seconds', labels);
    expect(after.count - before.count).toBe(1);
    expect((await read('roiserve_http_requests_total', labels)).value - counted.value).toBe(1);
    const observedMs = (after.sum - before.sum) * 1000;
    const total = Object.fromEntries(timing(r.headers['server-timing'])).total;
    // The server's interval lies inside the client's, and contains the part up to the header.
    expect(observedMs).toBeLessThanOrEqual(wallMs);
    expect(observedMs).toBeGreaterThanOrEqual(total - 0.01);
  });

  it('the encode histogram is labelled by route: /v1/features and /v1/diff are separate series', async () => {
    const png = (await testPng(48, 32)).toString('base64');
    const features = await read('roiserve_stage_duration_seconds', {
      stage: 'encode',
      route: '/v1/features',
    });
    const diff = await read('roiserve_stage_duration_seconds', { stage: 'encode', route: '/v1/diff' });
    const roi = await read('roiserve_stage_duration_seconds', { stage: 'encode', route: '/v1/roi' });
    expect(
      (await server.app.inject({ method: 'POST', url: '/v1/features', payload: { image: png } })).statusCode,
    ).toBe(200);
    const d = await server.app.inject({
      method: 'POST',
      url: '/v1/diff',
      payload: { features: featuresField(fm), spatialScale: 1, boxes: [[0, 0, 8, 8]], maxBoxes: 1 },
    });
    expect(d.statusCode).toBe(200);
    expect(
      (await read('roiserve_stage_duration_seconds', { stage: 'encode', route: '/v1/features' })).count -
        features.count,
    ).toBe(1);
    expect(
      (await read('roiserve_stage_duration_seconds', { stage: 'encode', route: '/v1/diff' })).count -
        diff.count,
    ).toBe(1);
    expect(
      (await read('roiserve_stage_duration_seconds', { stage: 'encode', route: '/v1/roi' })).count -
        roi.count,
    ).toBe(0);
  });
});
