/**
 * Schema-validation issues (zod, through fastify-type-provider-zod) in words, with the fix in them for
 * the mistakes people make most (issue 10): a flat box list, snake_case or mis-cased field names, a
 * missing required field, and multipart array fields not written as JSON text.
 *
 * The zod issues do not carry the offending value, so the hints read it from the request body (the
 * parsed JSON, or the multipart fields as `multipartToJsonBody` turned them into a body).
 */
import { z } from 'zod';

/** One entry of a problem's `errors` (same shape as `ProblemField` in `src/problem.ts`). */
export interface FieldMessage {
  field: string;
  expected: string;
  message: string;
}

/** A validation entry as fastify-type-provider-zod reports it. */
export interface ValidationIssue {
  keyword: string;
  instancePath: string;
  message?: string;
  params: unknown;
}

/** What the hints may look at besides the issues themselves. */
export interface ValidationContext {
  /** The request body as validated (JSON, or multipart fields turned into a body). */
  body?: unknown;
  /** True when the body came as multipart/form-data (arrays must then be JSON text). */
  multipart?: boolean;
  /** The route's body schema (a zod schema), to suggest the right spelling of an unknown field. */
  bodySchema?: unknown;
}

interface ZodIssueParams {
  expected?: unknown;
  values?: unknown[];
  minimum?: unknown;
  maximum?: unknown;
  origin?: string;
  inclusive?: boolean;
  keys?: string[];
  format?: string;
}

/** A zod issue inside an `invalid_union` issue's `errors` (one list per branch). */
interface BranchIssue {
  code: string;
  path: PropertyKey[];
  message?: string;
  [key: string]: unknown;
}

/**
 * A value that matched no branch of a union (`features`: one map or a list of maps; `spatialScale`: a
 * number or a list): when exactly one branch has the value's kind (its issues are not a type mismatch
 * of the value itself), that branch's issues, with their own fields (`features.layout`), instead of
 * one vague "one of the accepted forms" at the union.
 */
function expandUnions(validation: readonly ValidationIssue[]): ValidationIssue[] {
  return validation.flatMap((issue): ValidationIssue[] => {
    const branches = (issue.params as { errors?: unknown }).errors;
    if (issue.keyword !== 'invalid_union' || !Array.isArray(branches)) return [issue];
    const fitting = (branches as BranchIssue[][]).filter(
      (branch) => !branch.some((i) => i.code === 'invalid_type' && i.path.length === 0),
    );
    if (fitting.length !== 1) return [issue];
    const base = issue.instancePath.replace(/\/$/, '');
    return expandUnions(
      fitting[0].map(({ code, path, message, ...params }) => ({
        keyword: code,
        instancePath: [base, ...path.map(String)].join('/'),
        message,
        params,
      })),
    );
  });
}

/** `/boxes/0/2` → `boxes[0][2]`; `/features/shape` → `features.shape`. */
export function fieldFromPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number' || /^\d+$/.test(String(key))) out += `[${String(key)}]`;
    else out += out === '' ? String(key) : `.${String(key)}`;
  }
  return out;
}

/** What a zod issue expected, in words. */
function expectedFromIssue(code: string, params: ZodIssueParams): string {
  switch (code) {
    case 'invalid_type':
      // A field a route does not take (`z.never()`, e.g. `images` on /v1/diff) expects to be left out.
      return params.expected === 'never' ? 'no such field here: leave it out' : `${String(params.expected)}`;
    case 'invalid_value':
      return `one of ${(params.values ?? []).map((v) => JSON.stringify(v)).join(', ')}`;
    case 'too_small':
    case 'too_big': {
      const small = code === 'too_small';
      const limit = String(small ? params.minimum : params.maximum);
      const strict = params.inclusive === false;
      if (params.origin === 'number') return `a number ${small ? '>' : '<'}${strict ? '' : '='} ${limit}`;
      const bound = strict ? (small ? 'more than' : 'fewer than') : small ? 'at least' : 'at most';
      const what = params.origin === 'array' ? ' items' : params.origin === 'string' ? ' characters' : '';
      return `${bound} ${limit}${what}`;
    }
    case 'unrecognized_keys':
      return 'no such field (see the API documentation for the accepted fields)';
    case 'invalid_union':
      return 'one of the accepted forms (see the API documentation)';
    case 'not_multiple_of':
      return 'an integer';
    default:
      return 'a valid value';
  }
}

