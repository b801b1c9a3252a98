/**
 * `Server-Timing` on every response, and the stage histogram, from one place. Per request:
 *
 * - `total`: from the request's arrival (`onRequest`) to its response being sent (`onSend`: the
 *   header must go out before the body, so the transfer itself is not in it);
 * - `parse`: reading, parsing and validating the body on the HTTP thread (`preParsing` to the handler,
 *   or to the error when the body was refused);
 * - `queue`: waiting for a worker (measured by the pool, `src/runtime/pool.ts`);
 * - the pipeline's stages (`decode`, `backbone`, `pool`, `align`, `warp`, `encode`) that ran.
 *
 * A stage that did not run is left out (an error before any work carries only `total`, maybe `parse`).
 * Routes report their work's timings with {@link recordTimings}.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { observeStages, stagesThatRan, type Metrics } from '../metrics.js';

interface RequestTiming {
  start: number;
  parseStart?: number;
  parseEnd?: number;
  work?: Partial<Record<string, number>>;
}

const timingOf = new WeakMap<FastifyRequest, RequestTiming>();
const now = () => performance.now();

/** Formats `name;dur=1.23` entries in the order given (durations in ms). */
export function serverTimingHeader(entries: ReadonlyArray<readonly [string, number]>): string {
  return entries.map(([name, ms]) => `${name};dur=${ms.toFixed(2)}`).join(', ');
}

/**
 * Reports the timings (ms) of the work a request ran: its pipeline stages (those that did not run
 * are 0 or absent) and `queue`. They go into `Server-Timing` and into the stage histogram, labelled by
 * the request's route.
 */
export function recordTimings(
  request: FastifyRequest,
  metrics: Metrics,
  timings: Partial<Record<string, number>>,
): void {
  const state = timingOf.get(request);
  if (state) state.work = timings;
  observeStages(metrics, request.routeOptions.url ?? 'unmatched', timings);
}

/** Adds the hooks to `app` (the root instance, before any route, so every response carries the header). */
export function serverTiming(app: FastifyInstance): void {
  app.addHook('onRequest', async (request) => {
    timingOf.set(request, { start: now() });
  });
  app.addHook('preParsing', async (request, _reply, payload) => {
    const state = timingOf.get(request);
    if (state) state.parseStart = now();
    return payload;
  });
  app.addHook('preHandler', async (request) => {
    const state = timingOf.get(request);
    if (state?.parseStart !== undefined) state.parseEnd ??= now();
  });
  // A body refused while parsing or validating: parse ends at the error.
  app.addHook('onError', async (request) => {
    const state = timingOf.get(request);
    if (state?.parseStart !== undefined) state.parseEnd ??= now();
  });
  app.addHook('onSend', async (request, reply, payload) => {
    const state = timingOf.get(request);
    if (!state) return payload;
    const entries: Array<[string, number]> = [['total', now() - state.start]];
    if (state.parseStart !== undefined && state.parseEnd !== undefined) {
      entries.push(['parse', state.parseEnd - state.parseStart]);
    }
    const work = state.work ?? {};
    if (typeof work.queue === 'number') entries.push(['queue', work.queue]);
    for (const stage of stagesThatRan(work)) entries.push([stage, work[stage] as number]);
    reply.header('Server-Timing', serverTimingHeader(entries));
    return payload;
  });
}
