/**
 * How far V8 lets a heap grow past its live size before the next full (mark-compact) collection.
 *
 * V8 picks that factor after each full collection from how fast the thread allocated lately against
 * how fast it collects: between 1.1 and 4. A worker allocates fast while it loads tfjs and the
 * backbone, so its first limit is generous (339 MB for 82 MB live). But once a worker has been idle
 * for a few seconds (between bursts of requests, or while the memory reducer shrinks the heap of an
 * idle thread), the rate it measured is near zero, the factor drops to 1.1, and the limit sits 9 MB
 * above the ~82 MB the worker keeps alive (tfjs, its sources, the fonts). Every request allocates
 * some of that (its JSON answer's base64 strings alone are 0.4 MB, in old space); then a full
 * collection of the whole 82 MB runs every two or three requests, and since each collection is
 * cheap against the (now modest) allocation rate, the factor stays 1.1: the worker never leaves that
 * state. Measured (`npm run bench -- idle`; `node --trace-gc` shows it): image requests at 50–57/s,
 * then, after 15 s idle, 30–33/s with twice the CPU per request, the extra in V8's GC threads.
 *
 * A fixed factor (`--heap-growing-percent`) ends it: the limit stays a fixed multiple of the live heap,
 * at the same rate before and after an idle spell. Node 24's V8 (13.6) has the same problem from
 * another side: it starts marking early, as soon as the headroom looks small against its (larger)
 * young generation and the worker's allocation rate, and 2 cores then spend a third of their time
 * marking a heap that does not grow. Measured with `WORKERS=2`, image requests (`npm run bench --
 * throughput`-like, 6 s runs): Node 20, 50 % and 100 % alike (61–66/s); Node 24, V8's own 51–52/s
 * at 32–34 ms of CPU per request, 50 % 51–54/s, 100 % 61–66/s at 26 ms. Hence 100: a worker's heap may
 * reach twice what it keeps alive (~80 MB more per worker) before a full collection. V8 flags are per
 * process, so this applies to the HTTP thread as well; its heap behaves the same way.
 */
import { setFlagsFromString } from 'node:v8';

/** The flag, as `node --help`'s V8 options name it. */
export const HEAP_GROWING_FLAG = '--heap-growing-percent';

/** Headroom over the live heap, in percent, when the process was not started with its own. */
export const HEAP_GROWING_PERCENT = 100;

/**
 * Sets V8's heap growing factor to 1 + {@link HEAP_GROWING_PERCENT}/100 for the whole process, unless
 * the process was started with its own `--heap-growing-percent` (which then stands). Safe to call
 * more than once. Call before the worker threads start.
 *
 * @param execArgv - the process's node options (`process.execArgv`)
 * @param set - applies a V8 flag (`v8.setFlagsFromString`)
 * @returns the flag it set, or `null` when the process already had one
 */
export function fixHeapGrowth(
  execArgv: readonly string[] = process.execArgv,
  set: (flag: string) => void = setFlagsFromString,
): string | null {
  const named = (arg: string) => arg.replace(/_/g, '-');
  if (execArgv.some((arg) => named(arg).startsWith(HEAP_GROWING_FLAG))) return null;
  const flag = `${HEAP_GROWING_FLAG}=${HEAP_GROWING_PERCENT}`;
  set(flag);
  return flag;
}
