/**
 * The encoders of the RoI work's results (they run in the worker): tensors as JSON (base64 or arrays),
 * `.npy` and safetensors, with the checks of the output options that need no work. The JSON bodies are
 * typed by `./wire.ts`; their zod schemas (the OpenAPI document) are on the HTTP side
 * (`routes/v1/schemas/responses.ts`), which checks at compile time that the two agree.
 */
import { InvalidInputError, TooLargeError } from '../errors.js';
import type { Boxes, Pooled } from '../ops/types.js';
import type { RoiOp } from '../ops/registry.js';
import { littleEndianBytes } from '../tensors/base64.js';
import {
  bfloat16BitsToFloat32,
  float16BitsToFloat32,
  FLOAT16_MAX,
  toHalfBits,
  type OutputDtype,
} from '../tensors/float16.js';
import { writeNpy } from '../tensors/npy.js';
import { writeSafetensors, type WritableTensor } from '../tensors/safetensors.js';
import type { RoiWarning } from '../warnings.js';
import type { FeatureMapInfo, FeaturesResult, ImageInfo, RoiResult } from './results.js';
import type { EchoedParams, FeaturesResponseBody, RoiResponseBody } from './wire.js';

/** Most values `encoding: "array"` may return (JSON numbers are ~10× larger than base64 float32). */
export const MAX_ARRAY_VALUES = 1_000_000;

/**
 * A flat float32 array as JSON text for `encoding: "array"`. `JSON.stringify` would write `-0` as `0`
 * and `±Infinity` / `NaN` as `null`, two silent changes of the value; here `-0` keeps its sign (`-0` is
 * valid JSON and `JSON.parse` gives back -0), and a value JSON has no number for is refused.
 *
 * Non-finite outputs do occur from finite inputs: RoI Align/Warp `avg` of values near the float32
 * limit (±3.4e38) can round past it to ±Infinity.
 *
 * @param field - the tensor's name in the response, e.g. `outputs.align`, for the error
 * @throws InvalidInputError (field `encoding`) for ±Infinity or NaN: use `base64`, `npy` or
 *   `safetensors`, which carry every float32 bit for bit
 */
export function float32ArrayJson(data: Float32Array, field: string): string {
  const parts = new Array<string>(data.length);
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (v - v !== 0) {
      // NaN or ±Infinity (v - v is 0 for every finite v).
      throw new InvalidInputError(
        `${field}.data[${i}] is ${v}, which JSON has no number for (encoding "array" would write null); ` +
          'use encoding "base64" (or format "npy" / "safetensors"), which carries every float32 value bit for bit',
        'encoding',
        '"base64" when an output is not finite',
      );
    }
    parts[i] = v === 0 && 1 / v < 0 ? '-0' : String(v);
  }
  return `[${parts.join(',')}]`;
}

/**
 * Refuses `encoding: "array"` above {@link MAX_ARRAY_VALUES} values.
 *
 * @throws TooLargeError (field `encoding`)
 */
export function checkArrayEncoding(values: number, encoding: 'base64' | 'array'): void {
  if (encoding === 'array' && values > MAX_ARRAY_VALUES) {
    throw new TooLargeError(
      `encoding "array" is limited to ${MAX_ARRAY_VALUES} values; this response has ${values}`,
      'encoding',
      `"base64", or at most ${MAX_ARRAY_VALUES} values with "array"`,
    );
  }
}

/** Boxes `[K, 5]` as rows. */
export function boxRows(boxes: Boxes): [number, number, number, number, number][] {
  const rows: [number, number, number, number, number][] = [];
  for (let k = 0; k < boxes.count; k++) {
    const o = 5 * k;
    const d = boxes.data;
    rows.push([d[o], d[o + 1], d[o + 2], d[o + 3], d[o + 4]]);
  }
  return rows;
}

/** The params echoed in responses (JSON body and safetensors metadata). */
export function echoedParams(
  result: RoiResult,
  format: 'json' | 'npy' | 'safetensors',
  encoding: 'base64' | 'array',
): EchoedParams {
  const p = result.params;
  return {
    ops: p.ops,
    boxFormat: p.boxFormat,
    clockwise: p.clockwise ?? false,
    normalized: p.normalized,
    outputSize: p.outputSize,
    samplingRatio: p.samplingRatio,
    aligned: p.aligned,
    mode: p.mode,
    spatialScale: p.spatialScale,
    imageSize: p.imageSize ?? null,
    maxSide: p.maxSide ?? null,
    format,
    encoding,
  };
}

