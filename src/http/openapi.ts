/**
 * The OpenAPI 3 document (`GET /openapi.json`) and the interactive docs (`GET /docs`, swagger-ui).
 *
 * The routes' zod schemas become JSON schemas through fastify-type-provider-zod (`jsonSchemaTransform`);
 * schemas registered with `.meta({ id })` become named components (`jsonSchemaTransformObject`). Then
 * {@link finishDocument} makes the document one that clients can be generated from and that "Try it
 * out" works with as it stands:
 * - multipart bodies are described as they are sent: `image` / `features` as binary file parts (so
 *   `/docs` shows a file picker), array and object fields as JSON text, plain values plain;
 * - each operation's `x-example` (set in its route's schema) becomes the JSON body's `example`, a body
 *   that the service answers with 2xx (swagger-ui would otherwise make one up from the schema, with
 *   both `image` and `features`, which is a 400);
 * - components nobody refers to are dropped, and a request component keeps its plain name
 *   (`RoiRequest`, not the library's `RoiRequestInput`) when no output schema has that name;
 * - an operation without an `operationId` gets one from its method and path;
 * - zod's ±`MAX_SAFE_INTEGER` bounds of every integer are left out.
 */
import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import { jsonSchemaTransform, jsonSchemaTransformObject } from 'fastify-type-provider-zod';
import { problemSchema } from '../problem.js';

declare module 'fastify' {
  interface FastifySchema {
    /**
     * A JSON request body that works as it stands: the body example of the operation in the OpenAPI
     * document, which `/docs` sends on "Try it out" (and `test/openapi.test.ts` sends too).
     */
    'x-example'?: unknown;
  }
}

/** Problem details as the service sends them: `application/problem+json` (RFC 9457). */
export const PROBLEM_MEDIA_TYPE = 'application/problem+json';

/**
 * An error response for a route's `schema.response`: an RFC 9457 problem, documented under its
 * real media type (`application/problem+json`, not `application/json`) with the shared `Problem` schema.
 */
export function problemResponse(description: string) {
  return { description, content: { [PROBLEM_MEDIA_TYPE]: { schema: problemSchema } } };
}

/** Multipart parts that are files, and what each holds. */
const FILE_PARTS: Record<string, string> = {
  image: 'the image file (JPEG, PNG, WebP, AVIF, GIF, TIFF)',
  features:
    'a feature map as a float32 4-D `.npy` file: `[N, C, H, W]`, or `[N, H, W, C]` with `layout=NHWC` ' +
    '(instead of `image`; needs `spatialScale`)',
};

type Json = Record<string, unknown>;
const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];
const SCHEMAS = '#/components/schemas/';

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Every `$ref` string under `value`. */
function refsIn(value: unknown, out: Set<string> = new Set()): Set<string> {
  if (Array.isArray(value)) for (const v of value) refsIn(v, out);
  else if (isObject(value)) {
    for (const [key, v] of Object.entries(value)) {
      if (key === '$ref' && typeof v === 'string') out.add(v);
      else refsIn(v, out);
    }
  }
  return out;
}

/** `value` with every `$ref` renamed by `rename` (old component name → new). */
function renameRefs(value: unknown, rename: Map<string, string>): unknown {
  if (Array.isArray(value)) return value.map((v) => renameRefs(v, rename));
  if (!isObject(value)) return value;
  const out: Json = {};
  for (const [key, v] of Object.entries(value)) {
    if (key === '$ref' && typeof v === 'string' && v.startsWith(SCHEMAS)) {
      out[key] = SCHEMAS + (rename.get(v.slice(SCHEMAS.length)) ?? v.slice(SCHEMAS.length));
    } else out[key] = renameRefs(v, rename);
  }
  return out;
}

/** Follows a `$ref` to a component schema (one level; component schemas are never bare refs). */
function deref(schema: unknown, components: Json): Json | undefined {
  if (!isObject(schema)) return undefined;
  const ref = schema.$ref;
  if (typeof ref === 'string' && ref.startsWith(SCHEMAS)) {
    const target = components[ref.slice(SCHEMAS.length)];
    return isObject(target) ? target : undefined;
  }
  return schema;
}

/** Whether a (dereferenced) property schema holds an array or object, i.e. is JSON text in multipart. */
function isStructured(schema: Json, components: Json): boolean {
  if (schema.type === 'array' || schema.type === 'object') return true;
  if (typeof schema.$ref === 'string') return true; // components are objects here
  const branches = [schema.anyOf, schema.oneOf, schema.allOf].flatMap((b) => (Array.isArray(b) ? b : []));
  return branches.some((b) => {
    const resolved = deref(b, components);
    return resolved !== undefined && isStructured(resolved, components);
  });
}

