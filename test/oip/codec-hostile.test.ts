/**
 * Hostile inputs to the `/v2` codec: lying lengths and sizes, huge declared shapes, deep nesting.
 * Each must be an InvalidInputError naming the field, never a crash, a hang or a huge allocation.
 */
import { describe, expect, it } from 'vitest';
import {
  bytesValues,
  float32Values,
  headerLength,
  numericValues,
  parseInferenceRequest,
  type RequestInput,
} from '../../src/oip/codec.js';
import { fieldOf } from '../support/errors.js';

function input(over: Partial<RequestInput>): RequestInput {
  return {
    name: 'x',
    shape: [1],
    datatype: 'FP32',
    parameters: {},
    data: undefined,
    binary: undefined,
    ...over,
  };
}

describe('codec against hostile input', () => {
  it('Inference-Header-Content-Length: bigger than the body, negative, non-numeric, empty', () => {
    for (const v of ['11', '-1', 'abc', '', '1e3', '0x4', '4.5']) {
      expect(fieldOf(() => headerLength(v, 10))).toBe('Inference-Header-Content-Length');
    }
    expect(headerLength('10', 10)).toBe(10);
    expect(headerLength(['3', '99'], 10)).toBe(3);
  });

  it('binary_data_size: past the end, not an integer, sizes not adding up', () => {
    const head = (size: unknown) =>
      Buffer.from(
        JSON.stringify({
          inputs: [{ name: 'a', shape: [1], datatype: 'FP32', parameters: { binary_data_size: size } }],
        }),
      );
    for (const [size, extra, field] of [
      [8, 4, 'inputs[0].parameters.binary_data_size'],
      [-4, 4, 'inputs[0].parameters.binary_data_size'],
      [1.5, 4, 'inputs[0].parameters.binary_data_size'],
      ['4', 4, 'inputs[0].parameters.binary_data_size'],
      [2 ** 60, 4, 'inputs[0].parameters.binary_data_size'],
      [4, 8, 'body'],
    ] as const) {
      const h = head(size);
      expect(fieldOf(() => parseInferenceRequest(Buffer.concat([h, Buffer.alloc(extra)]), h.length))).toBe(
        field,
      );
    }
  });

  it('a huge declared shape is refused by its byte count before anything is allocated', () => {
    const huge = [2 ** 40, 2 ** 40, 2 ** 40];
    expect(fieldOf(() => float32Values(input({ shape: huge, binary: new Uint8Array(4) })))).toBe(
      'x.parameters.binary_data_size',
    );
    expect(fieldOf(() => numericValues(input({ shape: huge, binary: new Uint8Array(4) }), ['FP32']))).toBe(
      'x.parameters.binary_data_size',
    );
    expect(fieldOf(() => numericValues(input({ shape: huge, data: [1] }), ['FP32']))).toBe('x.data');
  });

  it('BYTES length prefixes that lie: past the end, too few, too many elements', () => {
    const prefixed = (...parts: Array<[number, number]>) =>
      Buffer.concat(
        parts.map(([declared, actual]) => {
          const b = Buffer.alloc(4 + actual);
          b.writeUInt32LE(declared, 0);
          return b;
        }),
      );
    const field = 'x.parameters.binary_data_size';
    const bytes = (binary: Uint8Array, shape = [1]) => input({ datatype: 'BYTES', shape, binary });
    expect(fieldOf(() => bytesValues(bytes(prefixed([0xffffffff, 3]))))).toBe(field);
    expect(fieldOf(() => bytesValues(bytes(prefixed([2, 3]))))).toBe(field);
    expect(fieldOf(() => bytesValues(bytes(prefixed([3, 3], [1, 1]))))).toBe(field);
    expect(fieldOf(() => bytesValues(bytes(prefixed([3, 3]), [2])))).toBe(field);
    expect(fieldOf(() => bytesValues(bytes(new Uint8Array(3))))).toBe(field);
    expect(bytesValues(bytes(prefixed([3, 3])))[0]).toHaveLength(3);
  });

  it('nested data 100 000 deep: parsed and flattened without a stack overflow', () => {
    const deep = `${'['.repeat(100_000)}1${']'.repeat(100_000)}`;
    const body = Buffer.from(`{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":${deep}}]}`);
    const request = parseInferenceRequest(body, undefined);
    expect(Array.from(numericValues(request.inputs[0], ['FP32']))).toEqual([1]);
  });

  it('binary INT64 / UINT64 past ±(2^53 - 1) is refused naming the element; within it, exact', () => {
    const int64 = (datatype: 'INT64' | 'UINT64', ...values: bigint[]) => {
      const b = Buffer.alloc(8 * values.length);
      values.forEach((v, i) =>
        datatype === 'INT64' ? b.writeBigInt64LE(v, 8 * i) : b.writeBigUInt64LE(v, 8 * i),
      );
      return input({ datatype, shape: [values.length], binary: b });
    };
    const max = BigInt(Number.MAX_SAFE_INTEGER);
    expect(Array.from(numericValues(int64('INT64', max, -max, -1n), ['INT64']))).toEqual([
      Number.MAX_SAFE_INTEGER,
      -Number.MAX_SAFE_INTEGER,
      -1,
    ]);
    expect(fieldOf(() => numericValues(int64('INT64', 0n, max + 1n), ['INT64']))).toBe('x.data[1]');
    expect(fieldOf(() => numericValues(int64('INT64', -max - 1n), ['INT64']))).toBe('x.data[0]');
    expect(fieldOf(() => numericValues(int64('UINT64', 2n ** 64n - 1n), ['UINT64']))).toBe('x.data[0]');
    expect(
      Array.from(
        numericValues(input({ datatype: 'INT8', shape: [2], binary: Uint8Array.of(0xff, 7) }), ['INT8']),
      ),
    ).toEqual([-1, 7]);
  });
});
