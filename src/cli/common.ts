/**
 * What the CLI's commands share: the exit codes, the error that carries one, a config read the one
 * place that may (`loadConfig`), the pool the service uses, and the `--url` client half (multipart
 * `fetch`, problem+json turned into a message).
 */
import { readFile } from 'node:fs/promises';
import { InvalidArgumentError } from 'commander';
import { loadConfig, ConfigError, type Config } from '../config.js';
import { RoiServeError } from '../errors.js';
import { WorkPool } from '../runtime/pool.js';

/** Exit codes: 0 done; 1 a failure that is not the caller's (worker, network, server 5xx, a batch item); 2 bad usage or input. */
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** An error the CLI prints as one line (`roiserve: …`) and exits with `code`. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly code: number = EXIT_USAGE,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

/**
 * The service's own error in CLI words: `field: message (expected: …)`. A client error (4xx: the
 * input) exits 2, like a usage error; anything else 1.
 */
export function cliErrorOf(err: unknown): CliError {
  if (err instanceof CliError) return err;
  if (err instanceof RoiServeError) {
    const text = `${err.field}: ${err.message} (expected: ${err.expected})`;
    return new CliError(text, err.status >= 400 && err.status < 500 ? EXIT_USAGE : EXIT_FAILURE);
  }
  if (err instanceof ConfigError) return new CliError(err.message, EXIT_USAGE);
  return new CliError(err instanceof Error ? err.message : String(err), EXIT_FAILURE);
}

/** The environment's config (the same variables as the service: WORKERS, BACKBONE_DIR, limits, …). */
export function cliConfig(): Config {
  try {
    return loadConfig();
  } catch (err) {
    throw cliErrorOf(err);
  }
}

/**
 * Runs `fn` with the service's worker pool (same workers, backbone and encoders, so the bytes are the
 * service's), at most `jobs` workers: a single image needs one backbone loaded, not four.
 */
export async function withPool<T>(
  config: Config,
  jobs: number,
  fn: (pool: WorkPool) => Promise<T>,
): Promise<T> {
  const pool = new WorkPool({ ...config, workers: Math.max(1, Math.min(config.workers, jobs)) });
  try {
    return await fn(pool);
  } finally {
    await pool.close();
  }
}

/** Reads a file for the CLI, with the option that named it in the message when it cannot. */
export async function readInput(path: string, what: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new CliError(`${what}: cannot read ${path}${code ? ` (${code})` : ''}`, EXIT_USAGE);
  }
}

/** Options of the `--url` mode. */
export interface RemoteOptions {
  url: string;
  apiKey?: string;
}

/**
 * POSTs `form` to a running server, returning the body bytes and the warnings header.
 *
 * @throws CliError with the problem+json's detail and fields (exit 2 for 4xx, 1 otherwise)
 */
export async function postForm(
  remote: RemoteOptions,
  path: string,
  form: FormData,
): Promise<{ body: Buffer; warnings: string | null }> {
  const headers: Record<string, string> = {};
  if (remote.apiKey !== undefined) headers.authorization = `Bearer ${remote.apiKey}`;
  return request(remote, path, { method: 'POST', body: form, headers });
}

/** GETs `path` of a running server (see {@link postForm}). */
export async function getRemote(
  remote: RemoteOptions,
  path: string,
): Promise<{ body: Buffer; warnings: string | null }> {
  const headers: Record<string, string> = {};
  if (remote.apiKey !== undefined) headers.authorization = `Bearer ${remote.apiKey}`;
  return request(remote, path, { headers });
}

async function request(
  remote: RemoteOptions,
  path: string,
  init: RequestInit,
): Promise<{ body: Buffer; warnings: string | null }> {
  const url = new URL(path, remote.url.endsWith('/') ? remote.url : `${remote.url}/`);
  let res: Response;
  try {
    res = await fetch(url, init);
  } catch (err) {
    const cause = (err as { cause?: { message?: string } }).cause?.message;
    throw new CliError(`cannot reach ${url.origin}: ${cause ?? String(err)}`, EXIT_FAILURE);
  }
  const body = Buffer.from(await res.arrayBuffer());
  if (!res.ok) {
    let text = `${res.status} ${res.statusText}`;
    try {
      const problem = JSON.parse(body.toString('utf8')) as {
        detail?: string;
        errors?: Array<{ field: string; message: string; expected: string }>;
      };
      const fields = (problem.errors ?? []).map((e) => `${e.field}: ${e.message} (expected: ${e.expected})`);
      text = fields.length > 0 ? fields.join('\n') : (problem.detail ?? text);
    } catch {
      // not problem+json: the status line says enough
    }
    throw new CliError(text, res.status >= 400 && res.status < 500 ? EXIT_USAGE : EXIT_FAILURE);
  }
  const header = res.headers.get('x-roiserve-warnings');
  return { body, warnings: header };
}

