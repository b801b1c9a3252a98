/**
 * The whole multipart body is bounded by BODY_LIMIT_BYTES, not only each part: a body over the limit
 * gets a 413 naming `body`, and the server stops reading it (the socket's `bytesRead` stays near the
 * limit however much the client sends). Over real HTTP (127.0.0.1, port 0), since `inject` has no socket.
 */
import { connect, type Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/server.js';
import { testConfig } from './support/fixtures.js';

const LIMIT = 1024 * 1024;
let app: FastifyInstance;
let port: number;
/** The server side of every accepted connection, to read its `bytesRead`. */
const serverSockets: Socket[] = [];
let readAt413 = 0;

beforeAll(async () => {
  app = await buildApp(testConfig({ bodyLimitBytes: LIMIT }));
  app.server.on('connection', (socket: Socket) => serverSockets.push(socket));
  // What the server had read of the body when it sent its 413 (after it, the rest is read and dropped
  // for a short linger before the close).
  app.addHook('onSend', async (request, reply, payload) => {
    if (reply.statusCode === 413) readAt413 = request.raw.socket.bytesRead;
    return payload;
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  port = (app.server.address() as { port: number }).port;
});

afterAll(async () => {
  await app?.close();
});

const BOUNDARY = 'roiserveboundary';

/** One multipart file part (headers, `size` bytes of content, trailing CRLF). */
function filePart(name: string, size: number): Buffer {
  const head = Buffer.from(
    `--${BOUNDARY}\r\nContent-Disposition: form-data; name="${name}"; filename="${name}.bin"\r\n` +
      'Content-Type: application/octet-stream\r\n\r\n',
  );
  return Buffer.concat([head, Buffer.alloc(size, 7), Buffer.from('\r\n')]);
}

/**
 * Sends `body` to POST /v1/roi on a raw socket with chunked transfer encoding (no Content-Length:
 * only counting the bytes can catch it) and resolves with the response head once it arrives.
 * The client never stops writing by itself: only the server's answer ends the exchange.
 */
function sendChunked(body: Buffer): Promise<{ head: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let received = '';
    socket.on('error', () => undefined); // the server closes with unread bytes: a reset is expected
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1');
      const end = received.indexOf('\r\n\r\n');
      if (end < 0) return;
      resolve({ head: received.slice(0, end) });
      socket.destroy();
    });
    socket.on('close', () => reject(new Error(`closed without a response: ${received}`)));
    socket.write(
      'POST /v1/roi HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n' +
        `Content-Type: multipart/form-data; boundary=${BOUNDARY}\r\n\r\n`,
    );
    for (let at = 0; at < body.length; at += 64 * 1024) {
      const chunk = body.subarray(at, at + 64 * 1024);
      socket.write(`${chunk.length.toString(16)}\r\n`);
      socket.write(chunk);
      socket.write('\r\n');
    }
    socket.write('0\r\n\r\n');
  });
}

describe('the multipart body as a whole is bounded by BODY_LIMIT_BYTES', () => {
  it('two parts, each under the limit, together over it: 413 naming body (Content-Length known)', async () => {
    const fd = new FormData();
    fd.append('boxes', '[]');
    fd.append('image', new Blob([new Uint8Array(LIMIT - 4096)]), 'a.png');
    fd.append('features', new Blob([new Uint8Array(LIMIT - 4096)]), 'b.npy');
    const r = await fetch(`http://127.0.0.1:${port}/v1/roi`, { method: 'POST', body: fd });
    expect(r.status).toBe(413);
    expect(r.headers.get('content-type')).toBe('application/problem+json; charset=utf-8');
    expect(await r.json()).toMatchObject({
      type: 'urn:roiserve:problem:too-large',
      status: 413,
      detail: `the request body is larger than ${LIMIT} bytes`,
      errors: [{ field: 'body', expected: `at most ${LIMIT} bytes (BODY_LIMIT_BYTES)` }],
    });
  });

  it('a chunked body is counted as it arrives: 413, and reading stops near the limit', async () => {
    // 16 × the limit in parts the plugin's per-part limits let through (two files, then text fields).
    const parts = [filePart('image', LIMIT - 4096), filePart('features', LIMIT - 4096)];
    const field = Buffer.alloc(LIMIT - 4096, 'a');
    for (let i = 0; i < 14; i++) {
      parts.push(
        Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="f${i}"\r\n\r\n`),
        field,
        Buffer.from('\r\n'),
      );
    }
    parts.push(Buffer.from(`--${BOUNDARY}--\r\n`));
    readAt413 = 0;
    const { head } = await sendChunked(Buffer.concat(parts));
    expect(head).toMatch(/^HTTP\/1\.1 413 /);
    // The server read the limit and what was in flight when it stopped, never the 16 MiB sent.
    expect(readAt413).toBeGreaterThan(LIMIT);
    expect(readAt413).toBeLessThan(LIMIT + 2 * 1024 * 1024);
    // The client goes on sending: after a short linger the server closes the connection.
    const server = serverSockets.at(-1) as Socket;
    for (let i = 0; i < 500 && !server.destroyed; i++) await new Promise((r) => setTimeout(r, 20));
    expect(server.destroyed).toBe(true);
  });

  it('past the file-part count (a 9th images part): 413 naming images; a client that keeps sending is cut', async () => {
    // Nine small parts (well within BODY_LIMIT_BYTES), then a text field the client never ends
    // (chunked): after the 413 only the server can end the exchange, by closing the connection.
    const socket = connect(port, '127.0.0.1');
    socket.on('error', () => undefined);
    let received = '';
    let closed = false;
    socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
    socket.on('close', () => (closed = true));
    const chunk = (data: Buffer) => {
      if (!closed)
        socket.write(
          Buffer.concat([Buffer.from(`${data.length.toString(16)}\r\n`), data, Buffer.from('\r\n')]),
        );
    };
    socket.write(
      'POST /v1/roi HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n' +
        `Content-Type: multipart/form-data; boundary=${BOUNDARY}\r\n\r\n`,
    );
    for (let i = 0; i < 9; i++) chunk(filePart('images', 64));
    chunk(Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="f"\r\n\r\n`));
    for (let i = 0; i < 250 && !closed; i++) {
      chunk(Buffer.alloc(16 * 1024, 'a'));
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(received).toMatch(/^HTTP\/1\.1 413 /);
    expect(received).toContain('"field":"images"');
    // Before, only a 413 naming `body` closed it; this one (naming `images`) read on for as long as
    // the client sent.
    expect(closed).toBe(true);
    socket.destroy();
  });

  it('a multipart body within the limit is still read and answered', async () => {
    const fd = new FormData();
    fd.append('boxes', '[]');
    const r = await fetch(`http://127.0.0.1:${port}/v1/roi`, { method: 'POST', body: fd });
    expect(r.status).toBe(400);
    expect(((await r.json()) as { errors: { field: string }[] }).errors[0].field).toBe('image');
  });
});
