/**
 * NumPy `.npy` files (format versions 1.0, 2.0 and 3.0), float32 only: what `numpy.save` writes and
 * `numpy.load` reads. See https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html
 */
import { InvalidInputError } from '../errors.js';
import { float32FromLittleEndian, littleEndianBytes } from './base64.js';

const MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]); // \x93NUMPY

/** A float32 array read from a `.npy` file: row-major (C order) `data` of `shape`. */
export interface NpyArray {
  shape: number[];
  data: Float32Array;
}

/**
 * Writes a C-order little-endian float32 `.npy` (version 1.0, header padded to 64 bytes).
 *
 * @param data - row-major values, `data.length` = product of `shape`
 * @param shape - dimensions, e.g. `[K, C, PH, PW]`
 */
export function writeNpy(data: Float32Array, shape: readonly number[]): Buffer {
  const count = shape.reduce((a, b) => a * b, 1);
  if (count !== data.length)
    throw new Error(`writeNpy: shape [${shape.join(', ')}] needs ${count} values, got ${data.length}`);
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': ${shapeText}, }`;
  const unpadded = MAGIC.length + 2 + 2 + header.length + 1;
  header += ' '.repeat((64 - (unpadded % 64)) % 64) + '\n';
  const prefix = Buffer.alloc(MAGIC.length + 4);
  MAGIC.copy(prefix, 0);
  prefix[6] = 1;
  prefix[7] = 0;
  prefix.writeUInt16LE(header.length, 8);
  return Buffer.concat([prefix, Buffer.from(header, 'latin1'), littleEndianBytes(data)]);
}

/**
 * Reads a `.npy` holding a C-order float32 array (`<f4`; also `|f4`/`=f4` on little-endian data).
 *
 * @param bytes - the whole file
 * @param field - field path for error messages; default `features`
 * @throws InvalidInputError naming what is wrong (magic, version, dtype, order, shape, length)
 */
export function readNpy(bytes: Uint8Array, field = 'features'): NpyArray {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const bad = (what: string) =>
    new InvalidInputError(
      `${field} is not a valid .npy file: ${what}`,
      field,
      'a float32 .npy file (numpy.save)',
    );
  if (buf.length < 10 || !buf.subarray(0, 6).equals(MAGIC)) throw bad('missing \\x93NUMPY magic');
  const major = buf[6];
  let headerLength: number;
  let headerStart: number;
  if (major === 1) {
    headerLength = buf.readUInt16LE(8);
    headerStart = 10;
  } else if (major === 2 || major === 3) {
    if (buf.length < 12) throw bad('truncated header');
    headerLength = buf.readUInt32LE(8);
    headerStart = 12;
  } else {
    throw bad(`unsupported format version ${major}`);
  }
  if (headerStart + headerLength > buf.length) throw bad('truncated header');
  const header = buf.toString(major === 3 ? 'utf8' : 'latin1', headerStart, headerStart + headerLength);
  const descr = /['"]descr['"]\s*:\s*['"]([^'"]+)['"]/.exec(header)?.[1];
  const fortran = /['"]fortran_order['"]\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /['"]shape['"]\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) throw bad('unreadable header');
  if (!['<f4', '|f4', '=f4'].includes(descr)) {
    throw new InvalidInputError(
      `${field} has dtype ${descr}; only little-endian float32 ('<f4') is accepted`,
      `${field}.dtype`,
      "'<f4' (numpy float32)",
    );
  }
  if (fortran === 'True') {
    throw new InvalidInputError(
      `${field} is Fortran-ordered`,
      field,
      'a C-ordered array (numpy.ascontiguousarray)',
    );
  }
  const shape = shapeText
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map(Number);
  if (shape.some((d) => !Number.isSafeInteger(d) || d < 0)) throw bad(`bad shape (${shapeText})`);
  const count = shape.reduce((a, b) => a * b, 1);
  const dataStart = headerStart + headerLength;
  if (buf.length - dataStart !== count * 4) {
    throw new InvalidInputError(
      `${field} has ${buf.length - dataStart} data bytes; shape [${shape.join(', ')}] needs ${count * 4}`,
      field,
      'data length matching the header shape',
    );
  }
  return { shape, data: float32FromLittleEndian(buf.subarray(dataStart), field) };
}
