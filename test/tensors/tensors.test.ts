import { describe, expect, it } from 'vitest';
import { RoiServeError } from '../../src/errors.js';
import {
  decodeBase64Bytes,
  decodeFloat32Base64,
  encodeFloat32Base64,
  float32FromLittleEndian,
} from '../../src/tensors/base64.js';
import { MAX_NPY_HEADER_BYTES, parseNpyHeader, readNpy, writeNpy } from '../../src/tensors/npy.js';
import { readSafetensors, writeSafetensors } from '../../src/tensors/safetensors.js';

// Written by numpy 2.4.6: `np.lib.format.write_array(f, a, version=...)` with
// a = (np.arange(24, dtype=np.float32).reshape(2, 3, 4) - 5.5) / 4, then base64.
const NUMPY = {
  c_f4: 'k05VTVBZAQB2AHsnZGVzY3InOiAnPGY0JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDIsIDMsIDQpLCB9ICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAALC/AACQvwAAYL8AACC/AADAvgAAAL4AAAA+AADAPgAAID8AAGA/AACQPwAAsD8AANA/AADwPwAACEAAABhAAAAoQAAAOEAAAEhAAABYQAAAaEAAAHhAAACEQAAAjEA=',
  v2: 'k05VTVBZAgB0AAAAeydkZXNjcic6ICc8ZjQnLCAnZm9ydHJhbl9vcmRlcic6IEZhbHNlLCAnc2hhcGUnOiAoMiwgMywgNCksIH0gICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAALC/AACQvwAAYL8AACC/AADAvgAAAL4AAAA+AADAPgAAID8AAGA/AACQPwAAsD8AANA/AADwPwAACEAAABhAAAAoQAAAOEAAAEhAAABYQAAAaEAAAHhAAACEQAAAjEA=',
  f8: 'k05VTVBZAQB2AHsnZGVzY3InOiAnPGY4JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDIsIDMsIDQpLCB9ICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAAAAAAAD2vwAAAAAAAPK/AAAAAAAA7L8AAAAAAADkvwAAAAAAANi/AAAAAAAAwL8AAAAAAADAPwAAAAAAANg/AAAAAAAA5D8AAAAAAADsPwAAAAAAAPI/AAAAAAAA9j8AAAAAAAD6PwAAAAAAAP4/AAAAAAAAAUAAAAAAAAADQAAAAAAAAAVAAAAAAAAAB0AAAAAAAAAJQAAAAAAAAAtAAAAAAAAADUAAAAAAAAAPQAAAAAAAgBBAAAAAAACAEUA=',
  be: 'k05VTVBZAQB2AHsnZGVzY3InOiAnPmY0JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDIsIDMsIDQpLCB9ICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAq/sAAAv5AAAL9gAAC/IAAAvsAAAL4AAAA+AAAAPsAAAD8gAAA/YAAAP5AAAD+wAAA/0AAAP/AAAEAIAABAGAAAQCgAAEA4AABASAAAQFgAAEBoAABAeAAAQIQAAECMAAA=',
  fortran:
    'k05VTVBZAQB2AHsnZGVzY3InOiAnPGY0JywgJ2ZvcnRyYW5fb3JkZXInOiBUcnVlLCAnc2hhcGUnOiAoMiwgMywgNCksIH0gICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAALC/AADQPwAAwL4AAChAAAAgPwAAaEAAAJC/AADwPwAAAL4AADhAAABgPwAAeEAAAGC/AAAIQAAAAD4AAEhAAACQPwAAhEAAACC/AAAYQAAAwD4AAFhAAACwPwAAjEA=',
  empty:
    'k05VTVBZAQB2AHsnZGVzY3InOiAnPGY0JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDAsIDMsIDIsIDIpLCB9ICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAo=',
};
const expected = Float32Array.from({ length: 24 }, (_, i) => (i - 5.5) / 4);
const bytes = (b64: string) => Buffer.from(b64, 'base64');

function errorOf(fn: () => unknown): RoiServeError {
  try {
    fn();
  } catch (err) {
    if (err instanceof RoiServeError) return err;
    throw err;
  }
  throw new Error('expected a RoiServeError');
}

