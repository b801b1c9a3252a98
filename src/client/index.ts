/**
 * `roiserve/client`: a small typed `fetch` client for the `/v1` API.
 *
 * It imports nothing at run time (only types, erased by the compiler), so it loads in Node ≥ 20, Deno,
 * Bun and browsers without fastify, sharp, tfjs or zod. The request and response types are the zod
 * schemas' own input / output types, the same schemas that validate requests and generate
 * `/openapi.json`, so a field renamed on the server breaks the client's types at compile time;
 * `test/clients/typescript.test.ts` checks every call against the live `/openapi.json` too.
 *
 * @example
 * ```ts
 * import { RoiserveClient } from 'roiserve/client';
 * const rs = new RoiserveClient('http://127.0.0.1:8080', { apiKey: process.env.API_KEY });
 * const res = await rs.roi({ image: await readFile('photo.jpg'), boxes: [[96, 56, 224, 144]], ops: ['align'] });
 * const align = decodeTensor(res.outputs.align!); // Float32Array of [K, C, 7, 7]
 * ```
 */
import type { z } from 'zod';
import type { backboneDescriptionSchema } from '../../routes/v1/backbone.js';
import type { diffBodySchema, diffResponseSchema } from '../../routes/v1/schemas/diff.js';
import type { featuresBodySchema } from '../../routes/v1/features.js';
import type { Problem } from '../problem.js';
import type { featuresJsonSchema, roiBodySchema } from '../../routes/v1/schemas/request.js';
import type { featuresResponseSchema, roiResponseSchema } from '../../routes/v1/schemas/responses.js';
import type { TensorJson } from '../core/wire.js';

/** An encoded image: base64 text (as the JSON API takes it) or its bytes (encoded here). */
export type ImageInput = string | Uint8Array;

/** A feature map as `/v1/roi` and `/v1/diff` take it; `data` may also be the float32 values themselves. */
export type FeaturesInput = Omit<z.input<typeof featuresJsonSchema>, 'data'> & {
  data: string | Float32Array;
};

/** Replaces the wire form of `image` / `features` with the friendlier inputs above (a list: a pyramid). */
type WithInputs<T> = Omit<T, 'image' | 'features'> & {
  image?: ImageInput;
  features?: FeaturesInput | FeaturesInput[];
};

/** The body of `POST /v1/roi` (the zod schema's input type: defaults optional). */
export type RoiRequest = WithInputs<z.input<typeof roiBodySchema>>;
/** The JSON answer of `POST /v1/roi`. */
export type RoiResponse = z.output<typeof roiResponseSchema>;
/** The body of `POST /v1/diff`. */
export type DiffRequest = WithInputs<z.input<typeof diffBodySchema>>;
/** The JSON answer of `POST /v1/diff` (`format: "json"`). */
export type DiffResponse = z.output<typeof diffResponseSchema>;
/** The body of `POST /v1/features`. */
export type FeaturesRequest = Omit<z.input<typeof featuresBodySchema>, 'image'> & { image: ImageInput };
/** The JSON answer of `POST /v1/features`. */
export type FeaturesResponse = z.output<typeof featuresResponseSchema>;
/** The answer of `GET /v1/backbone`. */
export type BackboneDescription = z.output<typeof backboneDescriptionSchema>;
export type { Problem, TensorJson };

/** A binary answer (`.npy`, safetensors, PNG) with the warnings of its `X-Roiserve-Warnings` header. */
export interface BinaryAnswer {
  bytes: Uint8Array;
  contentType: string;
  warnings: { code: string; message: string; field?: string }[];
}

/** Options of {@link RoiserveClient}. */
export interface RoiserveClientOptions {
  /** Sent as `Authorization: Bearer <key>` (the server's `API_KEY`). */
  apiKey?: string;
  /** A `fetch` to use instead of the global one (tests, proxies, retries). */
  fetch?: typeof fetch;
}

/** The method, path and operationId of each call the client makes (checked against `/openapi.json`). */
export const CLIENT_OPERATIONS = [
  { method: 'post', path: '/v1/roi', operationId: 'roi' },
  { method: 'post', path: '/v1/diff', operationId: 'diff' },
  { method: 'post', path: '/v1/features', operationId: 'features' },
  { method: 'get', path: '/v1/backbone', operationId: 'backbone' },
] as const;

/** An error answer: the RFC 9457 problem+json fields (`status`, `type`, `title`, `detail`, `errors`). */
export class RoiserveError extends Error {
  readonly status: number;
  readonly type: string | undefined;
  readonly title: string | undefined;
  readonly detail: string | undefined;
  readonly errors: NonNullable<Problem['errors']>;
  readonly problem: Partial<Problem>;

  constructor(status: number, problem: Partial<Problem>) {
    super(`${status} ${problem.title ?? 'error'}${problem.detail ? `: ${problem.detail}` : ''}`);
    this.name = 'RoiserveError';
    this.status = status;
    this.type = problem.type;
    this.title = problem.title;
    this.detail = problem.detail;
    this.errors = problem.errors ?? [];
    this.problem = problem;
  }
}

