#!/usr/bin/env node
/**
 * `roiserve`: the service's commands from a shell (`bin` in package.json, so `npx roiserve …` works
 * from a clone after `npm run build`). Each command lives in its own module; this file wires them to
 * commander and turns errors into a message on stderr and an exit code (2: usage or input, 1: other).
 */
import { Command, CommanderError } from 'commander';
import { backboneCommand } from './backbone.js';
import { cliErrorOf, EXIT_USAGE } from './common.js';
import { diffCommand } from './diff.js';
import { featuresCommand } from './features.js';
import { roiCommand } from './roi-command.js';
import { serveCommand } from './serve.js';

/** The program, with every command (exported for tests and `--help` checks). */
export function program(): Command {
  const cli = new Command('roiserve')
    .description('RoI Pool, RoI Align and RoI Warp: the HTTP service, and its operations from a shell')
    .showHelpAfterError('(add --help for usage)')
    .addHelpText(
      'after',
      `
Examples:
  roiserve serve                                              # the HTTP service (npm start)
  roiserve roi fixtures/photo.jpg --boxes boxes.json -o align.npy
  roiserve roi --help`,
    );
  for (const command of [serveCommand(), roiCommand(), diffCommand(), featuresCommand(), backboneCommand()]) {
    cli.addCommand(command.exitOverride().showHelpAfterError('(add --help for usage)'));
  }
  return cli.exitOverride();
}

try {
  await program().parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    // commander printed the message (or the help) already; usage errors exit 2, --help / --version 0.
    process.exitCode = err.exitCode === 0 ? 0 : EXIT_USAGE;
  } else {
    const failure = cliErrorOf(err);
    process.stderr.write(`roiserve: ${failure.message.replace(/\n/g, '\nroiserve: ')}\n`);
    process.exitCode = failure.code;
  }
}
