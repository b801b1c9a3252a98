/**
 * Service configuration. This is the ONLY module that reads environment variables: everything else
 * receives the parsed {@link Config} object (tests build one with {@link parseConfig} and overrides).
 */
import { readFileSync } from 'node:fs';
import { availableParallelism, totalmem } from 'node:os';
import { z } from 'zod';

/** Accepts a positive integer written in decimal or exponent form (`40e6`), like the defaults below. */
const positiveInt = z.coerce.number().int().positive();
const nonNegativeInt = z.coerce.number().int().nonnegative();

/** `true`/`false`/`1`/`0`/`yes`/`no`, case-insensitive. */
const booleanText = z
  .enum(['true', 'false', '1', '0', 'yes', 'no', 'TRUE', 'FALSE', 'True', 'False'])
  .transform((v) => ['true', '1', 'yes'].includes(v.toLowerCase()));

/** Empty strings count as "unset", as a shell `FOO=` would mean. */
const optional = <T extends z.ZodType>(schema: T) =>
  z.preprocess((v) => (v === '' ? undefined : v), schema.optional());

/** A list of numbers: `0.485,0.456,0.406` (commas and/or spaces). */
const numberList = (what: string, check: (n: number) => boolean, count?: number) =>
  z.string().transform((text, ctx) => {
    const values = text
      .split(/[\s,]+/)
      .filter((t) => t !== '')
      .map(Number);
    if ((count !== undefined && values.length !== count) || values.length === 0 || !values.every(check)) {
      ctx.addIssue({
        code: 'custom',
        message: `expected ${count !== undefined ? `${count} ` : ''}${what} separated by commas, got ${JSON.stringify(text)}`,
      });
      return z.NEVER;
    }
    return values;
  });

/** MiB kept for the HTTP thread (fastify, parsing, answers being written) when sizing the pool. */
export const HTTP_RESERVE_MB = 512;

/** Per-worker memory assumed when `WORKER_MAX_MEMORY_MB` is 0 (never recycled): the default bound. */
const UNBOUNDED_WORKER_MB = 1024;

/** What the default worker count is computed from; {@link readWorkerLimits} reads it from the host. */
export interface WorkerLimits {
  /** CPUs Node may run on (`os.availableParallelism()`: affinity, not CFS quotas). */
  cores: number;
  /** Text of cgroup v2 `cpu.max` (`"max 100000"` or `"200000 100000"`), undefined when absent. */
  cpuMax?: string | undefined;
  /** Physical memory in bytes (`os.totalmem()`). */
  memoryBytes: number;
  /** Text of cgroup v2 `memory.max` (`"max"` or bytes), undefined when absent. */
  memoryMax?: string | undefined;
  /** `WORKER_MAX_MEMORY_MB`: a worker is recycled beyond it, so it is what one worker may hold. */
  workerMaxMemoryMb: number;
}

/**
 * CPUs granted by a cgroup v2 `cpu.max` quota, rounded up (1.5 CPUs still lets two threads make
 * progress), or undefined when there is no quota or the text is not understood.
 */
export function cpuQuota(cpuMax: string | undefined): number | undefined {
  const [quota, period] = (cpuMax ?? '').trim().split(/\s+/);
  if (quota === undefined || quota === 'max') return undefined;
  const q = Number(quota);
  const p = Number(period ?? 100_000);
  if (!Number.isFinite(q) || !Number.isFinite(p) || q <= 0 || p <= 0) return undefined;
  return Math.max(1, Math.ceil(q / p));
}

/** Bytes of a cgroup v2 `memory.max`, or undefined for `max`, absent or unreadable text. */
export function memoryLimit(memoryMax: string | undefined): number | undefined {
  const text = (memoryMax ?? '').trim();
  if (!/^\d+$/.test(text)) return undefined;
  return Number(text);
}

/**
 * Default worker count: one per core, bounded by memory. Cores are the CPUs Node sees, lowered to a
 * cgroup CPU quota (Node does not see `docker run --cpus`). Each worker holds a backbone and may grow
 * to `WORKER_MAX_MEMORY_MB` before it is recycled, so the workers get what memory (physical, or the
 * cgroup limit when lower) is left after {@link HTTP_RESERVE_MB} for the HTTP thread:
 * `min(cores, floor((memory MiB − 512) / WORKER_MAX_MEMORY_MB))`, at least 1, at most 64 (the most
 * `WORKERS` accepts). The HTTP thread gets no core of its own: it mostly waits on sockets (parsing
 * and sending are a small part of a request's CPU), while a core kept for it left half of a 2-core
 * machine's compute unused (the old `cores − 1` ran one worker there).
 */
