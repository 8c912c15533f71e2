import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ErrorCode, TandemError, type Logger } from '@tandem/common';
import type { RunRecord } from '@tandem/rollout-queue';
import type { RunRuntime } from './run-runtime.js';
import { SupervisedProcess } from './supervised-process.js';

/** The scripts the local runtime starts (built dist/ mains). */
export interface LocalScripts {
  generator: string;
  trainer: string;
  rolloutWorker: string;
}

/** Default script locations inside this repository. */
export function defaultLocalScripts(): LocalScripts {
  const services = fileURLToPath(new URL('../../../', import.meta.url));
  return {
    generator: join(services, 'simulator/dist/generator-main.js'),
    trainer: join(services, 'simulator/dist/trainer-main.js'),
    rolloutWorker: join(services, 'rollout-worker/dist/main.js'),
  };
}

/** What the local runtime needs from the control plane. */
export interface LocalRuntimeDeps {
  log: Logger;
  redisUrl: string;
  keyPrefix: string;
  /** The control plane's gRPC address (the trainer connects to it). */
  grpcAddress: () => string;
  registerGenerator: (runId: string, id: string, url: string) => Promise<void>;
  removeGenerator: (runId: string, id: string) => Promise<void>;
  /** Ends a run as failed (a role ran out of restarts). */
  failRun: (runId: string, message: string) => Promise<void>;
  scripts?: LocalScripts;
  /** Extra environment for rollout workers (tests shorten BullMQ's stall timers). */
  workerEnv?: Record<string, string>;
  /** Extra environment for simulated trainers (the chaos suite's trained-group record). */
  trainerEnv?: Record<string, string>;
  /**
   * A run's credentials (authentication on): the trainer gets the token as
   * TANDEM_RUN_TOKEN, workers the run's own Redis URL. Passed through the
   * environment, never on the command line (which `ps` shows).
   */
  credentials?: (runId: string) => Promise<{ token: string; redisUrl: string } | undefined>;
  /** The control plane serves TLS: the trainer dials it with TLS, verifying against `caFile` (system roots without). */
  tls?: { caFile?: string };
  /** Records an entry in a run's journal (process restarts). */
  journal?: (runId: string, type: 'Normal' | 'Warning', reason: string, message: string) => Promise<void>;
}

/** Lifecycle events of a run's processes, for the CLI's progress and tests. */
export interface LocalRunEvents {
  trainerReport?: Record<string, unknown>;
  restarts: Record<string, number>;
}

interface LocalRun {
  record: RunRecord;
  dir: string;
  generators: Map<string, SupervisedProcess>;
  generatorUrls: Map<string, string>;
  nextGenerator: number;
  workers: SupervisedProcess[];
  trainer: SupervisedProcess | undefined;
  restarts: Record<string, number>;
  trainerReport: Record<string, unknown> | undefined;
  stopping: boolean;
  credentials: { token: string; redisUrl: string } | undefined;
}

/**
 * The embedded runtime: a run's simulated generators, simulated trainer and
 * rollout workers as child processes of the control plane. Crashed
 * processes are restarted up to the run's `failurePolicy.maxRestarts` per
 * role; a restarted generator re-registers and rejoins the weight group at
 * the next sync. Everything stops when the run ends.
 */
export class LocalRuntime implements RunRuntime {
  readonly name = 'local';
  private readonly deps: LocalRuntimeDeps;
  private readonly scripts: LocalScripts;
  private readonly runs = new Map<string, LocalRun>();

  constructor(deps: LocalRuntimeDeps) {
    this.deps = deps;
    this.scripts = deps.scripts ?? defaultLocalScripts();
  }

  /** Restart counts and the trainer's final report of a run. */
  events(runId: string): LocalRunEvents | undefined {
    const run = this.runs.get(runId);
    return run ? { restarts: { ...run.restarts }, ...(run.trainerReport ? { trainerReport: run.trainerReport } : {}) } : undefined;
  }

  /** The processes of a run, for tests and chaos (name → pid). */
  processes(runId: string): Map<string, SupervisedProcess> {
    const run = this.runs.get(runId);
    const out = new Map<string, SupervisedProcess>();
    if (!run) return out;
    for (const [id, p] of run.generators) out.set(id, p);
    run.workers.forEach((w) => out.set(w.name, w));
    if (run.trainer) out.set('trainer', run.trainer);
    return out;
  }

