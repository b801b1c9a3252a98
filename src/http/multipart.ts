/**
 * Multipart bodies of `/v1/roi` and `/v1/diff`: a `preValidation` hook turning a `multipart/form-data`
 * body into the JSON shape, so one zod schema validates both content types; file parts stay bytes
 * ({@link binaryPartsOf}) for the worker to parse.
 */
import fastifyMultipart from '@fastify/multipart';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Config } from '../config.js';
import { MAX_IMAGES, MAX_LEVELS } from '../core/task.js';
import { bodyTooLarge, guardBody, lingerThenClose } from '../body-guard.js';
import { InvalidInputError, RoiServeError, TooLargeError } from '../errors.js';

/**
 * `preValidation` hook turning a `multipart/form-data` body into the JSON shape, so one zod schema
 * validates both. The `image` and `features` (`.npy`) file parts are kept as bytes
 * ({@link binaryPartsOf}) and the body gets stand-ins in their place (the `layout` field goes into
 * `features`); the worker parses them, never the HTTP thread. Any other field is parsed as JSON text
 * when it parses (`[[0,0,10,10]]`, `0.25`, `false`) and kept as a string otherwise (`npy`, `xywh`).
 * Repeated fields are refused, but repeated `features` file parts, a pyramid's levels in order. The whole body is bounded by `BODY_LIMIT_BYTES`. Does nothing for
 * other content types.
 *
 * @throws InvalidInputError for a repeated field; TooLargeError over the body limit or the part counts
 */
export async function multipartToJsonBody(request: FastifyRequest, reply: FastifyReply): Promise<void> {
  if (!request.isMultipart()) return;
  try {
    request.body = await readMultipart(request, request.server.config.bodyLimitBytes);
  } catch (err) {
    if (err instanceof RoiServeError && err.status === 413) {
      // The rest of the body is left unread (over BODY_LIMIT_BYTES, or past the part counts, whatever
      // field the error names): once the 413 is out, the connection is closed (after a short linger,
      // so that the client reads the 413 before the close resets the connection).
      lingerThenClose(request.raw, reply.raw);
    }
    if (err instanceof RoiServeError) throw err;
    const status = (err as { statusCode?: unknown }).statusCode;
    if (typeof status === 'number' && status >= 400 && status < 500) throw err; // e.g. 413 file too large
    // busboy's parse errors ("Unexpected end of form", …) are the client's: a 400, not a 500.
    throw new InvalidInputError(
      `malformed multipart body: ${err instanceof Error ? err.message : String(err)}`,
      'body',
      'a well-formed multipart/form-data body',
    );
  }
}

/**
 * Multipart file parts kept as bytes: `image` (an encoded image) and `features` (a `.npy` file; several
 * `features` parts, in order, are the levels of a pyramid).
 */
export interface BinaryParts {
  image?: Uint8Array;
  features?: Uint8Array | Uint8Array[];
  /** Repeated `images` file parts, in order. */
  images?: Uint8Array[];
}

const binaryParts = new WeakMap<FastifyRequest, BinaryParts>();

/** What the validated body holds in place of a multipart `image` file part (its bytes: {@link binaryPartsOf}). */
const FILE_PART = '(multipart file part)';

/**
 * The file parts of a multipart request, as bytes (empty for JSON): pass them to {@link prepareRoi},
 * which prefers them to the body's stand-ins.
 */
export function binaryPartsOf(request: FastifyRequest): BinaryParts {
  return binaryParts.get(request) ?? {};
}

/**
 * Reads every part, the whole body bounded by `limit` bytes (each part is also bounded by the
 * plugin's per-part limits). Over the limit, reading stops and a 413 (field `body`) is thrown.
 */
