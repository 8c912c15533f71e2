import { describe, expect, it } from 'vitest';
import { ErrorCode, TandemError } from '@tandem/common';
import { WeightState } from './weight-state.js';

const init = { master_address: '10.0.0.1', master_port: 29500, rank_offset: 1, world_size: 2 };

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    return err instanceof TandemError ? err.code : 'not a TandemError';
  }
}

describe('WeightState', () => {
  it('runs the TRL sequence and bumps the version by one per update', () => {
    const w = new WeightState({ initialVersion: 0, strictOrder: true });
    expect(w.initTransferEngine(init)).toEqual({ masterAddress: '10.0.0.1', masterPort: 29500, rankOffset: 1, worldSize: 2 });
    w.pause('keep');
    expect(w.gate()).toBe('closed');
    w.startUpdate();
    w.beginReceive(null);
    expect(w.snapshot().updatePhase).toBe('receiving');
    w.endReceive();
    expect(w.finishUpdate(null)).toBe(1);
    expect(w.policyVersion).toBe(1);
    w.resume();
    expect(w.gate()).toBe('open');
    expect(w.snapshot()).toMatchObject({ paused: false, updatePhase: 'idle', updatesFinished: 1 });
  });

  it('closes the gate while receiving even when not paused', () => {
    const w = new WeightState({ initialVersion: 0, strictOrder: true });
    w.initTransferEngine(init);
    w.startUpdate();
    expect(w.gate()).toBe('open');
    w.beginReceive(null);
    expect(w.gate()).toBe('closed');
    w.endReceive();
    expect(w.gate()).toBe('open');
  });

  it('maps pause modes to what vLLM schedules', () => {
    const w = new WeightState({ initialVersion: 0, strictOrder: true });
    w.pause('wait');
    expect(w.gate()).toBe('running-only');
    w.pause('abort');
    expect(w.gate()).toBe('running-only');
    w.pause('keep');
    expect(w.gate()).toBe('closed');
  });

  it('takes the version from finish, else from update_weights, else current + 1', () => {
    const w = new WeightState({ initialVersion: 5, strictOrder: true });
    w.initTransferEngine(init);
    w.startUpdate();
    w.beginReceive(9);
    w.endReceive();
    expect(w.finishUpdate(null)).toBe(9);
    w.startUpdate();
    w.beginReceive(10);
    w.endReceive();
    expect(w.finishUpdate(12)).toBe(12);
    w.startUpdate();
    expect(codeOf(() => w.finishUpdate(3))).toBe(ErrorCode.InvalidArgument);
  });

  it('rejects out-of-order calls when strict, and a missing engine like vLLM (500)', () => {
    const w = new WeightState({ initialVersion: 0, strictOrder: true });
    expect(codeOf(() => w.beginReceive(null))).toBe(ErrorCode.Internal);
    w.initTransferEngine(init);
    expect(codeOf(() => w.beginReceive(null))).toBe(ErrorCode.FailedPrecondition);
    expect(codeOf(() => w.finishUpdate(null))).toBe(ErrorCode.FailedPrecondition);
    w.startUpdate();
    expect(codeOf(() => w.startUpdate())).toBe(ErrorCode.FailedPrecondition);
    const lax = new WeightState({ initialVersion: 0, strictOrder: false });
    expect(lax.finishUpdate(null)).toBe(1);
  });

  it('rejects init_info without the NCCL fields', () => {
    const w = new WeightState({ initialVersion: 0, strictOrder: true });
    expect(codeOf(() => w.initTransferEngine({ master_address: 'x' }))).toBe(ErrorCode.Internal);
    expect(codeOf(() => w.initTransferEngine({ ...init, master_port: '29500' }))).toBe(ErrorCode.Internal);
  });
});
