import { Queue, Worker, type ConnectionOptions, type Job, type WorkerOptions } from 'bullmq';
import { Cluster, Redis } from 'ioredis';
import type { RedisClient } from './redis-connection.js';

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
  /**
   * BullMQ prefix; carries the run's hash tag, so that every key of the
   * queue lands in the run's Redis Cluster slot (BullMQ's scripts take
   * several keys at once).
   */
  prefix: string;
  /** Connection options, or a client (a Cluster must be given as a client). */
  connection: ConnectionOptions;
  /**
   * The connection of each worker; a client here needs
   * `maxRetriesPerRequest: null` (BullMQ refuses others). @default connection
   */
  workerConnection?: () => ConnectionOptions;
  /** Called with each client of `connection`/`workerConnection` that is no longer used (BullMQ never closes a client it is given). */
  release?: (client: RedisClient) => void;
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
  private readonly workers = new Set<Worker<PromptJob>>();

  constructor(options: PromptQueueOptions) {
    this.options = options;
    this.queue = new Queue<PromptJob>(PROMPT_QUEUE_NAME, {
      prefix: options.prefix,
      connection: options.connection,
      defaultJobOptions: { removeOnComplete: true, removeOnFail: 1000, attempts: 1 },
    });
  }

  /** Enqueues newly admitted groups, in one round trip (idempotent by group id). */
  async addMany(jobs: PromptJob[]): Promise<void> {
    if (jobs.length === 0) return;
    await this.queue.addBulk(jobs.map((job) => ({ name: 'generate', data: job, opts: { jobId: jobIdOf(job.groupId) } })));
  }

  /**
   * Enqueues an admitted group again (the sweep, after a crash between
   * admission and enqueue, or a job that failed). BullMQ ignores an add
   * whose id exists in any state, and failed jobs are kept (removeOnFail):
   * a group whose job failed (its worker was killed mid-job and the job
   * stalled out) could never be enqueued again and would stay in flight for
   * good, so a finished job of the group is removed first.
   */
  async add(job: PromptJob): Promise<void> {
    const jobId = jobIdOf(job.groupId);
    const state = await this.queue.getJobState(jobId);
    if (state === 'failed' || state === 'completed') await this.queue.remove(jobId);
    await this.queue.add('generate', job, { jobId });
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
    const connection = this.options.workerConnection?.() ?? this.options.connection;
    const worker = new Worker<PromptJob>(PROMPT_QUEUE_NAME, processor, {
      prefix: this.options.prefix,
      connection,
      ...options,
    });
    if (connection !== this.options.connection && isRedisClient(connection)) {
      this.workers.add(worker);
      worker.once('closed', () => {
        this.workers.delete(worker);
        this.options.release?.(connection);
      });
    }
    return worker;
  }

  /** Closes the queue and its workers, and releases their connections. */
  async close(): Promise<void> {
    await Promise.all([...this.workers].map((w) => w.close()));
    await this.queue.close();
    if (isRedisClient(this.options.connection)) this.options.release?.(this.options.connection);
  }
}

function isRedisClient(connection: ConnectionOptions): connection is RedisClient {
  return connection instanceof Redis || connection instanceof Cluster;
}
