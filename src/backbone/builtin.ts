/**
 * The built-in backbone: a small GoogLeNet-style conv net, output stride 16, 256 channels.
 *
 * ```
 * input  [1, 3, H, W]  RGB/255 − 0.5 (each value in [−0.5, 0.5])
 * conv1        5×5/2   3 → 16   fixed, interpretable filters (oriented edges, bars, colour opponents)
 * pool1        max 3×3/2
 * conv2        3×3/1  16 → 32
 * pool2        max 3×3/2
 * inception3a  [1×1 → 32 | 1×1 → 24, 3×3 → 48 | 1×1 → 8, 5×5 → 16 | max 3×3/1, 1×1 → 16]  concat → 112
 * pool3        max 3×3/2
 * inception4a  [1×1 → 64 | 1×1 → 64, 3×3 → 128 | 1×1 → 16, 5×5 → 32 | max 3×3/1, 1×1 → 32]  concat → 256
 * output [1, 256, ceil(H/16), ceil(W/16)]
 * ```
 * Every conv is followed by ReLU; all padding is TensorFlow `same` (extra pad at the bottom/right),
 * so the output is exactly `ceil(H/16) × ceil(W/16)`. Receptive field 137 px.
 *
 * Weights are deterministic: conv1 is built from binomial (Gaussian-like) derivative kernels with
 * rational coefficients; every other conv is He-uniform from a seeded integer PRNG (mulberry32 seeded
 * by FNV-1a of `seed:layer:kernel`), so the same seed gives bit-identical weights on every machine
 * (only `Math.imul`, `Math.sqrt` and float32 rounding are involved, all exactly specified).
 *
 * The feature pyramid built on this net (strides 8, 16, 32) is `pyramid.ts`; its node kinds (`upsample`,
 * `add`, linear convs) are built and described here with the others. Over 400 lines because the node
 * list, the weights, the tfjs model and the description walk the same node kinds and are kept together,
 * so a new kind is added in one place.
 */
import { tf } from './tf.js';

/**
 * One node of the network. Shapes follow the tfjs kernel layout `[kh, kw, inC, outC]` (HWIO).
 * - `conv`: TensorFlow `same` padding, bias, then ReLU unless `relu: false` (the pyramid's laterals
 *   and smoothing convs are linear, as in FPN);
 * - `maxpool`: `same` padding; `concat`: along channels;
 * - `upsample`: nearest-neighbour ×2 of `input`, cropped at the bottom/right to the height and width of
 *   `like` (odd sizes: `ceil(H/16)` is `2·ceil(H/32)` or one less). Nearest ×2 then crop is what
 *   torchvision's FPN gets from `F.interpolate(size=like)`: source row `floor(d·h/H')` equals
 *   `floor(d/2)` for every `d < H' ≤ 2h` (the pyramid only ever asks for `H'` = `2h` or `2h − 1`);
 * - `add`: element-wise sum of inputs of one shape.
 */
export type NetworkNode =
  | {
      name: string;
      type: 'conv';
      input: string;
      filters: number;
      kernel: number;
      stride: number;
      /** Default true. */
      relu?: boolean;
    }
  | { name: string; type: 'maxpool'; input: string; pool: number; stride: number }
  | { name: string; type: 'concat'; inputs: string[] }
  | { name: string; type: 'upsample'; input: string; like: string }
  | { name: string; type: 'add'; inputs: string[] };

/** Name of the graph input (the normalised image, `[1, H, W, 3]`). */
export const INPUT_NAME = 'input';
/** Output stride of the built-in backbone. */
export const BUILTIN_STRIDE = 16;
/** Output channels of the built-in backbone. */
export const BUILTIN_CHANNELS = 256;
/** Default weight seed. */
export const BUILTIN_SEED = 20141117; // GoogLeNet's arXiv date, 2014-11-17