/**
 * The multipart form of a work request for `--url`: the input file as its own part (`image`, or
 * `features` for a `.npy` map), each of `fields` (a `/v1` body's fields; a feature map's `layout`, which
 * a `.npy` part cannot carry, among them) as a text field: JSON unless a string. Undefined fields are
 * left out: the server fills in its defaults.
 */
export function workForm(
  fields: Record<string, unknown>,
  bytes: Uint8Array,
  features: boolean,
  name: string,
): FormData {
  const form = new FormData();
  form.append(features ? 'features' : 'image', new Blob([new Uint8Array(bytes)]), name);
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    form.append(key, typeof value === 'string' ? value : JSON.stringify(value));
  }
  return form;
}

/** The warnings header of a `--url` answer, printed like in-process warnings. */
export function printWarningsHeader(header: string | null, prefix = ''): void {
  if (header === null) return;
  try {
    printWarnings(JSON.parse(header) as Array<{ code: string; message: string }>, prefix);
  } catch {
    process.stderr.write(`roiserve: ${prefix}warning: ${header}\n`);
  }
}

/** Prints the service's warnings (one per line) on stderr, where they do not mix with the output. */
export function printWarnings(warnings: ReadonlyArray<{ code: string; message: string }>, prefix = ''): void {
  for (const w of warnings) process.stderr.write(`roiserve: ${prefix}warning: ${w.code}: ${w.message}\n`);
}

/**
 * `--url`: an http(s) URL of a running server. Checked when the options are read, so that `localhost:8080`
 * (no scheme: `new URL` reads `localhost:` as one) is a usage error naming the flag (exit 2), not
 * `Invalid URL` (exit 1) once the request is built.
 */
export function urlArg(value: string): string {
  let url: URL | undefined;
  try {
    url = new URL(value);
  } catch {
    url = undefined;
  }
  if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    throw new InvalidArgumentError(`--url: "${value}" is not an http(s) URL (e.g. http://localhost:8080)`);
  }
  return value;
}

/** A number option (`--output-size 7`); commander hands strings over. */
export function numberArg(name: string): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n))
      throw new InvalidArgumentError(`${name}: "${value}" is not a number`);
    return n;
  };
}

/**
 * An integer option; `min`/`max` bound it (`--max-side 0` is refused here, as the API refuses
 * `maxSide: 0`, before any work).
 */
export function intArg(name: string, min?: number, max?: number): (value: string) => number {
  const range =
    min === 1 && max === undefined
      ? 'a positive integer'
      : `an integer${min !== undefined ? ` >= ${min}` : ''}${max !== undefined ? ` <= ${max}` : ''}`;
  return (value) => {
    const n = numberArg(name)(value);
    if (!Number.isInteger(n) || (min !== undefined && n < min) || (max !== undefined && n > max)) {
      throw new InvalidArgumentError(`${name}: "${value}" is not ${range}`);
    }
    return n;
  };
}

/** A positive number option (`--spatial-scale 0.25`). */
export function positiveArg(name: string): (value: string) => number {
  return (value) => {
    const n = numberArg(name)(value);
    if (!(n > 0)) throw new InvalidArgumentError(`${name}: "${value}" is not a positive number`);
    return n;
  };
}

/**
 * `7` or `7,5` (PH,PW) → a number or a pair, each checked by `part` (default: a positive integer,
 * `--output-size`; `--image-size` takes positive numbers).
 */
export function sizeArg(
  name: string,
  part: (value: string) => number = intArg(name, 1),
): (value: string) => number | [number, number] {
  return (value) => {
    const parts = value.split(/[,x]/).map(part);
    if (parts.length === 1) return parts[0];
    if (parts.length === 2) return [parts[0], parts[1]];
    throw new InvalidArgumentError(`${name}: "${value}" is neither N nor A,B`);
  };
}