export function workersFor(limits: WorkerLimits): number {
  const cores = coresOf(limits);
  const cgroupBytes = memoryLimit(limits.memoryMax);
  const memoryMb = Math.min(limits.memoryBytes, cgroupBytes ?? Infinity) / 2 ** 20;
  const perWorkerMb = limits.workerMaxMemoryMb > 0 ? limits.workerMaxMemoryMb : UNBOUNDED_WORKER_MB;
  const byMemory = Math.floor((memoryMb - HTTP_RESERVE_MB) / perWorkerMb);
  return Math.max(1, Math.min(64, cores, byMemory));
}

/** Cores this process may use: the CPUs Node sees, lowered to a cgroup v2 CPU quota. */
export function coresOf(limits: Pick<WorkerLimits, 'cores' | 'cpuMax'>): number {
  return Math.max(1, Math.min(limits.cores, cpuQuota(limits.cpuMax) ?? Infinity));
}

/** {@link coresOf} on this host. */
export function hostCores(): number {
  return coresOf({ cores: availableParallelism(), cpuMax: readCgroup('cpu.max') });
}

/**
 * Default ONNX Runtime intra-op threads per worker: `max(1, floor(cores / workers))`. Every worker
 * holds its own session and they run at once, so `workers × threads` must not pass the cores: ORT's
 * pool threads spin while they wait for work, and oversubscribed they steal the other workers' time
 * (and the RoI kernels'). With the default one worker per core that is 1 thread each: requests run
 * in parallel across workers rather than one request across cores. Fewer workers than cores
 * (`WORKERS=1` on a 4-core machine) give each session the cores the pool leaves idle.
 */
export function threadsPerWorker(cores: number, workers: number): number {
  return Math.max(1, Math.floor(cores / Math.max(1, workers)));
}

/** A cgroup v2 file's text, or undefined off Linux, on cgroup v1, or outside a limited cgroup. */
function readCgroup(name: string): string | undefined {
  try {
    return readFileSync(`/sys/fs/cgroup/${name}`, 'utf8');
  } catch {
    return undefined;
  }
}

/** Reads {@link WorkerLimits} from this host (cores, cgroup v2 `cpu.max` / `memory.max`, memory). */
export function readWorkerLimits(workerMaxMemoryMb: number): WorkerLimits {
  return {
    cores: availableParallelism(),
    cpuMax: readCgroup('cpu.max'),
    memoryBytes: totalmem(),
    memoryMax: readCgroup('memory.max'),
    workerMaxMemoryMb,
  };
}

/** Default worker count on this host ({@link workersFor}); `WORKERS` overrides it. */
export function defaultWorkers(workerMaxMemoryMb = 1024): number {
  return workersFor(readWorkerLimits(workerMaxMemoryMb));
}

/**
 * Environment variables, their defaults and their checks. The keys are the variable names, so a
 * validation message names exactly what to fix.
 */
