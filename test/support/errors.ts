/** Asserting the typed errors the service throws. */
import { expect } from 'vitest';
import { InvalidInputError } from '../../src/errors.js';

/** The `field` of the `InvalidInputError` that `fn` throws; fails when it throws nothing or another error. */
export function fieldOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(InvalidInputError);
    return (e as InvalidInputError).field;
  }
  throw new Error('expected an InvalidInputError');
}
