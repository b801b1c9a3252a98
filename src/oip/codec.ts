/**
 * The Open Inference Protocol v2 (KServe / Triton REST) on the wire: the inference request's JSON
 * header, its tensors (JSON `data`, flat or nested, or raw bytes after the header with Triton's binary
 * tensor data extension), and the response (JSON `data`, or binary outputs after the header).
 *
 * Written from the protocol documents (kserve/open-inference-protocol
 * `specification/protocol/inference_rest.md`, triton-inference-server/server
 * `docs/protocol/extension_binary_data.md`), not from a client library:
 * - a body with binary tensors is the JSON object, then the tensors' bytes in the order of the inputs
 *   that carry `parameters.binary_data_size`; `Inference-Header-Content-Length` gives the JSON's length;
 * - binary data is little-endian, row-major, without padding; a BYTES element is a 4-byte little-endian
 *   length followed by its bytes; BOOL is one byte.
 *
 * Pure (no fastify): every failure is an {@link InvalidInputError} whose message names the input.
 *
 * Why one file of ~550 lines: it is the wire format both ways (request, tensor decoding, response),
 * with no state and no dependency but the float16 converters; about half is TSDoc and the messages.
 */
import { InvalidInputError, TooLargeError } from '../errors.js';
import { float16BitsToFloat32, toHalfBits } from '../tensors/float16.js';

/** The tensor data types of the protocol, with their element size in bytes (BYTES: variable). */
export const DATATYPE_SIZES = {
  BOOL: 1,
  UINT8: 1,
  UINT16: 2,
  UINT32: 4,
  UINT64: 8,
  INT8: 1,
  INT16: 2,
  INT32: 4,
  INT64: 8,
  FP16: 2,
  FP32: 4,
  FP64: 8,
  BF16: 2,
  BYTES: 0,
} as const;
export type Datatype = keyof typeof DATATYPE_SIZES;

/** The header that gives the JSON part's length in a body with binary tensors (any letter case). */
export const HEADER_LENGTH = 'inference-header-content-length';

/** A request input as sent: its declared shape and datatype, and its data in one of the two forms. */
export interface RequestInput {
  name: string;
  shape: number[];
  datatype: Datatype;
  parameters: Record<string, unknown>;
  /** JSON `data` (flat or nested); undefined when the tensor came as binary. */
  data: unknown;
  /** The tensor's bytes after the JSON header (binary tensor data extension). */
  binary: Uint8Array | undefined;
}

/** A requested output: its name and parameters (`binary_data`). */
export interface RequestOutput {
  name: string;
  parameters: Record<string, unknown>;
}