/**
 * The `multipart/form-data` schema for a JSON body schema: file parts binary, structured fields as
 * JSON text (a string, documented as such), scalars as they are (busboy hands every field over as
 * text; `src/http/multipart.ts` parses `0.25`, `false`, `[[0,0,10,10]]` back).
 *
 * Defaults move into the descriptions: swagger-ui sends every field that has a default (`layout=NCHW`
 * without a `features` part is a 400), while a field left out gets the same default from the server.
 * Structured fields that the operation's JSON example sets get that value as JSON text for their
 * example, so the form starts with boxes that work rather than the placeholder `string`.
 */
export function multipartSchema(jsonBody: Json, components: Json, example: unknown = undefined): Json {
  const properties: Json = {};
  const jsonProperties = isObject(jsonBody.properties) ? jsonBody.properties : {};
  const examples = isObject(example) ? example : {};
  for (const [name, raw] of Object.entries(jsonProperties)) {
    const { default: fallback, ...property } = isObject(raw) ? raw : {};
    const described = [
      typeof property.description === 'string' ? property.description : '',
      fallback === undefined ? '' : `(default: \`${JSON.stringify(fallback)}\`)`,
    ]
      .filter(Boolean)
      .join(' ');
    if (name in FILE_PARTS) {
      properties[name] = { type: 'string', format: 'binary', description: FILE_PARTS[name] };
    } else if (isStructured(property, components)) {
      properties[name] = {
        type: 'string',
        description: `JSON text: ${described}`,
        ...(examples[name] !== undefined ? { example: JSON.stringify(examples[name]) } : {}),
      };
    } else {
      properties[name] = { ...property, ...(described ? { description: described } : {}) };
    }
  }
  if ('features' in jsonProperties) {
    // A .npy part cannot carry its layout: multipart has it as a field of its own.
    properties.layout = {
      type: 'string',
      enum: ['NCHW', 'NHWC'],
      description:
        'memory order of the `features` .npy part: NCHW (PyTorch, ONNX) or NHWC (TensorFlow); only with ' +
        '`features` (default: `"NCHW"`)',
    };
  }
  const out: Json = { type: 'object', properties };
  if (Array.isArray(jsonBody.required)) out.required = jsonBody.required;
  if (typeof jsonBody.description === 'string') out.description = jsonBody.description;
  return out;
}

/**
 * The form's example: only the fields whose schema has one (`boxes`). Without it swagger-ui fills
 * every field with a made-up sample (`imageSize=string`, `samplingRatio=9007199254740991`), a 400.
 */
function formExample(schema: Json): { example?: Json } {
  const example: Json = {};
  for (const [name, property] of Object.entries(isObject(schema.properties) ? schema.properties : {})) {
    if (isObject(property) && property.example !== undefined) example[name] = property.example;
  }
  return Object.keys(example).length > 0 ? { example } : {};
}

/**
 * Removes the bounds zod writes for every `.int()` (±`Number.MAX_SAFE_INTEGER`): they say nothing to a
 * reader, and swagger-ui takes them as sample values (`samplingRatio=9007199254740991`).
 */
function dropSafeIntegerBounds(value: unknown): void {
  if (Array.isArray(value)) for (const v of value) dropSafeIntegerBounds(v);
  else if (isObject(value)) {
    if (value.minimum === Number.MIN_SAFE_INTEGER) delete value.minimum;
    if (value.maximum === Number.MAX_SAFE_INTEGER) delete value.maximum;
    for (const v of Object.values(value)) dropSafeIntegerBounds(v);
  }
}

/** `post /v1/roi` → `postV1Roi`. */
function fallbackOperationId(method: string, path: string): string {
  const words = path.split(/[^A-Za-z0-9]+/).filter(Boolean);
  return method + words.map((w) => w[0].toUpperCase() + w.slice(1)).join('');
}

/** Component schemas reachable from the paths, following refs between components. */
function reachableComponents(doc: Json, components: Json): Set<string> {
  const seen = new Set<string>();
  const queue = [...refsIn(doc.paths)];
  while (queue.length > 0) {
    const ref = queue.pop() as string;
    if (!ref.startsWith(SCHEMAS)) continue;
    const name = ref.slice(SCHEMAS.length);
    if (seen.has(name)) continue;
    seen.add(name);
    queue.push(...refsIn(components[name]));
  }
  return seen;
}