describe('base64 float32', () => {
  it('decodes known little-endian bytes', () => {
    // 1.0 = 0x3f800000, -2.5 = 0xc0200000, little-endian.
    const b64 = Buffer.from([0, 0, 0x80, 0x3f, 0, 0, 0x20, 0xc0]).toString('base64');
    expect(Array.from(decodeFloat32Base64(b64))).toEqual([1, -2.5]);
  });

  it('round-trips, including unaligned sources and URL-safe text', () => {
    const values = Float32Array.from([0, -0, 1e-38, 3.4e38, -7.25, Math.PI]);
    const text = encodeFloat32Base64(values);
    expect(Array.from(decodeFloat32Base64(text))).toEqual(Array.from(values));
    const urlSafe = text.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
    expect(Array.from(decodeFloat32Base64(urlSafe))).toEqual(Array.from(values));
    const shifted = new Uint8Array(values.byteLength + 1);
    shifted.set(new Uint8Array(values.buffer), 1);
    expect(Array.from(float32FromLittleEndian(shifted.subarray(1)))).toEqual(Array.from(values));
  });

  it('refuses non-base64 text and partial values with the field name', () => {
    expect(errorOf(() => decodeFloat32Base64('not base64!', 'features.data'))).toMatchObject({
      status: 400,
      field: 'features.data',
    });
    const e = errorOf(() => decodeFloat32Base64(Buffer.from([1, 2, 3]).toString('base64'), 'features.data'));
    expect(e.message).toContain('not a multiple of 4');
  });

  it('decodes image bytes from plain base64 and data URLs, refusing empty text', () => {
    expect([...decodeBase64Bytes('AQID')]).toEqual([1, 2, 3]);
    expect([...decodeBase64Bytes('data:image/png;base64,AQID')]).toEqual([1, 2, 3]);
    expect(errorOf(() => decodeBase64Bytes('***'))).toMatchObject({ status: 400, field: 'image' });
  });
});

describe('.npy', () => {
  it('writes byte for byte what numpy.save writes', () => {
    expect(writeNpy(expected, [2, 3, 4]).equals(bytes(NUMPY.c_f4))).toBe(true);
    expect(writeNpy(new Float32Array(0), [0, 3, 2, 2]).equals(bytes(NUMPY.empty))).toBe(true);
  });

  it('reads numpy files of format versions 1.0 and 2.0', () => {
    for (const file of [NUMPY.c_f4, NUMPY.v2]) {
      const arr = readNpy(bytes(file));
      expect(arr.shape).toEqual([2, 3, 4]);
      expect(Array.from(arr.data)).toEqual(Array.from(expected));
    }
    expect(readNpy(bytes(NUMPY.empty)).shape).toEqual([0, 3, 2, 2]);
  });

  it('round-trips a 4-D array', () => {
    const data = Float32Array.from({ length: 2 * 3 * 5 * 7 }, (_, i) => Math.sin(i));
    const back = readNpy(writeNpy(data, [2, 3, 5, 7]));
    expect(back.shape).toEqual([2, 3, 5, 7]);
    expect(back.data).toEqual(data);
  });

  it('refuses float64, big-endian, Fortran order, truncation and garbage, naming the problem', () => {
    expect(errorOf(() => readNpy(bytes(NUMPY.f8)))).toMatchObject({ status: 400, field: 'features.dtype' });
    expect(errorOf(() => readNpy(bytes(NUMPY.be))).message).toContain('>f4');
    expect(errorOf(() => readNpy(bytes(NUMPY.fortran))).message).toContain('Fortran');
    const truncated = bytes(NUMPY.c_f4).subarray(0, bytes(NUMPY.c_f4).length - 4);
    expect(errorOf(() => readNpy(truncated)).message).toContain('needs 96');
    expect(errorOf(() => readNpy(Buffer.from('hello world'))).message).toContain('magic');
  });
});

/** A version-1.0 (or 2.0, for long headers) `.npy` with `header` and `values` float32 data. */
function npyWith(header: string, values: number[] = []): Buffer {
  const text = Buffer.from(header, 'latin1');
  const v2 = text.length > 0xffff;
  const prefix = Buffer.alloc(v2 ? 12 : 10);
  prefix.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, v2 ? 2 : 1, 0]);
  if (v2) prefix.writeUInt32LE(text.length, 8);
  else prefix.writeUInt16LE(text.length, 8);
  return Buffer.concat([prefix, text, Buffer.from(Float32Array.from(values).buffer)]);
}

