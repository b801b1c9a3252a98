/**
 * Every route of the app, collected as it is registered (`onRoute`), and a second router built from
 * them that answers "which methods does this path have?" for the `405 Method Not Allowed` + `Allow`
 * answer. It uses find-my-way, the router fastify itself uses, with fastify's default options, so a
 * path matches here exactly when it would match there (percent-encoding, absolute-form, wildcards).
 */
import type { FastifyInstance } from 'fastify';
import FindMyWay from 'find-my-way';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Set by `requireApiKey` on the routes of its scope: true when the route needs `API_KEY`. */
    auth?: boolean;
  }
  interface FastifyInstance {
    /** The registered routes (see `src/http/route-index.ts`). */
    routeIndex: RouteIndex;
  }
}

/** One registered route (a method and its URL pattern). */
export interface RouteEntry {
  method: string;
  url: string;
  /** Whether the route requires the API key (when `API_KEY` is set). */
  auth: boolean;
}

/** The app's routes and the methods a path supports. */
export interface RouteIndex {
  /** Every route registered so far, HEAD routes fastify adds for GET included. */
  readonly routes: readonly RouteEntry[];
  /** The methods `path` (a request URL, query allowed) has routes for, sorted; empty when none. */
  allowedMethods(url: string): string[];
}

/**
 * Registers the collecting `onRoute` hook on `app` (call before registering any route) and decorates
 * `app.routeIndex`.
 */
export function collectRoutes(app: FastifyInstance): void {
  // The route options objects themselves: a scope's own `onRoute` hooks (e.g. `requireApiKey`'s) may
  // run after this one and still set `config.auth`, so it is read when asked, not now.
  const registered: Array<{ method: string; url: string; options: { config?: { auth?: boolean } } }> = [];
  const router = FindMyWay();
  const noop = () => undefined;
  app.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    for (const method of methods) {
      registered.push({ method, url: route.url, options: route });
      // The same pattern twice (e.g. two constraint variants) throws in find-my-way: ignore it here.
      try {
        router.on(method as FindMyWay.HTTPMethod, route.url, noop);
      } catch {
        // already there
      }
    }
  });
  const index: RouteIndex = {
    get routes(): RouteEntry[] {
      return registered.map(({ method, url, options }) => ({
        method,
        url,
        auth: options.config?.auth === true,
      }));
    },
    allowedMethods(url: string): string[] {
      const path = url.split('?')[0];
      const allowed = new Set<string>();
      for (const method of new Set(registered.map((r) => r.method))) {
        if (router.find(method as FindMyWay.HTTPMethod, path)) allowed.add(method);
      }
      return [...allowed].sort();
    },
  };
  app.decorate('routeIndex', index);
}
