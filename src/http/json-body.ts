/**
 * The `application/json` body parser. fastify's own says only "Body is not valid JSON" — for a typo,
 * and also for a perfectly valid body that holds a `__proto__` key. This one says where the JSON breaks
 * (line, column and offset, and what was expected there) and, separately, which key is not allowed.
 *
 * Parsing is still `JSON.parse` (fast, native); the scanner below runs only on the error path, to find
 * the position that V8's messages often leave out (`Unexpected token 'x', "…" is not valid JSON`).
 */
import type { FastifyInstance } from 'fastify';
import { InvalidInputError } from '../errors.js';
import { fieldFromPath } from './validation-messages.js';

/** Where a JSON text first stops being JSON. */
export interface JsonSyntaxError {
  /** UTF-16 offset into the text (0-based). */
  offset: number;
  /** 1-based line and column of `offset`. */
  line: number;
  column: number;
  /** What the grammar allows there, in words. */
  expected: string;
  /** What is there instead: a quoted character, or `the end of the body`. */
  found: string;
}

const WHITESPACE = new Set([' ', '\t', '\n', '\r']);
const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
// Control characters are exactly what it looks for (raw ones are invalid inside a JSON string).
// eslint-disable-next-line no-control-regex
const STRING_SPECIAL = /["\\\u0000-\u001f]/g;
const ESCAPES = '"\\/bfnrt';
const VALUE = 'a value (object, array, string, number, true, false or null)';

function located(text: string, offset: number, expected: string): JsonSyntaxError {
  let line = 1;
  let lineStart = 0;
  for (let i = text.indexOf('\n'); i !== -1 && i < offset; i = text.indexOf('\n', i + 1)) {
    line++;
    lineStart = i + 1;
  }
  const found = offset >= text.length ? 'the end of the body' : JSON.stringify(text[offset]);
  return { offset, line, column: offset - lineStart + 1, expected, found };
}

/**
 * The first syntax error of `text` as JSON (RFC 8259), or undefined when it is valid. Linear and
 * iterative (no recursion, so deep nesting cannot overflow the stack).
 */
export function findJsonSyntaxError(text: string): JsonSyntaxError | undefined {
  const n = text.length;
  const stack: Array<'{' | '['> = [];
  type State = 'value' | 'valueOrClose' | 'key' | 'keyOrClose' | 'colon' | 'commaOrClose' | 'done';
  let state: State = 'value';
  let i = 0;
  const afterValue = (): State => (stack.length > 0 ? 'commaOrClose' : 'done');
  const fail = (at: number, expected: string) => located(text, at, expected);
  /** Scans the string starting at `i` (a `"`); returns an error or moves `i` past it. */
  const string = (): JsonSyntaxError | undefined => {
    i++;
    for (;;) {
      STRING_SPECIAL.lastIndex = i;
      const m = STRING_SPECIAL.exec(text);
      if (!m) return fail(n, 'a closing double quote');
      i = m.index;
      const c = text[i];
      if (c === '"') {
        i++;
        return undefined;
      }
      if (c !== '\\')
        return fail(i, 'no raw control characters inside a string (write them as \\n, \\t, \\u00XX)');
      const next = text[i + 1];
      if (next !== undefined && ESCAPES.includes(next)) i += 2;
      else if (next === 'u' && /^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) i += 6;
      else return fail(i, 'a valid escape (\\" \\\\ \\/ \\b \\f \\n \\r \\t or \\uXXXX)');
    }
  };
  for (;;) {
    while (i < n && WHITESPACE.has(text[i])) i++;
    if (state === 'done') return i < n ? fail(i, 'nothing after the JSON value') : undefined;
    const c = text[i];
    switch (state) {
      case 'valueOrClose':
      case 'value': {
        if (state === 'valueOrClose' && c === ']') {
          i++;
          stack.pop();
          state = afterValue();
          break;
        }
        if (c === '{' || c === '[') {
          stack.push(c);
          i++;
          state = c === '{' ? 'keyOrClose' : 'valueOrClose';
          break;
        }
        if (c === '"') {
          const err = string();
          if (err) return err;
          state = afterValue();
          break;
        }
        NUMBER.lastIndex = i;
        if ((c === '-' || (c >= '0' && c <= '9')) && NUMBER.test(text)) {
          i = NUMBER.lastIndex;
          state = afterValue();
          break;
        }
        const literal = ['true', 'false', 'null'].find((word) => text.startsWith(word, i));
        if (literal) {
          i += literal.length;
          state = afterValue();
          break;
        }
        return fail(i, state === 'valueOrClose' ? `${VALUE} or ']'` : VALUE);
      }
      case 'keyOrClose':
      case 'key': {
        if (state === 'keyOrClose' && c === '}') {
          i++;
          stack.pop();
          state = afterValue();
          break;
        }
        if (c !== '"') {
          return fail(
            i,
            state === 'keyOrClose' ? `a double-quoted field name or '}'` : 'a double-quoted field name',
          );
        }
        const err = string();
        if (err) return err;
        state = 'colon';
        break;
      }
      case 'colon':
        if (c !== ':') return fail(i, `':' after the field name`);
        i++;
        state = 'value';
        break;
      case 'commaOrClose': {
        const close = stack[stack.length - 1] === '{' ? '}' : ']';
        if (c === ',') {
          i++;
          state = close === '}' ? 'key' : 'value';
        } else if (c === close) {
          i++;
          stack.pop();
          state = afterValue();
        } else {
          return fail(i, `',' or '${close}'`);
        }
        break;
      }
    }
  }
}

/** Any spelling of `__proto__` or `constructor` as a JSON string (escapes included), as secure-json-parse tests. */
const SUSPECT =
  /"(?:_|\\u005[Ff])(?:_|\\u005[Ff])(?:p|\\u0070)(?:r|\\u0072)(?:o|\\u006[Ff])(?:t|\\u0074)(?:o|\\u006[Ff])(?:_|\\u005[Ff])(?:_|\\u005[Ff])"|"(?:c|\\u0063)(?:o|\\u006[Ff])(?:n|\\u006[Ee])(?:s|\\u0073)(?:t|\\u0074)(?:r|\\u0072)(?:u|\\u0075)(?:c|\\u0063)(?:t|\\u0074)(?:o|\\u006[Ff])(?:r|\\u0072)"/;

/** The path of the first `__proto__` key or `constructor.prototype` in a parsed value, or undefined. */
export function findPrototypeKey(value: unknown): string | undefined {
  const queue: Array<{ node: unknown; path: PropertyKey[] }> = [{ node: value, path: [] }];
  while (queue.length > 0) {
    const { node, path } = queue.pop() as { node: unknown; path: PropertyKey[] };
    if (node === null || typeof node !== 'object') continue;
    if (Object.hasOwn(node, '__proto__')) return fieldFromPath([...path, '__proto__']);
    const ctor = (node as Record<string, unknown>).constructor;
    if (Object.hasOwn(node, 'constructor') && ctor !== null && typeof ctor === 'object') {
      if (Object.hasOwn(ctor, 'prototype')) return fieldFromPath([...path, 'constructor', 'prototype']);
    }
    for (const [key, child] of Object.entries(node)) {
      if (child !== null && typeof child === 'object') queue.push({ node: child, path: [...path, key] });
    }
  }
  return undefined;
}

/**
 * Parses a JSON request body.
 *
 * @throws InvalidInputError (400, field `body`) for an empty body or a syntax error (with its position);
 *   (field = the key's path) for a `__proto__` key or `constructor.prototype`, which could poison a merge
 */
export function parseJsonBody(text: string): unknown {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    if (text.trim() === '') {
      throw new InvalidInputError(
        'the body is empty, but Content-Type says application/json',
        'body',
        'a JSON object',
      );
    }
    const where = findJsonSyntaxError(text);
    if (!where) {
      // JSON.parse and the scanner disagree: keep V8's words rather than invent a position.
      throw new InvalidInputError(
        `the body is not valid JSON: ${(err as Error).message}`,
        'body',
        'valid JSON',
      );
    }
    throw new InvalidInputError(
      `the body is not valid JSON: at line ${where.line}, column ${where.column} (offset ${where.offset}), ` +
        `expected ${where.expected}, found ${where.found}`,
      'body',
      `valid JSON: ${where.expected} at line ${where.line}, column ${where.column}`,
    );
  }
  if (SUSPECT.test(text)) {
    const key = findPrototypeKey(value);
    if (key !== undefined) {
      const name = key.endsWith('constructor.prototype') ? 'constructor.prototype' : '__proto__';
      throw new InvalidInputError(
        `the key ${name} is not allowed (at ${key}); the JSON itself is valid`,
        key,
        'field names other than __proto__ and constructor.prototype',
      );
    }
  }
  return value;
}

/** Replaces fastify's JSON parser with {@link parseJsonBody} (same body limit, same content types). */
export function useJsonBodyParser(app: FastifyInstance): void {
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    // No route matched: the answer is 404 or 405 whatever the body holds, so it is not parsed.
    if (request.is404) {
      done(null, undefined);
      return;
    }
    try {
      done(null, parseJsonBody(body as string));
    } catch (err) {
      done(err as Error, undefined);
    }
  });
}
