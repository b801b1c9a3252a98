/**
 * `roiserve diff`: the visual diff of RoI Pool, Align and Warp (`POST /v1/diff`) as a PNG sheet or
 * JSON: the options become the core's typed input (as `roi`'s do, `./roi.ts`), checked by the core's
 * `prepareRoi` and rendered by the service's workers.
 */
import { writeFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { Command, Option } from 'commander';
import { CHANNEL_REDUCTIONS, DIFF_DEFAULTS, MAX_DIFF_BOXES } from '../core/diff-options.js';
import { limitsFrom } from '../core/task.js';
import { prepareRoi } from '../core/prepare.js';
import type { ChannelSelect } from '../imaging/render.js';
import { COMPARED_OPS } from '../ops/registry.js';
import {
  CliError,
  cliConfig,
  intArg,
  positiveArg,
  postForm,
  printWarnings,
  printWarningsHeader,
  readInput,
  sizeArg,
  withPool,
  workForm,
  urlArg,
} from './common.js';
import { isFeatureFile, readBoxesFile, roiInputWith, roiRequest } from './roi.js';

interface DiffCliOptions {
  boxes: string;
  output: string;
  outputSize?: number | [number, number];
  samplingRatio?: number;
  aligned?: boolean;
  mode?: string;
  spatialScale?: number;
  boxFormat?: string;
  normalized?: boolean;
  maxSide?: number;
  layout?: string;
  maxBoxes?: number;
  channel?: string;
  url?: string;
  apiKey?: string;
}

export function diffCommand(): Command {
  return new Command('diff')
    .summary('pictures of what RoI Pool, Align and Warp keep, lose and gain (PNG sheet or JSON)')
    .description('Runs POST /v1/diff in-process (or on a server with --url); -o sheet.png or -o diff.json.')
    .argument('<input>', 'an image, or a .npy feature map (needs --spatial-scale)')
    .requiredOption('--boxes <file>', 'JSON file: [[x1, y1, x2, y2], ...] (or {"boxes": [...]})')
    .requiredOption('-o, --output <file>', 'sheet.png or diff.json')
    .option('--output-size <n>', 'PH = PW, or PH,PW (default 7)', sizeArg('--output-size'))
    .option('--sampling-ratio <n>', 'samples per bin and axis (default 2)', intArg('--sampling-ratio'))
    .option('--aligned', 'half-pixel offset (the default)')
    .option('--no-aligned', 'no half-pixel offset')
    .addOption(new Option('--mode <mode>', 'bin reduction (default avg)').choices(['avg', 'max', 'onnx_max']))
    .option(
      '--spatial-scale <s>',
      'feature-map cells per image pixel; required with a .npy map',
      positiveArg('--spatial-scale'),
    )
    .addOption(
      new Option('--box-format <f>', 'coordinate order (default xyxy)').choices([
        'xyxy',
        'xywh',
        'cxcywh',
        'yxyx',
      ]),
    )
    .option('--normalized', 'box coordinates are fractions of the image size')
    .option(
      '--max-side <n>',
      'shrink the image so its longer side is at most n pixels',
      intArg('--max-side', 1),
    )
    .addOption(
      new Option('--layout <layout>', 'memory order of a .npy map (default NCHW)').choices(['NCHW', 'NHWC']),
    )
    .option(
      '--max-boxes <n>',
      `boxes that get a row of panels (default 8, at most ${MAX_DIFF_BOXES})`,
      intArg('--max-boxes', 0, MAX_DIFF_BOXES),
    )
    .option('--channel <c>', 'a channel index, or mean, meanabs (default), max')
    .option('--url <url>', 'send the work to a running server instead', urlArg)
    .option('--api-key <key>', "the server's API_KEY (with --url)")
    .addHelpText('after', '\nExample:\n  roiserve diff fixtures/photo.jpg --boxes boxes.json -o sheet.png')
    .action(async (input: string, opts: DiffCliOptions) => {
      const ext = extname(opts.output).toLowerCase();
      if (ext !== '.png' && ext !== '.json')
        throw new CliError(`-o ${opts.output}: use a .png or .json file`);
      const features = isFeatureFile(input);
      const channel = channelOf(opts.channel);
      const format = ext === '.png' ? 'png' : 'json';
      // `roi`'s request with a format that passes its `.npy` check; the diff runs all three ops.
      const request = roiRequest(
        // `--layout` goes through as given: with an image it is refused, as `roi` refuses it (it used to be
        // ignored here without a word).
        {
          ...opts,
          op: [...COMPARED_OPS],
          output: 'diff.json',
          format: 'json',
        },
        await readBoxesFile(opts.boxes),
        features,
      );
      const bytes = new Uint8Array(await readInput(input, 'INPUT'));
      let out: Buffer;
      if (opts.url !== undefined) {
        const { ops: _ops, ...fields } = request.input;
        const form = workForm(
          { ...fields, layout: request.layout, maxBoxes: opts.maxBoxes, channel, format },
          bytes,
          features,
          input,
        );
        const res = await postForm({ url: opts.url, apiKey: opts.apiKey }, 'v1/diff', form);
        printWarningsHeader(res.warnings);
        out = res.body;
      } else {
        const config = cliConfig();
        const task = prepareRoi(roiInputWith(request, bytes, features), limitsFrom(config), true, true);
        const result = await withPool(config, 1, (pool) =>
          pool.diff(task, {
            maxBoxes: opts.maxBoxes ?? DIFF_DEFAULTS.maxBoxes,
            channel: channel ?? DIFF_DEFAULTS.channel,
            format,
          }),
        );
        printWarnings(result.warnings);
        out = result.body;
      }
      await writeFile(opts.output, out);
    });
}

/**
 * `--channel`: a channel index (digits) or one of the reductions; undefined: the default (meanabs).
 *
 * @throws CliError naming `--channel`
 */
function channelOf(value: string | undefined): ChannelSelect | undefined {
  if (value === undefined) return undefined;
  if (/^\d+$/.test(value)) return Number(value);
  if ((CHANNEL_REDUCTIONS as readonly string[]).includes(value)) return value as ChannelSelect;
  throw new CliError(
    `--channel: "${value}" is neither a channel index nor one of ${CHANNEL_REDUCTIONS.join(', ')}`,
  );
}
