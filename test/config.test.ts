import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  cpuQuota,
  coresOf,
  defaultWorkers,
  hostCores,
  memoryLimit,
  parseConfig,
  readWorkerLimits,
  threadsPerWorker,
  workersFor,
} from '../src/config.js';

describe('parseConfig', () => {
  it('has the documented defaults for an empty environment', () => {
    expect(parseConfig({})).toEqual({
      host: '0.0.0.0',
      port: 8080,
      apiKey: undefined,
      logLevel: 'info',
      bodyLimitBytes: 33_554_432,
      maxImagePixels: 40_000_000,
      maxImageSide: undefined,
      maxImageAspect: 32,
      maxBoxes: 10_000,
      maxOutputValues: 64_000_000,
      maxOutputSide: 64,
      maxSamplingGrid: 64,
      maxWork: 5e10,
      taskTimeoutSeconds: 60,
      queueLimit: 64,
      maxBodyBytesInFlight: 134_217_728,
      maxResponseBytesInFlight: 1_073_741_824,
      writeTimeoutSeconds: 30,
      // One per core (cgroup CPU quota included), bounded by memory (README).
      workers: workersFor(readWorkerLimits(1024)),
      splitMinBoxes: 256,
      workerMaxMemoryMb: 1024,
      tfBackend: 'auto',
      backboneEngine: 'auto',
      // cores / workers, at least 1: with one worker per core, 1.
      backboneThreads: threadsPerWorker(hostCores(), workersFor(readWorkerLimits(1024))),
      backboneDir: undefined,
      backboneOutputNode: undefined,
      backboneStride: undefined,
      backboneMean: undefined,
      backboneStd: undefined,
      backboneSizeDivisibility: undefined,
      backboneStrides: undefined,
      shutdownGraceSeconds: 10,
      requestTimeoutSeconds: 60,
      keepAliveTimeoutSeconds: 72,
      docs: true,
    });
    expect(defaultWorkers()).toBeGreaterThanOrEqual(1);
  });

  it('reads every variable, accepting exponent notation and treating empty as unset', () => {
    const config = parseConfig({
      HOST: '127.0.0.1',
      PORT: '9000',
      API_KEY: 'secret-key-1',
      LOG_LEVEL: 'warn',
      BODY_LIMIT_BYTES: '1e6',
      MAX_IMAGE_PIXELS: '25e6',
      MAX_IMAGE_SIDE: '2048',
      MAX_IMAGE_ASPECT: '8',
      MAX_BOXES: '500',
      MAX_OUTPUT_VALUES: '1000000',
      MAX_OUTPUT_SIDE: '32',
      MAX_SAMPLING_GRID: '16',
      MAX_WORK: '2e9',
      TASK_TIMEOUT_SECONDS: '30',
      QUEUE_LIMIT: '0',
      MAX_BODY_BYTES_IN_FLIGHT: '5e7',
      MAX_RESPONSE_BYTES_IN_FLIGHT: '1e8',
      WRITE_TIMEOUT_SECONDS: '2.5',
      WORKERS: '3',
      WORKER_MAX_MEMORY_MB: '0',
      TF_BACKEND: 'wasm',
      BACKBONE_ENGINE: 'onnx',
      BACKBONE_THREADS: '2',
      BACKBONE_DIR: '/models/x',
      BACKBONE_OUTPUT_NODE: 'conv5',
      BACKBONE_STRIDE: '32',
      SHUTDOWN_GRACE_SECONDS: '5',
      DOCS: 'false',
      UNRELATED: 'ignored',
    });
    expect(config).toMatchObject({
      host: '127.0.0.1',
      port: 9000,
      apiKey: 'secret-key-1',
      logLevel: 'warn',
      bodyLimitBytes: 1_000_000,
      maxImagePixels: 25_000_000,
      maxImageSide: 2048,
      maxImageAspect: 8,
      maxBoxes: 500,
      maxOutputValues: 1_000_000,
      maxOutputSide: 32,
      maxSamplingGrid: 16,
      maxWork: 2e9,
      taskTimeoutSeconds: 30,
      queueLimit: 0,
      maxBodyBytesInFlight: 50_000_000,
      maxResponseBytesInFlight: 100_000_000,
      writeTimeoutSeconds: 2.5,
      workers: 3,
      workerMaxMemoryMb: 0,
      tfBackend: 'wasm',
      backboneEngine: 'onnx',
      backboneThreads: 2,
      backboneDir: '/models/x',
      backboneOutputNode: 'conv5',
      backboneStride: 32,
      shutdownGraceSeconds: 5,
      docs: false,
    });
    expect(parseConfig({ API_KEY: '', MAX_IMAGE_SIDE: '' })).toMatchObject({
      apiKey: undefined,
      maxImageSide: undefined,
    });
  });

  it('refuses invalid values, listing every bad variable with its value', () => {
    let error: unknown;
    try {
      parseConfig({ PORT: '70000', MAX_BOXES: '1.5', TF_BACKEND: 'gpu', API_KEY: 'short' });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as Error).message;
    expect(message).toMatch(/^invalid environment:/);
    expect(message).toContain('PORT="70000"');
    expect(message).toContain('MAX_BOXES="1.5"');
    expect(message).toContain('TF_BACKEND="gpu"');
    expect(message).toContain('API_KEY=(hidden): API_KEY must be at least 8 characters');
    expect(message).not.toContain('short');
  });

  it('applies overrides last', () => {
    expect(parseConfig({ PORT: '1' }, { port: 2, workers: 1 })).toMatchObject({ port: 2, workers: 1 });
  });
});

