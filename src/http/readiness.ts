/**
 * Backbone readiness: the workers load their backbones in the background from start-up; `/readyz`
 * reports the state, and the start-up log says which engine and backend run the backbone.
 */
import type { FastifyInstance } from 'fastify';
import type { BackboneInfo, WorkPool } from '../runtime/pool.js';

/** Backbone readiness, as `/readyz` reports it. */
export interface Readiness {
  state: 'starting' | 'ready' | 'failed';
  /** Set once ready. */
  backbone: BackboneInfo | undefined;
  /** Why loading failed (server-side detail, logged; `/readyz` says only that it failed). */
  error: string | undefined;
  /** Settles when the workers have loaded their backbones (never rejects). */
  settled: Promise<void>;
}

/** Starts warming `work`'s backbones and returns the readiness that follows it (logged on `app`). */
export function trackReadiness(app: FastifyInstance, work: WorkPool): Readiness {
  const readiness: Readiness = {
    state: 'starting',
    backbone: undefined,
    error: undefined,
    settled: Promise.resolve(),
  };
  readiness.settled = work.warmup().then(
    (backbone) => {
      readiness.state = 'ready';
      readiness.backbone = backbone;
      app.log.info(
        {
          backbone: backbone.name,
          engine: backbone.engine,
          engineReason: backbone.engineReason,
          backend: backbone.backend,
          backendReason: backbone.backendReason,
        },
        'backbone ready',
      );
      if (backbone.tfjsNodeError !== null) {
        // Said at start-up, not only in /readyz: the native backend is several times faster.
        const runner = backbone.engine === 'onnx' ? 'ONNX Runtime' : `the ${backbone.backend} backend`;
        app.log.info(
          { tfjsNodeError: backbone.tfjsNodeError },
          `@tensorflow/tfjs-node is not in use (${backbone.tfjsNodeError}); ${runner} runs the backbone`,
        );
      }
    },
    (err: unknown) => {
      readiness.state = 'failed';
      readiness.error = err instanceof Error ? err.message : String(err);
      app.log.error({ err }, 'backbone failed to load');
    },
  );
  return readiness;
}
