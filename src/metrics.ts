/**
 * Prometheus metrics (prom-client), one registry per app so that several apps (tests) never clash.
 * Node's default metrics come along, among them `nodejs_eventloop_lag_seconds` (event-loop lag).
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { STAGES, type Stage } from './core/results.js';
import type { CancelledTask } from './runtime/protocol.js';

/** What the metrics read of the answers being sent (`AnswerBytes`, `src/http/answers.ts`). */
export interface AnswerGauge {
  /** Bytes of work answers being written. */
  readonly inFlight: number;
}

/**
 * What the metrics read of the work pool at scrape time, and the hook it reports stopped tasks to: a
 * small interface, so that metrics and the pool (`src/runtime/pool.ts`) do not import each other.
 */
export interface WorkGauges {
  /** tfjs tensors the workers hold, as of their latest replies. */
  tensorCount(): number;
  /** Requests running in or waiting for a worker. */
  readonly inFlight: number;
  /** Requests holding a place in the queue (from arrival). */
  readonly admitted: number;
  /** Requests waiting for a worker. */
  readonly queued: number;
  /** Worker threads. */
  readonly size: number;
  /** Tasks handed to a worker so far. */
  readonly started: number;
  /** Set by the metrics: called for every task the pool stopped. */
  onCancelled: ((task: CancelledTask) => void) | undefined;
  /** Requests split across workers, helper tasks started, ranges of boxes helpers ran (`src/runtime/split.ts`). */
  readonly splitStats?: {
    readonly requests: number;
    readonly helpers: number;
    readonly helperRanges: number;
  };
}

export interface Metrics {
  registry: Registry;
  /** `roiserve_http_requests_total{method, route, status}` */
  requests: Counter<'method' | 'route' | 'status'>;
  /** `roiserve_http_request_duration_seconds{method, route, status}` */
  requestDuration: Histogram<'method' | 'route' | 'status'>;
  /**
   * `roiserve_stage_duration_seconds{stage, route}`: decode, backbone, pool, align, warp, encode, by
   * route pattern (a PNG sheet's encode and an `.npy`'s are different histograms).
   */
  stageDuration: Histogram<'stage' | 'route'>;
  /** `roiserve_boxes_processed_total{op}`: boxes run through each operator. */
  boxes: Counter<'op'>;
  /**
   * `roiserve_inference_requests_total{model, status}`: Open Inference Protocol inferences
   * (`POST /v2/models/{model}/infer`) by model and status code; `model` is one the server has, or `unknown`.
   */
  inferences: Counter<'model' | 'status'>;
  /** `roiserve_tasks_cancelled_total{reason, when}`: tasks stopped (client gone / timeout; queued / running). */
  cancelled: Counter<'reason' | 'when'>;
  /**
   * `roiserve_cancelled_task_boxes_total{count}`: over the tasks stopped while running, the boxes × ops
   * they asked for (`requested`) and the ones their kernels had started when they stopped (`started`).
   */
  cancelledBoxes: Counter<'count'>;
}

/**
 * Creates the registry and the service's metrics.
 *
 * @param pool - read at scrape time for the queue and the workers' tfjs tensor count
 * @param answers - read at scrape time for the bytes of answers being sent
 */
