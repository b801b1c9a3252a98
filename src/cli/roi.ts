/**
 * `roiserve roi`: RoI Pool / Align / Warp of an image or a `.npy` feature map, written to `.npy`,
 * `.safetensors` or `.json`; or a folder of images with a JSONL of boxes (batch, `./batch.ts`).
 *
 * In-process by default: the options become the core's typed input ({@link RoiInput}, defaults from
 * `ROI_DEFAULTS`), checked and turned into a task by the core's `prepareRoi`, and run and encoded by the
 * service's `WorkPool.roiEncoded` (same workers, backbone and encoders), so the file holds the bytes
 * `POST /v1/roi` would answer. `--url` sends the same fields as multipart to a running server instead,
 * which validates them with its own schema. No zod and no route schema here: the option parsers
 * (`./common.ts`) check what the types do not say (a positive integer size, …).
 */
import { extname } from 'node:path';
import type { WorkPool } from '../runtime/pool.js';
import { ROI_DEFAULTS, type RoiBoxFormat, type RoiInput, type RoiLimits } from '../core/task.js';
import { prepareRoi } from '../core/prepare.js';
import { COMPARED_OPS, type RoiOp } from '../ops/registry.js';
import type { AlignMode, Layout } from '../ops/types.js';
import type { OutputDtype } from '../tensors/float16.js';
import { checkRoiFormat } from '../core/encode.js';
import {
  CliError,
  postForm,
  printWarnings,
  printWarningsHeader,
  readInput,
  workForm,
  type RemoteOptions,
} from './common.js';

/** The output formats of `roi` (`/v1/roi`'s `format`). */
export type RoiFormat = 'json' | 'npy' | 'safetensors';

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
export function formatOf(output: string, explicit: string | undefined): RoiFormat {
  if (explicit !== undefined) return explicit as RoiFormat;
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
 * The rows of a boxes file: an array of arrays of numbers (what `RoiInput.boxes` types). Their lengths,
 * values and batch indices are the core's to check (`prepareRoi`), with the API's messages.
 *
 * @throws CliError (exit 2) naming `boxes` or the first bad `boxes[i]` / `boxes[i][j]`
 */
export function boxRows(value: unknown): number[][] {
  if (!Array.isArray(value)) {
    throw new CliError(
      `boxes: expected an array of box rows ([[x1, y1, x2, y2], ...]), got ${kindOf(value)}`,
    );
  }
  value.forEach((row: unknown, i) => {
    if (!Array.isArray(row)) {
      throw new CliError(`boxes[${i}]: expected a row of 4 to 6 numbers, got ${kindOf(row)}`);
    }
    row.forEach((x: unknown, j) => {
      if (typeof x !== 'number') throw new CliError(`boxes[${i}][${j}]: expected a number, got ${kindOf(x)}`);
    });
  });
  return value as number[][];
}

function kindOf(value: unknown): string {
  return value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value;
}

/**
 * One `roi` request built from the CLI's options: the core's input (all but the input file, which
 * {@link roiInputWith} adds) and what the encoder needs.
 */
export interface RoiRequest {
  input: Omit<RoiInput, 'image' | 'features'>;
  /** The feature map's memory order (with a `.npy` input). */
  layout: Layout | undefined;
  format: RoiFormat;
  dtype: OutputDtype;
}

/**
 * The {@link RoiRequest} of these options: `/v1/roi`'s defaults filled in, the format from `-o`, and
 * the checks the core does not do because they concern the CLI (a `--layout` with an image) or the
 * encoding (`checkRoiFormat`: one op in a `.npy`).
 *
 * @throws CliError, or the core's InvalidInputError naming the field
 */
export function roiRequest(opts: RoiCliOptions, boxes: unknown, features: boolean): RoiRequest {
  const format = formatOf(opts.output, opts.format);
  // `.npy` holds one tensor: without --op, RoI Align (the API's default, all three, has no .npy form).
  const ops = (opts.op ?? (format === 'npy' ? ['align'] : [...COMPARED_OPS])) as RoiOp[];
  if (!features && opts.layout !== undefined) {
    throw new CliError('--layout describes a .npy feature map; the input is an image');
  }
  const rows = boxRows(boxes);
  const dtype = (opts.dtype ?? 'float32') as OutputDtype;
  checkRoiFormat(
    { format, ops, dtype },
    'exactly one --op with .npy output (or .safetensors / .json for several)',
  );
  return {
    input: {
      boxes: rows,
      boxFormat: (opts.boxFormat as RoiBoxFormat | undefined) ?? ROI_DEFAULTS.boxFormat,
      clockwise: opts.clockwise ?? ROI_DEFAULTS.clockwise,
      pyramid: opts.pyramid ?? ROI_DEFAULTS.pyramid,
      normalized: opts.normalized ?? ROI_DEFAULTS.normalized,
      ops,
      outputSize: opts.outputSize ?? ROI_DEFAULTS.outputSize,
      samplingRatio: opts.samplingRatio ?? ROI_DEFAULTS.samplingRatio,
      aligned: opts.aligned ?? ROI_DEFAULTS.aligned,
      mode: (opts.mode as AlignMode | undefined) ?? ROI_DEFAULTS.mode,
      spatialScale: opts.spatialScale,
      maxSide: opts.maxSide,
      imageSize: typeof opts.imageSize === 'number' ? [opts.imageSize, opts.imageSize] : opts.imageSize,
    },
    layout: features ? ((opts.layout as Layout | undefined) ?? ROI_DEFAULTS.layout) : undefined,
    format,
    dtype,
  };
}

/** The core's input of `request` with the input file's bytes: an encoded image, or a `.npy` map. */
export function roiInputWith(request: RoiRequest, bytes: Uint8Array, features: boolean): RoiInput {
  return {
    ...request.input,
    image: features ? undefined : bytes,
    features: features
      ? { encoding: 'npy', bytes, layout: request.layout ?? ROI_DEFAULTS.layout }
      : undefined,
  };
}

/**
 * Runs one input in-process: the core's `prepareRoi`, then the pool's `roiEncoded`, exactly as
 * `POST /v1/roi` does. Returns the encoded body and prints the warnings.
 */
export async function runRoiLocal(
  pool: WorkPool,
  limits: RoiLimits,
  request: RoiRequest,
  bytes: Uint8Array,
  features: boolean,
  prefix = '',
): Promise<Buffer> {
  // A fresh, whole ArrayBuffer: the pool moves it to the worker instead of copying it.
  const task = prepareRoi(roiInputWith(request, new Uint8Array(bytes), features), limits);
  const out = await pool.roiEncoded(task, request.format, 'base64', {}, request.dtype);
  printWarnings(out.warnings, prefix);
  return out.body;
}

/**
 * The same request as multipart to a running server (`--url`): the `/v1/roi` fields of `request`
 * (the wire protocol; the server validates them with its schema), the input file as a file part.
 */
export async function runRoiRemote(
  remote: RemoteOptions,
  request: RoiRequest,
  bytes: Uint8Array,
  features: boolean,
  name: string,
  prefix = '',
): Promise<Buffer> {
  const fields = { ...request.input, layout: request.layout, format: request.format, dtype: request.dtype };
  const res = await postForm(remote, 'v1/roi', workForm(fields, bytes, features, name));
  printWarningsHeader(res.warnings, prefix);
  return res.body;
}