export const envSchema = z.object({
  HOST: z.string().min(1).default('0.0.0.0'),
  PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  /** Serve `/metrics` on this port of HOST instead (without a key), and not on PORT. Unset: on PORT. */
  METRICS_PORT: optional(z.coerce.number().int().min(0).max(65535)),
  /**
   * When set, every `/v1` route (and `/metrics`, unless METRICS_PORT is set) requires it as a bearer
   * token or `X-API-Key`; health, readiness, docs and the playground stay open.
   */
  API_KEY: optional(z.string().min(8, 'API_KEY must be at least 8 characters')),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  BODY_LIMIT_BYTES: positiveInt.default(32 * 1024 * 1024),
  MAX_IMAGE_PIXELS: positiveInt.default(40_000_000),
  /** Longest image side after decoding; larger images are downscaled (boxes follow). Unset: keep the size. */
  MAX_IMAGE_SIDE: optional(positiveInt),
  /**
   * Longest side over shortest side an image may have (checked from its header, 400 above it): the
   * backbone's convolutions fail on extreme strips such as 16000000×1 that pass the pixel limits.
   */
  MAX_IMAGE_ASPECT: positiveInt.default(32),
  MAX_BOXES: positiveInt.default(10_000),
  /** Upper bound of K·C·PH·PW summed over the requested ops. */
  MAX_OUTPUT_VALUES: positiveInt.default(64_000_000),
  MAX_OUTPUT_SIDE: positiveInt.max(1024).default(64),
  MAX_SAMPLING_GRID: positiveInt.max(1024).default(64),
  /**
   * Largest estimated cost of one request in work units (`src/core/work-budget.ts`; ≈ 0.2–0.6 ns of one
   * core each): over it, 413 before any work is done.
   */
  MAX_WORK: positiveInt.default(5e10),
  /**
   * A task running in a worker longer than this is stopped at its next check (between stages, before
   * each box) and answered with 504.
   */
  TASK_TIMEOUT_SECONDS: positiveInt.default(60),
  /** Requests waiting for a worker beyond the ones running; one more gets 503 + Retry-After. */
  QUEUE_LIMIT: nonNegativeInt.default(64),
  /**
   * Bytes of work-request bodies admitted and not yet answered (each charged its Content-Length, or
   * BODY_LIMIT_BYTES when chunked); a request that would pass it gets 503 before its body is read.
   */
  MAX_BODY_BYTES_IN_FLIGHT: positiveInt.default(128 * 1024 * 1024),
  /**
   * Bytes of work answers being written to clients at once; at or over it, new work gets 503 on
   * arrival until some are written (or cut by WRITE_TIMEOUT_SECONDS).
   */
  MAX_RESPONSE_BYTES_IN_FLIGHT: positiveInt.default(1024 * 1024 * 1024),
  /**
   * Seconds a client may take no part of its answer before its connection is closed and the answer
   * dropped; 0 disables. Fractions allowed.
   */
  WRITE_TIMEOUT_SECONDS: z.coerce.number().nonnegative().default(30),
  /** Worker threads running the CPU-heavy pipeline; each holds its own backbone. */
  WORKERS: optional(positiveInt.max(64)),
  /**
   * A /v1/roi request with at least this many boxes shares its operators with the workers idle when it
   * runs (src/runtime/split.ts); 0 never splits.
   */
  SPLIT_MIN_BOXES: nonNegativeInt.default(256),
  /**
   * A worker whose heap + external memory (tfjs-wasm's memory included, which never shrinks) passes
   * this many MiB after a task is replaced by a fresh one; 0 never replaces.
   */
  WORKER_MAX_MEMORY_MB: nonNegativeInt.default(1024),
  TF_BACKEND: z.enum(['auto', 'tensorflow', 'wasm', 'cpu']).default('auto'),
  /**
   * What runs the backbone: `auto` (tfjs when tfjs-node runs, else ONNX Runtime, else tfjs wasm),
   * `tfjs` or `onnx`.
   */
  BACKBONE_ENGINE: z.enum(['auto', 'tfjs', 'onnx']).default('auto'),
  /** ONNX Runtime intra-op threads per worker; default `max(1, floor(cores / WORKERS))`. */
  BACKBONE_THREADS: optional(positiveInt.max(256)),
  /** ONNX user backbones: per-channel mean subtracted from RGB / 255 (torchvision's Normalize). */
  BACKBONE_MEAN: optional(numberList('finite numbers', Number.isFinite, 3)),
  /** ONNX user backbones: per-channel std the centred values are divided by. */
  BACKBONE_STD: optional(numberList('positive numbers', (n) => Number.isFinite(n) && n > 0, 3)),
  /** ONNX user backbones: zero-pad height and width (bottom/right) to a multiple of this. */
  BACKBONE_SIZE_DIVISIBILITY: optional(positiveInt.max(1024)),
  /** ONNX user backbones: each output's stride, finest first; default inferred from a probe. */
  BACKBONE_STRIDES: optional(
    numberList('powers of two', (n) => Number.isInteger(n) && n >= 1 && n <= 1024 && (n & (n - 1)) === 0),
  ),
  BACKBONE_DIR: optional(z.string().min(1)),
  BACKBONE_OUTPUT_NODE: optional(z.string().min(1)),
  BACKBONE_STRIDE: optional(positiveInt),
  /**
   * Seconds a request's headers and body may take to arrive (a stalled body gets 408 and its socket
   * closed); 0 disables. Fractions allowed. Work in the workers is not counted.
   */
  REQUEST_TIMEOUT_SECONDS: z.coerce.number().nonnegative().default(60),
  /** Seconds an idle keep-alive connection stays open between requests. */
  KEEP_ALIVE_TIMEOUT_SECONDS: z.coerce.number().positive().default(72),
  /** Seconds SIGTERM waits for in-flight requests before forcing the exit. */
  SHUTDOWN_GRACE_SECONDS: positiveInt.default(10),
  /** Serve `GET /docs` (swagger-ui). `GET /openapi.json` is always served. */
  DOCS: optional(booleanText),
});