/** The outputs of `result` in op order. */
export function pooledOutputs(result: RoiResult): [RoiOp, Pooled][] {
  return result.params.ops.flatMap((op) => {
    const pooled = result.outputs[op];
    return pooled ? [[op, pooled] as [RoiOp, Pooled]] : [];
  });
}

/** An output in its wire type: float32 values, or float16 / bfloat16 bit patterns. */
type WireTensor =
  { dtype: 'float32'; data: Float32Array } | { dtype: 'float16' | 'bfloat16'; data: Uint16Array };

/**
 * The outputs of `result` in op order, converted to `dtype` (round to nearest, ties to even: see
 * `src/tensors/float16.ts`), with a `dtype-overflow` warning per output where finite values became
 * ±Infinity (float16 past ±65504; bfloat16 only within half a step of float32's largest).
 */
function wireOutputs(
  result: RoiResult,
  dtype: OutputDtype,
): { outputs: [RoiOp, Pooled, WireTensor][]; warnings: RoiWarning[] } {
  const warnings: RoiWarning[] = [];
  const outputs = pooledOutputs(result).map(([op, pooled]): [RoiOp, Pooled, WireTensor] => {
    if (dtype === 'float32') return [op, pooled, { dtype, data: pooled.data }];
    const { bits, overflow } = toHalfBits(pooled.data, dtype);
    if (overflow > 0) {
      const range = dtype === 'float16' ? `float16's range (±${FLOAT16_MAX})` : "bfloat16's range";
      warnings.push({
        code: 'dtype-overflow',
        field: 'dtype',
        message:
          `${overflow} finite value${overflow === 1 ? '' : 's'} of outputs.${op} lie beyond ${range} and ` +
          `were sent as ±Infinity; use dtype "float32"` +
          (dtype === 'float16' ? ' (or "bfloat16", which has float32\'s range)' : ''),
      });
    }
    return [op, pooled, { dtype, data: bits }];
  });
  return { outputs, warnings };
}

/**
 * One safetensors file: a tensor per op (named as in `ops`: `[K, C, PH, PW]`, `F32`, `F16` or
 * `BF16` as `dtype` says) and, in `__metadata__`, JSON text of `params`, `boxes`, `image`,
 * `featureMap`, `levels`, `warnings` (as in the JSON response).
 */
export function roiSafetensors(result: RoiResult, dtype: OutputDtype = 'float32'): Buffer {
  return roiSafetensorsOf(result, wireOutputs(result, dtype), dtype);
}

function roiSafetensorsOf(
  result: RoiResult,
  wire: ReturnType<typeof wireOutputs>,
  dtype: OutputDtype,
): Buffer {
  const tensors: Record<string, WritableTensor> = {};
  for (const [op, pooled, t] of wire.outputs) {
    const shape = [...pooled.shape];
    tensors[op] = t.dtype === 'float32' ? { shape, data: t.data } : { shape, data: t.data, dtype: t.dtype };
  }
  const metadata: Record<string, string> = {
    format: 'roiserve',
    params: JSON.stringify({ ...echoedParams(result, 'safetensors', 'base64'), dtype }),
    boxes: JSON.stringify(boxRows(result.boxes)),
    image: JSON.stringify(result.image satisfies ImageInfo | null),
    featureMap: JSON.stringify(result.featureMap satisfies FeatureMapInfo),
    // With a pyramid, each box's level (as in the JSON); null with one map.
    levels: JSON.stringify(result.levels ?? null),
    warnings: JSON.stringify([...result.warnings, ...wire.warnings]),
  };
  return writeSafetensors(tensors, metadata);
}

/**
 * The output checks of `/v1/roi` that need no work, shared by the route and the CLI so both refuse the
 * same bodies: `.npy` holds exactly one op's tensor, and has no bfloat16 ({@link checkNpyDtype}).
 *
 * @param expected - the `expected` text of the `ops` error (the CLI names its own flag)
 * @throws InvalidInputError (field `ops` or `dtype`)
 */
export function checkRoiFormat(
  body: { format: 'json' | 'npy' | 'safetensors'; ops: readonly RoiOp[]; dtype: OutputDtype },
  expected = 'exactly one op with format "npy" (or format "safetensors" / "json" for several)',
): void {
  const opCount = new Set(body.ops).size;
  if (body.format === 'npy' && opCount !== 1) {
    throw new InvalidInputError(
      `format "npy" holds one tensor, but ${opCount} ops were asked for`,
      'ops',
      expected,
    );
  }
  checkNpyDtype(body.format, body.dtype);
}

