/**
 * Sending work answers without letting clients that do not read hold them for ever (issue 11, item 5).
 *
 * Fourteen clients asking for a 341 MB JSON answer each and never reading it took RSS from 1.6 to
 * 5.8 GB: each answer sat whole in its socket's write queue for as long as the socket lived. Now:
 *
 * - an answer is written in chunks ({@link sendAnswer}), each one only when the socket has taken the
 *   previous (back-pressure), so every chunk handed over is a sign of progress;
 * - a socket that makes no write progress for `WRITE_TIMEOUT_SECONDS` is destroyed, which drops its
 *   queued bytes and the answer with them;
 * - the bytes of answers being written are counted ({@link AnswerBytes}); while they are at
 *   `MAX_RESPONSE_BYTES_IN_FLIGHT`, new work is refused with 503 on arrival (see `src/admission.ts`).
 */
import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { EncodedWork } from '../runtime/protocol.js';
import { freeNow } from '../runtime/free-now.js';
import { WARNINGS_HEADER, warningsHeaderValue, type RoiWarning } from '../warnings.js';
import { recordTimings } from './timing.js';

/** Bytes of answers being written to their clients, against a bound. */
export class AnswerBytes {
  /** The bound (`MAX_RESPONSE_BYTES_IN_FLIGHT`). */
  readonly max: number;
  #inFlight = 0;
  #answers = 0;

  constructor(max: number) {
    this.max = max;
  }

  /** Bytes of the answers being written now (each counted whole until its response closes). */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Answers being written now. */
  get answers(): number {
    return this.#answers;
  }

  /** True when new work must wait: the answers in flight hold `max` bytes or more. */
  get full(): boolean {
    return this.#inFlight >= this.max;
  }

  /** Counts an answer of `bytes`; call the returned function (idempotent) once it is written or dropped. */
  take(bytes: number): () => void {
    this.#inFlight += bytes;
    this.#answers++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#inFlight -= bytes;
      this.#answers--;
    };
  }
}

/** What {@link sendAnswer} needs from the app. */
export interface AnswerOptions {
  budget: AnswerBytes;
  /** Milliseconds without write progress before the socket is destroyed; 0 = never. */
  writeTimeoutMs: number;
  /**
   * Bytes handed to the socket at a time; default 1 MiB. 64 KiB chunks (one event-loop turn each, 230
   * for a 15 MB answer) took ~10 ms longer to send 15 MB over loopback than one write (`npm run bench --
   * transfer`: download 32.6 vs 22.9 ms); 1 MiB matches one write, and a client must still take 1 MiB
   * per `WRITE_TIMEOUT_SECONDS` (35 KB/s at the default 30 s) to keep its connection.
   */
  chunkBytes?: number;
}

/** The app's {@link AnswerOptions}: its answer budget and `WRITE_TIMEOUT_SECONDS`. */
export function answerOptionsOf(app: FastifyInstance): AnswerOptions {
  return { budget: app.answers, writeTimeoutMs: Math.round(app.config.writeTimeoutSeconds * 1000) };
}

/**
 * A buffer as a stream of `chunk`-sized views (no copies). `_read` is called when the consumer (the
 * response, piped) wants more: `onProgress` hears of it. Destroying it drops the buffer.
 */
class BufferChunks extends Readable {
  #body: Buffer | null;
  #at = 0;
  readonly #chunk: number;
  readonly #onProgress: () => void;

  constructor(body: Buffer, chunk: number, onProgress: () => void) {
    super();
    this.#body = body;
    this.#chunk = chunk;
    this.#onProgress = onProgress;
  }

  override _read(): void {
    this.#onProgress();
    const body = this.#body;
    if (body === null || this.#at >= body.length) {
      this.#body = null;
      this.push(null);
      return;
    }
    const end = Math.min(body.length, this.#at + this.#chunk);
    const chunk = body.subarray(this.#at, end);
    this.#at = end;
    this.push(chunk);
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.#body = null;
    callback(err);
  }
}

/**
 * Sends `body` as the reply's payload, in chunks with back-pressure and a `Content-Length`, counted in
 * `options.budget` until the response closes (written, aborted, or cut). The socket is destroyed when
 * it takes no new chunk and drains nothing for `options.writeTimeoutMs`.
 *
 * @returns the reply, sent (return it from the handler)
 */
export function sendAnswer(reply: FastifyReply, body: Buffer, options: AnswerOptions): FastifyReply {
  const res = reply.raw;
  const release = options.budget.take(body.length);
  let timer: NodeJS.Timeout | undefined;
  const stall = (): void => {
    reply.log.warn(
      { bytes: body.length, timeoutMs: options.writeTimeoutMs },
      'the client stopped reading its answer: connection closed (WRITE_TIMEOUT_SECONDS)',
    );
    // Destroying the response destroys its socket: its queued bytes, and this answer, are dropped.
    res.destroy();
  };
  const progress = (): void => {
    if (options.writeTimeoutMs <= 0 || res.destroyed) return;
    if (timer === undefined) {
      timer = setTimeout(stall, options.writeTimeoutMs);
      timer.unref();
    } else {
      timer.refresh();
    }
  };
  const stream = new BufferChunks(body, options.chunkBytes ?? 1024 * 1024, progress);
  // The last chunks can sit in the socket's own queue after the stream has ended: its drains count too.
  const socket = res.socket;
  socket?.on('drain', progress);
  res.once('close', () => {
    clearTimeout(timer);
    socket?.off('drain', progress);
    stream.destroy();
    release();
    // Written in full, the socket holds no chunk of it: its memory goes now, not at the next full
    // collection, which each large answer would otherwise force on this thread (see free-now.ts).
    if (res.writableFinished) freeNow(body);
  });
  progress();
  reply.header('Content-Length', String(body.length));
  return reply.send(stream);
}

/**
 * Sends a worker's encoded answer, the same way for every work route: records its stage timings
 * (`Server-Timing`, stage histogram), sets its content type, `Content-Disposition` (when it has a file
 * name) and warnings header (when there are any: a `.npy` body has no room for them, and a client may
 * read only the header), then {@link sendAnswer}. The bytes bypass the serializer.
 *
 * @param disposition - `attachment` for data to save, `inline` for a picture to show
 * @returns the reply, sent (return it from the handler)
 */
export function sendEncoded(
  request: FastifyRequest,
  reply: FastifyReply,
  out: EncodedWork & { warnings?: readonly RoiWarning[] },
  options: AnswerOptions,
  disposition: 'attachment' | 'inline' = 'attachment',
): FastifyReply {
  recordTimings(request, request.server.metrics, out.timings);
  reply.type(out.contentType);
  if (out.filename) reply.header('Content-Disposition', `${disposition}; filename="${out.filename}"`);
  const warnings = out.warnings && warningsHeaderValue(out.warnings);
  if (warnings !== undefined) reply.header(WARNINGS_HEADER, warnings);
  return sendAnswer(reply, out.body, options);
}
