/**
 * `roiserve roi DIR --boxes boxes.jsonl -o OUTDIR`: one output file per image of a folder, run on all
 * the pool's workers (WORKERS) at once. Each JSONL line is `{"image": "a.jpg", "boxes": [[…]]}` (the
 * image relative to DIR); the command-line options apply to every line. A line that fails (bad JSON,
 * bad boxes, a corrupt image) is reported with its reason and the others still run; the exit code is
 * 1 when any failed.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { basename, extname, isAbsolute, join, relative, resolve } from 'node:path';
import { limitsFrom } from '../core/task.js';
import { CliError, cliConfig, cliErrorOf, EXIT_FAILURE, readInput, withPool } from './common.js';
import {
  isFeatureFile,
  roiRequest,
  runRoiLocal,
  runRoiRemote,
  type RoiCliOptions,
  type RoiFormat,
  type RoiRequest,
} from './roi.js';

/** One JSONL line, parsed or not. */
interface BatchItem {
  /** 1-based line number in the JSONL file. */
  line: number;
  image: string;
  boxes: unknown;
  /** Set when the line itself is unusable. */
  error?: string;
}

/** Reads the JSONL file: one item per non-empty line; a bad line becomes an item with its error. */
export async function readBatchFile(path: string): Promise<BatchItem[]> {
  const text = (await readInput(path, '--boxes')).toString('utf8');
  const items: BatchItem[] = [];
  text.split('\n').forEach((raw, i) => {
    const lineText = raw.trim();
    if (lineText === '') return;
    const line = i + 1;
    try {
      const value = JSON.parse(lineText) as { image?: unknown; boxes?: unknown };
      if (typeof value?.image !== 'string' || value.image === '') {
        items.push({
          line,
          image: `line ${line}`,
          boxes: undefined,
          error: 'image: expected a file name (string)',
        });
      } else {
        items.push({ line, image: value.image, boxes: value.boxes });
      }
    } catch (err) {
      items.push({
        line,
        image: `line ${line}`,
        boxes: undefined,
        error: `not JSON (${(err as Error).message})`,
      });
    }
  });
  return items;
}

/** How the reports name an item: its image and JSONL line. */
function label(item: BatchItem): string {
  return item.error !== undefined && item.image === `line ${item.line}`
    ? item.image
    : `${item.image} (line ${item.line})`;
}

/** `12.3 s` / `2 min 5 s`. */
function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
  return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
}

/**
 * Progress on stderr: a bar rewritten in place on a terminal, plain lines otherwise (logs, CI).
 */
class Progress {
  readonly #start = performance.now();
  readonly #tty = process.stderr.isTTY === true;
  done = 0;
  constructor(readonly total: number) {}

  tick(image: string, error: string | undefined): void {
    this.done++;
    const elapsed = (performance.now() - this.#start) / 1000;
    const rate = this.done / Math.max(elapsed, 1e-3);
    const eta = (this.total - this.done) / rate;
    const stats = `${this.done}/${this.total}  ${rate.toFixed(1)} images/s  ETA ${duration(eta)}`;
    if (this.#tty) {
      const width = 24;
      const filled = Math.round((width * this.done) / this.total);
      const bar = `${'#'.repeat(filled)}${'-'.repeat(width - filled)}`;
      process.stderr.write(`\r\x1b[K[${bar}] ${stats}${this.done === this.total ? '\n' : ''}`);
    } else {
      process.stderr.write(
        `roiserve: ${stats}  ${image}: ${error === undefined ? 'ok' : `FAILED: ${error}`}\n`,
      );
    }
  }

  get elapsed(): number {
    return (performance.now() - this.#start) / 1000;
  }
}

/**
 * Runs the batch; returns the exit code (0 all done, 1 some failed).
 *
 * @param dir - the folder the JSONL's image names are relative to
 */
export async function runBatch(dir: string, opts: RoiCliOptions): Promise<number> {
  const format: RoiFormat = (opts.format as RoiFormat | undefined) ?? 'npy';
  const ext = format === 'safetensors' ? '.safetensors' : `.${format}`;
  const items = await readBatchFile(opts.boxes);
  if (items.length === 0) throw new CliError(`--boxes ${opts.boxes}: no lines`);
  await mkdir(opts.output, { recursive: true }).catch((err: unknown) => {
    throw new CliError(`-o ${opts.output}: ${(err as Error).message}`, EXIT_FAILURE);
  });
  const outputs = new Map<string, string>();
  const failures: Array<{ image: string; reason: string }> = [];
  const progress = new Progress(items.length);
  const config = opts.url === undefined ? cliConfig() : undefined;

  const runOne = async (
    run: (request: RoiRequest, bytes: Uint8Array, features: boolean, name: string) => Promise<Buffer>,
    item: BatchItem,
  ) => {
    try {
      if (item.error !== undefined) throw new CliError(item.error);
      const features = isFeatureFile(item.image);
      const request = roiRequest({ ...opts, output: `out${ext}`, format }, item.boxes, features);
      // Two images of the same base name would overwrite each other's output: the later one fails instead.
      const target = join(opts.output, `${basename(item.image, extname(item.image))}${ext}`);
      const previous = outputs.get(target);
      if (previous !== undefined) throw new CliError(`${target} is already the output of ${previous}`);
      outputs.set(target, label(item));
      // Names are relative to DIR: a JSONL from elsewhere must not make the batch read `../../x`.
      const source = join(dir, item.image);
      const inside = relative(resolve(dir), resolve(source));
      if (inside === '' || inside.startsWith('..') || isAbsolute(inside)) {
        throw new CliError(`image: ${JSON.stringify(item.image)} is not a file inside ${dir}`);
      }
      const bytes = await readFile(source).catch((err: unknown) => {
        throw new CliError(
          `image: cannot read ${source} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
        );
      });
      await writeFile(target, await run(request, bytes, features, item.image));
      progress.tick(label(item), undefined);
    } catch (err) {
      const reason = cliErrorOf(err).message;
      failures.push({ image: label(item), reason });
      progress.tick(label(item), reason);
    }
  };

  /** Keeps `concurrency` items in flight: enough to keep every worker busy, never more than the queue takes. */
  const drain = async (concurrency: number, run: Parameters<typeof runOne>[0]) => {
    let next = 0;
    const lane = async () => {
      while (next < items.length) await runOne(run, items[next++]);
    };
    await Promise.all(Array.from({ length: Math.max(1, concurrency) }, lane));
  };

  if (config === undefined) {
    const remote = { url: opts.url as string, apiKey: opts.apiKey };
    await drain(4, (request, bytes, features, name) =>
      runRoiRemote(remote, request, bytes, features, name, `${name}: `),
    );
  } else {
    const limits = limitsFrom(config);
    await withPool(config, items.length, (pool) =>
      drain(Math.min(2 * pool.size, pool.size + pool.queueLimit), (request, bytes, features, name) =>
        runRoiLocal(pool, limits, request, bytes, features, `${name}: `),
      ),
    );
  }

  const ok = items.length - failures.length;
  const seconds = progress.elapsed;
  process.stderr.write(
    `roiserve: ${ok} of ${items.length} done in ${duration(seconds)} (${(items.length / Math.max(seconds, 1e-3)).toFixed(1)} images/s)` +
      `${failures.length > 0 ? `; ${failures.length} failed:` : ''}\n`,
  );
  for (const f of failures)
    process.stderr.write(`roiserve:   ${f.image}: ${f.reason.replace(/\n/g, '; ')}\n`);
  return failures.length > 0 ? EXIT_FAILURE : 0;
}
