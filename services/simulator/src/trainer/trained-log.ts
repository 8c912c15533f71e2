import { appendFile, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';

/** One group of a trained step, as the trainer received it. */
export interface TrainedGroupEntry {
  groupId: string;
  promptId: string;
  /** Oldest policy version over the group's tokens (age = step − this). */
  minPolicyVersion: number;
  maxPolicyVersion: number;
}

/**
 * What the trainer trained for one step: written after training and before
 * the ack, so a step can appear more than once when the trainer died
 * between the two (the restarted trainer is served the same un-acked batch
 * and trains it again); the last entry of a step is the one that was acked.
 */
export interface TrainedStepEntry {
  runId: string;
  step: number;
  trainerId: string;
  groups: TrainedGroupEntry[];
}

/**
 * Where the trainer records each trained step: an independent account of
 * what reached the trainer, which the chaos suite compares with the
 * control plane's ledger (no group trained twice, none older than k).
 */
export interface TrainedLog {
  append(entry: TrainedStepEntry): Promise<void>;
}

/**
 * One JSON line per trained step appended to a file. A line is handed to
 * the kernel before the ack is sent, so a SIGKILL after that cannot lose it.
 */
export class JsonlTrainedLog implements TrainedLog {
  private readonly path: string;
  private dirReady: Promise<unknown> | undefined;

  constructor(path: string) {
    this.path = path;
  }

  async append(entry: TrainedStepEntry): Promise<void> {
    this.dirReady ??= mkdir(dirname(this.path), { recursive: true });
    await this.dirReady;
    await appendFile(this.path, `${JSON.stringify(entry)}\n`, 'utf8');
  }
}
