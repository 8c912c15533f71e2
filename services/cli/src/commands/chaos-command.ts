import { parseArgs } from 'node:util';
import type { Logger } from '@tandem/common';
import { CHAOS_GENERATORS, CHAOS_MODES, CHAOS_ROLLOUT_WORKERS } from '../chaos/chaos-spec.js';
import { formatChaosTable } from '../chaos/chaos-table.js';
import { runChaos } from '../chaos/run-chaos.js';
import { CHAOS_SCENARIOS, selectScenarios } from '../chaos/scenarios.js';
import { UsageError, intOption } from './options.js';

export const CHAOS_USAGE = `usage: tandem chaos [--quick] [--json] [--seed S] [--scenario NAME]...

Runs the chaos suite on simulated runs: for each scenario its own Redis
(AOF on, appendfsync everysec), a control plane with the local runtime (for
kill-leader: a leader and a standby replica as processes) and a run with
${CHAOS_GENERATORS} generators and ${CHAOS_ROLLOUT_WORKERS} rollout workers; at seeded moments the fault is
injected; then the run must succeed and its ledger must balance with
nothing lost, nothing trained twice and nothing older than k trained.
  --quick          ${CHAOS_MODES.quick.faults} fault in a ${CHAOS_MODES.quick.steps}-step run per scenario (CI); without it,
                   ${CHAOS_MODES.long.faults} faults in a ${CHAOS_MODES.long.steps}-step run
  --json           print the result as one JSON object on stdout
  --seed S         seed of the fault moments and victims (default 1)
  --scenario NAME  run only this scenario (repeatable); one of:
${CHAOS_SCENARIOS.map((s) => `    ${s.name}\n${wrap(s.description, 6, 78)}`).join('\n')}
Exits 1 when any scenario fails.`;

/** `tandem chaos`. Returns the process exit code. */
export async function chaosCommand(argv: string[], log: Logger, signal: AbortSignal): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      seed: { type: 'string', default: '1' },
      scenario: { type: 'string', multiple: true, default: [] },
    },
    strict: true,
  });
  const scenarios = values.scenario ?? [];
  try {
    selectScenarios(scenarios);
  } catch (err) {
    throw new UsageError(`--scenario: ${(err as Error).message}`);
  }
  const report = await runChaos({
    mode: values.quick ? 'quick' : 'long',
    seed: intOption('--seed', values.seed, 0, 2 ** 31 - 1),
    scenarios,
    log,
    signal,
    onProgress: (line) => process.stderr.write(`tandem chaos: ${line}\n`),
  });
  if (values.json) process.stdout.write(`${JSON.stringify(report)}\n`);
  else process.stdout.write(formatChaosTable(report));
  return report.passed ? 0 : 1;
}

/** `text` wrapped at `width` columns, each line indented by `indent` spaces. */
function wrap(text: string, indent: number, width: number): string {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line !== '' && indent + line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line === '' ? word : `${line} ${word}`;
  }
  if (line !== '') lines.push(line);
  return lines.map((l) => `${' '.repeat(indent)}${l}`).join('\n');
}