/** An inference request, parsed and checked for structure (not yet for a model's inputs). */
export interface InferenceRequest {
  id: string | undefined;
  parameters: Record<string, unknown>;
  inputs: RequestInput[];
  /** Undefined: every output of the model, with default settings. */
  outputs: RequestOutput[] | undefined;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function bad(message: string, field: string, expected: string): InvalidInputError {
  return new InvalidInputError(message, field, expected);
}

/** `parameters` of the request, an input or an output: an object when given. */
function parametersOf(value: unknown, where: string): Record<string, unknown> {
  if (value === undefined) return {};
  if (!isObject(value)) {
    throw bad(`${where}.parameters must be an object`, `${where}.parameters`, 'an object of key/value pairs');
  }
  return value;
}

/**
 * The JSON part's length from `Inference-Header-Content-Length`, or undefined when the header is absent
 * (the body is all JSON).
 *
 * @throws InvalidInputError for a value that is not a byte count within the body
 */
export function headerLength(value: string | string[] | undefined, bodyLength: number): number | undefined {
  if (value === undefined) return undefined;
  const text = Array.isArray(value) ? value[0] : value;
  if (!/^\d+$/.test(text.trim()) || Number(text) > bodyLength) {
    throw bad(
      `Inference-Header-Content-Length is "${text}", but the body has ${bodyLength} bytes`,
      'Inference-Header-Content-Length',
      `the JSON header's length in bytes, at most ${bodyLength}`,
    );
  }
  return Number(text);
}

/**
 * Parses an inference request body: the JSON object (all of `body`, or its first `jsonLength` bytes),
 * and the binary tensors after it, handed to the inputs whose `parameters.binary_data_size` says so.
 *
 * @param body - the raw body
 * @param jsonLength - from {@link headerLength}; undefined when the body is all JSON
 * @throws InvalidInputError naming the input or field at fault
 */
export function parseInferenceRequest(body: Uint8Array, jsonLength: number | undefined): InferenceRequest {
  const end = jsonLength ?? body.length;
  const text = Buffer.from(body.buffer, body.byteOffset, end).toString('utf8');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw bad(
      `the inference request is not valid JSON${jsonLength === undefined ? '' : ` (its first ${jsonLength} bytes, as Inference-Header-Content-Length says)`}: ${(err as Error).message}`,
      'body',
      'an $inference_request JSON object',
    );
  }
  if (!isObject(json)) throw bad('the inference request must be a JSON object', 'body', 'a JSON object');
  const id = json.id;
  if (id !== undefined && typeof id !== 'string') {
    throw bad('id must be a string', 'id', 'a string (echoed in the response)');
  }
  const parameters = parametersOf(json.parameters, 'request');
  if (!Array.isArray(json.inputs) || json.inputs.length === 0) {
    throw bad('inputs must be a non-empty array', 'inputs', 'an array of $request_input objects');
  }
  let offset = end;
  const seen = new Set<string>();
  const inputs = json.inputs.map((raw: unknown, i: number): RequestInput => {
    if (!isObject(raw))
      throw bad(`inputs[${i}] must be an object`, `inputs[${i}]`, 'a $request_input object');
    const name = raw.name;
    if (typeof name !== 'string' || name === '') {
      throw bad(`inputs[${i}].name must be a non-empty string`, `inputs[${i}].name`, 'the input name');
    }
    if (seen.has(name)) throw bad(`input "${name}" is given twice`, `inputs[${i}].name`, 'each input once');
    seen.add(name);
    const datatype = raw.datatype;
    if (typeof datatype !== 'string' || !Object.hasOwn(DATATYPE_SIZES, datatype)) {
      throw bad(
        `input "${name}": datatype ${JSON.stringify(datatype)} is not a protocol datatype`,
        `inputs[${i}].datatype`,
        Object.keys(DATATYPE_SIZES).join(', '),
      );
    }
    const shape = raw.shape;
    if (
      !Array.isArray(shape) ||
      !shape.every((d) => typeof d === 'number' && Number.isSafeInteger(d) && d >= 0)
    ) {
      throw bad(
        `input "${name}": shape must be an array of non-negative integers`,
        `inputs[${i}].shape`,
        'an array of non-negative integers',
      );
    }
    const params = parametersOf(raw.parameters, `inputs[${i}]`);
    const size = params.binary_data_size;
    let binary: Uint8Array | undefined;
    if (size !== undefined) {
      if (jsonLength === undefined) {
        throw bad(
          `input "${name}" has binary_data_size, but the request has no Inference-Header-Content-Length header`,
          'Inference-Header-Content-Length',
          'the JSON header length in Inference-Header-Content-Length when tensors follow it as binary data',
        );
      }
      if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
        throw bad(
          `input "${name}": binary_data_size must be a non-negative integer`,
          `inputs[${i}].parameters.binary_data_size`,
          'the byte count of the tensor after the JSON header',
        );
      }
      if (offset + size > body.length) {
        throw bad(
          `input "${name}": binary_data_size ${size} runs past the end of the body (${body.length - offset} bytes left after the header and the inputs before it)`,
          `inputs[${i}].parameters.binary_data_size`,
          'the byte count of the tensor actually sent',
        );
      }
      binary = body.subarray(offset, offset + size);
      offset += size;
      if (raw.data !== undefined) {
        throw bad(
          `input "${name}" has both data and binary_data_size`,
          `inputs[${i}].data`,
          'either JSON data or binary data, not both',
        );
      }
    } else if (raw.data === undefined) {
      throw bad(
        `input "${name}" has no data`,
        `inputs[${i}].data`,
        'data (JSON) or parameters.binary_data_size (binary tensor data)',
      );
    }
    return {
      name,
      shape: [...(shape as number[])],
      datatype: datatype as Datatype,
      parameters: params,
      data: raw.data,
      binary,
    };
  });
  if (offset !== body.length) {
    throw bad(
      `${body.length - offset} bytes follow the JSON header and the binary inputs it declares`,
      'body',
      'binary_data_size of the inputs summing to the bytes after the header',
    );
  }
  let outputs: RequestOutput[] | undefined;
  if (json.outputs !== undefined) {
    if (!Array.isArray(json.outputs)) {
      throw bad('outputs must be an array', 'outputs', 'an array of $request_output objects');
    }
    outputs = json.outputs.map((raw: unknown, i: number) => {
      if (!isObject(raw) || typeof raw.name !== 'string') {
        throw bad(`outputs[${i}] must be an object with a name`, `outputs[${i}]`, 'a $request_output object');
      }
      return { name: raw.name, parameters: parametersOf(raw.parameters, `outputs[${i}]`) };
    });
  }
  return { id, parameters, inputs, outputs };
}

