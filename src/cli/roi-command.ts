/**
 * The `roiserve roi` command (flags, help, dispatch to one input or a batch). Apart from `./roi.ts`, the
 * work it runs, so that the batch (`./batch.ts`), which runs that work per file, and this command, which
 * loads the batch on demand, do not import each other.
 */
import { writeFile } from 'node:fs/promises';
import { Command, Option } from 'commander';
import { prepareRoi } from '../core/prepare.js';
import { limitsFrom, ROI_BOX_FORMATS } from '../core/task.js';
import { ROI_OPS } from '../ops/registry.js';
import { OUTPUT_DTYPES } from '../tensors/float16.js';
import {
  CliError,
  cliConfig,
  cliErrorOf,
  EXIT_USAGE,
  intArg,
  positiveArg,
  readInput,
  sizeArg,
  withPool,
  urlArg,
} from './common.js';
import {
  isFeatureFile,
  readBoxesFile,
  roiInputWith,
  roiRequest,
  runRoiLocal,
  runRoiRemote,
  type RoiCliOptions,
} from './roi.js';

/** The `roi` command. */
export function roiCommand(): Command {
  return new Command('roi')
    .summary('RoI Pool / Align / Warp of an image, a .npy feature map, or a folder of images')
    .description(
      "Runs the operators of POST /v1/roi, in-process (the service's own workers and encoders: the same " +
        'bytes) or, with --url, on a running server. INPUT is an image (PNG, JPEG, WebP, GIF, TIFF, AVIF), a ' +
        'float32 .npy feature map [N, C, H, W] (needs --spatial-scale), or a folder of images with --boxes ' +
        'a .jsonl file of {"image": "a.jpg", "boxes": [[...]]} lines and -o a folder (one output per image). ' +
        "The options are the API's fields in kebab case, with its defaults.",
    )
    .argument('<input>', 'image, .npy feature map, or folder of images')
    .requiredOption(
      '--boxes <file>',
      'JSON file: [[x1, y1, x2, y2], ...] (or {"boxes": [...]}); .jsonl for a folder',
    )
    .requiredOption('-o, --output <file>', 'out.npy, out.safetensors or out.json; a folder for a batch')
    .addOption(
      new Option(
        '--op <op...>',
        'operators (repeatable); default align for .npy, all three otherwise',
      ).choices(ROI_OPS),
    )
    .option('--output-size <n>', 'PH = PW, or PH,PW (default 7)', sizeArg('--output-size'))
    .option(
      '--sampling-ratio <n>',
      'samples per bin and axis; <= 0 adaptive (default 2)',
      intArg('--sampling-ratio'),
    )
    .option('--aligned', 'half-pixel offset (the default)')
    .option('--no-aligned', "no half-pixel offset (torchvision's aligned=False)")
    .addOption(
      new Option('--mode <mode>', 'bin reduction of align and warp (default avg)').choices([
        'avg',
        'max',
        'onnx_max',
      ]),
    )
    .option(
      '--spatial-scale <s>',
      'feature-map cells per image pixel; required with a .npy map',
      positiveArg('--spatial-scale'),
    )
    .addOption(
      new Option(
        '--box-format <f>',
        'coordinate order (default xyxy); cxcywha: rotated boxes (cx, cy, w, h, angle°) for --op rotated_align',
      ).choices(ROI_BOX_FORMATS),
    )
    .option('--clockwise', 'rotated boxes: the angle turns clockwise')
    .option(
      '--pyramid',
      "an image: pool each box from its level of the backbone's pyramid (strides 8, 16, 32)",
    )
    .option('--normalized', 'box coordinates are fractions of the image size')
    .option(
      '--max-side <n>',
      'shrink the image so its longer side is at most n pixels',
      intArg('--max-side', 1),
    )
    .option(
      '--image-size <w,h>',
      'the image a .npy map came from, [width, height]',
      sizeArg('--image-size', positiveArg('--image-size')),
    )
    .addOption(
      new Option('--layout <layout>', 'memory order of a .npy map (default NCHW)').choices(['NCHW', 'NHWC']),
    )
    .addOption(
      new Option('--format <format>', "output format (default: from -o's extension)").choices([
        'npy',
        'safetensors',
        'json',
      ]),
    )
    .addOption(
      new Option('--dtype <dtype>', 'element type of the outputs (default float32)').choices(OUTPUT_DTYPES),
    )
    .option('--url <url>', 'send the work to a running server (e.g. http://localhost:8080) instead', urlArg)
    .option('--api-key <key>', "the server's API_KEY (with --url)")
    .addHelpText(
      'after',
      `
Examples:
  roiserve roi fixtures/photo.jpg --boxes boxes.json --op align --no-aligned -o align.npy
  roiserve roi fixtures/features.npy --spatial-scale 0.5 --boxes boxes.json --output-size 2 -o roi.safetensors
  roiserve roi images/ --boxes boxes.jsonl -o out/             # one .npy per image, all cores
  roiserve roi fixtures/photo.jpg --boxes boxes.json -o align.npy --url http://localhost:8080`,
    )
    .action(async (input: string, opts: RoiCliOptions) => {
      const { stat } = await import('node:fs/promises');
      const info = await stat(input).catch(() => {
        throw new CliError(`INPUT: cannot read ${input} (no such file or folder)`, EXIT_USAGE);
      });
      if (info.isDirectory()) {
        const { runBatch } = await import('./batch.js');
        process.exitCode = await runBatch(input, opts);
        return;
      }
      const features = isFeatureFile(input);
      const boxes = await readBoxesFile(opts.boxes);
      const request = roiRequest(opts, boxes, features);
      const bytes = await readInput(input, 'INPUT');
      let out: Buffer;
      if (opts.url !== undefined) {
        out = await runRoiRemote({ url: opts.url, apiKey: opts.apiKey }, request, bytes, features, input);
      } else {
        const config = cliConfig();
        // Checked before the workers start: a bad request costs no backbone load.
        prepareRoi(roiInputWith(request, bytes, features), limitsFrom(config));
        out = await withPool(config, 1, (pool) =>
          runRoiLocal(pool, limitsFrom(config), request, bytes, features),
        );
      }
      await writeFile(opts.output, out).catch((err: unknown) => {
        throw cliErrorOf(new CliError(`-o ${opts.output}: ${(err as Error).message}`, 1));
      });
    });
}
