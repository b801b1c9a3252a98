/**
 * The built-in backbone as a {@link Backbone}: the network of `builtin.ts` (and its pyramid,
 * `pyramid.ts`) on the engine `BACKBONE_ENGINE` picks: tfjs, or ONNX Runtime on the `exportOnnx` graph
 * with the same weights, checked against tfjs on a probe image first.
 */
import type { FeatureMap } from '../ops/types.js';
import {
  BUILTIN_CHANNELS,
  BUILTIN_NETWORK,
  BUILTIN_SEED,
  BUILTIN_STRIDE,
  buildLayersModel,
  describeNetwork,
  networkWeights,
  type BackboneDescription,
} from './builtin.js';
import type { Backbone, BackbonePyramid, LoadBackboneOptions } from './types.js';
import {
  BUILTIN_INPUT_RANGE,
  REFERENCE_INPUT,
  UNLIMITED,
  backendFacts,
  checkImage,
  readFeatures,
  toInput,
  type BackboneLimits,
  type RgbImage,
} from './input.js';
import { checkedSession, chooseEngine, rgbToInput, runSession, type OrtSession } from './onnx-engine.js';
import { exportOnnx } from './onnx-export.js';
import {
  PYRAMID_CHANNELS,
  PYRAMID_NETWORK,
  PYRAMID_OUTPUTS,
  PYRAMID_STRIDES,
  describePyramid,
} from './pyramid.js';
import { currentBackend, tf } from './tf.js';

/**
 * The built-in net on the chosen engine. On `onnx` the tfjs model exists only for the start-up check:
 * both engines run a probe image and must agree within `ENGINE_TOLERANCE` of the feature scale, or
 * loading fails (the service refuses to start); then the tfjs model is disposed.
 */
