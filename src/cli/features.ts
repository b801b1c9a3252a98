/** `roiserve features`: the backbone's feature map of an image (`POST /v1/features`), as `.npy` or JSON. */
import { writeFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { Command } from 'commander';
import { resolveMaxSide } from '../core/prepare.js';
import {
  CliError,
  cliConfig,
  intArg,
  postForm,
  printWarnings,
  printWarningsHeader,
  readInput,
  withPool,
  workForm,
  urlArg,
} from './common.js';

export function featuresCommand(): Command {
  return new Command('features')
    .summary("the backbone's feature map of an image, [1, C, H, W] (.npy or .json)")
    .description('Runs the backbone as POST /v1/features does, in-process or on a server with --url.')
    .argument('<image>', 'an image file')
    .requiredOption('-o, --output <file>', 'out.npy or out.json')
    .option(
      '--max-side <n>',
      'shrink the image so its longer side is at most n pixels',
      intArg('--max-side', 1),
    )
    .option('--url <url>', 'send the work to a running server instead', urlArg)
    .option('--api-key <key>', "the server's API_KEY (with --url)")
    .addHelpText('after', '\nExample:\n  roiserve features fixtures/photo.jpg -o photo-features.npy')
    .action(
      async (image: string, opts: { output: string; maxSide?: number; url?: string; apiKey?: string }) => {
        const ext = extname(opts.output).toLowerCase();
        if (ext !== '.npy' && ext !== '.json')
          throw new CliError(`-o ${opts.output}: use a .npy or .json file`);
        const format = ext === '.npy' ? 'npy' : 'json';
        const bytes = await readInput(image, 'IMAGE');
        let body: Buffer;
        if (opts.url !== undefined) {
          const form = workForm({ format, maxSide: opts.maxSide }, bytes, false, image);
          const res = await postForm({ url: opts.url, apiKey: opts.apiKey }, 'v1/features', form);
          printWarningsHeader(res.warnings);
          body = res.body;
        } else {
          const config = cliConfig();
          const { maxSide, warnings } = resolveMaxSide(opts.maxSide, config.maxImageSide);
          printWarnings(warnings);
          body = await withPool(
            config,
            1,
            async (pool) => (await pool.features(new Uint8Array(bytes), format, maxSide)).body,
          );
        }
        await writeFile(opts.output, body);
      },
    );
}