describe('default WORKERS', () => {
  const GB = 2 ** 30;
  const host = { cores: 2, memoryBytes: 24 * GB, workerMaxMemoryMb: 1024 };

  it('is one per core, the HTTP thread getting none of its own', () => {
    // The old rule (cores − 1, at most 4) gave 1 here and 4 on 32 cores.
    expect(workersFor(host)).toBe(2);
    expect(workersFor({ ...host, cores: 32, memoryBytes: 256 * GB })).toBe(32);
    expect(workersFor({ ...host, cores: 1 })).toBe(1);
  });

  it('follows a cgroup v2 cpu.max quota, which os.availableParallelism() does not see', () => {
    const big = { ...host, cores: 32, memoryBytes: 256 * GB };
    expect(workersFor({ ...big, cpuMax: '200000 100000\n' })).toBe(2);
    expect(workersFor({ ...big, cpuMax: 'max 100000\n' })).toBe(32);
    expect(workersFor({ ...host, cpuMax: '800000 100000' })).toBe(2); // a quota never adds cores
    expect(cpuQuota('150000 100000')).toBe(2); // rounded up
    expect(cpuQuota('50000 100000')).toBe(1);
    expect(cpuQuota('max 100000')).toBeUndefined();
    expect(cpuQuota(undefined)).toBeUndefined();
    expect(cpuQuota('garbage')).toBeUndefined();
  });

  it('is bounded by memory: (memory − 512 MiB) / WORKER_MAX_MEMORY_MB, the cgroup limit if lower', () => {
    const eight = { ...host, cores: 8, memoryBytes: 64 * GB };
    expect(workersFor({ ...eight, memoryMax: `${3 * GB}\n` })).toBe(2); // (3072 − 512) / 1024
    expect(workersFor({ ...eight, memoryMax: 'max\n' })).toBe(8);
    expect(workersFor({ ...eight, memoryBytes: 3 * GB })).toBe(2); // no cgroup: physical memory
    expect(workersFor({ ...eight, memoryMax: `${3 * GB}`, workerMaxMemoryMb: 512 })).toBe(5);
    // WORKER_MAX_MEMORY_MB=0 (never recycled) still assumes 1024 MiB per worker.
    expect(workersFor({ ...eight, memoryMax: `${3 * GB}`, workerMaxMemoryMb: 0 })).toBe(2);
    expect(memoryLimit('max')).toBeUndefined();
    expect(memoryLimit('1073741824\n')).toBe(GB);
  });

  it('is at least 1 with tiny memory and at most 64, what WORKERS accepts', () => {
    expect(workersFor({ ...host, memoryBytes: 256 * 2 ** 20 })).toBe(1);
    expect(workersFor({ ...host, memoryMax: `${600 * 2 ** 20}` })).toBe(1);
    expect(workersFor({ ...host, cores: 256, memoryBytes: 2048 * GB })).toBe(64);
  });

  it('uses WORKER_MAX_MEMORY_MB from the environment, and WORKERS overrides it all', () => {
    expect(parseConfig({ WORKER_MAX_MEMORY_MB: '4096' }).workers).toBe(workersFor(readWorkerLimits(4096)));
    expect(parseConfig({ WORKERS: '7' }).workers).toBe(7);
    expect(parseConfig({ WORKERS: '1', WORKER_MAX_MEMORY_MB: '1' }).workers).toBe(1);
  });
});

