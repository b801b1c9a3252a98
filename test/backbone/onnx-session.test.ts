/**
 * The backbone's ONNX Runtime session does not spin (`src/backbone/onnx-engine.ts`): spinning intra-op
 * threads busy-wait between runs and took the cores the other workers and the HTTP thread need
 * (68 vs 24 ms of CPU per image request with WORKERS=1 on 2 cores). Checked on the options the session
 * is created with (ONNX Runtime does not report them back).
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
