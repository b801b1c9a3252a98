/**
 * `src/main.ts` as a process: refuses an invalid environment with a clear message, and on SIGTERM
 * stops accepting, finishes the request in flight (also an answer a slow client is still reading), and
 * exits 0.
 */
import { request as httpRequest, Agent } from 'node:http';
import { describe, expect, it } from 'vitest';
import { writeNpy } from '../src/tensors/npy.js';
import { randomMap } from './support/fixtures.js';
import { startMain, waitFor } from './support/main-process.js';

async function listeningAndReady(output: () => string): Promise<string> {
  const url = await waitFor(
    () => /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(output())?.[1],
    'listen',
  );
  // Ready first, so the worker is not busy loading the backbone (that also counts as work in flight).
  for (let i = 0; i < 1200 && (await fetch(`${url}/readyz`)).status !== 200; i++) {
    await new Promise((r) => setTimeout(r, 25));
  }
  return url;
}

/** A request whose `.npy` answer is 60 × 64 × 32 × 32 float32 (~15.7 MB) plus its header. */
const BIG_ANSWER_BYTES = 60 * 64 * 32 * 32 * 4;
function bigAlignRequest(): FormData {
  const fm = randomMap([1, 64, 96, 96], 2);
  const body = new FormData();
  body.append('features', new Blob([writeNpy(fm.data, fm.shape) as Uint8Array<ArrayBuffer>]), 'map.npy');
  body.append('boxes', JSON.stringify(Array.from({ length: 60 }, (_, i) => [i, i, 95, 95])));
  body.append('spatialScale', '1');
  body.append('ops', '["align"]');
  body.append('outputSize', '32');
  body.append('samplingRatio', '4');
  body.append('format', 'npy');
  return body;
}

describe('main.ts', () => {
  it('refuses to start on an invalid environment, naming the variables', async () => {
    const { output, exit } = startMain({ PORT: 'eighty', MAX_BOXES: '-3' });
    expect(await exit).toBe(1);
    expect(output()).toContain('roiserve: refusing to start: invalid environment');
    expect(output()).toMatch(/PORT="eighty"/);
    expect(output()).toMatch(/MAX_BOXES="-3"/);
  });

  it('drains the request in flight on SIGTERM and exits 0', async () => {
    const { child, output, exit } = startMain({});
    const url = await listeningAndReady(output);
    // Why tfjs-node is not in use is said at start-up too, with its load error (as /readyz says it).
    const { tfjsNodeError } = (await (await fetch(`${url}/readyz`)).json()) as {
      tfjsNodeError: string | null;
    };
    if (tfjsNodeError !== null) {
      const line = `@tensorflow/tfjs-node is not in use (${tfjsNodeError})`;
      await waitFor(() => output().includes(line) || undefined, 'the tfjs-node start-up line');
    }
    const body = bigAlignRequest();
    const inFlight = fetch(`${url}/v1/roi`, { method: 'POST', body });
    // Wait until the request is running in the worker (the metrics say so), then ask the process to stop.
    // Without that sighting the test would prove nothing about draining (it could stop an idle server).
    await waitFor(
      async () =>
        /roiserve_work_in_flight [1-9]/.test(await (await fetch(`${url}/metrics`)).text()) || undefined,
      'the request in flight in /metrics',
    );
    child.kill('SIGTERM');
    const response = await inFlight;
    expect(response.status).toBe(200);
    expect((await response.arrayBuffer()).byteLength).toBeGreaterThan(BIG_ANSWER_BYTES);
    expect(await exit).toBe(0);
    expect(output()).toContain('shutting down: draining in-flight requests');
    await expect(fetch(`${url}/healthz`)).rejects.toThrow();
  });

  it('delivers an answer a slow client is still reading on SIGTERM whole, then exits 0', async () => {
    const { child, output, exit } = startMain({});
    const url = await listeningAndReady(output);
    const form = new Response(bigAlignRequest());
    const contentType = form.headers.get('content-type') ?? '';
    const payload = Buffer.from(await form.arrayBuffer());
    // A keep-alive client that stops reading once the headers arrive: most of the answer then sits in
    // the server's socket buffers when the process is told to stop.
    const agent = new Agent({ keepAlive: true });
    const received = new Promise<{ status: number; bytes: number; complete: boolean }>((resolve, reject) => {
      const req = httpRequest(
        `${url}/v1/roi`,
        { method: 'POST', agent, headers: { 'content-type': contentType, 'content-length': payload.length } },
        (res) => {
          let bytes = 0;
          res.pause();
          res.on('data', (chunk: Buffer) => (bytes += chunk.length));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes, complete: res.complete }));
          res.on('error', reject);
          setTimeout(() => {
            child.kill('SIGTERM');
            setTimeout(() => res.resume(), 500);
          }, 1000);
        },
      );
      req.on('error', reject);
      req.end(payload);
    });
    const answer = await received;
    agent.destroy();
    expect(answer.status).toBe(200);
    expect(answer.complete).toBe(true);
    expect(answer.bytes).toBeGreaterThan(BIG_ANSWER_BYTES);
    expect(await exit).toBe(0);
  });

  it('stops waiting for a client that never reads its answer after SHUTDOWN_GRACE_SECONDS, and exits 1', async () => {
    // The grace bound is read from the environment: close-with-grace names the delay it waited.
    const { child, output, exit } = startMain({ SHUTDOWN_GRACE_SECONDS: '1' });
    const url = await listeningAndReady(output);
    const form = new Response(bigAlignRequest());
    const contentType = form.headers.get('content-type') ?? '';
    const payload = Buffer.from(await form.arrayBuffer());
    const agent = new Agent({ keepAlive: true });
    const req = httpRequest(
      `${url}/v1/roi`,
      { method: 'POST', agent, headers: { 'content-type': contentType, 'content-length': payload.length } },
      (res) => {
        // Never reads, never closes: only the grace period can end the shutdown.
        res.pause();
        child.kill('SIGTERM');
      },
    );
    req.on('error', () => {}); // the process goes away under it
    req.end(payload);
    try {
      expect(await exit).toBe(1);
      expect(output()).toContain('shutting down: draining in-flight requests');
      expect(output()).toContain('killed by timeout (1000ms)');
    } finally {
      req.destroy();
      agent.destroy();
    }
  });
});
