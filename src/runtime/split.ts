/**
 * Splitting one request with many boxes across idle workers, so that a single large request uses
 * every core (issue 14, "all cores").
 *
 * How it runs. The request's own worker (the *lead*) does everything it always did up to the
 * operators (decode, backbone or the user's map, every check), then puts the feature map and the
 * boxes in `SharedArrayBuffer`s and allocates the outputs there too ({@link shareOps}). It tells the
 * pool (a message, see `src/runtime/pool.ts`), which sends *helper* tasks to the workers that are idle at that
 * moment, and nothing more. Lead and helpers then take ranges of boxes from one atomic counter
 * ({@link runRanges}) and write each range's outputs straight into the shared outputs at that range's
 * offset: the results are in box order with no concatenation, and each worker reads the one map in
 * place (its kernels copy it into their WebAssembly memory, as they do for every call). The lead waits
 * until every range taken is done, then computes coverage and warnings and encodes, as before.
 *
 * Why work-stealing ranges rather than a fixed chunk per worker: a helper that the pool could not
 * start at once (the worker was taken meanwhile) takes nothing and costs nothing, the lead does
 * whatever is left, and a slow worker simply takes fewer ranges. Fairness: helpers run only on workers
 * idle when the lead asks, and the pool sets the `YIELD` word when any other task is submitted: each
 * helper then stops after its current range, so another request waits for at most one range
 * (≈ {@link rangeCount}'s target of a few ms), and the lead finishes alone.
 *
 * Bit-identity: a box's output depends only on the map, that box and the parameters (the kernels keep
 * no state across boxes), and each range runs the same kernels with the same parameters on a view of
 * the same boxes. The map is shared as NHWC: the kernels copy an NCHW map into NHWC themselves, so the
 * values they read are the same. Errors: a kernel refusing a box (its sampling grid) would name the
 * box's index within its range; on any such refusal the lead runs the operators unsplit, which throws
 * exactly the error the unsplit request always threw.
 *
 * Cancellation and time limits: every task of the request shares its cancel flag (`src/cancel.ts`),
 * so a client that leaves or the time limit stops every range at its next box; the lead re-checks the
 * flag while it waits.
 */
import { CancelledError } from '../errors.js';
import { toLayout } from '../ops/index.js';
import { V1_OPERATORS } from '../ops/registry.js';
import type { Boxes, FeatureMap, Pooled } from '../ops/index.js';
import { opRunParams, runOpsHere, type OpsParams, type OpsRunner } from '../core/pipeline.js';
import type { RoiOp } from '../ops/registry.js';

/** Words of the control block ({@link SplitShare.control}). */
export const NEXT = 0;
/** Ranges finished (done, failed or stopped), by lead and helpers together. */
export const DONE = 1;
/** Ranges whose kernels refused a box (the lead then runs the ops unsplit for the exact error). */
export const FAILED = 2;
/** Set by the pool when another task is submitted: helpers stop after their current range. */
export const YIELD = 3;
/** Set by the pool when a helper's thread failed (a range it took may never finish): the lead gives up (500). */
export const BROKEN = 4;
/** Ranges run by helpers (statistics: tests and `Server-Timing`). */
export const HELPED = 5;
const CONTROL_WORDS = 6;

/** What lead and helpers share (structured-cloneable: every array lies in a `SharedArrayBuffer`). */
export interface SplitShare {
  /** The feature map, NHWC. */
  fm: FeatureMap;
  /** The boxes the operators run on (`opBoxes`). */
  boxes: Boxes;
  params: OpsParams;
  /** One `[K, C, PH, PW]` NCHW output per op, written range by range. */
  outputs: Partial<Record<RoiOp, Float32Array>>;
  /** Boxes per range (the last may hold fewer). */
  rangeBoxes: number;
  ranges: number;
  control: Int32Array;
}

/**
 * Where a lead puts the shared map, boxes and outputs: one `SharedArrayBuffer` per thread, reused from
 * one split request to the next. Shared memory is not external memory to V8, so nothing prompts a
 * collection while it piles up: with a fresh buffer per request, 30 requests at R = 1000 took the
 * process from 1.0 to 2.4 GB. Reused, a thread holds at most twice what its largest recent request
 * needed (a buffer more than twice too large is replaced, so one huge request does not pin its size).
 */
export class SharedArena {
  #buffer: SharedArrayBuffer | null = null;
  #busy = false;

