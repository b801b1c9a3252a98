/**
 * Worker-thread entry (piscina): runs the CPU-heavy pipeline (image decode, tfjs backbone, RoI
 * kernels) away from the HTTP thread. Each worker loads its own backbone once, at start-up.
 *
 * Results go back as `{ ok, value | error, stats }`: typed errors cross the thread boundary as plain
 * data (structured cloning drops their class), and whole-buffer Float32Arrays are transferred, not
 * copied.
 */
import { parentPort, threadId } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { getTf, initTensorFlow, loadBackbone, type Backbone } from '../backbone/index.js';
import { taskStop } from '../cancel.js';
import { RoiServeError } from '../errors.js';
import { encodeDiff } from '../imaging/diff-body.js';
import { loadFont } from '../imaging/text.js';
import { describeBackbone, executeFeatures, executeRoi, runOpsWith } from '../core/pipeline.js';
import type { PipelineContext } from '../core/results.js';
import { RetireBoard, workerMemoryBytes, type RetireReason } from './recycle.js';
import { encodeFeatures, encodeRoi, type EncodedBody } from '../core/encode.js';
import { decodeImageInput, decodeRoiTask } from '../core/decode-task.js';
import { runKernel } from '../oip/kernel-task.js';
import { npyFloats } from '../tensors/npy.js';
import { freeNow } from './free-now.js';
import { runRanges, splitOps } from './split.js';
import {
  ownedBuffers,
  roiTransfers,
  type EncodedWork,
  type WorkerInit,
  type WorkerReply,
  type WorkerStats,
  type WorkerTask,
} from './protocol.js';

const init = Piscina.workerData as WorkerInit;
const retireBoard = new RetireBoard(init.retireBoard);

let backend: string | null = null;
let tensorCount: () => number = () => 0;
let backbonePromise: Promise<Backbone> | undefined;

function loadBackboneOnce(): Promise<Backbone> {
  backbonePromise ??= (async () => {
    const selected = await initTensorFlow({ backend: init.tfBackend });
    tensorCount = () => getTf().memory().numTensors;
    const backbone = await loadBackbone({
      modelDir: init.backboneDir,
      outputNode: init.backboneOutputNode,
      stride: init.backboneStride,
      mean: init.backboneOnnx.backboneMean,
      std: init.backboneOnnx.backboneStd,
      sizeDivisibility: init.backboneOnnx.backboneSizeDivisibility,
      strides: init.backboneOnnx.backboneStrides,
      engine: init.backboneEngine,
      onnxThreads: init.backboneThreads,
      maxInputAspect: init.maxImageAspect,
    });
    // What ran the backbone, for the answers' featureMap.backend: the tfjs backend, or ONNX Runtime.
    backend = backbone.engine === 'onnx' ? 'onnxruntime' : selected.backend;
    await backbone.warmup();
    // Tells the pool this thread can serve images: `/readyz` counts such workers (src/runtime/pool.ts).
    parentPort?.postMessage({ roiserve: 'ready', threadId });
    return backbone;
  })();
  return backbonePromise;
}

/** Set once the backbone has loaded: a failure after that is the thread's state, not the model's. */
let backboneLoaded = false;
loadBackboneOnce().then(
  () => (backboneLoaded = true),
  () => undefined,
);

/**
 * This thread's stats for a reply, and whether it retires (see `src/runtime/recycle.ts`): after an unexpected
 * failure (a wasm abort corrupts the module for every later task; replacing the thread cannot fix a
 * backbone that never loaded, so that case does not retire), or when its memory is over the bound.
 * A retiring thread marks the shared board first: the pool's balancer then gives it no more tasks.
 */
function replyStats(unexpectedFailure: boolean, startedAt: number): WorkerStats {
  let retire: RetireReason | undefined;
  if (unexpectedFailure && backboneLoaded) retire = 'failure';
  else if (init.maxMemoryBytes > 0 && workerMemoryBytes() > init.maxMemoryBytes) retire = 'memory';
  if (retire !== undefined) retireBoard.mark(threadId);
  return { threadId, tensors: tensorCount(), startedAt, ...(retire ? { retire } : {}) };
}

// (Loading started above, so the first image request does not pay for it; failures surface on use.)
// Parse the diff sheets' fonts now (~0.5 s) rather than in the first /v1/diff; failures surface on use.
try {
  loadFont('normal');
  loadFont('bold');
} catch {
  // reported by the first diff that needs them
}

const ctx: PipelineContext = {
  backbone: loadBackboneOnce,
  backend: () => backend,
  limits: init.limits,
};

/** An encoder's output as the pool's `EncodedWork` (the body still a Uint8Array), `encode` added to the stage timings. */
function encodedWork(
  { body, contentType, filename, encodeMs }: EncodedBody & { encodeMs: number },
  timings: EncodedWork['timings'],
) {
  return { body, contentType, filename, timings: { ...timings, encode: encodeMs } };
}

/**
 * Handles one task from the pool (see `WorkerTask` in `src/runtime/pool.ts`). `cancel` is the task's cancel
 * flag and `timeoutMs` its time limit (`src/cancel.ts`): checked before starting, between stages and
 * before each box; a stopped task answers with a 499 `CancelledError` and the pool tells why.
 */
