import { describe, expect, it } from 'vitest';
import { assembleRoiKernels } from '../../scripts/build-wasm.js';
import { ROI_KERNELS_WASM_BASE64, roiKernels } from '../../src/ops/wasm/roi_kernels.js';

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
});