/** Base64 of bytes, without Node's Buffer (the client runs in browsers too). */
function base64(bytes: Uint8Array): string {
  let s = '';
  // Chunks keep String.fromCharCode's argument list well under engines' limits.
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

/** Little-endian float32 bytes of an array (the wire format), whatever the host's byte order. */
function float32Bytes(a: Float32Array): Uint8Array {
  const out = new Uint8Array(a.length * 4);
  const view = new DataView(out.buffer);
  for (let i = 0; i < a.length; i++) view.setFloat32(i * 4, a[i], true);
  return out;
}

/**
 * The values of a JSON output tensor as a `Float32Array` (row-major, `t.shape`): base64 float32,
 * float16 or bfloat16 (widened exactly), or a plain number array (`encoding: "array"`).
 */
export function decodeTensor(t: TensorJson): Float32Array {
  if (Array.isArray(t.data)) return Float32Array.from(t.data);
  const bin = atob(t.data);
  const view = new DataView(Uint8Array.from(bin, (c) => c.charCodeAt(0)).buffer);
  const width = t.dtype === 'float32' ? 4 : 2;
  const out = new Float32Array(bin.length / width);
  for (let i = 0; i < out.length; i++) {
    if (t.dtype === 'float32') out[i] = view.getFloat32(i * 4, true);
    else if (t.dtype === 'bfloat16') {
      // bfloat16 is the upper half of a float32.
      const w = new DataView(new ArrayBuffer(4));
      w.setUint16(0, view.getUint16(i * 2, true), false);
      out[i] = w.getFloat32(0, false);
    } else out[i] = halfToFloat(view.getUint16(i * 2, true));
  }
  return out;
}

/** IEEE 754 binary16 → number (exact). */
function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

function wireInputs<T extends { image?: ImageInput; features?: FeaturesInput | FeaturesInput[] }>(
  body: T,
): Record<string, unknown> {
  const out: Record<string, unknown> = { ...body };
  if (body.image instanceof Uint8Array) out.image = base64(body.image);
  const wire = (f: FeaturesInput) =>
    f.data instanceof Float32Array ? { ...f, data: base64(float32Bytes(f.data)) } : f;
  if (body.features)
    out.features = Array.isArray(body.features) ? body.features.map(wire) : wire(body.features);
  return out;
}

/** A client of one roiserve server. Every method throws {@link RoiserveError} on an error answer. */
export class RoiserveClient {
  readonly url: string;
  private readonly apiKey: string | undefined;
  private readonly fetchFn: typeof fetch;

  /** @param url the server's base URL, e.g. `http://127.0.0.1:8080` */
  constructor(url: string | URL, options: RoiserveClientOptions = {}) {
    this.url = String(url).replace(/\/+$/, '');
    this.apiKey = options.apiKey;
    this.fetchFn = options.fetch ?? ((input, init) => fetch(input, init));
  }

  /** `POST /v1/roi`: JSON answer by default; `format: "npy"` / `"safetensors"` give the bytes. */
  roi(body: RoiRequest & { format?: 'json' }): Promise<RoiResponse>;
  roi(body: RoiRequest & { format: 'npy' | 'safetensors' }): Promise<BinaryAnswer>;
  async roi(body: RoiRequest): Promise<RoiResponse | BinaryAnswer> {
    return this.call(
      'POST',
      '/v1/roi',
      wireInputs(body),
      body.format === undefined || body.format === 'json',
    );
  }

  /** `POST /v1/diff`: the PNG sheet by default; `format: "json"` gives the data (and the PNGs, base64). */
  diff(body: DiffRequest & { format?: 'png' }): Promise<BinaryAnswer>;
  diff(body: DiffRequest & { format: 'json' }): Promise<DiffResponse>;
  async diff(body: DiffRequest): Promise<DiffResponse | BinaryAnswer> {
    return this.call('POST', '/v1/diff', wireInputs(body), body.format === 'json');
  }

  /** `POST /v1/features`: the backbone's feature map of an image (JSON, or `.npy` bytes). */
  features(body: FeaturesRequest & { format?: 'json' }): Promise<FeaturesResponse>;
  features(body: FeaturesRequest & { format: 'npy' }): Promise<BinaryAnswer>;
  async features(body: FeaturesRequest): Promise<FeaturesResponse | BinaryAnswer> {
    return this.call('POST', '/v1/features', wireInputs(body), body.format !== 'npy');
  }

  /** `GET /v1/backbone`: layers, shapes, stride, receptive field, backend. */
  async backbone(): Promise<BackboneDescription> {
    return this.call('GET', '/v1/backbone', undefined, true) as Promise<BackboneDescription>;
  }

  private async call(method: string, path: string, body: unknown, json: boolean): Promise<never> {
    const headers: Record<string, string> = { accept: json ? 'application/json' : '*/*' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (this.apiKey) headers.authorization = `Bearer ${this.apiKey}`;
    const res = await this.fetchFn(this.url + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (!res.ok) {
      const text = await res.text();
      let problem: Partial<Problem>;
      try {
        problem = JSON.parse(text) as Partial<Problem>;
      } catch {
        problem = { title: res.statusText, detail: text.slice(0, 500) };
      }
      throw new RoiserveError(res.status, problem);
    }
    if (json) return (await res.json()) as never;
    const header = res.headers.get('x-roiserve-warnings');
    return {
      bytes: new Uint8Array(await res.arrayBuffer()),
      contentType: res.headers.get('content-type') ?? '',
      warnings: header ? (JSON.parse(header) as BinaryAnswer['warnings']) : [],
    } satisfies BinaryAnswer as never;
  }
}
