/**
 * "Bring your own backbone": a tfjs LayersModel or GraphModel read from a local directory
 * (`model.json` + the weight shards it lists) with `fs`, never over the network, and checked at
 * start-up (rank-4 output, configured stride) so a bad model refuses to start instead of failing
 * requests.
 */
import { readFile } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { tf } from './tf.js';
import type { LayerDescription } from './builtin.js';

export interface UserModel {
  kind: 'layers-model' | 'graph-model';
  /** Runs the model on `[1, H, W, 3]` and returns the configured output `[1, H', W', C]` (caller disposes). */
  run(input: tf.Tensor4D): tf.Tensor;
  /** Fixed `[H, W]` input size when the model declares one, else `undefined` (any size). */
  fixedInput: [number, number] | undefined;
  /** Sum of the sizes of all weights. */
  totalParams: number;
  /** Per-layer rows at `referenceInput` (LayersModel only; empty for GraphModel). */
  describeLayers(referenceInput: [number, number]): LayerDescription[];
  dispose(): void;
}

/** `tf.io` load handler that reads `model.json` and its weight shards from `modelDir` with `fs`. */
export function fileSystemLoadHandler(modelDir: string): tf.io.IOHandler {
  const dir = resolve(modelDir);
  return {
    load: async () => {
      const jsonPath = join(dir, 'model.json');
      let text: string;
      try {
        text = await readFile(jsonPath, 'utf8');
      } catch (err) {
        throw new Error(
          `Backbone model: cannot read ${jsonPath} (${(err as NodeJS.ErrnoException).code ?? err})`,
          { cause: err },
        );
      }
      let modelJson: tf.io.ModelJSON;
      try {
        modelJson = JSON.parse(text) as tf.io.ModelJSON;
      } catch (err) {
        throw new Error(`Backbone model: ${jsonPath} is not valid JSON (${(err as Error).message})`, {
          cause: err,
        });
      }
      if (modelJson.modelTopology == null)
        throw new Error(`Backbone model: ${jsonPath} has no modelTopology`);
      return tf.io.getModelArtifactsForJSON(modelJson, async (manifest) => {
        const shards: ArrayBuffer[] = [];
        for (const group of manifest) {
          for (const shardPath of group.paths) {
            const file = resolve(dir, decodeURIComponent(shardPath));
            const rel = relative(dir, file);
            if (rel.startsWith('..') || isAbsolute(rel)) {
              throw new Error(`Backbone model: weight shard '${shardPath}' points outside ${dir}`);
            }
            let bytes: Buffer;
            try {
              bytes = await readFile(file);
            } catch (err) {
              throw new Error(
                `Backbone model: cannot read weight shard ${file} (${(err as NodeJS.ErrnoException).code ?? err})`,
                { cause: err },
              );
            }
            shards.push(
              bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer,
            );
          }
        }
        return [tf.io.getWeightSpecs(manifest), shards];
      });
    },
  };
}

/**
 * Loads a LayersModel or GraphModel from `modelDir`.
 *
 * @param modelDir - Directory holding `model.json` and its weight shards.
 * @param outputNode - LayersModel: a layer name; GraphModel: a node name (`name` or `name:0`).
 *   Default: the model's only output (an error lists the outputs when there are several).
 * @throws Error with a clear message for missing/invalid files, unknown output nodes, non-RGB inputs.
 */
export async function loadUserModel(modelDir: string, outputNode?: string): Promise<UserModel> {
  const handler = fileSystemLoadHandler(modelDir);
  const artifacts = await handler.load!();
  const topology = artifacts.modelTopology as { node?: unknown } | undefined;
  const isGraph =
    artifacts.format === 'graph-model' || (topology !== undefined && Array.isArray(topology.node));
  const memory = tf.io.fromMemory(artifacts);
  return isGraph
    ? wrapGraphModel(await tf.loadGraphModel(memory), modelDir, outputNode)
    : wrapLayersModel(await tf.loadLayersModel(memory), modelDir, outputNode);
}

function checkRgbInput(
  shape: readonly (number | null | undefined)[] | undefined,
  modelDir: string,
): [number, number] | undefined {
  if (!shape || shape.length !== 4) {
    throw new Error(
      `Backbone model in ${modelDir}: input must be rank 4 [1, H, W, 3] (NHWC), got [${shape?.join(', ')}]`,
    );
  }
  const [, h, w, c] = shape;
  if (c != null && c !== -1 && c !== 3) {
    throw new Error(
      `Backbone model in ${modelDir}: input must have 3 (RGB) channels last, got [${shape.join(', ')}]`,
    );
  }
  const fixed = (v: number | null | undefined) => v != null && v > 0;
  return fixed(h) && fixed(w) ? [h as number, w as number] : undefined;
}

