import { z } from 'zod';
import { parseOrThrow } from '@tandem/common';

/**
 * The run spec: one zod schema that is the single source of truth for the
 * HTTP API, the gRPC API (as a Struct) and, later, the RLRun CRD's spec.
 * Objects are strict so that a misspelt field is an error naming it, not a
 * silently ignored setting.
 */

const positiveInt = z.number().int().positive();
const nonNegativeInt = z.number().int().nonnegative();

/** The policy model. */
export const ModelSpec = z.strictObject({
  /** Model name as the generators serve it (vLLM `--served-model-name`). */
  name: z.string().min(1).max(256),
  /** Optional revision or checkpoint path. */
  revision: z.string().max(256).optional(),
});

/** Longest prompt (and reference answer) in characters, inline or in a JSON-lines file. */
export const MAX_PROMPT_CHARS = 65_536;

const InlinePrompt = z.strictObject({
  prompt: z.string().min(1).max(MAX_PROMPT_CHARS),
  /** Reference answer for verifiable rewards. */
  answer: z.string().max(MAX_PROMPT_CHARS).optional(),
  /**
   * Pre-tokenised prompt, when the dataset carries ids. Ids travel as packed
   * int32 (tandem.v1.PromptGroup), so larger ones would be corrupted.
   */
  promptTokenIds: z.array(nonNegativeInt.max(2 ** 31 - 1)).max(131_072).optional(),
});

/** Where prompts come from. Prompts are drawn in order and cycle when exhausted. */
export const DatasetSpec = z.discriminatedUnion('source', [
  z.strictObject({
    source: z.literal('builtin'),
    /** `arithmetic`: generated a + b / a * b questions with numeric answers. */
    name: z.literal('arithmetic'),
    /** @default 1000 */
    size: positiveInt.max(10_000_000).default(1000),
    /** @default 0 */
    seed: nonNegativeInt.default(0),
  }),
  z.strictObject({
    source: z.literal('inline'),
    prompts: z.array(InlinePrompt).min(1).max(100_000),
  }),
  z.strictObject({
    source: z.literal('jsonl'),
    /** Path or URI of a JSON-lines file, one prompt object per line. */
    path: z.string().min(1),
    /** @default 'prompt' */
    promptField: z.string().min(1).default('prompt'),
    /** @default 'answer' */
    answerField: z.string().min(1).default('answer'),
  }),
]);

/** How completions are scored. */
export const RewardSpec = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('exact_match') }),
  z.strictObject({
    kind: z.literal('numeric'),
    /** Absolute tolerance. @default 1e-6 */
    tolerance: z.number().nonnegative().default(1e-6),
  }),
  z.strictObject({
    kind: z.literal('regex'),
    /** Reward 1 when the completion matches. */
    pattern: z.string().min(1).max(4096).refine(isValidRegex, 'not a valid regular expression'),
  }),
  z.strictObject({
    kind: z.literal('remote'),
    /** HTTP endpoint that scores a batch of completions. */
    url: z.url().refine((u) => !/^[a-z][a-z0-9+.-]*:\/\/[^/?#]*@/i.test(u), 'must not carry credentials (user:password@): the spec is stored and shown; use headersFromEnv'),
    /** @default 30000 */
    timeoutMs: positiveInt.max(600_000).default(30_000),
    /**
     * Request headers whose values the rollout workers read from their
     * environment: header name → variable name, e.g.
     * `{ Authorization: REWARD_AUTHORIZATION }`. The spec (stored, shown by
     * the API) names the variable, never the secret; values are never logged.
     */
    headersFromEnv: z
      .record(z.string().regex(/^[A-Za-z0-9-]{1,64}$/, 'must be an HTTP header name'), z.string().regex(/^[A-Z_][A-Z0-9_]{0,127}$/, 'must be an environment variable name'))
      .refine((h) => Object.keys(h).length <= 16, 'at most 16 headers')
      .optional(),
  }),
]);

/** The RL algorithm. */
export const AlgorithmSpec = z.strictObject({
  /** @default 'grpo' */
  name: z.literal('grpo').default('grpo'),
  /** Completions sampled per prompt (GRPO group size G). @default 8 */
  groupSize: positiveInt.max(1024).default(8),
  /**
   * Prompt groups in the batch of one optimizer step. At most 4096: the
   * queue's Lua scripts unpack a batch's ids onto Lua's C stack.
   * @default 16
   */
  batchGroups: positiveInt.max(4096).default(16),
  /** Completion length cap. @default 1024 */
  maxTokens: positiveInt.max(131_072).default(1024),
  /** Sampling temperature. @default 1.0 */
  temperature: z.number().min(0).max(10).default(1.0),
});

/** Asynchronous execution and the staleness contract. */
export const AsyncSpec = z.strictObject({
  /**
   * The staleness bound k: a group whose oldest token came from policy
   * version v is trained on at step s only if s − v ≤ k. 0 is synchronous RL.
   * @default 1
   */
  maxTrajectoryAgeSteps: nonNegativeInt.max(64).default(1),
  /**
   * Finished plus in-flight groups allowed at once.
   * @default batchGroups × (maxTrajectoryAgeSteps + 1)
   */
  queueCapacityGroups: positiveInt.max(10_000_000).optional(),
  /** Let generation continue across a weight update (vLLM pause mode "keep"). @default true */
  inFlightWeightUpdates: z.boolean().default(true),
  weightSync: z
    .strictObject({
      /** Deadline for one weight sync across all generators. @default 120000 */
      timeoutMs: positiveInt.max(3_600_000).default(120_000),
    })
    .default({ timeoutMs: 120_000 }),
});

