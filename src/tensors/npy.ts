/**
 * NumPy `.npy` files (format versions 1.0, 2.0 and 3.0): what `numpy.save` writes and `numpy.load`
 * reads. float32 is read and written; float16 is written (outputs with `dtype: "float16"`). See https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html
 */
import { InvalidInputError } from '../errors.js';
import { float32FromLittleEndian, littleEndianBytes, littleEndianHost } from './base64.js';

const MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]); // \x93NUMPY

/**
 * Longest header read, in bytes: numpy's own `max_header_size` (10000 since numpy 1.24), beyond which
 * `numpy.load` refuses a header as unsafe to evaluate. `numpy.save` writes headers of about 128 bytes.
 */
export const MAX_NPY_HEADER_BYTES = 10_000;

/** Containers nested deeper than this in a header are refused (numpy's headers nest one level). */
const MAX_HEADER_DEPTH = 8;

/** A value of the Python-literal subset a `.npy` header is written in. */
export type PyLiteral = string | number | boolean | null | PyLiteral[] | { tuple: PyLiteral[] };

/** Thrown by {@link parseNpyHeader}; `readNpy` turns it into a 400 naming the field. */
export class NpyHeaderError extends Error {}

/**
 * Parses a `.npy` header the way `numpy.load` does (`ast.literal_eval` of a dict), for the subset
 * numpy writes: a dict with string keys; values that are strings ('…' or "…", with backslash
 * escapes), integers (optional sign, `_` between digits), `True`, `False`, `None`, tuples and lists;
 * whitespace and trailing commas anywhere Python allows them. As in Python, a later duplicate key
 * replaces an earlier one, and `(2)` is the integer 2 while `(2,)` is a tuple.
 *
 * One pass over the text, each character read once: no regular expression, so no backtracking. (A
 * regex for `'shape': (…)` took quadratic time on a header of repeated `'shape':(`, freezing the
 * HTTP thread for 14.6 s on a 400 KB upload.)
 *
 * @param text - the header, without the magic, version and length
 * @returns the dict's entries, last duplicate winning
 * @throws NpyHeaderError saying what is malformed and where
 */
export function parseNpyHeader(text: string): Map<string, PyLiteral> {
  let i = 0;
  const fail = (what: string): never => {
    throw new NpyHeaderError(`${what} at offset ${i}`);
  };
  const skipSpace = () => {
    while (i < text.length && (text[i] === ' ' || text[i] === '\t' || text[i] === '\n' || text[i] === '\r'))
      i++;
  };
  const expect = (ch: string) => {
    skipSpace();
    if (text[i] !== ch) fail(`expected '${ch}'`);
    i++;
  };
  const parseString = (): string => {
    const quote = text[i++];
    let out = '';
    while (i < text.length && text[i] !== quote) {
      if (text[i] === '\n') fail('unterminated string');
      if (text[i] === '\\') {
        const next = text[i + 1];
        out +=
          next === 'n' ? '\n' : next === 't' ? '\t' : next === undefined ? fail('unterminated string') : next;
        i += 2;
      } else {
        out += text[i++];
      }
    }
    if (i >= text.length) fail('unterminated string');
    i++;
    return out;
  };
  const parseNumber = (): number => {
    const start = i;
    if (text[i] === '-' || text[i] === '+') i++;
    skipSpace();
    const digits = i;
    while (i < text.length && /[0-9_]/.test(text[i])) i++;
    const body = text.slice(digits, i);
    if (/[.eEjJxXoObB]/.test(text[i] ?? '') || !/^[0-9](?:_?[0-9])*$/.test(body)) {
      fail(`'${text.slice(start, i + 1)}' is not an integer`);
    }
    const value = Number(body.replaceAll('_', ''));
    return text[start] === '-' ? -value : value;
  };
  const parseSequence = (close: string, depth: number): { items: PyLiteral[]; comma: boolean } => {
    const items: PyLiteral[] = [];
    let comma = false;
    for (;;) {
      skipSpace();
      if (text[i] === close) break;
      items.push(parseValue(depth + 1));
      skipSpace();
      if (text[i] === ',') {
        comma = true;
        i++;
      } else if (text[i] !== close) {
        fail(`expected ',' or '${close}'`);
      }
    }
    i++;
    return { items, comma };
  };
  const parseValue = (depth: number): PyLiteral => {
    if (depth > MAX_HEADER_DEPTH) fail('containers nested too deeply');
    skipSpace();
    const ch = text[i];
    if (ch === "'" || ch === '"') return parseString();
    if (ch === '(') {
      i++;
      const { items, comma } = parseSequence(')', depth);
      // `(x)` is x itself; a tuple needs a comma, or no items at all.
      return items.length === 1 && !comma ? items[0] : { tuple: items };
    }
    if (ch === '[') {
      i++;
      return parseSequence(']', depth).items;
    }
    if (ch === '{') fail('nested dict');
    for (const [word, value] of [
      ['True', true],
      ['False', false],
      ['None', null],
    ] as const) {
      if (text.startsWith(word, i) && !/[A-Za-z0-9_]/.test(text[i + word.length] ?? '')) {
        i += word.length;
        return value;
      }
    }
    if (ch !== undefined && /[-+0-9]/.test(ch)) return parseNumber();
    return fail(ch === undefined ? 'unexpected end' : `unexpected '${ch}'`);
  };

  const entries = new Map<string, PyLiteral>();
  expect('{');
  for (;;) {
    skipSpace();
    if (text[i] === '}') break;
    if (text[i] !== "'" && text[i] !== '"') fail('expected a string key');
    const key = parseString();
    expect(':');
    entries.set(key, parseValue(1));
    skipSpace();
    if (text[i] === ',') i++;
    else if (text[i] !== '}') fail("expected ',' or '}'");
  }
  i++;
  skipSpace();
  if (i < text.length) fail('text after the dict');
  return entries;
}