export async function builtinBackbone(
  stride: number,
  limits: BackboneLimits,
  opts: LoadBackboneOptions,
): Promise<Backbone> {
  if (stride !== BUILTIN_STRIDE) {
    throw new Error(`The built-in backbone has stride ${BUILTIN_STRIDE}; the configured stride is ${stride}`);
  }
  const seed = opts.seed ?? BUILTIN_SEED;
  const weights = networkWeights(BUILTIN_NETWORK, seed);
  const tfjsBackend = currentBackend() ?? {
    backend: tf.getBackend(),
    reason: backendFacts().backendReason,
    tfjsNodeError: null,
  };
  const { engine, reason: engineReason } = await chooseEngine(opts.engine ?? 'auto', tfjsBackend);
  const onnxBytes = () => exportOnnx(BUILTIN_NETWORK, weights, { seed });
  const model = buildLayersModel(BUILTIN_NETWORK, weights);
  const name = 'builtin-inception-s16';
  // `lim`: the configured limits, or none for the engine check's probe (a small fixed image that
  // must run even where MAX_IMAGE_PIXELS is set lower).
  const tfjsRun = async (image: RgbImage, lim: BackboneLimits = limits) =>
    readFeatures(
      // apply (not predict): predict slices the input into batches, an extra copy of the image.
      tf.tidy(() => model.apply(toInput(image, BUILTIN_INPUT_RANGE, lim), { training: false }) as tf.Tensor),
      name,
    );
  const tfjsExtract = (image: RgbImage) => tfjsRun(image);
  // The pyramid is a second model (the same weights for the shared layers), built when first asked
  // for: requests without `pyramid` never pay for it, and run exactly the model they always ran.
  let pyramidModel: tf.LayersModel | undefined;
  const pyramidWeights = () => networkWeights(PYRAMID_NETWORK, seed);
  const tfjsPyramid = async (image: RgbImage, lim: BackboneLimits = limits) => {
    pyramidModel ??= buildLayersModel(PYRAMID_NETWORK, pyramidWeights(), PYRAMID_OUTPUTS);
    const net = pyramidModel;
    const outputs = tf.tidy(
      () => net.apply(toInput(image, BUILTIN_INPUT_RANGE, lim), { training: false }) as tf.Tensor[],
    );
    // readFeatures disposes each; read them one by one so a failure still frees the rest.
    const maps: FeatureMap[] = [];
    try {
      for (const out of outputs) maps.push(await readFeatures(out, `${name} pyramid`));
    } finally {
      tf.dispose(outputs);
    }
    return maps;
  };
  const pyramid: BackbonePyramid = {
    strides: PYRAMID_STRIDES,
    channels: PYRAMID_CHANNELS,
    extract: (image) => tfjsPyramid(image),
  };
  let extract = tfjsExtract;
  let engineCheck: BackboneDescription['engineCheck'] = null;
  const sessions: OrtSession[] = [];
  if (engine === 'onnx') {
    const threads = opts.onnxThreads ?? 1;
    let checked: Awaited<ReturnType<typeof checkedSession>>;
    try {
      checked = await checkedSession(
        opts.onnxModelForTest ?? onnxBytes(),
        threads,
        async (probe) => [await tfjsRun(probe, UNLIMITED)],
        tf.getBackend(),
      );
    } catch (err) {
      throw new Error(`Built-in backbone on ONNX Runtime: ${(err as Error).message}`, { cause: err });
    } finally {
      // The tfjs model has done its part (the check); its weights need not stay in memory.
      model.dispose();
    }
    engineCheck = checked.check;
    const session = checked.session;
    sessions.push(session);
    extract = async (image: RgbImage) => {
      checkImage(image, limits);
      const [features] = await runSession(session, rgbToInput(image.rgb, image.width, image.height));
      return features;
    };
    // The pyramid's session is made, and checked against the tfjs pyramid, on first use (as above).
    let pyramidSession: Promise<OrtSession> | undefined;
    pyramid.extract = async (image: RgbImage) => {
      checkImage(image, limits);
      pyramidSession ??= checkedSession(
        exportOnnx(PYRAMID_NETWORK, pyramidWeights(), { seed, outputs: [...PYRAMID_OUTPUTS] }),
        threads,
        async (probe) => {
          try {
            return await tfjsPyramid(probe, UNLIMITED);
          } finally {
            pyramidModel?.dispose();
            pyramidModel = undefined;
          }
        },
        tf.getBackend(),
      ).then(
        (c) => {
          sessions.push(c.session);
          return c.session;
        },
        (err: unknown) => {
          pyramidSession = undefined;
          throw err;
        },
      );
      return runSession(await pyramidSession, rgbToInput(image.rgb, image.width, image.height));
    };
  }
  return {
    name,
    stride: BUILTIN_STRIDE,
    channels: BUILTIN_CHANNELS,
    limits,
    engine,
    extract,
    pyramid,
    describe: () => {
      const layers = describeNetwork(BUILTIN_NETWORK, REFERENCE_INPUT);
      const last = layers[layers.length - 1];
      return {
        name,
        backend: tf.getBackend(),
        ...backendFacts(),
        engine,
        engineReason,
        engineCheck,
        inputChannels: 3,
        outputChannels: BUILTIN_CHANNELS,
        stride: BUILTIN_STRIDE,
        receptiveField: last.receptiveField,
        totalParams: layers.reduce((sum, l) => sum + l.params, 0),
        totalMultiplyAdds: layers.reduce((sum, l) => sum + l.multiplyAdds, 0),
        referenceInput: REFERENCE_INPUT,
        inputNormalization:
          engine === 'onnx'
            ? 'RGB / 255 − 0.5 (each value in [−0.5, 0.5]); ONNX Runtime gets RGB / 255 NCHW, the − 0.5 is in the graph'
            : 'RGB / 255 − 0.5 (each value in [−0.5, 0.5]), NHWC',
        layers,
        pyramid: describePyramid(REFERENCE_INPUT),
      };
    },
    onnxModel: onnxBytes,
    warmup: async () => {
      await extract({ rgb: new Uint8Array(64 * 64 * 3), width: 64, height: 64 });
    },
    dispose: () => {
      // On `onnx` the base tfjs model went right after the start-up check.
      if (engine === 'tfjs') model.dispose();
      pyramidModel?.dispose();
      for (const session of sessions) session.release().catch(() => undefined);
    },
  };
}
