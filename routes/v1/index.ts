/**
 * The `/v1` API as one encapsulated plugin (register it with `prefix: '/v1'`): it owns its prefix, its
 * auth hook (every route needs the API key when `API_KEY` is set, decided by the matched route) and its
 * error format (problem+json, `src/http/problem-errors.ts`). The routes are thin: parse
 * (`./schemas/`) → core (`src/core/`) through the worker pool → encoded answer.
 */
import type { FastifyPluginAsync } from 'fastify';
import { requireApiKey } from '../../src/http/auth.js';
import { useProblemErrors } from '../../src/http/problem-errors.js';
import backboneRoutes from './backbone.js';
import diffRoutes from './diff.js';
import featuresRoutes from './features.js';
import roiRoutes from './roi.js';

const v1: FastifyPluginAsync = async (app) => {
  requireApiKey(app, app.config.apiKey);
  useProblemErrors(app, app.config.bodyLimitBytes);
  await app.register(roiRoutes);
  await app.register(featuresRoutes);
  await app.register(backboneRoutes);
  await app.register(diffRoutes);
};

export default v1;
