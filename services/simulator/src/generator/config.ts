import { z } from 'zod';
import { parseOrThrow } from '@tandem/common';

/**
 * Options of the simulated vLLM generator. Every option has a default, so
 * `GeneratorConfigSchema.parse({})` is a working generator. Durations in the
 * throughput model are *simulated* seconds; `timeScale` converts them to
 * wall-clock (or injected-clock) milliseconds.
 */

const fraction = z.number().min(0).max(1);

/** Continuous-batching throughput model (see throughput-model.ts). */
export const ThroughputOptionsSchema = z.object({
  /** Decode tokens/s of one sequence running alone. @default 60 */
  peakTokensPerSecondPerSequence: z.number().positive().default(60),
  /**
   * Concurrency at which per-sequence speed has halved; aggregate throughput
   * saturates at about `peak × knee`. @default 32
   */
  concurrencyKnee: z.number().positive().default(32),
  /** Prefill speed in prompt tokens/s, per sequence. @default 8000 */
  prefillTokensPerSecond: z.number().positive().default(8000),
  /** Most sequences decoding at once (vLLM `--max-num-seqs`); the rest wait. @default 256 */
  maxNumSeqs: z.number().int().positive().default(256),
});

/** Seeded output-length distribution: lognormal, clipped to `max_tokens`. */
export const OutputLengthOptionsSchema = z.object({
  /** Median completion length in tokens. @default 128 */
  medianTokens: z.number().positive().default(128),
  /** Lognormal sigma (tail heaviness). @default 0.8 */
  sigma: z.number().min(0).max(5).default(0.8),
});

/** Weight-transfer timing. */
export const WeightTransferOptionsSchema = z.object({
  /**
   * Bytes moved per update when `update_info` carries no shapes to size it
   * from. @default 1e9 (a 0.5B-parameter model in bf16)
   */
  modelBytes: z.number().positive().default(1e9),
  /** Effective NCCL broadcast bandwidth. @default 10e9 */
  bandwidthBytesPerSecond: z.number().positive().default(10e9),
  /**
   * Reject out-of-order calls (update without start, finish without start,
   * start twice) with 409. Upstream vLLM does not always check; being strict
   * here catches coordinator bugs that real vLLM would turn into hangs.
   * @default true
   */
  strictOrder: z.boolean().default(true),
});

/** Fault injection, decided per `/v1/completions` request from a seeded stream. */
export const FaultOptionsSchema = z
  .object({
    /** Fraction answered 500. @default 0 */
    errorFraction: fraction.default(0),
    /** Fraction never answered (the socket stays open). @default 0 */
    hangFraction: fraction.default(0),
    /** Fraction answered 429 with `Retry-After`. @default 0 */
    rateLimitFraction: fraction.default(0),
    /** `Retry-After` header value on 429 answers. @default 1 */
    retryAfterSeconds: z.number().int().min(0).default(1),
    /** Fraction answered 200 with a malformed body (kind chosen uniformly). @default 0 */
    malformedFraction: fraction.default(0),
    /** Kinds of malformed body to draw from. @default all three */
    malformedKinds: z
      .array(z.enum(['bad-json', 'wrong-token-count', 'nan-logprobs']))
      .min(1)
      .default(['bad-json', 'wrong-token-count', 'nan-logprobs']),
    /** Die (see `onDie`) after answering this many completion requests. @default null (never) */
    dieAfterRequests: z.number().int().positive().nullable().default(null),
  })
  .superRefine((f, ctx) => {
    const total = f.errorFraction + f.hangFraction + f.rateLimitFraction + f.malformedFraction;
    if (total > 1) {
      ctx.addIssue({
        code: 'custom',
        path: ['errorFraction'],
        message: `error + hang + rateLimit + malformed fractions sum to ${total}, more than 1`,
      });
    }
  });

