/**
 * ONNX Runtime as a backbone engine: the session (one per worker thread), the image → input tensor
 * conversion (torchvision's convention: RGB float32 NCHW in [0, 1], optional mean/std, zero padding to
 * a size divisibility), and the comparison the start-up check uses.
 *
 * onnxruntime-node is imported lazily, so that a process that never uses it (the tfjs engine) does not
 * load its 45 MB native library, and so that a missing or broken install is a reason in words
 * (`BACKBONE_ENGINE=auto` then falls back to tfjs wasm) instead of a failed import of this module.
 */
import type * as Ort from 'onnxruntime-node';
import type { FeatureMap } from '../ops/types.js';
import { freeNow } from '../runtime/free-now.js';

export type OrtModule = typeof Ort;
export type OrtSession = Ort.InferenceSession;

let ortLoad: Promise<OrtModule> | undefined;

/**
 * onnxruntime-node, loaded once per thread.
 * @throws Error with the load error's first line when it cannot be loaded
 */
export async function loadOrt(): Promise<OrtModule> {
  ortLoad ??= import('onnxruntime-node').catch((err: unknown) => {
    ortLoad = undefined;
    const message = err instanceof Error ? err.message : String(err);
    throw new Error(`onnxruntime-node could not be loaded: ${message.split('\n')[0]}`, { cause: err });
  });
  return ortLoad;
}

/** ONNX Runtime's version (`1.30.0`), from the loaded module. */
export function ortVersion(ort: OrtModule): string {
  return ort.env.versions.node ?? ort.env.versions.common;
}

/**
 * An inference session on the CPU.
 *
 * @param intraOpThreads - threads one `run` may use. The pool runs `WORKERS` sessions at once (one per
 *   worker thread), so more than `cores / WORKERS` each would oversubscribe the cores: ORT's spinning
 *   threads then steal time from the other workers' sessions and the RoI kernels (see `config.ts`);
 *   they do not spin while idle (below).
 *   Inter-op parallelism stays 1: the graphs are chains of convolutions, and a second pool would
 *   double the thread count for nothing.
 */
export async function createSession(model: Uint8Array, intraOpThreads: number): Promise<OrtSession> {
  const ort = await loadOrt();
  return ort.InferenceSession.create(model, {
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    intraOpNumThreads: intraOpThreads,
    interOpNumThreads: 1,
    // No spinning: ORT's intra-op threads otherwise busy-wait between (and after) runs, taking cores
    // from the other workers and the HTTP thread. With WORKERS=1 on 2 cores (2 intra-op threads) the
    // server spent 68 ms of CPU per image request with spinning, 24 ms without, at the same rate
    // (`npm run bench -- throughput`); with one thread per worker (the default) nothing spins anyway.
    extra: { session: { intra_op: { allow_spinning: '0' } } },
    // No CPU arena: with it, ORT keeps the largest run's buffers for good (a 4096² image leaves GBs in
    // each worker), native memory that WORKER_MAX_MEMORY_MB's heap + external measure never sees, so
    // such a worker would never be recycled. Without it each run frees its buffers; the built-in net
    // at 640×480 ran as fast either way (23.6–28.1 vs 25.5–28.4 ms here, within the noise).
    enableCpuMemArena: false,
  });
}

/** How RGB bytes become the model's input (see {@link rgbToInput}). */
export interface InputTransform {
  /** Subtracted per channel after /255. Default `[0, 0, 0]`. */
  mean?: readonly [number, number, number];
  /** Divides per channel after the mean. Default `[1, 1, 1]`. */
  std?: readonly [number, number, number];
  /** Pad height and width up to a multiple of this with zeros (bottom/right). Default 1 (none). */
  sizeDivisibility?: number;
}

/** The padded input size for an image: each side rounded up to a multiple of `divisibility`. */
export function paddedSize(width: number, height: number, divisibility = 1): [number, number] {
  const d = Math.max(1, divisibility);
  return [Math.ceil(width / d) * d, Math.ceil(height / d) * d];
}

/**
 * RGB `[H, W, 3]` uint8 → `[1, 3, Hp, Wp]` float32: `(v / 255 − mean[c]) / std[c]`, then zeros in the
 * padding at the bottom and right, which is what torchvision's `GeneralizedRCNNTransform` does
 * (normalize, then `batch_images` pads the normalized image with zeros up to `size_divisible`).
 */
