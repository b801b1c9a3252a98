/**
 * User backbones from `BACKBONE_DIR` as {@link Backbone}s: a tfjs model (`model.json`, `user-model.ts`)
 * on tfjs, or an ONNX model (`model.onnx`, `user-onnx.ts`) on ONNX Runtime.
 */
import { basename } from 'node:path';
import type { Backbone, LoadBackboneOptions } from './types.js';
import {
  backendFacts,
  checkImage,
  readFeatures,
  toInput,
  type BackboneLimits,
  type RgbImage,
} from './input.js';
import { tf } from './tf.js';
import { loadUserModel } from './user-model.js';
import { loadUserOnnx, USER_ONNX_FILE } from './user-onnx.js';

/** A `BACKBONE_DIR` holding `model.onnx` (see `user-onnx.ts`): one map, or a pyramid finest first. */
export async function userOnnxBackbone(
  modelDir: string,
  opts: LoadBackboneOptions,
  limits: BackboneLimits,
): Promise<Backbone> {
  const engine = opts.engine ?? 'auto';
  const model = await loadUserOnnx({
    modelDir,
    mean: opts.mean,
    std: opts.std,
    sizeDivisibility: opts.sizeDivisibility,
    strides: opts.strides,
    stride: opts.stride,
    threads: opts.onnxThreads ?? 1,
    engineReason: `onnx: ${engine === 'onnx' ? 'configured (BACKBONE_ENGINE=onnx)' : 'auto'}: BACKBONE_DIR holds ${USER_ONNX_FILE}`,
  });
  const levels = async (image: RgbImage) => {
    checkImage(image, limits);
    return model.run(image);
  };
  // Without the pyramid, image requests read the finest level (the first output).
  const extract = async (image: RgbImage) => (await levels(image))[0];
  return {
    name: model.name,
    stride: model.strides[0],
    channels: model.channels,
    limits,
    engine: 'onnx',
    extract,
    pyramid:
      model.strides.length > 1
        ? { strides: model.strides, channels: model.channels, extract: levels }
        : undefined,
    describe: () => model.describe({ backend: tf.getBackend(), ...backendFacts() }),
    onnxModel: () => model.bytes,
    warmup: async () => {
      await extract({ rgb: new Uint8Array(64 * 64 * 3), width: 64, height: 64 });
    },
    dispose: () => {
      model.release().catch(() => undefined);
    },
  };
}

export async function userBackbone(
  modelDir: string,
  outputNode: string | undefined,
  stride: number,
  inputRange: [number, number],
  limits: BackboneLimits,
): Promise<Backbone> {
  if (!(Number.isInteger(stride) && stride >= 1))
    throw new Error(`Backbone stride must be an integer >= 1, got ${stride}`);
  const model = await loadUserModel(modelDir, outputNode);
  const name = `user:${basename(modelDir)}`;
  // Probe once: a size that is a multiple of the stride, or the model's fixed size.
  const probe = model.fixedInput ?? [stride * 16, stride * 16];
  let outShape: number[];
  try {
    const out = tf.tidy(() => model.run(tf.zeros([1, probe[0], probe[1], 3])));
    outShape = out.shape;
    out.dispose();
  } catch (err) {
    model.dispose();
    throw new Error(
      `Backbone model in ${modelDir}: probe pass on [1, ${probe[0]}, ${probe[1]}, 3] failed: ${(err as Error).message}`,
      { cause: err },
    );
  }
  const refuse = (why: string): never => {
    model.dispose();
    throw new Error(`Backbone model in ${modelDir}: ${why}`);
  };
  if (outShape.length !== 4)
    refuse(`output must be rank 4 [1, H, W, C] (NHWC), got [${outShape.join(', ')}]`);
  const [, oh, ow, channels] = outShape;
  const expected = [probe[0] / stride, probe[1] / stride];
  // 'valid' padding may lose a row or column at the border; anything further off is another stride.
  if (Math.abs(oh - expected[0]) > 1 || Math.abs(ow - expected[1]) > 1) {
    const measured = (probe[0] / oh).toFixed(2);
    refuse(
      `output stride mismatch: input ${probe[0]}×${probe[1]} gives ${oh}×${ow} (stride ≈ ${measured}), ` +
        `the configured stride ${stride} expects ${expected[0]}×${expected[1]}`,
    );
  }
  // A fixed input size is one more limit, so an image of another size is refused before decoding too.
  const ownLimits: BackboneLimits = model.fixedInput
    ? { ...limits, fixedSize: [model.fixedInput[1], model.fixedInput[0]] }
    : limits;
  const extract = async (image: RgbImage) =>
    readFeatures(
      tf.tidy(() => model.run(toInput(image, inputRange, ownLimits))),
      name,
    );
  return {
    name,
    stride,
    channels,
    limits: ownLimits,
    engine: 'tfjs',
    extract,
    onnxModel: () => null,
    describe: () => {
      const layers = model.describeLayers(probe);
      return {
        name,
        backend: tf.getBackend(),
        ...backendFacts(),
        engine: 'tfjs' as const,
        engineReason: 'tfjs: a tfjs model (model.json) runs on tfjs',
        engineCheck: null,
        inputChannels: 3,
        outputChannels: channels,
        stride,
        receptiveField: layers.length ? layers[layers.length - 1].receptiveField : 0,
        totalParams: model.totalParams,
        totalMultiplyAdds: layers.reduce((sum, l) => sum + l.multiplyAdds, 0),
        referenceInput: probe,
        inputNormalization: `RGB mapped linearly from [0, 255] to [${inputRange[0]}, ${inputRange[1]}], NHWC`,
        layers,
      };
    },
    warmup: async () => {
      const [h, w] = model.fixedInput ?? [stride * 4, stride * 4];
      await extract({ rgb: new Uint8Array(h * w * 3), width: w, height: h });
    },
    dispose: () => model.dispose(),
  };
}
