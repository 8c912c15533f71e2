import { ErrorCode, TandemError } from '@tandem/common';
import type { RLRunSpec } from '@tandem/run-spec';
import type { ControlPlaneHooks } from '../rlrun-reconciler.js';
import type { RunProgress } from '../rlrun-status-builder.js';

/**
 * An in-memory control plane behind the reconciler's hooks: runs with a
 * progress the test sets, and a log of every call (registrations, cleanups)
 * to assert on. The real hooks (RunManager, weight sync, Redis) are tested
 * in control-plane-hooks.test.ts.
 */
export class FakeControlPlane implements ControlPlaneHooks {
  readonly runs = new Map<string, { spec: RLRunSpec; progress: RunProgress }>();
  readonly calls: Array<{ op: string; runId: string; args: unknown[] }> = [];
  /** Generators registered now: run → id → url. */
  readonly generators = new Map<string, Map<string, string>>();
  /** Make the next acceptRun throw this. */
  acceptError: Error | undefined;

  async acceptRun(runId: string, spec: RLRunSpec): Promise<void> {
    this.calls.push({ op: 'accept', runId, args: [] });
    if (this.acceptError) throw this.acceptError;
    if (this.runs.has(runId)) return;
    this.runs.set(runId, {
      spec,
      progress: { phase: 'Pending', message: '', trainerStep: 0, maxSteps: spec.maxSteps, policyVersion: 0, minGeneratorVersion: -1, maxGeneratorVersion: -1, queueDepth: 0, inFlight: 0, tokens: 0 },
    });
  }

  async progress(runId: string): Promise<RunProgress | undefined> {
    const r = this.runs.get(runId);
    return r ? { ...r.progress } : undefined;
  }

  /** Changes a run's progress (what the RunManager would report). */
  setProgress(runId: string, change: Partial<RunProgress>): void {
    const r = this.runs.get(runId);
    if (!r) throw new Error(`no run ${runId}`);
    r.progress = { ...r.progress, ...change };
  }

  async cancelRun(runId: string, reason: string): Promise<void> {
    this.calls.push({ op: 'cancel', runId, args: [reason] });
    this.end(runId, 'Cancelled', reason);
  }

  async failRun(runId: string, message: string): Promise<void> {
    this.calls.push({ op: 'fail', runId, args: [message] });
    this.end(runId, 'Failed', message);
  }

  async cleanupRun(runId: string): Promise<void> {
    this.calls.push({ op: 'cleanup', runId, args: [] });
    this.runs.delete(runId);
    this.generators.delete(runId);
  }

  async registerGenerator(runId: string, id: string, url: string): Promise<void> {
    this.calls.push({ op: 'register', runId, args: [id, url] });
    if (!this.generators.has(runId)) this.generators.set(runId, new Map());
    this.generators.get(runId)?.set(id, url);
  }

  async removeGenerator(runId: string, id: string): Promise<void> {
    this.calls.push({ op: 'remove', runId, args: [id] });
    if (!this.generators.get(runId)?.delete(id)) throw new TandemError(ErrorCode.NotFound, `generator ${id} not found`);
  }

  count(op: string, runId?: string): number {
    return this.calls.filter((c) => c.op === op && (runId === undefined || c.runId === runId)).length;
  }

  private end(runId: string, phase: RunProgress['phase'], message: string): void {
    const r = this.runs.get(runId);
    if (!r || ['Succeeded', 'Failed', 'Cancelled'].includes(r.progress.phase)) return;
    r.progress = { ...r.progress, phase, message };
  }
}
