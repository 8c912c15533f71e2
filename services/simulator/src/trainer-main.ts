/**
 * The simulated trainer process:
 *
 *   node dist/trainer-main.js --server 127.0.0.1:50051 --run-id demo \
 *     [--ms-per-kilo-token N] [--step-overhead-ms N] [--time-scale F] \
 *     [--checkpoint PATH] [--trained-log PATH] [--crash-at-step N] [--log-level info]
 *
 * (every flag also reads an environment variable; `--help` lists them all,
 * from the table in trainer/config.ts).
 * Logs go to stderr; stdout carries one JSON line at the end,
 * `{"event":"done", ...report}`. Exit 0 when the run is trained, ended by
 * the control plane, or stopped by SIGTERM/SIGINT; 1 with a one-line message
 * on stderr on failure; 2 for bad flags.
 */
import { hostname } from 'node:os';
import { TandemError, createLogger, systemClock, watchParent } from '@tandem/common';
import { loadTrainerProcessConfig, trainerHelp, type TrainerProcessConfig } from './trainer/config.js';
import { JsonFileCheckpointStore } from './trainer/checkpoint-store.js';
import { JsonlTrainedLog } from './trainer/trained-log.js';
import { createTrainerClient } from './trainer/trainer-rpc.js';
import { SimulatedTrainer } from './trainer/simulated-trainer.js';
import { wantsHelp } from './process-flags.js';

async function main(): Promise<number> {
  if (wantsHelp(process.argv.slice(2))) {
    await writeLine(process.stdout, trainerHelp().trimEnd());
    return 0;
  }
  let config: TrainerProcessConfig;
  try {
    const env = { ...process.env, TANDEM_TRAINER_ID: process.env.TANDEM_TRAINER_ID ?? `sim-trainer-${hostname()}-${process.pid}` };
    config = loadTrainerProcessConfig({ argv: process.argv.slice(2), env });
  } catch (err: unknown) {
    process.stderr.write(`simulated trainer: ${oneLine(err)}\n`);
    return 2;
  }
  const log = createLogger({ name: 'simulated-trainer', level: config.logLevel });
  const t = config.trainer;
  const client = createTrainerClient(t);
  const trainer = new SimulatedTrainer({
    client,
    clock: systemClock,
    log,
    config: t,
    ...(t.checkpointPath ? { checkpoints: new JsonFileCheckpointStore(t.checkpointPath) } : {}),
    ...(t.trainedLogPath ? { trainedLog: new JsonlTrainedLog(t.trainedLogPath) } : {}),
    crash: () => process.kill(process.pid, 'SIGKILL'),
  });
  process.once('SIGTERM', () => trainer.stop('SIGTERM'));
  watchParent(() => trainer.stop('SIGTERM'));
  process.once('SIGINT', () => trainer.stop('SIGINT'));
  try {
    const report = await trainer.run();
    await writeLine(process.stdout, JSON.stringify({ event: 'done', ...report }));
    return 0;
  } catch (err: unknown) {
    log.error({ err }, 'simulated trainer failed');
    // pino writes asynchronously: flush it so the one-line summary is last.
    await new Promise<void>((resolve) => log.flush(() => resolve()));
    process.stderr.write(`simulated trainer failed: ${oneLine(err)}\n`);
    return 1;
  } finally {
    client.close();
  }
}

function oneLine(err: unknown): string {
  const e = err instanceof TandemError ? err : TandemError.from(err);
  return `${e.code === 'INTERNAL' ? '' : `${e.code}: `}${e.message}`.replace(/\s+/g, ' ');
}

function writeLine(stream: NodeJS.WritableStream, line: string): Promise<void> {
  return new Promise((resolve) => stream.write(`${line}\n`, () => resolve()));
}

// Exit explicitly: a grpc-js channel or a pending timer must not keep a
// finished trainer alive.
main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`simulated trainer crashed: ${oneLine(err)}\n`);
    process.exit(1);
  },
);
