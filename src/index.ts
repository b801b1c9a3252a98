/**
 * `roiserve` (the package's main entry): the service to embed in your own process.
 *
 * ```ts
 * import { buildApp, parseConfig } from 'roiserve';
 * const app = await buildApp(parseConfig(process.env));
 * await app.listen({ port: 8080 });
 * ```
 *
 * `npm start` runs `src/main.ts` instead (environment, graceful shutdown). The kernels alone, without
 * fastify, sharp or tfjs: `roiserve/ops`; a typed HTTP client: `roiserve/client`.
 */
export { buildApp } from './server.js';
export { ConfigError, loadConfig, parseConfig, type Config } from './config.js';