/**
 * Finishes the document built by @fastify/swagger and fastify-type-provider-zod (see the module
 * comment). Pure: returns a new document.
 */
export function finishDocument(input: Json): Json {
  const doc = structuredClone(input);
  const componentsObject = isObject(doc.components) ? doc.components : {};
  doc.components = componentsObject;
  const components: Json = isObject(componentsObject.schemas) ? componentsObject.schemas : {};
  componentsObject.schemas = components;
  const paths = isObject(doc.paths) ? doc.paths : {};

  for (const [path, item] of Object.entries(paths)) {
    if (!isObject(item)) continue;
    for (const method of HTTP_METHODS) {
      const op = item[method];
      if (!isObject(op)) continue;
      if (typeof op.operationId !== 'string') op.operationId = fallbackOperationId(method, path);

      const content =
        isObject(op.requestBody) && isObject(op.requestBody.content) ? op.requestBody.content : {};
      const json = content['application/json'];
      const example = op['x-example'];
      if (example !== undefined) {
        if (isObject(json)) json.example = example;
        delete op['x-example'];
      }
      // Response headers a route declares (`'x-response-headers': { 200: { Name: { schema, description } } }`):
      // fastify-type-provider-zod keeps only `description` and `content` of a response.
      const responseHeaders = op['x-response-headers'];
      if (isObject(responseHeaders)) {
        const responses = isObject(op.responses) ? op.responses : {};
        for (const [status, headers] of Object.entries(responseHeaders)) {
          const response = responses[status];
          if (isObject(response) && isObject(headers)) {
            response.headers = { ...(isObject(response.headers) ? response.headers : {}), ...headers };
          }
        }
        delete op['x-response-headers'];
      }
      const multipart = content['multipart/form-data'];
      if (isObject(json) && isObject(multipart)) {
        const jsonBody = deref(json.schema, components);
        if (jsonBody) {
          const ref = isObject(json.schema) ? json.schema.$ref : undefined;
          const schema = multipartSchema(jsonBody, components, example);
          if (typeof ref === 'string') {
            // A named component of its own, so generated clients get a type for the form too.
            const name = `${ref.slice(SCHEMAS.length).replace(/Input$/, '')}Multipart`;
            components[name] = schema;
            content['multipart/form-data'] = { schema: { $ref: SCHEMAS + name }, ...formExample(schema) };
          } else content['multipart/form-data'] = { schema, ...formExample(schema) };
        }
      }
    }
  }

  dropSafeIntegerBounds(doc);

  // fastify-type-provider-zod emits every registered schema twice (`X` as output, `XInput` as input):
  // keep what the document uses, and give request schemas their plain names where free.
  const used = reachableComponents(doc, components);
  const rename = new Map<string, string>();
  for (const name of used) {
    const plain = name.replace(/Input$/, '');
    if (plain !== name && !used.has(plain)) rename.set(name, plain);
  }
  const kept: Json = {};
  for (const name of Object.keys(components).sort()) {
    if (used.has(name)) kept[rename.get(name) ?? name] = renameRefs(components[name], rename);
  }
  componentsObject.schemas = kept;
  doc.paths = renameRefs(paths, rename);
  return doc;
}

/**
 * Registers @fastify/swagger (the document, served at `GET /openapi.json`) and, when `docs` is set,
 * swagger-ui at `/docs`.
 */
export async function registerOpenApi(
  app: FastifyInstance,
  opts: { docs: boolean; version: string },
): Promise<void> {
  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'roiserve',
        description:
          'RoI Pool, RoI Align and RoI Warp over a built-in TensorFlow.js backbone or your own feature maps. ' +
          'Errors are RFC 9457 problem details (application/problem+json).',
        version: opts.version,
      },
      components: {
        securitySchemes: {
          bearer: { type: 'http', scheme: 'bearer', description: 'API_KEY, when the server has one' },
          apiKey: {
            type: 'apiKey',
            in: 'header',
            name: 'X-API-Key',
            description: 'API_KEY, when the server has one',
          },
        },
      },
      tags: [
        { name: 'roi', description: 'RoI operators' },
        { name: 'backbone', description: 'The built-in feature extractor' },
        { name: 'ops', description: 'Health, readiness and metrics' },
      ],
    },
    transform: jsonSchemaTransform,
    transformObject: (input) => finishDocument(jsonSchemaTransformObject(input) as unknown as Json),
  });
  if (opts.docs) {
    await app.register(fastifySwaggerUi, { routePrefix: '/docs' });
  }
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
}
