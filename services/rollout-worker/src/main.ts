import { createLogger, watchParent } from '@tandem/common';
import { loadConfig } from './config.js';
import { WorkerProcess } from './worker-process.js';

/** Runs one rollout worker until its run ends or SIGINT/SIGTERM. */
async function main(): Promise<void> {
  const config = loadConfig(process.env);
  const log = createLogger({ name: 'rollout-worker', level: config.logLevel });
  const worker = await WorkerProcess.start(config, { log });
  const stop = new AbortController();
  process.once('SIGINT', () => stop.abort());
  process.once('SIGTERM', () => stop.abort());
  watchParent(() => stop.abort());
  const reason = await worker.untilRunEnds(stop.signal);
  log.info({ reason }, 'stopping');
  await worker.stop();
  process.exit(0);
}

main().catch((err: unknown) => {
  process.stderr.write(`rollout worker failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
