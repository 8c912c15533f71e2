import { z } from 'zod';
import { parseOrThrow } from '@tandem/common';
import { formatHelp, readFlagSet, type FlagSet } from '../process-flags.js';

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
   * Which vLLM's NCCL engine to mimic: `init` takes the packing settings
   * (`packed`, `packed_buffer_size_bytes`, `packed_num_buffers`) in
   * `init_info` and only names/dtypes/shapes in `update_info` (current
   * vLLM); `update` takes them in every `update_info` and exactly four
   * fields in `init_info` (vLLM ≤ 0.25). Either refuses the other's fields
   * with 500, as vLLM's `**dict` dataclass parsing does. @default init
   */
  packingPlacement: z.enum(['init', 'update']).default('init'),
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

const ProcessFieldsSchema = z.object({
  host: z.string().min(1).default('127.0.0.1'),
  port: z.number().int().min(0).max(65_535).default(8000),
  'log-level': z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

/**
 * Command-line flags and their environment variables; a flag wins over its
 * variable. Also the source of `--help` and of the table in
 * docs/operations.md. Only generator-main.ts reads the process config.
 */
export const GENERATOR_FLAGS: FlagSet<typeof ProcessFieldsSchema, typeof GeneratorConfigSchema> = {
  what: 'generator flags',
  processSchema: ProcessFieldsSchema,
  optionsSchema: GeneratorConfigSchema,
  flags: {
    host: { env: 'TANDEM_SIM_HOST', kind: 'string', arg: 'HOST', help: 'address to listen on' },
    port: { env: 'TANDEM_SIM_PORT', kind: 'number', arg: 'PORT', help: 'port to listen on (0: any free port, printed in the "listening" line)' },
    'log-level': { env: 'TANDEM_LOG_LEVEL', kind: 'string', arg: 'LEVEL', help: 'pino level of the JSON logs on stderr' },
    model: { env: 'TANDEM_SIM_MODEL', kind: 'string', arg: 'NAME', path: ['model'], help: 'served model name (/v1/models, `model` in responses)' },
    'max-model-len': {
      env: 'TANDEM_SIM_MAX_MODEL_LEN',
      kind: 'number',
      path: ['maxModelLen'],
      help: 'prompt + completion token cap (vLLM --max-model-len)',
    },
    'time-scale': {
      env: 'TANDEM_SIM_TIME_SCALE',
      kind: 'number',
      arg: 'F',
      path: ['timeScale'],
      help: 'clock seconds per simulated second: 1 is real time, 0.01 runs a hundred times faster',
    },
    seed: { env: 'TANDEM_SIM_SEED', kind: 'number', path: ['seed'], help: 'seed of every random stream (sampling, lengths, faults)' },
    'world-size': {
      env: 'TANDEM_SIM_WORLD_SIZE',
      kind: 'number',
      path: ['worldSize'],
      help: 'inference world size reported by /get_world_size (TP x PP x DP)',
    },
    'while-paused': {
      env: 'TANDEM_SIM_WHILE_PAUSED',
      kind: 'string',
      arg: 'MODE',
      path: ['whilePaused'],
      help: 'a completion request while paused: wait for /resume like vLLM, or reject with 503',
    },
    'initial-policy-version': {
      env: 'TANDEM_SIM_INITIAL_POLICY_VERSION',
      kind: 'number',
      path: ['initialPolicyVersion'],
      help: 'policy version served at start',
    },
    'peak-tokens-per-second': {
      env: 'TANDEM_SIM_PEAK_TOKENS_PER_SECOND',
      kind: 'number',
      path: ['throughput', 'peakTokensPerSecondPerSequence'],
      help: 'decode tokens/s of one sequence running alone',
    },
    'concurrency-knee': {
      env: 'TANDEM_SIM_CONCURRENCY_KNEE',
      kind: 'number',
      path: ['throughput', 'concurrencyKnee'],
      help: 'concurrency at which per-sequence speed has halved',
    },
    'max-num-seqs': {
      env: 'TANDEM_SIM_MAX_NUM_SEQS',
      kind: 'number',
      path: ['throughput', 'maxNumSeqs'],
      help: 'most sequences decoding at once (vLLM --max-num-seqs); the rest wait',
    },
    'median-output-tokens': {
      env: 'TANDEM_SIM_MEDIAN_OUTPUT_TOKENS',
      kind: 'number',
      path: ['outputLength', 'medianTokens'],
      help: 'median completion length in tokens (lognormal, clipped to max_tokens)',
    },
    'model-bytes': {
      env: 'TANDEM_SIM_MODEL_BYTES',
      kind: 'number',
      path: ['weightTransfer', 'modelBytes'],
      help: 'bytes moved per weight update when update_info carries no shapes',
    },
    'bandwidth-bytes-per-second': {
      env: 'TANDEM_SIM_BANDWIDTH_BYTES_PER_SECOND',
      kind: 'number',
      path: ['weightTransfer', 'bandwidthBytesPerSecond'],
      help: 'effective NCCL broadcast bandwidth of weight updates',
    },
    'packing-placement': {
      env: 'TANDEM_SIM_PACKING_PLACEMENT',
      kind: 'string',
      arg: 'WHERE',
      path: ['weightTransfer', 'packingPlacement'],
      help: 'where the NCCL packing settings go: init_info (current vLLM) or update_info (vLLM <= 0.25)',
    },
    'error-fraction': {
      env: 'TANDEM_SIM_ERROR_FRACTION',
      kind: 'number',
      arg: 'F',
      path: ['faults', 'errorFraction'],
      help: 'fraction of completion requests answered 500',
    },
    'hang-fraction': {
      env: 'TANDEM_SIM_HANG_FRACTION',
      kind: 'number',
      arg: 'F',
      path: ['faults', 'hangFraction'],
      help: 'fraction of completion requests never answered',
    },
    'rate-limit-fraction': {
      env: 'TANDEM_SIM_RATE_LIMIT_FRACTION',
      kind: 'number',
      arg: 'F',
      path: ['faults', 'rateLimitFraction'],
      help: 'fraction of completion requests answered 429 with Retry-After',
    },
    'retry-after-seconds': {
      env: 'TANDEM_SIM_RETRY_AFTER_SECONDS',
      kind: 'number',
      path: ['faults', 'retryAfterSeconds'],
      help: 'Retry-After value of 429 answers',
    },
    'malformed-fraction': {
      env: 'TANDEM_SIM_MALFORMED_FRACTION',
      kind: 'number',
      arg: 'F',
      path: ['faults', 'malformedFraction'],
      help: 'fraction of completion requests answered 200 with a malformed body',
    },
    'die-after-requests': {
      env: 'TANDEM_SIM_DIE_AFTER_REQUESTS',
      kind: 'number',
      path: ['faults', 'dieAfterRequests'],
      help: 'exit 1, like a crashed pod, after answering this many completion requests (unset: never)',
    },
  },
};

/**
 * Builds the process config from argv (flags) and env (TANDEM_SIM_*). Throws
 * INVALID_ARGUMENT naming the flag or variable of each bad value; unknown
 * flags throw a plain Error.
 */
export function loadGeneratorProcessConfig(input: {
  argv: readonly string[];
  env: Record<string, string | undefined>;
}): GeneratorProcessConfig {
  const { process: p, options } = readFlagSet(GENERATOR_FLAGS, input);
  return { host: p.host, port: p.port, logLevel: p['log-level'], generator: options };
}

/** The usage text of generator-main (`--help`). */
export function generatorHelp(): string {
  return formatHelp(
    GENERATOR_FLAGS,
    'node services/simulator/dist/generator-main.js [--flag value | --flag=value]...',
    'Simulated vLLM generator: serves the OpenAI completions API and vLLM\'s weight-update\n' +
      'routes on a simulated GPU. Everything it reports is simulated. Prints one JSON line\n' +
      '{"event":"listening","url":...} on stdout when it serves; logs go to stderr.',
  );
}