describe('threadsPerWorker: ONNX Runtime threads per worker session', () => {
  it('splits the cores between the workers, never oversubscribing and never below 1', () => {
    expect(threadsPerWorker(2, 2)).toBe(1);
    expect(threadsPerWorker(8, 2)).toBe(4);
    expect(threadsPerWorker(8, 3)).toBe(2);
    expect(threadsPerWorker(2, 4)).toBe(1);
    expect(threadsPerWorker(1, 1)).toBe(1);
  });

  it('counts the cores of a cgroup CPU quota, as the worker default does', () => {
    expect(coresOf({ cores: 16, cpuMax: '200000 100000' })).toBe(2);
    expect(coresOf({ cores: 4, cpuMax: 'max 100000' })).toBe(4);
  });

  it('takes BACKBONE_THREADS over the default, and refuses 0', () => {
    expect(parseConfig({ WORKERS: '1', BACKBONE_THREADS: '3' }).backboneThreads).toBe(3);
    expect(() => parseConfig({ BACKBONE_THREADS: '0' })).toThrow(/BACKBONE_THREADS/);
    expect(() => parseConfig({ BACKBONE_ENGINE: 'tensorrt' })).toThrow(/BACKBONE_ENGINE/);
  });
});

describe('ONNX user backbone variables', () => {
  it('reads BACKBONE_MEAN / BACKBONE_STD (three numbers), BACKBONE_SIZE_DIVISIBILITY and BACKBONE_STRIDES', () => {
    expect(
      parseConfig({
        BACKBONE_MEAN: '0.485,0.456, 0.406',
        BACKBONE_STD: '0.229 0.224 0.225',
        BACKBONE_SIZE_DIVISIBILITY: '32',
        BACKBONE_STRIDES: '4,8,16,32',
      }),
    ).toMatchObject({
      backboneMean: [0.485, 0.456, 0.406],
      backboneStd: [0.229, 0.224, 0.225],
      backboneSizeDivisibility: 32,
      backboneStrides: [4, 8, 16, 32],
    });
  });

  it('refuses two numbers, a zero std, and a stride that is not a power of two, naming the variable', () => {
    expect(() => parseConfig({ BACKBONE_MEAN: '0.5,0.5' })).toThrow(
      /BACKBONE_MEAN="0.5,0.5": expected 3 finite numbers/,
    );
    expect(() => parseConfig({ BACKBONE_STD: '1,0,1' })).toThrow(
      /BACKBONE_STD="1,0,1": expected 3 positive numbers/,
    );
    expect(() => parseConfig({ BACKBONE_STRIDES: '4,6' })).toThrow(
      /BACKBONE_STRIDES="4,6": expected powers of two/,
    );
  });
});
