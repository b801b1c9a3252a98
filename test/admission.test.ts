/**
 * Big bodies are neither read when the queue cannot take them nor decoded on the HTTP thread
 * (issue 11, item 7; issue 10: multipart binary parts go to the worker as bytes).
 *
 * - The work routes take a place in the queue on arrival (`onRequest`), before the body is read: with
 *   every place taken, a request gets its 503 while its body is still on the wire.
 * - Base64 decoding, `.npy` parsing and the finiteness check run in the worker: with those functions
 *   broken on this (the HTTP) thread, every input form still works and still gets its 400s.
 */
import { connect, type Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Admission } from '../src/admission.js';
import { BusyError } from '../src/errors.js';
import { roiAlign, toCanonicalBoxes } from '../src/ops/index.js';
import { buildApp } from '../src/server.js';
import { encodeFloat32Base64 } from '../src/tensors/base64.js';
import { writeNpy } from '../src/tensors/npy.js';
import { featuresField, randomMap, tensorData, testConfig, testPng } from './support/fixtures.js';

// Module mocks apply to this thread only: the worker (a piscina thread started with tsx) imports the
// real modules. Were the HTTP thread to decode an input, these would turn the request into a 500.
vi.mock('../src/tensors/base64.js', async (original) => ({
  ...(await original<object>()),
  decodeFloat32Base64: () => {
    throw new Error('base64 features decoded on the HTTP thread');
  },
  decodeBase64Bytes: () => {
    throw new Error('base64 image decoded on the HTTP thread');
  },
}));
vi.mock('../src/tensors/npy.js', async (original) => ({
  ...(await original<object>()),
  readNpy: () => {
    throw new Error('.npy parsed on the HTTP thread');
  },
}));

describe('Admission and Slot', () => {
  const busy = () => new BusyError('full');

  it('refuses a place beyond the capacity; a place is free once every holder let go', () => {
    const admission = new Admission(2);
    const a = admission.take(busy);
    const b = admission.take(busy);
    expect(() => admission.take(busy)).toThrow('full');
    // b's request is gone, but its work still runs: the place stays taken until the work ends too.
    const work = b.hold();
    b.release();
    b.release(); // idempotent
    expect(admission.taken).toBe(2);
    work();
    work(); // idempotent
    expect(admission.taken).toBe(1);
    expect(b.free).toBe(true);
    expect(() => b.hold()).toThrow(/already released/);
    a.release();
    expect(admission.taken).toBe(0);
  });
});

let app: FastifyInstance;
let port: number;
const serverSockets: Socket[] = [];

beforeAll(async () => {
  // One worker, no queue: one place in all.
  app = await buildApp(testConfig({ queueLimit: 0 }));
  app.server.on('connection', (socket: Socket) => serverSockets.push(socket));
  await app.listen({ host: '127.0.0.1', port: 0 });
  port = (app.server.address() as { port: number }).port;
  await app.readiness.settled;
});

afterAll(async () => {
  // close() ends idle keep-alive sockets and waits for their clients to close them (so slow readers
  // get whole answers); fetch's pooled sockets and the raw ones above may never do so: cut them.
  for (const socket of serverSockets) socket.destroy();
  await app?.close();
});

async function until(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !condition(); i++) await new Promise((r) => setTimeout(r, 10));
  expect(condition()).toBe(true);
}

/** Opens a socket and sends `head` (+ `body`); resolves with the response head and the socket. */
function rawRequest(head: string, body?: Buffer): { socket: Socket; response: Promise<string> } {
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => undefined);
  const response = new Promise<string>((resolve) => {
    let received = '';
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1');
      const end = received.indexOf('\r\n\r\n');
      if (end >= 0) resolve(received.slice(0, end));
    });
  });
  socket.write(head);
  if (body) socket.write(body);
  return { socket, response };
}

describe('503 before the body is read', () => {
  it('a request the queue cannot take is refused while its body is still on the wire', async () => {
    // A first request takes the one place and stalls in the middle of its body.
    const stalled = rawRequest(
      'POST /v1/roi HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"boxes":',
    );
    await until(() => app.work.admitted === 1);
    // A second one declares 8 MiB and sends them: it is answered before the server reads them.
    const big = Buffer.from(JSON.stringify({ features: { shape: [1, 1, 1, 1], data: 'A'.repeat(8 << 20) } }));
    const before = serverSockets.length;
    const second = rawRequest(
      `POST /v1/roi HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${big.length}\r\n\r\n`,
      big,
    );
    const head = await second.response;
    expect(head).toMatch(/^HTTP\/1\.1 503 /);
    expect(head.toLowerCase()).toContain('retry-after: 1');
    expect(head.toLowerCase()).toContain('content-type: application/problem+json');
    expect(serverSockets[before].bytesRead).toBeLessThan(1 << 20);
    second.socket.destroy();
    // The place comes back when the stalled client goes away.
    stalled.socket.destroy();
    await until(() => app.work.admitted === 0);
  });

  it('the place is held until the response is out, then given back', async () => {
    const fm = randomMap([1, 2, 4, 4], 1);
    const r = await app.inject({
      method: 'POST',
      url: '/v1/roi',
      payload: { features: featuresField(fm), spatialScale: 1, boxes: [[0, 0, 3, 3]], ops: ['pool'] },
    });
    expect(r.statusCode).toBe(200);
    expect(app.work.admitted).toBe(0);
  });
});