function inception(
  name: string,
  input: string,
  widths: { b1: number; b2Reduce: number; b2: number; b3Reduce: number; b3: number; b4: number },
): NetworkNode[] {
  return [
    { name: `${name}/1x1`, type: 'conv', input, filters: widths.b1, kernel: 1, stride: 1 },
    { name: `${name}/3x3_reduce`, type: 'conv', input, filters: widths.b2Reduce, kernel: 1, stride: 1 },
    {
      name: `${name}/3x3`,
      type: 'conv',
      input: `${name}/3x3_reduce`,
      filters: widths.b2,
      kernel: 3,
      stride: 1,
    },
    { name: `${name}/5x5_reduce`, type: 'conv', input, filters: widths.b3Reduce, kernel: 1, stride: 1 },
    {
      name: `${name}/5x5`,
      type: 'conv',
      input: `${name}/5x5_reduce`,
      filters: widths.b3,
      kernel: 5,
      stride: 1,
    },
    { name: `${name}/pool`, type: 'maxpool', input, pool: 3, stride: 1 },
    {
      name: `${name}/pool_proj`,
      type: 'conv',
      input: `${name}/pool`,
      filters: widths.b4,
      kernel: 1,
      stride: 1,
    },
    {
      name: `${name}/output`,
      type: 'concat',
      inputs: [`${name}/1x1`, `${name}/3x3`, `${name}/5x5`, `${name}/pool_proj`],
    },
  ];
}

/** The built-in network, in topological order; the last node is the output. */
export const BUILTIN_NETWORK: readonly NetworkNode[] = [
  { name: 'conv1', type: 'conv', input: INPUT_NAME, filters: 16, kernel: 5, stride: 2 },
  { name: 'pool1', type: 'maxpool', input: 'conv1', pool: 3, stride: 2 },
  { name: 'conv2', type: 'conv', input: 'pool1', filters: 32, kernel: 3, stride: 1 },
  { name: 'pool2', type: 'maxpool', input: 'conv2', pool: 3, stride: 2 },
  ...inception('inception3a', 'pool2', { b1: 32, b2Reduce: 24, b2: 48, b3Reduce: 8, b3: 16, b4: 16 }),
  { name: 'pool3', type: 'maxpool', input: 'inception3a/output', pool: 3, stride: 2 },
  ...inception('inception4a', 'pool3', { b1: 64, b2Reduce: 64, b2: 128, b3Reduce: 16, b3: 32, b4: 32 }),
];

/** The 16 fixed filters of conv1, in channel order. Angles: direction of the gradient, 0° = +x, 90° = +y (down). */
export const CONV1_FILTERS: readonly string[] = [
  'edge 0° (dark left, light right)',
  'edge 45° (dark top-left, light bottom-right)',
  'edge 90° (dark top, light bottom)',
  'edge 135° (dark top-right, light bottom-left)',
  'edge 180° (light left, dark right)',
  'edge 225° (light top-left, dark bottom-right)',
  'edge 270° (light top, dark bottom)',
  'edge 315° (light top-right, dark bottom-left)',
  'light bar, vertical',
  'light bar, diagonal \\',
  'light bar, horizontal',
  'light bar, diagonal /',
  'colour red − green',
  'colour green − red',
  'colour blue − yellow',
  'colour yellow − blue',
];

export interface ConvWeights {
  /** `[kh, kw, inC, outC]` (HWIO, the tfjs layout), row-major. */
  kernel: Float32Array;
  /** `[outC]`. */
  bias: Float32Array;
  kernelShape: [number, number, number, number];
}

/** Input channels of every node, by walking the network. */
export function channelsOf(network: readonly NetworkNode[], inputChannels = 3): Map<string, number> {
  const channels = new Map<string, number>([[INPUT_NAME, inputChannels]]);
  for (const node of network) {
    if (node.type === 'conv') channels.set(node.name, node.filters);
    else if (node.type === 'maxpool' || node.type === 'upsample')
      channels.set(node.name, need(channels, node.input));
    else if (node.type === 'add') channels.set(node.name, need(channels, node.inputs[0]));
    else
      channels.set(
        node.name,
        node.inputs.reduce((sum, i) => sum + need(channels, i), 0),
      );
  }
  return channels;
}

function need<T>(map: Map<string, T>, key: string): T {
  const value = map.get(key);
  if (value === undefined) throw new Error(`network: unknown node '${key}'`);
  return value;
}