/** The parsed configuration, camelCased. */
export interface Config {
  host: string;
  port: number;
  metricsPort: number | undefined;
  apiKey: string | undefined;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  bodyLimitBytes: number;
  maxImagePixels: number;
  maxImageSide: number | undefined;
  maxImageAspect: number;
  maxBoxes: number;
  maxOutputValues: number;
  maxOutputSide: number;
  maxSamplingGrid: number;
  maxWork: number;
  taskTimeoutSeconds: number;
  queueLimit: number;
  maxBodyBytesInFlight: number;
  maxResponseBytesInFlight: number;
  writeTimeoutSeconds: number;
  workers: number;
  splitMinBoxes: number;
  workerMaxMemoryMb: number;
  tfBackend: 'auto' | 'tensorflow' | 'wasm' | 'cpu';
  backboneEngine: 'auto' | 'tfjs' | 'onnx';
  /** ONNX Runtime intra-op threads per worker session (see {@link threadsPerWorker}). */
  backboneThreads: number;
  backboneDir: string | undefined;
  backboneOutputNode: string | undefined;
  backboneStride: number | undefined;
  backboneMean: [number, number, number] | undefined;
  backboneStd: [number, number, number] | undefined;
  backboneSizeDivisibility: number | undefined;
  backboneStrides: number[] | undefined;
  shutdownGraceSeconds: number;
  requestTimeoutSeconds: number;
  keepAliveTimeoutSeconds: number;
  docs: boolean;
}

/** Thrown when the environment is invalid; `main.ts` prints it and exits 1. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/**
 * Parses environment variables into a {@link Config}, then applies `overrides` (tests use them).
 *
 * @param env - variables to read; default `{}` (pass `process.env` in `main.ts`)
 * @param overrides - fields replacing the parsed ones; default none
 * @throws ConfigError listing every invalid variable with what was expected
 */
export function parseConfig(env: NodeJS.ProcessEnv = {}, overrides: Partial<Config> = {}): Config {
  const known = Object.fromEntries(Object.keys(envSchema.shape).map((key) => [key, env[key]]));
  const result = envSchema.safeParse(known);
  if (!result.success) {
    const lines = result.error.issues.map((issue) => {
      const name = String(issue.path[0]);
      // Never echo a secret into logs.
      const shown = name === 'API_KEY' ? '(hidden)' : JSON.stringify(env[name]);
      return `  ${name}=${shown}: ${issue.message}`;
    });
    throw new ConfigError(`invalid environment:\n${lines.join('\n')}`);
  }
  const e = result.data;
  const workers = e.WORKERS ?? defaultWorkers(e.WORKER_MAX_MEMORY_MB);
  return {
    host: e.HOST,
    port: e.PORT,
    metricsPort: e.METRICS_PORT,
    apiKey: e.API_KEY,
    logLevel: e.LOG_LEVEL,
    bodyLimitBytes: e.BODY_LIMIT_BYTES,
    maxImagePixels: e.MAX_IMAGE_PIXELS,
    maxImageSide: e.MAX_IMAGE_SIDE,
    maxImageAspect: e.MAX_IMAGE_ASPECT,
    maxBoxes: e.MAX_BOXES,
    maxOutputValues: e.MAX_OUTPUT_VALUES,
    maxOutputSide: e.MAX_OUTPUT_SIDE,
    maxSamplingGrid: e.MAX_SAMPLING_GRID,
    maxWork: e.MAX_WORK,
    taskTimeoutSeconds: e.TASK_TIMEOUT_SECONDS,
    queueLimit: e.QUEUE_LIMIT,
    maxBodyBytesInFlight: e.MAX_BODY_BYTES_IN_FLIGHT,
    maxResponseBytesInFlight: e.MAX_RESPONSE_BYTES_IN_FLIGHT,
    writeTimeoutSeconds: e.WRITE_TIMEOUT_SECONDS,
    workers,
    splitMinBoxes: e.SPLIT_MIN_BOXES,
    backboneThreads: e.BACKBONE_THREADS ?? threadsPerWorker(hostCores(), workers),
    workerMaxMemoryMb: e.WORKER_MAX_MEMORY_MB,
    tfBackend: e.TF_BACKEND,
    backboneEngine: e.BACKBONE_ENGINE,
    backboneDir: e.BACKBONE_DIR,
    backboneOutputNode: e.BACKBONE_OUTPUT_NODE,
    backboneStride: e.BACKBONE_STRIDE,
    backboneMean: e.BACKBONE_MEAN as [number, number, number] | undefined,
    backboneStd: e.BACKBONE_STD as [number, number, number] | undefined,
    backboneSizeDivisibility: e.BACKBONE_SIZE_DIVISIBILITY,
    backboneStrides: e.BACKBONE_STRIDES,
    shutdownGraceSeconds: e.SHUTDOWN_GRACE_SECONDS,
    requestTimeoutSeconds: e.REQUEST_TIMEOUT_SECONDS,
    keepAliveTimeoutSeconds: e.KEEP_ALIVE_TIMEOUT_SECONDS,
    docs: e.DOCS ?? true,
    ...overrides,
  };
}

/** Reads `process.env` (the only place that does). */
export function loadConfig(): Config {
  return parseConfig(process.env);
}