describe('inputs are decoded in the worker, not on the HTTP thread', () => {
  const fm = randomMap([2, 3, 6, 5], 4);
  const boxes = [
    [0, 0.5, 1, 4, 5],
    [1, 1, 0, 5, 4],
  ];
  const expected = roiAlign(fm, toCanonicalBoxes(boxes, { format: 'xyxy', batchSize: 2 }), {
    spatialScale: 1,
    outputSize: 2,
  }).data;
  const base = { spatialScale: 1, boxes, outputSize: 2, ops: ['align'] };

  it('JSON features (base64): the outputs of the ops module', async () => {
    const r = await app.inject({
      method: 'POST',
      url: '/v1/roi',
      payload: { ...base, features: featuresField(fm) },
    });
    expect(r.statusCode).toBe(200);
    expect(tensorData(r.json<{ outputs: { align: { data: string } } }>().outputs.align)).toEqual(expected);
  });

  it('multipart features (.npy bytes): the same outputs', async () => {
    const fd = new FormData();
    fd.append('boxes', JSON.stringify(boxes));
    fd.append('spatialScale', '1');
    fd.append('outputSize', '2');
    fd.append('ops', '["align"]');
    fd.append('format', 'npy');
    fd.append('features', new Blob([new Uint8Array(writeNpy(fm.data, fm.shape))]), 'map.npy');
    const r = await fetch(`http://127.0.0.1:${port}/v1/roi`, { method: 'POST', body: fd });
    expect(r.status).toBe(200);
    const bytes = new Uint8Array(await r.arrayBuffer());
    // The .npy header is 128 bytes here; the values follow.
    expect(new Float32Array(bytes.slice(bytes.length - expected.byteLength).buffer)).toEqual(expected);
  });

  it('images as base64 JSON and as multipart bytes give the same features', async () => {
    const png = await testPng(64, 48);
    const json = await app.inject({
      method: 'POST',
      url: '/v1/features',
      payload: { image: png.toString('base64'), format: 'npy' },
    });
    expect(json.statusCode).toBe(200);
    const fd = new FormData();
    fd.append('format', 'npy');
    fd.append('image', new Blob([new Uint8Array(png)]), 'x.png');
    const multipart = await fetch(`http://127.0.0.1:${port}/v1/features`, { method: 'POST', body: fd });
    expect(multipart.status).toBe(200);
    expect(Buffer.from(await multipart.arrayBuffer()).equals(json.rawPayload)).toBe(true);
    const roi = new FormData();
    roi.append('boxes', '[[0, 0, 32, 32]]');
    roi.append('image', new Blob([new Uint8Array(png)]), 'x.png');
    expect((await fetch(`http://127.0.0.1:${port}/v1/roi`, { method: 'POST', body: roi })).status).toBe(200);
  });

  it('a .npy map, whose shape only the worker reads, is still held to MAX_WORK (413)', async () => {
    const map = randomMap([1, 1, 16, 16], 2);
    const fd = new FormData();
    fd.append('boxes', JSON.stringify(Array.from({ length: 2000 }, () => [0, 0, 16, 16])));
    fd.append('spatialScale', '1');
    fd.append('mode', 'max');
    fd.append('outputSize', '64');
    fd.append('samplingRatio', '64');
    fd.append('features', new Blob([new Uint8Array(writeNpy(map.data, map.shape))]), 'map.npy');
    const r = await fetch(`http://127.0.0.1:${port}/v1/roi`, { method: 'POST', body: fd });
    expect(r.status).toBe(413);
    expect(((await r.json()) as { detail: string }).detail).toMatch(/MAX_WORK/);
  });

  it('the worker gives the 400s the HTTP thread gave, naming the same fields', async () => {
    const cases: Array<[string, object, string, RegExp]> = [
      [
        'NaN',
        { features: { shape: [1, 1, 1, 2], data: encodeFloat32Base64(Float32Array.from([1, NaN])) } },
        'features.data[1]',
        /NaN/,
      ],
      ['length', { features: { shape: [1, 1, 2, 2], data: 'AAAAAA==' } }, 'features.data', /needs 4/],
      ['not base64', { features: { shape: [1, 1, 1, 1], data: '@@@@' } }, 'features.data', /base64/],
      ['batch index', { features: featuresField(randomMap([1, 1, 2, 2])) }, 'boxes[1][0]', /N = 1/],
    ];
    for (const [name, input, field, detail] of cases) {
      const r = await app.inject({ method: 'POST', url: '/v1/roi', payload: { ...base, ...input } });
      expect(r.statusCode, name).toBe(400);
      const problem = r.json<{ detail: string; errors: { field: string }[] }>();
      expect(problem.errors[0].field, name).toBe(field);
      expect(problem.detail, name).toMatch(detail);
    }
    const image = await app.inject({
      method: 'POST',
      url: '/v1/features',
      payload: { image: '!!not base64!!' },
    });
    expect(image.statusCode).toBe(400);
    expect(image.json<{ errors: { field: string }[] }>().errors[0].field).toBe('image');
    const fd = new FormData();
    fd.append('boxes', '[]');
    fd.append('spatialScale', '1');
    fd.append('features', new Blob([Buffer.from('not npy')]), 'a.npy');
    const npy = await fetch(`http://127.0.0.1:${port}/v1/roi`, { method: 'POST', body: fd });
    expect(npy.status).toBe(400);
    expect(((await npy.json()) as { errors: { field: string }[] }).errors[0].field).toBe('features');
  });
});
