/**
 * The memory of the WebAssembly RoI kernels (roi_kernels.wat) for one operator call: the feature map
 * copied in as NHWC with padded channels, a region for per-RoI tables, and an output region for a
 * chunk of RoIs that is copied out into the caller's fresh `Float32Array`. The memory grows as needed
 * and is reused by later calls (calls are synchronous, so they never overlap within a thread).
 */
import type { FeatureMap } from '../types.js';
import { roiKernels, type RoiKernels } from './roi_kernels.js';

/** Output bytes per chunk of RoIs: large enough to amortise the copy-out, small enough to stay cached. */
const OUTPUT_CHUNK_BYTES = 4 * 1024 * 1024;
const WASM_PAGE = 65536;

const align16 = (n: number): number => Math.ceil(n / 16) * 16;

/** Where things are in the kernels' memory for one call. Addresses are in bytes unless named `...Index`. */
export interface Workspace {
  kernels: RoiKernels;
  /** Views on the whole memory (valid until the next `workspace` call). */
  f32: Float32Array;
  i32: Int32Array;
  /** Channels per cell in memory: `C` rounded up to a multiple of 4. */
  Cp: number;
  /** Byte address of the feature map, NHWC, `Cp` channels per cell. */
  x: number;
  /** Byte address of the per-RoI table region. */
  tables: number;
  /** Byte address of the output region and how many RoIs fit in it. */
  out: number;
  roisPerChunk: number;
}

/**
 * Lays out memory for a call and copies the feature map in (transposing NCHW to NHWC on the way).
 * Address 0 holds `Cp` zeros: the kernels read them for samples that fall off the map.
 *
 * @param input feature map `[N, C, H, W]` (NCHW or NHWC), already checked.
 * @param tableBytes the largest per-RoI table the caller will write.
 * @param roiOutFloats output values per RoI (`C * PH * PW`).
 * @param K number of RoIs (the output region holds at most this many).
 */
export function workspace(input: FeatureMap, tableBytes: number, roiOutFloats: number, K: number): Workspace {
  const kernels = roiKernels();
  const [N, C, H, W] = input.shape;
  const Cp = Math.ceil(C / 4) * 4;
  const x = align16(Cp * 4);
  const tables = align16(x + N * H * W * Cp * 4);
  const out = align16(tables + tableBytes);
  const roisPerChunk = Math.max(1, Math.min(K, Math.floor(OUTPUT_CHUNK_BYTES / (roiOutFloats * 4))));
  const end = out + roisPerChunk * roiOutFloats * 4;
  const memory = kernels.memory;
  if (end > memory.buffer.byteLength) {
    memory.grow(Math.ceil((end - memory.buffer.byteLength) / WASM_PAGE));
  }
  const f32 = new Float32Array(memory.buffer);
  const i32 = new Int32Array(memory.buffer);
  f32.fill(0, 0, Cp);
  copyFeatures(input, f32, x >> 2, Cp);
  return { kernels, f32, i32, Cp, x, tables, out, roisPerChunk };
}

/** Writes `input` at float index `at` as NHWC with `Cp >= C` channels per cell (padding zeroed). */
function copyFeatures(input: FeatureMap, f32: Float32Array, at: number, Cp: number): void {
  const [N, C, H, W] = input.shape;
  const src = input.data;
  const HW = H * W;
  if (input.layout === 'NHWC') {
    if (Cp === C) {
      f32.set(src, at);
      return;
    }
    for (let cell = 0; cell < N * HW; cell++) {
      const d = at + cell * Cp;
      f32.set(src.subarray(cell * C, cell * C + C), d);
      f32.fill(0, d + C, d + Cp);
    }
    return;
  }
  // NCHW → NHWC: dst[n][p][c] = src[n][c][p], p = y * W + x.
  for (let n = 0; n < N; n++) {
    const dstBase = at + n * HW * Cp;
    for (let c = 0; c < C; c++) {
      const s0 = (n * C + c) * HW;
      for (let p = 0, d = dstBase + c; p < HW; p++, d += Cp) f32[d] = src[s0 + p];
    }
    for (let c = C; c < Cp; c++) {
      for (let p = 0, d = dstBase + c; p < HW; p++, d += Cp) f32[d] = 0;
    }
  }
}
