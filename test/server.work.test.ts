/**
 * Work that must not run: requests over the work budget (`MAX_WORK`) are refused with 413 before any
 * work is queued; work nobody waits for is stopped (a client that went away: queued tasks dropped,
 * running ones stopped at the next box, the worker kept), and so is a task past TASK_TIMEOUT_SECONDS
 * (504). No timing thresholds: the proofs are counters (tasks started, cancelled, boxes started).
 */
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { buildApp } from '../src/server.js';
import { featuresField, randomMap, testConfig } from './support/fixtures.js';
import { useApp } from './support/app.js';

const server = useApp();

/** The hostile requests of issue 11, item 3 (inside MAX_BOXES and MAX_OUTPUT_VALUES). */
const hostile = {
  align: {
    features: featuresField(randomMap([1, 1, 16, 16])),
    spatialScale: 1,
    boxes: Array.from({ length: 5000 }, (_, k) => [k % 4, k % 3, 16, 16]),
    ops: ['align'],
    mode: 'max',
    outputSize: 64,
    samplingRatio: 64,
    format: 'npy',
  },
  pool: {
    // (the map was 2828², sent as .npy; 1400² keeps the JSON body under BODY_LIMIT_BYTES)
    features: featuresField(randomMap([1, 1, 1400, 1400])),
    spatialScale: 1,
    boxes: Array.from({ length: 10_000 }, () => [0, 0, 1400, 1400]),
    ops: ['pool'],
    outputSize: 1,
    format: 'npy',
  },
};

describe('the work budget (MAX_WORK)', () => {
  it.each(Object.entries(hostile))(
    'refuses the hostile %s request with 413 and the estimate; no work reaches the pool',
    async (_name, payload) => {
      const roiEncoded = vi.spyOn(server.app.work, 'roiEncoded');
      const diff = vi.spyOn(server.app.work, 'diff');
      try {
        for (const url of ['/v1/roi', '/v1/diff']) {
          const body = url === '/v1/diff' ? { ...payload, format: 'json' } : payload;
          const r = await server.app.inject({ method: 'POST', url, payload: body });
          expect(r.statusCode).toBe(413);
          const problem = r.json<{
            type: string;
            detail: string;
            errors: { field: string; expected: string }[];
          }>();
          expect(problem.type).toBe('urn:roiserve:problem:too-large');
          expect(problem.detail).toMatch(
            /^this request would cost ~\d\.\de\+\d+ work units \(.+\), over MAX_WORK=5\.0e\+10$/,
          );
          expect(problem.errors[0].field).toBe('boxes');
          expect(problem.errors[0].expected).toMatch(/fewer boxes, a smaller outputSize or samplingRatio/);
        }
        expect(roiEncoded).not.toHaveBeenCalled();
        expect(diff).not.toHaveBeenCalled();
      } finally {
        roiEncoded.mockRestore();
        diff.mockRestore();
      }
    },
  );

  it('lets a normal request through: 1000 boxes × 64 channels × 7×7, all three ops', async () => {
    const r = await server.app.inject({
      method: 'POST',
      url: '/v1/roi',
      payload: {
        features: featuresField(randomMap([1, 64, 30, 40])),
        spatialScale: 1 / 16,
        boxes: Array.from({ length: 1000 }, (_, k) => [k % 300, k % 200, 300 + (k % 300), 200 + (k % 280)]),
        format: 'safetensors',
      },
    });
    expect(r.statusCode).toBe(200);
  });
});

/**
 * A request that takes minutes (max mode, 32×32 bins of 64×64 samples each, 400 boxes), allowed by a
 * raised budget: something to cancel.
 */
const heavy = {
  features: featuresField(randomMap([1, 1, 16, 16])),
  spatialScale: 1,
  boxes: Array.from({ length: 400 }, (_, k) => [k % 4, k % 3, 16, 16]),
  ops: ['align'],
  mode: 'max',
  outputSize: 32,
  samplingRatio: 64,
  format: 'npy',
};

const small = {
  features: featuresField(randomMap([1, 4, 8, 8])),
  spatialScale: 1,
  boxes: [[0, 0, 8, 8]],
  format: 'npy',
  ops: ['align'],
};

/** The value of a counter (summed over the series matching `labels`). */
async function counter(target: FastifyInstance, name: string, labels: Record<string, string> = {}) {
  const metric = target.metrics.registry.getSingleMetric(name);
  if (!metric) throw new Error(`no metric ${name}`);
  const { values } = await metric.get();
  return values
    .filter((v) => Object.entries(labels).every(([k, want]) => v.labels[k] === want))
    .reduce((sum, v) => sum + v.value, 0);
}

/** Polls `check` until it holds (the test's own timeout bounds the wait). */
async function until(check: () => boolean | Promise<boolean>): Promise<void> {
  while (!(await check())) await new Promise((resolve) => setTimeout(resolve, 20));
}

