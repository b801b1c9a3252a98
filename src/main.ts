/**
 * The entry point (`npm start`): reads the environment, builds the app, listens on HOST:PORT.
 * SIGTERM/SIGINT: stop accepting, let in-flight requests finish (up to SHUTDOWN_GRACE_SECONDS), exit 0.
 */
import closeWithGrace from 'close-with-grace';
import { ConfigError, loadConfig, type Config } from './config.js';
import { buildApp } from './server.js';

let config: Config;
try {
  config = loadConfig();
} catch (err) {
  if (err instanceof ConfigError) {
    console.error(`roiserve: refusing to start: ${err.message}`);
    process.exit(1);
  }
  throw err;
}

const app = await buildApp(config);

closeWithGrace({ delay: config.shutdownGraceSeconds * 1000 }, async ({ signal, err }) => {
  if (err) app.log.error({ err }, 'shutting down after an error');
  else app.log.info({ signal }, 'shutting down: draining in-flight requests');
  await app.close();
});

try {
  await app.listen({ host: config.host, port: config.port });
  // METRICS_PORT: /metrics lives only there (no key); see routes/metrics.ts.
  if (app.metricsListener && config.metricsPort !== undefined) {
    const address = await app.metricsListener.listen({ host: config.host, port: config.metricsPort });
    app.log.info(`metrics listening at ${address} (METRICS_PORT: GET /metrics, no key)`);
  }
} catch (err) {
  app.log.error({ err }, 'could not listen');
  await app.close();
  process.exit(1);
}

// A backbone that cannot load (bad BACKBONE_DIR, wrong stride, …) is a configuration error: exit 1.
void app.readiness.settled.then(async () => {
  if (app.readiness.state !== 'failed') return;
  app.log.fatal({ reason: app.readiness.error }, 'refusing to run: the backbone failed to load');
  await app.close();
  process.exit(1);
});
