/**
 * The built-in backbone rebuilt as an ONNX graph (onnx-proto), run by ONNX Runtime: an independent
 * engine for the cross-check test and the performance peer in `bench/backbone.ts`.
 *
 * Graph: input `rgb` `[1, 3, H, W]` float32 holding raw 0..255 values (NCHW) → `/255 − 0.5` →
 * Conv (+bias, weights transposed HWIO → OIHW) + Relu / MaxPool / Concat(axis 1), all with
 * `auto_pad = SAME_UPPER`, which is TensorFlow's `same` (the odd extra pad row/column goes at the
 * bottom/right). Output `features` `[1, 256, ceil(H/16), ceil(W/16)]`.
 */
import onnxProto from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import {
  BUILTIN_NETWORK,
  INPUT_NAME,
  networkWeights,
  type ConvWeights,
  type NetworkNode,
} from '../../src/backbone/builtin.js';
import type { FeatureMap } from '../../src/ops/types.js';

const { onnx } = onnxProto;
const FLOAT = onnx.TensorProto.DataType.FLOAT;

function floatTensor(name: string, dims: number[], values: Float32Array): onnxProto.onnx.ITensorProto {
  const raw = new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength));
  return { name, dims, dataType: FLOAT, rawData: raw };
}

const ints = (name: string, values: number[]): onnxProto.onnx.IAttributeProto => ({
  name,
  type: onnx.AttributeProto.AttributeType.INTS,
  ints: values,
});
const str = (name: string, value: string): onnxProto.onnx.IAttributeProto => ({
  name,
  type: onnx.AttributeProto.AttributeType.STRING,
  s: new TextEncoder().encode(value),
});
const int = (name: string, value: number): onnxProto.onnx.IAttributeProto => ({
  name,
  type: onnx.AttributeProto.AttributeType.INT,
  i: value,
});

/** HWIO `[kh, kw, inC, outC]` → OIHW `[outC, inC, kh, kw]`. */
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

/** Serialised ONNX model of `network` with `weights` (default: the built-in backbone). */
export function buildOnnxBackbone(
  network: readonly NetworkNode[] = BUILTIN_NETWORK,
  weights: Map<string, ConvWeights> = networkWeights(network),
): Uint8Array {
  const nodes: onnxProto.onnx.INodeProto[] = [];
  const initializer: onnxProto.onnx.ITensorProto[] = [
    floatTensor('c255', [], new Float32Array([255])),
    floatTensor('c05', [], new Float32Array([0.5])),
  ];
  nodes.push({ opType: 'Div', input: ['rgb', 'c255'], output: ['scaled'], name: 'scale' });
  nodes.push({ opType: 'Sub', input: ['scaled', 'c05'], output: [INPUT_NAME], name: 'centre' });
  for (const node of network) {
    if (node.type === 'conv') {
      const w = weights.get(node.name);
      if (!w) throw new Error(`no weights for ${node.name}`);
      const [kh, kw, inC, outC] = w.kernelShape;
      initializer.push(floatTensor(`${node.name}.W`, [outC, inC, kh, kw], hwioToOihw(w)));
      initializer.push(floatTensor(`${node.name}.B`, [outC], w.bias));
      nodes.push({
        opType: 'Conv',
        name: `${node.name}.conv`,
        input: [node.input, `${node.name}.W`, `${node.name}.B`],
        output: [`${node.name}.pre`],
        attribute: [
          ints('kernel_shape', [kh, kw]),
          ints('strides', [node.stride, node.stride]),
          str('auto_pad', 'SAME_UPPER'),
        ],
      });
      nodes.push({
        opType: 'Relu',
        name: `${node.name}.relu`,
        input: [`${node.name}.pre`],
        output: [node.name],
      });
    } else if (node.type === 'maxpool') {
      nodes.push({
        opType: 'MaxPool',
        name: node.name,
        input: [node.input],
        output: [node.name],
        attribute: [
          ints('kernel_shape', [node.pool, node.pool]),
          ints('strides', [node.stride, node.stride]),
          str('auto_pad', 'SAME_UPPER'),
        ],
      });
    } else if (node.type === 'concat') {
      nodes.push({
        opType: 'Concat',
        name: node.name,
        input: node.inputs,
        output: [node.name],
        attribute: [int('axis', 1)],
      });
    } else {
      // The pyramid's kinds (upsample, add) are checked against torch (test/backbone/pyramid.test.ts).
      throw new Error(`buildOnnxBackbone: no ONNX export for ${node.type} (${node.name})`);
    }
  }
  const last = network[network.length - 1].name;
  nodes.push({ opType: 'Identity', name: 'output', input: [last], output: ['features'] });
  const dims = (names: Array<number | string>) => ({
    dim: names.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })),
  });
  const model = onnx.ModelProto.create({
    irVersion: 7,
    producerName: 'roiserve-test',
    opsetImport: [{ domain: '', version: 13 }],
    graph: {
      name: 'roiserve_builtin',
      node: nodes,
      initializer,
      input: [{ name: 'rgb', type: { tensorType: { elemType: FLOAT, shape: dims([1, 3, 'H', 'W']) } } }],
      output: [
        { name: 'features', type: { tensorType: { elemType: FLOAT, shape: dims([1, 'C', 'OH', 'OW']) } } },
      ],
    },
  });
  return onnx.ModelProto.encode(model).finish();
}

/** An ORT session of the ONNX backbone, single-threaded by default (the bench's fair peer). */
export async function createOrtBackbone(intraOpNumThreads = 1): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(buildOnnxBackbone(), {
    intraOpNumThreads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    executionProviders: ['cpu'],
  });
}

/** RGB `[H, W, 3]` uint8 → the graph input `[1, 3, H, W]` float32 of raw 0..255 values. */
export function rgbToNchw(rgb: Uint8Array, width: number, height: number): ort.Tensor {
  const plane = width * height;
  const data = new Float32Array(3 * plane);
  for (let i = 0; i < plane; i++) {
    data[i] = rgb[3 * i];
    data[plane + i] = rgb[3 * i + 1];
    data[2 * plane + i] = rgb[3 * i + 2];
  }
  return new ort.Tensor('float32', data, [1, 3, height, width]);
}

/** Runs the session; returns the features `[1, C, H', W']` in NCHW order. */
export async function runOrtBackbone(
  session: ort.InferenceSession,
  rgb: Uint8Array,
  width: number,
  height: number,
): Promise<{ data: Float32Array; dims: number[] }> {
  const result = await session.run({ rgb: rgbToNchw(rgb, width, height) });
  const out = result.features;
  return { data: out.data as Float32Array, dims: [...out.dims] };
}

/**
 * max |tfjs − ORT| over max |ORT|, comparing NHWC tfjs features `[1, C, H, W]` with NCHW ORT features.
 * Throws when the shapes differ.
 */
export function relativeError(
  features: FeatureMap,
  peer: { data: Float32Array; dims: number[] },
): { rel: number; scale: number } {
  const [, c, h, w] = features.shape;
  if (peer.dims.join() !== [1, c, h, w].join())
    throw new Error(`shapes differ: tfjs [1, ${c}, ${h}, ${w}] vs ORT [${peer.dims.join(', ')}]`);
  let maxDiff = 0;
  let scale = 0;
  for (let ch = 0; ch < c; ch++)
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++) {
        const reference = peer.data[(ch * h + y) * w + x];
        const value = features.data[(y * w + x) * c + ch];
        maxDiff = Math.max(maxDiff, Math.abs(value - reference));
        scale = Math.max(scale, Math.abs(reference));
      }
  return { rel: maxDiff / scale, scale };
}
