import { readFile } from 'node:fs/promises';
import type { GroupState, Ledger } from '@tandem/rollout-queue';

/** The ledger of a run as Redis holds it at the end. */
export interface RedisLedgerView {
  ledger: Ledger;
  /** State of every group ever admitted. */
  groupStates: Map<string, GroupState>;
  /** Prompt id each group was admitted with. */
  groupPrompts: Map<string, string>;
  /** Prompts drawn so far (prompt ids are the draws 0 … promptsDrawn − 1). */
  promptsDrawn: number;
}

/** One group of a step in the trainer's own record. */
interface RecordedGroup {
  groupId: string;
  promptId: string;
  minPolicyVersion: number;
}

/** What the audit found. `lost` and `duplicated` must be 0. */
export interface LedgerAudit {
  admitted: number;
  trained: number;
  droppedStale: number;
  failed: number;
  cancelled: number;
  /**
   * Accepted work that did not end in the ledger: prompts drawn without a
   * group, groups not in a final state, groups the ledger counts as trained
   * that never reached the trainer.
   */
  lost: number;
  /** Groups (or prompts) the trainer trained more than once. */
  duplicated: number;
  /** Trained groups older than k at the step that trained them. */
  staleTrained: number;
  /** Steps in the trainer's record. */
  stepsRecorded: number;
  /** Each violation in words (empty when the run is sound). */
  problems: string[];
}

const FINAL: ReadonlySet<GroupState> = new Set(['trained', 'dropped_stale', 'failed', 'cancelled']);

/**
 * Reads the trainer's record (one JSON line per trained step, see the
 * simulated trainer's `--trained-log`) into the groups of each step. A step
 * recorded more than once was re-served after the trainer died before its
 * ack: the last entry is the one acked.
 */
export async function readTrainedRecord(path: string): Promise<Map<number, RecordedGroup[]>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
    throw err;
  }
  const steps = new Map<number, RecordedGroup[]>();
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    const where = `${path}:${i + 1}`;
    let entry: unknown;
    try {
      entry = JSON.parse(line);
    } catch (err) {
      throw new Error(`${where}: not JSON: ${(err as Error).message}`, { cause: err });
    }
    const e = entry as { step?: unknown; groups?: unknown };
    if (!Number.isInteger(e.step) || !Array.isArray(e.groups)) throw new Error(`${where}: expected {step, groups[]}`);
    const groups = (e.groups as unknown[]).map((g, j) => {
      const r = g as Partial<RecordedGroup>;
      if (typeof r.groupId !== 'string' || typeof r.promptId !== 'string' || !Number.isInteger(r.minPolicyVersion)) {
        throw new Error(`${where}: groups[${j}] needs groupId, promptId and an integer minPolicyVersion`);
      }
      return { groupId: r.groupId, promptId: r.promptId, minPolicyVersion: r.minPolicyVersion as number };
    });
    steps.set(e.step as number, groups);
  });
  return steps;
}

/**
 * Checks a finished run: the ledger balances (admitted = trained +
 * dropped-stale + failed + cancelled), every group admitted is in a final
 * state, every prompt drawn has a group, and the groups the trainer itself
 * recorded are exactly the groups the ledger counts as trained, each once,
 * none older than k, in every step of the run.
 */