  /**
   * A buffer of at least `bytes` for one request; {@link release} it when nothing reads or writes it
   * any more (after encoding, and after every helper's range has finished).
   */
  take(bytes: number): SharedArrayBuffer {
    if (this.#busy) throw new Error('SharedArena.take: the arena is in use');
    const b = this.#buffer;
    if (b === null || b.byteLength < bytes || b.byteLength > 2 * Math.max(bytes, 1 << 20)) {
      this.#buffer = new SharedArrayBuffer(Math.max(bytes, 16));
    }
    this.#busy = true;
    return this.#buffer as SharedArrayBuffer;
  }

  /** The request is done with the buffer: the next one may reuse it. */
  release(): void {
    this.#busy = false;
  }

  /** A helper may still write to the buffer (its thread failed mid-range): never reuse it. */
  discard(): void {
    this.#buffer = null;
    this.#busy = false;
  }
}

/** Carves float32 arrays, one after the other, out of a shared buffer. */
function carver(buffer: SharedArrayBuffer): (length: number) => Float32Array {
  let at = 0;
  return (length) => {
    const out = new Float32Array(buffer, at, length);
    at += length * Float32Array.BYTES_PER_ELEMENT;
    return out;
  };
}

/**
 * How many ranges `K` boxes are cut into: about four per worker (so that a slow or late worker is
 * balanced by the others), each of at least 32 boxes (each range copies the map into the kernels'
 * memory once per op, ~0.5 ms for 256 × 50 × 68).
 */
export function rangeCount(K: number, workers: number): number {
  return Math.max(1, Math.min(Math.ceil(K / 32), 4 * Math.max(1, workers)));
}

/**
 * The lead's setup: the map (as NHWC) and the boxes copied into shared memory, the shared outputs
 * laid out after them (all in one buffer from `arena`, which the caller releases), the control block
 * zeroed.
 *
 * @param workers - the pool's size (sets the number of ranges)
 * @param arena - where the shared arrays go; default a fresh one (tests)
 */
export function shareOps(
  fm: FeatureMap,
  boxes: Boxes,
  params: OpsParams,
  workers: number,
  arena: SharedArena = new SharedArena(),
): SplitShare {
  const nhwc = fm.layout === 'NHWC' ? fm : toLayout(fm, 'NHWC');
  const [, C] = fm.shape;
  const [PH, PW] = params.outputSize;
  const outputFloats = boxes.count * C * PH * PW;
  const floats = nhwc.data.length + boxes.count * 5 + params.ops.length * outputFloats;
  const next = carver(arena.take(floats * Float32Array.BYTES_PER_ELEMENT));
  const data = next(nhwc.data.length);
  data.set(nhwc.data);
  const boxData = next(boxes.count * 5);
  boxData.set(boxes.data.subarray(0, boxes.count * 5));
  // Every value is written by a range before it is read: a reused buffer needs no clearing.
  const outputs: SplitShare['outputs'] = {};
  for (const op of params.ops) outputs[op] = next(outputFloats);
  const ranges = rangeCount(boxes.count, workers);
  return {
    fm: { data, shape: fm.shape, layout: 'NHWC' },
    boxes: { data: boxData, count: boxes.count },
    params,
    outputs,
    rangeBoxes: Math.ceil(boxes.count / ranges),
    ranges,
    control: new Int32Array(new SharedArrayBuffer(CONTROL_WORDS * Int32Array.BYTES_PER_ELEMENT)),
  };
}

/**
 * The operators on boxes `k0 .. k1 - 1`, each output written at its offset in the shared outputs.
 *
 * @returns milliseconds per op
 */
function runRange(
  share: SplitShare,
  k0: number,
  k1: number,
  shouldStop: (() => boolean) | undefined,
): Partial<Record<RoiOp, number>> {
  const { fm, params } = share;
  const boxes: Boxes = { data: share.boxes.data.subarray(5 * k0, 5 * k1), count: k1 - k0 };
  const ms: Partial<Record<RoiOp, number>> = {};
  for (const op of params.ops) {
    const t = performance.now();
    // The kernel writes this range's outputs in place: no copy, no array of its own.
    const out = share.outputs[op] as Float32Array;
    const perBox = out.length / share.boxes.count;
    const into = out.subarray(perBox * k0, perBox * k1);
    V1_OPERATORS[op].run(fm, boxes, { ...opRunParams(params), shouldStop, into });
    ms[op] = performance.now() - t;
  }
  return ms;
}

/**
 * Takes ranges until none is left (or, for a helper, until the pool asks helpers to yield) and runs
 * them. A range the kernels refuse, or that is stopped, still counts as done (`FAILED` for a refusal),
 * so the lead never waits for it; the refusal or the stop is the lead's to report.
 *
 * @param helper - true for a helper task (it yields; its ranges are counted in `HELPED`)
 * @returns ranges run and milliseconds per op spent in them
 */
export function runRanges(
  share: SplitShare,
  helper: boolean,
  shouldStop?: () => boolean,
): { ranges: number; ms: Partial<Record<RoiOp, number>> } {
  const { control, ranges, rangeBoxes } = share;
  const K = share.boxes.count;
  const ms: Partial<Record<RoiOp, number>> = {};
  let ran = 0;
  let stopped = false;
  while (!stopped && !(helper && Atomics.load(control, YIELD) !== 0)) {
    const r = Atomics.add(control, NEXT, 1);
    if (r >= ranges) break;
    ran++;
    try {
      const took = runRange(share, r * rangeBoxes, Math.min(K, (r + 1) * rangeBoxes), shouldStop);
      for (const [op, t] of Object.entries(took) as [RoiOp, number][]) ms[op] = (ms[op] ?? 0) + t;
    } catch (err) {
      // A stop is the lead's to report (it reads the shared cancel flag): take no more ranges. A
      // refusal makes the lead run the ops unsplit, for the error the unsplit request gives.
      if (err instanceof CancelledError) stopped = true;
      else Atomics.add(control, FAILED, 1);
    } finally {
      if (helper) Atomics.add(control, HELPED, 1);
      Atomics.add(control, DONE, 1);
      Atomics.notify(control, DONE);
    }
  }
  return { ranges: ran, ms };
}

/** `Atomics.waitAsync` (Node ≥ 16; not in TypeScript's ES2022 lib). */
type WaitAsync = (
  array: Int32Array,
  index: number,
  value: number,
  timeoutMs: number,
) => { async: false; value: string } | { async: true; value: Promise<string> };
const waitAsync = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync;

/**
 * The lead's wait for the ranges helpers took. Checks `check` (the task's cancel flag and time
 * limit) every `sliceMs`, and gives up when the pool says a helper's thread failed.
 *
 * @throws CancelledError through `check`; Error when a helper's thread failed
 */
export async function waitForRanges(share: SplitShare, check: () => void, sliceMs = 20): Promise<void> {
  const { control, ranges } = share;
  for (;;) {
    const done = Atomics.load(control, DONE);
    if (done >= ranges) return;
    if (Atomics.load(control, BROKEN) !== 0) {
      throw new Error('a worker helping with this request failed; its boxes were not computed');
    }
    check();
    const w = waitAsync(control, DONE, done, sliceMs);
    if (w.async) await w.value;
  }
}

/** The shared outputs as the pipeline's `Pooled` results (`[K, C, PH, PW]`, NCHW). */
export function sharedPooled(share: SplitShare): Partial<Record<RoiOp, Pooled>> {
  const [, C] = share.fm.shape;
  const [PH, PW] = share.params.outputSize;
  const out: Partial<Record<RoiOp, Pooled>> = {};
  for (const op of share.params.ops) {
    out[op] = {
      data: share.outputs[op] as Float32Array,
      shape: [share.boxes.count, C, PH, PW],
      layout: 'NCHW',
    };
  }
  return out;
}

/** This thread's arena (a worker leads one request at a time). */
const arena = new SharedArena();

/**
 * The lead's {@link OpsRunner}: shares the operators (see the top of this file), runs ranges itself,
 * waits for the helpers' ranges, and falls back to {@link runOpsHere} when the kernels refused a box.
 * `timings` gets each op's share of the wall time of the whole, in proportion to the lead's own time
 * in each op (the ops run interleaved range by range, so no op has a wall time of its own).
 *
 * The outputs it returns lie in this thread's shared arena: call `release` once they have been read
 * (encoded). However the runner ends (done, stopped, refused), it first closes the range counter and
 * waits for the ranges helpers had taken, so no helper writes into the arena after it returns.
 *
 * @param announce - hands the share to the pool, which starts helper tasks on idle workers
 * @param workers - the pool's size (sets the number of ranges)
 */
export function splitOps(
  announce: (share: SplitShare) => void,
  workers: number,
): { run: OpsRunner; release: () => void } {
  let share: SplitShare | undefined;
  const run: OpsRunner = async (fm, boxes, params, timings, stop) => {
    const started = performance.now();
    share = shareOps(fm, boxes, params, workers, arena);
    const { control, ranges } = share;
    try {
      announce(share);
      const shouldStop = stop ? () => stop.shouldStop() : undefined;
      const { ms } = runRanges(share, false, shouldStop);
      await waitForRanges(share, () => stop?.check());
      stop?.check();
      if (Atomics.load(control, FAILED) > 0) return await runOpsHere(fm, boxes, params, timings, stop);
      const wall = performance.now() - started;
      const own = params.ops.reduce((sum, op) => sum + (ms[op] ?? 0), 0);
      for (const op of params.ops)
        timings[op] = own > 0 ? (wall * (ms[op] ?? 0)) / own : wall / params.ops.length;
      return sharedPooled(share);
    } finally {
      // No range may start from now on; wait for those taken (a stopped helper ends at its next box).
      const claimed = Math.min(Atomics.exchange(control, NEXT, ranges), ranges);
      Atomics.store(control, YIELD, 1);
      await waitForRanges({ ...share, ranges: claimed }, () => undefined).catch(() => arena.discard());
    }
  };
  return {
    run,
    release: () => {
      if (share !== undefined) arena.release();
    },
  };
}
