import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyPluginAsync } from 'fastify';

/**
 * Where the page's static files are: `public/` at the repository root, found from this file whether it
 * runs from source (`routes/`, under tsx or vitest) or compiled (`dist/routes/`).
 */
export function playgroundRoot(): string {
  for (const relative of ['../public/', '../../public/']) {
    const dir = fileURLToPath(new URL(relative, import.meta.url));
    if (existsSync(`${dir}index.html`)) return dir;
  }
  throw new Error('playground: public/index.html not found next to routes/ or dist/routes/');
}

/**
 * The playground: `GET /` serves `public/index.html`, `GET /playground/*` its ES modules and CSS.
 * Plain static files, no build step and no external URLs, so the page works offline. The routes are
 * registered one per file at start-up (`wildcard: false`), so they never shadow API 404s, and they are
 * hidden from the OpenAPI document.
 */
const playground: FastifyPluginAsync = async (app) => {
  await app.register(fastifyStatic, {
    root: playgroundRoot(),
    prefix: '/',
    wildcard: false,
    decorateReply: false,
    schemaHide: true,
    index: ['index.html'],
    setHeaders: (reply) => {
      // The page talks only to this origin; say so to browsers (no CDNs, no inline scripts).
      reply.header(
        'Content-Security-Policy',
        "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; connect-src 'self' blob:",
      );
    },
  });
};

export default playground;
