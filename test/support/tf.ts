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