/** The simulated generator's options. */
export const GeneratorConfigSchema = z.object({
  /** Served model name (`/v1/models`, `model` in responses). @default 'tandem-sim/qwen-like-0.5b' */
  model: z.string().min(1).default('tandem-sim/qwen-like-0.5b'),
  /** Prompt + completion token cap (vLLM `--max-model-len`). @default 4096 */
  maxModelLen: z.number().int().positive().default(4096),
  /** Vocabulary size; generated ids are drawn from [3, vocabSize). @default 32000 */
  vocabSize: z.number().int().min(300).default(32_000),
  /** Token id that ends a completion with `finish_reason: "stop"`. @default 2 */
  eosTokenId: z.number().int().min(0).default(2),
  /** Seed of every random stream (sampling, lengths, faults). @default 0 */
  seed: z.number().int().default(0),
  /**
   * Multiplier from simulated seconds to clock time: 1 is real time, 0.01
   * runs a hundred times faster. @default 1
   */
  timeScale: z.number().positive().default(1),
  /** Inference world size reported by `/get_world_size` (TP × PP × DP). @default 1 */
  worldSize: z.number().int().positive().default(1),
  /**
   * What a new completion request gets while the engine is paused. vLLM
   * queues it (`wait`: the HTTP request stays open until /resume); `reject`
   * answers 503 at once, for testing clients' retry paths. @default 'wait'
   */
  whilePaused: z.enum(['wait', 'reject']).default('wait'),
  /** Policy version served at start. @default 0 */
  initialPolicyVersion: z.number().int().min(0).default(0),
  /** Largest accepted request body in bytes. @default 16 MiB */
  maxRequestBytes: z.number().int().positive().default(16 * 1024 * 1024),
  throughput: ThroughputOptionsSchema.prefault({}),
  outputLength: OutputLengthOptionsSchema.prefault({}),
  weightTransfer: WeightTransferOptionsSchema.prefault({}),
  faults: FaultOptionsSchema.prefault({}),
});

/** Options as a caller writes them (everything optional). */
export type GeneratorOptions = z.input<typeof GeneratorConfigSchema>;
/** Options with every default applied. */
export type GeneratorConfig = z.output<typeof GeneratorConfigSchema>;
/** Fault options with defaults applied. */
export type FaultConfig = GeneratorConfig['faults'];
/** Throughput options with defaults applied. */
export type ThroughputConfig = GeneratorConfig['throughput'];

/** Validates options, throwing INVALID_ARGUMENT that names each bad field. */
export function resolveGeneratorConfig(options: GeneratorOptions = {}): GeneratorConfig {
  return parseOrThrow(GeneratorConfigSchema, options, 'generator config');
}

/** Where the generator process listens, plus its generator options. */
export interface GeneratorProcessConfig {
  host: string;
  /** 0 picks a free port. */
  port: number;
  logLevel: string;
  generator: GeneratorConfig;
}

/** Where a flag's value goes: a process field or a path into {@link GeneratorOptions}. */
interface FlagSpec {
  env: string;
  kind: 'number' | 'string';
  /** Path into the generator options, or undefined for a process field. */
  path?: readonly string[];
}

/**
 * Command-line flags and their environment variables; a flag wins over its
 * variable. Only generator-main.ts calls {@link loadGeneratorProcessConfig}.
 */
