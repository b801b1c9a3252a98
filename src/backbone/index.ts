/**
 * The backbone: RGB pixels `[H, W, 3]` → feature map `[1, C, ceil(H/stride), ceil(W/stride)]` (NHWC from
 * tfjs, NCHW from ONNX Runtime), and for pyramid backbones one map per level. Either the built-in net
 * (`builtin.ts`, run by `builtin-backbone.ts` on tfjs or ONNX Runtime) or a user's model from a local
 * directory (`user-backbones.ts`: tfjs `model.json` or ONNX `model.onnx`). This file holds the
 * interface and `loadBackbone`; the shared input checks are `input.ts`.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { BUILTIN_STRIDE } from './builtin.js';
import { builtinBackbone } from './builtin-backbone.js';
import {
  DEFAULT_MAX_INPUT_ASPECT,
  DEFAULT_MAX_INPUT_PIXELS,
  DEFAULT_MAX_INPUT_SIDE,
  type BackboneLimits,
} from './input.js';
import { currentBackend, initTensorFlow } from './tf.js';
import { userBackbone, userOnnxBackbone } from './user-backbones.js';
import type { Backbone, LoadBackboneOptions } from './types.js';
import { USER_ONNX_FILE } from './user-onnx.js';

export type { BackboneDescription, LayerDescription } from './builtin.js';
export type { PyramidDescription, PyramidLevelDescription } from './builtin.js';
export { CONV1_FILTERS } from './builtin.js';
export { currentBackend, initTensorFlow, getTf, type TensorFlowBackend, type BackendChoice } from './tf.js';
export type { EngineChoice } from './onnx-engine.js';

export * from './input.js';
export type { Backbone, BackbonePyramid, LoadBackboneOptions } from './types.js';

/**
 * Loads the backbone; initialises the tfjs backend (`auto`) first if nobody has.
 *
 * @param opts.modelDir - User model directory; default the built-in net.
 * @param opts.outputNode - User model output; default its only output.
 * @param opts.stride - Expected stride, default 16.
 * @param opts.inputRange - User model input range, default `[0, 1]`.
 * @param opts.maxInputPixels - Backbone pixel limit, default 4096².
 * @param opts.maxInputSide - Backbone side limit, default 8192.
 * @param opts.maxInputAspect - Backbone aspect-ratio limit, default 32.
 * @param opts.seed - Built-in weight seed, default {@link BUILTIN_SEED}.
 * @throws Error with a clear message when a user model is missing, malformed, does not output a rank-4
 *   tensor, or its stride differs from `opts.stride` (main.ts refuses to start).
 */
export async function loadBackbone(opts: LoadBackboneOptions = {}): Promise<Backbone> {
  if (currentBackend() === undefined) await initTensorFlow({ backend: 'auto' });
  const stride = opts.stride ?? BUILTIN_STRIDE;
  const limits: BackboneLimits = {
    maxPixels: opts.maxInputPixels ?? DEFAULT_MAX_INPUT_PIXELS,
    maxSide: opts.maxInputSide ?? DEFAULT_MAX_INPUT_SIDE,
    maxAspect: opts.maxInputAspect ?? DEFAULT_MAX_INPUT_ASPECT,
  };
  for (const [name, value] of Object.entries(limits)) {
    if (!(value >= 1)) throw new Error(`Backbone limit ${name} must be >= 1, got ${value}`);
  }
  if (opts.modelDir === undefined) return builtinBackbone(stride, limits, opts);
  // model.onnx runs on ONNX Runtime, model.json on tfjs; with both, BACKBONE_ENGINE=tfjs picks model.json.
  const engine = opts.engine ?? 'auto';
  const hasOnnx = existsSync(join(opts.modelDir, USER_ONNX_FILE));
  if (hasOnnx && engine !== 'tfjs') return userOnnxBackbone(opts.modelDir, opts, limits);
  if (engine === 'onnx')
    throw new Error(
      `BACKBONE_ENGINE=onnx needs ${join(opts.modelDir, USER_ONNX_FILE)}; that directory has none (a tfjs model.json runs with BACKBONE_ENGINE=auto or tfjs)`,
    );
  return userBackbone(opts.modelDir, opts.outputNode, stride, opts.inputRange ?? [0, 1], limits);
}
