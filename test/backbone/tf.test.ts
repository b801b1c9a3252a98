import { describe, expect, it, vi } from 'vitest';
import { currentBackend, initTensorFlow, tf } from '../../src/backbone/tf.js';
import { tfjsNodeLoads } from '../support/tf.js';

describe('initTensorFlow', () => {
  it('auto: tfjs-node when it loads, else wasm (SIMD) with the reason; never cpu', async () => {
    const result = await initTensorFlow({ backend: 'auto' });
    if (await tfjsNodeLoads()) {
      expect(result.backend).toBe('tensorflow');
      expect(result.tfjsNodeError).toBeNull();
    } else {
      expect(result.backend).toBe('wasm');
      expect(result.reason).toMatch(/tfjs-node unavailable.*using wasm \(SIMD, 1 thread\)/);
      // Its load error on its own, for /readyz, /v1/backbone and the start-up log.
      expect(result.tfjsNodeError).toMatch(/^@tensorflow\/tfjs-node could not be loaded: \S/);
      expect(result.wasmThreads).toBe(1);
    }
    expect(tf.getBackend()).toBe(result.backend);
    expect(currentBackend()).toEqual(result);
    // Idempotent.
    expect(await initTensorFlow({ backend: 'auto' })).toBe(result);
  });

  it('tensorflow: tfjs-node where it loads; throws where it cannot instead of falling back', async () => {
    if (await tfjsNodeLoads()) {
      expect(await initTensorFlow({ backend: 'tensorflow' })).toMatchObject({
        backend: 'tensorflow',
        reason: expect.stringMatching(/^configured: @tensorflow\/tfjs-node/),
        tfjsNodeError: null,
      });
      expect(tf.getBackend()).toBe('tensorflow');
    } else {
      await expect(initTensorFlow({ backend: 'tensorflow' })).rejects.toThrow(
        /'tensorflow' was requested but .*tfjs-node/,
      );
    }
  });

  it('cpu: only when asked, with a loud warning; wasm can be selected again afterwards', async () => {
    const warn = vi.fn();
    const cpu = await initTensorFlow({ backend: 'cpu', warn });
    expect(cpu.backend).toBe('cpu');
    expect(tf.getBackend()).toBe('cpu');
    expect(warn).toHaveBeenCalledOnce();
    expect(warn.mock.calls[0][0]).toMatch(/WARNING.*cpu backend.*slower/);
    const wasm = await initTensorFlow({ backend: 'wasm' });
    expect(wasm).toMatchObject({ backend: 'wasm', reason: expect.stringMatching(/^configured: wasm/) });
    expect(tf.getBackend()).toBe('wasm');
  });

  it('refuses an unknown backend name and a bad thread count', async () => {
    await expect(initTensorFlow({ backend: 'webgpu' as never })).rejects.toThrow(
      /Unknown TensorFlow backend 'webgpu'/,
    );
    await expect(initTensorFlow({ backend: 'wasm', wasmThreads: 0 })).rejects.toThrow(
      /wasmThreads must be an integer >= 1/,
    );
  });
});
