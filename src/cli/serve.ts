/** `roiserve serve`: the HTTP service, exactly what `npm start` runs (`src/main.ts`, configured by the environment). */
import { Command } from 'commander';

export function serveCommand(): Command {
  return new Command('serve')
    .summary('run the HTTP service (what npm start runs)')
    .description('Starts the HTTP service on HOST:PORT, configured by the environment (see the README).')
    .addHelpText('after', '\nExample:\n  PORT=8080 WORKERS=2 roiserve serve')
    .action(async () => {
      // main.ts reads the environment, listens, and handles SIGTERM: importing it is starting the service.
      await import('../main.js');
    });
}
