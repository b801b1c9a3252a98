/** The JSON body parser's error positions and prototype-key check (`src/http/json-body.ts`). */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InvalidInputError } from '../../src/errors.js';
import { findJsonSyntaxError, findPrototypeKey, parseJsonBody } from '../../src/http/json-body.js';

function parses(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

describe('findJsonSyntaxError', () => {
  it.each([
    ['{"boxes": [', 11, 1, 12, /a value .* or '\]'/, 'the end of the body'],
    ['{"a":1,\n "b": x}', 14, 2, 7, /^a value/, '"x"'],
    ['{"a":1,}', 7, 1, 8, /double-quoted field name$/, '"}"'],
    ['[1 2]', 3, 1, 4, /',' or '\]'/, '"2"'],
    ['{"a" 1}', 5, 1, 6, /':'/, '"1"'],
    ['{} x', 3, 1, 4, /nothing after/, '"x"'],
    ['{"a":"\\x"}', 6, 1, 7, /valid escape/, '"\\\\"'],
    ['{"a":01}', 6, 1, 7, /',' or '}'/, '"1"'],
    ['"abc', 4, 1, 5, /closing double quote/, 'the end of the body'],
  ])('%j breaks at offset %i (line %i, column %i)', (text, offset, line, column, expected, found) => {
    const e = findJsonSyntaxError(text);
    expect(e).toMatchObject({ offset, line, column, found });
    expect(e?.expected).toMatch(expected);
  });

  it('agrees with JSON.parse on valid JSON and on mangled JSON', () => {
    fc.assert(
      fc.property(fc.json(), (text) => findJsonSyntaxError(text) === undefined),
      { numRuns: 300, seed: 11 },
    );
    // Cut or splice valid JSON: the scanner finds an error exactly when JSON.parse fails.
    fc.assert(
      fc.property(
        fc.json(),
        fc.nat(),
        fc.constantFrom('', ',', '}', ']', '"', ':', 'x', '\\', '\n'),
        (text, at, insert) => {
          const cut = at % (text.length + 1);
          const mangled = text.slice(0, cut) + insert + text.slice(cut + 1);
          expect(findJsonSyntaxError(mangled) === undefined).toBe(parses(mangled));
        },
      ),
      { numRuns: 500, seed: 12 },
    );
  });

  it('deep nesting does not overflow the stack', () => {
    expect(findJsonSyntaxError('['.repeat(200_000))).toMatchObject({ offset: 200_000 });
  });
});

describe('parseJsonBody', () => {
  it('a syntax error names line, column and offset (field body)', () => {
    try {
      parseJsonBody('{\n  "boxes": [[0, 0, 10, 10]],\n  "ops": [align]\n}');
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(InvalidInputError);
      const e = err as InvalidInputError;
      expect(e.field).toBe('body');
      expect(e.message).toBe(
        'the body is not valid JSON: at line 3, column 11 (offset 41), expected a value (object, array, string, number, true, false or null) or \']\', found "a"',
      );
    }
  });

  it.each([
    ['{"__proto__": {"x": 1}}', '__proto__', '__proto__'],
    ['{"features": {"__proto__": null}}', 'features.__proto__', '__proto__'],
    ['{"boxes": [{"\\u005f_proto__": 1}]}', 'boxes[0].__proto__', '__proto__'],
    ['{"a": {"constructor": {"prototype": {"x": 1}}}}', 'a.constructor.prototype', 'constructor.prototype'],
  ])('%s: the key is named, not "not valid JSON"', (text, field, key) => {
    try {
      parseJsonBody(text);
      expect.unreachable();
    } catch (err) {
      const e = err as InvalidInputError;
      expect(e.field).toBe(field);
      expect(e.message).toBe(`the key ${key} is not allowed (at ${field}); the JSON itself is valid`);
      expect(e.message).not.toMatch(/not valid JSON/);
    }
  });

  it('"constructor" and "prototype" on their own are ordinary keys', () => {
    expect(parseJsonBody('{"constructor": 1, "prototype": {"a": 2}}')).toEqual({
      constructor: 1,
      prototype: { a: 2 },
    });
    expect(findPrototypeKey({ constructor: 'x' })).toBeUndefined();
  });
});