describe('.npy header, parsed as numpy parses it (a Python literal dict)', () => {
  const f4 = "'descr': '<f4', 'fortran_order': False";

  it('takes the shapes Python writes: (2,), (2, 3,), (), extra spaces, newlines, " quotes', () => {
    expect(readNpy(npyWith(`{${f4}, 'shape': (2,), }`, [1, 2])).shape).toEqual([2]);
    expect(readNpy(npyWith(`{${f4}, 'shape': (2, 3,)}`, [1, 2, 3, 4, 5, 6])).shape).toEqual([2, 3]);
    expect(readNpy(npyWith(`{${f4}, 'shape': ()}`, [7])).shape).toEqual([]);
    expect(
      readNpy(npyWith(`{ "descr" : "<f4" ,\n "fortran_order":False,'shape':( 1 , 2 ) }\n`, [1, 2])).shape,
    ).toEqual([1, 2]);
  });

  it('lets the last duplicate key win, as a Python dict does', () => {
    const header = `{'shape': (5, 5), ${f4}, 'shape': (1, 2), 'descr': '<f8', 'descr': '<f4'}`;
    expect(readNpy(npyWith(header, [1, 2])).shape).toEqual([1, 2]);
    expect(parseNpyHeader(header).get('descr')).toBe('<f4');
  });

  it('refuses floats, negatives, (2) (an int, not a tuple), other keys and malformed text, naming the problem', () => {
    const refused = (header: string) => errorOf(() => readNpy(npyWith(header, [1, 2]))).message;
    expect(refused(`{${f4}, 'shape': (2.0,)}`)).toMatch(/'2\.' is not an integer/);
    expect(refused(`{${f4}, 'shape': (1e3,)}`)).toMatch(/not an integer/);
    expect(refused(`{${f4}, 'shape': (-2, -1)}`)).toMatch(/shape must be a tuple of integers ≥ 0/);
    expect(refused(`{${f4}, 'shape': (2)}`)).toMatch(/shape must be a tuple/);
    expect(refused(`{${f4}, 'shape': [2]}`)).toMatch(/shape must be a tuple/);
    expect(refused(`{${f4}, 'shape': (2,), 'extra': 1}`)).toMatch(
      /keys are \[descr, extra, fortran_order, shape\]/,
    );
    expect(refused(`{${f4}}`)).toMatch(/expected descr, fortran_order and shape/);
    expect(refused(`{${f4}, 'shape': (2,)`)).toMatch(/unreadable header/);
    expect(refused(`{${f4}, 'shape': (2,)} x`)).toMatch(/text after the dict/);
    expect(refused(`{'descr': '<f4, 'fortran_order': False, 'shape': (2,)}`)).toMatch(/unreadable header/);
    expect(refused(`{${f4}, 'shape': ((((((((((2,),),),),),),),),),)}`)).toMatch(/nested too deeply/);
  });

  it("refuses the hostile header of repeated 'shape':( in one pass, and any header over numpy's 10000 bytes unread", () => {
    // The old regex backtracked quadratically here: 400 KB froze the HTTP thread for 14.6 s.
    const inside = `{'descr': '<f4', 'fortran_order': False, ${"'shape':(".repeat(900)}`;
    expect(inside.length).toBeLessThan(MAX_NPY_HEADER_BYTES);
    expect(errorOf(() => readNpy(npyWith(inside))).message).toMatch(
      /unreadable header \(expected ',' or '\)'/,
    );
    expect(MAX_NPY_HEADER_BYTES).toBe(10_000);
    const huge = `{${f4}, ${"'shape':(".repeat(120_000)}`; // 1 MB: a version-2.0 header
    expect(errorOf(() => readNpy(npyWith(huge))).message).toMatch(
      /header of 1080041 bytes, over the limit of 10000/,
    );
  });
});

describe('safetensors', () => {
  it('lays out the file as the format specifies', () => {
    const file = writeSafetensors(
      {
        a: { shape: [2], data: Float32Array.from([1, 2]) },
        b: { shape: [1, 1], data: Float32Array.from([-1]) },
      },
      { note: 'x' },
    );
    const headerLength = Number(file.readBigUInt64LE(0));
    expect(headerLength % 8).toBe(0);
    const header = JSON.parse(file.toString('utf8', 8, 8 + headerLength));
    expect(header).toEqual({
      __metadata__: { note: 'x' },
      a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
      b: { dtype: 'F32', shape: [1, 1], data_offsets: [8, 12] },
    });
    expect(file.length).toBe(8 + headerLength + 12);
    // 1.0f = 0x3f800000, little-endian.
    expect([...file.subarray(8 + headerLength, 8 + headerLength + 4)]).toEqual([0, 0, 0x80, 0x3f]);
  });

  it('round-trips tensors and metadata', () => {
    const pool = Float32Array.from({ length: 2 * 3 * 2 * 2 }, (_, i) => i / 3);
    const file = writeSafetensors(
      { pool: { shape: [2, 3, 2, 2], data: pool } },
      { params: '{"ops":["pool"]}' },
    );
    const back = readSafetensors(file);
    expect(back.metadata).toEqual({ params: '{"ops":["pool"]}' });
    expect(back.tensors.pool.shape).toEqual([2, 3, 2, 2]);
    expect(back.tensors.pool.data).toEqual(pool);
  });

  it('refuses truncated files', () => {
    const file = writeSafetensors({ t: { shape: [4], data: new Float32Array(4) } });
    expect(errorOf(() => readSafetensors(file.subarray(0, file.length - 1))).message).toContain(
      'bad offsets',
    );
    expect(errorOf(() => readSafetensors(Buffer.alloc(4))).status).toBe(400);
  });
});
