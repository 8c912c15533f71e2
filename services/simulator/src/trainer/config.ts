import { z } from 'zod';
import { parseOrThrow } from '@tandem/common';
import { formatHelp, readFlagSet, type FlagSet } from '../process-flags.js';

/**
 * Options of the simulated trainer: a process that speaks the trainer
 * protocol (tandem.v1.TrainerService) like the Python trainer agent, but
 * "trains" by sleeping for a time given by a cost model. Every option but
 * `runId` has a default. Durations in the cost model are *simulated*
 * milliseconds; `cost.timeScale` converts them to clock milliseconds.
 */

/** Train-time cost model (see cost-model.ts). */
export const CostModelSchema = z.object({
  /** Fixed cost of one optimizer step (forward/backward setup, optimizer update). @default 2000 */
  stepOverheadMs: z.number().min(0).default(2000),
  /** Train time per 1000 completion tokens in the batch. @default 40 */
  msPerKiloToken: z.number().min(0).default(40),
  /**
   * Multiplier from simulated time to clock time: 1 is real time, 0.001
   * runs a thousand times faster (tests). Applies to weight broadcasts too.
   * @default 1
   */
  timeScale: z.number().positive().default(1),
});

/**
 * Reconnect policy while the control plane is unreachable (restarts,
 * leader failover): capped exponential backoff with jitter.
 */
export const ReconnectSchema = z
  .object({
    /** First delay. @default 250 */
    initialMs: z.number().int().positive().default(250),
    /** Largest delay. @default 10000 */
    maxMs: z.number().int().positive().default(10_000),
    /**
     * Give up (exit non-zero) after the control plane has been unreachable
     * this long without a single successful attach. @default 300000
     */
    giveUpAfterMs: z.number().int().positive().default(300_000),
  })
  .superRefine((r, ctx) => {
    if (r.maxMs < r.initialMs) {
      ctx.addIssue({ code: 'custom', path: ['maxMs'], message: `must be at least initialMs (${r.initialMs})` });
    }
  });

/** Simulated NCCL broadcast of the weights to the generators. */
export const WeightBroadcastSchema = z.object({
  /** Bytes broadcast per sync. @default 1e9 (a 0.5B-parameter model in bf16) */
  modelBytes: z.number().positive().default(1e9),
  /** Effective broadcast bandwidth. @default 10e9 */
  bandwidthBytesPerSecond: z.number().positive().default(10e9),
  /**
   * Simulated time to (re)initialise the transfer group, paid on the first
   * broadcast and whenever SendWeights carries a new `groupId`. @default 1000
   */
  groupInitMs: z.number().min(0).default(1000),
});

/** The simulated trainer's options. */
export const SimulatedTrainerConfigSchema = z.object({
  /** Control plane gRPC address, `host:port`. @default '127.0.0.1:50051' */
  server: z
    .string()
    .regex(/^[^\s:]+:\d{1,5}$|^\[[0-9a-fA-F:.]+\]:\d{1,5}$/, 'must be host:port')
    .default('127.0.0.1:50051'),
  /** The run to train. */
  runId: z.string().min(1),
  /** Identity reported in `hello` (pod name, pid). @default 'simulated-trainer' */
  trainerId: z.string().min(1).default('simulated-trainer'),
  cost: CostModelSchema.prefault({}),
  /** Long poll asked for in each PullBatch; the control plane caps it. @default 10000 */
  pullWaitMs: z.number().int().min(0).max(600_000).default(10_000),
  /**
   * Deadline of every call beyond its long poll (a PullBatch gets
   * `pullWaitMs + rpcTimeoutMs`), and the wait for `welcome` after `hello`.
   * @default 30000
   */
  rpcTimeoutMs: z.number().int().positive().default(30_000),
  /**
   * Largest gRPC message accepted. grpc-js defaults to 4 MiB, which one real
   * batch (e.g. 16 groups × 8 completions × 4k tokens × 8 bytes) exceeds.
   * @default 268435456 (256 MiB)
   */
  maxReceiveMessageBytes: z.number().int().positive().default(256 * 1024 * 1024),
  reconnect: ReconnectSchema.prefault({}),
  /**
   * Crash (SIGKILL, no cleanup) after pulling the batch of this step and
   * before acking it, to test that the batch is served again to the
   * restarted trainer. Start the restarted process without it.
   */
  crashAtStep: z.number().int().min(0).optional(),
  /**
   * JSON file holding the last acked step and policy version; read at start
   * (resume) and written after every ack. No file means start from version 0.
   */
  checkpointPath: z.string().min(1).optional(),
  /**
   * JSONL file to which every trained step is appended (step, and the id,
   * prompt and policy versions of each group) before it is acked: an
   * independent record of what was trained, read by the chaos suite.
   */
  trainedLogPath: z.string().min(1).optional(),
  /**
   * Completions per group (G) to check batches against when the control
   * plane's `welcome` does not say (groupSize 0). Unset: only checks that
   * every group of a batch has the same number of completions.
   */
  expectedGroupSize: z.number().int().positive().optional(),
  weightBroadcast: WeightBroadcastSchema.prefault({}),
  /**
   * The run's credential, sent as `authorization: Bearer` on every call
   * (required when the control plane has authentication on). Environment
   * only (TANDEM_RUN_TOKEN): a flag would show in `ps`.
   */
  token: z.string().min(1).optional(),
  /** Dial the control plane with TLS (TANDEM_TRAINER_TLS=true). @default false */
  tls: z.boolean().default(false),
  /** CA (PEM) to verify the control plane's certificate (TANDEM_TLS_CA_FILE); system roots when unset. */
  caFile: z.string().min(1).optional(),
});

