import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startRedisServer, type RedisServerHandle } from '@tandem/testkit';
import { assertCliBuilt, runCli, startCli, startTandemUp, type CliResult, type TandemUp } from './support-cli/cli-process.js';
import { waitFor } from './support-cli/wait.js';

/**
 * End-to-end tests of the `tandem` CLI: the `demo --json` contract, and the
 * `runs` commands against a real `tandem up` (control plane with the local
 * runtime, real Redis, real child processes), including exit codes and
 * error messages. Timeouts are limits, never expectations.
 */

beforeAll(() => assertCliBuilt());

/** Every error the CLI reports is one line on stderr, prefixed `tandem:`, and nothing on stdout. */
function expectOneLineError(r: CliResult, code: number, pattern: RegExp): void {
  expect(r.code, `stdout: ${r.stdout}\nstderr: ${r.stderr}`).toBe(code);
  expect(r.stdout).toBe('');
  expect(r.stderr.endsWith('\n')).toBe(true);
  const lines = r.stderr.trimEnd().split('\n');
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^tandem: /);
  expect(lines[0]).toMatch(pattern);
}

/** The `--json` fields the demo promises (the list). */
const DEMO_FIELDS = [
  'runId', 'simulated', 'maxTrajectoryAgeSteps', 'steps', 'groupsTrained', 'groupsDroppedStale', 'groupsFailed',
  'groupsCancelled', 'groupsAdmitted', 'maxAgeObserved', 'meanAge', 'trainerIdleRatio', 'generatorIdleRatio',
  'wallSeconds', 'weightSyncs', 'weightSyncP50Ms', 'weightSyncP99Ms', 'generators',
] as const;