/** The element count of a shape. */
export function elementCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/**
 * JSON `data` in row-major order as one flat array: flat, or nested to any depth (the protocol allows
 * both). Iterative, so deep nesting cannot overflow the stack.
 */
function flatten(data: unknown, name: string): unknown[] {
  if (!Array.isArray(data)) {
    throw bad(`input "${name}": data must be an array`, `${name}.data`, 'a flat or nested array, row-major');
  }
  if (!data.some(Array.isArray)) return data;
  const out: unknown[] = [];
  const stack: Array<{ array: unknown[]; index: number }> = [{ array: data, index: 0 }];
  while (stack.length > 0) {
    const top = stack[stack.length - 1];
    if (top.index === top.array.length) {
      stack.pop();
      continue;
    }
    const value = top.array[top.index++];
    if (Array.isArray(value)) stack.push({ array: value, index: 0 });
    else out.push(value);
  }
  return out;
}

/** Numeric datatypes this module decodes, and the array each becomes. */
export type NumericDatatype = Exclude<Datatype, 'BYTES' | 'BOOL' | 'FP16' | 'BF16'>;

function checkCount(input: RequestInput, count: number): void {
  const expected = elementCount(input.shape);
  if (count !== expected) {
    throw bad(
      `input "${input.name}": shape [${input.shape.join(', ')}] has ${expected} elements, but the data holds ${count}`,
      `${input.name}.data`,
      `${expected} ${input.datatype} values`,
    );
  }
}

/** Little-endian readers of the numeric datatypes; INT64 / UINT64 come back inexact past ±2^53. */
const READERS: Record<NumericDatatype, (view: DataView, offset: number) => number> = {
  FP32: (v, o) => v.getFloat32(o, true),
  FP64: (v, o) => v.getFloat64(o, true),
  INT8: (v, o) => v.getInt8(o),
  UINT8: (v, o) => v.getUint8(o),
  INT16: (v, o) => v.getInt16(o, true),
  UINT16: (v, o) => v.getUint16(o, true),
  INT32: (v, o) => v.getInt32(o, true),
  UINT32: (v, o) => v.getUint32(o, true),
  INT64: (v, o) => Number(v.getBigInt64(o, true)),
  UINT64: (v, o) => Number(v.getBigUint64(o, true)),
};

/**
 * The element count of a binary input, after checking that its bytes are exactly shape × element size
 * (a huge declared shape fails here, before anything is allocated for it).
 */
function checkByteCount(input: RequestInput, datatype: NumericDatatype): number {
  const binary = input.binary as Uint8Array;
  const size = DATATYPE_SIZES[datatype];
  const count = elementCount(input.shape);
  if (binary.length !== count * size) {
    throw bad(
      `input "${input.name}": shape [${input.shape.join(', ')}] of ${datatype} needs ${count * size} bytes, but binary_data_size is ${binary.length}`,
      `${input.name}.parameters.binary_data_size`,
      `${count * size} (${count} × ${size} bytes)`,
    );
  }
  return count;
}

/**
 * An FP32 / FP64 / integer input as float64 numbers (INT64 / UINT64 must be within ±2^53), checked
 * against its shape. FP32 values are rounded to float32, as the wire form would carry them.
 *
 * @param allowed - the datatypes the model accepts for this input
 * @throws InvalidInputError naming the input
 */
