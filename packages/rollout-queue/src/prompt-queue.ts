import { Queue, Worker, type ConnectionOptions, type Job, type WorkerOptions } from 'bullmq';

/** Payload of one admitted prompt group, as rollout workers receive it. */
export interface PromptJob {
  runId: string;
  groupId: string;
  promptId: string;
  targetStep: number;
  /** Policy version in force when the group was admitted. */
  policyVersion: number;
  prompt: string;
  /** Reference answer for verifiable rewards. */
  answer?: string;
  /** Pre-tokenised prompt, when the dataset carries ids. */
  promptTokenIds?: number[];
}

/** Options for {@link PromptQueue}. */
export interface PromptQueueOptions {
  /** BullMQ prefix; carries the run's hash tag. */
  prefix: string;
  connection: ConnectionOptions & { url?: string };
}

/** BullMQ job id of a group (BullMQ refuses custom ids that are integers). */
export function jobIdOf(groupId: string): string {
  return `group-${groupId}`;
}

/** Name of the BullMQ queue of admitted prompts within a run's prefix. */
export const PROMPT_QUEUE_NAME = 'prompts';

/**
 * The queue of admitted prompt groups, on BullMQ: rollout workers take jobs
 * with a lock that BullMQ renews, and a job whose worker died is moved back
 * to wait by BullMQ's stalled-job check, so a killed worker loses nothing.
 * The job id is derived from the group id, which makes adding idempotent: re-adding an
 * admitted group after a crash between admission and enqueue is safe.
 */
export class PromptQueue {
  readonly queue: Queue<PromptJob>;
  private readonly options: PromptQueueOptions;

  constructor(options: PromptQueueOptions) {
    this.options = options;
    this.queue = new Queue<PromptJob>(PROMPT_QUEUE_NAME, {
      prefix: options.prefix,
      connection: options.connection,
      defaultJobOptions: { removeOnComplete: true, removeOnFail: 1000, attempts: 1 },
    });
  }

  /** Enqueues an admitted group (idempotent by group id). */
  async add(job: PromptJob): Promise<void> {
    await this.queue.add('generate', job, { jobId: jobIdOf(job.groupId) });
  }

  /** Whether a job for the group exists in any BullMQ state but completed. */
  async has(groupId: string): Promise<boolean> {
    const state = await this.queue.getJobState(jobIdOf(groupId));
    return state !== 'unknown' && state !== 'completed' && state !== 'failed';
  }

  /** Starts a BullMQ worker on this queue. */
  worker(
    processor: (job: Job<PromptJob>) => Promise<void>,
    options: Omit<WorkerOptions, 'connection' | 'prefix'> = {},
  ): Worker<PromptJob> {
    return new Worker<PromptJob>(PROMPT_QUEUE_NAME, processor, {
      prefix: this.options.prefix,
      connection: this.options.connection,
      ...options,
    });
  }

  async close(): Promise<void> {
    await this.queue.close();
  }
}