export default async function handle(
  task: WorkerTask & { cancel?: Int32Array; timeoutMs?: number },
): Promise<WorkerReply> {
  // When this task left the queue (wall clock, comparable across threads): the pool's `queue` time.
  const startedAt = performance.timeOrigin + performance.now();
  let value: unknown;
  let transfers: ArrayBuffer[] = [];
  // The time limit runs from now: waiting in the queue or for this worker to start does not count.
  const stop = taskStop(task.cancel, task.timeoutMs);
  try {
    // Cancelled between being handed to this worker and starting: nothing to do.
    stop.check();
    switch (task.kind) {
      case 'roi': {
        const result = await executeRoi(decodeRoiTask(task.task, init.limits), ctx, stop);
        transfers = roiTransfers(result);
        value = result;
        break;
      }
      case 'roiEncoded': {
        // Encoding runs here too: base64 / JSON of hundreds of MB would stall the HTTP thread.
        const started = performance.now();
        // A large request shares its operators with idle workers (the pool sends them on this message).
        const split = task.split;
        const shared = split
          ? splitOps(
              (share) => parentPort?.postMessage({ roiserve: 'split', id: split.id, share }),
              split.workers,
            )
          : undefined;
        // A float32 .npy answer: the kernel's output gets room for the header, so the file is that
        // array's own buffer, not a copy of it (writeNpy).
        const npyInPlace = task.format === 'npy' && (task.dtype ?? 'float32') === 'float32';
        const ops = shared?.run ?? (npyInPlace ? runOpsWith(npyFloats) : undefined);
        try {
          const result = await executeRoi(decodeRoiTask(task.task, init.limits), ctx, stop, ops);
          stop.check();
          const encoded = encodeRoi(result, task.format, task.encoding, task.dtype, started);
          // The body holds its own copy of the outputs: free theirs now (see src/runtime/free-now.ts).
          for (const pooled of Object.values(result.outputs)) {
            if (pooled?.data.buffer !== encoded.body.buffer) freeNow(pooled?.data);
          }
          transfers = ownedBuffers([encoded.body]);
          value = {
            ...encodedWork(encoded, result.timings),
            boxCount: result.boxes.count,
            ops: result.params.ops,
            // The result's warnings and the encoder's (dtype-overflow), for the header.
            warnings: encoded.warnings,
          };
        } finally {
          // Split outputs lie in this thread's shared arena, read until the body was encoded.
          shared?.release();
        }
        break;
      }
      case 'diff': {
        // Rendering runs here: a sheet costs hundreds of ms of CPU that the HTTP thread must not spend.
        const started = performance.now();
        const result = await executeRoi(decodeRoiTask(task.task, init.limits), ctx, stop);
        stop.check();
        const { encodeMs, boxCount, overlay, warnings, ...encoded } = await encodeDiff(
          result,
          task.options,
          started,
        );
        // A PNG body is sharp's output, whose external memory Node 22+ refuses to transfer
        // (DataCloneError): it is copied (a few hundred KB). The JSON body is an ordinary buffer.
        if (task.options.format === 'json') transfers = ownedBuffers([encoded.body]);
        value = { ...encodedWork({ ...encoded, encodeMs }, result.timings), boxCount, overlay, warnings };
        break;
      }
      case 'features': {
        // undefined: MAX_IMAGE_SIDE alone (the default of executeFeatures).
        const result = await executeFeatures(decodeImageInput(task.image), ctx, task.maxSide, stop);
        stop.check();
        const encoded = encodeFeatures(result, task.format);
        freeNow(result.features.data);
        transfers = ownedBuffers([encoded.body]);
        value = encodedWork(encoded, result.timings);
        break;
      }
      case 'roiHelp':
        // Ranges of another task's boxes, until none is left or the pool asks helpers to yield.
        value = { ranges: runRanges(task.share, true, () => stop.shouldStop()).ranges };
        break;
      case 'describe':
        value = await describeBackbone(ctx);
        break;
      case 'onnxModel': {
        const bytes = (await ctx.backbone()).onnxModel();
        if (bytes) transfers = ownedBuffers([bytes]);
        value = bytes;
        break;
      }
      case 'kernel': {
        const result = runKernel(
          task.kernel,
          () => stop.check(),
          () => stop.shouldStop(),
        );
        transfers = ownedBuffers([result.data, result.levels]);
        value = result;
        break;
      }
    }
  } catch (err) {
    const error =
      err instanceof RoiServeError
        ? { status: err.status, message: err.message, field: err.field, expected: err.expected }
        : {
            status: 500,
            message: err instanceof Error ? (err.stack ?? err.message) : String(err),
            field: '',
            expected: '',
          };
    return { ok: false, error, stats: replyStats(!(err instanceof RoiServeError), startedAt) };
  }
  const reply: WorkerReply = { ok: true, value, stats: replyStats(false, startedAt) };
  if (transfers.length === 0) return reply;
  const movable = { [Piscina.transferableSymbol]: transfers, [Piscina.valueSymbol]: reply };
  return Piscina.move(movable as unknown as Parameters<typeof Piscina.move>[0]) as unknown as WorkerReply;
}
