/**
 * A `.npy` answer without a copy of its data (`npyFloats` + `writeNpy`): the header goes into the room
 * left in front of the array, and the file is the array's own buffer, byte for byte the file the
 * copying path writes (which numpy reads: tensors.test.ts, dtype tests).
 */
import { describe, expect, it } from 'vitest';
import { NPY_HEADER_BYTES, npyFloats, readNpy, writeNpy } from '../../src/tensors/npy.js';

const shapes: number[][] = [[0, 256, 7, 7], [3], [1000, 256, 7, 7], [2, 3, 5, 7], [1234567, 1, 1, 1]];

describe('npyFloats + writeNpy', () => {
  it.each(shapes.map((shape) => [shape]))(
    'shape %j: the same bytes as the copying path, in the array’s own buffer',
    (shape) => {
      const count = shape.reduce((a, b) => a * b, 1);
      const data = npyFloats(count);
      for (let i = 0; i < count; i += 997) data[i] = i / 7 - 3;
      const copied = writeNpy(data.slice(), shape); // a plain array: header + copy of the data
      const file = writeNpy(data, shape);
      expect(file.buffer).toBe(data.buffer); // no copy
      expect(file.length).toBe(NPY_HEADER_BYTES + 4 * count);
      expect(file.equals(copied)).toBe(true);
      expect(readNpy(file).shape).toEqual(shape);
    },
  );

  it('an array without exactly the header’s room in front is copied after a header, as before', () => {
    const data = new Float32Array(new ArrayBuffer(64 + 4 * 6), 64, 6).fill(1.5);
    const file = writeNpy(data, [2, 3]);
    expect(file.buffer).not.toBe(data.buffer);
    expect(file.equals(writeNpy(Float32Array.from(data), [2, 3]))).toBe(true);
    expect(Array.from(readNpy(file).data)).toEqual([1.5, 1.5, 1.5, 1.5, 1.5, 1.5]);
  });
});
