/**
 * Admission to the work queue, decided when a request arrives, before its body is read.
 *
 * The queue used to say 503 only once the handler ran, i.e. after the body had been read, parsed,
 * base64-decoded and checked: 70 concurrent 29 MiB bodies took 4.3 GB and stalled `/healthz` for 4 s
 * only to be refused. Now an `onRequest` hook ({@link admitWork}) takes a {@link Slot} first: at most
 * `WORKERS + QUEUE_LIMIT` work requests are past that point at once (reading, parsing, waiting or
 * running), and one more gets its 503 before a byte of its body is read. The slot is taken at that
 * moment, so concurrent arrivals cannot all pass the same check.
 *
 * A slot is held by its request until the response is closed (sent or aborted) and by the worker
 * task it started until that task settles, whichever is later: a client that disconnects does not free
 * a place its work still occupies.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { BusyError } from './errors.js';

/** One place in the work queue. Released when every holder has let go. */
export class Slot {
  #holders = 1;
  #onFree: () => void;
  #requestReleased = false;

  /** @param onFree - called once, when the last holder releases */
  constructor(onFree: () => void) {
    this.#onFree = onFree;
  }

  /** Whether every holder has let go (the place is free again). */
  get free(): boolean {
    return this.#holders === 0;
  }

  /** Adds a holder (a worker task); call the returned function, once, when it is done. */
  hold(): () => void {
    if (this.free) throw new Error('Slot.hold: the slot was already released');
    this.#holders++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#drop();
    };
  }

  /** Lets go of the holder that took the slot (the request). Idempotent. */
  release(): void {
    if (this.#requestReleased) return;
    this.#requestReleased = true;
    this.#drop();
  }

  #drop(): void {
    this.#holders--;
    if (this.#holders === 0) this.#onFree();
  }
}

/** Counts the places taken against a fixed capacity. */
export class Admission {
  readonly capacity: number;
  #taken = 0;

  /** @param capacity - places in all (`WORKERS + QUEUE_LIMIT`) */
  constructor(capacity: number) {
    this.capacity = capacity;
  }

  /** Places taken now. */
  get taken(): number {
    return this.#taken;
  }

  /**
   * Takes a place.
   *
   * @param busy - the error to throw when none is left
   * @throws the `busy` error when all places are taken
   */
  take(busy: () => BusyError): Slot {
    if (this.#taken >= this.capacity) throw busy();
    this.#taken++;
    return new Slot(() => {
      this.#taken--;
    });
  }
}

/**
 * Bytes of request bodies admitted and not yet answered, against a bound. A request is charged its
 * declared `Content-Length` (capped at `BODY_LIMIT_BYTES`), or `BODY_LIMIT_BYTES` when it declares none
 * (chunked): the most it may bring.
 */
export class BodyBytes {
  /** The bound (`MAX_BODY_BYTES_IN_FLIGHT`). */
  readonly max: number;
  #inFlight = 0;

  constructor(max: number) {
    this.max = max;
  }

  /** Bytes charged now. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /**
   * Charges `bytes`, or returns undefined when they do not fit. One body always fits when nothing else
   * is charged, so a body larger than the bound alone (it is within `BODY_LIMIT_BYTES`) still runs.
   *
   * @returns the release (idempotent)
   */
  take(bytes: number): (() => void) | undefined {
    if (this.#inFlight > 0 && this.#inFlight + bytes > this.max) return undefined;
    this.#inFlight += bytes;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#inFlight -= bytes;
    };
  }
}

/** What a request may bring: its declared length, capped at `limit`; `limit` when it declares none. */
export function chargedBodyBytes(headers: FastifyRequest['headers'], limit: number): number {
  const declared = Number(headers['content-length']);
  return Number.isFinite(declared) && declared >= 0 ? Math.min(declared, limit) : limit;
}

const slots = new WeakMap<FastifyRequest, Slot>();

/**
 * `onRequest` hook of the work routes: takes a slot before the body is read (503 + `Retry-After` when
 * there is none, while the answers being sent hold `MAX_RESPONSE_BYTES_IN_FLIGHT` bytes, or when the
 * body would take the bodies in flight past `MAX_BODY_BYTES_IN_FLIGHT`) and gives it all back when the
 * response closes.
 */
export async function admitWork(request: FastifyRequest, reply: FastifyReply): Promise<void> {
  const answers = request.server.answers;
  if (answers.full) {
    // Answers already computed wait for clients that read slowly (or not at all): more work would
    // only add to the memory they hold. They drain, or WRITE_TIMEOUT_SECONDS cuts them.
    throw new BusyError(
      `${answers.answers} answers (${answers.inFlight} bytes) are still being sent, at the limit of ${answers.max} bytes (MAX_RESPONSE_BYTES_IN_FLIGHT); retry shortly`,
      1,
    );
  }
  // Bodies are read and parsed on this thread: a burst of large ones, all admitted, took 3–4 GB and
  // stalled /healthz for seconds. Their bytes in flight are bounded like the answers'.
  const { bodies, config } = request.server;
  const charged = chargedBodyBytes(request.headers, config.bodyLimitBytes);
  const releaseBody = bodies.take(charged);
  if (releaseBody === undefined) {
    throw new BusyError(
      `the request bodies being read or waiting hold ${bodies.inFlight} bytes; ${charged} more would pass the limit of ${bodies.max} bytes (MAX_BODY_BYTES_IN_FLIGHT); retry shortly`,
      1,
    );
  }
  let slot: Slot;
  try {
    slot = request.server.work.admit();
  } catch (err) {
    releaseBody();
    throw err;
  }
  slots.set(request, slot);
  reply.raw.once('close', () => {
    slot.release();
    releaseBody();
  });
}

/** The slot {@link admitWork} took for `request`, if any (the pool runs the request's work in it). */
export function slotOf(request: FastifyRequest): Slot | undefined {
  return slots.get(request);
}
