/**
 * The backbone's ONNX Runtime session does not spin (`src/backbone/onnx-engine.ts`): spinning intra-op
 * threads busy-wait between runs and took the cores the other workers and the HTTP thread need
 * (68 vs 24 ms of CPU per image request with WORKERS=1 on 2 cores). Checked on the options the session
 * is created with (ONNX Runtime does not report them back). `runSession` releases its input once run.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';

afterEach(() => {
  vi.doUnmock('onnxruntime-node');
  vi.resetModules();
});

describe('createSession', () => {
  it('asks for the given intra-op threads, one inter-op thread, and no spinning', async () => {
    const create = vi.fn(async () => ({}));
    vi.doMock('onnxruntime-node', () => ({ InferenceSession: { create }, env: { versions: {} } }));
    const { createSession } = await import('../../src/backbone/onnx-engine.js');
    await createSession(new Uint8Array([1, 2, 3]), 3);
    expect(create).toHaveBeenCalledTimes(1);
    const options = (create.mock.calls[0] as unknown[])[1] as Record<string, unknown>;
    expect(options).toMatchObject({
      intraOpNumThreads: 3,
      interOpNumThreads: 1,
      extra: { session: { intra_op: { allow_spinning: '0' } } },
    });
  });
});

describe('runSession', () => {
  it('releases the input once the run has read it, and returns the outputs as its own arrays', async () => {
    const seen: number[][] = [];
    class Tensor {
      constructor(
        readonly type: string,
        readonly data: Float32Array,
        readonly dims: number[],
      ) {}
    }
    const output = { type: 'float32', dims: [1, 2, 1, 1], data: new Float32Array([5, 6]), dispose: vi.fn() };
    const session = {
      inputNames: ['image'],
      outputNames: ['features'],
      run: vi.fn(async (feeds: Record<string, Tensor>) => {
        seen.push([...feeds.image.data]);
        return { features: output };
      }),
    };
    vi.doMock('onnxruntime-node', () => ({ Tensor, env: { versions: {} } }));
    const { runSession } = await import('../../src/backbone/onnx-engine.js');
    // Large enough for freeNow (1 MiB): smaller inputs are left to the collector.
    const input = { data: new Float32Array(512 * 1024).fill(0.5), dims: [1, 3, 512, 341] };
    const [map] = await runSession(session as never, input);
    expect(seen[0].length).toBe(512 * 1024);
    expect(seen[0].every((v) => v === 0.5)).toBe(true);
    expect(input.data.length).toBe(0);
    expect([...map.data]).toEqual([5, 6]);
    expect(map.data.buffer).not.toBe(output.data.buffer);
    expect(output.dispose).toHaveBeenCalledTimes(1);
  });
});