export function auditLedger(redis: RedisLedgerView, trained: Map<number, RecordedGroup[]>, run: { maxSteps: number; k: number }): LedgerAudit {
  const problems: string[] = [];
  const l = redis.ledger;
  const lost = new Set<string>();
  const duplicated = new Set<string>();
  let staleTrained = 0;
  const note = (what: string, ids: readonly string[]): void => {
    if (ids.length > 0) problems.push(`${ids.length} ${what}: ${ids.slice(0, 5).join(', ')}${ids.length > 5 ? ', …' : ''}`);
  };

  const ended = l.trained + l.droppedStale + l.failed + l.cancelled;
  if (l.admitted !== ended) {
    problems.push(`ledger does not balance: admitted ${l.admitted} ≠ trained ${l.trained} + dropped-stale ${l.droppedStale} + failed ${l.failed} + cancelled ${l.cancelled}`);
  }
  if (redis.groupStates.size !== l.admitted) {
    problems.push(`ledger counts ${l.admitted} groups admitted, Redis holds the state of ${redis.groupStates.size}`);
    for (let i = redis.groupStates.size; i < l.admitted; i++) lost.add(`admitted#${i}`);
  }
  const counted: Record<string, number> = {};
  const open: string[] = [];
  for (const [id, state] of redis.groupStates) {
    counted[state] = (counted[state] ?? 0) + 1;
    if (!FINAL.has(state)) open.push(`${id} (${state})`);
  }
  note('groups not in a final state', open);
  open.forEach((id) => lost.add(`group:${id}`));
  for (const [state, field] of [['trained', 'trained'], ['dropped_stale', 'droppedStale'], ['failed', 'failed'], ['cancelled', 'cancelled']] as const) {
    if ((counted[state] ?? 0) !== l[field]) problems.push(`${counted[state] ?? 0} groups are ${state}, the ledger counts ${l[field]}`);
  }

  const promptsWithGroup = new Set(redis.groupPrompts.values());
  const missingPrompts: string[] = [];
  for (let p = 0; p < redis.promptsDrawn; p++) if (!promptsWithGroup.has(String(p))) missingPrompts.push(String(p));
  note('prompts drawn without a group', missingPrompts);
  missingPrompts.forEach((p) => lost.add(`prompt:${p}`));

  const trainedBy = new Map<string, number[]>();
  const promptTrained = new Map<string, string[]>();
  const missingSteps: number[] = [];
  for (let s = 0; s < run.maxSteps; s++) if (!trained.has(s)) missingSteps.push(s);
  note('steps missing from the trainer record', missingSteps.map(String));
  const stale: string[] = [];
  const wrongPrompt: string[] = [];
  for (const [step, groups] of trained) {
    for (const g of groups) {
      trainedBy.set(g.groupId, [...(trainedBy.get(g.groupId) ?? []), step]);
      promptTrained.set(g.promptId, [...(promptTrained.get(g.promptId) ?? []), g.groupId]);
      const age = step - g.minPolicyVersion;
      if (age < 0 || age > run.k) stale.push(`${g.groupId} (age ${age} at step ${step})`);
      const admittedWith = redis.groupPrompts.get(g.groupId);
      if (admittedWith !== g.promptId) wrongPrompt.push(`${g.groupId} (trained prompt ${g.promptId}, admitted ${admittedWith ?? 'never'})`);
    }
  }
  staleTrained = stale.length;
  note(`groups trained older than k = ${run.k}`, stale);
  note('trained groups whose prompt is not the one admitted', wrongPrompt);
  const twice = [...trainedBy].filter(([, steps]) => steps.length > 1).map(([id, steps]) => `${id} (steps ${steps.join(', ')})`);
  note('groups trained more than once', twice);
  twice.forEach((id) => duplicated.add(`group:${id}`));
  const promptTwice = [...promptTrained].filter(([, ids]) => ids.length > 1).map(([p, ids]) => `prompt ${p} (groups ${ids.join(', ')})`);
  note('prompts trained more than once', promptTwice);
  promptTwice.forEach((p) => duplicated.add(p));

  const notTrainedInLedger = [...trainedBy.keys()].filter((id) => redis.groupStates.get(id) !== 'trained');
  note('groups the trainer trained that the ledger does not count as trained', notTrainedInLedger.map((id) => `${id} (${redis.groupStates.get(id) ?? 'unknown'})`));
  const neverReached = [...redis.groupStates].filter(([id, s]) => s === 'trained' && !trainedBy.has(id)).map(([id]) => id);
  note('groups the ledger counts as trained that the trainer never recorded', neverReached);
  neverReached.forEach((id) => lost.add(`group:${id}`));

  return {
    admitted: l.admitted,
    trained: l.trained,
    droppedStale: l.droppedStale,
    failed: l.failed,
    cancelled: l.cancelled,
    lost: lost.size,
    duplicated: duplicated.size,
    staleTrained,
    stepsRecorded: trained.size,
    problems,
  };
}
