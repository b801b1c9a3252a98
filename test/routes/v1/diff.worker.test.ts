/**
 * `POST /v1/diff` renders in the worker, never on the HTTP thread (issue 11, item 11: a sheet rendered in
 * the route blocked `/healthz` for a second). Three proofs: the route's import graph does not reach the
 * renderer; with the renderer broken on this (the HTTP) thread a diff still succeeds, because the worker
 * thread loads its own copy; and a listening server answers `/healthz` while a large diff is in flight.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { buildApp } from '../../../src/server.js';
import { featuresField, randomMap, testConfig } from '../../support/fixtures.js';

// Module mocks apply to this thread only: the worker (a piscina thread started with tsx) imports the real
// renderer. Were the route to render, these would turn every diff into a 500.
vi.mock('../../../src/imaging/render-sheet.js', () => {
  const refuse = () => {
    throw new Error('rendered on the HTTP thread');
  };
  return { renderDiff: refuse, diffStats: refuse, renderOverlay: refuse, rectDifference: refuse };
});
vi.mock('../../../src/imaging/render.js', async (original) => ({
  ...(await original<object>()),
  toPng: () => {
    throw new Error('PNG encoded on the HTTP thread');
  },
}));

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

/** Files reachable from `file` by runtime imports (`import type` / `export type` are erased by tsc). */
function runtimeImports(file: string, seen = new Set<string>()): Set<string> {
  if (seen.has(file)) return seen;
  seen.add(file);
  const source = readFileSync(file, 'utf8');
  const pattern = /^(?:import|export)\s+(?!type\b)(?:[^'";]*?\sfrom\s+)?'(\.[^']+)'/gms;
  for (const [, spec] of source.matchAll(pattern)) {
    runtimeImports(resolve(dirname(file), spec.replace(/\.js$/, '.ts')), seen);
  }
  return seen;
}

let app: FastifyInstance;
let base: string;

beforeAll(async () => {
  app = await buildApp(testConfig());
  base = await app.listen({ host: '127.0.0.1', port: 0 });
  await app.readiness.settled;
});

afterAll(async () => {
  await app?.close();
});

const fm = randomMap([1, 8, 16, 16], 3);
const small = {
  features: featuresField(fm),
  spatialScale: 1 / 32,
  imageSize: [512, 512],
  boxes: [
    [296, 192, 496, 337],
    [10, 10, 200, 120],
  ],
  outputSize: 3,
};

describe('POST /v1/diff renders in the worker', () => {
  it('the route does not import the renderer, the fonts or the diff body encoder', () => {
    const reached = [...runtimeImports(resolve(root, 'routes/v1/diff.ts'))].map((f) =>
      f.slice(root.length + 1),
    );
    expect(reached).toContain('src/core/diff-options.ts');
    expect(reached).toContain('src/core/prepare.ts');
    for (const renderer of [
      'src/imaging/render-sheet.ts',
      'src/imaging/render.ts',
      'src/imaging/text.ts',
      'src/imaging/diff-body.ts',
    ]) {
      expect(reached).not.toContain(renderer);
    }
  });

  it('succeeds, PNG and JSON, with the renderer broken on the HTTP thread', async () => {
    const png = await app.inject({ method: 'POST', url: '/v1/diff', payload: small });
    expect(png.statusCode, png.body).toBe(200);
    expect(png.headers['content-type']).toBe('image/png');
    expect((await sharp(png.rawPayload).metadata()).format).toBe('png');
    const json = await app.inject({ method: 'POST', url: '/v1/diff', payload: { ...small, format: 'json' } });
    expect(json.statusCode, json.body).toBe(200);
    const body = json.json<{ images: { rows: string[] }; timings: Record<string, number> }>();
    expect(body.images.rows).toHaveLength(2);
    expect(body.timings.encode).toBeGreaterThan(0);
    expect(json.headers['server-timing']).toMatch(/encode;dur=/);
  });

  it('still refuses a channel the feature map lacks, naming the field', async () => {
    const r = await app.inject({ method: 'POST', url: '/v1/diff', payload: { ...small, channel: 8 } });
    expect(r.statusCode).toBe(400);
    expect(r.json<{ errors: { field: string }[] }>().errors[0].field).toBe('channel');
  });

  it('/healthz answers while a large diff renders', async () => {
    // 32 rows of 14×14 panels over 256 channels, plus the JSON's per-row PNGs: a second of rendering.
    const big = randomMap([1, 256, 40, 40], 7);
    const boxes = Array.from({ length: 32 }, (_, i) => [i * 8, i * 6, 400 + i * 8, 300 + i * 6]);
    const order: string[] = [];
    const heavy = fetch(`${base}/v1/diff`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        features: featuresField(big),
        spatialScale: 1 / 16,
        boxes,
        outputSize: 14,
        maxBoxes: 32,
        format: 'json',
      }),
    }).then(async (r) => {
      await r.arrayBuffer();
      order.push(`diff:${r.status}`);
    });
    // Wait until the diff is in the worker, then ask for /healthz.
    for (let i = 0; i < 500 && app.work.inFlight === 0; i++) await new Promise((res) => setTimeout(res, 10));
    expect(app.work.inFlight).toBeGreaterThan(0);
    const health = await fetch(`${base}/healthz`);
    order.push(`healthz:${health.status}`);
    await heavy;
    expect(order).toEqual(['healthz:200', 'diff:200']);
  });
});