/** A float32 array read from a `.npy` file: row-major (C order) `data` of `shape`. */
export interface NpyArray {
  shape: number[];
  data: Float32Array;
}

/**
 * Writes a C-order little-endian `.npy` (version 1.0, header padded to 64 bytes): float32 (`<f4`), or
 * float16 (`<f2`) from bit patterns made by `float32ToFloat16Bits` (`src/tensors/float16.ts`).
 * (bfloat16 has no numpy dtype, so no `.npy` form: `numpy.load` could not read one.)
 *
 * @param data - row-major values (float32), or float16 bit patterns; `data.length` = product of `shape`
 * @param shape - dimensions, e.g. `[K, C, PH, PW]`
 * @returns the file; for `data` from {@link npyFloats} (room for the header in front of it) the header
 *   is written into that room and the file is `data`'s own buffer: no copy (do not reuse `data`)
 */
export function writeNpy(data: Float32Array | Uint16Array, shape: readonly number[]): Buffer {
  const count = shape.reduce((a, b) => a * b, 1);
  if (count !== data.length)
    throw new Error(`writeNpy: shape [${shape.join(', ')}] needs ${count} values, got ${data.length}`);
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  const descr = data instanceof Float32Array ? '<f4' : '<f2';
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  const unpadded = MAGIC.length + 2 + 2 + header.length + 1;
  header += ' '.repeat((64 - (unpadded % 64)) % 64) + '\n';
  const prefix = Buffer.alloc(MAGIC.length + 4);
  MAGIC.copy(prefix, 0);
  prefix[6] = 1;
  prefix[7] = 0;
  prefix.writeUInt16LE(header.length, 8);
  const at = prefix.length + header.length;
  const buffer = data.buffer;
  if (
    littleEndianHost &&
    buffer instanceof ArrayBuffer &&
    data.byteOffset === at &&
    buffer.byteLength === at + data.byteLength
  ) {
    // The data sits right after room for exactly this header (`npyFloats`): the buffer is the file.
    const file = Buffer.from(buffer);
    prefix.copy(file, 0);
    file.write(header, prefix.length, 'latin1');
    return file;
  }
  const body = littleEndianBytes(data);
  return Buffer.concat([prefix, Buffer.from(header, 'latin1'), body]);
}

