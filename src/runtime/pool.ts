/**
 * The bounded work pool: `workers` piscina threads run the pipeline (`src/runtime/worker.ts`); up to
 * `queueLimit` more requests wait; one more is refused at once with a 503 (`BusyError`). The HTTP
 * thread never runs decode, backbone or kernels, so `/healthz` answers while they run. The messages
 * and buffer ownership it shares with the workers are in `./protocol.ts`.
 *
 * Over 400 lines on purpose: one class holds the queue, the cancellation of queued and running tasks,
 * the retiring of workers and the coordination of split requests (`./split.ts`), which all act on the
 * same private state (the piscina instance, the in-flight count, the active splits).
 */
import type { KernelResult, KernelTask } from '../oip/kernel-task.js';
import type { Worker } from 'node:worker_threads';
import { Piscina, type PiscinaTask } from 'piscina';
import type { BackboneDescription } from '../backbone/index.js';
import type { Config } from '../config.js';
import type { DiffOptions } from '../core/diff-options.js';
import { Admission, type Slot } from '../admission.js';
import { boxesStarted, CLIENT_GONE, newCancelFlag, requestStop, stopReason, TIMED_OUT } from '../cancel.js';
import { BusyError, CancelledError, RoiServeError, TaskTimeoutError } from '../errors.js';
import type { RoiResult } from '../core/results.js';
import { fixHeapGrowth } from './heap-growth.js';
import { RetireBoard, type RetireReason } from './recycle.js';
import { limitsFrom, type RoiTask } from '../core/task.js';
import { type RoiOp } from '../ops/registry.js';
import type { OutputDtype } from '../tensors/float16.js';
import type { RoiWarning } from '../warnings.js';
import { BROKEN, DONE, HELPED, YIELD, type SplitShare } from './split.js';
import {
  ownedBuffers,
  taskTransfers,
  type CancelledTask,
  type EncodedWork,
  type WorkerInit,
  type WorkerReply,
  type WorkerTask,
} from './protocol.js';

/** How a task runs: in the slot its request took on arrival (`slotOf(request)`, `src/admission.ts`). */
export interface RunOptions {
  slot?: Slot;
  /**
   * Fires when nobody waits for the answer any more (the client went away, see `clientGoneSignal`):
   * the task is cancelled (dropped from the queue, or stopped at its worker's next check).
   */
  signal?: AbortSignal;
}

/** How `#run` runs a task beyond {@link RunOptions}: what the split of a large request needs. */
interface InternalRun {
  /** The task's cancel flag; default a fresh one. A split request's tasks all share the lead's. */
  cancel?: Int32Array;
  /** A helper of a split request: it never yields to itself, and its stops are the lead's to report. */
  helper?: boolean;
  /** Receives a function that drops the task if it is still queued (a no-op once it runs). */
  onQueued?: (dropIfQueued: () => void) => void;
}

/** A request whose operators are being shared (`src/runtime/split.ts`), while its lead task runs. */
interface ActiveSplit {
  cancel: Int32Array;
  options: RunOptions;
  /** The shared control block, once the lead has sent it. */
  control?: Int32Array;
  /** Drops each helper that is still queued. */
  queued: Set<() => void>;
  /** `HELPED` when the pool first asked the helpers to yield (for {@link WorkPool.splitStats}). */
  helpedAtYield?: number;
}

/** `GET /v1/backbone`: the backbone description (it names the tfjs backend too). */
export type BackboneInfo = BackboneDescription;

/** Raised for a worker failure that is not the client's fault; the error handler hides its message. */
export class WorkerFailure extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WorkerFailure';
  }
}

/** Worker file: the compiled `.js` next to this module, or the `.ts` source under tsx / vitest. */
function workerFile(): { filename: string; execArgv: string[] } {
  const fromSource = import.meta.url.endsWith('.ts');
  const filename = new URL(fromSource ? './worker.ts' : './worker.js', import.meta.url).href;
  return { filename, execArgv: fromSource ? ['--import', 'tsx'] : [] };
}

