/**
 * The 15 published RoI Align / RoI Pool reference vectors (fixtures/roi-vectors.json; each entry names
 * its public source: ONNX backend tests, ONNX Runtime tests, detectron2, mmcv), checked against the
 * fast kernels and the slow references, with each vector's own tolerance. Vectors of other operators
 * in the same file (`roi_align_rotated`, ...) are run by those operators' tests.
 */
import { describe, expect, it } from 'vitest';
import { roiAlign, roiPool, toCanonicalBoxes } from '../../src/ops/index.js';
import type { AlignMode, FeatureMap } from '../../src/ops/index.js';
import { refBoxes, refRoiAlign, refRoiPool } from '../reference/roi_reference.js';
import { expectClose, publishedVectors, type PublishedVector } from '../support/vectors.js';

type Vector = PublishedVector<{
  output_height: number;
  output_width: number;
  spatial_scale: number;
  sampling_ratio?: number;
  aligned?: boolean;
  mode?: 'avg' | 'max';
  max_semantics?: string;
}>;

const vectors = publishedVectors<Vector['params']>(['roi_align', 'roi_pool']);

describe('published reference vectors', () => {
  it('has all 15 vectors, each with a source', () => {
    expect(vectors).toHaveLength(15);
    for (const v of vectors) expect(v.source.repo && v.source.path && v.source.commit).toBeTruthy();
  });

  for (const v of vectors) {
    it(`${v.name} (${v.source.repo})`, () => {
      const p = v.params;
      const input: FeatureMap = {
        data: new Float32Array(v.input.data),
        shape: v.input.shape,
        layout: 'NCHW',
      };
      const boxes = toCanonicalBoxes(
        v.rois.map((r, i) => [v.batch_indices[i], ...r]),
        { batchSize: v.input.shape[0] },
      );
      const [N, C, H, W] = v.input.shape;
      const ref = { data: input.data, N, C, H, W };
      if (v.op === 'roi_pool') {
        const out = roiPool(input, boxes, {
          spatialScale: p.spatial_scale,
          outputSize: [p.output_height, p.output_width],
        });
        expect(out.shape).toEqual(v.expected.shape);
        expectClose(out.data, v);
        expectClose(
          refRoiPool(ref, refBoxes(boxes.data, boxes.count), {
            s: p.spatial_scale,
            PH: p.output_height,
            PW: p.output_width,
          }),
          v,
        );
        return;
      }
      // ONNX's `max` is the weighted-tap rule: our `onnx_max`.
      const mode: AlignMode = p.mode === 'max' ? 'onnx_max' : 'avg';
      if (p.mode === 'max') expect(p.max_semantics).toBe('onnx_weighted_corner_max');
      const params = {
        spatialScale: p.spatial_scale,
        outputSize: [p.output_height, p.output_width] as [number, number],
        samplingRatio: p.sampling_ratio,
        aligned: p.aligned,
        mode,
      };
      const out = roiAlign(input, boxes, params);
      expect(out.shape).toEqual(v.expected.shape);
      expectClose(out.data, v);
      const refOut = refRoiAlign(ref, refBoxes(boxes.data, boxes.count), {
        s: p.spatial_scale,
        PH: p.output_height,
        PW: p.output_width,
        samplingRatio: p.sampling_ratio ?? 2,
        aligned: p.aligned ?? true,
        mode,
      });
      expectClose(refOut, v);
    });
  }
});