/**
 * Bytes before the data of the `.npy` files {@link writeNpy} writes (magic, version, length, and the
 * header padded to a multiple of 64) whenever the header text is at most 117 characters: every shape
 * of up to 4 dimensions below 10^10 each.
 */
export const NPY_HEADER_BYTES = 128;

/**
 * A float32 array with {@link NPY_HEADER_BYTES} of room in front, in a buffer of its own: when its
 * header has that length, {@link writeNpy} writes the header there and returns the whole buffer as
 * the file, instead of copying the data after a separate header.
 */
export function npyFloats(length: number): Float32Array {
  return new Float32Array(new ArrayBuffer(NPY_HEADER_BYTES + 4 * length), NPY_HEADER_BYTES, length);
}

/**
 * Reads a `.npy` holding a C-order float32 array (`<f4`; also `|f4`/`=f4` on little-endian data).
 *
 * @param bytes - the whole file; on a little-endian host the result reads its data in place (do not change
 *   `bytes` afterwards)
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
  if (headerLength > MAX_NPY_HEADER_BYTES) {
    // numpy.load refuses these too (max_header_size): checked before reading a byte of the header.
    throw bad(`header of ${headerLength} bytes, over the limit of ${MAX_NPY_HEADER_BYTES}`);
  }
  if (headerStart + headerLength > buf.length) throw bad('truncated header');
  const header = buf.toString(major === 3 ? 'utf8' : 'latin1', headerStart, headerStart + headerLength);
  let entries: Map<string, PyLiteral>;
  try {
    entries = parseNpyHeader(header);
  } catch (err) {
    if (err instanceof NpyHeaderError) throw bad(`unreadable header (${err.message})`);
    throw err;
  }
  const keys = [...entries.keys()].sort();
  if (keys.join() !== 'descr,fortran_order,shape') {
    // As numpy.load: exactly these three keys.
    throw bad(`header keys are [${keys.join(', ')}]; expected descr, fortran_order and shape`);
  }
  const descr = entries.get('descr');
  const fortran = entries.get('fortran_order');
  const shapeValue = entries.get('shape');
  if (typeof descr !== 'string') throw bad('descr is not a string');
  if (typeof fortran !== 'boolean') throw bad('fortran_order is not True or False');
  const dims =
    typeof shapeValue === 'object' && shapeValue !== null && 'tuple' in shapeValue ? shapeValue.tuple : null;
  if (dims === null || dims.some((d) => typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0)) {
    throw bad(`shape must be a tuple of integers ≥ 0, e.g. (2, 3, 4)`);
  }
  const shape = dims as number[];
  if (!['<f4', '|f4', '=f4'].includes(descr)) {
    throw new InvalidInputError(
      `${field} has dtype ${descr}; only little-endian float32 ('<f4') is accepted`,
      `${field}.dtype`,
      "'<f4' (numpy float32)",
    );
  }
  if (fortran) {
    throw new InvalidInputError(
      `${field} is Fortran-ordered`,
      field,
      'a C-ordered array (numpy.ascontiguousarray)',
    );
  }
  const count = shape.reduce((a, b) => a * b, 1);
  const dataStart = headerStart + headerLength;
  if (buf.length - dataStart !== count * 4) {
    throw new InvalidInputError(
      `${field} has ${buf.length - dataStart} data bytes; shape [${shape.join(', ')}] needs ${count * 4}`,
      field,
      'data length matching the header shape',
    );
  }
  // The data in place when the host is little-endian and it starts on a 4-byte boundary (numpy pads
  // the header to 64 bytes, so it always does): no copy of what may be a map of hundreds of MB. The
  // array then shares `bytes`, which the caller must not change afterwards.
  const data = buf.subarray(dataStart);
  if (littleEndianHost && (data.byteOffset & 3) === 0) {
    return { shape, data: new Float32Array(data.buffer, data.byteOffset, count) };
  }
  return { shape, data: float32FromLittleEndian(data, field) };
}