/** The value at `path` in `root`, or undefined. */
function valueAt(root: unknown, path: readonly string[]): unknown {
  let node = root;
  for (const key of path) {
    if (node === null || typeof node !== 'object' || !Object.hasOwn(node, key)) return undefined;
    node = (node as Record<string, unknown>)[key];
  }
  return node;
}

/** The object schema's field names at `path` (optional/default/nullable unwrapped), or []. */
function knownFields(schema: unknown, path: readonly string[]): string[] {
  let node = schema;
  const unwrap = (s: unknown): unknown => {
    for (;;) {
      if (s instanceof z.ZodOptional || s instanceof z.ZodDefault || s instanceof z.ZodNullable)
        s = s.unwrap();
      // One map or a list of maps (`features`): the object form's fields.
      else if (s instanceof z.ZodUnion) s = (s.options as unknown[]).find((o) => o instanceof z.ZodObject);
      else return s;
    }
  };
  for (const key of path) {
    node = unwrap(node);
    // A list's items (`features[1]`): the item schema's fields.
    if (node instanceof z.ZodArray && /^\d+$/.test(key)) {
      node = node.element;
      continue;
    }
    if (!(node instanceof z.ZodObject)) return [];
    node = (node.shape as Record<string, unknown>)[key];
  }
  node = unwrap(node);
  return node instanceof z.ZodObject ? Object.keys(node.shape as object) : [];
}

/** Edit distance, capped: enough to catch a swapped or missing letter. */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const next = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = next;
    }
  }
  return row[b.length];
}

