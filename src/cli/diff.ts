/**
 * `roiserve diff`: the visual diff of RoI Pool, Align and Warp (`POST /v1/diff`) as a PNG sheet or
 * JSON, validated by the route's own schema and rendered by the service's workers.
 */
import { writeFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { Command, Option } from 'commander';
import { diffBodySchema } from '../../routes/v1/schemas/diff.js';
import { roiInputOf } from '../../routes/v1/schemas/request.js';
import { limitsFrom } from '../core/task.js';
import { prepareRoi } from '../core/prepare.js';
import { COMPARED_OPS } from '../ops/registry.js';
import {
  CliError,
  cliConfig,
  numberArg,
  parseBody,
  postForm,
  printWarnings,
  printWarningsHeader,
  readInput,
  sizeArg,
  withPool,
  workForm,
} from './common.js';
import { isFeatureFile, readBoxesFile } from './roi.js';

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
    .option('--sampling-ratio <n>', 'samples per bin and axis (default 2)', numberArg('--sampling-ratio'))
    .option('--aligned', 'half-pixel offset (the default)')
    .option('--no-aligned', 'no half-pixel offset')
    .addOption(new Option('--mode <mode>', 'bin reduction (default avg)').choices(['avg', 'max', 'onnx_max']))
    .option(
      '--spatial-scale <s>',
      'feature-map cells per image pixel; required with a .npy map',
      numberArg('--spatial-scale'),
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
      numberArg('--max-side'),
    )
    .addOption(
      new Option('--layout <layout>', 'memory order of a .npy map (default NCHW)').choices(['NCHW', 'NHWC']),
    )
    .option('--max-boxes <n>', 'boxes that get a row of panels (default 8)', numberArg('--max-boxes'))
    .option('--channel <c>', 'a channel index, or mean, meanabs (default), max')
    .option('--url <url>', 'send the work to a running server instead')
    .option('--api-key <key>', "the server's API_KEY (with --url)")
    .addHelpText('after', '\nExample:\n  roiserve diff fixtures/photo.jpg --boxes boxes.json -o sheet.png')
    .action(async (input: string, opts: DiffCliOptions) => {
      const ext = extname(opts.output).toLowerCase();
      if (ext !== '.png' && ext !== '.json')
        throw new CliError(`-o ${opts.output}: use a .png or .json file`);
      const features = isFeatureFile(input);
      const channel =
        opts.channel === undefined
          ? undefined
          : /^\d+$/.test(opts.channel)
            ? Number(opts.channel)
            : opts.channel;
      const raw: Record<string, unknown> = {
        boxes: await readBoxesFile(opts.boxes),
        outputSize: opts.outputSize,
        samplingRatio: opts.samplingRatio,
        aligned: opts.aligned,
        mode: opts.mode,
        spatialScale: opts.spatialScale,
        boxFormat: opts.boxFormat,
        normalized: opts.normalized,
        maxSide: opts.maxSide,
        maxBoxes: opts.maxBoxes,
        channel,
        format: ext === '.png' ? 'png' : 'json',
        ...(features
          ? { features: { shape: [1, 1, 1, 1], data: '', layout: opts.layout } }
          : { image: '(file)' }),
      };
      for (const key of Object.keys(raw)) if (raw[key] === undefined) delete raw[key];
      const body = parseBody(diffBodySchema, raw);
      const bytes = new Uint8Array(await readInput(input, 'INPUT'));
      let out: Buffer;
      if (opts.url !== undefined) {
        const form = workForm(raw, bytes, features, input);
        const res = await postForm({ url: opts.url, apiKey: opts.apiKey }, 'v1/diff', form);
        printWarningsHeader(res.warnings);
        out = res.body;
      } else {
        const config = cliConfig();
        const parts = features ? { features: bytes } : { image: bytes };
        const task = prepareRoi(
          { ...roiInputOf(body, parts), ops: COMPARED_OPS },
          limitsFrom(config),
          true,
          true,
        );
        const result = await withPool(config, 1, (pool) =>
          pool.diff(task, { maxBoxes: body.maxBoxes, channel: body.channel, format: body.format }),
        );
        printWarnings(result.warnings);
        out = result.body;
      }
      await writeFile(opts.output, out);
    });
}
