#!/usr/bin/env node
import { TandemError, createLogger, type Logger } from '@tandem/common';
import { UsageError } from './commands/options.js';

// Commands are imported when used: `demo` and `up` load the whole control
// plane, which `runs` and `top` (thin HTTP clients) should not pay for.
const demo = () => import('./commands/demo-command.js');
const up = () => import('./commands/up-command.js');
const runs = () => import('./commands/runs-command.js');
const top = () => import('./commands/top-command.js');
const chaos = () => import('./commands/chaos-command.js');

const USAGE = `tandem: asynchronous RL fine-tuning control plane

usage: tandem <command> [options]

  demo        run the built-in demo on simulated GPUs (start here)
  up          run the control plane with the local runtime
  runs        submit, list, get, cancel, watch and scale runs
  top         live view of runs: staleness, utilisation, throughput
  chaos       kill processes and restart Redis during simulated runs; check the ledger

tandem <command> --help for the options of a command.`;

/** Parses the command line, runs the command, exits with its code. */
async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  const help = rest.includes('--help') || rest.includes('-h');
  const log = createLogger({ name: 'tandem', level: process.env.TANDEM_LOG_LEVEL ?? 'warn' });
  const abort = new AbortController();
  let interrupts = 0;
  const onSignal = (): void => {
    interrupts++;
    if (interrupts > 1) process.exit(130); // a second Ctrl-C does not wait
    process.stderr.write('\nstopping (everything this command started is being shut down)...\n');
    abort.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  switch (command) {
    case 'demo':
      if (help) return usage((await demo()).DEMO_USAGE);
      // Ctrl-C cancels the run, so the demo ends in an error ("run ... ended
      // Cancelled"): that is the interrupt, not a failure, and exits 130.
      return (await demo()).demoCommand(rest, log, abort.signal).then(
        (code: number) => (abort.signal.aborted ? 130 : code),
        (err: unknown) => {
          if (abort.signal.aborted) return 130;
          throw err;
        },
      );
    case 'up':
      if (help) return usage((await up()).UP_USAGE);
      return (await up()).upCommand(rest, log, abort.signal);
    case 'runs':
      if (help || rest.length === 0) return usage((await runs()).RUNS_USAGE);
      return (await runs()).runsCommand(rest);
    case 'top':
      if (help) return usage((await top()).TOP_USAGE);
      return (await top()).topCommand(rest, abort.signal);
    case 'chaos':
      if (help) return usage((await chaos()).CHAOS_USAGE);
      return (await chaos()).chaosCommand(rest, chaosLog(log), abort.signal).then((code: number) => (abort.signal.aborted ? 130 : code));
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      return usage(USAGE);
    default:
      throw new UsageError(`unknown command '${command}'\n\n${USAGE}`);
  }
}

/**
 * The chaos suite kills processes on purpose: the restarts and reconnects
 * it causes would fill the terminal at warn level. Errors still show;
 * TANDEM_LOG_LEVEL set explicitly wins.
 */
function chaosLog(log: Logger): Logger {
  if (process.env.TANDEM_LOG_LEVEL === undefined) log.level = 'error';
  return log;
}

function usage(text: string): number {
  process.stdout.write(`${text}\n`);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    const e = TandemError.from(err);
    const usageError = err instanceof UsageError || (err instanceof Error && 'code' in err && String((err as { code: unknown }).code).startsWith('ERR_PARSE_ARGS'));
    process.stderr.write(`tandem: ${usageError ? (err as Error).message : e.message}\n`);
    process.exit(usageError ? 2 : 1);
  },
);