/** `output_size` / `output-size` → `outputSize`. */
function camelCase(name: string): string {
  return name.toLowerCase().replace(/[_-]+([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** The accepted field a mistyped `key` most likely meant: camelCase, other case, or a typo. */
export function suggestField(key: string, known: readonly string[]): string | undefined {
  const camel = camelCase(key);
  const exact = known.find((k) => k === camel || k.toLowerCase() === key.toLowerCase().replace(/[_-]/g, ''));
  if (exact) return exact;
  let best: string | undefined;
  let bestDistance = 3;
  for (const k of known) {
    const d = distance(key.toLowerCase(), k.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [k, d];
  }
  return best;
}

/** `0,0,10,10` → `[[0,0,10,10]]`; `align,pool` → `["align","pool"]`: the JSON a comma list meant. */
function jsonFromCommaText(field: string, text: string): string | undefined {
  const parts = text
    .replace(/^[[(]+|[\])]+$/g, '')
    .split(/[\s,]+/)
    .filter((p) => p !== '');
  if (parts.length === 0) return undefined;
  if (parts.every((p) => Number.isFinite(Number(p)))) {
    const numbers = parts.map(Number);
    if (field === 'boxes') {
      const width = numbers.length % 5 === 0 && numbers.length % 4 !== 0 ? 5 : 4;
      if (numbers.length % width !== 0) return undefined;
      const rows: number[][] = [];
      for (let i = 0; i < numbers.length; i += width) rows.push(numbers.slice(i, i + width));
      return JSON.stringify(rows);
    }
    return JSON.stringify(numbers);
  }
  return JSON.stringify(parts);
}

/** A flat list of 4 or 5 numbers per box, as `[[x1, y1, x2, y2], …]`. */
function wrappedBoxes(flat: number[]): string {
  const width = flat.length % 4 !== 0 && flat.length % 5 === 0 ? 5 : 4;
  const rows: string[] = [];
  for (let i = 0; i < flat.length; i += width) rows.push(`[${flat.slice(i, i + width).join(', ')}]`);
  return `[${rows.join(', ')}]`;
}

/**
 * The problem `errors` for a failed schema validation: one entry per issue (one per unknown key), in
 * the order zod reports them, each naming the field and the expected value, with a hint where the
 * mistake is a common one.
 */
export function validationFields(
  validation: readonly ValidationIssue[],
  context: ValidationContext = {},
): FieldMessage[] {
  const errors: FieldMessage[] = [];
  let flatBoxesReported = false;
  for (const issue of expandUnions(validation)) {
    const path = issue.instancePath.split('/').filter((s) => s !== '');
    const params = issue.params as ZodIssueParams;
    if (issue.keyword === 'unrecognized_keys' && params.keys) {
      const known = knownFields(context.bodySchema, path);
      for (const key of params.keys) {
        const field = fieldFromPath([...path, key]);
        const suggestion = suggestField(key, known);
        errors.push(
          suggestion
            ? {
                field,
                expected: `${fieldFromPath([...path, suggestion])} (field names are camelCase)`,
                message: `unknown field ${field}: did you mean ${suggestion}?`,
              }
            : {
                field,
                expected: expectedFromIssue(issue.keyword, params),
                message: `unknown field ${field}`,
              },
        );
      }
      continue;
    }
    const field = fieldFromPath(path) || 'body';
    const input = path.length === 0 ? context.body : valueAt(context.body, path);
    const expected = expectedFromIssue(issue.keyword, params);

    // A flat box list: zod reports each number; one entry says how to wrap them.
    const boxesValue = valueAt(context.body, ['boxes']);
    if (
      path.length === 2 &&
      path[0] === 'boxes' &&
      issue.keyword === 'invalid_type' &&
      Array.isArray(boxesValue) &&
      boxesValue.length > 0 &&
      boxesValue.every((v) => typeof v === 'number')
    ) {
      if (!flatBoxesReported) {
        flatBoxesReported = true;
        errors.push({
          field: 'boxes',
          expected: 'a list of boxes, each a list: [[x1, y1, x2, y2], …] (or [b, x1, y1, x2, y2] rows)',
          message: `boxes is a flat list of numbers; wrap each box in its own list: ${wrappedBoxes(boxesValue as number[])}`,
        });
      }
      continue;
    }

    // A missing required field.
    if (input === undefined && issue.keyword === 'invalid_type') {
      errors.push({ field, expected: `${expected} (required)`, message: 'required' });
      continue;
    }

    // Multipart fields are text: arrays and objects must be JSON text (`boxes=[[0,0,10,10]]`).
    const wantsStructure =
      (issue.keyword === 'invalid_type' && (params.expected === 'array' || params.expected === 'object')) ||
      issue.keyword === 'invalid_union';
    if (context.multipart && typeof input === 'string' && wantsStructure) {
      const example = jsonFromCommaText(field, input) ?? (params.expected === 'object' ? '{…}' : '[…]');
      errors.push({
        field,
        expected: `JSON text, e.g. ${field}=${example}`,
        message: `${field}=${input} is not JSON text; in multipart, write array and object fields as JSON, e.g. ${field}=${example}`,
      });
      continue;
    }

    // A single value where a list is expected (JSON `"ops": "align"`): say to wrap it.
    if (
      issue.keyword === 'invalid_type' &&
      params.expected === 'array' &&
      input !== null &&
      typeof input !== 'object'
    ) {
      errors.push({
        field,
        expected: `a list, e.g. ${JSON.stringify([input])}`,
        message: `${field} must be a list: write ${JSON.stringify([input])}`,
      });
      continue;
    }

    errors.push({ field, expected, message: issue.message ?? 'invalid' });
  }
  return errors;
}