  async startRun(record: RunRecord): Promise<void> {
    if (this.runs.has(record.id)) return;
    if (!record.spec.simulation) {
      // Real generators and trainer run elsewhere: they register
      // (POST /v1/runs/{id}/generators) and attach (TrainerService) themselves.
      this.deps.log.info({ runId: record.id }, 'run has no spec.simulation: its generators and trainer are external');
      // Without this a user who left `simulation` out sees a run that sits
      // at step 0 with no generators, and no reason why.
      await this.deps.journal?.(
        record.id,
        'Normal',
        'External',
        `no spec.simulation, so this control plane starts no processes for the run: it waits for generators to register (POST /v1/runs/${record.id}/generators), rollout workers to take its prompts and a trainer to attach (TrainerService); add \`simulation: {}\` to the spec to run it on simulated GPUs`,
      ).catch(() => undefined);
      return;
    }
    const run: LocalRun = {
      record,
      dir: await mkdtemp(join(tmpdir(), `tandem-${record.id}-`)),
      generators: new Map(),
      generatorUrls: new Map(),
      nextGenerator: 0,
      workers: [],
      trainer: undefined,
      restarts: {},
      trainerReport: undefined,
      stopping: false,
      credentials: await this.deps.credentials?.(record.id),
    };
    this.runs.set(record.id, run);
    const log = this.deps.log.child({ runId: record.id, runtime: 'local' });
    try {
      await Promise.all(Array.from({ length: record.spec.generator.replicas }, () => this.addGenerator(run)));
      for (let i = 0; i < record.spec.rolloutWorkers.replicas; i++) run.workers.push(await this.startWorker(run, i));
      run.trainer = await this.startTrainer(run);
      log.info(
        { generators: run.generators.size, workers: run.workers.length, dir: run.dir },
        'local runtime started the run (simulated generators and trainer)',
      );
    } catch (err) {
      await this.stopRun(record.id);
      throw err;
    }
  }

  async scaleGenerators(runId: string, replicas: number): Promise<void> {
    const run = this.runs.get(runId);
    if (!run) throw new TandemError(ErrorCode.FailedPrecondition, `run ${runId} is not running in this control plane`);
    while (run.generators.size < replicas) await this.addGenerator(run);
    while (run.generators.size > replicas) {
      const id = [...run.generators.keys()].at(-1) as string;
      const p = run.generators.get(id) as SupervisedProcess;
      run.generators.delete(id);
      // Leave the registry first so that no new request goes there; requests
      // already running on it fail over to other generators when it stops.
      await this.deps.removeGenerator(runId, id).catch(() => undefined);
      await p.stop();
      run.generatorUrls.delete(id);
    }
  }

  async stopRun(runId: string): Promise<void> {
    const run = this.runs.get(runId);
    if (!run || run.stopping) return;
    run.stopping = true;
    await Promise.all([
      ...[...run.generators.values()].map((p) => p.stop()),
      ...run.workers.map((p) => p.stop()),
      run.trainer?.stop(),
    ]);
    await rm(run.dir, { recursive: true, force: true });
    this.deps.log.info({ runId }, 'local runtime stopped the run');
  }

  /**
   * Stops every run's processes and forgets them, so that a later
   * `startRun` starts them afresh (a replica that lost and regained
   * leadership, ha/leadership.ts).
   */
  async stop(): Promise<void> {
    const ids = [...this.runs.keys()];
    await Promise.all(ids.map((id) => this.stopRun(id)));
    for (const id of ids) this.runs.delete(id);
  }

  private simArgs(run: LocalRun): string[] {
    const sim = run.record.spec.simulation;
    if (!sim) return [];
    const g = sim.generator;
    const args = ['--time-scale', String(sim.timeScale), '--model', run.record.spec.model.name];
    const add = (flag: string, v: number | undefined): void => {
      if (v !== undefined) args.push(flag, String(v));
    };
    add('--peak-tokens-per-second', g.peakTokensPerSecondPerSequence);
    add('--concurrency-knee', g.concurrencyKnee);
    add('--median-output-tokens', g.medianOutputTokens);
    add('--model-bytes', g.modelBytes);
    add('--bandwidth-bytes-per-second', g.bandwidthBytesPerSecond);
    return args;
  }

  private async addGenerator(run: LocalRun): Promise<void> {
    const id = `gen-${run.nextGenerator++}`;
    await this.startGenerator(run, id);
  }

  private async startGenerator(run: LocalRun, id: string): Promise<void> {
    const seed = (run.record.spec.simulation?.seed ?? 0) * 1000 + Number(id.split('-')[1] ?? 0);
    const proc = new SupervisedProcess({
      name: id,
      script: this.scripts.generator,
      args: ['--host', '127.0.0.1', '--port', '0', '--seed', String(seed), ...this.simArgs(run)],
      env: { TANDEM_LOG_LEVEL: 'warn' },
      log: this.deps.log.child({ runId: run.record.id, generator: id }),
      onExit: (code, signal) => this.onCrash(run, id, 'generator', `${code ?? signal}`, () => this.startGenerator(run, id)),
    });
    run.generators.set(id, proc);
    const ready = await proc.start('listening');
    const url = String(ready.url);
    run.generatorUrls.set(id, url);
    // (Re-)registering makes it `joining`: it serves after its first full sync.
    await this.deps.registerGenerator(run.record.id, id, url);
  }

