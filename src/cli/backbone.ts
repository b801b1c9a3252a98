/** `roiserve backbone`: the backbone description (`GET /v1/backbone`) as JSON on stdout. */
import { Command } from 'commander';
import { cliConfig, getRemote, withPool, urlArg } from './common.js';

export function backboneCommand(): Command {
  return new Command('backbone')
    .summary('describe the backbone: layers, shapes, stride, backend (JSON)')
    .description('Prints what GET /v1/backbone answers: loaded in-process, or from a server with --url.')
    .option('--url <url>', 'ask a running server instead', urlArg)
    .option('--api-key <key>', "the server's API_KEY (with --url)")
    .addHelpText(
      'after',
      '\nExample:\n  roiserve backbone | python3 -c "import json, sys; print(json.load(sys.stdin)[\'stride\'])"',
    )
    .action(async (opts: { url?: string; apiKey?: string }) => {
      const description =
        opts.url !== undefined
          ? JSON.parse(
              (await getRemote({ url: opts.url, apiKey: opts.apiKey }, 'v1/backbone')).body.toString('utf8'),
            )
          : await withPool(cliConfig(), 1, (pool) => pool.describe());
      process.stdout.write(`${JSON.stringify(description, null, 2)}\n`);
    });
}