/** 32-bit FNV-1a of a string. */
function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/** mulberry32: a tiny, well-mixed 32-bit PRNG; returns uniforms in [0, 1) with 32-bit resolution. */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * The conv1 kernel `[5, 5, 3, 16]`: binomial derivative filters on luma, and colour opponents.
 * 1-D pieces (σ² = 1 binomial family): smooth s = [1,4,6,4,1]/16, first derivative
 * d = [−1,−2,0,2,1]/8, second derivative e = [1,0,−2,0,1]/4. Edges are steered first derivatives
 * cosθ·Gx + sinθ·Gy, scaled so a full-contrast step (0 → 1) gives ≈ 1; light bars are the negated
 * steered second derivative, scaled so a 1-px full-contrast line gives ≈ 1. Every filter sums to zero,
 * so the input's mean offset does not matter.
 */
export function conv1Kernel(): Float32Array {
  const s = [1, 4, 6, 4, 1].map((v) => v / 16);
  const d = [-1, -2, 0, 2, 1].map((v) => v / 8);
  const e = [1, 0, -2, 0, 1].map((v) => v / 4);
  const luma = [0.299, 0.587, 0.114];
  const r = Math.SQRT1_2;
  const kernel = new Float32Array(5 * 5 * 3 * 16);
  const set = (y: number, x: number, c: number, o: number, v: number) => {
    kernel[((y * 5 + x) * 3 + c) * 16 + o] = v;
  };
  const steer = [
    [1, 0],
    [r, r],
    [0, 1],
    [-r, r],
  ];
  for (let y = 0; y < 5; y++) {
    for (let x = 0; x < 5; x++) {
      const gx = s[y] * d[x];
      const gy = d[y] * s[x];
      const gxx = s[y] * e[x];
      const gyy = e[y] * s[x];
      const gxy = d[y] * d[x];
      for (let k = 0; k < 4; k++) {
        const [cos, sin] = steer[k];
        const edge = (8 / 3) * (cos * gx + sin * gy);
        const bar = -2 * (cos * cos * gxx + 2 * cos * sin * gxy + sin * sin * gyy);
        for (let c = 0; c < 3; c++) {
          set(y, x, c, k, luma[c] * edge);
          set(y, x, c, k + 4, -luma[c] * edge);
          set(y, x, c, k + 8, luma[c] * bar);
        }
      }
      const g = s[y] * s[x];
      const opponents = [
        [1, -1, 0],
        [-1, 1, 0],
        [-0.5, -0.5, 1],
        [0.5, 0.5, -1],
      ];
      for (let k = 0; k < 4; k++) for (let c = 0; c < 3; c++) set(y, x, c, 12 + k, opponents[k][c] * g);
    }
  }
  return kernel;
}

/**
 * All conv weights of a network. conv1 of the built-in network is {@link conv1Kernel}; every other
 * conv gets He-uniform weights `U(−√(6/fanIn), √(6/fanIn))` and small biases `U(−0.01, 0.01)`, each
 * tensor from its own PRNG stream, so renaming or adding a layer leaves the others unchanged.
 *
 * @param network - Nodes in topological order. Default {@link BUILTIN_NETWORK}.
 * @param seed - PRNG seed. Default {@link BUILTIN_SEED}.
 */
