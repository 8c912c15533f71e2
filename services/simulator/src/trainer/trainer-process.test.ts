import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '@tandem/common';
import { ControlPlane, loadConfig } from '@tandem/control-plane';
import { encodedSyntheticGroup } from '@tandem/rollout-queue';
import { startRedisServer, type RedisServerHandle } from '@tandem/testkit';

/**
 * trainer-main.ts as a real process (the compiled dist/trainer-main.js;
 * `tsc -b` first): a SIGKILL at --crash-at-step, a restart that resumes
 * from the checkpoint and gets the un-acked batch again, the one JSON line
 * on stdout, exit codes, and SIGTERM.
 */

const MAIN = fileURLToPath(new URL('../../dist/trainer-main.js', import.meta.url));

let redis: RedisServerHandle;
let plane: ControlPlane;
let grpcAddress: string;
let dir: string;
const stops: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: build first (npx tsc -b services/simulator)`);
  redis = await startRedisServer();
  plane = await ControlPlane.create(
    loadConfig({ TANDEM_REDIS_URL: redis.url, TANDEM_HTTP_PORT: '0', TANDEM_GRPC_PORT: '0', TANDEM_LOG_LEVEL: 'silent' }),
    { log: silentLogger() },
  );
  ({ grpcAddress } = await plane.start());
  dir = await mkdtemp(join(tmpdir(), 'tandem-trainer-process-'));
});

afterAll(async () => {
  for (const s of stops) await s().catch(() => undefined);
  await plane?.stop();
  await redis?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function startTrainer(args: string[]): { exited: Promise<Exit>; kill: (signal: NodeJS.Signals) => void; stderrSoFar: () => string } {
  const child = spawn(process.execPath, [MAIN, '--server', grpcAddress, '--time-scale', '0.001', '--pull-wait-ms', '1000', '--log-level', 'info', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<Exit>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal, stdout, stderr })));
  stops.push(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return { exited, kill: (s) => child.kill(s), stderrSoFar: () => stderr };
}

/** Completes admitted groups until the run closes (see the integration test for why not BullMQ). */
function generate(runId: string): void {
  const queue = plane.store.forRun(runId);
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const changed = queue.waitForChange(200).catch(() => undefined);
      const snap = await queue.snapshot();
      if (snap.state !== 'open') return;
      for (const { groupId, targetStep } of await queue.inFlightGroups()) {
        await queue
          .complete(encodedSyntheticGroup(groupId, { groupSize: 2, tokensPerCompletion: 8, minPolicyVersion: Math.min(snap.policyVersion, targetStep), targetStep }))
          .catch(() => undefined);
      }
      await changed;
    }
  })();
  stops.push(async () => {
    stopped = true;
    await loop;
  });
}

const spec = {
  model: { name: 'tiny' },
  dataset: { source: 'builtin', name: 'arithmetic', size: 20 },
  reward: { kind: 'numeric' },
  algorithm: { groupSize: 2, batchGroups: 2 },
  async: { maxTrajectoryAgeSteps: 1 },
  maxSteps: 3,
};

describe('trainer-main process', () => {
  it('dies by SIGKILL at --crash-at-step; the restarted process resumes and gets the batch again', async () => {
    const runId = 'proc-crash';
    await plane.runs.submit({ spec, runId });
    generate(runId);
    const checkpoint = join(dir, 'proc-crash.json');

    const first = await startTrainer(['--run-id', runId, '--checkpoint', checkpoint, '--crash-at-step', '1']).exited;
    expect(first.signal).toBe('SIGKILL');
    expect(first.stdout).toBe('');
    expect(JSON.parse(await readFile(checkpoint, 'utf8'))).toMatchObject({ runId, policyVersion: 1, lastAckedStep: 0 });

    const second = await startTrainer(['--run-id', runId, '--checkpoint', checkpoint]).exited;
    expect(second.code).toBe(0);
    const lines = second.stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0] ?? '')).toMatchObject({
      event: 'done',
      simulated: true,
      outcome: 'finished',
      firstStep: 1,
      steps: 2,
      policyVersion: 3,
      reservedBatches: 1,
    });
    const view = await plane.runs.get(runId);
    expect(view.status).toMatchObject({ phase: 'Succeeded', ledger: { trained: 6 } });
  });

  it('exits 0 with a stopped report on SIGTERM', async () => {
    const runId = 'proc-sigterm';
    await plane.runs.submit({ spec, runId });
    // No generation: the trainer long-polls step 0 until told to stop.
    const t = startTrainer(['--run-id', runId]);
    while (!t.stderrSoFar().includes('"msg":"attached"')) await new Promise((r) => setTimeout(r, 20));
    t.kill('SIGTERM');
    const exit = await t.exited;
    expect(exit.code).toBe(0);
    expect(JSON.parse(exit.stdout)).toMatchObject({ event: 'done', outcome: 'stopped', steps: 0 });
  });

  it('exits non-zero with a one-line message for an unknown run', async () => {
    const exit = await startTrainer(['--run-id', 'no-such-run']).exited;
    expect(exit.code).toBe(1);
    expect(exit.stdout).toBe('');
    // The one-line message is on stderr, among the structured log lines.
    expect(exit.stderr).toMatch(/^simulated trainer failed: NOT_FOUND: .*no-such-run/m);
  });

  it('exits 2 naming a bad flag', async () => {
    const exit = await startTrainer(['--run-id', 'x', '--time-scale', 'soon']).exited;
    expect(exit.code).toBe(2);
    expect(exit.stderr).toMatch(/^simulated trainer: INVALID_ARGUMENT: invalid trainer flags: --time-scale "soon": /m);
  });
});
