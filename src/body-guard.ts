/**
 * A byte limit on a streamed request body (multipart). `@fastify/multipart` bounds each part
 * (`fileSize`, `fieldSize`) but not their sum: 24 fields and 2 files at `BODY_LIMIT_BYTES` each
 * passed, and a 600 MB body was read whole before its 400. The guard counts the raw bytes as they
 * arrive and, the moment the count passes the limit, stops reading (no more bytes are pulled off the
 * socket) and settles {@link BodyGuard.exceeded} with a 413, so the route answers at once.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { TooLargeError } from './errors.js';

/** The 413 for a body over `limit` bytes: the same words as fastify's own body limit (see `src/problem.ts`). */
export function bodyTooLarge(limit: number): TooLargeError {
  return new TooLargeError(
    `the request body is larger than ${limit} bytes`,
    'body',
    `at most ${limit} bytes (BODY_LIMIT_BYTES)`,
  );
}

/** What {@link guardBody} returns. */
export interface BodyGuard {
  /** Never resolves; rejects with {@link bodyTooLarge} once the body passes the limit. */
  exceeded: Promise<never>;
  /**
   * Races `work` against {@link BodyGuard.exceeded}. The loser's later rejection is swallowed
   * (a part stream torn down after the 413 rejects, and nobody waits for it any more).
   */
  race<T>(work: Promise<T>): Promise<T>;
  /** Bytes of the body read so far. */
  readonly bytes: number;
  /** Stops counting (call once the body has been read). */
  dispose(): void;
}

/**
 * Counts the body bytes of `raw` and enforces `limit` on their sum.
 *
 * Call it right after whoever consumes the body has started (piped or listened): the counting
 * `data` listener puts the stream into flowing mode, so bytes emitted before the consumer attached
 * would be lost to it. A declared `Content-Length` over the limit fails at once, before any byte is read.
 *
 * @param raw - the request stream
 * @param limit - most bytes allowed (inclusive)
 */
export function guardBody(raw: IncomingMessage, limit: number): BodyGuard {
  let bytes = 0;
  let reject: (err: Error) => void = () => undefined;
  const exceeded = new Promise<never>((_resolve, rej) => {
    reject = rej;
  });
  // Nobody may be awaiting it at the moment it rejects (between two awaits): not an unhandled rejection.
  exceeded.catch(() => undefined);
  const stop = (): void => {
    raw.off('data', onData);
    // Detach every consumer (busboy) and pause: nothing more is read from the socket, so the
    // rest of a huge body costs nothing (see lingerThenClose for what follows the 413).
    raw.unpipe();
    raw.pause();
    reject(bodyTooLarge(limit));
  };
  const onData = (chunk: Buffer): void => {
    bytes += chunk.length;
    if (bytes > limit) stop();
  };
  const declared = Number(raw.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) stop();
  else raw.on('data', onData);
  return {
    exceeded,
    race<T>(work: Promise<T>): Promise<T> {
      work.catch(() => undefined);
      return Promise.race([work, exceeded]);
    },
    get bytes() {
      return bytes;
    },
    dispose() {
      raw.off('data', onData);
    },
  };
}

/** How long the rest of a refused body is read (and dropped) after the 413, before the close. */
export const LINGER_MS = 1000;

/**
 * What follows a 413 for a body whose rest was not read: once the answer is written, the rest is read
 * and dropped for up to {@link LINGER_MS}; a body that ends by then leaves the connection open for the
 * next request, else the socket is destroyed. Closing at once, with the client's bytes still unread,
 * makes the kernel reset the connection, and a client busy sending may then lose the 413 it was sent.
 *
 * @param raw - the request, paused by {@link guardBody} (or never read)
 * @param res - its response
 */
export function lingerThenClose(raw: IncomingMessage, res: ServerResponse): void {
  res.once('finish', () => {
    if (raw.readableEnded) return;
    const socket = raw.socket;
    const timer = setTimeout(() => socket.destroy(), LINGER_MS);
    timer.unref();
    raw.once('end', () => clearTimeout(timer));
    socket.once('close', () => clearTimeout(timer));
    raw.resume();
  });
}