export function rgbToInput(
  rgb: Uint8Array,
  width: number,
  height: number,
  transform: InputTransform = {},
): { data: Float32Array; dims: [1, 3, number, number] } {
  const [pw, ph] = paddedSize(width, height, transform.sizeDivisibility);
  const mean = transform.mean ?? [0, 0, 0];
  const std = transform.std ?? [1, 1, 1];
  const plane = pw * ph;
  const data = new Float32Array(3 * plane);
  for (let c = 0; c < 3; c++) {
    // Two float32 steps like torchvision's ToTensor (v / 255) and Normalize ((x − mean) / std).
    const m = Math.fround(mean[c]);
    const s = Math.fround(std[c]);
    const base = c * plane;
    for (let y = 0; y < height; y++) {
      const row = base + y * pw;
      for (let x = 0; x < width; x++) {
        const v = Math.fround(rgb[3 * (y * width + x) + c] / 255);
        data[row + x] = Math.fround(v - m) / s;
      }
    }
  }
  return { data, dims: [1, 3, ph, pw] };
}

/**
 * Runs the session on one input; returns every output, in the session's output order, as NCHW
 * feature maps (copied into plain ArrayBuffers, which the pool may transfer between threads; ORT's
 * own output memory may be native, which Node 22+ refuses to transfer).
 *
 * The input is consumed: its memory is released once the run has read it (every view on it reads as
 * empty afterwards), so pass a fresh array (as {@link rgbToInput} makes).
 *
 * @throws Error when an output is not a float32 4-D tensor
 */
export async function runSession(
  session: OrtSession,
  input: { data: Float32Array; dims: readonly number[] },
): Promise<FeatureMap[]> {
  const ort = await loadOrt();
  const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', input.data, [...input.dims]) };
  try {
    const results = await session.run(feeds);
    return session.outputNames.map((name) => {
      const out = results[name];
      try {
        if (out.type !== 'float32' || out.dims.length !== 4)
          throw new Error(
            `ONNX output '${name}' is ${out.type} [${out.dims.join(', ')}], expected float32 [1, C, H, W]`,
          );
        const [n, c, h, w] = out.dims;
        return {
          data: new Float32Array(out.data as Float32Array),
          shape: [n, c, h, w],
          layout: 'NCHW' as const,
        };
      } finally {
        out.dispose();
      }
    });
  } finally {
    // The input (3.7 MB at 640×480) goes now, once the outputs are copied (an output may share its
    // memory) or the run failed, not at the next full collection, which V8 schedules for every
    // ~64 MB of such buffers (see src/runtime/free-now.ts).
    freeNow(input.data);
  }
}

/** `(c, y, x)` value of a `[1, C, H, W]` map in either layout. */
function at(fm: FeatureMap, ch: number, y: number, x: number): number {
  const [, c, h, w] = fm.shape;
  return fm.layout === 'NCHW' ? fm.data[(ch * h + y) * w + x] : fm.data[(y * w + x) * c + ch];
}

/**
 * How far `a` is from `reference`: max |a − reference|, the scale max |reference|, and their ratio.
 * @throws Error when the logical shapes differ
 */
export function compareFeatures(
  a: FeatureMap,
  reference: FeatureMap,
): { maxAbs: number; scale: number; relative: number } {
  if (a.shape.join() !== reference.shape.join())
    throw new Error(`shapes differ: [${a.shape.join(', ')}] vs [${reference.shape.join(', ')}]`);
  const [, c, h, w] = a.shape;
  let maxAbs = 0;
  let scale = 0;
  for (let ch = 0; ch < c; ch++)
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++) {
        const r = at(reference, ch, y, x);
        maxAbs = Math.max(maxAbs, Math.abs(at(a, ch, y, x) - r));
        scale = Math.max(scale, Math.abs(r));
      }
  return { maxAbs, scale, relative: scale > 0 ? maxAbs / scale : maxAbs };
}

/**
 * A deterministic probe image for start-up checks: every pixel different (so padding and stride
 * misalignments show), sides not multiples of 16 (so the asymmetric `same` padding is exercised).
 */
export function probeImage(width = 83, height = 61): { rgb: Uint8Array; width: number; height: number } {
  const rgb = new Uint8Array(width * height * 3);
  for (let i = 0; i < rgb.length; i++) rgb[i] = Math.imul(i + 12345, 2654435761) >>> 24;
  return { rgb, width, height };
}

/** `BACKBONE_ENGINE`: what runs the backbone. */
export type EngineChoice = 'auto' | 'tfjs' | 'onnx';

/**
 * Picks the engine for a network both engines can run (the built-in one). `auto`: tfjs when its
 * native backend (tfjs-node) runs, else ONNX Runtime when it loads, else tfjs on its backend (wasm).
 * `onnx` fails when ONNX Runtime cannot load; the tfjs `cpu` backend is never picked here (it runs
 * only when `TF_BACKEND=cpu` says so).
 *
 * @param tfjs - the tfjs backend in use (`initTensorFlow`'s result)
 * @returns the engine and why, e.g. "onnx: auto: tfjs-node not in use (…); ONNX Runtime 1.30.0 loaded"
 * @throws Error for `onnx` when onnxruntime-node cannot be loaded
 */
