import { createLogger } from '@tandem/common';
import { loadConfig } from './config.js';
import { ControlPlane } from './control-plane.js';

/** Wires real clients together and runs until SIGINT/SIGTERM. */
async function main(): Promise<void> {
  const config = loadConfig(process.env);
  const log = createLogger({ name: 'control-plane', level: config.logLevel });
  const plane = await ControlPlane.create(config, {
    log,
    // With leader election: one line each time this replica takes the runs over (tests, bench/failover.mjs).
    onTakeover: (t) => process.stdout.write(`${JSON.stringify({ event: 'leading', ...t })}\n`),
  });
  const addresses = await plane.start();
  // One machine-readable line for whoever started us (CLI, tests).
  process.stdout.write(`${JSON.stringify({ event: 'listening', ...addresses })}\n`);
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    plane.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

main().catch((err: unknown) => {
  process.stderr.write(`control plane failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
