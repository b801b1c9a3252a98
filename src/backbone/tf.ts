/**
 * TensorFlow.js backend selection. Everything in roiserve imports tfjs from here (`tf`), so there is
 * exactly one `@tensorflow/tfjs-core` instance; `@tensorflow/tfjs-node`, when it loads, registers its
 * `tensorflow` backend on that same instance (it requires the hoisted `@tensorflow/tfjs`).
 *
 * Order for `auto`: tfjs-node (native TensorFlow, fastest) → wasm (XNNPACK with SIMD). The plain `cpu`
 * backend is ~60× slower for convolutions and is used only when configured explicitly, with a loud
 * warning. A backend that fails to start is an error, never a silent fallback to `cpu`.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { getThreadsCount, setThreadsCount, setWasmPaths } from '@tensorflow/tfjs-backend-wasm';

export { tf };

export type BackendChoice = 'auto' | 'tensorflow' | 'wasm' | 'cpu';

export interface InitTensorFlowOptions {
  /** Which backend to use. Default `'auto'`: tfjs-node if it loads, else wasm. */
  backend?: BackendChoice;
  /**
   * Threads for the wasm backend's XNNPACK pool. Default: tfjs's own (the logical core count).
   * Note: tfjs 4.x disables the multi-threaded wasm binary in Node (tfjs issue #3830), so in Node
   * the SIMD single-threaded binary runs and the effective count reported is 1.
   */
  wasmThreads?: number;
  /** Where the loud `cpu` warning goes. Default `console.warn`. */
  warn?: (message: string) => void;
}

export interface TensorFlowBackend {
  /** The tfjs backend name in use: `tensorflow`, `wasm` or `cpu`. */
  backend: string;
  /** Why this backend was chosen, in words (`/readyz`, `/v1/backbone` and the start-up log). */
  reason: string;
  /**
   * Why `@tensorflow/tfjs-node` is not in use when it was tried and failed (`auto`): its load error,
   * e.g. "Cannot find package '@tensorflow/tfjs-node'" when its libtensorflow download failed at
   * install. null when tfjs-node is in use or was not tried (`TF_BACKEND` wasm or cpu).
   */
  tfjsNodeError: string | null;
  /** wasm only: XNNPACK threads in use. */
  wasmThreads?: number;
}

let current: { choice: BackendChoice; result: TensorFlowBackend } | undefined;

/** The tfjs namespace every module shares. */
export function getTf(): typeof tf {
  return tf;
}

/** The backend chosen by the last successful {@link initTensorFlow}, or `undefined` before. */
export function currentBackend(): TensorFlowBackend | undefined {
  return current?.result;
}

/**
 * Selects and initialises the tfjs backend. Idempotent for the same choice.
 *
 * @param opts.backend - `'auto'` (default), `'tensorflow'`, `'wasm'` or `'cpu'`.
 * @param opts.wasmThreads - XNNPACK threads for wasm; default tfjs's (see {@link InitTensorFlowOptions}).
 * @param opts.warn - Sink for the `cpu` warning; default `console.warn`.
 * @returns The backend in use and why.
 * @throws Error when the requested backend (or, for `auto`, wasm) cannot start.
 */
export async function initTensorFlow(opts: InitTensorFlowOptions = {}): Promise<TensorFlowBackend> {
  const choice = opts.backend ?? 'auto';
  const threads = opts.wasmThreads;
  if (threads !== undefined && !(Number.isInteger(threads) && threads >= 1)) {
    throw new Error(`wasmThreads must be an integer >= 1, got ${threads}`);
  }
  if (current?.choice === choice && tf.getBackend() === current.result.backend) return current.result;
  const result = await select(choice, opts);
  // Skips tfjs's per-op debug checks; results are identical.
  tf.env().set('PROD', true);
  current = { choice, result };
  return result;
}

async function select(choice: BackendChoice, opts: InitTensorFlowOptions): Promise<TensorFlowBackend> {
  switch (choice) {
    case 'tensorflow': {
      const failure = await tryTfjsNode();
      if (failure !== undefined)
        throw new Error(`TensorFlow backend 'tensorflow' was requested but ${failure}`);
      return {
        backend: 'tensorflow',
        reason: 'configured: @tensorflow/tfjs-node (native TensorFlow)',
        tfjsNodeError: null,
      };
    }
    case 'wasm':
      return startWasm(opts.wasmThreads, 'configured: wasm (@tensorflow/tfjs-node not tried)', null);
    case 'cpu': {
      if (!(await tf.setBackend('cpu'))) throw new Error('TensorFlow backend cpu failed to start');
      (opts.warn ?? console.warn)(
        'WARNING: TensorFlow.js is running on the plain JavaScript cpu backend because it was configured ' +
          'explicitly. Convolutions are ~60x slower than on wasm; use it for debugging only.',
      );
      return {
        backend: 'cpu',
        reason: 'configured: cpu (slow pure-JavaScript kernels; debugging only)',
        tfjsNodeError: null,
      };
    }
    case 'auto': {
      const failure = await tryTfjsNode();
      if (failure === undefined)
        return { backend: 'tensorflow', reason: 'auto: @tensorflow/tfjs-node loaded', tfjsNodeError: null };
      return startWasm(
        opts.wasmThreads,
        `auto: @tensorflow/tfjs-node unavailable (${failure}); using wasm`,
        failure,
      );
    }
    default:
      throw new Error(
        `Unknown TensorFlow backend '${String(choice)}'; expected auto, tensorflow, wasm or cpu`,
      );
  }
}

/** Loads tfjs-node and switches to it; returns why it could not, or `undefined` on success. */
async function tryTfjsNode(): Promise<string | undefined> {
  // A variable specifier: tfjs-node is an optionalDependency and may be absent at compile time too.
  const specifier = '@tensorflow/tfjs-node';
  try {
    await import(specifier);
  } catch (err) {
    return `@tensorflow/tfjs-node could not be loaded: ${firstLine(err)}`;
  }
  if (tf.findBackendFactory('tensorflow') === null) {
    return '@tensorflow/tfjs-node registered its backend on a different copy of @tensorflow/tfjs-core (versions differ)';
  }
  try {
    if (await tf.setBackend('tensorflow')) return undefined;
    return 'its backend failed to initialise';
  } catch (err) {
    return `its backend failed to initialise: ${firstLine(err)}`;
  }
}

async function startWasm(
  threads: number | undefined,
  reason: string,
  tfjsNodeError: string | null,
): Promise<TensorFlowBackend> {
  // The .wasm binaries ship in the package's dist/; read them from disk, never fetch.
  const require = createRequire(import.meta.url);
  const distDir = join(dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist');
  setWasmPaths(distDir + '/');
  if (threads !== undefined) {
    if (!(Number.isInteger(threads) && threads >= 1))
      throw new Error(`wasmThreads must be an integer >= 1, got ${threads}`);
    setThreadsCount(threads);
  }
  let ok: boolean;
  try {
    ok = await tf.setBackend('wasm');
  } catch (err) {
    throw new Error(`TensorFlow backend wasm failed to start: ${firstLine(err)}`, { cause: err });
  }
  if (!ok) throw new Error(`TensorFlow backend wasm failed to start (binaries looked up in ${distDir})`);
  const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
  const wasmThreads = getThreadsCount();
  return {
    backend: 'wasm',
    reason: `${reason} (${simd ? 'SIMD' : 'no SIMD'}, ${wasmThreads} thread${wasmThreads === 1 ? '' : 's'})`,
    wasmThreads,
    tfjsNodeError,
  };
}

function firstLine(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.split('\n')[0];
}
