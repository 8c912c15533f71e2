import { parseArgs } from 'node:util';
import type { Logger } from '@tandem/common';
import { runDemo, type DemoResult } from '../demo/run-demo.js';
import type { RunSummary } from '../demo/run-summary.js';
import { intOption, numberOption } from './options.js';

export const DEMO_USAGE = `usage: tandem demo [--steps N] [--max-age K] [--generators N] [--seed S]
                   [--time-scale F] [--compare-sync] [--json] [--redis-url URL]

Runs the built-in demo: an asynchronous GRPO run on simulated generators and a
simulated trainer, with live progress on stderr and a summary at the end.
  --steps N         optimizer steps (default 20)
  --max-age K       maxTrajectoryAgeSteps, the staleness bound (default 1)
  --generators N    simulated vLLM generators (default 4)
  --seed S          seed of the dataset and the simulators (default 0)
  --time-scale F    wall seconds per simulated second (default 0.1)
  --compare-sync    first run the same workload with k = 0, then report the
                    speedup next to its ideal bound
  --json            print one JSON object on stdout at the end
  --redis-url URL   Redis to use; one is started when none answers
                    (default redis://127.0.0.1:6379)`;

/** `tandem demo`. Returns the process exit code. */
export async function demoCommand(argv: string[], log: Logger, signal: AbortSignal): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      steps: { type: 'string', default: '20' },
      'max-age': { type: 'string', default: '1' },
      generators: { type: 'string', default: '4' },
      seed: { type: 'string', default: '0' },
      'time-scale': { type: 'string', default: '0.1' },
      'compare-sync': { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      'redis-url': { type: 'string', default: 'redis://127.0.0.1:6379' },
      'http-port': { type: 'string', default: '0' },
      'grpc-port': { type: 'string', default: '0' },
    },
    strict: true,
  });
  const result = await runDemo(
    {
      steps: intOption('--steps', values.steps, 1, 100_000),
      maxAgeSteps: intOption('--max-age', values['max-age'], 0, 64),
      generators: intOption('--generators', values.generators, 1, 256),
      seed: intOption('--seed', values.seed, 0, 2 ** 31 - 1),
      timeScale: numberOption('--time-scale', values['time-scale'], 0.001, 10),
      compareSync: values['compare-sync'] ?? false,
      redisUrl: values['redis-url'] ?? 'redis://127.0.0.1:6379',
      httpPort: intOption('--http-port', values['http-port'], 0, 65535),
      grpcPort: intOption('--grpc-port', values['grpc-port'], 0, 65535),
    },
    log,
    signal,
  );
  if (values.json) process.stdout.write(`${JSON.stringify(result)}\n`);
  else process.stderr.write(formatSummary(result));
  return 0;
}

function formatSummary(r: DemoResult): string {
  const pct = (x: number): string => `${(x * 100).toFixed(1)}%`;
  const block = (s: RunSummary, title: string): string =>
    `${title} (simulated)\n` +
    `  run ${s.runId}: ${s.steps} steps in ${s.wallSeconds.toFixed(1)} s, k = ${s.maxTrajectoryAgeSteps}\n` +
    `  ledger: admitted ${s.groupsAdmitted} = trained ${s.groupsTrained} + dropped-stale ${s.groupsDroppedStale}` +
    ` + failed ${s.groupsFailed} + cancelled ${s.groupsCancelled}\n` +
    `  staleness: mean age ${s.meanAge.toFixed(2)} steps, max ${s.maxAgeObserved} (bound ${s.maxTrajectoryAgeSteps})\n` +
    `  idle: trainer ${pct(s.trainerIdleRatio)}, generators ${pct(s.generatorIdleRatio)}\n` +
    `  weight syncs: ${s.weightSyncs} to ${s.generators} generators, p50 ${s.weightSyncP50Ms.toFixed(0)} ms, p99 ${s.weightSyncP99Ms.toFixed(0)} ms\n`;
  let out = '\n';
  if (r.sync) out += block(r.sync, 'Synchronous RL');
  out += block(r, r.maxTrajectoryAgeSteps === 0 ? 'Synchronous RL' : 'Asynchronous RL');
  if (r.speedup !== undefined && r.idealSpeedup !== undefined) {
    out +=
      `speedup ${r.speedup.toFixed(2)}x over synchronous, ideal bound ${r.idealSpeedup.toFixed(2)}x` +
      ` ((T_gen + T_train) / max(T_gen, T_train) from the synchronous run's phase times): ${pct(r.speedupOverIdeal ?? 0)} of ideal\n`;
  }
  return out;
}
