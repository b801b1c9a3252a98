/**
 * The SIMD channel loops of the RoI kernels (see roi_kernels.wat for what each function does and the
 * memory layout). Loaded once, lazily and synchronously, on first use. The module bytes are generated
 * into `roi_kernels_wasm.ts` by `npm run build:wasm`.
 */
import { ROI_KERNELS_WASM_BASE64 } from './roi_kernels_wasm.js';

/** The module's exports; every pointer and stride is in bytes. */
export interface RoiKernels {
  memory: WebAssembly.Memory;
  weightedSum(nBins: number, first: number, taps: number, out: number, binStride: number, C: number): void;
  sampleMax(
    nBins: number,
    nSamp: number,
    samples: number,
    out: number,
    binStride: number,
    C: number,
    onnx: number,
  ): void;
  rectMax(
    nBins: number,
    rects: number,
    rowStride: number,
    cellStride: number,
    out: number,
    binStride: number,
    C: number,
  ): void;
  transpose(src: number, srcStride: number, dst: number, dstStride: number, rows: number, cols: number): void;
}

let kernels: RoiKernels | undefined;

/**
 * The kernels' instance (created on first call). Throws when this runtime cannot compile the module:
 * it needs WebAssembly SIMD (Node >= 16.4); there is deliberately no slower fallback.
 */
export function roiKernels(): RoiKernels {
  if (kernels === undefined) {
    try {
      const module = new WebAssembly.Module(Buffer.from(ROI_KERNELS_WASM_BASE64, 'base64'));
      kernels = new WebAssembly.Instance(module, {}).exports as unknown as RoiKernels;
    } catch (err) {
      throw new Error(
        `roiserve: cannot instantiate the RoI kernels (WebAssembly with 128-bit SIMD, Node >= 16.4): ${String(err)}`,
        { cause: err },
      );
    }
  }
  return kernels;
}
