/**
 * The boundary between the HTTP thread's pool (`./pool.ts`) and the worker threads (`./worker.ts`): the
 * messages they exchange, the data a worker starts with, and who owns which buffer. Both sides import
 * this module and nothing of each other.
 *
 * **Buffer ownership.** A message's whole, unshared ArrayBuffers are *transferred* (moved: the sender
 * loses them) rather than copied: a task's boxes and file bytes go to the worker ({@link taskTransfers}),
 * a result's outputs and encoded bodies come back ({@link roiTransfers}, the worker's replies). Strings
 * (base64 from JSON) and shared memory (the split's SharedArrayBuffers, the retire board) are not moved.
 */
import type { Config } from '../config.js';
import type { DiffOptions } from '../core/diff-options.js';
import type { EncodedBody } from '../core/encode.js';
import type { RoiResult, Stage } from '../core/results.js';
import type { RoiLimits, RoiTask } from '../core/task.js';
import type { KernelTask } from '../oip/kernel-task.js';
import type { OutputDtype } from '../tensors/float16.js';
import type { RetireReason } from './recycle.js';
import type { SplitShare } from './split.js';

/** Data every worker starts with (`Piscina.workerData`). */
export interface WorkerInit {
  tfBackend: Config['tfBackend'];
  backboneEngine: Config['backboneEngine'];
  /** ONNX Runtime intra-op threads of this worker's session. */
  backboneThreads: number;
  backboneDir: string | undefined;
  backboneOutputNode: string | undefined;
  backboneStride: number | undefined;
  /** ONNX user backbones' input transform and strides (`BACKBONE_MEAN`, … see `config.ts`). */
  backboneOnnx: Pick<Config, 'backboneMean' | 'backboneStd' | 'backboneSizeDivisibility' | 'backboneStrides'>;
  /** The backbone refuses images with a larger aspect ratio (`MAX_IMAGE_ASPECT`). */
  maxImageAspect: number;
  limits: RoiLimits;
  /** A worker whose memory passes this retires after its reply (`WORKER_MAX_MEMORY_MB`); 0: never. */
  maxMemoryBytes: number;
  /** The {@link RetireBoard}'s shared memory. */
  retireBoard: SharedArrayBuffer;
}

/** A message to a worker. */
export type WorkerTask =
  | { kind: 'roi'; task: RoiTask }
  | {
      kind: 'roiEncoded';
      task: RoiTask;
      format: 'json' | 'npy' | 'safetensors';
      encoding: 'base64' | 'array';
      /** Element type of the outputs (`src/tensors/float16.ts`); float32 when absent. */
      dtype?: OutputDtype;
      /** Share the operators with idle workers (`src/runtime/split.ts`); `id` names the messages. */
      split?: { id: number; workers: number };
    }
  | { kind: 'roiHelp'; share: SplitShare }
  | { kind: 'diff'; task: RoiTask; options: DiffOptions }
  | { kind: 'features'; image: Uint8Array | string; format: 'json' | 'npy'; maxSide?: number }
  | { kind: 'describe' }
  | { kind: 'onnxModel' }
  | { kind: 'kernel'; kernel: KernelTask };

/** A response body the worker encoded, with the stage timings (ms) for `Server-Timing`. */
export interface EncodedWork extends Omit<EncodedBody, 'body'> {
  body: Buffer;
  /** Stage timings (ms); `queue` is the wait for a worker, added by the pool. */
  timings: Partial<Record<Stage | 'queue', number>>;
}

/**
 * Per-reply bookkeeping: which thread answered, how many tfjs tensors it holds now, and whether it
 * retires (the pool then ends it and piscina starts a fresh one; see `src/runtime/recycle.ts`).
 */
export interface WorkerStats {
  threadId: number;
  tensors: number;
  /** When the worker took the task (`performance.timeOrigin + performance.now()`, ms since the epoch). */
  startedAt: number;
  retire?: RetireReason;
}

/** A worker's answer; errors travel as data because structured cloning drops their class. */
export type WorkerReply =
  | { ok: true; value: unknown; stats: WorkerStats }
  | {
      ok: false;
      error: { status: number; message: string; field: string; expected: string };
      stats: WorkerStats;
    };

/** A task the pool stopped, as reported to {@link WorkPool.onCancelled} (metrics). */
export interface CancelledTask {
  reason: 'client_gone' | 'timeout';
  /** `queued`: dropped from the queue, it never ran; `running`: stopped at the worker's next check. */
  when: 'queued' | 'running';
  /** Boxes its kernels started, summed over the ops (0 when it never ran). */
  boxesStarted: number;
  /** Boxes × ops it asked for (0 for tasks without boxes). */
  boxesRequested: number;
}

/**
 * Buffers that can be moved to the other thread instead of copied: whole, unshared ArrayBuffers only
 * (never a Buffer pool slab, never a view into a larger buffer). Used on both sides of the pool.
 *
 * Never pass a buffer a native addon allocated (sharp's `toBuffer()` output, for one): Node 22 and
 * later refuse to transfer such "external" memory, and the whole reply then fails with
 * `DataCloneError`. Nothing in JavaScript tells them apart, so copy them first (`new Uint8Array(buf)`).
 */
export function ownedBuffers(views: Array<ArrayBufferView | null | undefined>): ArrayBuffer[] {
  const out = new Set<ArrayBuffer>();
  for (const view of views) {
    if (!view) continue;
    const buffer = view.buffer;
    if (buffer instanceof ArrayBuffer && view.byteOffset === 0 && view.byteLength === buffer.byteLength) {
      out.add(buffer);
    }
  }
  return [...out];
}

/** The buffers of a task that move to the worker: boxes, and the image or `.npy` bytes when sent as files. */
export function taskTransfers(task: RoiTask): ArrayBuffer[] {
  const image = typeof task.image === 'string' ? undefined : task.image;
  const npy = task.features?.encoding === 'npy' ? task.features.bytes : undefined;
  return ownedBuffers([task.boxes.data, image, npy]);
}

/** The buffers of a RoI result that move back to the pool: pixels, feature map, boxes, outputs. */
export function roiTransfers(result: RoiResult): ArrayBuffer[] {
  return ownedBuffers([
    result.rgb,
    result.features?.data,
    result.boxes.data,
    result.opBoxes.data,
    ...Object.values(result.outputs).map((p) => p?.data),
  ]);
}
