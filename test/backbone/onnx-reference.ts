/**
 * The built-in backbone as exported by `src/backbone/onnx-export.ts`, run by ONNX Runtime directly
 * (no roiserve engine code in between beyond the input conversion): the peer for the cross-check
 * test and for `bench/backbone.ts`.
 */
import * as ort from 'onnxruntime-node';
import { compareFeatures, rgbToInput } from '../../src/backbone/onnx-engine.js';
import { exportOnnx } from '../../src/backbone/onnx-export.js';
import type { FeatureMap } from '../../src/ops/types.js';

/** An ORT session of the exported backbone, single-threaded by default (the bench's fair peer). */
export async function createOrtBackbone(intraOpNumThreads = 1): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(exportOnnx(), {
    intraOpNumThreads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    executionProviders: ['cpu'],
  });
}

/** Runs the session on RGB `[H, W, 3]` uint8; returns the features `[1, C, H', W']` in NCHW order. */
export async function runOrtBackbone(
  session: ort.InferenceSession,
  rgb: Uint8Array,
  width: number,
  height: number,
): Promise<{ data: Float32Array; dims: number[] }> {
  const input = rgbToInput(rgb, width, height);
  const result = await session.run({ image: new ort.Tensor('float32', input.data, input.dims) });
  const out = result.features;
  return { data: out.data as Float32Array, dims: [...out.dims] };
}

/**
 * max |tfjs − ORT| over max |ORT|, comparing tfjs features (any layout) with NCHW ORT features.
 * Throws when the shapes differ.
 */
export function relativeError(
  features: FeatureMap,
  peer: { data: Float32Array; dims: number[] },
): { rel: number; scale: number; maxAbs: number } {
  const [n, c, h, w] = peer.dims;
  const { maxAbs, scale, relative } = compareFeatures(features, {
    data: peer.data,
    shape: [n, c, h, w],
    layout: 'NCHW',
  });
  return { rel: relative, scale, maxAbs };
}
