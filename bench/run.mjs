#!/usr/bin/env node
// Runs one benchmark: `pnpm --silent bench <name> [--quick]`.
//
// Prints the result as ONE JSON object on stdout (progress goes to stderr).
// Full mode also writes it to bench/results/<name>.json, with the machine it
// came from; quick mode (CI) only prints. Needs the workspace built
// (`npx tsc -b`); nothing else is compiled here.
import { mkdirSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { loadAverage, machineInfo } from './lib/common.mjs';

const BENCHMARKS = ['rollout-path', 'weight-sync', 'overlap', 'control-plane-cost', 'failover'];

const USAGE = `usage: pnpm --silent bench <name> [--quick]
  name: ${BENCHMARKS.join(' | ')}
  --quick  a short run (under a minute), printed only; CI runs this
Full runs also write bench/results/<name>.json; \`node bench/plot.mjs\`
then regenerates the plots and the tables in docs/benchmarks.md.
Set BENCH_CPU_PROF=<dir> to profile every child process with --cpu-prof.`;

async function main() {
  const { values, positionals } = parseArgs({
    args: process.argv.slice(2),
    options: { quick: { type: 'boolean', default: false }, help: { type: 'boolean', default: false } },
    allowPositionals: true,
    strict: true,
  });
  const name = positionals[0];
  if (values.help || !name || !BENCHMARKS.includes(name) || positionals.length > 1) {
    process.stderr.write(`${USAGE}\n`);
    process.exit(values.help ? 0 : 2);
  }
  const quick = values.quick;
  const machine = machineInfo();
  const started = new Date();
  const bench = await import(`./${name}.mjs`);
  const result = await bench.run({ quick });
  const output = {
    ...result,
    machine: { ...machine, loadAverage1mAtEnd: loadAverage() },
    startedAt: started.toISOString(),
    durationSeconds: Math.round((Date.now() - started.getTime()) / 100) / 10,
  };
  const json = JSON.stringify(output, null, 2);
  if (!quick) {
    const dir = new URL('./results/', import.meta.url);
    mkdirSync(dir, { recursive: true });
    writeFileSync(new URL(`${name}.json`, dir), `${json}\n`);
  }
  process.stdout.write(`${json}\n`);
}

main().then(
  // Lingering handles (gRPC channels, timers) must not keep a finished benchmark alive.
  () => process.exit(0),
  (err) => {
    process.stderr.write(`bench failed: ${err?.stack ?? err}\n`);
    process.exit(1);
  },
);