export async function chooseEngine(
  choice: EngineChoice,
  tfjs: { backend: string; reason: string; tfjsNodeError: string | null },
): Promise<{ engine: 'tfjs' | 'onnx'; reason: string }> {
  if (choice === 'tfjs')
    return { engine: 'tfjs', reason: `tfjs: configured (BACKBONE_ENGINE=tfjs); ${tfjs.reason}` };
  if (choice === 'onnx') {
    const ort = await loadOrt();
    return {
      engine: 'onnx',
      reason: `onnx: configured (BACKBONE_ENGINE=onnx); ONNX Runtime ${ortVersion(ort)} loaded`,
    };
  }
  if (tfjs.backend === 'tensorflow')
    return { engine: 'tfjs', reason: 'tfjs: auto: @tensorflow/tfjs-node loaded (native TensorFlow)' };
  const noNative = `tfjs-node not in use (${tfjs.tfjsNodeError ?? `TF_BACKEND=${tfjs.backend}`})`;
  try {
    const ort = await loadOrt();
    return { engine: 'onnx', reason: `onnx: auto: ${noNative}; ONNX Runtime ${ortVersion(ort)} loaded` };
  } catch (err) {
    return { engine: 'tfjs', reason: `tfjs: auto: ${noNative}; ${(err as Error).message}; ${tfjs.reason}` };
  }
}

/** The start-up check's tolerance: max |ORT − tfjs| ≤ this × max |tfjs feature|. */
export const ENGINE_TOLERANCE = 1e-4;

/**
 * Compares the two engines' features of the probe image.
 * @returns the difference, when within {@link ENGINE_TOLERANCE}
 * @throws Error naming both numbers when it is not (the service then refuses to start)
 */
export function checkAgreement(
  ort: FeatureMap,
  tfjs: FeatureMap,
  probe: [number, number],
  tfjsBackend: string,
): { maxAbs: number; relative: number; probe: [number, number] } {
  let d: ReturnType<typeof compareFeatures>;
  try {
    d = compareFeatures(ort, tfjs);
  } catch (err) {
    throw new Error(
      `ONNX Runtime and tfjs disagree on the ${probe[0]}×${probe[1]} probe image: ${(err as Error).message}`,
      { cause: err },
    );
  }
  if (!(d.relative <= ENGINE_TOLERANCE) || !(d.scale > 0)) {
    throw new Error(
      `ONNX Runtime and tfjs (${tfjsBackend}) disagree on the ${probe[0]}×${probe[1]} probe image: ` +
        `max |difference| ${d.maxAbs.toExponential(3)} is ${d.relative.toExponential(3)} of the feature scale ` +
        `${d.scale.toExponential(3)} (tolerance ${ENGINE_TOLERANCE}); refusing to serve features that depend on the engine. ` +
        'Set BACKBONE_ENGINE=tfjs to run without ONNX Runtime.',
    );
  }
  return { maxAbs: d.maxAbs, relative: d.relative, probe };
}

/**
 * A session that agrees with tfjs: runs `model` and `reference` on the {@link probeImage} and compares
 * every output with {@link checkAgreement}; releases the session and throws when they differ.
 *
 * @param reference - the tfjs features of the probe, one map per model output, in order
 */
export async function checkedSession(
  model: Uint8Array,
  threads: number,
  reference: (probe: { rgb: Uint8Array; width: number; height: number }) => Promise<FeatureMap[]>,
  tfjsBackend = 'tfjs',
): Promise<{ session: OrtSession; check: { maxAbs: number; relative: number; probe: [number, number] } }> {
  const session = await createSession(model, threads);
  try {
    const probe = probeImage();
    const size: [number, number] = [probe.width, probe.height];
    const ort = await runSession(session, rgbToInput(probe.rgb, probe.width, probe.height));
    const tfjs = await reference(probe);
    if (ort.length !== tfjs.length)
      throw new Error(`the ONNX model has ${ort.length} outputs, tfjs ${tfjs.length}`);
    let worst = { maxAbs: 0, relative: 0, probe: size };
    for (let i = 0; i < ort.length; i++) {
      const c = checkAgreement(ort[i], tfjs[i], size, tfjsBackend);
      if (c.relative >= worst.relative) worst = c;
    }
    return { session, check: worst };
  } catch (err) {
    await session.release();
    throw err;
  }
}
