/**
 * ONNX Runtime as the oracle (and the bench peer): single-node ONNX models built in memory with
 * onnx-proto, run on onnxruntime-node's CPU provider with one intra-op thread.
 */
import onnxProto from 'onnx-proto';
import type { onnx as Onnx } from 'onnx-proto';
import * as ort from 'onnxruntime-node';

const { onnx } = onnxProto;

// ORT's process-wide logger, set before the first session: kernel constructors log through it, not
// through the session's `logSeverityLevel`, so without this every RoiAlign session with mode 'max'
// prints ORT's warning about its pre-1.13 max-mode summation (hundreds of lines in `npm test`). That
// behaviour is exactly what our `onnx_max` mode reproduces, so the warning tells us nothing.
ort.env.logLevel = 'error';
const FLOAT = onnx.TensorProto.DataType.FLOAT;
const INT64 = onnx.TensorProto.DataType.INT64;

function valueInfo(name: string, elemType: number, rank: number): Onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType,
        shape: { dim: Array.from({ length: rank }, (_, i) => ({ dimParam: `${name}_${i}` })) },
      },
    },
  };
}

function intAttr(name: string, i: number): Onnx.IAttributeProto {
  return { name, type: onnx.AttributeProto.AttributeType.INT, i };
}
function floatAttr(name: string, f: number): Onnx.IAttributeProto {
  return { name, type: onnx.AttributeProto.AttributeType.FLOAT, f };
}
function stringAttr(name: string, s: string): Onnx.IAttributeProto {
  return { name, type: onnx.AttributeProto.AttributeType.STRING, s: new TextEncoder().encode(s) };
}

function encodeModel(node: Onnx.INodeProto, inputs: Onnx.IValueInfoProto[], opset: number): Uint8Array {
  const model = onnx.ModelProto.create({
    irVersion: 8,
    producerName: 'roiserve-oracle',
    opsetImport: [{ domain: '', version: opset }],
    graph: {
      name: 'g',
      node: [node],
      input: inputs,
      output: [valueInfo('Y', FLOAT, 4)],
    },
  });
  return onnx.ModelProto.encode(model).finish();
}

export interface OrtRoiAlignAttrs {
  outputHeight: number;
  outputWidth: number;
  samplingRatio: number;
  spatialScale: number;
  /** ONNX `mode`: `avg`, or `max` (= our `onnx_max`). */
  mode: 'avg' | 'max';
  /** true → `half_pixel` (our aligned=true), false → `output_half_pixel`. */
  halfPixel: boolean;
}

/** Bytes of a one-node `RoiAlign` model (opset 16): inputs X [N,C,H,W], rois [K,4], batch_indices [K]. */
export function roiAlignModel(a: OrtRoiAlignAttrs): Uint8Array {
  return encodeModel(
    {
      opType: 'RoiAlign',
      input: ['X', 'rois', 'batch_indices'],
      output: ['Y'],
      attribute: [
        stringAttr('coordinate_transformation_mode', a.halfPixel ? 'half_pixel' : 'output_half_pixel'),
        stringAttr('mode', a.mode),
        intAttr('output_height', a.outputHeight),
        intAttr('output_width', a.outputWidth),
        intAttr('sampling_ratio', a.samplingRatio),
        floatAttr('spatial_scale', a.spatialScale),
      ],
    },
    [valueInfo('X', FLOAT, 4), valueInfo('rois', FLOAT, 2), valueInfo('batch_indices', INT64, 1)],
    16,
  );
}

/** Bytes of a one-node `MaxRoiPool` model (opset 1): inputs X [N,C,H,W], rois [K,5] (b first). */
export function maxRoiPoolModel(pooledHeight: number, pooledWidth: number, spatialScale: number): Uint8Array {
  return encodeModel(
    {
      opType: 'MaxRoiPool',
      input: ['X', 'rois'],
      output: ['Y'],
      attribute: [
        {
          name: 'pooled_shape',
          type: onnx.AttributeProto.AttributeType.INTS,
          ints: [pooledHeight, pooledWidth],
        },
        floatAttr('spatial_scale', spatialScale),
      ],
    },
    [valueInfo('X', FLOAT, 4), valueInfo('rois', FLOAT, 2)],
    1,
  );
}

/** A session on one intra-op thread by default (the fair single-thread peer), sequential execution. */
export function createSession(model: Uint8Array, intraOpThreads = 1): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(model, {
    intraOpNumThreads: intraOpThreads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    // Quiet: ORT warns about opset 1 (MaxRoiPool exists only there) and about its old max-mode bug.
    logSeverityLevel: 3,
  });
}

/** Splits canonical `[K, 5]` rows into ONNX RoiAlign's `rois [K, 4]` and `batch_indices [K]`. */
export function splitBoxes(data: Float32Array, count: number): { rois: Float32Array; batch: BigInt64Array } {
  const rois = new Float32Array(count * 4);
  const batch = new BigInt64Array(count);
  for (let k = 0; k < count; k++) {
    batch[k] = BigInt(data[5 * k]);
    for (let j = 0; j < 4; j++) rois[4 * k + j] = data[5 * k + 1 + j];
  }
  return { rois, batch };
}

/** Runs a `RoiAlign` session: X NCHW `[N, C, H, W]`, canonical boxes → Y `[K, C, PH, PW]`. */
export async function runRoiAlign(
  session: ort.InferenceSession,
  x: Float32Array,
  shape: readonly number[],
  boxes: Float32Array,
  count: number,
): Promise<Float32Array> {
  const { rois, batch } = splitBoxes(boxes, count);
  const result = await session.run({
    X: new ort.Tensor('float32', x, shape),
    rois: new ort.Tensor('float32', rois, [count, 4]),
    batch_indices: new ort.Tensor('int64', batch, [count]),
  });
  return result.Y.data as Float32Array;
}

/** Runs a `MaxRoiPool` session: X NCHW, canonical `[K, 5]` boxes → Y `[K, C, PH, PW]`. */
export async function runMaxRoiPool(
  session: ort.InferenceSession,
  x: Float32Array,
  shape: readonly number[],
  boxes: Float32Array,
  count: number,
): Promise<Float32Array> {
  const result = await session.run({
    X: new ort.Tensor('float32', x, shape),
    rois: new ort.Tensor('float32', boxes.subarray(0, count * 5), [count, 5]),
  });
  return result.Y.data as Float32Array;
}
