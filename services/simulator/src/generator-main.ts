/**
 * Entry point of the simulated vLLM generator process:
 *
 *     node services/simulator/dist/generator-main.js --port 0 --time-scale 0.01 --seed 7
 *
 * Flags (and TANDEM_SIM_* variables) are listed by `--help`, from the table
 * in generator/config.ts.
 * Prints one JSON line `{"event":"listening","url":...}` on stdout when it
 * serves (stdout is machine-readable; logs go to stderr), and exits cleanly
 * on SIGTERM / SIGINT.
 */
import { createLogger, systemClock, TandemError, watchParent } from '@tandem/common';
import { generatorHelp, loadGeneratorProcessConfig } from './generator/config.js';
import { createGeneratorServer } from './generator/server.js';
import { wantsHelp } from './process-flags.js';

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (wantsHelp(argv)) {
    process.stdout.write(generatorHelp(), () => process.exit(0));
    return;
  }
  let config;
  try {
    config = loadGeneratorProcessConfig({ argv, env: process.env });
  } catch (err) {
    process.stderr.write(`simulated generator: ${TandemError.from(err).message.replace(/\s+/g, ' ')}\n`);
    process.exit(2);
  }
  const logger = createLogger({ name: 'tandem-sim-generator', level: config.logLevel });
  const server = createGeneratorServer(config.generator, {
    clock: systemClock,
    logger,
    // The die-after-N fault: a crashed pod, not a graceful shutdown.
    onDie: () => process.exit(1),
  });
  const url = await server.listen(config.port, config.host);
  process.stdout.write(
    `${JSON.stringify({ event: 'listening', url, model: config.generator.model, simulated: true })}\n`,
  );
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    server.close().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  watchParent(() => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((err: unknown) => {
  process.stderr.write(`simulated generator failed: ${TandemError.from(err).message}\n`);
  process.exit(1);
});
