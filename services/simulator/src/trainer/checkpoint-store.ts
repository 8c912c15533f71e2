import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { z } from 'zod';
import { parseOrThrow } from '@tandem/common';

/** What the simulated trainer persists after every ack (its "weights"). */
export const TrainerCheckpointSchema = z.object({
  /** Format version of this file. */
  format: z.literal(1),
  runId: z.string().min(1),
  /** Policy version the trainer holds: the last acked step + 1. */
  policyVersion: z.number().int().min(0),
  /** The last step acked, or -1 before any. */
  lastAckedStep: z.number().int().min(-1),
  /** ISO time of the write. */
  savedAt: z.string(),
});

/** A trainer checkpoint. */
export type TrainerCheckpoint = z.infer<typeof TrainerCheckpointSchema>;

/** Where checkpoints live; a fake in tests, a JSON file in the process. */
export interface CheckpointStore {
  /** The last checkpoint, or undefined when there is none yet. */
  load(): Promise<TrainerCheckpoint | undefined>;
  save(checkpoint: TrainerCheckpoint): Promise<void>;
}

/**
 * A checkpoint in one JSON file, replaced atomically (write a temporary file,
 * then rename), so a crash mid-write leaves the previous checkpoint intact.
 */
export class JsonFileCheckpointStore implements CheckpointStore {
  private readonly path: string;

  constructor(path: string) {
    this.path = path;
  }

  async load(): Promise<TrainerCheckpoint | undefined> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err: unknown) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (err: unknown) {
      throw new Error(`checkpoint ${this.path} is not valid JSON: ${(err as Error).message}`, { cause: err });
    }
    return parseOrThrow(TrainerCheckpointSchema, json, `checkpoint ${this.path}`);
  }

  async save(checkpoint: TrainerCheckpoint): Promise<void> {
    await mkdir(dirname(this.path), { recursive: true });
    const tmp = `${this.path}.${process.pid}.tmp`;
    await writeFile(tmp, `${JSON.stringify(checkpoint)}\n`, 'utf8');
    await rename(tmp, this.path);
  }
}
