/**
 * Answers to clients that do not read are not kept (issue 11, item 5): over real HTTP (127.0.0.1,
 * port 0), a client that asks for a large answer and never reads it has its socket destroyed after
 * WRITE_TIMEOUT_SECONDS without write progress, and the bytes of answers in flight return to 0; while
 * they are at MAX_RESPONSE_BYTES_IN_FLIGHT, new work gets 503 on arrival.
 */
import { connect, type Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BodyBytes, chargedBodyBytes } from '../src/admission.js';
import { AnswerBytes } from '../src/http/answers.js';
import { buildApp } from '../src/server.js';
import { readNpy } from '../src/tensors/npy.js';
import { featuresField, randomMap, testConfig } from './support/fixtures.js';

describe('AnswerBytes', () => {
  it('counts answers until each is released (once), and is full at the bound', () => {
    const budget = new AnswerBytes(100);
    const a = budget.take(60);
    expect(budget.full).toBe(false);
    const b = budget.take(40);
    expect([budget.inFlight, budget.answers, budget.full]).toEqual([100, 2, true]);
    a();
    a();
    expect([budget.inFlight, budget.answers, budget.full]).toEqual([40, 1, false]);
    b();
    expect(budget.inFlight).toBe(0);
  });
});

let app: FastifyInstance;
let port: number;
/** The server side of every accepted connection. */
const serverSockets: Socket[] = [];

beforeAll(async () => {
  app = await buildApp(
    testConfig({
      writeTimeoutSeconds: 1,
      maxResponseBytesInFlight: 4 * 1024 * 1024,
      maxBodyBytesInFlight: 1024 * 1024,
      queueLimit: 4,
    }),
  );
  app.server.on('connection', (socket: Socket) => serverSockets.push(socket));
  await app.listen({ host: '127.0.0.1', port: 0 });
  port = (app.server.address() as { port: number }).port;
});

afterAll(async () => {
  await app?.close();
});

async function until(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 1000 && !condition(); i++) await new Promise((r) => setTimeout(r, 20));
  expect(condition()).toBe(true);
}

// A .npy answer of 2000 · 16 · 16 · 16 float32 = 32 MiB: far more than the socket and the kernel buffer.
const fm = randomMap([1, 16, 16, 16], 7);
const bigRequest = JSON.stringify({
  features: featuresField(fm),
  spatialScale: 1,
  boxes: Array.from({ length: 2000 }, (_, i) => [i % 8, i % 8, 15, 15]),
  ops: ['align'],
  outputSize: 16,
  samplingRatio: 1,
  format: 'npy',
});
const ANSWER_BYTES = 2000 * 16 * 16 * 16 * 4;

/** Sends the big request on a raw socket that never reads a byte of the answer. */
function nonReadingClient(): { socket: Socket } {
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => undefined);
  socket.pause(); // never read: the server's writes back up
  socket.write(
    `POST /v1/roi HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(bigRequest)}\r\n\r\n`,
  );
  socket.write(bigRequest);
  return { socket };
}

describe('answers to clients that do not read', () => {
  it('are counted, hold off new work with 503, and are dropped after WRITE_TIMEOUT_SECONDS', async () => {
    const client = nonReadingClient();
    // The answer is computed and being written: counted whole.
    await until(() => app.answers.inFlight === ANSWER_BYTES + 128); // + the .npy header

    // Over MAX_RESPONSE_BYTES_IN_FLIGHT: new work is refused on arrival.
    const busy = await app.inject({
      method: 'POST',
      url: '/v1/roi',
      payload: { features: featuresField(randomMap([1, 1, 2, 2])), spatialScale: 1, boxes: [] },
    });
    expect(busy.statusCode).toBe(503);
    expect(busy.headers['retry-after']).toBe('1');
    expect(busy.json<{ detail: string }>().detail).toMatch(/MAX_RESPONSE_BYTES_IN_FLIGHT/);
    const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(metrics).toContain(`roiserve_answer_bytes_in_flight ${ANSWER_BYTES + 128}`);

    // The client never reads: after the write timeout the server destroys its socket and drops the answer.
    await until(() => app.answers.inFlight === 0 && app.answers.answers === 0);
    expect(serverSockets.at(-1)?.destroyed).toBe(true);
    expect(client.socket.bytesRead).toBeLessThan(ANSWER_BYTES);
    client.socket.destroy();

    const ok = await app.inject({
      method: 'POST',
      url: '/v1/roi',
      payload: { features: featuresField(randomMap([1, 1, 2, 2])), spatialScale: 1, boxes: [] },
    });
    expect(ok.statusCode).toBe(200);
  });

  it('a client that reads gets the whole answer, with its Content-Length, and nothing stays counted', async () => {
    const r = await fetch(`http://127.0.0.1:${port}/v1/roi`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: bigRequest,
    });
    expect(r.status).toBe(200);
    expect(r.headers.get('content-length')).toBe(String(ANSWER_BYTES + 128));
    const npy = readNpy(new Uint8Array(await r.arrayBuffer()));
    expect(npy.shape).toEqual([2000, 16, 16, 16]);
    await until(() => app.answers.inFlight === 0);
  });
});

