/**
 * What `TF_BACKEND=auto` must choose on this machine, decided by the test itself: tfjs-node when
 * `@tensorflow/tfjs-node` imports (an optionalDependency: absent on CI, present on a developer's
 * machine that installed it), else wasm with tfjs-node's load error. Tests expect this instead of
 * assuming wasm, so they hold with and without tfjs-node.
 */
import { expect } from 'vitest';

let loads: Promise<boolean> | undefined;

/** Whether `@tensorflow/tfjs-node` can be imported here (checked once). */
export function tfjsNodeLoads(): Promise<boolean> {
  // A variable specifier: the package may be absent at compile time too.
  const specifier = '@tensorflow/tfjs-node';
  loads ??= import(specifier).then(
    () => true,
    () => false,
  );
  return loads;
}

/**
 * The backend fields `/readyz`, `/v1/backbone` and `initTensorFlow` report under `auto`, as asymmetric
 * matchers: `{ backend, backendReason, tfjsNodeError }`.
 */
export async function autoBackend(): Promise<{
  backend: string;
  backendReason: unknown;
  tfjsNodeError: unknown;
}> {
  return (await tfjsNodeLoads())
    ? { backend: 'tensorflow', backendReason: 'auto: @tensorflow/tfjs-node loaded', tfjsNodeError: null }
    : {
        backend: 'wasm',
        backendReason: expect.stringMatching(/^auto: @tensorflow\/tfjs-node unavailable \(.+\); using wasm/),
        tfjsNodeError: expect.stringMatching(/^@tensorflow\/tfjs-node could not be loaded: \S/),
      };
}

/**
 * The engine fields `/readyz` and `/v1/backbone` report under `BACKBONE_ENGINE=auto`: tfjs where
 * tfjs-node loads, else ONNX Runtime (a dependency, so always there), and `featureBackend`: what an
 * answer's `featureMap.backend` names (`tensorflow` or `onnxruntime`).
 */
export async function autoEngine(): Promise<{
  engine: string;
  engineReason: unknown;
  featureBackend: string;
}> {
  return (await tfjsNodeLoads())
    ? {
        engine: 'tfjs',
        engineReason: 'tfjs: auto: @tensorflow/tfjs-node loaded (native TensorFlow)',
        featureBackend: 'tensorflow',
      }
    : {
        engine: 'onnx',
        engineReason: expect.stringMatching(
          /^onnx: auto: tfjs-node not in use \(@tensorflow\/tfjs-node could not be loaded: .+\); ONNX Runtime \d+\.\d+\.\d+ loaded$/,
        ),
        featureBackend: 'onnxruntime',
      };
}
