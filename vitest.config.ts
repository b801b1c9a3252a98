import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Oracle and backbone tests do real numeric work; the CI machine has 2 cores.
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
