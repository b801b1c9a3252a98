/**
 * The built-in backbone (any {@link NetworkNode} network) as an ONNX graph with the same weights:
 * what the `onnx` engine runs in ONNX Runtime and what `GET /v1/backbone/model.onnx` serves.
 *
 * Graph: input `image` `[1, 3, H, W]` float32, RGB in [0, 1] (torchvision's convention, and the one
 * `BACKBONE_DIR` ONNX models take, so the file also loads as a user backbone) → `− 0.5` (the
 * built-in net's RGB/255 − 0.5) → per node: Conv (+bias, weights HWIO → OIHW) + Relu, MaxPool, Concat
 * on axis 1, Resize (nearest, for `upsample`), Add. All padding is `auto_pad = SAME_UPPER`, which is TensorFlow's `same` (the odd extra row
 * or column goes at the bottom/right), so the output is `ceil(H/16) × ceil(W/16)` as in tfjs.
 * Output `features` `[1, 256, ceil(H/16), ceil(W/16)]` (NCHW), or one output per requested node.
 *
 * New node kinds: add one case to {@link exportNode}; TypeScript flags the switch when a kind is
 * added to `NetworkNode` without one, and an unknown kind at run time is an error, never a skipped node.
 */
import {
  BUILTIN_NETWORK,
  BUILTIN_SEED,
  INPUT_NAME,
  networkWeights,
  type ConvWeights,
  type NetworkNode,
} from './builtin.js';
import { encodeOnnxModel, type OnnxNode, type OnnxTensor } from './onnx-proto.js';

/** Name of the exported graph's input. */
export const ONNX_INPUT = 'image';
/** Name of the exported graph's output when it has one. */
export const ONNX_OUTPUT = 'features';
/** Opset the graph is written for: 15, for Shape's start/end (the pyramid's upsample). */
export const ONNX_OPSET = 15;

/** HWIO `[kh, kw, inC, outC]` (tfjs) → OIHW `[outC, inC, kh, kw]` (ONNX). */
export function hwioToOihw(w: ConvWeights): Float32Array {
  const [kh, kw, inC, outC] = w.kernelShape;
  const out = new Float32Array(w.kernel.length);
  for (let y = 0; y < kh; y++)
    for (let x = 0; x < kw; x++)
      for (let i = 0; i < inC; i++)
        for (let o = 0; o < outC; o++)
          out[((o * inC + i) * kh + y) * kw + x] = w.kernel[((y * kw + x) * inC + i) * outC + o];
  return out;
}

export interface ExportOnnxOptions {
  /** Node names to output, finest first for a pyramid. Default: the last node, as `features`. */
  outputs?: string[];
  /** Weight seed, recorded in the metadata. Default {@link BUILTIN_SEED}. */
  seed?: number;
  /** `producer_version` (roiserve's version). Default `0`. */
  producerVersion?: string;
}

