/**
 * Stopping work nobody waits for: a client that went away, or a task over `TASK_TIMEOUT_SECONDS`.
 *
 * Each task carries a cancel flag, a `SharedArrayBuffer`-backed `Int32Array` shared by the HTTP thread
 * and the worker (structured cloning shares, not copies, its memory). The HTTP thread sets slot
 * {@link STOP} when the client goes away; the worker sets it when the task's time is up. The worker
 * checks it between stages and, through the kernels' `shouldStop`, before each box, and counts the
 * boxes it started in slot {@link BOXES}, so that a stopped task can tell how far it got. A check is
 * an `Atomics.load` and a clock read: nothing next to a box's work.
 *
 * Why a flag and not piscina's AbortSignal for running tasks: piscina aborts a running task by
 * terminating its worker thread, which would throw away the worker's loaded backbone and tfjs
 * state. Queued tasks do go through the AbortSignal (piscina drops them from its queue).
 */
import type { ServerResponse } from 'node:http';
import { CancelledError } from './errors.js';

/** Slot of the stop request: {@link RUN}, {@link CLIENT_GONE} or {@link TIMED_OUT}. */
export const STOP = 0;
/** Slot counting the boxes the worker's kernels have started (summed over the ops). */
export const BOXES = 1;

export const RUN = 0;
export const CLIENT_GONE = 1;
export const TIMED_OUT = 2;
export type StopReason = typeof CLIENT_GONE | typeof TIMED_OUT;

/** A fresh flag: not stopped, no boxes done. */
export function newCancelFlag(): Int32Array {
  return new Int32Array(new SharedArrayBuffer(2 * Int32Array.BYTES_PER_ELEMENT));
}

/**
 * Asks the worker to stop. The first reason wins (a timeout does not overwrite a client that left).
 *
 * @returns true if this call set the reason
 */
export function requestStop(flag: Int32Array, reason: StopReason): boolean {
  return Atomics.compareExchange(flag, STOP, RUN, reason) === RUN;
}

/** Why the task was asked to stop, or {@link RUN}. */
export function stopReason(flag: Int32Array): number {
  return Atomics.load(flag, STOP);
}

/** Boxes the worker started before it stopped (or finished), summed over the ops. */
export function boxesStarted(flag: Int32Array): number {
  return Atomics.load(flag, BOXES);
}

/** The worker's view of a task's flag and time limit. */
export interface TaskStop {
  /** For the kernels, once per box: counts the box, then says whether to stop. */
  shouldStop(): boolean;
  /** Between pipeline stages: throws {@link CancelledError} once the task should stop. */
  check(): void;
}

/**
 * The worker's side of a task's cancel flag, with its time limit: past `timeoutMs` from now (the
 * moment the worker starts the task, so time spent queued or waiting for a starting worker does not
 * count) the check itself records {@link TIMED_OUT} in the flag, for the pool to read. Without a flag
 * (direct calls, tests) it never stops.
 */
export function taskStop(flag: Int32Array | undefined, timeoutMs = Infinity): TaskStop {
  if (!flag) return { shouldStop: () => false, check: () => undefined };
  const deadline = performance.now() + timeoutMs;
  const stopped = () => {
    if (Atomics.load(flag, STOP) !== RUN) return true;
    if (performance.now() > deadline) {
      requestStop(flag, TIMED_OUT);
      return true;
    }
    return false;
  };
  return {
    shouldStop() {
      Atomics.add(flag, BOXES, 1);
      return stopped();
    },
    check() {
      if (stopped()) throw new CancelledError();
    },
  };
}

/**
 * An AbortSignal that fires when the client goes away before its answer was sent: the response's
 * socket closed while the response had not finished. (`request.raw`'s `close` is no use here: Node
 * emits it as soon as the request body has been read.)
 */
export function clientGoneSignal(response: ServerResponse): AbortSignal {
  const controller = new AbortController();
  response.once('close', () => {
    if (!response.writableFinished) controller.abort(new CancelledError());
  });
  return controller.signal;
}
