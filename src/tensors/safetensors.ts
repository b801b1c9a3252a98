/**
 * safetensors files (https://huggingface.co/docs/safetensors): an 8-byte little-endian header length,
 * a JSON header `{ name: { dtype, shape, data_offsets }, __metadata__: { string: string } }`, then the
 * raw little-endian tensor bytes. `F32`, `F16` and `BF16` tensors are written; only `F32` is read.
 */
import { InvalidInputError } from '../errors.js';
import { float32FromLittleEndian, littleEndianBytes } from './base64.js';

/** One named float32 tensor, row-major. */
export interface NamedTensor {
  shape: number[];
  data: Float32Array;
}

/**
 * A tensor to write: float32 values, or the 16-bit patterns of float16 / bfloat16 values (from
 * `src/tensors/float16.ts`), stored as `F16` / `BF16`.
 */
export type WritableTensor =
  NamedTensor | { shape: number[]; data: Uint16Array; dtype: 'float16' | 'bfloat16' };

const SAFETENSORS_DTYPES = { float32: 'F32', float16: 'F16', bfloat16: 'BF16' } as const;

/**
 * Writes named tensors (float32, float16 or bfloat16) and string metadata into one safetensors file. Tensors are laid out
 * in the order given; the header is padded with spaces to a multiple of 8 bytes, as the format
 * recommends.
 *
 * @param tensors - name → tensor; names must not be `__metadata__`
 * @param metadata - string → string, stored under `__metadata__`; default none
 */
export function writeSafetensors(
  tensors: Record<string, WritableTensor>,
  metadata: Record<string, string> = {},
): Buffer {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  const chunks: Buffer[] = [];
  let offset = 0;
  for (const [name, tensor] of Object.entries(tensors)) {
    const count = tensor.shape.reduce((a, b) => a * b, 1);
    if (count !== tensor.data.length) {
      throw new Error(`writeSafetensors: ${name} shape [${tensor.shape.join(', ')}] needs ${count} values`);
    }
    const [bytes, dtype] =
      'dtype' in tensor
        ? [littleEndianBytes(tensor.data), SAFETENSORS_DTYPES[tensor.dtype]]
        : [littleEndianBytes(tensor.data), SAFETENSORS_DTYPES.float32];
    header[name] = { dtype, shape: tensor.shape, data_offsets: [offset, offset + bytes.length] };
    chunks.push(bytes);
    offset += bytes.length;
  }
  let headerText = JSON.stringify(header);
  headerText += ' '.repeat((8 - (Buffer.byteLength(headerText) % 8)) % 8);
  const headerBytes = Buffer.from(headerText, 'utf8');
  const size = Buffer.alloc(8);
  size.writeBigUInt64LE(BigInt(headerBytes.length));
  return Buffer.concat([size, headerBytes, ...chunks]);
}

/**
 * Reads a safetensors file holding float32 tensors.
 *
 * @param bytes - the whole file
 * @param field - field path for error messages; default `file`
 * @returns the tensors by name and the `__metadata__` strings (empty when absent)
 */
export function readSafetensors(
  bytes: Uint8Array,
  field = 'file',
): { tensors: Record<string, NamedTensor>; metadata: Record<string, string> } {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const bad = (what: string) =>
    new InvalidInputError(`${field} is not a valid safetensors file: ${what}`, field, 'a safetensors file');
  if (buf.length < 8) throw bad('shorter than 8 bytes');
  const headerLength = Number(buf.readBigUInt64LE(0));
  if (8 + headerLength > buf.length) throw bad('truncated header');
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(buf.toString('utf8', 8, 8 + headerLength)) as Record<string, unknown>;
  } catch {
    throw bad('header is not JSON');
  }
  const dataStart = 8 + headerLength;
  const tensors: Record<string, NamedTensor> = {};
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = entry as Record<string, string>;
      continue;
    }
    const {
      dtype,
      shape,
      data_offsets: offsets,
    } = entry as { dtype: string; shape: number[]; data_offsets: [number, number] };
    if (dtype !== 'F32') throw bad(`tensor ${name} has dtype ${dtype}, only F32 is read`);
    const [begin, end] = offsets;
    const count = shape.reduce((a, b) => a * b, 1);
    if (end - begin !== count * 4 || dataStart + end > buf.length)
      throw bad(`tensor ${name} has bad offsets`);
    tensors[name] = {
      shape,
      data: float32FromLittleEndian(buf.subarray(dataStart + begin, dataStart + end), name),
    };
  }
  return { tensors, metadata };
}