/** Options as a caller writes them. */
export type SimulatedTrainerOptions = z.input<typeof SimulatedTrainerConfigSchema>;
/** Options with every default applied. */
export type SimulatedTrainerConfig = z.output<typeof SimulatedTrainerConfigSchema>;

/** Validates options, throwing INVALID_ARGUMENT that names each bad field. */
export function resolveTrainerConfig(options: SimulatedTrainerOptions): SimulatedTrainerConfig {
  return parseOrThrow(SimulatedTrainerConfigSchema, options, 'trainer config');
}

/** The trainer process: its options plus the log level. */
export interface TrainerProcessConfig {
  logLevel: string;
  trainer: SimulatedTrainerConfig;
}

const ProcessFieldsSchema = z.object({
  'log-level': z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

/**
 * Command-line flags and their environment variables; a flag wins over its
 * variable. Also the source of `--help` and of the table in
 * docs/operations.md. Only trainer-main.ts reads the process config.
 */
export const TRAINER_FLAGS: FlagSet<typeof ProcessFieldsSchema, typeof SimulatedTrainerConfigSchema> = {
  what: 'trainer flags',
  processSchema: ProcessFieldsSchema,
  optionsSchema: SimulatedTrainerConfigSchema,
  flags: {
    'log-level': { env: 'TANDEM_LOG_LEVEL', kind: 'string', arg: 'LEVEL', help: 'pino level of the JSON logs on stderr' },
    server: { env: 'TANDEM_TRAINER_SERVER', kind: 'string', arg: 'HOST:PORT', path: ['server'], help: 'control plane gRPC address' },
    'run-id': { env: 'TANDEM_RUN_ID', kind: 'string', arg: 'ID', path: ['runId'], help: 'the run to train' },
    'trainer-id': {
      env: 'TANDEM_TRAINER_ID',
      kind: 'string',
      arg: 'ID',
      path: ['trainerId'],
      // trainer-main.ts supplies it, so that restarted trainers are told apart.
      defaultText: 'sim-trainer-<hostname>-<pid>',
      help: 'identity reported in `hello`',
    },
    'step-overhead-ms': {
      env: 'TANDEM_TRAINER_STEP_OVERHEAD_MS',
      kind: 'number',
      path: ['cost', 'stepOverheadMs'],
      help: 'simulated fixed cost of one optimizer step',
    },
    'ms-per-kilo-token': {
      env: 'TANDEM_TRAINER_MS_PER_KILO_TOKEN',
      kind: 'number',
      path: ['cost', 'msPerKiloToken'],
      help: 'simulated train time per 1000 completion tokens in the batch',
    },
    'time-scale': {
      env: 'TANDEM_TRAINER_TIME_SCALE',
      kind: 'number',
      arg: 'F',
      path: ['cost', 'timeScale'],
      help: 'clock time per simulated time, training and broadcasts alike: 0.001 runs a thousand times faster',
    },
    'pull-wait-ms': {
      env: 'TANDEM_TRAINER_PULL_WAIT_MS',
      kind: 'number',
      path: ['pullWaitMs'],
      help: 'long poll asked for in each PullBatch (the control plane caps it)',
    },
    'rpc-timeout-ms': {
      env: 'TANDEM_TRAINER_RPC_TIMEOUT_MS',
      kind: 'number',
      path: ['rpcTimeoutMs'],
      help: 'deadline of every call beyond its long poll, and the wait for `welcome`',
    },
    'max-receive-message-bytes': {
      env: 'TANDEM_TRAINER_MAX_RECEIVE_MESSAGE_BYTES',
      kind: 'number',
      path: ['maxReceiveMessageBytes'],
      help: 'largest gRPC message accepted (one batch must fit)',
    },
    'reconnect-initial-ms': {
      env: 'TANDEM_TRAINER_RECONNECT_INITIAL_MS',
      kind: 'number',
      path: ['reconnect', 'initialMs'],
      help: 'first reconnect delay while the control plane is unreachable',
    },
    'reconnect-max-ms': {
      env: 'TANDEM_TRAINER_RECONNECT_MAX_MS',
      kind: 'number',
      path: ['reconnect', 'maxMs'],
      help: 'largest reconnect delay (capped exponential backoff with jitter)',
    },
    'give-up-after-ms': {
      env: 'TANDEM_TRAINER_GIVE_UP_AFTER_MS',
      kind: 'number',
      path: ['reconnect', 'giveUpAfterMs'],
      help: 'exit 1 after the control plane has been unreachable this long without one attach',
    },
    'crash-at-step': {
      env: 'TANDEM_TRAINER_CRASH_AT_STEP',
      kind: 'number',
      path: ['crashAtStep'],
      help: 'SIGKILL itself after pulling this step\'s batch, before acking it (crash tests)',
    },
    checkpoint: {
      env: 'TANDEM_TRAINER_CHECKPOINT',
      kind: 'string',
      arg: 'PATH',
      path: ['checkpointPath'],
      help: 'JSON file of the last acked step and policy version: resumed from, written after every ack',
    },
    'trained-log': {
      env: 'TANDEM_TRAINER_TRAINED_LOG',
      kind: 'string',
      arg: 'PATH',
      path: ['trainedLogPath'],
      help: 'JSONL file every trained step is appended to before its ack (the chaos suite\'s record)',
    },
    'group-size': {
      env: 'TANDEM_TRAINER_GROUP_SIZE',
      kind: 'number',
      path: ['expectedGroupSize'],
      help: 'completions per group to check batches against when `welcome` does not say',
    },
    'model-bytes': {
      env: 'TANDEM_TRAINER_MODEL_BYTES',
      kind: 'number',
      path: ['weightBroadcast', 'modelBytes'],
      help: 'bytes of the simulated weight broadcast per sync',
    },
    'group-init-ms': {
      env: 'TANDEM_TRAINER_GROUP_INIT_MS',
      kind: 'number',
      path: ['weightBroadcast', 'groupInitMs'],
      help: 'simulated time to (re)initialise the transfer group (first broadcast, new groupId)',
    },
    'bandwidth-bytes-per-second': {
      env: 'TANDEM_TRAINER_BANDWIDTH_BYTES_PER_SECOND',
      kind: 'number',
      path: ['weightBroadcast', 'bandwidthBytesPerSecond'],
      help: 'effective bandwidth of the simulated weight broadcast',
    },
    // Environment only: a secret in a flag would show in `ps`.
    token: {
      env: 'TANDEM_RUN_TOKEN',
      kind: 'string',
      path: ['token'],
      envOnly: true,
      secret: true,
      help: 'the run\'s credential, sent as `authorization: Bearer` (needed when authentication is on)',
    },
    tls: { env: 'TANDEM_TRAINER_TLS', kind: 'boolean', path: ['tls'], envOnly: true, help: 'dial the control plane with TLS' },
    'ca-file': {
      env: 'TANDEM_TLS_CA_FILE',
      kind: 'string',
      path: ['caFile'],
      envOnly: true,
      help: 'CA (PEM) to verify the control plane\'s certificate with (unset: the system roots)',
    },
  },
};

/**
 * Builds the process config from argv (`--flag value` / `--flag=value`) and
 * env. Throws INVALID_ARGUMENT naming the flag or variable of each bad
 * value; an unknown flag throws a plain Error naming it.
 */
export function loadTrainerProcessConfig(input: {
  argv: readonly string[];
  env: Record<string, string | undefined>;
}): TrainerProcessConfig {
  const { process: p, options } = readFlagSet(TRAINER_FLAGS, input);
  return { logLevel: p['log-level'], trainer: options };
}

/** The usage text of trainer-main (`--help`). */
export function trainerHelp(): string {
  return formatHelp(
    TRAINER_FLAGS,
    'node services/simulator/dist/trainer-main.js --run-id ID [--flag value | --flag=value]...',
    'Simulated trainer: speaks the trainer protocol (tandem.v1.TrainerService) like the\n' +
      'Python trainer agent but "trains" by sleeping for a time given by a cost model.\n' +
      'Everything it reports is simulated. Prints one JSON line {"event":"done",...} on\n' +
      'stdout at the end; logs go to stderr. Exit 0 when trained, ended or stopped; 1 on\n' +
      'failure; 2 for a bad flag or variable.',
  );
}