describe('tandem demo --json', () => {
  let redis: RedisServerHandle;
  beforeAll(async () => {
    redis = await startRedisServer();
  });
  afterAll(async () => {
    await redis?.stop();
  });

  it('trains 30 steps within the staleness bound and prints exactly one JSON object on stdout', async () => {
    const steps = 30;
    const r = await runCli(
      ['demo', '--json', '--steps', String(steps), '--max-age', '1', '--time-scale', '0.02', '--redis-url', redis.url],
      { timeoutMs: 400_000 },
    );
    expect(r.code, r.stderr.slice(-3000)).toBe(0);

    // stdout is one JSON object on one line; progress went to stderr.
    expect(r.stdout.endsWith('\n')).toBe(true);
    const lines = r.stdout.split('\n').filter((l) => l !== '');
    expect(lines).toHaveLength(1);
    const out = JSON.parse(lines[0] as string) as Record<string, unknown>;
    expect(typeof out === 'object' && out !== null && !Array.isArray(out)).toBe(true);
    expect(r.stderr).toMatch(/async k=1 \[[#.]+\] step\s+\d+\/30/);
    expect(r.stderr).toContain(`step  ${steps}/${steps}`);

    for (const field of DEMO_FIELDS) expect(out, `field ${field}`).toHaveProperty(field);
    for (const field of DEMO_FIELDS.filter((f) => f !== 'runId' && f !== 'simulated')) {
      expect(typeof out[field], `field ${field}`).toBe('number');
      expect(Number.isFinite(out[field]), `field ${field}`).toBe(true);
    }
    expect(out.runId).toMatch(/^run-[0-9a-f]+$/);
    expect(out.simulated).toBe(true);
    expect(out.phase).toBe('Succeeded');
    expect(out.maxTrajectoryAgeSteps).toBe(1);
    expect(out.steps).toBe(steps);
    expect(out.generators).toBe(4);

    // The staleness contract: nothing dropped, nothing older than k = 1.
    expect(out.groupsDroppedStale).toBe(0);
    expect(out.maxAgeObserved as number).toBeLessThanOrEqual(1);
    expect(out.meanAge as number).toBeGreaterThanOrEqual(0);
    expect(out.meanAge as number).toBeLessThanOrEqual(1);
    // The ledger balances, and every step trained a full batch (16 groups).
    expect(out.groupsAdmitted).toBe(
      (out.groupsTrained as number) + (out.groupsDroppedStale as number) + (out.groupsFailed as number) + (out.groupsCancelled as number),
    );
    expect(out.groupsTrained).toBe(steps * 16);

    for (const ratio of ['trainerIdleRatio', 'generatorIdleRatio'] as const) {
      expect(out[ratio] as number).toBeGreaterThanOrEqual(0);
      expect(out[ratio] as number).toBeLessThanOrEqual(1);
    }
    expect(out.wallSeconds as number).toBeGreaterThan(0);
    expect(out.weightSyncs as number).toBeGreaterThanOrEqual(1);
    expect(out.weightSyncs as number).toBeLessThanOrEqual(steps + 1);
    expect(out.weightSyncP50Ms as number).toBeGreaterThan(0);
    expect(out.weightSyncP50Ms as number).toBeLessThanOrEqual(out.weightSyncP99Ms as number);
  }, 420_000);
});

// The tests below share one `tandem up` and run in order: later ones see the runs earlier ones made.
describe('tandem runs ... against tandem up', () => {
  let redis: RedisServerHandle;
  let up: TandemUp;
  let dir: string;
  let server: string;
  const runs = (...args: string[]): Promise<CliResult> => runCli(['runs', ...args, '--server', server], { timeoutMs: 120_000 });

  beforeAll(async () => {
    redis = await startRedisServer();
    up = await startTandemUp(redis.url);
    server = up.httpUrl;
    dir = await mkdtemp(join(tmpdir(), 'tandem-cli-e2e-'));
  }, 120_000);
  afterAll(async () => {
    await up?.stop();
    await redis?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('submits an RLRun manifest in YAML and watches the simulated run to Succeeded', async () => {
    const file = join(dir, 'run.yaml');
    await writeFile(
      file,
      [
        '# A small simulated run, as a user would write it.',
        'apiVersion: tandem.dev/v1alpha1',
        'kind: RLRun',
        'metadata:',
        '  name: cli-yaml',
        'spec:',
        '  model: { name: sim-7b }',
        '  dataset: { source: builtin, name: arithmetic, size: 100 }',
        '  reward: { kind: numeric }',
        '  algorithm: { groupSize: 2, batchGroups: 2, maxTokens: 64 }',
        '  async: { maxTrajectoryAgeSteps: 1 }',
        '  maxSteps: 3',
        '  generator: { replicas: 1 }',
        '  simulation:',
        '    timeScale: 0.02',
        '    trainer: { stepOverheadMs: 500 }',
        '',
      ].join('\n'),
    );
    const submitted = await runs('submit', '-f', file);
    expect(submitted.code, submitted.stderr).toBe(0);
    const [header, row, ...rest] = submitted.stdout.trimEnd().split('\n');
    expect(header).toMatch(/^ID\s+PHASE\s+STEP\s+VERSION\s+K\s+QUEUE\s+IN-FLIGHT\s+GENERATORS\s+TRAINED\s+DROPPED\s+FAILED\s+CANCELLED\s+CREATED$/);
    expect(row).toMatch(/^cli-yaml\s+(Pending|Running)\s+\d+\/3\s/);
    expect(rest).toEqual([]);

    const watched = await runCli(['runs', 'watch', 'cli-yaml', '--server', server, '-o', 'json'], { timeoutMs: 240_000 });
    const events = watched.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(events.length).toBeGreaterThanOrEqual(1);
    for (const e of events) expect(e).toMatchObject({ runId: 'cli-yaml', type: 'status' });
    const last = events.at(-1);
    expect(last.status.phase, `run ended: ${JSON.stringify(last.status)}; tandem up stderr:\n${up.service.logs().slice(-3000)}`).toBe('Succeeded');
    expect(watched.code, watched.stderr).toBe(0);
    expect(last.status.trainerStep).toBe(3);
    // Steps never go backwards in the stream.
    const stepsSeen = events.map((e) => e.status.trainerStep ?? 0);
    expect(stepsSeen).toEqual([...stepsSeen].sort((a, b) => a - b));

    const got = await runs('get', 'cli-yaml', '-o', 'json');
    expect(got.code, got.stderr).toBe(0);
    const run = JSON.parse(got.stdout);
    expect(run.id).toBe('cli-yaml');
    expect(run.spec.algorithm).toMatchObject({ groupSize: 2, batchGroups: 2, maxTokens: 64 });
    expect(run.spec.simulation.timeScale).toBe(0.02);
    const l = run.status.ledger;
    expect(run.status.phase).toBe('Succeeded');
    expect(l.admitted).toBe((l.trained ?? 0) + (l.droppedStale ?? 0) + (l.failed ?? 0) + (l.cancelled ?? 0));
    expect(l.trained).toBe(6);
    // The run's journal: accepted, the trainer attached, succeeded — oldest
    // first. "Succeeded" is written when admission winds down, a moment
    // after the last ack: wait for it.
    expect((run.events as Array<{ reason: string }>)[0]?.reason).toBe('Accepted');
    const reasons = await waitFor(
      async () => {
        const r = await runs('events', 'cli-yaml', '-o', 'json');
        const list = (JSON.parse(r.stdout) as Array<{ reason: string }>).map((e) => e.reason);
        return list.includes('Succeeded') ? list : undefined;
      },
      { timeoutMs: 30_000, what: 'the Succeeded entry in the journal' },
    );
    expect(reasons[0]).toBe('Accepted');
    expect(reasons).toContain('TrainerAttached');
    expect(reasons.filter((r) => r === 'Succeeded')).toHaveLength(1);
    const described = await runs('get', 'cli-yaml');
    expect(described.code, described.stderr).toBe(0);
    const [, eventsPart] = described.stdout.split('\nEvents:\n');
    expect(eventsPart?.split('\n')[0]).toMatch(/^ {2}TIME\s+TYPE\s+REASON\s+MESSAGE$/);
    expect(eventsPart).toMatch(/^ {2}\S+Z\s+Normal\s+Accepted\s+run accepted: 3 steps/m);
    expect(eventsPart).toMatch(/^ {2}\S+Z\s+Normal\s+Succeeded\s+trained 6 groups in 3 steps/m);
  }, 300_000);

  it('submits a bare spec in JSON, shows it in every format, watches it and cancels it', async () => {
    const file = join(dir, 'run.json');
    // No spec.simulation: generators and trainer would be external, so the run waits.
    await writeFile(
      file,
      JSON.stringify({
        model: { name: 'external-model' },
        dataset: { source: 'builtin', name: 'arithmetic', size: 10 },
        reward: { kind: 'exact_match' },
        algorithm: { groupSize: 2, batchGroups: 2 },
        maxSteps: 5,
      }),
    );
    const submitted = await runs('submit', '-f', file, '--id', 'cli-json', '-o', 'json');
    expect(submitted.code, submitted.stderr).toBe(0);
    const run = JSON.parse(submitted.stdout);
    expect(run.id).toBe('cli-json');
    expect(run.spec.maxSteps).toBe(5);
    expect(run.spec.reward.kind).toBe('exact_match');
    expect(['Pending', 'Running']).toContain(run.status.phase);

    // Independent reads, run side by side.
    const [listed, table, yaml, one] = await Promise.all([
      runs('list', '-o', 'json'),
      runs('list'),
      runs('get', 'cli-json', '-o', 'yaml'),
      runs('get', 'cli-json', '-o', 'table'),
    ]);
    expect(listed.code, listed.stderr).toBe(0);
    expect((JSON.parse(listed.stdout) as Array<{ id: string }>).map((r) => r.id).sort()).toEqual(['cli-json', 'cli-yaml']);
    expect(table.code, table.stderr).toBe(0);
    const rows = table.stdout.trimEnd().split('\n');
    expect(rows[0]).toMatch(/^ID\s+PHASE\s/);
    expect(rows.slice(1).map((r) => r.split(/\s+/)[0]).sort()).toEqual(['cli-json', 'cli-yaml']);
    expect(rows.find((r) => r.startsWith('cli-yaml'))).toMatch(/^cli-yaml\s+Succeeded\s+3\/3\s/);

    expect(yaml.code, yaml.stderr).toBe(0);
    expect(yaml.stdout.trimStart().startsWith('{')).toBe(false);
    expect(yaml.stdout).toMatch(/^id: cli-json$/m);
    expect(yaml.stdout).toMatch(/^spec:$/m);
    expect(yaml.stdout).toMatch(/^ {2}maxSteps: 5$/m);
    expect(yaml.stdout).toMatch(/^status:$/m);
    expect(yaml.stdout).toMatch(/^ {2}phase: (Pending|Running)$/m);
    expect(one.code, one.stderr).toBe(0);
    const [runPart, eventsPart] = one.stdout.split('\nEvents:\n');
    const oneRows = (runPart ?? '').trimEnd().split('\n');
    expect(oneRows).toHaveLength(2);
    expect(eventsPart).toMatch(/Normal\s+Accepted\s+run accepted: 5 steps/);
    // Why nothing moves: the run is external, and what would make it simulated.
    expect(eventsPart).toMatch(/Normal\s+External\s+no spec.simulation, so this control plane starts no processes/);
    expect(oneRows[1]).toMatch(/^cli-json\s+(Pending|Running)\s+0\/5\s+0\s+1\s/);

    // watch streams until the run ends, here by a cancel from another command.
    const watch = startCli(['runs', 'watch', 'cli-json', '--server', server]);
    try {
      await waitFor(() => watch.stdout().includes('cli-json'), { timeoutMs: 60_000, what: 'the first line of runs watch' });
      const cancelled = await runs('cancel', 'cli-json', '--reason', 'e2e test over', '-o', 'json');
      expect(cancelled.code, cancelled.stderr).toBe(0);
      const c = JSON.parse(cancelled.stdout);
      expect(c.status.phase).toBe('Cancelled');
      expect(c.status.message).toBe('e2e test over');
      const l = c.status.ledger;
      expect(l.admitted).toBe((l.trained ?? 0) + (l.droppedStale ?? 0) + (l.failed ?? 0) + (l.cancelled ?? 0));

      const ended = await Promise.race([
        watch.exited,
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error('runs watch did not end after the cancel')), 60_000)),
      ]);
      expect(ended.code, ended.stderr).toBe(0);
      const lines = ended.stdout.trimEnd().split('\n');
      expect(lines.every((line) => /^\S+Z cli-json (Pending|Running|Cancelled) step \d+\/5 v\d+ /.test(line)), ended.stdout).toBe(true);
      expect(lines.at(-1)).toMatch(/ Cancelled /);
    } finally {
      if (watch.child.exitCode === null) watch.child.kill('SIGKILL');
    }

    // Cancelling again changes nothing and still succeeds.
    const again = await runs('cancel', 'cli-json', '-o', 'json');
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout).status).toMatchObject({ phase: 'Cancelled', message: 'e2e test over' });
    // The cancel is in the journal once, with its reason.
    const journal = await runs('events', 'cli-json', '-o', 'json');
    expect(journal.code, journal.stderr).toBe(0);
    const cancels = (JSON.parse(journal.stdout) as Array<{ reason: string; message: string }>).filter((e) => e.reason === 'Cancelled');
    expect(cancels).toHaveLength(1);
    expect(cancels[0]?.message).toMatch(/^e2e test over \(\d+ open groups cancelled\)$/);
  }, 300_000);

  it('reports an unknown run with exit code 1 and one line on stderr', async () => {
    const results = await Promise.all([
      runs('get', 'no-such-run'),
      runs('cancel', 'no-such-run'),
      runs('watch', 'no-such-run'),
      runs('scale', 'no-such-run', '--generators', '2'),
      runs('events', 'no-such-run'),
    ]);
    for (const r of results) expectOneLineError(r, 1, /^tandem: run no-such-run not found$/);
  }, 180_000);

  it('rejects a bad spec file with exit code 1, naming the field, and accepts nothing', async () => {
    const before = JSON.parse((await runs('list', '-o', 'json')).stdout) as unknown[];
    const bad = join(dir, 'bad.yaml');
    await writeFile(
      bad,
      [
        'model: { name: sim-7b }',
        'dataset: { source: builtin, name: arithmetic }',
        'reward: { kind: numeric }',
        'algorithm: { groupSize: 0 }',
        'maxSteps: 3',
        'maxStep: 3',
        '',
      ].join('\n'),
    );
    const r = await runs('submit', '-f', bad);
    expectOneLineError(r, 1, /invalid run spec/);
    expect(r.stderr).toMatch(/algorithm\.groupSize: /);
    expect(r.stderr).toMatch(/maxStep\b/);

    const wrongType = join(dir, 'wrong-type.json');
    await writeFile(
      wrongType,
      JSON.stringify({ model: { name: 'm' }, dataset: { source: 'builtin', name: 'arithmetic' }, reward: { kind: 'numeric' }, maxSteps: 'ten' }),
    );
    expectOneLineError(await runs('submit', '-f', wrongType), 1, /maxSteps: /);

    // A syntax error comes with the parser's excerpt of the file, after the one-line summary.
    const notYaml = join(dir, 'not-yaml.yaml');
    await writeFile(notYaml, 'model: [unclosed\n');
    const syntax = await runs('submit', '-f', notYaml);
    expect(syntax.code, syntax.stderr).toBe(1);
    expect(syntax.stdout).toBe('');
    expect(syntax.stderr).toMatch(/^tandem: .*not-yaml\.yaml is not valid YAML or JSON: .*line 2, column 1/);
    expectOneLineError(await runs('submit', '-f', join(dir, 'missing.yaml')), 1, /cannot read .*missing\.yaml/);

    const after = JSON.parse((await runs('list', '-o', 'json')).stdout) as unknown[];
    expect(after).toHaveLength(before.length);
  }, 180_000);

  it('rejects bad flags and usage with exit code 2', async () => {
    const cases: Array<[Promise<CliResult>, RegExp]> = [
      [runs('list', '--bogus'), /Unknown option '--bogus'/],
      [runs('get'), /tandem runs get needs a run id/],
      [runs('get', 'cli-json', '-o', 'xml'), /-o must be table, json or yaml, got xml/],
      [runs('scale', 'cli-json', '--generators', 'many'), /--generators must be an integer from 0 to 4096, got "many"/],
      [runs('submit'), /tandem runs submit needs -f FILE/],
      [runs('frobnicate'), /unknown command: tandem runs frobnicate/],
      [runCli(['demo', '--steps', '0']), /--steps must be an integer from 1 to 100000, got "0"/],
      [runCli(['up', '--http-port', 'x']), /--http-port must be an integer from 0 to 65535/],
    ];
    for (const [result, pattern] of cases) expectOneLineError(await result, 2, pattern);
    // An unknown command prints the usage after the message.
    const unknown = await runCli(['frobnicate']);
    expect(unknown.code).toBe(2);
    expect(unknown.stdout).toBe('');
    expect(unknown.stderr).toMatch(/^tandem: unknown command 'frobnicate'\n/);
    expect(unknown.stderr).toContain('usage: tandem <command>');
  }, 180_000);

  it('says when the control plane cannot be reached (exit code 1)', async () => {
    const nobody = `http://127.0.0.1:${await freePort()}`;
    expectOneLineError(await runCli(['runs', 'list', '--server', nobody]), 1, /cannot reach the control plane at http:\/\/127\.0\.0\.1:\d+/);
  }, 180_000);
});
