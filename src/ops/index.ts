/** The operator core: pure kernels (no fastify, sharp or tfjs). */
export * from './types.js';
export * from './boxes.js';
export * from './features.js';
export * from './params.js';
export * from './roi_align.js';
export * from './roi_pool.js';
export * from './roi_warp.js';
export * from './rotated_roi_align.js';
export * from './coverage.js';
export * from './coverage-rotated.js';
export * from './polygon.js';
export * from './ps_roi_align.js';
export * from './ps_roi_pool.js';
export * from './multiscale.js';
export * from './registry.js';