/** A zero-copy Buffer view of bytes that crossed the thread boundary (they arrive as a Uint8Array). */
function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * Adds `queue` (ms from submission to the worker taking the task) to a result's `timings`, for
 * `Server-Timing`; results without timings (the backbone description) pass unchanged.
 */
function withQueueTime(value: unknown, queueMs: number): unknown {
  const timings = (value as { timings?: unknown } | null)?.timings;
  if (timings !== null && typeof timings === 'object') (timings as Record<string, number>).queue = queueMs;
  return value;
}

/**
 * The worker pool. One per app; `close()` it when the app closes.
 *
 * @example const result = await app.work.roi(prepareRoi(body, limitsFrom(config)));
 */
export class WorkPool {
  /** Worker threads. */
  readonly size: number;
  /** Requests allowed to wait beyond the `size` running ones. */
  readonly queueLimit: number;
  #piscina: Piscina;
  #inFlight = 0;
  #admission: Admission;
  #tensors = new Map<number, number>();
  /** Threads whose backbone is loaded and warmed, and that are not retiring. */
  #ready = new Set<number>();
  #closing = false;
  /** Workers replaced so far, by reason (`exit`: the thread ended without retiring). */
  readonly replaced: Record<RetireReason | 'exit', number> = { failure: 0, memory: 0, exit: 0 };
  #taskTimeoutMs: number;
  /** Tasks waiting or running, by id: what to do when piscina hands one to a worker. */
  #pending = new Map<number, () => void>();
  #nextId = 1;
  #started = 0;
  /** Called for every task the pool stopped (the server counts them in its metrics). */
  onCancelled: ((task: CancelledTask) => void) | undefined;
  /** Requests of at least this many boxes share their operators with idle workers; 0: never (read per request). */
  splitMinBoxes: number;
  #splits = new Map<number, ActiveSplit>();
  #nextSplit = 1;
  /** Requests split so far, and ranges of boxes their helpers ran (`src/runtime/split.ts`). */
  /**
   * Split statistics. `helperRangesAfterYield`: ranges helpers finished after the pool asked them to
   * yield, at most one per helper (the range it was in) when yielding works; tests read it because
   * it does not depend on how fast the waiting request arrived. `yields`: splits asked to yield so.
   */
  readonly splitStats = { requests: 0, helpers: 0, helperRanges: 0, helperRangesAfterYield: 0, yields: 0 };