export function networkWeights(
  network: readonly NetworkNode[] = BUILTIN_NETWORK,
  seed = BUILTIN_SEED,
): Map<string, ConvWeights> {
  const channels = channelsOf(network);
  const weights = new Map<string, ConvWeights>();
  for (const node of network) {
    if (node.type !== 'conv') continue;
    const inC = need(channels, node.input);
    const kernelShape: [number, number, number, number] = [node.kernel, node.kernel, inC, node.filters];
    const size = node.kernel * node.kernel * inC * node.filters;
    let kernel: Float32Array;
    let bias: Float32Array;
    // conv1 of the built-in net (the pyramid shares its node objects) is fixed, not random.
    if (node.name === 'conv1' && BUILTIN_NETWORK.includes(node)) {
      kernel = conv1Kernel();
      bias = new Float32Array(node.filters);
    } else {
      const limit = Math.sqrt(6 / (node.kernel * node.kernel * inC));
      const kernelRandom = mulberry32(fnv1a(`${seed}:${node.name}:kernel`));
      kernel = new Float32Array(size);
      for (let i = 0; i < size; i++) kernel[i] = (2 * kernelRandom() - 1) * limit;
      const biasRandom = mulberry32(fnv1a(`${seed}:${node.name}:bias`));
      bias = new Float32Array(node.filters);
      for (let i = 0; i < node.filters; i++) bias[i] = (2 * biasRandom() - 1) * 0.01;
    }
    weights.set(node.name, { kernel, bias, kernelShape });
  }
  return weights;
}

/**
 * The `upsample` node as a tfjs layer: nearest ×2 of its first input, cropped to the height and width of
 * its second. A layer of its own because tfjs's `upSampling2d` cannot crop to a size known only when it
 * runs (the model takes any H, W). Pure copies (stack + reshape + slice), so it is exact.
 */
class UpsampleLike extends tf.layers.Layer {
  static className = 'RoiserveUpsampleLike';

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    const [source, like] = inputShape as tf.Shape[];
    return [like[0], like[1], like[2], source[3]];
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const [source, like] = inputs as tf.Tensor4D[];
      const [n, h, w, c] = source.shape;
      // [n, h, w, c] → [n, h, 2, w, c] → [n, 2h, w, c] → [n, 2h, w, 2, c] → [n, 2h, 2w, c]: row r reads r // 2.
      const rows = tf.stack([source, source], 2).reshape([n, 2 * h, w, c]);
      const both = tf.stack([rows, rows], 3).reshape([n, 2 * h, 2 * w, c]);
      return both.slice([0, 0, 0, 0], [n, like.shape[1], like.shape[2], c]);
    });
  }
}

/**
 * Builds the network as a tfjs LayersModel (functional API) with input `[1, H, W, 3]` for any H, W
 * and the given weights set explicitly (no tfjs initializer randomness).
 *
 * @param outputs - Nodes the model returns, in order (several: `apply` returns a list). Default: the
 *   last node.
 */
export function buildLayersModel(
  network: readonly NetworkNode[] = BUILTIN_NETWORK,
  weights: Map<string, ConvWeights> = networkWeights(network),
  outputs: readonly string[] = [network[network.length - 1].name],
): tf.LayersModel {
  const input = tf.input({ shape: [null, null, 3], name: INPUT_NAME });
  const symbols = new Map<string, tf.SymbolicTensor>([[INPUT_NAME, input]]);
  for (const node of network) {
    let layer: tf.layers.Layer;
    let inputs: tf.SymbolicTensor | tf.SymbolicTensor[];
    if (node.type === 'conv') {
      layer = tf.layers.conv2d({
        name: node.name,
        filters: node.filters,
        kernelSize: node.kernel,
        strides: node.stride,
        padding: 'same',
        activation: node.relu === false ? 'linear' : 'relu',
        kernelInitializer: 'zeros',
        biasInitializer: 'zeros',
      });
      inputs = need(symbols, node.input);
    } else if (node.type === 'maxpool') {
      layer = tf.layers.maxPooling2d({
        name: node.name,
        poolSize: node.pool,
        strides: node.stride,
        padding: 'same',
      });
      inputs = need(symbols, node.input);
    } else if (node.type === 'upsample') {
      layer = new UpsampleLike({ name: node.name });
      inputs = [need(symbols, node.input), need(symbols, node.like)];
    } else if (node.type === 'add') {
      layer = tf.layers.add({ name: node.name });
      inputs = node.inputs.map((i) => need(symbols, i));
    } else {
      layer = tf.layers.concatenate({ name: node.name, axis: -1 });
      inputs = node.inputs.map((i) => need(symbols, i));
    }
    symbols.set(node.name, layer.apply(inputs) as tf.SymbolicTensor);
  }
  const outs = outputs.map((name) => need(symbols, name));
  const model = tf.model({
    inputs: input,
    outputs: outs.length === 1 ? outs[0] : outs,
    name: 'roiserve_builtin',
  });
  for (const node of network) {
    if (node.type !== 'conv') continue;
    const w = need(weights, node.name);
    const tensors = [tf.tensor4d(w.kernel, w.kernelShape), tf.tensor1d(w.bias)];
    model.getLayer(node.name).setWeights(tensors);
    tf.dispose(tensors);
  }
  return model;
}