export function numericValues(input: RequestInput, allowed: readonly NumericDatatype[]): Float64Array {
  if (!(allowed as readonly string[]).includes(input.datatype)) {
    throw bad(
      `input "${input.name}" has datatype ${input.datatype}; this model takes ${allowed.join(' or ')}`,
      `${input.name}.datatype`,
      allowed.join(' or '),
    );
  }
  const datatype = input.datatype as NumericDatatype;
  if (input.binary !== undefined) {
    const count = checkByteCount(input, datatype);
    const size = DATATYPE_SIZES[datatype];
    const view = new DataView(input.binary.buffer, input.binary.byteOffset, input.binary.byteLength);
    const out = new Float64Array(count);
    const read = READERS[datatype];
    const wide = datatype === 'INT64' || datatype === 'UINT64';
    for (let i = 0; i < count; i++) {
      const v = read(view, i * size);
      if (wide && !Number.isSafeInteger(v)) {
        throw bad(
          `input "${input.name}"[${i}] is ${datatype === 'INT64' ? view.getBigInt64(i * size, true) : view.getBigUint64(i * size, true)}, out of range`,
          `${input.name}.data[${i}]`,
          'an integer within ±2^53',
        );
      }
      out[i] = v;
    }
    return out;
  }
  const flat = flatten(input.data, input.name);
  checkCount(input, flat.length);
  const out = new Float64Array(flat.length);
  const integer = datatype.includes('INT');
  for (let i = 0; i < flat.length; i++) {
    const v = flat[i];
    if (typeof v !== 'number' || (integer && !Number.isSafeInteger(v))) {
      throw bad(
        `input "${input.name}": data[${i}] is ${JSON.stringify(v)}, not ${integer ? 'an integer' : 'a number'}`,
        `${input.name}.data[${i}]`,
        integer ? 'an integer' : 'a number',
      );
    }
    out[i] = datatype === 'FP32' ? Math.fround(v) : v;
  }
  return out;
}

/**
 * An FP32 input as float32 values, without a detour through float64 when it came as binary.
 *
 * @throws InvalidInputError naming the input
 */
export function float32Values(input: RequestInput): Float32Array {
  if (input.datatype !== 'FP32') {
    throw bad(
      `input "${input.name}" has datatype ${input.datatype}; this model takes FP32`,
      `${input.name}.datatype`,
      'FP32',
    );
  }
  if (input.binary === undefined) return Float32Array.from(numericValues(input, ['FP32']));
  const count = checkByteCount(input, 'FP32');
  // A copy: the bytes may sit at any offset of the body, and a Float32Array needs 4-byte alignment.
  const out = new Float32Array(count);
  new Uint8Array(out.buffer).set(input.binary);
  return out;
}

/**
 * A BYTES input's elements: binary (each a 4-byte little-endian length, then the bytes) or JSON
 * strings (UTF-8). The protocol's JSON form of BYTES is a string per element.
 *
 * @throws InvalidInputError naming the input
 */
export function bytesValues(input: RequestInput): Uint8Array[] {
  if (input.datatype !== 'BYTES') {
    throw bad(
      `input "${input.name}" has datatype ${input.datatype}; this model takes BYTES`,
      `${input.name}.datatype`,
      'BYTES',
    );
  }
  const count = elementCount(input.shape);
  if (input.binary === undefined) {
    const flat = flatten(input.data, input.name);
    checkCount(input, flat.length);
    return flat.map((v, i) => {
      if (typeof v !== 'string') {
        throw bad(
          `input "${input.name}": data[${i}] is not a string`,
          `${input.name}.data[${i}]`,
          'a string',
        );
      }
      return Buffer.from(v, 'utf8');
    });
  }
  const bytes = input.binary;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: Uint8Array[] = [];
  let o = 0;
  while (o < bytes.length) {
    if (o + 4 > bytes.length) break;
    const length = view.getUint32(o, true);
    if (o + 4 + length > bytes.length) break;
    out.push(bytes.subarray(o + 4, o + 4 + length));
    o += 4 + length;
  }
  if (o !== bytes.length || out.length !== count) {
    throw bad(
      `input "${input.name}": the binary data does not hold ${count} BYTES elements (each a 4-byte little-endian length, then its bytes)`,
      `${input.name}.parameters.binary_data_size`,
      `${count} length-prefixed elements`,
    );
  }
  return out;
}

/** An output tensor ready to send. */
export interface ResponseTensor {
  name: string;
  datatype: 'FP32' | 'FP16' | 'BF16' | 'INT64';
  shape: number[];
  /** The binary form: little-endian elements of `datatype`, row-major. */
  bytes: Uint8Array;
  /** The JSON form: each element's exact value (every FP16 / BF16 value is a float32). */
  values: Float32Array | Int32Array;
}

/** An INT64 `[K]` tensor of small integers (the pyramid level of each box). */
export function int64Tensor(name: string, values: Int32Array): ResponseTensor {
  const bytes = new Uint8Array(values.length * 8);
  const view = new DataView(bytes.buffer);
  values.forEach((v, i) => view.setBigInt64(8 * i, BigInt(v), true));
  return { name, datatype: 'INT64', shape: [values.length], bytes, values };
}

