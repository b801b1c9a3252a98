/**
 * Large answers are freed as soon as they are written (`src/runtime/free-now.ts`), not left for a
 * full garbage collection: `freeNow` detaches only a large buffer its view alone covers, and
 * `sendAnswer` frees the body once the client has it all, and never while a socket may hold it.
 */
import Fastify from 'fastify';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AnswerBytes, sendAnswer } from '../../src/http/answers.js';
import { FREE_NOW_BYTES, freeNow } from '../../src/runtime/free-now.js';

describe('freeNow', () => {
  it('releases a large buffer its view covers whole: every view on it reads empty', () => {
    const data = new Float32Array(FREE_NOW_BYTES / 4);
    const other = new Uint8Array(data.buffer, 8, 8);
    expect(freeNow(data)).toBe(true);
    expect([data.buffer.byteLength, data.length, other.length]).toEqual([0, 0, 0]);
  });

  it('leaves small buffers, views on part of a buffer, shared memory and nothing alone', () => {
    const small = new Float32Array(16);
    const whole = new Float32Array(FREE_NOW_BYTES / 4 + 1);
    const part = whole.subarray(1);
    const shared = new Float32Array(new SharedArrayBuffer(FREE_NOW_BYTES));
    for (const view of [small, part, shared]) expect(freeNow(view)).toBe(false);
    expect(freeNow(undefined)).toBe(false);
    expect([small.length, whole.length, part.length, shared.length]).toEqual([
      16,
      FREE_NOW_BYTES / 4 + 1,
      FREE_NOW_BYTES / 4,
      FREE_NOW_BYTES / 4,
    ]);
  });
});

describe('sendAnswer frees the body', () => {
  const app = Fastify();
  const sent: Buffer[] = [];
  let url = '';
  beforeAll(async () => {
    const options = { budget: new AnswerBytes(1e9), writeTimeoutMs: 300 };
    app.get('/answer', (_request, reply) => {
      const body = Buffer.alloc(8 * FREE_NOW_BYTES, 7);
      sent.push(body);
      return sendAnswer(reply, body, options);
    });
    url = await app.listen({ host: '127.0.0.1', port: 0 });
  });
  afterAll(() => app.close());

  it('once the client has all of it', async () => {
    const r = await fetch(`${url}/answer`);
    const bytes = new Uint8Array(await r.arrayBuffer());
    expect(bytes.length).toBe(8 * FREE_NOW_BYTES);
    expect(bytes.every((b) => b === 7)).toBe(true);
    await expect.poll(() => sent.at(-1)?.buffer.byteLength).toBe(0);
  });

  it('not when the client went away before the end (the socket may still hold chunks)', async () => {
    const socket = connect(Number(new URL(url).port), '127.0.0.1');
    socket.on('error', () => undefined);
    socket.pause(); // reads nothing
    socket.write('GET /answer HTTP/1.1\r\nHost: x\r\n\r\n');
    await expect.poll(() => sent.length).toBe(2);
    socket.destroy();
    // The write timeout (300 ms) or the reset closes the response; the body stays as it was.
    await new Promise((r) => setTimeout(r, 600));
    expect(sent[1].buffer.byteLength).toBe(8 * FREE_NOW_BYTES);
  });
});
