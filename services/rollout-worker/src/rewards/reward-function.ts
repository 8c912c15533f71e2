/** What a reward function scores: one prompt group. */
export interface RewardInput {
  prompt: string;
  /** Reference answer, for verifiable rewards. */
  answer?: string;
  /** The G completions' text. */
  completions: string[];
}

/** Scores the completions of one group; one finite number per completion. */
export interface RewardFunction {
  readonly name: string;
  score(input: RewardInput, signal?: AbortSignal): Promise<number[]>;
}