/** One row of a backbone description. */
export interface LayerDescription {
  name: string;
  /** `input`, `conv`, `maxpool`, `concat`, `upsample`, `add`, or the tfjs class name for user models. */
  type: string;
  /** Names of the nodes this one reads. */
  inputs: string[];
  /** Logical `[N, C, H, W]` at the reference input size. */
  outputShape: number[];
  /** Kernel size and stride, for conv and pool layers. */
  kernel?: number;
  stride?: number;
  /** Trainable values: `kh·kw·inC·outC + outC` for a conv. */
  params: number;
  /** `outH·outW·kh·kw·inC·outC` for a conv; 0 for pooling (comparisons), concat, upsample (copies) and add (additions only). */
  multiplyAdds: number;
  /**
   * For a 3×3/5×5 conv behind a 1×1 bottleneck: what it would cost applied straight to the block
   * input (`outH·outW·kh·kw·blockInC·outC`). Compare with `multiplyAdds` + the bottleneck's.
   */
  multiplyAddsWithoutBottleneck?: number;
  /** Receptive field (px of the input) and stride (jump) of one output position. */
  receptiveField: number;
  totalStride: number;
}

// The pyramid's description lives here, beside the net's (`pyramid.ts` computes it), so that neither
// module imports the other.
/** One level of the pyramid as `/v1/backbone` describes it. */
export interface PyramidLevelDescription {
  /** The node it is read from (`fpn/p3`, …). */
  name: string;
  /** FPN level `k`: stride `2^k`. */
  level: number;
  stride: number;
  /** Logical `[1, C, H, W]` at the reference input. */
  outputShape: number[];
  receptiveField: number;
}

/** `/v1/backbone`'s `pyramid`: the levels and the cost of a pyramid forward pass. */
export interface PyramidDescription {
  channels: number;
  strides: number[];
  levels: PyramidLevelDescription[];
  /** Parameters of the whole pyramid network (the built-in net's included). */
  totalParams: number;
  /** Multiply-adds of one pyramid forward pass at the reference input (the built-in net's included). */
  totalMultiplyAdds: number;
  /** The layers the pyramid adds to the built-in net (`layers` lists the net itself). */
  layers: LayerDescription[];
}

export interface BackboneDescription {
  name: string;
  /** The tfjs backend in use. */
  backend: string;
  /** Why that backend, in words (see `TensorFlowBackend.reason`). */
  backendReason: string;
  /** Why `@tensorflow/tfjs-node` is not in use, when it was tried: its load error; else null. */
  tfjsNodeError: string | null;
  /** What runs the network: `tfjs` (the backend above) or `onnx` (ONNX Runtime). */
  engine: 'tfjs' | 'onnx';
  /** Why that engine (`BACKBONE_ENGINE` and what loaded), in words. */
  engineReason: string;
  /**
   * The start-up check of the `onnx` engine on the built-in net: ONNX Runtime vs tfjs on a probe image
   * (max |difference|, and it over max |tfjs feature|). null when not run (tfjs engine, user models).
   */
  engineCheck: { maxAbs: number; relative: number; probe: [number, number] } | null;
  inputChannels: number;
  outputChannels: number;
  stride: number;
  /** Receptive field of one output position, in input pixels. */
  receptiveField: number;
  totalParams: number;
  /** Multiply-adds of one forward pass at `referenceInput`. */
  totalMultiplyAdds: number;
  /** `[H, W]` the shapes and multiply-adds are given for. */
  referenceInput: [number, number];
  /** How pixels are turned into the network input, in words. */
  inputNormalization: string;
  layers: LayerDescription[];
  /** The feature pyramid `pyramid: true` gives (the built-in net's FPN); absent when there is none. */
  pyramid?: PyramidDescription;
}

