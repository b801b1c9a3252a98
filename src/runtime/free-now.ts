/**
 * Freeing a large buffer now instead of at the next full garbage collection.
 *
 * Answers of 15–50 MB are computed in a worker, encoded, and moved (transferred) to the HTTP thread.
 * Every such buffer adds its size to its thread's external memory until the garbage collector finds
 * it unreferenced, and V8 answers that growth with a full mark-compact of the whole heap ("external
 * memory pressure"): `node --trace-gc` on `npm run bench -- transfer` showed one on the HTTP thread
 * for nearly every 15 MB answer, 30–140 ms each, and as many in the workers. Moving the buffer into a
 * message on a channel that is closed at once detaches it and releases its memory there and then
 * (100 × 15 MB received from a worker: 15 full collections and 2.5 s without, none and 0.26 s with).
 */
import { MessageChannel } from 'node:worker_threads';

/** Buffers smaller than this are left to the garbage collector (freeing them saves nothing). */
export const FREE_NOW_BYTES = 1024 * 1024;

/**
 * Releases the memory behind `view` now, when `view` alone covers its whole (unshared) buffer of at
 * least {@link FREE_NOW_BYTES}; otherwise does nothing. Every view on that buffer reads as empty
 * afterwards: call it only when nothing will read it again, and never while a socket or a native call
 * may still hold it (for a response: once it was written in full).
 *
 * @returns whether the memory was released
 */
export function freeNow(view: ArrayBufferView | null | undefined): boolean {
  const buffer = view?.buffer;
  if (
    view == null ||
    !(buffer instanceof ArrayBuffer) ||
    view.byteOffset !== 0 ||
    view.byteLength !== buffer.byteLength ||
    buffer.byteLength < FREE_NOW_BYTES
  ) {
    return false;
  }
  const channel = new MessageChannel();
  try {
    channel.port1.postMessage(null, [buffer]);
    return true;
  } catch {
    // Not transferable (memory a native addon allocated, e.g. sharp's output): left to the collector.
    return false;
  } finally {
    channel.port1.close();
    channel.port2.close();
  }
}
