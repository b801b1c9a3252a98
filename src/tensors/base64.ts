/**
 * Float32 tensors as base64 text: the raw little-endian IEEE-754 bytes, row-major, no header.
 * (The shape travels next to the data, e.g. `{ shape, dtype: "float32", data }`.)
 */
import { InvalidInputError } from '../errors.js';

/** Whether this machine stores numbers little-endian (the wire order), so bytes can be read in place. */
export const littleEndianHost = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** Copies `bytes` (any alignment, little-endian float32) into a fresh, owned Float32Array. */
export function float32FromLittleEndian(bytes: Uint8Array, field = 'data'): Float32Array {
  if (bytes.byteLength % 4 !== 0) {
    throw new InvalidInputError(
      `${field} has ${bytes.byteLength} bytes, not a multiple of 4`,
      field,
      'little-endian float32 bytes (4 per value)',
    );
  }
  const out = new Float32Array(bytes.byteLength / 4);
  const outBytes = new Uint8Array(out.buffer);
  outBytes.set(bytes);
  if (!littleEndianHost) {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(i * 4, true);
  }
  return out;
}

/**
 * The little-endian bytes of float32 values or of 16-bit patterns (float16 / bfloat16), as a Buffer
 * sharing memory when the host is little-endian.
 */
export function littleEndianBytes(values: Float32Array | Uint16Array): Buffer {
  if (littleEndianHost) return Buffer.from(values.buffer, values.byteOffset, values.byteLength);
  const out = Buffer.alloc(values.byteLength);
  if (values instanceof Float32Array) {
    for (let i = 0; i < values.length; i++) out.writeFloatLE(values[i], i * 4);
  } else {
    for (let i = 0; i < values.length; i++) out.writeUInt16LE(values[i], i * 2);
  }
  return out;
}

const base64Pattern = /^[A-Za-z0-9+/_-]*={0,2}$/;

/**
 * Decodes base64 (standard or URL-safe alphabet, padding optional) into a fresh Float32Array.
 *
 * @param text - base64 of little-endian float32 values
 * @param field - field path for error messages; default `data`
 * @throws InvalidInputError when the text is not base64 or not a whole number of float32 values
 */
export function decodeFloat32Base64(text: string, field = 'data'): Float32Array {
  const compact = text.replace(/\s+/g, '');
  if (!base64Pattern.test(compact)) {
    throw new InvalidInputError(
      `${field} is not valid base64`,
      field,
      'base64 of little-endian float32 values',
    );
  }
  return float32FromLittleEndian(Buffer.from(compact, 'base64'), field);
}

/** Encodes float32 values as standard base64 of their little-endian bytes. */
export function encodeFloat32Base64(values: Float32Array): string {
  return littleEndianBytes(values).toString('base64');
}

/**
 * Decodes base64 bytes (an encoded image), refusing text that is not base64.
 *
 * @param text - standard or URL-safe base64, optionally a `data:...;base64,` URL
 * @param field - field path for error messages; default `image`
 */
export function decodeBase64Bytes(text: string, field = 'image'): Buffer {
  const comma = text.startsWith('data:') ? text.indexOf(',') : -1;
  const compact = (comma >= 0 ? text.slice(comma + 1) : text).replace(/\s+/g, '');
  if (compact.length === 0 || !base64Pattern.test(compact)) {
    throw new InvalidInputError(
      `${field} is not valid base64`,
      field,
      'a base64-encoded image (PNG, JPEG, WebP, …)',
    );
  }
  return Buffer.from(compact, 'base64');
}