/** Multiply-adds of a `k×k` conv `inC → outC` producing an `outH × outW` map. */
export function convMultiplyAdds(outH: number, outW: number, k: number, inC: number, outC: number): number {
  return outH * outW * k * k * inC * outC;
}

/**
 * Per-layer shapes, parameters, multiply-adds and receptive fields of a network at an input size,
 * with TensorFlow `same` padding (`out = ceil(in / stride)`).
 *
 * @param network - Default {@link BUILTIN_NETWORK}.
 * @param referenceInput - `[H, W]`, default `[224, 224]`.
 */
export function describeNetwork(
  network: readonly NetworkNode[] = BUILTIN_NETWORK,
  referenceInput: [number, number] = [224, 224],
): LayerDescription[] {
  interface State {
    c: number;
    h: number;
    w: number;
    rf: number;
    jump: number;
  }
  /** The row of a layer without weights (the input, upsample, concat, add), from its output state. */
  const weightless = (
    name: string,
    type: LayerDescription['type'],
    inputs: string[],
    state: State,
  ): LayerDescription => ({
    name,
    type,
    inputs,
    outputShape: [1, state.c, state.h, state.w],
    params: 0,
    multiplyAdds: 0,
    receptiveField: state.rf,
    totalStride: state.jump,
  });
  const input: State = { c: 3, h: referenceInput[0], w: referenceInput[1], rf: 1, jump: 1 };
  const states = new Map<string, State>([[INPUT_NAME, input]]);
  const producers = new Map<string, NetworkNode>(network.map((n) => [n.name, n]));
  const rows: LayerDescription[] = [weightless(INPUT_NAME, 'input', [], input)];
  for (const node of network) {
    if (node.type === 'upsample') {
      const src = need(states, node.input);
      const like = need(states, node.like);
      // Each output position copies one input position: the input's receptive field at the finer jump.
      const state = { c: src.c, h: like.h, w: like.w, rf: src.rf, jump: like.jump };
      states.set(node.name, state);
      rows.push(weightless(node.name, 'upsample', [node.input, node.like], state));
      continue;
    }
    if (node.type === 'concat' || node.type === 'add') {
      const ins = node.inputs.map((i) => need(states, i));
      const state = {
        c: node.type === 'add' ? ins[0].c : ins.reduce((sum, s) => sum + s.c, 0),
        h: ins[0].h,
        w: ins[0].w,
        rf: Math.max(...ins.map((s) => s.rf)),
        jump: ins[0].jump,
      };
      states.set(node.name, state);
      rows.push(weightless(node.name, node.type, [...node.inputs], state));
      continue;
    }
    const src = need(states, node.input);
    const k = node.type === 'conv' ? node.kernel : node.pool;
    const state = {
      c: node.type === 'conv' ? node.filters : src.c,
      h: Math.ceil(src.h / node.stride),
      w: Math.ceil(src.w / node.stride),
      rf: src.rf + (k - 1) * src.jump,
      jump: src.jump * node.stride,
    };
    states.set(node.name, state);
    const row: LayerDescription = {
      name: node.name,
      type: node.type,
      inputs: [node.input],
      outputShape: [1, state.c, state.h, state.w],
      kernel: k,
      stride: node.stride,
      params: node.type === 'conv' ? k * k * src.c * state.c + state.c : 0,
      multiplyAdds: node.type === 'conv' ? convMultiplyAdds(state.h, state.w, k, src.c, state.c) : 0,
      receptiveField: state.rf,
      totalStride: state.jump,
    };
    const bottleneck = producers.get(node.input);
    if (node.type === 'conv' && k > 1 && bottleneck?.type === 'conv' && bottleneck.kernel === 1) {
      const blockIn = need(states, bottleneck.input).c;
      row.multiplyAddsWithoutBottleneck = convMultiplyAdds(state.h, state.w, k, blockIn, state.c);
    }
    rows.push(row);
  }
  return rows;
}
