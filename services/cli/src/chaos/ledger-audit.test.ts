import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { GroupState } from '@tandem/rollout-queue';
import { auditLedger, readTrainedRecord, type RedisLedgerView } from './ledger-audit.js';

/** A sound two-step run: 2 groups a step, one extra group dropped as stale. */
function soundRun(): { redis: RedisLedgerView; trained: Map<number, Array<{ groupId: string; promptId: string; minPolicyVersion: number }>> } {
  const states: Array<[string, GroupState]> = [['1', 'trained'], ['2', 'trained'], ['3', 'dropped_stale'], ['4', 'trained'], ['5', 'trained']];
  return {
    redis: {
      ledger: { admitted: 5, trained: 4, droppedStale: 1, failed: 0, cancelled: 0, tokensTrained: 0, tokensWasted: 0 },
      groupStates: new Map(states),
      groupPrompts: new Map([['1', '0'], ['2', '1'], ['3', '2'], ['4', '3'], ['5', '4']]),
      promptsDrawn: 5,
    },
    trained: new Map([
      [0, [{ groupId: '1', promptId: '0', minPolicyVersion: 0 }, { groupId: '2', promptId: '1', minPolicyVersion: 0 }]],
      [1, [{ groupId: '4', promptId: '3', minPolicyVersion: 0 }, { groupId: '5', promptId: '4', minPolicyVersion: 1 }]],
    ]),
  };
}

const RUN = { maxSteps: 2, k: 1 };

describe('auditLedger', () => {
  it('finds nothing wrong with a sound run', () => {
    const { redis, trained } = soundRun();
    expect(auditLedger(redis, trained, RUN)).toEqual({
      admitted: 5, trained: 4, droppedStale: 1, failed: 0, cancelled: 0, lost: 0, duplicated: 0, staleTrained: 0, stepsRecorded: 2, problems: [],
    });
  });

  it('counts a group trained in two steps as duplicated', () => {
    const { redis, trained } = soundRun();
    trained.get(1)?.push({ groupId: '1', promptId: '0', minPolicyVersion: 0 });
    const a = auditLedger(redis, trained, RUN);
    // The group, and its prompt, each count once.
    expect(a.duplicated).toBe(2);
    expect(a.problems.join('\n')).toMatch(/groups trained more than once: 1 \(steps 0, 1\)/);
  });

  it('counts a prompt drawn without a group, an open group and a trained group the trainer never saw as lost', () => {
    const { redis, trained } = soundRun();
    redis.promptsDrawn = 7; // prompts 5 and 6 have no group
    redis.groupStates.set('6', 'inflight');
    redis.groupPrompts.set('6', '5');
    redis.ledger.admitted = 6;
    trained.set(1, [{ groupId: '4', promptId: '3', minPolicyVersion: 0 }]); // group 5 never reached the trainer
    const a = auditLedger(redis, trained, RUN);
    expect(a.lost).toBe(3); // prompt 6, group 6 (inflight), group 5
    expect(a.problems.join('\n')).toMatch(/ledger does not balance/);
    expect(a.problems.join('\n')).toMatch(/groups the ledger counts as trained that the trainer never recorded: 5/);
  });

  it('flags groups older than k and missing steps', () => {
    const { redis, trained } = soundRun();
    const a = auditLedger(redis, trained, { maxSteps: 3, k: 0 });
    expect(a.staleTrained).toBe(1); // group 4: age 1 at step 1
    expect(a.problems.join('\n')).toMatch(/steps missing from the trainer record: 2/);
  });
});

describe('readTrainedRecord', () => {
  it('keeps the last entry of a step recorded twice (the trainer died before its ack)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tandem-audit-'));
    try {
      const path = join(dir, 'trained.jsonl');
      const line = (step: number, ids: string[]): string =>
        JSON.stringify({ runId: 'r', step, trainerId: 't', groups: ids.map((id) => ({ groupId: id, promptId: id, minPolicyVersion: 0, maxPolicyVersion: 0 })) });
      await writeFile(path, `${line(0, ['a'])}\n${line(1, ['b'])}\n${line(1, ['b'])}\n`);
      const record = await readTrainedRecord(path);
      expect([...record.keys()]).toEqual([0, 1]);
      expect(record.get(1)?.map((g) => g.groupId)).toEqual(['b']);
      await writeFile(path, '{"step": 0}\n');
      await expect(readTrainedRecord(path)).rejects.toThrow(/trained\.jsonl:1: expected \{step, groups\[\]\}/);
      expect(await readTrainedRecord(join(dir, 'absent.jsonl'))).toEqual(new Map());
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