/** The ONNX nodes (and initializers) of one network node. */
function exportNode(
  node: NetworkNode,
  weights: Map<string, ConvWeights>,
  initializers: OnnxTensor[],
): OnnxNode[] {
  const same = { name: 'auto_pad', value: 'SAME_UPPER' };
  switch (node.type) {
    case 'conv': {
      const w = weights.get(node.name);
      if (!w) throw new Error(`ONNX export: no weights for conv '${node.name}'`);
      const [kh, kw, inC, outC] = w.kernelShape;
      initializers.push({ name: `${node.name}.W`, dims: [outC, inC, kh, kw], data: hwioToOihw(w) });
      initializers.push({ name: `${node.name}.B`, dims: [outC], data: w.bias });
      return [
        {
          opType: 'Conv',
          name: `${node.name}.conv`,
          inputs: [node.input, `${node.name}.W`, `${node.name}.B`],
          outputs: [`${node.name}.pre`],
          attributes: [
            { name: 'kernel_shape', value: [kh, kw] },
            { name: 'strides', value: [node.stride, node.stride] },
            same,
          ],
        },
        // ReLU unless the node says linear (the pyramid's laterals and smoothing convs).
        node.relu === false
          ? {
              opType: 'Identity',
              name: `${node.name}.linear`,
              inputs: [`${node.name}.pre`],
              outputs: [node.name],
            }
          : { opType: 'Relu', name: `${node.name}.relu`, inputs: [`${node.name}.pre`], outputs: [node.name] },
      ];
    }
    case 'maxpool':
      return [
        {
          opType: 'MaxPool',
          name: node.name,
          inputs: [node.input],
          outputs: [node.name],
          attributes: [
            { name: 'kernel_shape', value: [node.pool, node.pool] },
            { name: 'strides', value: [node.stride, node.stride] },
            same,
          ],
        },
      ];
    case 'concat':
      return [
        {
          opType: 'Concat',
          name: node.name,
          inputs: [...node.inputs],
          outputs: [node.name],
          attributes: [{ name: 'axis', value: 1 }],
        },
      ];
    case 'upsample': {
      // Nearest to the size of `like` ([N, C] of the input, [H', W'] of `like`): with the asymmetric
      // transform and floor, source row floor(d·h/H'), which is floor(d/2) for H' = 2h or 2h − 1: the
      // ×2-then-crop of builtin.ts. Shape's start/end attributes need opset 15.
      const n = node.name;
      return [
        {
          opType: 'Shape',
          name: `${n}.nc`,
          inputs: [node.input],
          outputs: [`${n}.nc`],
          attributes: [{ name: 'end', value: 2 }],
        },
        {
          opType: 'Shape',
          name: `${n}.hw`,
          inputs: [node.like],
          outputs: [`${n}.hw`],
          attributes: [{ name: 'start', value: 2 }],
        },
        {
          opType: 'Concat',
          name: `${n}.sizes`,
          inputs: [`${n}.nc`, `${n}.hw`],
          outputs: [`${n}.sizes`],
          attributes: [{ name: 'axis', value: 0 }],
        },
        {
          opType: 'Resize',
          name: n,
          inputs: [node.input, '', '', `${n}.sizes`],
          outputs: [n],
          attributes: [
            { name: 'mode', value: 'nearest' },
            { name: 'coordinate_transformation_mode', value: 'asymmetric' },
            { name: 'nearest_mode', value: 'floor' },
          ],
        },
      ];
    }
    case 'add':
      return [
        {
          opType: node.inputs.length === 2 ? 'Add' : 'Sum',
          name: node.name,
          inputs: [...node.inputs],
          outputs: [node.name],
        },
      ];
    default: {
      // A kind added to NetworkNode without a case here fails to compile (`never`); at run time too.
      const unknown: never = node;
      const { type, name } = unknown as { type: string; name: string };
      throw new Error(
        `ONNX export: node '${name}' has kind '${type}', which has no ONNX translation yet (src/backbone/onnx-export.ts)`,
      );
    }
  }
}

/**
 * Serialises `network` with `weights` as an ONNX model (the bytes of a `.onnx` file).
 *
 * @param network - Default {@link BUILTIN_NETWORK}.
 * @param weights - Default `networkWeights(network, opts.seed)`.
 * @param opts - Outputs, seed, producer version.
 * @throws Error for a node kind without an ONNX translation, a missing weight, or an unknown output node.
 */
export function exportOnnx(
  network: readonly NetworkNode[] = BUILTIN_NETWORK,
  weights?: Map<string, ConvWeights>,
  opts: ExportOnnxOptions = {},
): Uint8Array {
  const seed = opts.seed ?? BUILTIN_SEED;
  const w = weights ?? networkWeights(network, seed);
  const initializers: OnnxTensor[] = [{ name: 'half', dims: [], data: new Float32Array([0.5]) }];
  const nodes: OnnxNode[] = [
    { opType: 'Sub', name: 'centre', inputs: [ONNX_INPUT, 'half'], outputs: [INPUT_NAME] },
  ];
  for (const node of network) nodes.push(...exportNode(node, w, initializers));
  const known = new Set(network.map((n) => n.name));
  const wanted = opts.outputs ?? [network[network.length - 1].name];
  for (const name of wanted)
    if (!known.has(name)) throw new Error(`ONNX export: no node '${name}' to output`);
  const outputNames = wanted.length === 1 ? [ONNX_OUTPUT] : wanted.map((_, i) => `${ONNX_OUTPUT}_${i}`);
  wanted.forEach((name, i) =>
    nodes.push({ opType: 'Identity', name: `output_${i}`, inputs: [name], outputs: [outputNames[i]] }),
  );
  return encodeOnnxModel({
    graphName: 'roiserve_builtin',
    producerName: 'roiserve',
    producerVersion: opts.producerVersion ?? '0',
    opset: ONNX_OPSET,
    docString:
      'roiserve built-in backbone. Input image [1, 3, H, W] float32 RGB in [0, 1]; output features ' +
      '[1, C, ceil(H/16), ceil(W/16)] float32 (NCHW). Same weights as the service.',
    nodes,
    initializers,
    inputs: [{ name: ONNX_INPUT, dims: [1, 3, 'H', 'W'] }],
    outputs: outputNames.map((name, i) => ({ name, dims: [1, 'C', `H${i}`, `W${i}`] })),
    metadata: { seed: String(seed) },
  });
}
