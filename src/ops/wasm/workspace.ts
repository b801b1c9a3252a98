/**
 * The memory of the WebAssembly RoI kernels (roi_kernels.wat) for one operator call: the feature map
 * copied in as NHWC with padded channels, a region for per-RoI tables, and an output region for a
 * chunk of RoIs that is copied out into the caller's fresh `Float32Array` (never a view on this
 * memory, which the next call overwrites). The memory grows as needed and is reused by later calls
 * (calls are synchronous, so they never overlap within a thread).
 */
import type { FeatureMap, Layout } from '../types.js';
import { roiKernels, type RoiKernels } from './roi_kernels.js';

/** Output bytes per chunk of RoIs: large enough to amortise the copy-out, small enough to stay cached. */
const OUTPUT_CHUNK_BYTES = 4 * 1024 * 1024;
const WASM_PAGE = 65536;

/** `n` rounded up to a multiple of 16 (the alignment of every region, for whole-vector loads). */
export const align16 = (n: number): number => Math.ceil(n / 16) * 16;

/**
 * Where things are in the kernels' memory for one call. Addresses are byte offsets. The kernels write
 * a RoI's `[PH, PW, C]` result at `target(i)` (bin stride `4 * C`); `finish(i)` puts it in the output
 * layout and `copyOut` moves a finished chunk into the result.
 */
export class Workspace {
  readonly kernels: RoiKernels;
  /** Views on the whole memory (valid for this call). */
  readonly f32: Float32Array;
  readonly i32: Int32Array;
  /** Channels per cell in memory: `C` rounded up to a multiple of 4. */
  readonly Cp: number;
  /** The feature map, NHWC, `Cp` channels per cell. */
  readonly x: number;
  /** Bytes from one cell of the map to the next along x (`4 * Cp`), and along y (`W` cells). */
  readonly cellBytes: number;
  readonly rowBytes: number;
  /** The per-RoI table region. */
  readonly tables: number;
  /** How many RoIs one output chunk holds. */
  readonly roisPerChunk: number;
  private readonly imageBytes: number;
  private readonly out: number;
  private readonly scratch: number;
  private readonly C: number;
  private readonly bins: number;
  private readonly layout: Layout;

  /**
   * Lays out memory and copies the feature map in. Address 0 holds `Cp` zeros: the kernels read them
   * for samples that fall off the map.
   *
   * @param input feature map `[N, C, H, W]` (NCHW or NHWC), already checked.
   * @param tableBytes the largest per-RoI table the caller will write.
   * @param bins output bins per RoI (`PH * PW`).
   * @param K number of RoIs (at least 1).
   * @param layout the result's layout.
   */
  constructor(input: FeatureMap, tableBytes: number, bins: number, K: number, layout: Layout) {
    this.kernels = roiKernels();
    const [N, C, H, W] = input.shape;
    this.C = C;
    this.bins = bins;
    this.layout = layout;
    this.Cp = Math.ceil(C / 4) * 4;
    const roiBytes = 4 * C * bins;
    this.x = align16(this.Cp * 4);
    this.cellBytes = 4 * this.Cp;
    this.rowBytes = W * this.cellBytes;
    this.imageBytes = H * this.rowBytes;
    this.tables = align16(this.x + N * H * W * this.Cp * 4);
    this.scratch = align16(this.tables + tableBytes);
    this.out = align16(this.scratch + roiBytes);
    this.roisPerChunk = Math.max(1, Math.min(K, Math.floor(OUTPUT_CHUNK_BYTES / roiBytes)));
    // An NCHW map is staged after the output and transposed into place.
    const staging = align16(this.out + this.roisPerChunk * roiBytes);
    const end = input.layout === 'NCHW' ? staging + 4 * input.data.length : staging;
    const memory = this.kernels.memory;
    if (end > memory.buffer.byteLength) {
      memory.grow(Math.ceil((end - memory.buffer.byteLength) / WASM_PAGE));
    }
    this.f32 = new Float32Array(memory.buffer);
    this.i32 = new Int32Array(memory.buffer);
    this.f32.fill(0, 0, this.Cp);
    this.copyFeatures(input, staging);
  }

  /** Address of cell (0, 0) of image `b` of the map. */
  imageAt(b: number): number {
    return this.x + b * this.imageBytes;
  }

  /** Where the kernels write RoI `i` of the current chunk (`[PH, PW, C]`, bin stride `4 * C`). */
  target(i: number): number {
    return this.layout === 'NHWC' ? this.out + i * 4 * this.C * this.bins : this.scratch;
  }

  /** Puts RoI `i` of the current chunk into the output layout (NCHW: transposes the scratch block). */
  finish(i: number): void {
    if (this.layout === 'NCHW') {
      const { C, bins } = this;
      this.kernels.transpose(this.scratch, 4 * C, this.out + i * 4 * C * bins, 4 * bins, bins, C);
    }
  }

  /** Copies the finished RoIs `k0 .. k1 - 1` (the current chunk) into `result`. */
  copyOut(result: Float32Array, k0: number, k1: number): void {
    const roiFloats = this.C * this.bins;
    const from = this.out >> 2;
    result.set(this.f32.subarray(from, from + (k1 - k0) * roiFloats), k0 * roiFloats);
  }

  /** Writes `input` at `this.x` as NHWC with `Cp` channels per cell (NCHW goes through `staging`). */
  private copyFeatures(input: FeatureMap, staging: number): void {
    const [N, C, H, W] = input.shape;
    const { f32, Cp } = this;
    const at = this.x >> 2;
    const HW = H * W;
    if (input.layout === 'NCHW') {
      f32.set(input.data, staging >> 2);
      for (let n = 0; n < N; n++) {
        // [C][HW] → [HW][Cp]
        this.kernels.transpose(staging + 4 * n * C * HW, 4 * HW, this.x + 4 * n * HW * Cp, 4 * Cp, C, HW);
      }
    } else if (Cp === C) {
      f32.set(input.data, at);
      return;
    } else {
      for (let cell = 0; cell < N * HW; cell++)
        f32.set(input.data.subarray(cell * C, cell * C + C), at + cell * Cp);
    }
    // Padding lanes: never stored, zeroed so that every run reads the same memory.
    for (let cell = 0; cell < N * HW && Cp !== C; cell++)
      f32.fill(0, at + cell * Cp + C, at + cell * Cp + Cp);
  }
}