  /** @param config - uses `workers`, `queueLimit`, the backbone settings and the limits */
  constructor(config: Config) {
    // Before the threads start: without it, a worker that has been idle a few seconds runs a full
    // garbage collection every few requests from then on, at twice the CPU per request (heap-growth.ts).
    fixHeapGrowth();
    this.size = config.workers;
    this.queueLimit = config.queueLimit;
    this.splitMinBoxes = config.splitMinBoxes;
    this.#taskTimeoutMs = config.taskTimeoutSeconds * 1000;
    this.#admission = new Admission(this.size + this.queueLimit);
    const init: WorkerInit = {
      tfBackend: config.tfBackend,
      backboneEngine: config.backboneEngine,
      backboneThreads: config.backboneThreads,
      backboneDir: config.backboneDir,
      backboneOutputNode: config.backboneOutputNode,
      backboneStride: config.backboneStride,
      backboneOnnx: {
        backboneMean: config.backboneMean,
        backboneStd: config.backboneStd,
        backboneSizeDivisibility: config.backboneSizeDivisibility,
        backboneStrides: config.backboneStrides,
      },
      maxImageAspect: config.maxImageAspect,
      limits: limitsFrom(config),
      maxMemoryBytes: config.workerMaxMemoryMb * 1024 * 1024,
      retireBoard: RetireBoard.allocate(),
    };
    const board = new RetireBoard(init.retireBoard);
    this.#piscina = new Piscina({
      ...workerFile(),
      workerData: init,
      minThreads: this.size,
      maxThreads: this.size,
      // Workers hold a loaded backbone: never let them idle out.
      idleTimeout: Number.POSITIVE_INFINITY,
      concurrentTasksPerWorker: 1,
      // With piscina's default ('sync'), an idle worker blocks its thread in Atomics.wait, so nothing
      // asynchronous progresses there between tasks: a replacement worker would load its backbone
      // only inside its first task, and never say it is ready. Tasks are long; the latency is noise.
      atomics: 'disabled',
      // piscina's least-busy choice, minus retiring workers. It runs as soon as a reply arrives, before
      // the pool reads the reply, so a retiring worker says so on the shared board, not in the reply.
      // It also notes which task starts: only a task that has not started may be aborted through
      // piscina (see `#run`).
      loadBalancer: (task, workers) => {
        const candidate = workers.find((w) => w.currentUsage === 0 && !board.has(w.id)) ?? null;
        if (candidate) this.#starting(task);
        return candidate;
      },
    });
    // Piscina replaces a thread that exits (minThreads); these keep `readyWorkers` true meanwhile.
    this.#piscina.on('message', (message: unknown) => {
      const m = message as { roiserve?: string; threadId?: number; id?: number; share?: SplitShare } | null;
      if (m?.roiserve === 'split' && m.share !== undefined) return this.#help(m.id as number, m.share);
      const id = m?.roiserve === 'ready' ? m.threadId : undefined;
      // Only a live thread (a late message from one that has exited must not count) that is not retiring.
      if (typeof id === 'number' && !board.has(id) && this.#thread(id) !== undefined) this.#ready.add(id);
    });
    this.#piscina.on('workerCreate', (created: { id: number }) => {
      const id = created.id; // read now: a Worker's threadId reads -1 once it has exited
      this.#thread(id)?.once('exit', () => {
        this.#ready.delete(id);
        if (!board.has(id) && !this.#closing) this.replaced.exit++;
        this.#tensors.delete(id);
        board.clear(id);
      });
    });
    // An error thrown in a worker outside any task: piscina has already replaced that worker, and an
    // 'error' event nobody listens to would end the process.
    this.#piscina.on('error', () => undefined);
  }

  /** The balancer handed `task` to a worker: it is running from now on. */
  #starting(task: PiscinaTask): void {
    const id = (task[Piscina.queueOptionsSymbol as keyof PiscinaTask] as { id?: number } | null)?.id;
    if (id !== undefined) this.#pending.get(id)?.();
  }

  /** Tasks handed to a worker so far (a task cancelled while queued never is). */
  get started(): number {
    return this.#started;
  }

  #thread(threadId: number): Worker | undefined {
    return this.#piscina.threads.find((t) => t.threadId === threadId);
  }

  /**
   * Workers that have loaded and warmed their backbone and are not retiring. `/readyz` is 503 while
   * this is 0 (all being replaced).
   */
  get readyWorkers(): number {
    return this.#ready.size;
  }

  /** Thread ids of the current workers (ready or not). */
  get threadIds(): number[] {
    return this.#piscina.threads.map((t) => t.threadId);
  }

  /**
   * Ends a worker thread; piscina starts a replacement, which loads and warms its own backbone. The
   * pool calls it for a worker that retires after its reply; a test can call it to kill one. A task
   * running in that thread fails (500).
   *
   * @returns false when no current worker has that id
   */
  async terminate(threadId: number): Promise<boolean> {
    const thread = this.#thread(threadId);
    if (thread === undefined) return false;
    await thread.terminate();
    return true;
  }

  /**
   * Takes a place in the queue for a request that will run work: at most `WORKERS + QUEUE_LIMIT` are
   * taken at once (requests reading their body, waiting and running). The routes take it in
   * `onRequest` (see `src/admission.ts`), so a request the queue cannot take is refused before its
   * body is read; pass it to the work method ({@link RunOptions}).
   *
   * @throws BusyError (503) when every place is taken
   */
  admit(): Slot {
    return this.#admission.take(
      () =>
        new BusyError(
          `all ${this.size} workers are busy and ${this.queueLimit} requests are already waiting; retry shortly`,
          1,
        ),
    );
  }

  /** Places taken in the queue (admitted requests, whether reading, waiting or running). */
  get admitted(): number {
    return this.#admission.taken;
  }

  /** Tasks running in a worker or waiting for one. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Requests waiting for a worker. */
  get queued(): number {
    return Math.max(0, this.#inFlight - this.size);
  }

  /** tfjs tensors held by the workers, summed over their latest replies (weights included). */
  tensorCount(): number {
    let sum = 0;
    for (const n of this.#tensors.values()) sum += n;
    return sum;
  }

  /**
   * Runs one task in its slot. Cancelled when `options.signal` fires: a queued task is dropped from
   * piscina's queue and never runs; a running one is asked to stop through its cancel flag
   * (`src/cancel.ts`), so that its worker, and the backbone it holds, survive (piscina would
   * terminate the thread). Its worker stops it after `TASK_TIMEOUT_SECONDS` of running (504).
   */
  async #run(
    task: WorkerTask,
    transferList: ArrayBuffer[] = [],
    options: RunOptions = {},
    internal: InternalRun = {},
  ): Promise<unknown> {
    const { signal } = options;
    if (signal?.aborted) throw new CancelledError();
    // A request admitted in `onRequest` runs in its own slot; anything else (describe, warmup, direct
    // calls) takes a place now, and is refused like a request when none is left.
    const slot = options.slot !== undefined && !options.slot.free ? options.slot : this.admit();
    const release = slot === options.slot ? slot.hold() : () => slot.release();
    // Read only when the task is cancelled (boxes × ops: what its box counter would reach).
    const requested = () => ('task' in task ? task.task.boxes.count * task.task.params.ops.length : 0);
    const id = this.#nextId++;
    const cancel = internal.cancel ?? newCancelFlag();
    const dequeue = new AbortController();
    internal.onQueued?.(() => {
      if (!running) dequeue.abort();
    });
    // Every worker busy: this task will wait, so the helpers of split requests stop after their
    // current range of boxes (their leads finish alone) rather than hold the workers it waits for.
    if (!internal.helper && this.#inFlight >= this.size) {
      for (const split of this.#splits.values()) {
        if (!split.control) continue;
        Atomics.store(split.control, YIELD, 1);
        if (split.helpedAtYield === undefined) {
          split.helpedAtYield = Atomics.load(split.control, HELPED);
          this.splitStats.yields++;
        }
      }
    }
    let running = false;
    this.#pending.set(id, () => {
      running = true;
      this.#started++;
    });
    const onAbort = () => {
      if (running) requestStop(cancel, CLIENT_GONE);
      else dequeue.abort();
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    // The worker enforces the time limit itself, from when it starts the task (see `taskStop`).
    const message = { ...task, cancel, timeoutMs: this.#taskTimeoutMs, [Piscina.queueOptionsSymbol]: { id } };
    this.#inFlight++;
    let reply: WorkerReply;
    // Wall clock on both sides (each thread has its own performance.timeOrigin).
    const submittedAt = performance.timeOrigin + performance.now();
    try {
      reply = (await this.#piscina.run(message, { transferList, signal: dequeue.signal })) as WorkerReply;
    } catch (err) {
      if (dequeue.signal.aborted && !running) {
        if (internal.helper) throw new CancelledError();
        this.onCancelled?.({
          reason: 'client_gone',
          when: 'queued',
          boxesStarted: 0,
          boxesRequested: requested(),
        });
        throw new CancelledError();
      }
      throw new WorkerFailure(
        `worker failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`,
      );
    } finally {
      this.#inFlight--;
      this.#pending.delete(id);
      signal?.removeEventListener('abort', onAbort);
      release();
    }
    const { threadId, tensors, retire } = reply.stats;
    this.#tensors.set(threadId, tensors);
    if (retire !== undefined) {
      // The reply is complete; the balancer already gives this thread nothing (it marked the board).
      this.replaced[retire]++;
      this.#ready.delete(threadId);
      this.terminate(threadId).catch(() => undefined);
    }
    // A described backbone is a loaded one (the worker's own 'ready' message may arrive later).
    if (task.kind === 'describe' && reply.ok && retire === undefined) this.#ready.add(threadId);
    if (reply.ok) return withQueueTime(reply.value, Math.max(0, reply.stats.startedAt - submittedAt));
    const { status, message: text, field, expected } = reply.error;
    if (status === 499 && internal.helper) throw new CancelledError();
    if (status === 499) {
      const reason = stopReason(cancel) === TIMED_OUT ? 'timeout' : 'client_gone';
      const boxes = boxesStarted(cancel);
      const boxesRequested = requested();
      this.onCancelled?.({ reason, when: 'running', boxesStarted: boxes, boxesRequested });
      if (reason === 'timeout') {
        throw new TaskTimeoutError(
          `the request ran for over TASK_TIMEOUT_SECONDS (${this.#taskTimeoutMs / 1000} s) in its worker and was stopped after ${boxes} of ${boxesRequested} boxes × ops; ask for less work per request`,
        );
      }
      throw new CancelledError();
    }
    if (status >= 500) throw new WorkerFailure(text);
    throw new RoiServeError(status, text, field, expected);
  }

  /**
   * Runs a prepared RoI request in a worker. The task's buffers (boxes, features, image bytes) are
   * moved to the worker: do not use them afterwards.
   */
  roi(task: RoiTask, options: RunOptions = {}): Promise<RoiResult> {
    return this.#run({ kind: 'roi', task }, taskTransfers(task), options) as Promise<RoiResult>;
  }

  /**
   * Runs a prepared RoI request and encodes the response in the worker (JSON, `.npy` or safetensors),
   * so that even the largest responses cost the HTTP thread only a send.
   */
  async roiEncoded(
    task: RoiTask,
    format: 'json' | 'npy' | 'safetensors',
    encoding: 'base64' | 'array',
    options: RunOptions = {},
    dtype: OutputDtype = 'float32',
  ): Promise<EncodedWork & { boxCount: number; ops: RoiOp[]; warnings: RoiWarning[] }> {
    // Many boxes and idle workers besides the one this task will take: share the operators.
    const K = task.boxes.count;
    const idle = this.size - Math.max(this.#inFlight + 1, this.#admission.taken);
    const splitting = this.splitMinBoxes > 0 && K >= this.splitMinBoxes && idle >= 1;
    const id = splitting ? this.#nextSplit++ : 0;
    const cancel = newCancelFlag();
    const split: ActiveSplit = { cancel, options, queued: new Set() };
    if (splitting) this.#splits.set(id, split);
    try {
      const out = (await this.#run(
        {
          kind: 'roiEncoded',
          task,
          format,
          encoding,
          dtype,
          ...(splitting ? { split: { id, workers: this.size } } : {}),
        },
        taskTransfers(task),
        options,
        { cancel },
      )) as EncodedWork & {
        boxCount: number;
        ops: RoiOp[];
        warnings: RoiWarning[];
      };
      return { ...out, body: asBuffer(out.body) };
    } finally {
      if (splitting) this.#endSplit(id, split);
    }
  }

  /**
   * The lead of split request `id` has shared its operators: start helpers on the workers idle now
   * (none when requests are waiting or about to: every admitted request counts as needing a worker).
   */
  #help(id: number, share: SplitShare): void {
    const split = this.#splits.get(id);
    if (split === undefined) return; // the lead has already finished
    split.control = share.control;
    this.splitStats.requests++;
    const idle = this.size - Math.max(this.#inFlight, this.#admission.taken);
    const helpers = Math.min(idle, share.ranges - 1);
    for (let i = 0; i < helpers; i++) {
      let drop: () => void = () => undefined;
      this.splitStats.helpers++;
      this.#run({ kind: 'roiHelp', share }, [], split.options, {
        cancel: split.cancel,
        helper: true,
        onQueued: (f) => {
          drop = f;
          split.queued.add(f);
        },
      })
        .catch((err: unknown) => {
          // A helper's thread failed: a range it took may never be done; the lead stops waiting (500).
          if (!(err instanceof CancelledError)) {
            Atomics.store(share.control, BROKEN, 1);
            Atomics.notify(share.control, DONE);
          }
        })
        .finally(() => split.queued.delete(drop));
    }
  }

  /** The lead of a split request settled: helpers still queued are dropped, running ones stop taking ranges. */
  #endSplit(id: number, split: ActiveSplit): void {
    this.#splits.delete(id);
    for (const drop of split.queued) drop();
    if (split.control) {
      Atomics.store(split.control, YIELD, 1);
      const helped = Atomics.load(split.control, HELPED);
      this.splitStats.helperRanges += helped;
      if (split.helpedAtYield !== undefined)
        this.splitStats.helperRangesAfterYield += helped - split.helpedAtYield;
    }
  }

  /**
   * Runs a prepared `/v1/diff` request (all three ops, `includeImage`) and renders its body in the
   * worker: the PNG sheet or the JSON with base64 PNGs, so that the HTTP thread only sends it.
   */
  async diff(
    task: RoiTask,
    options: DiffOptions,
    run: RunOptions = {},
  ): Promise<EncodedWork & { boxCount: number; overlay: boolean; warnings: RoiWarning[] }> {
    const out = (await this.#run(
      { kind: 'diff', task, options },
      taskTransfers(task),
      run,
    )) as EncodedWork & {
      boxCount: number;
      overlay: boolean;
      warnings: RoiWarning[];
    };
    return { ...out, body: asBuffer(out.body) };
  }

  /**
   * Runs the backbone on an encoded image: the feature map `[1, C, H, W]` (NCHW), encoded as JSON or
   * `.npy`. `image` is the file's bytes or its base64 text, decoded in the worker.
   */
  async features(
    image: Uint8Array | string,
    format: 'json' | 'npy',
    maxSide?: number,
    options: RunOptions = {},
  ): Promise<EncodedWork> {
    const transfers = typeof image === 'string' ? [] : ownedBuffers([image]);
    const out = (await this.#run(
      { kind: 'features', image, format, maxSide },
      transfers,
      options,
    )) as EncodedWork;
    return { ...out, body: asBuffer(out.body) };
  }

  /**
   * Runs a kernel outside the `/v1` pipeline (`ps_roi_align`, `ps_roi_pool`, `rotated_roi_align`,
   * `multiscale_roi_align` under `/v2`). Its buffers (boxes, the maps' `.npy` bytes) move to the worker.
   */
  kernel(task: KernelTask, options: RunOptions = {}): Promise<KernelResult> {
    const maps = Array.isArray(task.features) ? task.features : [task.features];
    const npys = maps.map((f) => (f.encoding === 'npy' ? f.bytes : undefined));
    return this.#run(
      { kind: 'kernel', kernel: task },
      ownedBuffers([task.boxes.data, ...npys]),
      options,
    ) as Promise<KernelResult>;
  }

  /**
   * The backbone as an ONNX model (`GET /v1/backbone/model.onnx`), or null when it is a tfjs user
   * model. The built-in net is exported in the worker, which holds its weights.
   */
  async onnxModel(options: RunOptions = {}): Promise<Buffer | null> {
    const bytes = (await this.#run({ kind: 'onnxModel' }, [], options)) as Uint8Array | null;
    return bytes === null ? null : asBuffer(bytes);
  }

  /** The backbone description (waits until a worker has loaded it). */
  describe(): Promise<BackboneInfo> {
    return this.#run({ kind: 'describe' }) as Promise<BackboneInfo>;
  }

  /**
   * Waits until every worker has loaded and warmed its backbone (one `describe` per worker, sent at
   * once: a worker busy with one takes no other, so each lands on a different thread).
   */
  async warmup(): Promise<BackboneInfo> {
    const all = await Promise.all(Array.from({ length: this.size }, () => this.describe()));
    return all[0];
  }

  /** Stops the workers (after the HTTP server has drained). */
  async close(): Promise<void> {
    this.#closing = true;
    await this.#piscina.destroy();
  }
}
