/**
 * `roiserve roi`: RoI Pool / Align / Warp of an image or a `.npy` feature map, written to `.npy`,
 * `.safetensors` or `.json`; or a folder of images with a JSONL of boxes (batch, `./batch.ts`).
 *
 * In-process by default: the body is validated with the route's own schema (`roiBodySchema`), turned
 * into a task by the route's `prepareRoi`, and run and encoded by the service's `WorkPool.roiEncoded`
 * (same workers, backbone and encoders), so the file holds the bytes `POST /v1/roi` would answer.
 * `--url` sends the same fields as multipart to a running server instead.
 */
import { extname } from 'node:path';
import type { WorkPool } from '../runtime/pool.js';
import type { RoiLimits } from '../core/task.js';
import { prepareRoi } from '../core/prepare.js';
import { roiBodySchema, roiInputOf, type RoiBody } from '../../routes/v1/schemas/request.js';
import { COMPARED_OPS } from '../ops/registry.js';
import { checkRoiFormat } from '../core/encode.js';
import {
  CliError,
  parseBody,
  postForm,
  printWarnings,
  printWarningsHeader,
  readInput,
  workForm,
  type RemoteOptions,
} from './common.js';

/** The CLI's options of `roi` (commander's camelCase of the kebab-case flags = the API's field names). */
export interface RoiCliOptions {
  boxes: string;
  output: string;
  op?: string[];
  outputSize?: number | [number, number];
  samplingRatio?: number;
  aligned?: boolean;
  mode?: string;
  spatialScale?: number;
  boxFormat?: string;
  clockwise?: boolean;
  pyramid?: boolean;
  normalized?: boolean;
  maxSide?: number;
  imageSize?: number | [number, number];
  layout?: string;
  format?: string;
  dtype?: string;
  url?: string;
  apiKey?: string;
}

/** `.npy` → npy, `.safetensors` → safetensors, `.json` → json; `--format` wins. */
export function formatOf(output: string, explicit: string | undefined): RoiBody['format'] {
  if (explicit !== undefined) return explicit as RoiBody['format'];
  const ext = extname(output).toLowerCase();
  if (ext === '.npy') return 'npy';
  if (ext === '.safetensors') return 'safetensors';
  if (ext === '.json') return 'json';
  throw new CliError(
    `-o ${output}: cannot tell the format from the extension: use .npy, .safetensors or .json, or --format`,
  );
}

/**
 * Reads a boxes file: a JSON array of rows (`[[x1, y1, x2, y2], …]`), or an object with `boxes`
 * (a `/v1/roi` body's field).
 *
 * @throws CliError (exit 2) when the file is unreadable or not JSON
 */
export async function readBoxesFile(path: string): Promise<unknown> {
  const text = (await readInput(path, '--boxes')).toString('utf8');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new CliError(`--boxes ${path}: not JSON (${(err as Error).message})`);
  }
  if (value !== null && typeof value === 'object' && !Array.isArray(value) && 'boxes' in value) {
    return (value as { boxes: unknown }).boxes;
  }
  return value;
}

/** The input kind from the file name: a `.npy` file is a feature map, anything else an image. */
export function isFeatureFile(path: string): boolean {
  return extname(path).toLowerCase() === '.npy';
}

/**
 * The JSON-shape body of `/v1/roi` for these options, validated by the route's schema. The input's
 * bytes travel beside it (as multipart file parts do); the body holds a stand-in.
 */
export function roiBody(opts: RoiCliOptions, boxes: unknown, features: boolean): RoiBody {
  const format = formatOf(opts.output, opts.format);
  // `.npy` holds one tensor: without --op, RoI Align (the API's default, all three, has no .npy form).
  const ops = opts.op ?? (format === 'npy' ? ['align'] : [...COMPARED_OPS]);
  const body: Record<string, unknown> = {
    boxes,
    ops,
    outputSize: opts.outputSize,
    samplingRatio: opts.samplingRatio,
    aligned: opts.aligned,
    mode: opts.mode,
    spatialScale: opts.spatialScale,
    boxFormat: opts.boxFormat,
    clockwise: opts.clockwise,
    pyramid: opts.pyramid,
    normalized: opts.normalized,
    maxSide: opts.maxSide,
    imageSize: typeof opts.imageSize === 'number' ? [opts.imageSize, opts.imageSize] : opts.imageSize,
    format,
    dtype: opts.dtype,
  };
  if (features) body.features = { shape: [1, 1, 1, 1], data: '', layout: opts.layout };
  else {
    if (opts.layout !== undefined) {
      throw new CliError('--layout describes a .npy feature map; the input is an image');
    }
    body.image = '(file)';
  }
  for (const key of Object.keys(body)) if (body[key] === undefined) delete body[key];
  const parsed = parseBody(roiBodySchema, body);
  checkRoiFormat(parsed, 'exactly one --op with .npy output (or .safetensors / .json for several)');
  return parsed;
}

/**
 * Runs one input in-process: the route's `prepareRoi`, then the pool's `roiEncoded`, exactly as
 * `POST /v1/roi` does. Returns the encoded body and prints the warnings.
 */
export async function runRoiLocal(
  pool: WorkPool,
  limits: RoiLimits,
  body: RoiBody,
  bytes: Uint8Array,
  features: boolean,
  prefix = '',
): Promise<Buffer> {
  // A fresh, whole ArrayBuffer: the pool moves it to the worker instead of copying it.
  const owned = new Uint8Array(bytes);
  const task = prepareRoi(roiInputOf(body, features ? { features: owned } : { image: owned }), limits);
  const out = await pool.roiEncoded(task, body.format, body.encoding, {}, body.dtype);
  printWarnings(out.warnings, prefix);
  return out.body;
}

/** The same request as multipart to a running server (`--url`). */
export async function runRoiRemote(
  remote: RemoteOptions,
  body: RoiBody,
  bytes: Uint8Array,
  features: boolean,
  name: string,
  prefix = '',
): Promise<Buffer> {
  const res = await postForm(remote, 'v1/roi', workForm(body, bytes, features, name));
  printWarningsHeader(res.warnings, prefix);
  return res.body;
}
