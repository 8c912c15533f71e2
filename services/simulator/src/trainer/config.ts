import { z } from 'zod';
import { parseOrThrow } from '@tandem/common';

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

/** Where a flag's value goes. */
interface FlagSpec {
  env: string;
  kind: 'number' | 'string';
  /** Path into the trainer options, or undefined for a process field. */
  path?: readonly string[];
}

/**
 * Command-line flags and their environment variables; a flag wins over its
 * variable. Only trainer-main.ts calls {@link loadTrainerProcessConfig}.
 */
const FLAGS: Readonly<Record<string, FlagSpec>> = {
  'log-level': { env: 'TANDEM_LOG_LEVEL', kind: 'string' },
  server: { env: 'TANDEM_TRAINER_SERVER', kind: 'string', path: ['server'] },
  'run-id': { env: 'TANDEM_RUN_ID', kind: 'string', path: ['runId'] },
  'trainer-id': { env: 'TANDEM_TRAINER_ID', kind: 'string', path: ['trainerId'] },
  'step-overhead-ms': { env: 'TANDEM_TRAINER_STEP_OVERHEAD_MS', kind: 'number', path: ['cost', 'stepOverheadMs'] },
  'ms-per-kilo-token': { env: 'TANDEM_TRAINER_MS_PER_KILO_TOKEN', kind: 'number', path: ['cost', 'msPerKiloToken'] },
  'time-scale': { env: 'TANDEM_TRAINER_TIME_SCALE', kind: 'number', path: ['cost', 'timeScale'] },
  'pull-wait-ms': { env: 'TANDEM_TRAINER_PULL_WAIT_MS', kind: 'number', path: ['pullWaitMs'] },
  'rpc-timeout-ms': { env: 'TANDEM_TRAINER_RPC_TIMEOUT_MS', kind: 'number', path: ['rpcTimeoutMs'] },
  'max-receive-message-bytes': {
    env: 'TANDEM_TRAINER_MAX_RECEIVE_MESSAGE_BYTES',
    kind: 'number',
    path: ['maxReceiveMessageBytes'],
  },
  'reconnect-initial-ms': { env: 'TANDEM_TRAINER_RECONNECT_INITIAL_MS', kind: 'number', path: ['reconnect', 'initialMs'] },
  'reconnect-max-ms': { env: 'TANDEM_TRAINER_RECONNECT_MAX_MS', kind: 'number', path: ['reconnect', 'maxMs'] },
  'give-up-after-ms': { env: 'TANDEM_TRAINER_GIVE_UP_AFTER_MS', kind: 'number', path: ['reconnect', 'giveUpAfterMs'] },
  'crash-at-step': { env: 'TANDEM_TRAINER_CRASH_AT_STEP', kind: 'number', path: ['crashAtStep'] },
  checkpoint: { env: 'TANDEM_TRAINER_CHECKPOINT', kind: 'string', path: ['checkpointPath'] },
  'trained-log': { env: 'TANDEM_TRAINER_TRAINED_LOG', kind: 'string', path: ['trainedLogPath'] },
  'group-size': { env: 'TANDEM_TRAINER_GROUP_SIZE', kind: 'number', path: ['expectedGroupSize'] },
  'model-bytes': { env: 'TANDEM_TRAINER_MODEL_BYTES', kind: 'number', path: ['weightBroadcast', 'modelBytes'] },
  'group-init-ms': { env: 'TANDEM_TRAINER_GROUP_INIT_MS', kind: 'number', path: ['weightBroadcast', 'groupInitMs'] },
  'bandwidth-bytes-per-second': {
    env: 'TANDEM_TRAINER_BANDWIDTH_BYTES_PER_SECOND',
    kind: 'number',
    path: ['weightBroadcast', 'bandwidthBytesPerSecond'],
  },
};

const ProcessFieldsSchema = z.object({
  'log-level': z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

/**
 * Builds the process config from argv (`--flag value` / `--flag=value`) and
 * env. Throws INVALID_ARGUMENT naming the bad field; an unknown flag throws
 * a plain Error naming it.
 */
export function loadTrainerProcessConfig(input: {
  argv: readonly string[];
  env: Record<string, string | undefined>;
}): TrainerProcessConfig {
  const flags = readFlags(input.argv);
  const processFields: Record<string, unknown> = {};
  const options: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(FLAGS)) {
    const text = flags.get(name) ?? input.env[spec.env];
    if (text === undefined || text === '') continue;
    // A number that does not parse stays a string, so zod names the field.
    const value = spec.kind === 'number' && text.trim() !== '' && Number.isFinite(Number(text)) ? Number(text) : text;
    if (spec.path === undefined) processFields[name] = value;
    else setPath(options, spec.path, value);
  }
  // Environment only: secrets never travel as flags.
  if (input.env.TANDEM_RUN_TOKEN) options.token = input.env.TANDEM_RUN_TOKEN;
  if (input.env.TANDEM_TRAINER_TLS !== undefined && input.env.TANDEM_TRAINER_TLS !== '') options.tls = input.env.TANDEM_TRAINER_TLS === 'true' ? true : input.env.TANDEM_TRAINER_TLS === 'false' ? false : input.env.TANDEM_TRAINER_TLS;
  if (input.env.TANDEM_TLS_CA_FILE) options.caFile = input.env.TANDEM_TLS_CA_FILE;
  const p = parseOrThrow(ProcessFieldsSchema, processFields, 'trainer flags');
  return { logLevel: p['log-level'], trainer: parseOrThrow(SimulatedTrainerConfigSchema, options, 'trainer flags') };
}

function readFlags(argv: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (!arg.startsWith('--')) throw new Error(`unexpected argument "${arg}"`);
    const eq = arg.indexOf('=');
    const name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
    if (!Object.hasOwn(FLAGS, name)) throw new Error(`unknown flag --${name}`);
    let value: string | undefined;
    if (eq !== -1) value = arg.slice(eq + 1);
    else {
      value = argv[i + 1];
      i++;
    }
    if (value === undefined) throw new Error(`flag --${name} needs a value`);
    out.set(name, value);
  }
  return out;
}

function setPath(target: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let node = target;
  for (let i = 0; i < path.length - 1; i++) {
    const key = path[i] ?? '';
    const child = node[key];
    if (child !== null && typeof child === 'object' && !Array.isArray(child)) {
      node = child as Record<string, unknown>;
    } else {
      const created: Record<string, unknown> = {};
      node[key] = created;
      node = created;
    }
  }
  node[path[path.length - 1] ?? ''] = value;
}