/** The generator pool (vLLM server replicas). */
export const GeneratorSpec = z.strictObject({
  /** vLLM servers. Resized while running with `tandem runs scale`. @default 1 */
  replicas: nonNegativeInt.max(4096).default(1),
});

/** Rollout workers (stateless; scale with the generator pool). */
export const RolloutWorkersSpec = z.strictObject({
  /** @default 1 */
  replicas: positiveInt.max(1024).default(1),
  /** Prompt groups each worker processes at once. @default 64 */
  concurrency: positiveInt.max(10_000).default(64),
});

/** What to do when a run's process or pod dies. */
export const FailurePolicySpec = z.strictObject({
  /** Restarts of one role (generator, trainer, rollout worker) before the run fails. @default 3 */
  maxRestarts: nonNegativeInt.max(1000).default(3),
});

/**
 * Speeds of the simulated generators and trainer, for the local runtime
 * (`tandem demo`, CI, benchmarks). Everything they report is labelled
 * simulated. Absent means real generators and a real trainer.
 */
export const SimulationSpec = z.strictObject({
  /** Wall-clock seconds per simulated second (0.01 runs 100× faster). @default 1 */
  timeScale: z.number().positive().max(1000).default(1),
  generator: z
    .strictObject({
      /** Decode tokens/s of one sequence running alone. @default 60 */
      peakTokensPerSecondPerSequence: z.number().positive().optional(),
      /** Concurrency at which per-sequence speed halves. @default 32 */
      concurrencyKnee: z.number().positive().optional(),
      /** Median completion length. @default 128 */
      medianOutputTokens: z.number().positive().optional(),
      /** Lognormal sigma of completion lengths. @default 0.8 */
      outputLengthSigma: z.number().min(0).max(5).optional(),
      /** Bytes of one weight update. @default 1e9 */
      modelBytes: z.number().positive().optional(),
      /** Weight-transfer bandwidth. @default 10e9 */
      bandwidthBytesPerSecond: z.number().positive().optional(),
    })
    .default({}),
  trainer: z
    .strictObject({
      /** @default 2000 */
      stepOverheadMs: z.number().min(0).optional(),
      /** @default 40 */
      msPerKiloToken: z.number().min(0).optional(),
    })
    .default({}),
  /** Seed of the simulated generators' sampling. @default 0 */
  seed: nonNegativeInt.default(0),
});

/** The whole run spec as accepted by the API. */
export const RunSpecSchema = z
  .strictObject({
    /** Display name. */
    name: z.string().max(253).optional(),
    model: ModelSpec,
    dataset: DatasetSpec,
    reward: RewardSpec,
    algorithm: AlgorithmSpec.default(AlgorithmSpec.parse({})),
    async: AsyncSpec.default(AsyncSpec.parse({})),
    /** Optimizer steps to run. */
    maxSteps: positiveInt.max(10_000_000),
    generator: GeneratorSpec.default(GeneratorSpec.parse({})),
    rolloutWorkers: RolloutWorkersSpec.default(RolloutWorkersSpec.parse({})),
    failurePolicy: FailurePolicySpec.default(FailurePolicySpec.parse({})),
    simulation: SimulationSpec.optional(),
  })
  .superRefine((spec, ctx) => {
    const capacity = spec.async.queueCapacityGroups;
    if (capacity !== undefined && capacity < spec.algorithm.batchGroups) {
      ctx.addIssue({
        code: 'custom',
        path: ['async', 'queueCapacityGroups'],
        message: `must be at least algorithm.batchGroups (${spec.algorithm.batchGroups}), or no batch can ever fill`,
      });
    }
  });

/** A run spec as written by a user (defaults not yet applied). */
export type RunSpecInput = z.input<typeof RunSpecSchema>;
/** A validated run spec with every default applied. */
export type RunSpec = z.output<typeof RunSpecSchema>;

/** Validates a run spec, throwing INVALID_ARGUMENT that names each bad field. */
export function parseRunSpec(input: unknown): RunSpec {
  return parseOrThrow(RunSpecSchema, input, 'run spec');
}

/** The queue capacity in groups, applying the default `batchGroups × (k + 1)`. */
export function queueCapacityGroups(spec: RunSpec): number {
  return spec.async.queueCapacityGroups ?? spec.algorithm.batchGroups * (spec.async.maxTrajectoryAgeSteps + 1);
}

const RUN_ID = /^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/;

/**
 * Whether `id` is a valid run id: a DNS-1035 label (a DNS-1123 label that
 * starts with a letter), because it names Kubernetes Services, which must be.
 */
export function isValidRunId(id: string): boolean {
  return RUN_ID.test(id);
}

function isValidRegex(pattern: string): boolean {
  try {
    new RegExp(pattern);
    return true;
  } catch {
    return false;
  }
}
