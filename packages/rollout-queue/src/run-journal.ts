import type { RedisClient } from './redis-connection.js';
import { systemClock, silentLogger, type Clock, type Logger } from '@tandem/common';
import { runKeys } from './keys.js';

/** Kubernetes-style event type: `Warning` for what an operator should look at. */
export type JournalEntryType = 'Normal' | 'Warning';

/** One entry of a run's journal (what `tandem runs get` shows under Events). */
export interface RunJournalEntry {
  /** Epoch ms. */
  atMs: number;
  type: JournalEntryType;
  /** CamelCase reason, e.g. `GeneratorCutOff` (docs/operations.md lists them). */
  reason: string;
  message: string;
}

/** Entries kept per run; older ones are trimmed. */
export const JOURNAL_MAX_ENTRIES = 200;
/** Longest message kept (characters). */
const MAX_MESSAGE_CHARS = 1024;

/**
 * The last things that happened to a run — phase changes, weight-sync
 * cut-offs and failures, process restarts, stale drops, trainer
 * attach/detach — as a capped Redis list under the run's hash tag
 * (`{prefix}:{runId}:journal`), so that every control-plane replica and
 * the CLI see the same history and it goes with the run's other keys.
 * Recording never fails its caller: a journal write that Redis refuses is
 * logged and dropped.
 */
export class RunJournal {
  private readonly redis: RedisClient;
  private readonly keyPrefix: string;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly maxEntries: number;

  constructor(redis: RedisClient, options: { keyPrefix?: string; clock?: Clock; log?: Logger; maxEntries?: number } = {}) {
    this.redis = redis;
    this.keyPrefix = options.keyPrefix ?? 'tandem';
    this.clock = options.clock ?? systemClock;
    this.log = options.log ?? silentLogger();
    this.maxEntries = options.maxEntries ?? JOURNAL_MAX_ENTRIES;
  }

  /** Appends an entry (trimming the oldest beyond the cap). */
  async record(runId: string, type: JournalEntryType, reason: string, message: string): Promise<void> {
    const entry: RunJournalEntry = {
      atMs: this.clock.now(),
      type,
      reason,
      message: message.length > MAX_MESSAGE_CHARS ? `${message.slice(0, MAX_MESSAGE_CHARS - 1)}…` : message,
    };
    const key = runKeys(runId, this.keyPrefix).journal;
    try {
      await this.redis.multi().rpush(key, JSON.stringify(entry)).ltrim(key, -this.maxEntries, -1).exec();
    } catch (err) {
      this.log.warn({ err, runId, reason }, 'could not record a run journal entry');
    }
  }

  /** The newest `limit` entries, oldest first. */
  async list(runId: string, limit = 50): Promise<RunJournalEntry[]> {
    const n = Math.max(1, Math.min(this.maxEntries, Math.floor(limit)));
    const raw = await this.redis.lrange(runKeys(runId, this.keyPrefix).journal, -n, -1);
    const entries: RunJournalEntry[] = [];
    for (const line of raw) {
      try {
        const e = JSON.parse(line) as Partial<RunJournalEntry>;
        if (typeof e.atMs === 'number' && (e.type === 'Normal' || e.type === 'Warning') && typeof e.reason === 'string' && typeof e.message === 'string') {
          entries.push({ atMs: e.atMs, type: e.type, reason: e.reason, message: e.message });
        }
      } catch {
        // A malformed entry (written by hand) is skipped, not fatal.
      }
    }
    return entries;
  }
}