/**
 * Refuses `dtype: "bfloat16"` with `format: "npy"`: numpy has no bfloat16 dtype, so no `.npy` header
 * could name one that `numpy.load` reads (ml_dtypes' bfloat16 saves as an opaque `<V2`).
 *
 * @throws InvalidInputError (field `dtype`)
 */
export function checkNpyDtype(format: 'json' | 'npy' | 'safetensors', dtype: OutputDtype): void {
  if (format === 'npy' && dtype === 'bfloat16') {
    throw new InvalidInputError(
      'format "npy" cannot hold bfloat16: numpy has no bfloat16 dtype, so numpy.load could not read the file',
      'dtype',
      '"float16" or "float32" with format "npy", or format "safetensors" (BF16) / "json" for bfloat16',
    );
  }
}

/** A response body encoded off the HTTP thread (in a worker), ready to send. */
export interface EncodedBody {
  body: Uint8Array;
  contentType: string;
  /** For `Content-Disposition: attachment`; null for JSON. */
  filename: string | null;
}

export const JSON_CONTENT_TYPE = 'application/json; charset=utf-8';
export const NPY_CONTENT_TYPE = 'application/x-npy';
export const SAFETENSORS_CONTENT_TYPE = 'application/octet-stream';

const PLACEHOLDER = (i: number) => `@@roiserve-tensor-${i}@@`;

/** A tensor spliced into the JSON text: base64 of its little-endian bytes (a string) or JSON array text. */
type SplicedTensor = { base64: Float32Array | Uint16Array } | { arrayJson: string };

/**
 * `JSON.stringify(value)` as UTF-8 bytes, with each `"@@roiserve-tensor-i@@"` string replaced by
 * `tensors[i]`: the base64 text in quotes, or the JSON array text as is. Base64 needs no escaping, so
 * the large strings are copied as bytes instead of going through `JSON.stringify` (which takes
 * seconds for hundreds of MB); arrays are written by `float32ArrayJson` (it keeps `-0`).
 */
function jsonWithTensors(value: unknown, tensors: readonly SplicedTensor[]): Buffer {
  let rest = JSON.stringify(value);
  const parts: Buffer[] = [];
  tensors.forEach((tensor, i) => {
    const token = `"${PLACEHOLDER(i)}"`;
    const at = rest.indexOf(token);
    if (at < 0) throw new Error(`jsonWithTensors: placeholder ${i} missing`);
    if ('base64' in tensor) {
      parts.push(
        Buffer.from(rest.slice(0, at) + '"'),
        littleEndianBytesBase64(tensor.base64),
        Buffer.from('"'),
      );
    } else {
      parts.push(Buffer.from(rest.slice(0, at)), Buffer.from(tensor.arrayJson));
    }
    rest = rest.slice(at + token.length);
  });
  parts.push(Buffer.from(rest));
  return Buffer.concat(parts);
}

function littleEndianBytesBase64(data: Float32Array | Uint16Array): Buffer {
  // Base64 is ASCII: latin1 copies its characters to bytes one to one, without UTF-8 encoding work.
  return Buffer.from(littleEndianBytes(data).toString('base64'), 'latin1');
}

/**
 * Encodes a `/v1/roi` result in the requested format (runs in the worker):
 * - `json`: {@link RoiResponseBody}; tensors as base64 or (`encoding: "array"`) number arrays;
 * - `npy`: the single op's `[K, C, PH, PW]` as `.npy` (`<f4`, or `<f2` for float16);
 * - `safetensors`: {@link roiSafetensors}.
 *
 * @param result - from `executeRoi`
 * @param format - `json` (default in the API), `npy` (exactly one op) or `safetensors`
 * @param encoding - JSON tensors: `base64` or `array` (≤ {@link MAX_ARRAY_VALUES} values)
 * @param dtype - the element type sent: float32, or float16 / bfloat16 rounded to nearest even
 * @param workStartedAt - `performance.now()` when the work began (for `timings.total`); default now
 * @returns the body, and the warnings it carries: the result's plus any `dtype-overflow`
 * @throws TooLargeError (field `encoding`) for `array` over the limit; InvalidInputError (field
 *   `dtype`) for bfloat16 as `.npy`, or for `array` when a value overflowed to ±Infinity in `dtype`
 */