async function readMultipart(request: FastifyRequest, limit: number): Promise<Record<string, unknown>> {
  const declared = Number(request.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) throw bodyTooLarge(limit);
  const body: Record<string, unknown> = {};
  const files: BinaryParts = {};
  binaryParts.set(request, files);
  const parts = request.parts()[Symbol.asyncIterator]();
  // The first next() starts busboy (pipes the request into it); only then may the guard listen.
  const first = parts.next();
  const guard = guardBody(request.raw, limit);
  // The name of the last file part read: a file-count limit hit next is about that field.
  let lastFile = 'body';
  /** The `features` file parts, in order. */
  const featureParts: Uint8Array[] = [];
  try {
    for (let step = await guard.race(first); !step.done; step = await guard.race(parts.next())) {
      const part = step.value;
      const name = part.fieldname;
      // Repeated `features` file parts are a pyramid's levels, finest first; any other repeat is refused.
      const nextLevel = name === 'features' && part.type === 'file' && files.features !== undefined;
      // Repeated `images` file parts are the images in order; a file part after an `images` text field
      // is refused like any repeat (its bytes would replace the text's images, shifting every index).
      const nextImage = name === 'images' && part.type === 'file' && files.images !== undefined;
      if (Object.hasOwn(body, name) && !nextLevel && !nextImage) {
        throw new InvalidInputError(`field ${name} is given twice`, name, 'each field at most once');
      }
      if (part.type === 'file') {
        lastFile = name;
        const bytes = await guard.race(part.toBuffer());
        // Binary parts stay bytes (no base64 round trip); the worker parses and checks them. The body
        // gets a stand-in the schema accepts, so that presence and `layout` are validated as in JSON.
        if (name === 'features') {
          // One part a map, several a pyramid's levels (one map is not a list: set after the loop).
          // The layout comes from the `layout` field, which may follow this part: merged below.
          featureParts.push(bytes);
          files.features = featureParts;
          ((body.features as unknown[] | undefined) ?? (body.features = [])).push({
            shape: [1, 1, 1, 1],
            data: '',
          });
        } else if (name === 'images') {
          // Each part one image, in order; the body holds as many stand-ins.
          (files.images ??= []).push(bytes);
          ((body.images as unknown[] | undefined) ?? (body.images = [])).push(
            bytes.length === 0 ? '' : FILE_PART,
          );
        } else if (name === 'image') {
          files.image = bytes;
          // An empty file is refused by the schema like an empty string (`image`: at least 1 character).
          body.image = bytes.length === 0 ? '' : FILE_PART;
        } else {
          // A text field sent as a file part (curl -F name=@file.json): treat its contents as the value.
          body[name] = parseFieldText(bytes.toString('utf8'));
        }
      } else {
        // `image` as a text field is base64 already; parsing it as JSON could turn "1234" into a number.
        body[name] = name === 'image' ? String(part.value) : parseFieldText(String(part.value));
      }
    }
  } catch (err) {
    throw namedPartLimit(err, lastFile);
  } finally {
    guard.dispose();
  }
  if (featureParts.length === 1) {
    files.features = featureParts[0];
    body.features = (body.features as unknown[])[0];
  }
  if (Object.hasOwn(body, 'layout')) moveLayoutIntoFeatures(body);
  return body;
}

/** The part counts `registerMultipart` allows (busboy's limits): as many file parts as images or levels. */
const PART_LIMITS = { files: Math.max(MAX_IMAGES, MAX_LEVELS), fields: 24, parts: 32 } as const;

/**
 * `@fastify/multipart`'s count limits ("reach files limit", no field) as a 413 that names the field
 * and the limit: a 9th `images` part is refused naming `images`. Other errors pass unchanged.
 */
function namedPartLimit(err: unknown, lastFile: string): unknown {
  const code = (err as { code?: unknown } | null)?.code;
  if (code === 'FST_FILES_LIMIT') {
    return new TooLargeError(
      `more than ${PART_LIMITS.files} file parts (the last one read: ${lastFile})`,
      lastFile,
      `at most ${PART_LIMITS.files} file parts: images, or a pyramid's features levels`,
    );
  }
  if (code === 'FST_FIELDS_LIMIT' || code === 'FST_PARTS_LIMIT') {
    const what = code === 'FST_FIELDS_LIMIT' ? 'fields' : 'parts';
    return new TooLargeError(
      `more than ${PART_LIMITS[what]} multipart ${what}`,
      'body',
      `at most ${PART_LIMITS[what]} ${what}, each field once`,
    );
  }
  return err;
}

/**
 * Multipart's top-level `layout` field (the `.npy` part cannot carry it) becomes `features.layout`,
 * where the JSON shape has it: `-F features=@map.npy -F layout=NHWC`.
 *
 * @throws InvalidInputError without `features`, or when `features` (as JSON text) has its own layout
 */
function moveLayoutIntoFeatures(body: Record<string, unknown>): void {
  const features = body.features;
  if (!Array.isArray(features) && (typeof features !== 'object' || features === null)) {
    throw new InvalidInputError(
      'layout describes the features part; there is no features part',
      'layout',
      'layout only together with a features .npy part',
    );
  }
  // One map, or a pyramid's levels (its `.npy` parts): one layout for all of them. Entries that are
  // not maps are left for the schema to refuse.
  const maps = (Array.isArray(features) ? features : [features]).filter(
    (level): level is Record<string, unknown> => typeof level === 'object' && level !== null,
  );
  if (maps.some((map) => Object.hasOwn(map, 'layout'))) {
    throw new InvalidInputError(
      'layout is given twice: as a field and inside features',
      'layout',
      "layout once: the field with .npy parts, or each features entry's layout in JSON text",
    );
  }
  for (const map of maps) map.layout = body.layout;
  delete body.layout;
}

function parseFieldText(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/**
 * Registers `@fastify/multipart` with the service's limits: parts bounded by `BODY_LIMIT_BYTES`, an
 * image or up to 8 `features` parts (a pyramid's levels, `routes/v1/schemas/request.ts`).
 */
export async function registerMultipart(app: FastifyInstance, config: Config): Promise<void> {
  await app.register(fastifyMultipart, {
    limits: { fileSize: config.bodyLimitBytes, fieldSize: config.bodyLimitBytes, ...PART_LIMITS },
  });
}