describe('cancellation: a client that goes away (real HTTP)', () => {
  let live: FastifyInstance;
  let base: string;

  beforeAll(async () => {
    live = await buildApp(testConfig({ maxWork: 1e15, workers: 1 }));
    base = await live.listen({ host: '127.0.0.1', port: 0 });
    await live.readiness.settled;
  });

  afterAll(async () => {
    await live?.close();
  });

  function post(payload: object, signal?: AbortSignal) {
    return fetch(`${base}/v1/roi`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(payload),
      signal,
    });
  }

  it('stops the running task at its next box, keeps the worker, and the next request succeeds', async () => {
    const cancelledBefore = await counter(live, 'roiserve_tasks_cancelled_total', {
      reason: 'client_gone',
      when: 'running',
    });
    const started = live.work.started;
    const threads = live.work.threadIds;
    const client = new AbortController();
    const answer = post(heavy, client.signal).catch((err: unknown) => err);
    await until(() => live.work.started > started);
    await new Promise((resolve) => setTimeout(resolve, 300));
    client.abort();
    expect(await answer).toMatchObject({ name: 'AbortError' });
    await until(
      async () =>
        (await counter(live, 'roiserve_tasks_cancelled_total', { reason: 'client_gone', when: 'running' })) >
        cancelledBefore,
    );
    const requested = await counter(live, 'roiserve_cancelled_task_boxes_total', { count: 'requested' });
    const done = await counter(live, 'roiserve_cancelled_task_boxes_total', { count: 'started' });
    expect(requested).toBe(400);
    expect(done).toBeGreaterThan(0);
    expect(done).toBeLessThan(400);

    const next = await post(small);
    expect(next.status).toBe(200);
    // The same worker thread: the cancelled task did not cost it its life (and its backbone).
    expect(live.work.threadIds).toEqual(threads);
    expect(live.work.replaced).toEqual({ failure: 0, memory: 0, exit: 0 });
  });

  it('drops a queued task whose client went away: it never runs', async () => {
    const queuedBefore = await counter(live, 'roiserve_tasks_cancelled_total', { when: 'queued' });
    const runningBefore = await counter(live, 'roiserve_tasks_cancelled_total', { when: 'running' });
    const started = live.work.started;
    const first = new AbortController();
    const second = new AbortController();
    const running = post(heavy, first.signal).catch((err: unknown) => err);
    await until(() => live.work.started === started + 1);
    const queued = post(heavy, second.signal).catch((err: unknown) => err);
    await until(() => live.work.queued === 1);
    second.abort();
    await until(
      async () => (await counter(live, 'roiserve_tasks_cancelled_total', { when: 'queued' })) > queuedBefore,
    );
    expect(live.work.queued).toBe(0);
    first.abort();
    await until(
      async () =>
        (await counter(live, 'roiserve_tasks_cancelled_total', { when: 'running' })) > runningBefore,
    );
    await Promise.all([running, queued]);
    const next = await post(small);
    expect(next.status).toBe(200);
    // The first heavy task and the small one ran; the queued one never reached a worker.
    expect(live.work.started).toBe(started + 2);
    expect(await counter(live, 'roiserve_tasks_started_total')).toBe(live.work.started);
  });
});

describe('TASK_TIMEOUT_SECONDS', () => {
  let timed: FastifyInstance;

  beforeAll(async () => {
    timed = await buildApp(testConfig({ maxWork: 1e15, workers: 1, taskTimeoutSeconds: 1 }));
    await timed.readiness.settled;
  });

  afterAll(async () => {
    await timed?.close();
  });

  it('stops a task running past the limit and answers 504 with a problem; the next request succeeds', async () => {
    const threads = timed.work.threadIds;
    const r = await timed.inject({ method: 'POST', url: '/v1/roi', payload: heavy });
    expect(r.statusCode).toBe(504);
    expect(r.headers['content-type']).toBe('application/problem+json; charset=utf-8');
    const problem = r.json<{ type: string; detail: string }>();
    expect(problem.type).toBe('urn:roiserve:problem:task-timeout');
    expect(problem.detail).toMatch(
      /ran for over TASK_TIMEOUT_SECONDS \(1 s\) .* stopped after \d+ of 400 boxes/,
    );
    expect(
      await counter(timed, 'roiserve_tasks_cancelled_total', { reason: 'timeout', when: 'running' }),
    ).toBe(1);
    expect(await counter(timed, 'roiserve_cancelled_task_boxes_total', { count: 'started' })).toBeLessThan(
      400,
    );
    const next = await timed.inject({ method: 'POST', url: '/v1/roi', payload: small });
    expect(next.statusCode).toBe(200);
    expect(timed.work.threadIds).toEqual(threads);
  });
});