  private async startWorker(run: LocalRun, index: number): Promise<SupervisedProcess> {
    const name = `rollout-worker-${index}`;
    const proc: SupervisedProcess = new SupervisedProcess({
      name,
      script: this.scripts.rolloutWorker,
      args: [],
      env: {
        TANDEM_REDIS_URL: run.credentials?.redisUrl ?? this.deps.redisUrl,
        TANDEM_RUN_ID: run.record.id,
        TANDEM_KEY_PREFIX: this.deps.keyPrefix,
        TANDEM_LOG_LEVEL: 'warn',
        TANDEM_WORKER_CONCURRENCY: String(run.record.spec.rolloutWorkers.concurrency),
        // Local processes die and return fast; take their jobs back sooner.
        TANDEM_LOCK_DURATION_MS: '10000',
        TANDEM_STALLED_INTERVAL_MS: '5000',
        TANDEM_PROBE_AFTER_MS: '500',
        ...this.deps.workerEnv,
      },
      log: this.deps.log.child({ runId: run.record.id }),
      onExit: (code, signal) => {
        if (code === 0) return; // it saw the run end and stopped by itself
        this.onCrash(run, name, 'rollout-worker', `${code ?? signal}`, async () => {
          const fresh = await this.startWorker(run, index);
          run.workers[index] = fresh;
        });
      },
    });
    await proc.start();
    return proc;
  }

  private async startTrainer(run: LocalRun): Promise<SupervisedProcess> {
    const t = run.record.spec.simulation?.trainer ?? {};
    const args = [
      '--server', this.deps.grpcAddress(),
      '--run-id', run.record.id,
      '--time-scale', String(run.record.spec.simulation?.timeScale ?? 1),
      '--checkpoint', join(run.dir, 'trainer-checkpoint.json'),
    ];
    if (t.stepOverheadMs !== undefined) args.push('--step-overhead-ms', String(t.stepOverheadMs));
    if (t.msPerKiloToken !== undefined) args.push('--ms-per-kilo-token', String(t.msPerKiloToken));
    const proc: SupervisedProcess = new SupervisedProcess({
      name: 'trainer',
      script: this.scripts.trainer,
      args,
      env: {
        TANDEM_LOG_LEVEL: 'warn',
        ...(run.credentials ? { TANDEM_RUN_TOKEN: run.credentials.token } : {}),
        ...(this.deps.tls ? { TANDEM_TRAINER_TLS: 'true', ...(this.deps.tls.caFile === undefined ? {} : { TANDEM_TLS_CA_FILE: this.deps.tls.caFile }) } : {}),
        ...this.deps.trainerEnv,
      },
      log: this.deps.log.child({ runId: run.record.id }),
      onEvent: (event) => {
        if (event.event === 'done') run.trainerReport = event;
      },
      onExit: (code, signal) => {
        if (code === 0) return; // trained to the end, or told the run ended
        this.onCrash(run, 'trainer', 'trainer', `${code ?? signal}`, async () => {
          run.trainer = await this.startTrainer(run);
        });
      },
    });
    await proc.start();
    return proc;
  }

  private onCrash(run: LocalRun, name: string, role: string, how: string, restart: () => Promise<void>): void {
    if (run.stopping) return;
    const log = this.deps.log.child({ runId: run.record.id, process: name, ...(role === 'generator' ? { generator: name } : {}) });
    const count = (run.restarts[role] ?? 0) + 1;
    run.restarts[role] = count;
    const max = run.record.spec.failurePolicy.maxRestarts;
    if (count > max) {
      const message = `${role} ${name} exited (${how}) and ran out of restarts (failurePolicy.maxRestarts = ${max})`;
      log.error({ how }, message);
      this.deps.failRun(run.record.id, message).catch((err: unknown) => log.error({ err }, 'failing the run failed'));
      return;
    }
    log.warn({ how, restart: count, maxRestarts: max }, `${role} exited; restarting`);
    this.deps.journal?.(run.record.id, 'Warning', 'ProcessRestarted', `${role} ${name} exited (${how}); restart ${count} of ${max}`).catch(() => undefined);
    restart().catch((err: unknown) => {
      log.error({ err }, `${role} restart failed`);
      this.deps.failRun(run.record.id, `${role} ${name} could not be restarted: ${TandemError.from(err).message}`).catch(() => undefined);
    });
  }
}
