/** What a reward function scores: one prompt group. */
export interface RewardInput {
  prompt: string;
  /** Reference answer, for verifiable rewards. */
  answer?: string;
  /** The G completions' text. */
  completions: string[];
}

/**
 * One completion's score: a finite number, or `null` when no reward
 * function could score it (TRL's reward functions all returned None; only a
 * remote reward answers that). The trajectory then carries reward 0 and
 * `unscored`, and the trainer leaves it out of its group's statistics.
 */
export type Reward = number | null;

/** Scores the completions of one group; one {@link Reward} per completion. */
export interface RewardFunction {
  readonly name: string;
  score(input: RewardInput, signal?: AbortSignal): Promise<Reward[]>;
}