export function encodeRoi(
  result: RoiResult,
  format: 'json' | 'npy' | 'safetensors',
  encoding: 'base64' | 'array',
  dtype: OutputDtype = 'float32',
  workStartedAt = performance.now(),
): EncodedBody & { encodeMs: number; warnings: RoiWarning[] } {
  const start = performance.now();
  checkNpyDtype(format, dtype);
  if (format === 'json') {
    // Before converting: the count does not depend on the dtype, and a refusal should cost nothing.
    checkArrayEncoding(
      pooledOutputs(result).reduce((sum, [, pooled]) => sum + pooled.data.length, 0),
      encoding,
    );
  }
  const wire = wireOutputs(result, dtype);
  const { outputs } = wire;
  const warnings = [...result.warnings, ...wire.warnings];
  let encoded: EncodedBody;
  if (format === 'npy') {
    const [op, pooled, t] = outputs[0];
    encoded = {
      body: writeNpy(t.data, pooled.shape),
      contentType: NPY_CONTENT_TYPE,
      filename: `${op}.npy`,
    };
  } else if (format === 'safetensors') {
    encoded = {
      body: roiSafetensorsOf(result, wire, dtype),
      contentType: SAFETENSORS_CONTENT_TYPE,
      filename: 'roi.safetensors',
    };
  } else {
    const tensors: RoiResponseBody['outputs'] = {};
    const spliced: SplicedTensor[] = [];
    for (const [op, pooled, t] of outputs) {
      tensors[op] = { shape: [...pooled.shape], dtype, data: PLACEHOLDER(spliced.length) };
      spliced.push(
        encoding === 'array'
          ? { arrayJson: roundedArrayJson(pooled.data, t, `outputs.${op}`) }
          : { base64: t.data },
      );
    }
    const payload: RoiResponseBody = {
      params: { ...echoedParams(result, 'json', encoding), dtype },
      image: result.image,
      ...(result.images ? { images: result.images } : {}),
      featureMap: result.featureMap,
      boxes: boxRows(result.boxes),
      outputs: tensors,
      coverage: result.coverage,
      levels: result.levels ?? null,
      warnings,
      timings: { ...result.timings, encode: 0, total: 0 },
    };
    // The encode time of the JSON itself is not in the body (it is in Server-Timing); the rest is.
    payload.timings.encode = performance.now() - start;
    payload.timings.total = performance.now() - workStartedAt;
    encoded = { body: jsonWithTensors(payload, spliced), contentType: JSON_CONTENT_TYPE, filename: null };
  }
  return { ...encoded, encodeMs: performance.now() - start, warnings };
}

/**
 * `encoding: "array"` text of an output in its wire type: the numbers a client reading the float16 /
 * bfloat16 bytes would get (each exact as a JSON number). A finite float32 that overflowed to ±Infinity
 * in `dtype` is refused naming `dtype` (JSON has no Infinity, and the cause is the dtype, not the
 * encoding); non-finite values already in float32 are refused by {@link float32ArrayJson} as before.
 */
function roundedArrayJson(float32: Float32Array, t: WireTensor, field: string): string {
  if (t.dtype === 'float32') return float32ArrayJson(t.data, field);
  const values = t.dtype === 'float16' ? float16BitsToFloat32(t.data) : bfloat16BitsToFloat32(t.data);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v - v !== 0 && Number.isFinite(float32[i])) {
      throw new InvalidInputError(
        `${field}.data[${i}] is ${float32[i]}, beyond ${t.dtype}'s range: it rounds to ${v}, which JSON has ` +
          'no number for',
        'dtype',
        t.dtype === 'float16'
          ? `"float32" or "bfloat16" when outputs exceed ±${FLOAT16_MAX}, or encoding "base64" (sends ±Infinity)`
          : '"float32", or encoding "base64" (sends ±Infinity)',
      );
    }
  }
  return float32ArrayJson(values, field);
}

/**
 * Encodes a `/v1/features` result (runs in the worker): JSON ({@link FeaturesResponseBody}) or `.npy`
 * of `[1, C, H, W]`.
 */
export function encodeFeatures(
  result: FeaturesResult,
  format: 'json' | 'npy',
): EncodedBody & { encodeMs: number } {
  const start = performance.now();
  const { features } = result;
  let encoded: EncodedBody;
  if (format === 'npy') {
    encoded = {
      body: writeNpy(features.data, features.shape),
      contentType: NPY_CONTENT_TYPE,
      filename: 'features.npy',
    };
  } else {
    const [n, c, h, w] = features.shape;
    const payload: FeaturesResponseBody = {
      features: { shape: [n, c, h, w], layout: 'NCHW', dtype: 'float32', data: PLACEHOLDER(0) },
      featureMap: result.featureMap,
      image: result.image,
      timings: { ...result.timings, encode: 0 },
    };
    payload.timings.encode = performance.now() - start;
    encoded = {
      body: jsonWithTensors(payload, [{ base64: features.data }]),
      contentType: JSON_CONTENT_TYPE,
      filename: null,
    };
  }
  return { ...encoded, encodeMs: performance.now() - start };
}
