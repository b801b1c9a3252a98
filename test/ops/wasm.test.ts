/**
 * The WebAssembly channel loops (src/ops/wasm/roi_kernels.wat): the committed bytes match the .wat, and
 * every channel-block path (blocks of 16, blocks of 4, a partial last block) and both output layouts
 * (strided NCHW stores, whole-vector NHWC stores) agree with the slow references in test/reference.
 */
import { describe, expect, it, vi } from 'vitest';
import { assembleRoiKernels } from '../../scripts/build-wasm.js';
import { roiAlign, roiPool, toLayout } from '../../src/ops/index.js';
import type { AlignMode, FeatureMap, Layout } from '../../src/ops/index.js';
import { roiKernels } from '../../src/ops/wasm/roi_kernels.js';
import { ROI_KERNELS_WASM_BASE64 } from '../../src/ops/wasm/roi_kernels_wasm.js';
import { mulberry32, randInt, randomBoxes, randomMap } from '../support/random.js';
import { refBoxes, refRoiAlign, refRoiPool } from '../reference/roi_reference.js';
import { firstMismatch, maxAbsDiff } from '../support/compare.js';

/** `[K, C, PH, PW]` NHWC data back to NCHW, to compare with the references. */
function asNCHW(data: Float32Array, shape: [number, number, number, number], layout: Layout): Float32Array {
  return toLayout({ data, shape, layout }, 'NCHW').data;
}

describe('WebAssembly RoI kernels', () => {
  it('the committed module is exactly roi_kernels.wat assembled (run `npm run build:wasm` after editing it)', async () => {
    const assembled = await assembleRoiKernels();
    expect(Buffer.from(ROI_KERNELS_WASM_BASE64, 'base64').equals(Buffer.from(assembled))).toBe(true);
  });

  it('instantiates once and exports the three kernels and its memory', () => {
    const k = roiKernels();
    expect(roiKernels()).toBe(k);
    expect(k.memory).toBeInstanceOf(WebAssembly.Memory);
    for (const name of ['weightedSum', 'sampleMax', 'rectMax'] as const)
      expect(typeof k[name]).toBe('function');
  });

  it('a runtime that cannot compile the module gets a clear error, not a slower fallback', async () => {
    vi.resetModules();
    const broken = Object.assign(Object.create(WebAssembly) as typeof WebAssembly, {
      Module: function () {
        throw new WebAssembly.CompileError('simd unsupported');
      },
    });
    vi.stubGlobal('WebAssembly', broken);
    try {
      const fresh = await import('../../src/ops/wasm/roi_kernels.js');
      expect(() => fresh.roiKernels()).toThrow(
        /RoI kernels \(WebAssembly with 128-bit SIMD.*simd unsupported/,
      );
    } finally {
      vi.unstubAllGlobals();
      vi.resetModules();
    }
  });

  it('every channel count around the SIMD blocks, NCHW/NHWC in and out, equals the references', () => {
    const rand = mulberry32(0x5133d);
    for (const C of [1, 2, 3, 4, 5, 7, 8, 12, 15, 16, 17, 19, 20, 31, 32, 33, 35, 48, 50]) {
      const [N, H, W, K, stride] = [2, randInt(rand, 3, 9), randInt(rand, 3, 9), 5, 4];
      const x = randomMap(rand, N * C * H * W);
      const boxes = { data: randomBoxes(rand, K, N, H, W, stride), count: K };
      const nchw: FeatureMap = { data: x, shape: [N, C, H, W], layout: 'NCHW' };
      const refMap = { data: x, N, C, H, W };
      const shape: [number, number, number, number] = [K, C, 3, 2];
      for (const input of [nchw, toLayout(nchw, 'NHWC')]) {
        for (const outputLayout of ['NCHW', 'NHWC'] as const) {
          const p = { spatialScale: 1 / stride, outputSize: [3, 2] as [number, number], outputLayout };
          const pool = roiPool(input, boxes, p);
          const refPool = refRoiPool(refMap, refBoxes(boxes.data, K), { s: 1 / stride, PH: 3, PW: 2 });
          expect(firstMismatch(asNCHW(pool.data, shape, outputLayout), refPool)).toBe(-1);
          for (const mode of ['avg', 'max', 'onnx_max'] as AlignMode[]) {
            const out = roiAlign(input, boxes, { ...p, samplingRatio: 2, mode });
            const ref = refRoiAlign(refMap, refBoxes(boxes.data, K), {
              s: 1 / stride,
              PH: 3,
              PW: 2,
              samplingRatio: 2,
              aligned: true,
              mode,
            });
            expect(maxAbsDiff(asNCHW(out.data, shape, outputLayout), ref)).toBeLessThanOrEqual(1e-5);
          }
        }
      }
    }
  });

  it('results are fresh arrays: a later call does not change an earlier result', () => {
    const rand = mulberry32(7);
    const [N, C, H, W] = [1, 8, 6, 6];
    const input: FeatureMap = { data: randomMap(rand, N * C * H * W), shape: [N, C, H, W], layout: 'NCHW' };
    const boxes = { data: randomBoxes(rand, 3, N, H, W, 1), count: 3 };
    const first = roiAlign(input, boxes, { spatialScale: 1, outputSize: 2 });
    const copy = first.data.slice();
    roiAlign({ ...input, data: randomMap(rand, N * C * H * W) }, boxes, { spatialScale: 1, outputSize: 2 });
    roiPool(input, boxes, { spatialScale: 1, outputSize: 2 });
    expect(first.data).toEqual(copy);
    expect(first.data.buffer).not.toBe(roiKernels().memory.buffer);
  });
});