describe('answers to clients that read slowly', () => {
  it('keep their connection while each pause is shorter than WRITE_TIMEOUT_SECONDS, however long the whole takes', async () => {
    // Reads 4 MiB, pauses 0.3 s (the timeout is 1 s: 0.7 s of margin for a loaded machine), and so on:
    // the 32 MiB answer takes 2–3 s in all. Progress is each chunk the socket takes, so the timer
    // restarts within every burst; an answer written in one piece would show no progress until its
    // end and be cut.
    const BURST = 4 * 1024 * 1024;
    const socket = connect(port, '127.0.0.1');
    let received = 0;
    let text = '';
    let burstEnd = BURST;
    let burstDone: () => void = () => undefined;
    socket.on('data', (d: Buffer) => {
      if (text.length < 4096) text += d.subarray(0, 4096).toString('latin1');
      received += d.length;
      if (received >= burstEnd) {
        socket.pause();
        burstDone();
      }
    });
    let open = true;
    const closed = new Promise<void>((resolve) =>
      socket.once('close', () => {
        open = false;
        resolve();
      }),
    );
    socket.write(
      `POST /v1/roi HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(bigRequest)}\r\n\r\n`,
    );
    socket.write(bigRequest);
    let bursts = 0;
    while (open) {
      await Promise.race([new Promise<void>((resolve) => (burstDone = resolve)), closed]);
      bursts++;
      burstEnd = received + BURST;
      await new Promise((r) => setTimeout(r, 300));
      socket.resume();
    }
    expect(text).toMatch(/^HTTP\/1\.1 200/);
    const headerBytes = text.indexOf('\r\n\r\n') + 4;
    expect(received - headerBytes).toBe(ANSWER_BYTES + 128);
    // It took 8 pauses of 0.3 s, longer than one timeout in all (else the test shows nothing).
    expect(bursts).toBeGreaterThanOrEqual(8);
    await until(() => app.answers.inFlight === 0);
  });
});

describe('bodies in flight (MAX_BODY_BYTES_IN_FLIGHT)', () => {
  it('BodyBytes: a body that would pass the bound is refused, unless it is the only one', () => {
    const bodies = new BodyBytes(100);
    const alone = bodies.take(500);
    expect(alone).toBeDefined();
    expect(bodies.take(1)).toBeUndefined();
    alone?.();
    const a = bodies.take(60);
    expect(bodies.take(50)).toBeUndefined();
    expect(bodies.take(40)).toBeDefined();
    a?.();
    expect(chargedBodyBytes({ 'content-length': '10' }, 32)).toBe(10);
    expect(chargedBodyBytes({ 'content-length': '1000' }, 32)).toBe(32);
    expect(chargedBodyBytes({ 'transfer-encoding': 'chunked' }, 32)).toBe(32);
  });

  it('a request whose body would pass it gets 503 before the body is read; small ones still run', async () => {
    // A client declares 900 KB and stalls after a few bytes: its body is charged in full.
    const stalled = connect(port, '127.0.0.1');
    stalled.on('error', () => undefined);
    stalled.write(
      'POST /v1/roi HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 900000\r\n\r\n{"boxes":',
    );
    await until(() => app.bodies.inFlight === 900_000);
    const big = await app.inject({
      method: 'POST',
      url: '/v1/roi',
      payload: { features: { shape: [1, 1, 1, 1], data: 'A'.repeat(200_000) }, spatialScale: 1, boxes: [] },
    });
    expect(big.statusCode).toBe(503);
    expect(big.headers['retry-after']).toBe('1');
    expect(big.json<{ detail: string }>().detail).toMatch(/MAX_BODY_BYTES_IN_FLIGHT/);
    const small = await app.inject({
      method: 'POST',
      url: '/v1/roi',
      payload: { features: featuresField(randomMap([1, 1, 2, 2])), spatialScale: 1, boxes: [] },
    });
    expect(small.statusCode).toBe(200);
    stalled.destroy();
    await until(() => app.bodies.inFlight === 0);
  });
});
