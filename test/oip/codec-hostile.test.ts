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
import { InvalidInputError } from '../../src/errors.js';

function fieldOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidInputError);
    return (err as InvalidInputError & { field: string }).field;
  }
  throw new Error('did not throw');
}

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
});