export function createMetrics(pool: WorkGauges, answers?: AnswerGauge): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const requests = new Counter({
    name: 'roiserve_http_requests_total',
    help: 'HTTP requests by route pattern and status code',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [registry],
  });
  const requestDuration = new Histogram({
    name: 'roiserve_http_request_duration_seconds',
    help: 'HTTP request latency by route pattern and status code',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  const stageDuration = new Histogram({
    name: 'roiserve_stage_duration_seconds',
    help: `Duration of pipeline stages (${STAGES.join(', ')}) by route pattern`,
    labelNames: ['stage', 'route'] as const,
    buckets: [0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const boxes = new Counter({
    name: 'roiserve_boxes_processed_total',
    help: 'Boxes processed, by operator',
    labelNames: ['op'] as const,
    registers: [registry],
  });
  const inferences = new Counter({
    name: 'roiserve_inference_requests_total',
    help: 'Open Inference Protocol (/v2) inference requests by model and status code',
    labelNames: ['model', 'status'] as const,
    registers: [registry],
  });
  new Gauge({
    name: 'roiserve_tfjs_tensors',
    help: 'tfjs tensors held by the workers (backbone weights included), as of their latest replies',
    registers: [registry],
    collect() {
      this.set(pool.tensorCount());
    },
  });
  new Gauge({
    name: 'roiserve_work_in_flight',
    help: 'Requests running in or waiting for a worker',
    registers: [registry],
    collect() {
      this.set(pool.inFlight);
    },
  });
  new Gauge({
    name: 'roiserve_work_admitted',
    help: 'Work requests holding a place in the queue (from arrival: reading their body, waiting or running)',
    registers: [registry],
    collect() {
      this.set(pool.admitted);
    },
  });
  if (answers) {
    new Gauge({
      name: 'roiserve_answer_bytes_in_flight',
      help: 'Bytes of work answers being sent to clients (MAX_RESPONSE_BYTES_IN_FLIGHT bounds them)',
      registers: [registry],
      collect() {
        this.set(answers.inFlight);
      },
    });
  }
  new Gauge({
    name: 'roiserve_work_queued',
    help: 'Requests waiting for a worker',
    registers: [registry],
    collect() {
      this.set(pool.queued);
    },
  });
  new Gauge({
    name: 'roiserve_workers',
    help: 'Worker threads running the pipeline',
    registers: [registry],
    collect() {
      this.set(pool.size);
    },
  });
  const cancelled = new Counter({
    name: 'roiserve_tasks_cancelled_total',
    help: 'Tasks stopped because the client went away (client_gone) or TASK_TIMEOUT_SECONDS passed (timeout), while queued (never ran) or running',
    labelNames: ['reason', 'when'] as const,
    registers: [registry],
  });
  const cancelledBoxes = new Counter({
    name: 'roiserve_cancelled_task_boxes_total',
    help: 'Tasks stopped while running: boxes × ops they asked for (requested) and had started (started)',
    labelNames: ['count'] as const,
    registers: [registry],
  });
  new Counter({
    name: 'roiserve_tasks_started_total',
    help: 'Tasks handed to a worker (a task cancelled while queued never is)',
    registers: [registry],
    collect() {
      // The pool keeps the count; a counter's value can only be set by resetting it.
      this.reset();
      this.inc(pool.started);
    },
  });
  new Counter({
    name: 'roiserve_split_total',
    help: 'Requests with many boxes shared with idle workers (requests), helper tasks started for them (helpers), and ranges of boxes the helpers ran (helper_ranges)',
    labelNames: ['count'] as const,
    registers: [registry],
    collect() {
      // The pool keeps the counts; a counter's value can only be set by resetting it.
      this.reset();
      const stats = pool.splitStats;
      this.inc({ count: 'requests' }, stats?.requests ?? 0);
      this.inc({ count: 'helpers' }, stats?.helpers ?? 0);
      this.inc({ count: 'helper_ranges' }, stats?.helperRanges ?? 0);
    },
  });
  pool.onCancelled = (task) => {
    cancelled.inc({ reason: task.reason, when: task.when });
    if (task.when === 'running') {
      cancelledBoxes.inc({ count: 'requested' }, task.boxesRequested);
      cancelledBoxes.inc({ count: 'started' }, task.boxesStarted);
    }
  };
  return { registry, requests, requestDuration, stageDuration, boxes, inferences, cancelled, cancelledBoxes };
}

/**
 * The stages that ran: the pipeline starts every stage at 0 and sets those it runs, and a stage that
 * ran always measures more than 0 (performance.now() has sub-microsecond resolution).
 */
export function stagesThatRan(timings: Partial<Record<string, number>>): Stage[] {
  return STAGES.filter((stage) => {
    const ms = timings[stage];
    return typeof ms === 'number' && ms > 0;
  });
}

/** Records stage timings (milliseconds) into the stage histogram, labelled by route; stages that did not run are skipped. */
export function observeStages(
  metrics: Metrics,
  route: string,
  timings: Partial<Record<string, number>>,
): void {
  for (const stage of stagesThatRan(timings)) {
    metrics.stageDuration.observe({ stage, route }, (timings[stage] as number) / 1000);
  }
}