function wrapLayersModel(model: tf.LayersModel, modelDir: string, outputNode: string | undefined): UserModel {
  if (model.inputs.length !== 1) {
    throw new Error(`Backbone model in ${modelDir}: expected 1 input, the model has ${model.inputs.length}`);
  }
  let output: tf.SymbolicTensor;
  if (outputNode !== undefined) {
    let layer: tf.layers.Layer;
    try {
      layer = model.getLayer(outputNode);
    } catch {
      throw new Error(
        `Backbone model in ${modelDir}: no layer named '${outputNode}'; layers: ${model.layers.map((l) => l.name).join(', ')}`,
      );
    }
    output = layer.output as tf.SymbolicTensor;
  } else {
    if (model.outputs.length !== 1) {
      throw new Error(
        `Backbone model in ${modelDir}: it has ${model.outputs.length} outputs; set the output node to one of ${model.outputLayers.map((l) => l.name).join(', ')}`,
      );
    }
    output = model.outputs[0];
  }
  const fixedInput = checkRgbInput(model.inputs[0].shape, modelDir);
  const sub = output === model.outputs[0] ? model : tf.model({ inputs: model.inputs, outputs: output });
  return {
    kind: 'layers-model',
    run: (input) => sub.apply(input, { training: false }) as tf.Tensor,
    fixedInput,
    totalParams: sub.countParams(),
    describeLayers: (referenceInput) => describeLayersModel(sub, referenceInput),
    dispose: () => model.dispose(),
  };
}

function wrapGraphModel(model: tf.GraphModel, modelDir: string, outputNode: string | undefined): UserModel {
  if (model.inputs.length !== 1) {
    throw new Error(`Backbone model in ${modelDir}: expected 1 input, the model has ${model.inputs.length}`);
  }
  const outputs = model.outputNodes;
  if (outputNode === undefined && outputs.length !== 1) {
    throw new Error(
      `Backbone model in ${modelDir}: it has ${outputs.length} outputs; set the output node to one of ${outputs.join(', ')}`,
    );
  }
  const node = outputNode ?? outputs[0];
  const fixedInput = checkRgbInput(model.inputs[0].shape, modelDir);
  const totalParams = Object.values(model.weights).reduce(
    (sum, tensors) => sum + tensors.reduce((s, t) => s + t.size, 0),
    0,
  );
  return {
    kind: 'graph-model',
    run: (input) => {
      try {
        return model.execute(input, node) as tf.Tensor;
      } catch (err) {
        throw new Error(
          `Backbone model in ${modelDir}: cannot compute output node '${node}': ${(err as Error).message}`,
          { cause: err },
        );
      }
    },
    fixedInput,
    totalParams,
    describeLayers: () => [],
    dispose: () => model.dispose(),
  };
}

interface LayerConfig {
  kernelSize?: number | number[];
  poolSize?: number | number[];
  strides?: number | number[];
  dilationRate?: number | number[];
}

const first = (v: number | number[] | undefined, fallback: number) =>
  v === undefined ? fallback : Array.isArray(v) ? v[0] : v;

/**
 * Shapes (by running every layer once at `referenceInput`), parameters, multiply-adds (Conv2D,
 * DepthwiseConv2D, Dense; 0 for the rest) and receptive fields (kernel/pool sizes, strides and
 * dilations along the height axis) of a LayersModel.
 */
function describeLayersModel(model: tf.LayersModel, referenceInput: [number, number]): LayerDescription[] {
  const layers = model.layers;
  const shapes = new Map<string, number[]>();
  tf.tidy(() => {
    const probe = tf.zeros([1, referenceInput[0], referenceInput[1], 3]);
    const outputs = layers.map((l) => l.output as tf.SymbolicTensor);
    const all = tf.model({ inputs: model.inputs, outputs }).predict(probe);
    const tensors = Array.isArray(all) ? all : [all];
    tensors.forEach((t, i) => shapes.set(layers[i].name, t.shape));
  });
  const field = new Map<string, { rf: number; jump: number }>();
  return layers.map((layer) => {
    const inbound = layer.inboundNodes[0]?.inboundLayers ?? [];
    const ins = inbound.map((l) => field.get(l.name) ?? { rf: 1, jump: 1 });
    const rfIn = ins.length ? Math.max(...ins.map((s) => s.rf)) : 1;
    const jumpIn = ins.length ? ins[0].jump : 1;
    const config = layer.getConfig() as LayerConfig;
    const k = first(config.kernelSize ?? config.poolSize, 1);
    const stride = first(config.strides, 1);
    const dilation = first(config.dilationRate, 1);
    const rf = rfIn + (k - 1) * dilation * jumpIn;
    field.set(layer.name, { rf, jump: jumpIn * stride });
    const nhwc = shapes.get(layer.name) ?? [];
    const outputShape = nhwc.length === 4 ? [nhwc[0], nhwc[3], nhwc[1], nhwc[2]] : nhwc;
    const type = layer.getClassName();
    let multiplyAdds = 0;
    const kernel = layer.getWeights()[0];
    if (kernel && (type === 'Conv2D' || type === 'DepthwiseConv2D') && nhwc.length === 4) {
      // Conv2D kernel [kh, kw, inC, outC]; DepthwiseConv2D [kh, kw, inC, multiplier]: one MAC per kernel value per position.
      multiplyAdds = nhwc[1] * nhwc[2] * kernel.size;
    } else if (kernel && type === 'Dense') {
      multiplyAdds = (nhwc.reduce((a, b) => a * b, 1) / (kernel.shape[1] ?? 1)) * kernel.size;
    }
    return {
      name: layer.name,
      type,
      inputs: inbound.map((l) => l.name),
      outputShape,
      ...((config.kernelSize ?? config.poolSize) ? { kernel: k, stride } : {}),
      params: layer.countParams(),
      multiplyAdds,
      receptiveField: rf,
      totalStride: jumpIn * stride,
    };
  });
}
