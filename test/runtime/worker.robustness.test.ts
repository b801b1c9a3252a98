/**
 * Hostile images and dying workers (issue 11, items 1 and 10): what the backbone is given is bounded
 * by its side lengths and aspect ratio, not only by pixels, and a request that poisons or kills a
 * worker costs that request alone: the worker is replaced, `/readyz` says 503 until the replacement
 * has warmed its backbone, and later requests are served.
 */
import { crc32, deflateSync } from 'node:zlib';
import type { FastifyInstance } from 'fastify';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { WorkerFailure } from '../../src/runtime/pool.js';
import type { RoiTask } from '../../src/core/task.js';
import { buildApp } from '../../src/server.js';
import { testConfig, testPng } from '../support/fixtures.js';
import { useApp } from '../support/app.js';

const server = useApp();

const boxes = [[0, 0, 0, 32, 32]];

function roiWithImage(image: Buffer) {
  return server.app.inject({
    method: 'POST',
    url: '/v1/roi',
    payload: { image: image.toString('base64'), boxes, outputSize: 2 },
  });
}

/**
 * A black RGB PNG of any size, written by hand: zlib shrinks its rows of zeros to almost nothing, and
 * this takes a fraction of the time sharp takes to encode a 16-million-row image.
 */
function blackPng(width: number, height: number): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const out = Buffer.alloc(12 + data.length);
    out.writeUInt32BE(data.length, 0);
    out.write(type, 4, 'ascii');
    data.copy(out, 8);
    out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
    return out;
  };
  const header = Buffer.alloc(13); // bit depth 8, colour type 2 (RGB), no interlace
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8;
  header[9] = 2;
  return Buffer.concat([
    Buffer.from('89504e470d0a1a0a', 'hex'),
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(Buffer.alloc((width * 3 + 1) * height))), // filter byte + RGB per row
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** A 64×48 PNG through `/v1/roi`: the service still answers images correctly. */
async function expectImagesServed(): Promise<void> {
  const r = await roiWithImage(await testPng(64, 48));
  expect(r.statusCode).toBe(200);
  expect(r.json().featureMap.shape).toEqual([1, 256, 3, 4]);
}

describe('images the backbone must not be given', () => {
  it('refuses a 47 KB PNG of 16000000×1 (and 1×16000000) from its header with 400; the service lives on', async () => {
    for (const [width, height] of [
      [16_000_000, 1],
      [1, 16_000_000],
    ]) {
      const png = blackPng(width, height);
      expect(png.length).toBeLessThan(64 * 1024);
      expect(await sharp(png).metadata()).toMatchObject({ width, height }); // a valid image
      const r = await roiWithImage(png);
      // Was a 500 from tfjs-wasm's FusedConv2D ("null function or function signature mismatch"),
      // and the next image request crashed the process.
      expect(r.statusCode).toBe(400);
      expect(r.json()).toMatchObject({
        status: 400,
        detail: expect.stringMatching(
          new RegExp(`${width}×${height}: its aspect ratio 16000000:1 is over the backbone's limit of 32:1`),
        ),
        errors: [{ field: 'image', expected: expect.stringMatching(/at most 32 times its shorter side/) }],
      });
      await expectImagesServed();
    }
  });

  it('refuses a side over 8192 with 413 suggesting maxSide, before decoding', async () => {
    const png = await sharp({ create: { width: 8200, height: 300, channels: 3, background: '#808080' } })
      .png()
      .toBuffer();
    const r = await roiWithImage(png);
    expect(r.statusCode).toBe(413);
    expect(r.json()).toMatchObject({
      detail: expect.stringMatching(
        /8200×300: its longer side is over the backbone's limit of 8192 pixels.*maxSide/,
      ),
      errors: [{ field: 'image' }],
    });
  });

  it('takes MAX_IMAGE_ASPECT from the configuration', async () => {
    const strict = await buildApp(testConfig({ maxImageAspect: 2 }));
    try {
      await strict.readiness.settled;
      const inject = async (width: number, height: number) =>
        strict.inject({
          method: 'POST',
          url: '/v1/roi',
          payload: { image: (await testPng(width, height)).toString('base64'), boxes, outputSize: 2 },
        });
      expect((await inject(64, 32)).statusCode).toBe(200);
      const r = await inject(65, 32);
      expect(r.statusCode).toBe(400);
      expect(r.json().detail).toMatch(/limit of 2:1/);
    } finally {
      await strict.close();
    }
  });

  it("refuses a 268-byte JPEG whose header claims 4000×4000 (libjpeg's 'premature end of data segment') with 400", async () => {
    const full = await sharp({ create: { width: 4000, height: 4000, channels: 3, background: '#336699' } })
      .jpeg()
      .toBuffer();
    const sos = full.indexOf(Buffer.from([0xff, 0xda]));
    const jpeg = Buffer.concat([
      full.subarray(0, sos + 2 + full.readUInt16BE(sos + 2) + 3),
      Buffer.from([0xff, 0xd9]),
    ]);
    expect(jpeg.length).toBe(268);
    const r = await roiWithImage(jpeg);
    // Was 200 after seconds of backbone work on 16 MP of grey.
    expect(r.statusCode).toBe(400);
    expect(r.json()).toMatchObject({
      detail: expect.stringMatching(/truncated or corrupt/),
      errors: [{ field: 'image' }],
    });
  });
});

/** Polls `/readyz` until it answers `status` (the test's own timeout bounds the wait). */
async function readyzUntil(target: FastifyInstance, status: number): Promise<Record<string, unknown>> {
  for (;;) {
    const r = await target.inject({ method: 'GET', url: '/readyz' });
    if (r.statusCode === status) return r.json();
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('workers that die or outgrow their memory are replaced', () => {
  it('a killed worker: /readyz is 503 until its replacement has warmed its backbone, then requests succeed', async () => {
    const [before] = server.app.work.threadIds;
    expect(await server.app.work.terminate(before)).toBe(true);
    // Was: nothing noticed, /readyz stayed 200 (and, with piscina's replacement, nobody waited for it).
    const r = await server.app.inject({ method: 'GET', url: '/readyz' });
    expect(r.statusCode).toBe(503);
    expect(r.json()).toMatchObject({ status: 'replacing', workers: 1, readyWorkers: 0 });
    expect(await readyzUntil(server.app, 200)).toMatchObject({ status: 'ready', readyWorkers: 1 });
    expect(server.app.work.threadIds).toHaveLength(1);
    expect(server.app.work.threadIds[0]).not.toBe(before);
    expect(server.app.work.replaced.exit).toBe(1);
    await expectImagesServed();
  }, 60_000);

  it('a worker that fails unexpectedly (a 500, as a wasm abort gives) answers, then is replaced', async () => {
    await readyzUntil(server.app, 200);
    const [before] = server.app.work.threadIds;
    const failed = server.app.work.replaced.failure;
    // Not a request a client can send: a task the pipeline has no branch for throws a plain Error.
    const broken = { boxes: { data: new Float32Array(0), count: 0 }, params: {}, includeImage: false };
    await expect(server.app.work.roi(broken as unknown as RoiTask)).rejects.toBeInstanceOf(WorkerFailure);
    expect(server.app.work.replaced.failure).toBe(failed + 1);
    expect(await readyzUntil(server.app, 200)).toMatchObject({ status: 'ready', readyWorkers: 1 });
    expect(server.app.work.threadIds[0]).not.toBe(before);
    await expectImagesServed();
  }, 60_000);

  it('WORKER_MAX_MEMORY_MB: a worker past it after a big image answers, then is replaced; the next request works', async () => {
    // A fresh worker holds ~0.15 GB (heap + wasm); a 2048² image grows tfjs-wasm's memory to ~0.45 GB.
    // BACKBONE_ENGINE=tfjs: the growth is tfjs-wasm's (ONNX Runtime frees its buffers after each run).
    const small = await buildApp(testConfig({ workerMaxMemoryMb: 300, backboneEngine: 'tfjs' }));
    try {
      await small.readiness.settled;
      const [before] = small.work.threadIds;
      const image = (await testPng(2048, 2048)).toString('base64');
      const r = await small.inject({
        method: 'POST',
        url: '/v1/roi',
        payload: { image, boxes, outputSize: 2 },
      });
      expect(r.statusCode).toBe(200);
      expect(small.work.replaced.memory).toBe(1);
      expect(await readyzUntil(small, 200)).toMatchObject({ readyWorkers: 1 });
      expect(small.work.threadIds[0]).not.toBe(before);
      const again = await small.inject({
        method: 'POST',
        url: '/v1/roi',
        payload: { image: (await testPng(64, 48)).toString('base64'), boxes, outputSize: 2 },
      });
      expect(again.statusCode).toBe(200);
      // A small image keeps the fresh worker under the bound: it stays.
      expect(small.work.replaced.memory).toBe(1);
    } finally {
      await small.close();
    }
  }, 120_000);
});