/**
 * A float32 output as a tensor of `datatype`: FP32 as it is; FP16 / BF16 rounded to nearest, ties to
 * even, by the converters `/v1`'s `dtype` uses (`src/tensors/float16.ts`), so the bits are `/v1`'s.
 *
 * @param bytes - little-endian float32 values (the worker's output)
 * @returns the tensor, and how many finite values became ±Infinity (FP16 past ±65504)
 */
export function outputTensor(
  name: string,
  shape: number[],
  bytes: Uint8Array,
  datatype: ResponseTensor['datatype'],
): { tensor: ResponseTensor; overflow: number } {
  // A copy: the bytes may sit at any offset, and a Float32Array needs 4-byte alignment.
  const values = new Float32Array(bytes.length / 4);
  new Uint8Array(values.buffer).set(bytes);
  if (datatype === 'FP32') return { tensor: { name, datatype, shape, bytes, values }, overflow: 0 };
  const { bits, overflow } = toHalfBits(values, datatype === 'FP16' ? 'float16' : 'bfloat16');
  const exact =
    datatype === 'FP16'
      ? float16BitsToFloat32(bits)
      : new Float32Array(Uint32Array.from(bits, (b) => b << 16).buffer);
  const wire = new Uint8Array(bits.buffer, bits.byteOffset, bits.byteLength);
  return { tensor: { name, datatype, shape, bytes: wire, values: exact }, overflow };
}

/** Values JSON `data` may carry (the same bound as `/v1`'s `encoding: "array"`). */
export const MAX_JSON_OUTPUT_VALUES = 1_000_000;

/** Whether `output` goes back as binary: its own `binary_data` wins, else the request's `binary_data_output`. */
export function wantsBinary(request: InferenceRequest, output: string): boolean {
  const own = request.outputs?.find((o) => o.name === output)?.parameters.binary_data;
  if (typeof own === 'boolean') return own;
  return request.parameters.binary_data_output === true;
}

/**
 * Encodes an inference response: the JSON object, then (if any output is binary) the binary outputs in
 * the order of `outputs`.
 *
 * @returns the body and, when binary data follows, the JSON part's length (for the header)
 * @throws TooLargeError for JSON data over {@link MAX_JSON_OUTPUT_VALUES} values;
 *   InvalidInputError for a non-finite value in JSON (JSON has no number for it)
 */
export function encodeInferenceResponse(
  head: { model_name: string; model_version: string; id: string | undefined },
  outputs: ReadonlyArray<ResponseTensor & { binary: boolean }>,
): { body: Buffer; jsonLength: number | undefined } {
  const tail: Uint8Array[] = [];
  const json: string[] = [];
  for (const out of outputs) {
    const entry: Record<string, unknown> = { name: out.name, datatype: out.datatype, shape: out.shape };
    if (out.binary) {
      entry.parameters = { binary_data_size: out.bytes.length };
      tail.push(out.bytes);
    } else {
      const count = out.values.length;
      if (count > MAX_JSON_OUTPUT_VALUES) {
        throw new TooLargeError(
          `output "${out.name}" holds ${count} values, over the ${MAX_JSON_OUTPUT_VALUES} that JSON data may carry; ask for it as binary data`,
          `outputs.${out.name}`,
          'parameters.binary_data: true on the output, or binary_data_output: true on the request',
        );
      }
      const values = out.values;
      const parts = new Array<string>(count);
      for (let i = 0; i < count; i++) {
        const v = values[i];
        if (v - v !== 0) {
          throw new InvalidInputError(
            `output "${out.name}"[${i}] is ${v}, which JSON has no number for; ask for it as binary data`,
            `outputs.${out.name}`,
            'parameters.binary_data: true on the output',
          );
        }
        // The shortest decimal that reads back as the same float32 (through float64): exact.
        parts[i] = v === 0 && 1 / v < 0 ? '-0' : String(v);
      }
      // Spliced in as text: JSON.stringify of a million-element number array is slower.
      json.push(`${JSON.stringify(entry).slice(0, -1)},"data":[${parts.join(',')}]}`);
      continue;
    }
    json.push(JSON.stringify(entry));
  }
  const object: Record<string, unknown> = { model_name: head.model_name, model_version: head.model_version };
  if (head.id !== undefined) object.id = head.id;
  const text = `${JSON.stringify(object).slice(0, -1)},"outputs":[${json.join(',')}]}`;
  const header = Buffer.from(text, 'utf8');
  if (tail.length === 0) return { body: header, jsonLength: undefined };
  return { body: Buffer.concat([header, ...tail]), jsonLength: header.length };
}
