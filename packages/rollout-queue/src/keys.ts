/**
 * Redis key layout of one run. Every key shares the hash tag `{<runId>}`, so
 * all of a run's keys live in one Redis Cluster slot and multi-key Lua
 * scripts stay legal on Redis Cluster unchanged. BullMQ's prompt queue uses
 * the same tag through its prefix.
 */
export interface RunKeys {
  meta: string;
  slots: string;
  inflight: string;
  finished: string;
  gstate: string;
  gmeta: string;
  payload: string;
  ledger: string;
  gprompt: string;
  retry: string;
  events: string;
  /** Capped list of the run's journal entries (RunJournal). */
  journal: string;
  /** The run's fence: the highest control-plane leader token that took the run over. */
  fence: string;
  /** BullMQ prefix for the run's prompt queue. */
  bullPrefix: string;
  /** Glob matching every key of the run (for deletion). */
  pattern: string;
  batch(step: number): string;
  /** The ten keys every script takes first, in the order the scripts expect. */
  common: string[];
}

/** Key layout for `runId` under `prefix` (default `tandem`). */
export function runKeys(runId: string, prefix = 'tandem'): RunKeys {
  const base = `${prefix}:{${runId}}`;
  const k = {
    meta: `${base}:meta`,
    slots: `${base}:slots`,
    inflight: `${base}:inflight`,
    finished: `${base}:finished`,
    gstate: `${base}:gstate`,
    gmeta: `${base}:gmeta`,
    payload: `${base}:payload`,
    ledger: `${base}:ledger`,
    gprompt: `${base}:gprompt`,
    retry: `${base}:retry`,
  };
  return {
    ...k,
    events: `${base}:events`,
    journal: `${base}:journal`,
    fence: `${base}:fence`,
    bullPrefix: base,
    pattern: `${base}:*`,
    batch: (step) => `${base}:batch:${step}`,
    common: [k.meta, k.slots, k.inflight, k.finished, k.gstate, k.gmeta, k.payload, k.ledger, k.gprompt, k.retry],
  };
}
