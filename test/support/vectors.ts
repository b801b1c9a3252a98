/**
 * The published reference vectors (fixtures/roi-vectors.json; each entry names its public source:
 * ONNX backend tests, ONNX Runtime tests, detectron2, mmcv) and the check of an output against one,
 * with the vector's own tolerance.
 */
import { readFileSync } from 'node:fs';
import { expect } from 'vitest';

/** One vector; `params` holds the operator's own parameters (ONNX / detectron2 names). */
export interface PublishedVector<Params = Record<string, unknown>> {
  name: string;
  source: { repo: string; path: string; commit: string; test?: string };
  op: string;
  params: Params;
  input: { shape: [number, number, number, number]; layout: 'NCHW'; data: number[] };
  rois: number[][];
  batch_indices: number[];
  expected: { shape: number[]; data: number[] };
  tolerance: { rtol: number; atol: number };
}

/** The vectors of the given operators (`roi_align`, `roi_pool`, `roi_align_rotated`, ...), in file order. */
export function publishedVectors<Params>(ops: readonly string[]): PublishedVector<Params>[] {
  const all = JSON.parse(
    readFileSync(new URL('../../fixtures/roi-vectors.json', import.meta.url), 'utf8'),
  ) as PublishedVector<Params>[];
  return all.filter((v) => ops.includes(v.op));
}

/** Fails naming the vector and the value when `actual` is not within `atol + rtol·|expected|` everywhere. */
export function expectClose(actual: Float32Array, v: PublishedVector<unknown>): void {
  expect(actual.length).toBe(v.expected.data.length);
  v.expected.data.forEach((e, i) => {
    const bound = v.tolerance.atol + v.tolerance.rtol * Math.abs(e);
    if (!(Math.abs(actual[i] - e) <= bound)) {
      throw new Error(`${v.name}: value ${i} is ${actual[i]}, expected ${e} ± ${bound}`);
    }
  });
}
