/**
 * Replacing workers: the pieces both sides of the pool share.
 *
 * A worker retires (is terminated after its reply and replaced by a fresh thread) when its state can
 * no longer be trusted or its memory has grown past a bound:
 *
 * - an unexpected error (anything but the typed 4xx errors of `src/errors.ts`): a tfjs-wasm abort
 *   ("null function or function signature mismatch", "memory access out of bounds") leaves the wasm
 *   module corrupt, and the next image in that thread failed or crashed the whole process;
 * - memory over `WORKER_MAX_MEMORY_MB`: the V8 heap and the external memory of the thread's isolate,
 *   which includes tfjs-wasm's `WebAssembly.Memory`. A wasm memory can only grow (one 4096² image took
 *   a worker from ~0.3 to ~1.5 GB, for good), so it is given back by ending the thread.
 *
 * The retiring worker marks itself on a {@link RetireBoard} (shared memory) before it replies, so the
 * pool's balancer, which picks the next task's worker as soon as the reply arrives (before the pool
 * sees the reply), never gives it another task.
 */
import { getHeapStatistics } from 'node:v8';

/** Slots of the board: more than the 64 workers `WORKERS` allows, so a slot is always free. */
const SLOTS = 128;

/** Thread ids of retiring workers, in shared memory (workers write, the pool reads and clears). */
export class RetireBoard {
  readonly #slots: Int32Array;

  /** @param buffer - from {@link RetireBoard.allocate}, shared with every worker through `workerData` */
  constructor(buffer: SharedArrayBuffer) {
    this.#slots = new Int32Array(buffer);
  }

  /** The shared memory for a new board. */
  static allocate(): SharedArrayBuffer {
    return new SharedArrayBuffer(SLOTS * Int32Array.BYTES_PER_ELEMENT);
  }

  /** Worker side: this thread takes no more tasks. */
  mark(threadId: number): void {
    if (this.has(threadId)) return;
    for (let i = 0; i < SLOTS; i++) {
      if (Atomics.compareExchange(this.#slots, i, 0, threadId) === 0) return;
    }
  }

  /** Whether `threadId` is retiring. */
  has(threadId: number): boolean {
    for (let i = 0; i < SLOTS; i++) if (Atomics.load(this.#slots, i) === threadId) return true;
    return false;
  }

  /** Pool side, once the thread has exited: its slot is free again. */
  clear(threadId: number): void {
    for (let i = 0; i < SLOTS; i++) Atomics.compareExchange(this.#slots, i, threadId, 0);
  }
}

/** Why a worker retires, as its reply reports it. */
export type RetireReason = 'failure' | 'memory';

/**
 * Bytes this thread holds: its V8 heap plus its isolate's external memory (ArrayBuffers, and the
 * tfjs-wasm module's `WebAssembly.Memory`). `process.memoryUsage().rss` would be the whole process.
 */
export function workerMemoryBytes(): number {
  const heap = getHeapStatistics();
  return heap.total_heap_size + heap.external_memory;
}