const FLAGS: Readonly<Record<string, FlagSpec>> = {
  host: { env: 'TANDEM_SIM_HOST', kind: 'string' },
  port: { env: 'TANDEM_SIM_PORT', kind: 'number' },
  'log-level': { env: 'TANDEM_LOG_LEVEL', kind: 'string' },
  model: { env: 'TANDEM_SIM_MODEL', kind: 'string', path: ['model'] },
  'max-model-len': { env: 'TANDEM_SIM_MAX_MODEL_LEN', kind: 'number', path: ['maxModelLen'] },
  'time-scale': { env: 'TANDEM_SIM_TIME_SCALE', kind: 'number', path: ['timeScale'] },
  seed: { env: 'TANDEM_SIM_SEED', kind: 'number', path: ['seed'] },
  'world-size': { env: 'TANDEM_SIM_WORLD_SIZE', kind: 'number', path: ['worldSize'] },
  'while-paused': { env: 'TANDEM_SIM_WHILE_PAUSED', kind: 'string', path: ['whilePaused'] },
  'initial-policy-version': {
    env: 'TANDEM_SIM_INITIAL_POLICY_VERSION',
    kind: 'number',
    path: ['initialPolicyVersion'],
  },
  'peak-tokens-per-second': {
    env: 'TANDEM_SIM_PEAK_TOKENS_PER_SECOND',
    kind: 'number',
    path: ['throughput', 'peakTokensPerSecondPerSequence'],
  },
  'concurrency-knee': {
    env: 'TANDEM_SIM_CONCURRENCY_KNEE',
    kind: 'number',
    path: ['throughput', 'concurrencyKnee'],
  },
  'max-num-seqs': { env: 'TANDEM_SIM_MAX_NUM_SEQS', kind: 'number', path: ['throughput', 'maxNumSeqs'] },
  'median-output-tokens': {
    env: 'TANDEM_SIM_MEDIAN_OUTPUT_TOKENS',
    kind: 'number',
    path: ['outputLength', 'medianTokens'],
  },
  'model-bytes': { env: 'TANDEM_SIM_MODEL_BYTES', kind: 'number', path: ['weightTransfer', 'modelBytes'] },
  'bandwidth-bytes-per-second': {
    env: 'TANDEM_SIM_BANDWIDTH_BYTES_PER_SECOND',
    kind: 'number',
    path: ['weightTransfer', 'bandwidthBytesPerSecond'],
  },
  'error-fraction': { env: 'TANDEM_SIM_ERROR_FRACTION', kind: 'number', path: ['faults', 'errorFraction'] },
  'hang-fraction': { env: 'TANDEM_SIM_HANG_FRACTION', kind: 'number', path: ['faults', 'hangFraction'] },
  'rate-limit-fraction': {
    env: 'TANDEM_SIM_RATE_LIMIT_FRACTION',
    kind: 'number',
    path: ['faults', 'rateLimitFraction'],
  },
  'retry-after-seconds': {
    env: 'TANDEM_SIM_RETRY_AFTER_SECONDS',
    kind: 'number',
    path: ['faults', 'retryAfterSeconds'],
  },
  'malformed-fraction': {
    env: 'TANDEM_SIM_MALFORMED_FRACTION',
    kind: 'number',
    path: ['faults', 'malformedFraction'],
  },
  'die-after-requests': {
    env: 'TANDEM_SIM_DIE_AFTER_REQUESTS',
    kind: 'number',
    path: ['faults', 'dieAfterRequests'],
  },
};

/** Reads `--name value` / `--name=value` pairs; unknown flags are an error. */
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

const ProcessFieldsSchema = z.object({
  host: z.string().min(1).default('127.0.0.1'),
  port: z.number().int().min(0).max(65_535).default(8000),
  'log-level': z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

/**
 * Builds the process config from argv (flags) and env (TANDEM_SIM_*). Throws
 * INVALID_ARGUMENT naming the bad field; unknown flags throw a plain Error.
 */
export function loadGeneratorProcessConfig(input: {
  argv: readonly string[];
  env: Record<string, string | undefined>;
}): GeneratorProcessConfig {
  const flags = readFlags(input.argv);
  const processFields: Record<string, unknown> = {};
  const options: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(FLAGS)) {
    const text = flags.get(name) ?? input.env[spec.env];
    if (text === undefined || text === '') continue;
    // A number flag that does not parse stays a string so zod names it.
    const value = spec.kind === 'number' && text.trim() !== '' && Number.isFinite(Number(text)) ? Number(text) : text;
    if (spec.path === undefined) processFields[name] = value;
    else setPath(options, spec.path, value);
  }
  const p = parseOrThrow(ProcessFieldsSchema, processFields, 'generator flags');
  return {
    host: p.host,
    port: p.port,
    logLevel: p['log-level'],
    generator: parseOrThrow(GeneratorConfigSchema, options, 'generator flags'),
  };
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
